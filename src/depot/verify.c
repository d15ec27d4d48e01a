/*
 * verify.c — depot_verify (depot.h): walks the hash chain from entry 1,
 * recomputing each entry's hash, each archived message's canonical index
 * record from its rows and each blob's SHA-256 from its pack; then the
 * stored checkpoints, an exported checkpoint file and the audit chain.
 * Stops at the first problem and says what and where.
 *
 * Owns: nothing (reads only, inside one read transaction so a writer beside
 * it does not move the ground).
 * Must never: change the depot; trust a checkpoint file's lines (bounded,
 * every field checked); print a message's bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/depot_internal.h"

/* A checkpoint file's line, at most (a real one is under 300 bytes). */
#define VERIFY_LINE_MAX 1024

struct verify_run {
	struct depot *depot;
	struct depot_verify_report *report;
	sqlite3_stmt *message;
	sqlite3_stmt *recipients;
	sqlite3_stmt *owners;
	sqlite3_stmt *attachments;
	sqlite3_stmt *blob;
	sqlite3_stmt *earlier;
	sqlite3_stmt *entry;
	char *err;
	size_t errlen;
};

static const char *const verify_sql[] = {
    "SELECT source, direction, sender, subject, date, size, message_id, blob, expired"
    " FROM message WHERE seq = ?1",
    "SELECT address FROM message_recipient WHERE seq = ?1 ORDER BY position",
    "SELECT address, user FROM message_owner WHERE seq = ?1 ORDER BY position",
    "SELECT name FROM message_attachment WHERE seq = ?1 ORDER BY position",
    "SELECT pack, offset, stored, raw, dict, removed FROM blob WHERE sha256 = ?1",
    "SELECT 1 FROM message WHERE blob = ?1 AND seq < ?2 AND expired IS NULL LIMIT 1",
    "SELECT kind, detail, hash FROM entry WHERE seq = ?1",
};

/* Records the first problem: SEQ and the text; returns 1 (broken). */
static int verify_broken(struct verify_run *run, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int verify_broken(struct verify_run *run, int64_t seq, const char *fmt, ...)
{
	va_list ap;

	run->report->broken_seq = seq;
	va_start(ap, fmt);
	vsnprintf(run->report->problem, sizeof(run->report->problem), fmt, ap);
	va_end(ap);
	return 1;
}

static int verify_db_error(struct verify_run *run, const char *what)
{
	snprintf(run->err, run->errlen, "%s: %s", what, sqlite3_errmsg(run->depot->db));
	return -1;
}

/* Whether column COLUMN is NULL or a 32-byte hash (copied to OUT, *PRESENT). */
static bool verify_hash_column(sqlite3_stmt *stmt, int column, uint8_t out[32], bool *present)
{
	*present = sqlite3_column_type(stmt, column) != SQLITE_NULL;
	if (!*present)
		return true;
	if (sqlite3_column_bytes(stmt, column) != 32)
		return false;
	memcpy(out, sqlite3_column_blob(stmt, column), 32);
	return true;
}

/* The text column COLUMN, copied (NULL stays NULL). */
static char *verify_text(sqlite3_stmt *stmt, int column)
{
	const unsigned char *text = sqlite3_column_text(stmt, column);

	return text != NULL ? xstrdup((const char *)text) : NULL;
}

/* Reads the first column (or the first two as owners) of STMT's rows for SEQ. */
static int verify_list(struct verify_run *run, sqlite3_stmt *stmt, int64_t seq, char ***items_r,
		       struct depot_owner **owners_r, size_t *count_r)
{
	size_t count = 0;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, seq);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (owners_r != NULL) {
			*owners_r = xrealloc(*owners_r, (count + 1) * sizeof(**owners_r));
			(*owners_r)[count].address = verify_text(stmt, 0);
			(*owners_r)[count].user = verify_text(stmt, 1);
		} else {
			*items_r = xrealloc(*items_r, (count + 1) * sizeof(**items_r));
			(*items_r)[count] = verify_text(stmt, 0);
		}
		count++;
		*count_r = count;
	}
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? 0 : verify_db_error(run, "reading the index");
}

