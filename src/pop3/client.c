/*
 * client.c — popgate as a POP3 client of the user's provider: one
 * connection, for a live login check (verify) or a fetch (client.h), from
 * pop3_client_new to its free. What the provider's replies mean and what is
 * said next is client_conversation.c; this file is the connection itself.
 *
 * A connection goes: the host's policy ([provider HOST]) and allow-list,
 * then core/connector (resolve, refuse loopback/private/link-local
 * addresses unless the policy allows them, each address in turn, implicit
 * TLS 1.2+ with SNI and verification), or the STLS upgrade
 * (connector_start_tls) when the conversation asks for it. Here its command
 * lines go out, its status and listing lines come in (bounded) and go to the
 * conversation, a RETR body goes to ingest.c, and a socket error, a silence
 * or the absolute deadline ends it. At the end a verify is reported and a
 * fetch recorded (fetch.c).
 *
 * Owns: each connection from pop3_client_new to its free, from the loop,
 * after pop3_client_finish; its absolute deadline. Must never: free a
 * connection inside its own handlers, or log a password.
 *
 * SECURITY: the provider is a remote peer. Its status and listing lines are
 * bounded by POP3_CLIENT_LINE_MAX and parsed only by pop3/parse.c (through
 * client_conversation.c). A command line with a CR or LF in it is refused,
 * never sent. The password is wiped as soon as the login is answered.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "core/config.h"
#include "core/connector.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3/client.h"
#include "pop3/listing.h"
#include "popgate.h"
#include "store/spool.h"

/* A status or listing line longer than this is a protocol error. */
#define POP3_CLIENT_LINE_MAX 8192

static const char *const pop3_client_state_names[] = {
	[PROVIDER_CONNECTING] = "connecting",
	[PROVIDER_GREETING] = "greeting",
	[PROVIDER_CAPA] = "capa",
	[PROVIDER_STLS] = "stls",
	[PROVIDER_TLS_HANDSHAKE] = "tls-handshake",
	[PROVIDER_USER] = "user",
	[PROVIDER_PASS] = "pass",
	[PROVIDER_UIDL] = "uidl",
	[PROVIDER_LIST] = "list",
	[PROVIDER_RETR_STATUS] = "retr",
	[PROVIDER_RETR_BODY] = "retr-body",
	[PROVIDER_DELE] = "dele",
	[PROVIDER_COMMIT_WAIT] = "commit-wait",
	[PROVIDER_QUIT] = "quit",
	[PROVIDER_DONE] = "done",
};
_Static_assert(sizeof(pop3_client_state_names) / sizeof(pop3_client_state_names[0]) ==
		       PROVIDER_STATE_COUNT,
	       "every provider state has a name");

static void pop3_client_free_cb(evutil_socket_t fd, short what, void *ctx);
static void pop3_client_read_cb(struct bufferevent *bev, void *ctx);
static void pop3_client_event_cb(struct bufferevent *bev, short events, void *ctx);

/* ---- helpers ---------------------------------------------------------- */

/* CONN's state for a log line; while connecting, the connector's phase
 * ("resolving" or "connecting") (client.h). */
const char *pop3_client_state_name(const struct provider_conn *conn)
{
	if (conn->attempt != NULL)
		return connector_phase(conn->attempt);
	return pop3_client_state_names[conn->state];
}

void pop3_client_enter_state(struct provider_conn *conn, enum provider_state state)
{
	log_debug("provider %s: %s -> %s", conn->host, pop3_client_state_name(conn),
		  pop3_client_state_names[state]);
	conn->state = state;
}

void pop3_client_wipe_password(struct provider_conn *conn)
{
	if (conn->password != NULL) {
		sodium_memzero(conn->password, strlen(conn->password));
		xfree(&conn->password);
	}
}

/* Records the first failure of CONN and ends it (client.h). */
void pop3_client_fail(struct provider_conn *conn, const char *fmt, ...)
{
	va_list ap;

	if (conn->error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(conn->error, sizeof(conn->error), fmt, ap);
		va_end(ap);
	}
	pop3_client_finish(conn);
}

/* Wipes and frees a command line once libevent is done with it. */
static void pop3_client_wipe_line(const void *data, size_t len, void *extra)
{
	(void)extra;
	sodium_memzero((void *)data, len);
	free((void *)data);
}

