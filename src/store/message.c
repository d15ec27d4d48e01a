/*
 * message.c — message rows: one per message, whose `state` column is its
 * queue, and the provider UIDL recorded with each fetched message.
 *
 * Owns: the message table (but for its state, which only store/lifecycle.c
 * writes), and the provider_uidl rows written with a new message.
 * Must never: write `state` but through store/lifecycle.h, or remove a body
 * before the deletion of its row is committed (a crash in between would leave
 * a row without a body, which nothing can repair).
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/lifecycle.h"
#include "store/message.h"

static const char *const message_state_names[] = {
    [MESSAGE_PROCESSING] = "processing", /* stored, waiting for or in the pipeline */
    [MESSAGE_DELIVERY] = "delivery",	 /* filtered, waiting for its pickup */
    [MESSAGE_DELIVERED] = "delivered",	 /* picked up, kept delivered_keep_days */
    [MESSAGE_SUSPECT] = "suspect",	 /* held: workers died on it */
    [MESSAGE_QUARANTINE] = "quarantine", /* held by a verdict */
    [MESSAGE_CHALLENGED] = "challenged", /* held for its sender's answer */
    [MESSAGE_OUTBOUND] = "outbound",	 /* submitted, waiting for the relay */
    [MESSAGE_SENT] = "sent",		 /* relayed */
    [MESSAGE_BOUNCED] = "bounced",	 /* refused for good */
};
_Static_assert(sizeof(message_state_names) / sizeof(message_state_names[0]) == MESSAGE_STATE_COUNT,
	       "every message state has a name");

static const char *const message_source_names[] = {
    [MESSAGE_SOURCE_FETCHED] = "fetched",
    [MESSAGE_SOURCE_SUBMITTED] = "submitted",
    [MESSAGE_SOURCE_IMPORTED] = "imported",
};
_Static_assert(sizeof(message_source_names) / sizeof(message_source_names[0]) ==
		   MESSAGE_SOURCE_COUNT,
	       "every message source has a name");

/* The columns store_message_read expects, in its order: a single message's
 * with its prepended text, a listing's with only that text's length. */
#define MESSAGE_COLUMNS_BUT_PREPEND "id, account_id, state, body_size, attempts, received_at"
#define MESSAGE_SUBJECT_TAG_SIZE ", length(CAST(subject_tag AS BLOB))"
#define MESSAGE_COLUMNS MESSAGE_COLUMNS_BUT_PREPEND ", prepend" MESSAGE_SUBJECT_TAG_SIZE
#define MESSAGE_LIST_COLUMNS                                                                       \
	MESSAGE_COLUMNS_BUT_PREPEND ", length(CAST(prepend AS BLOB))" MESSAGE_SUBJECT_TAG_SIZE

int store_message_row_key(sqlite3_stmt *stmt, int id_col, int state_col,
			  char id_out[SPOOL_ID_LEN + 1], enum message_state *state_r)
{
	const char *id = (const char *)sqlite3_column_text(stmt, id_col);
	const char *state = (const char *)sqlite3_column_text(stmt, state_col);
	int parsed = state != NULL ? store_message_state_parse(state) : -1;

	/* Ids become paths; one that is not ours is refused here, not later. */
	if (!spool_id_valid(id)) {
		log_error("store: a message row has an invalid id");
		return -1;
	}
	/* A newer popgate may have written a state this one does not know
	 * (the CHECK of a later schema allows it); that row is left alone. */
	if (parsed < 0) {
		char clean[64];

		log_escape(clean, sizeof(clean), state != NULL ? state : "");
		log_event(LOG_WARN, "unknown_state", NULL, id,
			  "state=%s is not known to this program; the row is skipped", clean);
		return 1;
	}
	memcpy(id_out, id, SPOOL_ID_LEN + 1);
	*state_r = (enum message_state)parsed;
	return 0;
}

/* Fills MESSAGE from the current row of STMT: MESSAGE_COLUMNS, or with
 * WITH_PREPEND false MESSAGE_LIST_COLUMNS. 0; 1 for a row in an unknown state
 * (skipped); -1 for a row this program cannot represent. */
static int store_message_read(sqlite3_stmt *stmt, bool with_prepend,
			      struct store_message *message)
{
	int key;

