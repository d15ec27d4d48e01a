/*
 * test_connector.c — outbound connections (core/connector.c) through the real
 * resolver and a real name server (dnsmasq on a free loopback port, as
 * test_resolver.c starts it) to listeners on loopback in the same loop:
 * plain TCP on ::1, TLS on 127.0.0.1 with a self-signed certificate for
 * tls.test (its own CA file), a plain greeting then TLS (STARTTLS's shape),
 * and a socket that listens but never accepts.
 *
 * next.test has 127.0.0.2 (nothing listens there: refused) and ::1; the
 * resolver hands IPv4 first, so the refused address is always tried first.
 * private.test has only loopback addresses, refused by the address policy
 * unless allowed. All traffic stays on 127.0.0.0/8 and ::1.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "test_dnsmasq.h"
#include "test_support.h"

/* Bounds every wait of these tests. */
#define TEST_DEADLINE_SECONDS 20
/* Server-side connections a test keeps, at most. */
#define SERVER_CONNS_MAX 8

static const char *const test_records[] = {
    "host-record=next.test,127.0.0.2,::1",    "host-record=dead.test,127.0.0.2",
    "host-record=tls.test,127.0.0.1",	      "host-record=wrong.test,127.0.0.1",
    "host-record=private.test,127.0.0.1,::1", "local=/test/",
};

enum server_mode {
	SERVER_PLAIN,	  /* accepts and says nothing */
	SERVER_TLS,	  /* TLS from the first byte */
	SERVER_GREET_TLS, /* "220 ready" in plain, then TLS */
};

struct server {
	struct evconnlistener *listener;
	int port;
	enum server_mode mode;
	struct bufferevent *conns[SERVER_CONNS_MAX];
	size_t conn_count;
};

struct fixture {
	char dir[TEST_DIR_SIZE];
	char cert[TEST_DIR_SIZE + 16];
	char key[TEST_DIR_SIZE + 16];
	char log[TEST_DIR_SIZE + 16];
	struct test_dnsmasq dns;
	char dns_address[32];
	SSL_CTX *server_ctx;
	struct event_base *base;
	struct resolver *resolver;
	struct connector *connector;
};

/* What an attempt's callback saw. */
struct outcome {
	struct event_base *base;
	int calls;
	struct bufferevent *bev;
	char error[400];
};

static struct fixture fx;

/* ---- the name server ------------------------------------------------------ */

/* dnsmasq on a free port (test_dnsmasq.h). */
static int dns_start(void)
{
	if (test_dnsmasq_start(&fx.dns, fx.dir, test_records,
			       sizeof(test_records) / sizeof(test_records[0])) < 0)
		return -1;
	snprintf(fx.dns_address, sizeof(fx.dns_address), "%s", fx.dns.address);
	return 0;
}

