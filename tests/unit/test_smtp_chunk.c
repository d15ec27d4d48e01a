/*
 * test_smtp_chunk.c — unit tests for src/smtp/chunk.c: BDAT's octets with
 * their line ends made CR LF — a body split at every byte (and at every
 * pair of bytes) comes out as when it came whole, and as a plain reference
 * normaliser makes it; a CR at the end of one chunk and its LF at the start
 * of the next are one line end; a last line without a line end gets one;
 * the header's Received fields counted across chunks, in the header only;
 * and into a spool body: the size limit, the line length, a loop, a chunk
 * larger than the slices it is normalised in.
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

#include "smtp/chunk.h"
#include "smtp/data.h"
#include "store/spool.h"
#include "test_support.h"

/* Line ends of every kind, a Received field, dots, the header's end. */
static const char SAMPLE[] = "Received: from a\r\nreceived: from b\nX: lone\rCR\r\r\n\r\n"
			     "..dot\n.\r\nbody\r\rend";

struct fixture {
	char dir[TEST_DIR_SIZE];
	struct smtp_data data;
	struct smtp_chunk chunk;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (f == NULL || test_dir_make(f->dir, sizeof(f->dir), "smtp-chunk") < 0 ||
	    spool_init(f->dir) < 0)
		return -1;
	smtp_chunk_init(&f->chunk);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	smtp_chunk_clear(&f->chunk);
	smtp_data_clear(&f->data);
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

/* What the body must become, written the plain way: CR LF, a lone CR and a
 * bare LF each one CR LF; a last line without its end gets one. */
static size_t reference(const char *in, size_t len, char *out)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r' || in[i] == '\n') {
			if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
				i++;
			out[used++] = '\r';
			out[used++] = '\n';
		} else {
			out[used++] = in[i];
		}
	}
	if (used > 0 && out[used - 1] != '\n') {
		out[used++] = '\r';
		out[used++] = '\n';
	}
	return used;
}

/* Normalises IN in the pieces that CUTS (ascending, COUNT of them) make,
 * with one state; OUT gets the whole result. */
static size_t normalise_pieces(struct smtp_chunk *chunk, const char *in, size_t len,
			       const size_t *cuts, size_t count, char *out)
{
	size_t used = 0, from = 0;

	smtp_chunk_init(chunk);
	for (size_t i = 0; i <= count; i++) {
		size_t to = i < count ? cuts[i] : len;
		used += smtp_chunk_normalise(chunk, in + from, to - from, out + used);
		from = to;
	}
	used += smtp_chunk_finish(chunk, out + used);
	return used;
}

static void test_split_anywhere_is_as_whole(void **state)
{
	const size_t len = sizeof(SAMPLE) - 1;
	char *want = malloc(SMTP_CHUNK_OUT_SIZE(len) + SMTP_CHUNK_FINISH_SIZE);
	char *got = malloc(SMTP_CHUNK_OUT_SIZE(len) + SMTP_CHUNK_FINISH_SIZE);
	struct smtp_chunk whole, split;
	size_t want_len;

	(void)state;
	want_len = reference(SAMPLE, len, want);
	assert_int_equal(normalise_pieces(&whole, SAMPLE, len, NULL, 0, got), want_len);
	assert_memory_equal(got, want, want_len);
	assert_int_equal(whole.received_count, 2);
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			const size_t cuts[2] = {i, j};
			size_t n = normalise_pieces(&split, SAMPLE, len, cuts, 2, got);
			assert_int_equal(n, want_len);
			assert_memory_equal(got, want, want_len);
			assert_int_equal(split.received_count, whole.received_count);
			assert_int_equal(split.longest_line, whole.longest_line);
			assert_true(split.past_header);
		}
	}
	free(want);
	free(got);
}

static void test_cr_at_a_chunk_end_meets_its_lf(void **state)
{
	struct smtp_chunk chunk;
	char out[32];
	size_t n;

	(void)state;
	smtp_chunk_init(&chunk);
	n = smtp_chunk_normalise(&chunk, "a\r", 2, out);
	n += smtp_chunk_normalise(&chunk, "\nb", 2, out + n);
	n += smtp_chunk_finish(&chunk, out + n);
	assert_int_equal(n, 6);
	assert_memory_equal(out, "a\r\nb\r\n", 6);
	/* A body ending in a CR gets its LF, and nothing more. */
	smtp_chunk_init(&chunk);
	n = smtp_chunk_normalise(&chunk, "c\r", 2, out);
	n += smtp_chunk_finish(&chunk, out + n);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "c\r\n", 3);
	/* An empty body stays empty. */
	smtp_chunk_init(&chunk);
	assert_int_equal(smtp_chunk_finish(&chunk, out), 0);
}

