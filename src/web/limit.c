/*
 * limit.c — fixed-size tables of token buckets and counters for the sender
 * page (web/limit.h).
 *
 * Owns: its slots and its hash key. Must never: grow, or let a key longer
 * than WEB_LIMIT_KEY_MAX in.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/util.h"
#include "web/limit.h"

struct web_limit_slot {
	uint8_t key[WEB_LIMIT_KEY_MAX];
	uint8_t key_len; /* 0: free */
	int64_t used_ms; /* the last use, for eviction */
	double tokens;	 /* the bucket */
	int64_t refilled_ms;
	unsigned count;
};

struct web_limit {
	struct web_limit_slot *slots;
	size_t mask;
	unsigned char hash_key[crypto_shorthash_KEYBYTES];
};

struct web_limit *web_limit_new(size_t slots)
{
	struct web_limit *limit = xcalloc(1, sizeof(*limit));
	size_t size = 16;

	while (size < slots)
		size *= 2;
	limit->slots = xcalloc(size, sizeof(*limit->slots));
	limit->mask = size - 1;
	crypto_shorthash_keygen(limit->hash_key);
	return limit;
}

void web_limit_free(struct web_limit **limit)
{
	if (*limit == NULL)
		return;
	free((*limit)->slots);
	free(*limit);
	*limit = NULL;
}

/* KEY's slot; with CREATE a new one (the free or least recently used of its
 * window), else NULL when KEY is not there. */
static struct web_limit_slot *web_limit_find(struct web_limit *limit, const void *key, size_t len,
					     bool create)
{
	unsigned char hash[crypto_shorthash_BYTES];
	uint64_t start = 0;
	struct web_limit_slot *victim = NULL;

	if (len == 0 || len > WEB_LIMIT_KEY_MAX)
		return NULL;
	crypto_shorthash(hash, key, len, limit->hash_key);
	memcpy(&start, hash, sizeof(start));
	for (size_t i = 0; i < WEB_LIMIT_PROBE; i++) {
		struct web_limit_slot *slot = &limit->slots[(start + i) & limit->mask];

		if (slot->key_len == len && len > 0 && memcmp(slot->key, key, len) == 0)
			return slot;
		if (victim == NULL || slot->key_len == 0 ||
		    (victim->key_len != 0 && slot->used_ms < victim->used_ms))
			victim = slot;
	}
	if (!create)
		return NULL;
	memset(victim, 0, sizeof(*victim));
	memcpy(victim->key, key, len);
	victim->key_len = (uint8_t)len;
	victim->refilled_ms = -1;
	return victim;
}

bool web_limit_take(struct web_limit *limit, const void *key, size_t len, int64_t now_ms,
		    unsigned per_minute)
{
	struct web_limit_slot *slot = web_limit_find(limit, key, len, true);

	if (slot == NULL)
		return false;
	if (slot->refilled_ms < 0) {
		slot->tokens = per_minute;
	} else if (now_ms > slot->refilled_ms) {
		slot->tokens += (double)(now_ms - slot->refilled_ms) * per_minute / 60000.0;
		if (slot->tokens > per_minute)
			slot->tokens = per_minute;
	}
	slot->refilled_ms = now_ms;
	slot->used_ms = now_ms;
	if (slot->tokens < 1.0)
		return false;
	slot->tokens -= 1.0;
	return true;
}

unsigned web_limit_count(struct web_limit *limit, const void *key, size_t len)
{
	struct web_limit_slot *slot = web_limit_find(limit, key, len, false);

	return slot != NULL ? slot->count : 0;
}

unsigned web_limit_count_add(struct web_limit *limit, const void *key, size_t len, int64_t now_ms)
{
	struct web_limit_slot *slot = web_limit_find(limit, key, len, true);

	if (slot == NULL)
		return 0;
	slot->used_ms = now_ms;
	if (slot->count < UINT32_MAX)
		slot->count++;
	return slot->count;
}
