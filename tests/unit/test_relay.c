/*
 * test_relay.c — the delivery scheduler with real parts: a store in a temp
 * folder with outbound messages (rows and spool bodies), the writer thread,
 * dnsmasq answering MX and A records, aiosmtpd sinks on 127.0.0.x, and the
 * relay in a real event loop. Asserts per-recipient delivery, MX preference
 * and fall-back to the next MX when the first refuses the connection, the
 * implicit MX, a null MX failing at once, 4xx retried and 5xx failing that
 * recipient only with a DSN queued, the queue lifetime bouncing, a
 * transport rule overriding MX, connection reuse, the per-destination and
 * global connection limits, and a restart resuming.
 *
 * The sinks log each EHLO (one per connection: they offer no STARTTLS) and
 * each message, as JSON lines; a recipient whose local part begins with
 * "tempfail" gets 451, "reject" gets 550.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>

#include <cmocka.h>
#include <event2/event.h>
#include <sodium.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/offload.h"
#include "core/resolver.h"
#include "core/util.h"
#include "smtp/relay.h"
#include "store/envelope.h"
#include "store/spool.h"
#include "store/transport.h"
#include "store/writer.h"

#include "test_dnsmasq.h"
#include "test_support.h"

#define PYTHON "/usr/bin/python3"
/* Bounds every wait for a state, in seconds. */
#define DEADLINE_SECONDS 30

/* The MX hosts: mx1 refuses connections (nothing listens), mx2 and the
 * relay host are sinks. */
#define MX1_ADDRESS "127.0.0.10"
#define MX2_ADDRESS "127.0.0.11"
#define RULE_ADDRESS "127.0.0.12"
#define LATE_ADDRESS "127.0.0.13"

static const char sink_script[] =
    "import json, signal, sys\n"
    "from aiosmtpd.controller import Controller\n"
    "host, port, log = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
    "def emit(d):\n"
    "    with open(log, 'a') as f:\n"
    "        f.write(json.dumps(d) + '\\n')\n"
    "class Handler:\n"
    "    async def handle_EHLO(self, server, session, envelope, hostname, responses):\n"
    "        session.host_name = hostname\n"
    "        emit({'event': 'ehlo', 'name': hostname})\n"
    "        return responses\n"
    "    async def handle_RCPT(self, server, session, envelope, address, options):\n"
    "        local = address.split('@')[0]\n"
    "        if local.startswith('tempfail'):\n"
    "            return '451 4.3.0 try again later'\n"
    "        if local.startswith('reject'):\n"
    "            return '550 5.1.1 no such user'\n"
    "        envelope.rcpt_tos.append(address)\n"
    "        return '250 2.1.5 ok'\n"
    "    async def handle_DATA(self, server, session, envelope):\n"
    "        emit({'event': 'message', 'from': envelope.mail_from,\n"
    "              'rcpts': envelope.rcpt_tos, 'size': len(envelope.content)})\n"
    "        return '250 2.0.0 accepted'\n"
    "c = Controller(Handler(), hostname=host, port=port)\n"
    "c.start()\n"
    "print('ready', flush=True)\n"
    "signal.sigwait({signal.SIGTERM, signal.SIGINT})\n"
    "c.stop()\n";

struct sink {
	pid_t pid;
	char log[TEST_DIR_SIZE + 32];
};

/* The group's fixture: dnsmasq, the sinks, the port they share. */
static struct {
	char dir[TEST_DIR_SIZE];
	struct test_dnsmasq dns;
	int port;
	struct sink mx2, rule;
} group;

/* One test's fixture. */
struct fixture {
	struct test_store ts;
	struct event_base *base;
	struct resolver *resolver;
	struct offload *offload;
	struct writer *writer;
	struct relay *relay;
	struct popgate_config cfg;
	struct popgate_config *cfg_p;
	struct crypto_key key;
	int dsn_count;
};

