/*
 * test_session.c — unit tests for src/core/session.c with a toy line
 * protocol on a real socket pair: 10,000 lines in one write each handed on
 * once, in order, none from inside another's handler; lines held while the
 * protocol holds them and taken up by session_process; reading paused while
 * the protocol produces a reply and the output is over its high-water mark,
 * resumed from the write callback; an over-long line reported and skipped;
 * session_finish sending the last reply before the close; a peer that hangs
 * up freeing the session (on_close once); the deadline; TLS sessions
 * (implicit, and upgraded by session_start_tls) releasing their buffers
 * while idle; an idle session holding no line buffer; raw bytes asked for
 * with session_read_bytes handed on as they are, in pieces as they come,
 * never more than asked, the lines after them handed on as lines.
 *
 * Must never: touch the network; leave files behind (the TLS test's
 * certificate lives in a temp folder it removes).
 */
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if !defined(__SANITIZE_ADDRESS__)
#include <malloc.h>
#endif

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "core/session.h"
#include "core/tls.h"
#include "core/util.h"
#include "test_support.h"

#define LINE_COUNT 10000
#define BIG_REPLY (300 * 1024)

struct toy {
	struct session *session;
	enum session_intake intake;
	unsigned lines;	    /* lines handed on */
	unsigned too_long;  /* over-long lines reported */
	unsigned closed;    /* on_close calls */
	unsigned deadlines; /* deadline timeouts */
	unsigned drains;    /* on_drain calls */
	bool in_handler;    /* on_line is running */
	bool nested;	    /* on_line was entered from inside on_line */
	bool out_of_order;  /* a line came with the wrong number */
	bool big_replies;   /* each line queues BIG_REPLY bytes */
	char *filler;
	char raw[256]; /* raw bytes handed on ("RAW n" asks for N) */
	size_t raw_len;
	unsigned raw_pieces; /* on_bytes calls */
	unsigned raw_runs;   /* runs of raw bytes ended (LEFT 0) */
	bool raw_miscount;   /* LEFT did not count down to what was asked */
	uint64_t raw_asked;
};

static enum session_intake toy_intake(void *owner)
{
	struct toy *toy = owner;

	return toy->intake;
}

static void toy_on_line(void *owner, const char *line, size_t len)
{
	struct toy *toy = owner;
	char expected[32];

	if (toy->in_handler)
		toy->nested = true;
	if (len > 4 && memcmp(line, "RAW ", 4) == 0) {
		toy->raw_asked = strtoull(line + 4, NULL, 10);
		session_read_bytes(toy->session, toy->raw_asked);
		return;
	}
	toy->in_handler = true;
	snprintf(expected, sizeof(expected), "LINE %u", toy->lines);
	if (len != strlen(expected) || memcmp(line, expected, len) != 0) {
		if (strcmp(line, "BYE") == 0) {
			session_add_line(toy->session, "+OK bye");
			session_finish(toy->session);
			toy->in_handler = false;
			return;
		}
		toy->out_of_order = true;
	}
	toy->lines++;
	if (toy->big_replies)
		evbuffer_add(session_output(toy->session), toy->filler, BIG_REPLY);
	else
		session_add_line(toy->session, "+OK %u", toy->lines);
	toy->in_handler = false;
}

static void toy_on_line_too_long(void *owner)
{
	struct toy *toy = owner;

	toy->too_long++;
	session_add_line(toy->session, "-ERR line too long");
}

static void toy_on_bytes(void *owner, const char *bytes, size_t len, uint64_t left)
{
	struct toy *toy = owner;

	if (toy->in_handler)
		toy->nested = true;
	toy->raw_pieces++;
	if (toy->raw_len + len <= sizeof(toy->raw)) {
		memcpy(toy->raw + toy->raw_len, bytes, len);
		toy->raw_len += len;
	}
	if (len > toy->raw_asked || toy->raw_asked - len != left)
		toy->raw_miscount = true;
	toy->raw_asked = left;
	if (left == 0) {
		toy->raw_runs++;
		session_add_line(toy->session, "+OK raw");
	}
}

static void toy_on_drain(void *owner)
{
	struct toy *toy = owner;

	toy->drains++;
}

static void toy_on_timeout(void *owner, enum session_timeout timeout)
{
	struct toy *toy = owner;

	if (timeout == SESSION_TIMEOUT_DEADLINE)
		toy->deadlines++;
}

