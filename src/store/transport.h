/*
 * transport.h — transport rules: which relay host outbound mail goes
 * through instead of the recipient domain's MX, tried in the order of their
 * positions, the first that matches winning.
 *
 * A rule matches on the recipient's domain or on the envelope sender:
 *   domain  "example.com"    that domain only
 *           "*.example.com"  its subdomains, NOT example.com itself (as the
 *                            [provider *.x] patterns; add a second rule for
 *                            the apex)
 *           "*"              every recipient
 *   sender  "a@example.com"  that address
 *           "@example.com"   any address of that domain
 *           "*@*.example.com" any address of its subdomains
 * All case-insensitive.
 *
 * AUTH secrets: popgatectl must never hold the credential key (cli/ctl.h),
 * yet it takes the relay host's password. So the daemon derives an X25519
 * key pair from the credential key and publishes the public half in the
 * store (setting TRANSPORT_PUBLIC_KEY_SETTING); popgatectl seals the
 * password to it (libsodium sealed box) and only the daemon, holding the
 * credential key, can open it.
 */
#ifndef POPGATE_STORE_TRANSPORT_H
#define POPGATE_STORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/crypto.h"
#include "store/db.h"

#define TRANSPORT_PUBLIC_KEY_SETTING "transport_public_key"

enum transport_match { TRANSPORT_MATCH_DOMAIN, TRANSPORT_MATCH_SENDER };

enum transport_tls {
	TRANSPORT_TLS_NONE,
	TRANSPORT_TLS_OPPORTUNISTIC,
	TRANSPORT_TLS_REQUIRED,
	TRANSPORT_TLS_VERIFIED,
	TRANSPORT_TLS_COUNT
};

struct store_transport_rule {
	int64_t id;
	int64_t position;
	enum transport_match match;
	char *pattern;
	char *host;
	int port;
	enum transport_tls tls;
	char *auth_user;	    /* NULL: no AUTH */
	unsigned char *auth_secret; /* sealed (see above); NULL without AUTH */
	size_t auth_secret_len;
	int64_t created_at;
};

/* "domain"/"sender"; "none", "opportunistic", …; and back (-1 if unknown). */
const char *transport_match_name(enum transport_match match);
int transport_match_parse(const char *name);
const char *transport_tls_name(enum transport_tls tls);
int transport_tls_parse(const char *name);

/* NULL when PATTERN is valid for MATCH, else why not. */
const char *transport_pattern_refusal(enum transport_match match, const char *pattern);

/* True when RULE matches a message from SENDER ("" for <>) to RECIPIENT. */
bool transport_rule_matches(const struct store_transport_rule *rule, const char *sender,
			    const char *recipient);

/* The first of RULES (in position order) that matches, or NULL. */
const struct store_transport_rule *transport_rule_find(const struct store_transport_rule *rules,
						       size_t count, const char *sender,
						       const char *recipient);

/*
 * Adds RULE (its id and created_at are set here). A position of 0 puts it
 * last; a position taken moves that rule and those after it one down. 0 or
 * -1 (logged).
 */
int store_transport_add(struct store *store, struct store_transport_rule *rule);

/* Deletes rule ID. 1 deleted, 0 none, -1 error. */
int store_transport_del(struct store *store, int64_t id);

/* Every rule in position order: *LIST_R (store_transport_list_free), *COUNT_R. 0/-1. */
int store_transport_list(struct store *store, struct store_transport_rule **list_r,
			 size_t *count_r);
void store_transport_list_free(struct store_transport_rule **list, size_t count);

/* Publishes the public key derived from KEY (the daemon, at start). 0/-1. */
int store_transport_publish_key(struct store *store, const struct crypto_key *key);

/*
 * Seals SECRET to the public key published in STORE (popgatectl): *BLOB_R
 * (allocated) and *LEN_R. 0, or -1 when no key is published (the daemon of
 * this version never started) or on error.
 */
int store_transport_seal(struct store *store, const char *secret, unsigned char **blob_r,
			 size_t *len_r);

/* Opens a sealed BLOB with the pair derived from KEY into *SECRET_R (free
 * with crypto_password_free). 0 or -1. */
int transport_secret_open(const struct crypto_key *key, const unsigned char *blob, size_t len,
			  char **secret_r);

#endif
