/*
 * checkpoint.c — MailDepot's signed checkpoints (depot.h): the Ed25519 key
 * in signing.key (made on first use, 0600), signing the chain's head into
 * table checkpoint, and exporting every checkpoint as text to keep
 * elsewhere, so that a chain rewritten from some entry on is found.
 *
 * Owns: signing.key.
 * Must never: change or remove a stored checkpoint, replace an existing
 * signing key, or print the secret key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/depot_internal.h"

/* The text a checkpoint's signature covers (depot.h), into OUT. */
static int checkpoint_message(char *out, size_t outlen, int64_t seq, const uint8_t hash[32],
			      int64_t at)
{
	char hex[65];

	depot_hex(hash, 32, hex);
	return snprintf(out, outlen, "popgate-depot-checkpoint seq:%lld hash:%s at:%lld\n",
			(long long)seq, hex, (long long)at);
}

bool depot_checkpoint_signed(int64_t seq, const uint8_t hash[32], int64_t at,
			     const uint8_t signature[64], const uint8_t pk[32])
{
	char message[160];
	int len = checkpoint_message(message, sizeof(message), seq, hash, at);

	return crypto_sign_verify_detached(signature, (const unsigned char *)message,
					   (unsigned long long)len, pk) == 0;
}

/* The secret key from signing.key into SK: 1, 0 none yet, -1 ERR. */
static int checkpoint_key_load(struct depot *depot, uint8_t sk[crypto_sign_SECRETKEYBYTES],
			       char *err, size_t errlen)
{
	char *path = xasprintf("%s/signing.key", depot->dir);
	char *data = NULL;
	size_t len = 0;
	int rc = -1;

	if (util_read_file(path, &data, &len) < 0) {
		if (errno == ENOENT)
			rc = 0;
		else
			snprintf(err, errlen, "reading %s: %s", path, strerror(errno));
		goto done;
	}
	if (len != crypto_sign_SECRETKEYBYTES) {
		snprintf(err, errlen, "%s is not an Ed25519 key (%zu bytes)", path, len);
		goto done;
	}
	memcpy(sk, data, len);
	rc = 1;
done:
	if (data != NULL) {
		sodium_memzero(data, len);
		free(data);
	}
	free(path);
	return rc;
}

int depot_signing_public(struct depot *depot, uint8_t pk[32], char *err, size_t errlen)
{
	uint8_t sk[crypto_sign_SECRETKEYBYTES];
	int rc = checkpoint_key_load(depot, sk, err, errlen);

	if (rc == 1)
		crypto_sign_ed25519_sk_to_pk(pk, sk);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* The secret key, made and written (0600) when there is none. Under write.lock. */
static int checkpoint_key(struct depot *depot, uint8_t sk[crypto_sign_SECRETKEYBYTES], char *err,
			  size_t errlen)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	char *path;
	int rc = checkpoint_key_load(depot, sk, err, errlen);

	if (rc != 0)
		return rc < 0 ? -1 : 0;
	crypto_sign_keypair(pk, sk);
	path = xasprintf("%s/signing.key", depot->dir);
	rc = util_write_file_atomic(path, sk, crypto_sign_SECRETKEYBYTES, 0600);
	if (rc < 0)
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
	else
		rc = depot_give(depot, path, err, errlen);
	free(path);
	return rc;
}

