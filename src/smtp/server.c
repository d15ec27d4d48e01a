/*
 * server.c — the SMTP server's sessions (see server.h): accepting them on
 * the SMTP and submission ports (core/listener: sessions overall and per
 * client), the greeting, the state machine's transitions, timeouts (silence,
 * RFC 5321 4.5.3.2.7, and an absolute deadline), login checks for AUTH
 * (pop3/auth.h's console login, U6, throttled like every login) and the end
 * of a message: durable, then 250 (smtp/accept.h). The commands are
 * smtp/commands.c's table.
 *
 * A BDAT's octets (RFC 3030) come through core/session's raw reads
 * (session_read_bytes), in turn with the command lines around them.
 *
 * A session never blocks: while a login is checked or a message committed
 * (PENDING) the lines the client pipelined wait in core/session, which goes
 * on reading (bounded) so a client that hangs up is seen.
 *
 * SECURITY: everything a client sends is untrusted and goes through
 * smtp/parse.c; the HELO name is sanitised before it is kept, logged or put
 * into the Received header. Whether a client may relay is decided by
 * smtp/relay_policy.c on its address as accept() gave it (Local Networks)
 * and whether it logged in, never on anything it says. Passwords go only to
 * pop3/auth.c and are wiped; they are never logged. Bodies are copied into
 * the spool, never parsed here.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/session.h"
#include "core/util.h"
#include "pop3/auth.h"
#include "popgate.h"
#include "smtp/accept.h"
#include "smtp/commands.h"
#include "smtp/server.h"
#include "store/address.h"
#include "store/network.h"

static const char *const state_names[] = {
    [SMTP_STATE_FRESH] = "fresh",	[SMTP_STATE_READY] = "ready",
    [SMTP_STATE_MAIL] = "mail",		[SMTP_STATE_RCPT] = "rcpt",
    [SMTP_STATE_DATA] = "data",		[SMTP_STATE_SASL] = "sasl",
    [SMTP_STATE_CHUNKING] = "chunking", [SMTP_STATE_PENDING] = "pending",
    [SMTP_STATE_CLOSING] = "closing",
};
_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == SMTP_STATE_COUNT,
	       "every SMTP state has a name");

/* ---- session plumbing ---------------------------------------------------- */

/* Silence is a fault except while the client waits for us (PENDING). */
static void session_set_timeouts(struct smtp_session *session)
{
	session_set_read_timeout(session->core, session->state == SMTP_STATE_PENDING
						    ? 0
						    : session->server->pg->cfg->smtp_timeout);
}

void smtp_session_enter_state(struct smtp_session *session, enum smtp_state state)
{
	log_debug("smtp %s: %s -> %s", session->peer, state_names[session->state],
		  state_names[state]);
	bool timeouts_change =
	    (session->state == SMTP_STATE_PENDING) != (state == SMTP_STATE_PENDING);
	session->state = state;
	if (timeouts_change)
		session_set_timeouts(session);
}

void smtp_session_reply(struct smtp_session *session, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_add_vline(session->core, fmt, ap);
	va_end(ap);
}

void smtp_session_close(struct smtp_session *session)
{
	smtp_session_enter_state(session, SMTP_STATE_CLOSING);
	session_finish(session->core);
}

bool smtp_session_bad_command(struct smtp_session *session, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_add_vline(session->core, fmt, ap);
	va_end(ap);
	if (++session->bad_commands >= (unsigned)session->server->pg->cfg->smtp_max_bad_commands) {
		log_event(LOG_INFO, "smtp", NULL, NULL, "%s: too many bad commands; closing",
			  session->peer);
		smtp_session_reply(session, "421 4.7.0 Too many errors; closing");
		smtp_session_close(session);
		return true;
	}
	return false;
}

void smtp_session_reset_transaction(struct smtp_session *session)
{
	xfree(&session->sender);
	for (size_t i = 0; i < session->recipient_count; i++)
		free(session->recipients[i]);
	xfree(&session->recipients);
	session->recipient_count = 0;
	session->smtputf8 = false;
	smtp_data_clear(&session->data);
	smtp_chunk_clear(&session->chunk);
}

static void session_forget_login(struct smtp_session *session)
{
	if (session->sasl_name != NULL) {
		sodium_memzero(session->sasl_name, strlen(session->sasl_name));
		xfree(&session->sasl_name);
	}
	xfree(&session->user_name);
}

