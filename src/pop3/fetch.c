/*
 * fetch.c — popgate as a POP3 client of the user's provider: the live login
 * check (verify) and the fetch of an account's mail, one connection each.
 *
 * A connection goes: resolve the host (core/resolver, never blocking), refuse
 * loopback/private/link-local addresses unless the host's policy allows them,
 * connect, TLS (implicit, or STLS; TLS 1.2+, SNI, verified by policy),
 * greeting, CAPA, USER/PASS. A verify then QUITs. A fetch lists UIDL and LIST
 * and takes each message in turn:
 *
 *   RETR → spool file (fsync, rename) → row + UIDL committed → DELE
 *
 * so a message is deleted at the provider only once it is durably stored
 * (G3). A UIDL that is already recorded as stored is only deleted, never
 * fetched again: that is the message a crash caught between commit and the
 * provider's QUIT, or kept by a provider that ignores DELE. The provider
 * applies DELEs only at QUIT; a recorded UIDL is forgotten only when the
 * provider no longer lists it.
 *
 * SECURITY: the provider is a remote peer. Its status and listing lines go
 * through pop3/parse.c; message bytes go only to the spool file and are
 * never parsed here. The password is decrypted at the start of a fetch, sent
 * once, and wiped as soon as the login is answered; it is never logged.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "core/util.h"
#include "pipeline/pipeline.h"
#include "pop3/fetch.h"
#include "pop3/listing.h"
#include "pop3/parse.h"
#include "pop3/policy.h"
#include "popgate.h"
#include "store/account.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/writer.h"

/* A status or listing line longer than this is a protocol error. */
#define PROVIDER_LINE_MAX 8192
/* The addresses of a host a connection tries, at most. */
#define PROVIDER_ADDRESSES_MAX 8
/* Entries a fetch works through before it lets the loop serve others. */
#define PROVIDER_STEPS_PER_TURN 256
/* Skip reasons a fetch's summary line names; the rest are counted. */
#define PROVIDER_SKIP_REASONS 3

enum provider_state {
	PROVIDER_RESOLVING,
	PROVIDER_CONNECTING,
	PROVIDER_GREETING,
	PROVIDER_CAPA,
	PROVIDER_STLS,
	PROVIDER_TLS_HANDSHAKE,
	PROVIDER_USER,
	PROVIDER_PASS,
	PROVIDER_UIDL,
	PROVIDER_LIST,
	PROVIDER_RETR_STATUS,
	PROVIDER_RETR_BODY,
	PROVIDER_DELE,
	PROVIDER_QUIT,
	PROVIDER_DONE,
	PROVIDER_STATE_COUNT
};

