/*
 * depot.c — MailDepot's core (depot.h): opening DATA/depot and migrating its
 * index, the write lock, archiving batches (content-addressed zstd blobs
 * appended to packs, index and full-text rows, one hash-chain entry per
 * message), reading a message back checked against its SHA-256, and the
 * audit chain.
 *
 * Owns: the index connection, its cached statements, the zstd contexts, the
 * write.lock descriptor.
 * Must never: commit an index transaction that refers to pack bytes not yet
 * fsynced; rewrite a chain or audit entry; change a shipped migration; log
 * or print a message's bytes or text.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>
#include <zstd.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/depot_internal.h"
#include "depot/pack.h"

/* zstd's level for new blobs: level 3 compresses mail about as well as 9
 * at several times the speed, and ingest must keep up with 2,000 msgs/s. */
#define DEPOT_ZSTD_LEVEL 3
/* A batch's records are written to the pack whenever this many bytes wait. */
#define DEPOT_WRITE_CHUNK (8 * 1024 * 1024)
/* A writer waits this long for SQLite's own lock (readers never wait). */
#define DEPOT_BUSY_TIMEOUT_MS 10000

/*
 * The schema, one step per entry; PRAGMA user_version holds how many have
 * been applied. Append only.
 */
static const char *const depot_migrations[] = {
    /* 1: the chain, blobs, the index and its full-text table, checkpoints,
     * the audit chain, retention, holds and import progress (depot.h). */
    "CREATE TABLE entry ("
    "  seq INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  blob BLOB,"
    "  record BLOB,"
    "  detail TEXT,"
    "  hash BLOB NOT NULL"
    ");"
    "CREATE TABLE blob ("
    "  sha256 BLOB PRIMARY KEY,"
    "  pack INTEGER NOT NULL,"
    "  offset INTEGER NOT NULL,"
    "  stored INTEGER NOT NULL,"
    "  raw INTEGER NOT NULL,"
    "  dict INTEGER NOT NULL DEFAULT 0,"
    "  removed INTEGER"
    ");"
    "CREATE TABLE message ("
    "  seq INTEGER PRIMARY KEY REFERENCES entry(seq),"
    "  source TEXT UNIQUE NOT NULL,"
    "  direction TEXT NOT NULL,"
    "  sender TEXT,"
    "  subject TEXT,"
    "  date INTEGER NOT NULL DEFAULT 0,"
    "  size INTEGER NOT NULL,"
    "  message_id TEXT,"
    "  blob BLOB NOT NULL,"
    "  archived INTEGER NOT NULL,"
    "  expired INTEGER,"
    /* 1: the full-text row holds depot_extract's fields of the blob; 0: it
     * was archived without fields (the worker could not give them), so its
     * full-text row is empty and expiry must delete it as such. */
    "  extracted INTEGER NOT NULL DEFAULT 1"
    ");"
    "CREATE INDEX message_sender ON message(sender);"
    "CREATE INDEX message_date ON message(date);"
    "CREATE INDEX message_blob ON message(blob);"
    "CREATE TABLE message_recipient ("
    "  seq INTEGER NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  PRIMARY KEY (seq, position)"
    ");"
    "CREATE INDEX message_recipient_address ON message_recipient(address);"
    "CREATE TABLE message_owner ("
    "  seq INTEGER NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  address TEXT NOT NULL,"
    "  user TEXT NOT NULL DEFAULT '',"
    "  PRIMARY KEY (seq, position)"
    ");"
    "CREATE INDEX message_owner_address ON message_owner(address);"
    "CREATE INDEX message_owner_user ON message_owner(user);"
    "CREATE TABLE message_attachment ("
    "  seq INTEGER NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  name TEXT NOT NULL,"
    "  PRIMARY KEY (seq, position)"
    ");"
    "CREATE INDEX message_attachment_name ON message_attachment(name);"
    "CREATE VIRTUAL TABLE message_text USING fts5(subject, headers, body, attachments,"
    "  content='', tokenize='unicode61 remove_diacritics 2');"
    "CREATE TABLE checkpoint ("
    "  seq INTEGER PRIMARY KEY,"
    "  hash BLOB NOT NULL,"
    "  at INTEGER NOT NULL,"
    "  signature BLOB NOT NULL"
    ");"
    "CREATE TABLE audit ("
    "  seq INTEGER PRIMARY KEY,"
    "  at INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  detail TEXT,"
    "  hash BLOB NOT NULL"
    ");"
    "CREATE TABLE retention ("
    "  scope TEXT PRIMARY KEY,"
    "  days INTEGER NOT NULL"
    ");"
    "CREATE TABLE hold ("
    "  scope TEXT PRIMARY KEY,"
    "  reason TEXT,"
    "  at INTEGER NOT NULL"
    ");"
    "CREATE TABLE import_source ("
    "  key TEXT PRIMARY KEY,"
    "  done INTEGER NOT NULL DEFAULT 0,"
    "  position INTEGER NOT NULL DEFAULT 0"
    ");",
    /* 2: the full-text table gains the column keys (depot_keys_text), so a
     * search by sender, recipient, owner or month and words is one FTS5
     * expression; depot_text_reindex makes its rows again from the blobs
     * and drops the old table. */
    DEPOT_TEXT_RENEW_SQL,
};

/* The migration after which depot_text_reindex runs. */
#define DEPOT_MIGRATION_KEYS 2

#define DEPOT_MIGRATION_COUNT ((int)(sizeof(depot_migrations) / sizeof(depot_migrations[0])))

static const char *const depot_stmt_sql[DEPOT_STMT_COUNT] = {
    [DEPOT_STMT_SOURCE_SEQ] = "SELECT seq FROM message WHERE source = ?1",
    [DEPOT_STMT_BLOB_FIND] = "SELECT removed FROM blob WHERE sha256 = ?1",
    [DEPOT_STMT_BLOB_INSERT] = "INSERT INTO blob (sha256, pack, offset, stored, raw, dict)"
			       " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [DEPOT_STMT_BLOB_RESTORE] = "UPDATE blob SET pack = ?2, offset = ?3, stored = ?4, raw = ?5,"
				" dict = ?6, removed = NULL WHERE sha256 = ?1",
    [DEPOT_STMT_ENTRY_HEAD] = "SELECT seq, hash FROM entry ORDER BY seq DESC LIMIT 1",
    [DEPOT_STMT_ENTRY_INSERT] = "INSERT INTO entry (seq, kind, at, blob, record, detail, hash)"
				" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [DEPOT_STMT_MESSAGE_INSERT] =
	"INSERT INTO message (seq, source, direction, sender, subject, date, size,"
	" message_id, blob, archived, extracted)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [DEPOT_STMT_RECIPIENT_INSERT] =
	"INSERT INTO message_recipient (seq, position, address) VALUES (?1, ?2, ?3)",
    [DEPOT_STMT_OWNER_INSERT] =
	"INSERT INTO message_owner (seq, position, address, user) VALUES (?1, ?2, ?3, ?4)",
    [DEPOT_STMT_ATTACHMENT_INSERT] =
	"INSERT INTO message_attachment (seq, position, name) VALUES (?1, ?2, ?3)",
    [DEPOT_STMT_TEXT_INSERT] = "INSERT INTO message_text (rowid, subject, headers, body,"
			       " attachments, keys) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [DEPOT_STMT_MESSAGE_BLOB] =
	"SELECT m.blob, m.expired, b.pack, b.offset, b.stored, b.raw, b.dict, b.removed"
	" FROM message m LEFT JOIN blob b ON b.sha256 = m.blob WHERE m.seq = ?1",
    [DEPOT_STMT_AUDIT_HEAD] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
    [DEPOT_STMT_AUDIT_INSERT] = "INSERT INTO audit (seq, at, actor, action, detail, hash)"
				" VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
};

