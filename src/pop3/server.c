/*
 * server.c — the POP3 server that mail clients talk to: RFC 1939 with CAPA
 * (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034) and implicit TLS on the
 * POP3S port. Its sessions run on core/session (connection, line reader,
 * flow control, timeouts) and accept through core/listener (session limits);
 * the commands are pop3/commands.c's table.
 *
 * A session is a state machine (AUTHORIZATION → TRANSACTION → closed), one
 * per connection, driven by the event loop; it never blocks. A pickup serves
 * the account's Delivery Queue as it stood at login (P3). At QUIT every
 * message the client retrieved or deleted moves to `delivered` in one
 * transaction before +OK is sent, and a fetch is requested for the account
 * (P4). A session that ends without QUIT changes nothing (RFC 1939), so the
 * client gets those messages again.
 *
 * This file owns the session's life: accepting it, logging in (the only
 * caller of pop3/auth.h), sending a message, timeouts and the end. Limits:
 * one session per maildrop ([IN-USE]), sessions overall and per client
 * address (core/listener), line length and bad commands, a login timeout
 * (silence) and a login deadline (from accept), an idle timeout and a
 * timeout on output that does not drain (core/session). A session whose
 * output has not drained is not read, so a client that sends without
 * reading costs bounded memory.
 *
 * SECURITY: everything a client sends is untrusted and goes through
 * pop3/parse.c; what is echoed or logged is sanitised. Passwords go only to
 * auth.c and are wiped here after use. Plain-text logins are refused on an
 * unencrypted connection unless it is from loopback or the config allows it.
 * Message bodies are read from the spool and written to the client; they are
 * never parsed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/session.h"
#include "core/util.h"
#include "pop3/auth.h"
#include "pop3/server.h"
#include "pop3/server_session.h"
#include "popgate.h"
#include "store/message.h"
#include "store/spool.h"

static const char *const session_state_names[] = {
    [SESSION_AUTHORIZATION] = "authorization",
    [SESSION_AUTH_PENDING] = "auth-pending",
    [SESSION_TRANSACTION] = "transaction",
    [SESSION_CLOSING] = "closing",
};
_Static_assert(sizeof(session_state_names) / sizeof(session_state_names[0]) == SESSION_STATE_COUNT,
	       "every session state has a name");

static void session_set_timeouts(struct pop3_session *session);

/* ---- session plumbing ---------------------------------------------------- */

void session_enter_state(struct pop3_session *session, enum session_state state)
{
	log_debug("pop3 %s: %s -> %s", session->peer, session_state_names[session->state],
		  session_state_names[state]);
	session->state = state;
}

void session_reply(struct pop3_session *session, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_add_vline(session->core, fmt, ap);
	va_end(ap);
}

bool session_bad_command(struct pop3_session *session, const char *fmt, ...)
{
	struct evbuffer *out = session_output(session->core);
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

void session_close(struct pop3_session *session)
{
	session_enter_state(session, SESSION_CLOSING);
	session_finish(session->core);
}

void session_free_later(struct pop3_session *session)
{
	session_enter_state(session, SESSION_CLOSING);
	session_drop(session->core);
}

size_t session_output_size(struct pop3_session *session)
{
	return session_pending_output(session->core);
}

bool session_is_encrypted(const struct pop3_session *session)
{
	return session_is_tls(session->core);
}

bool session_plaintext_allowed(const struct pop3_session *session)
{
	return session_is_encrypted(session) || session->loopback ||
	       session->server->pg->cfg->allow_plaintext_auth;
}

int session_upgrade_tls(struct pop3_session *session)
{
	SSL *ssl = SSL_new(session->server->pg->server_tls);

	if (ssl == NULL || session_start_tls(session->core, ssl) < 0)
		return -1;
	if (session->user_name != NULL) {
		sodium_memzero(session->user_name, strlen(session->user_name));
		xfree(&session->user_name);
	}
	return 0;
}

/*
 * Silence before login and idleness after it are read timeouts. While a
 * login is checked the client waits for us, so its silence is no fault (the
 * check has its own deadline).
 */
static void session_set_timeouts(struct pop3_session *session)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	int seconds = session->account_id ? cfg->idle_timeout : cfg->login_timeout;

	session_set_read_timeout(session->core,
				 session->state == SESSION_AUTH_PENDING ? 0 : seconds);
}

/* ---- sending a message --------------------------------------------------- */

static void session_evbuffer_out(void *ctx, const char *data, size_t len)
{
	evbuffer_add(ctx, data, len);
}

