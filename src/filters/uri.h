/*
 * uri.h — the link URLs of a message's text, and HTML turned into text.
 *
 * uri_scan_text finds URLs written out in plain text ("http://…",
 * "https://…", "www.…"); uri_scan_html turns HTML into the text a reader
 * sees (tags dropped, script and style skipped, entities decoded, block
 * tags as line breaks) and collects the URLs of href, src and action
 * attributes, and those written in its text.
 *
 * SECURITY: the input is hostile. Both read exactly LEN bytes, allocate only
 * through the mime_list and text bounds of mime.h, and never recurse.
 */
#ifndef POPGATE_FILTERS_URI_H
#define POPGATE_FILTERS_URI_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/mime.h"

/* The longest URL kept, in bytes; longer ones are cut. */
#define URI_LENGTH_MAX 512

/* Adds the URLs found in TEXT (LEN bytes) to URLS (at most MIME_URLS_MAX). */
void uri_scan_text(const char *text, size_t len, struct mime_list *urls);

/*
 * Appends the visible text of the HTML document HTML (LEN bytes) to *OUT
 * (a malloc'd buffer of *OUT_LEN bytes, NUL-terminated, at most OUT_MAX
 * bytes of text) and adds its URLs to URLS. Returns false when OUT_MAX cut
 * the text.
 */
bool uri_scan_html(const char *html, size_t len, char **out, size_t *out_len, size_t out_max,
		   struct mime_list *urls);

#endif
