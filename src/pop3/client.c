/*
 * client.c — popgate as a POP3 client of the user's provider: one
 * connection, for a live login check (verify) or a fetch (client.h).
 *
 * A connection goes: the host's policy ([provider HOST]) and allow-list,
 * then core/connector (resolve, refuse loopback/private/link-local
 * addresses unless the policy allows them, each address in turn, implicit
 * TLS 1.2+ with SNI and verification), greeting, CAPA, STLS when the policy
 * wants it (connector_start_tls), USER/PASS or AUTH PLAIN. A verify then
 * QUITs. A fetch lists UIDL and LIST and takes each entry in turn: DELE
 * only for one stored before, RETR for the rest (ingest.c stores it and
 * sends the DELE), then QUIT, which commits the deletions at the provider.
 *
 * Owns: each connection from provider_conn_new to its free, from the loop,
 * after provider_conn_finish; its absolute deadline. Must never: free a
 * connection inside its own handlers, or log a password.
 *
 * SECURITY: the provider is a remote peer. Its status and listing lines go
 * through pop3/parse.c, bounded by PROVIDER_LINE_MAX. A command line with a
 * CR or LF in it is refused, never sent. The password is wiped as soon as
 * the login is answered.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
#include "pop3/parse.h"
#include "popgate.h"
#include "store/spool.h"

/* A status or listing line longer than this is a protocol error. */
#define PROVIDER_LINE_MAX 8192
/* Entries a fetch works through before it lets the loop serve others. */
#define PROVIDER_STEPS_PER_TURN 256

static const char *const provider_state_names[] = {
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
	[PROVIDER_QUIT] = "quit",
	[PROVIDER_DONE] = "done",
};
_Static_assert(sizeof(provider_state_names) / sizeof(provider_state_names[0]) ==
		       PROVIDER_STATE_COUNT,
	       "every provider state has a name");

static void provider_conn_free_cb(evutil_socket_t fd, short what, void *ctx);
static void provider_read_cb(struct bufferevent *bev, void *ctx);
static void provider_event_cb(struct bufferevent *bev, short events, void *ctx);

/* ---- helpers ---------------------------------------------------------- */

/* CONN's state for a log line; while connecting, the connector's phase
 * ("resolving" or "connecting"). */
static const char *provider_state_name(const struct provider_conn *conn)
{
	if (conn->attempt != NULL)
		return connector_phase(conn->attempt);
	return provider_state_names[conn->state];
}

void provider_enter_state(struct provider_conn *conn, enum provider_state state)
{
	log_debug("provider %s: %s -> %s", conn->host, provider_state_name(conn),
		  provider_state_names[state]);
	conn->state = state;
}

void provider_password_wipe(struct provider_conn *conn)
{
	if (conn->password != NULL) {
		sodium_memzero(conn->password, strlen(conn->password));
		xfree(&conn->password);
	}
}

/* Records the first failure of CONN and ends it (client.h). */
void provider_fail(struct provider_conn *conn, const char *fmt, ...)
{
	va_list ap;

	if (conn->error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(conn->error, sizeof(conn->error), fmt, ap);
		va_end(ap);
	}
	provider_conn_finish(conn);
}

/* Wipes and frees a command line once libevent is done with it. */
static void provider_line_cleanup(const void *data, size_t len, void *extra)
{
	(void)extra;
	sodium_memzero((void *)data, len);
	free((void *)data);
}