/* One command line to the provider, never one with a CR or LF (client.h). */
int pop3_client_send_command(struct provider_conn *conn, enum provider_state state,
			     const char *fmt, ...)
{
	va_list ap;
	char *line;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0) {
		pop3_client_fail(conn, "cannot format a command for the provider");
		return -1;
	}
	line = xmalloc((size_t)len + 3);
	va_start(ap, fmt);
	vsnprintf(line, (size_t)len + 1, fmt, ap);
	va_end(ap);
	if (memchr(line, '\r', (size_t)len) != NULL || memchr(line, '\n', (size_t)len) != NULL) {
		sodium_memzero(line, (size_t)len);
		free(line);
		pop3_client_fail(conn, "refused to send the provider a command with a CR or LF in "
				       "its argument");
		return -1;
	}
	memcpy(line + len, "\r\n", 2);
	/* Added by reference, not copied: libevent's own chunks would keep a
	 * PASS or AUTH line after it is written. Wiped when written or freed. */
	if (evbuffer_add_reference(bufferevent_get_output(conn->bev), line, (size_t)len + 2,
				   pop3_client_wipe_line, NULL) < 0) {
		pop3_client_wipe_line(line, (size_t)len + 2, NULL);
		pop3_client_fail(conn, "cannot queue a command for the provider");
		return -1;
	}
	pop3_client_enter_state(conn, state);
	return 0;
}

/* ---- connecting ------------------------------------------------------- */

/* What core/connector needs of CONN's host policy. */
static void pop3_client_target(const struct provider_conn *conn, struct connector_target *target)
{
	const struct provider_policy *policy = conn->policy;

	*target = (struct connector_target){
		.host = conn->host,
		.port = policy->port,
		.tls = policy->tls == PROVIDER_TLS_IMPLICIT   ? CONNECTOR_TLS_IMPLICIT
		       : policy->tls == PROVIDER_TLS_STARTTLS ? CONNECTOR_TLS_UPGRADE
							      : CONNECTOR_TLS_NONE,
		.ca_file = policy->ca_file,
		.verify = policy->verify,
		.allow_private = policy->allow_private,
		.timeout = conn->fetcher->pg->cfg->fetch_timeout,
		/* None of its own: CONN's deadline covers the connect too, and
		 * cancels the attempt with CONN. */
		.deadline = 0,
		.log_event = "fetch",
		.log_account = conn->account_name,
	};
}

/* The connector is done: the provider's greeting comes next. */
static void pop3_client_connected_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct provider_conn *conn = ctx;

	conn->attempt = NULL;
	if (bev == NULL) {
		pop3_client_fail(conn, "%s", error);
		return;
	}
	conn->bev = bev;
	conn->tls_active = conn->policy->tls == PROVIDER_TLS_IMPLICIT;
	bufferevent_setcb(conn->bev, pop3_client_read_cb, NULL, pop3_client_event_cb, conn);
	pop3_client_enter_state(conn, PROVIDER_GREETING);
	/* The greeting may have come with the connect. */
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
		pop3_client_read_cb(conn->bev, conn);
}

void pop3_client_start(struct provider_conn *conn)
{
	struct connector_target target;
	char err[300];

	conn->policy = config_policy_for_host(conn->fetcher->pg->cfg, conn->host);
	if (!config_host_allowed(conn->fetcher->pg->cfg, conn->host)) {
		pop3_client_fail(conn, "provider host %s is not on the allow-list", conn->host);
		return;
	}
	pop3_client_target(conn, &target);
	conn->attempt = connector_connect(conn->fetcher->connector, &target,
					  pop3_client_connected_cb, conn, err, sizeof(err));
	if (conn->attempt == NULL)
		pop3_client_fail(conn, "%s", err);
}

/* The connection's deadline passed: it ends as a failure. A fetch keeps
 * what it stored (committed message by message); the rest stays at the
 * provider, and the failure backs off like any other. */
static void pop3_client_deadline_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	struct popgate *pg = conn->fetcher->pg;
	(void)fd;
	(void)what;

	if (conn->state == PROVIDER_DONE)
		return;
	if (conn->mode == PROVIDER_MODE_VERIFY)
		pop3_client_fail(conn, "the login check at %s took longer than %d s (state %s)",
				 conn->host, pg->cfg->login_check_timeout,
				 pop3_client_state_name(conn));
	else
		pop3_client_fail(conn, "the fetch passed its deadline of %d s in state %s",
				 pg->cfg->fetch_deadline, pop3_client_state_name(conn));
}

