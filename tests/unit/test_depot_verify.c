/*
 * test_depot_verify.c — depot_verify (depot/verify.c) and checkpoints
 * (depot/checkpoint.c) on a depot of real corpus messages: intact, then a
 * changed or truncated blob, a changed index row, a changed chain entry and
 * a changed audit row, each found at the right seq; a chain recomputed after
 * an edit (and its stored checkpoints re-signed with a new key) passes on its
 * own but is found against the exported checkpoints; expired messages are
 * no error, a message marked expired without its expire entry is; and the
 * zstd dictionary: trained once enough blobs exist, used, read back; packs
 * filled and rolled over; popgatectl's depot commands and their exit codes.
 *
 * Owns: a temporary folder per test, removed at its end.
 */
#include <fcntl.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cli/ctl.h"
#include "core/util.h"
#include "depot/depot.h"
#include "depot/depot_internal.h"

#include "test_corpus.h"
#include "test_support.h"

/* Corpus messages each test's depot starts with. */
#define TEST_MESSAGES 40

struct test_depot {
	char dir[TEST_DIR_SIZE];
	char *path;
	struct depot *depot;
};

/* Archives COUNT corpus messages of GROUP from the FIRST on, with fields
 * that give every index table rows, BATCH at a time. */
static void test_archive(struct depot *depot, const char *group, size_t first, size_t count,
			 size_t batch)
{
	char *recipients[] = {"bob@example.org", "carol@example.org"};
	char *attachments[] = {"invoice.pdf"};
	struct depot_owner owners[] = {{"bob@example.org", "bob"}};
	struct depot_fields fields = {.sender = "alice@example.com",
				      .recipients = recipients,
				      .recipient_count = 2,
				      .subject = "a subject",
				      .date = 1600000000,
				      .message_id = "id@example.com",
				      .attachments = attachments,
				      .attachment_count = 1,
				      .body = "some text"};
	struct depot_item *items = xcalloc(batch, sizeof(*items));
	char **raws = xcalloc(batch, sizeof(*raws));
	size_t *lens = xcalloc(batch, sizeof(*lens));
	glob_t files;
	char err[256];

	assert_int_equal(test_corpus_glob(group, "", &files), 0);
	assert_true(files.gl_pathc >= first + count);
	for (size_t done = 0; done < count;) {
		size_t n = count - done < batch ? count - done : batch;

		for (size_t i = 0; i < n; i++) {
			assert_int_equal(
			    util_read_file(files.gl_pathv[first + done + i], &raws[i], &lens[i]),
			    0);
			items[i] = (struct depot_item){
			    .raw = raws[i],
			    .len = lens[i],
			    .direction = DEPOT_IN,
			    .source = xasprintf("%s:%zu", group, first + done + i),
			    .fields = &fields,
			    .owners = owners,
			    .owner_count = 1,
			};
		}
		if (depot_ingest(depot, items, n, NULL, err, sizeof(err)) != 0)
			fail_msg("depot_ingest: %s", err);
		for (size_t i = 0; i < n; i++) {
			free(raws[i]);
			free((char *)items[i].source);
		}
		done += n;
	}
	globfree(&files);
	free(items);
	free(raws);
	free(lens);
}