static const char *const depot_direction_names[] = {
    [DEPOT_IN] = "in",
    [DEPOT_OUT] = "out",
    [DEPOT_IMPORT] = "import",
};

/* ---- helpers ---- */

static int depot_db_error(struct depot *depot, const char *what, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s", what, sqlite3_errmsg(depot->db));
	return -1;
}

/* Writes all of LEN bytes; 0 or -1 with errno. */
static int depot_write_all(int fd, const uint8_t *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly LEN bytes at OFFSET; 0, or -1 (errno 0 for a file too short). */
static int depot_read_at(int fd, uint8_t *data, size_t len, off_t offset)
{
	while (len > 0) {
		ssize_t n = pread(fd, data, len, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = 0;
			return -1;
		}
		data += n;
		len -= (size_t)n;
		offset += n;
	}
	return 0;
}

/* The highest pack number in packs/ (0: none yet); -1 with ERR. */
static int64_t depot_pack_last(struct depot *depot, char *err, size_t errlen)
{
	char *path = xasprintf("%s/packs", depot->dir);
	DIR *dir = opendir(path);
	struct dirent *ent;
	int64_t last = 0;

	if (dir == NULL) {
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while ((ent = readdir(dir)) != NULL) {
		char *end;
		long long number = strtoll(ent->d_name, &end, 10);

		if (end != ent->d_name && strcmp(end, ".pack") == 0 && number > last)
			last = number;
	}
	closedir(dir);
	free(path);
	return last;
}

/* ---- shared with the depot's other files (depot_internal.h) ---- */

void depot_text_add(struct depot_text *text, const char *bytes, size_t len)
{
	if (text->len + len + 1 > text->cap) {
		size_t cap = text->cap ? text->cap : 256;

		while (cap < text->len + len + 1)
			cap *= 2;
		text->data = xrealloc(text->data, cap);
		text->cap = cap;
	}
	memcpy(text->data + text->len, bytes, len);
	text->len += len;
	text->data[text->len] = '\0';
}

void depot_text_line(struct depot_text *text, const char *label, const char *value)
{
	size_t start;

	depot_text_add(text, label, strlen(label));
	depot_text_add(text, ":", 1);
	start = text->len;
	if (value != NULL)
		depot_text_add(text, value, strlen(value));
	/* A value may not start a line of its own: its line breaks become spaces. */
	for (size_t i = start; i < text->len; i++) {
		if (text->data[i] == '\r' || text->data[i] == '\n' || text->data[i] == '\0')
			text->data[i] = ' ';
	}
	depot_text_add(text, "\n", 1);
}

void depot_text_free(struct depot_text *text)
{
	free(text->data);
	*text = (struct depot_text){0};
}

void depot_hex(const uint8_t *bytes, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bytes[i] >> 4];
		out[2 * i + 1] = digits[bytes[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

int depot_unhex(const char *hex, uint8_t *out, size_t len)
{
	size_t got;

	if (strlen(hex) != 2 * len)
		return -1;
	if (sodium_hex2bin(out, len, hex, 2 * len, NULL, &got, NULL) != 0 || got != len)
		return -1;
	return 0;
}

void depot_record_hash(const struct depot_record *record, uint8_t out[32])
{
	struct depot_text text = {0};
	char number[32];

	depot_text_line(&text, "direction", record->direction);
	depot_text_line(&text, "source", record->source);
	depot_text_line(&text, "sender", record->sender);
	for (size_t i = 0; i < record->recipient_count; i++)
		depot_text_line(&text, "recipient", record->recipients[i]);
	depot_text_line(&text, "subject", record->subject);
	snprintf(number, sizeof(number), "%lld", (long long)record->date);
	depot_text_line(&text, "date", number);
	snprintf(number, sizeof(number), "%lld", (long long)record->size);
	depot_text_line(&text, "size", number);
	depot_text_line(&text, "message-id", record->message_id);
	for (size_t i = 0; i < record->owner_count; i++) {
		const struct depot_owner *owner = &record->owners[i];
		char *value = xasprintf("%s %s", owner->address ? owner->address : "",
					owner->user ? owner->user : "");

		depot_text_line(&text, "owner", value);
		free(value);
	}
	for (size_t i = 0; i < record->attachment_count; i++)
		depot_text_line(&text, "attachment", record->attachments[i]);
	crypto_hash_sha256(out, (const unsigned char *)text.data, text.len);
	depot_text_free(&text);
}

/* Hashes PREV || TEXT into OUT. */
static void depot_chain_hash(const uint8_t prev[32], const struct depot_text *text, uint8_t out[32])
{
	crypto_hash_sha256_state state;

	crypto_hash_sha256_init(&state);
	crypto_hash_sha256_update(&state, prev, 32);
	crypto_hash_sha256_update(&state, (const unsigned char *)text->data, text->len);
	crypto_hash_sha256_final(&state, out);
}

void depot_entry_hash(const uint8_t prev[32], int64_t seq, const char *kind, int64_t at,
		      const uint8_t *blob, const uint8_t *record, const char *detail,
		      uint8_t out[32])
{
	struct depot_text text = {0};
	char value[65];

	snprintf(value, sizeof(value), "%lld", (long long)seq);
	depot_text_line(&text, "seq", value);
	depot_text_line(&text, "kind", kind);
	snprintf(value, sizeof(value), "%lld", (long long)at);
	depot_text_line(&text, "at", value);
	if (blob != NULL)
		depot_hex(blob, 32, value);
	depot_text_line(&text, "blob", blob != NULL ? value : "-");
	if (record != NULL)
		depot_hex(record, 32, value);
	depot_text_line(&text, "record", record != NULL ? value : "-");
	depot_text_line(&text, "detail", detail != NULL ? detail : "-");
	depot_chain_hash(prev, &text, out);
	depot_text_free(&text);
}

void depot_audit_hash(const uint8_t prev[32], int64_t seq, int64_t at, const char *actor,
		      const char *action, const char *detail, uint8_t out[32])
{
	struct depot_text text = {0};
	char value[32];

	snprintf(value, sizeof(value), "%lld", (long long)seq);
	depot_text_line(&text, "seq", value);
	snprintf(value, sizeof(value), "%lld", (long long)at);
	depot_text_line(&text, "at", value);
	depot_text_line(&text, "actor", actor);
	depot_text_line(&text, "action", action);
	depot_text_line(&text, "detail", detail != NULL ? detail : "-");
	depot_chain_hash(prev, &text, out);
	depot_text_free(&text);
}

sqlite3_stmt *depot_stmt(struct depot *depot, enum depot_stmt_id id, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot->stmts[id];

	if (stmt == NULL) {
		if (sqlite3_prepare_v3(depot->db, depot_stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
				       &stmt, NULL) != SQLITE_OK) {
			depot_db_error(depot, "preparing a statement", err, errlen);
			return NULL;
		}
		depot->stmts[id] = stmt;
	}
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return stmt;
}

int depot_exec(struct depot *depot, const char *sql, char *err, size_t errlen)
{
	char *message = NULL;

	if (sqlite3_exec(depot->db, sql, NULL, NULL, &message) != SQLITE_OK) {
		snprintf(err, errlen, "%s", message ? message : sqlite3_errmsg(depot->db));
		sqlite3_free(message);
		return -1;
	}
	return 0;
}

char *depot_pack_path(const struct depot *depot, int64_t number)
{
	return xasprintf("%s/packs/%06lld.pack", depot->dir, (long long)number);
}

const ZSTD_DDict *depot_ddict(struct depot *depot, uint32_t id, char *err, size_t errlen)
{
	char *path, *data;
	size_t len;
	ZSTD_DDict *ddict;

	for (size_t i = 0; i < depot->ddict_count; i++) {
		if (depot->ddicts[i].id == id)
			return depot->ddicts[i].ddict;
	}
	path = xasprintf("%s/dict/%u.dict", depot->dir, id);
	if (util_read_file(path, &data, &len) < 0) {
		snprintf(err, errlen, "reading dictionary %s: %s", path, strerror(errno));
		free(path);
		return NULL;
	}
	free(path);
	ddict = ZSTD_createDDict(data, len);
	free(data);
	if (ddict == NULL) {
		snprintf(err, errlen, "dictionary %u is damaged", id);
		return NULL;
	}
	depot->ddicts = xrealloc(depot->ddicts, (depot->ddict_count + 1) * sizeof(*depot->ddicts));
	depot->ddicts[depot->ddict_count++] = (struct depot_ddict){.id = id, .ddict = ddict};
	return ddict;
}

int depot_blob_load(struct depot *depot, int64_t pack, int64_t offset, const uint8_t sha256[32],
		    int64_t stored, int64_t raw, uint32_t dict, char **raw_r, size_t *len_r,
		    char *err, size_t errlen)
{
	uint8_t header[DEPOT_PACK_HEADER_SIZE];
	struct depot_pack_record record;
	const ZSTD_DDict *ddict = NULL;
	char *path = depot_pack_path(depot, pack);
	uint8_t *frame = NULL;
	char why[160];
	int fd, rc = -1;

	*raw_r = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		goto done;
	}
	if (offset < 0 || depot_read_at(fd, header, sizeof(header), offset) < 0) {
		snprintf(err, errlen, "record at %s:%lld cut short", path, (long long)offset);
		goto done;
	}
	if (depot_pack_header_parse(header, sizeof(header), &record, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "record at %s:%lld: %s", path, (long long)offset, why);
		goto done;
	}
	/* The index and the pack must agree on what is here. */
	if (memcmp(record.sha256, sha256, 32) != 0 || (int64_t)record.stored != stored ||
	    (int64_t)record.raw != raw || record.dict != dict) {
		snprintf(err, errlen, "record at %s:%lld is not the one the index names", path,
			 (long long)offset);
		goto done;
	}
	frame = xmalloc(record.stored ? (size_t)record.stored : 1);
	if (depot_read_at(fd, frame, (size_t)record.stored, offset + DEPOT_PACK_HEADER_SIZE) < 0) {
		snprintf(err, errlen, "record at %s:%lld cut short", path, (long long)offset);
		goto done;
	}
	if (dict != 0 && (ddict = depot_ddict(depot, dict, err, errlen)) == NULL)
		goto done;
	if (depot_pack_frame_decode(depot->dctx, ddict, &record, frame, DEPOT_PACK_RECORD_MAX,
				    raw_r, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "record at %s:%lld: %s", path, (long long)offset, why);
		goto done;
	}
	*len_r = (size_t)record.raw;
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	free(frame);
	free(path);
	return rc;
}

/* ---- opening ---- */

int depot_owners_read(struct depot *depot, int64_t seq, struct depot_owner **owners_r,
		      size_t *count_r, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int rc;

	*owners_r = NULL;
	*count_r = 0;
	if (sqlite3_prepare_v2(depot->db,
			       "SELECT address, user FROM message_owner WHERE seq = ?"
			       " ORDER BY position",
			       -1, &stmt, NULL) != SQLITE_OK)
		return depot_db_error(depot, "reading a message's owners", err, errlen);
	sqlite3_bind_int64(stmt, 1, seq);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *address = sqlite3_column_text(stmt, 0);
		const unsigned char *user = sqlite3_column_text(stmt, 1);

		*owners_r = xrealloc(*owners_r, (*count_r + 1) * sizeof(**owners_r));
		(*owners_r)[*count_r] = (struct depot_owner){
		    .address = xstrdup(address != NULL ? (const char *)address : ""),
		    .user = xstrdup(user != NULL ? (const char *)user : "")};
		(*count_r)++;
	}
	sqlite3_finalize(stmt);
	if (rc != SQLITE_DONE) {
		depot_owners_free(*owners_r, *count_r);
		*owners_r = NULL;
		*count_r = 0;
		return depot_db_error(depot, "reading a message's owners", err, errlen);
	}
	return 0;
}

void depot_owners_free(struct depot_owner *owners, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(owners[i].address);
		free(owners[i].user);
	}
	free(owners);
}

int depot_text_fields(struct depot *depot, int64_t seq, const uint8_t sha256[32], int64_t pack,
		      int64_t offset, int64_t stored, int64_t raw_len, uint32_t dict,
		      bool extracted, struct depot_fields *fields, char *err, size_t errlen)
{
	char *raw = NULL;
	size_t len = 0;
	char extract_err[256];

	memset(fields, 0, sizeof(*fields));
	/* A message archived without fields has a row of empty values, which
	 * is what FIELDS says then too, blob or no blob. */
	if (!extracted)
		return 0;
	if (depot_blob_load(depot, pack, offset, sha256, stored, raw_len, dict, &raw, &len, err,
			    errlen) < 0) {
		char reason[256];

		snprintf(reason, sizeof(reason), "%s", err);
		snprintf(err, errlen, "message %lld: %s", (long long)seq, reason);
		return 1;
	}
	/* One that did not parse has empty values too. */
	if (depot_extract(raw, len, fields, extract_err, sizeof(extract_err)) < 0)
		memset(fields, 0, sizeof(*fields));
	free(raw);
	return 0;
}

/* Marks message SEQ as indexed without fields. 0, or -1 with ERR. */
static int depot_message_unextract(struct depot *depot, int64_t seq, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	int step;

	if (sqlite3_prepare_v2(depot->db, "UPDATE message SET extracted = 0 WHERE seq = ?1", -1,
			       &stmt, NULL) != SQLITE_OK)
		return depot_db_error(depot, "marking a damaged message", err, errlen);
	sqlite3_bind_int64(stmt, 1, seq);
	step = sqlite3_step(stmt);
	sqlite3_finalize(stmt);
	if (step != SQLITE_DONE)
		return depot_db_error(depot, "marking a damaged message", err, errlen);
	return 0;
}

int depot_text_reindex(struct depot *depot, char *err, size_t errlen)
{
	static const char messages_sql[] =
	    "SELECT m.seq, m.extracted, b.sha256, b.pack, b.offset, b.stored, b.raw, b.dict"
	    " FROM message m JOIN blob b ON b.sha256 = m.blob"
	    " WHERE m.expired IS NULL OR m.expired = 0 ORDER BY m.seq";
	sqlite3_stmt *messages, *insert;
	int step, rc = -1;

	if (sqlite3_prepare_v2(depot->db, messages_sql, -1, &messages, NULL) != SQLITE_OK)
		return depot_db_error(depot, "reading the messages to index", err, errlen);
	while ((step = sqlite3_step(messages)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(messages, 0);
		struct depot_fields fields;
		struct depot_owner *owners;
		size_t owner_count;
		int got;

		if (sqlite3_column_bytes(messages, 2) != 32) {
			snprintf(err, errlen, "message %lld: its blob has no SHA-256",
				 (long long)seq);
			goto done;
		}
		got = depot_text_fields(
		    depot, seq, sqlite3_column_blob(messages, 2), sqlite3_column_int64(messages, 3),
		    sqlite3_column_int64(messages, 4), sqlite3_column_int64(messages, 5),
		    sqlite3_column_int64(messages, 6), (uint32_t)sqlite3_column_int64(messages, 7),
		    sqlite3_column_int(messages, 1) != 0, &fields, err, errlen);
		/* Its blob is damaged (depot verify names it): the message is
		 * indexed without fields from now on, so that the row its
		 * expiry deletes is this one. */
		if (got == 1 && depot_message_unextract(depot, seq, err, errlen) < 0)
			goto done;
		if (depot_owners_read(depot, seq, &owners, &owner_count, err, errlen) < 0) {
			depot_fields_free(&fields);
			goto done;
		}
		insert = depot_stmt(depot, DEPOT_STMT_TEXT_INSERT, err, errlen);
		if (insert != NULL)
			depot_text_row_bind(insert, seq, &fields, owners, owner_count);
		depot_fields_free(&fields);
		depot_owners_free(owners, owner_count);
		if (insert == NULL)
			goto done;
		step = sqlite3_step(insert);
		sqlite3_reset(insert);
		if (step != SQLITE_DONE) {
			depot_db_error(depot, "indexing a message's text", err, errlen);
			goto done;
		}
	}
	if (step != SQLITE_DONE) {
		depot_db_error(depot, "reading the messages to index", err, errlen);
		goto done;
	}
	rc = depot_exec(depot, "DROP TABLE message_text_v1", err, errlen);
done:
	sqlite3_finalize(messages);
	return rc;
}

static int depot_migrate(struct depot *depot, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int version;

	if (sqlite3_prepare_v2(depot->db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW) {
		sqlite3_finalize(stmt);
		return depot_db_error(depot, "reading the schema version", err, errlen);
	}
	version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	if (version > DEPOT_MIGRATION_COUNT) {
		snprintf(err, errlen, "index.db has schema %d, newer than this popgate (%d)",
			 version, DEPOT_MIGRATION_COUNT);
		return -1;
	}
	if (version == DEPOT_MIGRATION_COUNT)
		return 0;
	/* Two processes may open a new depot at once: the write lock and an
	 * IMMEDIATE transaction make one of them migrate, the other see it done.
	 * (A depot already migrated is opened without waiting for the lock, so
	 * a search never waits for an import's batch.) */
	if (depot_write_lock(depot, err, errlen) < 0)
		return -1;
	if (depot_exec(depot, "BEGIN IMMEDIATE", err, errlen) < 0) {
		depot_write_unlock(depot);
		return -1;
	}
	if (sqlite3_prepare_v2(depot->db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW) {
		sqlite3_finalize(stmt);
		depot_db_error(depot, "reading the schema version", err, errlen);
		goto fail;
	}
	version = sqlite3_column_int(stmt, 0);
	sqlite3_finalize(stmt);
	for (; version < DEPOT_MIGRATION_COUNT; version++) {
		char pragma[64];

		if (depot_exec(depot, depot_migrations[version], err, errlen) < 0)
			goto fail;
		if (version + 1 == DEPOT_MIGRATION_KEYS &&
		    depot_text_reindex(depot, err, errlen) < 0)
			goto fail;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version + 1);
		if (depot_exec(depot, pragma, err, errlen) < 0)
			goto fail;
	}
	if (depot_exec(depot, "COMMIT", err, errlen) < 0)
		goto fail;
	depot_write_unlock(depot);
	return 0;
fail:
	sqlite3_exec(depot->db, "ROLLBACK", NULL, NULL, NULL);
	depot_write_unlock(depot);
	return -1;
}

const char *depot_direction_name(enum depot_direction direction)
{
	if ((unsigned)direction >= sizeof(depot_direction_names) / sizeof(depot_direction_names[0]))
		return "?";
	return depot_direction_names[direction];
}

int depot_direction_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(depot_direction_names) / sizeof(depot_direction_names[0]);
	     i++) {
		if (name != NULL && strcmp(name, depot_direction_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

int depot_give(struct depot *depot, const char *path, char *err, size_t errlen)
{
	if (!depot->give_away)
		return 0;
	if (lchown(path, depot->owner_uid, depot->owner_gid) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "giving %s to the data folder's owner: %s", path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Run as root (popgatectl) on a data folder that belongs to someone else
 * (the service user the daemon became): what the depot creates is given to
 * that owner, or the daemon could no longer append to a pack, read a
 * dictionary or open write.lock that root made.
 */
static void depot_owner_find(struct depot *depot)
{
	/* The data folder: DIR's parent (DIR itself may not exist yet). */
	char *parent = xstrdup(depot->dir);
	char *slash = strrchr(parent, '/');
	struct stat st;

	if (slash == NULL)
		strcpy(parent, ".");
	else if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';

	if (geteuid() == 0 && stat(parent, &st) == 0 && st.st_uid != 0) {
		depot->give_away = true;
		depot->owner_uid = st.st_uid;
		depot->owner_gid = st.st_gid;
	}
	free(parent);
}

struct depot *depot_open(const char *dir, bool create, char *err, size_t errlen)
{
	struct depot *depot = xcalloc(1, sizeof(*depot));
	char *path = NULL;
	struct stat st;

	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		free(depot);
		return NULL;
	}
	depot->dir = xstrdup(dir);
	depot->lock_fd = -1;
	depot->pack_max = DEPOT_PACK_MAX;
	depot_owner_find(depot);
	if (create) {
		const char *const folders[] = {"", "/packs", "/dict"};

		for (size_t i = 0; i < sizeof(folders) / sizeof(folders[0]); i++) {
			free(path);
			path = xasprintf("%s%s", dir, folders[i]);
			if (util_mkdir_p(path, 0700) < 0) {
				snprintf(err, errlen, "creating %s: %s", path, strerror(errno));
				goto fail;
			}
			if (depot_give(depot, path, err, errlen) < 0)
				goto fail;
		}
	}
	free(path);
	path = xasprintf("%s/index.db", dir);
	if (!create && stat(path, &st) != 0) {
		snprintf(err, errlen, "no depot at %s (%s)", dir, strerror(errno));
		goto fail;
	}
	if (sqlite3_open_v2(path, &depot->db,
			    SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
				SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		snprintf(err, errlen, "opening %s: %s", path,
			 depot->db ? sqlite3_errmsg(depot->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(depot->db, DEPOT_BUSY_TIMEOUT_MS);
	/* WAL: readers (searches, popgatectl) never wait for the archiver.
	 * synchronous=FULL: a committed entry survives a power cut, since the
	 * message it stands for may be delivered (and deleted upstream) next.
	 * A 64 MB page cache and 64 MB of WAL between checkpoints: a batch's
	 * full-text rows touch many pages, and a page changed by several
	 * batches is written back to index.db once, not once per batch (a
	 * third fewer page writes on the corpus). */
	if (depot_exec(depot, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
	    depot_exec(depot, "PRAGMA synchronous = FULL", err, errlen) < 0 ||
	    depot_exec(depot, "PRAGMA cache_size = -65536", err, errlen) < 0 ||
	    depot_exec(depot, "PRAGMA wal_autocheckpoint = 16384", err, errlen) < 0)
		goto fail;
	free(path);
	path = xasprintf("%s/write.lock", dir);
	depot->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (depot->lock_fd < 0) {
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		goto fail;
	}
	/* Before the migrations: one of them reads the blobs. */
	depot->cctx = ZSTD_createCCtx();
	depot->dctx = ZSTD_createDCtx();
	if (depot->cctx == NULL || depot->dctx == NULL) {
		snprintf(err, errlen, "zstd: out of memory");
		goto fail;
	}
	ZSTD_CCtx_setParameter(depot->cctx, ZSTD_c_compressionLevel, DEPOT_ZSTD_LEVEL);
	ZSTD_CCtx_setParameter(depot->cctx, ZSTD_c_checksumFlag, 0);
	if (depot_give(depot, path, err, errlen) < 0 || depot_migrate(depot, err, errlen) < 0)
		goto fail;
	/* The database and the -wal and -shm files it has now; later ones
	 * SQLite (run as root) gives the database's owner by itself. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const suffixes[] = {"", "-wal", "-shm"};

		free(path);
		path = xasprintf("%s/index.db%s", dir, suffixes[i]);
		if (depot_give(depot, path, err, errlen) < 0)
			goto fail;
	}
	free(path);
	return depot;
fail:
	free(path);
	depot_close(&depot);
	return NULL;
}

void depot_close(struct depot **depotp)
{
	struct depot *depot = *depotp;

	if (depot == NULL)
		return;
	for (int i = 0; i < DEPOT_STMT_COUNT; i++)
		sqlite3_finalize(depot->stmts[i]);
	if (depot->db != NULL)
		sqlite3_close(depot->db);
	if (depot->lock_fd >= 0)
		close(depot->lock_fd);
	ZSTD_freeCCtx(depot->cctx);
	ZSTD_freeDCtx(depot->dctx);
	ZSTD_freeCDict(depot->cdict);
	for (size_t i = 0; i < depot->ddict_count; i++)
		ZSTD_freeDDict(depot->ddicts[i].ddict);
	free(depot->ddicts);
	free(depot->dir);
	free(depot);
	*depotp = NULL;
}

sqlite3 *depot_db(struct depot *depot)
{
	return depot->db;
}

int depot_write_lock(struct depot *depot, char *err, size_t errlen)
{
	if (depot->lock_depth == 0) {
		while (flock(depot->lock_fd, LOCK_EX) < 0) {
			if (errno != EINTR) {
				snprintf(err, errlen, "locking %s/write.lock: %s", depot->dir,
					 strerror(errno));
				return -1;
			}
		}
	}
	depot->lock_depth++;
	return 0;
}

void depot_write_unlock(struct depot *depot)
{
	if (depot->lock_depth > 0 && --depot->lock_depth == 0)
		flock(depot->lock_fd, LOCK_UN);
}

/* ---- the chains ---- */

/*
 * The seq the next entry of a chain gets and the hash it follows (zeros
 * before the first), from statement HEAD (the newest entry's seq and hash);
 * WHAT names the chain's head in errors. 0 / -1 ERR.
 */
static int depot_head_next(struct depot *depot, enum depot_stmt_id head, const char *what,
			   int64_t *seq_r, uint8_t prev[32], char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot_stmt(depot, head, err, errlen);
	int rc;

	*seq_r = 1;
	memset(prev, 0, 32);
	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_bytes(stmt, 1) != 32) {
			snprintf(err, errlen, "%s (entry %lld) has no hash", what,
				 (long long)sqlite3_column_int64(stmt, 0));
			sqlite3_reset(stmt);
			return -1;
		}
		*seq_r = sqlite3_column_int64(stmt, 0) + 1;
		memcpy(prev, sqlite3_column_blob(stmt, 1), 32);
	} else if (rc != SQLITE_DONE) {
		char reading[64];

		snprintf(reading, sizeof(reading), "reading %s", what);
		return depot_db_error(depot, reading, err, errlen);
	}
	sqlite3_reset(stmt);
	return 0;
}

int depot_chain_append(struct depot *depot, const char *kind, const uint8_t *blob,
		       const uint8_t *record, const char *detail, int64_t at, int64_t *seq_r,
		       char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	uint8_t prev[32], hash[32];
	int64_t seq;
	int rc;

	if (depot_head_next(depot, DEPOT_STMT_ENTRY_HEAD, "the chain's head", &seq, prev, err,
			    errlen) < 0)
		return -1;
	depot_entry_hash(prev, seq, kind, at, blob, record, detail, hash);
	if ((stmt = depot_stmt(depot, DEPOT_STMT_ENTRY_INSERT, err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, seq);
	sqlite3_bind_text(stmt, 2, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, at);
	if (blob != NULL)
		sqlite3_bind_blob(stmt, 4, blob, 32, SQLITE_STATIC);
	if (record != NULL)
		sqlite3_bind_blob(stmt, 5, record, 32, SQLITE_STATIC);
	if (detail != NULL)
		sqlite3_bind_text(stmt, 6, detail, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 7, hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return depot_db_error(depot, "appending to the chain", err, errlen);
	if (seq_r != NULL)
		*seq_r = seq;
	return 0;
}

/* Appends one audit entry inside the caller's transaction. */
static int depot_audit_append(struct depot *depot, const char *actor, const char *action,
			      const char *detail, char *err, size_t errlen)
{
	sqlite3_stmt *stmt;
	uint8_t prev[32], hash[32];
	int64_t seq, at = util_now();
	int rc;

	if (depot_head_next(depot, DEPOT_STMT_AUDIT_HEAD, "the audit log's head", &seq, prev, err,
			    errlen) < 0)
		return -1;
	depot_audit_hash(prev, seq, at, actor, action, detail, hash);
	if ((stmt = depot_stmt(depot, DEPOT_STMT_AUDIT_INSERT, err, errlen)) == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, seq);
	sqlite3_bind_int64(stmt, 2, at);
	sqlite3_bind_text(stmt, 3, actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, action, -1, SQLITE_STATIC);
	if (detail != NULL)
		sqlite3_bind_text(stmt, 5, detail, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 6, hash, 32, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return depot_db_error(depot, "appending to the audit log", err, errlen);
	return 0;
}

/*
 * Opens the write: takes write.lock and begins an IMMEDIATE transaction, or,
 * when the caller already has one open, a savepoint inside it (*NESTED).
 */
static int depot_write_begin(struct depot *depot, bool *nested, char *err, size_t errlen)
{
	if (depot_write_lock(depot, err, errlen) < 0)
		return -1;
	*nested = !sqlite3_get_autocommit(depot->db);
	if (depot_exec(depot, *nested ? "SAVEPOINT depot_write" : "BEGIN IMMEDIATE", err, errlen) <
	    0) {
		depot_write_unlock(depot);
		return -1;
	}
	return 0;
}

/* Ends what depot_write_begin opened: commits (COMMIT) or undoes it. */
static int depot_write_end(struct depot *depot, bool nested, bool commit, char *err, size_t errlen)
{
	int rc = 0;

	if (commit) {
		rc = depot_exec(depot, nested ? "RELEASE depot_write" : "COMMIT", err, errlen);
		commit = rc == 0;
	}
	if (!commit) {
		if (nested) {
			sqlite3_exec(depot->db, "ROLLBACK TO depot_write", NULL, NULL, NULL);
			sqlite3_exec(depot->db, "RELEASE depot_write", NULL, NULL, NULL);
		} else {
			sqlite3_exec(depot->db, "ROLLBACK", NULL, NULL, NULL);
		}
	}
	depot_write_unlock(depot);
	return rc;
}

int depot_audit(struct depot *depot, const char *actor, const char *action, const char *detail,
		char *err, size_t errlen)
{
	bool nested;
	int rc;

	if (actor == NULL || action == NULL) {
		snprintf(err, errlen, "an audit entry needs an actor and an action");
		return -1;
	}
	if (depot_write_begin(depot, &nested, err, errlen) < 0)
		return -1;
	rc = depot_audit_append(depot, actor, action, detail, err, errlen);
	return depot_write_end(depot, nested, rc == 0, err, errlen) < 0 ? -1 : rc;
}

/* ---- archiving ---- */

/* The pack a batch appends to: its descriptor, number and end, and the
 * records not yet written. */
struct depot_pack_writer {
	int fd;
	int64_t number;
	int64_t end; /* the offset the next record added gets */
	struct depot_text pending;
};

static int depot_pack_open(struct depot *depot, struct depot_pack_writer *writer, bool fresh,
			   char *err, size_t errlen)
{
	char *path = depot_pack_path(depot, writer->number);
	struct stat st;

	writer->fd =
	    open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | (fresh ? O_EXCL : 0), 0600);
	if (writer->fd < 0 || fstat(writer->fd, &st) < 0) {
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	if (depot_give(depot, path, err, errlen) < 0) {
		free(path);
		return -1;
	}
	free(path);
	/* A pack's tail past its last committed record is dead (a crashed
	 * batch); new records go after it, at the file's real end. */
	writer->end = st.st_size;
	if (fresh) {
		char *packs = xasprintf("%s/packs", depot->dir);
		int rc = util_fsync_dir(packs);

		free(packs);
		if (rc < 0) {
			snprintf(err, errlen, "syncing the packs folder: %s", strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* Writes the pending records to the pack (not yet fsynced). */
static int depot_pack_flush(struct depot *depot, struct depot_pack_writer *writer, char *err,
			    size_t errlen)
{
	if (writer->pending.len == 0)
		return 0;
	if (depot_write_all(writer->fd, (const uint8_t *)writer->pending.data,
			    writer->pending.len) < 0) {
		snprintf(err, errlen, "writing pack %06lld in %s: %s", (long long)writer->number,
			 depot->dir, strerror(errno));
		return -1;
	}
	writer->pending.len = 0;
	return 0;
}

/* Flushes and fsyncs the pack: after this its records survive a crash. */
static int depot_pack_sync(struct depot *depot, struct depot_pack_writer *writer, char *err,
			   size_t errlen)
{
	if (writer->fd < 0)
		return 0;
	if (depot_pack_flush(depot, writer, err, errlen) < 0)
		return -1;
	if (fsync(writer->fd) < 0) {
		snprintf(err, errlen, "syncing pack %06lld in %s: %s", (long long)writer->number,
			 depot->dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Compresses RAW into a record queued on WRITER (opening the pack on first
 * use and moving to a fresh pack when this one would pass depot->pack_max);
 * the record's place into *PACK_R and *OFFSET_R, its header into *RECORD.
 */
static int depot_pack_add(struct depot *depot, struct depot_pack_writer *writer, const char *raw,
			  size_t len, struct depot_pack_record *record, int64_t *pack_r,
			  int64_t *offset_r, char *err, size_t errlen)
{
	size_t bound = ZSTD_compressBound(len), got;
	uint8_t header[DEPOT_PACK_HEADER_SIZE] = {0};
	size_t start;

	if (len > (size_t)DEPOT_PACK_RECORD_MAX || bound > (size_t)DEPOT_PACK_RECORD_MAX) {
		snprintf(err, errlen, "message of %zu bytes is too large to archive", len);
		return -1;
	}
	if (writer->fd < 0) {
		int64_t last = depot_pack_last(depot, err, errlen);

		if (last < 0)
			return -1;
		writer->number = last > 0 ? last : 1;
		if (depot_pack_open(depot, writer, last == 0, err, errlen) < 0)
			return -1;
	}
	if (writer->end > 0 &&
	    writer->end + DEPOT_PACK_HEADER_SIZE + (int64_t)bound > depot->pack_max) {
		if (depot_pack_sync(depot, writer, err, errlen) < 0)
			return -1;
		close(writer->fd);
		writer->fd = -1;
		writer->number++;
		if (depot_pack_open(depot, writer, true, err, errlen) < 0)
			return -1;
	}
	/* Room for the header and the frame, compressed in place. */
	start = writer->pending.len;
	depot_text_add(&writer->pending, (const char *)header, sizeof(header));
	if (writer->pending.cap < writer->pending.len + bound + 1) {
		writer->pending.cap = writer->pending.len + bound + 1;
		writer->pending.data = xrealloc(writer->pending.data, writer->pending.cap);
	}
	ZSTD_CCtx_reset(depot->cctx, ZSTD_reset_session_only);
	ZSTD_CCtx_setPledgedSrcSize(depot->cctx, len);
	ZSTD_CCtx_refCDict(depot->cctx, depot->dict_id != 0 ? depot->cdict : NULL);
	got = ZSTD_compress2(depot->cctx, writer->pending.data + writer->pending.len, bound, raw,
			     len);
	if (ZSTD_isError(got)) {
		writer->pending.len = start;
		snprintf(err, errlen, "zstd: %s", ZSTD_getErrorName(got));
		return -1;
	}
	record->raw = len;
	record->stored = got;
	record->dict = depot->dict_id;
	depot_pack_header_encode((uint8_t *)writer->pending.data + start, record);
	writer->pending.len += got;
	*pack_r = writer->number;
	*offset_r = writer->end;
	writer->end += DEPOT_PACK_HEADER_SIZE + (int64_t)got;
	if (writer->pending.len >= DEPOT_WRITE_CHUNK)
		return depot_pack_flush(depot, writer, err, errlen);
	return 0;
}

/* Binds TEXT (or NULL) cut at DEPOT_TEXT_MAX bytes. */
static void depot_bind_text_bounded(sqlite3_stmt *stmt, int column, const char *text)
{
	if (text == NULL) {
		sqlite3_bind_null(stmt, column);
		return;
	}
	sqlite3_bind_text(stmt, column, text, (int)strnlen(text, DEPOT_TEXT_MAX), SQLITE_TRANSIENT);
}

void depot_key_token(char role, const char *value, char out[DEPOT_KEY_TOKEN_SIZE])
{
	uint8_t hash[crypto_hash_sha256_BYTES];
	char *lowered = xstrdup(value);

	/* Addresses are compared without ASCII case (search_lower); a user
	 * name exactly. */
	if (role != DEPOT_KEY_USER)
		for (char *p = lowered; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	crypto_hash_sha256(hash, (const unsigned char *)lowered, strlen(lowered));
	free(lowered);
	out[0] = 'k';
	out[1] = role;
	depot_hex(hash, DEPOT_KEY_HASH_BYTES, out + 2);
}

bool depot_month_token(int64_t date, char out[DEPOT_KEY_TOKEN_SIZE])
{
	time_t when = (time_t)date;
	struct tm tm;

	if (date <= 0 || gmtime_r(&when, &tm) == NULL || tm.tm_year + 1900 > 9999)
		return false;
	snprintf(out, DEPOT_KEY_TOKEN_SIZE, "k%c%04d%02d", DEPOT_KEY_MONTH, tm.tm_year + 1900,
		 tm.tm_mon + 1);
	return true;
}

/* Appends TOKEN and a space to TEXT. */
static void depot_keys_add(struct depot_text *text, const char *token)
{
	depot_text_add(text, token, strlen(token));
	depot_text_add(text, " ", 1);
}

/* The keys column of a message (depot.h): its sender's, recipients',
 * owners' and owner users' tokens and its Date's month, into TEXT. */
static void depot_keys_text(const struct depot_fields *fields, const struct depot_owner *owners,
			    size_t owner_count, struct depot_text *text)
{
	char token[DEPOT_KEY_TOKEN_SIZE];

	if (fields->sender != NULL && fields->sender[0] != '\0') {
		depot_key_token(DEPOT_KEY_SENDER, fields->sender, token);
		depot_keys_add(text, token);
	}
	for (size_t i = 0; i < fields->recipient_count; i++) {
		depot_key_token(DEPOT_KEY_RECIPIENT, fields->recipients[i], token);
		depot_keys_add(text, token);
	}
	for (size_t i = 0; i < owner_count; i++) {
		if (owners[i].address != NULL && owners[i].address[0] != '\0') {
			depot_key_token(DEPOT_KEY_OWNER, owners[i].address, token);
			depot_keys_add(text, token);
		}
		if (owners[i].user != NULL && owners[i].user[0] != '\0') {
			depot_key_token(DEPOT_KEY_USER, owners[i].user, token);
			depot_keys_add(text, token);
		}
	}
	if (depot_month_token(fields->date, token))
		depot_keys_add(text, token);
}

void depot_text_row_bind(sqlite3_stmt *stmt, int64_t seq, const struct depot_fields *fields,
			 const struct depot_owner *owners, size_t owner_count)
{
	struct depot_text names = {0}, keys = {0};

	for (size_t i = 0; i < fields->attachment_count; i++) {
		depot_text_add(&names, fields->attachments[i], strlen(fields->attachments[i]));
		depot_text_add(&names, "\n", 1);
	}
	if (fields->attachment_text != NULL)
		depot_text_add(&names, fields->attachment_text,
			       strnlen(fields->attachment_text, DEPOT_TEXT_MAX));
	sqlite3_bind_int64(stmt, 1, seq);
	depot_bind_text_bounded(stmt, 2, fields->subject);
	depot_bind_text_bounded(stmt, 3, fields->headers);
	depot_bind_text_bounded(stmt, 4, fields->body);
	if (names.len > 0)
		sqlite3_bind_text(stmt, 5, names.data, (int)names.len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(stmt, 5);
	depot_keys_text(fields, owners, owner_count, &keys);
	if (keys.len > 0)
		sqlite3_bind_text(stmt, 6, keys.data, (int)keys.len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(stmt, 6);
	depot_text_free(&names);
	depot_text_free(&keys);
}

/* Steps an INSERT; 0 or -1 with ERR naming WHAT. */
static int depot_step_done(struct depot *depot, sqlite3_stmt *stmt, const char *what, char *err,
			   size_t errlen)
{
	int rc = sqlite3_step(stmt);

	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return depot_db_error(depot, what, err, errlen);
	return 0;
}

/* Writes the index rows of the message of entry SEQ. */
static int depot_index_rows(struct depot *depot, const struct depot_item *item,
			    const struct depot_fields *fields, int64_t seq, const uint8_t sha[32],
			    int64_t at, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot_stmt(depot, DEPOT_STMT_MESSAGE_INSERT, err, errlen);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, seq);
	sqlite3_bind_text(stmt, 2, item->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, depot_direction_name(item->direction), -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, fields->sender, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, fields->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 6, fields->date);
	sqlite3_bind_int64(stmt, 7, (int64_t)item->len);
	sqlite3_bind_text(stmt, 8, fields->message_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 9, sha, 32, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 10, at);
	sqlite3_bind_int(stmt, 11, item->fields != NULL);
	if (depot_step_done(depot, stmt, "indexing a message", err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < fields->recipient_count; i++) {
		if ((stmt = depot_stmt(depot, DEPOT_STMT_RECIPIENT_INSERT, err, errlen)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, seq);
		sqlite3_bind_int64(stmt, 2, (int64_t)i);
		sqlite3_bind_text(stmt, 3, fields->recipients[i], -1, SQLITE_STATIC);
		if (depot_step_done(depot, stmt, "indexing a recipient", err, errlen) < 0)
			return -1;
	}
	for (size_t i = 0; i < item->owner_count; i++) {
		const struct depot_owner *owner = &item->owners[i];

		if ((stmt = depot_stmt(depot, DEPOT_STMT_OWNER_INSERT, err, errlen)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, seq);
		sqlite3_bind_int64(stmt, 2, (int64_t)i);
		sqlite3_bind_text(stmt, 3, owner->address, -1, SQLITE_STATIC);
		sqlite3_bind_text(stmt, 4, owner->user ? owner->user : "", -1, SQLITE_STATIC);
		if (depot_step_done(depot, stmt, "indexing an owner", err, errlen) < 0)
			return -1;
	}
	for (size_t i = 0; i < fields->attachment_count; i++) {
		if ((stmt = depot_stmt(depot, DEPOT_STMT_ATTACHMENT_INSERT, err, errlen)) == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, seq);
		sqlite3_bind_int64(stmt, 2, (int64_t)i);
		sqlite3_bind_text(stmt, 3, fields->attachments[i], -1, SQLITE_STATIC);
		if (depot_step_done(depot, stmt, "indexing an attachment", err, errlen) < 0)
			return -1;
	}
	if ((stmt = depot_stmt(depot, DEPOT_STMT_TEXT_INSERT, err, errlen)) == NULL)
		return -1;
	depot_text_row_bind(stmt, seq, fields, item->owners, item->owner_count);
	return depot_step_done(depot, stmt, "indexing the message's text", err, errlen);
}

/* The entry already archived for SOURCE: its seq, 0 for none, -1 ERR. */
static int64_t depot_source_seq(struct depot *depot, const char *source, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot_stmt(depot, DEPOT_STMT_SOURCE_SEQ, err, errlen);
	int64_t seq = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, source, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		seq = sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return depot_db_error(depot, "looking up a source", err, errlen);
	return seq;
}

/* Whether blob SHA is stored: 1 yes, 2 known but removed by expiry, 0 no, -1 ERR. */
static int depot_blob_state(struct depot *depot, const uint8_t sha[32], char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot_stmt(depot, DEPOT_STMT_BLOB_FIND, err, errlen);
	int rc, state = 0;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_blob(stmt, 1, sha, 32, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		state = sqlite3_column_type(stmt, 0) == SQLITE_NULL ? 1 : 2;
	sqlite3_reset(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return depot_db_error(depot, "looking up a blob", err, errlen);
	return state;
}

/* Archives one item inside the batch's transaction; its entry into *SEQ_R. */
static int depot_ingest_one(struct depot *depot, struct depot_pack_writer *writer,
			    const struct depot_item *item, int64_t *seq_r, char *err, size_t errlen)
{
	static const struct depot_fields no_fields = {0};
	const struct depot_fields *fields = item->fields ? item->fields : &no_fields;
	int64_t at = item->at ? item->at : util_now();
	struct depot_pack_record record;
	uint8_t sha[32], record_hash[32];
	int64_t seq;
	int state;

	if (item->source == NULL || item->source[0] == '\0' ||
	    depot_direction_parse(depot_direction_name(item->direction)) < 0 ||
	    (item->raw == NULL && item->len > 0)) {
		snprintf(err, errlen, "an item to archive needs bytes, a direction and a source");
		return -1;
	}
	if ((seq = depot_source_seq(depot, item->source, err, errlen)) != 0) {
		*seq_r = seq;
		return seq < 0 ? -1 : 0;
	}
	crypto_hash_sha256(sha, (const unsigned char *)(item->raw ? item->raw : ""), item->len);
	if ((state = depot_blob_state(depot, sha, err, errlen)) < 0)
		return -1;
	if (state != 1) {
		/* New, or removed by an expiry and now archived again. */
		sqlite3_stmt *stmt;
		int64_t pack, offset;

		memcpy(record.sha256, sha, 32);
		if (depot_pack_add(depot, writer, item->raw ? item->raw : "", item->len, &record,
				   &pack, &offset, err, errlen) < 0)
			return -1;
		stmt =
		    depot_stmt(depot, state == 0 ? DEPOT_STMT_BLOB_INSERT : DEPOT_STMT_BLOB_RESTORE,
			       err, errlen);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_blob(stmt, 1, sha, 32, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, pack);
		sqlite3_bind_int64(stmt, 3, offset);
		sqlite3_bind_int64(stmt, 4, (int64_t)record.stored);
		sqlite3_bind_int64(stmt, 5, (int64_t)record.raw);
		sqlite3_bind_int64(stmt, 6, record.dict);
		if (depot_step_done(depot, stmt, "recording a blob", err, errlen) < 0)
			return -1;
	}
	depot_record_hash(&(struct depot_record){.direction = depot_direction_name(item->direction),
						 .source = item->source,
						 .sender = fields->sender,
						 .recipients = fields->recipients,
						 .recipient_count = fields->recipient_count,
						 .subject = fields->subject,
						 .date = fields->date,
						 .size = (int64_t)item->len,
						 .message_id = fields->message_id,
						 .owners = item->owners,
						 .owner_count = item->owner_count,
						 .attachments = fields->attachments,
						 .attachment_count = fields->attachment_count},
			  record_hash);
	if (depot_chain_append(depot, "archive", sha, record_hash, NULL, at, &seq, err, errlen) < 0)
		return -1;
	if (depot_index_rows(depot, item, fields, seq, sha, at, err, errlen) < 0)
		return -1;
	*seq_r = seq;
	return 0;
}

int depot_ingest(struct depot *depot, const struct depot_item *items, size_t n, int64_t *seq_r,
		 char *err, size_t errlen)
{
	struct depot_pack_writer writer = {.fd = -1};
	bool nested;
	int rc = 0;

	if (n == 0)
		return 0;
	if (depot_write_begin(depot, &nested, err, errlen) < 0)
		return -1;
	rc = depot_dict_refresh(depot, err, errlen);
	for (size_t i = 0; i < n && rc == 0; i++) {
		int64_t seq = 0;

		rc = depot_ingest_one(depot, &writer, &items[i], &seq, err, errlen);
		if (seq_r != NULL)
			seq_r[i] = seq;
	}
	/* G3: the records are on disk before any index row naming them is. */
	if (rc == 0)
		rc = depot_pack_sync(depot, &writer, err, errlen);
	if (writer.fd >= 0)
		close(writer.fd);
	depot_text_free(&writer.pending);
	if (depot_write_end(depot, nested, rc == 0, err, errlen) < 0)
		rc = -1;
	return rc;
}

/* ---- reading ---- */

int depot_read(struct depot *depot, int64_t seq, const char *actor, char **raw_r, size_t *len_r,
	       char *err, size_t errlen)
{
	sqlite3_stmt *stmt = depot_stmt(depot, DEPOT_STMT_MESSAGE_BLOB, err, errlen);
	uint8_t sha[32];
	int64_t pack, offset, stored, raw;
	uint32_t dict;
	char detail[48], why[256];
	int rc;

	*raw_r = NULL;
	*len_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, seq);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(stmt);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return depot_db_error(depot, "looking up a message", err, errlen);
	if (sqlite3_column_type(stmt, 1) != SQLITE_NULL) {
		sqlite3_reset(stmt); /* expired */
		return 0;
	}
	if (sqlite3_column_bytes(stmt, 0) != 32 || sqlite3_column_type(stmt, 2) == SQLITE_NULL ||
	    sqlite3_column_type(stmt, 7) != SQLITE_NULL) {
		sqlite3_reset(stmt);
		snprintf(err, errlen, "blob of entry %lld is missing", (long long)seq);
		return -1;
	}
	memcpy(sha, sqlite3_column_blob(stmt, 0), 32);
	pack = sqlite3_column_int64(stmt, 2);
	offset = sqlite3_column_int64(stmt, 3);
	stored = sqlite3_column_int64(stmt, 4);
	raw = sqlite3_column_int64(stmt, 5);
	dict = (uint32_t)sqlite3_column_int64(stmt, 6);
	sqlite3_reset(stmt);
	if (depot_blob_load(depot, pack, offset, sha, stored, raw, dict, raw_r, len_r, why,
			    sizeof(why)) < 0) {
		snprintf(err, errlen, "blob of entry %lld is corrupt (%s)", (long long)seq, why);
		return -1;
	}
	snprintf(detail, sizeof(detail), "seq:%lld", (long long)seq);
	if (depot_audit(depot, actor ? actor : "admin", "read", detail, err, errlen) < 0) {
		/* A read that leaves no trace in the audit log does not happen. */
		xfree(raw_r);
		*len_r = 0;
		return -1;
	}
	return 1;
}
