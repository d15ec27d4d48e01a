/*
 * test_depot_search.c — searching the archive (depot/search.c): real corpus
 * messages archived with depot_ingest, owned by alice or bob, then found by
 * each criterion alone and together; a user's search restricted to the
 * user's addresses; paging; expired messages never found; every search and
 * look-up audited; and a user's words that look like FTS5 syntax or SQL
 * searched literally or refused with a clear sentence, never an SQLite
 * error.
 *
 * Owns: a temporary folder per test, removed at its end.
 */
#include <ctype.h>
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/search.h"

#include "test_corpus.h"
#include "test_support.h"

/* Messages archived: even ones alice's, odd ones bob's. */
#define TEST_MESSAGES 12
#define TEST_DATE0 1600000000LL

struct test_search {
	char dir[TEST_DIR_SIZE];
	struct depot *depot;
	int64_t seqs[TEST_MESSAGES];
	int64_t spread[48]; /* SPREAD_MESSAGES, of setup_spread */
};

static const char *const alice_addresses[] = {"Alice@Corp.Example", "a.smith@corp.example"};
static const char *const bob_addresses[] = {"bob@corp.example"};

/* The fields message I is archived with: chosen here, so each criterion
 * has a known answer (the raw bytes are a real corpus message). */
static void test_fields(size_t i, const char *raw, size_t len, struct depot_fields *f)
{
	bool alice = i % 2 == 0;
	size_t body = len < 2000 ? len : 2000;

	memset(f, 0, sizeof(*f));
	f->sender = xasprintf("sender%zu@example.org", i % 3);
	f->recipient_count = i == 10 ? 2 : 1;
	f->recipients = xcalloc(2, sizeof(char *));
	f->recipients[0] = xstrdup(alice ? "alice@corp.example" : "bob@corp.example");
	if (i == 10)
		f->recipients[1] = xstrdup("carol@other.example");
	f->subject = i % 4 == 0 ? xasprintf("Invoice %zu for March", i)
				: xasprintf("Quarterly report number %zu", i);
	f->date = TEST_DATE0 + (int64_t)i * 86400;
	f->message_id = xasprintf("m%zu@example.org", i);
	if (i % 3 == 0) {
		f->attachment_count = 1;
		f->attachments = xcalloc(1, sizeof(char *));
		f->attachments[0] =
		    i == 6 ? xstrdup("Report_Final.DOCX") : xasprintf("scan%zu.pdf", i);
	}
	f->headers =
	    xasprintf("From: %s To: %s Subject: %s", f->sender, f->recipients[0], f->subject);
	/* The message's own text, and a word only alice's or bob's mail has;
	 * message 5 holds the words an FTS5 query would take as operators. */
	f->body = xasprintf("%.*s %s%s", (int)body, raw, alice ? "alpaca" : "zebracorn",
			    i == 5 ? " near or and not star" : "");
	f->attachment_text = xstrdup(i == 6 ? "budget spreadsheet" : "");
}