int smtp_session_start_tls(struct smtp_session *session)
{
	SSL *ssl = SSL_new(session->server->pg->server_tls);

	if (ssl == NULL || session_start_tls(session->core, ssl) < 0)
		return -1;
	/* RFC 3207 4.2: everything learnt before TLS is forgotten. */
	smtp_session_reset_transaction(session);
	session_forget_login(session);
	xfree(&session->helo);
	session->esmtp = false;
	smtp_session_enter_state(session, SMTP_STATE_FRESH);
	return 0;
}

bool smtp_session_address_is_local(const char *address, void *ctx)
{
	struct smtp_server *server = ctx;
	int64_t user_id = 0;

	return store_address_owner(server->pg->store, address, &user_id) == 1;
}

/* After a login check or a commit: the session's deadline, if it passed
 * meanwhile, ends it now that the client has its answer; else the lines
 * that waited are taken up. */
static void session_resume(struct smtp_session *session)
{
	if (session->deadline_passed) {
		smtp_session_reply(session, "421 4.4.2 %s Timeout exceeded; closing",
				   session->server->pg->cfg->hostname);
		smtp_session_close(session);
		return;
	}
	session_process(session->core);
}

/* ---- logging in (AUTH) ------------------------------------------------------- */

static void session_login_done(enum auth_result result, enum auth_role role, const char *user_name,
			       const char *message, void *ctx)
{
	struct smtp_session *session = ctx;

	(void)message;
	session->auth = NULL;
	smtp_session_enter_state(session, SMTP_STATE_READY);
	if (result == AUTH_OK && role == AUTH_ROLE_USER && user_name != NULL) {
		session->user_name = xstrdup(user_name);
		log_event(LOG_INFO, "smtp_login", user_name, NULL, "from %s", session->peer);
		smtp_session_reply(session, "235 2.7.0 Authentication successful");
	} else if (result == AUTH_THROTTLED || result == AUTH_UNAVAILABLE) {
		smtp_session_reply(session, "454 4.7.0 Temporary authentication failure");
	} else {
		log_event(LOG_INFO, "smtp_login_failed", NULL, NULL, "from %s", session->peer);
		smtp_session_bad_command(session, "535 5.7.8 Authentication credentials invalid");
	}
	session_resume(session);
}

void smtp_session_login(struct smtp_session *session, const char *name, const char *password)
{
	smtp_session_enter_state(session, SMTP_STATE_PENDING);
	session->auth = auth_console_login(session->server->pg->auth, name, password, session->peer,
					   session_login_done, session);
}

/* ---- the end of a message ------------------------------------------------------ */

/* The Received header (RFC 5321 4.4, RFC 3848's protocol names) that goes in
 * front of the message. Allocated. */
static char *session_received_header(struct smtp_session *session, const char *id)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	bool tls = session_is_tls(session->core);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	char *header;

	gmtime_r(&now, &tm);
	/* The daemon never sets a locale: the names are the C locale's. */
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	/* RFC 5321 4.1.3: an IPv6 address literal is tagged. */
	const char *tag = strchr(session->peer, ':') != NULL ? "IPv6:" : "";
	header =
	    xasprintf("Received: from %s ([%s%s])\r\n\tby %s (popgate) with %s%s%s id %s%s%s%s;\r\n"
		      "\t%s\r\n",
		      session->helo != NULL ? session->helo : "unknown", tag, session->peer,
		      cfg->hostname, session->esmtp ? "ESMTP" : "SMTP", tls ? "S" : "",
		      session->user_name != NULL ? "A" : "", id,
		      session->recipient_count == 1 ? "\r\n\tfor <" : "",
		      session->recipient_count == 1 ? session->recipients[0] : "",
		      session->recipient_count == 1 ? ">" : "", date);
	return header;
}

static void session_accept_done(int result, const char *id, const char *error, void *ctx)
{
	struct smtp_session *session = ctx;

	session->accept = NULL;
	if (result < 0) {
		log_event(LOG_ERROR, "error", NULL, NULL, "smtp %s: cannot store a message: %s",
			  session->peer, error);
		smtp_session_reply(session, "451 4.3.0 Local error in processing; try again later");
	} else {
		log_event(LOG_INFO, "smtp_accepted", session->user_name, id,
			  "from %s, %zu recipient(s)", session->peer, session->recipient_count);
		smtp_session_reply(session, "250 2.0.0 Ok: queued as %s", id);
	}
	smtp_session_reset_transaction(session);
	smtp_session_enter_state(session, SMTP_STATE_READY);
	session_resume(session);
}

