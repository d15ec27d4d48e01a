/*
 * correspondent.c — the correspondent table (correspondent.h).
 *
 * Owns: that table. Must never: be written outside the relay's writer job
 * that records the delivery (so a recipient is learnt once per delivery);
 * popgatectl only lists it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/correspondent.h"
#include "store/user_internal.h"

/* ADDRESS in lower case (allocated). */
static char *correspondent_fold(const char *address)
{
	char *folded = xstrdup(address);

	for (char *c = folded; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return folded;
}

int store_correspondent_add(struct store *store, int64_t user_id, const char *address, int64_t now)
{
	static const char sql[] =
	    "INSERT INTO correspondent (user_id, address, first_at, last_at, messages)"
	    " VALUES (?, ?, ?, ?, 1) ON CONFLICT (user_id, address) DO UPDATE SET"
	    " last_at = excluded.last_at, messages = messages + 1";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = correspondent_fold(address);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, now);
	sqlite3_bind_int64(stmt, 4, now);
	rc = store_stmt_done(store, stmt, "recording a correspondent");
	free(folded);
	return rc;
}

int store_correspondent_known(struct store *store, int64_t user_id, const char *address)
{
	static const char sql[] = "SELECT 1 FROM correspondent WHERE user_id = ? AND address = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = correspondent_fold(address);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	rc = store_stmt_exists(store, stmt, "reading correspondents");
	free(folded);
	return rc;
}

int store_correspondent_list(struct store *store, int64_t user_id,
			     struct store_correspondent **list_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT c.user_id, u.name, c.address, c.first_at, c.last_at, c.messages"
	    " FROM correspondent c JOIN user u ON u.id = c.user_id"
	    " WHERE ? = 0 OR c.user_id = ? ORDER BY u.name, c.address";
	struct store_correspondent *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_int64(stmt, 2, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count++] = (struct store_correspondent){
		    .user_id = sqlite3_column_int64(stmt, 0),
		    .user_name = user_column_strdup(stmt, 1),
		    .address = user_column_strdup(stmt, 2),
		    .first_at = sqlite3_column_int64(stmt, 3),
		    .last_at = sqlite3_column_int64(stmt, 4),
		    .messages = sqlite3_column_int64(stmt, 5),
		};
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing correspondents");
		store_correspondent_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_correspondent_list_free(struct store_correspondent **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].user_name);
		free((*list)[i].address);
	}
	xfree(list);
}
