/*
 * mta_sts.c — the MTA-STS policy cache (store/mta_sts.h).
 *
 * Owns: the mta_sts_policy table.
 * Must never: be written on the loop's connection (the relay's writes go
 * through the writer thread).
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/mta_sts.h"

void store_mta_sts_clear(struct store_mta_sts *entry)
{
	free(entry->domain);
	free(entry->policy_id);
	free(entry->policy);
	free(entry->mode);
	memset(entry, 0, sizeof(*entry));
}

static char *store_mta_sts_text(sqlite3_stmt *stmt, int column)
{
	const unsigned char *text = sqlite3_column_text(stmt, column);

	return xstrdup(text != NULL ? (const char *)text : "");
}

static void store_mta_sts_read(sqlite3_stmt *stmt, struct store_mta_sts *entry)
{
	entry->domain = store_mta_sts_text(stmt, 0);
	entry->policy_id = store_mta_sts_text(stmt, 1);
	entry->policy = store_mta_sts_text(stmt, 2);
	entry->mode = store_mta_sts_text(stmt, 3);
	entry->fetched_at = sqlite3_column_int64(stmt, 4);
	entry->expires_at = sqlite3_column_int64(stmt, 5);
}

int store_mta_sts_get(struct store *store, const char *domain, struct store_mta_sts *entry)
{
	static const char sql[] = "SELECT domain, policy_id, policy, mode, fetched_at, expires_at"
				  " FROM mta_sts_policy WHERE domain = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	memset(entry, 0, sizeof(*entry));
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, domain, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading an MTA-STS policy");
	if (result == 1)
		store_mta_sts_read(stmt, entry);
	store_stmt_release(stmt);
	return result;
}

int store_mta_sts_put(struct store *store, const struct store_mta_sts *entry)
{
	static const char sql[] =
	    "INSERT OR REPLACE INTO mta_sts_policy (domain, policy_id, policy, mode, fetched_at,"
	    " expires_at) VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, entry->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, entry->policy_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, entry->policy, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, entry->mode, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, entry->fetched_at);
	sqlite3_bind_int64(stmt, 6, entry->expires_at);
	return store_stmt_done(store, stmt, "storing an MTA-STS policy");
}

int store_mta_sts_list(struct store *store, struct store_mta_sts **entries_r, size_t *count_r)
{
	static const char sql[] = "SELECT domain, policy_id, policy, mode, fetched_at, expires_at"
				  " FROM mta_sts_policy ORDER BY domain";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	struct store_mta_sts *entries = NULL;
	size_t count = 0, capacity = 0;
	int step;

	*entries_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((step = store_stmt_step(store, stmt, "listing the MTA-STS policies")) == 1) {
		entries = store_list_grow(entries, count, &capacity, sizeof(*entries));
		memset(&entries[count], 0, sizeof(entries[count]));
		store_mta_sts_read(stmt, &entries[count]);
		count++;
	}
	store_stmt_release(stmt);
	if (step < 0) {
		store_mta_sts_list_free(&entries, count);
		return -1;
	}
	*entries_r = entries;
	*count_r = count;
	return 0;
}

void store_mta_sts_list_free(struct store_mta_sts **entries, size_t count)
{
	if (*entries == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_mta_sts_clear(&(*entries)[i]);
	free(*entries);
	*entries = NULL;
}
