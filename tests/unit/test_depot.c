/*
 * test_depot.c — MailDepot's core (depot/depot.c, depot/pack.c): real corpus
 * messages archived in batches and read back byte for byte; deduplication
 * by content; ingest idempotent by source (across calls and within one
 * batch); the chain's and the audit log's hashes recomputed here from
 * depot.h's text, independently of depot.c; a changed pack byte refused on
 * read; a batch rolled back inside the caller's transaction; the schema on
 * reopening; a process killed (SIGKILL) while archiving loses no committed
 * message and leaves a chain that verifies; and the ingest rate, printed.
 *
 * Owns: a temporary folder per test, removed at its end.
 */
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"

#include "test_corpus.h"
#include "test_support.h"

/* Corpus messages archived by the corpus test, and its batch size. */
#define TEST_CORPUS_COUNT 400
#define TEST_BATCH 64

struct test_depot {
	char dir[TEST_DIR_SIZE];
	char *path; /* DIR/depot */
	struct depot *depot;
};

static int setup(void **state)
{
	struct test_depot *t = xcalloc(1, sizeof(*t));
	char err[256];

	assert_int_equal(test_dir_make(t->dir, sizeof(t->dir), "depot"), 0);
	t->path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(t->path, true, err, sizeof(err));
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
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

/* One integer from SQL on the depot's database. */
static int64_t test_depot_int(struct depot *depot, const char *sql)
{
	sqlite3_stmt *stmt;
	int64_t value;

	assert_int_equal(sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return value;
}

/* Archives one message; its entry's seq. */
static int64_t test_ingest(struct depot *depot, const char *raw, size_t len, const char *source,
			   const struct depot_fields *fields)
{
	struct depot_item item = {.raw = raw,
				  .len = len,
				  .direction = DEPOT_IN,
				  .source = source,
				  .fields = fields,
				  .at = 1700000000};
	char err[256];
	int64_t seq = 0;

	if (depot_ingest(depot, &item, 1, &seq, err, sizeof(err)) != 0)
		fail_msg("depot_ingest: %s", err);
	return seq;
}

static void test_hex(const uint8_t *bytes, size_t len, char *out)
{
	sodium_bin2hex(out, 2 * len + 1, bytes, len);
}

/* SHA-256(PREV || TEXT). */
static void test_chain_hash(const uint8_t prev[32], const char *text, uint8_t out[32])
{
	crypto_hash_sha256_state state;

	crypto_hash_sha256_init(&state);
	crypto_hash_sha256_update(&state, prev, 32);
	crypto_hash_sha256_update(&state, (const unsigned char *)text, strlen(text));
	crypto_hash_sha256_final(&state, out);
}

/* The column COLUMN (a 32-byte blob) of entry SEQ in TABLE. */
static void test_row_hash(struct depot *depot, const char *table, const char *column, int64_t seq,
			  uint8_t out[32])
{
	char *sql = xasprintf("SELECT %s FROM %s WHERE seq = %lld", column, table, (long long)seq);
	sqlite3_stmt *stmt;

	assert_int_equal(sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_int_equal(sqlite3_column_bytes(stmt, 0), 32);
	memcpy(out, sqlite3_column_blob(stmt, 0), 32);
	sqlite3_finalize(stmt);
	free(sql);
}

static void test_open_layout(void **state)
{
	struct test_depot *t = *state;
	char *path;
	struct stat st;
	char err[256];

	assert_int_equal(stat(t->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	path = xasprintf("%s/packs", t->path);
	assert_true(test_path_exists(path));
	free(path);
	path = xasprintf("%s/write.lock", t->path);
	assert_true(test_path_exists(path));
	free(path);
	assert_int_equal(test_depot_int(t->depot, "PRAGMA user_version"), 2);
	assert_int_equal(test_depot_int(t->depot,
					"SELECT count(*) FROM sqlite_master WHERE name IN"
					" ('entry', 'blob', 'message', 'message_recipient',"
					" 'message_owner', 'message_attachment',"
					" 'message_text', 'checkpoint', 'audit',"
					" 'retention', 'hold', 'import_source')"),
			 12);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM sqlite_master"
						  " WHERE name = 'message_text_v1'"),
			 0);
	/* Reopened, it is migrated already; a missing depot is not created. */
	depot_close(&t->depot);
	t->depot = depot_open(t->path, false, err, sizeof(err));
	assert_non_null(t->depot);
	assert_int_equal(test_depot_int(t->depot, "PRAGMA user_version"), 2);
	path = xasprintf("%s/none", t->dir);
	assert_null(depot_open(path, false, err, sizeof(err)));
	assert_non_null(strstr(err, "no depot"));
	free(path);
	assert_string_equal(depot_direction_name(DEPOT_OUT), "out");
	assert_int_equal(depot_direction_parse("import"), DEPOT_IMPORT);
	assert_int_equal(depot_direction_parse("sideways"), -1);
}

static void test_corpus_round_trip(void **state)
{
	struct test_depot *t = *state;
	struct depot_item items[TEST_BATCH];
	char *raws[TEST_BATCH], *sources[TEST_BATCH];
	size_t lens[TEST_BATCH];
	int64_t seqs[TEST_CORPUS_COUNT];
	glob_t files;
	size_t count, done = 0;
	char err[256];

	assert_int_equal(test_corpus_glob("easy-ham-1", "", &files), 0);
	count = files.gl_pathc < TEST_CORPUS_COUNT ? files.gl_pathc : TEST_CORPUS_COUNT;
	while (done < count) {
		size_t n = count - done < TEST_BATCH ? count - done : TEST_BATCH;

		for (size_t i = 0; i < n; i++) {
			assert_int_equal(
			    util_read_file(files.gl_pathv[done + i], &raws[i], &lens[i]), 0);
			sources[i] = xasprintf("test:%zu", done + i);
			items[i] = (struct depot_item){.raw = raws[i],
						       .len = lens[i],
						       .direction = DEPOT_IMPORT,
						       .source = sources[i]};
		}
		if (depot_ingest(t->depot, items, n, seqs + done, err, sizeof(err)) != 0)
			fail_msg("depot_ingest: %s", err);
		for (size_t i = 0; i < n; i++) {
			free(raws[i]);
			free(sources[i]);
		}
		done += n;
	}
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), (int64_t)count);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message"), (int64_t)count);
	/* Stored smaller than raw: compressed. */
	assert_true(test_depot_int(t->depot, "SELECT sum(stored) FROM blob") <
		    test_depot_int(t->depot, "SELECT sum(raw) FROM blob"));
	for (size_t i = 0; i < count; i++) {
		char *expected, *raw;
		size_t expected_len, len;

		assert_int_equal(seqs[i], (int64_t)i + 1);
		assert_int_equal(util_read_file(files.gl_pathv[i], &expected, &expected_len), 0);
		if (depot_read(t->depot, seqs[i], "admin", &raw, &len, err, sizeof(err)) != 1)
			fail_msg("depot_read %zu: %s", i, err);
		assert_int_equal(len, expected_len);
		assert_memory_equal(raw, expected, len);
		free(raw);
		free(expected);
	}
	/* Every read is in the audit log. */
	assert_int_equal(
	    test_depot_int(t->depot, "SELECT count(*) FROM audit WHERE action = 'read'"),
	    (int64_t)count);
	globfree(&files);
}

static void test_dedup_and_source(void **state)
{
	struct test_depot *t = *state;
	struct depot_item batch[3];
	int64_t seqs[3], first, second, again;
	char *raw, *path;
	size_t len;
	struct stat st;
	off_t size;
	char err[256];

	assert_int_equal(test_corpus_read("spam-1", "", &raw, &len), 0);
	first = test_ingest(t->depot, raw, len, "popgate:a", NULL);
	path = xasprintf("%s/packs/000001.pack", t->path);
	assert_int_equal(stat(path, &st), 0);
	size = st.st_size;
	/* Same bytes, another source: a new entry, no new blob. */
	second = test_ingest(t->depot, raw, len, "popgate:b", NULL);
	assert_int_equal(second, first + 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, size);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM blob"), 1);
	/* The same source again: the first entry, nothing new. */
	again = test_ingest(t->depot, "other bytes", 11, "popgate:a", NULL);
	assert_int_equal(again, first);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), 2);
	/* Within one batch: the repeated source gets the entry of its first. */
	batch[0] = (struct depot_item){.raw = "x1", .len = 2, .source = "popgate:c"};
	batch[1] = (struct depot_item){.raw = "x2", .len = 2, .source = "popgate:c"};
	batch[2] = (struct depot_item){.raw = raw, .len = len, .source = "popgate:d"};
	assert_int_equal(depot_ingest(t->depot, batch, 3, seqs, err, sizeof(err)), 0);
	assert_int_equal(seqs[0], 3);
	assert_int_equal(seqs[1], 3);
	assert_int_equal(seqs[2], 4);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), 4);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM blob"), 2);
	/* A bad item fails the whole batch: nothing archived. */
	batch[0] = (struct depot_item){.raw = "y", .len = 1, .source = "popgate:e"};
	batch[1] = (struct depot_item){.raw = "z", .len = 1, .source = NULL};
	assert_int_equal(depot_ingest(t->depot, batch, 2, seqs, err, sizeof(err)), -1);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), 4);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message WHERE"
						  " source = 'popgate:e'"),
			 0);
	free(path);
	free(raw);
}

