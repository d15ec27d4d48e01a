/*
 * server.c — the POP3 server that mail clients talk to: RFC 1939 with CAPA
 * (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and implicit TLS on the
 * POP3S port.
 *
 * A session is a state machine (AUTHORIZATION → TRANSACTION → closed), one
 * per connection, driven by the event loop; it never blocks. A pickup serves
 * the account's Delivery Queue as it stood at login (P3). At QUIT every
 * message the client retrieved or deleted moves to `delivered` in one
 * transaction before +OK is sent, and a fetch is requested for the account
 * (P4). A session that ends without QUIT changes nothing (RFC 1939), so the
 * client gets those messages again.
 *
 * Limits: one session per maildrop ([IN-USE]), sessions overall and per
 * client address, line length, bad commands, a login timeout (silence) and a
 * login deadline (from accept), an idle timeout and a timeout on output that
 * does not drain. A session whose output has not drained is not read, so a
 * client that sends without reading costs bounded memory.
 *
 * Commands are handled in a loop (session_process_input) that stops while a
 * reply is still going out and is resumed from the write callback: pipelined
 * commands never nest calls, however many arrive in one read.
 *
 * SECURITY: everything a client sends is untrusted and goes through
 * pop3/parse.c; what is echoed or logged is sanitised. Passwords go only to
 * auth.c and are wiped here after use. Plain-text logins are refused on an
 * unencrypted connection unless it is from loopback or the config allows it.
 * Message bodies are read from the spool and written to the client; they are
 * never parsed here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/config.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "pop3/auth.h"
#include "pop3/fetch.h"
#include "pop3/framing.h"
#include "pop3/parse.h"
#include "pop3/server.h"
#include "popgate.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/writer.h"

/*
 * Pending output (the session's buffer and, over STLS, the plain one below
 * the TLS filter) is refilled from a message file and more commands are
 * handled only while it is under OUTPUT_HIGH_WATER; the write callback runs
 * once it drains to OUTPUT_LOW_WATER. TLS_UNDERLYING_HIGH_WATER bounds what
 * the filter hands down, so the write callback still sees the backlog.
 * Unhandled input stops being read at INPUT_HIGH_WATER.
 */
#define OUTPUT_LOW_WATER (64 * 1024)
#define OUTPUT_HIGH_WATER (256 * 1024)
#define TLS_UNDERLYING_HIGH_WATER (64 * 1024)
#define INPUT_HIGH_WATER (64 * 1024)
#define SEND_CHUNK (64 * 1024)
#define NAME_MAX_LEN 512
#define PASSWORD_MAX_LEN 512

enum session_state {
	SESSION_AUTHORIZATION,
	SESSION_AUTH_PENDING, /* a login is being checked; input waits, EOF is watched */
	SESSION_TRANSACTION,
	SESSION_CLOSING,      /* the last reply drains, then the session is freed */
	SESSION_STATE_COUNT
};

static const char *const session_state_names[] = {
	[SESSION_AUTHORIZATION] = "authorization",
	[SESSION_AUTH_PENDING] = "auth-pending",
	[SESSION_TRANSACTION] = "transaction",
	[SESSION_CLOSING] = "closing",
};
_Static_assert(sizeof(session_state_names) / sizeof(session_state_names[0]) ==
		       SESSION_STATE_COUNT,
	       "every session state has a name");

enum message_flag {
	MESSAGE_FLAG_DELETED = 1 << 0,
	MESSAGE_FLAG_RETRIEVED = 1 << 1,
};

struct pop3_session;

/* A read of the message file that would have waited on the disk, done by
 * an offload thread (core/offload.h). It owns its buffer; the file stays the
 * session's unless the session is freed meanwhile. */
struct session_read {
	struct pop3_session *session; /* NULL once freed: then the read closes FD */
	int fd;
	char *chunk; /* SEND_CHUNK bytes */
	ssize_t n;
	int error;
};

/* A pickup's QUIT on its way to the store: the ids to move, copied (the
 * writer thread must not read the session). */
struct session_pickup {
	struct pop3_session *session; /* NULL once the session is freed */
	size_t count;
	char (*ids)[SPOOL_ID_LEN + 1];
};

struct pop3_session {
	struct pop3_server *server;
	struct bufferevent *bev;
	enum session_state state;
	bool tls;	     /* the connection is encrypted */
	bool on_tls_port;
	bool loopback;	     /* the client is on this host */
	char peer[INET6_ADDRSTRLEN];
	char *user_name;     /* from USER, until PASS */
	bool awaiting_sasl;  /* AUTH PLAIN sent "+ "; the next line is the response */
	unsigned bad_commands;
	struct pop3_framer framer;
	bool input_paused;   /* not read until the output drains (write callback) */
	struct auth_request *auth;
	struct event *login_timer; /* login_deadline from accept */

	int64_t account_id;  /* 0 until logged in */
	bool quit_done;	     /* QUIT committed the pickup */
	struct session_pickup *pickup; /* QUIT's moves, being committed */
	char *account_name;
	struct store_message *messages;
	uint8_t *flags;
	size_t message_count;

	/* A message being sent (RETR or TOP). */
	int send_fd;
	size_t send_index;
	bool send_is_retr;
	struct pop3_dot_encoder encoder;
	struct session_read *reading; /* a read of it in an offload thread */

	/* Sessions are freed from the loop, never inside their own handlers. */
	struct event *free_event;
	bool flushing;		   /* closing: the last reply is still draining */
	int64_t flush_deadline_ms; /* give up on a client that does not read */

