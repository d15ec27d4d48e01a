/*
 * test_listener.c — unit tests for src/core/listener.c: how a client
 * address counts for the per-address limit (IPv4, IPv4-mapped as IPv4, IPv6
 * by its /64, loopback), and on real sockets on 127.0.0.1: the limits
 * overall and per address with the owner's refusal line, a released place
 * taken again, and the back-off after accept() fails for want of
 * descriptors (the loop does not spin on the error, and accepting resumes).
 *
 * Must never: talk to anything but 127.0.0.1; leave a descriptor limit
 * lowered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"

#define REFUSAL "-ERR busy\r\n"
#define MAX_PEERS 8

/* ---- addresses ---------------------------------------------------------- */

static void describe4(struct listener_peer *peer, const char *text)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};

	memset(peer, 0, sizeof(*peer));
	assert_int_equal(inet_pton(AF_INET, text, &sin.sin_addr), 1);
	assert_int_equal(listener_peer_describe(peer, (struct sockaddr *)&sin), 0);
}

static void describe6(struct listener_peer *peer, const char *text)
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};

	memset(peer, 0, sizeof(*peer));
	assert_int_equal(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
	assert_int_equal(listener_peer_describe(peer, (struct sockaddr *)&sin6), 0);
}

static void test_ipv4(void **state)
{
	struct listener_peer a, b;
	(void)state;

	describe4(&a, "192.0.2.7");
	assert_string_equal(a.address, "192.0.2.7");
	assert_false(a.loopback);
	describe4(&b, "192.0.2.8");
	assert_false(listener_peer_same_address(&a, &b));
	describe4(&b, "192.0.2.7");
	assert_true(listener_peer_same_address(&a, &b));
	describe4(&a, "127.0.0.9");
	assert_true(a.loopback);
}

static void test_ipv4_mapped(void **state)
{
	struct listener_peer mapped, plain;
	(void)state;

	/* A dual-stack socket's IPv4 client counts, shows and is trusted as the
	 * IPv4 client it is. */
	describe6(&mapped, "::ffff:127.0.0.1");
	assert_string_equal(mapped.address, "127.0.0.1");
	assert_true(mapped.loopback);
	describe4(&plain, "127.0.0.1");
	assert_true(listener_peer_same_address(&mapped, &plain));
	describe6(&mapped, "::ffff:192.0.2.7");
	assert_false(mapped.loopback);
	assert_false(listener_peer_same_address(&mapped, &plain));
}

static void test_ipv6_prefix(void **state)
{
	struct listener_peer a, b;
	(void)state;

	/* One host usually holds a whole /64: a client cycling through it is
	 * still one client. */
	describe6(&a, "2001:db8:1:2::1");
	describe6(&b, "2001:db8:1:2:ffff:ffff:ffff:fffe");
	assert_true(listener_peer_same_address(&a, &b));
	assert_string_equal(b.address, "2001:db8:1:2:ffff:ffff:ffff:fffe");
	describe6(&b, "2001:db8:1:3::1");
	assert_false(listener_peer_same_address(&a, &b));
	/* An IPv6 /64 never meets an IPv4 address that shares its bytes. */
	describe6(&a, "c000:207::");
	describe4(&b, "192.0.2.7");
	assert_false(listener_peer_same_address(&a, &b));
	describe6(&a, "::1");
	assert_true(a.loopback);
	assert_false(b.loopback);
}

static void test_other_family(void **state)
{
	struct listener_peer peer;
	struct sockaddr sa = {.sa_family = AF_UNIX};
	(void)state;

	assert_int_equal(listener_peer_describe(&peer, &sa), -1);
}

/* ---- real sockets ------------------------------------------------------- */

struct accepted {
	struct listener_peer *peers[MAX_PEERS];
	int fds[MAX_PEERS];
	size_t count;
};

static void accepted_cb(evutil_socket_t fd, struct listener_peer *peer, void *ctx)
{
	struct accepted *accepted = ctx;

	assert_true(accepted->count < MAX_PEERS);
	accepted->peers[accepted->count] = peer;
	accepted->fds[accepted->count] = fd;
	accepted->count++;
}

static void accepted_release(struct accepted *accepted, size_t index)
{
	listener_peer_release(&accepted->peers[index]);
	assert_null(accepted->peers[index]);
	close(accepted->fds[index]);
	accepted->fds[index] = -1;
}