static void test_chain_as_specified(void **state)
{
	struct test_depot *t = *state;
	char *recipients[] = {"bob@example.org", "carol@example.org"};
	char *attachments[] = {"report.pdf", "a\nb.txt"};
	struct depot_owner owners[] = {{"bob@example.org", "bob"}, {"carol@example.org", NULL}};
	struct depot_fields fields = {.sender = "alice@example.com",
				      .recipients = recipients,
				      .recipient_count = 2,
				      .subject = "Quarterly\r\n report",
				      .date = 1600000000,
				      .message_id = "abc@example.com",
				      .attachments = attachments,
				      .attachment_count = 2,
				      .headers = "From: alice@example.com",
				      .body = "the quarterly numbers"};
	struct depot_item item = {.raw = "Subject: hi\r\n\r\nbody\r\n",
				  .len = 21,
				  .direction = DEPOT_OUT,
				  .source = "popgate:0123",
				  .fields = &fields,
				  .owners = owners,
				  .owner_count = 2,
				  .at = 1700000123};
	const char *record_text = "direction:out\nsource:popgate:0123\nsender:alice@example.com\n"
				  "recipient:bob@example.org\nrecipient:carol@example.org\n"
				  "subject:Quarterly   report\ndate:1600000000\nsize:21\n"
				  "message-id:abc@example.com\nowner:bob@example.org bob\n"
				  "owner:carol@example.org \nattachment:report.pdf\n"
				  "attachment:a b.txt\n";
	uint8_t zero[32] = {0}, blob[32], record[32], hash[32], stored[32], prev[32];
	char blob_hex[65], record_hex[65], *text;
	int64_t seq, hold_seq;
	char err[256];

	assert_int_equal(depot_ingest(t->depot, &item, 1, &seq, err, sizeof(err)), 0);
	assert_int_equal(seq, 1);
	crypto_hash_sha256(blob, (const unsigned char *)item.raw, item.len);
	crypto_hash_sha256(record, (const unsigned char *)record_text, strlen(record_text));
	test_row_hash(t->depot, "entry", "record", 1, stored);
	assert_memory_equal(stored, record, 32);
	test_hex(blob, 32, blob_hex);
	test_hex(record, 32, record_hex);
	text = xasprintf("seq:1\nkind:archive\nat:1700000123\nblob:%s\nrecord:%s\ndetail:-\n",
			 blob_hex, record_hex);
	test_chain_hash(zero, text, hash);
	free(text);
	test_row_hash(t->depot, "entry", "hash", 1, stored);
	assert_memory_equal(stored, hash, 32);
	memcpy(prev, hash, 32);

	/* Another module's entry, inside its own transaction. */
	assert_int_equal(depot_write_lock(t->depot, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(depot_chain_append(t->depot, "hold", NULL, NULL, "scope:all reason:audit",
					    1700000200, &hold_seq, err, sizeof(err)),
			 0);
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	depot_write_unlock(t->depot);
	assert_int_equal(hold_seq, 2);
	test_chain_hash(prev,
			"seq:2\nkind:hold\nat:1700000200\nblob:-\nrecord:-\n"
			"detail:scope:all reason:audit\n",
			hash);
	test_row_hash(t->depot, "entry", "hash", 2, stored);
	assert_memory_equal(stored, hash, 32);

	/* The audit chain: the same construction over its own lines. */
	assert_int_equal(
	    depot_audit(t->depot, "user:bob", "search", "subject:quarterly", err, sizeof(err)), 0);
	text =
	    xasprintf("seq:1\nat:%lld\nactor:user:bob\naction:search\ndetail:subject:quarterly\n",
		      (long long)test_depot_int(t->depot, "SELECT at FROM audit WHERE seq = 1"));
	test_chain_hash(zero, text, hash);
	free(text);
	test_row_hash(t->depot, "audit", "hash", 1, stored);
	assert_memory_equal(stored, hash, 32);

	/* The index rows and the full-text row. */
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message_recipient"), 2);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message_owner WHERE"
						  " user = 'bob' AND position = 0"),
			 1);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message_attachment"), 2);
	assert_int_equal(test_depot_int(t->depot, "SELECT rowid FROM message_text WHERE"
						  " message_text MATCH 'quarterly'"),
			 1);
	assert_int_equal(test_depot_int(t->depot, "SELECT rowid FROM message_text WHERE"
						  " message_text MATCH 'attachments:report'"),
			 1);
}

