/*
 * test_spawner.c — pipeline/spawner.c: its control messages encoded and
 * decoded (and every malformed record refused), and a real spawner (this
 * binary, exec'd with --spawner; its workers are this binary with --worker,
 * which wait for their socket to close) driven over its control socket:
 * a start answered with the worker's socket and pid, a kill refused for a
 * process that is not its worker and done for one that is, each end
 * reported with its wait status, and the spawner ending its workers and
 * exiting when the socket closes.
 *
 * Owns: the spawner it starts (reaped before each test ends).
 * Must never: wait without a bound — every read polls with a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "pipeline/spawner.h"

#define TEST_DEADLINE_MS 10000

/* Every type round-trips with the fields it takes. */
static void test_message_round_trip(void **state)
{
	static const struct spawner_message messages[] = {
	    {.type = SPAWNER_READY, .pid = 1},
	    {.type = SPAWNER_START, .slot = SPAWNER_SLOTS_MAX - 1},
	    {.type = SPAWNER_KILL, .pid = INT32_MAX},
	    {.type = SPAWNER_STARTED, .slot = 7, .pid = 4242},
	    {.type = SPAWNER_START_FAILED, .slot = 0, .value = EAGAIN},
	    {.type = SPAWNER_ENDED, .pid = 99, .value = -1},
	    {.type = SPAWNER_LOG},
	};
	unsigned char record[SPAWNER_MESSAGE_LEN];
	struct spawner_message decoded;
	const char *err = NULL;

	(void)state;
	for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
		spawner_message_encode(&messages[i], record);
		assert_int_equal(spawner_message_decode(record, sizeof(record), &decoded, &err), 0);
		assert_int_equal(decoded.type, messages[i].type);
		assert_int_equal(decoded.slot, messages[i].slot);
		assert_int_equal(decoded.pid, messages[i].pid);
		assert_int_equal(decoded.value, messages[i].value);
	}
	/* The fields are little-endian, whatever the machine. */
	spawner_message_encode(&messages[3], record);
	assert_memory_equal(record, "\x04\0\0\0\x07\0\0\0\x92\x10\0\0\0\0\0\0",
			    SPAWNER_MESSAGE_LEN);
}

static void test_expect_refused(const struct spawner_message *message, const char *reason)
{
	unsigned char record[SPAWNER_MESSAGE_LEN];
	struct spawner_message decoded;
	const char *err = NULL;

	spawner_message_encode(message, record);
	assert_int_equal(spawner_message_decode(record, sizeof(record), &decoded, &err), -1);
	assert_non_null(err);
	assert_string_equal(err, reason);
}

/* A record of the wrong length, an unknown type, a field out of range or
 * where its type has none: each refused, with why. */
static void test_message_malformed(void **state)
{
	unsigned char record[SPAWNER_MESSAGE_LEN + 1] = {SPAWNER_READY};
	struct spawner_message decoded;
	const char *err = NULL;

	(void)state;
	assert_int_equal(spawner_message_decode(record, SPAWNER_MESSAGE_LEN - 1, &decoded, &err),
			 -1);
	assert_string_equal(err, "wrong length");
	assert_int_equal(spawner_message_decode(record, SPAWNER_MESSAGE_LEN + 1, &decoded, &err),
			 -1);
	assert_string_equal(err, "wrong length");

	test_expect_refused(&(struct spawner_message){.type = 0}, "unknown type");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_MESSAGE_LAST + 1},
			    "unknown type");
	test_expect_refused(
	    &(struct spawner_message){.type = SPAWNER_START, .slot = SPAWNER_SLOTS_MAX},
	    "slot out of range");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_KILL, .slot = 1, .pid = 5},
			    "a slot where none belongs");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_KILL, .pid = 0},
			    "no valid pid");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_STARTED, .pid = -3},
			    "no valid pid");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_START, .pid = 5},
			    "a pid where none belongs");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_KILL, .pid = 5, .value = 1},
			    "a value where none belongs");
	test_expect_refused(&(struct spawner_message){.type = SPAWNER_LOG, .pid = 5},
			    "a pid where none belongs");
}

/* The next message from the spawner, waiting at most TEST_DEADLINE_MS;
 * *ATTACHED gets the descriptor that came with it, or -1. */
static void test_next(int fd, struct spawner_message *message, int *attached)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	const char *err = NULL;

	assert_int_equal(poll(&pfd, 1, TEST_DEADLINE_MS), 1);
	assert_int_equal(spawner_receive(fd, message, attached, &err), SPAWNER_RECEIVED);
}

static void test_request(int fd, const struct spawner_message *message)
{
	assert_int_equal(spawner_send(fd, message, -1, 0), 0);
}

/* Starts a spawner of this binary as this user. */
static void test_spawner_start(struct spawner_process *spawner)
{
	struct spawner_identity same_user = {.change = false};
	int exe_fd = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	char err[256] = "";

	assert_true(exe_fd >= 0);
	if (spawner_start(exe_fd, &same_user, "gw.example.org", spawner, err, sizeof(err)) < 0)
		fail_msg("spawner_start: %s", err);
	close(exe_fd);
}

/* A start request answered with a live worker's socket and pid; a kill of
 * a process that is not its worker refused, of its worker done and
 * reported; a worker that exits by itself reported with its status; on
 * EOF the spawner ends the rest and exits. */
