/*
 * test_spool.c — message bodies on disk: ids, the writer's commit and
 * abandon paths, the pool of temp files made ahead, removal and the start-up
 * orphan sweep, each test in its own temp data folder.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "store/spool.h"

#include "test_support.h"

static int setup(void **state)
{
	char *dir = xmalloc(TEST_DIR_SIZE);

	assert_int_equal(test_dir_make(dir, TEST_DIR_SIZE, "spool"), 0);
	assert_int_equal(spool_init(dir), 0);
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char *dir = *state;

	test_dir_remove(dir);
	free(dir);
	return 0;
}

/* Commits a body with TEXT and copies its id into ID. */
static void commit_body(const char *dir, const char *text, char id[SPOOL_ID_LEN + 1])
{
	struct spool_writer *writer = spool_writer_new(dir);

	assert_non_null(writer);
	spool_writer_write(writer, text, strlen(text));
	assert_int_equal(spool_writer_commit(writer), 0);
	memcpy(id, writer->id, SPOOL_ID_LEN + 1);
	spool_writer_free(&writer);
}

static void test_id_valid(void **state)
{
	char id[SPOOL_ID_LEN + 1];
	char other[SPOOL_ID_LEN + 1];

	(void)state;
	assert_true(spool_id_valid("0123456789abcdef01234567"));
	assert_false(spool_id_valid("../x"));
	assert_false(spool_id_valid("../../../../../etc/passwd"));
	assert_false(spool_id_valid("0123456789ABCDEF01234567"));
	assert_false(spool_id_valid("0123456789abcdef0123456"));
	assert_false(spool_id_valid("0123456789abcdef012345678"));
	assert_false(spool_id_valid("0123456789abcdeg01234567"));
	assert_false(spool_id_valid("0123456789abcdef0123456/"));
	assert_false(spool_id_valid(""));
	assert_false(spool_id_valid(NULL));

	spool_new_id(id);
	spool_new_id(other);
	assert_true(spool_id_valid(id));
	assert_true(spool_id_valid(other));
	assert_string_not_equal(id, other);
}

/*
 * Ids made together share their bucket (so a group commit syncs one folder,
 * not one per body), and the bucket is the clock's second modulo 256. Random
 * buckets fail this: 50 ids in one bucket by chance is 1 in 256^49.
 */
static void test_ids_made_together_share_a_bucket(void **state)
{
	char id[SPOOL_ID_LEN + 1];
	char first[3];

	(void)state;
	/* Bounded: a second boundary between the two clock reads only retries. */
	for (int attempt = 0; attempt < 5; attempt++) {
		int64_t before = util_now();
		bool same = true;

		spool_new_id(id);
		memcpy(first, id, 2);
		first[2] = '\0';
		for (int i = 0; i < 49; i++) {
			spool_new_id(id);
			same = same && memcmp(id, first, 2) == 0;
		}
		if (util_now() != before)
			continue;
		char expected[3];
		snprintf(expected, sizeof(expected), "%02x", (unsigned)(before % 256));
		assert_string_equal(first, expected);
		assert_true(same);
		return;
	}
	fail_msg("the clock moved during every attempt");
}

static void test_path(void **state)
{
	char *path = spool_path("/data", "ab23456789abcdef01234567");

	(void)state;
	assert_string_equal(path, "/data/spool/ab/ab23456789abcdef01234567");
	free(path);
}

static void test_writer_commit_exact_bytes(void **state)
{
	const char *dir = *state;
	/* CRLF, a NUL and high bytes: the body is bytes, not text. */
	static const unsigned char body[] = "Subject: hi\r\n\r\nline\0with nul \xff\xfe\r\n.\r\n";
	struct spool_writer *writer = spool_writer_new(dir);
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	char *path;
	char *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_non_null(writer);
	assert_true(spool_id_valid(writer->id));
	/* Fed one byte at a time, then an empty write. */
	for (size_t i = 0; i < sizeof(body) - 1; i++)
		spool_writer_write(writer, &body[i], 1);
	spool_writer_write(writer, body, 0);
	assert_int_equal(writer->size, sizeof(body) - 1);
	assert_int_equal(test_count_entries(tmp_dir), 1);
	assert_int_equal(spool_writer_commit(writer), 0);

	path = spool_path(dir, writer->id);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, sizeof(body) - 1);
	assert_memory_equal(data, body, len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(test_count_entries(tmp_dir), 0);

	/* A second commit is refused and does not disturb the body. */
	assert_int_equal(spool_writer_commit(writer), -1);
	spool_writer_free(&writer);
	assert_null(writer);
	assert_true(test_path_exists(path));

	free(data);
	free(path);
	free(tmp_dir);
}

