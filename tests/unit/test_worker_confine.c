/*
 * test_worker_confine.c — the worker's confinement (pipeline/confine.c),
 * proved from inside: a child process applies confine_apply, the very
 * function a worker calls right after exec, and then tries what a
 * compromised parser would try against a real data folder (a credential key
 * file, the store made by store_open, the spool folder) and the network.
 *
 * Each attempt runs in a child of its own, since some end it. The outcomes
 * asserted are the ones confine.h promises: opening or stat'ing by name
 * fails with EACCES; socket, connect, execve, executable memory and kill
 * end the process with SIGSYS; a descriptor handed over a socket
 * (SCM_RIGHTS), as the pipeline hands each body, is still read.
 *
 * The tests run as root here, so without the confinement every open would
 * succeed.
 *
 * Owns: a temp data folder per test and the children it forks (each reaped
 * before the test ends).
 * Must never: wait without a bound — a child that outlives its deadline is
 * killed and the test fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "pipeline/confine.h"
#include "store/db.h"
#include "store/spool.h"

#include "test_support.h"

/* How long a child may take before it is killed and the test fails. */
#define TEST_CHILD_DEADLINE_MS 10000
#define TEST_BODY "From: mallory@example.com\r\nSubject: hi\r\n\r\nBody.\r\n"
/* A child's exit status when the attempt it made succeeded. */
#define TEST_SUCCEEDED 100
/* ... and when confine_apply itself failed. */
#define TEST_UNCONFINED 101

struct test_ctx {
	char dir[TEST_DIR_SIZE];
	char key_path[TEST_DIR_SIZE + 32];
	char db_path[TEST_DIR_SIZE + 32];
	char spool_path[TEST_DIR_SIZE + 32];
};

/* What a child tries once confined; returns its exit status: errno when the
 * attempt failed, TEST_SUCCEEDED when it worked. */
typedef int test_attempt_fn(const struct test_ctx *ctx, int arg);

static int test_setup(void **state)
{
	struct test_ctx *ctx = xcalloc(1, sizeof(*ctx));
	char err[256];
	struct store *store;

	if (test_dir_make(ctx->dir, sizeof(ctx->dir), "confine") < 0)
		goto fail;
	snprintf(ctx->key_path, sizeof(ctx->key_path), "%s/secret.key", ctx->dir);
	snprintf(ctx->db_path, sizeof(ctx->db_path), "%s/popgate.db", ctx->dir);
	snprintf(ctx->spool_path, sizeof(ctx->spool_path), "%s/spool", ctx->dir);
	/* A data folder as the daemon leaves it: a key, a store, a spool. */
	test_write_file(ctx->key_path, "0123456789abcdef0123456789abcdef");
	if (chmod(ctx->key_path, 0600) < 0 || spool_init(ctx->dir) < 0)
		goto fail;
	store = store_open(ctx->dir, err, sizeof(err));
	if (store == NULL)
		goto fail;
	store_close(&store);
	*state = ctx;
	return 0;
fail:
	if (ctx->dir[0] != '\0')
		test_dir_remove(ctx->dir);
	free(ctx);
	return -1;
}

static int test_teardown(void **state)
{
	struct test_ctx *ctx = *state;

	test_dir_remove(ctx->dir);
	free(ctx);
	return 0;
}

/* Waits for PID until the deadline, then kills it; its wait status. */
static int test_child_wait(pid_t pid)
{
	int64_t deadline = util_monotonic_ms() + TEST_CHILD_DEADLINE_MS;
	int status = 0;

	for (;;) {
		struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};
		pid_t rc = waitpid(pid, &status, WNOHANG);

		if (rc == pid)
			return status;
		assert_int_equal(rc, 0);
		if (util_monotonic_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("child %ld did not end in time", (long)pid);
		}
		nanosleep(&pause, NULL);
	}
}

/* Forks a child that confines itself and runs ATTEMPT; its wait status. */
static int test_confined_run(const struct test_ctx *ctx, test_attempt_fn *attempt, int arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		/* _exit throughout: the test runner's exit handlers are the
		 * parent's business. */
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(TEST_UNCONFINED);
		_exit(attempt(ctx, arg));
	}
	return test_child_wait(pid);
}

static void test_expect_errno(int status, int expected)
{
	if (WIFSIGNALED(status))
		fail_msg("child killed by signal %d, expected errno %d", WTERMSIG(status),
			 expected);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == TEST_SUCCEEDED)
		fail_msg("the attempt succeeded in a confined child");
	assert_int_not_equal(WEXITSTATUS(status), TEST_UNCONFINED);
	assert_int_equal(WEXITSTATUS(status), expected);
}

static void test_expect_killed(int status)
{
	if (WIFEXITED(status))
		fail_msg("child exited with %d, expected SIGSYS", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSYS);
}

