/*
 * page.c — the sender page's HTML and its Content-Security-Policy
 * (web/page.h).
 *
 * Owns: the style sheet and its CSP hash, computed once.
 * Must never: put a byte of a mail or a request into a page unescaped, or
 * load anything from another origin.
 */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "web/page.h"
#include "web/request.h"

/* The one style sheet, inline: allowed by its SHA-256 in the CSP. */
static const char page_style[] =
    "body{font-family:system-ui,sans-serif;margin:0;padding:1em;background:#f4f4f4;color:#222}"
    "main{max-width:32em;margin:0 auto;background:#fff;padding:1.2em;border-radius:6px}"
    "h1{font-size:1.4em}dt{font-weight:bold}dd{margin:0 0 .6em 0;word-break:break-word}"
    ".code{font-family:monospace;font-size:2em;letter-spacing:.2em}"
    "input{font-size:1.3em;padding:.4em;width:100%;box-sizing:border-box;margin:.4em 0}"
    "button{font-size:1.2em;padding:.5em 1em;width:100%}.error{color:#a00;font-weight:bold}";

static char page_csp[256];

const char *web_page_csp(void)
{
	if (page_csp[0] == '\0') {
		unsigned char digest[crypto_hash_sha256_BYTES];
		char base64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES,
						      sodium_base64_VARIANT_ORIGINAL)];

		crypto_hash_sha256(digest, (const unsigned char *)page_style,
				   sizeof(page_style) - 1);
		sodium_bin2base64(base64, sizeof(base64), digest, sizeof(digest),
				  sodium_base64_VARIANT_ORIGINAL);
		snprintf(page_csp, sizeof(page_csp),
			 "default-src 'none'; style-src 'sha256-%s'; form-action 'self'; "
			 "frame-ancestors 'none'; base-uri 'none'",
			 base64);
	}
	return page_csp;
}

static void page_escaped(struct evbuffer *out, const char *text)
{
	web_html_escape(out, text, strlen(text));
}

static void page_begin(struct evbuffer *out, const char *title)
{
	evbuffer_add_printf(out,
			    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
			    "<meta name=\"viewport\" content=\"width=device-width, "
			    "initial-scale=1\"><meta name=\"referrer\" content=\"no-referrer\">"
			    "<title>");
	page_escaped(out, title);
	evbuffer_add_printf(out, "</title><style>%s</style></head><body><main><h1>", page_style);
	page_escaped(out, title);
	evbuffer_add_printf(out, "</h1>\n");
}

static void page_end(struct evbuffer *out)
{
	evbuffer_add_printf(out, "</main></body></html>\n");
}

void web_page_mask_address(char *out, size_t out_len, const char *recipient)
{
	const char *at = strrchr(recipient, '@');

	if (at == NULL || at == recipient) {
		snprintf(out, out_len, "%s", "(hidden)");
		return;
	}
	/* The first character, an ellipsis, the domain: the sender recognises
	 * it; someone handed the link learns little. */
	if ((unsigned char)recipient[0] < 0x80)
		snprintf(out, out_len, "%c\xe2\x80\xa6%s", recipient[0], at);
	else
		snprintf(out, out_len, "\xe2\x80\xa6%s", at);
}

void web_page_form(struct evbuffer *out, const char *recipient, const char *subject,
		   const char *code, const char *error)
{
	char masked[300];

	web_page_mask_address(masked, sizeof(masked), recipient);
	page_begin(out, "Please confirm your message");
	evbuffer_add_printf(out,
			    "<p>Your message is held until you confirm that a person sent "
			    "it. This protects the recipient from spam.</p>\n<dl><dt>To</dt><dd>");
	page_escaped(out, masked);
	evbuffer_add_printf(out, "</dd><dt>Subject</dt><dd>");
	page_escaped(out, subject);
	evbuffer_add_printf(out, "</dd></dl>\n");
	if (error != NULL) {
		evbuffer_add_printf(out, "<p class=\"error\" role=\"alert\">");
		page_escaped(out, error);
		evbuffer_add_printf(out, "</p>\n");
	}
	evbuffer_add_printf(out, "<p>Type this code:</p><p class=\"code\">");
	page_escaped(out, code);
	evbuffer_add_printf(
	    out,
	    "</p>\n<form method=\"post\"><label for=\"code\">Code</label>"
	    "<input id=\"code\" name=\"code\" autocomplete=\"off\" autocapitalize=\"characters\" "
	    "spellcheck=\"false\" maxlength=\"16\" required>"
	    "<button type=\"submit\">Release my message</button></form>\n");
	page_end(out);
}

void web_page_message(struct evbuffer *out, const char *title, const char *text)
{
	page_begin(out, title);
	evbuffer_add_printf(out, "<p>");
	page_escaped(out, text);
	evbuffer_add_printf(out, "</p>\n");
	page_end(out);
}