static bool sink_accepts(const char *address, int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	inet_pton(AF_INET, address, &sin.sin_addr);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

static int sink_start(struct sink *sink, const char *address, int port, const char *name)
{
	char script[TEST_DIR_SIZE + 16], port_text[16];

	snprintf(script, sizeof(script), "%s/sink.py", group.dir);
	snprintf(sink->log, sizeof(sink->log), "%s/%s.log", group.dir, name);
	snprintf(port_text, sizeof(port_text), "%d", port);
	sink->pid = fork();
	if (sink->pid < 0)
		return -1;
	if (sink->pid == 0) {
		/* Not the test's output: a sink outliving a crashed test would
		 * hold its pipe open (scripts/run-unit.sh would wait on it). */
		char errors[TEST_DIR_SIZE + 40];
		int null = open("/dev/null", O_RDWR), err_fd;

		snprintf(errors, sizeof(errors), "%s.stderr", sink->log);
		err_fd = open(errors, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(err_fd >= 0 ? err_fd : null, STDERR_FILENO);
		execl(PYTHON, PYTHON, script, address, port_text, sink->log, (char *)NULL);
		_exit(127);
	}
	/* The controller answers once it listens; its own check says nothing
	 * in the log (no EHLO). */
	for (int i = 0; i < DEADLINE_SECONDS * 20; i++) {
		if (sink_accepts(address, port))
			return 0;
		usleep(50000);
	}
	return -1;
}

static void sink_stop(struct sink *sink)
{
	if (sink->pid > 0) {
		kill(sink->pid, SIGTERM);
		waitpid(sink->pid, NULL, 0);
		sink->pid = 0;
	}
}

/* Lines of SINK's log that hold NEEDLE. */
static int sink_count(const struct sink *sink, const char *needle)
{
	FILE *f = fopen(sink->log, "r");
	char line[4096];
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

static void sink_clear(const struct sink *sink)
{
	FILE *f = fopen(sink->log, "w");

	if (f != NULL)
		fclose(f);
}

static int group_setup(void **state)
{
	static const char *const records[] = {
	    "mx-host=mail.test,mx2.mail.test,20",
	    "mx-host=mail.test,mx1.mail.test,10",
	    "host-record=mx1.mail.test," MX1_ADDRESS,
	    "host-record=mx2.mail.test," MX2_ADDRESS,
	    "mx-host=nullmx.test,.,0",
	    "host-record=plain.test," MX2_ADDRESS,
	    /* Answered here: NODATA for its MX, not a refusal. */
	    "local=/plain.test/",
	    "mx-host=late.test,mx.late.test,10",
	    "host-record=mx.late.test," LATE_ADDRESS,
	};
	char script[TEST_DIR_SIZE + 16];

	(void)state;
	assert_int_equal(crypto_init(), 0);
	assert_int_equal(test_dir_make(group.dir, sizeof(group.dir), "relay"), 0);
	snprintf(script, sizeof(script), "%s/sink.py", group.dir);
	test_write_file(script, sink_script);
	if (test_dnsmasq_start(&group.dns, group.dir, records, sizeof(records) / sizeof(*records)) <
	    0)
		return -1;
	/* One port for every sink (the MX port is one setting); the sinks
	 * differ by address. */
	for (int attempt = 0; attempt < 20; attempt++) {
		group.port = test_dnsmasq_free_port(SOCK_STREAM);
		if (sink_start(&group.mx2, MX2_ADDRESS, group.port, "mx2") == 0 &&
		    sink_start(&group.rule, RULE_ADDRESS, group.port, "rule") == 0)
			return 0;
		sink_stop(&group.mx2);
		sink_stop(&group.rule);
	}
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	sink_stop(&group.mx2);
	sink_stop(&group.rule);
	test_dnsmasq_stop(&group.dns);
	test_dir_remove(group.dir);
	return 0;
}

static void dsn_queued(const char *id, void *ctx)
{
	struct fixture *f = ctx;

	assert_true(spool_id_valid(id));
	f->dsn_count++;
}

static void relay_start(struct fixture *f)
{
	char err[256];

	f->writer = writer_new(f->base, f->ts.dir, err, sizeof(err));
	assert_non_null(f->writer);
	f->relay = relay_new(f->base, f->ts.store, f->writer, f->resolver, f->offload, &f->key,
			     &f->cfg_p, dsn_queued, f);
	assert_non_null(f->relay);
}

static void relay_stop_all(struct fixture *f)
{
	relay_stop(f->relay);
	writer_free(&f->writer);
	relay_free(&f->relay);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	char err[256];
	void *ts = NULL;

	test_store_setup(&ts, "relay");
	f->ts = *(struct test_store *)ts;
	free(ts);
	assert_int_equal(spool_init(f->ts.dir), 0);
	test_exec_sql(f->ts.store, "INSERT INTO user (id, name, origin, created_at)"
				   " VALUES (1, 'alice', 'local', 1)");
	f->base = event_base_new();
	f->resolver = resolver_new(f->base, group.dns.address, err, sizeof(err));
	assert_non_null(f->resolver);
	f->offload = offload_new(f->base, 1, err, sizeof(err));
	assert_non_null(f->offload);
	config_defaults(&f->cfg);
	free(f->cfg.hostname);
	f->cfg.hostname = xstrdup("gate.test");
	f->cfg.relay_mx_port = group.port;
	f->cfg.relay_allow_private = true;
	f->cfg.relay_retry_min = 1;
	f->cfg.relay_retry_max = 1;
	f->cfg.relay_connect_timeout = 5;
	f->cfg.relay_timeout = 10;
	f->cfg_p = &f->cfg;
	randombytes_buf(f->key.bytes, sizeof(f->key.bytes));
	sink_clear(&group.mx2);
	sink_clear(&group.rule);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	relay_stop_all(f);
	offload_free(&f->offload);
	resolver_free(&f->resolver);
	event_base_free(f->base);
	config_free(&f->cfg);
	store_close(&f->ts.store);
	test_dir_remove(f->ts.dir);
	free(f);
	return 0;
}

/* Queues an outbound message from SENDER to RECIPIENTS (NULL-ended), owned
 * by alice, its body in the spool; its id into ID. */
static void outbound_add(struct fixture *f, const char *sender, const char *const *recipients,
			 char id[SPOOL_ID_LEN + 1])
{
	static const char body[] = "From: a@example.com\r\nSubject: relay test\r\n\r\nhello\r\n";
	struct spool_writer *w = spool_writer_new(f->ts.dir);
	size_t count = 0;
	char *sql;

	assert_non_null(w);
	spool_writer_write(w, body, strlen(body));
	assert_int_equal(spool_writer_commit(w), 0);
	memcpy(id, w->id, SPOOL_ID_LEN + 1);
	spool_writer_free(&w);
	sql = xasprintf("INSERT INTO message (id, account_id, state, source, body_size,"
			" received_at, state_changed_at, owner_user_id) VALUES"
			" ('%s', NULL, 'outbound', 'submitted', %zu, %lld, %lld, 1)",
			id, strlen(body), (long long)util_now(), (long long)util_now());
	test_exec_sql(f->ts.store, sql);
	free(sql);
	while (recipients[count] != NULL)
		count++;
	assert_int_equal(store_envelope_add(f->ts.store, id, sender, recipients, count), 0);
}

/* SQL's first column as an integer. */
static int64_t query_int(struct fixture *f, const char *fmt, ...)
{
	va_list ap;
	char *sql;
	int64_t value;

	va_start(ap, fmt);
	assert_true(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	value = test_query_int(f->ts.store, sql);
	free(sql);
	return value;
}

/* Runs the loop until SQL (a count) is N, or fails at the deadline. */
static void wait_for(struct fixture *f, int64_t n, const char *fmt, ...)
{
	int64_t end = util_monotonic_ms() + DEADLINE_SECONDS * 1000;
	struct timeval tick = {0, 50000};
	va_list ap;
	char *sql;

	va_start(ap, fmt);
	assert_true(vasprintf(&sql, fmt, ap) > 0);
	va_end(ap);
	while (test_query_int(f->ts.store, sql) != n) {
		if (util_monotonic_ms() > end)
			fail_msg("waited %d s for %s = %lld", DEADLINE_SECONDS, sql, (long long)n);
		event_base_loopexit(f->base, &tick);
		event_base_dispatch(f->base);
	}
	free(sql);
}

static const char *state_of(struct fixture *f, const char *id, char out[32])
{
	char *sql = xasprintf("SELECT state FROM message WHERE id = '%s'", id);

	test_query_text(f->ts.store, sql, out, 32);
	free(sql);
	return out;
}

/* mx1 (preference 10) refuses; mx2 (20) takes both recipients in one
 * transaction; the owner learns them as correspondents. */
static void test_mx_fallback(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@mail.test", "C@Mail.Test", NULL};
	char id[SPOOL_ID_LEN + 1], st[32];

	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'sent'", id);
	assert_int_equal(sink_count(&group.mx2, "\"message\""), 1);
	assert_int_equal(sink_count(&group.mx2, "\"rcpts\": [\"C@Mail.Test\", \"b@mail.test\"]"),
			 1);
	assert_int_equal(sink_count(&group.mx2, "\"name\": \"gate.test\""), 1);
	assert_string_equal(state_of(f, id, st), "sent");
	assert_int_equal(query_int(f, "SELECT count(*) FROM correspondent WHERE user_id = 1"), 2);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope_recipient WHERE"
				      " last_reply LIKE '250 2.0.0%%'"),
			 2);
	assert_int_equal(f->dsn_count, 0);
}

/* No MX: the domain's own address. */
static void test_implicit_mx(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@plain.test", NULL};
	char id[SPOOL_ID_LEN + 1];

	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'sent'", id);
	assert_int_equal(sink_count(&group.mx2, "b@plain.test"), 1);
}

/* A null MX fails at once, without a connection; the DSN is queued. */
static void test_null_mx(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@nullmx.test", NULL};
	char id[SPOOL_ID_LEN + 1];

	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'bounced'", id);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope_recipient WHERE"
				      " last_reply LIKE '556 5.1.10%%' AND attempts = 1"),
			 1);
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 0);
	assert_int_equal(f->dsn_count, 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope e JOIN message m ON"
				      " m.id = e.message_id WHERE e.sender = ''"
				      " AND m.state = 'processing'"),
			 1);
}

