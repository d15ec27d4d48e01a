/*
 * test_smtp_client.c — the outbound SMTP client (src/smtp/client.c) against
 * real servers on loopback, through the real connector:
 *
 *   aiosmtpd (Debian's python3-aiosmtpd, one process serving several ports,
 *   test_smtp_servers.h): "plain" (PIPELINING, no TLS, refuses
 *   refused@example.org with 550 5.1.1), "self" (STARTTLS with a
 *   self-signed certificate for mx.test), "ca" (STARTTLS with a certificate
 *   for mx.test from a test CA, no PIPELINING), "auth" (like "ca", AUTH
 *   required, PLAIN and LOGIN, only over TLS) and "login" (AUTH LOGIN only).
 *   It saves each message and its envelope, named by the X-Test-Id header.
 *
 *   Postfix's smtp-sink: without ESMTP (-e: the HELO fall-back), and
 *   refusing every RCPT with 4yz (-r RCPT, no PIPELINING: RSET, no DATA).
 *
 *   A scripted server in the test's own loop for what real servers do not:
 *   garbage, an over-long line, silence (the timeout), a reply dripped a
 *   byte at a time, a connection closed after the body, a body file
 *   shorter than its size, a 421 while idle, the QUIT, SIZE limits,
 *   SMTPUTF8 missing, a refused MAIL, and STARTTLS command injection.
 *
 * Checked: the body arrives as given (dot-stuffing undone by the server,
 * line ends CRLF), a body bigger than the output's high-water mark and out
 * of the page cache (the offload path), per-recipient results, STARTTLS in
 * each mode, AUTH PLAIN and LOGIN over TLS and never without it, RSET and
 * reuse, QUIT, and the pure dot encoder at every split.
 *
 * All traffic stays on 127.0.0.1. Every wait is bounded by
 * TEST_DEADLINE_SECONDS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/resolver.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/reply.h"
#include "test_smtp_servers.h"
#include "test_support.h"

/* Bounds every wait of these tests. */
#define TEST_DEADLINE_SECONDS 20
#define TEST_RECIPIENTS_MAX 8
#define AUTH_USER "relay-user"
#define AUTH_PASSWORD "relay-secret"

enum sink_port { SINK_PLAIN, SINK_SELF, SINK_CA, SINK_AUTH, SINK_LOGIN, SINK_COUNT };

struct fixture {
	char dir[TEST_DIR_SIZE];
	char path[TEST_DIR_SIZE + 32]; /* scratch */
	char ca_cert[TEST_DIR_SIZE + 16];
	char mx_cert[TEST_DIR_SIZE + 16];
	char mx_key[TEST_DIR_SIZE + 16];
	char self_cert[TEST_DIR_SIZE + 16];
	char self_key[TEST_DIR_SIZE + 16];
	char messages[TEST_DIR_SIZE + 16];
	pid_t sink_pid;
	int ports[SINK_COUNT];
	struct event_base *base;
	struct event *tick; /* wakes the loop so every wait sees its deadline */
	struct resolver *resolver;
	struct connector *connector;
	struct offload *offload;
	int body_count;
};

static struct fixture fx;
static struct test_scripted scripted;

/* ---- helpers ---------------------------------------------------------- */