	TAILQ_ENTRY(pop3_session) entry;
};

TAILQ_HEAD(pop3_session_list, pop3_session);

struct pop3_server {
	struct popgate *pg;
	struct evconnlistener *plain_listener;
	struct evconnlistener *tls_listener;
	struct pop3_session_list sessions;
	unsigned session_count;
	bool shutting_down;
	char *send_chunk; /* SEND_CHUNK bytes: message file reads, one at a time */
};

static void session_read_cb(struct bufferevent *bev, void *ctx);
static void session_write_cb(struct bufferevent *bev, void *ctx);
static void session_event_cb(struct bufferevent *bev, short events, void *ctx);
static void session_process_input(struct pop3_session *session);
static void session_setup_bev(struct pop3_session *session);
static void session_login_deadline_cb(evutil_socket_t fd, short what, void *ctx);

/* ---- session plumbing ---------------------------------------------------- */

static void session_enter_state(struct pop3_session *session, enum session_state state)
{
	log_debug("pop3 %s: %s -> %s", session->peer, session_state_names[session->state],
		  session_state_names[state]);
	session->state = state;
}

static void session_reply(struct pop3_session *session, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void session_reply(struct pop3_session *session, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/*
 * Silence before login and idleness after it are read timeouts; output that
 * does not drain is a write timeout. While a login is checked the client
 * waits for us, so its silence is no fault (the check has its own deadline).
 * Over STLS the plain bufferevent below the filter gets the same timeouts:
 * it reports them through the filter, and its write timeout is the one that
 * sees a client that does not read.
 */
static void session_set_timeouts(struct pop3_session *session)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	struct timeval read_tv = {
		.tv_sec = session->account_id ? cfg->idle_timeout : cfg->login_timeout};
	struct timeval write_tv = {.tv_sec = cfg->command_timeout};
	const struct timeval *read_p = session->state == SESSION_AUTH_PENDING ? NULL : &read_tv;
	struct bufferevent *underlying = bufferevent_get_underlying(session->bev);

	bufferevent_set_timeouts(session->bev, read_p, &write_tv);
	if (underlying != NULL)
		bufferevent_set_timeouts(underlying, read_p, &write_tv);
}

static void session_maildrop_free(struct pop3_session *session)
{
	store_message_list_free(&session->messages, session->message_count);
	session->message_count = 0;
	xfree(&session->flags);
}

static void session_free(struct pop3_session *session)
{
	struct pop3_server *server = session->server;
	int64_t account_id = session->account_id;

	if (session->auth != NULL) {
		log_event(LOG_INFO, "login_cancelled", NULL, NULL,
			  "%s went away during the login check", session->peer);
		auth_cancel(&session->auth);
	}
	if (session->free_event != NULL)
		event_free(session->free_event);
	if (session->login_timer != NULL)
		event_free(session->login_timer);
	if (session->reading != NULL) {
		/* The thread is reading the file: the read closes it when done. */
		session->reading->session = NULL;
		session->send_fd = -1;
	}
	if (session->send_fd >= 0)
		close(session->send_fd);
	if (session->pickup != NULL)
		session->pickup->session = NULL; /* its commit goes on without an answer */
	if (session->bev != NULL) {
		/* Unhandled input may hold a pipelined PASS. */
		pop3_evbuffer_wipe(bufferevent_get_input(session->bev));
		bufferevent_free(session->bev);
	}
	pop3_framer_free(&session->framer);
	if (session->user_name != NULL) {
		sodium_memzero(session->user_name, strlen(session->user_name));
		free(session->user_name);
	}
	session_maildrop_free(session);
	TAILQ_REMOVE(&server->sessions, session, entry);
	server->session_count--;
	log_debug("pop3 %s: closed, %u session(s) left", session->peer, server->session_count);
	if (account_id != 0)
		log_event(LOG_INFO, "logout", session->account_name, NULL, "from %s%s",
			  session->peer, session->quit_done ? "" : " (no QUIT: nothing changed)");
	free(session->account_name);
	free(session);
}

/* Bytes of replies still on their way out. Over STLS the TLS filter hands
 * its bytes to the plain bufferevent below it, which writes them later. */
static size_t session_output_size(struct pop3_session *session)
{
	struct bufferevent *underlying = bufferevent_get_underlying(session->bev);
	size_t size = evbuffer_get_length(bufferevent_get_output(session->bev));

	if (underlying != NULL)
		size += evbuffer_get_length(bufferevent_get_output(underlying));
	return size;
}

static void session_free_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct pop3_session *session = ctx;
	(void)fd;
	(void)what;

	if (session->flushing && session_output_size(session) > 0 &&
	    util_monotonic_ms() < session->flush_deadline_ms) {
		static const struct timeval recheck = {0, 10 * 1000};
		evtimer_add(session->free_event, &recheck);
		return;
	}
	session_free(session);
}

static void session_schedule_free(struct pop3_session *session)
{
	static const struct timeval now = {0, 0};

	if (session->free_event == NULL)
		session->free_event = evtimer_new(session->server->pg->base, session_free_cb, session);
	evtimer_add(session->free_event, &now);
}

/*
 * Frees the session from the loop, right after the current callback: the
 * handler that decides to end a session is still running on it. Pending
 * output is dropped (the peer is gone or the reply is broken).
 */
static void session_free_later(struct pop3_session *session)
{
	session_enter_state(session, SESSION_CLOSING);
	session->flushing = false;
	bufferevent_disable(session->bev, EV_READ | EV_WRITE);
	session_schedule_free(session);
}