/*
 * One recipient sent, one refused for good, one refused for now: the first
 * is never sent again, the second fails at once, the third is retried until
 * the queue lifetime runs out; then the message bounces with one DSN.
 */
static void test_partial_retry_expiry(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"ok@mail.test", "reject@mail.test", "tempfail@mail.test",
					 NULL};
	char id[SPOOL_ID_LEN + 1];

	outbound_add(f, "a@example.com", to, id);
	/* The lifetime ends a few seconds from now. */
	f->cfg.relay_queue_lifetime = 60;
	test_exec_sql(f->ts.store, "UPDATE message SET received_at = strftime('%s', 'now') - 57");
	relay_start(f);
	wait_for(f, 1,
		 "SELECT count(*) FROM envelope_recipient WHERE message_id = '%s'"
		 " AND address = 'tempfail@mail.test' AND attempts >= 2",
		 id);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope_recipient WHERE address ="
				      " 'reject@mail.test' AND status = 'failed'"
				      " AND last_reply LIKE '550 5.1.1%%'"),
			 1);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope_recipient WHERE address ="
				      " 'tempfail@mail.test' AND status = 'pending'"
				      " AND last_reply LIKE '451 4.3.0%%'"),
			 1);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'bounced'", id);
	assert_int_equal(query_int(f, "SELECT count(*) FROM envelope_recipient WHERE address ="
				      " 'tempfail@mail.test' AND status = 'failed'"
				      " AND last_reply LIKE '%%lifetime expired%%'"),
			 1);
	/* Sent once, however many attempts the others took. */
	assert_int_equal(sink_count(&group.mx2, "ok@mail.test"), 1);
	assert_int_equal(query_int(f, "SELECT status = 'sent' FROM envelope_recipient"
				      " WHERE address = 'ok@mail.test'"),
			 1);
	assert_int_equal(f->dsn_count, 1);
}

