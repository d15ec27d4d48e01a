/*
 * test_output.c — src/cli/output.c, what popgatectl prints: aligned tables
 * (header line, columns padded to their widest cell two spaces apart, the
 * last column unpadded, NULL cells as "-"), cells and JSON strings sanitised
 * to printable ASCII (control bytes, escape sequences, invalid and valid
 * UTF-8 alike) with the JSON still loading back, the time format, and write
 * errors reported as -1.
 *
 * Output goes to open_memstream buffers; write errors are provoked with
 * /dev/full.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/output.h"

#include "test_support.h"

/* A memory stream and the text written to it. */
struct capture {
	FILE *stream;
	char *text;
	size_t len;
};

static void capture_open(struct capture *c)
{
	c->text = NULL;
	c->len = 0;
	c->stream = open_memstream(&c->text, &c->len);
	assert_non_null(c->stream);
}

/* Closes the stream; c->text then holds everything written (NUL-terminated). */
static void capture_close(struct capture *c)
{
	assert_int_equal(fclose(c->stream), 0);
	c->stream = NULL;
	assert_non_null(c->text);
}

/* What printing TABLE writes; the caller frees it. Frees TABLE. */
static char *table_text(struct cli_table *table)
{
	struct capture c;

	capture_open(&c);
	assert_int_equal(cli_table_print(table, c.stream), 0);
	capture_close(&c);
	cli_table_free(&table);
	assert_null(table);
	return c.text;
}

/* What cli_json_print writes for VALUE (which it releases); the caller frees it. */
static char *json_text(json_t *value)
{
	struct capture c;

	capture_open(&c);
	assert_int_equal(cli_json_print(value, c.stream), 0);
	capture_close(&c);
	return c.text;
}

static void test_table_aligns_columns(void **state)
{
	(void)state;
	static const char *const headers[] = {"NAME", "HOST", "MESSAGES"};
	static const char *const row1[] = {"alice+pop.gmx.net", "pop.gmx.net", "3"};
	static const char *const row2[] = {"bob", "localhost", "12"};
	struct cli_table *table = cli_table_new(3, headers);
	char *text;

	cli_table_add(table, row1);
	cli_table_add(table, row2);
	text = table_text(table);
	/* Each column as wide as its widest cell, header included; two spaces
	 * between columns; the last column never padded. */
	assert_string_equal(text, "NAME               HOST         MESSAGES\n"
				  "alice+pop.gmx.net  pop.gmx.net  3\n"
				  "bob                localhost    12\n");
	free(text);
}

static void test_table_header_sets_width(void **state)
{
	(void)state;
	static const char *const headers[] = {"ACCOUNT", "LAST FETCH"};
	static const char *const row[] = {"a", "b"};
	struct cli_table *table = cli_table_new(2, headers);
	char *text;

	cli_table_add(table, row);
	text = table_text(table);
	assert_string_equal(text, "ACCOUNT  LAST FETCH\n"
				  "a        b\n");
	free(text);
}

static void test_table_header_only(void **state)
{
	(void)state;
	static const char *const headers[] = {"ID", "STATE"};
	char *text = table_text(cli_table_new(2, headers));

	/* An empty listing still names its columns. */
	assert_string_equal(text, "ID  STATE\n");
	free(text);
}

static void test_table_null_cell_prints_dash(void **state)
{
	(void)state;
	static const char *const headers[] = {"ACCOUNT", "LAST ERROR", "NEXT RETRY"};
	static const char *const row[] = {"alice@localhost", NULL, NULL};
	struct cli_table *table = cli_table_new(3, headers);
	char *text;

	cli_table_add(table, row);
	text = table_text(table);
	assert_string_equal(text, "ACCOUNT          LAST ERROR  NEXT RETRY\n"
				  "alice@localhost  -           -\n");
	free(text);
}

static void test_table_without_header(void **state)
{
	(void)state;
	static const char *const row1[] = {"provider host", "localhost"};
	static const char *const row2[] = {"login", "alice"};
	static const char *const row3[] = {"last error", NULL};
	struct cli_table *table = cli_table_new(2, NULL);
	char *text;

	cli_table_add(table, row1);
	cli_table_add(table, row2);
	cli_table_add(table, row3);
	text = table_text(table);
	assert_string_equal(text, "provider host  localhost\n"
				  "login          alice\n"
				  "last error     -\n");
	free(text);
}