/* Whether DETAIL lists "seq:SEQ" among its space-separated words. */
static bool verify_detail_names(const char *detail, int64_t seq)
{
	char word[32];
	size_t len = (size_t)snprintf(word, sizeof(word), "seq:%" PRId64, seq);

	for (const char *p = detail; p != NULL && *p != '\0';) {
		size_t n = strcspn(p, " ");

		if (n == len && memcmp(p, word, len) == 0)
			return true;
		p += n;
		p += strspn(p, " ");
	}
	return false;
}

/* An expired message is fine when the expire entry it names lists it. */
static int verify_expired(struct verify_run *run, int64_t seq, int64_t expire_seq)
{
	sqlite3_stmt *stmt = run->entry;
	bool named = false;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, expire_seq);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(stmt, 0);

		named = kind != NULL && strcmp(kind, "expire") == 0 &&
			verify_detail_names((const char *)sqlite3_column_text(stmt, 1), seq);
	}
	sqlite3_reset(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return verify_db_error(run, "reading an expire entry");
	if (!named)
		return verify_broken(run, seq,
				     "entry %" PRId64 ": marked expired by entry %" PRId64
				     ", which is no expire entry naming it",
				     seq, expire_seq);
	return 0;
}

/* Reads and hashes the blob of entry SEQ unless an earlier entry did. */
static int verify_blob(struct verify_run *run, int64_t seq, const uint8_t sha[32])
{
	sqlite3_stmt *stmt = run->earlier;
	char why[200], *raw = NULL;
	size_t len;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_blob(stmt, 1, sha, 32, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, seq);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return 0; /* deduplicated: checked at its first entry */
	if (rc != SQLITE_DONE)
		return verify_db_error(run, "reading the index");
	stmt = run->blob;
	sqlite3_reset(stmt);
	sqlite3_bind_blob(stmt, 1, sha, 32, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW || sqlite3_column_type(stmt, 5) != SQLITE_NULL) {
		sqlite3_reset(stmt);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return verify_db_error(run, "reading the blobs");
		return verify_broken(run, seq, "blob of entry %" PRId64 " is missing", seq);
	}
	rc = depot_blob_load(run->depot, sqlite3_column_int64(stmt, 0),
			     sqlite3_column_int64(stmt, 1), sha, sqlite3_column_int64(stmt, 2),
			     sqlite3_column_int64(stmt, 3), (uint32_t)sqlite3_column_int64(stmt, 4),
			     &raw, &len, why, sizeof(why));
	sqlite3_reset(stmt);
	free(raw);
	if (rc < 0)
		return verify_broken(run, seq, "blob of entry %" PRId64 " is corrupt: %s", seq,
				     why);
	run->report->blobs++;
	return 0;
}

/* The checks of an "archive" entry: its index rows, then its blob. */
static int verify_archive(struct verify_run *run, int64_t seq, const uint8_t blob[32],
			  const uint8_t record[32])
{
	sqlite3_stmt *stmt = run->message;
	struct depot_record fields = {0};
	char **recipients = NULL, **attachments = NULL;
	struct depot_owner *owners = NULL;
	char *source = NULL, *direction = NULL, *sender = NULL, *subject = NULL, *id = NULL;
	uint8_t row_blob[32], hash[32];
	bool present;
	int rc;

	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, seq);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE)
			return verify_db_error(run, "reading the index");
		return verify_broken(run, seq, "entry %" PRId64 ": its index row is missing", seq);
	}
	if (!verify_hash_column(stmt, 7, row_blob, &present) || !present ||
	    memcmp(row_blob, blob, 32) != 0) {
		sqlite3_reset(stmt);
		return verify_broken(run, seq,
				     "entry %" PRId64 ": its index row names another blob", seq);
	}
	if (sqlite3_column_type(stmt, 8) != SQLITE_NULL) {
		int64_t expire_seq = sqlite3_column_int64(stmt, 8);

		sqlite3_reset(stmt);
		return verify_expired(run, seq, expire_seq);
	}
	source = verify_text(stmt, 0);
	direction = verify_text(stmt, 1);
	sender = verify_text(stmt, 2);
	subject = verify_text(stmt, 3);
	fields.date = sqlite3_column_int64(stmt, 4);
	fields.size = sqlite3_column_int64(stmt, 5);
	id = verify_text(stmt, 6);
	sqlite3_reset(stmt);
	fields.source = source;
	fields.direction = direction;
	fields.sender = sender;
	fields.subject = subject;
	fields.message_id = id;
	rc = verify_list(run, run->recipients, seq, &recipients, NULL, &fields.recipient_count);
	if (rc == 0)
		rc = verify_list(run, run->owners, seq, NULL, &owners, &fields.owner_count);
	if (rc == 0)
		rc = verify_list(run, run->attachments, seq, &attachments, NULL,
				 &fields.attachment_count);
	if (rc == 0) {
		fields.recipients = recipients;
		fields.owners = owners;
		fields.attachments = attachments;
		depot_record_hash(&fields, hash);
		if (memcmp(hash, record, 32) != 0)
			rc = verify_broken(run, seq,
					   "entry %" PRId64
					   ": its index record was changed (the message's"
					   " row, recipients, owners or attachments)",
					   seq);
	}
	for (size_t i = 0; i < fields.recipient_count; i++)
		free(recipients[i]);
	for (size_t i = 0; i < fields.owner_count; i++) {
		free(owners[i].address);
		free(owners[i].user);
	}
	for (size_t i = 0; i < fields.attachment_count; i++)
		free(attachments[i]);
	free(recipients);
	free(owners);
	free(attachments);
	free(source);
	free(direction);
	free(sender);
	free(subject);
	free(id);
	if (rc != 0)
		return rc;
	return verify_blob(run, seq, blob);
}