static void test_corrupt_blob_refused(void **state)
{
	struct test_depot *t = *state;
	char *raw, *back, *path;
	size_t len, back_len;
	int64_t seq;
	char err[256];
	int fd;
	unsigned char byte;

	assert_int_equal(test_corpus_read("easy-ham-2", "", &raw, &len), 0);
	seq = test_ingest(t->depot, raw, len, "popgate:x", NULL);
	path = xasprintf("%s/packs/000001.pack", t->path);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	/* A byte inside the zstd frame, past the record's 56-byte header. */
	assert_int_equal(pread(fd, &byte, 1, 100), 1);
	byte ^= 0x20;
	assert_int_equal(pwrite(fd, &byte, 1, 100), 1);
	close(fd);
	assert_int_equal(depot_read(t->depot, seq, "admin", &back, &back_len, err, sizeof(err)),
			 -1);
	assert_null(back);
	assert_non_null(strstr(err, "blob of entry 1 is corrupt"));
	assert_int_equal(depot_read(t->depot, 99, "admin", &back, &back_len, err, sizeof(err)), 0);
	free(path);
	free(raw);
}

static void test_nested_rollback(void **state)
{
	struct test_depot *t = *state;
	struct depot_item item = {.raw = "hello", .len = 5, .source = "import:k#1"};
	struct stat st;
	char *raw, *path;
	size_t len;
	int64_t seq;
	char err[256];

	/* Inside the caller's transaction the batch joins it: rolled back with it. */
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(depot_ingest(t->depot, &item, 1, &seq, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), 0);
	/* Its pack bytes are dead; the next batch appends after them. */
	path = xasprintf("%s/packs/000001.pack", t->path);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > 56);
	assert_int_equal(depot_ingest(t->depot, &item, 1, &seq, err, sizeof(err)), 0);
	assert_int_equal(seq, 1);
	assert_int_equal(test_depot_int(t->depot, "SELECT offset FROM blob"), st.st_size);
	free(path);
	assert_int_equal(depot_read(t->depot, seq, "daemon", &raw, &len, err, sizeof(err)), 1);
	assert_int_equal(len, 5);
	assert_memory_equal(raw, "hello", 5);
	free(raw);
	/* Reads inside the caller's transaction: their audit entries commit with it. */
	assert_int_equal(depot_write_lock(t->depot, err, sizeof(err)), 0);
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "BEGIN IMMEDIATE", NULL, NULL, NULL),
			 SQLITE_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    depot_read(t->depot, seq, "user:bob", &raw, &len, err, sizeof(err)), 1);
		free(raw);
	}
	assert_int_equal(sqlite3_exec(depot_db(t->depot), "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	depot_write_unlock(t->depot);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM audit WHERE"
						  " actor = 'user:bob' AND detail = 'seq:1'"),
			 3);
}

