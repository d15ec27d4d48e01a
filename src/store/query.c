/*
 * query.c — views of the store for popgatectl: message rows joined with
 * their account's and user's names, a user's account names, and the deletion
 * of a message row by the administrator.
 *
 * Owns: these SELECTs and that one DELETE.
 * Must never: change a message the daemon is processing (the DELETE checks the
 * state in its own WHERE clause, so it cannot race a worker's move), or select
 * a password hash, a sealed secret or anything from a body.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/query.h"

/* The columns store_query_read expects, in its order. */
#define QUERY_COLUMNS                                                                              \
	"m.id, a.name, u.name, m.state, m.body_size, m.attempts, m.received_at,"                   \
	" m.state_changed_at, m.uidl, m.sha256, m.prepend,"                                        \
	" (SELECT o.name FROM user o WHERE o.id = m.owner_user_id)"
#define QUERY_FROM                                                                                 \
	" FROM message m LEFT JOIN account a ON a.id = m.account_id"                               \
	" LEFT JOIN user u ON u.id = a.user_id"

/*
 * Whether message m belongs to the user named by parameter ?2 (U4): the
 * user owns one of its recipient addresses, or no local user does and the
 * user's account fetched it.
 */
#define QUERY_OF_USER                                                                              \
	" (EXISTS (SELECT 1 FROM message_recipient r JOIN user ru ON ru.id = r.user_id"            \
	"   WHERE r.message_id = m.id AND ru.name = ?2)"                                           \
	"  OR (u.name = ?2 AND NOT EXISTS"                                                         \
	"   (SELECT 1 FROM message_recipient r WHERE r.message_id = m.id)))"

/* A copy of column COL of STMT, or NULL for SQL NULL. */
static char *store_query_text(sqlite3_stmt *stmt, int col)
{
	const char *text = (const char *)sqlite3_column_text(stmt, col);

	return text != NULL ? xstrdup(text) : NULL;
}

/* Fills MESSAGE from the current row of STMT (QUERY_COLUMNS). 0; 1 for a row
 * in a state this program does not know (skipped, warned); -1 for a row this
 * program cannot represent. */
static int store_query_read(sqlite3_stmt *stmt, struct store_query_message *message)
{
	int key;

	memset(message, 0, sizeof(*message));
	key = store_message_row_key(stmt, 0, 3, message->id, &message->state);
	if (key != 0)
		return key;
	message->account_name = store_query_text(stmt, 1);
	message->user_name = store_query_text(stmt, 2);
	message->body_size = sqlite3_column_int64(stmt, 4);
	message->attempts = sqlite3_column_int(stmt, 5);
	message->received_at = sqlite3_column_int64(stmt, 6);
	message->state_changed_at = sqlite3_column_int64(stmt, 7);
	message->uidl = store_query_text(stmt, 8);
	message->sha256 = store_query_text(stmt, 9);
	message->prepend = store_query_text(stmt, 10); /* NOT NULL DEFAULT '' */
	message->owner_name = store_query_text(stmt, 11);
	return 0;
}

void store_query_message_clear(struct store_query_message *message)
{
	if (message == NULL)
		return;
	xfree(&message->account_name);
	xfree(&message->user_name);
	xfree(&message->uidl);
	xfree(&message->sha256);
	xfree(&message->prepend);
	xfree(&message->owner_name);
}

int store_query_messages(struct store *store, int state, const char *user_name,
			 struct store_query_message **list_r, size_t *count_r)
{
	/* Both filters in one statement: a NULL binding means "any". */
	static const char sql[] =
	    "SELECT " QUERY_COLUMNS QUERY_FROM " WHERE (?1 IS NULL OR m.state = ?1)"
	    " AND (?2 IS NULL OR" QUERY_OF_USER ") ORDER BY m.seq";
	struct store_query_message *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	if (state >= 0 && state < MESSAGE_STATE_COUNT)
		sqlite3_bind_text(stmt, 1, store_message_state_name((enum message_state)state), -1,
				  SQLITE_STATIC);
	if (user_name != NULL)
		sqlite3_bind_text(stmt, 2, user_name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int read;

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		read = store_query_read(stmt, &list[count]);
		if (read < 0)
			goto fail;
		if (read == 0)
			count++;
	}
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing messages");
		goto fail;
	}
	store_stmt_release(stmt);
	*list_r = list;
	*count_r = count;
	return 0;