/* One command line to the provider, never one with a CR or LF (client.h). */
int provider_command(struct provider_conn *conn, enum provider_state state, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0) {
		provider_fail(conn, "cannot format a command for the provider");
		return -1;
	}
	line = xmalloc((size_t)len + 3);
	va_start(ap, fmt);
	vsnprintf(line, (size_t)len + 1, fmt, ap);
	va_end(ap);
	if (memchr(line, '\r', (size_t)len) != NULL || memchr(line, '\n', (size_t)len) != NULL) {
		sodium_memzero(line, (size_t)len);
		free(line);
		provider_fail(conn, "refused to send the provider a command with a CR or LF in "
				    "its argument");
		return -1;
	}
	memcpy(line + len, "\r\n", 2);
	/* Added by reference, not copied: libevent's own chunks would keep a
	 * PASS or AUTH line after it is written. Wiped when written or freed. */
	if (evbuffer_add_reference(bufferevent_get_output(conn->bev), line, (size_t)len + 2,
				   provider_line_cleanup, NULL) < 0) {
		provider_line_cleanup(line, (size_t)len + 2, NULL);
		provider_fail(conn, "cannot queue a command for the provider");
		return -1;
	}
	provider_enter_state(conn, state);
	return 0;
}

/* The reply text, sanitised, for a log line or an error. */
static void provider_reply_text(char *out, size_t outlen, const struct pop3_reply *reply)
{
	util_sanitize(out, outlen, reply->text, reply->text_len);
}

/* ---- connecting ------------------------------------------------------- */

/* What core/connector needs of CONN's host policy. */
static void provider_target(const struct provider_conn *conn, struct connector_target *target)
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
static void provider_connected_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct provider_conn *conn = ctx;

	conn->attempt = NULL;
	if (bev == NULL) {
		provider_fail(conn, "%s", error);
		return;
	}
	conn->bev = bev;
	conn->tls_active = conn->policy->tls == PROVIDER_TLS_IMPLICIT;
	bufferevent_setcb(conn->bev, provider_read_cb, NULL, provider_event_cb, conn);
	provider_enter_state(conn, PROVIDER_GREETING);
	/* The greeting may have come with the connect. */
	if (evbuffer_get_length(bufferevent_get_input(conn->bev)) > 0)
		provider_read_cb(conn->bev, conn);
}

void provider_conn_start(struct provider_conn *conn)
{
	struct connector_target target;
	char err[300];

	conn->policy = config_policy_for_host(conn->fetcher->pg->cfg, conn->host);
	if (!config_host_allowed(conn->fetcher->pg->cfg, conn->host)) {
		provider_fail(conn, "provider host %s is not on the allow-list", conn->host);
		return;
	}
	provider_target(conn, &target);
	conn->attempt = connector_connect(conn->fetcher->connector, &target, provider_connected_cb,
					  conn, err, sizeof(err));
	if (conn->attempt == NULL)
		provider_fail(conn, "%s", err);
}

/* The connection's deadline passed: it ends as a failure. A fetch keeps
 * what it stored (committed message by message); the rest stays at the
 * provider, and the failure backs off like any other. */
static void provider_deadline_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	struct popgate *pg = conn->fetcher->pg;
	(void)fd;
	(void)what;

	if (conn->state == PROVIDER_DONE)
		return;
	if (conn->mode == PROVIDER_MODE_VERIFY)
		provider_fail(conn, "the login check at %s took longer than %d s (state %s)",
			      conn->host, pg->cfg->login_check_timeout, provider_state_name(conn));
	else
		provider_fail(conn, "the fetch passed its deadline of %d s in state %s",
			      pg->cfg->fetch_deadline, provider_state_name(conn));
}

struct provider_conn *provider_conn_new(struct fetcher *fetcher, enum provider_mode mode,
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
	if (mode == PROVIDER_MODE_FETCH)
		fetcher->active++;
	else
		fetcher->checks++;
	TAILQ_INSERT_TAIL(&fetcher->conns, conn, entry);
	struct timeval deadline = {.tv_sec = mode == PROVIDER_MODE_FETCH
						 ? fetcher->pg->cfg->fetch_deadline
						 : fetcher->pg->cfg->login_check_timeout};
	conn->deadline_event = evtimer_new(fetcher->pg->base, provider_deadline_cb, conn);
	evtimer_add(conn->deadline_event, &deadline);
	return conn;
}

