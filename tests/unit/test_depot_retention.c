/*
 * test_depot_retention.c — MailDepot's retention, holds and expiry
 * (depot/retention.c) on real corpus messages: the retention a message gets
 * from its owners (user, domain, default, the longest of its owners), each
 * kind of hold keeping due mail, the chain entries every change records,
 * and depot_expire removing the index rows, the full-text row and the blob
 * (its record punched out of the pack) with one "expire" entry and one
 * audit "delete" — but keeping a deduplicated blob a kept message shares;
 * depot_verify finds the depot intact after each expiry; migration 2,
 * which remakes the full-text rows with their keys, leaves rows an expiry
 * removes whole; and a damaged stored message stops neither migration 2
 * nor expiry (indexed by its owners only; expiring it remakes the index).
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
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/retention.h"
#include "depot/search.h"

#include "test_corpus.h"
#include "test_support.h"

#define DAY 86400
#define T0 1700000000 /* when the test messages were archived */
#define DEFAULT_DAYS 50

struct test_depot {
	char dir[TEST_DIR_SIZE];
	struct depot *depot;
	glob_t corpus;
};

static int setup(void **state)
{
	struct test_depot *t = xcalloc(1, sizeof(*t));
	char *path;
	char err[256];

	assert_int_equal(test_dir_make(t->dir, sizeof(t->dir), "depot-retention"), 0);
	path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(path, true, err, sizeof(err));
	free(path);
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	assert_int_equal(test_corpus_glob("easy-ham-1", "", &t->corpus), 0);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_depot *t = *state;

	depot_close(&t->depot);
	globfree(&t->corpus);
	test_dir_remove(t->dir);
	free(t);
	return 0;
}

/* One integer from the SQL FMT (sqlite3_mprintf's format, with %q) on the
 * depot's database (-1: no row). */
static int64_t test_int(struct depot *depot, const char *fmt, ...)
{
	sqlite3_stmt *stmt;
	va_list ap;
	char *sql;
	int64_t value = -1;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(depot_db(depot), sql, -1, &stmt, NULL), SQLITE_OK);
	if (sqlite3_step(stmt) == SQLITE_ROW)
		value = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	sqlite3_free(sql);
	return value;
}

/* Archives RAW (LEN bytes; its fields from depot_extract) as SOURCE with
 * the owners "address user" of OWNERS (NULL-terminated); its seq. */
static int64_t test_archive_raw(struct test_depot *t, const char *raw, size_t len,
				const char *source, const char *const *owners)
{
	struct depot_owner list[4];
	struct depot_fields fields;
	struct depot_item item;
	size_t count = 0;
	char err[256];
	int64_t seq = 0;

	if (depot_extract(raw, len, &fields, err, sizeof(err)) < 0)
		fail_msg("depot_extract: %s", err);
	for (; owners != NULL && owners[count] != NULL; count++) {
		const char *space = strchr(owners[count], ' ');

		list[count].address = xstrndup(owners[count], (size_t)(space - owners[count]));
		list[count].user = xstrdup(space + 1);
	}
	item = (struct depot_item){.raw = raw,
				   .len = len,
				   .direction = DEPOT_IN,
				   .source = source,
				   .fields = &fields,
				   .owners = list,
				   .owner_count = count,
				   .at = T0};
	if (depot_ingest(t->depot, &item, 1, &seq, err, sizeof(err)) != 0)
		fail_msg("depot_ingest: %s", err);
	for (size_t i = 0; i < count; i++) {
		free(list[i].address);
		free(list[i].user);
	}
	depot_fields_free(&fields);
	return seq;
}

/* Archives corpus message INDEX of easy-ham-1 as test_archive_raw does. */
static int64_t test_archive(struct test_depot *t, size_t index, const char *source,
			    const char *const *owners)
{
	char *raw;
	size_t len;
	int64_t seq;

	assert_true(index < t->corpus.gl_pathc);
	assert_int_equal(util_read_file(t->corpus.gl_pathv[index], &raw, &len), 0);
	seq = test_archive_raw(t, raw, len, source, owners);
	free(raw);
	return seq;
}