/* A transport rule for the domain beats its MX. */
static void test_transport_rule(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@mail.test", NULL};
	struct store_transport_rule rule = {.match = TRANSPORT_MATCH_DOMAIN,
					    .pattern = (char *)"mail.test",
					    .host = (char *)RULE_ADDRESS,
					    .port = group.port,
					    .tls = TRANSPORT_TLS_OPPORTUNISTIC};
	char id[SPOOL_ID_LEN + 1];

	/* A private host is allowed for a rule even when MX hosts may not be. */
	f->cfg.relay_allow_private = false;
	assert_int_equal(store_transport_add(f->ts.store, &rule), 0);
	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'sent'", id);
	assert_int_equal(sink_count(&group.rule, "b@mail.test"), 1);
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 0);
}

/* Without allow_private an MX host on loopback is refused: pending. */
static void test_private_mx_refused(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@plain.test", NULL};
	char id[SPOOL_ID_LEN + 1];

	f->cfg.relay_allow_private = false;
	f->cfg.relay_retry_min = 3600;
	f->cfg.relay_retry_max = 3600;
	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1,
		 "SELECT count(*) FROM envelope_recipient WHERE message_id = '%s'"
		 " AND attempts = 1 AND status = 'pending'",
		 id);
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 0);
}

/* Three messages to one destination, one connection at most: one EHLO. */
static void test_connection_reuse(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@mail.test", NULL};
	char id[SPOOL_ID_LEN + 1];

	f->cfg.relay_max_per_destination = 1;
	for (int i = 0; i < 3; i++)
		outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 3, "SELECT count(*) FROM message WHERE state = 'sent'");
	assert_int_equal(sink_count(&group.mx2, "\"message\""), 3);
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 1);
}