static const char *const provider_state_names[] = {
	[PROVIDER_RESOLVING] = "resolving",
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

enum provider_mode { PROVIDER_MODE_VERIFY, PROVIDER_MODE_FETCH };

struct fetch_account;
struct provider_conn;

/* A message on its way to the store: what the writer thread commits and
 * what follows the commit in the loop. */
struct provider_ingest {
	struct provider_conn *conn; /* NULL once the connection ended */
	struct popgate *pg;
	int64_t account_id;
	char id[SPOOL_ID_LEN + 1];
	char *uidl;
	char *account_name;
	char *host;
	int64_t size;
	int64_t provider_size;
	char sha256_hex[2 * EVP_MAX_MD_SIZE + 1];
};

/* One connection to a provider. */
struct provider_conn {
	struct fetcher *fetcher;
	enum provider_mode mode;
	enum provider_state state;
	char *login;
	char *host;
	char *account_name; /* for the log */
	char *password;	    /* wiped and freed once the login is answered */
	const struct provider_policy *policy;
	SSL_CTX *tls_ctx;
	struct resolver_lookup *lookup; /* while resolving */
	/* The host's addresses the policy allows, tried in turn until one
	 * connects (an IPv6 address without a route, a server that is down). */
	struct sockaddr_storage addresses[PROVIDER_ADDRESSES_MAX];
	socklen_t address_lens[PROVIDER_ADDRESSES_MAX];
	size_t address_count;
	size_t address_next;	 /* the next one to try */
	char connect_error[200]; /* why the last address failed */
	struct bufferevent *bev;
	bool capa_stls;
	bool capa_user;
	bool capa_sasl_plain;
	bool tls_active;

	/* verify */
	fetch_verify_cb *verify_callback;
	void *verify_ctx;
	struct fetch_verify *verify;

	/* fetch */
	struct fetch_account *account;
	struct provider_listing listing;
	size_t cursor;		 /* entry being worked on */
	struct event *resume_event; /* goes on working through the entries */
	bool in_listing;	 /* the +OK of a multi-line reply was read; lines follow */
	struct spool_writer *writer;
	struct provider_ingest *ingest; /* the current message, being committed */
	struct pop3_dot_decoder decoder;
	struct spool_crlf crlf;	 /* the body's line ends, made CRLF on the way */
	char *crlf_buffer;	 /* room for a normalised chunk */
	size_t crlf_capacity;
	EVP_MD_CTX *digest;
	bool oversize;		 /* the body in progress passed the size limit */
	bool skips_reported;	 /* the skipped messages are in the fetch's error */
	unsigned stored_count;
	unsigned deleted_count;
	unsigned skipped_count;
	unsigned redeleted_count; /* stored at an earlier fetch, deleted again */
	unsigned dele_refused;	 /* DELEs the provider answered -ERR */
	char dele_error[180];	 /* the first of those answers */
	char skip_reason[200];	 /* the first reasons messages were left at the provider */
	char error[400];	 /* why the connection failed; "" if it did not */
	char anomaly[160];	 /* a rule the provider broke, for the account's last error */

	/* The absolute deadline of the whole connection ([server]
	 * login_check_timeout or [fetch] deadline): the silence timeout alone
	 * lets a provider that drips a byte at a time hold it forever. */
	struct event *deadline_event;

	/* A connection is freed from the loop, never inside its own handlers. */
	struct event *free_event;
	TAILQ_ENTRY(provider_conn) entry;
};

TAILQ_HEAD(provider_conn_list, provider_conn);

struct fetch_verify {
	struct provider_conn *conn;
};

/* Per-account fetch scheduling. */
struct fetch_account {
	int64_t account_id;
	bool running;
	bool again;	  /* requested while running: fetch once more after */
	bool queued;	  /* waiting for a free slot (max_fetches) */
	bool now;	  /* the queued request ignores back-off */
	struct event *retry_timer;
	struct fetcher *fetcher;
	TAILQ_ENTRY(fetch_account) entry;
	TAILQ_ENTRY(fetch_account) queue_entry;
};

TAILQ_HEAD(fetch_account_list, fetch_account);

/* A client TLS context per distinct (CA file, verify) policy, made lazily. */
struct fetch_tls_ctx {
	char *ca_file; /* NULL = system store */
	bool verify;
	SSL_CTX *ctx;
	struct fetch_tls_ctx *next;
};

struct fetcher {
	struct popgate *pg;
	struct fetch_account_list accounts;
	struct fetch_account_list waiting;
	unsigned active;	/* fetches under way: at most [fetch] max_fetches */
	unsigned checks;	/* login checks under way, counted apart: they must not
				 * keep fetches from starting */
	struct provider_conn_list conns;
	struct fetch_tls_ctx *tls_contexts;
};

static void provider_conn_finish(struct provider_conn *conn);
static void provider_conn_free_cb(evutil_socket_t fd, short what, void *ctx);
static void provider_read_cb(struct bufferevent *bev, void *ctx);
static void provider_event_cb(struct bufferevent *bev, short events, void *ctx);
static void fetcher_start(struct fetcher *fetcher, struct fetch_account *account);
static void provider_fetch_next(struct provider_conn *conn);

/* ---- helpers ---------------------------------------------------------- */

static void provider_enter_state(struct provider_conn *conn, enum provider_state state)
{
	log_debug("provider %s: %s -> %s", conn->host, provider_state_names[conn->state],
		  provider_state_names[state]);
	conn->state = state;
}

static void provider_password_wipe(struct provider_conn *conn)
{
	if (conn->password != NULL) {
		sodium_memzero(conn->password, strlen(conn->password));
		xfree(&conn->password);
	}
}

/* Records the first failure of CONN and ends it. */
static void provider_fail(struct provider_conn *conn, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void provider_fail(struct provider_conn *conn, const char *fmt, ...)
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

/*
 * Sends one command line and moves CONN to STATE. A line holding CR or LF
 * (a login or password smuggling commands) is refused: CONN fails with a
 * clear error and nothing is sent. -1 then (CONN is ended), else 0.
 */
static int provider_command(struct provider_conn *conn, enum provider_state state,
			    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int provider_command(struct provider_conn *conn, enum provider_state state,
			    const char *fmt, ...)
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

static SSL_CTX *fetcher_tls_ctx(struct fetcher *fetcher, const struct provider_policy *policy,
				char *err, size_t errlen)
{
	struct fetch_tls_ctx *entry;

	for (entry = fetcher->tls_contexts; entry != NULL; entry = entry->next) {
		bool same_ca = (entry->ca_file == NULL && policy->ca_file == NULL) ||
			       (entry->ca_file != NULL && policy->ca_file != NULL &&
				strcmp(entry->ca_file, policy->ca_file) == 0);
		if (same_ca && entry->verify == policy->verify)
			return entry->ctx;
	}
	SSL_CTX *ctx = tls_client_ctx_new(policy->ca_file, policy->verify, err, errlen);
	if (ctx == NULL)
		return NULL;
	entry = xcalloc(1, sizeof(*entry));
	entry->ca_file = policy->ca_file != NULL ? xstrdup(policy->ca_file) : NULL;
	entry->verify = policy->verify;
	entry->ctx = ctx;
	entry->next = fetcher->tls_contexts;
	fetcher->tls_contexts = entry;
	return ctx;
}

/* ---- connecting ------------------------------------------------------- */

static void provider_connect_failed(struct provider_conn *conn, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Connects to the next of CONN's addresses; with none left, CONN fails with
 * the last address's reason.
 */
static void provider_connect_next(struct provider_conn *conn)
{
	struct event_base *base = conn->fetcher->pg->base;
	int timeout = conn->fetcher->pg->cfg->fetch_timeout;
	struct timeval tv = {.tv_sec = timeout};
	const struct sockaddr *addr;
	socklen_t addrlen;

	if (conn->bev != NULL) {
		bufferevent_free(conn->bev);
		conn->bev = NULL;
		conn->tls_active = false;
	}
	if (conn->address_next >= conn->address_count) {
		provider_fail(conn, "%s", conn->connect_error);
		return;
	}
	addr = (const struct sockaddr *)&conn->addresses[conn->address_next];
	addrlen = conn->address_lens[conn->address_next];
	conn->address_next++;

	if (conn->policy->tls == PROVIDER_TLS_IMPLICIT) {
		SSL *ssl = tls_client_ssl_new(conn->tls_ctx, conn->host, conn->policy->verify);
		if (ssl == NULL) {
			provider_fail(conn, "TLS setup failed: %s", tls_last_error());
			return;
		}
		conn->bev = bufferevent_openssl_socket_new(base, -1, ssl,
							   BUFFEREVENT_SSL_CONNECTING,
							   BEV_OPT_CLOSE_ON_FREE);
		conn->tls_active = true;
	} else {
		conn->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (conn->bev == NULL) {
		provider_fail(conn, "cannot create a connection");
		return;
	}
	bufferevent_setcb(conn->bev, provider_read_cb, NULL, provider_event_cb, conn);
	bufferevent_set_timeouts(conn->bev, &tv, &tv);
	bufferevent_enable(conn->bev, EV_READ | EV_WRITE);
	provider_enter_state(conn, PROVIDER_CONNECTING);
	/* A connection that cannot even start (no route to an IPv6 address)
	 * moves on at once. */
	if (bufferevent_socket_connect(conn->bev, addr, (int)addrlen) < 0)
		provider_connect_failed(conn, "connect failed: %s", strerror(errno));
}

/*
 * The connection to the current address failed before the provider said
 * anything: remembers why, and tries the next address if there is one.
 */
static void provider_connect_failed(struct provider_conn *conn, const char *fmt, ...)
{
	const struct sockaddr *addr =
	    (const struct sockaddr *)&conn->addresses[conn->address_next - 1];
	char address[64] = "?";
	char reason[120];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, address,
			  sizeof(address));
	else if (addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, address,
			  sizeof(address));
	snprintf(conn->connect_error, sizeof(conn->connect_error), "%s (%s)", reason, address);
	if (conn->address_next < conn->address_count)
		log_event(LOG_INFO, "fetch", conn->account_name, NULL,
			  "cannot connect to %s at %s: %s; trying its next address", conn->host,
			  address, reason);
	provider_connect_next(conn);
}

static void provider_resolved_cb(enum resolver_status status,
				const struct resolver_address *addresses, size_t count, void *ctx)
{
	struct provider_conn *conn = ctx;
	bool refused = false;

	conn->lookup = NULL;
	if (status != RESOLVER_OK) {
		provider_fail(conn, "cannot resolve %s: %s", conn->host,
			      resolver_status_text(status));
		return;
	}
	for (size_t i = 0; i < count && conn->address_count < PROVIDER_ADDRESSES_MAX; i++) {
		const struct sockaddr *addr = (const struct sockaddr *)&addresses[i].addr;

		if (!conn->policy->allow_private && !policy_address_public(addr)) {
			refused = true;
			continue;
		}
		memcpy(&conn->addresses[conn->address_count], &addresses[i].addr, addresses[i].len);
		conn->address_lens[conn->address_count++] = addresses[i].len;
	}
	if (conn->address_count == 0) {
		if (refused)
			provider_fail(conn,
				      "%s resolves to a loopback, private or link-local address; "
				      "the provider policy does not allow it",
				      conn->host);
		else
			provider_fail(conn, "%s has no address", conn->host);
		return;
	}
	provider_connect_next(conn);
}

static void provider_conn_start(struct provider_conn *conn)
{
	char err[256];

	conn->policy = config_policy_for_host(conn->fetcher->pg->cfg, conn->host);
	if (!config_host_allowed(conn->fetcher->pg->cfg, conn->host)) {
		provider_fail(conn, "provider host %s is not on the allow-list", conn->host);
		return;
	}
	if (conn->policy->tls != PROVIDER_TLS_NONE) {
		conn->tls_ctx = fetcher_tls_ctx(conn->fetcher, conn->policy, err, sizeof(err));
		if (conn->tls_ctx == NULL) {
			provider_fail(conn, "TLS setup failed: %s", err);
			return;
		}
	}
	provider_enter_state(conn, PROVIDER_RESOLVING);
	/* The callback runs later, from the loop, even for a numeric host. */
	conn->lookup = resolver_lookup_addresses(conn->fetcher->pg->dns, conn->host,
						 conn->policy->port, provider_resolved_cb, conn);
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
			      conn->host, pg->cfg->login_check_timeout,
			      provider_state_names[conn->state]);
	else
		provider_fail(conn, "the fetch passed its deadline of %d s in state %s",
			      pg->cfg->fetch_deadline, provider_state_names[conn->state]);
}

static struct provider_conn *provider_conn_new(struct fetcher *fetcher, enum provider_mode mode,
					       const char *login, const char *host,
					       const char *password)
{
	struct provider_conn *conn = xcalloc(1, sizeof(*conn));

	conn->fetcher = fetcher;
	conn->mode = mode;
	conn->state = PROVIDER_RESOLVING;
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

static void provider_conn_free(struct provider_conn *conn)
{
	resolver_cancel(&conn->lookup);
	if (conn->bev != NULL)
		bufferevent_free(conn->bev);
	provider_password_wipe(conn);
	spool_writer_free(&conn->writer);
	if (conn->ingest != NULL)
		conn->ingest->conn = NULL; /* its commit goes on; the DELE waits for a later fetch */
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
	SSL *ssl = tls_client_ssl_new(conn->tls_ctx, conn->host, conn->policy->verify);
	struct bufferevent *tls_bev;

	if (ssl == NULL) {
		provider_fail(conn, "TLS setup failed: %s", tls_last_error());
		return;
	}
	/* Nothing the provider sent before the handshake may be read as if protected. */
	evbuffer_drain(bufferevent_get_input(conn->bev),
		       evbuffer_get_length(bufferevent_get_input(conn->bev)));
	tls_bev = bufferevent_openssl_filter_new(conn->fetcher->pg->base, conn->bev, ssl,
						 BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls_bev == NULL) {
		SSL_free(ssl);
		provider_fail(conn, "TLS setup failed");
		return;
	}
	struct timeval tv = {.tv_sec = conn->fetcher->pg->cfg->fetch_timeout};
	conn->bev = tls_bev;
	conn->tls_active = true;
	bufferevent_setcb(conn->bev, provider_read_cb, NULL, provider_event_cb, conn);
	bufferevent_set_timeouts(conn->bev, &tv, &tv);
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

/* Stores LEN bytes of body as they go to the spool file (already CRLF). */
static void provider_body_store(struct provider_conn *conn, const char *data, size_t len)
{
	int64_t limit = conn->fetcher->pg->cfg->max_message_size;

	if (conn->oversize || len == 0)
		return;
	if ((int64_t)(conn->writer->size + len) > limit) {
		/* Keep reading to the terminator so the connection stays in step,
		 * but store nothing: the message stays at the provider. */
		conn->oversize = true;
		return;
	}
	spool_writer_write(conn->writer, data, len);
	EVP_DigestUpdate(conn->digest, data, len);
}

/* Decoded body bytes: line ends made CRLF once, here, so the stored size and
 * SHA-256 are of what clients will be given. */
static void provider_body_out(void *ctx, const char *data, size_t len)
{
	struct provider_conn *conn = ctx;

	if (conn->oversize)
		return;
	if (conn->crlf_capacity < 2 * len + 1) {
		conn->crlf_capacity = 2 * len + 1;
		conn->crlf_buffer = xrealloc(conn->crlf_buffer, conn->crlf_capacity);
	}
	provider_body_store(conn, conn->crlf_buffer,
			    spool_crlf_normalise(&conn->crlf, data, len, conn->crlf_buffer));
}

/*
 * Whether ENTRY provably is a message stored at an earlier fetch (its UIDL
 * recorded, listed once, with the same LIST size as then: listing.c). An
 * entry without that proof whose UIDL is recorded or listed twice is marked
 * to be retrieved and compared by content.
 */
static bool provider_entry_stored(struct provider_conn *conn, struct provider_entry *entry)
{
	int64_t listed = 0;
	int known = 0;

	if (!entry->duplicate) {
		known = store_uidl_lookup(conn->fetcher->pg->store, conn->account->account_id,
					  entry->uidl, &listed);
		if (known < 0) {
			provider_fail(conn, "store error: %s",
				      store_errmsg(conn->fetcher->pg->store));
			return false;
		}
	}
	switch (listing_entry_action(entry, known == 1, listed > 0 ? (uint64_t)listed : 0)) {
	case LISTING_DELETE_ONLY:
		return true;
	case LISTING_RETRIEVE_COMPARE:
		entry->compare = true;
		return false;
	case LISTING_RETRIEVE:
		break;
	}
	return false;
}

/* Leaves ENTRY at the provider. The reasons are summed up in one line at
 * the end of the fetch, not logged per message: a listing may be huge. */
static void provider_skip(struct provider_conn *conn, struct provider_entry *entry,
			  const char *reason)
{
	size_t used = strlen(conn->skip_reason);

	conn->skipped_count++;
	if (conn->skipped_count <= PROVIDER_SKIP_REASONS)
		snprintf(conn->skip_reason + used, sizeof(conn->skip_reason) - used, "%smessage %u: %s",
			 used > 0 ? "; " : "", entry->number, reason);
}

/* The skip reasons as one text: the first few, and how many more. */
static void provider_skip_summary(const struct provider_conn *conn, char *out, size_t outlen)
{
	if (conn->skipped_count > PROVIDER_SKIP_REASONS)
		snprintf(out, outlen, "%s; and %u more", conn->skip_reason,
			 conn->skipped_count - PROVIDER_SKIP_REASONS);
	else
		snprintf(out, outlen, "%s", conn->skip_reason);
}

static void provider_resume_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct provider_conn *conn = ctx;
	(void)fd;
	(void)what;

	if (conn->state != PROVIDER_DONE)
		provider_fetch_next(conn);
}

/* Works on entry CURSOR: delete it if already stored, skip it if too big,
 * else retrieve it. After the last entry: QUIT. */
static void provider_fetch_next(struct provider_conn *conn)
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
		conn->writer = spool_writer_new(pg->store->data_dir);
		if (conn->writer == NULL) {
			provider_fail(conn, "cannot create a spool file: %s", strerror(errno));
			return;
		}
		if (conn->digest == NULL)
			conn->digest = EVP_MD_CTX_new();
		EVP_DigestInit_ex(conn->digest, EVP_sha256(), NULL);
		conn->oversize = false;
		conn->crlf.after_cr = false;
		pop3_dot_decoder_init(&conn->decoder);
		provider_command(conn, PROVIDER_RETR_STATUS, "RETR %u", entry->number);
		return;
	}
	provider_command(conn, PROVIDER_QUIT, "QUIT");
}

static void provider_ingest_free(struct provider_ingest *ingest)
{
	free(ingest->uidl);
	free(ingest->account_name);
	free(ingest->host);
	free(ingest);
}

/* In the writer thread: the row and its UIDL, committed together. */
static int provider_ingest_work(struct store *store, void *arg)
{
	struct provider_ingest *ingest = arg;

	if (store_message_insert(store, ingest->id, ingest->account_id, ingest->uidl,
				 ingest->size, ingest->sha256_hex) < 0 ||
	    store_uidl_set_size(store, ingest->account_id, ingest->uidl,
				ingest->provider_size) < 0)
		return -1;
	return 0;
}

/* In the loop, after the commit: the message goes to the pipeline, and only
 * now may the provider delete it (G3). */
static void provider_ingest_done(int result, const char *error, void *arg)
{
	struct provider_ingest *ingest = arg;
	struct provider_conn *conn = ingest->conn;

	if (conn != NULL) {
		conn->ingest = NULL;
		if (conn->state == PROVIDER_DONE)
			conn = NULL; /* ended, and freed from the loop next */
	}
	if (result < 0) {
		if (conn != NULL)
			provider_fail(conn, "cannot record message %u: %s",
				      conn->listing.entries[conn->cursor].number, error);
		provider_ingest_free(ingest);
		return;
	}
	log_event(LOG_INFO, "stored", ingest->account_name, ingest->id, "uidl %s, %lld bytes",
		  ingest->uidl, (long long)ingest->size);
	struct pipeline_job job = {.received_at = util_now()};
	memcpy(job.id, ingest->id, sizeof(job.id));
	snprintf(job.account, sizeof(job.account), "%s", ingest->account_name);
	snprintf(job.provider_host, sizeof(job.provider_host), "%s", ingest->host);
	if (pipeline_submit(ingest->pg->pipeline, &job) < 0)
		log_event(LOG_ERROR, "error", ingest->account_name, ingest->id,
			  "cannot queue for processing; it will be processed at the next start");
	provider_ingest_free(ingest);
	if (conn == NULL)
		return; /* the connection ended: a later fetch deletes it (its UIDL is known) */
	conn->stored_count++;
	bufferevent_enable(conn->bev, EV_READ);
	provider_command(conn, PROVIDER_DELE, "DELE %u", conn->listing.entries[conn->cursor].number);
}

/*
 * The body of the current message is complete in its spool file: hand it to
 * the writer thread, which makes it durable and commits its row and UIDL;
 * provider_ingest_done then asks the provider to delete it (G3) and hands
 * the message to the pipeline.
 */
static void provider_store_message(struct provider_conn *conn)
{
	struct popgate *pg = conn->fetcher->pg;
	struct provider_entry *entry = &conn->listing.entries[conn->cursor];
	unsigned char hash[EVP_MAX_MD_SIZE];
	unsigned hash_len = 0;
	char hash_hex[2 * EVP_MAX_MD_SIZE + 1];
	char id[SPOOL_ID_LEN + 1];
	char tail[1];

	/* A body that ended in a lone CR gets its LF. */
	provider_body_store(conn, tail, spool_crlf_finish(&conn->crlf, tail));
	if (conn->oversize) {
		spool_writer_free(&conn->writer);
		char reason[96];
		snprintf(reason, sizeof(reason), "over the size limit of %lld bytes",
			 pg->cfg->max_message_size);
		provider_skip(conn, entry, reason);
		conn->cursor++;
		provider_fetch_next(conn);
		return;
	}
	EVP_DigestFinal_ex(conn->digest, hash, &hash_len);
	sodium_bin2hex(hash_hex, sizeof(hash_hex), hash, hash_len);
	int64_t size = (int64_t)conn->writer->size;
	memcpy(id, conn->writer->id, sizeof(id));

	if (entry->compare) {
		/* Its UIDL alone proved nothing: the very same body stored under it
		 * does. Then only delete; else it is another message: store it. */
		int copy = store_message_has_copy(pg->store, conn->account->account_id,
						  entry->uidl, hash_hex);
		if (copy < 0) {
			spool_writer_free(&conn->writer);
			provider_fail(conn, "store error: %s", store_errmsg(pg->store));
			return;
		}
		if (copy == 1) {
			spool_writer_free(&conn->writer);
			conn->redeleted_count++;
			provider_command(conn, PROVIDER_DELE, "DELE %u", entry->number);
			return;
		}
	}

	/*
	 * The writer thread makes the body durable (fsync, rename, folder fsync)
	 * and then commits its row and UIDL, in one transaction with whatever
	 * else is queued; the DELE waits for that commit (provider_ingest_done).
	 * A crash before the commit leaves an orphan file, removed at start-up.
	 * Nothing is read from the provider meanwhile.
	 */
	struct provider_ingest *ingest = xcalloc(1, sizeof(*ingest));
	ingest->conn = conn;
	ingest->pg = pg;
	ingest->account_id = conn->account->account_id;
	memcpy(ingest->id, id, sizeof(id));
	ingest->uidl = xstrdup(entry->uidl);
	ingest->account_name = xstrdup(conn->account_name);
	ingest->host = xstrdup(conn->host);
	ingest->size = size;
	ingest->provider_size = (int64_t)entry->size;
	snprintf(ingest->sha256_hex, sizeof(ingest->sha256_hex), "%s", hash_hex);
	struct spool_writer *body = conn->writer;
	conn->writer = NULL;
	if (writer_submit(pg->writer, body, provider_ingest_work, provider_ingest_done, ingest) < 0) {
		provider_ingest_free(ingest);
		provider_fail(conn, "cannot store message %u: the store is overloaded",
			      entry->number);
		return;
	}
	conn->ingest = ingest;
	bufferevent_disable(conn->bev, EV_READ);
}

/* Reads body bytes of the current RETR through the dot decoder. */
static void provider_read_body(struct provider_conn *conn)
{
	struct evbuffer *in = bufferevent_get_input(conn->bev);

	while (!conn->decoder.done && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			break;
		size_t used = pop3_dot_decode(&conn->decoder, vec.iov_base, vec.iov_len,
					      provider_body_out, conn);
		evbuffer_drain(in, used);
	}
	if (conn->decoder.done)
		provider_store_message(conn);
}

/* Logs the UIDLs the listing holds more than once, once per fetch, and
 * keeps the anomaly for the account's last error. */
static void provider_report_duplicates(struct provider_conn *conn)
{
	const struct provider_listing *listing = &conn->listing;

	if (listing->duplicate_uidls == 0)
		return;
	snprintf(conn->anomaly, sizeof(conn->anomaly), "provider lists uidl %s twice%s",
		 listing->entries[listing->first_duplicate].uidl,
		 listing->duplicate_uidls > 1 ? " (and other uidls too)" : "");
	log_event(LOG_WARN, "error", conn->account_name, NULL,
		  "the %s; %zu uidl(s) listed more than once: those messages are retrieved and "
		  "compared, never deleted unless stored",
		  conn->anomaly, listing->duplicate_uidls);
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
			      provider_state_names[conn->state]);
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
			      provider_state_names[conn->state]);
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
		case PROVIDER_UIDL: {
			/* UIDLs the provider no longer lists are gone there for good;
			 * a listing cut at max_listed proves nothing of the rest. */
			if (conn->listing.unlisted == 0) {
				char **present = xcalloc(conn->listing.count + 1, sizeof(char *));
				for (size_t i = 0; i < conn->listing.count; i++)
					present[i] = conn->listing.entries[i].uidl;
				store_uidl_prune(conn->fetcher->pg->store,
						 conn->account->account_id, present,
						 conn->listing.count);
				free(present);
				log_event(LOG_INFO, "fetch", conn->account_name, NULL,
					  "%zu message(s) at the provider", conn->listing.count);
			} else {
				log_event(LOG_INFO, "fetch", conn->account_name, NULL,
					  "%zu message(s) at the provider; this fetch takes the "
					  "first %zu ([fetch] max_listed), the rest waits for the "
					  "next fetch",
					  conn->listing.count + conn->listing.unlisted, conn->listing.count);
			}
			listing_close(&conn->listing);
			provider_report_duplicates(conn);
			if (conn->listing.count == 0) {
				provider_command(conn, PROVIDER_QUIT, "QUIT");
				return;
			}
			provider_command(conn, PROVIDER_LIST, "LIST");
			return;
		}
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
	bool tls_failure;

	if (events & BEV_EVENT_CONNECTED) {
		if (conn->state == PROVIDER_TLS_HANDSHAKE) {
			provider_send_login(conn);
			return;
		}
		provider_enter_state(conn, PROVIDER_GREETING);
		return;
	}
	/* Read once: reading takes the error off the queue. A failed system
	 * call (a refused connection) shows as libevent's SSL_ERROR_SYSCALL or
	 * as an error of OpenSSL's system library: that is the socket failing,
	 * not TLS. */
	ssl_error = (events & BEV_EVENT_ERROR) ? bufferevent_get_openssl_error(bev) : 0;
	tls_failure = ssl_error != 0 && ssl_error != SSL_ERROR_SYSCALL &&
		      ERR_GET_LIB(ssl_error) != ERR_LIB_SYS;
	/* Before the provider has said anything, the host's next address may
	 * do better; a TLS failure would be the same there. */
	if (conn->state == PROVIDER_CONNECTING && !tls_failure) {
		int err = EVUTIL_SOCKET_ERROR();

		if (events & BEV_EVENT_TIMEOUT)
			provider_connect_failed(conn, "connect timed out");
		else if ((events & BEV_EVENT_EOF) != 0 || err == 0)
			provider_connect_failed(conn, "connection closed");
		else
			provider_connect_failed(conn, "%s", evutil_socket_error_to_string(err));
		return;
	}
	if (events & BEV_EVENT_TIMEOUT) {
		provider_fail(conn, "timeout in state %s after %d s of silence",
			      provider_state_names[conn->state], conn->fetcher->pg->cfg->fetch_timeout);
		return;
	}
	if (events & BEV_EVENT_ERROR) {
		if (tls_failure) {
			char buf[200];
			ERR_error_string_n(ssl_error, buf, sizeof(buf));
			provider_fail(conn, "TLS error in state %s: %s",
				      provider_state_names[conn->state], buf);
		} else {
			int err = EVUTIL_SOCKET_ERROR();
			provider_fail(conn, "connection error in state %s: %s",
				      provider_state_names[conn->state],
				      err ? evutil_socket_error_to_string(err) : "closed");
		}
		return;
	}
	if (events & BEV_EVENT_EOF) {
		provider_fail(conn, "the provider closed the connection in state %s",
			      provider_state_names[conn->state]);
		return;
	}
}