void smtp_session_data_end(struct smtp_session *session)
{
	struct popgate *pg = session->server->pg;
	enum smtp_data_outcome outcome = smtp_data_outcome(&session->data);

	smtp_session_enter_state(session, SMTP_STATE_READY);
	switch (outcome) {
	case SMTP_DATA_TOO_BIG:
		smtp_session_reply(session,
				   "552 5.3.4 Message size exceeds the limit of %lld bytes",
				   pg->cfg->smtp_max_message_size);
		smtp_session_reset_transaction(session);
		return;
	case SMTP_DATA_LINE_TOO_LONG:
		smtp_session_reply(session, "550 5.6.0 A line of the message is over %d bytes",
				   pg->cfg->smtp_max_text_line);
		smtp_session_reset_transaction(session);
		return;
	case SMTP_DATA_LOOP:
		smtp_session_reply(session, "554 5.4.6 Too many Received header fields: a mail "
					    "loop");
		smtp_session_reset_transaction(session);
		return;
	case SMTP_DATA_WRITE_FAILED:
		smtp_session_reply(session, "451 4.3.0 Local error in processing; try again later");
		smtp_session_reset_transaction(session);
		return;
	case SMTP_DATA_OK:
		break;
	}
	struct spool_writer *body = smtp_data_take_body(&session->data);
	char *prepend = session_received_header(session, body->id);
	const struct smtp_envelope envelope = {
	    .sender = session->sender,
	    .recipients = (const char *const *)session->recipients,
	    .recipient_count = session->recipient_count,
	    .prepend = prepend,
	};
	/* Durable before 250: the writer thread fsyncs the body and commits
	 * its row with the others queued; the reply waits for that. */
	session->accept = smtp_accept_submit(pg, body, &envelope, session_accept_done, session);
	free(prepend);
	if (session->accept == NULL) {
		smtp_session_reply(session, "451 4.3.0 Local error in processing; try again later");
		smtp_session_reset_transaction(session);
		return;
	}
	smtp_session_enter_state(session, SMTP_STATE_PENDING);
}

/* ---- core/session callbacks ---------------------------------------------- */

static enum session_intake session_intake(void *owner)
{
	struct smtp_session *session = owner;

	return session->state == SMTP_STATE_PENDING ? SESSION_HOLD_LINES : SESSION_TAKE_LINES;
}

static void session_on_line(void *owner, const char *line, size_t len)
{
	smtp_command_handle(owner, line, len);
}

static void session_on_line_too_long(void *owner)
{
	smtp_command_line_too_long(owner);
}

static void session_on_bytes(void *owner, const char *bytes, size_t len, uint64_t left)
{
	smtp_command_chunk_bytes(owner, bytes, len, left);
}

static void session_on_timeout(void *owner, enum session_timeout timeout)
{
	struct smtp_session *session = owner;

	if (session->state == SMTP_STATE_CLOSING)
		return;
	switch (timeout) {
	case SESSION_TIMEOUT_SILENCE:
	case SESSION_TIMEOUT_DEADLINE:
		log_event(LOG_INFO, "timeout", NULL, NULL, "smtp %s: %s", session->peer,
			  timeout == SESSION_TIMEOUT_SILENCE ? "silent for too long"
							     : "session deadline passed");
		if (session->state == SMTP_STATE_PENDING) {
			/* The client waits for us: it gets its answer first. */
			session->deadline_passed = timeout == SESSION_TIMEOUT_DEADLINE;
			return;
		}
		smtp_session_reply(session, "421 4.4.2 %s Timeout exceeded; closing",
				   session->server->pg->cfg->hostname);
		smtp_session_close(session);
		return;
	case SESSION_TIMEOUT_WRITE:
		log_event(LOG_INFO, "timeout", NULL, NULL, "smtp %s does not read its replies",
			  session->peer);
		return;
	}
}

/* core/session frees the connection; this frees the rest. */
static void session_on_close(void *owner)
{
	struct smtp_session *session = owner;
	struct smtp_server *server = session->server;

	if (session->auth != NULL)
		auth_cancel(&session->auth);
	if (session->accept != NULL)
		smtp_accept_detach(session->accept); /* its commit goes on, unanswered */
	smtp_session_reset_transaction(session);
	session_forget_login(session);
	free(session->helo);
	TAILQ_REMOVE(&server->sessions, session, entry);
	server->session_count--;
	log_debug("smtp %s: closed, %u session(s) left", session->peer, server->session_count);
	listener_peer_release(&session->listener_peer);
	free(session);
}

static const struct session_ops session_smtp_ops = {
    .intake = session_intake,
    .on_line = session_on_line,
    .on_line_too_long = session_on_line_too_long,
    .on_bytes = session_on_bytes,
    .on_drain = NULL,
    .on_timeout = session_on_timeout,
    .on_close = session_on_close,
};