static void test_writer_large_body(void **state)
{
	const char *dir = *state;
	size_t chunk_len = 65536;
	unsigned char *chunk = xmalloc(chunk_len);
	struct spool_writer *writer = spool_writer_new(dir);
	char *path;
	char *data = NULL;
	size_t len = 0;

	for (size_t i = 0; i < chunk_len; i++)
		chunk[i] = (unsigned char)(i * 7);
	for (int i = 0; i < 16; i++)
		spool_writer_write(writer, chunk, chunk_len);
	assert_int_equal(spool_writer_commit(writer), 0);
	path = spool_path(dir, writer->id);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, 16 * chunk_len);
	for (int i = 0; i < 16; i++)
		assert_memory_equal(data + (size_t)i * chunk_len, chunk, chunk_len);
	spool_writer_free(&writer);
	free(data);
	free(path);
	free(chunk);
}

static void test_writer_free_without_commit(void **state)
{
	const char *dir = *state;
	struct spool_writer *writer = spool_writer_new(dir);
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	char *path;

	assert_non_null(writer);
	spool_writer_write(writer, "abc", 3);
	path = spool_path(dir, writer->id);
	spool_writer_free(&writer);
	assert_null(writer);
	spool_writer_free(&writer); /* NULL is fine */
	assert_false(test_path_exists(path));
	assert_int_equal(test_count_entries(tmp_dir), 0);
	free(path);
	free(tmp_dir);
}

static void test_writer_failed_commit(void **state)
{
	const char *dir = *state;
	struct spool_writer *writer = spool_writer_new(dir);
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	char *path;

	assert_non_null(writer);
	spool_writer_write(writer, "abc", 3);
	/* What a failed fwrite leaves behind: the commit must refuse the body. */
	writer->failed = true;
	spool_writer_write(writer, "def", 3);
	assert_int_equal(writer->size, 3);
	path = spool_path(dir, writer->id);
	errno = 0;
	assert_int_equal(spool_writer_commit(writer), -1);
	assert_int_equal(errno, EIO);
	assert_false(test_path_exists(path));
	assert_int_equal(test_count_entries(tmp_dir), 0);
	spool_writer_free(&writer);
	free(path);
	free(tmp_dir);
}

static void test_writer_without_spool(void **state)
{
	const char *dir = *state;
	char *missing = xasprintf("%s/not-initialised", dir);

	assert_null(spool_writer_new(missing));
	free(missing);
}

static void test_remove(void **state)
{
	const char *dir = *state;
	char id[SPOOL_ID_LEN + 1];
	char *path;

	commit_body(dir, "body", id);
	path = spool_path(dir, id);
	assert_true(test_path_exists(path));
	assert_int_equal(spool_remove(dir, id), 0);
	assert_false(test_path_exists(path));
	/* Already gone is what the caller wanted. */
	assert_int_equal(spool_remove(dir, id), 0);
	errno = 0;
	assert_int_equal(spool_remove(dir, "../../popgate.db"), -1);
	assert_int_equal(errno, EINVAL);
	free(path);
}

struct known_set {
	const char *ids[4];
	int calls;
};

static bool is_known(const char *id, void *ctx)
{
	struct known_set *known = ctx;

	known->calls++;
	for (size_t i = 0; i < 4 && known->ids[i] != NULL; i++) {
		if (strcmp(known->ids[i], id) == 0)
			return true;
	}
	return false;
}