void provider_conn_free(struct provider_conn *conn)
{
	connector_cancel(&conn->attempt);
	if (conn->bev != NULL)
		bufferevent_free(conn->bev);
	provider_password_wipe(conn);
	spool_writer_free(&conn->writer);
	if (conn->ingest != NULL)
		provider_ingest_detach(conn->ingest);
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

/* ---- the login ---------------------------------------------------------- */

static void provider_verify_report(struct provider_conn *conn, enum fetch_verify_result result,
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

static void provider_send_login(struct provider_conn *conn)
{
	/* Base64 in AUTH PLAIN would hide a CR or LF from provider_command:
	 * check the fields themselves (defence in depth; logins refuse them). */
	if (strpbrk(conn->login, "\r\n") != NULL || strpbrk(conn->password, "\r\n") != NULL) {
		provider_password_wipe(conn);
		provider_fail(conn, "refused to send the provider a login or password with a CR "
				    "or LF in it");
		return;
	}
	if (!conn->capa_user && conn->capa_sasl_plain) {
		/* A provider that offers only SASL: AUTH PLAIN with an initial response. */
		size_t login_len = strlen(conn->login), pass_len = strlen(conn->password);
		size_t raw_len = 1 + login_len + 1 + pass_len;
		unsigned char *raw = xmalloc(raw_len);
		size_t b64_len = sodium_base64_ENCODED_LEN(raw_len, sodium_base64_VARIANT_ORIGINAL);
		char *b64 = xmalloc(b64_len);

		raw[0] = '\0';
		memcpy(raw + 1, conn->login, login_len);
		raw[1 + login_len] = '\0';
		memcpy(raw + 2 + login_len, conn->password, pass_len);
		sodium_bin2base64(b64, b64_len, raw, raw_len, sodium_base64_VARIANT_ORIGINAL);
		sodium_memzero(raw, raw_len);
		free(raw);
		provider_password_wipe(conn);
		provider_command(conn, PROVIDER_PASS, "AUTH PLAIN %s", b64);
		sodium_memzero(b64, b64_len);
		free(b64);
		return;
	}
	provider_command(conn, PROVIDER_USER, "USER %s", conn->login);
}

/* After CAPA (or STLS): go to TLS if the policy wants it, else log in. */
static void provider_after_capa(struct provider_conn *conn)
{
	if (conn->policy->tls == PROVIDER_TLS_STARTTLS && !conn->tls_active) {
		if (!conn->capa_stls) {
			provider_fail(conn, "the provider does not offer STLS, which the policy "
					    "requires");
			return;
		}
		provider_command(conn, PROVIDER_STLS, "STLS");
		return;
	}
	provider_send_login(conn);
}

static void provider_start_tls(struct provider_conn *conn)
{
	struct connector_target target;
	struct bufferevent *tls_bev;
	char err[300];

	provider_target(conn, &target);
	tls_bev = connector_start_tls(conn->fetcher->connector, conn->bev, &target, err,
				      sizeof(err));
	if (tls_bev == NULL) {
		provider_fail(conn, "%s", err);
		return;
	}
	conn->bev = tls_bev;
	conn->tls_active = true;
	bufferevent_setcb(conn->bev, provider_read_cb, NULL, provider_event_cb, conn);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	provider_enter_state(conn, PROVIDER_TLS_HANDSHAKE);
}

/* The login was accepted: a verify ends here, a fetch lists the mailbox. */
static void provider_logged_in(struct provider_conn *conn)
{
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		provider_verify_report(conn, FETCH_VERIFY_OK, NULL);
		provider_command(conn, PROVIDER_QUIT, "QUIT");
		return;
	}
	log_event(LOG_INFO, "fetch", conn->account_name, NULL, "logged in at %s", conn->host);
	provider_command(conn, PROVIDER_UIDL, "UIDL");
}

static void provider_login_refused(struct provider_conn *conn, const struct pop3_reply *reply)
{
	char text[160];

	provider_reply_text(text, sizeof(text), reply);
	/* RFC 3206: only [AUTH] (or no code) means the credentials were wrong;
	 * [IN-USE] or [SYS/…] is the provider's trouble, not a bad password. */
	bool credentials = reply->code[0] == '\0' || strcmp(reply->code, "AUTH") == 0;
	provider_password_wipe(conn);
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		provider_verify_report(conn,
				       credentials ? FETCH_VERIFY_REJECTED : FETCH_VERIFY_FAILED,
				       credentials ? "the provider refused the login" : text);
		provider_conn_finish(conn);
		return;
	}
	provider_fail(conn, "login refused by the provider: %s", text);
}