static void toy_on_close(void *owner)
{
	struct toy *toy = owner;

	toy->closed++;
	toy->session = NULL;
}

static const struct session_ops toy_ops = {
    .intake = toy_intake,
    .on_line = toy_on_line,
    .on_line_too_long = toy_on_line_too_long,
    .on_bytes = toy_on_bytes,
    .on_drain = toy_on_drain,
    .on_timeout = toy_on_timeout,
    .on_close = toy_on_close,
};

struct fixture {
	struct event_base *base;
	struct session_config config;
	struct toy toy;
	int peer; /* the client's end */
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	int fds[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
			 0);
	f->base = event_base_new();
	f->config = (struct session_config){
	    .base = f->base, .protocol = "toy", .max_line = 64, .write_timeout = 30};
	f->toy.intake = SESSION_TAKE_LINES;
	f->toy.filler = xcalloc(BIG_REPLY, 1);
	f->toy.session = session_new(&f->config, fds[0], NULL, "peer", &toy_ops, &f->toy);
	assert_non_null(f->toy.session);
	f->peer = fds[1];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->toy.session != NULL)
		session_free(f->toy.session);
	if (f->peer >= 0)
		close(f->peer);
	event_base_free(f->base);
	free(f->toy.filler);
	free(f);
	return 0;
}

/* One short turn of the loop. */
static void loop_turn(struct fixture *f)
{
	struct timeval tick = {0, 5 * 1000};

	event_base_loopexit(f->base, &tick);
	event_base_dispatch(f->base);
}

/* Reads what the session sent, without blocking; bytes read. */
static size_t peer_read(struct fixture *f, char *buf, size_t size)
{
	ssize_t n = recv(f->peer, buf, size, MSG_DONTWAIT);

	if (n < 0)
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	return n > 0 ? (size_t)n : 0;
}