static void test_remove_orphans(void **state)
{
	const char *dir = *state;
	char kept[SPOOL_ID_LEN + 1];
	char orphan[SPOOL_ID_LEN + 1];
	char other_kept[SPOOL_ID_LEN + 1];
	struct known_set known = {{kept, other_kept, NULL}, 0};
	struct spool_writer *pending;
	char *kept_path;
	char *orphan_path;
	char *other_path;
	char *bad_name;
	char *other_bucket;
	char *wrong_bucket;
	char *readme;
	char *subfolder;
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);

	commit_body(dir, "kept", kept);
	commit_body(dir, "orphan", orphan);
	commit_body(dir, "other", other_kept);
	kept_path = spool_path(dir, kept);
	orphan_path = spool_path(dir, orphan);
	other_path = spool_path(dir, other_kept);
	/* A temp file of a body whose commit never came. */
	pending = spool_writer_new(dir);
	assert_non_null(pending);
	spool_writer_write(pending, "half", 4);
	assert_int_equal(fflush(pending->file), 0);
	/* A name that is no id, and a known id in the wrong bucket. */
	bad_name = xasprintf("%s/spool/%.2s/not-an-id", dir, kept);
	test_write_file(bad_name, "x");
	other_bucket = xasprintf("%s/spool/%s", dir, kept[0] == '0' ? "11" : "00");
	assert_int_equal(util_mkdir_p(other_bucket, 0700), 0);
	wrong_bucket = xasprintf("%s/%s", other_bucket, kept);
	test_write_file(wrong_bucket, "x");
	/* Outside the buckets nothing is touched; neither are folders in a bucket. */
	readme = xasprintf("%s/spool/README", dir);
	test_write_file(readme, "x");
	subfolder = xasprintf("%s/spool/%.2s/sub", dir, kept);
	assert_int_equal(mkdir(subfolder, 0700), 0);

	assert_int_equal(spool_remove_orphans(dir, is_known, &known), 4);
	assert_true(known.calls >= 3);
	assert_true(test_path_exists(kept_path));
	assert_true(test_path_exists(other_path));
	assert_false(test_path_exists(orphan_path));
	assert_false(test_path_exists(bad_name));
	assert_false(test_path_exists(wrong_bucket));
	assert_int_equal(test_count_entries(tmp_dir), 0);
	assert_true(test_path_exists(readme));
	assert_true(test_path_exists(subfolder));

	/* A second sweep finds nothing more. */
	assert_int_equal(spool_remove_orphans(dir, is_known, &known), 0);

	spool_writer_free(&pending);
	free(subfolder);
	free(readme);
	free(wrong_bucket);
	free(other_bucket);
	free(bad_name);
	free(other_path);
	free(orphan_path);
	free(kept_path);
	free(tmp_dir);
}

static void test_remove_orphans_empty(void **state)
{
	const char *dir = *state;
	struct known_set known = {{NULL}, 0};
	char *missing = xasprintf("%s/elsewhere", dir);

	assert_int_equal(spool_remove_orphans(dir, is_known, &known), 0);
	assert_int_equal(known.calls, 0);
	/* No spool at all: nothing to remove. */
	assert_int_equal(spool_remove_orphans(missing, is_known, &known), 0);
	free(missing);
}

/* Normalises IN split into two chunks at SPLIT; the result must be EXPECTED. */
static void check_crlf_split(const char *in, const char *expected, size_t split)
{
	size_t len = strlen(in);
	char *out = xmalloc(2 * len + 2);
	struct spool_crlf state = {0};
	size_t used;

	used = spool_crlf_normalise(&state, in, split, out);
	used += spool_crlf_normalise(&state, in + split, len - split, out + used);
	used += spool_crlf_finish(&state, out + used);
	assert_int_equal(used, strlen(expected));
	assert_memory_equal(out, expected, used);
	free(out);
}

/* Bare LF and lone CR become CRLF, CRLF stays, wherever the chunks split. */
static void test_crlf_normalise(void **state)
{
	static const struct {
		const char *in, *expected;
	} cases[] = {
	    {"", ""},
	    {"a\r\nb\r\n", "a\r\nb\r\n"},
	    {"a\nb\n", "a\r\nb\r\n"},
	    {"a\rb\r", "a\r\nb\r\n"},
	    {"\n\n", "\r\n\r\n"},
	    {"\r\r\n", "\r\n\r\n"},
	    {"x\n\r\r\n\ny", "x\r\n\r\n\r\n\r\ny"},
	    {".\n..\r\n", ".\r\n..\r\n"},
	};
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (size_t split = 0; split <= strlen(cases[i].in); split++)
			check_crlf_split(cases[i].in, cases[i].expected, split);
}

/* The normalising byte by byte, as spool_crlf_normalise did before it
 * copied runs: the reference its output must equal. */