static void test_spawner_runs_workers(void **state)
{
	struct spawner_process spawner;
	struct spawner_message message;
	int first_fd;
	int second_fd;
	pid_t first;
	pid_t second;
	pid_t bystander;
	int status;
	char byte;

	(void)state;
	test_spawner_start(&spawner);
	test_request(spawner.fd, &(struct spawner_message){.type = SPAWNER_START, .slot = 3});
	test_next(spawner.fd, &message, &first_fd);
	assert_int_equal(message.type, SPAWNER_STARTED);
	assert_int_equal(message.slot, 3);
	first = message.pid;
	assert_true(first > 0 && first_fd >= 0);
	assert_int_equal(fcntl(first_fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* The worker is alive on the other end: it answers a byte. */
	assert_int_equal(write(first_fd, "x", 1), 1);
	assert_int_equal(read(first_fd, &byte, 1), 1);
	assert_int_equal(byte, 'x');

	test_request(spawner.fd, &(struct spawner_message){.type = SPAWNER_START, .slot = 4});
	test_next(spawner.fd, &message, &second_fd);
	assert_int_equal(message.type, SPAWNER_STARTED);
	second = message.pid;
	assert_true(second > 0 && second != first);

	/* Not its worker: this test's own child survives the request. */
	bystander = fork();
	assert_true(bystander >= 0);
	if (bystander == 0) {
		pause();
		_exit(0);
	}
	test_request(spawner.fd, &(struct spawner_message){.type = SPAWNER_KILL, .pid = bystander});
	/* Its worker: killed, and the end reported with SIGKILL. */
	test_request(spawner.fd, &(struct spawner_message){.type = SPAWNER_KILL, .pid = first});
	test_next(spawner.fd, &message, &first_fd);
	assert_int_equal(message.type, SPAWNER_ENDED);
	assert_int_equal(message.pid, first);
	assert_true(WIFSIGNALED(message.value) && WTERMSIG(message.value) == SIGKILL);
	assert_int_equal(first_fd, -1);
	/* The requests are handled in order: the bystander's came first. */
	assert_int_equal(waitpid(bystander, &status, WNOHANG), 0);
	kill(bystander, SIGKILL);
	assert_int_equal(waitpid(bystander, &status, 0), bystander);

	/* A worker that ends by itself (its socket closed) is reported. */
	close(second_fd);
	test_next(spawner.fd, &message, &second_fd);
	assert_int_equal(message.type, SPAWNER_ENDED);
	assert_int_equal(message.pid, second);
	assert_true(WIFEXITED(message.value) && WEXITSTATUS(message.value) == 0);

	/* A worker left running when the socket closes is ended with it. */
	test_request(spawner.fd, &(struct spawner_message){.type = SPAWNER_START, .slot = 0});
	test_next(spawner.fd, &message, &first_fd);
	assert_int_equal(message.type, SPAWNER_STARTED);
	first = message.pid;
	spawner_stop(&spawner);
	assert_int_equal(spawner.fd, -1);
	assert_int_equal(spawner.pid, -1);
	/* Its socket reads EOF: the worker is gone. */
	assert_int_equal(read(first_fd, &byte, 1), 0);
	close(first_fd);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* What a spawner that is not one (it exits at once) gives the daemon: a
 * clear error, and nothing left running. */
static void test_spawner_start_fails(void **state)
{
	struct spawner_identity same_user = {.change = false};
	struct spawner_process spawner;
	int exe_fd = open("/bin/true", O_PATH | O_CLOEXEC);
	char err[256] = "";

	(void)state;
	assert_true(exe_fd >= 0);
	assert_int_equal(spawner_start(exe_fd, &same_user, "gw", &spawner, err, sizeof(err)), -1);
	assert_string_equal(err, "the worker spawner exited at start with status 0 (see the log)");
	assert_int_equal(spawner.fd, -1);
	close(exe_fd);
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/*
 * Whom the workers run as: as root, the worker user's ids (a user that does
 * not exist, or root itself, refused with why); as another user, that same
 * user. Needs root; the not-root case runs in a child that dropped it.
 */
static void test_identity_resolve(void **state)
{
	struct spawner_identity identity;
	char err[256] = "";
	pid_t child;
	int status;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(spawner_identity_resolve("nobody", &identity, err, sizeof(err)), 0);
	assert_true(identity.change);
	assert_true(identity.uid != 0 && identity.gid != 0);
	assert_string_equal(identity.name, "nobody");
	assert_int_equal(spawner_identity_resolve("popgate-nosuch", &identity, err, sizeof(err)),
			 -1);
	assert_string_equal(err, "user 'popgate-nosuch' does not exist; create it or set "
				 "[server] worker_user in the config");
	assert_int_equal(spawner_identity_resolve("root", &identity, err, sizeof(err)), -1);
	assert_string_equal(err, "[server] worker_user 'root' is root; workers must not be");

	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		if (spawner_identity_resolve("popgate-nosuch", &identity, err, sizeof(err)) < 0)
			_exit(3);
		_exit(identity.change ? 4 : 0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The worker of these tests: echoes what it reads until its socket closes. */
static int test_worker_main(int fd)
{
	char buf[64];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		if (write(fd, buf, (size_t)n) != n)
			return 1;
	}
	return n == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message_round_trip),	 cmocka_unit_test(test_message_malformed),
	    cmocka_unit_test(test_spawner_runs_workers), cmocka_unit_test(test_spawner_start_fails),
	    cmocka_unit_test(test_identity_resolve),
	};

	if (argc == 5 && strcmp(argv[1], "--spawner") == 0)
		return spawner_main(atoi(argv[2]), atoi(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "--worker") == 0)
		return test_worker_main(atoi(argv[2]));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