/* Frees the session once its output has drained (write callback, or now). */
static void session_close_when_flushed(struct pop3_session *session)
{
	if (evbuffer_get_length(bufferevent_get_output(session->bev)) > 0)
		return; /* the write callback calls again */
	session_schedule_free(session);
}

/* Sends what is queued, then frees the session. */
static void session_close(struct pop3_session *session)
{
	session_enter_state(session, SESSION_CLOSING);
	bufferevent_disable(session->bev, EV_READ);
	session->flushing = true;
	session->flush_deadline_ms =
		util_monotonic_ms() + 1000LL * session->server->pg->cfg->command_timeout;
	session_close_when_flushed(session);
}

/* Counts a bad command; past the limit the session ends. True if it ended. */
static bool session_bad_command(struct pop3_session *session, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static bool session_bad_command(struct pop3_session *session, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);
	va_list ap;

	evbuffer_add(out, "-ERR ", 5);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (++session->bad_commands > (unsigned)session->server->pg->cfg->max_bad_commands) {
		session_reply(session, "-ERR too many bad commands; closing");
		session_close(session);
		return true;
	}
	return false;
}

static bool session_plaintext_allowed(const struct pop3_session *session)
{
	return session->tls || session->loopback ||
	       session->server->pg->cfg->allow_plaintext_auth;
}

/* ---- sending a message --------------------------------------------------- */

static void session_evbuffer_out(void *ctx, const char *data, size_t len)
{
	evbuffer_add(ctx, data, len);
}

static void session_send_done(struct pop3_session *session)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);

	pop3_dot_encoder_finish(&session->encoder, session_evbuffer_out, out);
	close(session->send_fd);
	session->send_fd = -1;
	if (session->send_is_retr)
		session->flags[session->send_index] |= MESSAGE_FLAG_RETRIEVED;
}

/* In an offload thread. */
static void session_read_work(void *arg)
{
	struct session_read *read_job = arg;

	do
		read_job->n = read(read_job->fd, read_job->chunk, SEND_CHUNK);
	while (read_job->n < 0 && errno == EINTR);
	read_job->error = read_job->n < 0 ? errno : 0;
}

/* Sends N bytes read from the message file (N < 0: the read failed with
 * errno; 0: the end of the file). */
static void session_send_data(struct pop3_session *session, const char *data, ssize_t n)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);

	if (n < 0) {
		/* Mid-reply there is no way to say -ERR; end the session so the
		 * client retries and nothing is marked as retrieved. */
		log_event(LOG_ERROR, "error", session->account_name,
			  session->messages[session->send_index].id,
			  "cannot read the message body: %s", strerror(errno));
		close(session->send_fd);
		session->send_fd = -1;
		session_free_later(session);
		return;
	}
	if (n == 0) {
		session_send_done(session);
		return;
	}
	pop3_dot_encode(&session->encoder, data, (size_t)n, session_evbuffer_out, out);
	if (session->encoder.stopped)
		session_send_done(session);
}

static void session_send_fill(struct pop3_session *session);

/* In the loop: the bytes go out, and the filling goes on. */
static void session_read_done(void *arg)
{
	struct session_read *read_job = arg;
	struct pop3_session *session = read_job->session;

	if (session == NULL) {
		close(read_job->fd);
	} else {
		session->reading = NULL;
		errno = read_job->error;
		session_send_data(session, read_job->chunk, read_job->n);
		if (session->send_fd >= 0)
			session_send_fill(session);
	}
	free(read_job->chunk);
	free(read_job);
}

/*
 * Fills the output from the message file up to the high-water mark. It never
 * handles the commands pipelined behind: the caller's loop (or the write
 * callback) does, so a long pipeline does not nest calls.
 *
 * A read that would wait on the disk (the body is not in the page cache:
 * RWF_NOWAIT says EAGAIN) goes to an offload thread, and the filling goes on
 * when it is done (session_read_done): the loop never waits on the disk, and
 * bodies in the cache are read here, without a thread's round trip.
 */
