/*
 * test_log.c — log.c: the exact line format, level filtering, the one-line
 * rule for hostile text, the 2000-byte cap, appending, stderr, whole lines
 * when several processes write at once, a reopen while another thread logs,
 * and the copy to a second file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdbool.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	char *path;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_dir_make(f->dir, sizeof(f->dir), "log") < 0)
		return -1;
	f->path = xasprintf("%s/popgate.log", f->dir);
	log_set_role("main");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	log_close();
	free(f->path);
	free(f);
	return rc;
}

/* Not inlined: gcc -O2 would otherwise take the returned buffer for the
 * local that util_read_file was handed (-Wdangling-pointer, a false alarm). */
static __attribute__((noinline)) char *read_log(struct fixture *f)
{
	char *data;
	size_t len;

	assert_int_equal(util_read_file(f->path, &data, &len), 0);
	return data;
}

/* Asserts that LINE (without its newline) matches the extended regex RE. */
static void assert_matches(const char *line, const char *re)
{
	regex_t rx;

	assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	if (regexec(&rx, line, 0, NULL, 0) != 0)
		fail_msg("line \"%s\"\ndoes not match \"%s\"", line, re);
	regfree(&rx);
}

static void test_format(void **state)
{
	struct fixture *f = *state;
	char *data;
	char *re;
	char *line;
	char *save = NULL;
	struct tm tm;
	time_t stamp;

	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	log_set_role("worker");
	log_event(LOG_INFO, "fetch", "a@h", "0f3a9c", "size=%d", 512);
	log_event(LOG_ERROR, "store", NULL, NULL, "disk full");
	log_event(LOG_WARN, "quit", "b@h", NULL, "%s", "");
	log_msg(LOG_WARN, "plain %s", "text");
	log_set_role("ctl");
	log_error("from ctl");
	log_close();

	data = read_log(f);
	re = xasprintf("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
		       "info worker\\[%ld\\] event=fetch account=a@h id=0f3a9c size=512$",
		       (long)getpid());
	line = strtok_r(data, "\n", &save);
	assert_non_null(line);
	assert_matches(line, re);
	free(re);
	/* The timestamp is now, in UTC. */
	memset(&tm, 0, sizeof(tm));
	assert_non_null(strptime(line, "%Y-%m-%dT%H:%M:%S", &tm));
	stamp = timegm(&tm);
	assert_true(stamp <= time(NULL) && stamp >= time(NULL) - 5);

	line = strtok_r(NULL, "\n", &save);
	assert_matches(line, "Z error worker\\[[0-9]+\\] event=store account=- id=- disk full$");
	line = strtok_r(NULL, "\n", &save);
	/* An empty detail leaves no blank at the end. */
	assert_matches(line, "Z warn worker\\[[0-9]+\\] event=quit account=b@h id=-$");
	line = strtok_r(NULL, "\n", &save);
	assert_matches(line, "^[-0-9T:.]+Z warn worker\\[[0-9]+\\] plain text$");
	line = strtok_r(NULL, "\n", &save);
	assert_matches(line, "Z error ctl\\[[0-9]+\\] from ctl$");
	assert_null(strtok_r(NULL, "\n", &save));
	free(data);
}

/* A value with spaces, '=', '%' or control bytes cannot forge a field. */
static void test_field_values_escaped(void **state)
{
	struct fixture *f = *state;
	char out[16];
	char *data;

	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	log_event(LOG_WARN, "login_failed", "bob event=admin_change account=root", "a b\tc",
		  "from %s", "::1");
	log_event(LOG_INFO, "x=y", "100%@h\xc3\xa9", "", NULL);
	log_close();

	data = read_log(f);
	assert_non_null(strstr(data, " event=login_failed "
				     "account=bob%20event%3Dadmin_change%20account%3Droot "
				     "id=a%20b%09c from ::1\n"));
	assert_non_null(strstr(data, " event=x%3Dy account=100%25@h%C3%A9 id=-\n"));
	/* Exactly one event= and one account= per line. */
	assert_null(strstr(strstr(data, "event=") + 1, "event=login"));
	free(data);

	/* log_escape cuts before an escape that does not fit, and ends with NUL. */
	assert_int_equal(log_escape(out, sizeof(out), "plain"), 5);
	assert_string_equal(out, "plain");
	assert_int_equal(log_escape(out, 6, "abcd ef"), 4);
	assert_string_equal(out, "abcd");
	assert_int_equal(log_escape(out, 8, "abcd ef"), 7);
	assert_string_equal(out, "abcd%20");
	assert_int_equal(log_escape(out, 1, "abc"), 0);
	assert_string_equal(out, "");
	assert_int_equal(log_escape(out, 0, "abc"), 0);
}

