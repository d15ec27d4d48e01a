/*
 * senders.c — the senders filter (see filters/senders.h): matching a sender
 * address against the allow and block lists, in the main process.
 *
 * Owns: nothing. Must never: trust the sender address beyond comparing it
 * (a worker found it in a hostile message), or put it into a reason (the
 * matching pattern, which the administrator typed and the store checked,
 * says enough).
 */
#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/filter.h"
#include "filters/senders.h"

/* How specific PATTERN is: 3 an address, 2 a domain, 1 a wildcard pattern. */
static int senders_rank(const char *pattern)
{
	if (strchr(pattern, '*') != NULL)
		return 1;
	return strchr(pattern, '@') != NULL ? 3 : 2;
}

/* Whether PATTERN names ADDRESS (lowercased), whose domain is DOMAIN. */
static bool senders_pattern_matches(const char *pattern, const char *address, const char *domain)
{
	bool has_at = strchr(pattern, '@') != NULL;

	if (strchr(pattern, '*') != NULL)
		return fnmatch(pattern, has_at ? address : domain, 0) == 0;
	return strcmp(pattern, has_at ? address : domain) == 0;
}

const struct sender_list_entry *senders_match(const struct sender_list_entry *entries, size_t count,
					      int64_t owner_id, const char *sender)
{
	const struct sender_list_entry *best = NULL;
	int best_key = 0;
	char *address;
	const char *at;

	if (sender == NULL || (at = strrchr(sender, '@')) == NULL)
		return NULL;
	address = xstrdup(sender);
	for (char *p = address; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	at = address + (at - sender);
	for (size_t i = 0; i < count; i++) {
		const struct sender_list_entry *entry = &entries[i];
		int key;

		if (entry->user_id != 0 && entry->user_id != owner_id)
			continue;
		if (!senders_pattern_matches(entry->pattern, address, at + 1))
			continue;
		/* Owner first, then rank, then block before allow. */
		key = (entry->user_id != 0 ? 100 : 0) + senders_rank(entry->pattern) * 10 +
		      (entry->kind == SENDER_LIST_BLOCK ? 1 : 0);
		if (key > best_key) {
			best_key = key;
			best = entry;
		}
	}
	free(address);
	return best;
}

int senders_judge(struct store *store, int64_t owner_id, const char *sender,
		  struct pipeline_result *result)
{
	struct sender_list_entry *entries = NULL;
	const struct sender_list_entry *match;
	size_t count = 0;

	result->status = PIPELINE_RESULT_OK;
	result->score = 0;
	if (sender == NULL) {
		result->reason = xstrdup("no sender address");
		return 0;
	}
	if (store_sender_list_for_user(store, owner_id, &entries, &count) < 0) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xstrdup("cannot read the sender lists");
		return -1;
	}
	match = senders_match(entries, count, owner_id, sender);
	if (match != NULL) {
		bool block = match->kind == SENDER_LIST_BLOCK;

		result->score = block ? SENDERS_BLOCK_SCORE : SENDERS_ALLOW_SCORE;
		result->reason =
		    xasprintf("sender %s by the %s list entry %s", block ? "blocked" : "allowed",
			      match->user_id != 0 ? "user's" : "global", match->pattern);
	}
	store_sender_list_free(&entries, count);
	return 0;
}

/* In the table so profiles can name it; the main process judges it. */
const struct filter filter_senders = {
    .name = SENDERS_FILTER_NAME,
    .init = NULL,
    .run = NULL,
};
