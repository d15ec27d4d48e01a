/*
 * mta_sts_fetch.h — finds a recipient domain's MTA-STS policy (RFC 8461)
 * for the relay, in the event loop, never blocking it.
 *
 * A lookup: the TXT record "_mta-sts.DOMAIN" (3.1, exactly one valid
 * "v=STSv1" record); the policy cached in the store (store/mta_sts.h), used
 * as it is while unexpired and its id is still the one the record names;
 * else the policy fetched by HTTPS GET from
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt (3.3) through
 * core/connector (the address policy, the certificate verified against
 * the host name, [relay] ca_file or the system store), as HTTP/1.0, no
 * redirect followed, at most MTA_STS_POLICY_MAX bytes, text/plain, within
 * MTA_STS_FETCH_SECONDS. A fetched policy is written to the cache through
 * the writer thread. A fetch that fails, a record that went away or
 * cannot be looked up: the cached policy while it is unexpired (5.1), else
 * none (delivery goes on as without MTA-STS).
 *
 * Owns: each lookup until its callback runs or it is cancelled, and its
 * connection. Must never: call the callback from inside
 * mta_sts_lookup_start or after mta_sts_lookup_cancel; write to the store
 * on the loop.
 */
#ifndef POPGATE_SMTP_MTA_STS_FETCH_H
#define POPGATE_SMTP_MTA_STS_FETCH_H

#include <stdbool.h>

#include <event2/event.h>

#include "smtp/mta_sts.h"

struct connector;
struct resolver;
struct store;
struct writer;
struct mta_sts_lookup;

/* The whole fetch (connect, TLS, request, response) at most. */
#define MTA_STS_FETCH_SECONDS 60

/* What a lookup uses; the pointers must outlive it, the strings are read
 * only by mta_sts_lookup_start. */
struct mta_sts_env {
	struct event_base *base;
	struct resolver *resolver;
	struct connector *connector;
	struct store *store; /* the loop's connection: read only */
	struct writer *writer;
	int port;	     /* of mta-sts.DOMAIN: 443 ([relay] mta_sts_port for tests) */
	const char *ca_file; /* NULL: the system's CA store */
	bool allow_private;  /* the address policy for mta-sts.DOMAIN */
	int connect_timeout; /* seconds per address */
};

/*
 * The lookup of DOMAIN ended: POLICY is its policy (the caller's now: free
 * it with mta_sts_policy_free), or NULL when it has none to apply.
 */
typedef void mta_sts_lookup_cb(struct mta_sts_policy *policy, void *ctx);

/* Starts the lookup of DOMAIN; CALLBACK follows once, later, from the
 * loop. A DOMAIN that is no host name (an address literal) has no policy. */
struct mta_sts_lookup *mta_sts_lookup_start(const struct mta_sts_env *env, const char *domain,
					    mta_sts_lookup_cb *callback, void *ctx);

/* Stops *LOOKUP (NULL is fine; its callback will not run) and sets it to
 * NULL. Not for a lookup whose callback has run. */
void mta_sts_lookup_cancel(struct mta_sts_lookup **lookup);

/* mta_sts_policy_clear, then frees POLICY; NULL is fine. */
void mta_sts_policy_free(struct mta_sts_policy *policy);

#endif