static void test_levels(void **state)
{
	struct fixture *f = *state;
	static const char *const names[] = {"debug", "info", "warn", "error"};
	enum log_level level;
	char *data;

	for (int i = 0; i < 4; i++) {
		assert_int_equal(log_level_parse(names[i], &level), 0);
		assert_int_equal(level, i);
	}
	assert_int_equal(log_level_parse("warning", &level), -1);
	assert_int_equal(log_level_parse("", &level), -1);

	assert_int_equal(log_open(f->path, LOG_WARN), 0);
	log_debug("d");
	log_info("i");
	log_event(LOG_INFO, "e", NULL, NULL, "i");
	log_warn("w");
	log_error("e");
	log_close();
	data = read_log(f);
	assert_null(strstr(data, " debug "));
	assert_null(strstr(data, " info "));
	assert_non_null(strstr(data, " warn main["));
	assert_non_null(strstr(data, " error main["));

	/* Debug shows everything. */
	assert_int_equal(log_open(f->path, LOG_DEBUG), 0);
	log_debug("now seen");
	log_close();
	free(data);
	data = read_log(f);
	assert_non_null(strstr(data, " debug main["));
	assert_non_null(strstr(data, "] now seen\n"));
	free(data);
}

static void test_one_line_and_cap(void **state)
{
	struct fixture *f = *state;
	char *big = xmalloc(5001);
	char *data;
	char *nl;

	memset(big, 'x', 5000);
	big[5000] = '\0';
	assert_int_equal(log_open(f->path, LOG_DEBUG), 0);
	log_event(LOG_INFO, "bad\ncmd", "a\r\nb", "id\x1b", "USER x\r\nPASS y\x7f");
	log_info("%s", big);
	log_close();
	data = read_log(f);
	nl = strchr(data, '\n');
	assert_non_null(nl);
	*nl = '\0';
	/* Field values are escaped; the free detail has its control bytes
	 * replaced. */
	assert_matches(data, " event=bad%0Acmd account=a%0D%0Ab id=id%1B USER x\\?\\?PASS y\\?$");
	/* Capped at 2000 bytes, the newline included. */
	assert_int_equal(strlen(nl + 1), 2000);
	assert_int_equal(nl[2000], '\n');
	assert_int_equal(nl[1999], 'x');
	free(data);
	free(big);
}

static void test_append_and_reopen(void **state)
{
	struct fixture *f = *state;
	char *missing = xasprintf("%s/no/such.log", f->dir);
	char *data;

	assert_int_equal(util_write_file_atomic(f->path, "old line\n", 9, 0600), 0);
	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	log_info("new line");
	/* A failed reopen keeps the current file. */
	errno = 0;
	assert_int_equal(log_open(missing, LOG_INFO), -1);
	assert_int_equal(errno, ENOENT);
	log_info("still here");
	log_close();
	data = read_log(f);
	assert_true(strncmp(data, "old line\n", 9) == 0);
	assert_non_null(strstr(data, "] new line\n"));
	assert_non_null(strstr(data, "] still here\n"));
	free(data);
	free(missing);
}

/* logrotate (SIGHUP): the file is renamed, log_open makes a new one under
 * the same name; a symlink put there instead is refused and the lines keep
 * going to the file already open. */