static void session_send_fill(struct pop3_session *session)
{
	char *chunk = session->server->send_chunk;

	while (session->send_fd >= 0 && session->reading == NULL &&
	       session_output_size(session) < OUTPUT_HIGH_WATER) {
		struct iovec vec = {.iov_base = chunk, .iov_len = SEND_CHUNK};
		ssize_t n = preadv2(session->send_fd, &vec, 1, -1, RWF_NOWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			n = read(session->send_fd, chunk, SEND_CHUNK); /* no RWF_NOWAIT here */
		if (n < 0 && errno == EAGAIN) {
			struct session_read *read_job = xcalloc(1, sizeof(*read_job));
			read_job->session = session;
			read_job->fd = session->send_fd;
			read_job->chunk = xmalloc(SEND_CHUNK);
			session->reading = read_job;
			offload_run(session->server->pg->offload, session_read_work,
				    session_read_done, read_job);
			return;
		}
		session_send_data(session, chunk, n);
	}
}

static int64_t session_message_size(const struct store_message *message)
{
	return message->body_size + (int64_t)strlen(message->prepend);
}

/* Starts sending message INDEX (RETR, or TOP with BODY_LINES lines). */
static void session_send_message(struct pop3_session *session, size_t index, bool top,
				 uint32_t body_lines)
{
	const struct store_message *message = &session->messages[index];
	char *path = spool_path(session->server->pg->store->data_dir, message->id);
	struct evbuffer *out = bufferevent_get_output(session->bev);

	session->send_fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (session->send_fd < 0) {
		log_event(LOG_ERROR, "error", session->account_name, message->id,
			  "cannot open the message body: %s", strerror(errno));
		session_reply(session, "-ERR [SYS/TEMP] message %zu is unavailable right now",
			      index + 1);
		return;
	}
	session->send_index = index;
	session->send_is_retr = !top;
	if (top)
		session_reply(session, "+OK top of message follows");
	else
		session_reply(session, "+OK %lld octets", (long long)session_message_size(message));
	pop3_dot_encoder_init(&session->encoder, top, body_lines);
	pop3_dot_encode(&session->encoder, message->prepend, strlen(message->prepend),
			session_evbuffer_out, out);
	session_send_fill(session);
}

/* ---- login ---------------------------------------------------------------- */

static struct pop3_session *server_maildrop_holder(struct pop3_server *server, int64_t account_id)
{
	struct pop3_session *other;

	TAILQ_FOREACH(other, &server->sessions, entry)
	{
		if (other->account_id == account_id)
			return other;
	}
	return NULL;
}

static void session_auth_done(enum auth_result result, int64_t account_id,
			      const char *account_name, const char *message, void *ctx)
{
	struct pop3_session *session = ctx;
	struct pop3_server *server = session->server;

	session->auth = NULL;
	session_enter_state(session, SESSION_AUTHORIZATION);
	if (result != AUTH_OK) {
		session_reply(session, "-ERR %s", message);
		goto resume;
	}
	if (server_maildrop_holder(server, account_id) != NULL) {
		log_event(LOG_WARN, "login_failed", account_name, NULL,
			  "from %s: maildrop in use by another session", session->peer);
		session_reply(session, "-ERR [IN-USE] another session is using this mailbox");
		goto resume;
	}
	if (store_message_list(server->pg->store, account_id, MESSAGE_DELIVERY,
			       &session->messages, &session->message_count) < 0) {
		session_reply(session, "-ERR [SYS/TEMP] cannot open the mailbox; try again later");
		goto resume;
	}
	session->flags = xcalloc(session->message_count + 1, 1);
	session->account_id = account_id;
	session->account_name = xstrdup(account_name);
	session_enter_state(session, SESSION_TRANSACTION);
	evtimer_del(session->login_timer);

	int64_t total = 0;
	for (size_t i = 0; i < session->message_count; i++)
		total += session_message_size(&session->messages[i]);
	log_event(LOG_INFO, "pickup", account_name, NULL, "from %s: %zu message(s), %lld octets",
		  session->peer, session->message_count, (long long)total);
	session_reply(session, "+OK %zu messages (%lld octets)", session->message_count,
		      (long long)total);
resume:
	session_set_timeouts(session);
	session_process_input(session);
}

/*
 * Starts checking NAME and PASSWORD. Commands pipelined behind wait for the
 * answer, but the socket stays watched: a client that hangs up cancels the
 * check (session_event_cb frees the session, which cancels it). What the
 * client sends meanwhile is bounded by INPUT_HIGH_WATER.
 */
static void session_login(struct pop3_session *session, const char *name, const char *password)
{
	session_enter_state(session, SESSION_AUTH_PENDING);
	session_set_timeouts(session);
	session->auth = auth_login(session->server->pg->auth, name, password, session->peer,
				   session_auth_done, session);
}

/* login_deadline after accept: a session still not logged in ends, however
 * it kept the read timeout from firing. */
static void session_login_deadline_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct pop3_session *session = ctx;
	(void)fd;
	(void)what;

	if (session->account_id != 0 || session->state == SESSION_CLOSING)
		return;
	auth_cancel(&session->auth);
	log_event(LOG_INFO, "timeout", NULL, NULL, "%s: no login within %d s", session->peer,
		  session->server->pg->cfg->login_deadline);
	session_reply(session, "-ERR [SYS/TEMP] no login within the time allowed; closing");
	session_close(session);
}

/* ---- commands -------------------------------------------------------------- */

static void session_capa(struct pop3_session *session)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);

	evbuffer_add_printf(out, "+OK capability list follows\r\n");
	if (session->state == SESSION_AUTHORIZATION) {
		if (session_plaintext_allowed(session))
			evbuffer_add_printf(out, "USER\r\nSASL PLAIN\r\n");
		if (!session->tls && session->server->pg->server_tls != NULL)
			evbuffer_add_printf(out, "STLS\r\n");
	}
	/* EXPIRE 0: messages a client retrieved leave the mailbox at QUIT (P7). */
	evbuffer_add_printf(out, "TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
				 "EXPIRE 0\r\nIMPLEMENTATION popgate\r\n.\r\n");
}

static void session_stls(struct pop3_session *session)
{
	struct pop3_server *server = session->server;
	SSL *ssl;
	struct bufferevent *tls_bev;

	if (session->tls) {
		session_bad_command(session, "already using TLS");
		return;
	}
	if (server->pg->server_tls == NULL || (ssl = SSL_new(server->pg->server_tls)) == NULL) {
		session_reply(session, "-ERR [SYS/TEMP] TLS is not available");
		return;
	}
	session_reply(session, "+OK begin TLS negotiation");
	/* Anything the client pipelined after STLS was sent in the clear and must
	 * not be taken as if it came over TLS (the STARTTLS injection attack). */
	pop3_evbuffer_wipe(bufferevent_get_input(session->bev));
	pop3_framer_reset(&session->framer);
	tls_bev = bufferevent_openssl_filter_new(server->pg->base, session->bev, ssl,
						 BUFFEREVENT_SSL_ACCEPTING,
						 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls_bev == NULL) {
		SSL_free(ssl);
		session_close(session);
		return;
	}
	/* The filter hands the plain bufferevent at most this much, so the
	 * backlog stays in the filter's buffer, where the write callback sees it. */
	bufferevent_setwatermark(session->bev, EV_WRITE, 0, TLS_UNDERLYING_HIGH_WATER);
	session->bev = tls_bev;
	session->tls = true;
	if (session->user_name != NULL) {
		sodium_memzero(session->user_name, strlen(session->user_name));
		xfree(&session->user_name);
	}
	session_setup_bev(session);
}