int depot_checkpoint(struct depot *depot, int64_t *seq_r, char *err, size_t errlen)
{
	static const char head_sql[] = "SELECT seq, hash FROM entry ORDER BY seq DESC LIMIT 1";
	static const char insert_sql[] =
	    "INSERT OR IGNORE INTO checkpoint (seq, hash, at, signature)"
	    " VALUES (?1, ?2, ?3, ?4)";
	uint8_t sk[crypto_sign_SECRETKEYBYTES], hash[32], signature[crypto_sign_BYTES];
	sqlite3_stmt *stmt = NULL;
	int64_t seq = 0, at = util_now();
	char message[160];
	int len, rc = -1;

	if (depot_write_lock(depot, err, errlen) < 0)
		return -1;
	if (checkpoint_key(depot, sk, err, errlen) < 0)
		goto unlock;
	if (depot_exec(depot, "BEGIN IMMEDIATE", err, errlen) < 0)
		goto unlock;
	if (sqlite3_prepare_v2(depot->db, head_sql, -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "reading the chain's head: %s", sqlite3_errmsg(depot->db));
		goto rollback;
	}
	if (sqlite3_step(stmt) != SQLITE_ROW) {
		snprintf(err, errlen, "the chain is empty: nothing to sign yet");
		goto rollback;
	}
	seq = sqlite3_column_int64(stmt, 0);
	if (sqlite3_column_bytes(stmt, 1) != 32) {
		snprintf(err, errlen, "the chain's head (entry %lld) has no hash", (long long)seq);
		goto rollback;
	}
	memcpy(hash, sqlite3_column_blob(stmt, 1), 32);
	sqlite3_finalize(stmt);
	stmt = NULL;
	len = checkpoint_message(message, sizeof(message), seq, hash, at);
	crypto_sign_detached(signature, NULL, (const unsigned char *)message,
			     (unsigned long long)len, sk);
	/* A checkpoint of the same head already stored stays as it was. */
	if (sqlite3_prepare_v2(depot->db, insert_sql, -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "storing the checkpoint: %s", sqlite3_errmsg(depot->db));
		goto rollback;
	}
	sqlite3_bind_int64(stmt, 1, seq);
	sqlite3_bind_blob(stmt, 2, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, at);
	sqlite3_bind_blob(stmt, 4, signature, sizeof(signature), SQLITE_STATIC);
	if (sqlite3_step(stmt) != SQLITE_DONE) {
		snprintf(err, errlen, "storing the checkpoint: %s", sqlite3_errmsg(depot->db));
		goto rollback;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (depot_exec(depot, "COMMIT", err, errlen) < 0)
		goto rollback;
	if (seq_r != NULL)
		*seq_r = seq;
	rc = 0;
	goto unlock;
rollback:
	sqlite3_finalize(stmt);
	sqlite3_exec(depot->db, "ROLLBACK", NULL, NULL, NULL);
unlock:
	sodium_memzero(sk, sizeof(sk));
	depot_write_unlock(depot);
	return rc;
}

int depot_checkpoint_export(struct depot *depot, const char *path, char *err, size_t errlen)
{
	static const char sql[] = "SELECT seq, hash, at, signature FROM checkpoint ORDER BY seq";
	uint8_t pk[crypto_sign_PUBLICKEYBYTES];
	char pk_hex[2 * crypto_sign_PUBLICKEYBYTES + 1];
	struct depot_text text = {0};
	sqlite3_stmt *stmt = NULL;
	int rc, key;

	if ((key = depot_signing_public(depot, pk, err, errlen)) < 0)
		return -1;
	if (key == 1)
		depot_hex(pk, sizeof(pk), pk_hex);
	if (sqlite3_prepare_v2(depot->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "reading the checkpoints: %s", sqlite3_errmsg(depot->db));
		return -1;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		char hash_hex[65], signature_hex[2 * crypto_sign_BYTES + 1], *line;

		if (key != 1) {
			snprintf(err, errlen, "checkpoints are stored but signing.key is missing");
			goto fail;
		}
		if (sqlite3_column_bytes(stmt, 1) != 32 ||
		    sqlite3_column_bytes(stmt, 3) != crypto_sign_BYTES) {
			snprintf(err, errlen, "checkpoint at entry %lld is damaged",
				 (long long)sqlite3_column_int64(stmt, 0));
			goto fail;
		}
		depot_hex(sqlite3_column_blob(stmt, 1), 32, hash_hex);
		depot_hex(sqlite3_column_blob(stmt, 3), crypto_sign_BYTES, signature_hex);
		line = xasprintf("%lld %s %lld %s %s\n", (long long)sqlite3_column_int64(stmt, 0),
				 hash_hex, (long long)sqlite3_column_int64(stmt, 2), signature_hex,
				 pk_hex);
		depot_text_add(&text, line, strlen(line));
		free(line);
	}
	if (rc != SQLITE_DONE) {
		snprintf(err, errlen, "reading the checkpoints: %s", sqlite3_errmsg(depot->db));
		goto fail;
	}
	sqlite3_finalize(stmt);
	stmt = NULL;
	if (strcmp(path, "-") == 0) {
		if ((text.len > 0 && fwrite(text.data, 1, text.len, stdout) != text.len) ||
		    fflush(stdout) != 0) {
			snprintf(err, errlen, "writing the checkpoints: %s", strerror(errno));
			goto fail;
		}
	} else if (util_write_file_atomic(path, text.data ? text.data : "", text.len, 0644) < 0) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
		goto fail;
	}
	depot_text_free(&text);
	return 0;
fail:
	sqlite3_finalize(stmt);
	depot_text_free(&text);
	return -1;
}