static int setup(void **state)
{
	struct test_depot *t = xcalloc(1, sizeof(*t));
	char err[256];

	assert_int_equal(test_dir_make(t->dir, sizeof(t->dir), "depot-verify"), 0);
	t->path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(t->path, true, err, sizeof(err));
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	test_archive(t->depot, "easy-ham-1", 0, TEST_MESSAGES, 16);
	assert_int_equal(depot_audit(t->depot, "admin", "search", "subject:x", err, sizeof(err)),
			 0);
	assert_int_equal(
	    depot_audit(t->depot, "user:bob", "export", "seq:1 seq:2", err, sizeof(err)), 0);
	assert_int_equal(depot_audit(t->depot, "admin", "search", "from:alice", err, sizeof(err)),
			 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_depot *t = *state;

	depot_close(&t->depot);
	test_dir_remove(t->dir);
	free(t->path);
	free(t);
	return 0;
}

static void test_sql(struct depot *depot, const char *sql)
{
	char *message = NULL;

	if (sqlite3_exec(depot_db(depot), sql, NULL, NULL, &message) != SQLITE_OK)
		fail_msg("%s: %s", sql, message);
}

static int64_t test_int(struct depot *depot, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t value;

	assert_int_equal(sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

/* Runs depot_verify; expects BROKEN_SEQ (0: intact) and, then, WORDS in the problem. */
static void test_expect(struct depot *depot, const char *checkpoints, int64_t broken_seq,
			const char *words)
{
	struct depot_verify_report report;
	char err[256] = "";
	int rc = depot_verify(depot, checkpoints, &report, err, sizeof(err));

	if (rc < 0)
		fail_msg("depot_verify: %s", err);
	if (broken_seq == 0 && rc != 0)
		fail_msg("broken at %lld: %s", (long long)report.broken_seq, report.problem);
	assert_int_equal(rc, broken_seq == 0 ? 0 : 1);
	assert_int_equal(report.broken_seq, broken_seq);
	if (words != NULL && strstr(report.problem, words) == NULL)
		fail_msg("problem \"%s\" lacks \"%s\"", report.problem, words);
}

/* Flips the byte AT bytes into the record of entry SEQ's blob. */
static void test_flip_blob(struct test_depot *t, int64_t seq, int64_t at)
{
	char *sql = xasprintf("SELECT b.offset FROM blob b JOIN message m ON m.blob = b.sha256"
			      " WHERE m.seq = %lld",
			      (long long)seq);
	char *path = xasprintf("%s/packs/000001.pack", t->path);
	int64_t offset = test_int(t->depot, sql);
	unsigned char byte;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, offset + at), 1);
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, offset + at), 1);
	close(fd);
	free(sql);
	free(path);
}

static void test_intact(void **state)
{
	struct test_depot *t = *state;
	struct depot_verify_report report;
	char err[256];
	int64_t seq;

	assert_int_equal(depot_checkpoint(t->depot, &seq, err, sizeof(err)), 0);
	assert_int_equal(seq, TEST_MESSAGES);
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	assert_int_equal(report.entries, TEST_MESSAGES);
	assert_int_equal(report.blobs, TEST_MESSAGES);
	assert_int_equal(report.audit_entries, 3);
	assert_int_equal(report.checkpoints, 1);
	assert_int_equal(report.broken_seq, 0);
	assert_string_equal(report.problem, "");
}

static void test_blob_changed(void **state)
{
	struct test_depot *t = *state;

	test_flip_blob(t, 9, 80); /* inside the zstd frame */
	test_expect(t->depot, NULL, 9, "blob of entry 9 is corrupt");
}

static void test_blob_header_changed(void **state)
{
	struct test_depot *t = *state;

	test_flip_blob(t, 12, 10); /* the SHA-256 in the record's header */
	test_expect(t->depot, NULL, 12, "blob of entry 12 is corrupt");
}

static void test_pack_truncated(void **state)
{
	struct test_depot *t = *state;
	char *path = xasprintf("%s/packs/000001.pack", t->path);
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 10), 0);
	test_expect(t->depot, NULL, TEST_MESSAGES, "cut short");
	free(path);
}

static void test_index_row_changed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "UPDATE message SET subject = 'innocent' WHERE seq = 7");
	test_expect(t->depot, NULL, 7, "index record was changed");
}

static void test_index_list_changed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "UPDATE message_recipient SET address = 'eve@example.net'"
			   " WHERE seq = 15 AND position = 1");
	test_expect(t->depot, NULL, 15, "index record was changed");
}