/* Four messages to one destination: as many connections as the limits
 * allow, each carrying messages until none is left. */
static void test_connection_limits(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@mail.test", NULL};
	char id[SPOOL_ID_LEN + 1];

	f->cfg.relay_max_per_destination = 2;
	for (int i = 0; i < 4; i++)
		outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 4, "SELECT count(*) FROM message WHERE state = 'sent'");
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 2);
	relay_stop_all(f);
	/* The global limit holds below the destination's. */
	sink_clear(&group.mx2);
	f->cfg.relay_max_per_destination = 4;
	f->cfg.relay_max_connections = 1;
	for (int i = 0; i < 4; i++)
		outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 8, "SELECT count(*) FROM message WHERE state = 'sent'");
	assert_int_equal(sink_count(&group.mx2, "\"ehlo\""), 1);
}

/* Pending when the relay stops; delivered by the next one, from the store. */
static void test_restart_resumes(void **state)
{
	struct fixture *f = *state;
	static const char *const to[] = {"b@late.test", NULL};
	struct sink late = {0};
	char id[SPOOL_ID_LEN + 1];

	f->cfg.relay_retry_min = 3600;
	f->cfg.relay_retry_max = 3600;
	outbound_add(f, "a@example.com", to, id);
	relay_start(f);
	wait_for(f, 1,
		 "SELECT count(*) FROM envelope_recipient WHERE message_id = '%s'"
		 " AND attempts = 1",
		 id);
	relay_stop_all(f);
	assert_int_equal(sink_start(&late, LATE_ADDRESS, group.port, "late"), 0);
	/* As after an hour: the recipient is due again. */
	test_exec_sql(f->ts.store, "UPDATE envelope_recipient SET next_attempt_at = 0");
	relay_start(f);
	wait_for(f, 1, "SELECT count(*) FROM message WHERE id = '%s' AND state = 'sent'", id);
	assert_int_equal(sink_count(&late, "b@late.test"), 1);
	sink_stop(&late);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_mx_fallback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_implicit_mx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_null_mx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_partial_retry_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_transport_rule, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_private_mx_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connection_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connection_limits, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restart_resumes, setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