	memset(message, 0, sizeof(*message));
	key = store_message_row_key(stmt, 0, 2, message->id, &message->state);
	if (key != 0)
		return key;
	message->account_id = sqlite3_column_int64(stmt, 1);
	message->body_size = sqlite3_column_int64(stmt, 3);
	message->attempts = sqlite3_column_int(stmt, 4);
	message->received_at = sqlite3_column_int64(stmt, 5);
	if (with_prepend) {
		const char *prepend = (const char *)sqlite3_column_text(stmt, 6);

		message->prepend = xstrdup(prepend != NULL ? prepend : "");
		message->prepend_size = (int64_t)strlen(message->prepend);
	} else {
		message->prepend_size = sqlite3_column_int64(stmt, 6);
	}
	message->subject_tag_size = sqlite3_column_int64(stmt, 7);
	return 0;
}

/* Steps STMT to the end, collecting each row into *LIST_R. 0 or -1. */
static int store_message_collect(struct store *store, sqlite3_stmt *stmt,
				 struct store_message **list_r, size_t *count_r)
{
	struct store_message *list = NULL;
	size_t count = 0;
	size_t capacity = 0;
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int read;

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		read = store_message_read(stmt, false, &list[count]);
		if (read < 0)
			goto fail;
		if (read == 0)
			count++;
	}
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing messages");
		goto fail;
	}
	/* A POP3 session keeps its listing while it is open: without the spare
	 * room the doubling left (16 rows for a mailbox of 5), an idle session
	 * holds 0.8 kB less. */
	if (count > 0 && count < capacity)
		list = xrealloc(list, count * sizeof(*list));
	*list_r = list;
	*count_r = count;
	return 0;
fail:
	store_message_list_free(&list, count);
	return -1;
}

/* Inserts the message row and its UIDL; the caller provides atomicity. */
static int store_message_insert_rows(struct store *store, const char *id, int64_t account_id,
				     const char *uidl, int64_t body_size, const char *sha256_hex)
{
	static const char insert_message[] =
	    "INSERT INTO message (id, account_id, state, source, uidl, body_size, sha256,"
	    " received_at, state_changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
	static const char insert_uidl[] =
	    "INSERT OR REPLACE INTO provider_uidl (account_id, uidl, message_id, stored_at)"
	    " VALUES (?, ?, ?, ?)";
	int64_t now = util_now();
	sqlite3_stmt *stmt;

	stmt = store_stmt_prepare(store, insert_message);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, account_id);
	sqlite3_bind_text(stmt, 3,
			  message_state_names[store_lifecycle_initial(MESSAGE_SOURCE_FETCHED)], -1,
			  SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, message_source_names[MESSAGE_SOURCE_FETCHED], -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, uidl, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 6, body_size);
	sqlite3_bind_text(stmt, 7, sha256_hex, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 8, now);
	sqlite3_bind_int64(stmt, 9, now);
	if (store_stmt_done(store, stmt, "inserting a message") < 0)
		return -1;
	if (uidl == NULL)
		return 0;
	stmt = store_stmt_prepare(store, insert_uidl);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	sqlite3_bind_text(stmt, 2, uidl, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, now);
	return store_stmt_done(store, stmt, "recording a provider UIDL");
}

const char *store_message_state_name(enum message_state state)
{
	assert(state >= 0 && state < MESSAGE_STATE_COUNT);
	return message_state_names[state];
}

const char *store_message_source_name(enum message_source source)
{
	assert(source >= 0 && source < MESSAGE_SOURCE_COUNT);
	return message_source_names[source];
}

int store_message_state_parse(const char *name)
{
	for (int i = 0; i < MESSAGE_STATE_COUNT; i++) {
		if (strcmp(name, message_state_names[i]) == 0)
			return i;
	}
	return -1;
}

void store_message_clear(struct store_message *message)
{
	free(message->prepend);
	memset(message, 0, sizeof(*message));
}

