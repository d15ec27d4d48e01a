/*
 * envelope.c — the envelope and envelope_recipient tables: who a message to
 * relay is from and, per recipient, where its delivery stands.
 *
 * Owns: those two tables.
 * Must never: touch the message's state (store/lifecycle.c does), or trust
 * an address: they are stored as given and checked by whoever sends.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/envelope.h"

static const char *const envelope_status_names[] = {
    [ENVELOPE_PENDING] = "pending",
    [ENVELOPE_SENT] = "sent",
    [ENVELOPE_FAILED] = "failed",
};
_Static_assert(sizeof(envelope_status_names) / sizeof(envelope_status_names[0]) ==
		   ENVELOPE_STATUS_COUNT,
	       "every envelope status has a name");

/* Inserts the rows of store_envelope_add; the caller provides atomicity. */
static int store_envelope_insert_rows(struct store *store, const char *message_id,
				      const char *sender, const char *const *recipients,
				      size_t count)
{
	static const char insert_envelope[] =
	    "INSERT INTO envelope (message_id, sender) VALUES (?, ?)";
	static const char insert_recipient[] =
	    "INSERT OR IGNORE INTO envelope_recipient (message_id, address) VALUES (?, ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, insert_envelope);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, sender, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "recording an envelope") < 0)
		return -1;
	for (size_t i = 0; i < count; i++) {
		stmt = store_stmt_prepare(store, insert_recipient);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 2, recipients[i], -1, SQLITE_STATIC);
		if (store_stmt_done(store, stmt, "recording an envelope recipient") < 0)
			return -1;
	}
	return 0;
}

const char *store_envelope_status_name(enum envelope_status status)
{
	assert(status >= 0 && status < ENVELOPE_STATUS_COUNT);
	return envelope_status_names[status];
}

int store_envelope_status_parse(const char *name)
{
	for (int i = 0; i < ENVELOPE_STATUS_COUNT; i++) {
		if (strcmp(name, envelope_status_names[i]) == 0)
			return i;
	}
	return -1;
}

int store_envelope_add(struct store *store, const char *message_id, const char *sender,
		       const char *const *recipients, size_t count)
{
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (store_envelope_insert_rows(store, message_id, sender, recipients, count) < 0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	return store_tx_commit(store, outer);
}

int store_envelope_sender(struct store *store, const char *message_id, char **sender_r)
{
	static const char sql[] = "SELECT sender FROM envelope WHERE message_id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	*sender_r = NULL;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading an envelope");
	if (result == 1)
		*sender_r = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	store_stmt_release(stmt);
	return result;
}

int store_envelope_recipients(struct store *store, const char *message_id, char ***addresses_r,
			      size_t *count_r)
{
	static const char sql[] =
	    "SELECT address FROM envelope_recipient WHERE message_id = ? ORDER BY address";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char **addresses = NULL;
	size_t count = 0;
	int result;

	*addresses_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	while ((result = store_stmt_step(store, stmt, "reading an envelope's recipients")) == 1) {
		addresses = xrealloc(addresses, (count + 1) * sizeof(*addresses));
		addresses[count++] = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	}
	store_stmt_release(stmt);
	if (result < 0) {
		store_envelope_recipients_free(&addresses, count);
		return -1;
	}
	*addresses_r = addresses;
	*count_r = count;
	return 0;
}

void store_envelope_recipients_free(char ***addresses, size_t count)
{
	if (*addresses == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*addresses)[i]);
	xfree(addresses);
}

int store_envelope_list_due(struct store *store, int64_t now, size_t limit,
			    struct store_envelope_recipient **list_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT message_id, address, status, attempts, next_attempt_at"
	    " FROM envelope_recipient WHERE status = 'pending' AND next_attempt_at <= ?"
	    " ORDER BY next_attempt_at, message_id, address LIMIT ?";
	struct store_envelope_recipient *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_int64(stmt, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		struct store_envelope_recipient *r;

		/* Ids become paths: a row whose id is none is left alone. */
		if (!spool_id_valid(id)) {
			log_warn("store: an envelope row has an invalid message id; skipped");
			continue;
		}
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		r = &list[count++];
		memcpy(r->message_id, id, SPOOL_ID_LEN + 1);
		r->address = xstrdup((const char *)sqlite3_column_text(stmt, 1));
		r->status = ENVELOPE_PENDING;
		r->attempts = sqlite3_column_int(stmt, 3);
		r->next_attempt_at = sqlite3_column_int64(stmt, 4);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing due recipients");
		store_envelope_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_envelope_list_free(struct store_envelope_recipient **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*list)[i].address);
	xfree(list);
}

int store_envelope_set_recipient(struct store *store, const char *message_id, const char *address,
				 enum envelope_status status, int attempts, int64_t next_attempt_at)
{
	static const char sql[] =
	    "UPDATE envelope_recipient SET status = ?, attempts = ?, next_attempt_at = ?"
	    " WHERE message_id = ? AND address = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, store_envelope_status_name(status), -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 2, attempts);
	sqlite3_bind_int64(stmt, 3, next_attempt_at);
	sqlite3_bind_text(stmt, 4, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, address, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "updating an envelope recipient") < 0)
		return -1;
	return sqlite3_changes(store->db) > 0 ? 1 : 0;
}
