/*
 * outbound.c — delivery results, the end of a message's relay and the DSN
 * it may send (outbound.h).
 *
 * Owns: the result columns of envelope_recipient (status, attempts,
 * next_attempt_at, last_attempt_at, last_reply), envelope.dsn_sent, and the
 * rows of the DSNs it queues. Moves message states only through
 * store/lifecycle.h.
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "smtp/dsn.h"
#include "store/correspondent.h"
#include "store/envelope.h"
#include "store/lifecycle.h"
#include "store/message.h"
#include "store/outbound.h"

/* The owner of MESSAGE_ID into *OWNER_R (0: none). 0 or -1. */
static int outbound_owner(struct store *store, const char *message_id, int64_t *owner_r)
{
	static const char sql[] = "SELECT owner_user_id FROM message WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int found;

	*owner_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	found = store_stmt_step(store, stmt, "reading a message's owner");
	if (found == 1)
		*owner_r = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	return found < 0 ? -1 : 0;
}

static int outbound_record_one(struct store *store, const char *message_id,
			       const struct outbound_attempt *a, int64_t now, int64_t owner)
{
	static const char sql[] =
	    "UPDATE envelope_recipient SET status = ?, attempts = attempts + 1,"
	    " next_attempt_at = ?, last_attempt_at = ?, last_reply = ?"
	    " WHERE message_id = ? AND address = ? AND status = 'pending'";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char reply[512];

	if (stmt == NULL)
		return -1;
	/* A remote server's words: one printable line, bounded. */
	util_sanitize(reply, sizeof(reply), a->reply != NULL ? a->reply : "",
		      a->reply != NULL ? strlen(a->reply) : 0);
	sqlite3_bind_text(stmt, 1, store_envelope_status_name(a->status), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, a->next_attempt_at);
	sqlite3_bind_int64(stmt, 3, now);
	sqlite3_bind_text(stmt, 4, reply, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 6, a->address, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "recording a delivery attempt") < 0)
		return -1;
	if (sqlite3_changes(store->db) == 0 || a->status != ENVELOPE_SENT || owner == 0)
		return 0;
	return store_correspondent_add(store, owner, a->address, now);
}

int store_outbound_record(struct store *store, const char *message_id,
			  const struct outbound_attempt *attempts, size_t count, int64_t now)
{
	int64_t owner;
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (outbound_owner(store, message_id, &owner) < 0)
		goto fail;
	for (size_t i = 0; i < count; i++)
		if (outbound_record_one(store, message_id, &attempts[i], now, owner) < 0)
			goto fail;
	return store_tx_commit(store, outer);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

/* Counts MESSAGE_ID's recipients: *PENDING_R and *FAILED_R. 0 or -1. */
static int outbound_count(struct store *store, const char *message_id, int *pending_r,
			  int *failed_r)
{
	static const char sql[] =
	    "SELECT coalesce(sum(status = 'pending'), 0), coalesce(sum(status = 'failed'), 0)"
	    " FROM envelope_recipient WHERE message_id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int found;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	found = store_stmt_step(store, stmt, "counting an envelope's recipients");
	if (found == 1) {
		*pending_r = sqlite3_column_int(stmt, 0);
		*failed_r = sqlite3_column_int(stmt, 1);
	}
	store_stmt_release(stmt);
	return found == 1 ? 0 : -1;
}

/* The failed recipients of MESSAGE_ID, for the DSN: *LIST_R, *COUNT_R (the
 * strings allocated; outbound_failed_free). 0 or -1. */
static int outbound_failed(struct store *store, const char *message_id,
			   struct dsn_recipient **list_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT address, last_reply, last_attempt_at FROM envelope_recipient"
	    " WHERE message_id = ? AND status = 'failed' ORDER BY address";
	struct dsn_recipient *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count].address = xstrdup((const char *)sqlite3_column_text(stmt, 0));
		list[count].last_reply = xstrdup((const char *)sqlite3_column_text(stmt, 1));
		list[count].last_attempt_at = sqlite3_column_int64(stmt, 2);
		count++;
	}
	store_stmt_release(stmt);
	*list_r = list;
	*count_r = count;
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing failed recipients");
		return -1;
	}
	return 0;
}

