/*
 * reply.c — the incremental reader of SMTP replies (reply.h).
 *
 * A byte-at-a-time state machine: nothing waits for a whole line, so a reply
 * split anywhere reads exactly like the reply fed whole, and no line buffer
 * is needed: the text goes straight into the reply's text, which grows up to
 * SMTP_REPLY_TEXT_MAX.
 *
 * Owns: the text of the reply being read, until it is handed out.
 * Must never: read past LEN, accept a reply it flagged, log (it is fuzzed).
 *
 * SECURITY: every byte comes from a remote server; each one is checked
 * against the grammar and the limits of reply.h before it is kept.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "smtp/reply.h"

#define SMTP_REPLY_STRING2(x) #x
#define SMTP_REPLY_STRING(x) SMTP_REPLY_STRING2(x)

/* ---- helpers ---------------------------------------------------------- */

static int parser_fail(struct smtp_reply_parser *parser, const char *error)
{
	parser->error = error;
	return -1;
}

/* Room for N more bytes of text and its NUL. 0, or -1 past the text limit. */
static int parser_reserve(struct smtp_reply_parser *parser, size_t n)
{
	size_t need = parser->text_length + n + 1;

	if (parser->text_length + n > SMTP_REPLY_TEXT_MAX)
		return -1;
	if (need > parser->text_capacity) {
		size_t capacity = parser->text_capacity ? parser->text_capacity : 128;
		while (capacity < need)
			capacity *= 2;
		parser->text = xrealloc(parser->text, capacity);
		parser->text_capacity = capacity;
	}
	return 0;
}

/*
 * The length of the enhanced status code (RFC 3463: class "." subject "."
 * detail, class 2, 4 or 5, subject and detail of 1 to 3 digits) at the start
 * of S[0..LEN), followed by a space or the end; 0 if there is none. RFC 2034
 * ties its class to the reply's: a "5.x.x" on a 250 is text, not a code.
 */