static int group_setup(void **state)
{
	char err[256] = "";
	(void)state;

	if (test_dir_make(fx.dir, sizeof(fx.dir), "connector") < 0)
		return -1;
	snprintf(fx.cert, sizeof(fx.cert), "%s/cert.pem", fx.dir);
	snprintf(fx.key, sizeof(fx.key), "%s/key.pem", fx.dir);
	snprintf(fx.log, sizeof(fx.log), "%s/log", fx.dir);
	if (log_open(fx.log, LOG_INFO) < 0 || dns_start() < 0) {
		fprintf(stderr, "test_connector: cannot start the name server\n");
		return -1;
	}
	if (tls_ensure_self_signed(fx.cert, fx.key, "tls.test", err, sizeof(err)) < 0 ||
	    (fx.server_ctx = tls_server_ctx_new(fx.cert, fx.key, err, sizeof(err))) == NULL) {
		fprintf(stderr, "test_connector: %s\n", err);
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_dnsmasq_stop(&fx.dns);
	SSL_CTX_free(fx.server_ctx);
	log_close();
	test_dir_remove(fx.dir);
	return 0;
}

/* Each test: a loop, a resolver on the name server, a connector. */
static int setup(void **state)
{
	char err[256] = "";
	(void)state;

	fx.base = event_base_new();
	fx.resolver = resolver_new(fx.base, fx.dns_address, err, sizeof(err));
	if (fx.base == NULL || fx.resolver == NULL)
		return -1;
	fx.connector = connector_new(fx.base, fx.resolver);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	connector_free(&fx.connector);
	resolver_free(&fx.resolver);
	event_base_free(fx.base);
	return 0;
}

/* ---- listeners -------------------------------------------------------------- */

static void server_accept_cb(struct evconnlistener *listener, evutil_socket_t fd,
			     struct sockaddr *addr, int addrlen, void *ctx)
{
	struct server *server = ctx;
	struct bufferevent *bev;
	(void)listener;
	(void)addr;
	(void)addrlen;

	assert_true(server->conn_count < SERVER_CONNS_MAX);
	if (server->mode == SERVER_TLS) {
		bev = bufferevent_openssl_socket_new(fx.base, fd, SSL_new(fx.server_ctx),
						     BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
	} else {
		bev = bufferevent_socket_new(fx.base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (server->mode == SERVER_GREET_TLS) {
			/* The greeting leaves in plain; TLS follows the client's hello. */
			bufferevent_write(bev, "220 ready\r\n", 11);
			bev = bufferevent_openssl_filter_new(fx.base, bev, SSL_new(fx.server_ctx),
							     BUFFEREVENT_SSL_ACCEPTING,
							     BEV_OPT_CLOSE_ON_FREE);
		}
	}
	assert_non_null(bev);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	server->conns[server->conn_count++] = bev;
}

/* A listener in MODE on loopback (IPv4 or IPv6) on a free port. */
static void server_start(struct server *server, int family, enum server_mode mode)
{
	struct sockaddr_storage ss = {0};
	socklen_t len = sizeof(ss);

	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		len = sizeof(*sin6);
	}
	memset(server, 0, sizeof(*server));
	server->mode = mode;
	server->listener = evconnlistener_new_bind(fx.base, server_accept_cb, server,
						   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
						   (struct sockaddr *)&ss, (int)len);
	assert_non_null(server->listener);
	len = sizeof(ss);
	assert_int_equal(
	    getsockname(evconnlistener_get_fd(server->listener), (struct sockaddr *)&ss, &len), 0);
	server->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					       : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void server_stop(struct server *server)
{
	for (size_t i = 0; i < server->conn_count; i++)
		bufferevent_free(server->conns[i]);
	evconnlistener_free(server->listener);
}

/* ---- attempts ------------------------------------------------------------- */

static void outcome_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct outcome *outcome = ctx;

	outcome->calls++;
	outcome->bev = bev;
	snprintf(outcome->error, sizeof(outcome->error), "%s", error != NULL ? error : "");
	event_base_loopbreak(outcome->base);
}

/* Runs the loop until the callback of OUTCOME ran, or the deadline. */
static void outcome_wait(struct outcome *outcome)
{
	struct timeval deadline = {TEST_DEADLINE_SECONDS, 0};

	event_base_loopexit(fx.base, &deadline);
	while (outcome->calls == 0 && event_base_dispatch(fx.base) == 0 &&
	       !event_base_got_exit(fx.base))
		;
	assert_int_equal(outcome->calls, 1);
}

static struct connector_target target_for(const char *host, int port, enum connector_tls tls)
{
	return (struct connector_target){.host = host,
					 .port = port,
					 .tls = tls,
					 .ca_file = fx.cert,
					 .verify = true,
					 .allow_private = true,
					 .timeout = TEST_DEADLINE_SECONDS,
					 .log_event = "fetch",
					 .log_account = "test"};
}

/* Connects to TARGET and waits for the outcome. */
static void connect_and_wait(const struct connector_target *target, struct outcome *outcome)
{
	char err[300] = "";

	outcome->base = fx.base;
	assert_non_null(
	    connector_connect(fx.connector, target, outcome_cb, outcome, err, sizeof(err)));
	assert_int_equal(outcome->calls, 0); /* never inside the call */
	outcome_wait(outcome);
}

/* The peer address of BEV as "IP". */
static void peer_of(struct bufferevent *bev, char *out, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getpeername(bufferevent_getfd(bev), (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)size);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)size);
}

