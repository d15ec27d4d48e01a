/*
 * test_util.c — util.c: allocation helpers, folders, atomic writes (mode,
 * replacement, no leftovers), whole-file reads, random hex, clocks,
 * sanitising every byte value, and ASCII case folding.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_dir_make(f->dir, sizeof(f->dir), "util") < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	free(f);
	return rc;
}

static void test_alloc(void **state)
{
	unsigned char *zero = xcalloc(16, 4);
	char *s;
	char *grown;

	(void)state;
	for (size_t i = 0; i < 64; i++)
		assert_int_equal(zero[i], 0);
	free(zero);

	s = xstrndup("abcdef", 3);
	assert_string_equal(s, "abc");
	free(s);
	s = xstrndup("ab", 10);
	assert_string_equal(s, "ab");
	free(s);
	s = xstrdup("");
	assert_string_equal(s, "");
	xfree(&s);
	assert_null(s);
	xfree(&s);

	s = xasprintf("%s-%d-%05.1f", "x", -42, 2.5);
	assert_string_equal(s, "x--42-002.5");
	grown = xrealloc(s, 4096);
	assert_string_equal(grown, "x--42-002.5");
	free(grown);

	/* Zero sizes still give a pointer that can be freed. */
	s = xmalloc(0);
	assert_non_null(s);
	free(s);
}