/* The entry chain from seq 1 on. */
static int verify_entries(struct verify_run *run)
{
	static const char sql[] =
	    "SELECT seq, kind, at, blob, record, detail, hash FROM entry ORDER BY seq";
	uint8_t prev[32] = {0};
	sqlite3_stmt *stmt;
	int64_t expected = 1;
	int rc = SQLITE_DONE, broken = 0;

	if (sqlite3_prepare_v2(run->depot->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return verify_db_error(run, "reading the chain");
	while (broken == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(stmt, 0);
		const char *kind = (const char *)sqlite3_column_text(stmt, 1);
		uint8_t blob[32], record[32], hash[32], stored[32];
		bool has_blob, has_record, has_hash;

		if (seq != expected) {
			broken = verify_broken(
			    run, expected, "entry %" PRId64 " is missing from the chain", expected);
			break;
		}
		if (kind == NULL || !verify_hash_column(stmt, 3, blob, &has_blob) ||
		    !verify_hash_column(stmt, 4, record, &has_record) ||
		    !verify_hash_column(stmt, 6, stored, &has_hash) || !has_hash) {
			broken = verify_broken(run, seq, "entry %" PRId64 " is malformed", seq);
			break;
		}
		depot_entry_hash(prev, seq, kind, sqlite3_column_int64(stmt, 2),
				 has_blob ? blob : NULL, has_record ? record : NULL,
				 (const char *)sqlite3_column_text(stmt, 5), hash);
		if (memcmp(hash, stored, 32) != 0) {
			broken =
			    verify_broken(run, seq,
					  "entry %" PRId64 ": its hash does not match its content"
					  " and the entry before it",
					  seq);
			break;
		}
		if (strcmp(kind, "archive") == 0) {
			if (!has_blob || !has_record)
				broken = verify_broken(run, seq,
						       "entry %" PRId64
						       ": an archive entry without blob or record",
						       seq);
			else
				broken = verify_archive(run, seq, blob, record);
		}
		memcpy(prev, hash, 32);
		expected++;
		if (broken == 0)
			run->report->entries++;
	}
	if (broken == 0 && rc != SQLITE_DONE)
		broken = verify_db_error(run, "reading the chain");
	sqlite3_finalize(stmt);
	return broken;
}

/* Index rows that no archive entry stands for. */
static int verify_orphans(struct verify_run *run)
{
	static const char sql[] = "SELECT m.seq FROM message m LEFT JOIN entry e ON e.seq = m.seq"
				  " WHERE e.seq IS NULL OR e.kind <> 'archive' ORDER BY m.seq"
				  " LIMIT 1";
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(run->depot->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return verify_db_error(run, "reading the index");
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(stmt, 0);

		sqlite3_finalize(stmt);
		return verify_broken(
		    run, seq, "index row %" PRId64 " has no archive entry in the chain", seq);
	}
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : verify_db_error(run, "reading the index");
}

/* One checkpoint (stored, or a line of an exported file: WHERE says which). */
static int verify_checkpoint(struct verify_run *run, const char *where, int64_t seq,
			     const uint8_t hash[32], int64_t at, const uint8_t signature[64],
			     const uint8_t pk[32])
{
	sqlite3_stmt *stmt = run->entry;
	bool same;
	int rc;

	if (!depot_checkpoint_signed(seq, hash, at, signature, pk))
		return verify_broken(
		    run, seq, "%s at entry %" PRId64 ": its signature does not verify", where, seq);
	sqlite3_reset(stmt);
	sqlite3_bind_int64(stmt, 1, seq);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE)
			return verify_db_error(run, "reading the chain");
		return verify_broken(run, seq, "%s at entry %" PRId64 ": the chain ends before it",
				     where, seq);
	}
	same = sqlite3_column_bytes(stmt, 2) == 32 &&
	       memcmp(sqlite3_column_blob(stmt, 2), hash, 32) == 0;
	sqlite3_reset(stmt);
	if (!same)
		return verify_broken(run, seq,
				     "%s at entry %" PRId64
				     ": the chain's hash there differs (entries"
				     " up to %" PRId64 " were rewritten)",
				     where, seq, seq);
	run->report->checkpoints++;
	return 0;
}

