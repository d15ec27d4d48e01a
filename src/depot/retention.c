/*
 * retention.c — MailDepot's retention periods, legal holds and expiry
 * (see retention.h): the rows of tables retention and hold, the chain
 * entries that record each change, and depot_expire, the only code that
 * removes archived mail.
 *
 * Owns: the retention and hold tables; while depot_expire runs, the index
 * rows and blobs it removes. Must never: remove a message a hold covers or
 * whose retention has not passed, a chain entry, a message row's seq, or a
 * blob a kept message refers to; print or log a message's text; leave an
 * expired message's words in the full-text index (when its row cannot be
 * remade to delete it, a damaged blob, the index is made anew).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/address.h"
#include "core/util.h"
#include "depot/depot_internal.h"
#include "depot/retention.h"
#include "store/user.h"

#define RETENTION_SECONDS_PER_DAY 86400

/* ---- scopes --------------------------------------------------------- */

char *depot_scope(const char *kind, const char *value, char *err, size_t errlen)
{
	if (strcmp(kind, "all") == 0 || strcmp(kind, "default") == 0)
		return xstrdup(kind);
	if (value == NULL || *value == '\0') {
		snprintf(err, errlen, "%s: no value", kind);
		return NULL;
	}
	if (strcmp(kind, "domain") == 0) {
		char *probe = xasprintf("x@%s", value);
		bool valid = strlen(value) <= ADDRESS_MAX - 2 && address_valid(probe);

		free(probe);
		if (!valid) {
			snprintf(err, errlen, "not a domain name");
			return NULL;
		}
		char *scope = xasprintf("domain:%s", value);

		for (char *p = scope; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		return scope;
	}
	if (strcmp(kind, "user") == 0) {
		if (!store_user_name_valid(value)) {
			snprintf(err, errlen, "not a user name");
			return NULL;
		}
		return xasprintf("user:%s", value);
	}
	if (strcmp(kind, "message") == 0) {
		char *end;
		long long seq;

		errno = 0;
		seq = strtoll(value, &end, 10);
		if (errno != 0 || end == value || *end != '\0' || seq <= 0) {
			snprintf(err, errlen, "not a message number");
			return NULL;
		}
		return xasprintf("message:%lld", seq);
	}
	snprintf(err, errlen, "unknown scope kind");
	return NULL;
}

void depot_scope_rows_free(struct depot_scope_row **rows, size_t count)
{
	if (*rows == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*rows)[i].scope);
		free((*rows)[i].reason);
	}
	xfree(rows);
}

void depot_expiry_free(struct depot_expiry *expiry)
{
	free(expiry->seqs);
	memset(expiry, 0, sizeof(*expiry));
}

/* ---- transactions --------------------------------------------------- */

static int retention_sql(struct depot *depot, const char *sql, char *err, size_t errlen)
{
	char *message = NULL;

	if (sqlite3_exec(depot_db(depot), sql, NULL, NULL, &message) != SQLITE_OK) {
		snprintf(err, errlen, "depot: %s", message != NULL ? message : "SQL failed");
		sqlite3_free(message);
		return -1;
	}
	return 0;
}

static sqlite3_stmt *retention_prepare(struct depot *depot, const char *sql, char *err,
				       size_t errlen)
{
	sqlite3_stmt *stmt = NULL;

	if (sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		return NULL;
	}
	return stmt;
}

/* Takes write.lock and opens a write transaction. 0 / -1 ERR. */
static int retention_begin(struct depot *depot, char *err, size_t errlen)
{
	if (depot_write_lock(depot, err, errlen) < 0)
		return -1;
	if (retention_sql(depot, "BEGIN IMMEDIATE", err, errlen) < 0) {
		depot_write_unlock(depot);
		return -1;
	}
	return 0;
}

/* Commits (RC 0) or rolls back, and releases write.lock. RC, or -1 when the
 * commit failed. */
static int retention_end(struct depot *depot, int rc, char *err, size_t errlen)
{
	if (rc >= 0 && retention_sql(depot, "COMMIT", err, errlen) < 0)
		rc = -1;
	if (rc < 0)
		sqlite3_exec(depot_db(depot), "ROLLBACK", NULL, NULL, NULL);
	depot_write_unlock(depot);
	return rc;
}

/* ---- retention and holds ---------------------------------------------- */