/* A listening socket on 127.0.0.1 and an ephemeral port, in *PORT. */
static int listen_local(uint16_t *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static int connect_local(uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Runs the loop until COUNT connections were accepted or refused (bounded). */
static void loop_until_accepted(struct event_base *base, struct accepted *accepted, size_t count)
{
	for (int i = 0; i < 500 && accepted->count < count; i++) {
		struct timeval tick = {0, 10 * 1000};
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	assert_int_equal(accepted->count, count);
}

/* What a refused client reads before the close: the refusal line. */
static void assert_refused(struct event_base *base, int fd)
{
	char reply[64];
	ssize_t n = -1;

	for (int i = 0; i < 500 && n < 0; i++) {
		struct timeval tick = {0, 10 * 1000};
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
		n = recv(fd, reply, sizeof(reply) - 1, MSG_DONTWAIT);
		if (n < 0)
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	}
	assert_int_equal(n, (ssize_t)strlen(REFUSAL));
	reply[n] = '\0';
	assert_string_equal(reply, REFUSAL);
	assert_int_equal(recv(fd, reply, sizeof(reply), 0), 0); /* then closed */
}

static void test_limits(void **state)
{
	struct event_base *base = event_base_new();
	struct accepted accepted = {.count = 0};
	const struct listener_limits limits = {
	    .max_sessions = 2, .max_per_address = 1, .refusal = REFUSAL};
	char err[128];
	uint16_t port;
	int listen_fd = listen_local(&port);
	struct listener *listener;
	(void)state;

	listener =
	    listener_new(base, listen_fd, -1, &limits, accepted_cb, &accepted, err, sizeof(err));
	assert_non_null(listener);

	int first = connect_local(port);
	loop_until_accepted(base, &accepted, 1);
	assert_string_equal(accepted.peers[0]->address, "127.0.0.1");
	assert_true(accepted.peers[0]->loopback);
	assert_false(accepted.peers[0]->tls);
	assert_int_equal(listener_peer_count(listener), 1);

	/* A second session from the same address is over max_per_address. */
	int second = connect_local(port);
	assert_refused(base, second);
	assert_int_equal(accepted.count, 1);
	assert_int_equal(listener_peer_count(listener), 1);

	/* Its place given back, the address may connect again. */
	accepted_release(&accepted, 0);
	assert_int_equal(listener_peer_count(listener), 0);
	int third = connect_local(port);
	loop_until_accepted(base, &accepted, 2);
	assert_int_equal(listener_peer_count(listener), 1);

	accepted_release(&accepted, 1);
	close(first);
	close(second);
	close(third);
	listener_free(&listener);
	assert_null(listener);
	event_base_free(base);
}

static void test_limit_overall(void **state)
{
	struct event_base *base = event_base_new();
	struct accepted accepted = {.count = 0};
	const struct listener_limits limits = {
	    .max_sessions = 1, .max_per_address = 5, .refusal = REFUSAL};
	char err[128];
	uint16_t port;
	struct listener *listener;
	(void)state;

	listener = listener_new(base, listen_local(&port), -1, &limits, accepted_cb, &accepted, err,
				sizeof(err));
	assert_non_null(listener);
	int first = connect_local(port);
	loop_until_accepted(base, &accepted, 1);
	int second = connect_local(port);
	assert_refused(base, second);
	accepted_release(&accepted, 0);
	close(first);
	close(second);
	listener_free(&listener);
	event_base_free(base);
}

/* Lines of the log file at PATH that hold NEEDLE. */
static int log_lines_with(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int count = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, needle) != NULL)
			count++;
	}
	fclose(f);
	return count;
}

static void test_accept_backoff(void **state)
{
	struct event_base *base = event_base_new();
	struct accepted accepted = {.count = 0};
	const struct listener_limits limits = {
	    .max_sessions = 4, .max_per_address = 4, .refusal = REFUSAL};
	char err[128], log_path[] = "/tmp/popgate-test-listener-XXXXXX";
	struct rlimit saved, low;
	uint16_t port;
	struct listener *listener;
	(void)state;

	int log_fd = mkstemp(log_path);
	assert_true(log_fd >= 0);
	close(log_fd);
	assert_int_equal(log_open(log_path, LOG_INFO), 0);
	listener = listener_new(base, listen_local(&port), -1, &limits, accepted_cb, &accepted, err,
				sizeof(err));
	assert_non_null(listener);
	int client = connect_local(port); /* queued in the backlog, not yet accepted */

	/* No descriptor left: every accept() fails with EMFILE. */
	int probe = dup(0);
	assert_true(probe >= 0);
	close(probe);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = (rlim_t)probe;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	for (int i = 0; i < 30; i++) {
		struct timeval tick = {0, 10 * 1000};
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	assert_int_equal(accepted.count, 0);
	/* 300 ms of loop: without a pause the loop would fail thousands of
	 * times; with it, at 0, 100 and 300 ms. */
	int failures = log_lines_with(log_path, "accept failed");
	assert_true(failures >= 1);
	assert_true(failures <= 4);

	/* Descriptors back: the paused sockets resume and take the client. */
	loop_until_accepted(base, &accepted, 1);
	accepted_release(&accepted, 0);
	close(client);
	listener_free(&listener);
	event_base_free(base);
	log_close();
	unlink(log_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ipv4),	   cmocka_unit_test(test_ipv4_mapped),
	    cmocka_unit_test(test_ipv6_prefix),	   cmocka_unit_test(test_other_family),
	    cmocka_unit_test(test_limits),	   cmocka_unit_test(test_limit_overall),
	    cmocka_unit_test(test_accept_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