static int run_command(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run_command(const char *fmt, ...)
{
	char command[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(command, sizeof(command), fmt, ap);
	va_end(ap);
	return system(command) == 0 ? 0 : -1;
}

/* A test CA and a certificate for mx.test signed by it (as tests/it/tlsca.py
 * makes them), and a self-signed one for mx.test. */
static int certificates_make(void)
{
	char err[256] = "";

	if (run_command("cd %s && openssl req -x509 -newkey ec -pkeyopt "
			"ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem -days 30 "
			"-subj '/CN=popgate test CA' -addext basicConstraints=critical,CA:TRUE "
			"-addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1",
			fx.dir) < 0 ||
	    run_command("cd %s && openssl req -new -newkey ec -pkeyopt "
			"ec_paramgen_curve:prime256v1 -nodes -keyout mx.key -out mx.csr "
			"-subj /CN=mx.test >/dev/null 2>&1 && printf "
			"'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature,"
			"keyEncipherment\\nextendedKeyUsage=serverAuth\\nsubjectAltName=DNS:mx."
			"test\\n' > mx.ext && openssl x509 -req -in mx.csr -CA ca.pem -CAkey "
			"ca.key -CAcreateserial -out mx.pem -days 30 -extfile mx.ext "
			">/dev/null 2>&1",
			fx.dir) < 0) {
		fprintf(stderr, "test_smtp_client: cannot make the test CA\n");
		return -1;
	}
	if (tls_ensure_self_signed(fx.self_cert, fx.self_key, "mx.test", err, sizeof(err)) < 0) {
		fprintf(stderr, "test_smtp_client: %s\n", err);
		return -1;
	}
	return 0;
}

/* Starts the aiosmtpd servers and waits for their "ready" mark. */
static int sink_start(void)
{
	char config[4096];

	for (int i = 0; i < SINK_COUNT; i++) {
		fx.ports[i] = test_smtp_free_port();
		if (fx.ports[i] < 0)
			return -1;
	}
	snprintf(config, sizeof(config),
		 "[{\"name\": \"plain\", \"port\": %d, \"pipelining\": true, "
		 "\"refuse\": [\"refused@example.org\"]},"
		 " {\"name\": \"self\", \"port\": %d, \"pipelining\": true, \"cert\": \"%s\", "
		 "\"key\": \"%s\"},"
		 " {\"name\": \"ca\", \"port\": %d, \"cert\": \"%s\", \"key\": \"%s\"},"
		 " {\"name\": \"auth\", \"port\": %d, \"pipelining\": true, \"cert\": \"%s\", "
		 "\"key\": \"%s\", \"auth\": [\"" AUTH_USER "\", \"" AUTH_PASSWORD "\"]},"
		 " {\"name\": \"login\", \"port\": %d, \"cert\": \"%s\", \"key\": \"%s\", "
		 "\"auth\": [\"" AUTH_USER "\", \"" AUTH_PASSWORD "\"], \"login_only\": true}]",
		 fx.ports[SINK_PLAIN], fx.ports[SINK_SELF], fx.self_cert, fx.self_key,
		 fx.ports[SINK_CA], fx.mx_cert, fx.mx_key, fx.ports[SINK_AUTH], fx.mx_cert,
		 fx.mx_key, fx.ports[SINK_LOGIN], fx.mx_cert, fx.mx_key);
	return test_aiosmtpd_start(&fx.sink_pid, fx.dir, config, fx.messages);
}

static void tick_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	(void)ctx;
}

/* Runs the loop until *FLAG, or the deadline; returns *FLAG. */
static bool wait_for(const bool *flag)
{
	int64_t deadline = util_monotonic_ms() + TEST_DEADLINE_SECONDS * 1000;

	while (!*flag && util_monotonic_ms() < deadline)
		event_base_loop(fx.base, EVLOOP_ONCE);
	return *flag;
}

static int group_setup(void **state)
{
	(void)state;
	signal(SIGPIPE, SIG_IGN);
	if (test_dir_make(fx.dir, sizeof(fx.dir), "smtp-client") < 0)
		return -1;
	snprintf(fx.ca_cert, sizeof(fx.ca_cert), "%s/ca.pem", fx.dir);
	snprintf(fx.mx_cert, sizeof(fx.mx_cert), "%s/mx.pem", fx.dir);
	snprintf(fx.mx_key, sizeof(fx.mx_key), "%s/mx.key", fx.dir);
	snprintf(fx.self_cert, sizeof(fx.self_cert), "%s/self.pem", fx.dir);
	snprintf(fx.self_key, sizeof(fx.self_key), "%s/self.key", fx.dir);
	snprintf(fx.messages, sizeof(fx.messages), "%s/messages", fx.dir);
	snprintf(fx.path, sizeof(fx.path), "%s/log", fx.dir);
	if (mkdir(fx.messages, 0700) < 0 || log_open(fx.path, LOG_DEBUG) < 0 ||
	    certificates_make() < 0)
		return -1;
	if (sink_start() < 0) {
		fprintf(stderr, "test_smtp_client: cannot start aiosmtpd\n");
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	test_smtp_child_stop(&fx.sink_pid);
	log_close();
	test_dir_remove(fx.dir);
	return 0;
}

static int setup(void **state)
{
	static const struct timeval tick = {0, 100000};
	char err[256] = "";
	(void)state;

	fx.base = event_base_new();
	/* Literal addresses only: the resolver never asks a name server. */
	fx.resolver = resolver_new(fx.base, "127.0.0.1:9", err, sizeof(err));
	fx.offload = offload_new(fx.base, 1, err, sizeof(err));
	if (fx.base == NULL || fx.resolver == NULL || fx.offload == NULL)
		return -1;
	fx.connector = connector_new(fx.base, fx.resolver);
	fx.tick = event_new(fx.base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(fx.tick, &tick);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	event_free(fx.tick);
	connector_free(&fx.connector);
	offload_free(&fx.offload);
	resolver_free(&fx.resolver);
	event_base_free(fx.base);
	return 0;
}

/* ---- one client, and what its callbacks saw --------------------------------- */

struct run {
	struct smtp_client_config config;
	struct connector_attempt *attempt;
	struct smtp_client *client;
	bool connected;
	bool ready;
	bool ready_ok;
	int ready_code;
	char ready_enhanced[16];
	char ready_error[400];
	bool sent;
	int sent_count;
	int mail_code;
	char mail_enhanced[16];
	char mail_text[300];
	int rcpt_codes[TEST_RECIPIENTS_MAX];
	char rcpt_enhanced[TEST_RECIPIENTS_MAX][16];
	int data_code;
	char data_text[300];
	char error[400];
	bool reusable_in_callback;
	bool closed;
};

static void ready_cb(struct smtp_client *client, const struct smtp_reply *reply, const char *error,
		     void *ctx)
{
	struct run *run = ctx;

	assert_ptr_equal(client, run->client);
	assert_false(run->ready); /* once */
	run->ready = true;
	run->ready_ok = reply == NULL && error == NULL;
	if (reply != NULL) {
		run->ready_code = reply->code;
		snprintf(run->ready_enhanced, sizeof(run->ready_enhanced), "%s", reply->enhanced);
		smtp_reply_format(reply, run->ready_error, sizeof(run->ready_error));
	}
	if (error != NULL)
		snprintf(run->ready_error, sizeof(run->ready_error), "%s", error);
}

static void connected_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct run *run = ctx;

	run->attempt = NULL;
	run->connected = true;
	if (bev == NULL) {
		run->ready = true;
		snprintf(run->ready_error, sizeof(run->ready_error), "connect: %s", error);
		return;
	}
	run->client = smtp_client_new(fx.connector, bev, &run->config, ready_cb, run);
	assert_non_null(run->client);
}

static void run_init(struct run *run, enum smtp_tls_mode mode)
{
	memset(run, 0, sizeof(*run));
	run->config = (struct smtp_client_config){
	    .helo_name = "popgate.test",
	    .server_name = "mx.test",
	    .tls_mode = mode,
	    .ca_file = fx.ca_cert,
	    .timeout_seconds = TEST_DEADLINE_SECONDS / 2,
	    .offload = fx.offload,
	};
}

/* Connects RUN to PORT on 127.0.0.1 and waits for READY. */
static void run_connect(struct run *run, int port)
{
	struct connector_target target = {
	    .host = "127.0.0.1",
	    .port = port,
	    .tls = CONNECTOR_TLS_UPGRADE,
	    .allow_private = true,
	    .timeout = TEST_DEADLINE_SECONDS / 2,
	};
	char err[256] = "";

	run->attempt =
	    connector_connect(fx.connector, &target, connected_cb, run, err, sizeof(err));
	assert_non_null(run->attempt);
	assert_true(wait_for(&run->ready));
}

static void sent_cb(struct smtp_client *client, const struct smtp_client_result *result, void *ctx)
{
	struct run *run = ctx;

	assert_ptr_equal(client, run->client);
	run->sent = true;
	run->sent_count++;
	run->mail_code = result->mail.code;
	snprintf(run->mail_enhanced, sizeof(run->mail_enhanced), "%s", result->mail.enhanced);
	smtp_reply_format(&result->mail, run->mail_text, sizeof(run->mail_text));
	assert_true(result->recipient_count <= TEST_RECIPIENTS_MAX);
	for (size_t i = 0; i < result->recipient_count; i++) {
		run->rcpt_codes[i] = result->recipients[i].code;
		snprintf(run->rcpt_enhanced[i], sizeof(run->rcpt_enhanced[i]), "%s",
			 result->recipients[i].enhanced);
	}
	run->data_code = result->data.code;
	smtp_reply_format(&result->data, run->data_text, sizeof(run->data_text));
	snprintf(run->error, sizeof(run->error), "%s", result->error ? result->error : "");
	run->reusable_in_callback = smtp_client_reusable(client);
}

static void closed_cb(struct smtp_client *client, void *ctx)
{
	struct run *run = ctx;

	assert_ptr_equal(client, run->client);
	assert_false(run->closed); /* once */
	run->closed = true;
}

/* QUITs RUN's client and waits until it is gone. */
static void run_quit(struct run *run)
{
	smtp_client_quit(run->client, closed_cb, run);
	assert_false(run->closed); /* never inside the call */
	assert_true(wait_for(&run->closed));
	run->client = NULL;
}

/* A body file holding TEXT[0..LEN), opened for reading. */
static int body_open(const char *text, size_t len)
{
	char path[TEST_DIR_SIZE + 32];
	int fd;

	snprintf(path, sizeof(path), "%s/body-%d", fx.dir, ++fx.body_count);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	return fd;
}

/* Sends a message with BODY to RECIPIENTS (NULL-ended) and waits for SENT.
 * The body's descriptor is closed right after the call: the client has
 * its own. */
static void run_send(struct run *run, const char *sender, const char *const *recipients,
		     const char *prepend, const char *body, size_t body_len)
{
	size_t count = 0;
	int fd = body_open(body, body_len);

	while (recipients[count] != NULL)
		count++;
	struct smtp_client_message message = {
	    .sender = sender,
	    .recipients = recipients,
	    .recipient_count = count,
	    .prepend = prepend,
	    .body_fd = fd,
	    .body_size = body_len,
	};
	run->sent = false;
	assert_int_equal(smtp_client_send(run->client, &message, sent_cb, run), 0);
	close(fd);
	assert_true(wait_for(&run->sent));
}

/* The saved message ID: its bytes in *TEXT (allocated), its envelope. */
static json_t *message_load(const char *id, char **text, size_t *len)
{
	char path[TEST_DIR_SIZE + 64];
	json_error_t error;
	json_t *meta;

	snprintf(path, sizeof(path), "%s/%s.json", fx.messages, id);
	meta = json_load_file(path, 0, &error);
	if (meta == NULL)
		fail_msg("no saved message %s: %s", id, error.text);
	snprintf(path, sizeof(path), "%s/%s.eml", fx.messages, id);
	assert_int_equal(util_read_file(path, text, len), 0);
	return meta;
}

/* ---- aiosmtpd: delivery ------------------------------------------------------ */

static void test_dot_stuffing_round_trip(void **state)
{
	struct run run;
	static const char *const recipients[] = {"a@example.org", NULL};
	/* Lines that begin with dots, a lone dot, bare LFs, a lone CR, and no
	 * line end at the end. */
	static const char body[] = "Subject: dots\r\n\r\n.\r\n..\r\n.leading\nbare lf\n"
				   "lone cr\rafter\r\n. space\r\nend.";
	static const char expected[] = "X-Test-Id: dots-1\r\nReceived: by popgate.test\r\n"
				       "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nbare lf\r\n"
				       "lone cr\r\nafter\r\n. space\r\nend.\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_true(run.ready_ok);
	const struct smtp_client_capabilities *caps = smtp_client_capabilities(run.client);
	assert_true(caps->pipelining && caps->size && caps->eight_bit_mime && caps->smtputf8);
	assert_false(caps->starttls);
	assert_false(smtp_client_tls_active(run.client));

	run_send(&run, "sender@example.org", recipients,
		 "X-Test-Id: dots-1\r\nReceived: by popgate.test\r\n", body, strlen(body));
	assert_string_equal(run.error, "");
	assert_int_equal(run.mail_code, 250);
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_string_equal(run.rcpt_enhanced[0], "2.1.5");
	assert_int_equal(run.data_code, 250);
	assert_true(run.reusable_in_callback);

	json_t *meta = message_load("dots-1", &text, &len);
	assert_int_equal(len, strlen(expected));
	assert_memory_equal(text, expected, len);
	assert_string_equal(json_string_value(json_object_get(meta, "mail_from")),
			    "sender@example.org");
	assert_false(json_is_true(json_object_get(meta, "tls")));
	/* SIZE= counts the prepended lines and the body as stored. */
	json_t *options = json_object_get(meta, "mail_options");
	char size[32];
	snprintf(size, sizeof(size), "SIZE=%zu",
		 strlen(body) + strlen("X-Test-Id: dots-1\r\nReceived: by popgate.test\r\n"));
	bool size_seen = false, body_seen = false;
	for (size_t i = 0; i < json_array_size(options); i++) {
		const char *option = json_string_value(json_array_get(options, i));
		size_seen = size_seen || strcmp(option, size) == 0;
		body_seen = body_seen || strcmp(option, "BODY=8BITMIME") == 0;
	}
	assert_true(size_seen && body_seen);
	json_decref(meta);
	free(text);
	smtp_client_free(&run.client);
	assert_null(run.client);
}

static void test_per_recipient_results(void **state)
{
	struct run run;
	static const char *const recipients[] = {"a@example.org", "refused@example.org",
						 "b@example.org", NULL};
	static const char body[] = "X-Test-Id: per-recipient\r\n\r\nhello\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_true(run.ready_ok);
	run_send(&run, "", recipients, NULL, body, strlen(body));
	assert_int_equal(run.mail_code, 250);
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.rcpt_codes[1], 550);
	assert_string_equal(run.rcpt_enhanced[1], "5.1.1");
	assert_int_equal(run.rcpt_codes[2], 250);
	assert_int_equal(run.data_code, 250);

	/* Only the accepted ones got it; the null sender went as <>. */
	json_t *meta = message_load("per-recipient", &text, &len);
	json_t *rcpts = json_object_get(meta, "rcpt_tos");
	assert_int_equal(json_array_size(rcpts), 2);
	assert_string_equal(json_string_value(json_array_get(rcpts, 0)), "a@example.org");
	assert_string_equal(json_string_value(json_array_get(rcpts, 1)), "b@example.org");
	assert_string_equal(json_string_value(json_object_get(meta, "mail_from")), "<>");
	json_decref(meta);
	free(text);
	run_quit(&run);
}

/* Every recipient refused: DATA's refusal is taken (pipelined), RSET, and
 * the next message goes on the same connection. */
static void test_all_refused_then_reuse(void **state)
{
	struct run run;
	static const char *const refused[] = {"refused@example.org", NULL};
	static const char *const accepted[] = {"c@example.org", NULL};
	static const char second[] = "X-Test-Id: reuse-2\r\n\r\nsecond\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	run_send(&run, "s@example.org", refused, NULL, "X-Test-Id: reuse-1\r\n\r\nfirst\r\n", 28);
	assert_int_equal(run.mail_code, 250);
	assert_int_equal(run.rcpt_codes[0], 550);
	/* DATA went in the pipeline and was refused: recorded, not a body. */
	assert_true(run.data_code >= 500);
	assert_string_equal(run.error, "");
	assert_true(run.reusable_in_callback);
	assert_true(smtp_client_reusable(run.client));

	run_send(&run, "s@example.org", accepted, NULL, second, strlen(second));
	assert_int_equal(run.sent_count, 2);
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.data_code, 250);
	json_t *meta = message_load("reuse-2", &text, &len);
	assert_memory_equal(text, second, len);
	json_decref(meta);
	free(text);
	run_quit(&run);
}