int depot_retention_set(struct depot *depot, const char *scope, int64_t days, char *err,
			size_t errlen)
{
	sqlite3_stmt *stmt;
	char *detail;
	int rc = -1;

	if (days < 1 || days > DEPOT_RETENTION_DAYS_MAX) {
		snprintf(err, errlen, "retention out of range (1 to %d days)",
			 DEPOT_RETENTION_DAYS_MAX);
		return -1;
	}
	if (strncmp(scope, "domain:", 7) != 0 && strncmp(scope, "user:", 5) != 0 &&
	    strcmp(scope, "default") != 0) {
		snprintf(err, errlen, "a retention is for a domain, a user or the default");
		return -1;
	}
	if (retention_begin(depot, err, errlen) < 0)
		return -1;
	stmt = retention_prepare(depot,
				 "INSERT INTO retention(scope, days) VALUES(?, ?) "
				 "ON CONFLICT(scope) DO UPDATE SET days = excluded.days",
				 err, errlen);
	detail = xasprintf("%s days:%" PRId64, scope, days);
	if (stmt != NULL) {
		sqlite3_bind_text(stmt, 1, scope, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, days);
		if (sqlite3_step(stmt) != SQLITE_DONE)
			snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		else
			rc = depot_chain_append(depot, "retention", NULL, NULL, detail, util_now(),
						NULL, err, errlen);
	}
	sqlite3_finalize(stmt);
	free(detail);
	return retention_end(depot, rc, err, errlen);
}

/* Reads the rows of SQL (scope, a number, a text or NULL, a number). */
static int retention_rows(struct depot *depot, const char *sql, struct depot_scope_row **rows_r,
			  size_t *count_r, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = retention_prepare(depot, sql, err, errlen);
	size_t capacity = 0;
	int step;

	*rows_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct depot_scope_row *row;
		const char *reason = (const char *)sqlite3_column_text(stmt, 2);

		if (*count_r == capacity) {
			capacity = capacity == 0 ? 16 : capacity * 2;
			*rows_r = xrealloc(*rows_r, capacity * sizeof(**rows_r));
		}
		row = &(*rows_r)[(*count_r)++];
		row->scope = xstrdup((const char *)sqlite3_column_text(stmt, 0));
		row->days = sqlite3_column_int64(stmt, 1);
		row->reason = reason != NULL ? xstrdup(reason) : NULL;
		row->at = sqlite3_column_int64(stmt, 3);
	}
	sqlite3_finalize(stmt);
	if (step != SQLITE_DONE) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		depot_scope_rows_free(rows_r, *count_r);
		*count_r = 0;
		return -1;
	}
	return 0;
}

int depot_retention_list(struct depot *depot, struct depot_scope_row **rows_r, size_t *count_r,
			 char *err, size_t errlen)
{
	return retention_rows(depot, "SELECT scope, days, NULL, 0 FROM retention ORDER BY scope",
			      rows_r, count_r, err, errlen);
}

int depot_hold_list(struct depot *depot, struct depot_scope_row **rows_r, size_t *count_r,
		    char *err, size_t errlen)
{
	return retention_rows(depot, "SELECT scope, 0, reason, at FROM hold ORDER BY scope", rows_r,
			      count_r, err, errlen);
}

/* REASON with control characters as spaces, at most DEPOT_HOLD_REASON_MAX
 * bytes (cut at a character boundary); NULL for none or an empty one. */
static char *retention_reason(const char *reason)
{
	size_t len;
	char *clean;

	if (reason == NULL || *reason == '\0')
		return NULL;
	len = strlen(reason);
	if (len > DEPOT_HOLD_REASON_MAX) {
		len = DEPOT_HOLD_REASON_MAX;
		while (len > 0 && ((unsigned char)reason[len] & 0xC0) == 0x80)
			len--;
	}
	clean = xstrndup(reason, len);
	for (char *p = clean; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return clean;
}

/* 1 if SQL (one int64 parameter) returns a row, 0 if not, -1 ERR. */
static int retention_exists(struct depot *depot, const char *sql, int64_t value, const char *text,
			    char *err, size_t errlen)
{
	sqlite3_stmt *stmt = retention_prepare(depot, sql, err, errlen);
	int step;

	if (stmt == NULL)
		return -1;
	if (text != NULL)
		sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(stmt, 1, value);
	step = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		return -1;
	}
	return step == SQLITE_ROW;
}

