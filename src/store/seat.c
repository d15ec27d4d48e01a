/*
 * seat.c — seats (U3): the limit, who has one, and giving the free ones to
 * waiting users, oldest request first.
 *
 * Owns: the user table's has_seat and seat_requested_at columns and the
 * seat_limit setting. Must never: give out more seats than the limit, or take
 * one away.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/seat.h"
#include "store/setting.h"
#include "store/user_internal.h"

/* The seat limit: 0 (unlimited) when unset. 0 or -1 (also for a value that
 * is not a number, which only a hand edit could write). */
static int seat_limit_read(struct store *store, int64_t *limit_r)
{
	char *value = NULL;
	char *end;
	long long limit;
	int found = store_setting_get(store, STORE_SETTING_SEAT_LIMIT, &value);

	*limit_r = 0;
	if (found <= 0)
		return found;
	errno = 0;
	limit = strtoll(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || limit < 0) {
		log_error("store: setting %s is not a number: '%s'", STORE_SETTING_SEAT_LIMIT,
			  value);
		free(value);
		return -1;
	}
	free(value);
	*limit_r = limit;
	return 0;
}

/* Seats in use and users waiting. 0/-1. */
static int seat_counts(struct store *store, int64_t *used_r, int64_t *waiting_r)
{
	static const char sql[] =
	    "SELECT coalesce(sum(has_seat != 0), 0), coalesce(sum(has_seat = 0), 0) FROM user";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result = user_stmt_row(store, stmt, "counting seats");

	if (result == 1) {
		*used_r = sqlite3_column_int64(stmt, 0);
		*waiting_r = sqlite3_column_int64(stmt, 1);
	}
	store_stmt_release(stmt);
	return result == 1 ? 0 : -1;
}

/* Gives USER_ID a seat, whether or not one is free. 0 or -1. */
static int seat_give(struct store *store, int64_t user_id)
{
	static const char sql[] = "UPDATE user SET has_seat = 1 WHERE id = ?";

	return user_stmt_done(store, user_stmt_int(store, sql, user_id), "giving a seat");
}

/* Inside a transaction: gives USER_ID a seat if one is free. 1 seat, 0
 * waiting, -1 error or unknown user. */
static int seat_give_if_free(struct store *store, int64_t user_id)
{
	static const char sql[] = "SELECT has_seat FROM user WHERE id = ?";
	sqlite3_stmt *stmt = user_stmt_int(store, sql, user_id);
	int found = user_stmt_row(store, stmt, "reading a user's seat");
	int64_t limit;
	int64_t used;
	int64_t waiting;
	int has_seat = 0;

	if (found == 1)
		has_seat = sqlite3_column_int(stmt, 0);
	store_stmt_release(stmt);
	if (found == 0)
		log_error("store: giving a seat: no user %lld", (long long)user_id);
	if (found != 1)
		return -1;
	if (has_seat)
		return 1;
	if (seat_limit_read(store, &limit) < 0 || seat_counts(store, &used, &waiting) < 0)
		return -1;
	if (limit != 0 && used >= limit)
		return 0;
	return seat_give(store, user_id) < 0 ? -1 : 1;
}

int store_seat_status(struct store *store, struct store_seat_status *status)
{
	memset(status, 0, sizeof(*status));
	if (seat_limit_read(store, &status->limit) < 0 ||
	    seat_counts(store, &status->used, &status->waiting) < 0)
		return -1;
	if (status->limit == 0)
		status->free = -1;
	else
		status->free = status->limit > status->used ? status->limit - status->used : 0;
	return 0;
}

int store_seat_set_limit(struct store *store, int64_t limit, char *err, size_t errlen)
{
	/* Oldest request first; the id orders users made in the same second. */
	static const char waiting_sql[] =
	    "SELECT id FROM user WHERE has_seat = 0 ORDER BY seat_requested_at, id LIMIT ?";
	int64_t *ids = NULL;
	size_t count = 0;
	int64_t used;
	int64_t waiting;
	sqlite3_stmt *stmt;
	char *value;
	int rc;
	bool outer;

	if (limit < 0) {
		user_err(err, errlen, "the seat limit must be 0 (unlimited) or more, not %lld",
			 (long long)limit);
		return -1;
	}
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (seat_counts(store, &used, &waiting) < 0)
		goto fail_db;
	/* Taking a seat away from someone is not this command's job. */
	if (limit != 0 && limit < used) {
		user_err(err, errlen, "%lld seats are in use; the limit cannot be %lld",
			 (long long)used, (long long)limit);
		goto fail;
	}
	value = xasprintf("%lld", (long long)limit);
	rc = store_setting_set(store, STORE_SETTING_SEAT_LIMIT, value);
	free(value);
	if (rc < 0)
		goto fail_db;
	/* A negative LIMIT is no limit to SQLite. */
	stmt = user_stmt_int(store, waiting_sql, limit == 0 ? -1 : limit - used);
	if (stmt == NULL)
		goto fail_db;
	ids = xmalloc((size_t)(waiting > 0 ? waiting : 1) * sizeof(*ids));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && count < (size_t)waiting)
		ids[count++] = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_log_error(store, "listing waiting users");
		goto fail_db;
	}
	for (size_t i = 0; i < count; i++) {
		if (seat_give(store, ids[i]) < 0)
			goto fail_db;
	}
	free(ids);
	if (user_tx_commit(store, outer, err, errlen) < 0)
		return -1;
	if (count > 0)
		log_info("store: seat limit %lld: %zu waiting user(s) got a seat", (long long)limit,
			 count);
	return (int)count;
fail_db:
	user_err_db(err, errlen);
fail:
	free(ids);
	store_tx_rollback(store, outer);
	return -1;
}

int store_seat_assign(struct store *store, int64_t user_id)
{
	/* A user made before this call existed (seat_requested_at 0) waits from
	 * its creation. */
	static const char order_sql[] = "UPDATE user SET seat_requested_at = created_at"
					" WHERE id = ? AND seat_requested_at = 0";
	int result;
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (user_stmt_done(store, user_stmt_int(store, order_sql, user_id),
			   "recording a seat request") < 0)
		goto fail;
	result = seat_give_if_free(store, user_id);
	if (result < 0)
		goto fail;
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return result;
fail:
	store_tx_rollback(store, outer);
	return -1;
}