/* Two messages on one connection, the second sent from inside SENT. */
static void second_from_callback_cb(struct smtp_client *client,
				    const struct smtp_client_result *result, void *ctx);

struct chain {
	struct run *run;
	int fd;
	struct smtp_client_message message;
};

static struct chain chain;

static void second_from_callback_cb(struct smtp_client *client,
				    const struct smtp_client_result *result, void *ctx)
{
	struct run *run = ctx;

	sent_cb(client, result, ctx);
	if (run->sent_count == 1) {
		run->sent = false;
		assert_int_equal(smtp_client_send(client, &chain.message, sent_cb, run), 0);
	}
}

static void test_send_from_callback(void **state)
{
	struct run run;
	static const char *const recipients[] = {"d@example.org", NULL};
	static const char first[] = "X-Test-Id: chain-1\r\n\r\none\r\n";
	static const char second[] = "X-Test-Id: chain-2\r\n\r\ntwo\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	chain.fd = body_open(second, strlen(second));
	chain.message = (struct smtp_client_message){.sender = "s@example.org",
						     .recipients = recipients,
						     .recipient_count = 1,
						     .body_fd = chain.fd,
						     .body_size = strlen(second)};
	int fd = body_open(first, strlen(first));
	struct smtp_client_message message = chain.message;
	message.body_fd = fd;
	message.body_size = strlen(first);
	assert_int_equal(smtp_client_send(run.client, &message, second_from_callback_cb, &run), 0);
	/* Not ready while busy with a message. */
	assert_false(smtp_client_reusable(run.client));
	assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), -1);
	close(fd);
	while (run.sent_count < 2 && wait_for(&run.sent))
		if (run.sent_count < 2)
			run.sent = false;
	assert_int_equal(run.sent_count, 2);
	close(chain.fd);
	json_decref(message_load("chain-1", &text, &len));
	free(text);
	json_decref(message_load("chain-2", &text, &len));
	assert_memory_equal(text, second, len);
	free(text);
	smtp_client_free(&run.client);
}