static int setup(void **state)
{
	struct test_search *t = xcalloc(1, sizeof(*t));
	glob_t files;
	char err[256], *path;

	assert_int_equal(test_dir_make(t->dir, sizeof(t->dir), "depot_search"), 0);
	path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(path, true, err, sizeof(err));
	free(path);
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	assert_int_equal(test_corpus_glob("easy-ham-1", "", &files), 0);
	assert_true(files.gl_pathc >= TEST_MESSAGES);
	for (size_t i = 0; i < TEST_MESSAGES; i++) {
		struct depot_fields fields;
		struct depot_owner owner = {.address = i % 2 == 0 ? "alice@corp.example"
								  : "bob@corp.example",
					    .user = i % 2 == 0 ? "alice" : "bob"};
		char *raw = NULL, *source = xasprintf("test:%zu", i);
		size_t len = 0;

		assert_int_equal(util_read_file(files.gl_pathv[i], &raw, &len), 0);
		test_fields(i, raw, len, &fields);
		struct depot_item item = {.raw = raw,
					  .len = len,
					  .direction = i == 7	? DEPOT_OUT
						       : i == 8 ? DEPOT_IMPORT
								: DEPOT_IN,
					  .source = source,
					  .fields = &fields,
					  .owners = &owner,
					  .owner_count = 1,
					  .at = 1700000000};
		if (depot_ingest(t->depot, &item, 1, &t->seqs[i], err, sizeof(err)) != 0)
			fail_msg("depot_ingest: %s", err);
		depot_fields_free(&fields);
		free(source);
		free(raw);
	}
	globfree(&files);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct test_search *t = *state;

	depot_close(&t->depot);
	test_dir_remove(t->dir);
	free(t);
	return 0;
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

/*
 * Runs QUERY as ACTOR and checks it found exactly the messages of the
 * indexes in EXPECT (-1 ends the list), newest first.
 */
static void test_expect(struct test_search *t, const struct depot_query *query, const char *actor,
			const int *expect)
{
	struct depot_hit *hits = NULL;
	size_t count = 0, n = 0;
	char err[256];

	if (depot_search(t->depot, query, actor, &hits, &count, err, sizeof(err)) != 0)
		fail_msg("depot_search: %s", err);
	while (expect[n] >= 0)
		n++;
	if (count != n) {
		for (size_t i = 0; i < count; i++)
			print_message("hit seq %lld\n", (long long)hits[i].seq);
		fail_msg("expected %zu hits, got %zu", n, count);
	}
	/* Ingested in order, so the newest first is the highest index first. */
	for (size_t i = 0; i < n; i++)
		assert_int_equal(hits[i].seq, t->seqs[expect[i]]);
	depot_hits_free(&hits, count);
}

static struct depot_query test_query(void)
{
	return (struct depot_query){.direction = -1};
}

static void test_each_criterion(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();

	test_expect(t, &q, "admin", (const int[]){11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1});
	q.sender = "Sender1@EXAMPLE.org"; /* compared lowercased */
	test_expect(t, &q, "admin", (const int[]){10, 7, 4, 1, -1});
	q = test_query();
	q.recipient = "carol@other.example";
	test_expect(t, &q, "admin", (const int[]){10, -1});
	q.recipient = "BOB@corp.example";
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, 3, 1, -1});
	q = test_query();
	q.subject = "invoice march";
	test_expect(t, &q, "admin", (const int[]){8, 4, 0, -1});
	q.subject = "report";
	test_expect(t, &q, "admin", (const int[]){11, 10, 9, 7, 6, 5, 3, 2, 1, -1});
	q.subject = "alpaca"; /* in the body only, not the subject */
	test_expect(t, &q, "admin", (const int[]){-1});
	q = test_query();
	q.text = "zebracorn";
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, 3, 1, -1});
	q.text = "budget"; /* attachment text */
	test_expect(t, &q, "admin", (const int[]){6, -1});
	q.text = "zebra*"; /* a prefix */
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, 3, 1, -1});
	q.text = "zebra";
	test_expect(t, &q, "admin", (const int[]){-1});
	q.text = "invoice alpaca"; /* subject and body together */
	test_expect(t, &q, "admin", (const int[]){8, 4, 0, -1});
	q = test_query();
	q.since = TEST_DATE0 + 3 * 86400;
	q.until = TEST_DATE0 + 5 * 86400;
	test_expect(t, &q, "admin", (const int[]){5, 4, 3, -1});
	q.until = 0; /* open-ended: walked by seq, checked on each */
	test_expect(t, &q, "admin", (const int[]){11, 10, 9, 8, 7, 6, 5, 4, 3, -1});
	q = test_query();
	q.owner = "alice";
	test_expect(t, &q, "admin", (const int[]){10, 8, 6, 4, 2, 0, -1});
	q = test_query();
	q.attachment = "SCAN"; /* a substring, without case */
	test_expect(t, &q, "admin", (const int[]){9, 3, 0, -1});
	q.attachment = "*.DOCX"; /* a glob, with case */
	test_expect(t, &q, "admin", (const int[]){6, -1});
	q.attachment = "*.docx";
	test_expect(t, &q, "admin", (const int[]){-1});
	q.attachment = "100%"; /* LIKE's own characters are literal */
	test_expect(t, &q, "admin", (const int[]){-1});
	q = test_query();
	q.direction = DEPOT_OUT;
	test_expect(t, &q, "admin", (const int[]){7, -1});
	q.direction = DEPOT_IMPORT;
	test_expect(t, &q, "admin", (const int[]){8, -1});
	/* Several at once: all must hold. */
	q = test_query();
	q.sender = "sender1@example.org";
	q.text = "zebracorn";
	q.since = TEST_DATE0 + 2 * 86400;
	test_expect(t, &q, "admin", (const int[]){7, -1});
}

