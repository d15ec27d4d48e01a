/*
 * mta_sts.h — the MTA-STS policy cache (the mta_sts_policy table): per
 * recipient domain, the policy last fetched (RFC 8461 5.1), the id its TXT
 * record named then, and until when it may be used.
 *
 * The relay reads it on the loop's connection (store_mta_sts_get); a
 * fetched policy is written by the writer thread (store_mta_sts_put in a
 * writer job); popgatectl lists it.
 */
#ifndef POPGATE_STORE_MTA_STS_H
#define POPGATE_STORE_MTA_STS_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

struct store_mta_sts {
	char *domain; /* lowercase */
	char *policy_id;
	char *policy; /* the body as fetched */
	char *mode;   /* "enforce", "testing", "none": for the listing */
	int64_t fetched_at;
	int64_t expires_at;
};

/* Frees what ENTRY holds and zeroes it. */
void store_mta_sts_clear(struct store_mta_sts *entry);

/* The cached policy of DOMAIN (lowercase) into *ENTRY (zeroed first).
 * 1 found, 0 none, -1 error (logged). */
int store_mta_sts_get(struct store *store, const char *domain, struct store_mta_sts *entry);

/* Stores ENTRY in place of DOMAIN's cached policy. 0 or -1 (logged). */
int store_mta_sts_put(struct store *store, const struct store_mta_sts *entry);

/* Every cached policy, by domain: *ENTRIES_R (allocated; free with
 * store_mta_sts_list_free) and *COUNT_R. 0 or -1. */
int store_mta_sts_list(struct store *store, struct store_mta_sts **entries_r, size_t *count_r);
void store_mta_sts_list_free(struct store_mta_sts **entries, size_t count);

#endif