/* Whether the log file holds TEXT. */
static bool log_holds(const char *text)
{
	FILE *f = fopen(fx.log, "r");
	char line[1024];
	bool found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = strstr(line, text) != NULL;
	fclose(f);
	return found;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_next_address_after_a_refusal(void **state)
{
	struct server server;
	struct outcome outcome = {0};
	char peer[INET6_ADDRSTRLEN];
	(void)state;

	server_start(&server, AF_INET6, SERVER_PLAIN);
	struct connector_target target = target_for("next.test", server.port, CONNECTOR_TLS_NONE);
	connect_and_wait(&target, &outcome);
	assert_non_null(outcome.bev);
	peer_of(outcome.bev, peer, sizeof(peer));
	assert_string_equal(peer, "::1");
	/* IPv4 came first and was refused; the log says so and names it. */
	assert_true(log_holds("cannot connect to next.test at 127.0.0.2: "));
	assert_true(log_holds("trying its next address"));
	bufferevent_free(outcome.bev);
	server_stop(&server);
}

static void test_no_address_answers(void **state)
{
	struct outcome outcome = {0};
	(void)state;

	struct connector_target target =
	    target_for("dead.test", test_dnsmasq_free_port(SOCK_STREAM), CONNECTOR_TLS_NONE);
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	/* The last address's reason, and the address. */
	assert_non_null(strstr(outcome.error, "(127.0.0.2)"));
}

static void test_policy_refuses_every_address(void **state)
{
	struct outcome outcome = {0};
	(void)state;

	struct connector_target target = target_for("private.test", 110, CONNECTOR_TLS_NONE);
	target.allow_private = false;
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	assert_string_equal(outcome.error,
			    "private.test resolves to a loopback, private or link-local address; "
			    "the host's policy does not allow it");

	/* A numeric host is judged the same way, without a query. */
	memset(&outcome, 0, sizeof(outcome));
	target.host = "127.0.0.1";
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	assert_non_null(strstr(outcome.error, "resolves to a loopback"));
}

static void test_unknown_name(void **state)
{
	struct outcome outcome = {0};
	(void)state;

	struct connector_target target = target_for("nosuch.test", 110, CONNECTOR_TLS_NONE);
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	assert_string_equal(outcome.error, "cannot resolve nosuch.test: no such name");
}

static void test_implicit_tls_verified(void **state)
{
	struct server server;
	struct outcome outcome = {0};
	(void)state;

	server_start(&server, AF_INET, SERVER_TLS);
	struct connector_target target =
	    target_for("tls.test", server.port, CONNECTOR_TLS_IMPLICIT);
	connect_and_wait(&target, &outcome);
	assert_non_null(outcome.bev);
	/* Handed back with the handshake done and the name checked. */
	SSL *ssl = bufferevent_openssl_get_ssl(outcome.bev);
	assert_non_null(ssl);
	assert_true(SSL_is_init_finished(ssl));
	assert_int_equal(SSL_get_verify_result(ssl), X509_V_OK);
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "tls.test");
	bufferevent_free(outcome.bev);
	server_stop(&server);
}

static void test_implicit_tls_wrong_name(void **state)
{
	struct server server;
	struct outcome outcome = {0};
	(void)state;

	server_start(&server, AF_INET, SERVER_TLS);
	struct connector_target target =
	    target_for("wrong.test", server.port, CONNECTOR_TLS_IMPLICIT);
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	assert_non_null(strstr(outcome.error, "TLS error in state connecting: "));
	assert_non_null(strstr(outcome.error, "certificate verify failed"));
	server_stop(&server);
}

/* What the upgrade test's client side saw. */
struct upgrade {
	struct event_base *base;
	bool greeted;
	bool connected;
	bool failed;
};

static void upgrade_read_cb(struct bufferevent *bev, void *ctx)
{
	struct upgrade *upgrade = ctx;
	size_t len;
	char *line = evbuffer_readln(bufferevent_get_input(bev), &len, EVBUFFER_EOL_CRLF);

	if (line != NULL) {
		upgrade->greeted = strcmp(line, "220 ready") == 0;
		free(line);
		event_base_loopbreak(upgrade->base);
	}
}

