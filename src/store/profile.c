/*
 * profile.c — filter profiles (see store/profile.h): reading, checking and
 * writing the filter_profile and filter_profile_filter rows, a user's
 * choice of profile, and the snapshot a job carries.
 *
 * Owns: the rows of filter_profile and filter_profile_filter, and
 * user.profile. Must never: store a profile store_profile_check refuses,
 * or leave a job without a profile (the built-in one stands in).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/profile.h"
#include "store/user_internal.h"

/* The filters the gateway itself needs: the trace header, and the addresses
 * a message is attributed to its users by (U4, U5). */
static const char *const profile_required[] = {"trace", "address"};

bool store_profile_name_valid(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= STORE_PROFILE_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
		   len;
}

/* VALUE as a number within [LOW, HIGH], rounded to thousandths. 0 or -1. */
static int profile_number(const char *value, double low, double high, double *out)
{
	char *end;
	double number;

	if (*value == '\0')
		return -1;
	number = strtod(value, &end);
	if (*end != '\0' || !isfinite(number) || number < low || number > high)
		return -1;
	*out = round(number * 1000.0) / 1000.0;
	return 0;
}

/* VALUE as yes/no (or on/off, true/false, 1/0). 0 or -1. */
static int profile_bool(const char *value, bool *out)
{
	if (strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 || strcmp(value, "true") == 0 ||
	    strcmp(value, "1") == 0)
		*out = true;
	else if (strcmp(value, "no") == 0 || strcmp(value, "off") == 0 ||
		 strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/* "trace, address, …": the names of the table, for a refusal. */
static void profile_known_filters(char *out, size_t outlen)
{
	size_t used = 0;

	out[0] = '\0';
	for (size_t i = 0; filter_at(i) != NULL && used < outlen; i++) {
		int n = snprintf(out + used, outlen - used, "%s%s", i > 0 ? ", " : "",
				 filter_at(i)->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

/* PROFILE's setting of filter NAME, added (off, weight 1) if ADD and absent;
 * NULL if absent and not added, or no room (ERR set then). */
static struct store_profile_filter *profile_filter(struct store_profile *profile, const char *name,
						   bool add, char *err, size_t errlen)
{
	struct store_profile_filter *setting;

	for (size_t i = 0; i < profile->filter_count; i++)
		if (strcmp(profile->filters[i].name, name) == 0)
			return &profile->filters[i];
	if (!add)
		return NULL;
	if (profile->filter_count >= FILTER_PROFILE_MAX) {
		user_err(err, errlen, "a profile names at most %d filters", FILTER_PROFILE_MAX);
		return NULL;
	}
	setting = &profile->filters[profile->filter_count++];
	memset(setting, 0, sizeof(*setting));
	snprintf(setting->name, sizeof(setting->name), "%s", name);
	setting->weight = 1.0;
	return setting;
}

/* FILTER.weight N and FILTER on|off (KEY is not one of the profile's own keys). */
static int profile_apply_filter(struct store_profile *profile, const char *key, const char *value,
				char *err, size_t errlen)
{
	char name[FILTER_NAME_MAX + 1];
	char known[256];
	const char *dot = strchr(key, '.');
	size_t len = dot != NULL ? (size_t)(dot - key) : strlen(key);
	struct store_profile_filter *setting;
	bool on;
	double weight;

	if (dot != NULL && strcmp(dot, ".weight") != 0) {
		user_err(err, errlen, "unknown key '%s' (FILTER.weight is the only key with a dot)",
			 key);
		return -1;
	}
	if (len == 0 || len > FILTER_NAME_MAX) {
		user_err(err, errlen, "unknown key '%s'", key);
		return -1;
	}
	memcpy(name, key, len);
	name[len] = '\0';
	if (filter_find(name) == NULL) {
		profile_known_filters(known, sizeof(known));
		user_err(
		    err, errlen,
		    "unknown key or filter '%s' (keys: tag_at, quarantine_at, hold, challenge, "
		    "FILTER, FILTER.weight; filters: %s)",
		    name, known);
		return -1;
	}
	if (dot != NULL) {
		if (profile_number(value, 0.0, STORE_PROFILE_WEIGHT_MAX, &weight) < 0) {
			user_err(err, errlen,
				 "the weight of %s must be a number from 0 to %g, not '%s'", name,
				 STORE_PROFILE_WEIGHT_MAX, value);
			return -1;
		}
		setting = profile_filter(profile, name, true, err, errlen);
		if (setting == NULL)
			return -1;
		setting->weight = weight;
		return 0;
	}
	if (profile_bool(value, &on) < 0) {
		user_err(err, errlen, "filter %s takes on or off, not '%s'", name, value);
		return -1;
	}
	setting = profile_filter(profile, name, on, err, errlen);
	if (setting != NULL)
		setting->enabled = on;
	else if (on)
		return -1;
	return 0;
}

int store_profile_apply(struct store_profile *profile, const char *key, const char *value,
			char *err, size_t errlen)
{
	if (strcmp(key, "tag_at") == 0 || strcmp(key, "quarantine_at") == 0) {
		double *threshold =
		    strcmp(key, "tag_at") == 0 ? &profile->tag_at : &profile->quarantine_at;

		if (profile_number(value, -STORE_PROFILE_THRESHOLD_MAX, STORE_PROFILE_THRESHOLD_MAX,
				   threshold) < 0) {
			user_err(err, errlen, "%s must be a number from %g to %g, not '%s'", key,
				 -STORE_PROFILE_THRESHOLD_MAX, STORE_PROFILE_THRESHOLD_MAX, value);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "hold") == 0 || strcmp(key, "challenge") == 0) {
		bool *flag = strcmp(key, "hold") == 0 ? &profile->hold : &profile->challenge;

		if (profile_bool(value, flag) < 0) {
			user_err(err, errlen, "%s takes yes or no, not '%s'", key, value);
			return -1;
		}
		return 0;
	}
	return profile_apply_filter(profile, key, value, err, errlen);
}

int store_profile_check(const struct store_profile *profile, char *err, size_t errlen)
{
	if (profile->tag_at > profile->quarantine_at) {
		user_err(err, errlen,
			 "tag_at (%.3f) must not be above quarantine_at (%.3f): mail is tagged "
			 "below the quarantine threshold",
			 profile->tag_at, profile->quarantine_at);
		return -1;
	}
	for (size_t i = 0; i < sizeof(profile_required) / sizeof(profile_required[0]); i++) {
		bool on = false;

		for (size_t j = 0; j < profile->filter_count; j++)
			if (strcmp(profile->filters[j].name, profile_required[i]) == 0)
				on = profile->filters[j].enabled;
		if (!on) {
			user_err(err, errlen,
				 "filter %s cannot be off: popgate needs it (the trace header, and "
				 "the addresses mail is attributed to its users by)",
				 profile_required[i]);
			return -1;
		}
	}
	return 0;
}

void store_profile_snapshot(const struct store_profile *profile, struct filter_profile *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < profile->filter_count && out->filter_count < FILTER_PROFILE_MAX;
	     i++) {
		if (!profile->filters[i].enabled)
			continue;
		memcpy(out->filters[out->filter_count].name, profile->filters[i].name,
		       sizeof(out->filters[0].name));
		out->filters[out->filter_count++].weight = profile->filters[i].weight;
	}
	out->tag_at = profile->tag_at;
	out->quarantine_at = profile->quarantine_at;
	out->hold = profile->hold;
	out->challenge_unknown_senders = profile->challenge;
}

/* Reads the filters of PROFILE->name into PROFILE. 0 or -1. */
static int profile_read_filters(struct store *store, struct store_profile *profile)
{
	static const char sql[] = "SELECT filter, enabled, weight FROM filter_profile_filter"
				  " WHERE profile = ? ORDER BY position";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, profile->name);
	int rc;

	if (stmt == NULL)
		return -1;
	profile->filter_count = 0;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		struct store_profile_filter *setting;

		/* A row this program cannot hold is skipped, not trusted. */
		if (name == NULL || strlen(name) > FILTER_NAME_MAX ||
		    profile->filter_count >= FILTER_PROFILE_MAX)
			continue;
		setting = &profile->filters[profile->filter_count++];
		snprintf(setting->name, sizeof(setting->name), "%s", name);
		setting->enabled = sqlite3_column_int(stmt, 1) != 0;
		setting->weight = sqlite3_column_double(stmt, 2);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "reading a profile's filters");
		return -1;
	}
	return 0;
}

/* The profile row STMT is on (columns as in PROFILE_COLUMNS) into *PROFILE. */
#define PROFILE_COLUMNS                                                                            \
	"name, tag_at, quarantine_at, hold, challenge,"                                            \
	" CASE WHEN name = 'default' COLLATE NOCASE"                                               \
	"  THEN (SELECT count(*) FROM user WHERE profile IS NULL"                                  \
	"        OR profile = 'default' COLLATE NOCASE)"                                           \
	"  ELSE (SELECT count(*) FROM user WHERE profile = filter_profile.name COLLATE NOCASE)"    \
	" END"

static void profile_read_row(sqlite3_stmt *stmt, struct store_profile *profile)
{
	const char *name = (const char *)sqlite3_column_text(stmt, 0);

	memset(profile, 0, sizeof(*profile));
	snprintf(profile->name, sizeof(profile->name), "%s", name != NULL ? name : "");
	profile->tag_at = sqlite3_column_double(stmt, 1);
	profile->quarantine_at = sqlite3_column_double(stmt, 2);
	profile->hold = sqlite3_column_int(stmt, 3) != 0;
	profile->challenge = sqlite3_column_int(stmt, 4) != 0;
	profile->user_count = sqlite3_column_int64(stmt, 5);
}

/* Profile NAME into *PROFILE; its users counted only if COUNT_USERS (a scan
 * of the users, which a job's snapshot does without). 1/0/-1. */
static int profile_get(struct store *store, const char *name, bool count_users,
		       struct store_profile *profile)
{
	static const char sql[] = "SELECT " PROFILE_COLUMNS " FROM filter_profile WHERE name = ?";
	static const char job_sql[] = "SELECT name, tag_at, quarantine_at, hold, challenge, 0"
				      " FROM filter_profile WHERE name = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, count_users ? sql : job_sql, name);
	int found = user_stmt_row(store, stmt, "reading a profile");

	if (found == 1)
		profile_read_row(stmt, profile);
	store_stmt_release(stmt);
	if (found == 1 && profile_read_filters(store, profile) < 0)
		return -1;
	return found;
}

int store_profile_get(struct store *store, const char *name, struct store_profile *profile)
{
	return profile_get(store, name, true, profile);
}

int store_profile_list(struct store *store, struct store_profile **list_r, size_t *count_r)
{
	static const char sql[] = "SELECT " PROFILE_COLUMNS " FROM filter_profile ORDER BY name";
	struct store_profile *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		profile_read_row(stmt, &list[count++]);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing the profiles");
		free(list);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		if (profile_read_filters(store, &list[i]) < 0) {
			free(list);
			return -1;
		}
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

/* Writes PROFILE (checked) over the row of its name, filters and all, in
 * the caller's transaction. INSERT: a new row. 0 or -1 (logged). */
static int profile_write(struct store *store, const struct store_profile *profile, bool insert)
{
	static const char insert_sql[] =
	    "INSERT INTO filter_profile (name, tag_at, quarantine_at, hold, challenge, created_at)"
	    " VALUES (?, ?, ?, ?, ?, ?)";
	static const char update_sql[] =
	    "UPDATE filter_profile SET tag_at = ?2, quarantine_at = ?3, hold = ?4, challenge = ?5"
	    " WHERE name = ?1";
	static const char clear_sql[] = "DELETE FROM filter_profile_filter WHERE profile = ?";
	static const char filter_sql[] =
	    "INSERT INTO filter_profile_filter (profile, filter, position, enabled, weight)"
	    " VALUES (?, ?, ?, ?, ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, insert ? insert_sql : update_sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, profile->name, -1, SQLITE_STATIC);
	sqlite3_bind_double(stmt, 2, profile->tag_at);
	sqlite3_bind_double(stmt, 3, profile->quarantine_at);
	sqlite3_bind_int(stmt, 4, profile->hold);
	sqlite3_bind_int(stmt, 5, profile->challenge);
	if (insert)
		sqlite3_bind_int64(stmt, 6, util_now());
	if (store_stmt_done(store, stmt, "writing a profile") < 0)
		return -1;
	stmt = user_stmt_text(store, clear_sql, profile->name);
	if (user_stmt_done(store, stmt, "writing a profile's filters") < 0)
		return -1;
	for (size_t i = 0; i < profile->filter_count; i++) {
		stmt = store_stmt_prepare(store, filter_sql);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_text(stmt, 1, profile->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, profile->filters[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 3, (int64_t)i + 1);
		sqlite3_bind_int(stmt, 4, profile->filters[i].enabled);
		sqlite3_bind_double(stmt, 5, profile->filters[i].weight);
		if (store_stmt_done(store, stmt, "writing a profile's filters") < 0)
			return -1;
	}
	return 0;
}

int store_profile_add(struct store *store, const char *name, char *err, size_t errlen)
{
	struct store_profile *profile = xcalloc(1, sizeof(*profile));
	bool outer;
	int found;

	if (!store_profile_name_valid(name)) {
		user_err(
		    err, errlen,
		    "'%s' is not a valid profile name (1 to %d of the characters A-Z a-z 0-9 . "
		    "_ -)",
		    name, STORE_PROFILE_NAME_MAX);
		free(profile);
		return -1;
	}
	if (user_tx_begin(store, &outer, err, errlen) < 0) {
		free(profile);
		return -1;
	}
	found = store_profile_get(store, name, profile);
	if (found != 0) {
		if (found == 1)
			user_err(err, errlen, "profile %s already exists", profile->name);
		else
			user_err_db(err, errlen);
		goto fail;
	}
	if (store_profile_get(store, STORE_PROFILE_DEFAULT, profile) != 1) {
		user_err(err, errlen, "cannot read the default profile");
		goto fail;
	}
	snprintf(profile->name, sizeof(profile->name), "%s", name);
	if (profile_write(store, profile, true) < 0) {
		user_err_db(err, errlen);
		goto fail;
	}
	free(profile);
	return user_tx_commit(store, outer, err, errlen);
fail:
	store_tx_rollback(store, outer);
	free(profile);
	return -1;
}

int store_profile_set(struct store *store, const char *name, const char *const *keys,
		      const char *const *values, size_t count, char *err, size_t errlen)
{
	struct store_profile *profile = xcalloc(1, sizeof(*profile));
	bool outer;
	int found;

	if (user_tx_begin(store, &outer, err, errlen) < 0) {
		free(profile);
		return -1;
	}
	found = store_profile_get(store, name, profile);
	if (found != 1) {
		if (found == 0)
			user_err(err, errlen, "no profile %s", name);
		else
			user_err_db(err, errlen);
		goto fail;
	}
	for (size_t i = 0; i < count; i++)
		if (store_profile_apply(profile, keys[i], values[i], err, errlen) < 0)
			goto fail;
	if (store_profile_check(profile, err, errlen) < 0)
		goto fail;
	if (profile_write(store, profile, false) < 0) {
		user_err_db(err, errlen);
		goto fail;
	}
	free(profile);
	return user_tx_commit(store, outer, err, errlen);
fail:
	store_tx_rollback(store, outer);
	free(profile);
	return -1;
}

int store_profile_delete(struct store *store, const char *name, char *err, size_t errlen)
{
	static const char sql[] = "DELETE FROM filter_profile WHERE name = ?";
	struct store_profile *profile = xcalloc(1, sizeof(*profile));
	bool outer;
	int found;

	if (user_tx_begin(store, &outer, err, errlen) < 0) {
		free(profile);
		return -1;
	}
	found = store_profile_get(store, name, profile);
	if (found != 1) {
		if (found == 0)
			user_err(err, errlen, "no profile %s", name);
		else
			user_err_db(err, errlen);
		goto fail;
	}
	if (strcasecmp(profile->name, STORE_PROFILE_DEFAULT) == 0) {
		user_err(err, errlen,
			 "the default profile cannot be deleted: it serves every user without a "
			 "profile of its own");
		goto fail;
	}
	if (profile->user_count > 0) {
		user_err(err, errlen,
			 "profile %s is used by %lld user(s); give them another first ('user set "
			 "NAME profile P')",
			 profile->name, (long long)profile->user_count);
		goto fail;
	}
	if (user_stmt_done(store, user_stmt_text(store, sql, profile->name), "deleting a profile") <
	    0) {
		user_err_db(err, errlen);
		goto fail;
	}
	free(profile);
	return user_tx_commit(store, outer, err, errlen);
fail:
	store_tx_rollback(store, outer);
	free(profile);
	return -1;
}

int store_profile_assign(struct store *store, const char *user, const char *profile_name, char *err,
			 size_t errlen)
{
	static const char sql[] = "UPDATE user SET profile = ? WHERE id = ?";
	struct store_profile *profile = xcalloc(1, sizeof(*profile));
	sqlite3_stmt *stmt;
	int64_t user_id;
	bool outer;
	int found;

	if (user_tx_begin(store, &outer, err, errlen) < 0) {
		free(profile);
		return -1;
	}
	if (user_id_by_name(store, user, &user_id, NULL, 0, err, errlen) != 1)
		goto fail;
	found = store_profile_get(store, profile_name, profile);
	if (found != 1) {
		if (found == 0)
			user_err(err, errlen, "no profile %s", profile_name);
		else
			user_err_db(err, errlen);
		goto fail;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL) {
		user_err_db(err, errlen);
		goto fail;
	}
	/* 'default' is stored as none: the user follows whatever it becomes. */
	if (strcasecmp(profile->name, STORE_PROFILE_DEFAULT) == 0)
		sqlite3_bind_null(stmt, 1);
	else
		sqlite3_bind_text(stmt, 1, profile->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, user_id);
	if (store_stmt_done(store, stmt, "setting a user's profile") < 0) {
		user_err_db(err, errlen);
		goto fail;
	}
	free(profile);
	return user_tx_commit(store, outer, err, errlen);
fail:
	store_tx_rollback(store, outer);
	free(profile);
	return -1;
}

int store_profile_of_user(struct store *store, int64_t user_id, char *name)
{
	static const char sql[] =
	    "SELECT coalesce(profile, '" STORE_PROFILE_DEFAULT "') FROM user WHERE id = ?";
	sqlite3_stmt *stmt;
	int found;

	snprintf(name, STORE_PROFILE_NAME_MAX + 1, "%s", STORE_PROFILE_DEFAULT);
	if (user_id == 0)
		return 0;
	stmt = user_stmt_int(store, sql, user_id);
	found = user_stmt_row(store, stmt, "reading a user's profile");
	if (found == 1) {
		const char *text = (const char *)sqlite3_column_text(stmt, 0);

		snprintf(name, STORE_PROFILE_NAME_MAX + 1, "%s",
			 text != NULL ? text : STORE_PROFILE_DEFAULT);
	}
	store_stmt_release(stmt);
	return found < 0 ? -1 : 0;
}

int store_profile_for_user(struct store *store, int64_t user_id, struct filter_profile *out)
{
	struct store_profile *profile = xcalloc(1, sizeof(*profile));
	char name[STORE_PROFILE_NAME_MAX + 1];
	int found = -1;

	if (store_profile_of_user(store, user_id, name) == 0)
		found = profile_get(store, name, false, profile);
	if (found != 1) {
		log_warn("store: cannot read filter profile %s of user %lld; the built-in profile "
			 "judges the message",
			 name, (long long)user_id);
		*out = *filter_profile_default();
		free(profile);
		return -1;
	}
	store_profile_snapshot(profile, out);
	free(profile);
	return 0;
}