/* A body of several megabytes: streamed under the output's high-water
 * mark, and read by the offload thread once out of the page cache. */
static void test_large_body(void **state)
{
	struct run run;
	static const char *const recipients[] = {"big@example.org", NULL};
	size_t size = 3 * 1024 * 1024 + 17, pos = 0;
	char *body = malloc(size);
	char *text = NULL;
	size_t len = 0;
	unsigned line = 0;
	(void)state;

	assert_non_null(body);
	pos += (size_t)sprintf(body, "X-Test-Id: large\r\n\r\n");
	/* Lines of varied length, every seventh starting with a dot. */
	while (pos < size - 2) {
		int n = snprintf(body + pos, size - pos, "%sline %u %.*s\r\n",
				 line % 7 == 0 ? "." : "", line, (int)(line % 97),
				 "0123456789"
				 "0123456789012345678901234567890123456789012345678901234567890123"
				 "4567890123456789012345");
		if (n < 0 || (size_t)n >= size - pos)
			break;
		pos += (size_t)n;
		line++;
	}
	size = pos;
	int fd = body_open(body, size);
	/* Out of the page cache: RWF_NOWAIT then says EAGAIN. */
	assert_int_equal(fdatasync(fd), 0);
	assert_int_equal(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	struct smtp_client_message message = {.sender = "s@example.org",
					      .recipients = recipients,
					      .recipient_count = 1,
					      .body_fd = fd,
					      .body_size = size};
	assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), 0);
	close(fd);
	assert_true(wait_for(&run.sent));
	assert_string_equal(run.error, "");
	assert_int_equal(run.data_code, 250);
	json_decref(message_load("large", &text, &len));
	assert_int_equal(len, size);
	assert_memory_equal(text, body, size);
	free(text);
	free(body);
	smtp_client_free(&run.client);
}

/* ---- aiosmtpd: STARTTLS and AUTH ------------------------------------------- */

static void test_tls_opportunistic(void **state)
{
	struct run run;
	static const char *const recipients[] = {"e@example.org", NULL};
	static const char body[] = "X-Test-Id: opportunistic\r\n\r\nover TLS\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	/* Offered: taken, the self-signed certificate not checked. */
	run_init(&run, SMTP_TLS_OPPORTUNISTIC);
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_true(run.ready_ok);
	assert_true(smtp_client_tls_active(run.client));
	/* The EHLO after STARTTLS: STARTTLS is not offered again. */
	assert_false(smtp_client_capabilities(run.client)->starttls);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.data_code, 250);
	json_t *meta = message_load("opportunistic", &text, &len);
	assert_true(json_is_true(json_object_get(meta, "tls")));
	json_decref(meta);
	free(text);
	run_quit(&run);

	/* Not offered: plain. */
	run_init(&run, SMTP_TLS_OPPORTUNISTIC);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_true(run.ready_ok);
	assert_false(smtp_client_tls_active(run.client));
	run_quit(&run);
}

static void test_tls_required(void **state)
{
	struct run run;
	(void)state;

	run_init(&run, SMTP_TLS_REQUIRED);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_false(run.ready_ok);
	assert_int_equal(run.ready_code, 0);
	assert_non_null(strstr(run.ready_error, "does not offer STARTTLS"));
	smtp_client_free(&run.client);

	/* Self-signed is fine: REQUIRED does not verify. */
	run_init(&run, SMTP_TLS_REQUIRED);
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_true(run.ready_ok);
	assert_true(smtp_client_tls_active(run.client));
	run_quit(&run);
}

/* The SHA-256 of the SubjectPublicKeyInfo of the certificate in PATH
 * (TLSA selector 1, matching type 1). */
static void spki_sha256(const char *path, uint8_t digest[32])
{
	FILE *f = fopen(path, "r");
	X509 *cert;
	unsigned char *der = NULL;
	int len;

	assert_non_null(f);
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(cert);
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
	assert_true(len > 0);
	SHA256(der, (size_t)len, digest);
	OPENSSL_free(der);
	X509_free(cert);
}