static int verify_stored_checkpoints(struct verify_run *run, const uint8_t pk[32], bool has_key)
{
	static const char sql[] = "SELECT seq, hash, at, signature FROM checkpoint ORDER BY seq";
	sqlite3_stmt *stmt;
	int rc = SQLITE_DONE, broken = 0;

	if (sqlite3_prepare_v2(run->depot->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return verify_db_error(run, "reading the checkpoints");
	while (broken == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(stmt, 0);
		uint8_t hash[32], signature[64];

		if (!has_key) {
			broken = verify_broken(
			    run, seq, "checkpoint at entry %" PRId64 ": signing.key is missing",
			    seq);
			break;
		}
		if (sqlite3_column_bytes(stmt, 1) != 32 || sqlite3_column_bytes(stmt, 3) != 64) {
			broken = verify_broken(run, seq,
					       "checkpoint at entry %" PRId64 " is malformed", seq);
			break;
		}
		memcpy(hash, sqlite3_column_blob(stmt, 1), 32);
		memcpy(signature, sqlite3_column_blob(stmt, 3), 64);
		broken = verify_checkpoint(run, "checkpoint", seq, hash,
					   sqlite3_column_int64(stmt, 2), signature, pk);
	}
	if (broken == 0 && rc != SQLITE_DONE)
		broken = verify_db_error(run, "reading the checkpoints");
	sqlite3_finalize(stmt);
	return broken;
}

/* Parses one exported line "seq hash_hex at signature_hex pubkey_hex". */
static bool verify_parse_line(char *line, int64_t *seq, uint8_t hash[32], int64_t *at,
			      uint8_t signature[64], uint8_t pk[32])
{
	char *fields[5], *save = NULL, *end;
	size_t count = 0;

	for (char *word = strtok_r(line, " \t\r\n", &save); word != NULL;
	     word = strtok_r(NULL, " \t\r\n", &save)) {
		if (count == 5)
			return false;
		fields[count++] = word;
	}
	if (count != 5)
		return false;
	errno = 0;
	*seq = strtoll(fields[0], &end, 10);
	if (errno != 0 || *end != '\0' || *seq < 1)
		return false;
	*at = strtoll(fields[2], &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	return depot_unhex(fields[1], hash, 32) == 0 &&
	       depot_unhex(fields[3], signature, 64) == 0 && depot_unhex(fields[4], pk, 32) == 0;
}

static int verify_exported(struct verify_run *run, const char *path, const uint8_t own_pk[32],
			   bool has_key)
{
	FILE *file = fopen(path, "r");
	char line[VERIFY_LINE_MAX];
	int line_number = 0, broken = 0;

	if (file == NULL) {
		snprintf(run->err, run->errlen, "opening %s: %s", path, strerror(errno));
		return -1;
	}
	while (broken == 0 && fgets(line, sizeof(line), file) != NULL) {
		uint8_t hash[32], signature[64], pk[32];
		int64_t seq, at;

		line_number++;
		if (strchr(line, '\n') == NULL && !feof(file)) {
			snprintf(run->err, run->errlen, "%s line %d: too long", path, line_number);
			broken = -1;
			break;
		}
		if (line[strspn(line, " \t\r\n")] == '\0')
			continue;
		if (!verify_parse_line(line, &seq, hash, &at, signature, pk)) {
			snprintf(run->err, run->errlen,
				 "%s line %d: not \"seq hash at signature pubkey\"", path,
				 line_number);
			broken = -1;
			break;
		}
		if (has_key && memcmp(pk, own_pk, 32) != 0)
			broken = verify_broken(run, seq,
					       "exported checkpoint at entry %" PRId64
					       ": signed by another key than this depot's",
					       seq);
		else
			broken = verify_checkpoint(run, "exported checkpoint", seq, hash, at,
						   signature, pk);
	}
	if (broken == 0 && ferror(file)) {
		snprintf(run->err, run->errlen, "reading %s: %s", path, strerror(errno));
		broken = -1;
	}
	fclose(file);
	return broken;
}

/* The audit chain from seq 1 on. */
static int verify_audit(struct verify_run *run)
{
	static const char sql[] =
	    "SELECT seq, at, actor, action, detail, hash FROM audit ORDER BY seq";
	uint8_t prev[32] = {0};
	sqlite3_stmt *stmt;
	int64_t expected = 1;
	int rc = SQLITE_DONE, broken = 0;

	if (sqlite3_prepare_v2(run->depot->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return verify_db_error(run, "reading the audit log");
	while (broken == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(stmt, 0);
		const char *actor = (const char *)sqlite3_column_text(stmt, 2);
		const char *action = (const char *)sqlite3_column_text(stmt, 3);
		uint8_t hash[32], stored[32];
		bool has_hash;

		if (seq != expected) {
			broken = verify_broken(
			    run, expected, "audit entry %" PRId64 " is missing from the audit log",
			    expected);
			break;
		}
		if (actor == NULL || action == NULL ||
		    !verify_hash_column(stmt, 5, stored, &has_hash) || !has_hash) {
			broken =
			    verify_broken(run, seq, "audit entry %" PRId64 " is malformed", seq);
			break;
		}
		depot_audit_hash(prev, seq, sqlite3_column_int64(stmt, 1), actor, action,
				 (const char *)sqlite3_column_text(stmt, 4), hash);
		if (memcmp(hash, stored, 32) != 0) {
			broken =
			    verify_broken(run, seq,
					  "audit entry %" PRId64 ": its hash does not match its"
					  " content and the entry before it",
					  seq);
			break;
		}
		memcpy(prev, hash, 32);
		expected++;
		run->report->audit_entries++;
	}
	if (broken == 0 && rc != SQLITE_DONE)
		broken = verify_db_error(run, "reading the audit log");
	sqlite3_finalize(stmt);
	return broken;
}

int depot_verify(struct depot *depot, const char *checkpoints, struct depot_verify_report *report,
		 char *err, size_t errlen)
{
	struct verify_run run = {.depot = depot, .report = report, .err = err, .errlen = errlen};
	sqlite3_stmt **stmts[] = {&run.message, &run.recipients, &run.owners, &run.attachments,
				  &run.blob,	&run.earlier,	 &run.entry};
	uint8_t pk[32];
	bool own_transaction = sqlite3_get_autocommit(depot->db);
	int key, rc = 0;

	*report = (struct depot_verify_report){0};
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++) {
		if (sqlite3_prepare_v2(depot->db, verify_sql[i], -1, stmts[i], NULL) != SQLITE_OK)
			rc = verify_db_error(&run, "preparing the checks");
	}
	if ((key = depot_signing_public(depot, pk, err, errlen)) < 0)
		rc = -1;
	/* One snapshot for the whole walk: the archiver may commit meanwhile. */
	if (rc == 0 && own_transaction && depot_exec(depot, "BEGIN", err, errlen) < 0)
		rc = -1;
	if (rc == 0)
		rc = verify_entries(&run);
	if (rc == 0)
		rc = verify_orphans(&run);
	if (rc == 0)
		rc = verify_stored_checkpoints(&run, pk, key == 1);
	if (rc == 0 && checkpoints != NULL)
		rc = verify_exported(&run, checkpoints, pk, key == 1);
	if (rc == 0)
		rc = verify_audit(&run);
	if (own_transaction && !sqlite3_get_autocommit(depot->db))
		sqlite3_exec(depot->db, "COMMIT", NULL, NULL, NULL);
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
		sqlite3_finalize(*stmts[i]);
	return rc;
}