static void session_auth(struct pop3_session *session, const struct pop3_command *cmd)
{
	if (cmd->arg_count == 0) {
		session_reply(session, "+OK\r\nPLAIN\r\n.");
		return;
	}
	if (cmd->arg_len[0] != 5 || strncasecmp(cmd->args[0], "PLAIN", 5) != 0) {
		session_bad_command(session, "unsupported authentication mechanism");
		return;
	}
	if (!session_plaintext_allowed(session)) {
		session_reply(session, "-ERR [AUTH] plain-text login needs TLS first: use STLS");
		return;
	}
	if (cmd->arg_count == 1) {
		session->awaiting_sasl = true;
		session_reply(session, "+ ");
		return;
	}
	char name[NAME_MAX_LEN], password[PASSWORD_MAX_LEN];
	if (pop3_auth_plain_decode(cmd->args[1], cmd->arg_len[1], name, sizeof(name), password,
				   sizeof(password)) < 0) {
		sodium_memzero(name, sizeof(name));
		sodium_memzero(password, sizeof(password));
		session_bad_command(session, "malformed AUTH PLAIN response");
		return;
	}
	session_login(session, name, password);
	sodium_memzero(name, sizeof(name));
	sodium_memzero(password, sizeof(password));
}

static void session_sasl_response(struct pop3_session *session, const char *line, size_t len)
{
	char name[NAME_MAX_LEN], password[PASSWORD_MAX_LEN];

	session->awaiting_sasl = false;
	if (len == 1 && line[0] == '*') {
		session_reply(session, "-ERR authentication cancelled");
		return;
	}
	if (pop3_auth_plain_decode(line, len, name, sizeof(name), password, sizeof(password)) < 0) {
		sodium_memzero(name, sizeof(name));
		sodium_memzero(password, sizeof(password));
		session_bad_command(session, "malformed AUTH PLAIN response");
		return;
	}
	session_login(session, name, password);
	sodium_memzero(name, sizeof(name));
	sodium_memzero(password, sizeof(password));
}

/* The message numbered NUMBER, or NULL after replying -ERR. */
static const struct store_message *session_message(struct pop3_session *session, uint32_t number)
{
	if (number == 0 || number > session->message_count) {
		session_reply(session, "-ERR no such message, only %zu in the mailbox",
			      session->message_count);
		return NULL;
	}
	if (session->flags[number - 1] & MESSAGE_FLAG_DELETED) {
		session_reply(session, "-ERR message %u is deleted", number);
		return NULL;
	}
	return &session->messages[number - 1];
}

static void session_stat(struct pop3_session *session)
{
	size_t count = 0;
	int64_t total = 0;

	for (size_t i = 0; i < session->message_count; i++) {
		if (session->flags[i] & MESSAGE_FLAG_DELETED)
			continue;
		count++;
		total += session_message_size(&session->messages[i]);
	}
	session_reply(session, "+OK %zu %lld", count, (long long)total);
}

static void session_list(struct pop3_session *session, const struct pop3_command *cmd, bool uidl)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);
	const struct store_message *message;

	if (cmd->has_number) {
		message = session_message(session, cmd->numbers[0]);
		if (message == NULL)
			return;
		if (uidl)
			session_reply(session, "+OK %u %s", cmd->numbers[0], message->id);
		else
			session_reply(session, "+OK %u %lld", cmd->numbers[0],
				      (long long)session_message_size(message));
		return;
	}
	evbuffer_add_printf(out, "+OK\r\n");
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->flags[i] & MESSAGE_FLAG_DELETED)
			continue;
		if (uidl)
			evbuffer_add_printf(out, "%zu %s\r\n", i + 1, session->messages[i].id);
		else
			evbuffer_add_printf(out, "%zu %lld\r\n", i + 1,
					    (long long)session_message_size(&session->messages[i]));
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void session_pickup_free(struct session_pickup *pickup)
{
	free(pickup->ids);
	free(pickup);
}

/* In the writer thread: the moves, all or none. */
static int session_pickup_work(struct store *store, void *arg)
{
	struct session_pickup *pickup = arg;

	for (size_t i = 0; i < pickup->count; i++) {
		if (store_message_move(store, pickup->ids[i], MESSAGE_DELIVERY, MESSAGE_DELIVERED,
				       NULL) < 0)
			return -1;
	}
	return 0;
}

/* In the loop, once the moves committed (or failed): the answer to QUIT. */
static void session_pickup_done(int result, const char *error, void *arg)
{
	struct session_pickup *pickup = arg;
	struct pop3_session *session = pickup->session;
	size_t moved = pickup->count;

	session_pickup_free(pickup);
	if (session == NULL)
		return; /* the client left before the answer; the moves stand */
	session->pickup = NULL;
	if (result < 0) {
		log_event(LOG_ERROR, "error", session->account_name, NULL,
			  "cannot record the pickup: %s", error);
		session_reply(session, "-ERR [SYS/TEMP] messages could not be removed; they will "
				       "be offered again");
		session_close(session);
		return;
	}
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->flags[i] != 0)
			log_event(LOG_INFO, "delivered", session->account_name,
				  session->messages[i].id, "to %s", session->peer);
	}
	session_reply(session, "+OK %zu message(s) delivered, bye", moved);
	session->quit_done = true;
	/* P4: the pickup is over; fetch the account's new mail for the next one. */
	fetcher_request(session->server->pg->fetcher, session->account_id, 0);
	session_close(session);
}

