/*
 * senders.h — the senders filter: the sender allow and block lists
 * (store/sender_list.h). It needs the store, so the main process judges it
 * (its table row has no run): over the sender address the worker's address
 * filter found in the message (hostile, so only compared).
 *
 *   The owner's own entries come before the global ones; within each, an
 *   address beats a domain, a domain a wildcard pattern, and at the same
 *   rank a block entry beats an allow entry. The first entry so found
 *   decides: block scores SENDERS_BLOCK_SCORE, allow SENDERS_ALLOW_SCORE;
 *   no entry (or no sender) scores 0.
 *
 * Note that the From address is the author's claim: an allow entry lets a
 * spammer who forges it through; prefer block entries and domains that sign
 * their mail.
 */
#ifndef POPGATE_FILTERS_SENDERS_H
#define POPGATE_FILTERS_SENDERS_H

#include <stddef.h>
#include <stdint.h>

#include "pipeline/pipeline.h"
#include "store/sender_list.h"

#define SENDERS_FILTER_NAME "senders"
#define SENDERS_BLOCK_SCORE 100.0
#define SENDERS_ALLOW_SCORE -100.0

/* The entry of ENTRIES (COUNT) that decides for SENDER (see above), or NULL.
 * OWNER_ID: whose own entries come first. */
const struct sender_list_entry *senders_match(const struct sender_list_entry *entries, size_t count,
					      int64_t owner_id, const char *sender);

/*
 * Fills RESULT (its name set already) for SENDER (NULL: none found) of mail
 * owned by user OWNER_ID (0: none) from the lists in STORE. 0, or -1 when
 * the lists cannot be read (RESULT failed, with a reason).
 */
struct store;
int senders_judge(struct store *store, int64_t owner_id, const char *sender,
		  struct pipeline_result *result);

#endif
