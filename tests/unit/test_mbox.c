/*
 * test_mbox.c — the mbox splitter (core/mbox.c): messages split at From_
 * lines after an empty line only (so an unquoted "From " in a body stays
 * inside), the From_ line and the separating empty line (LF or CRLF) left
 * out, a message at the end without its empty line, a resume offset
 * checked, and mboxrd unquoting taking one '>' from each quoted line.
 *
 * Owns: nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mbox.h"

/* The messages of MBOX joined by "|", with their offsets in OFFSETS. */
static void test_split(const char *mbox, char *out, size_t size, size_t *offsets)
{
	size_t len = strlen(mbox);
	struct mbox_message message;
	size_t used = 0;
	size_t n = 0;

	out[0] = '\0';
	for (size_t offset = 0; offset < len; offset = message.next) {
		assert_true(mbox_starts_at(mbox, len, offset));
		mbox_message_at(mbox, len, offset, &message);
		assert_true(used + (message.end - message.body) + 2 < size);
		if (n > 0)
			out[used++] = '|';
		memcpy(out + used, mbox + message.body, message.end - message.body);
		used += message.end - message.body;
		out[used] = '\0';
		offsets[n++] = offset;
	}
}

static void test_messages(void **state)
{
	static const char mbox[] = "From a@x Thu Aug 22 13:17:22 2002\n"
				   "Subject: one\n\nbody\nFrom inside, no empty line before\n"
				   ">From quoted\n\n"
				   "From b@x Thu Aug 22 13:17:22 2002\r\n"
				   "Subject: two\r\n\r\nbody\r\n\r\n"
				   "From c@x Thu Aug 22 13:17:22 2002\n"
				   "Subject: three\n\nlast\n";
	char out[512];
	size_t offsets[8];

	(void)state;
	assert_true(mbox_is(mbox, strlen(mbox)));
	assert_false(mbox_is("Subject: x\n", 11));
	test_split(mbox, out, sizeof(out), offsets);
	assert_string_equal(out, "Subject: one\n\nbody\nFrom inside, no empty line before\n"
				 ">From quoted\n|"
				 "Subject: two\r\n\r\nbody\r\n|Subject: three\n\nlast\n");
	/* A resume offset must be a message's start. */
	assert_true(mbox_starts_at(mbox, strlen(mbox), offsets[1]));
	assert_false(mbox_starts_at(mbox, strlen(mbox), offsets[1] + 1));
	assert_false(mbox_starts_at(mbox, strlen(mbox), strlen(mbox)));
	assert_false(
	    mbox_starts_at(mbox, strlen(mbox), (size_t)(strstr(mbox, "From inside") - mbox)));
}

static void test_trailing_and_empty(void **state)
{
	char out[256];
	size_t offsets[8];

	(void)state;
	/* The last message's empty line at the end goes, as a separator's. */
	test_split("From a\nX: 1\n\nbody\n\n", out, sizeof(out), offsets);
	assert_string_equal(out, "X: 1\n\nbody\n");
	/* An empty message, then one without a final newline. */
	test_split("From a\n\nFrom b\nX: 2", out, sizeof(out), offsets);
	assert_string_equal(out, "|X: 2");
	/* A From_ line with nothing after it. */
	test_split("From a", out, sizeof(out), offsets);
	assert_string_equal(out, "");
}

static void test_unquote(void **state)
{
	static const char text[] = "From: a\n>From b\n>>From c\n> From d\n>Fro\nx>From e\n>From";
	char out[sizeof(text)];
	size_t len;

	(void)state;
	assert_true(mbox_quoted(text, strlen(text)));
	assert_false(mbox_quoted("a\n> From b\n", 11));
	len = mbox_unquote(text, strlen(text), out);
	out[len] = '\0';
	assert_string_equal(out, "From: a\nFrom b\n>From c\n> From d\n>Fro\nx>From e\n>From");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_messages),
	    cmocka_unit_test(test_trailing_and_empty),
	    cmocka_unit_test(test_unquote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