/* The seqs depot_expire (dry) would expire at NOW, as "1 2 3", and the
 * number held. */
static char *test_due(struct test_depot *t, int64_t now, int64_t *held_r)
{
	struct depot_expiry expiry;
	char err[256];
	char *text = xstrdup("");

	if (depot_expire(t->depot, now, DEFAULT_DAYS, true, "admin", &expiry, err, sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	for (size_t i = 0; i < expiry.count; i++) {
		char *longer =
		    xasprintf("%s%s%lld", text, i > 0 ? " " : "", (long long)expiry.seqs[i]);

		free(text);
		text = longer;
	}
	if (held_r != NULL)
		*held_r = expiry.held;
	assert_int_equal(expiry.entry_seq, 0);
	depot_expiry_free(&expiry);
	return text;
}

static void test_assert_due(struct test_depot *t, int64_t now, const char *want, int64_t want_held)
{
	int64_t held;
	char *got = test_due(t, now, &held);

	if (strcmp(got, want) != 0 || held != want_held)
		fail_msg("at T0 + %lld days: due '%s' held %lld, want '%s' held %lld",
			 (long long)((now - T0) / DAY), got, (long long)held, want,
			 (long long)want_held);
	free(got);
}

static void test_set(struct test_depot *t, const char *kind, const char *value, int64_t days)
{
	char err[256];
	char *scope = depot_scope(kind, value, err, sizeof(err));

	assert_non_null(scope);
	if (depot_retention_set(t->depot, scope, days, err, sizeof(err)) < 0)
		fail_msg("depot_retention_set: %s", err);
	free(scope);
}

/* depot_verify finds the depot intact (expired entries included). */
static void test_intact(struct test_depot *t)
{
	struct depot_verify_report report;
	char err[256];
	int rc = depot_verify(t->depot, NULL, &report, err, sizeof(err));

	if (rc != 0)
		fail_msg("depot_verify: %d, %s %s", rc, err, report.problem);
}

static void test_retention_precedence(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"ann@short.org ann", NULL};
	const char *bob[] = {"bob@short.org bob", NULL};
	const char *ann_carl[] = {"ann@short.org ann", "carl@other.org carl", NULL};
	int64_t m1 = test_archive(t, 0, "test:1", ann);
	int64_t m2 = test_archive(t, 1, "test:2", bob);
	int64_t m3 = test_archive(t, 2, "test:3", NULL);
	int64_t m4 = test_archive(t, 3, "test:4", ann_carl);
	char err[256];

	assert_true(m1 == 1 && m2 == 2 && m3 == 3 && m4 == 4);
	test_set(t, "domain", "Short.ORG", 10);
	test_set(t, "user", "bob", 100);
	/* The domain's 10 days for ann; bob's own 100 outweigh his domain's;
	 * no owner: the default; ann and carl: carl's default outweighs. */
	test_assert_due(t, T0 + 10 * DAY, "", 0);
	test_assert_due(t, T0 + 10 * DAY + 1, "1", 0);
	test_assert_due(t, T0 + 51 * DAY, "1 3 4", 0);
	test_assert_due(t, T0 + 101 * DAY, "1 2 3 4", 0);
	/* A "default" row replaces the configured default. */
	test_set(t, "default", NULL, 20);
	test_assert_due(t, T0 + 21 * DAY, "1 3 4", 0);
	/* A longer domain period than the user's: the longer counts. */
	test_set(t, "domain", "short.org", 200);
	test_assert_due(t, T0 + 101 * DAY, "3", 0);

	/* Each change is a chain entry, with its scope in the detail. */
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'retention'"),
			 4);
	assert_int_equal(
	    test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'retention' AND detail = "
			       "'domain:short.org days:10'"),
	    1);
	assert_int_equal(test_int(t->depot, "SELECT days FROM retention WHERE scope = "
					    "'domain:short.org'"),
			 200);
	/* Out of range and unknown scopes are refused, nothing recorded. */
	assert_int_equal(depot_retention_set(t->depot, "domain:short.org", 0, err, sizeof(err)),
			 -1);
	assert_int_equal(depot_retention_set(t->depot, "message:1", 5, err, sizeof(err)), -1);
	assert_null(depot_scope("domain", "no domain", err, sizeof(err)));
	assert_null(depot_scope("user", "a b", err, sizeof(err)));
	assert_null(depot_scope("message", "0", err, sizeof(err)));
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'retention'"),
			 4);
}