static void outbound_failed_free(struct dsn_recipient *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free((char *)list[i].address);
		free((char *)list[i].last_reply);
	}
	free(list);
}

/* Inserts the DSN's rows: a submitted message in its first state, without
 * owner, from <> to SENDER; and marks MESSAGE_ID's envelope dsn_sent. */
static int outbound_insert_dsn(struct store *store, const char *message_id, const char *dsn_id,
			       size_t size, const char *sender, int64_t now)
{
	static const char insert[] =
	    "INSERT INTO message (id, account_id, state, source, body_size, received_at,"
	    " state_changed_at) VALUES (?, NULL, ?, 'submitted', ?, ?, ?)";
	static const char mark[] = "UPDATE envelope SET dsn_sent = 1 WHERE message_id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, insert);
	const char *to[1] = {sender};

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, dsn_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(
	    stmt, 2, store_message_state_name(store_lifecycle_initial(MESSAGE_SOURCE_SUBMITTED)),
	    -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, (int64_t)size);
	sqlite3_bind_int64(stmt, 4, now);
	sqlite3_bind_int64(stmt, 5, now);
	if (store_stmt_done(store, stmt, "queueing a DSN") < 0)
		return -1;
	if (store_envelope_add(store, dsn_id, "", to, 1) < 0)
		return -1;
	stmt = store_stmt_prepare(store, mark);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	return store_stmt_done(store, stmt, "marking a DSN sent");
}

/* Writes and queues the DSN for MESSAGE_ID (bounced) when one is owed. */
static int outbound_dsn(struct store *store, const char *message_id, const char *reporting_mta,
			int64_t now, char dsn_id[SPOOL_ID_LEN + 1])
{
	static const char sql[] = "SELECT e.sender, e.dsn_sent, m.received_at, m.prepend"
				  " FROM envelope e JOIN message m ON m.id = e.message_id"
				  " WHERE e.message_id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	struct dsn_recipient *failed = NULL;
	struct spool_writer *body = NULL;
	char *sender = NULL, *prepend = NULL, *headers = NULL, *text = NULL;
	size_t failed_count = 0, len = 0;
	int64_t arrival = 0;
	int found, dsn_sent = 1, rc = -1;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	found = store_stmt_step(store, stmt, "reading an envelope");
	if (found == 1) {
		sender = xstrdup((const char *)sqlite3_column_text(stmt, 0));
		dsn_sent = sqlite3_column_int(stmt, 1);
		arrival = sqlite3_column_int64(stmt, 2);
		prepend = xstrdup((const char *)sqlite3_column_text(stmt, 3));
	}
	store_stmt_release(stmt);
	if (found < 0)
		goto done;
	/* Never to the null sender (no loops), and once. */
	if (found == 0 || dsn_sent || *sender == '\0') {
		rc = 0;
		goto done;
	}
	if (outbound_failed(store, message_id, &failed, &failed_count) < 0)
		goto done;
	/* A body gone missing still gets its sender told, without the header. */
	if (dsn_read_headers(store->data_dir, message_id, prepend, &headers) < 0)
		headers = xstrdup("");
	text = dsn_build(&(struct dsn_input){.reporting_mta = reporting_mta,
					     .sender = sender,
					     .original_id = message_id,
					     .arrival = arrival,
					     .now = now,
					     .headers = headers,
					     .recipients = failed,
					     .count = failed_count},
			 &len);
	body = spool_writer_new(store->data_dir);
	if (body == NULL) {
		log_error("relay: cannot write a DSN for %s to the spool", message_id);
		goto done;
	}
	spool_writer_write(body, text, len);
	if (spool_writer_commit(body) < 0) {
		log_error("relay: cannot write a DSN for %s to the spool", message_id);
		goto done;
	}
	if (outbound_insert_dsn(store, message_id, body->id, len, sender, now) < 0)
		goto done;
	memcpy(dsn_id, body->id, SPOOL_ID_LEN + 1);
	log_event(LOG_INFO, "dsn", NULL, message_id, "a DSN for %zu recipient(s) queued as %s",
		  failed_count, body->id);
	rc = 0;
done:
	spool_writer_free(&body);
	outbound_failed_free(failed, failed_count);
	free(text);
	free(headers);
	free(prepend);
	free(sender);
	return rc;
}