static void test_index_row_removed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "DELETE FROM message WHERE seq = 21");
	test_expect(t->depot, NULL, 21, "index row is missing");
}

static void test_entry_changed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "UPDATE entry SET detail = 'nothing to see' WHERE seq = 3");
	test_expect(t->depot, NULL, 3, "hash does not match");
}

static void test_entry_hash_changed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "UPDATE entry SET hash = zeroblob(32) WHERE seq = 4");
	test_expect(t->depot, NULL, 4, "hash does not match");
}

static void test_entry_removed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "DELETE FROM entry WHERE seq = 30");
	test_expect(t->depot, NULL, 30, "missing from the chain");
}

static void test_audit_changed(void **state)
{
	struct test_depot *t = *state;

	test_sql(t->depot, "UPDATE audit SET detail = 'seq:1' WHERE seq = 2");
	test_expect(t->depot, NULL, 2, "audit entry 2");
}

/*
 * An attacker with write access edits entry 5's subject and recomputes the
 * record and every hash from 5 on, drops the stored checkpoints and signs
 * anew with a key of their own: only the exported checkpoint finds it.
 */
static void test_rewritten_chain(void **state)
{
	struct test_depot *t = *state;
	char *export = xasprintf("%s/checkpoints.txt", t->dir);
	char *key = xasprintf("%s/signing.key", t->path);
	uint8_t prev[32], hash[32], record[32];
	char *recipients[] = {"bob@example.org", "carol@example.org"};
	char *attachments[] = {"invoice.pdf"};
	struct depot_owner owners[] = {{"bob@example.org", "bob"}};
	char err[256];
	sqlite3_stmt *stmt;
	char *source;
	int64_t seq, size;

	assert_int_equal(depot_checkpoint(t->depot, &seq, err, sizeof(err)), 0);
	assert_int_equal(depot_checkpoint_export(t->depot, export, err, sizeof(err)), 0);
	test_expect(t->depot, export, 0, NULL);

	test_sql(t->depot, "UPDATE message SET subject = 'rewritten' WHERE seq = 5");
	source = xasprintf("easy-ham-1:%d", 4);
	size = test_int(t->depot, "SELECT size FROM message WHERE seq = 5");
	depot_record_hash(&(struct depot_record){.direction = "in",
						 .source = source,
						 .sender = "alice@example.com",
						 .recipients = recipients,
						 .recipient_count = 2,
						 .subject = "rewritten",
						 .date = 1600000000,
						 .size = size,
						 .message_id = "id@example.com",
						 .owners = owners,
						 .owner_count = 1,
						 .attachments = attachments,
						 .attachment_count = 1},
			  record);
	free(source);
	assert_int_equal(sqlite3_prepare_v2(depot_db(t->depot),
					    "UPDATE entry SET record = ?1 WHERE seq = 5", -1, &stmt,
					    NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(stmt, 1, record, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
	sqlite3_finalize(stmt);
	test_expect(t->depot, NULL, 5, "hash does not match");

	/* Recompute every hash from entry 5 on. */
	assert_int_equal(sqlite3_prepare_v2(depot_db(t->depot),
					    "SELECT hash FROM entry WHERE seq = 4", -1, &stmt,
					    NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	memcpy(prev, sqlite3_column_blob(stmt, 0), 32);
	sqlite3_finalize(stmt);
	for (int64_t s = 5; s <= TEST_MESSAGES; s++) {
		uint8_t blob[32], rec[32];
		sqlite3_stmt *update;

		assert_int_equal(
		    sqlite3_prepare_v2(depot_db(t->depot),
				       "SELECT at, blob, record FROM entry WHERE seq = ?1", -1,
				       &stmt, NULL),
		    SQLITE_OK);
		sqlite3_bind_int64(stmt, 1, s);
		assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
		memcpy(blob, sqlite3_column_blob(stmt, 1), 32);
		memcpy(rec, sqlite3_column_blob(stmt, 2), 32);
		depot_entry_hash(prev, s, "archive", sqlite3_column_int64(stmt, 0), blob, rec, NULL,
				 hash);
		sqlite3_finalize(stmt);
		assert_int_equal(sqlite3_prepare_v2(depot_db(t->depot),
						    "UPDATE entry SET hash = ?1 WHERE seq = ?2", -1,
						    &update, NULL),
				 SQLITE_OK);
		sqlite3_bind_blob(update, 1, hash, 32, SQLITE_STATIC);
		sqlite3_bind_int64(update, 2, s);
		assert_int_equal(sqlite3_step(update), SQLITE_DONE);
		sqlite3_finalize(update);
		memcpy(prev, hash, 32);
	}
	/* The stored checkpoint still knows the old head. */
	test_expect(t->depot, NULL, TEST_MESSAGES, "rewritten");
	/* Gone, re-signed with a new key: intact on its own... */
	test_sql(t->depot, "DELETE FROM checkpoint");
	assert_int_equal(unlink(key), 0);
	assert_int_equal(depot_checkpoint(t->depot, &seq, err, sizeof(err)), 0);
	test_expect(t->depot, NULL, 0, NULL);
	/* ...but not against what was exported. */
	test_expect(t->depot, export, TEST_MESSAGES, "exported checkpoint");
	free(export);
	free(key);
}

static void test_checkpoint_file(void **state)
{
	struct test_depot *t = *state;
	char *export = xasprintf("%s/checkpoints.txt", t->dir);
	char *data, *line;
	struct depot_verify_report report;
	size_t len;
	char err[256];
	int64_t seq;
	struct stat st;
	char *key = xasprintf("%s/signing.key", t->path);

	assert_int_equal(depot_checkpoint(t->depot, &seq, err, sizeof(err)), 0);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	test_archive(t->depot, "easy-ham-1", TEST_MESSAGES, 5, 5);
	assert_int_equal(depot_checkpoint(t->depot, &seq, err, sizeof(err)), 0);
	assert_int_equal(seq, TEST_MESSAGES + 5);
	assert_int_equal(depot_checkpoint_export(t->depot, export, err, sizeof(err)), 0);
	assert_int_equal(util_read_file(export, &data, &len), 0);
	/* Two lines of five fields. */
	line = strchr(data, '\n');
	assert_non_null(line);
	assert_non_null(strchr(line + 1, '\n'));
	test_expect(t->depot, export, 0, NULL);
	assert_int_equal(depot_verify(t->depot, export, &report, err, sizeof(err)), 0);
	assert_int_equal(report.checkpoints, 4);
	/* A changed signature in the file. */
	data[len - 3] = data[len - 3] == '0' ? '1' : '0';
	assert_int_equal(util_write_file_atomic(export, data, len, 0600), 0);
	data[len - 3] = data[len - 3] == '0' ? '1' : '0';
	test_expect(t->depot, export, TEST_MESSAGES + 5, "exported checkpoint");
	/* A malformed file is an error, not a finding. */
	assert_int_equal(util_write_file_atomic(export, "1 zz\n", 5, 0600), 0);
	assert_int_equal(depot_verify(t->depot, export, &report, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "line 1"));
	/* Entries removed from the chain's end: the stored checkpoint finds it. */
	test_sql(t->depot, "DELETE FROM entry WHERE seq > 43");
	test_sql(t->depot, "DELETE FROM message WHERE seq > 43");
	test_expect(t->depot, NULL, TEST_MESSAGES + 5, "ends before it");
	free(data);
	free(export);
	free(key);
}

static void test_expired_is_fine(void **state)
{
	struct test_depot *t = *state;
	char err[256];
	int64_t expire_seq;
	char *sql;

	assert_int_equal(depot_write_lock(t->depot, err, sizeof(err)), 0);
	test_sql(t->depot, "BEGIN IMMEDIATE");
	assert_int_equal(depot_chain_append(t->depot, "expire", NULL, NULL, "seq:2 seq:3",
					    1700000000, &expire_seq, err, sizeof(err)),
			 0);
	sql = xasprintf("UPDATE message SET expired = %lld WHERE seq IN (2, 3);"
			"UPDATE blob SET removed = %lld WHERE sha256 IN"
			" (SELECT blob FROM message WHERE seq IN (2, 3));"
			"DELETE FROM message_recipient WHERE seq IN (2, 3)",
			(long long)expire_seq, (long long)expire_seq);
	test_sql(t->depot, sql);
	free(sql);
	test_sql(t->depot, "COMMIT");
	depot_write_unlock(t->depot);
	test_expect(t->depot, NULL, 0, NULL);
	/* Marking another one expired without an entry that names it is not. */
	sql = xasprintf("UPDATE message SET expired = %lld WHERE seq = 6", (long long)expire_seq);
	test_sql(t->depot, sql);
	free(sql);
	test_expect(t->depot, NULL, 6, "no expire entry naming it");
}

/*
 * The dictionary: none for the first 1,000 blobs; the batch after trains
 * one from them (kept: mail pays), later blobs use it, read back byte for
 * byte here and after reopening, and verify finds the depot intact.
 * Prints the gain on the held-out sample and on what was archived after.
 */
static void test_dictionary(void **state)
{
	struct test_depot *t = *state;
	char *path = xasprintf("%s/dict/1.dict", t->path);
	struct depot_verify_report report;
	char *raw, *expected;
	size_t len, expected_len;
	glob_t files;
	int64_t seq, with_dict;
	char err[256];

	/* The setup archived TEST_MESSAGES; up to 1,024 with no dictionary. */
	test_archive(t->depot, "easy-ham-1", TEST_MESSAGES, 1024 - TEST_MESSAGES, 256);
	assert_false(test_path_exists(path));
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE dict <> 0"), 0);
	test_archive(t->depot, "easy-ham-1", 1024, 1000, 256);
	assert_true(test_path_exists(path));
	with_dict = test_int(t->depot, "SELECT count(*) FROM blob WHERE dict = 1");
	assert_int_equal(with_dict, 1000);
	print_message("dictionary: held-out sample %lld bytes plain, %lld with it (%.1f%% smaller);"
		      " after: stored/raw %.3f with it, %.3f before it\n",
		      (long long)t->depot->dict_plain_bytes,
		      (long long)t->depot->dict_trained_bytes,
		      100.0 - 100.0 * (double)t->depot->dict_trained_bytes /
				  (double)t->depot->dict_plain_bytes,
		      (double)test_int(t->depot, "SELECT sum(stored) FROM blob WHERE dict = 1") /
			  (double)test_int(t->depot, "SELECT sum(raw) FROM blob WHERE dict = 1"),
		      (double)test_int(t->depot, "SELECT sum(stored) FROM blob WHERE dict = 0") /
			  (double)test_int(t->depot, "SELECT sum(raw) FROM blob WHERE dict = 0"));
	assert_true(t->depot->dict_trained_bytes < t->depot->dict_plain_bytes);

	/* Reopened: the dictionary is loaded to read, and taken up to write. */
	depot_close(&t->depot);
	t->depot = depot_open(t->path, false, err, sizeof(err));
	assert_non_null(t->depot);
	assert_int_equal(test_corpus_glob("easy-ham-1", "", &files), 0);
	for (seq = 1020; seq <= 2024; seq += 101) {
		assert_int_equal(depot_read(t->depot, seq, "admin", &raw, &len, err, sizeof(err)),
				 1);
		assert_int_equal(util_read_file(files.gl_pathv[seq - 1], &expected, &expected_len),
				 0);
		assert_int_equal(len, expected_len);
		assert_memory_equal(raw, expected, len);
		free(raw);
		free(expected);
	}
	globfree(&files);
	test_archive(t->depot, "easy-ham-1", 2024, 10, 10);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE dict = 1"), 1010);
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	assert_int_equal(report.blobs, 2034);
	free(path);
}

/* Packs fill up: with a 64 KB limit the next messages go to new packs, all
 * read back and verified; a changed byte in a later pack is found. */
static void test_packs_roll_over(void **state)
{
	struct test_depot *t = *state;
	char *path = xasprintf("%s/packs/000004.pack", t->path);
	struct depot_verify_report report;
	int64_t packs, seq;
	char err[256];
	int fd;
	unsigned char byte;

	t->depot->pack_max = 64 * 1024;
	test_archive(t->depot, "easy-ham-2", 0, 100, 32);
	packs = test_int(t->depot, "SELECT count(DISTINCT pack) FROM blob");
	assert_true(packs >= 4);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE pack > 1 AND"
					    " offset + stored + 56 > 65536"),
			 0);
	assert_true(test_path_exists(path));
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	assert_int_equal(report.blobs, TEST_MESSAGES + 100);
	/* The first message of pack 4, changed. */
	seq = test_int(t->depot, "SELECT min(m.seq) FROM message m JOIN blob b ON b.sha256 = m.blob"
				 " WHERE b.pack = 4");
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 70), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, 70), 1);
	close(fd);
	test_expect(t->depot, NULL, seq, "is corrupt");
	free(path);
}

