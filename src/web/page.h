/*
 * page.h — the sender page's HTML: the form that asks for the code, and the
 * short pages for every outcome (released, wrong link, expired, locked).
 *
 * Plain HTML5 that works without JavaScript and on a phone (a viewport
 * meta, one column, large inputs); one inline style sheet, allowed by its
 * hash in the Content-Security-Policy (web_page_csp), nothing else loaded.
 *
 * Every text that comes from a mail or a request is HTML-escaped here
 * (web/request.h, web_html_escape); the callers pass raw text.
 */
#ifndef POPGATE_WEB_PAGE_H
#define POPGATE_WEB_PAGE_H

#include <stddef.h>

struct evbuffer;

/* The Content-Security-Policy header's value for every response. */
const char *web_page_csp(void);

/*
 * The form: who the message is for (RECIPIENT, shown masked: its first
 * character and the domain), its SUBJECT, the CODE to type, and ERROR (NULL:
 * none) above the field.
 */
void web_page_form(struct evbuffer *out, const char *recipient, const char *subject,
		   const char *code, const char *error);

/* A page with TITLE and one paragraph TEXT. */
void web_page_message(struct evbuffer *out, const char *title, const char *text);

/* RECIPIENT masked for the page ("j…@example.com") into OUT (OUT_LEN bytes). */
void web_page_mask_address(char *out, size_t out_len, const char *recipient);

#endif