static int test_attempt_open(const struct test_ctx *ctx, int which)
{
	const char *path = which == 0 ? ctx->key_path : ctx->db_path;
	int fd = open(path, which == 0 ? O_RDONLY : O_RDWR);

	if (fd < 0)
		return errno;
	close(fd);
	return TEST_SUCCEEDED;
}

static int test_attempt_openat(const struct test_ctx *ctx, int arg)
{
	int fd;

	(void)arg;
	fd = openat(AT_FDCWD, ctx->key_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	return TEST_SUCCEEDED;
}

static int test_attempt_opendir(const struct test_ctx *ctx, int arg)
{
	DIR *dir;

	(void)arg;
	dir = opendir(ctx->spool_path);
	if (dir == NULL)
		return errno;
	closedir(dir);
	return TEST_SUCCEEDED;
}

static int test_attempt_stat(const struct test_ctx *ctx, int arg)
{
	struct stat st;

	(void)arg;
	if (stat(ctx->key_path, &st) < 0)
		return errno;
	return TEST_SUCCEEDED;
}

static int test_attempt_socket(const struct test_ctx *ctx, int arg)
{
	int fd;

	(void)ctx;
	fd = socket(arg, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	close(fd);
	return TEST_SUCCEEDED;
}

/* ARG: an AF_INET socket made before the confinement (a descriptor a
 * worker should never have, but say it had one). */
static int test_attempt_connect(const struct test_ctx *ctx, int arg)
{
	struct sockaddr_in addr = {
	    .sin_family = AF_INET,
	    .sin_port = htons(9),
	    .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};

	(void)ctx;
	if (connect(arg, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return errno;
	return TEST_SUCCEEDED;
}

static int test_attempt_execve(const struct test_ctx *ctx, int arg)
{
	char *argv[] = {(char *)"true", NULL};
	char *envp[] = {NULL};

	(void)ctx;
	(void)arg;
	execve("/bin/true", argv, envp);
	return errno;
}

static int test_attempt_exec_memory(const struct test_ctx *ctx, int arg)
{
	void *p;

	(void)ctx;
	(void)arg;
	p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return errno;
	return TEST_SUCCEEDED;
}

/* ARG: another process of the same user. */
static int test_attempt_kill(const struct test_ctx *ctx, int arg)
{
	(void)ctx;
	if (kill((pid_t)arg, SIGTERM) < 0)
		return errno;
	return TEST_SUCCEEDED;
}

/*
 * ARG: a socket. Receives a descriptor on it as a worker receives a body,
 * reads it all, and sends back what it read: the one thing a worker is for.
 */
static int test_attempt_passed_fd(const struct test_ctx *ctx, int arg)
{
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int))];
	} control;
	char tag;
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.data,
	    .msg_controllen = sizeof(control.data),
	};
	char *body = xmalloc(4096);
	struct cmsghdr *c;
	ssize_t n;
	int fd;

	(void)ctx;
	if (recvmsg(arg, &msg, MSG_CMSG_CLOEXEC) != 1)
		return errno;
	c = CMSG_FIRSTHDR(&msg);
	if (c == NULL || c->cmsg_type != SCM_RIGHTS)
		return EPROTO;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	n = read(fd, body, 4096);
	if (n < 0)
		return errno;
	close(fd);
	if (send(arg, body, (size_t)n, MSG_NOSIGNAL) != n)
		return errno;
	free(body);
	return TEST_SUCCEEDED;
}

/* The key and the store cannot be opened, for reading or writing. */
static void test_key_and_store_refused(void **state)
{
	struct test_ctx *ctx = *state;

	test_expect_errno(test_confined_run(ctx, test_attempt_open, 0), EACCES);
	test_expect_errno(test_confined_run(ctx, test_attempt_openat, 0), EACCES);
	test_expect_errno(test_confined_run(ctx, test_attempt_open, 1), EACCES);
	/* Not even their size or owner. */
	test_expect_errno(test_confined_run(ctx, test_attempt_stat, 0), EACCES);
	/* The same attempts work unconfined: the files are really there. */
	assert_int_equal(test_attempt_open(ctx, 0), TEST_SUCCEEDED);
	assert_int_equal(test_attempt_open(ctx, 1), TEST_SUCCEEDED);
}

static void test_spool_refused(void **state)
{
	struct test_ctx *ctx = *state;

	test_expect_errno(test_confined_run(ctx, test_attempt_opendir, 0), EACCES);
	assert_int_equal(test_attempt_opendir(ctx, 0), TEST_SUCCEEDED);
}