/*
 * The ingest rate on the corpus, in batches of TEST_RATE_BATCH (printed, not
 * asserted: the machine is shared). POPGATE_DEPOT_RATE=N archives the whole
 * corpus N times over (sources and a header varied so nothing dedups away);
 * unset, the first 1,000 messages once.
 */
#define TEST_RATE_BATCH 256
static void test_ingest_rate(void **state)
{
	static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
					     "spam-2"};
	struct test_depot *t = *state;
	const char *env = getenv("POPGATE_DEPOT_RATE");
	int rounds = env != NULL ? atoi(env) : 0;
	size_t limit = rounds > 0 ? SIZE_MAX : 1000, count = 0, loaded = 0;
	char **raws = NULL;
	size_t *lens = NULL;
	struct depot_fields *fields = NULL;
	struct depot_item *items;
	uint64_t bytes = 0;
	int64_t start, elapsed, cpu;
	struct depot_verify_report report;
	struct rusage usage;
	char err[256];

	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]) && loaded < limit; g++) {
		glob_t files;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		for (size_t i = 0; i < files.gl_pathc && loaded < limit; i++, loaded++) {
			raws = xrealloc(raws, (loaded + 1) * sizeof(*raws));
			lens = xrealloc(lens, (loaded + 1) * sizeof(*lens));
			assert_int_equal(
			    util_read_file(files.gl_pathv[i], &raws[loaded], &lens[loaded]), 0);
		}
		globfree(&files);
	}
	if (rounds < 1)
		rounds = 1;
	fields = xcalloc(loaded, sizeof(*fields));
	/* Extracted ahead, as the daemon's workers do: only archiving is timed. */
	for (size_t i = 0; i < loaded; i++) {
		if (depot_extract(raws[i], lens[i], &fields[i], err, sizeof(err)) != 0)
			fail_msg("depot_extract: %s", err);
	}
	items = xcalloc(TEST_RATE_BATCH, sizeof(*items));
	getrusage(RUSAGE_SELF, &usage);
	cpu = usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000 +
	      usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000;
	start = util_monotonic_ms();
	for (int round = 0; round < rounds; round++) {
		for (size_t done = 0; done < loaded;) {
			size_t n =
			    loaded - done < TEST_RATE_BATCH ? loaded - done : TEST_RATE_BATCH;
			char *varied[TEST_RATE_BATCH] = {0};

			for (size_t i = 0; i < n; i++) {
				size_t k = done + i;

				/* Later rounds: a header of their own, so the blobs differ. */
				if (round > 0)
					varied[i] = xasprintf("X-Round: %d\n%s", round, raws[k]);
				items[i] = (struct depot_item){
				    .raw = varied[i] ? varied[i] : raws[k],
				    .len = varied[i] ? strlen(varied[i]) : lens[k],
				    .direction = DEPOT_IMPORT,
				    .source = xasprintf("rate:%d:%zu", round, k),
				    .fields = &fields[k]};
				bytes += items[i].len;
			}
			if (depot_ingest(t->depot, items, n, NULL, err, sizeof(err)) != 0)
				fail_msg("depot_ingest: %s", err);
			for (size_t i = 0; i < n; i++) {
				free((char *)items[i].source);
				free(varied[i]);
			}
			done += n;
			count += n;
		}
	}
	elapsed = util_monotonic_ms() - start;
	getrusage(RUSAGE_SELF, &usage);
	cpu = usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000 +
	      usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000 - cpu;
	if (elapsed < 1)
		elapsed = 1;
	print_message("depot ingest: %zu messages, %.1f MB in %lld ms (%lld ms CPU): %.0f msgs/s,"
		      " %.1f MB/s; stored/raw %.3f\n",
		      count, bytes / 1e6, (long long)elapsed, (long long)cpu,
		      count * 1000.0 / elapsed, bytes / 1e3 / elapsed,
		      (double)test_depot_int(t->depot, "SELECT sum(stored) FROM blob") /
			  (double)test_depot_int(t->depot, "SELECT sum(raw) FROM blob"));
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM entry"), (int64_t)count);
	start = util_monotonic_ms();
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	elapsed = util_monotonic_ms() - start;
	print_message("depot verify: %lld entries, %lld blobs in %lld ms\n",
		      (long long)report.entries, (long long)report.blobs, (long long)elapsed);
	for (size_t i = 0; i < loaded; i++) {
		free(raws[i]);
		depot_fields_free(&fields[i]);
	}
	free(raws);
	free(lens);
	free(fields);
	free(items);
}

