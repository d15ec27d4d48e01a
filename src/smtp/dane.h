/*
 * dane.h — DANE for the SMTP relay (RFC 7672): what an MX host's DNSSEC
 * records say about the TLS its delivery must use.
 *
 * Asked only for an MX host found through a secure MX answer (or a domain
 * without MX whose denial was secure: the domain is its own host). The
 * lookup asks, through the validating resolver (core/resolver.h, [server]
 * dns_trust_anchor), for the host's A and AAAA records and for the TLSA
 * records at _PORT._tcp.HOST, all at once, and decides:
 *
 *   DANE_NONE          the usual opportunistic TLS: the host's addresses
 *                      are not secure (RFC 7672 2.2.2: then its TLSA records
 *                      are not used), or there are no TLSA records, or they
 *                      are not secure;
 *   DANE_ENCRYPT       secure TLSA records, none usable (RFC 7672 2.2:
 *                      the host does TLS, nothing authenticates it):
 *                      STARTTLS required, the certificate not checked;
 *   DANE_AUTHENTICATE  usable ones: STARTTLS required and the certificate
 *                      authenticated by them, never plain text;
 *   DANE_DEFER         a DNSSEC validation failed (bogus), or the TLSA
 *                      lookup failed otherwise: not this host now (a
 *                      temporary failure; the next MX host may do).
 *
 * Usable (RFC 7672 3.1.3): DANE-TA (2) and DANE-EE (3) with a selector of
 * 0 or 1 and a matching type of 0 (any length), 1 (32 bytes) or 2 (64); the
 * PKIX usages (0, 1) are not for SMTP. A failed address lookup that is not
 * bogus does not count against the host (the connector tries what did
 * answer); at least one of A and AAAA must have answered securely.
 *
 * Owns: a lookup's three resolver lookups until its callback; a policy's
 * copies of the usable records until dane_policy_clear.
 * Must never: call the callback from inside dane_lookup_start, or after
 * dane_lookup_cancel; treat a bogus or failed TLSA answer as "no TLSA".
 */
#ifndef POPGATE_SMTP_DANE_H
#define POPGATE_SMTP_DANE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/resolver.h"

enum dane_state {
	DANE_NONE,
	DANE_ENCRYPT,
	DANE_AUTHENTICATE,
	DANE_DEFER,
};

/* The DANE policy for one MX host. */
struct dane_policy {
	enum dane_state state;
	struct resolver_tlsa *records; /* AUTHENTICATE: the usable records, copied */
	size_t count;
	char reason[300]; /* why this state, for the log and (DEFER) the queue */
};

/* One answer as the decision needs it. */
struct dane_answer {
	enum resolver_status status;
	bool secure;
	bool bogus;
	const struct resolver_tlsa *records; /* TLSA: its records */
	size_t count;
};

struct dane_lookup;

/* The lookup ended: POLICY is the callee's, to keep by a struct copy (its
 * records move with it) and to end with dane_policy_clear. The lookup's
 * handle is gone once this is called. */
typedef void dane_cb(struct dane_policy *policy, void *ctx);

/* Looks up HOST's addresses and its TLSA records for PORT, and calls
 * CALLBACK with the policy, later, from the loop, once. */
struct dane_lookup *dane_lookup_start(struct resolver *resolver, const char *host, int port,
				      dane_cb *callback, void *ctx);

/* Stops *LOOKUP_P (NULL is fine; its callback will not run) and sets it to
 * NULL. Not for a lookup whose callback has run. */
void dane_lookup_cancel(struct dane_lookup **lookup_p);

/* The decision from the answers for HOST's A, AAAA and TLSA (at _PORT._tcp)
 * records, into POLICY (cleared first by the caller, or zeroed). Pure. */
void dane_decide(const struct dane_answer *a, const struct dane_answer *aaaa,
		 const struct dane_answer *tlsa, const char *host, int port,
		 struct dane_policy *policy);

/* Whether RECORD can authenticate an SMTP server (RFC 7672 3.1.3). */
bool dane_tlsa_usable(const struct resolver_tlsa *record);

/* Frees POLICY's records and zeroes it (DANE_NONE). */
void dane_policy_clear(struct dane_policy *policy);

/* A word for STATE, for log lines: "none", "encrypt", "authenticate", "defer". */
const char *dane_state_name(enum dane_state state);

#endif