static int outbound_finish_in(struct store *store, const char *message_id,
			      const char *reporting_mta, int64_t now, char dsn_id[SPOOL_ID_LEN + 1])
{
	int pending = 0, failed = 0, moved;

	if (outbound_count(store, message_id, &pending, &failed) < 0)
		return -1;
	if (pending > 0)
		return 0;
	moved = store_lifecycle_move(store, message_id, MESSAGE_OUTBOUND,
				     failed > 0 ? MESSAGE_BOUNCED : MESSAGE_SENT, NULL);
	if (moved <= 0)
		return moved;
	if (failed == 0)
		return 1;
	return outbound_dsn(store, message_id, reporting_mta, now, dsn_id) < 0 ? -1 : 2;
}

int store_outbound_finish(struct store *store, const char *message_id, const char *reporting_mta,
			  int64_t now, char dsn_id[SPOOL_ID_LEN + 1])
{
	bool outer;
	int rc;

	dsn_id[0] = '\0';
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	rc = outbound_finish_in(store, message_id, reporting_mta, now, dsn_id);
	if (rc < 0) {
		dsn_id[0] = '\0';
		store_tx_rollback(store, outer);
		return -1;
	}
	return store_tx_commit(store, outer) < 0 ? -1 : rc;
}

int store_outbound_retry(struct store *store, const char *message_id, int64_t now)
{
	static const char sql[] =
	    "UPDATE envelope_recipient SET next_attempt_at = ?1 WHERE status = 'pending'"
	    " AND next_attempt_at > ?1 AND (?2 IS NULL OR message_id = ?2)"
	    " AND message_id IN (SELECT id FROM message WHERE state = 'outbound')";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	if (message_id != NULL)
		sqlite3_bind_text(stmt, 2, message_id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "making recipients due") < 0)
		return -1;
	return sqlite3_changes(store->db);
}

int store_outbound_bounce(struct store *store, const char *message_id, int64_t now)
{
	static const char sql[] =
	    "UPDATE envelope_recipient SET status = 'failed', last_attempt_at = ?,"
	    " last_reply = '" OUTBOUND_BOUNCED_REPLY "' WHERE message_id = ? AND status = 'pending'"
	    " AND message_id IN (SELECT id FROM message WHERE state = 'outbound')";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_text(stmt, 2, message_id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "bouncing recipients") < 0)
		return -1;
	return sqlite3_changes(store->db);
}

int store_outbound_unfinished(struct store *store, size_t limit, char (**ids_r)[SPOOL_ID_LEN + 1],
			      size_t *count_r)
{
	static const char sql[] =
	    "SELECT m.id FROM message m WHERE m.state = 'outbound'"
	    " AND EXISTS (SELECT 1 FROM envelope_recipient r WHERE r.message_id = m.id)"
	    " AND NOT EXISTS (SELECT 1 FROM envelope_recipient r WHERE r.message_id = m.id"
	    " AND r.status = 'pending') ORDER BY m.seq LIMIT ?";
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*ids_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);

		if (!spool_id_valid(id))
			continue;
		ids = store_list_grow(ids, count, &capacity, sizeof(*ids));
		memcpy(ids[count++], id, SPOOL_ID_LEN + 1);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing finished outbound mail");
		free(ids);
		return -1;
	}
	*ids_r = ids;
	*count_r = count;
	return 0;
}

static int outbound_recipients(struct store *store, struct outbound_message *m)
{
	static const char sql[] =
	    "SELECT address, status, attempts, next_attempt_at, last_attempt_at, last_reply"
	    " FROM envelope_recipient WHERE message_id = ? ORDER BY address";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	size_t capacity = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, m->id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct outbound_recipient *r;
		int status =
		    store_envelope_status_parse((const char *)sqlite3_column_text(stmt, 1));

		m->recipients =
		    store_list_grow(m->recipients, m->recipient_count, &capacity, sizeof(*r));
		r = &m->recipients[m->recipient_count++];
		r->address = xstrdup((const char *)sqlite3_column_text(stmt, 0));
		r->status = status < 0 ? ENVELOPE_PENDING : status;
		r->attempts = sqlite3_column_int(stmt, 2);
		r->next_attempt_at = sqlite3_column_int64(stmt, 3);
		r->last_attempt_at = sqlite3_column_int64(stmt, 4);
		r->last_reply = xstrdup((const char *)sqlite3_column_text(stmt, 5));
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing an envelope's recipients");
		return -1;
	}
	return 0;
}

