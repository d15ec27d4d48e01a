/*
 * fingerprint.c — the fuzzy fingerprints seen, their bands and sightings
 * (see store/fingerprint.h).
 *
 * Owns: the fuzzy_fingerprint, fuzzy_band and fuzzy_sighting rows. Must
 * never: keep a sender's address (only its hash) or any of a message's text
 * (only the MinHash values, from which no text can be read back).
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "filters/fuzzy.h"
#include "store/fingerprint.h"

/* Candidates compared value by value at most: a band shared by very many
 * stored fingerprints (a common template) must not make a lookup slow. */
#define FINGERPRINT_CANDIDATES_MAX 64
#define FINGERPRINT_BLOB_LEN (FILTER_FINGERPRINT_HASHES * 4)

static void fingerprint_pack(const struct filter_fingerprint *fingerprint,
			     unsigned char blob[FINGERPRINT_BLOB_LEN])
{
	for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++) {
		uint32_t v = fingerprint->minhash[i];

		blob[4 * i] = (unsigned char)(v >> 24);
		blob[4 * i + 1] = (unsigned char)(v >> 16);
		blob[4 * i + 2] = (unsigned char)(v >> 8);
		blob[4 * i + 3] = (unsigned char)v;
	}
}

/* False for a blob of the wrong length (a damaged row: never a match). */
static bool fingerprint_unpack(const void *data, int len, struct filter_fingerprint *fingerprint)
{
	const unsigned char *blob = data;

	if (data == NULL || len != FINGERPRINT_BLOB_LEN)
		return false;
	fingerprint->present = true;
	for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++)
		fingerprint->minhash[i] =
		    (uint32_t)blob[4 * i] << 24 | (uint32_t)blob[4 * i + 1] << 16 |
		    (uint32_t)blob[4 * i + 2] << 8 | (uint32_t)blob[4 * i + 3];
	return true;
}

/* The id of the stored fingerprint nearest FINGERPRINT into *ID_R: 1, 0 when
 * none is near, -1 (logged). */
static int fingerprint_find(struct store *store, const struct filter_fingerprint *fingerprint,
			    int64_t *id_r)
{
	static const char sql[] = "SELECT f.id, f.minhashes FROM fuzzy_fingerprint f WHERE f.id IN"
				  " (SELECT fingerprint_id FROM fuzzy_band WHERE band_key IN"
				  " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?))"
				  " ORDER BY f.last_seen DESC LIMIT 64";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	unsigned best = 0;
	int rc;

	_Static_assert(FUZZY_BANDS == 16, "one parameter per band");
	_Static_assert(FINGERPRINT_CANDIDATES_MAX == 64, "the LIMIT above");
	*id_r = 0;
	if (stmt == NULL)
		return -1;
	for (unsigned band = 0; band < FUZZY_BANDS; band++)
		sqlite3_bind_int64(stmt, (int)band + 1, fuzzy_band_key(fingerprint, band));
	while ((rc = store_stmt_step(store, stmt, "finding a near fingerprint")) == 1) {
		struct filter_fingerprint stored;
		unsigned similarity;

		if (!fingerprint_unpack(sqlite3_column_blob(stmt, 1), sqlite3_column_bytes(stmt, 1),
					&stored))
			continue;
		similarity = fuzzy_similarity(fingerprint, &stored);
		if (similarity >= FUZZY_MATCH_MIN && similarity > best) {
			best = similarity;
			*id_r = sqlite3_column_int64(stmt, 0);
		}
	}
	store_stmt_release(stmt);
	if (rc < 0)
		return -1;
	return *id_r != 0 ? 1 : 0;
}

int store_fingerprint_stats(struct store *store, const struct filter_fingerprint *fingerprint,
			    int64_t since, const char *exclude_id, int64_t sender_hash,
			    int64_t owner_id, struct fingerprint_stats *stats)
{
	static const char sql[] =
	    "SELECT f.ham, count(s.message_id), count(DISTINCT s.sender_hash),"
	    " count(DISTINCT s.owner_id), coalesce(min(s.seen_at), 0),"
	    " coalesce(max(s.sender_hash = ?), 0), coalesce(max(s.owner_id = ?), 0)"
	    " FROM fuzzy_fingerprint f LEFT JOIN fuzzy_sighting s ON s.fingerprint_id = f.id"
	    " AND s.seen_at >= ? AND s.message_id <> ? WHERE f.id = ?";
	sqlite3_stmt *stmt;
	int64_t id;
	int rc;

	memset(stats, 0, sizeof(*stats));
	rc = fingerprint_find(store, fingerprint, &id);
	if (rc <= 0)
		return rc;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, sender_hash);
	sqlite3_bind_int64(stmt, 2, owner_id);
	sqlite3_bind_int64(stmt, 3, since);
	sqlite3_bind_text(stmt, 4, exclude_id != NULL ? exclude_id : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, id);
	rc = store_stmt_step(store, stmt, "reading a fingerprint's sightings");
	if (rc == 1) {
		stats->id = id;
		stats->ham = sqlite3_column_int(stmt, 0) != 0;
		stats->messages = sqlite3_column_int64(stmt, 1);
		stats->senders = sqlite3_column_int64(stmt, 2);
		stats->owners = sqlite3_column_int64(stmt, 3);
		stats->first_seen = sqlite3_column_int64(stmt, 4);
		stats->sender_seen = sqlite3_column_int(stmt, 5) != 0;
		stats->owner_seen = sqlite3_column_int(stmt, 6) != 0;
	}
	store_stmt_release(stmt);
	return rc < 0 ? -1 : 0;
}