static void session_send_done(struct pop3_session *session)
{
	struct evbuffer *out = session_output(session->core);

	pop3_dot_encoder_finish(&session->encoder, session_evbuffer_out, out);
	close(session->send_fd);
	session->send_fd = -1;
	if (session->send_is_retr)
		session->messages[session->send_index].flags |= MESSAGE_FLAG_RETRIEVED;
}

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
	struct evbuffer *out = session_output(session->core);

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
	const struct store_served *served = &session->served[session->send_index];
	int64_t start = session->send_offset;

	session->send_offset += n;
	/* A tagged message's subject tag goes in where it was planned; an
	 * untagged one costs this one test, and no copy either way. */
	if (served->subject_tag != NULL && served->subject_tag_at >= start &&
	    served->subject_tag_at < session->send_offset) {
		size_t before = (size_t)(served->subject_tag_at - start);

		pop3_dot_encode(&session->encoder, data, before, session_evbuffer_out, out);
		pop3_dot_encode(&session->encoder, served->subject_tag, strlen(served->subject_tag),
				session_evbuffer_out, out);
		data += before;
		n -= (ssize_t)before;
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

static void session_served_free(struct pop3_session *session)
{
	if (session->served == NULL)
		return;
	for (size_t i = 0; i < session->message_count; i++)
		store_served_clear(&session->served[i]);
	xfree(&session->served);
}

/* Matching the rows store_message_each_served gives to the listing: both
 * are in arrival order, but rows that entered the queue since the login are
 * not in the listing, and listed ones may have left it. */
struct prepend_match {
	struct pop3_session *session;
	size_t next; /* listing entries before it were matched or passed */
};

static void session_take_served(void *ctx, const char *id, struct store_served *served)
{
	struct prepend_match *match = ctx;
	struct pop3_session *session = match->session;

	for (size_t i = match->next; i < session->message_count; i++) {
		if (strcmp(session->messages[i].id, id) == 0) {
			session->served[i] = *served;
			memset(served, 0, sizeof(*served));
			match->next = i + 1;
			return;
		}
	}
}

/* The prepended header lines of message INDEX (the session's; NULL if
 * unavailable, logged), with its subject tag in session->served[INDEX]. The
 * listing holds only their length, so that a session that only logged in
 * holds no message's lines; the first RETR or TOP reads them for every
 * listed message in one query. */
static const char *session_prepend(struct pop3_session *session, size_t index)
{
	const struct session_message *message = &session->messages[index];

	if (session->served == NULL) {
		struct prepend_match match = {.session = session};

		session->served = xcalloc(session->message_count, sizeof(*session->served));
		/* On an error (logged) the entries not read are read one by one. */
		store_message_each_served(session->server->pg->store, session->account_id,
					  MESSAGE_DELIVERY, session_take_served, &match);
	}
	/* Not found there: the message left the Delivery Queue since the login
	 * (it is still served, as the listing promised) or the query failed. */
	if (session->served[index].prepend == NULL &&
	    store_message_read_served(session->server->pg->store, message->id,
				      &session->served[index]) != 1) {
		log_event(LOG_ERROR, "error", session->account_name, message->id,
			  "cannot read the message's prepended header lines");
		return NULL;
	}
	return session->served[index].prepend;
}

/* Starts sending message INDEX (RETR, or TOP with BODY_LINES lines). */
void session_send_message(struct pop3_session *session, size_t index, bool top, uint32_t body_lines)
{
	const struct session_message *message = &session->messages[index];
	struct evbuffer *out = session_output(session->core);
	const char *prepend = session_prepend(session, index);
	char *path;

	if (prepend == NULL)
		goto unavailable;
	path = spool_path(session->server->pg->store->data_dir, message->id);
	session->send_fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (session->send_fd < 0) {
		log_event(LOG_ERROR, "error", session->account_name, message->id,
			  "cannot open the message body: %s", strerror(errno));
		goto unavailable;
	}
	session->send_index = index;
	session->send_offset = 0;
	session->send_is_retr = !top;
	if (top)
		session_reply(session, "+OK top of message follows");
	else
		session_reply(session, "+OK %lld octets", (long long)message->size);
	pop3_dot_encoder_init(&session->encoder, top, body_lines);
	pop3_dot_encode(&session->encoder, prepend, strlen(prepend), session_evbuffer_out, out);
	session_send_fill(session);
	return;
unavailable:
	session_reply(session, "-ERR [SYS/TEMP] message %zu is unavailable right now", index + 1);
}

/* ---- login: the only calls to pop3/auth.h ------------------------------------ */

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

/* Lists ACCOUNT_ID's Delivery Queue into the session's maildrop, keeping of
 * each message only its id and size as served. 0 or -1. */
static int session_maildrop_open(struct pop3_session *session, int64_t account_id)
{
	struct store_message *list = NULL;
	size_t count = 0;

	if (store_message_list(session->server->pg->store, account_id, MESSAGE_DELIVERY, &list,
			       &count) < 0)
		return -1;
	session->messages = count > 0 ? xcalloc(count, sizeof(*session->messages)) : NULL;
	for (size_t i = 0; i < count; i++) {
		memcpy(session->messages[i].id, list[i].id, sizeof(session->messages[i].id));
		session->messages[i].size =
		    list[i].body_size + list[i].prepend_size + list[i].subject_tag_size;
	}
	session->message_count = count;
	store_message_list_free(&list, count);
	return 0;
}

static void session_auth_done(enum auth_result result, int64_t account_id, const char *account_name,
			      const char *message, void *ctx)
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
	if (session_maildrop_open(session, account_id) < 0) {
		session_reply(session, "-ERR [SYS/TEMP] cannot open the mailbox; try again later");
		goto resume;
	}
	session->account_id = account_id;
	session->account_name = xstrdup(account_name);
	session_enter_state(session, SESSION_TRANSACTION);
	session_set_deadline(session->core, 0);

	int64_t total = 0;
	for (size_t i = 0; i < session->message_count; i++)
		total += session->messages[i].size;
	log_event(LOG_INFO, "pickup", account_name, NULL, "from %s: %zu message(s), %lld octets",
		  session->peer, session->message_count, (long long)total);
	session_reply(session, "+OK %zu messages (%lld octets)", session->message_count,
		      (long long)total);
resume:
	session_set_timeouts(session);
	session_process(session->core);
}