static void test_tls_dane(void **state)
{
	struct run run;
	uint8_t digest[32];
	struct resolver_tlsa record = {3, 1, 1, digest, sizeof(digest)};
	(void)state;

	/* DANE-EE: the self-signed certificate's key is the one published; no
	 * CA, no name, no dates matter (RFC 7672 3.1.1). */
	spki_sha256(fx.self_cert, digest);
	run_init(&run, SMTP_TLS_DANE);
	run.config.tlsa = &record;
	run.config.tlsa_count = 1;
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_true(run.ready_ok);
	assert_true(smtp_client_tls_active(run.client));
	run_quit(&run);

	/* Another key: the handshake fails on the certificate. */
	digest[0] ^= 0xff;
	run_init(&run, SMTP_TLS_DANE);
	run.config.tlsa = &record;
	run.config.tlsa_count = 1;
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_false(run.ready_ok);
	assert_true(smtp_client_tls_failed(run.client));
	assert_int_equal(smtp_client_tls_verify_result(run.client), X509_V_ERR_DANE_NO_MATCH);
	smtp_client_free(&run.client);

	/* Only a PKIX usage (not for SMTP): nothing could authenticate the
	 * server, so no handshake is even tried. */
	digest[0] ^= 0xff;
	record.usage = 1;
	run_init(&run, SMTP_TLS_DANE);
	run.config.tlsa = &record;
	run.config.tlsa_count = 1;
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "DANE: none of the 1 TLSA records is usable"));
	smtp_client_free(&run.client);

	/* No STARTTLS: never plain text. */
	record.usage = 3;
	run_init(&run, SMTP_TLS_DANE);
	run.config.tlsa = &record;
	run.config.tlsa_count = 1;
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "does not offer STARTTLS"));
	smtp_client_free(&run.client);
}

static void test_tls_verified(void **state)
{
	struct run run;
	static const char *const recipients[] = {"f@example.org", NULL};
	static const char body[] = "X-Test-Id: verified\r\n\r\nverified\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	/* The self-signed certificate is not from the CA. */
	run_init(&run, SMTP_TLS_VERIFIED);
	run_connect(&run, fx.ports[SINK_SELF]);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "TLS error"));
	assert_true(smtp_client_tls_failed(run.client));
	assert_int_not_equal(smtp_client_tls_verify_result(run.client), X509_V_OK);
	smtp_client_free(&run.client);

	/* From the CA, for the name asked: verified. Without PIPELINING. */
	run_init(&run, SMTP_TLS_VERIFIED);
	run_connect(&run, fx.ports[SINK_CA]);
	assert_true(run.ready_ok);
	assert_true(smtp_client_tls_active(run.client));
	assert_false(smtp_client_capabilities(run.client)->pipelining);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.data_code, 250);
	json_t *meta = message_load("verified", &text, &len);
	assert_true(json_is_true(json_object_get(meta, "tls")));
	json_decref(meta);
	free(text);
	run_quit(&run);

	/* From the CA, but for another name. */
	run_init(&run, SMTP_TLS_VERIFIED);
	run.config.server_name = "other.test";
	run_connect(&run, fx.ports[SINK_CA]);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "TLS error"));
	smtp_client_free(&run.client);

	/* Never a plain session in VERIFIED mode. */
	run_init(&run, SMTP_TLS_VERIFIED);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_false(run.ready_ok);
	assert_false(smtp_client_tls_failed(run.client)); /* no handshake was tried */
	smtp_client_free(&run.client);
}

static void test_auth(void **state)
{
	struct run run;
	static const char *const recipients[] = {"g@example.org", NULL};
	static const char body[] = "X-Test-Id: auth-plain\r\n\r\nauthenticated\r\n";
	static const char login_body[] = "X-Test-Id: auth-login\r\n\r\nauthenticated\r\n";
	char *text = NULL;
	size_t len = 0;
	(void)state;

	/* AUTH PLAIN after STARTTLS. */
	run_init(&run, SMTP_TLS_VERIFIED);
	run.config.auth_user = AUTH_USER;
	run.config.auth_password = AUTH_PASSWORD;
	run_connect(&run, fx.ports[SINK_AUTH]);
	assert_true(run.ready_ok);
	assert_true(smtp_client_authenticated(run.client));
	assert_true(smtp_client_capabilities(run.client)->auth_plain);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.data_code, 250);
	json_t *meta = message_load("auth-plain", &text, &len);
	assert_string_equal(json_string_value(json_object_get(meta, "login")), AUTH_USER);
	json_decref(meta);
	free(text);
	run_quit(&run);

	/* AUTH LOGIN where PLAIN is not offered. */
	run_init(&run, SMTP_TLS_REQUIRED);
	run.config.auth_user = AUTH_USER;
	run.config.auth_password = AUTH_PASSWORD;
	run_connect(&run, fx.ports[SINK_LOGIN]);
	assert_true(run.ready_ok);
	assert_false(smtp_client_capabilities(run.client)->auth_plain);
	assert_true(smtp_client_authenticated(run.client));
	run_send(&run, "s@example.org", recipients, NULL, login_body, strlen(login_body));
	assert_int_equal(run.data_code, 250);
	meta = message_load("auth-login", &text, &len);
	assert_string_equal(json_string_value(json_object_get(meta, "login")), AUTH_USER);
	json_decref(meta);
	free(text);
	run_quit(&run);

	/* A wrong password: the server's refusal is the ready reply. */
	run_init(&run, SMTP_TLS_REQUIRED);
	run.config.auth_user = AUTH_USER;
	run.config.auth_password = "wrong";
	run_connect(&run, fx.ports[SINK_AUTH]);
	assert_false(run.ready_ok);
	assert_int_equal(run.ready_code, 535);
	smtp_client_free(&run.client);

	/* Credentials and no TLS: refused here, before anything is sent. */
	run_init(&run, SMTP_TLS_NONE);
	run.config.auth_user = AUTH_USER;
	run.config.auth_password = AUTH_PASSWORD;
	run_connect(&run, fx.ports[SINK_AUTH]);
	assert_false(run.ready_ok);
	assert_int_equal(run.ready_code, 0);
	assert_non_null(strstr(run.ready_error, "without TLS"));
	smtp_client_free(&run.client);

	/* Opportunistic against a server without STARTTLS: plain, so no AUTH. */
	run_init(&run, SMTP_TLS_OPPORTUNISTIC);
	run.config.auth_user = AUTH_USER;
	run.config.auth_password = AUTH_PASSWORD;
	run_connect(&run, fx.ports[SINK_PLAIN]);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "without TLS"));
	smtp_client_free(&run.client);
}

