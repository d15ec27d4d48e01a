/*
 * connector.c — outbound connections: lookup, address policy, each address
 * in turn, TLS with SNI and verification (connector.h says what for).
 *
 * An attempt goes: resolving (the resolver calls back from the loop, even
 * for a numeric host) → the addresses the policy allows, at most
 * CONNECTOR_ADDRESSES_MAX → connecting to each in turn: one that refuses,
 * times out or cannot even start (no route to an IPv6 address) moves on to
 * the next; a TLS failure does not, as the next address would fail the same.
 * The last address's reason is the attempt's error.
 *
 * Owns: the client TLS contexts and the attempts in flight. Must never: call
 * a callback from inside connector_connect or for a cancelled attempt.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/resolver.h"
#include "core/tls.h"
#include "core/util.h"

/* The addresses of a host an attempt tries, at most. */
#define CONNECTOR_ADDRESSES_MAX 8

/* A client TLS context per distinct (CA file, verify), made lazily. */
struct connector_tls_ctx {
	char *ca_file; /* NULL = system store */
	bool verify;
	SSL_CTX *ctx;
	struct connector_tls_ctx *next;
};

struct connector {
	struct event_base *base;
	struct resolver *resolver;
	struct connector_tls_ctx *tls_contexts;
};

struct connector_attempt {
	struct connector *connector;
	char *host;
	int port;
	enum connector_tls tls;
	bool verify;
	bool allow_private;
	int timeout;
	int deadline;
	char *log_event;
	char *log_account;
	SSL_CTX *tls_ctx; /* the connector's; NULL without TLS */
	connector_cb *callback;
	void *ctx;
	bool resolving;
	struct resolver_lookup *lookup; /* while resolving */
	/* The host's addresses the policy allows, tried in turn until one
	 * connects (an IPv6 address without a route, a server that is down). */
	struct sockaddr_storage addresses[CONNECTOR_ADDRESSES_MAX];
	socklen_t address_lens[CONNECTOR_ADDRESSES_MAX];
	size_t address_count;
	size_t address_next;	 /* the next one to try */
	char connect_error[200]; /* why the last address failed */
	struct bufferevent *bev; /* the address being tried */
	struct event *deadline_event;
};

static SSL_CTX *connector_tls_ctx(struct connector *connector, const char *ca_file, bool verify,
				  char *err, size_t errlen)
{
	struct connector_tls_ctx *entry;

	for (entry = connector->tls_contexts; entry != NULL; entry = entry->next) {
		bool same_ca = (entry->ca_file == NULL && ca_file == NULL) ||
			       (entry->ca_file != NULL && ca_file != NULL &&
				strcmp(entry->ca_file, ca_file) == 0);
		if (same_ca && entry->verify == verify)
			return entry->ctx;
	}
	SSL_CTX *ctx = tls_client_ctx_new(ca_file, verify, err, errlen);
	if (ctx == NULL)
		return NULL;
	/* Any context may carry a DANE connection (connector_ssl_dane); one
	 * without TLSA records added to its SSL stays as it was. */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		snprintf(err, errlen, "cannot enable DANE: %s", tls_last_error());
		SSL_CTX_free(ctx);
		return NULL;
	}
	entry = xcalloc(1, sizeof(*entry));
	entry->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	entry->verify = verify;
	entry->ctx = ctx;
	entry->next = connector->tls_contexts;
	connector->tls_contexts = entry;
	return ctx;
}

static void connector_attempt_free(struct connector_attempt *attempt)
{
	resolver_cancel(&attempt->lookup);
	if (attempt->bev != NULL)
		bufferevent_free(attempt->bev);
	if (attempt->deadline_event != NULL)
		event_free(attempt->deadline_event);
	free(attempt->host);
	free(attempt->log_event);
	free(attempt->log_account);
	free(attempt);
}

/* Ends ATTEMPT: hands BEV (NULL on failure) to its caller, frees the rest. */
static void connector_end(struct connector_attempt *attempt, struct bufferevent *bev,
			  const char *error)
{
	connector_cb *callback = attempt->callback;
	void *ctx = attempt->ctx;

	if (bev != NULL) {
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		attempt->bev = NULL;
	}
	connector_attempt_free(attempt);
	callback(bev, error, ctx);
}