static void test_hit_fields(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();
	struct depot_entry_info entry;
	struct depot_hit *hits = NULL, hit;
	size_t count = 0;
	char err[256];

	q.recipient = "carol@other.example";
	assert_int_equal(depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_string_equal(hits[0].sender, "sender1@example.org");
	assert_int_equal(hits[0].recipient_count, 2);
	assert_string_equal(hits[0].recipients[1], "carol@other.example");
	assert_string_equal(hits[0].subject, "Quarterly report number 10");
	assert_int_equal(hits[0].date, TEST_DATE0 + 10 * 86400);
	assert_int_equal(hits[0].direction, DEPOT_IN);
	assert_string_equal(hits[0].source, "test:10");
	assert_string_equal(hits[0].message_id, "m10@example.org");
	assert_int_equal(hits[0].owner_count, 1);
	assert_string_equal(hits[0].owners[0].user, "alice");
	assert_int_equal(strlen(hits[0].sha256), 64);
	assert_true(hits[0].size > 0);
	depot_hits_free(&hits, count);

	assert_int_equal(
	    depot_search_get(t->depot, t->seqs[6], NULL, "admin", &hit, &entry, err, sizeof(err)),
	    1);
	assert_int_equal(hit.attachment_count, 1);
	assert_string_equal(hit.attachments[0], "Report_Final.DOCX");
	assert_string_equal(entry.kind, "archive");
	assert_int_equal(strlen(entry.hash), 64);
	assert_int_equal(strlen(entry.record), 64);
	depot_hit_clear(&hit);
	assert_int_equal(
	    depot_search_get(t->depot, 9999, NULL, "admin", &hit, &entry, err, sizeof(err)), 0);
}

/* A user's search never finds another user's mail, whatever else it asks. */
static void test_restricted_searches(struct test_search *t)
{
	struct depot_query q = test_query();
	struct depot_hit *hits = NULL;
	size_t count = 0;
	struct depot_hit hit;
	char err[256];

	q.restricted = true;
	q.addresses = alice_addresses;
	q.address_count = 2;
	test_expect(t, &q, "user:alice", (const int[]){10, 8, 6, 4, 2, 0, -1});
	q.text = "zebracorn"; /* only in bob's mail */
	test_expect(t, &q, "user:alice", (const int[]){-1});
	q.text = NULL;
	q.sender = "sender1@example.org";
	test_expect(t, &q, "user:alice", (const int[]){10, 4, -1});
	q.sender = NULL;
	q.owner = "bob";
	test_expect(t, &q, "user:alice", (const int[]){-1});
	q.owner = NULL;
	q.recipient = "bob@corp.example";
	test_expect(t, &q, "user:alice", (const int[]){-1});
	q.recipient = NULL;
	q.direction = DEPOT_OUT;
	test_expect(t, &q, "user:alice", (const int[]){-1});
	q.direction = -1;
	q.subject = "quarterly report";
	test_expect(t, &q, "user:alice", (const int[]){10, 6, 2, -1});
	q.subject = NULL;
	q.attachment = "scan";
	test_expect(t, &q, "user:alice", (const int[]){0, -1});

	/* Bob's messages, looked up as alice: as if missing. */
	assert_int_equal(
	    depot_search_get(t->depot, t->seqs[1], &q, "user:alice", &hit, NULL, err, sizeof(err)),
	    0);
	assert_int_equal(depot_search_owns(t->depot, t->seqs[1], &q, err, sizeof(err)), 0);
	assert_int_equal(depot_search_owns(t->depot, t->seqs[0], &q, err, sizeof(err)), 1);

	/* A user with no addresses owns nothing; words that are no search are
	 * refused for them too. */
	q = test_query();
	q.restricted = true;
	test_expect(t, &q, "user:nobody", (const int[]){-1});
	q.text = "\"*";
	assert_int_equal(depot_search(t->depot, &q, "user:nobody", &hits, &count, err, sizeof(err)),
			 -1);
	q.text = NULL;
	assert_int_equal(depot_search_owns(t->depot, t->seqs[0], &q, err, sizeof(err)), 0);

	q.addresses = bob_addresses;
	q.address_count = 1;
	q.text = "alpaca";
	test_expect(t, &q, "user:bob", (const int[]){-1});
}

static void test_restricted(void **state)
{
	test_restricted_searches(*state);
}

/*
 * The same with sets big enough to be probed per message instead of listed
 * (search.c's SEARCH_SET_SMALL): owner and recipient rows of messages that
 * are not there (seqs far above the archived ones) give alice's addresses
 * 2 x 10^4 more rows, bob's address 10^4, and the owner user bob and
 * bob's recipient address 3 x 10^4 each; and full-text rows of such
 * messages give "zebracorn" 4 x 10^4 more matches, so a big set smaller
 * than the word's matches leads (listed) and the word is probed.
 */
static void test_restricted_big_sets(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();
	sqlite3 *db = depot_db(t->depot);

	assert_int_equal(sqlite3_exec(db,
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
				      " FROM n WHERE i < 30000)"
				      " INSERT INTO message_owner (seq, position, address, user)"
				      " SELECT 1000000 + i, 0, CASE i % 3 WHEN 0 THEN"
				      " 'alice@corp.example' WHEN 1 THEN 'a.smith@corp.example'"
				      " ELSE 'bob@corp.example' END, 'bob' FROM n;"
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
				      " FROM n WHERE i < 30000)"
				      " INSERT INTO message_recipient (seq, position, address)"
				      " SELECT 1000000 + i, 0, 'bob@corp.example' FROM n;"
				      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1"
				      " FROM n WHERE i < 40000)"
				      " INSERT INTO message_text (rowid, subject, headers, body,"
				      " attachments) SELECT 2000000 + i, '', '', 'zebracorn', ''"
				      " FROM n;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	test_restricted_searches(t);
	q.text = "zebracorn";
	q.owner = "bob";
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, 3, 1, -1});
	q.recipient = "bob@corp.example";
	q.sender = "sender1@example.org";
	test_expect(t, &q, "admin", (const int[]){7, 1, -1});
	q = test_query();
	q.recipient = "bob@corp.example";
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, 3, 1, -1});
	q.recipient = NULL;
	q.owner = "bob";
	q.limit = 2;
	test_expect(t, &q, "admin", (const int[]){11, 9, -1});
	q.text = "zebracorn";
	q.before = t->seqs[9];
	test_expect(t, &q, "admin", (const int[]){7, 5, -1});
}