/* Messages the SIGKILL test archives, in batches of TEST_KILL_BATCH. */
#define TEST_KILL_MESSAGES 600
#define TEST_KILL_BATCH 20

/* Archives the first TEST_KILL_MESSAGES corpus messages of FILES into the
 * depot at PATH from FIRST on, writing each batch's last seq to FD once it is
 * committed (FD -1: none). 0 or -1. */
static int test_kill_archive(const char *path, const glob_t *files, size_t first, int fd)
{
	struct depot_item items[TEST_KILL_BATCH];
	char *raws[TEST_KILL_BATCH], *sources[TEST_KILL_BATCH];
	int64_t seqs[TEST_KILL_BATCH];
	struct depot *depot;
	char err[256];
	int rc = 0;

	if ((depot = depot_open(path, true, err, sizeof(err))) == NULL)
		return -1;
	for (size_t done = first; done < TEST_KILL_MESSAGES && rc == 0; done += TEST_KILL_BATCH) {
		for (size_t i = 0; i < TEST_KILL_BATCH; i++) {
			size_t len = 0;

			raws[i] = NULL;
			if (util_read_file(files->gl_pathv[done + i], &raws[i], &len) < 0)
				rc = -1;
			sources[i] = xasprintf("kill:%zu", done + i);
			items[i] = (struct depot_item){.raw = raws[i],
						       .len = len,
						       .direction = DEPOT_IN,
						       .source = sources[i]};
		}
		if (rc == 0 &&
		    depot_ingest(depot, items, TEST_KILL_BATCH, seqs, err, sizeof(err)) < 0)
			rc = -1;
		if (rc == 0 && fd >= 0 &&
		    write(fd, &seqs[TEST_KILL_BATCH - 1], sizeof(int64_t)) != sizeof(int64_t))
			rc = -1;
		for (size_t i = 0; i < TEST_KILL_BATCH; i++) {
			free(raws[i]);
			free(sources[i]);
		}
	}
	depot_close(&depot);
	return rc;
}