/* ---- smtp-sink ------------------------------------------------------------- */

static void test_helo_fallback(void **state)
{
	static const char *const options[] = {"-e", NULL};
	static const char *const recipients[] = {"h@example.org", NULL};
	static const char body[] = "Subject: helo\r\n\r\nhello\r\n";
	struct run run;
	pid_t pid;
	(void)state;

	int port = test_smtp_sink_start(&pid, options);
	run_init(&run, SMTP_TLS_OPPORTUNISTIC);
	run_connect(&run, port);
	assert_true(run.ready_ok);
	const struct smtp_client_capabilities *caps = smtp_client_capabilities(run.client);
	assert_false(caps->pipelining || caps->size || caps->starttls);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.mail_code, 250);
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.data_code, 250);
	run_quit(&run);
	test_smtp_child_stop(&pid);
}

/* No PIPELINING, every RCPT refused with 4yz: RSET, no DATA, reusable. */
static void test_rcpt_refused_no_pipelining(void **state)
{
	static const char *const options[] = {"-r", "RCPT", NULL};
	static const char *const recipients[] = {"i@example.org", "j@example.org", NULL};
	static const char body[] = "Subject: x\r\n\r\nx\r\n";
	struct run run;
	pid_t pid;
	(void)state;

	int port = test_smtp_sink_start(&pid, options);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, port);
	assert_true(run.ready_ok);
	assert_false(smtp_client_capabilities(run.client)->pipelining);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.mail_code, 250);
	assert_true(run.rcpt_codes[0] >= 400 && run.rcpt_codes[0] < 500);
	assert_true(run.rcpt_codes[1] >= 400 && run.rcpt_codes[1] < 500);
	assert_int_equal(run.data_code, 0);
	assert_string_equal(run.error, "");
	assert_true(smtp_client_reusable(run.client));
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.sent_count, 2);
	run_quit(&run);
	test_smtp_child_stop(&pid);
}

static const char *const ehlo_pipelining[] = {
    "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 ENHANCEDSTATUSCODES\r\n"};

/* Garbage where the greeting should be. */
static void test_scripted_garbage(void **state)
{
	static const char *const replies[] = {NULL};
	static const struct test_script script = {.greeting = "* OK IMAP4 ready\r\n",
						  .replies = replies};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "malformed reply"));
	assert_false(smtp_client_reusable(run.client));
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* A line with no end, longer than the limit. */
static void test_scripted_overlong(void **state)
{
	static const char *const replies[] = {NULL};
	char *greeting = malloc(3 * SMTP_REPLY_LINE_MAX);
	struct test_script script = {.replies = replies};
	struct run run;
	(void)state;

	assert_non_null(greeting);
	memcpy(greeting, "220 ", 4);
	memset(greeting + 4, 'x', 3 * SMTP_REPLY_LINE_MAX - 5);
	greeting[3 * SMTP_REPLY_LINE_MAX - 1] = '\0';
	script.greeting = greeting;
	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "longer than"));
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
	free(greeting);
}

/* A server that never greets: the reply timeout. */
static void test_scripted_silence(void **state)
{
	static const char *const replies[] = {NULL};
	static const struct test_script script = {.greeting = NULL, .replies = replies};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run.config.timeout_seconds = 1;
	run_connect(&run, scripted.port);
	assert_false(run.ready_ok);
	assert_non_null(strstr(run.ready_error, "timeout in state greeting"));
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* A multi-line greeting and EHLO reply a byte at a time; then the SIZE the
 * server announced answers an oversized message without a word to it. */
static void test_scripted_drip_and_size(void **state)
{
	static const char *const replies[] = {ehlo_pipelining[0], "221 2.0.0 bye\r\n", NULL};
	static const struct test_script script = {
	    .greeting = "220-mx.test\r\n220-second line\r\n220 ESMTP\r\n",
	    .replies = replies,
	    .drip = true};
	static const char *const recipients[] = {"k@example.org", NULL};
	char body[200];
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_true(run.ready_ok);
	const struct smtp_client_capabilities *caps = smtp_client_capabilities(run.client);
	assert_true(caps->pipelining && caps->size && caps->enhanced_status_codes);
	assert_true(caps->size_max == 100);

	memset(body, 'y', sizeof(body));
	run_send(&run, "s@example.org", recipients, NULL, body, sizeof(body));
	assert_int_equal(run.mail_code, 552);
	assert_string_equal(run.mail_enhanced, "5.3.4");
	assert_non_null(strstr(run.mail_text, "(popgate)"));
	assert_int_equal(run.rcpt_codes[0], 0);
	assert_true(run.reusable_in_callback);
	/* Nothing but EHLO went to the server. */
	assert_string_equal(scripted.received, "EHLO popgate.test|");

	/* QUIT: sent, answered, the connection closed. */
	run_quit(&run);
	assert_true(wait_for(&scripted.closed));
	assert_string_equal(scripted.received, "EHLO popgate.test|QUIT|");
	test_scripted_stop(&scripted);
}

/* The pipelined commands in order, and a connection closed after the body
 * before its reply: an error, and no DATA reply (the message may or may
 * not have been taken: the caller tries again). */
static void test_scripted_closed_in_body(void **state)
{
	static const char *const replies[] = {
	    "250-mx.test\r\n250 PIPELINING\r\n",
	    "250 2.1.0 ok\r\n",
	    "250 2.1.5 ok\r\n",
	    "354 go\r\n",
	    NULL, /* the final dot closes the connection */
	};
	static const struct test_script script = {.greeting = "220 mx.test\r\n",
						  .replies = replies};
	static const char *const recipients[] = {"l@example.org", NULL};
	static const char body[] = "a\r\n.\r\nb\r\n";
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_true(run.ready_ok);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.mail_code, 250);
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.data_code, 0);
	assert_non_null(strstr(run.error, "closed"));
	assert_false(run.reusable_in_callback);
	assert_string_equal(scripted.received,
			    "EHLO popgate.test|MAIL FROM:<s@example.org>|RCPT TO:<l@example.org>|"
			    "DATA|");
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* The server says 421 while the client is idle: no longer reusable. */
static void test_scripted_idle_421(void **state)
{
	static const char *const replies[] = {"250 mx.test\r\n", NULL};
	static const struct test_script script = {.greeting = "220 mx.test\r\n",
						  .replies = replies};
	static const char *const recipients[] = {"m@example.org", NULL};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_true(run.ready_ok);
	assert_true(smtp_client_reusable(run.client));
	bufferevent_write(scripted.bev, "421 4.3.2 shutting down\r\n", 25);
	int64_t deadline = util_monotonic_ms() + TEST_DEADLINE_SECONDS * 1000;
	while (smtp_client_reusable(run.client) && util_monotonic_ms() < deadline)
		event_base_loop(fx.base, EVLOOP_ONCE);
	assert_false(smtp_client_reusable(run.client));
	int fd = body_open("x\r\n", 3);
	struct smtp_client_message message = {.sender = "s@example.org",
					      .recipients = recipients,
					      .recipient_count = 1,
					      .body_fd = fd,
					      .body_size = 3};
	assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), -1);
	close(fd);
	run_quit(&run); /* not reusable: closed at once, CLOSED from the loop */
	test_scripted_stop(&scripted);
}