static void test_paging(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();

	q.limit = 5;
	test_expect(t, &q, "admin", (const int[]){11, 10, 9, 8, 7, -1});
	q.before = t->seqs[7];
	test_expect(t, &q, "admin", (const int[]){6, 5, 4, 3, 2, -1});
	q.before = t->seqs[2];
	test_expect(t, &q, "admin", (const int[]){1, 0, -1});
	/* The same with words (the FTS5 table leads then). */
	q = test_query();
	q.text = "zebracorn";
	q.limit = 4;
	test_expect(t, &q, "admin", (const int[]){11, 9, 7, 5, -1});
	q.before = t->seqs[5];
	test_expect(t, &q, "admin", (const int[]){3, 1, -1});
}

static void test_expired(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();
	struct depot_hit hit;
	char err[256], *sql;

	sql = xasprintf("UPDATE message SET expired = 999 WHERE seq IN (%lld, %lld)",
			(long long)t->seqs[11], (long long)t->seqs[9]);
	assert_int_equal(sqlite3_exec(depot_db(t->depot), sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	q.text = "zebracorn";
	test_expect(t, &q, "admin", (const int[]){7, 5, 3, 1, -1});
	q.text = NULL;
	q.limit = 2;
	test_expect(t, &q, "admin", (const int[]){10, 8, -1});
	assert_int_equal(
	    depot_search_get(t->depot, t->seqs[11], NULL, "admin", &hit, NULL, err, sizeof(err)),
	    0);
	assert_int_equal(depot_search_owns(t->depot, t->seqs[11], NULL, err, sizeof(err)), 0);
}

static void test_audited(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();
	struct depot_hit *hits = NULL, hit;
	size_t count = 0;
	int64_t before = test_int(t->depot, "SELECT count(*) FROM audit");
	char err[256];

	q.text = "invoice \"x";
	q.restricted = true;
	q.addresses = bob_addresses;
	q.address_count = 1;
	assert_int_equal(depot_search(t->depot, &q, "user:bob", &hits, &count, err, sizeof(err)),
			 0);
	assert_int_equal(count, 0);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM audit"), before + 1);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM audit WHERE action = 'search'"
					    " AND actor = 'user:bob' AND detail LIKE"
					    " '%\"text\":\"invoice \\\"x\"%bob@corp.example%'"),
			 1);
	assert_int_equal(
	    depot_search_get(t->depot, t->seqs[1], NULL, "admin", &hit, NULL, err, sizeof(err)), 1);
	depot_hit_clear(&hit);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM audit WHERE action = 'show'"
					    " AND actor = 'admin'"),
			 1);
	/* A refused query runs nothing and audits nothing. */
	q.text = "\"";
	assert_int_equal(depot_search(t->depot, &q, "user:bob", &hits, &count, err, sizeof(err)),
			 -1);
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM audit"), before + 2);
}