static void test_table_empty_without_header(void **state)
{
	(void)state;
	char *text = table_text(cli_table_new(2, NULL));

	assert_string_equal(text, "");
	free(text);
}

static void test_table_many_rows(void **state)
{
	(void)state;
	static const char *const headers[] = {"N", "SQUARE"};
	struct cli_table *table = cli_table_new(2, headers);
	char *text;
	char *line;
	char *save = NULL;
	int n = 0;

	/* More rows than the first allocation holds. */
	for (int i = 0; i < 100; i++) {
		char number[16];
		char square[16];
		const char *row[2] = {number, square};

		snprintf(number, sizeof(number), "%d", i);
		snprintf(square, sizeof(square), "%d", i * i);
		cli_table_add(table, row);
	}
	text = table_text(table);
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		char expected[32];

		if (n == 0)
			snprintf(expected, sizeof(expected), "N   SQUARE");
		else
			snprintf(expected, sizeof(expected), "%-2d  %d", n - 1, (n - 1) * (n - 1));
		assert_string_equal(line, expected);
		n++;
	}
	assert_int_equal(n, 101);
	free(text);
}

static void test_table_sanitises_cells(void **state)
{
	(void)state;
	static const char *const headers[] = {"ACCOUNT", "LAST ERROR"};
	/* A provider's error with a terminal escape sequence, a line break that
	 * would fake a second row, a tab, DEL, and a name with valid UTF-8 and
	 * with a stray continuation byte. */
	static const char *const row1[] = {"eve@localhost",
					   "\x1b[2J\x1b]0;owned\x07-ERR bad\r\nfake  row\tx\x7f"};
	static const char *const row2[] = {"m\xc3\xbcller@localhost", "\x80\xff"};
	struct cli_table *table = cli_table_new(2, headers);
	char *text;

	cli_table_add(table, row1);
	cli_table_add(table, row2);
	text = table_text(table);
	/* Every control and non-ASCII byte is one '?', so the widths still
	 * count what a terminal shows. */
	assert_string_equal(text, "ACCOUNT            LAST ERROR\n"
				  "eve@localhost      ?[2J?]0;owned?-ERR bad??fake  row?x?\n"
				  "m??ller@localhost  ??\n");
	assert_null(strchr(text, '\x1b'));
	free(text);
}

static void test_table_copies_cells(void **state)
{
	(void)state;
	static const char *const headers[] = {"A", "B"};
	char first[] = "one";
	char second[] = "two";
	const char *row[] = {first, second};
	struct cli_table *table = cli_table_new(2, headers);
	char *text;

	cli_table_add(table, row);
	/* The caller may reuse its buffers once the row is added. */
	memcpy(first, "XXX", 3);
	memcpy(second, "YYY", 3);
	text = table_text(table);
	assert_string_equal(text, "A    B\n"
				  "one  two\n");
	free(text);
}

static void test_table_write_error(void **state)
{
	(void)state;
	static const char *const headers[] = {"A", "B"};
	static const char *const row[] = {"1", "2"};
	struct cli_table *table = cli_table_new(2, headers);
	FILE *full = fopen("/dev/full", "w");

	assert_non_null(full);
	cli_table_add(table, row);
	assert_int_equal(cli_table_print(table, full), -1);
	fclose(full);
	cli_table_free(&table);
	assert_null(table);
	/* Freeing NULL is fine. */
	cli_table_free(&table);
}

static void test_format_time(void **state)
{
	(void)state;
	char text[CLI_TIME_LEN];

	cli_format_time(0, text);
	assert_string_equal(text, "-");
	cli_format_time(1795832053, text);
	assert_string_equal(text, "2026-11-28T02:14:13Z");
	cli_format_time(1, text);
	assert_string_equal(text, "1970-01-01T00:00:01Z");
	/* The longest time that fits: the last second of year 9999. */
	cli_format_time(253402300799, text);
	assert_string_equal(text, "9999-12-31T23:59:59Z");
	/* Beyond it, or beyond what gmtime takes: "?" rather than a cut text. */
	cli_format_time(253402300800, text);
	assert_string_equal(text, "?");
	cli_format_time(INT64_MAX, text);
	assert_string_equal(text, "?");
}

static void test_json_time(void **state)
{
	(void)state;
	json_t *never = cli_json_time(0);
	json_t *when = cli_json_time(1795832053);

	assert_true(json_is_null(never));
	assert_true(json_is_string(when));
	assert_string_equal(json_string_value(when), "2026-11-28T02:14:13Z");
	json_decref(never);
	json_decref(when);
}