static size_t enhanced_code_length(const char *s, size_t len, int reply_class)
{
	size_t i = 0;

	if (len < 5 || s[0] != (char)('0' + reply_class) ||
	    (reply_class != 2 && reply_class != 4 && reply_class != 5) || s[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t digits = 0;
		while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 4) {
			i++;
			digits++;
		}
		if (digits == 0 || digits > 3)
			return 0;
		if (part == 0) {
			if (i >= len || s[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < len && s[i] != ' ')
		return 0;
	return i;
}

/* The current line's text begins now: the separator from the line before. */
static int parser_begin_text(struct smtp_reply_parser *parser)
{
	size_t separator = parser->line_count > 0 ? 1 : 0;

	/* Reserved even for none: the text then exists, for its NUL. */
	if (parser_reserve(parser, separator) < 0)
		return parser_fail(parser, "a reply of more than " SMTP_REPLY_STRING(
					       SMTP_REPLY_TEXT_MAX) " bytes of text");
	if (separator)
		parser->text[parser->text_length++] = '\n';
	parser->line_start = parser->text_length;
	return 0;
}

/* The current line's enhanced code: kept from the first line, and taken off
 * every line that begins with it. */
static void parser_take_enhanced(struct smtp_reply_parser *parser)
{
	char *line = parser->text + parser->line_start;
	size_t len = parser->text_length - parser->line_start;
	size_t code_len = enhanced_code_length(line, len, parser->code / 100);

	if (code_len == 0)
		return;
	if (parser->line_count == 0) {
		memcpy(parser->enhanced, line, code_len); /* at most 9 bytes */
		parser->enhanced[code_len] = '\0';
	} else if (strlen(parser->enhanced) != code_len ||
		   memcmp(parser->enhanced, line, code_len) != 0) {
		return;
	}
	if (code_len < len)
		code_len++; /* the space after it */
	memmove(line, line + code_len, len - code_len);
	parser->text_length -= code_len;
}

/* Starts the next reply: the text was handed out or freed. */
static void parser_reset(struct smtp_reply_parser *parser)
{
	const char *error = parser->error;

	memset(parser, 0, sizeof(*parser));
	parser->error = error;
}

/* ---- public ------------------------------------------------------------ */

void smtp_reply_parser_init(struct smtp_reply_parser *parser)
{
	memset(parser, 0, sizeof(*parser));
}

void smtp_reply_parser_clear(struct smtp_reply_parser *parser)
{
	free(parser->text);
	memset(parser, 0, sizeof(*parser));
}

int smtp_reply_parser_feed(struct smtp_reply_parser *parser, const char *data, size_t len,
			   size_t *used, struct smtp_reply *reply)
{
	*used = 0;
	if (parser->error != NULL)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (parser->after_cr && c != '\n')
			return parser_fail(parser, "a CR without a LF after it in a reply");
		if (c == '\r') {
			parser->after_cr = true;
			continue;
		}
		if (c == '\n') {
			/* The end of a line. */
			parser->after_cr = false;
			if (parser->line_length < 3)
				return parser_fail(parser, "a reply line without its three-digit "
							   "code");
			if (parser->line_length == 3) { /* "250" EOL: a final line */
				parser->last_line = true;
				if (parser_begin_text(parser) < 0)
					return -1;
			}
			parser->text[parser->text_length] = '\0';
			parser_take_enhanced(parser);
			parser->text[parser->text_length] = '\0';
			parser->line_count++;
			parser->line_length = 0;
			parser->line_code = 0;
			if (!parser->last_line) {
				if (parser->line_count >= SMTP_REPLY_LINES_MAX)
					return parser_fail(
					    parser, "a reply of more than " SMTP_REPLY_STRING(
							SMTP_REPLY_LINES_MAX) " lines");
				continue;
			}
			/* The reply is complete: hand out its text. */
			reply->code = parser->code;
			memcpy(reply->enhanced, parser->enhanced, sizeof(reply->enhanced));
			reply->text = parser->text;
			reply->line_count = parser->line_count;
			parser->text = NULL;
			parser_reset(parser);
			*used = i + 1;
			return 1;
		}
		if (c == '\0')
			return parser_fail(parser, "a NUL byte in a reply");
		if (parser->line_length >= SMTP_REPLY_LINE_MAX)
			return parser_fail(parser, "a reply line longer than " SMTP_REPLY_STRING(
						       SMTP_REPLY_LINE_MAX) " bytes");
		if (parser->line_length < 3) {
			/* 2yz..5yz, the second digit 0..5 (RFC 5321 4.2.1). */
			static const char low[3] = {'2', '0', '0'}, high[3] = {'5', '5', '9'};
			if (c < low[parser->line_length] || c > high[parser->line_length])
				return parser_fail(parser, "a reply line that does not begin "
							   "with a reply code");
			parser->line_code = parser->line_code * 10 + (c - '0');
			if (parser->line_length == 2) {
				if (parser->line_count == 0)
					parser->code = parser->line_code;
				else if (parser->line_code != parser->code)
					return parser_fail(parser, "mixed codes in a multi-line "
								   "reply");
			}
		} else if (parser->line_length == 3) {
			if (c == ' ')
				parser->last_line = true;
			else if (c != '-')
				return parser_fail(parser, "a reply code followed by neither a "
							   "space nor a hyphen");
			if (parser_begin_text(parser) < 0)
				return -1;
		} else {
			if (parser_reserve(parser, 1) < 0)
				return parser_fail(parser,
						   "a reply of more than " SMTP_REPLY_STRING(
						       SMTP_REPLY_TEXT_MAX) " bytes of text");
			parser->text[parser->text_length++] = c;
		}
		parser->line_length++;
	}
	*used = len;
	return 0;
}

void smtp_reply_clear(struct smtp_reply *reply)
{
	free(reply->text);
	memset(reply, 0, sizeof(*reply));
}

void smtp_reply_copy(struct smtp_reply *target, const struct smtp_reply *source)
{
	*target = *source;
	target->text = source->text != NULL ? xstrdup(source->text) : NULL;
}

void smtp_reply_format(const struct smtp_reply *reply, char *out, size_t outlen)
{
	size_t used;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (reply->code == 0)
		return;
	snprintf(out, outlen, "%d%s%s", reply->code, reply->enhanced[0] ? " " : "",
		 reply->enhanced);
	used = strlen(out);
	/* Each line sanitised on its own, joined by " / ". */
	const char *text = reply->text != NULL ? reply->text : "";
	bool first = true;
	while (used + 1 < outlen) {
		const char *end = strchr(text, '\n');
		size_t len = end != NULL ? (size_t)(end - text) : strlen(text);
		const char *separator = first ? " " : " / ";
		size_t separator_len = strlen(separator);

		if (len > 0 || !first) {
			if (used + separator_len + 1 >= outlen)
				break;
			memcpy(out + used, separator, separator_len + 1);
			used += separator_len;
			util_sanitize(out + used, outlen - used, text, len);
			used += strlen(out + used);
		}
		if (end == NULL)
			break;
		text = end + 1;
		first = false;
	}
}
