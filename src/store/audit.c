/*
 * audit.c — the admin_change rows: popgatectl's record of each change, and
 * the daemon's copying of those not yet in its log (audit.h).
 *
 * Owns: the admin_change table.
 * Must never: mark a row logged that was not handed to the callback (a change
 * would then be missing from the log), or hold a row's text beyond the call.
 */
#include <stdint.h>

#include <sqlite3.h>

#include "store/audit.h"

int store_admin_change_add(struct store *store, int64_t at, const char *message_id,
			   const char *text, bool logged)
{
	static const char sql[] =
	    "INSERT INTO admin_change (at, message_id, text, logged) VALUES (?, ?, ?, ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, at);
	if (message_id != NULL)
		sqlite3_bind_text(stmt, 2, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, text, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 4, logged ? 1 : 0);
	return store_stmt_done(store, stmt, "recording an admin change");
}

int store_admin_change_take(struct store *store, size_t limit, store_admin_change_cb *callback,
			    void *ctx)
{
	static const char select_sql[] = "SELECT seq, at, message_id, text FROM admin_change"
					 " WHERE logged = 0 ORDER BY seq LIMIT ?";
	static const char any_sql[] = "SELECT 1 FROM admin_change WHERE logged = 0 LIMIT 1";
	static const char mark_sql[] =
	    "UPDATE admin_change SET logged = 1 WHERE logged = 0 AND seq <= ?";
	sqlite3_stmt *stmt;
	int64_t last = 0;
	int count = 0;
	bool outer;
	int rc;

	/* A plain read first: the daemon polls, and most polls find nothing,
	 * so they need not take the write lock. */
	if ((stmt = store_stmt_prepare(store, any_sql)) == NULL)
		return -1;
	rc = store_stmt_exists(store, stmt, "looking for admin changes");
	if (rc <= 0)
		return rc;
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if ((stmt = store_stmt_prepare(store, select_sql)) == NULL)
		goto fail;
	sqlite3_bind_int64(stmt, 1, (sqlite3_int64)(limit > INT64_MAX ? INT64_MAX : limit));
	while ((rc = store_stmt_step(store, stmt, "reading admin changes")) == 1) {
		const char *message_id = (const char *)sqlite3_column_text(stmt, 2);
		const char *text = (const char *)sqlite3_column_text(stmt, 3);

		last = sqlite3_column_int64(stmt, 0);
		callback(sqlite3_column_int64(stmt, 1), message_id, text != NULL ? text : "", ctx);
		count++;
	}
	store_stmt_release(stmt);
	if (rc < 0)
		goto fail;
	if (count > 0) {
		if ((stmt = store_stmt_prepare(store, mark_sql)) == NULL)
			goto fail;
		sqlite3_bind_int64(stmt, 1, last);
		if (store_stmt_done(store, stmt, "marking admin changes logged") < 0)
			goto fail;
	}
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return count;
fail:
	store_tx_rollback(store, outer);
	return -1;
}