int store_message_insert(struct store *store, const char *id, int64_t account_id, const char *uidl,
			 int64_t body_size, const char *sha256_hex)
{
	bool outer;

	if (!spool_id_valid(id)) {
		log_error("store: refusing to insert a message with an invalid id");
		return -1;
	}
	/* The caller normally holds the transaction; if not, the row and its
	 * UIDL still commit together, or neither does. */
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (store_message_insert_rows(store, id, account_id, uidl, body_size, sha256_hex) < 0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	return store_tx_commit(store, outer);
}

int store_message_insert_submitted(struct store *store, const char *id, int64_t body_size,
				   const char *prepend, int64_t owner_user_id)
{
	static const char sql[] =
	    "INSERT INTO message (id, account_id, state, source, body_size, prepend, received_at,"
	    " state_changed_at, owner_user_id) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?)";
	int64_t now = util_now();
	sqlite3_stmt *stmt;

	if (!spool_id_valid(id)) {
		log_error("store: refusing to insert a message with an invalid id");
		return -1;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2,
			  message_state_names[store_lifecycle_initial(MESSAGE_SOURCE_SUBMITTED)],
			  -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, message_source_names[MESSAGE_SOURCE_SUBMITTED], -1,
			  SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, body_size);
	sqlite3_bind_text(stmt, 5, prepend != NULL ? prepend : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 6, now);
	sqlite3_bind_int64(stmt, 7, now);
	if (owner_user_id > 0)
		sqlite3_bind_int64(stmt, 8, owner_user_id);
	else
		sqlite3_bind_null(stmt, 8);
	return store_stmt_done(store, stmt, "inserting a submitted message");
}

int store_message_has_copy(struct store *store, int64_t account_id, const char *uidl,
			   const char *sha256_hex)
{
	static const char sql[] = "SELECT 1 FROM message WHERE account_id = ? AND uidl = ?"
				  " AND sha256 = ? LIMIT 1";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	sqlite3_bind_text(stmt, 2, uidl, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, sha256_hex, -1, SQLITE_STATIC);
	return store_stmt_exists(store, stmt, "looking for a stored copy");
}

int store_message_move(struct store *store, const char *id, enum message_state from,
		       enum message_state to, const char *prepend)
{
	return store_lifecycle_move(store, id, from, to, prepend);
}

int store_message_set_verdict(struct store *store, const char *id, double score, const char *action,
			      const char *reasons)
{
	/* A verdict replaces an earlier one's subject tag too (a message judged
	 * again); store_message_set_subject_tag sets a new one after it. */
	static const char sql[] = "UPDATE message SET verdict_score = ?, verdict_action = ?,"
				  " verdict_reasons = ?, subject_tag = '', subject_tag_at = 0"
				  " WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_double(stmt, 1, score);
	sqlite3_bind_text(stmt, 2, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, reasons, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "recording a verdict") < 0)
		return -1;
	if (sqlite3_changes(store->db) == 0) {
		log_error("store: recording a verdict: no message %s", id);
		return -1;
	}
	return 0;
}

int store_message_set_subject_tag(struct store *store, const char *id, int64_t at, const char *tag)
{
	static const char sql[] =
	    "UPDATE message SET subject_tag = ?, subject_tag_at = ? WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, at);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "recording a subject tag") < 0)
		return -1;
	if (sqlite3_changes(store->db) == 0) {
		log_error("store: recording a subject tag: no message %s", id);
		return -1;
	}
	return 0;
}

int store_message_add_attempt(struct store *store, const char *id)
{
	static const char sql[] =
	    "UPDATE message SET attempts = attempts + 1 WHERE id = ? RETURNING attempts";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int attempts = -1;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		attempts = sqlite3_column_int(stmt, 0);
		/* RETURNING writes when stepped to the end; stop early and the
		 * update could be left incomplete. */
		rc = sqlite3_step(stmt);
	}
	if (rc != SQLITE_DONE) {
		store_log_error(store, "counting a worker attempt");
		attempts = -1;
	} else if (attempts < 0) {
		log_error("store: counting a worker attempt: no message %s", id);
	}
	store_stmt_release(stmt);
	return attempts;
}

int store_message_list(struct store *store, int64_t account_id, enum message_state state,
		       struct store_message **list_r, size_t *count_r)
{
	static const char sql[] = "SELECT " MESSAGE_LIST_COLUMNS " FROM message"
				  " WHERE account_id = ? AND state = ? ORDER BY seq";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	sqlite3_bind_text(stmt, 2, store_message_state_name(state), -1, SQLITE_STATIC);
	rc = store_message_collect(store, stmt, list_r, count_r);
	store_stmt_release(stmt);
	return rc;
}