/*
 * A process archiving is killed (SIGKILL) after a few batches, most likely
 * inside one: the depot verifies intact, every message of a batch it had
 * reported committed reads back byte for byte, and archiving everything
 * again (as a resumed run does) adds each message exactly once.
 */
static void test_sigkill_during_ingest(void **state)
{
	struct test_depot *t = *state;
	struct depot_verify_report report;
	glob_t files;
	int64_t committed = 0, seq;
	char err[256];
	int fds[2], status;
	pid_t child;

	assert_int_equal(test_corpus_glob("easy-ham-1", "", &files), 0);
	assert_true(files.gl_pathc >= TEST_KILL_MESSAGES);
	depot_close(&t->depot);
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(fds[0]);
		_exit(test_kill_archive(t->path, &files, 0, fds[1]) == 0 ? 0 : 1);
	}
	close(fds[1]);
	/* Three batches in, kill it: it is writing the fourth. */
	for (int batches = 0; batches < 3; batches++)
		assert_int_equal(read(fds[0], &seq, sizeof(seq)), sizeof(seq));
	assert_int_equal(kill(child, SIGKILL), 0);
	while (read(fds[0], &seq, sizeof(seq)) == sizeof(seq))
		;
	close(fds[0]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFSIGNALED(status));

	t->depot = depot_open(t->path, false, err, sizeof(err));
	assert_non_null(t->depot);
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	committed = test_depot_int(t->depot, "SELECT count(*) FROM entry");
	assert_true(committed >= 3 * TEST_KILL_BATCH);
	assert_int_equal(committed % TEST_KILL_BATCH, 0);
	for (seq = 1; seq <= committed; seq++) {
		char *raw, *expected;
		size_t len, expected_len;

		assert_int_equal(depot_read(t->depot, seq, "admin", &raw, &len, err, sizeof(err)),
				 1);
		assert_int_equal(util_read_file(files.gl_pathv[seq - 1], &expected, &expected_len),
				 0);
		assert_int_equal(len, expected_len);
		assert_memory_equal(raw, expected, len);
		free(raw);
		free(expected);
	}
	depot_close(&t->depot);
	/* Resumed from the start: nothing twice, nothing missing. */
	assert_int_equal(test_kill_archive(t->path, &files, 0, -1), 0);
	t->depot = depot_open(t->path, false, err, sizeof(err));
	assert_non_null(t->depot);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(*) FROM message"),
			 TEST_KILL_MESSAGES);
	assert_int_equal(test_depot_int(t->depot, "SELECT count(DISTINCT source) FROM message"),
			 TEST_KILL_MESSAGES);
	assert_int_equal(depot_verify(t->depot, NULL, &report, err, sizeof(err)), 0);
	assert_int_equal(report.blobs, TEST_KILL_MESSAGES);
	globfree(&files);
}

