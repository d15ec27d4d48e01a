/*
 * dkim.h — the DKIM signing keys of the domains popgate signs outbound mail
 * for (the dkim_key table): one key per domain, with its selector and
 * algorithm.
 *
 * The private key (PEM text) is stored only sealed with the credential key
 * (crypto_secret_seal), exactly as provider passwords are; store_dkim_get is
 * the one way to read it back, into memory its caller wipes. The listing
 * never carries it.
 */
#ifndef POPGATE_STORE_DKIM_H
#define POPGATE_STORE_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/crypto.h"
#include "store/db.h"

enum store_dkim_algorithm {
	STORE_DKIM_RSA,	    /* rsa-sha256, RSA-2048: what every receiver verifies */
	STORE_DKIM_ED25519, /* ed25519-sha256 (RFC 8463) */
};

/* Longest domain (RFC 1035) and selector popgate accepts. */
#define STORE_DKIM_DOMAIN_MAX 253
#define STORE_DKIM_SELECTOR_MAX 63

struct store_dkim_key {
	char *domain;	/* lowercase, no trailing dot */
	char *selector; /* lowercase */
	enum store_dkim_algorithm algorithm;
	int64_t created_at;
	char *private_key; /* PEM; only store_dkim_get fills it, else NULL */
};

/* "rsa" or "ed25519", as the table and the DNS record (k=) spell it. */
const char *store_dkim_algorithm_name(enum store_dkim_algorithm algorithm);

/* The algorithm called NAME (without case). 0, or -1 for an unknown one. */
int store_dkim_algorithm_parse(const char *name, enum store_dkim_algorithm *algorithm_r);

/* True if NAME is a domain name popgate can sign for: dot-separated labels of
 * letters, digits and '-' (not at a label's ends), at most 63 characters
 * each and STORE_DKIM_DOMAIN_MAX in all, with at least one dot. */
bool store_dkim_domain_valid(const char *name);

/* True if NAME is a selector: one or more such labels, at most
 * STORE_DKIM_SELECTOR_MAX characters in all. */
bool store_dkim_selector_valid(const char *name);

/* Wipes the private key and frees what KEY holds; zeroes it. */
void store_dkim_key_clear(struct store_dkim_key *key);

/*
 * Stores KEY (domain, selector, algorithm and private_key; created_at is set
 * to now) with its private key sealed under CREDENTIAL. An existing key of
 * the domain is replaced only if REPLACE. The domain and selector must be
 * valid and lowercase. 1 stored in place of an older key, 0 stored new,
 * -2 refused (the domain has a key and REPLACE is false), -1 error (logged).
 */
int store_dkim_put(struct store *store, const struct crypto_key *credential,
		   const struct store_dkim_key *key, bool replace);

/*
 * The key of DOMAIN (compared without case) into *KEY, with its private key
 * opened (clear KEY with store_dkim_key_clear, which wipes it). 1 found,
 * 0 none, -1 error (logged; also when the sealed key does not open under
 * CREDENTIAL). *KEY is zeroed first.
 */
int store_dkim_get(struct store *store, const struct crypto_key *credential, const char *domain,
		   struct store_dkim_key *key);

/* Every key, by domain, without private keys: *KEYS_R (allocated; free with
 * store_dkim_list_free) and *COUNT_R. 0 or -1. */
int store_dkim_list(struct store *store, struct store_dkim_key **keys_r, size_t *count_r);

/* Frees a list from store_dkim_list and sets *KEYS to NULL; NULL is fine. */
void store_dkim_list_free(struct store_dkim_key **keys, size_t count);

/* Deletes the key of DOMAIN (compared without case). 1 deleted, 0 none, -1. */
int store_dkim_delete(struct store *store, const char *domain);

#endif
