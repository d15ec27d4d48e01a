/*
 * profile.h — filter profiles (issue 10): named sets of filters, each on or
 * off with a weight, thresholds and actions, stored in the filter_profile
 * tables; which profile each user has; and the snapshot a job carries
 * (struct filter_profile, filters/filter.h).
 *
 * 'default' exists from the start (migration 11) and serves every user
 * without a profile of its own; it cannot be deleted. A profile runs the
 * filters it has switched on, in the order they were first named in it.
 *
 * The functions that change something check the whole result first (the
 * pure store_profile_apply and store_profile_check) and write it in one
 * transaction; a refusal writes nothing and puts a sentence for the
 * administrator into ERR. 0 done, -1 refused or failed (ERR set in both).
 */
#ifndef POPGATE_STORE_PROFILE_H
#define POPGATE_STORE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "store/db.h"

#define STORE_PROFILE_NAME_MAX 64
#define STORE_PROFILE_DEFAULT "default"
/* Weights are 0 (the filter runs for its headers and reasons only) to this. */
#define STORE_PROFILE_WEIGHT_MAX 100.0
/* Thresholds are within this, either sign. */
#define STORE_PROFILE_THRESHOLD_MAX 1000.0

struct store_profile_filter {
	char name[FILTER_NAME_MAX + 1];
	bool enabled;
	double weight;
};

struct store_profile {
	char name[STORE_PROFILE_NAME_MAX + 1];
	/* Every filter the profile names, on or off, in running order. */
	struct store_profile_filter filters[FILTER_PROFILE_MAX];
	size_t filter_count;
	double tag_at;
	double quarantine_at;
	bool hold;
	bool challenge;
	int64_t user_count; /* users that have it (for 'default': those without one) */
};

/* True if NAME is 1..STORE_PROFILE_NAME_MAX of [A-Za-z0-9._-]. */
bool store_profile_name_valid(const char *name);

/*
 * Changes KEY to VALUE in PROFILE (in memory), checking the value alone:
 *   tag_at N, quarantine_at N     a number within STORE_PROFILE_THRESHOLD_MAX
 *   hold yes|no, challenge yes|no
 *   FILTER on|off                 a filter of the table (filters/filter.c)
 *   FILTER.weight N               0 to STORE_PROFILE_WEIGHT_MAX (names FILTER
 *                                 in the profile, switched off, if it was not)
 * Numbers are kept to thousandths of a point, the precision jobs carry.
 * 0, or -1 with ERR.
 */
int store_profile_apply(struct store_profile *profile, const char *key, const char *value,
			char *err, size_t errlen);

/* Checks what only the whole profile shows: tag_at not above quarantine_at,
 * and the filters the gateway needs (trace, address) on. 0, or -1 with ERR. */
int store_profile_check(const struct store_profile *profile, char *err, size_t errlen);

/* Fills *OUT with the job snapshot of PROFILE: its filters that are on. */
void store_profile_snapshot(const struct store_profile *profile, struct filter_profile *out);

/* Profile NAME (compared without case) into *PROFILE. 1 found, 0 not, -1 error. */
int store_profile_get(struct store *store, const char *name, struct store_profile *profile);

/* Every profile by name: *LIST_R (allocated; free()) and *COUNT_R. 0 or -1. */
int store_profile_list(struct store *store, struct store_profile **list_r, size_t *count_r);

/* Creates profile NAME as a copy of 'default'. Refused for an invalid name
 * or one in use. */
int store_profile_add(struct store *store, const char *name, char *err, size_t errlen);

/* Applies the COUNT pairs KEYS[i] VALUES[i] to profile NAME, all or none. */
int store_profile_set(struct store *store, const char *name, const char *const *keys,
		      const char *const *values, size_t count, char *err, size_t errlen);

/* Deletes profile NAME. Refused for 'default' and for a profile users have. */
int store_profile_delete(struct store *store, const char *name, char *err, size_t errlen);

/* Gives user USER the profile PROFILE ('default': none of its own). */
int store_profile_assign(struct store *store, const char *user, const char *profile, char *err,
			 size_t errlen);

/* The name of user USER_ID's profile into NAME (STORE_PROFILE_NAME_MAX + 1
 * bytes): its own, or 'default'. 0 or -1. */
int store_profile_of_user(struct store *store, int64_t user_id, char *name);

/*
 * The job snapshot for user USER_ID (0: none, 'default') into *OUT. 0; -1
 * (logged) when it cannot be read, with *OUT the built-in profile
 * (filter_profile_default), so a message is never stuck for want of one.
 */
int store_profile_for_user(struct store *store, int64_t user_id, struct filter_profile *out);

#endif
