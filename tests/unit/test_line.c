/*
 * test_line.c — unit tests for src/core/line.c: the session line framer
 * (lines, CR LF and bare LF, the length limit exactly, over-long lines
 * discarded across feeds, input fed at every split point), feeding from an
 * evbuffer, and wiping what was consumed (a PASS line's bytes are zero in
 * the evbuffer's own memory before it is drained).
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
#include <event2/buffer.h>

#include "core/line.h"

/* ---- helpers ---------------------------------------------------------- */

/* What the framer handed on, as text: "L<line>|" per line, "T|" per
 * over-long line. */
struct transcript {
	char text[4096];
	size_t len;
};

static void transcript_add(struct transcript *t, const struct line_framer *framer,
			   enum line_frame frame)
{
	if (frame == LINE_FRAME_LINE) {
		assert_true(framer->len < framer->max_line);
		assert_int_equal(framer->line[framer->len], '\0');
		assert_null(memchr(framer->line, '\n', framer->len));
		t->len += (size_t)snprintf(t->text + t->len, sizeof(t->text) - t->len, "L%s|",
					   framer->line);
	} else if (frame == LINE_FRAME_TOO_LONG) {
		t->len += (size_t)snprintf(t->text + t->len, sizeof(t->text) - t->len, "T|");
	}
	assert_true(t->len < sizeof(t->text));
}

/* Feeds IN[0..LEN) in pieces of at most STEP bytes. */
static void feed_steps(struct line_framer *framer, const char *in, size_t len, size_t step,
		       struct transcript *t)
{
	size_t pos = 0;

	while (pos < len) {
		size_t piece = len - pos < step ? len - pos : step;
		while (piece > 0) {
			enum line_frame frame;
			size_t used = line_framer_feed(framer, in + pos, piece, &frame);
			assert_true(used > 0 && used <= piece);
			transcript_add(t, framer, frame);
			pos += used;
			piece -= used;
		}
	}
}

static void check_framing(size_t max_line, const char *in, const char *expected)
{
	size_t len = strlen(in);

	for (size_t step = 1; step <= len; step++) {
		struct line_framer framer;
		struct transcript t = {.len = 0};

		line_framer_init(&framer, max_line);
		feed_steps(&framer, in, len, step, &t);
		t.text[t.len] = '\0';
		assert_string_equal(t.text, expected);
		line_framer_free(&framer);
	}
}

/* ---- tests ------------------------------------------------------------ */

static void test_lines(void **state)
{
	(void)state;
	check_framing(64, "USER a\r\nNOOP\nCAPA\r\n\r\nQUIT", "LUSER a|LNOOP|LCAPA|L|");
	/* Only the CR right before the LF is the line end. */
	check_framing(64, "A\rB\r\r\n", "LA\rB\r|");
}

static void test_limit(void **state)
{
	(void)state;
	/* MAX_LINE counts the CR LF: 8 bytes with it pass, 9 do not. */
	check_framing(8, "123456\r\n", "L123456|");
	check_framing(8, "1234567\n", "L1234567|");
	check_framing(8, "1234567\r\nNOOP\r\n", "T|LNOOP|");
	check_framing(8, "12345678\nNOOP\r\n", "T|LNOOP|");
	/* A long run without LF is dropped as it comes; its end is one error. */
	check_framing(8, "123456789012345678901234567890\r\nA\r\n", "T|LA|");
	check_framing(8, "\n\n", "L|L|");
}

static void test_reset(void **state)
{
	struct line_framer framer;
	enum line_frame frame;
	(void)state;

	line_framer_init(&framer, 32);
	assert_int_equal(line_framer_feed(&framer, "PASS secr", 9, &frame), 9);
	assert_int_equal(frame, LINE_FRAME_NONE);
	line_framer_reset(&framer);
	for (size_t i = 0; i < framer.max_line; i++)
		assert_int_equal(framer.line[i], 0);
	assert_int_equal(line_framer_feed(&framer, "et\r\n", 4, &frame), 4);
	assert_int_equal(frame, LINE_FRAME_LINE);
	assert_string_equal(framer.line, "et");
	/* A finished line is wiped by the next feed. */
	assert_int_equal(line_framer_feed(&framer, "X", 1, &frame), 1);
	assert_int_equal(framer.line[1], 0);
	assert_int_equal(framer.line[2], 0);
	line_framer_free(&framer);
	assert_null(framer.line);
}

/* An idle session holds no line buffer (bench: memory per idle session):
 * none before a line's first byte, none after a release with no partial
 * line; a partial line survives a release whole. */