static void peer_send(struct fixture *f, const char *data, size_t len)
{
	size_t sent = 0;

	/* Bounded: the session reads while we loop. */
	for (int i = 0; i < 10000 && sent < len; i++) {
		ssize_t n = send(f->peer, data + sent, len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			sent += (size_t)n;
		else
			loop_turn(f);
	}
	assert_int_equal(sent, len);
}

static void test_pipelined_lines(void **state)
{
	struct fixture *f = *state;
	size_t cap = (size_t)LINE_COUNT * 16, len = 0;
	char *blob = xmalloc(cap), *reply = xmalloc(64 * 1024);
	size_t replies = 0;

	for (unsigned i = 0; i < LINE_COUNT; i++)
		len += (size_t)snprintf(blob + len, cap - len, "LINE %u\r\n", i);
	peer_send(f, blob, len);
	for (int i = 0; i < 2000 && f->toy.lines < LINE_COUNT; i++) {
		loop_turn(f);
		for (size_t n; (n = peer_read(f, reply, 64 * 1024)) > 0;)
			for (size_t j = 0; j < n; j++)
				replies += reply[j] == '\n';
	}
	assert_int_equal(f->toy.lines, LINE_COUNT);
	assert_false(f->toy.nested);
	assert_false(f->toy.out_of_order);
	for (int i = 0; i < 2000 && replies < LINE_COUNT; i++) {
		loop_turn(f);
		for (size_t n; (n = peer_read(f, reply, 64 * 1024)) > 0;)
			for (size_t j = 0; j < n; j++)
				replies += reply[j] == '\n';
	}
	assert_int_equal(replies, LINE_COUNT);
	free(blob);
	free(reply);
}

static void test_hold_then_process(void **state)
{
	struct fixture *f = *state;
	const char lines[] = "LINE 0\r\nLINE 1\r\n";

	f->toy.intake = SESSION_HOLD_LINES;
	peer_send(f, lines, strlen(lines));
	for (int i = 0; i < 20; i++)
		loop_turn(f);
	assert_int_equal(f->toy.lines, 0);
	f->toy.intake = SESSION_TAKE_LINES;
	session_process(f->toy.session);
	assert_int_equal(f->toy.lines, 2);
}

static void test_high_water_pauses_reading(void **state)
{
	struct fixture *f = *state;
	const char lines[] = "LINE 0\r\nLINE 1\r\nLINE 2\r\n";
	char *sink = xmalloc(64 * 1024);
	size_t drained = 0;

	/* Each line queues more than the high-water mark: one line, then the
	 * session waits for the client to read before it takes the next. */
	f->toy.big_replies = true;
	peer_send(f, lines, strlen(lines));
	for (int i = 0; i < 20; i++)
		loop_turn(f);
	assert_int_equal(f->toy.lines, 1);
	assert_true(session_pending_output(f->toy.session) > 0);
	for (int i = 0; i < 5000 && f->toy.lines < 3; i++) {
		loop_turn(f);
		drained += peer_read(f, sink, 64 * 1024);
	}
	assert_int_equal(f->toy.lines, 3);
	assert_true(drained >= BIG_REPLY);
	assert_true(f->toy.drains > 0);
	free(sink);
}

static void test_line_too_long(void **state)
{
	struct fixture *f = *state;
	char line[200];

	memset(line, 'x', sizeof(line));
	peer_send(f, line, sizeof(line));
	peer_send(f, "\r\nLINE 0\r\n", 10);
	for (int i = 0; i < 50 && f->toy.lines < 1; i++)
		loop_turn(f);
	assert_int_equal(f->toy.too_long, 1);
	assert_int_equal(f->toy.lines, 1);
	assert_false(f->toy.out_of_order);
}

static void test_finish_sends_then_closes(void **state)
{
	struct fixture *f = *state;
	char reply[64];
	size_t got = 0;

	peer_send(f, "BYE\r\nLINE 0\r\n", 13);
	for (int i = 0; i < 200 && f->toy.closed == 0; i++) {
		loop_turn(f);
		got += peer_read(f, reply + got, sizeof(reply) - 1 - got);
	}
	assert_int_equal(f->toy.closed, 1);
	assert_int_equal(f->toy.lines, 0); /* nothing is taken after the close began */
	got += peer_read(f, reply + got, sizeof(reply) - 1 - got);
	reply[got] = '\0';
	assert_string_equal(reply, "+OK bye\r\n");
	assert_int_equal(recv(f->peer, reply, sizeof(reply), 0), 0);
}

static void test_hangup_frees(void **state)
{
	struct fixture *f = *state;

	peer_send(f, "LINE 0\r\nPASS partial", 20);
	close(f->peer);
	f->peer = -1;
	for (int i = 0; i < 200 && f->toy.closed == 0; i++)
		loop_turn(f);
	assert_int_equal(f->toy.closed, 1);
	assert_int_equal(f->toy.lines, 1);
}

static void test_deadline(void **state)
{
	struct fixture *f = *state;

	session_set_deadline(f->toy.session, 1);
	session_set_deadline(f->toy.session, 0); /* cleared: never fires */
	session_set_deadline(f->toy.session, 1);
	for (int i = 0; i < 1000 && f->toy.deadlines == 0; i++)
		loop_turn(f);
	assert_int_equal(f->toy.deadlines, 1);
	assert_int_equal(f->toy.closed, 0); /* the protocol decides what to do */
}

/* Raw bytes and lines pipelined in one write: the raw run is not split at
 * its line ends, and the lines before and after it are lines. */
static void test_raw_bytes_between_lines(void **state)
{
	struct fixture *f = *state;
	const char input[] = "LINE 0\r\nRAW 13\r\nab\r\nLINE 9\ncdLINE 1\r\n";

	peer_send(f, input, strlen(input));
	for (int i = 0; i < 200 && f->toy.lines < 2; i++)
		loop_turn(f);
	assert_int_equal(f->toy.lines, 2);
	assert_false(f->toy.out_of_order);
	assert_false(f->toy.nested);
	assert_int_equal(f->toy.raw_runs, 1);
	assert_false(f->toy.raw_miscount);
	assert_int_equal(f->toy.raw_len, 13);
	assert_memory_equal(f->toy.raw, "ab\r\nLINE 9\ncd", 13);
}

/* Raw bytes that come in several writes are handed on as they come, LEFT
 * counting down; a peer that hangs up inside them frees the session. */
static void test_raw_bytes_in_pieces_then_hangup(void **state)
{
	struct fixture *f = *state;

	peer_send(f, "RAW 100\r\nfirst", 14);
	for (int i = 0; i < 200 && f->toy.raw_len < 5; i++)
		loop_turn(f);
	peer_send(f, "second", 6);
	for (int i = 0; i < 200 && f->toy.raw_len < 11; i++)
		loop_turn(f);
	assert_true(f->toy.raw_pieces >= 2);
	assert_int_equal(f->toy.raw_runs, 0);
	assert_int_equal(f->toy.raw_asked, 89);
	assert_false(f->toy.raw_miscount);
	assert_memory_equal(f->toy.raw, "firstsecond", 11);
	close(f->peer);
	f->peer = -1;
	for (int i = 0; i < 200 && f->toy.closed == 0; i++)
		loop_turn(f);
	assert_int_equal(f->toy.closed, 1);
	assert_int_equal(f->toy.lines, 0);
}

#if defined(__SANITIZE_ADDRESS__)
/* ASan's runtime (its header, sanitizer/allocator_interface.h, is not
 * installed here). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* Bytes the process has allocated (malloc's count, or ASan's own). */
static size_t heap_in_use(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 info = mallinfo2();

	return info.uordblks + info.hblkhd;
#endif
}

/* The line reader's buffer is held only while a line is being read (bench:
 * memory per idle session): with a 1 MB line limit, a session that handled a
 * line and waits holds far less than the limit. */
static void test_idle_holds_no_line_buffer(void **state)
{
	struct fixture *f = *state;
	const size_t max_line = 1024 * 1024;
	struct session_config config = f->config;
	struct toy toy = {.intake = SESSION_TAKE_LINES};
	char reply[64];
	size_t got = 0;
	int fds[2];

	config.max_line = max_line;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
			 0);
	size_t before = heap_in_use();
	toy.session = session_new(&config, fds[0], NULL, "peer", &toy_ops, &toy);
	assert_non_null(toy.session);
	assert_int_equal(send(fds[1], "LINE 0\r\n", 8, MSG_NOSIGNAL), 8);
	for (int i = 0; i < 1000 && got < strlen("+OK 1\r\n"); i++) {
		loop_turn(f);
		ssize_t n = recv(fds[1], reply + got, sizeof(reply) - 1 - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
	}
	reply[got] = '\0';
	assert_string_equal(reply, "+OK 1\r\n");
	assert_int_equal(toy.lines, 1);
	size_t after = heap_in_use();
	assert_true(after < before + max_line / 2);
	session_free(toy.session);
	assert_int_equal(toy.closed, 1);
	close(fds[1]);
}

/* SSL_MODE_RELEASE_BUFFERS: an idle TLS session holds no record buffers. */
static bool releases_buffers(struct session *session)
{
	SSL *ssl = bufferevent_openssl_get_ssl(session_bufferevent(session));

	return ssl != NULL && (SSL_get_mode(ssl) & SSL_MODE_RELEASE_BUFFERS) != 0;
}

static void test_tls_buffers_released(void **state)
{
	struct fixture *f = *state;
	char dir[TEST_DIR_SIZE], err[256];
	int fds[2];

	assert_int_equal(test_dir_make(dir, sizeof(dir), "session"), 0);
	char *cert = xasprintf("%s/cert.pem", dir), *key = xasprintf("%s/key.pem", dir);
	assert_int_equal(tls_ensure_self_signed(cert, key, "gate.example", err, sizeof(err)), 0);
	SSL_CTX *ctx = tls_server_ctx_new(cert, key, err, sizeof(err));
	assert_non_null(ctx);

	/* Upgraded (STLS): the filter's TLS object. */
	assert_false(session_is_tls(f->toy.session));
	assert_int_equal(session_start_tls(f->toy.session, SSL_new(ctx)), 0);
	assert_true(session_is_tls(f->toy.session));
	assert_true(releases_buffers(f->toy.session));

	/* Implicit TLS. */
	struct toy toy = {.intake = SESSION_TAKE_LINES};
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
			 0);
	toy.session = session_new(&f->config, fds[0], ctx, "peer", &toy_ops, &toy);
	assert_non_null(toy.session);
	assert_true(session_is_tls(toy.session));
	assert_true(releases_buffers(toy.session));
	session_free(toy.session);
	assert_int_equal(toy.closed, 1);
	close(fds[1]);

	SSL_CTX_free(ctx);
	free(cert);
	free(key);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pipelined_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hold_then_process, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_high_water_pauses_reading, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_line_too_long, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_finish_sends_then_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hangup_frees, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tls_buffers_released, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_holds_no_line_buffer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_raw_bytes_between_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_raw_bytes_in_pieces_then_hangup, setup, teardown),
	};

	/* As the daemon does: a write to a peer that hung up is an error, not
	 * a signal. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
