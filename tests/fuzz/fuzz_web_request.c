/*
 * fuzz_web_request.c — libFuzzer target for what the sender page reads of a
 * request (web/request.c): the request target, the posted form, the
 * Content-Type check and the HTML escaping of whatever is shown.
 *
 * Owns: nothing. Must never: read past the input. Beyond the sanitizers it
 * checks and aborts on a violation: a token found lies inside the target and
 * is only base64url; a form value found is NUL-free and within its limit;
 * escaped text holds no '<', '>', '"', '\'' and no control character.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "web/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *token = NULL;
	size_t token_len = 0;
	char value[WEB_FORM_VALUE_MAX + 1];

	if (web_request_token_path(text, size, 87, &token, &token_len) == 1) {
		if (token < text || token + token_len > text + size || token_len == 0 ||
		    token_len > 87)
			abort();
		for (size_t i = 0; i < token_len; i++) {
			if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
				   token[i]) == NULL || token[i] == '\0')
				abort();
		}
	}
	int found = web_form_field(text, size, "code", value);
	if (found < -1 || found > 1 || strlen(value) > WEB_FORM_VALUE_MAX)
		abort();

	char *copy = malloc(size + 1);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	copy[size] = '\0';
	(void)web_request_form_type(copy);
	free(copy);

	struct evbuffer *out = evbuffer_new();
	if (out == NULL)
		abort();
	web_html_escape(out, text, size);
	size_t len = evbuffer_get_length(out);
	const unsigned char *escaped = evbuffer_pullup(out, -1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = escaped[i];
		if (c == '<' || c == '>' || c == '"' || c == '\'' || (c < 0x20 && c != '\t') ||
		    c == 0x7f)
			abort();
	}
	evbuffer_free(out);
	return 0;
}