/* Holds SCOPE, checks the due list at NOW, lifts it. */
static void test_hold_keeps(struct test_depot *t, const char *scope, int64_t now, const char *due,
			    int64_t held)
{
	char err[256];

	assert_int_equal(depot_hold_add(t->depot, scope, "litigation", err, sizeof(err)), 1);
	assert_int_equal(depot_hold_add(t->depot, scope, NULL, err, sizeof(err)), 0);
	test_assert_due(t, now, due, held);
	assert_int_equal(depot_hold_del(t->depot, scope, err, sizeof(err)), 1);
	assert_int_equal(depot_hold_del(t->depot, scope, err, sizeof(err)), 0);
}

static void test_holds_stop_expiry(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"ann@short.org ann", NULL};
	const char *bob[] = {"bob@other.org bob", NULL};
	int64_t late = T0 + 365 * DAY;
	struct depot_scope_row *rows = NULL;
	size_t count = 0;
	struct depot_expiry expiry;
	char err[256];

	test_archive(t, 0, "test:1", ann);
	test_archive(t, 1, "test:2", bob);
	test_archive(t, 2, "test:3", NULL);
	test_assert_due(t, late, "1 2 3", 0);
	test_hold_keeps(t, "domain:short.org", late, "2 3", 1);
	test_hold_keeps(t, "user:bob", late, "1 3", 1);
	test_hold_keeps(t, "message:3", late, "1 2", 1);
	test_hold_keeps(t, "all", late, "", 3);
	assert_int_equal(depot_hold_add(t->depot, "message:99", NULL, err, sizeof(err)), -1);

	/* Holds are listed with their reason, and each change is in the chain. */
	assert_int_equal(depot_hold_add(t->depot, "user:ann", "tax\naudit", err, sizeof(err)), 1);
	assert_int_equal(depot_hold_list(t->depot, &rows, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_string_equal(rows[0].scope, "user:ann");
	assert_string_equal(rows[0].reason, "tax audit");
	assert_true(rows[0].at > 0);
	depot_scope_rows_free(&rows, count);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'hold'"), 5);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'unhold'"), 4);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'hold' AND "
					    "detail = 'user:ann reason:tax audit'"),
			 1);

	/* A real expiry keeps the held message and removes the others. */
	if (depot_expire(t->depot, late, DEFAULT_DAYS, false, "admin", &expiry, err, sizeof(err)) <
	    0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 2);
	assert_int_equal(expiry.held, 1);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM message WHERE expired IS NULL"),
			 1);
	assert_int_equal(test_int(t->depot, "SELECT seq FROM message WHERE expired IS NULL"), 1);
	depot_expiry_free(&expiry);
	test_intact(t);
}

/* 1 if the 64 bytes at OFFSET of pack NUMBER are all zero. */
static int test_pack_zero_at(struct test_depot *t, int64_t number, int64_t offset)
{
	char *path = xasprintf("%s/depot/packs/%06lld.pack", t->dir, (long long)number);
	unsigned char bytes[64];
	int fd = open(path, O_RDONLY);
	int zero = 1;

	free(path);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, bytes, sizeof(bytes), offset), (ssize_t)sizeof(bytes));
	close(fd);
	for (size_t i = 0; i < sizeof(bytes); i++)
		if (bytes[i] != 0)
			zero = 0;
	return zero;
}

/*
 * The tokens the full-text index holds for row SEQ, from an fts5vocab table
 * over it: a 'delete' with other values than the row was made from (the
 * index keeps no content to check them against) leaves tokens behind.
 */
