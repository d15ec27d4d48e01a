/*
 * dict.c — MailDepot's zstd dictionaries (depot.h, "dict/N.dict"): picking
 * up the newest one for new blobs, and training one from the first archived
 * messages once enough exist, kept only if it pays.
 *
 * Mail is many small, similar texts (headers above all); a dictionary lets
 * zstd start each one knowing the common strings, which a lone small
 * message cannot teach it.
 *
 * Owns: dict/; the depot's compression dictionary.
 * Must never: change or remove a dictionary once written (blobs name it by
 * id for ever); write one that does not load back.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>
#include <zdict.h>
#include <zstd.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/depot_internal.h"

/* zstd's level for new blobs (as depot.c's). */
#define DICT_LEVEL 3
/* Blobs archived before the first training, and the messages it samples. */
#define DICT_TRAIN_BLOBS 1000
/* Each sample's first bytes only: headers and the start of the text carry
 * what messages share; long bodies and attachments would only slow training. */
#define DICT_SAMPLE_MAX (16 * 1024)
/* The dictionary's size, zstd's recommendation. */
#define DICT_SIZE (110 * 1024)
/* A dictionary is kept when the held-out sample shrinks by this much. */
#define DEPOT_DICT_GAIN_PERCENT 10

/* The highest N of dict/N.dict (0: none); -1 with ERR. */
static int64_t dict_newest(struct depot *depot, char *err, size_t errlen)
{
	char *path = xasprintf("%s/dict", depot->dir);
	DIR *dir = opendir(path);
	struct dirent *ent;
	int64_t newest = 0;

	if (dir == NULL) {
		if (errno == ENOENT) {
			free(path);
			return 0;
		}
		snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while ((ent = readdir(dir)) != NULL) {
		char *end;
		long long number = strtoll(ent->d_name, &end, 10);

		if (end != ent->d_name && strcmp(end, ".dict") == 0 && number > newest &&
		    number <= UINT32_MAX)
			newest = number;
	}
	closedir(dir);
	free(path);
	return newest;
}

/* Makes DATA (LEN bytes) dictionary ID the one new blobs use. */
static int dict_use(struct depot *depot, uint32_t id, const void *data, size_t len, char *err,
		    size_t errlen)
{
	ZSTD_CDict *cdict = ZSTD_createCDict(data, len, DICT_LEVEL);

	if (cdict == NULL) {
		snprintf(err, errlen, "dictionary %u is damaged", id);
		return -1;
	}
	ZSTD_freeCDict(depot->cdict);
	depot->cdict = cdict;
	depot->dict_id = id;
	return 0;
}

/* The first messages archived, each cut at DICT_SAMPLE_MAX, end to end in
 * *SAMPLES with their sizes in *SIZES; how many. */
static size_t dict_samples(struct depot *depot, struct depot_text *samples, size_t **sizes)
{
	static const char sql[] = "SELECT sha256, pack, offset, stored, raw, dict FROM blob"
				  " WHERE removed IS NULL ORDER BY rowid LIMIT ?1";
	sqlite3_stmt *stmt;
	size_t count = 0;

	*sizes = xcalloc(DICT_TRAIN_BLOBS, sizeof(**sizes));
	if (sqlite3_prepare_v2(depot->db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int(stmt, 1, DICT_TRAIN_BLOBS);
	while (count < DICT_TRAIN_BLOBS && sqlite3_step(stmt) == SQLITE_ROW) {
		char *raw, why[200];
		size_t len;

		if (sqlite3_column_bytes(stmt, 0) != 32 ||
		    depot_blob_load(depot, sqlite3_column_int64(stmt, 1),
				    sqlite3_column_int64(stmt, 2), sqlite3_column_blob(stmt, 0),
				    sqlite3_column_int64(stmt, 3), sqlite3_column_int64(stmt, 4),
				    (uint32_t)sqlite3_column_int64(stmt, 5), &raw, &len, why,
				    sizeof(why)) < 0)
			continue; /* verify reports a damaged blob; training just skips it */
		if (len > DICT_SAMPLE_MAX)
			len = DICT_SAMPLE_MAX;
		depot_text_add(samples, raw, len);
		(*sizes)[count++] = len;
		free(raw);
	}
	sqlite3_finalize(stmt);
	return count;
}

/* Compresses each of the COUNT samples (every fifth, the held-out ones)
 * with CDICT (NULL: none); the total. */
static int64_t dict_trial(const struct depot_text *samples, const size_t *sizes, size_t count,
			  const ZSTD_CDict *cdict)
{
	size_t offset = 0, cap = ZSTD_compressBound(DICT_SAMPLE_MAX);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	char *out = xmalloc(cap);
	int64_t total = 0;

	if (cctx == NULL)
		abort(); /* out of memory: the x* wrappers' policy */

	for (size_t i = 0; i < count; i++) {
		size_t got;

		if (i % 5 == 0) {
			if (cdict != NULL)
				got = ZSTD_compress_usingCDict(
				    cctx, out, cap, samples->data + offset, sizes[i], cdict);
			else
				got = ZSTD_compressCCtx(cctx, out, cap, samples->data + offset,
							sizes[i], DICT_LEVEL);
			total += ZSTD_isError(got) ? (int64_t)sizes[i] : (int64_t)got;
		}
		offset += sizes[i];
	}
	ZSTD_freeCCtx(cctx);
	free(out);
	return total;
}

/* Trains a dictionary from the first blobs; writes and uses it if it pays. */
static int dict_train(struct depot *depot, uint32_t id, char *err, size_t errlen)
{
	struct depot_text samples = {0}, training = {0};
	size_t *sizes = NULL, *training_sizes, count, training_count = 0, offset = 0, len;
	char *dict = NULL, *path = NULL;
	ZSTD_CDict *cdict = NULL;
	int64_t plain, trained;
	int rc = 0;

	count = dict_samples(depot, &samples, &sizes);
	training_sizes = xcalloc(count ? count : 1, sizeof(*training_sizes));
	/* Four in five samples teach, the fifth judges. */
	for (size_t i = 0; i < count; i++) {
		if (i % 5 != 0) {
			depot_text_add(&training, samples.data + offset, sizes[i]);
			training_sizes[training_count++] = sizes[i];
		}
		offset += sizes[i];
	}
	if (training_count < 100)
		goto done;
	dict = xmalloc(DICT_SIZE);
	len = ZDICT_trainFromBuffer(dict, DICT_SIZE, training.data, training_sizes,
				    (unsigned)training_count);
	if (ZDICT_isError(len) || (cdict = ZSTD_createCDict(dict, len, DICT_LEVEL)) == NULL)
		goto done;
	plain = dict_trial(&samples, sizes, count, NULL);
	trained = dict_trial(&samples, sizes, count, cdict);
	depot->dict_plain_bytes = plain;
	depot->dict_trained_bytes = trained;
	if (trained * 100 > plain * (100 - DEPOT_DICT_GAIN_PERCENT))
		goto done;
	path = xasprintf("%s/dict", depot->dir);
	if (util_mkdir_p(path, 0700) < 0) {
		snprintf(err, errlen, "creating %s: %s", path, strerror(errno));
		rc = -1;
		goto done;
	}
	if (depot_give(depot, path, err, errlen) < 0) {
		rc = -1;
		goto done;
	}
	free(path);
	path = xasprintf("%s/dict/%u.dict", depot->dir, id);
	if (util_write_file_atomic(path, dict, len, 0600) < 0) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
		rc = -1;
		goto done;
	}
	if (depot_give(depot, path, err, errlen) < 0) {
		rc = -1;
		goto done;
	}
	rc = dict_use(depot, id, dict, len, err, errlen);
done:
	ZSTD_freeCDict(cdict);
	free(dict);
	free(path);
	free(sizes);
	free(training_sizes);
	depot_text_free(&samples);
	depot_text_free(&training);
	return rc;
}

int depot_dict_refresh(struct depot *depot, char *err, size_t errlen)
{
	static const char sql[] = "SELECT max(rowid) FROM blob";
	int64_t newest = dict_newest(depot, err, errlen), blobs = 0;
	sqlite3_stmt *stmt;

	if (newest < 0)
		return -1;
	if (newest > depot->dict_id) {
		char *path = xasprintf("%s/dict/%lld.dict", depot->dir, (long long)newest);
		char *data;
		size_t len;
		int rc;

		if (util_read_file(path, &data, &len) < 0) {
			snprintf(err, errlen, "reading %s: %s", path, strerror(errno));
			free(path);
			return -1;
		}
		free(path);
		rc = dict_use(depot, (uint32_t)newest, data, len, err, errlen);
		free(data);
		return rc;
	}
	if (depot->dict_id != 0)
		return 0;
	if (depot->dict_train_at == 0)
		depot->dict_train_at = DICT_TRAIN_BLOBS;
	if (sqlite3_prepare_v2(depot->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "counting blobs: %s", sqlite3_errmsg(depot->db));
		return -1;
	}
	if (sqlite3_step(stmt) == SQLITE_ROW)
		blobs = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	if (blobs < depot->dict_train_at)
		return 0;
	/* Whatever comes of it, the next try waits for four times as many. */
	depot->dict_train_at = blobs * 4;
	return dict_train(depot, (uint32_t)newest + 1, err, errlen);
}