/* The owner every entry under the depot must have (test_owned_by). */
static uid_t test_owner_expected;
static size_t test_owner_checked;

static int test_owned_by(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)type;
	(void)ftw;
	if (st->st_uid != test_owner_expected)
		fail_msg("%s belongs to uid %u, not %u", path, (unsigned)st->st_uid,
			 (unsigned)test_owner_expected);
	test_owner_checked++;
	return 0;
}

/*
 * popgatectl run as root on a data folder that belongs to the service user:
 * every folder and file the depot creates (index.db, write.lock, packs,
 * signing.key) is given to that user, or the daemon could no longer archive.
 * Run as another user, the files are simply that user's.
 */
static void test_created_files_belong_to_data_owner(void **state)
{
	struct test_depot *t = *state;
	const char raw[] = "From: a@example.org\r\nSubject: owned\r\n\r\nbody\r\n";
	uid_t owner = geteuid() == 0 ? 4242 : geteuid();
	char *command;
	int64_t head = 0;
	char err[256];

	depot_close(&t->depot);
	command = xasprintf("rm -rf '%s'", t->path);
	assert_int_equal(system(command), 0);
	free(command);
	assert_int_equal(chown(t->dir, owner, owner), 0);
	t->depot = depot_open(t->path, true, err, sizeof(err));
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	test_ingest(t->depot, raw, sizeof(raw) - 1, "test:owned", NULL);
	if (depot_checkpoint(t->depot, &head, err, sizeof(err)) < 0)
		fail_msg("depot_checkpoint: %s", err);
	test_owner_expected = owner;
	test_owner_checked = 0;
	assert_int_equal(nftw(t->path, test_owned_by, 16, FTW_PHYS), 0);
	/* the folder, packs/, dict/, index.db, write.lock, a pack, signing.key */
	assert_true(test_owner_checked >= 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_layout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corpus_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_dedup_and_source, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chain_as_specified, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_blob_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_nested_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sigkill_during_ingest, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ingest_rate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_created_files_belong_to_data_owner, setup,
					    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