int depot_hold_add(struct depot *depot, const char *scope, const char *reason, char *err,
		   size_t errlen)
{
	char *clean = retention_reason(reason);
	char *detail = NULL;
	sqlite3_stmt *stmt = NULL;
	int64_t now = util_now();
	int rc;

	if (retention_begin(depot, err, errlen) < 0) {
		free(clean);
		return -1;
	}
	rc = retention_exists(depot, "SELECT 1 FROM hold WHERE scope = ?", 0, scope, err, errlen);
	if (rc == 1) {
		rc = 0;
		goto done;
	}
	if (rc < 0)
		goto done;
	if (strncmp(scope, "message:", 8) == 0) {
		rc = retention_exists(depot, "SELECT 1 FROM message WHERE seq = ?",
				      strtoll(scope + 8, NULL, 10), NULL, err, errlen);
		if (rc == 0) {
			snprintf(err, errlen, "no archived message %s", scope + 8);
			rc = -1;
		}
		if (rc < 0)
			goto done;
	}
	rc = -1;
	stmt = retention_prepare(depot, "INSERT INTO hold(scope, reason, at) VALUES(?, ?, ?)", err,
				 errlen);
	if (stmt == NULL)
		goto done;
	sqlite3_bind_text(stmt, 1, scope, -1, SQLITE_STATIC);
	if (clean != NULL)
		sqlite3_bind_text(stmt, 2, clean, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, now);
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		goto done;
	}
	detail = clean != NULL ? xasprintf("%s reason:%s", scope, clean) : xstrdup(scope);
	if (depot_chain_append(depot, "hold", NULL, NULL, detail, now, NULL, err, errlen) < 0)
		goto done;
	rc = 1;
done:
	sqlite3_finalize(stmt);
	free(detail);
	free(clean);
	return retention_end(depot, rc, err, errlen);
}

int depot_hold_del(struct depot *depot, const char *scope, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc = -1;

	if (retention_begin(depot, err, errlen) < 0)
		return -1;
	stmt = retention_prepare(depot, "DELETE FROM hold WHERE scope = ?", err, errlen);
	if (stmt != NULL) {
		sqlite3_bind_text(stmt, 1, scope, -1, SQLITE_STATIC);
		if (sqlite3_step(stmt) != SQLITE_DONE)
			snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		else if (sqlite3_changes(depot_db(depot)) == 0)
			rc = 0;
		else if (depot_chain_append(depot, "unhold", NULL, NULL, scope, util_now(), NULL,
					    err, errlen) == 0)
			rc = 1;
	}
	sqlite3_finalize(stmt);
	return retention_end(depot, rc, err, errlen);
}

/* ---- expiry ------------------------------------------------------------- */

/* The periods and holds depot_expire judges by, read once. */
struct retention_rules {
	struct depot_scope_row *periods;
	size_t period_count;
	struct depot_scope_row *holds;
	size_t hold_count;
	int64_t default_days;
	int64_t shortest_days; /* no message expires sooner than this */
	bool hold_all;
};

static void retention_rules_free(struct retention_rules *rules)
{
	depot_scope_rows_free(&rules->periods, rules->period_count);
	depot_scope_rows_free(&rules->holds, rules->hold_count);
}

static int retention_row_compare(const void *key, const void *row)
{
	return strcmp(key, ((const struct depot_scope_row *)row)->scope);
}

/* The row of ROWS (COUNT, sorted by scope: SQLite's BINARY order is
 * strcmp's) for "KIND:VALUE", VALUE compared without case for a domain. */