/* ---- the fetch ---------------------------------------------------------- */

static void provider_resume_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	(void)fd;
	(void)what;

	if (conn->state != PROVIDER_DONE)
		provider_fetch_next(conn);
}

/* The next entry (client.h). */
void provider_fetch_next(struct provider_conn *conn)
{
	struct popgate *pg = conn->fetcher->pg;
	unsigned steps = 0;

	while (conn->cursor < conn->listing.count) {
		struct provider_entry *entry = &conn->listing.entries[conn->cursor];
		/* Entries left without a word to the provider (over the size limit)
		 * could run long: let the loop serve others between turns. */
		if (++steps > PROVIDER_STEPS_PER_TURN) {
			static const struct timeval soon = {0, 0};
			if (conn->resume_event == NULL)
				conn->resume_event =
				    evtimer_new(pg->base, provider_resume_cb, conn);
			evtimer_add(conn->resume_event, &soon);
			return;
		}
		bool known = provider_entry_stored(conn, entry);
		if (conn->state == PROVIDER_DONE)
			return;
		if (known) {
			/* Stored at an earlier fetch whose deletion did not happen (a
			 * crash, a provider that ignores DELE): delete only. Counted in
			 * the fetch's summary, not logged one by one. */
			conn->redeleted_count++;
			provider_command(conn, PROVIDER_DELE, "DELE %u", entry->number);
			return;
		}
		if ((int64_t)entry->size > pg->cfg->max_message_size) {
			char reason[96];
			snprintf(reason, sizeof(reason), "%llu bytes is over the size limit of %lld",
				 (unsigned long long)entry->size, pg->cfg->max_message_size);
			provider_skip(conn, entry, reason);
			conn->cursor++;
			continue;
		}
		if (provider_retr_begin(conn) < 0)
			return;
		provider_command(conn, PROVIDER_RETR_STATUS, "RETR %u", entry->number);
		return;
	}
	provider_command(conn, PROVIDER_QUIT, "QUIT");
}

/* The provider confirmed our QUIT: its deletions are done. */
static void provider_quit_done(struct provider_conn *conn)
{
	/* The UIDLs of deleted messages are kept: a provider may acknowledge
	 * DELE and QUIT and delete nothing. They go when the provider stops
	 * listing them (the prune at the end of UIDL), so such a provider costs
	 * DELEs again, never a message stored twice. */
	if (conn->mode == PROVIDER_MODE_FETCH) {
		log_event(LOG_INFO, "fetch", conn->account_name, NULL,
			  "done: %u stored, %u deleted at the provider (%u stored before), %u "
			  "left there, %zu more listed for the next fetch",
			  conn->stored_count, conn->deleted_count, conn->redeleted_count,
			  conn->skipped_count, conn->listing.unlisted);
		if (conn->skipped_count > 0 && conn->error[0] == '\0') {
			char reasons[sizeof(conn->skip_reason) + 32];
			provider_skip_summary(conn, reasons, sizeof(reasons));
			snprintf(conn->error, sizeof(conn->error), "%u message(s) left at the "
				 "provider (%s)", conn->skipped_count, reasons);
			conn->skips_reported = true;
		}
	}
	provider_enter_state(conn, PROVIDER_DONE);
	provider_conn_finish(conn);
}