/* ---- accepting ------------------------------------------------------------ */

/* Whether the client on FD is in a Local Network (S2), by the address the
 * kernel gives. */
static bool server_client_is_local(struct smtp_server *server, int fd)
{
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);

	if (getpeername(fd, (struct sockaddr *)&addr, &len) < 0)
		return false;
	return local_networks_contains(server->networks, (struct sockaddr *)&addr);
}

static void server_accept_cb(evutil_socket_t fd, struct listener_peer *peer, void *ctx)
{
	struct smtp_port *port = ctx;
	struct smtp_server *server = port->server;
	struct smtp_session *session = xcalloc(1, sizeof(*session));

	session->server = server;
	session->listener_peer = peer;
	session->peer = peer->address;
	session->submission = port->submission;
	session->in_local_network = server_client_is_local(server, fd);
	session->core = session_new(&server->session_config, fd, NULL, peer->address,
				    &session_smtp_ops, session);
	if (session->core == NULL) {
		listener_peer_release(&session->listener_peer);
		free(session);
		return;
	}
	TAILQ_INSERT_TAIL(&server->sessions, session, entry);
	server->session_count++;
	session_set_timeouts(session);
	session_set_deadline(session->core, server->pg->cfg->smtp_session_deadline);
	log_debug("smtp %s: connected to the %s port%s", session->peer,
		  port->submission ? "submission" : "SMTP",
		  session->in_local_network ? " from a Local Network" : "");
	smtp_session_reply(session, "220 %s ESMTP popgate", server->pg->cfg->hostname);
}

/* ---- public ----------------------------------------------------------------- */

void smtp_server_reload_networks(struct smtp_server *server)
{
	struct local_networks *fresh;

	if (server == NULL)
		return;
	fresh = local_networks_load(server->pg->store);
	if (fresh == NULL) {
		/* Keep what was read before rather than let nobody relay. */
		log_error("smtp: cannot read the Local Networks; the ones read before stay");
		return;
	}
	local_networks_free(&server->networks);
	server->networks = fresh;
}

struct smtp_server *smtp_server_new(struct popgate *pg, int plain_fd, int submission_fd, char *err,
				    size_t errlen)
{
	struct smtp_server *server = xcalloc(1, sizeof(*server));
	const struct listener_limits limits = {
	    .max_sessions = (unsigned)pg->cfg->smtp_max_sessions,
	    .max_per_address = (unsigned)pg->cfg->smtp_max_sessions_per_client,
	    .refusal = "421 4.7.0 Too many sessions; try again later\r\n",
	};
	int fds[2] = {plain_fd, submission_fd};

	server->pg = pg;
	server->session_config = (struct session_config){
	    .base = pg->base,
	    .protocol = "smtp",
	    .max_line = (size_t)pg->cfg->smtp_max_text_line,
	    .write_timeout = pg->cfg->smtp_timeout,
	};
	TAILQ_INIT(&server->sessions);
	server->networks = local_networks_load(pg->store);
	if (server->networks == NULL) {
		snprintf(err, errlen, "cannot read the Local Networks from the store");
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		server->ports[i].server = server;
		server->ports[i].submission = i == 1;
		if (fds[i] < 0)
			continue;
		server->ports[i].listener =
		    listener_new(pg->base, fds[i], -1, &limits, server_accept_cb, &server->ports[i],
				 err, errlen);
		fds[i] = -1;
		if (server->ports[i].listener == NULL)
			goto fail;
	}
	return server;
fail:
	for (int i = 0; i < 2; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	smtp_server_free(&server);
	return NULL;
}

void smtp_server_free(struct smtp_server **server_p)
{
	struct smtp_server *server = *server_p;
	struct smtp_session *session;

	if (server == NULL)
		return;
	while ((session = TAILQ_FIRST(&server->sessions)) != NULL) {
		if (session->state != SMTP_STATE_CLOSING) {
			/* RFC 5321 3.8: say why the connection ends. */
			smtp_session_reply(session, "421 4.3.2 %s Service shutting down",
					   server->pg->cfg->hostname);
			session_flush_now(session->core);
		}
		session_free(session->core);
	}
	for (int i = 0; i < 2; i++)
		listener_free(&server->ports[i].listener);
	local_networks_free(&server->networks);
	free(server);
	*server_p = NULL;
}

unsigned smtp_server_session_count(const struct smtp_server *server)
{
	return server->session_count;
}