/* ---- scheduling and the end of a connection ------------------------------ */

static struct fetch_account *fetcher_account(struct fetcher *fetcher, int64_t account_id)
{
	struct fetch_account *account;

	TAILQ_FOREACH(account, &fetcher->accounts, entry)
	{
		if (account->account_id == account_id)
			return account;
	}
	return NULL;
}

static void fetcher_retry_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct fetch_account *account = ctx;
	(void)fd;
	(void)what;
	fetcher_request(account->fetcher, account->account_id, 1);
}

/* Starts waiting requests while there is room. */
static void fetcher_run_waiting(struct fetcher *fetcher)
{
	struct fetch_account *account;

	while (fetcher->active < (unsigned)fetcher->pg->cfg->max_fetches &&
	       (account = TAILQ_FIRST(&fetcher->waiting)) != NULL) {
		TAILQ_REMOVE(&fetcher->waiting, account, queue_entry);
		account->queued = false;
		fetcher_start(fetcher, account);
	}
}

/* Records the outcome of a fetch and schedules what comes next. */
static void fetcher_fetch_done(struct provider_conn *conn)
{
	struct fetcher *fetcher = conn->fetcher;
	struct fetch_account *account = conn->account;
	struct popgate *pg = fetcher->pg;
	struct store_account row = {0};
	int failures = 0;
	int64_t next = 0;

	account->running = false;
	if (store_account_get_by_id(pg->store, account->account_id, &row) == 1)
		failures = row.fetch_failures;
	store_account_clear(&row);

	if (conn->error[0] != '\0') {
		failures++;
		int64_t delay = pg->cfg->fetch_retry_min;
		for (int i = 1; i < failures && delay < pg->cfg->fetch_retry_max; i++)
			delay *= 2;
		if (delay > pg->cfg->fetch_retry_max)
			delay = pg->cfg->fetch_retry_max;
		next = util_now() + delay;
		log_event(LOG_WARN, "fetch_error", conn->account_name, NULL,
			  "%s; retry in %lld s", conn->error, (long long)delay);
		store_account_record_fetch(pg->store, account->account_id, conn->error, failures,
					   next);
		struct timeval tv = {.tv_sec = delay};
		evtimer_add(account->retry_timer, &tv);
	} else {
		/* A fetch that went well but met a provider's anomaly shows it as
		 * the account's last error, without a back-off. */
		store_account_record_fetch(pg->store, account->account_id,
					   conn->anomaly[0] != '\0' ? conn->anomaly : NULL, 0, 0);
		evtimer_del(account->retry_timer);
		/* A listing cut at max_listed: the next part follows at once while
		 * the fetches store something new (a provider that ignores DELE
		 * would list the same first part again: no loop then). */
		if (conn->listing.unlisted > 0 && conn->stored_count > 0)
			account->again = true;
	}
	if (account->again) {
		/* Asked for while running; after a failure, back-off still holds. */
		account->again = false;
		fetcher_request(fetcher, account->account_id, 0);
	}
}