/* The FTS5 expression of a user's words: each word quoted. */
static void test_match_text(void **state)
{
	char err[256], *match;

	(void)state;
	match = depot_search_match("hello  wor\"ld invoic* *", NULL, err, sizeof(err));
	assert_string_equal(match, "\"hello\" AND \"wor\"\"ld\" AND \"invoic\"*");
	free(match);
	match = depot_search_match("NEAR( a OR b", "subject", err, sizeof(err));
	assert_string_equal(match, "{subject} : (\"NEAR(\" AND \"a\" AND \"OR\" AND \"b\")");
	free(match);
	assert_null(depot_search_match(" -- ' \" * ", NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "no word"));
	assert_null(depot_search_match("", NULL, err, sizeof(err)));
}

/*
 * Any text at all made of FTS5's syntax, words and odd bytes: the
 * expression depot_search_match makes of it is one FTS5 accepts (run here
 * on a table like message_text), or there is none and ERR says why.
 */
static void test_match_any_text(void **state)
{
	static const char *const pieces[] = {
	    "\"",  "*",	   "(",	 ")",	 "NEAR",     "NEAR(",	  "OR", "AND", "NOT", ":",
	    "^",   "-",	   "+",	 "{",	 "}",	     "'",	  ";",	"--",  "a",   "b\xc3\xa9",
	    "x*",  " ",	   "\t", "\xff", "subject:", "\xc3",	  ",",	"\\",  "0",   "\"\"",
	    "*\"", "\r\n", "%",	 "_",	 "body",     "{subject}", "1e5"};
	sqlite3 *db;
	sqlite3_stmt *stmt;
	uint32_t seed = 12345;
	char err[256];

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(db,
			 "CREATE VIRTUAL TABLE message_text USING fts5(subject, headers, body,"
			 " attachments, content='', tokenize='unicode61 remove_diacritics 2');"
			 "INSERT INTO message_text (rowid, subject, headers, body, attachments)"
			 " VALUES (1, 'a near b', 'x', 'or and not', '');",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*) FROM message_text"
					    " WHERE message_text MATCH ?",
					    -1, &stmt, NULL),
			 SQLITE_OK);
	for (int round = 0; round < 20000; round++) {
		char text[512] = "";
		size_t n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 12;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			strncat(text, pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))],
				sizeof(text) - strlen(text) - 1);
		}
		for (int column = 0; column < 2; column++) {
			char *match =
			    depot_search_match(text, column ? "subject" : NULL, err, sizeof(err));

			if (match == NULL) {
				assert_true(strstr(err, "no word") != NULL ||
					    strstr(err, "too many") != NULL);
				continue;
			}
			sqlite3_bind_text(stmt, 1, match, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(stmt) != SQLITE_ROW)
				fail_msg("text '%s' made '%s': %s", text, match,
					 sqlite3_errmsg(db));
			sqlite3_reset(stmt);
			free(match);
		}
	}
	sqlite3_finalize(stmt);
	sqlite3_close(db);
}

/*
 * Words that are FTS5 or SQL syntax: searched as the words they hold, or
 * refused as holding none, never an error of SQLite's.
 */