/* Handles one status line in the states that expect one. */
static void provider_handle_status(struct provider_conn *conn, const char *line, size_t len)
{
	struct pop3_reply reply;
	char text[160];

	if (pop3_reply_parse(line, len, &reply) < 0) {
		provider_fail(conn, "malformed reply from the provider in state %s",
			      provider_state_name(conn));
		return;
	}
	provider_reply_text(text, sizeof(text), &reply);

	switch (conn->state) {
	case PROVIDER_GREETING:
		if (!reply.ok) {
			provider_fail(conn, "the provider refused the connection: %s", text);
			return;
		}
		provider_command(conn, PROVIDER_CAPA, "CAPA");
		return;
	case PROVIDER_CAPA:
		if (!reply.ok) { /* no CAPA: assume USER/PASS */
			conn->capa_user = true;
			provider_after_capa(conn);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_STLS:
		if (!reply.ok) {
			provider_fail(conn, "the provider refused STLS: %s", text);
			return;
		}
		provider_start_tls(conn);
		return;
	case PROVIDER_USER:
		if (!reply.ok) {
			provider_login_refused(conn, &reply);
			return;
		}
		provider_command(conn, PROVIDER_PASS, "PASS %s", conn->password);
		return;
	case PROVIDER_PASS:
		provider_password_wipe(conn);
		if (!reply.ok) {
			provider_login_refused(conn, &reply);
			return;
		}
		provider_logged_in(conn);
		return;
	case PROVIDER_UIDL:
		if (!reply.ok) {
			provider_fail(conn, "the provider does not support UIDL: %s", text);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_LIST:
		if (!reply.ok) { /* sizes are advisory */
			provider_fetch_next(conn);
			return;
		}
		conn->in_listing = true;
		return;
	case PROVIDER_RETR_STATUS:
		if (!reply.ok) {
			spool_writer_free(&conn->writer);
			provider_skip(conn, &conn->listing.entries[conn->cursor], text);
			conn->cursor++;
			provider_fetch_next(conn);
			return;
		}
		provider_enter_state(conn, PROVIDER_RETR_BODY);
		provider_read_body(conn);
		return;
	case PROVIDER_DELE:
		if (reply.ok) {
			conn->listing.entries[conn->cursor].deleted = true;
			conn->deleted_count++;
		} else if (conn->dele_refused++ == 0) {
			/* Summed up at the end of the fetch: a listing may be huge. */
			snprintf(conn->dele_error, sizeof(conn->dele_error), "DELE %u: %s",
				 conn->listing.entries[conn->cursor].number, text);
		}
		conn->cursor++;
		provider_fetch_next(conn);
		return;
	case PROVIDER_QUIT:
		if (!reply.ok && conn->mode == PROVIDER_MODE_FETCH) {
			provider_fail(conn, "the provider refused QUIT (deletions not applied): %s",
				      text);
			return;
		}
		provider_quit_done(conn);
		return;
	default:
		provider_fail(conn, "unexpected reply from the provider in state %s",
			      provider_state_name(conn));
		return;
	}
}

/* Lines of a multi-line reply (CAPA, UIDL, LIST); the status was seen. */
static void provider_handle_listing(struct provider_conn *conn, const char *line, size_t len)
{
	/* Listing lines are dot-stuffed like any multi-line reply. */
	if (len > 0 && line[0] == '.' && !pop3_is_terminator(line, len)) {
		line++;
		len--;
	}
	if (pop3_is_terminator(line, len)) {
		conn->in_listing = false;
		switch (conn->state) {
		case PROVIDER_CAPA:
			provider_after_capa(conn);
			return;
		case PROVIDER_UIDL:
			provider_listing_closed(conn);
			if (conn->listing.count == 0) {
				provider_command(conn, PROVIDER_QUIT, "QUIT");
				return;
			}
			provider_command(conn, PROVIDER_LIST, "LIST");
			return;
		case PROVIDER_LIST:
			provider_fetch_next(conn);
			return;
		default:
			return;
		}
	}
	switch (conn->state) {
	case PROVIDER_CAPA: {
		char word[16];
		size_t n = 0;
		while (n < len && n < sizeof(word) - 1 && line[n] != ' ') {
			word[n] = line[n];
			n++;
		}
		word[n] = '\0';
		if (util_strcaseeq(word, "STLS"))
			conn->capa_stls = true;
		else if (util_strcaseeq(word, "USER"))
			conn->capa_user = true;
		else if (util_strcaseeq(word, "SASL") && len > 5) {
			for (size_t i = 5; i + 5 <= len; i++) {
				if ((i == 5 || line[i - 1] == ' ') &&
				    strncasecmp(line + i, "PLAIN", 5) == 0 &&
				    (i + 5 == len || line[i + 5] == ' '))
					conn->capa_sasl_plain = true;
			}
		}
		return;
	}
	case PROVIDER_UIDL:
		if (listing_add_uidl(&conn->listing, line, len) < 0)
			provider_fail(conn, "malformed UIDL line from the provider");
		return;
	case PROVIDER_LIST:
		listing_add_size(&conn->listing, line, len);
		return;
	default:
		return;
	}
}

static void provider_read_cb(struct bufferevent *bev, void *ctx)
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
			provider_read_body(conn);
			if (before->state == PROVIDER_RETR_BODY)
				return; /* wants more bytes */
			continue;
		}
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > PROVIDER_LINE_MAX)
				provider_fail(conn, "the provider sent an over-long line");
			return;
		}
		if (len > PROVIDER_LINE_MAX) {
			free(line);
			provider_fail(conn, "the provider sent an over-long line");
			return;
		}
		if (conn->in_listing)
			provider_handle_listing(conn, line, len);
		else
			provider_handle_status(conn, line, len);
		free(line);
	}
}