static void test_received_fields_across_chunks_in_the_header_only(void **state)
{
	struct smtp_chunk chunk;
	char out[128];

	(void)state;
	smtp_chunk_init(&chunk);
	smtp_chunk_normalise(&chunk, "Rece", 4, out);
	smtp_chunk_normalise(&chunk, "ived: x\r\nReceived", 17, out);
	smtp_chunk_normalise(&chunk, ":\r\nReceived; no\r\n\r\nReceived: body\r\n", 36, out);
	assert_int_equal(chunk.received_count, 2);
	assert_true(chunk.past_header);
}

/* The body committed to the spool, read back (allocated). */
static char *commit_and_read(struct fixture *f, size_t *len)
{
	struct spool_writer *body = smtp_data_take_body(&f->data);
	char *path, *text = calloc(1, 1 << 20);
	FILE *file;

	assert_int_equal(spool_writer_commit(body), 0);
	path = spool_path(f->dir, body->id);
	file = fopen(path, "rb");
	assert_non_null(file);
	*len = fread(text, 1, (1 << 20) - 1, file);
	fclose(file);
	free(path);
	spool_writer_free(&body);
	return text;
}

static void test_store_a_chunk_larger_than_a_slice(void **state)
{
	struct fixture *f = *state;
	const size_t len = 100 * 1000;
	char *in = malloc(len), *text;
	size_t stored;

	/* Lines of 100 bytes with bare LFs; the 16384th byte a CR whose LF is
	 * the next, across the slices chunk.c normalises in. */
	for (size_t i = 0; i < len; i++)
		in[i] = i % 100 == 99 ? '\n' : 'x';
	in[16383] = '\r';
	in[16384] = '\n';
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1 << 20), 0);
	smtp_chunk_store(&f->chunk, &f->data, in, 50 * 1000, 1000);
	smtp_chunk_store(&f->chunk, &f->data, in + 50 * 1000, len - 50 * 1000, 1000);
	smtp_chunk_end(&f->chunk, &f->data, 1000);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
	text = commit_and_read(f, &stored);
	char *want = malloc(SMTP_CHUNK_OUT_SIZE(len) + SMTP_CHUNK_FINISH_SIZE);
	size_t want_len = reference(in, len, want);
	assert_int_equal(stored, want_len);
	assert_memory_equal(text, want, want_len);
	free(want);
	free(text);
	free(in);
}

static void test_store_limits(void **state)
{
	struct fixture *f = *state;
	char line[64];

	/* Size: counted as stored (a bare LF is two bytes). */
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 10), 0);
	smtp_chunk_store(&f->chunk, &f->data, "12345678\n", 9, 1000);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
	smtp_chunk_store(&f->chunk, &f->data, "x", 1, 1000);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_TOO_BIG);
	assert_int_equal(f->data.size, 10);

	/* A chunk announced over the limit: refused before a byte of it is
	 * written. */
	smtp_data_clear(&f->data);
	smtp_chunk_clear(&f->chunk);
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 10), 0);
	smtp_chunk_expect(&f->data, 10);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
	smtp_chunk_store(&f->chunk, &f->data, "12345", 5, 1000);
	smtp_chunk_expect(&f->data, 6);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_TOO_BIG);
	smtp_chunk_store(&f->chunk, &f->data, "67890\n", 6, 1000);
	assert_int_equal(f->data.size, 5);

	/* A line over the limit with its CR LF, even before it ends. */
	smtp_data_clear(&f->data);
	smtp_chunk_clear(&f->chunk);
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1000), 0);
	smtp_chunk_store(&f->chunk, &f->data, "12345678\r\n", 10, 10);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_OK);
	smtp_chunk_store(&f->chunk, &f->data, "123456789", 9, 10);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_LINE_TOO_LONG);

	/* A loop: too many Received fields in the header. */
	smtp_data_clear(&f->data);
	smtp_chunk_clear(&f->chunk);
	assert_int_equal(smtp_data_begin(&f->data, f->dir, 1 << 20), 0);
	for (int i = 0; i < SMTP_DATA_MAX_RECEIVED; i++) {
		snprintf(line, sizeof(line), "Received: from hop%d\r\n", i);
		smtp_chunk_store(&f->chunk, &f->data, line, strlen(line), 1000);
	}
	smtp_chunk_end(&f->chunk, &f->data, 1000);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_LOOP);
}

static void test_no_spool_file_is_a_write_failure(void **state)
{
	struct fixture *f = *state;

	/* smtp_data_begin failed: the body is refused at its end, nothing is
	 * written anywhere. */
	memset(&f->data, 0, sizeof(f->data));
	smtp_chunk_expect(&f->data, 5);
	smtp_chunk_store(&f->chunk, &f->data, "abc\r\n", 5, 1000);
	smtp_chunk_end(&f->chunk, &f->data, 1000);
	assert_int_equal(smtp_data_outcome(&f->data), SMTP_DATA_WRITE_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_split_anywhere_is_as_whole),
	    cmocka_unit_test(test_cr_at_a_chunk_end_meets_its_lf),
	    cmocka_unit_test(test_received_fields_across_chunks_in_the_header_only),
	    cmocka_unit_test_setup_teardown(test_store_a_chunk_larger_than_a_slice, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_store_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_spool_file_is_a_write_failure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