/* STARTTLS command injection (the client side of CVE-2011-0411): a
 * reply placed behind the 220 in the plain stream must not be read as the
 * answer to the EHLO sent over TLS. */
static void test_scripted_starttls_injection(void **state)
{
	static const char *const replies[] = {
	    "250-mx.test\r\n250 STARTTLS\r\n",
	    "220 2.0.0 go ahead\r\n250-injected.test\r\n250 SIZE 5\r\n",
	    "250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
	    "221 2.0.0 bye\r\n",
	    NULL,
	};
	static const struct test_script script = {
	    .greeting = "220 mx.test\r\n", .replies = replies, .starttls = true};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_REQUIRED);
	run_connect(&run, scripted.port);
	assert_true(run.ready_ok);
	assert_true(smtp_client_tls_active(run.client));
	/* The capabilities are those said over TLS. */
	assert_true(smtp_client_capabilities(run.client)->pipelining);
	assert_true(smtp_client_capabilities(run.client)->size_max == 1000);
	run_quit(&run);
	assert_true(wait_for(&scripted.closed));
	assert_string_equal(scripted.received,
			    "EHLO popgate.test|STARTTLS|EHLO popgate.test|QUIT|");
	test_scripted_stop(&scripted);
}

/* MAIL refused: the RCPT and DATA replies a pipelining server gives after
 * it (503s) are not the recipients' outcome; RSET follows, the client stays
 * usable. Without PIPELINING nothing follows the MAIL but the RSET. */
static void test_scripted_mail_refused(void **state)
{
	static const char *const pipelined[] = {
	    "250-mx.test\r\n250 PIPELINING\r\n",
	    "451 4.3.0 try again later\r\n",
	    "503 5.5.1 MAIL first\r\n",
	    "503 5.5.1 RCPT first\r\n",
	    "250 2.0.0 reset\r\n",
	    NULL,
	};
	static const char *const plain[] = {
	    "250 mx.test\r\n",
	    "550 5.7.1 not you\r\n",
	    "250 2.0.0 reset\r\n",
	    NULL,
	};
	static const struct test_script pipelined_script = {.greeting = "220 mx.test\r\n",
							    .replies = pipelined};
	static const struct test_script plain_script = {.greeting = "220 mx.test\r\n",
							.replies = plain};
	static const char *const recipients[] = {"n@example.org", NULL};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &pipelined_script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	run_send(&run, "s@example.org", recipients, NULL, "x\r\n", 3);
	assert_int_equal(run.mail_code, 451);
	assert_string_equal(run.mail_enhanced, "4.3.0");
	assert_int_equal(run.rcpt_codes[0], 0);
	assert_int_equal(run.data_code, 0);
	assert_string_equal(run.error, "");
	assert_true(run.reusable_in_callback);
	assert_string_equal(scripted.received, "EHLO popgate.test|MAIL FROM:<s@example.org>|"
					       "RCPT TO:<n@example.org>|DATA|RSET|");
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);

	test_scripted_start(&scripted, fx.base, &plain_script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	run_send(&run, "s@example.org", recipients, NULL, "x\r\n", 3);
	assert_int_equal(run.mail_code, 550);
	assert_int_equal(run.rcpt_codes[0], 0);
	assert_true(run.reusable_in_callback);
	assert_string_equal(scripted.received, "EHLO popgate.test|MAIL FROM:<s@example.org>|RSET|");
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* An address that needs SMTPUTF8: declared where offered (aiosmtpd), an
 * early 553 5.6.7 where not, with nothing sent. */
static void test_smtputf8(void **state)
{
	static const char *const replies[] = {"250 mx.test\r\n", NULL};
	static const struct test_script script = {.greeting = "220 mx.test\r\n",
						  .replies = replies};
	static const char *const recipients[] = {"j\xc3\xbcrg@example.org", NULL};
	static const char body[] = "X-Test-Id: utf8\r\n\r\nutf8\r\n";
	char *text = NULL;
	size_t len = 0;
	struct run run;
	(void)state;

	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, fx.ports[SINK_PLAIN]);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.data_code, 250);
	json_t *meta = message_load("utf8", &text, &len);
	json_t *options = json_object_get(meta, "mail_options");
	bool declared = false;
	for (size_t i = 0; i < json_array_size(options); i++)
		declared = declared ||
			   strcmp(json_string_value(json_array_get(options, i)), "SMTPUTF8") == 0;
	assert_true(declared);
	json_decref(meta);
	free(text);
	smtp_client_free(&run.client);

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	run_send(&run, "s@example.org", recipients, NULL, body, strlen(body));
	assert_int_equal(run.mail_code, 553);
	assert_string_equal(run.mail_enhanced, "5.6.7");
	assert_true(run.reusable_in_callback);
	assert_string_equal(scripted.received, "EHLO popgate.test|");
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* A body file shorter than the size given: the connection ends before the
 * final dot, so the server drops the message, and SENT says why. */
static void test_body_short(void **state)
{
	static const char *const replies[] = {"250 mx.test\r\n",
					      "250 ok\r\n",
					      "250 ok\r\n",
					      "354 go\r\n",
					      "250 must not be reached\r\n",
					      NULL};
	static const struct test_script script = {.greeting = "220 mx.test\r\n",
						  .replies = replies};
	static const char *const recipients[] = {"o@example.org", NULL};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	int fd = body_open("abc\r\n", 5);
	struct smtp_client_message message = {.sender = "s@example.org",
					      .recipients = recipients,
					      .recipient_count = 1,
					      .body_fd = fd,
					      .body_size = 100};
	assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), 0);
	close(fd);
	assert_true(wait_for(&run.sent));
	assert_non_null(strstr(run.error, "95 bytes before its size"));
	assert_int_equal(run.rcpt_codes[0], 250);
	assert_int_equal(run.data_code, 0);
	assert_false(run.reusable_in_callback);
	assert_true(wait_for(&scripted.closed));
	/* The server saw the body begin, never its end. */
	assert_true(scripted.in_body);
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* A configuration without a name, or with a CR in one: no client, the
 * connection freed (LeakSanitizer checks that). */