int store_outbound_list(struct store *store, const char *id, struct outbound_message **list_r,
			size_t *count_r)
{
	static const char sql[] =
	    "SELECT m.id, coalesce(e.sender, ''), m.received_at, m.body_size,"
	    " coalesce(m.owner_user_id, 0) FROM message m LEFT JOIN envelope e"
	    " ON e.message_id = m.id WHERE m.state = 'outbound' AND (?1 IS NULL OR m.id = ?1)"
	    " ORDER BY m.seq";
	struct outbound_message *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	if (id != NULL)
		sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *mid = (const char *)sqlite3_column_text(stmt, 0);
		struct outbound_message *m;

		if (!spool_id_valid(mid))
			continue;
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		m = &list[count++];
		memset(m, 0, sizeof(*m));
		memcpy(m->id, mid, SPOOL_ID_LEN + 1);
		m->sender = xstrdup((const char *)sqlite3_column_text(stmt, 1));
		m->received_at = sqlite3_column_int64(stmt, 2);
		m->body_size = sqlite3_column_int64(stmt, 3);
		m->owner_user_id = sqlite3_column_int64(stmt, 4);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing outbound mail");
		store_outbound_list_free(&list, count);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		if (outbound_recipients(store, &list[i]) < 0) {
			store_outbound_list_free(&list, count);
			return -1;
		}
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_outbound_list_free(struct outbound_message **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		struct outbound_message *m = &(*list)[i];

		for (size_t j = 0; j < m->recipient_count; j++) {
			free(m->recipients[j].address);
			free(m->recipients[j].last_reply);
		}
		free(m->recipients);
		free(m->sender);
	}
	xfree(list);
}

int store_outbound_due(struct store *store, int64_t now, size_t limit, struct outbound_due **list_r,
		       size_t *count_r)
{
	static const char sql[] =
	    "SELECT r.message_id, r.address, r.attempts, r.last_reply, e.sender, m.received_at,"
	    " m.body_size FROM envelope_recipient r JOIN envelope e ON e.message_id = r.message_id"
	    " JOIN message m ON m.id = r.message_id WHERE r.status = 'pending'"
	    " AND r.next_attempt_at <= ? AND m.state = 'outbound'"
	    " ORDER BY m.seq, r.address LIMIT ?";
	struct outbound_due *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_int64(stmt, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		struct outbound_due *d;

		if (!spool_id_valid(id))
			continue; /* ids become paths */
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		d = &list[count++];
		memcpy(d->message_id, id, SPOOL_ID_LEN + 1);
		d->address = xstrdup((const char *)sqlite3_column_text(stmt, 1));
		d->attempts = sqlite3_column_int(stmt, 2);
		d->last_reply = xstrdup((const char *)sqlite3_column_text(stmt, 3));
		d->sender = xstrdup((const char *)sqlite3_column_text(stmt, 4));
		d->received_at = sqlite3_column_int64(stmt, 5);
		d->body_size = sqlite3_column_int64(stmt, 6);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing due outbound recipients");
		store_outbound_due_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_outbound_due_free(struct outbound_due **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].address);
		free((*list)[i].last_reply);
		free((*list)[i].sender);
	}
	xfree(list);
}

int store_outbound_next_due(struct store *store, int64_t now, int64_t *next_r)
{
	static const char sql[] =
	    "SELECT coalesce(min(r.next_attempt_at), 0) FROM envelope_recipient r"
	    " JOIN message m ON m.id = r.message_id WHERE r.status = 'pending'"
	    " AND r.next_attempt_at > ? AND m.state = 'outbound'";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int found;

	*next_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	found = store_stmt_step(store, stmt, "reading the next due recipient");
	if (found == 1)
		*next_r = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	return found < 0 ? -1 : 0;
}