/*
 * QUIT in TRANSACTION (the UPDATE state): every message the client retrieved
 * or deleted leaves the Delivery Queue, whatever DELE said (P7), in one
 * transaction committed before +OK. The writer thread commits it (with
 * others queued meanwhile); no command is taken while it does.
 */
static void session_update(struct pop3_session *session)
{
	struct session_pickup *pickup = xcalloc(1, sizeof(*pickup));

	pickup->session = session;
	pickup->ids = xcalloc(session->message_count + 1, sizeof(*pickup->ids));
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->flags[i] != 0)
			memcpy(pickup->ids[pickup->count++], session->messages[i].id,
			       sizeof(pickup->ids[0]));
	}
	session_enter_state(session, SESSION_CLOSING);
	bufferevent_disable(session->bev, EV_READ);
	if (pickup->count == 0) {
		session_pickup_done(0, NULL, pickup); /* nothing to write */
		return;
	}
	if (writer_submit(session->server->pg->writer, NULL, session_pickup_work,
			  session_pickup_done, pickup) < 0) {
		session_pickup_free(pickup);
		log_event(LOG_ERROR, "error", session->account_name, NULL,
			  "cannot record the pickup: the store is overloaded");
		session_reply(session, "-ERR [SYS/TEMP] messages could not be removed; they will "
				       "be offered again");
		session_close(session);
		return;
	}
	session->pickup = pickup;
}

static void session_command_authorization(struct pop3_session *session,
					  const struct pop3_command *cmd)
{
	switch (cmd->verb) {
	case POP3_VERB_CAPA:
		session_capa(session);
		return;
	case POP3_VERB_STLS:
		session_stls(session);
		return;
	case POP3_VERB_AUTH:
		session_auth(session, cmd);
		return;
	case POP3_VERB_USER:
		if (!session_plaintext_allowed(session)) {
			session_reply(session,
				      "-ERR [AUTH] plain-text login needs TLS first: use STLS");
			return;
		}
		if (session->user_name != NULL)
			sodium_memzero(session->user_name, strlen(session->user_name));
		free(session->user_name);
		session->user_name = xstrndup(cmd->args[0], cmd->arg_len[0]);
		session_reply(session, "+OK send your provider password with PASS");
		return;
	case POP3_VERB_PASS: {
		if (session->user_name == NULL) {
			session_bad_command(session, "USER first");
			return;
		}
		char *password = xstrndup(cmd->args[0], cmd->arg_len[0]);
		char *name = session->user_name;
		session->user_name = NULL;
		session_login(session, name, password);
		sodium_memzero(password, strlen(password));
		sodium_memzero(name, strlen(name));
		free(password);
		free(name);
		return;
	}
	case POP3_VERB_APOP:
		session_bad_command(session, "APOP is not supported; use USER and PASS");
		return;
	case POP3_VERB_NOOP:
		session_reply(session, "+OK");
		return;
	case POP3_VERB_QUIT:
		session_reply(session, "+OK bye");
		session_close(session);
		return;
	default:
		session_bad_command(session, "%s is only valid after login", pop3_verb_name(cmd->verb));
		return;
	}
}

static void session_command_transaction(struct pop3_session *session,
					const struct pop3_command *cmd)
{
	const struct store_message *message;

	switch (cmd->verb) {
	case POP3_VERB_STAT:
		session_stat(session);
		return;
	case POP3_VERB_LIST:
		session_list(session, cmd, false);
		return;
	case POP3_VERB_UIDL:
		session_list(session, cmd, true);
		return;
	case POP3_VERB_RETR:
	case POP3_VERB_TOP:
		message = session_message(session, cmd->numbers[0]);
		if (message != NULL)
			session_send_message(session, cmd->numbers[0] - 1,
					     cmd->verb == POP3_VERB_TOP, cmd->numbers[1]);
		return;
	case POP3_VERB_DELE:
		message = session_message(session, cmd->numbers[0]);
		if (message == NULL)
			return;
		session->flags[cmd->numbers[0] - 1] |= MESSAGE_FLAG_DELETED;
		session_reply(session, "+OK message %u deleted", cmd->numbers[0]);
		return;
	case POP3_VERB_RSET:
		for (size_t i = 0; i < session->message_count; i++)
			session->flags[i] &= (uint8_t)~MESSAGE_FLAG_DELETED;
		session_reply(session, "+OK");
		return;
	case POP3_VERB_NOOP:
		session_reply(session, "+OK");
		return;
	case POP3_VERB_CAPA:
		session_capa(session);
		return;
	case POP3_VERB_QUIT:
		session_update(session);
		return;
	default:
		session_bad_command(session, "%s is not valid after login", pop3_verb_name(cmd->verb));
		return;
	}
}

static void session_handle_line(struct pop3_session *session, const char *line, size_t len)
{
	struct pop3_command cmd;
	const char *error;

	if (session->awaiting_sasl) {
		session_sasl_response(session, line, len);
		return;
	}
	if (pop3_command_parse(line, len, &cmd, &error) < 0) {
		session_bad_command(session, "%s", error);
		return;
	}
	if (session->state == SESSION_AUTHORIZATION)
		session_command_authorization(session, &cmd);
	else
		session_command_transaction(session, &cmd);
}

