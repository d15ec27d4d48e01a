/*
 * connector.h — outbound connections: resolve a host (core/resolver, never
 * blocking), check every address it returns against the address policy
 * (core/policy.c: no loopback, private or link-local address unless
 * allowed), connect to each allowed address in turn until one answers
 * (each with its own timeout), and TLS with SNI and certificate
 * verification: implicit from the first byte, or later on the plain
 * connection handed back, once the protocol asked for it (STLS, STARTTLS);
 * there, also DANE: the certificate authenticated by TLSA records.
 *
 * Nothing here knows a protocol: the POP3 client connects to providers with
 * it; the SMTP relay will connect to MX hosts on port 25 and upgrade with
 * STARTTLS.
 *
 * Owns: the client TLS contexts (one per CA file and verify setting, made
 * at the first use and kept), and each attempt until its callback runs.
 * Must never: call an attempt's callback before connector_connect returns,
 * or after connector_cancel.
 *
 * SECURITY: the host name comes from a user (an account name) or from DNS:
 * every address is judged before any packet goes to it; the certificate is
 * checked against the host name unless the caller's policy says verify = no.
 */
#ifndef POPGATE_CORE_CONNECTOR_H
#define POPGATE_CORE_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

struct resolver;
struct resolver_tlsa;
struct connector;
struct connector_attempt;

enum connector_tls {
	CONNECTOR_TLS_NONE,	/* plain, and no TLS later */
	CONNECTOR_TLS_IMPLICIT, /* TLS from the first byte (POP3S 995, SMTPS 465) */
	CONNECTOR_TLS_UPGRADE,	/* plain first; connector_start_tls once the peer agreed */
};

/* Where to connect and how. The strings are copied. */
struct connector_target {
	const char *host; /* looked up, and the TLS name (SNI, certificate check) */
	int port;
	enum connector_tls tls;
	const char *ca_file; /* NULL: the system's CA store */
	bool verify;	     /* check the certificate and its name against HOST */
	bool allow_private;  /* allow loopback, private and link-local addresses */
	/* Seconds of silence each address is given to connect (and, with
	 * implicit TLS, to finish the handshake); they stay set as the read and
	 * write timeouts of the connection handed back. */
	int timeout;
	/* Seconds from connector_connect for the whole attempt (lookup, every
	 * address, the handshake); 0: none, when the caller's own deadline for
	 * the whole conversation covers the connect and cancels the attempt. */
	int deadline;
	/* Names the log line that says an address failed and the next is
	 * tried: the event ("fetch") and the account; NULL for none. */
	const char *log_event;
	const char *log_account;
	/* DANE (RFC 7671, RFC 7672): the peer is authenticated by these TLSA
	 * records instead of VERIFY and CA_FILE, HOST being the TLSA base
	 * domain (the name a DANE-TA chain must carry; DANE-EE checks no name
	 * and no dates). Only DANE-TA (2) and DANE-EE (3) records count; at
	 * least one must be usable. For connector_start_tls only, and not
	 * copied: they need to live during that call. NULL for none. */
	const struct resolver_tlsa *tlsa;
	size_t tlsa_count;
};

/*
 * The attempt ended: BEV is the connection (with implicit TLS, handshake
 * done), now the caller's: its callbacks are unset, reading and writing are
 * enabled, and bytes may already wait in its input. Else BEV is NULL and
 * ERROR says why ("cannot resolve …", "… (127.0.0.2)" for the last address
 * that failed). The attempt's handle is gone once this is called.
 */
typedef void connector_cb(struct bufferevent *bev, const char *error, void *ctx);

/* A connector for connections on BASE, looking names up with RESOLVER
 * (which must outlive it). */
struct connector *connector_new(struct event_base *base, struct resolver *resolver);

/* Frees *CONNECTOR_P (NULL is fine) and its TLS contexts; every attempt
 * must have ended or been cancelled. Sets *CONNECTOR_P to NULL. */
void connector_free(struct connector **connector_p);

/*
 * Starts connecting to TARGET; CALLBACK runs once, later, from the loop.
 * NULL, with a message in ERR, if the attempt cannot even start (a CA file
 * that cannot be read): then CALLBACK is never called.
 */
struct connector_attempt *connector_connect(struct connector *connector,
					    const struct connector_target *target,
					    connector_cb *callback, void *ctx, char *err,
					    size_t errlen);

/* Stops the attempt *ATTEMPT_P (NULL is fine; its callback will not run)
 * and sets it to NULL. Not for an attempt whose callback has run. */
void connector_cancel(struct connector_attempt **attempt_p);

/* What the attempt is doing, for a log line: "resolving" or "connecting". */
const char *connector_phase(const struct connector_attempt *attempt);

/*
 * Upgrades PLAIN, a connection handed back for TARGET (tls
 * CONNECTOR_TLS_UPGRADE), to TLS, once the peer agreed (+OK to STLS, 220 to
 * STARTTLS). Whatever the peer sent before is dropped: nothing read before
 * the handshake may pass for protected. Returns the TLS connection, which
 * owns PLAIN now, with TARGET's timeouts; the caller sets its callbacks,
 * enables it, and waits for BEV_EVENT_CONNECTED (the handshake done) or an
 * error (connector_tls_error). NULL with a message in ERR; PLAIN is
 * then still the caller's.
 */
struct bufferevent *connector_start_tls(struct connector *connector, struct bufferevent *plain,
					const struct connector_target *target, char *err,
					size_t errlen);

/*
 * For EVENTS on BEV (an error event): the OpenSSL error when TLS failed
 * (the certificate, the handshake, the record layer), else 0 (a failed
 * system call is the socket failing, not TLS). Takes the error off the
 * queue: call it once per event.
 */
unsigned long connector_tls_error(struct bufferevent *bev, short events);

#endif
