/*
 * correspondent.c — the correspondent table (correspondent.h).
 *
 * Owns: that table. Must never: be written outside the relay's writer job
 * that records the delivery (so a recipient is learnt once per delivery).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/correspondent.h"

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
