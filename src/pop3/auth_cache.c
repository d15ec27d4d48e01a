/*
 * auth_cache.c — the POP3 login cache (see pop3/auth_cache.h): a hash table
 * of account names, each with the keyed digest of its last successful login
 * and when that stops counting.
 *
 * Owns: its entries. Must never: hold a password, or keep a digest in freed
 * memory (entries are wiped before they are freed).
 * SECURITY: the names come from clients; the table's buckets are spread by
 * FNV-1a, which is fine because an entry exists only after a login that
 * succeeded.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/crypto.h"
#include "core/util.h"
#include "pop3/auth_cache.h"

#define AUTH_CACHE_BUCKETS 1024
/* A remembered successful login is trusted this long without argon2id. */
#define AUTH_CACHE_SECONDS 3600

/* One entry of the login cache. */
struct auth_entry {
	char *key;
	unsigned char digest[32]; /* crypto_login_digest of the last success */
	int64_t cached_until;
	struct auth_entry *next;
};

struct auth_cache {
	struct auth_entry *buckets[AUTH_CACHE_BUCKETS];
};

static unsigned auth_bucket(const char *key)
{
	/* FNV-1a: the keys are not secret and the buckets only spread load. */
	uint32_t hash = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		hash = (hash ^ *p) * 16777619u;
	return hash % AUTH_CACHE_BUCKETS;
}

static struct auth_entry *auth_cache_get(struct auth_cache *cache, const char *key, bool create)
{
	unsigned bucket = auth_bucket(key);
	struct auth_entry *entry;

	for (entry = cache->buckets[bucket]; entry != NULL; entry = entry->next) {
		if (strcmp(entry->key, key) == 0)
			return entry;
	}
	if (!create)
		return NULL;
	entry = xcalloc(1, sizeof(*entry));
	entry->key = xstrdup(key);
	entry->next = cache->buckets[bucket];
	cache->buckets[bucket] = entry;
	return entry;
}

static void auth_entry_free(struct auth_entry *entry)
{
	sodium_memzero(entry->digest, sizeof(entry->digest));
	free(entry->key);
	free(entry);
}

static void auth_cache_clear(struct auth_cache *cache)
{
	for (size_t i = 0; i < AUTH_CACHE_BUCKETS; i++) {
		struct auth_entry *entry = cache->buckets[i], *next;
		for (; entry != NULL; entry = next) {
			next = entry->next;
			auth_entry_free(entry);
		}
		cache->buckets[i] = NULL;
	}
}

void auth_cache_store(struct auth_cache *cache, const char *name, const char *password)
{
	struct auth_entry *entry = auth_cache_get(cache, name, true);

	crypto_login_digest(entry->digest, name, password);
	entry->cached_until = util_now() + AUTH_CACHE_SECONDS;
}

bool auth_cache_match(struct auth_cache *cache, const char *name, const char *password)
{
	struct auth_entry *entry = auth_cache_get(cache, name, false);
	unsigned char digest[32];
	bool match;

	if (entry == NULL || entry->cached_until < util_now())
		return false;
	crypto_login_digest(digest, name, password);
	match = sodium_memcmp(digest, entry->digest, sizeof(digest)) == 0;
	sodium_memzero(digest, sizeof(digest));
	return match;
}

void auth_cache_forget(struct auth_cache *cache, const char *name)
{
	struct auth_entry *entry = auth_cache_get(cache, name, false);
	if (entry != NULL)
		entry->cached_until = 0;
}

void auth_cache_expire(struct auth_cache *cache)
{
	int64_t now = util_now();

	for (size_t i = 0; i < AUTH_CACHE_BUCKETS; i++) {
		struct auth_entry **link = &cache->buckets[i];

		while (*link != NULL) {
			struct auth_entry *entry = *link;

			if (entry->cached_until < now) {
				*link = entry->next;
				auth_entry_free(entry);
			} else {
				link = &entry->next;
			}
		}
	}
}

struct auth_cache *auth_cache_new(void)
{
	return xcalloc(1, sizeof(struct auth_cache));
}

void auth_cache_free(struct auth_cache **cache_p)
{
	if (*cache_p == NULL)
		return;
	auth_cache_clear(*cache_p);
	free(*cache_p);
	*cache_p = NULL;
}