static void test_injection(void **state)
{
	static const char *const literal[] = {"NEAR(",
					      "OR",
					      "near or",
					      "AND NOT",
					      "star*",
					      "NEAR(near",
					      "\"or\"",
					      "subject:near",
					      "{body}: near",
					      "near^",
					      "'; DROP TABLE message; --",
					      "x' OR '1'='1",
					      "near)",
					      "(near",
					      "+near",
					      "-near",
					      "near:*",
					      "\"near\" OR \"zebracorn\""};
	static const char *const wordless[] = {"\"", "*", "--", "'", "\"\"", "(",   ")",
					       ":",  "^", "-",	"+", "*\"*", "{ }", "; --"};
	struct test_search *t = *state;
	struct depot_query q = test_query();
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char err[256];

	for (size_t i = 0; i < sizeof(literal) / sizeof(literal[0]); i++) {
		for (int column = 0; column < 2; column++) {
			q = test_query();
			*(column == 0 ? &q.text : &q.subject) = literal[i];
			if (depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)) !=
			    0)
				fail_msg("'%s' refused: %s", literal[i], err);
			depot_hits_free(&hits, count);
		}
	}
	/* Found literally: message 5 holds "near or and not star". */
	q = test_query();
	q.text = "NEAR(";
	test_expect(t, &q, "admin", (const int[]){5, -1});
	q.text = "OR";
	test_expect(t, &q, "admin", (const int[]){5, -1});
	q.text = "AND NOT star*";
	test_expect(t, &q, "admin", (const int[]){5, -1});
	q.text = "\"near\" OR \"zebracorn\""; /* all three words, not either */
	test_expect(t, &q, "admin", (const int[]){5, -1});
	q.text = "'; DROP TABLE message; --";
	test_expect(t, &q, "admin", (const int[]){-1});
	assert_int_equal(test_int(t->depot, "SELECT count(*) FROM message"), TEST_MESSAGES);

	for (size_t i = 0; i < sizeof(wordless) / sizeof(wordless[0]); i++) {
		q = test_query();
		q.text = wordless[i];
		assert_int_equal(
		    depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "no word"));
		assert_null(strstr(err, "fts5"));
		assert_null(strstr(err, "syntax"));
	}
	/* Other fields are bound values: SQL in them is an address that is not
	 * there. */
	q = test_query();
	q.sender = "' OR 1=1 --";
	test_expect(t, &q, "admin", (const int[]){-1});
	q = test_query();
	q.owner = "alice' OR '1'='1";
	test_expect(t, &q, "admin", (const int[]){-1});
	q = test_query();
	q.restricted = true;
	q.addresses = (const char *const[]){"x') OR 1=1 --"};
	q.address_count = 1;
	test_expect(t, &q, "user:mallory", (const int[]){-1});
}

static void test_refused_queries(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();
	struct depot_hit *hits = NULL;
	size_t count = 0;
	char err[256], *many = xstrdup("");

	q.limit = DEPOT_SEARCH_LIMIT_MAX + 1;
	assert_int_equal(depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "limit"));
	q = test_query();
	q.since = TEST_DATE0 + 10;
	q.until = TEST_DATE0;
	assert_int_equal(depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), -1);
	q = test_query();
	for (int i = 0; i <= DEPOT_SEARCH_WORDS_MAX; i++) {
		char *next = xasprintf("%s w%d", many, i);

		free(many);
		many = next;
	}
	q.text = many;
	assert_int_equal(depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many"));
	free(many);
	many = xcalloc(1, DEPOT_SEARCH_TEXT_MAX + 2);
	memset(many, 'a', DEPOT_SEARCH_TEXT_MAX + 1);
	q.text = many;
	assert_int_equal(depot_search(t->depot, &q, "admin", &hits, &count, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));
	free(many);
}

/* The progress handler's budget of SQLite steps left, and whether it ran
 * out: then the statement running is interrupted (SQLITE_INTERRUPT), once,
 * as a timeout or sqlite3_interrupt does. */
static int test_steps_left;
static bool test_interrupted;

static int test_progress(void *unused)
{
	(void)unused;
	if (test_interrupted || --test_steps_left > 0)
		return 0;
	test_interrupted = true;
	return 1;
}

/*
 * Runs QUERY with SQLite interrupted after 1, 2, 3 … of its steps until it
 * completes: every failure (counting a set, stepping the seqs with some
 * hits already in hand, reading a hit's fields, auditing) must be a clean
 * -1 with ERR and nothing to free, never a crash or a leak (the SAN build),
 * and the search afterwards must still find EXPECT.
 */
static void test_interrupted_query(struct test_search *t, const struct depot_query *query,
				   const int *expect)
{
	sqlite3 *db = depot_db(t->depot);
	int failures = 0;

	for (int budget = 1; budget < 1000000; budget += 1 + budget / 64) {
		struct depot_hit *hits = NULL;
		size_t count = 0;
		char err[256] = "";
		int rc;

		test_steps_left = budget;
		test_interrupted = false;
		sqlite3_progress_handler(db, 1, test_progress, NULL);
		rc = depot_search(t->depot, query, "admin", &hits, &count, err, sizeof(err));
		sqlite3_progress_handler(db, 0, NULL, NULL);
		if (rc == 0) {
			depot_hits_free(&hits, count);
			if (!test_interrupted)
				break;
			continue;
		}
		if (!test_interrupted)
			fail_msg("budget %d: %s", budget, err);
		assert_null(hits);
		assert_int_equal(count, 0);
		assert_true(err[0] != '\0');
		failures++;
	}
	assert_true(failures > 10);
	test_expect(t, query, "admin", expect);
}

