/*
 * dns.c — a filter's DNS question, checked and timed: the name's syntax,
 * the answerer's cache, the message's budget, then the answerer
 * (filters/dns.h).
 *
 * Owns: the arithmetic of the budget and the answerer's cache. Must never: send a name it
 * has not checked, or wait past the budget.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "filters/dns.h"
#include "filters/filter.h"

struct filter_dns_cache_slot {
	bool used;
	enum filter_dns_type type;
	int64_t expires_ms;
	char name[FILTER_DNS_NAME_MAX + 1];
	struct filter_dns_answer answer;
};

struct filter_dns_cache {
	struct filter_dns_cache_slot slots[FILTER_DNS_CACHE_SLOTS];
};

struct filter_dns_cache *filter_dns_cache_new(void)
{
	return xcalloc(1, sizeof(struct filter_dns_cache));
}

void filter_dns_cache_free(struct filter_dns_cache **cache)
{
	if (*cache == NULL)
		return;
	for (size_t i = 0; i < FILTER_DNS_CACHE_SLOTS; i++)
		filter_dns_answer_clear(&(*cache)->slots[i].answer);
	xfree(cache);
}

/* The slot of NAME and TYPE (FNV-1a over the name, case aside). */
static struct filter_dns_cache_slot *filter_dns_cache_slot(struct filter_dns_cache *cache,
							    const char *name,
							    enum filter_dns_type type)
{
	uint64_t hash = 14695981039346656037ULL ^ (uint64_t)type;

	for (const char *p = name; *p != '\0'; p++) {
		hash ^= (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + ('a' - 'A') : *p);
		hash *= 1099511628211ULL;
	}
	return &cache->slots[hash % FILTER_DNS_CACHE_SLOTS];
}

/* Copies the answer of SOURCE into ANSWER (records duplicated). */
static void filter_dns_answer_copy(const struct filter_dns_answer *source,
				   struct filter_dns_answer *answer)
{
	answer->status = source->status;
	answer->count = source->count;
	for (size_t i = 0; i < source->count; i++)
		answer->records[i] = xstrdup(source->records[i]);
}

/* True, with ANSWER filled, when the cache holds a fresh answer. */
static bool filter_dns_cache_get(struct filter_dns_cache *cache, const char *name,
				 enum filter_dns_type type, struct filter_dns_answer *answer)
{
	struct filter_dns_cache_slot *slot;

	if (cache == NULL)
		return false;
	slot = filter_dns_cache_slot(cache, name, type);
	if (!slot->used || slot->type != type || strcasecmp(slot->name, name) != 0 ||
	    slot->expires_ms <= util_monotonic_ms())
		return false;
	filter_dns_answer_copy(&slot->answer, answer);
	return true;
}

/* Keeps ANSWER (an answer, not a failure) for NAME and TYPE. */
static void filter_dns_cache_put(struct filter_dns_cache *cache, const char *name,
				 enum filter_dns_type type, const struct filter_dns_answer *answer)
{
	struct filter_dns_cache_slot *slot;

	if (cache == NULL ||
	    (answer->status != FILTER_DNS_OK && answer->status != FILTER_DNS_NOT_FOUND))
		return;
	slot = filter_dns_cache_slot(cache, name, type);
	filter_dns_answer_clear(&slot->answer);
	slot->used = true;
	slot->type = type;
	slot->expires_ms = util_monotonic_ms() + FILTER_DNS_CACHE_MS;
	/* NAME passed filter_dns_name_valid: at most FILTER_DNS_NAME_MAX. */
	memcpy(slot->name, name, strlen(name) + 1);
	filter_dns_answer_copy(answer, &slot->answer);
}

void filter_dns_begin(struct filter_dns *dns, int64_t budget_ms)
{
	if (dns != NULL)
		dns->budget_ms = budget_ms;
}

int filter_dns_name_valid(const char *name)
{
	size_t len = strlen(name);
	size_t label = 0;

	if (len == 0 || len > FILTER_DNS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

void filter_dns_query(const struct filter_message *message, const char *name,
		      enum filter_dns_type type, struct filter_dns_answer *answer)
{
	struct filter_dns *dns = message->dns;
	char bare[FILTER_DNS_NAME_MAX + 2];
	size_t len = strlen(name);
	int64_t started;
	int64_t spent;

	memset(answer, 0, sizeof(*answer));
	answer->status = FILTER_DNS_FAILED;
	if (len > 0 && len <= FILTER_DNS_NAME_MAX + 1 && name[len - 1] == '.')
		len--;
	if (len > FILTER_DNS_NAME_MAX)
		return;
	memcpy(bare, name, len);
	bare[len] = '\0';
	if (!filter_dns_name_valid(bare) || dns == NULL || dns->query == NULL)
		return;
	if (filter_dns_cache_get(dns->cache, bare, type, answer))
		return;
	if (dns->budget_ms <= 0) {
		answer->status = FILTER_DNS_TIMEOUT;
		return;
	}
	started = util_monotonic_ms();
	dns->query(dns, bare, type, (int)dns->budget_ms, answer);
	spent = util_monotonic_ms() - started;
	dns->budget_ms -= spent > 0 ? spent : 0;
	if (answer->status != FILTER_DNS_OK) {
		/* Only an answer carries records. */
		for (size_t i = 0; i < answer->count; i++)
			xfree(&answer->records[i]);
		answer->count = 0;
	}
	filter_dns_cache_put(dns->cache, bare, type, answer);
}

void filter_dns_answer_clear(struct filter_dns_answer *answer)
{
	for (size_t i = 0; i < answer->count && i < FILTER_DNS_RECORDS_MAX; i++)
		free(answer->records[i]);
	memset(answer, 0, sizeof(*answer));
}
