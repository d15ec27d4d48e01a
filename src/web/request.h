/*
 * request.h — what the sender page reads of an HTTP request, parsed
 * strictly and within limits: the path "/c/TOKEN" and the one field of the
 * posted form (application/x-www-form-urlencoded); and HTML escaping for
 * everything the pages show.
 *
 * Pure functions, no loop and no store, so the fuzz target and the unit
 * tests reach all of it.
 *
 * SECURITY: every byte here comes from anyone on the internet. Lengths are
 * checked before anything is copied; a malformed escape, a duplicated field
 * or more than WEB_FORM_MAX_FIELDS fields is a refusal, never a guess.
 */
#ifndef POPGATE_WEB_REQUEST_H
#define POPGATE_WEB_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* The longest request target the server reads (evhttp takes it whole). */
#define WEB_REQUEST_TARGET_MAX 512
/* A posted form: the longest body, the most fields, the longest value. */
#define WEB_FORM_BODY_MAX 1024
#define WEB_FORM_MAX_FIELDS 8
#define WEB_FORM_VALUE_MAX 64

/*
 * The token of a request target "/c/TOKEN", optionally followed by "?…"
 * (a query is ignored): *TOKEN_R points into TARGET, *TOKEN_LEN_R its
 * length (1 to TOKEN_MAX base64url characters). 1, or 0 when TARGET is not
 * such a path (or longer than WEB_REQUEST_TARGET_MAX).
 */
int web_request_token_path(const char *target, size_t len, size_t token_max, const char **token_r,
			   size_t *token_len_r);

/*
 * The value of field NAME in the form BODY (LEN bytes): percent escapes
 * and "+" decoded into VALUE (NUL-terminated, at most WEB_FORM_VALUE_MAX
 * bytes; a NUL byte is refused). 1 found, 0 absent, -1 malformed (LEN over
 * WEB_FORM_BODY_MAX, too many fields, NAME twice, a bad escape, a value too
 * long).
 */
int web_form_field(const char *body, size_t len, const char *name,
		   char value[WEB_FORM_VALUE_MAX + 1]);

/* Appends TEXT (LEN bytes) to OUT with & < > " ' escaped, and every control
 * character but tab dropped. */
void web_html_escape(struct evbuffer *out, const char *text, size_t len);

/* True when the Content-Type value VALUE names a urlencoded form (any
 * parameters after ";" are allowed). */
bool web_request_form_type(const char *value);

#endif