/* No network: making a socket, or connecting one it somehow had, kills. */
static void test_network_refused(void **state)
{
	struct test_ctx *ctx = *state;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	test_expect_killed(test_confined_run(ctx, test_attempt_socket, AF_INET));
	test_expect_killed(test_confined_run(ctx, test_attempt_socket, AF_INET6));
	test_expect_killed(test_confined_run(ctx, test_attempt_socket, AF_UNIX));
	test_expect_killed(test_confined_run(ctx, test_attempt_connect, fd));
	close(fd);
}

/* No other program, no new code, no signal to another process. */
static void test_exec_and_kill_refused(void **state)
{
	struct test_ctx *ctx = *state;
	pid_t sleeper = fork();
	int status;

	assert_true(sleeper >= 0);
	if (sleeper == 0) {
		/* Gone with the test even if an assertion ends it early. */
		prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
		pause();
		_exit(0);
	}
	test_expect_killed(test_confined_run(ctx, test_attempt_execve, 0));
	test_expect_killed(test_confined_run(ctx, test_attempt_exec_memory, 0));
	test_expect_killed(test_confined_run(ctx, test_attempt_kill, (int)sleeper));
	/* The sleeper is still there for us to end. */
	assert_int_equal(waitpid(sleeper, &status, WNOHANG), 0);
	assert_int_equal(kill(sleeper, SIGKILL), 0);
	assert_int_equal(waitpid(sleeper, &status, 0), sleeper);
}

/* What a worker does still works: a body's descriptor comes over the
 * socket, is read, and the answer goes back. */
static void test_passed_descriptor_read(void **state)
{
	struct test_ctx *ctx = *state;
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int))];
	} control;
	char tag = 'J';
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.data,
	    .msg_controllen = sizeof(control.data),
	};
	char *body_path = spool_path(ctx->dir, "0123456789abcdef01234567");
	char *folder = xstrndup(body_path, (size_t)(strrchr(body_path, '/') - body_path));
	char answer[256] = "";
	struct cmsghdr *c;
	size_t got = 0;
	int sv[2];
	int body_fd;
	pid_t pid;

	assert_int_equal(util_mkdir_p(folder, 0700), 0);
	test_write_file(body_path, TEST_BODY);
	body_fd = open(body_path, O_RDONLY | O_CLOEXEC);
	assert_true(body_fd >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(sv[0]);
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(TEST_UNCONFINED);
		_exit(test_attempt_passed_fd(ctx, sv[1]));
	}
	close(sv[1]);
	memset(control.data, 0, sizeof(control.data));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &body_fd, sizeof(int));
	assert_int_equal(sendmsg(sv[0], &msg, MSG_NOSIGNAL), 1);
	close(body_fd);
	/* Bounded by the child's deadline: it exits, and EOF ends this. */
	for (;;) {
		ssize_t n = read(sv[0], answer + got, sizeof(answer) - 1 - got);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(sv[0]);
	assert_int_equal(WEXITSTATUS(test_child_wait(pid)), TEST_SUCCEEDED);
	assert_string_equal(answer, TEST_BODY);
	free(folder);
	free(body_path);
}

/* The limits and flags, as the kernel reports them for a confined child. */
static void test_limits_and_flags(void **state)
{
	struct test_ctx *ctx = *state;
	char path[64];
	char *text = xmalloc(8192);
	size_t len = 0;
	int ready[2];
	int go[2];
	pid_t pid;
	char byte;
	FILE *f;

	(void)ctx;
	assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(go, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];

		close(ready[0]);
		close(go[1]);
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(TEST_UNCONFINED);
		/* Confined: say so, then wait (a read, allowed) until looked at. */
		if (write(ready[1], "c", 1) != 1 || read(go[0], &byte, 1) < 0)
			_exit(1);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	assert_int_equal(read(ready[0], &byte, 1), 1);
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	len = fread(text, 1, 4095, f);
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	len += fread(text + len, 1, 8191 - len, f);
	fclose(f);
	text[len] = '\0';
	close(go[1]);
	assert_int_equal(test_child_wait(pid), 0);
	close(ready[0]);

	/* 2: a seccomp filter is in force. */
	assert_non_null(strstr(text, "NoNewPrivs:\t1\n"));
	assert_non_null(strstr(text, "Seccomp:\t2\n"));
	assert_non_null(strstr(text, "Max open files            16                   16"));
	assert_non_null(strstr(text, "Max processes             0                    0"));
	assert_non_null(strstr(text, "Max core file size        0                    0"));
#if !CONFINE_SANITIZER
	assert_non_null(strstr(text, "Max address space         536870912            536870912"));
#endif
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_key_and_store_refused, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_spool_refused, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_network_refused, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_exec_and_kill_refused, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_passed_descriptor_read, test_setup,
					    test_teardown),
	    cmocka_unit_test_setup_teardown(test_limits_and_flags, test_setup, test_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