/*
 * Starts checking NAME and PASSWORD. Commands pipelined behind wait for the
 * answer, but the socket stays watched: a client that hangs up cancels the
 * check (the session is freed, which cancels it). What the client sends
 * meanwhile is bounded by core/session's input high-water mark.
 */
void session_login(struct pop3_session *session, const char *name, const char *password)
{
	session_enter_state(session, SESSION_AUTH_PENDING);
	session_set_timeouts(session);
	session->auth = auth_login(session->server->pg->auth, name, password, session->peer,
				   session_auth_done, session);
}

/* Stops a login check in progress; false if there was none. */
static bool session_login_cancel(struct pop3_session *session)
{
	if (session->auth == NULL)
		return false;
	auth_cancel(&session->auth);
	return true;
}

/* ---- core/session callbacks ---------------------------------------------- */

static enum session_intake session_intake(void *owner)
{
	struct pop3_session *session = owner;

	if (session->state != SESSION_AUTHORIZATION && session->state != SESSION_TRANSACTION)
		return SESSION_HOLD_LINES;
	return session->send_fd >= 0 ? SESSION_PAUSE_INPUT : SESSION_TAKE_LINES;
}

static void session_on_line(void *owner, const char *line, size_t len)
{
	pop3_command_handle(owner, line, len);
}

static void session_on_line_too_long(void *owner)
{
	struct pop3_session *session = owner;

	session_bad_command(session, "line too long (limit %d bytes)",
			    session->server->pg->cfg->max_line);
}

/* Output drained: refill a message being sent. */
static void session_on_drain(void *owner)
{
	struct pop3_session *session = owner;

	if (session->send_fd >= 0)
		session_send_fill(session);
}

static void session_on_timeout(void *owner, enum session_timeout timeout)
{
	struct pop3_session *session = owner;

	switch (timeout) {
	case SESSION_TIMEOUT_SILENCE:
		log_event(LOG_INFO, "timeout", session->account_name, NULL, "%s idle for too long",
			  session->peer);
		session_reply(session, "-ERR [SYS/TEMP] idle for too long; closing");
		session_close(session);
		return;
	case SESSION_TIMEOUT_DEADLINE:
		/* login_deadline after accept: a session still not logged in ends,
		 * however it kept the read timeout from firing. */
		if (session->account_id != 0 || session->state == SESSION_CLOSING)
			return;
		session_login_cancel(session);
		log_event(LOG_INFO, "timeout", NULL, NULL, "%s: no login within %d s",
			  session->peer, session->server->pg->cfg->login_deadline);
		session_reply(session, "-ERR [SYS/TEMP] no login within the time allowed; closing");
		session_close(session);
		return;
	case SESSION_TIMEOUT_WRITE:
		log_event(LOG_INFO, "timeout", session->account_name, NULL,
			  "%s does not read its replies; closing", session->peer);
		return;
	}
}

static void session_maildrop_free(struct pop3_session *session)
{
	session_served_free(session);
	xfree(&session->messages);
	session->message_count = 0;
}

