/*
 * request.c — the strict parsers of the sender page's requests and the HTML
 * escaping of its pages (web/request.h).
 *
 * Owns: nothing; it reads the caller's bytes and writes the caller's buffers.
 * Must never: read past the length it is given, copy more than the output
 * holds, or pass a byte into HTML unescaped.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "web/request.h"

static bool request_token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

static int request_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes the urlencoded TEXT (LEN bytes) into OUT (room for OUT_MAX bytes
 * and a NUL). 0, or -1 for a bad escape, a NUL byte or a result too long.
 */
static int request_form_decode(const char *text, size_t len, char *out, size_t out_max)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)text[i];

		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (len - i < 3)
				return -1;
			int high = request_hex_value(text[i + 1]);
			int low = request_hex_value(text[i + 2]);
			if (high < 0 || low < 0)
				return -1;
			c = high * 16 + low;
			i += 2;
		}
		if (c == '\0' || used == out_max)
			return -1;
		out[used++] = (char)c;
	}
	out[used] = '\0';
	return 0;
}

int web_request_token_path(const char *target, size_t len, size_t token_max, const char **token_r,
			   size_t *token_len_r)
{
	size_t end = 3;

	*token_r = NULL;
	*token_len_r = 0;
	if (len > WEB_REQUEST_TARGET_MAX || len < 4 || memcmp(target, "/c/", 3) != 0)
		return 0;
	while (end < len && request_token_char(target[end]))
		end++;
	if (end < len && target[end] != '?')
		return 0;
	if (end == 3 || end - 3 > token_max)
		return 0;
	*token_r = target + 3;
	*token_len_r = end - 3;
	return 1;
}

int web_form_field(const char *body, size_t len, const char *name,
		   char value[WEB_FORM_VALUE_MAX + 1])
{
	size_t name_len = strlen(name);
	size_t fields = 0;
	bool found = false;

	value[0] = '\0';
	if (len > WEB_FORM_BODY_MAX)
		return -1;
	for (size_t start = 0; start <= len;) {
		const char *amp = memchr(body + start, '&', len - start);
		size_t end = amp != NULL ? (size_t)(amp - body) : len;
		const char *field = body + start;
		size_t field_len = end - start;

		/* An empty field ("a=1&&b=2", a trailing "&") carries nothing. */
		if (field_len > 0) {
			const char *eq = memchr(field, '=', field_len);
			size_t key_len = eq != NULL ? (size_t)(eq - field) : field_len;
			char key[WEB_FORM_VALUE_MAX + 1];

			if (++fields > WEB_FORM_MAX_FIELDS)
				return -1;
			if (request_form_decode(field, key_len, key, WEB_FORM_VALUE_MAX) < 0)
				return -1;
			if (strlen(key) == name_len && memcmp(key, name, name_len) == 0) {
				if (found)
					return -1;
				found = true;
				if (eq == NULL) {
					value[0] = '\0';
				} else if (request_form_decode(eq + 1, field_len - key_len - 1,
							       value, WEB_FORM_VALUE_MAX) < 0) {
					value[0] = '\0';
					return -1;
				}
			}
		}
		if (amp == NULL)
			break;
		start = end + 1;
	}
	return found ? 1 : 0;
}

void web_html_escape(struct evbuffer *out, const char *text, size_t len)
{
	size_t plain = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		const char *entity = NULL;

		switch (c) {
		case '&':
			entity = "&amp;";
			break;
		case '<':
			entity = "&lt;";
			break;
		case '>':
			entity = "&gt;";
			break;
		case '"':
			entity = "&quot;";
			break;
		case '\'':
			entity = "&#39;";
			break;
		default:
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				entity = "";
			break;
		}
		if (entity == NULL)
			continue;
		evbuffer_add(out, text + plain, i - plain);
		evbuffer_add(out, entity, strlen(entity));
		plain = i + 1;
	}
	evbuffer_add(out, text + plain, len - plain);
}

bool web_request_form_type(const char *value)
{
	static const char form[] = "application/x-www-form-urlencoded";
	size_t len = sizeof(form) - 1;

	if (value == NULL || strncasecmp(value, form, len) != 0)
		return false;
	value += len;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}
