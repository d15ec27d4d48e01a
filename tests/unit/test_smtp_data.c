/*
 * test_smtp_data.c — unit tests for src/smtp/data.c: DATA's body into a
 * spool file — dot-unstuffing, "." ending it, CR LF line ends whatever came,
 * a CR inside a line, the size limit (the rest read and dropped), a line
 * over the framer's limit and the Received fields that mark a loop.
 *
 * Touches only its own temp folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/data.h"
#include "store/spool.h"
#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	struct smtp_data data;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || test_dir_make(f->dir, sizeof(f->dir), "smtp-data") < 0 ||
	    spool_init(f->dir) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	smtp_data_clear(&f->data);
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

/* Feeds each of LINES (NULL-ended) to the body; asserts only the last ends it. */
static void feed(struct smtp_data *data, const char *const *lines)
{
	for (size_t i = 0; lines[i] != NULL; i++)
		assert_int_equal(smtp_data_line(data, lines[i], strlen(lines[i])),
				 lines[i + 1] == NULL);
}

/* The body committed to the spool, read back (allocated, NUL-ended). */
static char *commit_and_read(struct fixture *f, size_t *len)
{
	struct spool_writer *body = smtp_data_take_body(&f->data);
	char *path, *text = calloc(1, 1 << 16);
	FILE *file;

	assert_int_equal(spool_writer_commit(body), 0);
	path = spool_path(f->dir, body->id);
	file = fopen(path, "rb");
	assert_non_null(file);
	*len = fread(text, 1, (1 << 16) - 1, file);
	fclose(file);
	free(path);
	spool_writer_free(&body);
	return text;
}

static void test_body_is_unstuffed_with_crlf(void **state)
{
	struct fixture *f = *state;
	static const char *const lines[] = {"Subject: hi", "", "..leading dot", ".", NULL};
	size_t len;
	char *text;

	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1000), 0);
	feed(&f->data, lines);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
	text = commit_and_read(f, &len);
	assert_string_equal(text, "Subject: hi\r\n\r\n.leading dot\r\n");
	assert_int_equal(len, strlen(text));
	free(text);
}

static void test_cr_inside_a_line_becomes_a_line_end(void **state)
{
	struct fixture *f = *state;
	static const char *const lines[] = {"a\rb", "c\r", ".", NULL};
	size_t len;
	char *text;

	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1000), 0);
	feed(&f->data, lines);
	text = commit_and_read(f, &len);
	assert_string_equal(text, "a\r\nb\r\nc\r\n\r\n");
	free(text);
}

static void test_size_limit(void **state)
{
	struct fixture *f = *state;
	static const char *const lines[] = {"123456789", "123456789", "more", ".", NULL};

	/* 11 bytes with CR LF each: the second line passes 20. */
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 20), 0);
	feed(&f->data, lines);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_TOO_BIG);
	assert_int_equal(f->data.size, 11);
	/* Exactly at the limit is taken. */
	smtp_data_clear(&f->data);
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 22), 0);
	feed(&f->data, (const char *const[]){"123456789", "123456789", ".", NULL});
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
}

static void test_line_too_long(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1000), 0);
	smtp_data_line(&f->data, "a", 1);
	smtp_data_line_too_long(&f->data);
	smtp_data_line(&f->data, "b", 1);
	assert_true(smtp_data_line(&f->data, ".", 1));
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_LINE_TOO_LONG);
}

static void test_received_fields_count_in_the_header_only(void **state)
{
	struct fixture *f = *state;
	char line[64];

	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1 << 20), 0);
	for (int i = 0; i < SMTP_DATA_MAX_RECEIVED - 1; i++) {
		snprintf(line, sizeof(line), "%s: from hop%d", i % 2 ? "Received" : "RECEIVED", i);
		smtp_data_line(&f->data, line, strlen(line));
	}
	smtp_data_line(&f->data, "\tcontinued", 10);
	smtp_data_line(&f->data, "", 0);
	/* In the body it is text, not a hop. */
	smtp_data_line(&f->data, "Received: in the body", 21);
	assert_true(smtp_data_line(&f->data, ".", 1));
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);

	smtp_data_clear(&f->data);
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1 << 20), 0);
	for (int i = 0; i < SMTP_DATA_MAX_RECEIVED; i++)
		smtp_data_line(&f->data, "Received: x", 11);
	assert_true(smtp_data_line(&f->data, ".", 1));
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_LOOP);
}

static void test_clear_removes_an_untaken_body(void **state)
{
	struct fixture *f = *state;
	char tmp[TEST_DIR_SIZE + 16];

	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1000), 0);
	smtp_data_line(&f->data, "x", 1);
	snprintf(tmp, sizeof(tmp), "%s/spool/tmp", f->dir);
	assert_int_equal(test_count_entries(tmp), 1);
	smtp_data_clear(&f->data);
	assert_int_equal(test_count_entries(tmp), 0);
	smtp_data_clear(&f->data); /* twice is fine */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_body_is_unstuffed_with_crlf, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cr_inside_a_line_becomes_a_line_end, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_size_limit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_received_fields_count_in_the_header_only, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_clear_removes_an_untaken_body, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