static void test_rotate(void **state)
{
	struct fixture *f = *state;
	char *rotated = xasprintf("%s.1", f->path);
	char *target = xasprintf("%s/target", f->dir);
	char *data;
	size_t len;

	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	log_info("before rotation");
	assert_int_equal(rename(f->path, rotated), 0);
	log_info("late line");
	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	log_info("after rotation");

	assert_int_equal(rename(f->path, target), 0);
	assert_int_equal(symlink(target, f->path), 0);
	errno = 0;
	assert_int_equal(log_open(f->path, LOG_INFO), -1);
	assert_int_equal(errno, ELOOP);
	log_info("still in the new file");
	log_close();

	assert_int_equal(util_read_file(rotated, &data, &len), 0);
	assert_non_null(strstr(data, "] before rotation\n"));
	assert_non_null(strstr(data, "] late line\n"));
	assert_null(strstr(data, "after rotation"));
	free(data);
	assert_int_equal(util_read_file(target, &data, &len), 0);
	assert_null(strstr(data, "before rotation"));
	assert_non_null(strstr(data, "] after rotation\n"));
	assert_non_null(strstr(data, "] still in the new file\n"));
	free(data);
	unlink(f->path);
	unlink(rotated);
	unlink(target);
	free(rotated);
	free(target);
}

struct logging_thread {
	pthread_t thread;
	atomic_bool stop;
	unsigned long lines;
};

static void *logging_thread_run(void *arg)
{
	struct logging_thread *t = arg;

	while (!atomic_load(&t->stop)) {
		log_info("from the writer thread");
		t->lines++;
	}
	return NULL;
}

/* Counts the lines of the file at PATH that hold TEXT. */
static unsigned long count_lines_with(const char *path, const char *text)
{
	char *data;
	size_t len;
	unsigned long count = 0;

	if (util_read_file(path, &data, &len) < 0)
		return 0;
	for (const char *p = data; (p = strstr(p, text)) != NULL; p += strlen(text))
		count++;
	free(data);
	return count;
}

/*
 * SIGHUP reopens the log while the writer thread logs. The descriptor the
 * threads hold keeps its number and is pointed at the new file: a file
 * opened right after a reopen (the store, a spool body) can never receive
 * log lines, and every line lands in one of the logs.
 */
