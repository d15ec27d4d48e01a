/*
 * test_smtp_reply.c — unit tests for src/smtp/reply.c: single and multi-line
 * replies, enhanced status codes (kept, taken off each line, ignored when
 * their class is not the reply's), bare LF, every split point and byte by
 * byte giving the same replies as the input fed whole, the limits exactly
 * (line length, lines, text size), garbage (no code, a 1yz or 6yz code,
 * mixed codes, a bare CR, a NUL, a bad separator), the error staying, and
 * smtp_reply_format.
 *
 * Must never: touch the network or the file system.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/reply.h"

/* ---- helpers ---------------------------------------------------------- */

/* What the parser gave, as text: "<code>[<enhanced>]{<text>}#<lines>;" per
 * reply, "E:<error>" at an error, "+" when input is left incomplete. */
struct transcript {
	char *text;
	size_t len;
	size_t size;
};

static void transcript_add(struct transcript *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	if (t->len + (size_t)n + 1 > t->size) {
		t->size = (t->len + (size_t)n + 1) * 2;
		t->text = realloc(t->text, t->size);
		assert_non_null(t->text);
	}
	va_start(ap, fmt);
	vsnprintf(t->text + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* Feeds IN[0..LEN) in pieces of at most STEP bytes, after a first piece of
 * FIRST bytes (0: none), and records what came out. */
static char *feed(const char *in, size_t len, size_t first, size_t step)
{
	struct smtp_reply_parser parser;
	struct transcript t = {0};
	size_t pos = 0;
	int r = 0;

	smtp_reply_parser_init(&parser);
	transcript_add(&t, "%s", "");
	while (pos < len) {
		size_t piece = pos == 0 && first > 0 ? first : step;
		size_t n = piece < len - pos ? piece : len - pos;
		size_t off = 0;

		while (off < n) {
			struct smtp_reply reply = {0};
			size_t used = 0;

			r = smtp_reply_parser_feed(&parser, in + pos + off, n - off, &used, &reply);
			assert_true(used <= n - off);
			if (r < 0) {
				assert_int_equal(used, 0);
				transcript_add(&t, "E:%s", parser.error);
				goto done;
			}
			/* Without a whole reply, every byte given is taken. */
			if (r == 0)
				assert_int_equal(used, n - off);
			off += used;
			if (r == 1) {
				assert_non_null(reply.text);
				transcript_add(&t, "%d[%s]{%s}#%zu;", reply.code, reply.enhanced,
					       reply.text, reply.line_count);
				smtp_reply_clear(&reply);
			}
		}
		pos += n;
	}
	if (r == 0 && len > 0 &&
	    (parser.line_length > 0 || parser.line_count > 0 || parser.after_cr))
		transcript_add(&t, "+");
done:
	smtp_reply_parser_clear(&parser);
	return t.text;
}

/* IN fed whole must give EXPECTED, and so must every split in two and
 * the input fed a byte at a time. */
static void check_all_splits(const char *in, size_t len, const char *expected)
{
	char *whole = feed(in, len, 0, len > 0 ? len : 1);

	assert_string_equal(whole, expected);
	for (size_t split = 1; split < len; split++) {
		char *got = feed(in, len, split, len);
		assert_string_equal(got, expected);
		free(got);
	}
	char *bytes = feed(in, len, 0, 1);
	assert_string_equal(bytes, expected);
	free(bytes);
	free(whole);
}

static void check_reply(const char *in, const char *expected)
{
	check_all_splits(in, strlen(in), expected);
}

/* ---- tests ------------------------------------------------------------- */

static void test_single_line(void **state)
{
	(void)state;
	check_reply("220 mx.example.org ESMTP ready\r\n", "220[]{mx.example.org ESMTP ready}#1;");
	check_reply("250 OK\r\n", "250[]{OK}#1;");
	/* "250" alone: a final line without text; "250 " with an empty text. */
	check_reply("250\r\n", "250[]{}#1;");
	check_reply("250 \r\n", "250[]{}#1;");
	/* Two replies in one read, and an incomplete third. */
	check_reply("250 a\r\n354 go\r\n25", "250[]{a}#1;354[]{go}#1;+");
}

static void test_multi_line(void **state)
{
	(void)state;
	check_reply("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n",
		    "250[]{mx.example.org\nPIPELINING\nSIZE 10240000\n8BITMIME}#4;");
	/* Empty continuation lines and a code alone on the last line. */
	check_reply("220-\r\n220-hello\r\n220\r\n", "220[]{\nhello\n}#3;");
	/* A multi-line reply left open at the end of the input. */
	check_reply("250-one\r\n250-two", "+");
}

static void test_enhanced(void **state)
{
	(void)state;
	check_reply("250 2.1.0 Sender OK\r\n", "250[2.1.0]{Sender OK}#1;");
	check_reply("550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n",
		    "550[5.1.1]{<nobody@example.org>: Recipient address rejected}#1;");
	check_reply("452 4.5.3 Too many recipients\r\n", "452[4.5.3]{Too many recipients}#1;");
	/* Three-digit parts, and a code alone with no text after it. */
	check_reply("554 5.123.456\r\n", "554[5.123.456]{}#1;");
	/* Each line that repeats the code loses it; another code stays text. */
	check_reply("550-5.7.1 Message rejected\r\n550-5.7.1 see the policy\r\n"
		    "550 5.7.2 other\r\n",
		    "550[5.7.1]{Message rejected\nsee the policy\n5.7.2 other}#3;");
	/* A class other than the reply's, a four-digit part, no dot, text glued
	 * to the code: all text. */
	check_reply("250 5.1.1 odd\r\n", "250[]{5.1.1 odd}#1;");
	check_reply("550 5.1.1234 odd\r\n", "550[]{5.1.1234 odd}#1;");
	check_reply("550 5.1 odd\r\n", "550[]{5.1 odd}#1;");
	check_reply("550 5.1.1odd\r\n", "550[]{5.1.1odd}#1;");
	/* 3yz has no enhanced codes (RFC 3463 classes are 2, 4, 5). */
	check_reply("354 3.0.0 go ahead\r\n", "354[]{3.0.0 go ahead}#1;");
}

static void test_bare_lf(void **state)
{
	(void)state;
	/* A LF alone ends a line, as CRLF does; the two may mix. */
	check_reply("250-one\n250-two\r\n250 three\n", "250[]{one\ntwo\nthree}#3;");
	check_reply("220 hi\n", "220[]{hi}#1;");
}

static void test_garbage(void **state)
{
	(void)state;
	check_reply("hello\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("+OK pop3\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("150 preliminary\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("650 six\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("260 x\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("25x\r\n", "E:a reply line that does not begin with a reply code");
	check_reply("25\r\n", "E:a reply line without its three-digit code");
	check_reply("\r\n", "E:a reply line without its three-digit code");
	check_reply("250_x\r\n", "E:a reply code followed by neither a space nor a hyphen");
	check_reply("2500 x\r\n", "E:a reply code followed by neither a space nor a hyphen");
	check_reply("250-a\r\n251 b\r\n", "E:mixed codes in a multi-line reply");
	check_reply("250-a\r\n550 b\r\n", "E:mixed codes in a multi-line reply");
	check_reply("250 a\rb\r\n", "E:a CR without a LF after it in a reply");
	check_reply("250 a\r\r\n", "E:a CR without a LF after it in a reply");
	check_all_splits("250 a\0b\r\n", 9, "E:a NUL byte in a reply");
	/* A good reply first is handed out; the error comes after it. */
	check_reply("250 ok\r\nxyz\r\n", "250[]{ok}#1;E:a reply line that does not begin with "
					 "a reply code");
}

static void test_error_sticks(void **state)
{
	struct smtp_reply_parser parser;
	struct smtp_reply reply = {0};
	size_t used = 99;
	(void)state;

	smtp_reply_parser_init(&parser);
	assert_int_equal(smtp_reply_parser_feed(&parser, "x", 1, &used, &reply), -1);
	assert_non_null(parser.error);
	used = 99;
	assert_int_equal(smtp_reply_parser_feed(&parser, "250 ok\r\n", 8, &used, &reply), -1);
	assert_int_equal(used, 0);
	assert_null(reply.text);
	smtp_reply_parser_clear(&parser);
}

/* A reply line of LEN bytes of text after "250 ". */
static char *long_line(size_t text_len, const char *prefix)
{
	size_t prefix_len = strlen(prefix);
	char *line = malloc(prefix_len + text_len + 3);

	assert_non_null(line);
	memcpy(line, prefix, prefix_len);
	memset(line + prefix_len, 'a', text_len);
	memcpy(line + prefix_len + text_len, "\r\n", 3);
	return line;
}

static void test_line_limit(void **state)
{
	(void)state;
	/* SMTP_REPLY_LINE_MAX bytes before the EOL, the code included, pass. */
	char *at_limit = long_line(SMTP_REPLY_LINE_MAX - 4, "250 ");
	char *expected = malloc(SMTP_REPLY_LINE_MAX + 64);
	assert_non_null(expected);
	snprintf(expected, SMTP_REPLY_LINE_MAX + 64, "250[]{%.*s}#1;", SMTP_REPLY_LINE_MAX - 4,
		 at_limit + 4);
	char *got = feed(at_limit, strlen(at_limit), 0, 7);
	assert_string_equal(got, expected);
	free(got);

	/* One more byte is an error, at whatever split. */
	char *over = long_line(SMTP_REPLY_LINE_MAX - 3, "250 ");
	check_reply(over, "E:a reply line longer than 2048 bytes");
	free(at_limit);
	free(over);
	free(expected);
}

static void test_lines_limit(void **state)
{
	char *in = malloc(SMTP_REPLY_LINES_MAX * 8 + 16);
	size_t len = 0;
	(void)state;

	assert_non_null(in);
	/* SMTP_REPLY_LINES_MAX lines pass... */
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		len += (size_t)sprintf(in + len, "250-x\r\n");
	len += (size_t)sprintf(in + len, "250 y\r\n");
	char *got = feed(in, len, 0, 3);
	assert_non_null(strstr(got, "#200;"));
	assert_null(strstr(got, "E:"));
	free(got);
	/* ...one more does not. */
	len = 0;
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		len += (size_t)sprintf(in + len, "250-x\r\n");
	len += (size_t)sprintf(in + len, "250 y\r\n");
	got = feed(in, len, 0, 5);
	assert_string_equal(got, "E:a reply of more than 200 lines");
	free(got);
	free(in);
}

static void test_text_limit(void **state)
{
	/* Lines of 1000 bytes of text: 65 of them pass 64 KiB. */
	size_t line_text = 1000, lines = 66;
	char *in = malloc(lines * (line_text + 6) + 1);
	size_t len = 0;
	(void)state;

	assert_non_null(in);
	for (size_t i = 0; i < lines; i++) {
		memcpy(in + len, i + 1 < lines ? "250-" : "250 ", 4);
		len += 4;
		memset(in + len, 'b', line_text);
		len += line_text;
		memcpy(in + len, "\r\n", 2);
		len += 2;
	}
	char *got = feed(in, len, 0, 4096);
	assert_string_equal(got, "E:a reply of more than 65536 bytes of text");
	free(got);
	/* 65 such lines are 65 * 1000 + 64 separators: under the limit. */
	len = 0;
	for (size_t i = 0; i < 65; i++) {
		memcpy(in + len, i + 1 < 65 ? "250-" : "250 ", 4);
		len += 4;
		memset(in + len, 'b', line_text);
		len += line_text;
		memcpy(in + len, "\r\n", 2);
		len += 2;
	}
	got = feed(in, len, 0, 4096);
	assert_non_null(strstr(got, "#65;"));
	free(got);
	free(in);
}

static void test_format(void **state)
{
	struct smtp_reply reply = {.code = 550, .enhanced = "5.1.1"};
	char out[64];
	(void)state;

	reply.text = "no such user\nsecond \x01 line";
	smtp_reply_format(&reply, out, sizeof(out));
	assert_string_equal(out, "550 5.1.1 no such user / second ? line");
	reply.enhanced[0] = '\0';
	reply.text = "";
	smtp_reply_format(&reply, out, sizeof(out));
	assert_string_equal(out, "550");
	/* Cut to fit, NUL-ended. */
	reply.text = "a very long text that will not fit into the small buffer at all";
	smtp_reply_format(&reply, out, 16);
	assert_int_equal(strlen(out), 15);
	assert_memory_equal(out, "550 a very long", 15);
	reply.code = 0;
	smtp_reply_format(&reply, out, sizeof(out));
	assert_string_equal(out, "");
}

static void test_copy(void **state)
{
	struct smtp_reply source = {.code = 250, .enhanced = "2.0.0", .line_count = 1};
	struct smtp_reply copy;
	(void)state;

	source.text = strdup("ok");
	smtp_reply_copy(&copy, &source);
	assert_ptr_not_equal(copy.text, source.text);
	assert_string_equal(copy.text, "ok");
	assert_string_equal(copy.enhanced, "2.0.0");
	smtp_reply_clear(&source);
	smtp_reply_clear(&copy);
	assert_null(copy.text);
	assert_int_equal(copy.code, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_line), cmocka_unit_test(test_multi_line),
	    cmocka_unit_test(test_enhanced),	cmocka_unit_test(test_bare_lf),
	    cmocka_unit_test(test_garbage),	cmocka_unit_test(test_error_sticks),
	    cmocka_unit_test(test_line_limit),	cmocka_unit_test(test_lines_limit),
	    cmocka_unit_test(test_text_limit),	cmocka_unit_test(test_format),
	    cmocka_unit_test(test_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