static void test_new_refuses_bad_config(void **state)
{
	struct smtp_client_config config = {.helo_name = "popgate.test",
					    .server_name = "mx.test",
					    .timeout_seconds = 5,
					    .offload = fx.offload};
	const char *bad_helo[] = {NULL, "", "a b", "a\r\nMAIL FROM:<x>"};
	(void)state;

	for (size_t i = 0; i < sizeof(bad_helo) / sizeof(bad_helo[0]); i++) {
		struct bufferevent *bev =
		    bufferevent_socket_new(fx.base, -1, BEV_OPT_CLOSE_ON_FREE);
		config.helo_name = bad_helo[i];
		assert_null(smtp_client_new(fx.connector, bev, &config, ready_cb, NULL));
	}
	config.helo_name = "popgate.test";
	config.offload = NULL;
	struct bufferevent *bev = bufferevent_socket_new(fx.base, -1, BEV_OPT_CLOSE_ON_FREE);
	assert_null(smtp_client_new(fx.connector, bev, &config, ready_cb, NULL));
}

/* Addresses that would smuggle commands, or break the path: refused, with
 * nothing sent and the client still ready. */
static void test_send_refuses_bad_addresses(void **state)
{
	static const char *const replies[] = {"250 mx.test\r\n", NULL};
	static const struct test_script script = {.greeting = "220 mx.test\r\n",
						  .replies = replies};
	static const char *const bad[] = {"a@example.org\r\nRCPT TO:<b@example.org>",
					  "a>@example.org", "", "a\t@example.org"};
	struct run run;
	(void)state;

	test_scripted_start(&scripted, fx.base, &script, fx.self_cert, fx.self_key);
	run_init(&run, SMTP_TLS_NONE);
	run_connect(&run, scripted.port);
	assert_true(run.ready_ok);
	int fd = body_open("x\r\n", 3);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *recipients[] = {bad[i]};
		struct smtp_client_message message = {.sender = "s@example.org",
						      .recipients = recipients,
						      .recipient_count = 1,
						      .body_fd = fd,
						      .body_size = 3};
		assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), -1);
		message.sender = bad[i][0] != '\0' ? bad[i] : "x\n";
		message.recipients = (const char *const[]){"ok@example.org"};
		assert_int_equal(smtp_client_send(run.client, &message, sent_cb, &run), -1);
	}
	struct smtp_client_message none = {.sender = "s@example.org", .body_fd = fd};
	assert_int_equal(smtp_client_send(run.client, &none, sent_cb, &run), -1);
	close(fd);
	assert_true(smtp_client_reusable(run.client));
	assert_string_equal(scripted.received, "EHLO popgate.test|");
	smtp_client_free(&run.client);
	test_scripted_stop(&scripted);
}

/* ---- the dot encoder ---------------------------------------------------------- */

static size_t encode_split(const char *in, size_t len, size_t split, char *out)
{
	struct smtp_dot_encoder encoder;
	size_t used;

	smtp_dot_encoder_init(&encoder);
	used = smtp_dot_encode(&encoder, in, split, out);
	used += smtp_dot_encode(&encoder, in + split, len - split, out + used);
	used += smtp_dot_encoder_finish(&encoder, out + used);
	return used;
}

static void test_dot_encoder(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"", ".\r\n"},
	    {"a\r\n", "a\r\n.\r\n"},
	    {"a", "a\r\n.\r\n"},
	    {".", "..\r\n.\r\n"},
	    {".\r\n.\r\n", "..\r\n..\r\n.\r\n"},
	    {"a\n.b\n", "a\r\n..b\r\n.\r\n"},
	    {"a\r.b", "a\r\n..b\r\n.\r\n"},
	    {"a\r", "a\r\n.\r\n"},
	    {"x.y\r\n", "x.y\r\n.\r\n"},
	    {"\n\n", "\r\n\r\n.\r\n"},
	    {"\r\r", "\r\n\r\n.\r\n"},
	};
	char out[64];
	(void)state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].in);
		for (size_t split = 0; split <= len; split++) {
			size_t used = encode_split(cases[i].in, len, split, out);
			out[used] = '\0';
			assert_string_equal(out, cases[i].out);
			/* Within the room the header promises: 2 * len + 1, and 5. */
			assert_true(used <= 2 * len + 1 + 5);
		}
	}
}

/* The encoding byte by byte, as smtp_dot_encode did before it copied runs:
 * the reference its output must equal. */
static size_t dot_reference(const char *in, size_t len, char *out)
{
	bool after_cr = false;
	bool line_start = true;
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (after_cr && c != '\n') {
			out[used++] = '\n';
			line_start = true;
		}
		if (c == '\n' && !after_cr)
			out[used++] = '\r';
		if (c == '.' && line_start)
			out[used++] = '.';
		out[used++] = c;
		after_cr = c == '\r';
		line_start = c == '\n';
	}
	if (after_cr) {
		out[used++] = '\n';
	} else if (!line_start) {
		out[used++] = '\r';
		out[used++] = '\n';
	}
	memcpy(out + used, ".\r\n", 3);
	return used + 3;
}

static void test_dot_encoder_equals_bytewise(void **state)
{
	/* Line ends, dots, NULs and high bytes, in runs of every length. */
	static const char alphabet[] = {'a', '.', '.', '\r', '\n', '\0', (char)0xff, ' '};
	char *in = xmalloc(600);
	char *out = xmalloc(2 * 600 + 6);
	char *expected = xmalloc(2 * 600 + 6);
	uint32_t seed = 4242;

	(void)state;
	for (int round = 0; round < 5000; round++) {
		size_t len;
		size_t split;
		size_t used;
		size_t want;

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
		used = encode_split(in, len, split, out);
		want = dot_reference(in, len, expected);
		assert_int_equal(used, want);
		assert_memory_equal(out, expected, want);
	}
	free(expected);
	free(out);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_dot_stuffing_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_per_recipient_results, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_all_refused_then_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_from_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_large_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_opportunistic, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_required, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_verified, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_dane, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_helo_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rcpt_refused_no_pipelining, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_overlong, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_silence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_drip_and_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_closed_in_body, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_idle_421, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_starttls_injection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scripted_mail_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_smtputf8, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_body_short, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_refuses_bad_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_send_refuses_bad_addresses, setup, teardown),
	    cmocka_unit_test(test_dot_encoder),
	    cmocka_unit_test(test_dot_encoder_equals_bytewise),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
