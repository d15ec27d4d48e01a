/*
 * setting.c — the setting table: named values the store keeps for popgate
 * itself (the seat limit, the administrator's password hash).
 *
 * Owns: the setting table's rows.
 */
#include <sqlite3.h>

#include "store/setting.h"
#include "store/user_internal.h"

int store_setting_get(struct store *store, const char *key, char **value_r)
{
	static const char sql[] = "SELECT value FROM setting WHERE key = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, key);
	int result = user_stmt_row(store, stmt, "reading a setting");

	*value_r = result == 1 ? user_column_strdup(stmt, 0) : NULL;
	store_stmt_release(stmt);
	return result;
}

int store_setting_set(struct store *store, const char *key, const char *value)
{
	static const char sql[] = "INSERT INTO setting (key, value) VALUES (?, ?)"
				  " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
	return store_stmt_done(store, stmt, "writing a setting");
}