static const struct depot_scope_row *retention_find(const struct depot_scope_row *rows,
						    size_t count, const char *kind,
						    const char *value)
{
	char key[320];
	int len;

	if (count == 0)
		return NULL;
	len = snprintf(key, sizeof(key), "%s:%s", kind, value);
	if (len < 0 || (size_t)len >= sizeof(key))
		return NULL;
	if (strcmp(kind, "domain") == 0)
		for (char *p = key; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return bsearch(key, rows, count, sizeof(*rows), retention_row_compare);
}

static int retention_rules_load(struct depot *depot, int64_t default_days,
				struct retention_rules *rules, char *err, size_t errlen)
{
	memset(rules, 0, sizeof(*rules));
	if (depot_retention_list(depot, &rules->periods, &rules->period_count, err, errlen) < 0 ||
	    depot_hold_list(depot, &rules->holds, &rules->hold_count, err, errlen) < 0) {
		retention_rules_free(rules);
		return -1;
	}
	rules->default_days = default_days;
	for (size_t i = 0; i < rules->period_count; i++)
		if (strcmp(rules->periods[i].scope, "default") == 0)
			rules->default_days = rules->periods[i].days;
	rules->shortest_days = rules->default_days;
	for (size_t i = 0; i < rules->period_count; i++)
		if (rules->periods[i].days < rules->shortest_days)
			rules->shortest_days = rules->periods[i].days;
	for (size_t i = 0; i < rules->hold_count; i++)
		if (strcmp(rules->holds[i].scope, "all") == 0)
			rules->hold_all = true;
	return 0;
}

/* The domain of ADDRESS (after its last '@'), or "" for none. */
static const char *retention_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

/*
 * Judges message SEQ archived at ARCHIVED: 1 due for expiry at NOW, 0 not
 * yet, 2 due but held; -1 ERR.
 */
static int retention_judge(sqlite3_stmt *owners, const struct retention_rules *rules, int64_t seq,
			   int64_t archived, int64_t now)
{
	char seq_text[24];
	int64_t days = -1;
	bool held = rules->hold_all;
	int step;

	snprintf(seq_text, sizeof(seq_text), "%" PRId64, seq);
	if (retention_find(rules->holds, rules->hold_count, "message", seq_text) != NULL)
		held = true;
	sqlite3_reset(owners);
	sqlite3_bind_int64(owners, 1, seq);
	while ((step = sqlite3_step(owners)) == SQLITE_ROW) {
		const char *address = (const char *)sqlite3_column_text(owners, 0);
		const char *user = (const char *)sqlite3_column_text(owners, 1);
		const char *domain = retention_domain(address != NULL ? address : "");
		const struct depot_scope_row *by_user = NULL;
		const struct depot_scope_row *by_domain;
		int64_t owner_days = -1;

		if (user != NULL && *user != '\0') {
			by_user = retention_find(rules->periods, rules->period_count, "user", user);
			if (retention_find(rules->holds, rules->hold_count, "user", user) != NULL)
				held = true;
		}
		by_domain = retention_find(rules->periods, rules->period_count, "domain", domain);
		if (*domain != '\0' &&
		    retention_find(rules->holds, rules->hold_count, "domain", domain) != NULL)
			held = true;
		if (by_user != NULL)
			owner_days = by_user->days;
		if (by_domain != NULL && by_domain->days > owner_days)
			owner_days = by_domain->days;
		if (owner_days < 0)
			owner_days = rules->default_days;
		if (owner_days > days)
			days = owner_days;
	}
	if (step != SQLITE_DONE)
		return -1;
	if (days < 0)
		days = rules->default_days;
	if (archived + days * RETENTION_SECONDS_PER_DAY >= now)
		return 0;
	return held ? 2 : 1;
}

/* Collects the messages due at NOW into EXPIRY (seqs, held). 0 / -1 ERR. */
static int retention_collect(struct depot *depot, const struct retention_rules *rules, int64_t now,
			     struct depot_expiry *expiry, char *err, size_t errlen)
{
	sqlite3_stmt *candidates = retention_prepare(
	    depot,
	    "SELECT seq, archived FROM message WHERE expired IS NULL AND archived < ? ORDER BY seq",
	    err, errlen);
	sqlite3_stmt *owners = retention_prepare(
	    depot, "SELECT address, user FROM message_owner WHERE seq = ? ORDER BY position", err,
	    errlen);
	size_t capacity = 0;
	int step = SQLITE_DONE;
	int rc = -1;

	if (candidates == NULL || owners == NULL)
		goto done;
	sqlite3_bind_int64(candidates, 1, now - rules->shortest_days * RETENTION_SECONDS_PER_DAY);
	while ((step = sqlite3_step(candidates)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(candidates, 0);
		int verdict =
		    retention_judge(owners, rules, seq, sqlite3_column_int64(candidates, 1), now);

		if (verdict < 0) {
			step = SQLITE_ERROR;
			break;
		}
		if (verdict == 2)
			expiry->held++;
		if (verdict != 1)
			continue;
		if (expiry->count == capacity) {
			capacity = capacity == 0 ? 256 : capacity * 2;
			expiry->seqs = xrealloc(expiry->seqs, capacity * sizeof(*expiry->seqs));
		}
		expiry->seqs[expiry->count++] = seq;
	}
	if (step != SQLITE_DONE)
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
	else
		rc = 0;
done:
	sqlite3_finalize(candidates);
	sqlite3_finalize(owners);
	return rc;
}

/* Where a blob's record lies, for punching it out after the commit. */
struct retention_hole {
	int64_t pack;
	int64_t offset;
	int64_t length;
};

/* The FTS5 'delete' command of a contentless table: the row's values again. */
#define RETENTION_TEXT_DELETE_SQL                                                                  \
	"INSERT INTO message_text (message_text, rowid, subject, headers, body, attachments, "     \
	"keys) VALUES ('delete', ?1, ?2, ?3, ?4, ?5, ?6)"

/*
 * Removes message SEQ's full-text row: the FTS5 table keeps no content, so
 * its 'delete' command needs the very values the row was made from, which
 * depot_text_fields gives again from the blob and the owner rows still
 * there (removed after this). 0; 1 with ERR when the blob is damaged (the
 * row is left: retention_remove makes the table anew then); -1 with ERR.
 */
static int retention_text_delete(struct depot *depot, sqlite3_stmt *blob_of,
				 sqlite3_stmt *text_delete, int64_t seq, char *err, size_t errlen)
{
	struct depot_fields fields;
	struct depot_owner *owners = NULL;
	size_t owner_count = 0;
	uint8_t sha256[32];
	int64_t pack, offset, stored, raw_len;
	uint32_t dict;
	bool extracted;
	int rc = -1;

	sqlite3_reset(blob_of);
	sqlite3_bind_int64(blob_of, 1, seq);
	if (sqlite3_step(blob_of) != SQLITE_ROW || sqlite3_column_bytes(blob_of, 0) != 32) {
		sqlite3_reset(blob_of);
		snprintf(err, errlen, "depot: the blob of message %" PRId64 " is not indexed", seq);
		return -1;
	}
	memcpy(sha256, sqlite3_column_blob(blob_of, 0), sizeof(sha256));
	pack = sqlite3_column_int64(blob_of, 1);
	offset = sqlite3_column_int64(blob_of, 2);
	stored = sqlite3_column_int64(blob_of, 3);
	raw_len = sqlite3_column_int64(blob_of, 4);
	dict = (uint32_t)sqlite3_column_int64(blob_of, 5);
	extracted = sqlite3_column_int(blob_of, 6) != 0;
	/* Done with it: an unfinished statement would keep retention_remove
	 * from dropping a table. */
	sqlite3_reset(blob_of);
	rc = depot_text_fields(depot, seq, sha256, pack, offset, stored, raw_len, dict, extracted,
			       &fields, err, errlen);
	if (rc != 0)
		return rc;
	rc = -1;
	if (depot_owners_read(depot, seq, &owners, &owner_count, err, errlen) < 0) {
		depot_fields_free(&fields);
		return -1;
	}
	depot_text_row_bind(text_delete, seq, &fields, owners, owner_count);
	if (sqlite3_step(text_delete) != SQLITE_DONE)
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
	else
		rc = 0;
	sqlite3_reset(text_delete);
	depot_fields_free(&fields);
	depot_owners_free(owners, owner_count);
	return rc;
}

/* Runs SQL with the one parameter SEQ. 0 / -1 ERR. */
static int retention_run_seq(struct depot *depot, sqlite3_stmt *stmt, int64_t seq, char *err,
			     size_t errlen)
{
	int step;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, seq);
	step = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (step != SQLITE_DONE && step != SQLITE_ROW) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
		return -1;
	}
	return 0;
}