/* Ends CONN: reports a verify, records a fetch, frees the connection. */
static void provider_conn_finish(struct provider_conn *conn)
{
	if (conn->free_event != NULL)
		return; /* ended already */
	struct fetcher *fetcher = conn->fetcher;

	if (conn->state != PROVIDER_DONE)
		provider_enter_state(conn, PROVIDER_DONE);
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

static void fetcher_start(struct fetcher *fetcher, struct fetch_account *account)
{
	struct popgate *pg = fetcher->pg;
	struct store_account row = {0};
	char *password = NULL;

	if (store_account_get_by_id(pg->store, account->account_id, &row) != 1) {
		log_event(LOG_ERROR, "fetch_error", NULL, NULL, "account %lld not found",
			  (long long)account->account_id);
		store_account_clear(&row);
		return;
	}
	if (crypto_secret_open(&pg->key, row.secret, row.secret_len, &password) < 0) {
		log_event(LOG_ERROR, "fetch_error", row.name, NULL,
			  "the stored password cannot be decrypted (wrong key file?); the next "
			  "login will store it again");
		store_account_clear(&row);
		return;
	}
	/* Marked before the first byte reaches the provider: a restart fetches
	 * an account whose fetch never ended (popgate.c, recover). */
	if (store_account_fetch_begin(pg->store, account->account_id) < 0)
		log_event(LOG_WARN, "error", row.name, NULL,
			  "cannot mark the fetch as started: %s", store_errmsg(pg->store));
	struct provider_conn *conn =
		provider_conn_new(fetcher, PROVIDER_MODE_FETCH, row.login, row.host, password);
	crypto_password_free(&password);
	conn->account = account;
	account->running = true;
	store_account_clear(&row);
	provider_conn_start(conn);
}

/* ---- public --------------------------------------------------------------- */

struct fetcher *fetcher_new(struct popgate *pg)
{
	struct fetcher *fetcher = xcalloc(1, sizeof(*fetcher));

	fetcher->pg = pg;
	TAILQ_INIT(&fetcher->conns);
	TAILQ_INIT(&fetcher->accounts);
	TAILQ_INIT(&fetcher->waiting);
	return fetcher;
}

void fetcher_free(struct fetcher **fetcher_p)
{
	struct fetcher *fetcher = *fetcher_p;
	struct fetch_account *account;
	struct fetch_tls_ctx *tls;

	if (fetcher == NULL)
		return;
	/* No retry may start a fetch while the connections are cut below. */
	TAILQ_FOREACH(account, &fetcher->accounts, entry)
		evtimer_del(account->retry_timer);
	/* At shutdown: connections still open are cut; their messages stay at
	 * the provider unless stored, and the next start fetches again. A
	 * lookup still pending is cancelled with its connection, at once: the
	 * resolver keeps nothing of it for the stopped loop to run. */
	struct provider_conn *conn;
	while ((conn = TAILQ_FIRST(&fetcher->conns)) != NULL) {
		conn->verify_callback = NULL;
		if (conn->verify != NULL)
			conn->verify->conn = NULL;
		provider_conn_free(conn);
	}
	while ((account = TAILQ_FIRST(&fetcher->accounts)) != NULL) {
		TAILQ_REMOVE(&fetcher->accounts, account, entry);
		event_free(account->retry_timer);
		free(account);
	}
	while ((tls = fetcher->tls_contexts) != NULL) {
		fetcher->tls_contexts = tls->next;
		SSL_CTX_free(tls->ctx);
		free(tls->ca_file);
		free(tls);
	}
	free(fetcher);
	*fetcher_p = NULL;
}

void fetcher_request(struct fetcher *fetcher, int64_t account_id, int now)
{
	struct fetch_account *account = fetcher_account(fetcher, account_id);

	if (account == NULL) {
		account = xcalloc(1, sizeof(*account));
		account->account_id = account_id;
		account->fetcher = fetcher;
		account->retry_timer = evtimer_new(fetcher->pg->base, fetcher_retry_cb, account);
		TAILQ_INSERT_TAIL(&fetcher->accounts, account, entry);
	}
	if (account->running) {
		account->again = true;
		return;
	}
	if (account->queued)
		return;
	if (!now) {
		struct store_account row = {0};
		int64_t wait = 0;
		if (store_account_get_by_id(fetcher->pg->store, account_id, &row) == 1)
			wait = row.next_fetch_at - util_now();
		store_account_clear(&row);
		if (wait > 0) {
			/* A failing provider is not asked again before its back-off
			 * ends, however many pickups come: the timer fetches then. */
			struct timeval tv = {.tv_sec = wait};
			log_event(LOG_INFO, "fetch", NULL, NULL,
				  "account %lld waits %lld s for its fetch back-off",
				  (long long)account_id, (long long)wait);
			evtimer_add(account->retry_timer, &tv);
			return;
		}
	}
	evtimer_del(account->retry_timer);
	if (fetcher->active >= (unsigned)fetcher->pg->cfg->max_fetches) {
		account->queued = true;
		TAILQ_INSERT_TAIL(&fetcher->waiting, account, queue_entry);
		return;
	}
	fetcher_start(fetcher, account);
}

unsigned fetcher_active(const struct fetcher *fetcher)
{
	return fetcher->active;
}

unsigned fetcher_checks(const struct fetcher *fetcher)
{
	return fetcher->checks;
}

struct fetch_verify *fetch_verify_start(struct fetcher *fetcher, const char *login,
					const char *host, const char *password,
					fetch_verify_cb *callback, void *ctx)
{
	struct provider_conn *conn =
		provider_conn_new(fetcher, PROVIDER_MODE_VERIFY, login, host, password);
	struct fetch_verify *verify = xcalloc(1, sizeof(*verify));

	verify->conn = conn;
	conn->verify = verify;
	conn->verify_callback = callback;
	conn->verify_ctx = ctx;
	provider_conn_start(conn);
	/* The start may have failed at once and reported already, which freed
	 * VERIFY; CONN itself is only freed from the loop. */
	if (conn->verify == NULL)
		return NULL;
	return verify;
}

void fetch_verify_cancel(struct fetch_verify **verify_p)
{
	struct fetch_verify *verify = *verify_p;

	if (verify == NULL)
		return;
	if (verify->conn != NULL) {
		verify->conn->verify_callback = NULL;
		verify->conn->verify = NULL;
		provider_password_wipe(verify->conn);
		if (verify->conn->state != PROVIDER_QUIT)
			provider_fail(verify->conn, "cancelled");
	}
	free(verify);
	*verify_p = NULL;
}