static void test_interrupted_searches(void **state)
{
	struct test_search *t = *state;
	struct depot_query q = test_query();

	test_interrupted_query(t, &q, (const int[]){11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1});
	q.text = "zebracorn";
	q.restricted = true;
	q.addresses = bob_addresses;
	q.address_count = 1;
	test_interrupted_query(t, &q, (const int[]){11, 9, 7, 5, 3, 1, -1});
	q = test_query();
	q.sender = "sender1@example.org";
	q.recipient = "bob@corp.example";
	q.text = "zebracorn";
	test_interrupted_query(t, &q, (const int[]){7, 1, -1});
}

/* ---- every combination against a brute-force answer ---------------------- */

/* Messages of the spread depot: dates 17 days and an hour apart from
 * 2019-01-01, so ranges cross months and years. */
#define SPREAD_MESSAGES 48
#define SPREAD_DATE0 1546300800LL
#define SPREAD_DATE(i) (SPREAD_DATE0 + (int64_t)(i) * (17 * 86400 + 3600))

/* What spread message I holds: a sender of five, a recipient of four (and
 * r9 on every seventh), an owner address and user of three, "common" in
 * the even ones' bodies, "rarest" in every eleventh's. */
static bool spread_has(size_t i, const char *sender, const char *recipient, const char *owner,
		       const char *const *addresses, size_t address_count, const char *text)
{
	char value[64];
	bool owned = false;

	snprintf(value, sizeof(value), "s%zu@example.org", i % 5);
	if (sender != NULL && strcmp(sender, value) != 0)
		return false;
	snprintf(value, sizeof(value), "r%zu@example.org", i % 4);
	if (recipient != NULL && strcmp(recipient, value) != 0 &&
	    !(i % 7 == 0 && strcmp(recipient, "r9@example.org") == 0))
		return false;
	snprintf(value, sizeof(value), "u%zu", i % 3);
	if (owner != NULL && strcmp(owner, value) != 0)
		return false;
	snprintf(value, sizeof(value), "o%zu@corp.example", i % 3);
	for (size_t a = 0; a < address_count; a++)
		owned = owned || strcasecmp(addresses[a], value) == 0;
	if (addresses != NULL && !owned)
		return false;
	if (text != NULL && strcmp(text, "common") == 0 && i % 2 != 0)
		return false;
	if (text != NULL && strcmp(text, "rarest") == 0 && i % 11 != 0)
		return false;
	return true;
}

static int setup_spread(void **state)
{
	struct test_search *t = xcalloc(1, sizeof(*t));
	glob_t files;
	char err[256], *path;

	assert_int_equal(test_dir_make(t->dir, sizeof(t->dir), "depot_spread"), 0);
	path = xasprintf("%s/depot", t->dir);
	t->depot = depot_open(path, true, err, sizeof(err));
	free(path);
	if (t->depot == NULL)
		fail_msg("depot_open: %s", err);
	assert_int_equal(test_corpus_glob("easy-ham-1", "", &files), 0);
	assert_true(files.gl_pathc >= SPREAD_MESSAGES);
	for (size_t i = 0; i < SPREAD_MESSAGES; i++) {
		struct depot_fields f = {0};
		char address[64], user[16];
		struct depot_owner owner = {.address = address, .user = user};
		char *raw = NULL, *source = xasprintf("spread:%zu", i);
		size_t len = 0;

		snprintf(address, sizeof(address), "o%zu@corp.example", i % 3);
		snprintf(user, sizeof(user), "u%zu", i % 3);
		assert_int_equal(util_read_file(files.gl_pathv[i], &raw, &len), 0);
		f.sender = xasprintf("s%zu@example.org", i % 5);
		f.recipient_count = i % 7 == 0 ? 2 : 1;
		f.recipients = xcalloc(2, sizeof(char *));
		f.recipients[0] = xasprintf("r%zu@example.org", i % 4);
		if (i % 7 == 0)
			f.recipients[1] = xstrdup("r9@example.org");
		f.subject = xasprintf("topic number %zu", i);
		f.date = SPREAD_DATE(i);
		f.body = xasprintf("message %zu%s%s", i, i % 2 == 0 ? " common" : "",
				   i % 11 == 0 ? " rarest" : "");
		struct depot_item item = {.raw = raw,
					  .len = len,
					  .direction = DEPOT_IN,
					  .source = source,
					  .fields = &f,
					  .owners = &owner,
					  .owner_count = 1,
					  .at = 1700000000};
		if (depot_ingest(t->depot, &item, 1, &t->spread[i], err, sizeof(err)) != 0)
			fail_msg("depot_ingest: %s", err);
		depot_fields_free(&f);
		free(source);
		free(raw);
	}
	globfree(&files);
	*state = t;
	return 0;
}