/* The statements depot_expire removes one message with, in order. */
static const char *const retention_remove_sql[] = {
    "DELETE FROM message_recipient WHERE seq = ?",
    "DELETE FROM message_owner WHERE seq = ?",
    "DELETE FROM message_attachment WHERE seq = ?",
};

/*
 * Inside the transaction: removes the index rows and full-text rows of
 * EXPIRY's messages, appends the "expire" entry with DETAIL, marks the messages
 * expired and the blobs no kept message refers to removed (their records
 * into *HOLES_R). 0 / -1 ERR.
 */
static int retention_remove(struct depot *depot, int64_t now, struct depot_expiry *expiry,
			    const char *detail, struct retention_hole **holes_r,
			    size_t *hole_count_r, char *err, size_t errlen)
{
	enum { REMOVE_COUNT = sizeof(retention_remove_sql) / sizeof(retention_remove_sql[0]) };
	sqlite3_stmt *remove[REMOVE_COUNT] = {0};
	sqlite3_stmt *blob_of =
	    retention_prepare(depot,
			      "SELECT b.sha256, b.pack, b.offset, b.stored, b.raw, b.dict, "
			      "m.extracted FROM message m "
			      "JOIN blob b ON b.sha256 = m.blob WHERE m.seq = ?",
			      err, errlen);
	sqlite3_stmt *text_delete =
	    retention_prepare(depot, RETENTION_TEXT_DELETE_SQL, err, errlen);
	sqlite3_stmt *mark = retention_prepare(
	    depot,
	    "UPDATE message SET sender = NULL, subject = NULL, date = 0, message_id = NULL, "
	    "expired = ? WHERE seq = ?",
	    err, errlen);
	sqlite3_stmt *orphan = retention_prepare(
	    depot,
	    "UPDATE blob SET removed = 1 WHERE sha256 = (SELECT blob FROM message WHERE seq = ?) "
	    "AND (removed IS NULL OR removed = 0) AND NOT EXISTS (SELECT 1 FROM message k "
	    "WHERE k.blob = blob.sha256 AND k.expired IS NULL) "
	    "RETURNING pack, offset, stored",
	    err, errlen);
	size_t hole_capacity = 0;
	bool renew_text = false;
	int rc = -1;

	*holes_r = NULL;
	*hole_count_r = 0;
	for (size_t i = 0; i < REMOVE_COUNT; i++)
		if ((remove[i] = retention_prepare(depot, retention_remove_sql[i], err, errlen)) ==
		    NULL)
			goto done;
	if (blob_of == NULL || text_delete == NULL || mark == NULL || orphan == NULL)
		goto done;
	for (size_t i = 0; i < expiry->count; i++) {
		int deleted = retention_text_delete(depot, blob_of, text_delete, expiry->seqs[i],
						    err, errlen);

		if (deleted < 0)
			goto done;
		if (deleted == 1)
			renew_text = true;
		for (size_t r = 0; r < REMOVE_COUNT; r++)
			if (retention_run_seq(depot, remove[r], expiry->seqs[i], err, errlen) < 0)
				goto done;
	}
	if (depot_chain_append(depot, "expire", NULL, NULL, detail, now, &expiry->entry_seq, err,
			       errlen) < 0)
		goto done;
	for (size_t i = 0; i < expiry->count; i++) {
		int step;

		sqlite3_reset(mark);
		sqlite3_bind_int64(mark, 1, expiry->entry_seq);
		sqlite3_bind_int64(mark, 2, expiry->seqs[i]);
		if (sqlite3_step(mark) != SQLITE_DONE) {
			snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
			goto done;
		}
		/* After the mark, so a blob two expiring messages share goes with
		 * the last of them and one a kept message shares stays. */
		sqlite3_reset(orphan);
		sqlite3_bind_int64(orphan, 1, expiry->seqs[i]);
		while ((step = sqlite3_step(orphan)) == SQLITE_ROW) {
			struct retention_hole *hole;

			if (*hole_count_r == hole_capacity) {
				hole_capacity = hole_capacity == 0 ? 64 : hole_capacity * 2;
				*holes_r = xrealloc(*holes_r, hole_capacity * sizeof(**holes_r));
			}
			hole = &(*holes_r)[(*hole_count_r)++];
			hole->pack = sqlite3_column_int64(orphan, 0);
			hole->offset = sqlite3_column_int64(orphan, 1);
			hole->length = DEPOT_PACK_HEADER_SIZE + sqlite3_column_int64(orphan, 2);
		}
		if (step != SQLITE_DONE) {
			snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(depot)));
			goto done;
		}
	}
	/* A row left behind (a damaged blob) would keep an expired message's
	 * words in the index: the table is made anew from the kept messages,
	 * which the marks above have left these out of. */
	if (renew_text && (depot_exec(depot, DEPOT_TEXT_RENEW_SQL, err, errlen) < 0 ||
			   depot_text_reindex(depot, err, errlen) < 0))
		goto done;
	rc = 0;