/* A new fingerprint row for FINGERPRINT, first seen NOW, with its bands. */
static int fingerprint_insert(struct store *store, const struct filter_fingerprint *fingerprint,
			      int64_t now, int64_t *id_r)
{
	static const char insert_sql[] =
	    "INSERT INTO fuzzy_fingerprint (minhashes, first_seen, last_seen) VALUES (?, ?, ?)";
	static const char band_sql[] =
	    "INSERT OR IGNORE INTO fuzzy_band (band_key, fingerprint_id) VALUES (?, ?)";
	unsigned char blob[FINGERPRINT_BLOB_LEN];
	sqlite3_stmt *stmt = store_stmt_prepare(store, insert_sql);

	if (stmt == NULL)
		return -1;
	fingerprint_pack(fingerprint, blob);
	sqlite3_bind_blob(stmt, 1, blob, sizeof(blob), SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, now);
	sqlite3_bind_int64(stmt, 3, now);
	if (store_stmt_done(store, stmt, "adding a fingerprint") < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(store->db);
	for (unsigned band = 0; band < FUZZY_BANDS; band++) {
		stmt = store_stmt_prepare(store, band_sql);
		if (stmt == NULL)
			return -1;
		sqlite3_bind_int64(stmt, 1, fuzzy_band_key(fingerprint, band));
		sqlite3_bind_int64(stmt, 2, *id_r);
		if (store_stmt_done(store, stmt, "adding a fingerprint's band") < 0)
			return -1;
	}
	return 0;
}

/* The writes of store_fingerprint_record, inside its transaction. */
static int fingerprint_record(struct store *store, const struct filter_fingerprint *fingerprint,
			      const char *message_id, int64_t sender_hash, int64_t owner_id,
			      int64_t now, int64_t *id_r)
{
	static const char sighting_sql[] =
	    "INSERT OR IGNORE INTO fuzzy_sighting"
	    " (fingerprint_id, message_id, sender_hash, owner_id, seen_at) VALUES (?, ?, ?, ?, ?)";
	static const char update_sql[] =
	    "UPDATE fuzzy_fingerprint SET last_seen = max(last_seen, ?1),"
	    " messages = messages + ?2,"
	    " senders = (SELECT count(DISTINCT sender_hash) FROM fuzzy_sighting"
	    " WHERE fingerprint_id = ?3),"
	    " owners = (SELECT count(DISTINCT owner_id) FROM fuzzy_sighting"
	    " WHERE fingerprint_id = ?3)"
	    " WHERE id = ?3";
	sqlite3_stmt *stmt;
	int64_t id;
	int found = fingerprint_find(store, fingerprint, &id);
	int added;

	if (found < 0)
		return -1;
	if (found == 0 && fingerprint_insert(store, fingerprint, now, &id) < 0)
		return -1;
	stmt = store_stmt_prepare(store, sighting_sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, sender_hash);
	sqlite3_bind_int64(stmt, 4, owner_id);
	sqlite3_bind_int64(stmt, 5, now);
	if (store_stmt_done(store, stmt, "recording a fingerprint's sighting") < 0)
		return -1;
	added = sqlite3_changes(store->db);
	stmt = store_stmt_prepare(store, update_sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_int64(stmt, 2, added);
	sqlite3_bind_int64(stmt, 3, id);
	if (store_stmt_done(store, stmt, "counting a fingerprint's sightings") < 0)
		return -1;
	if (id_r != NULL)
		*id_r = id;
	return 0;
}

int store_fingerprint_record(struct store *store, const struct filter_fingerprint *fingerprint,
			     const char *message_id, int64_t sender_hash, int64_t owner_id,
			     int64_t now, int64_t *id_r)
{
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (fingerprint_record(store, fingerprint, message_id, sender_hash, owner_id, now, id_r) <
	    0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	return store_tx_commit(store, outer);
}

int store_fingerprint_set_ham(struct store *store, const char *message_id, bool ham)
{
	static const char sql[] =
	    "UPDATE fuzzy_fingerprint SET ham = ? WHERE id IN"
	    " (SELECT fingerprint_id FROM fuzzy_sighting WHERE message_id = ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int(stmt, 1, ham ? 1 : 0);
	sqlite3_bind_text(stmt, 2, message_id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "marking a fingerprint") < 0)
		return -1;
	return sqlite3_changes(store->db);
}

int store_fingerprint_expire(struct store *store, int64_t cutoff)
{
	static const char sightings_sql[] = "DELETE FROM fuzzy_sighting WHERE seen_at < ?";
	static const char fingerprints_sql[] = "DELETE FROM fuzzy_fingerprint WHERE last_seen < ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sightings_sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, cutoff);
	if (store_stmt_done(store, stmt, "expiring fingerprint sightings") < 0)
		return -1;
	stmt = store_stmt_prepare(store, fingerprints_sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, cutoff);
	if (store_stmt_done(store, stmt, "expiring fingerprints") < 0)
		return -1;
	return sqlite3_changes(store->db);
}

int store_fingerprint_get(struct store *store, int64_t id, struct fingerprint_row *row)
{
	static const char sql[] = "SELECT id, first_seen, last_seen, messages, senders, owners, ham"
				  " FROM fuzzy_fingerprint WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	memset(row, 0, sizeof(*row));
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	rc = store_stmt_step(store, stmt, "reading a fingerprint");
	if (rc == 1) {
		row->id = sqlite3_column_int64(stmt, 0);
		row->first_seen = sqlite3_column_int64(stmt, 1);
		row->last_seen = sqlite3_column_int64(stmt, 2);
		row->messages = sqlite3_column_int64(stmt, 3);
		row->senders = sqlite3_column_int64(stmt, 4);
		row->owners = sqlite3_column_int64(stmt, 5);
		row->ham = sqlite3_column_int(stmt, 6) != 0;
	}
	store_stmt_release(stmt);
	return rc;
}