static size_t crlf_reference(bool *after_cr, const char *in, size_t len, char *out)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (*after_cr && c != '\n')
			out[used++] = '\n';
		if (c == '\n' && !*after_cr)
			out[used++] = '\r';
		out[used++] = c;
		*after_cr = c == '\r';
	}
	return used;
}

static void test_crlf_normalise_equals_bytewise(void **state)
{
	/* Line ends, dots, NULs and high bytes, in runs of every length. */
	static const char alphabet[] = {'a', 'b', '.', '\r', '\n', '\0', (char)0xff, ' '};
	char *in = xmalloc(600);
	char *out = xmalloc(2 * 600 + 2);
	char *expected = xmalloc(2 * 600 + 2);
	uint32_t seed = 12345;

	(void)state;
	for (int round = 0; round < 5000; round++) {
		size_t len;
		size_t split;
		size_t used;
		size_t want;
		bool ref_cr = false;
		struct spool_crlf crlf = {0};

		seed = seed * 1103515245u + 12345u;
		len = (seed >> 8) % 600;
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			/* Mostly letters, so that long plain runs occur too. */
			unsigned pick = (seed >> 16) % 32;
			in[i] = pick < sizeof(alphabet) ? alphabet[pick] : 'x';
		}
		seed = seed * 1103515245u + 12345u;
		split = len > 0 ? (seed >> 8) % (len + 1) : 0;
		used = spool_crlf_normalise(&crlf, in, split, out);
		used += spool_crlf_normalise(&crlf, in + split, len - split, out + used);
		used += spool_crlf_finish(&crlf, out + used);
		want = crlf_reference(&ref_cr, in, len, expected);
		if (ref_cr)
			expected[want++] = '\n';
		assert_int_equal(used, want);
		assert_memory_equal(out, expected, want);
	}
	free(expected);
	free(out);
	free(in);
}

/* Waits until the pool holds COUNT ready files; false after 10 s. */
static bool pool_wait_ready(unsigned count)
{
	struct timespec now, deadline;
	const struct timespec pause = {.tv_nsec = 1000000};

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 10;
	for (;;) {
		if (spool_pool_ready() == count)
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > deadline.tv_sec ||
		    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
			return false;
		nanosleep(&pause, NULL);
	}
}

static void test_pool_body_is_made_ahead(void **state)
{
	const char *dir = *state;
	static const char body[] = "Subject: pooled\r\n\r\nmade ahead\r\n";
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	struct spool_writer *writer;
	char *path;
	char *data = NULL;
	size_t len = 0;
	struct stat st;

	assert_int_equal(spool_pool_start(dir, 4), 0);
	assert_true(pool_wait_ready(4));
	/* Anonymous files: ready, yet nothing to see in spool/tmp. */
	assert_int_equal(test_count_entries(tmp_dir), 0);

	writer = spool_writer_new(dir);
	assert_non_null(writer);
	assert_true(writer->anonymous);
	assert_null(writer->tmp_path);
	assert_true(spool_id_valid(writer->id));
	spool_writer_write(writer, body, sizeof(body) - 1);
	path = spool_path(dir, writer->id);
	/* The body has no name until it is placed. */
	assert_int_equal(test_count_entries(tmp_dir), 0);
	assert_false(test_path_exists(path));
	assert_int_equal(spool_writer_commit(writer), 0);
	assert_true(writer->placed);
	assert_false(writer->anonymous);

	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, sizeof(body) - 1);
	assert_memory_equal(data, body, len);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_nlink, 1);
	assert_int_equal(spool_writer_commit(writer), -1); /* once only */
	spool_writer_free(&writer);
	assert_true(test_path_exists(path));
	/* The file taken is made again. */
	assert_true(pool_wait_ready(4));

	spool_pool_stop();
	assert_int_equal(spool_pool_ready(), 0);
	assert_int_equal(test_count_entries(tmp_dir), 0);
	assert_true(test_path_exists(path));
	free(data);
	free(path);
	free(tmp_dir);
}