done:
	for (size_t i = 0; i < REMOVE_COUNT; i++)
		sqlite3_finalize(remove[i]);
	sqlite3_finalize(blob_of);
	sqlite3_finalize(text_delete);
	sqlite3_finalize(mark);
	sqlite3_finalize(orphan);
	return rc;
}

static int retention_hole_compare(const void *a, const void *b)
{
	const struct retention_hole *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Punches the holes of one pack (HOLES[0..COUNT), merged where adjacent);
 * the bytes of disk it gave back. */
static int64_t retention_punch_pack(struct depot *depot, const struct retention_hole *holes,
				    size_t count)
{
	char *path = depot_pack_path(depot, holes[0].pack);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	struct stat before, after;
	int64_t freed = 0;

	free(path);
	if (fd < 0)
		return 0;
	if (fstat(fd, &before) < 0) {
		close(fd);
		return 0;
	}
	for (size_t i = 0; i < count;) {
		int64_t offset = holes[i].offset;
		int64_t end = holes[i].offset + holes[i].length;

		/* Records side by side become one range: a file system frees only
		 * whole blocks, and most records are smaller than one. */
		for (i++; i < count && holes[i].offset <= end; i++)
			if (holes[i].offset + holes[i].length > end)
				end = holes[i].offset + holes[i].length;
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset,
			      end - offset) < 0)
			break;
	}
	if (fsync(fd) == 0 && fstat(fd, &after) == 0 && after.st_blocks < before.st_blocks)
		freed = ((int64_t)before.st_blocks - (int64_t)after.st_blocks) * 512;
	close(fd);
	return freed;
}