static void upgrade_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct upgrade *upgrade = ctx;
	(void)bev;

	if (events & BEV_EVENT_CONNECTED)
		upgrade->connected = true;
	else
		upgrade->failed = true;
	event_base_loopbreak(upgrade->base);
}

static void test_upgrade_to_tls(void **state)
{
	struct server server;
	struct outcome outcome = {0};
	struct upgrade upgrade = {.base = fx.base};
	struct timeval deadline = {TEST_DEADLINE_SECONDS, 0};
	char err[300] = "";
	(void)state;

	server_start(&server, AF_INET, SERVER_GREET_TLS);
	struct connector_target target = target_for("tls.test", server.port, CONNECTOR_TLS_UPGRADE);
	connect_and_wait(&target, &outcome);
	assert_non_null(outcome.bev);
	assert_null(bufferevent_openssl_get_ssl(outcome.bev)); /* plain until asked */

	/* The protocol's greeting, in plain. */
	bufferevent_setcb(outcome.bev, upgrade_read_cb, NULL, upgrade_event_cb, &upgrade);
	upgrade_read_cb(outcome.bev, &upgrade);
	event_base_loopexit(fx.base, &deadline);
	while (!upgrade.greeted && !upgrade.failed && !event_base_got_exit(fx.base))
		event_base_dispatch(fx.base);
	assert_true(upgrade.greeted);

	struct bufferevent *tls =
	    connector_start_tls(fx.connector, outcome.bev, &target, err, sizeof(err));
	assert_non_null(tls);
	bufferevent_setcb(tls, NULL, NULL, upgrade_event_cb, &upgrade);
	bufferevent_enable(tls, EV_READ | EV_WRITE);
	event_base_loopexit(fx.base, &deadline);
	while (!upgrade.connected && !upgrade.failed && !event_base_got_exit(fx.base))
		event_base_dispatch(fx.base);
	assert_true(upgrade.connected);
	assert_int_equal(SSL_get_verify_result(bufferevent_openssl_get_ssl(tls)), X509_V_OK);
	bufferevent_free(tls); /* and the plain connection under it */
	server_stop(&server);
}

static void test_deadline(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	struct outcome outcome = {0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	(void)state;

	/* Listens, never accepts: TCP connects, the TLS handshake never ends;
	 * the silence timeout is long, the deadline short. */
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	struct connector_target target =
	    target_for("tls.test", ntohs(sin.sin_port), CONNECTOR_TLS_IMPLICIT);
	target.deadline = 1;
	connect_and_wait(&target, &outcome);
	assert_null(outcome.bev);
	assert_string_equal(outcome.error, "no connection to tls.test within 1 s (connecting)");
	close(fd);
}

static int cancelled_calls;

static void cancelled_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	(void)bev;
	(void)error;
	(void)ctx;
	cancelled_calls++;
}

static void test_cancel_and_setup_errors(void **state)
{
	struct outcome outcome = {0};
	char err[300] = "";
	(void)state;

	/* Cancelled while resolving: its callback never runs, even once a later
	 * attempt for the same name has had its answer. */
	struct connector_target target = target_for("private.test", 110, CONNECTOR_TLS_NONE);
	target.allow_private = false;
	struct connector_attempt *attempt =
	    connector_connect(fx.connector, &target, cancelled_cb, NULL, err, sizeof(err));
	assert_non_null(attempt);
	assert_string_equal(connector_phase(attempt), "resolving");
	connector_cancel(&attempt);
	assert_null(attempt);
	connector_cancel(&attempt); /* NULL is fine */
	connect_and_wait(&target, &outcome);
	assert_int_equal(cancelled_calls, 0);

	/* A CA file that cannot be read: no attempt, no callback, a message. */
	target = target_for("tls.test", 995, CONNECTOR_TLS_IMPLICIT);
	target.ca_file = "/nonexistent/ca.pem";
	assert_null(connector_connect(fx.connector, &target, cancelled_cb, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "TLS setup failed: /nonexistent/ca.pem"));
	assert_int_equal(cancelled_calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_next_address_after_a_refusal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_address_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_policy_refuses_every_address, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_implicit_tls_verified, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_implicit_tls_wrong_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_to_tls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_and_setup_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