static void test_buffer_on_demand(void **state)
{
	struct line_framer framer;
	enum line_frame frame;
	(void)state;

	line_framer_init(&framer, 32);
	assert_null(framer.line);
	assert_int_equal(line_framer_feed(&framer, "", 0, &frame), 0);
	assert_null(framer.line);
	assert_int_equal(line_framer_feed(&framer, "NOOP\r\n", 6, &frame), 6);
	assert_int_equal(frame, LINE_FRAME_LINE);
	assert_string_equal(framer.line, "NOOP");
	line_framer_release(&framer); /* a finished line is forgotten */
	assert_null(framer.line);
	assert_int_equal(framer.len, 0);

	assert_int_equal(line_framer_feed(&framer, "PASS se", 7, &frame), 7);
	line_framer_release(&framer); /* a partial line is kept */
	assert_non_null(framer.line);
	assert_int_equal(line_framer_feed(&framer, "cret\r\n", 6, &frame), 6);
	assert_int_equal(frame, LINE_FRAME_LINE);
	assert_string_equal(framer.line, "PASS secret");
	line_framer_reset(&framer);
	line_framer_release(&framer);
	assert_null(framer.line);

	/* An over-long line is skipped without a buffer, its end still seen. */
	assert_int_equal(line_framer_feed(&framer, "0123456789012345678901234567890123", 34,
					  &frame),
			 34);
	line_framer_release(&framer);
	assert_null(framer.line);
	assert_int_equal(line_framer_feed(&framer, "x\r\nA\n", 5, &frame), 3);
	assert_int_equal(frame, LINE_FRAME_TOO_LONG);
	assert_int_equal(line_framer_feed(&framer, "A\n", 2, &frame), 2);
	assert_int_equal(frame, LINE_FRAME_LINE);
	assert_string_equal(framer.line, "A");
	line_framer_free(&framer);
	assert_null(framer.line);
}

static void test_evbuffer_feed_wipes(void **state)
{
	struct evbuffer *in = evbuffer_new();
	struct line_framer framer;
	struct evbuffer_iovec chunk;
	static const char data[] = "PASS hunter2\r\nNOOP\r\n";
	(void)state;

	line_framer_init(&framer, 64);
	evbuffer_add(in, data, sizeof(data) - 1);
	assert_int_equal(evbuffer_peek(in, -1, NULL, &chunk, 1), 1);
	const char *memory = chunk.iov_base;

	assert_int_equal(line_framer_feed_evbuffer(&framer, in), LINE_FRAME_LINE);
	assert_string_equal(framer.line, "PASS hunter2");
	assert_int_equal(evbuffer_get_length(in), 6);
	/* The same chain still holds "NOOP\r\n"; the PASS line before it is zero. */
	for (size_t i = 0; i < 14; i++)
		assert_int_equal(memory[i], 0);
	assert_memory_equal(memory + 14, "NOOP\r\n", 6);

	assert_int_equal(line_framer_feed_evbuffer(&framer, in), LINE_FRAME_LINE);
	assert_string_equal(framer.line, "NOOP");
	assert_int_equal(line_framer_feed_evbuffer(&framer, in), LINE_FRAME_NONE);

	/* Lines split over many chains come out whole. */
	for (int i = 0; i < 200; i++)
		evbuffer_add(in, i % 7 == 6 ? "\n" : "x", 1);
	size_t lines = 0;
	while (line_framer_feed_evbuffer(&framer, in) == LINE_FRAME_LINE) {
		assert_string_equal(framer.line, "xxxxxx");
		lines++;
	}
	assert_int_equal(lines, 200 / 7);
	assert_int_equal(evbuffer_get_length(in), 0);
	line_framer_free(&framer);
	evbuffer_free(in);
}

static void test_evbuffer_wipe(void **state)
{
	struct evbuffer *buf = evbuffer_new();
	char first[] = "USER a@b\r\nPASS pw";
	char second[] = "d\r\n";
	(void)state;

	/* By reference, the evbuffer's memory is these arrays: each must be
	 * zero once wiped, in every chain. */
	evbuffer_add_reference(buf, first, strlen(first), NULL, NULL);
	evbuffer_add_reference(buf, second, strlen(second), NULL, NULL);
	line_evbuffer_wipe(buf);
	assert_int_equal(evbuffer_get_length(buf), 0);
	for (size_t i = 0; i < sizeof(first); i++)
		assert_int_equal(first[i], 0);
	for (size_t i = 0; i < sizeof(second); i++)
		assert_int_equal(second[i], 0);
	evbuffer_free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lines),	  cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_reset),	  cmocka_unit_test(test_evbuffer_feed_wipes),
	    cmocka_unit_test(test_evbuffer_wipe),    cmocka_unit_test(test_buffer_on_demand),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