/* popgatectl's depot verify, checkpoint and stats on this depot (the
 * config's data_dir is its parent): their exit statuses. */
static void test_ctl_commands(void **state)
{
	struct test_depot *t = *state;
	struct ctl ctl = {.json = true};
	const struct ctl_command verify = {"depot", "verify", "", "", NULL, ctl_depot_verify};
	const struct ctl_command checkpoint = {"depot", "checkpoint", "",
					       "",	NULL,	      ctl_depot_checkpoint};
	const struct ctl_command stats = {"depot", "stats", "", "", NULL, ctl_depot_stats};
	char *export = xasprintf("%s/cp.txt", t->dir);
	char *checkpoint_args[] = {"--export", export};
	char *verify_args[] = {"--checkpoints", export};
	char *bad_args[] = {"--bogus"};

	ctl.cfg.data_dir = t->dir;
	ctl.cmd = &verify;
	assert_int_equal(ctl_depot_verify(&ctl, &verify, 0, NULL), CTL_OK);
	assert_int_equal(ctl_depot_verify(&ctl, &verify, 1, bad_args), CTL_USAGE);
	ctl.cmd = &checkpoint;
	assert_int_equal(ctl_depot_checkpoint(&ctl, &checkpoint, 2, checkpoint_args), CTL_OK);
	assert_true(test_path_exists(export));
	ctl.cmd = &stats;
	assert_int_equal(ctl_depot_stats(&ctl, &stats, 0, NULL), CTL_OK);
	ctl.json = false;
	assert_int_equal(ctl_depot_stats(&ctl, &stats, 0, NULL), CTL_OK);
	ctl.cmd = &verify;
	assert_int_equal(ctl_depot_verify(&ctl, &verify, 2, verify_args), CTL_OK);
	test_sql(t->depot, "UPDATE message SET sender = 'mallory@example.net' WHERE seq = 8");
	assert_int_equal(ctl_depot_verify(&ctl, &verify, 2, verify_args), CTL_REFUSED);
	/* No depot there: refused, not created. */
	ctl.cfg.data_dir = "/nonexistent-popgate";
	assert_int_equal(ctl_depot_stats(&ctl, &stats, 0, NULL), CTL_REFUSED);
	assert_false(test_path_exists("/nonexistent-popgate/depot"));
	free(export);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_intact, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blob_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_blob_header_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pack_truncated, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_row_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_list_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_index_row_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_entry_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_entry_hash_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_entry_removed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_changed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rewritten_chain, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired_is_fine, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dictionary, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_packs_roll_over, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ctl_commands, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