/* Reads nothing more until the write callback finds the output drained. */
static void session_pause_input(struct pop3_session *session)
{
	if (session->input_paused)
		return;
	session->input_paused = true;
	bufferevent_disable(session->bev, EV_READ);
}

/*
 * Handles complete lines while the session takes commands. It stops while a
 * message is being sent or the output is over its high-water mark, and the
 * write callback calls it again: each command is handled here, in turn,
 * never from inside another's reply.
 */
static void session_process_input(struct pop3_session *session)
{
	size_t max_line = (size_t)session->server->pg->cfg->max_line;

	while (session->state == SESSION_AUTHORIZATION || session->state == SESSION_TRANSACTION) {
		if (session->send_fd >= 0 || session_output_size(session) >= OUTPUT_HIGH_WATER) {
			session_pause_input(session);
			return;
		}
		struct bufferevent *bev_before = session->bev;
		enum pop3_frame frame = pop3_framer_feed_evbuffer(
			&session->framer, bufferevent_get_input(session->bev));
		if (frame == POP3_FRAME_NONE)
			return;
		if (frame == POP3_FRAME_TOO_LONG) {
			if (session_bad_command(session, "line too long (limit %zu bytes)",
						max_line))
				return;
			continue;
		}
		session_handle_line(session, session->framer.line, session->framer.len);
		pop3_framer_reset(&session->framer); /* it may have held a password */
		if (session->bev != bev_before)
			return; /* STLS: the rest comes over TLS, through the read callback */
	}
}

/* ---- libevent callbacks --------------------------------------------------- */

static void session_read_cb(struct bufferevent *bev, void *ctx)
{
	(void)bev;
	session_process_input(ctx);
}

/* Output drained to OUTPUT_LOW_WATER: refill a message being sent, finish a
 * closing session, or take up the commands that wait. */
static void session_write_cb(struct bufferevent *bev, void *ctx)
{
	struct pop3_session *session = ctx;
	(void)bev;

	if (session->send_fd >= 0)
		session_send_fill(session);
	if (session->state == SESSION_CLOSING) {
		if (session->flushing)
			session_close_when_flushed(session);
		return;
	}
	if (!session->input_paused || session->send_fd >= 0 ||
	    session_output_size(session) >= OUTPUT_HIGH_WATER)
		return;
	session->input_paused = false;
	bufferevent_enable(session->bev, EV_READ);
	session_process_input(session);
}

static void session_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct pop3_session *session = ctx;
	(void)bev;

	if (events & BEV_EVENT_TIMEOUT) {
		if ((events & BEV_EVENT_READING) && session->state != SESSION_CLOSING) {
			log_event(LOG_INFO, "timeout", session->account_name, NULL,
				  "%s idle for too long", session->peer);
			session_reply(session, "-ERR [SYS/TEMP] idle for too long; closing");
			session_close(session);
			return;
		}
		log_event(LOG_INFO, "timeout", session->account_name, NULL,
			  "%s does not read its replies; closing", session->peer);
		session_free(session); /* output did not drain: the client is gone */
		return;
	}
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (events & BEV_EVENT_ERROR)
			log_debug("pop3 %s: connection error", session->peer);
		session_free(session);
	}
}

/* Callbacks, watermarks, timeouts and reading for the session's (new)
 * bufferevent: at accept, and again for the TLS filter after STLS. */
static void session_setup_bev(struct pop3_session *session)
{
	bufferevent_setcb(session->bev, session_read_cb, session_write_cb, session_event_cb,
			  session);
	bufferevent_setwatermark(session->bev, EV_WRITE, OUTPUT_LOW_WATER, 0);
	bufferevent_setwatermark(session->bev, EV_READ, 0, INPUT_HIGH_WATER);
	session_set_timeouts(session);
	bufferevent_enable(session->bev, EV_READ | EV_WRITE);
}

static bool server_address_is_loopback(const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
	if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6))
			return a6->s6_addr[12] == 127;
		return IN6_IS_ADDR_LOOPBACK(a6);
	}
	return false;
}

static unsigned server_sessions_from(struct pop3_server *server, const char *peer)
{
	struct pop3_session *session;
	unsigned count = 0;

	TAILQ_FOREACH(session, &server->sessions, entry)
	{
		if (strcmp(session->peer, peer) == 0)
			count++;
	}
	return count;
}