struct provider_conn *pop3_client_new(struct fetcher *fetcher, enum provider_mode mode,
				      const char *login, const char *host, const char *password)
{
	struct provider_conn *conn = xcalloc(1, sizeof(*conn));

	conn->fetcher = fetcher;
	conn->mode = mode;
	conn->state = PROVIDER_CONNECTING;
	conn->login = xstrdup(login);
	conn->host = xstrdup(host);
	conn->account_name = xasprintf("%s@%s", login, host);
	conn->password = xstrdup(password);
	listing_init(&conn->listing, (size_t)fetcher->pg->cfg->max_listed);
	TAILQ_INIT(&conn->in_flight);
	if (mode == PROVIDER_MODE_FETCH)
		fetcher->active++;
	else
		fetcher->checks++;
	TAILQ_INSERT_TAIL(&fetcher->conns, conn, entry);
	struct timeval deadline = {.tv_sec = mode == PROVIDER_MODE_FETCH
						 ? fetcher->pg->cfg->fetch_deadline
						 : fetcher->pg->cfg->login_check_timeout};
	conn->deadline_event = evtimer_new(fetcher->pg->base, pop3_client_deadline_cb, conn);
	evtimer_add(conn->deadline_event, &deadline);
	return conn;
}

void pop3_client_free(struct provider_conn *conn)
{
	connector_cancel(&conn->attempt);
	if (conn->bev != NULL)
		bufferevent_free(conn->bev);
	pop3_client_wipe_password(conn);
	spool_writer_free(&conn->writer);
	ingest_detach_all(conn);
	if (conn->begin != NULL)
		fetcher_begin_detach(conn->begin);
	if (conn->digest != NULL)
		EVP_MD_CTX_free(conn->digest);
	if (conn->free_event != NULL)
		event_free(conn->free_event);
	if (conn->resume_event != NULL)
		event_free(conn->resume_event);
	event_free(conn->deadline_event);
	TAILQ_REMOVE(&conn->fetcher->conns, conn, entry);
	if (conn->mode == PROVIDER_MODE_FETCH)
		conn->fetcher->active--;
	else
		conn->fetcher->checks--;
	listing_free(&conn->listing);
	free(conn->crlf_buffer);
	free(conn->login);
	free(conn->host);
	free(conn->account_name);
	free(conn);
}

/* The STLS upgrade (client.h). */
void pop3_client_start_tls(struct provider_conn *conn)
{
	struct connector_target target;
	struct bufferevent *tls_bev;
	char err[300];

	pop3_client_target(conn, &target);
	tls_bev = connector_start_tls(conn->fetcher->connector, conn->bev, &target, err,
				      sizeof(err));
	if (tls_bev == NULL) {
		pop3_client_fail(conn, "%s", err);
		return;
	}
	conn->bev = tls_bev;
	conn->tls_active = true;
	bufferevent_setcb(conn->bev, pop3_client_read_cb, NULL, pop3_client_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	pop3_client_enter_state(conn, PROVIDER_TLS_HANDSHAKE);
}

/* ---- reading ---------------------------------------------------------- */

static void pop3_client_read_cb(struct bufferevent *bev, void *ctx)
{
	struct provider_conn *conn = ctx;
	struct evbuffer *in = bufferevent_get_input(bev);

	/* CONN may be freed by a handler; PROVIDER_DONE is set before that only
	 * when it is not, so every handler that ends CONN returns right away. */
	while (conn->state != PROVIDER_DONE) {
		if (conn->state == PROVIDER_RETR_BODY) {
			if (evbuffer_get_length(in) == 0)
				return;
			struct provider_conn *before = conn;
			ingest_read_body(conn);
			if (before->state == PROVIDER_RETR_BODY)
				return; /* wants more bytes */
			continue;
		}
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > POP3_CLIENT_LINE_MAX)
				pop3_client_fail(conn, "the provider sent an over-long line");
			return;
		}
		if (len > POP3_CLIENT_LINE_MAX) {
			free(line);
			pop3_client_fail(conn, "the provider sent an over-long line");
			return;
		}
		if (conn->in_listing)
			pop3_client_handle_listing(conn, line, len);
		else
			pop3_client_handle_status(conn, line, len);
		free(line);
	}
}

