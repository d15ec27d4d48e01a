/*
 * limit.h — bounded in-memory tables for the sender page's rate limits:
 * a token bucket per client address (requests per minute, a burst of as
 * many) and a count of wrong codes per challenge.
 *
 * A table has a fixed number of slots, so no flood of new addresses grows
 * it: a key hashes (SipHash under a key random per table, so a client cannot
 * aim at one slot) to a window of WEB_LIMIT_PROBE slots, and a new key takes
 * the free or least recently used one of them. A key pushed out this way
 * starts afresh; with slots well above the clients at once that is rare.
 *
 * Owns: its slots. Must never: allocate after web_limit_new.
 */
#ifndef POPGATE_WEB_LIMIT_H
#define POPGATE_WEB_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WEB_LIMIT_KEY_MAX 16
#define WEB_LIMIT_PROBE 8

struct web_limit;

/* A table of SLOTS slots (rounded up to a power of two, at least 16). */
struct web_limit *web_limit_new(size_t slots);

/* Frees *LIMIT (NULL is fine) and sets it to NULL. */
void web_limit_free(struct web_limit **limit);

/*
 * Takes one request from KEY's bucket (LEN bytes, at most WEB_LIMIT_KEY_MAX)
 * at NOW_MS, refilled at PER_MINUTE requests a minute up to PER_MINUTE.
 * True when there was one, false when the client is over its rate.
 */
bool web_limit_take(struct web_limit *limit, const void *key, size_t len, int64_t now_ms,
		    unsigned per_minute);

/* KEY's count (0 when unknown). */
unsigned web_limit_count(struct web_limit *limit, const void *key, size_t len);

/* Adds one to KEY's count at NOW_MS; the new count. */
unsigned web_limit_count_add(struct web_limit *limit, const void *key, size_t len, int64_t now_ms);

#endif