static void server_accept(struct pop3_server *server, evutil_socket_t fd, struct sockaddr *addr,
			  bool tls)
{
	const struct popgate_config *cfg = server->pg->cfg;
	char peer[INET6_ADDRSTRLEN] = "?";
	static const char busy[] = "-ERR [SYS/TEMP] too many sessions; try again later\r\n";
	/* Deferred: libevent never calls a session's callbacks from inside its
	 * own handlers (adding output to a TLS bufferevent would, at once). */
	const int bev_options = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	int one = 1;

	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)addr)->sin_addr, peer, sizeof(peer));
	else if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)addr)->sin6_addr, peer, sizeof(peer));

	if (server->session_count >= (unsigned)cfg->max_sessions ||
	    server_sessions_from(server, peer) >= (unsigned)cfg->max_sessions_per_ip) {
		log_event(LOG_WARN, "refused", NULL, NULL, "%s: session limit reached", peer);
		if (!tls) /* a best effort: the socket is new, its buffer is empty */
			(void)!send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	struct pop3_session *session = xcalloc(1, sizeof(*session));
	session->server = server;
	session->send_fd = -1;
	session->on_tls_port = tls;
	session->tls = tls;
	session->loopback = server_address_is_loopback(addr);
	snprintf(session->peer, sizeof(session->peer), "%s", peer);
	if (tls) {
		SSL *ssl = SSL_new(server->pg->server_tls);
		if (ssl == NULL) {
			evutil_closesocket(fd);
			free(session);
			return;
		}
		session->bev = bufferevent_openssl_socket_new(server->pg->base, fd, ssl,
							      BUFFEREVENT_SSL_ACCEPTING, bev_options);
	} else {
		session->bev = bufferevent_socket_new(server->pg->base, fd, bev_options);
	}
	if (session->bev == NULL) {
		evutil_closesocket(fd);
		free(session);
		return;
	}
	TAILQ_INSERT_TAIL(&server->sessions, session, entry);
	server->session_count++;
	pop3_framer_init(&session->framer, (size_t)cfg->max_line);
	session->login_timer = evtimer_new(server->pg->base, session_login_deadline_cb, session);
	struct timeval deadline = {.tv_sec = cfg->login_deadline};
	evtimer_add(session->login_timer, &deadline);
	session_setup_bev(session);
	log_debug("pop3 %s: connected%s", peer, tls ? " (TLS)" : "");
	session_reply(session, "+OK popgate ready");
}

static void server_accept_plain_cb(struct evconnlistener *listener, evutil_socket_t fd,
				   struct sockaddr *addr, int addrlen, void *ctx)
{
	(void)listener;
	(void)addrlen;
	server_accept(ctx, fd, addr, false);
}

static void server_accept_tls_cb(struct evconnlistener *listener, evutil_socket_t fd,
				 struct sockaddr *addr, int addrlen, void *ctx)
{
	(void)listener;
	(void)addrlen;
	server_accept(ctx, fd, addr, true);
}

static void server_accept_error_cb(struct evconnlistener *listener, void *ctx)
{
	int err = EVUTIL_SOCKET_ERROR();
	(void)listener;
	(void)ctx;
	/* EMFILE and the like: the listener goes on; the log says why accepts fail. */
	log_event(LOG_ERROR, "error", NULL, NULL, "accept failed: %s",
		  evutil_socket_error_to_string(err));
}

/*
 * Writes what the session has queued at once, without the loop, as far as
 * the socket takes it (a best effort at shutdown): through the TLS object if
 * there is one, then the plain bufferevent below a TLS filter.
 */
static void session_flush_now(struct pop3_session *session)
{
	struct bufferevent *bev = session->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl != NULL) {
		size_t len = evbuffer_get_length(out);
		unsigned char *data = evbuffer_pullup(out, -1);
		if (len > 0 && data != NULL && len <= INT32_MAX && SSL_write(ssl, data, (int)len) > 0)
			evbuffer_drain(out, len);
		bev = bufferevent_get_underlying(bev);
		if (bev == NULL)
			return; /* the TLS object wrote to the socket itself */
		out = bufferevent_get_output(bev);
	}
	evutil_socket_t fd = bufferevent_getfd(bev);
	/* A socket bufferevent keeps the front of its output frozen except in
	 * its own write callback; the bufferevent is freed right after this. */
	evbuffer_unfreeze(out, 1);
	while (fd >= 0 && evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
		continue;
	evbuffer_freeze(out, 1);
}

/* ---- public ----------------------------------------------------------------- */

struct pop3_server *pop3_server_new(struct popgate *pg, int plain_fd, int tls_fd, char *err,
				    size_t errlen)
{
	struct pop3_server *server = xcalloc(1, sizeof(*server));
	const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
	/* Backlog 0: the sockets already listen with the daemon's backlog; any
	 * other value would make libevent call listen() again with a smaller one. */

	server->pg = pg;
	server->send_chunk = xmalloc(SEND_CHUNK);
	TAILQ_INIT(&server->sessions);
	if (plain_fd >= 0) {
		server->plain_listener = evconnlistener_new(pg->base, server_accept_plain_cb,
							    server, flags, 0, plain_fd);
		if (server->plain_listener == NULL)
			goto fail;
		evconnlistener_set_error_cb(server->plain_listener, server_accept_error_cb);
	}
	if (tls_fd >= 0) {
		server->tls_listener = evconnlistener_new(pg->base, server_accept_tls_cb, server,
							  flags, 0, tls_fd);
		if (server->tls_listener == NULL)
			goto fail;
		evconnlistener_set_error_cb(server->tls_listener, server_accept_error_cb);
	}
	return server;
fail:
	snprintf(err, errlen, "cannot listen: %s", strerror(errno));
	pop3_server_free(&server);
	return NULL;
}

void pop3_server_free(struct pop3_server **server_p)
{
	struct pop3_server *server = *server_p;
	struct pop3_session *session;

	if (server == NULL)
		return;
	server->shutting_down = true;
	while ((session = TAILQ_FIRST(&server->sessions)) != NULL) {
		if (session->state == SESSION_AUTH_PENDING) {
			/* The client waits for an answer to its login: give one. */
			auth_cancel(&session->auth);
			session_reply(session,
				      "-ERR [SYS/TEMP] popgate is stopping; try again later");
			session_flush_now(session);
		}
		session_free(session);
	}
	if (server->plain_listener != NULL)
		evconnlistener_free(server->plain_listener);
	if (server->tls_listener != NULL)
		evconnlistener_free(server->tls_listener);
	free(server->send_chunk);
	free(server);
	*server_p = NULL;
}

unsigned pop3_server_session_count(const struct pop3_server *server)
{
	return server->session_count;
}