static void provider_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct provider_conn *conn = ctx;
	unsigned long ssl_error;

	if (events & BEV_EVENT_CONNECTED) {
		if (conn->state == PROVIDER_TLS_HANDSHAKE)
			provider_send_login(conn);
		return;
	}
	ssl_error = connector_tls_error(bev, events);
	if (events & BEV_EVENT_TIMEOUT) {
		provider_fail(conn, "timeout in state %s after %d s of silence",
			      provider_state_name(conn), conn->fetcher->pg->cfg->fetch_timeout);
		return;
	}
	if (events & BEV_EVENT_ERROR) {
		if (ssl_error != 0) {
			char buf[200];
			ERR_error_string_n(ssl_error, buf, sizeof(buf));
			provider_fail(conn, "TLS error in state %s: %s", provider_state_name(conn),
				      buf);
		} else {
			int err = EVUTIL_SOCKET_ERROR();
			provider_fail(conn, "connection error in state %s: %s",
				      provider_state_name(conn),
				      err ? evutil_socket_error_to_string(err) : "closed");
		}
		return;
	}
	if (events & BEV_EVENT_EOF) {
		provider_fail(conn, "the provider closed the connection in state %s",
			      provider_state_name(conn));
		return;
	}
}

/* ---- the end of a connection --------------------------------------------- */

/* Ends CONN (client.h). */
void provider_conn_finish(struct provider_conn *conn)
{
	if (conn->free_event != NULL)
		return; /* ended already */
	struct fetcher *fetcher = conn->fetcher;

	if (conn->state != PROVIDER_DONE)
		provider_enter_state(conn, PROVIDER_DONE);
	/* A connect still under way must not hand CONN a connection now. */
	connector_cancel(&conn->attempt);
	if (conn->mode == PROVIDER_MODE_VERIFY) {
		if (conn->verify_callback != NULL)
			provider_verify_report(conn, FETCH_VERIFY_FAILED,
					       conn->error[0] ? conn->error : "connection ended");
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
			provider_skip_summary(conn, reasons, sizeof(reasons));
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
	conn->free_event = evtimer_new(fetcher->pg->base, provider_conn_free_cb, conn);
	evtimer_add(conn->free_event, &now);
}

static void provider_conn_free_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	struct fetcher *fetcher = conn->fetcher;
	(void)fd;
	(void)what;

	provider_conn_free(conn);
	fetcher_run_waiting(fetcher);
}