static void test_json_string_plain_and_null(void **state)
{
	(void)state;
	json_t *value = cli_json_string("alice+pop.gmx.net");
	json_t *none = cli_json_string(NULL);

	assert_string_equal(json_string_value(value), "alice+pop.gmx.net");
	assert_true(json_is_null(none));
	json_decref(value);
	json_decref(none);
}

static void test_json_string_sanitised_and_valid(void **state)
{
	(void)state;
	/* Invalid UTF-8 (a lone continuation byte, an overlong '/', a truncated
	 * sequence), valid UTF-8, an escape sequence, quotes and a backslash. */
	json_t *object = json_object();
	json_t *loaded;
	json_error_t error;
	char *text;

	json_object_set_new(object, "error",
			    cli_json_string("\x80\xc0\xaf\xe2\x82 \xc3\xbc \x1b[31mred\x1b[0m"
					    " \"q\" \\ \x7f\n"));
	text = json_text(object);
	loaded = json_loads(text, 0, &error);
	if (loaded == NULL)
		fail_msg("cli_json_print wrote invalid JSON (%s): %s", error.text, text);
	assert_string_equal(json_string_value(json_object_get(loaded, "error")),
			    "????? ?? ?[31mred?[0m \"q\" \\ ??");
	assert_null(strchr(text, '\x1b'));
	json_decref(loaded);
	free(text);
}

static void test_json_print_object(void **state)
{
	(void)state;
	json_t *object = json_object();
	char *text;

	json_object_set_new(object, "name", cli_json_string("alice@localhost"));
	json_object_set_new(object, "last_fetch", cli_json_time(0));
	json_object_set_new(object, "fetch_failures", json_integer(2));
	text = json_text(object);
	/* Indented by two, keys in insertion order, one final newline. */
	assert_string_equal(text, "{\n"
				  "  \"name\": \"alice@localhost\",\n"
				  "  \"last_fetch\": null,\n"
				  "  \"fetch_failures\": 2\n"
				  "}\n");
	free(text);
}

static void test_json_print_any_value(void **state)
{
	(void)state;
	char *text = json_text(json_array());

	assert_string_equal(text, "[]\n");
	free(text);
	text = json_text(json_integer(42));
	assert_string_equal(text, "42\n");
	free(text);
	text = json_text(cli_json_string(NULL));
	assert_string_equal(text, "null\n");
	free(text);
}

static void test_json_print_null_fails(void **state)
{
	(void)state;
	struct capture c;

	capture_open(&c);
	assert_int_equal(cli_json_print(NULL, c.stream), -1);
	capture_close(&c);
	assert_string_equal(c.text, "");
	free(c.text);
}

static void test_json_print_write_error(void **state)
{
	(void)state;
	FILE *full = fopen("/dev/full", "w");
	json_t *big = json_array();

	assert_non_null(full);
	/* Small: the error shows only when the buffer is flushed. */
	assert_int_equal(cli_json_print(json_string("x"), full), -1);
	clearerr(full);
	/* Larger than a stdio buffer: the dump itself fails. */
	for (int i = 0; i < 2000; i++)
		json_array_append_new(big, json_string("a string of some length"));
	assert_int_equal(cli_json_print(big, full), -1);
	fclose(full);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_aligns_columns),
	    cmocka_unit_test(test_table_header_sets_width),
	    cmocka_unit_test(test_table_header_only),
	    cmocka_unit_test(test_table_null_cell_prints_dash),
	    cmocka_unit_test(test_table_without_header),
	    cmocka_unit_test(test_table_empty_without_header),
	    cmocka_unit_test(test_table_many_rows),
	    cmocka_unit_test(test_table_sanitises_cells),
	    cmocka_unit_test(test_table_copies_cells),
	    cmocka_unit_test(test_table_write_error),
	    cmocka_unit_test(test_format_time),
	    cmocka_unit_test(test_json_time),
	    cmocka_unit_test(test_json_string_plain_and_null),
	    cmocka_unit_test(test_json_string_sanitised_and_valid),
	    cmocka_unit_test(test_json_print_object),
	    cmocka_unit_test(test_json_print_any_value),
	    cmocka_unit_test(test_json_print_null_fails),
	    cmocka_unit_test(test_json_print_write_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