int store_message_list_all(struct store *store, enum message_state state,
			   struct store_message **list_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT " MESSAGE_LIST_COLUMNS " FROM message WHERE state = ? ORDER BY seq";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, store_message_state_name(state), -1, SQLITE_STATIC);
	rc = store_message_collect(store, stmt, list_r, count_r);
	store_stmt_release(stmt);
	return rc;
}

void store_message_list_free(struct store_message **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_message_clear(&(*list)[i]);
	xfree(list);
}

int store_message_get(struct store *store, const char *id, struct store_message *message)
{
	static const char sql[] = "SELECT " MESSAGE_COLUMNS " FROM message WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	memset(message, 0, sizeof(*message));
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading a message");
	if (result == 1) {
		int read = store_message_read(stmt, true, message);

		/* A row in an unknown state is not one this program may touch. */
		if (read != 0)
			result = read < 0 ? -1 : 0;
	}
	store_stmt_release(stmt);
	return result;
}

int store_message_read_prepend(struct store *store, const char *id, char **prepend_r)
{
	struct store_served served;
	int result = store_message_read_served(store, id, &served);

	*prepend_r = served.prepend;
	free(served.subject_tag);
	return result;
}

/* Copies the served additions from columns FIRST.. (prepend, subject_tag,
 * subject_tag_at) of STMT's row. */
static void store_message_served_read(sqlite3_stmt *stmt, int first, struct store_served *served)
{
	const char *prepend = (const char *)sqlite3_column_text(stmt, first);
	const char *tag = (const char *)sqlite3_column_text(stmt, first + 1);

	served->prepend = xstrdup(prepend != NULL ? prepend : "");
	served->subject_tag = tag != NULL && *tag != '\0' ? xstrdup(tag) : NULL;
	served->subject_tag_at = sqlite3_column_int64(stmt, first + 2);
}

int store_message_read_served(struct store *store, const char *id, struct store_served *served)
{
	static const char sql[] =
	    "SELECT prepend, subject_tag, subject_tag_at FROM message WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	memset(served, 0, sizeof(*served));
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading a message's prepended lines");
	if (result == 1)
		store_message_served_read(stmt, 0, served);
	store_stmt_release(stmt);
	return result;
}

void store_served_clear(struct store_served *served)
{
	xfree(&served->prepend);
	xfree(&served->subject_tag);
	served->subject_tag_at = 0;
}

int store_message_each_served(struct store *store, int64_t account_id, enum message_state state,
			      void (*take)(void *ctx, const char *id, struct store_served *served),
			      void *ctx)
{
	static const char sql[] = "SELECT id, prepend, subject_tag, subject_tag_at FROM message"
				  " WHERE account_id = ? AND state = ? ORDER BY seq";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	sqlite3_bind_text(stmt, 2, store_message_state_name(state), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		struct store_served served;

		if (id == NULL)
			continue;
		store_message_served_read(stmt, 1, &served);
		take(ctx, id, &served);
		store_served_clear(&served);
	}
	if (rc != SQLITE_DONE)
		store_log_error(store, "reading prepended header lines");
	store_stmt_release(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

int store_message_exists(struct store *store, const char *id)
{
	static const char sql[] = "SELECT 1 FROM message WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	return store_stmt_exists(store, stmt, "looking up a message");
}

/* The rows in STATE whose state changed before CUTOFF, deleted (see
 * store_message_expire_rows). */
static int message_expire_state_rows(struct store *store, enum message_state state,
				     int64_t cutoff, char (**ids_r)[SPOOL_ID_LEN + 1],
				     size_t *count_r)
{
	static const char select_sql[] =
	    "SELECT id FROM message WHERE state = ? AND state_changed_at < ?";
	static const char delete_sql[] =
	    "DELETE FROM message WHERE state = ? AND state_changed_at < ?";
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0;
	size_t capacity = 0;
	sqlite3_stmt *stmt;
	bool outer;
	int rc;

	*ids_r = NULL;
	*count_r = 0;
	/* Inside one IMMEDIATE transaction (the caller's or this one) the
	 * SELECT and the DELETE see the same rows: no writer can move a
	 * message in between. */
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	stmt = store_stmt_prepare(store, select_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, message_state_names[state], -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, cutoff);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);

		/* A row whose id is no id has no body this code may touch. */
		if (!spool_id_valid(id))
			continue;
		ids = store_list_grow(ids, count, &capacity, sizeof(*ids));
		memcpy(ids[count++], id, SPOOL_ID_LEN + 1);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing expired messages");
		goto fail;
	}
	stmt = store_stmt_prepare(store, delete_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, message_state_names[state], -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, cutoff);
	if (store_stmt_done(store, stmt, "deleting expired messages") < 0)
		goto fail;
	rc = sqlite3_changes(store->db);
	if (store_tx_commit(store, outer) < 0) {
		/* Harmless after a failed commit, which has rolled back already. */
		if (outer)
			store_rollback(store);
		free(ids);
		return -1;
	}
	*ids_r = ids;
	*count_r = count;
	return rc;
fail:
	store_tx_rollback(store, outer);
	free(ids);
	return -1;
}

