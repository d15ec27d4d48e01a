/*
 * auth_cache.h — the POP3 login cache: a repeated login with the password
 * that last succeeded for an account is recognised by a keyed BLAKE2b digest
 * kept in memory (never the password), so a client that polls every minute
 * costs one hash, not one argon2id run (pop3/auth.c).
 */
#ifndef POPGATE_POP3_AUTH_CACHE_H
#define POPGATE_POP3_AUTH_CACHE_H

#include <stdbool.h>

struct auth_cache;

struct auth_cache *auth_cache_new(void);

/* Frees CACHE, wiping every digest; NULL is fine. */
void auth_cache_free(struct auth_cache **cache);

/* Remembers that NAME logged in with PASSWORD, for AUTH_CACHE_SECONDS. */
void auth_cache_store(struct auth_cache *cache, const char *name, const char *password);

/* True when NAME's last success, still fresh, was with PASSWORD. */
bool auth_cache_match(struct auth_cache *cache, const char *name, const char *password);

/* NAME's remembered success no longer counts (its password was refused). */
void auth_cache_forget(struct auth_cache *cache, const char *name);

/* Drops entries that have expired (a timer calls this through auth_expire,
 * so the table stays bounded by recent activity). */
void auth_cache_expire(struct auth_cache *cache);

#endif