/* core/session frees the connection; this frees the rest. */
static void session_on_close(void *owner)
{
	struct pop3_session *session = owner;
	struct pop3_server *server = session->server;

	if (session_login_cancel(session))
		log_event(LOG_INFO, "login_cancelled", NULL, NULL,
			  "%s went away during the login check", session->peer);
	if (session->reading != NULL) {
		/* The thread is reading the file: the read closes it when done. */
		session->reading->session = NULL;
		session->send_fd = -1;
	}
	if (session->send_fd >= 0)
		close(session->send_fd);
	if (session->pickup != NULL)
		session->pickup->session = NULL; /* its commit goes on without an answer */
	if (session->user_name != NULL) {
		sodium_memzero(session->user_name, strlen(session->user_name));
		free(session->user_name);
	}
	session_maildrop_free(session);
	TAILQ_REMOVE(&server->sessions, session, entry);
	server->session_count--;
	log_debug("pop3 %s: closed, %u session(s) left", session->peer, server->session_count);
	if (session->account_id != 0)
		log_event(LOG_INFO, "logout", session->account_name, NULL, "from %s%s",
			  session->peer, session->quit_done ? "" : " (no QUIT: nothing changed)");
	free(session->account_name);
	listener_peer_release(&session->listener_peer);
	free(session);
}

static const struct session_ops session_pop3_ops = {
    .intake = session_intake,
    .on_line = session_on_line,
    .on_line_too_long = session_on_line_too_long,
    .on_drain = session_on_drain,
    .on_timeout = session_on_timeout,
    .on_close = session_on_close,
};

/* ---- accepting ------------------------------------------------------------ */

static void server_accept_cb(evutil_socket_t fd, struct listener_peer *peer, void *ctx)
{
	struct pop3_server *server = ctx;
	struct pop3_session *session = xcalloc(1, sizeof(*session));

	session->server = server;
	session->send_fd = -1;
	session->listener_peer = peer;
	session->peer = peer->address;
	session->loopback = peer->loopback;
	session->core =
	    session_new(&server->session_config, fd, peer->tls ? server->pg->server_tls : NULL,
			peer->address, &session_pop3_ops, session);
	if (session->core == NULL) {
		listener_peer_release(&session->listener_peer);
		free(session);
		return;
	}
	TAILQ_INSERT_TAIL(&server->sessions, session, entry);
	server->session_count++;
	session_set_timeouts(session);
	session_set_deadline(session->core, server->pg->cfg->login_deadline);
	log_debug("pop3 %s: connected%s", session->peer, peer->tls ? " (TLS)" : "");
	session_reply(session, "+OK popgate ready");
}

/* ---- public ----------------------------------------------------------------- */

struct pop3_server *pop3_server_new(struct popgate *pg, int plain_fd, int tls_fd, char *err,
				    size_t errlen)
{
	struct pop3_server *server = xcalloc(1, sizeof(*server));
	const struct listener_limits limits = {
	    .max_sessions = (unsigned)pg->cfg->max_sessions,
	    .max_per_address = (unsigned)pg->cfg->max_sessions_per_ip,
	    .refusal = "-ERR [SYS/TEMP] too many sessions; try again later\r\n",
	};

	server->pg = pg;
	server->send_chunk = xmalloc(SEND_CHUNK);
	server->session_config = (struct session_config){
	    .base = pg->base,
	    .protocol = "pop3",
	    .max_line = (size_t)pg->cfg->max_line,
	    .write_timeout = pg->cfg->command_timeout,
	};
	TAILQ_INIT(&server->sessions);
	server->listener = listener_new(pg->base, plain_fd, tls_fd, &limits, server_accept_cb,
					server, err, errlen);
	if (server->listener == NULL) {
		pop3_server_free(&server);
		return NULL;
	}
	return server;
}

void pop3_server_free(struct pop3_server **server_p)
{
	struct pop3_server *server = *server_p;
	struct pop3_session *session;

	if (server == NULL)
		return;
	while ((session = TAILQ_FIRST(&server->sessions)) != NULL) {
		if (session->state == SESSION_AUTH_PENDING) {
			/* The client waits for an answer to its login: give one. */
			session_login_cancel(session);
			session_reply(session,
				      "-ERR [SYS/TEMP] popgate is stopping; try again later");
			session_flush_now(session->core);
		}
		session_free(session->core);
	}
	listener_free(&server->listener);
	free(server->send_chunk);
	free(server);
	*server_p = NULL;
}

unsigned pop3_server_session_count(const struct pop3_server *server)
{
	return server->session_count;
}