static void test_pool_abandoned_bodies_leave_nothing(void **state)
{
	const char *dir = *state;
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	struct spool_writer *writer;
	char *path;
	char *bucket;

	assert_int_equal(spool_pool_start(dir, 2), 0);
	assert_true(pool_wait_ready(2));

	/* Freed while it arrives (a session cut during DATA). */
	writer = spool_writer_new(dir);
	assert_true(writer->anonymous);
	spool_writer_write(writer, "half", 4);
	path = spool_path(dir, writer->id);
	spool_writer_free(&writer);
	assert_false(test_path_exists(path));
	free(path);

	/* A write error: the commit refuses it and nothing gets a name. */
	assert_true(pool_wait_ready(2));
	writer = spool_writer_new(dir);
	assert_true(writer->anonymous);
	spool_writer_write(writer, "abc", 3);
	writer->failed = true;
	path = spool_path(dir, writer->id);
	errno = 0;
	assert_int_equal(spool_writer_commit(writer), -1);
	assert_int_equal(errno, EIO);
	assert_false(test_path_exists(path));
	spool_writer_free(&writer);
	free(path);

	/* Placed, then its row not committed (store/writer.c): discarded. */
	assert_true(pool_wait_ready(2));
	writer = spool_writer_new(dir);
	assert_true(writer->anonymous);
	spool_writer_write(writer, "abc", 3);
	path = spool_path(dir, writer->id);
	assert_int_equal(spool_writer_place(writer), 0);
	assert_true(test_path_exists(path));
	spool_writer_discard(writer);
	assert_false(test_path_exists(path));
	spool_writer_free(&writer);

	spool_pool_stop();
	assert_int_equal(test_count_entries(tmp_dir), 0);
	/* Only the bucket the placed body made remains, empty. */
	bucket = xstrndup(path, strlen(path) - SPOOL_ID_LEN - 1);
	assert_int_equal(test_count_entries(bucket), 0);
	free(bucket);
	free(path);
	free(tmp_dir);
}

static void test_pool_serves_only_its_folder(void **state)
{
	const char *dir = *state;
	char *other = xasprintf("%s/other", dir);
	char *other_tmp = xasprintf("%s/spool/tmp", other);
	struct spool_writer *writer;

	assert_int_equal(spool_init(other), 0);
	assert_int_equal(spool_pool_start(dir, 2), 0);
	assert_true(pool_wait_ready(2));
	/* Another data folder: a named temp file of its own, the pool untouched. */
	writer = spool_writer_new(other);
	assert_non_null(writer);
	assert_false(writer->anonymous);
	assert_non_null(writer->tmp_path);
	assert_int_equal(test_count_entries(other_tmp), 1);
	assert_int_equal(spool_pool_ready(), 2);
	assert_int_equal(spool_writer_commit(writer), 0);
	assert_int_equal(test_count_entries(other_tmp), 0);
	spool_writer_free(&writer);
	spool_pool_stop();
	free(other_tmp);
	free(other);
}

static void test_pool_start_and_stop(void **state)
{
	const char *dir = *state;
	char *tmp_dir = xasprintf("%s/spool/tmp", dir);
	struct spool_writer *writer;

	spool_pool_stop(); /* never started: harmless */
	assert_int_equal(spool_pool_ready(), 0);
	errno = 0;
	assert_int_equal(spool_pool_start(dir, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_pool_start(dir, 3), 0);
	errno = 0;
	assert_int_equal(spool_pool_start(dir, 3), -1); /* one per process */
	assert_int_equal(errno, EINVAL);
	assert_true(pool_wait_ready(3));
	spool_pool_stop();
	spool_pool_stop();
	assert_int_equal(spool_pool_ready(), 0);
	assert_int_equal(test_count_entries(tmp_dir), 0);

	/* Without the pool a body gets a named temp file, as before. */
	writer = spool_writer_new(dir);
	assert_non_null(writer);
	assert_false(writer->anonymous);
	assert_int_equal(test_count_entries(tmp_dir), 1);
	spool_writer_free(&writer);
	assert_int_equal(test_count_entries(tmp_dir), 0);
	free(tmp_dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_id_valid),
	    cmocka_unit_test(test_ids_made_together_share_a_bucket),
	    cmocka_unit_test(test_path),
	    cmocka_unit_test(test_crlf_normalise),
	    cmocka_unit_test(test_crlf_normalise_equals_bytewise),
	    cmocka_unit_test_setup_teardown(test_writer_commit_exact_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_large_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_free_without_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_failed_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writer_without_spool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_orphans, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_orphans_empty, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_body_is_made_ahead, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_abandoned_bodies_leave_nothing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pool_serves_only_its_folder, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_start_and_stop, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