/*
 * Frees the disk space of removed blobs' records (sorting HOLES):
 * FALLOC_FL_PUNCH_HOLE keeps each pack's size, so every other record stays
 * at its offset; one fsync per pack. A file system that cannot punch keeps
 * the bytes (unreferenced): that costs space, not correctness, so it is not
 * an error. The bytes of disk given back.
 */
static int64_t retention_punch(struct depot *depot, struct retention_hole *holes, size_t count)
{
	int64_t freed = 0;

	if (count == 0)
		return 0;
	qsort(holes, count, sizeof(*holes), retention_hole_compare);
	for (size_t first = 0; first < count;) {
		size_t last = first;

		while (last < count && holes[last].pack == holes[first].pack)
			last++;
		freed += retention_punch_pack(depot, holes + first, last - first);
		first = last;
	}
	return freed;
}

/* "seq:<n> seq:<m> …" for EXPIRY's messages (free()). */
static char *retention_seq_list(const struct depot_expiry *expiry)
{
	struct depot_text text = {0};

	for (size_t i = 0; i < expiry->count; i++) {
		char item[32];

		snprintf(item, sizeof(item), "%sseq:%" PRId64, i > 0 ? " " : "", expiry->seqs[i]);
		depot_text_add(&text, item, strlen(item));
	}
	depot_text_add(&text, "", 1);
	return text.data;
}

int depot_expire(struct depot *depot, int64_t now, int64_t default_days, bool dry_run,
		 const char *actor, struct depot_expiry *expiry, char *err, size_t errlen)
{
	struct retention_rules rules;
	struct retention_hole *holes = NULL;
	size_t hole_count = 0;
	char *detail = NULL;
	int rc = -1;

	memset(expiry, 0, sizeof(*expiry));
	if (depot_write_lock(depot, err, errlen) < 0)
		return -1;
	if (retention_rules_load(depot, default_days, &rules, err, errlen) < 0) {
		depot_write_unlock(depot);
		return -1;
	}
	if (retention_collect(depot, &rules, now, expiry, err, errlen) < 0)
		goto done;
	if (dry_run || expiry->count == 0) {
		rc = 0;
		goto done;
	}
	detail = retention_seq_list(expiry);
	if (retention_sql(depot, "BEGIN IMMEDIATE", err, errlen) < 0)
		goto done;
	if (retention_remove(depot, now, expiry, detail, &holes, &hole_count, err, errlen) < 0 ||
	    depot_audit(depot, actor, "delete", detail, err, errlen) < 0 ||
	    retention_sql(depot, "COMMIT", err, errlen) < 0) {
		sqlite3_exec(depot_db(depot), "ROLLBACK", NULL, NULL, NULL);
		expiry->entry_seq = 0;
		goto done;
	}
	expiry->blobs_removed = (int64_t)hole_count;
	expiry->bytes_freed = retention_punch(depot, holes, hole_count);
	rc = 0;
done:
	free(detail);
	free(holes);
	retention_rules_free(&rules);
	depot_write_unlock(depot);
	if (rc < 0)
		depot_expiry_free(expiry);
	return rc;
}