/*
 * Sender, recipient, owner, a user's addresses, Date ranges (none, narrow,
 * months, years, wider than the month tokens serve, open) and words in
 * 400 combinations drawn from all of them: each search finds exactly the
 * messages spread_has says, newest first, whether FTS5's key tokens lead
 * or the messages are walked.
 */
static void test_every_combination(void **state)
{
	static const char *const senders[] = {NULL, "s1@example.org", "S3@Example.org"};
	static const char *const recipients[] = {NULL, "r1@example.org", "r9@example.org"};
	static const char *const owners[] = {NULL, "u1"};
	static const char *const one[] = {"o0@corp.example"};
	static const char *const two[] = {"O1@corp.example", "o2@corp.example"};
	static const char *const *const address_sets[] = {NULL, one, two};
	static const size_t address_counts[] = {0, 1, 2};
	static const char *const texts[] = {NULL, "common", "rarest"};
	/* since, until: none, 10 days, 3 months, 2 years, 4 years (more
	 * months than become tokens), open since. */
	static const int64_t ranges[][2] = {
	    {0, 0},
	    {SPREAD_DATE0 + 200 * 86400, SPREAD_DATE0 + 210 * 86400},
	    {SPREAD_DATE0 + 100 * 86400, SPREAD_DATE0 + 190 * 86400},
	    {SPREAD_DATE0 + 30 * 86400, SPREAD_DATE0 + 760 * 86400},
	    {SPREAD_DATE0 - 100 * 86400, SPREAD_DATE0 + 1400 * 86400},
	    {SPREAD_DATE0 + 400 * 86400, 0},
	};
	struct test_search *t = *state;
	uint32_t draw = 12345;

	for (int n = 0; n < 400; n++) {
		struct depot_query q = test_query();
		int expect[SPREAD_MESSAGES + 1], count = 0;
		size_t pick[7];
		struct depot_hit *hits = NULL;
		size_t found = 0;
		char err[256];

		for (size_t k = 0; k < 7; k++) {
			draw = draw * 1103515245u + 12345u;
			pick[k] = (draw >> 16) % 6;
		}
		q.sender = senders[pick[0] % 3];
		q.recipient = recipients[pick[1] % 3];
		q.owner = owners[pick[2] % 2];
		q.restricted = pick[3] % 3 != 0;
		q.addresses = address_sets[pick[3] % 3];
		q.address_count = address_counts[pick[3] % 3];
		q.since = ranges[pick[4]][0];
		q.until = ranges[pick[4]][1];
		q.text = texts[pick[5] % 3];
		q.limit = DEPOT_SEARCH_LIMIT_MAX;
		for (int i = SPREAD_MESSAGES - 1; i >= 0; i--) {
			char sender[64], recipient[64];
			int64_t date = SPREAD_DATE(i);

			snprintf(sender, sizeof(sender), "%s", q.sender ? q.sender : "");
			snprintf(recipient, sizeof(recipient), "%s",
				 q.recipient ? q.recipient : "");
			for (char *c = sender; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			if (spread_has((size_t)i, q.sender ? sender : NULL,
				       q.recipient ? recipient : NULL, q.owner,
				       q.restricted ? q.addresses : NULL, q.address_count,
				       q.text) &&
			    (q.since == 0 || date >= q.since) && (q.until == 0 || date <= q.until))
				expect[count++] = i;
		}
		if (depot_search(t->depot, &q, "admin", &hits, &found, err, sizeof(err)) != 0)
			fail_msg("query %d: depot_search: %s", n, err);
		if ((int)found != count)
			fail_msg(
			    "query %d (sender %s recipient %s owner %s addresses %zu range %zu "
			    "text %s): expected %d hits, got %zu",
			    n, q.sender ? q.sender : "-", q.recipient ? q.recipient : "-",
			    q.owner ? q.owner : "-", q.address_count, pick[4],
			    q.text ? q.text : "-", count, found);
		for (int i = 0; i < count; i++)
			assert_int_equal(hits[i].seq, t->spread[expect[i]]);
		depot_hits_free(&hits, found);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_each_criterion, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_hit_fields, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restricted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_restricted_big_sets, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audited, setup, teardown),
	    cmocka_unit_test(test_match_text),
	    cmocka_unit_test(test_match_any_text),
	    cmocka_unit_test_setup_teardown(test_injection, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refused_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_interrupted_searches, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_every_combination, setup_spread, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