static void connector_fail(struct connector_attempt *attempt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void connector_fail(struct connector_attempt *attempt, const char *fmt, ...)
{
	char error[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(error, sizeof(error), fmt, ap);
	va_end(ap);
	connector_end(attempt, NULL, error);
}

static void connector_connect_failed(struct connector_attempt *attempt, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void connector_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct connector_attempt *attempt = ctx;
	unsigned long ssl_error;

	if (events & BEV_EVENT_CONNECTED) {
		connector_end(attempt, bev, NULL);
		return;
	}
	ssl_error = connector_tls_error(bev, events);
	/* The host's next address would fail TLS the same way. */
	if (ssl_error != 0) {
		char buf[200];
		ERR_error_string_n(ssl_error, buf, sizeof(buf));
		connector_fail(attempt, "TLS error in state connecting: %s", buf);
		return;
	}
	int err = EVUTIL_SOCKET_ERROR();
	if (events & BEV_EVENT_TIMEOUT)
		connector_connect_failed(attempt, "connect timed out");
	else if ((events & BEV_EVENT_EOF) != 0 || err == 0)
		connector_connect_failed(attempt, "connection closed");
	else
		connector_connect_failed(attempt, "%s", evutil_socket_error_to_string(err));
}

/*
 * Connects to the next of ATTEMPT's addresses; with none left, the attempt
 * fails with the last address's reason.
 */
static void connector_connect_next(struct connector_attempt *attempt)
{
	struct event_base *base = attempt->connector->base;
	struct timeval tv = {.tv_sec = attempt->timeout};
	const struct sockaddr *addr;
	socklen_t addrlen;

	if (attempt->bev != NULL) {
		bufferevent_free(attempt->bev);
		attempt->bev = NULL;
	}
	if (attempt->address_next >= attempt->address_count) {
		connector_fail(attempt, "%s", attempt->connect_error);
		return;
	}
	addr = (const struct sockaddr *)&attempt->addresses[attempt->address_next];
	addrlen = attempt->address_lens[attempt->address_next];
	attempt->address_next++;

	if (attempt->tls == CONNECTOR_TLS_IMPLICIT) {
		SSL *ssl = tls_client_ssl_new(attempt->tls_ctx, attempt->host, attempt->verify);
		if (ssl == NULL) {
			connector_fail(attempt, "TLS setup failed: %s", tls_last_error());
			return;
		}
		attempt->bev = bufferevent_openssl_socket_new(
		    base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	} else {
		attempt->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (attempt->bev == NULL) {
		connector_fail(attempt, "cannot create a connection");
		return;
	}
	/* No read callback: bytes that come with the connect wait in the input
	 * for the caller. */
	bufferevent_setcb(attempt->bev, NULL, NULL, connector_event_cb, attempt);
	bufferevent_set_timeouts(attempt->bev, &tv, &tv);
	bufferevent_enable(attempt->bev, EV_READ | EV_WRITE);
	/* A connection that cannot even start (no route to an IPv6 address)
	 * moves on at once. */
	if (bufferevent_socket_connect(attempt->bev, addr, (int)addrlen) < 0)
		connector_connect_failed(attempt, "connect failed: %s", strerror(errno));
}

/*
 * The connection to the current address failed before the peer said
 * anything: remembers why, and tries the next address if there is one.
 */
static void connector_connect_failed(struct connector_attempt *attempt, const char *fmt, ...)
{
	const struct sockaddr *addr =
	    (const struct sockaddr *)&attempt->addresses[attempt->address_next - 1];
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
	snprintf(attempt->connect_error, sizeof(attempt->connect_error), "%s (%s)", reason,
		 address);
	if (attempt->address_next < attempt->address_count && attempt->log_event != NULL)
		log_event(LOG_INFO, attempt->log_event, attempt->log_account, NULL,
			  "cannot connect to %s at %s: %s; trying its next address", attempt->host,
			  address, reason);
	connector_connect_next(attempt);
}

static void connector_resolved_cb(enum resolver_status status,
				  const struct resolver_address *addresses, size_t count, void *ctx)
{
	struct connector_attempt *attempt = ctx;
	bool refused = false;

	attempt->lookup = NULL;
	attempt->resolving = false;
	if (status != RESOLVER_OK) {
		connector_fail(attempt, "cannot resolve %s: %s", attempt->host,
			       resolver_status_text(status));
		return;
	}
	/* Every address is judged, not only the first: a name may mix a public
	 * address with a private one. */
	for (size_t i = 0; i < count && attempt->address_count < CONNECTOR_ADDRESSES_MAX; i++) {
		const struct sockaddr *addr = (const struct sockaddr *)&addresses[i].addr;

		if (!attempt->allow_private && !policy_address_public(addr)) {
			refused = true;
			continue;
		}
		memcpy(&attempt->addresses[attempt->address_count], &addresses[i].addr,
		       addresses[i].len);
		attempt->address_lens[attempt->address_count++] = addresses[i].len;
	}
	if (attempt->address_count == 0) {
		if (refused)
			connector_fail(attempt,
				       "%s resolves to a loopback, private or link-local address; "
				       "the host's policy does not allow it",
				       attempt->host);
		else
			connector_fail(attempt, "%s has no address", attempt->host);
		return;
	}
	connector_connect_next(attempt);
}

static void connector_deadline_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct connector_attempt *attempt = ctx;
	(void)fd;
	(void)what;

	connector_fail(attempt, "no connection to %s within %d s (%s)", attempt->host,
		       attempt->deadline, connector_phase(attempt));
}

/* ---- public --------------------------------------------------------------- */

struct connector *connector_new(struct event_base *base, struct resolver *resolver)
{
	struct connector *connector = xcalloc(1, sizeof(*connector));

	connector->base = base;
	connector->resolver = resolver;
	return connector;
}

void connector_free(struct connector **connector_p)
{
	struct connector *connector = *connector_p;
	struct connector_tls_ctx *tls;

	if (connector == NULL)
		return;
	while ((tls = connector->tls_contexts) != NULL) {
		connector->tls_contexts = tls->next;
		SSL_CTX_free(tls->ctx);
		free(tls->ca_file);
		free(tls);
	}
	free(connector);
	*connector_p = NULL;
}

struct connector_attempt *connector_connect(struct connector *connector,
					    const struct connector_target *target,
					    connector_cb *callback, void *ctx, char *err,
					    size_t errlen)
{
	SSL_CTX *tls_ctx = NULL;

	if (target->tls != CONNECTOR_TLS_NONE) {
		char why[256];

		tls_ctx =
		    connector_tls_ctx(connector, target->ca_file, target->verify, why, sizeof(why));
		if (tls_ctx == NULL) {
			snprintf(err, errlen, "TLS setup failed: %s", why);
			return NULL;
		}
	}
	struct connector_attempt *attempt = xcalloc(1, sizeof(*attempt));
	attempt->connector = connector;
	attempt->host = xstrdup(target->host);
	attempt->port = target->port;
	attempt->tls = target->tls;
	attempt->verify = target->verify;
	attempt->allow_private = target->allow_private;
	attempt->timeout = target->timeout;
	attempt->deadline = target->deadline;
	attempt->log_event = target->log_event != NULL ? xstrdup(target->log_event) : NULL;
	attempt->log_account = target->log_account != NULL ? xstrdup(target->log_account) : NULL;
	attempt->tls_ctx = tls_ctx;
	attempt->callback = callback;
	attempt->ctx = ctx;
	if (target->deadline > 0) {
		struct timeval deadline = {.tv_sec = target->deadline};
		attempt->deadline_event =
		    evtimer_new(connector->base, connector_deadline_cb, attempt);
		evtimer_add(attempt->deadline_event, &deadline);
	}
	attempt->resolving = true;
	/* The callback runs later, from the loop, even for a numeric host. */
	attempt->lookup = resolver_lookup_addresses(connector->resolver, attempt->host,
						    attempt->port, connector_resolved_cb, attempt);
	return attempt;
}

void connector_cancel(struct connector_attempt **attempt_p)
{
	if (*attempt_p == NULL)
		return;
	connector_attempt_free(*attempt_p);
	*attempt_p = NULL;
}

const char *connector_phase(const struct connector_attempt *attempt)
{
	return attempt->resolving ? "resolving" : "connecting";
}

/* Makes SSL authenticate its peer by TARGET's TLSA records (RFC 7671):
 * DANE-TA and DANE-EE only (RFC 7672 3.1.3: the PKIX usages are not for
 * SMTP), DANE-EE without name or date checks (RFC 7672 3.1.1), a DANE-TA
 * chain's name checked against HOST, no partial wildcards (RFC 7672
 * 3.2.3). 0, or -1 with ERR set when no record is usable: OpenSSL would
 * then fall back on the CA store, which is not what the caller asked. */
static int connector_ssl_dane(SSL *ssl, const struct connector_target *target, char *err,
			      size_t errlen)
{
	int usable = 0;

	if (SSL_dane_enable(ssl, target->host) <= 0) {
		snprintf(err, errlen, "cannot enable DANE: %s", tls_last_error());
		return -1;
	}
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (size_t i = 0; i < target->tlsa_count; i++) {
		const struct resolver_tlsa *tlsa = &target->tlsa[i];

		if (tlsa->usage != 2 && tlsa->usage != 3)
			continue;
		/* 0: a selector or matching type OpenSSL does not know
		 * (unusable, skipped); below 0: malformed data (a digest of the
		 * wrong length), skipped as well (RFC 7671 5). */
		if (SSL_dane_tlsa_add(ssl, tlsa->usage, tlsa->selector, tlsa->matching, tlsa->data,
				      tlsa->length) > 0)
			usable++;
		else
			ERR_clear_error();
	}
	if (usable == 0) {
		snprintf(err, errlen, "DANE: none of the %zu TLSA records is usable",
			 target->tlsa_count);
		return -1;
	}
	SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	return 0;
}

struct bufferevent *connector_start_tls(struct connector *connector, struct bufferevent *plain,
					const struct connector_target *target, char *err,
					size_t errlen)
{
	char why[256];
	SSL_CTX *tls_ctx =
	    connector_tls_ctx(connector, target->ca_file, target->verify, why, sizeof(why));
	struct bufferevent *tls_bev;
	SSL *ssl;

	if (tls_ctx == NULL) {
		snprintf(err, errlen, "TLS setup failed: %s", why);
		return NULL;
	}
	ssl = tls_client_ssl_new(tls_ctx, target->host, target->verify);
	if (ssl == NULL) {
		snprintf(err, errlen, "TLS setup failed: %s", tls_last_error());
		return NULL;
	}
	if (target->tlsa_count > 0 && connector_ssl_dane(ssl, target, err, errlen) < 0) {
		SSL_free(ssl);
		return NULL;
	}
	/* Nothing the peer sent before the handshake may be read as if protected. */
	evbuffer_drain(bufferevent_get_input(plain),
		       evbuffer_get_length(bufferevent_get_input(plain)));
	tls_bev = bufferevent_openssl_filter_new(connector->base, plain, ssl,
						 BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (tls_bev == NULL) {
		SSL_free(ssl);
		snprintf(err, errlen, "TLS setup failed");
		return NULL;
	}
	struct timeval tv = {.tv_sec = target->timeout};
	bufferevent_set_timeouts(tls_bev, &tv, &tv);
	return tls_bev;
}

unsigned long connector_tls_error(struct bufferevent *bev, short events)
{
	/* Read once: reading takes the error off the queue. A failed system
	 * call (a refused connection) shows as libevent's SSL_ERROR_SYSCALL or
	 * as an error of OpenSSL's system library: that is the socket failing,
	 * not TLS. */
	unsigned long ssl_error =
	    (events & BEV_EVENT_ERROR) ? bufferevent_get_openssl_error(bev) : 0;

	if (ssl_error == SSL_ERROR_SYSCALL || ERR_GET_LIB(ssl_error) == ERR_LIB_SYS)
		return 0;
	return ssl_error;
}