static void pop3_client_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct provider_conn *conn = ctx;
	unsigned long ssl_error;

	if (events & BEV_EVENT_CONNECTED) {
		if (conn->state == PROVIDER_TLS_HANDSHAKE)
			pop3_client_send_login(conn);
		return;
	}
	ssl_error = connector_tls_error(bev, events);
	if (events & BEV_EVENT_TIMEOUT) {
		pop3_client_fail(conn, "timeout in state %s after %d s of silence",
				 pop3_client_state_name(conn),
				 conn->fetcher->pg->cfg->fetch_timeout);
		return;
	}
	if (events & BEV_EVENT_ERROR) {
		if (ssl_error != 0) {
			char buf[200];
			ERR_error_string_n(ssl_error, buf, sizeof(buf));
			pop3_client_fail(conn, "TLS error in state %s: %s",
					 pop3_client_state_name(conn), buf);
		} else {
			int err = EVUTIL_SOCKET_ERROR();
			pop3_client_fail(conn, "connection error in state %s: %s",
					 pop3_client_state_name(conn),
					 err ? evutil_socket_error_to_string(err) : "closed");
		}
		return;
	}
	if (events & BEV_EVENT_EOF) {
		pop3_client_fail(conn, "the provider closed the connection in state %s",
				 pop3_client_state_name(conn));
		return;
	}
}

/* ---- the end of a connection --------------------------------------------- */

/* Hands a verify its result, once (client.h). */
void pop3_client_report_verify(struct provider_conn *conn, enum fetch_verify_result result,
			       const char *error)
{
	fetch_verify_cb *callback = conn->verify_callback;
	void *ctx = conn->verify_ctx;

	conn->verify_callback = NULL;
	/* The caller's handle ends with the report (fetch.h). */
	if (conn->verify != NULL) {
		free(conn->verify);
		conn->verify = NULL;
	}
	if (callback != NULL)
		callback(result, error, ctx);
}

/* Ends CONN (client.h). */
void pop3_client_finish(struct provider_conn *conn)
{
	if (conn->free_event != NULL)
		return; /* ended already */
	struct fetcher *fetcher = conn->fetcher;

	if (conn->state != PROVIDER_DONE)
		pop3_client_enter_state(conn, PROVIDER_DONE);
	/* A connect still under way must not hand CONN a connection now. */
	connector_cancel(&conn->attempt);
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		if (conn->verify_callback != NULL)
			pop3_client_report_verify(conn, FETCH_VERIFY_FAILED,
						  conn->error[0] ? conn->error
								 : "connection ended");
		else if (conn->error[0] != '\0')
			log_debug("provider %s: after the login check: %s", conn->host,
				  conn->error);
	} else {
		if (conn->dele_refused > 0)
			log_event(LOG_WARN, "error", conn->account_name, NULL,
				  "the provider refused %u DELE(s) (the first: %s); those "
				  "messages are stored and deleted there at a later fetch",
				  conn->dele_refused, conn->dele_error);
		if (conn->skipped_count > 0 && !conn->skips_reported) {
			/* The fetch failed for another reason after leaving messages. */
			char reasons[sizeof(conn->skip_reason) + 32];
			ingest_skip_summary(conn, reasons, sizeof(reasons));
			log_event(LOG_WARN, "error", conn->account_name, NULL,
				  "%u message(s) left at the provider (%s)", conn->skipped_count,
				  reasons);
		}
		fetcher_fetch_done(conn);
	}
	/* The handler that ended CONN may still be running on it: free it from
	 * the loop. Nothing more is read or written meanwhile. */
	static const struct timeval now = {0, 0};
	if (conn->bev != NULL)
		bufferevent_disable(conn->bev, EV_READ | EV_WRITE);
	conn->free_event = evtimer_new(fetcher->pg->base, pop3_client_free_cb, conn);
	evtimer_add(conn->free_event, &now);
}

static void pop3_client_free_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	struct fetcher *fetcher = conn->fetcher;
	(void)fd;
	(void)what;

	pop3_client_free(conn);
	fetcher_run_waiting(fetcher);
}