static void test_mkdir_p(void **state)
{
	struct fixture *f = *state;
	char *deep = xasprintf("%s/a/b/c/", f->dir);
	char *file = xasprintf("%s/file", f->dir);
	char *under_file = xasprintf("%s/file/x", f->dir);
	struct stat st;

	assert_int_equal(util_mkdir_p(deep, 0750), 0);
	assert_int_equal(stat(deep, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(util_mkdir_p(deep, 0750), 0);

	assert_int_equal(util_write_file_atomic(file, "x", 1, 0600), 0);
	errno = 0;
	assert_int_equal(util_mkdir_p(file, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_int_equal(util_mkdir_p(under_file, 0700), -1);
	assert_int_equal(errno, ENOTDIR);
	errno = 0;
	assert_int_equal(util_mkdir_p("", 0700), -1);
	assert_int_equal(errno, EINVAL);

	assert_int_equal(util_fsync_dir(f->dir), 0);
	assert_int_equal(util_fsync_dir(under_file), -1);
	free(under_file);
	free(file);
	free(deep);
}

static void test_write_atomic(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/out", f->dir);
	char *missing = xasprintf("%s/none/out", f->dir);
	char *sub = xasprintf("%s/sub", f->dir);
	char *data;
	size_t len;
	struct stat st;
	mode_t old_umask;

	/* The mode is exactly what was asked, whatever the umask. */
	old_umask = umask(077);
	assert_int_equal(util_write_file_atomic(path, "first", 5, 0644), 0);
	umask(old_umask);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(data, "first");
	free(data);

	/* Replaced as a whole, with the new mode; no temporary file is left. */
	assert_int_equal(util_write_file_atomic(path, "2nd", 3, 0600), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_string_equal(data, "2nd");
	free(data);
	assert_int_equal(test_count_entries(f->dir), 1);

	assert_int_equal(util_write_file_atomic(path, "", 0, 0600), 0);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, 0);
	free(data);

	errno = 0;
	assert_int_equal(util_write_file_atomic(missing, "x", 1, 0600), -1);
	assert_int_equal(errno, ENOENT);

	/* A folder in the way: rename fails and the temporary file is removed. */
	assert_int_equal(util_mkdir_p(sub, 0700), 0);
	assert_int_equal(util_write_file_atomic(sub, "x", 1, 0600), -1);
	assert_int_equal(test_count_entries(f->dir), 2);
	free(sub);
	free(missing);
	free(path);
}

static void test_read_file(void **state)
{
	struct fixture *f = *state;
	char *path = xasprintf("%s/big", f->dir);
	size_t size = 100000;
	char *big = xmalloc(size);
	char *data;
	size_t len = 1;

	/* Larger than any internal buffer, with NUL bytes inside. */
	for (size_t i = 0; i < size; i++)
		big[i] = (char)(i % 251);
	assert_int_equal(util_write_file_atomic(path, big, size, 0600), 0);
	assert_int_equal(util_read_file(path, &data, &len), 0);
	assert_int_equal(len, size);
	assert_memory_equal(data, big, size);
	assert_int_equal(data[size], '\0');
	free(data);
	free(big);

	errno = 0;
	assert_int_equal(util_read_file("/nonexistent/popgate", &data, &len), -1);
	assert_int_equal(errno, ENOENT);
	free(path);
}

static void test_random_hex(void **state)
{
	char a[2 * 100 + 1];
	char b[2 * 100 + 1];
	char tiny[3] = "xx";

	(void)state;
	memset(a, 'Z', sizeof(a));
	util_random_hex(a, 100);
	assert_int_equal(strlen(a), 200);
	assert_int_equal(strspn(a, "0123456789abcdef"), 200);
	util_random_hex(b, 100);
	assert_string_not_equal(a, b);
	util_random_hex(tiny, 0);
	assert_string_equal(tiny, "");
	util_random_hex(tiny, 1);
	assert_int_equal(strlen(tiny), 2);
}

static void test_clocks(void **state)
{
	/* time() reads the coarse clock, which may lag a tick behind the one
	 * util_now reads: around a second's turn they differ by one. */
	int64_t before = (int64_t)time(NULL);
	int64_t now = util_now();
	int64_t after = (int64_t)time(NULL);
	int64_t t1 = util_monotonic_ms();
	int64_t t2;
	struct timespec pause = {0, 20 * 1000 * 1000};

	(void)state;
	assert_true(now >= before && now <= after + 1);
	nanosleep(&pause, NULL);
	t2 = util_monotonic_ms();
	assert_true(t2 - t1 >= 20 && t2 - t1 < 2000);
}

static void test_sanitize(void **state)
{
	char in[256];
	char out[257];
	char small[5];
	char guard[2] = "G";

	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	util_sanitize(out, sizeof(out), in, sizeof(in));
	for (int i = 0; i < 256; i++) {
		char want = (i < 0x20 || i >= 0x7f) ? '?' : (char)i;

		if (out[i] != want)
			fail_msg("byte 0x%02x became 0x%02x", i, (unsigned char)out[i]);
	}
	assert_int_equal(out[256], '\0');

	util_sanitize(small, sizeof(small), "USER bob\r\n", 10);
	assert_string_equal(small, "USER");
	util_sanitize(small, sizeof(small), "a\nb", 3);
	assert_string_equal(small, "a?b");
	util_sanitize(small, 1, "abc", 3);
	assert_string_equal(small, "");
	util_sanitize(guard, 0, "abc", 3);
	assert_string_equal(guard, "G");
	/* LEN, not a NUL, ends the input. */
	util_sanitize(small, sizeof(small), "ab\0cd", 5);
	assert_memory_equal(small, "ab?c", 5);
}

static void test_strcaseeq(void **state)
{
	(void)state;
	assert_true(util_strcaseeq("Pop.GMX.net", "pop.gmx.NET"));
	assert_true(util_strcaseeq("", ""));
	assert_false(util_strcaseeq("abc", "abcd"));
	assert_false(util_strcaseeq("abcd", "abc"));
	assert_false(util_strcaseeq("abc", "abd"));
	/* '@' and '`' sit beside the letters but are not letters. */
	assert_false(util_strcaseeq("@", "`"));
	assert_false(util_strcaseeq("[", "{"));
	/* Only ASCII folds: UTF-8 É and é differ. */
	assert_false(util_strcaseeq("\xc3\x89", "\xc3\xa9"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
		cmocka_unit_test(test_random_hex),
		cmocka_unit_test(test_clocks),
		cmocka_unit_test(test_sanitize),
		cmocka_unit_test(test_strcaseeq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