fail:
	store_stmt_release(stmt);
	store_query_message_list_free(&list, count);
	return -1;
}

void store_query_message_list_free(struct store_query_message **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_query_message_clear(&(*list)[i]);
	xfree(list);
}

int store_query_message_get(struct store *store, const char *id,
			    struct store_query_message *message)
{
	static const char sql[] = "SELECT " QUERY_COLUMNS QUERY_FROM " WHERE m.id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	memset(message, 0, sizeof(*message));
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading a message");
	if (result == 1) {
		int read = store_query_read(stmt, message);

		if (read != 0)
			result = read < 0 ? -1 : 0;
	}
	store_stmt_release(stmt);
	return result;
}

int store_query_message_of_user(struct store *store, const char *id, const char *user_name)
{
	static const char sql[] = "SELECT 1" QUERY_FROM " WHERE m.id = ?1 AND" QUERY_OF_USER;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, user_name, -1, SQLITE_STATIC);
	return store_stmt_exists(store, stmt, "reading whose a message is");
}

int store_query_message_recipients(struct store *store, const char *id,
				   struct store_query_recipient **list_r, size_t *count_r)
{
	static const char sql[] = "SELECT u.name, r.address FROM message_recipient r"
				  " JOIN user u ON u.id = r.user_id WHERE r.message_id = ?"
				  " ORDER BY u.name";
	struct store_query_recipient *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count].user_name = store_query_text(stmt, 0);
		list[count].address = store_query_text(stmt, 1);
		count++;
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing a message's recipients");
		store_query_recipients_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_query_recipients_free(struct store_query_recipient **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].user_name);
		free((*list)[i].address);
	}
	xfree(list);
}

int store_query_message_detach_user(struct store *store, const char *id, const char *user_name)
{
	/* Only while another user's address stays: the last recipient's
	 * delete is the message's. */
	static const char sql[] =
	    "DELETE FROM message_recipient WHERE message_id = ?1"
	    " AND user_id = (SELECT id FROM user WHERE name = ?2)"
	    " AND EXISTS (SELECT 1 FROM message_recipient o JOIN user ou ON ou.id = o.user_id"
	    "  WHERE o.message_id = ?1 AND ou.name <> ?2)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, user_name, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "taking a user off a message");
	store_stmt_release(stmt);
	if (result < 0)
		return -1;
	return sqlite3_changes(store->db) > 0 ? 1 : 0;
}

int store_query_message_delete(struct store *store, const char *id)
{
	/* The state check is in the statement itself: a message that a worker
	 * moves to processing between a read and this write is never deleted. */
	static const char del[] = "DELETE FROM message WHERE id = ? AND state <> 'processing'";
	static const char find[] = "SELECT 1 FROM message WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, del);
	int result;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "deleting a message");
	store_stmt_release(stmt);
	if (result < 0)
		return -1;
	if (sqlite3_changes(store->db) > 0)
		return 1;
	stmt = store_stmt_prepare(store, find);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	result = store_stmt_exists(store, stmt, "reading a message");
	if (result < 0)
		return -1;
	return result == 1 ? -2 : 0;
}

int store_query_user_accounts(struct store *store, int64_t user_id, char ***names_r,
			      size_t *count_r)
{
	static const char sql[] = "SELECT name FROM account WHERE user_id = ? ORDER BY name";
	char **names = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt;
	int rc;

	*names_r = NULL;
	*count_r = 0;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		names = store_list_grow(names, count, &capacity, sizeof(*names));
		names[count++] = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing a user's accounts");
		store_query_names_free(&names, count);
		return -1;
	}
	*names_r = names;
	*count_r = count;
	return 0;
}

void store_query_names_free(char ***names, size_t count)
{
	if (*names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*names)[i]);
	xfree(names);
}