static void test_reopen_while_another_thread_logs(void **state)
{
	enum { ROTATIONS = 300 };
	struct fixture *f = *state;
	struct logging_thread t = {0};
	char *bystander = xasprintf("%s/bystander", f->dir);
	unsigned long landed = 0;
	int fd;

	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	fd = log_get_fd();
	assert_int_equal(pthread_create(&t.thread, NULL, logging_thread_run, &t), 0);
	for (int i = 0; i < ROTATIONS; i++) {
		char *rotated = xasprintf("%s.%d", f->path, i);
		int other;

		assert_int_equal(rename(f->path, rotated), 0);
		assert_int_equal(log_open(f->path, LOG_INFO), 0);
		assert_int_equal(log_get_fd(), fd);
		/* What the daemon opens next takes the lowest free number. */
		other = open(bystander, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		assert_true(other >= 0);
		close(other);
		free(rotated);
	}
	atomic_store(&t.stop, true);
	assert_int_equal(pthread_join(t.thread, NULL), 0);
	log_close();
	assert_int_equal(count_lines_with(bystander, "writer thread"), 0);
	for (int i = 0; i < ROTATIONS; i++) {
		char *rotated = xasprintf("%s.%d", f->path, i);

		landed += count_lines_with(rotated, "from the writer thread");
		unlink(rotated);
		free(rotated);
	}
	landed += count_lines_with(f->path, "from the writer thread");
	assert_true(t.lines > 0);
	assert_int_equal(landed, t.lines);
	unlink(f->path);
	unlink(bystander);
	free(bystander);
}

/* A log path that is a symlink is refused, for the log and its copy alike:
 * root must not append to a file the service user points it at. */
static void test_symlink_refused(void **state)
{
	struct fixture *f = *state;
	char *target = xasprintf("%s/target", f->dir);
	char *data;
	size_t len;

	assert_int_equal(util_write_file_atomic(target, "precious\n", 9, 0600), 0);
	assert_int_equal(symlink(target, f->path), 0);
	errno = 0;
	assert_int_equal(log_open(f->path, LOG_INFO), -1);
	assert_int_equal(errno, ELOOP);
	errno = 0;
	assert_int_equal(log_copy_open(f->path, LOG_INFO), -1);
	assert_int_equal(errno, ELOOP);
	log_info("must not reach the target");
	log_close();
	assert_int_equal(util_read_file(target, &data, &len), 0);
	assert_string_equal(data, "precious\n");
	free(data);
	unlink(f->path);
	unlink(target);
	free(target);
}

static void test_stderr(void **state)
{
	struct fixture *f = *state;
	int saved = dup(STDERR_FILENO);
	int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char *data;

	assert_true(saved >= 0 && fd >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	assert_int_equal(log_open("-", LOG_INFO), 0);
	log_info("to stderr");
	assert_int_equal(log_open(NULL, LOG_INFO), 0);
	log_info("again");
	/* Closing never closes standard error itself. */
	log_close();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	data = read_log(f);
	assert_non_null(strstr(data, "] to stderr\n"));
	assert_non_null(strstr(data, "] again\n"));
	free(data);
}

static void test_processes_do_not_interleave(void **state)
{
	enum { CHILDREN = 4, LINES = 200 };
	struct fixture *f = *state;
	char *data;
	char *save = NULL;
	int count = 0;
	char detail[1801];

	memset(detail, 'y', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	assert_int_equal(log_open(f->path, LOG_INFO), 0);
	for (int c = 0; c < CHILDREN; c++) {
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0) {
			detail[0] = (char)('A' + c);
			for (int i = 0; i < LINES; i++)
				log_event(LOG_INFO, "burst", "a@h", NULL, "%s", detail);
			_exit(0);
		}
	}
	for (int c = 0; c < CHILDREN; c++) {
		int status;

		assert_true(wait(&status) > 0);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	log_close();
	data = read_log(f);
	for (char *line = strtok_r(data, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *at = strstr(line, " event=burst account=a@h id=- ");

		assert_non_null(at);
		at += strlen(" event=burst account=a@h id=- ");
		assert_in_range(at[0], 'A', 'A' + CHILDREN - 1);
		assert_int_equal(strlen(at), sizeof(detail) - 1);
		assert_int_equal(strspn(at + 1, "y"), sizeof(detail) - 2);
		count++;
	}
	assert_int_equal(count, CHILDREN * LINES);
	free(data);
}

/* The copy gets the lines of its own level, the main log those of its; the
 * copy's file must exist already and is never created. */
static void test_copy(void **state)
{
	struct fixture *f = *state;
	char *main_path = xasprintf("%s/main.log", f->dir);
	char *missing = xasprintf("%s/missing.log", f->dir);
	char *data, *copy;
	size_t len;

	assert_int_equal(log_copy_open(missing, LOG_INFO), -1);
	assert_false(test_path_exists(missing));
	test_write_file(f->path, "");
	assert_int_equal(log_open(main_path, LOG_WARN), 0);
	assert_int_equal(log_copy_open(f->path, LOG_INFO), 0);
	log_event(LOG_DEBUG, "quiet", NULL, NULL, "nowhere");
	log_event(LOG_INFO, "change", NULL, "abc", "only in the copy");
	log_event(LOG_ERROR, "oops", NULL, NULL, "in both");
	log_close();
	/* After log_close nothing goes to the copy any more. */
	log_event(LOG_ERROR, "late", NULL, NULL, "to stderr");

	copy = read_log(f);
	assert_non_null(strstr(copy, "event=change account=- id=abc only in the copy\n"));
	assert_non_null(strstr(copy, "event=oops account=- id=- in both\n"));
	assert_null(strstr(copy, "quiet"));
	assert_null(strstr(copy, "late"));
	assert_int_equal(util_read_file(main_path, &data, &len), 0);
	assert_non_null(strstr(data, "event=oops"));
	assert_null(strstr(data, "event=change"));
	assert_null(strstr(data, "quiet"));
	free(copy);
	free(data);
	free(main_path);
	free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_format, setup, teardown),
		cmocka_unit_test_setup_teardown(test_field_values_escaped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_line_and_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_append_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_while_another_thread_logs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stderr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_processes_do_not_interleave, setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