int store_message_expire_rows(struct store *store, int64_t cutoff, char (**ids_r)[SPOOL_ID_LEN + 1],
			      size_t *count_r)
{
	return message_expire_state_rows(store, MESSAGE_DELIVERED, cutoff, ids_r, count_r);
}

int store_message_expire_quarantine_rows(struct store *store, int64_t cutoff,
					 char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r)
{
	return message_expire_state_rows(store, MESSAGE_QUARANTINE, cutoff, ids_r, count_r);
}

int store_message_expire_challenged_rows(struct store *store, int64_t cutoff,
					 char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r)
{
	return message_expire_state_rows(store, MESSAGE_CHALLENGED, cutoff, ids_r, count_r);
}

int store_message_ids_before(struct store *store, enum message_state state, int64_t cutoff,
			     char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r)
{
	static const char sql[] = "SELECT id FROM message WHERE state = ? AND state_changed_at < ?"
				  " ORDER BY seq";
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*ids_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_state_names[state], -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, cutoff);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);

		if (!spool_id_valid(id))
			continue;
		ids = store_list_grow(ids, count, &capacity, sizeof(*ids));
		memcpy(ids[count++], id, SPOOL_ID_LEN + 1);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing messages by state");
		free(ids);
		return -1;
	}
	*ids_r = ids;
	*count_r = count;
	return 0;
}

int store_message_add_reason(struct store *store, const char *id, const char *action,
			     const char *line)
{
	static const char sql[] =
	    "UPDATE message SET verdict_action = ?, verdict_reasons = coalesce(verdict_reasons, '')"
	    " || ? WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, action, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, line, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "adding a verdict reason") < 0)
		return -1;
	if (sqlite3_changes(store->db) == 0) {
		log_error("store: adding a verdict reason: no message %s", id);
		return -1;
	}
	return 0;
}

void store_message_remove_bodies(const char *data_dir, const char (*ids)[SPOOL_ID_LEN + 1],
				 size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (spool_remove(data_dir, ids[i]) < 0)
			log_warn("store: removing the body of %s: %s", ids[i], strerror(errno));
	}
}

int store_message_expire_delivered(struct store *store, int64_t cutoff)
{
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0;

	/* The bodies go only after the deletion commits, which a caller's
	 * transaction would postpone past this function: a bug to call it so. */
	assert(sqlite3_get_autocommit(store->db));
	int rc = store_message_expire_rows(store, cutoff, &ids, &count);
	if (rc < 0)
		return -1;
	/* A body left behind by a failure here has no row any more, so the
	 * start-up sweep (spool_remove_orphans) removes it. */
	store_message_remove_bodies(store->data_dir, (const char(*)[SPOOL_ID_LEN + 1])ids, count);
	free(ids);
	return rc;
}

int store_message_count_by_state(struct store *store, int64_t account_id,
				 int64_t counts[MESSAGE_STATE_COUNT])
{
	static const char sql[] =
	    "SELECT state, count(*) FROM message WHERE account_id = ? GROUP BY state";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	for (int i = 0; i < MESSAGE_STATE_COUNT; i++)
		counts[i] = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 0);
		int state = name != NULL ? store_message_state_parse(name) : -1;

		/* A state a newer program wrote is not counted here. */
		if (state >= 0)
			counts[state] = sqlite3_column_int64(stmt, 1);
	}
	if (rc != SQLITE_DONE)
		store_log_error(store, "counting messages");
	store_stmt_release(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}