static int64_t test_text_tokens(struct test_depot *t, int64_t seq)
{
	assert_int_equal(sqlite3_exec(depot_db(t->depot),
				      "CREATE VIRTUAL TABLE IF NOT EXISTS temp.text_vocab USING "
				      "fts5vocab(main, 'message_text', 'instance')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	return test_int(t->depot, "SELECT count(*) FROM temp.text_vocab WHERE doc = %lld",
			(long long)seq);
}

/* The full-text index is consistent (FTS5's own check). */
static void test_text_intact(struct test_depot *t)
{
	assert_int_equal(sqlite3_exec(depot_db(t->depot),
				      "INSERT INTO message_text (message_text, rank) "
				      "VALUES ('integrity-check', 0)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
}

/* The first word of message SEQ's subject (letters only) into WORD. */
static void test_subject_word(struct test_depot *t, int64_t seq, char *word, size_t size)
{
	sqlite3_stmt *stmt;
	const char *subject;
	size_t n = 0;

	assert_int_equal(sqlite3_prepare_v2(depot_db(t->depot),
					    "SELECT subject FROM message WHERE seq = ?", -1, &stmt,
					    NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(stmt, 1, seq);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	subject = (const char *)sqlite3_column_text(stmt, 0);
	assert_non_null(subject);
	while (*subject != '\0' &&
	       !((*subject >= 'a' && *subject <= 'z') || (*subject >= 'A' && *subject <= 'Z')))
		subject++;
	while (n + 1 < size && ((subject[n] >= 'a' && subject[n] <= 'z') ||
				(subject[n] >= 'A' && subject[n] <= 'Z'))) {
		word[n] = subject[n];
		n++;
	}
	word[n] = '\0';
	sqlite3_finalize(stmt);
	assert_true(n > 0);
}

/* The full-text rows with id SEQ whose subject has WORD (0 or 1). */
static int64_t test_text_hits(struct test_depot *t, const char *word, int64_t seq)
{
	return test_int(t->depot,
			"SELECT count(*) FROM message_text WHERE message_text MATCH 'subject:%q' "
			"AND rowid = %lld",
			word, (long long)seq);
}

static void test_expire_removes_everything(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"zzzz@localhost.netnoteinc.com ann", NULL};
	int64_t gone = test_archive(t, 4, "test:gone", ann);
	int64_t kept = test_archive(t, 5, "test:kept", NULL);
	struct depot_expiry expiry;
	int64_t pack, offset, audits;
	char word[64];
	char err[256];
	char *raw = NULL;
	size_t len;

	test_set(t, "user", "ann", 5);
	pack = test_int(t->depot,
			"SELECT b.pack FROM blob b JOIN message m ON m.blob = b.sha256 "
			"WHERE m.seq = %lld",
			(long long)gone);
	offset = test_int(t->depot,
			  "SELECT b.offset FROM blob b JOIN message m ON m.blob = "
			  "b.sha256 WHERE m.seq = %lld",
			  (long long)gone);
	assert_false(test_pack_zero_at(t, pack, offset));
	assert_true(test_int(t->depot, "SELECT count(*) FROM message_recipient WHERE seq = %lld",
			     (long long)gone) > 0);
	/* A word of its subject finds it in the full-text index. */
	test_subject_word(t, gone, word, sizeof(word));
	assert_int_equal(test_text_hits(t, word, gone), 1);
	assert_true(test_text_tokens(t, gone) > 0);
	audits = test_int(t->depot, "SELECT count(*) FROM audit");

	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.seqs[0], gone);
	assert_int_equal(expiry.blobs_removed, 1);
	assert_true(expiry.entry_seq > kept);

	/* One "expire" entry naming it; the message row keeps its seq. */
	assert_int_equal(test_int(t->depot,
				  "SELECT count(*) FROM entry WHERE kind = 'expire' AND "
				  "detail = 'seq:%lld' AND seq = %lld",
				  (long long)gone, (long long)expiry.entry_seq),
			 1);
	assert_int_equal(
	    test_int(t->depot, "SELECT expired FROM message WHERE seq = %lld", (long long)gone),
	    expiry.entry_seq);
	assert_int_equal(
	    test_int(t->depot, "SELECT count(*) FROM entry WHERE seq = %lld", (long long)gone), 1);
	assert_int_equal(test_int(t->depot,
				  "SELECT count(*) FROM message WHERE seq = %lld AND "
				  "sender IS NULL AND subject IS NULL AND "
				  "message_id IS NULL AND date = 0",
				  (long long)gone),
			 1);
	/* Its index rows and full-text row are gone, the kept one's stay. */
	for (size_t i = 0; i < 3; i++) {
		static const char *const tables[] = {"message_recipient", "message_owner",
						     "message_attachment"};

		assert_int_equal(test_int(t->depot, "SELECT count(*) FROM %s WHERE seq = %lld",
					  tables[i], (long long)gone),
				 0);
	}
	assert_int_equal(test_text_hits(t, word, gone), 0);
	assert_int_equal(test_text_tokens(t, gone), 0);
	assert_true(test_text_tokens(t, kept) > 0);
	assert_true(test_int(t->depot, "SELECT count(*) FROM message_recipient WHERE seq = %lld",
			     (long long)kept) > 0);
	/* The blob: marked removed, its record punched out of the pack. */
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE removed = 1"), 1);
	assert_true(test_pack_zero_at(t, pack, offset));
	assert_int_equal(depot_read(t->depot, gone, "admin", &raw, &len, err, sizeof(err)), 0);
	assert_int_equal(depot_read(t->depot, kept, "admin", &raw, &len, err, sizeof(err)), 1);
	free(raw);
	/* The audit log has the deletion with the same list. */
	assert_int_equal(test_int(t->depot,
				  "SELECT count(*) FROM audit WHERE action = 'delete' "
				  "AND actor = 'admin' AND detail = 'seq:%lld'",
				  (long long)gone),
			 1);
	assert_true(test_int(t->depot, "SELECT count(*) FROM audit") > audits);
	depot_expiry_free(&expiry);
	test_intact(t);

	/* Nothing more is due: a second run writes no entry. */
	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 0);
	assert_int_equal(expiry.entry_seq, 0);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM entry WHERE kind = 'expire'"), 1);
	depot_expiry_free(&expiry);
}

static void test_shared_blob_stays(void **state)
{
	struct test_depot *t = *state;
	const char *short_owner[] = {"ann@short.org ann", NULL};
	const char *long_owner[] = {"bob@long.org bob", NULL};
	int64_t first = test_archive(t, 6, "test:short", short_owner);
	int64_t second = test_archive(t, 6, "test:long", long_owner);
	struct depot_expiry expiry;
	char word[64];
	char err[256];
	char *raw = NULL;
	size_t len;

	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob"), 1);
	test_subject_word(t, first, word, sizeof(word));
	test_set(t, "domain", "short.org", 5);
	test_set(t, "domain", "long.org", 500);
	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.seqs[0], first);
	assert_int_equal(expiry.blobs_removed, 0);
	depot_expiry_free(&expiry);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE removed = 1"), 0);
	/* The kept message still reads, and still is found by its text. */
	assert_int_equal(depot_read(t->depot, second, "admin", &raw, &len, err, sizeof(err)), 1);
	free(raw);
	assert_int_equal(test_text_hits(t, word, first), 0);
	assert_int_equal(test_text_hits(t, word, second), 1);

	/* When the last message sharing it goes, the blob goes too. */
	if (depot_expire(t->depot, T0 + 501 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.blobs_removed, 1);
	depot_expiry_free(&expiry);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM blob WHERE removed = 1"), 1);
	assert_int_equal(test_text_hits(t, word, second), 0);
	assert_int_equal(test_text_tokens(t, first), 0);
	assert_int_equal(test_text_tokens(t, second), 0);
	test_intact(t);
}

/* A message with attachments: their names and text are in the full-text
 * row's attachments column, which the expiry must give back exactly. */
static void test_expire_attachments(void **state)
{
	struct test_depot *t = *state;
	static const char message[] =
	    "From: ann@short.org\r\nTo: bob@long.org\r\nSubject: minutes attached\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
	    "--b\r\nContent-Type: text/plain\r\n\r\nsee the minutes\r\n"
	    "--b\r\nContent-Type: text/plain; name=\"minutes.txt\"\r\n"
	    "Content-Disposition: attachment; filename=\"minutes.txt\"\r\n\r\n"
	    "quarterly figures agreed unanimously\r\n"
	    "--b\r\nContent-Type: application/octet-stream\r\n"
	    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n--b--\r\n";
	const char *ann[] = {"ann@short.org ann", NULL};
	int64_t seq = test_archive_raw(t, message, sizeof(message) - 1, "test:att", ann);
	struct depot_expiry expiry;
	char err[256];

	assert_int_equal(test_int(t->depot,
				  "SELECT count(*) FROM message_attachment WHERE seq = "
				  "%lld",
				  (long long)seq),
			 2);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM message_text WHERE "
					    "message_text MATCH 'attachments:unanimously'"),
			 1);
	test_set(t, "user", "ann", 1);
	if (depot_expire(t->depot, T0 + 2 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	depot_expiry_free(&expiry);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM message_attachment"), 0);
	assert_int_equal(test_text_tokens(t, seq), 0);
	test_intact(t);
}

/*
 * A message archived without fields (the daemon's worker could not give
 * them) has an empty full-text row; its expiry must delete it as such, not
 * with the fields depot_extract would give now, or the contentless index is
 * left with deletions of tokens it never held.
 */
static void test_expire_fieldless(void **state)
{
	struct test_depot *t = *state;
	int64_t kept = test_archive(t, 7, "test:kept", NULL);
	struct depot_owner owner = {.address = "zzzz@localhost.netnoteinc.com", .user = "ann"};
	struct depot_expiry expiry;
	char word[64];
	char *raw;
	size_t len;
	char err[256];
	int64_t gone = 0;

	assert_int_equal(util_read_file(t->corpus.gl_pathv[8], &raw, &len), 0);
	struct depot_item item = {.raw = raw,
				  .len = len,
				  .direction = DEPOT_IN,
				  .source = "test:fieldless",
				  .owners = &owner,
				  .owner_count = 1,
				  .at = T0};
	if (depot_ingest(t->depot, &item, 1, &gone, err, sizeof(err)) != 0)
		fail_msg("depot_ingest: %s", err);
	free(raw);
	assert_int_equal(
	    test_int(t->depot, "SELECT extracted FROM message WHERE seq = %lld", (long long)gone),
	    0);
	/* No fields: its row holds only the key tokens of its owner's address
	 * and user. */
	assert_int_equal(test_text_tokens(t, gone), 2);
	test_subject_word(t, kept, word, sizeof(word));
	test_set(t, "user", "ann", 1);
	if (depot_expire(t->depot, T0 + 2 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.seqs[0], gone);
	depot_expiry_free(&expiry);
	test_text_intact(t);
	assert_int_equal(test_text_tokens(t, gone), 0);
	assert_int_equal(test_text_hits(t, word, kept), 1);
	test_intact(t);
}

/*
 * A depot of schema 1 (its full-text table without the keys column) opened
 * by this popgate: migration 2 makes every kept message's full-text row
 * again from its blob and owner rows — the very tokens a fresh ingest
 * makes — so a search by sender, owner addresses and words finds it, and
 * expiring a message after the migration leaves none of its tokens.
 */
/* Takes the depot back to index schema 1 (the four-column full-text
 * table; its rows do not matter, migration 2 drops it) and opens it again,
 * which migrates it; checks that it did. */
static void test_migrate_from_schema_1(struct test_depot *t)
{
	char err[256];
	char *path;

	assert_int_equal(
	    sqlite3_exec(depot_db(t->depot),
			 "DROP TABLE IF EXISTS temp.text_vocab; DROP TABLE message_text;"
			 "CREATE VIRTUAL TABLE message_text USING fts5(subject, headers,"
			 " body, attachments, content='',"
			 " tokenize='unicode61 remove_diacritics 2');"
			 "PRAGMA user_version = 1",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	depot_close(&t->depot);
	path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(path, false, err, sizeof(err));
	free(path);
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	assert_int_equal(test_int(t->depot, "PRAGMA user_version"), 2);
	assert_int_equal(
	    test_int(t->depot, "SELECT count(*) FROM sqlite_master WHERE name = 'message_text_v1'"),
	    0);
}

/* Flips a byte inside message SEQ's stored zstd frame, as a failing disk
 * would: depot_read refuses it from then on. */
static void test_damage(struct test_depot *t, int64_t seq)
{
	int64_t pack = test_int(t->depot,
				"SELECT b.pack FROM message m JOIN blob b ON b.sha256 = m.blob"
				" WHERE m.seq = %lld",
				(long long)seq);
	int64_t offset = test_int(t->depot,
				  "SELECT b.offset FROM message m JOIN blob b ON b.sha256 = m.blob"
				  " WHERE m.seq = %lld",
				  (long long)seq);
	char *path = xasprintf("%s/depot/packs/%06lld.pack", t->dir, (long long)pack);
	int fd = open(path, O_RDWR);
	unsigned char byte;
	char *raw = NULL;
	size_t len;
	char err[256];

	assert_true(fd >= 0);
	/* Past the record's 56-byte header. */
	assert_int_equal(pread(fd, &byte, 1, offset + 100), 1);
	byte ^= 0x20;
	assert_int_equal(pwrite(fd, &byte, 1, offset + 100), 1);
	close(fd);
	free(path);
	assert_int_equal(depot_read(t->depot, seq, "admin", &raw, &len, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "corrupt"));
}

static void test_migrate_keys(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"zzzz@localhost.netnoteinc.com ann", NULL};
	const char *bob[] = {"bob@corp.example bob", NULL};
	int64_t seqs[3] = {test_archive(t, 4, "test:ann", ann),
			   test_archive(t, 5, "test:none", NULL),
			   test_archive(t, 6, "test:bob", bob)};
	const char *const bob_addresses[] = {"Bob@corp.example"};
	struct depot_query query = {
	    .direction = -1, .restricted = true, .addresses = bob_addresses, .address_count = 1};
	int64_t tokens[3];
	struct depot_expiry expiry;
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char word[64], sender[256], err[256];
	sqlite3_stmt *stmt;

	for (size_t i = 0; i < 3; i++)
		tokens[i] = test_text_tokens(t, seqs[i]);
	test_subject_word(t, seqs[2], word, sizeof(word));
	assert_int_equal(sqlite3_prepare_v2(depot_db(t->depot),
					    "SELECT sender FROM message WHERE seq = ?", -1, &stmt,
					    NULL),
			 SQLITE_OK);
	sqlite3_bind_int64(stmt, 1, seqs[2]);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	snprintf(sender, sizeof(sender), "%s", (const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	test_migrate_from_schema_1(t);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(test_text_tokens(t, seqs[i]), tokens[i]);
	query.sender = sender;
	query.text = word;
	if (depot_search(t->depot, &query, "admin", &hits, &count, err, sizeof(err)) != 0)
		fail_msg("depot_search: %s", err);
	assert_int_equal(count, 1);
	assert_int_equal(hits[0].seq, seqs[2]);
	depot_hits_free(&hits, count);

	test_set(t, "user", "ann", 5);
	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.seqs[0], seqs[0]);
	depot_expiry_free(&expiry);
	assert_int_equal(test_text_tokens(t, seqs[0]), 0);
	test_text_intact(t);
	test_intact(t);
}

/* A damaged message does not stop migration 2: it is indexed by its
 * owners only (extracted = 0), the others as always, and its expiry later
 * removes that row whole. */
static void test_migrate_damaged(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"ann@short.org ann", NULL};
	int64_t damaged = test_archive(t, 4, "test:damaged", ann);
	int64_t intact = test_archive(t, 6, "test:intact", ann);
	const char *const ann_addresses[] = {"ann@short.org"};
	struct depot_query query = {
	    .direction = -1, .restricted = true, .addresses = ann_addresses, .address_count = 1};
	int64_t intact_tokens = test_text_tokens(t, intact);
	struct depot_expiry expiry;
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char err[256];

	test_damage(t, damaged);
	test_migrate_from_schema_1(t);
	assert_int_equal(test_int(t->depot, "SELECT extracted FROM message WHERE seq = %lld",
				  (long long)damaged),
			 0);
	assert_int_equal(
	    test_int(t->depot, "SELECT extracted FROM message WHERE seq = %lld", (long long)intact),
	    1);
	/* The owner's address and user. */
	assert_int_equal(test_text_tokens(t, damaged), 2);
	assert_int_equal(test_text_tokens(t, intact), intact_tokens);
	if (depot_search(t->depot, &query, "admin", &hits, &count, err, sizeof(err)) != 0)
		fail_msg("depot_search: %s", err);
	assert_int_equal(count, 2);
	depot_hits_free(&hits, count);

	test_set(t, "user", "ann", 5);
	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 2);
	depot_expiry_free(&expiry);
	assert_int_equal(test_text_tokens(t, damaged), 0);
	assert_int_equal(test_text_tokens(t, intact), 0);
	test_text_intact(t);
}

/* Expiring a message whose blob is damaged (its full-text row cannot be
 * remade to delete it) goes on: the index is made anew without it, a
 * kept damaged message gets a row by its owners only, the rest are as
 * they were. */
static void test_expire_damaged(void **state)
{
	struct test_depot *t = *state;
	const char *ann[] = {"ann@short.org ann", NULL};
	const char *bob[] = {"bob@short.org bob", NULL};
	int64_t expiring = test_archive(t, 4, "test:expiring", ann);
	int64_t kept = test_archive(t, 6, "test:kept", bob);
	int64_t kept_damaged = test_archive(t, 7, "test:kept-damaged", bob);
	const char *const bob_addresses[] = {"bob@short.org"};
	struct depot_query query = {
	    .direction = -1, .restricted = true, .addresses = bob_addresses, .address_count = 1};
	int64_t kept_tokens = test_text_tokens(t, kept);
	struct depot_expiry expiry;
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char word[64], err[256];

	assert_true(test_text_tokens(t, expiring) > 2);
	test_subject_word(t, kept, word, sizeof(word));
	test_damage(t, expiring);
	test_damage(t, kept_damaged);
	test_set(t, "user", "ann", 5);
	if (depot_expire(t->depot, T0 + 6 * DAY, DEFAULT_DAYS, false, "admin", &expiry, err,
			 sizeof(err)) < 0)
		fail_msg("depot_expire: %s", err);
	assert_int_equal(expiry.count, 1);
	assert_int_equal(expiry.seqs[0], expiring);
	depot_expiry_free(&expiry);
	assert_int_equal(test_text_tokens(t, expiring), 0);
	assert_int_equal(test_text_tokens(t, kept), kept_tokens);
	assert_int_equal(test_text_tokens(t, kept_damaged), 2);
	assert_int_equal(test_int(t->depot, "SELECT extracted FROM message WHERE seq = %lld",
				  (long long)kept_damaged),
			 0);
	assert_int_equal(
	    test_int(t->depot, "SELECT count(*) FROM sqlite_master WHERE name = 'message_text_v1'"),
	    0);
	test_text_intact(t);
	query.text = word;
	if (depot_search(t->depot, &query, "admin", &hits, &count, err, sizeof(err)) != 0)
		fail_msg("depot_search: %s", err);
	assert_true(count >= 1);
	assert_int_equal(hits[0].seq, kept);
	depot_hits_free(&hits, count);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_retention_precedence, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_damaged, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_holds_stop_expiry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_removes_everything, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_shared_blob_stays, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_attachments, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expire_fieldless, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
