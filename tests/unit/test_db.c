/*
 * test_db.c — the store's database: opening, migrations, transactions and
 * the statement cache, each test in its own temp data folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/db.h"

#include "test_support.h"

static int setup(void **state)
{
	return test_store_setup(state, "db");
}

static void test_open_applies_migrations(void **state)
{
	struct test_store *f = *state;
	char text[64];
	char *path = xasprintf("%s/popgate.db", f->dir);
	struct stat st;

	assert_true(store_schema_version(f->store) >= 1);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM sqlite_master WHERE type = "
					"'table' AND name IN ('user', 'address', 'account', "
					"'message', 'provider_uidl')"),
			 5);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM sqlite_master WHERE type = "
					"'index' AND name IN ('message_account_state_seq', "
					"'message_state_seq')"),
			 2);
	assert_string_equal(test_query_text(f->store, "PRAGMA journal_mode", text, sizeof(text)),
			    "wal");
	assert_int_equal(test_query_int(f->store, "PRAGMA synchronous"), 2); /* FULL */
	assert_int_equal(test_query_int(f->store, "PRAGMA foreign_keys"), 1);
	/* The database holds password hashes: nobody else may read it. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
}

static void test_reopen_is_noop(void **state)
{
	struct test_store *f = *state;
	char err[256] = "";
	int version = store_schema_version(f->store);

	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('kept', 'local', 1)");
	store_close(&f->store);
	assert_null(f->store);
	f->store = store_open(f->dir, err, sizeof(err));
	assert_non_null(f->store);
	assert_int_equal(store_schema_version(f->store), version);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user WHERE name = 'kept'"),
			 1);
}

static void test_newer_schema_refused(void **state)
{
	struct test_store *f = *state;
	char err[256] = "";

	test_exec_sql(f->store, "PRAGMA user_version = 9999");
	store_close(&f->store);
	f->store = store_open(f->dir, err, sizeof(err));
	assert_null(f->store);
	assert_non_null(strstr(err, "newer"));
}

static void test_open_missing_folder_fails(void **state)
{
	struct test_store *f = *state;
	char err[256] = "";
	char *missing = xasprintf("%s/no/such/folder", f->dir);
	struct store *store = store_open(missing, err, sizeof(err));

	assert_null(store);
	assert_true(strlen(err) > 0);
	free(missing);
	store_close(&store); /* NULL is fine */
}

static void test_check_constraints(void **state)
{
	struct test_store *f = *state;

	/* foreign_keys is on: an address of a user that does not exist is refused. */
	assert_int_not_equal(
	    sqlite3_exec(f->store->db, "INSERT INTO address (address, user_id) VALUES ('a@b', 42)",
			 NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_not_equal(
	    sqlite3_exec(f->store->db,
			 "INSERT INTO user (name, origin, created_at) VALUES ('x', 'alien', 1)",
			 NULL, NULL, NULL),
	    SQLITE_OK);
}

static void test_begin_commit_rollback(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_begin(f->store), 0);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('a', 'local', 1)");
	store_rollback(f->store);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 0);

	assert_int_equal(store_begin(f->store), 0);
	/* A transaction is not nested by a second BEGIN. */
	assert_int_equal(store_begin(f->store), -1);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('b', 'local', 1)");
	assert_int_equal(store_commit(f->store), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user WHERE name = 'b'"), 1);

	/* Outside a transaction these fail or do nothing, without harm. */
	store_rollback(f->store);
	assert_int_equal(store_commit(f->store), -1);
	assert_non_null(store_errmsg(f->store));
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 1);
}

static void test_tx_nested(void **state)
{
	struct test_store *f = *state;
	bool outer = false;

	/* Standalone, a unit is a transaction of its own. */
	assert_int_equal(store_tx_begin(f->store, &outer), 0);
	assert_true(outer);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('s', 'local', 1)");
	store_tx_rollback(f->store, outer);
	assert_true(sqlite3_get_autocommit(f->store->db));
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 0);

	/* Inside a caller's transaction, a failed unit undoes only its writes. */
	assert_int_equal(store_begin(f->store), 0);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('a', 'local', 1)");
	assert_int_equal(store_tx_begin(f->store, &outer), 0);
	assert_false(outer);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('b', 'local', 1)");
	store_tx_rollback(f->store, outer);
	assert_false(sqlite3_get_autocommit(f->store->db));
	assert_int_equal(store_tx_begin(f->store, &outer), 0);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('c', 'local', 1)");
	assert_int_equal(store_tx_commit(f->store, outer), 0);
	/* A released unit still belongs to the caller's transaction. */
	assert_false(sqlite3_get_autocommit(f->store->db));
	assert_int_equal(store_commit(f->store), 0);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM user WHERE name IN ('a', 'c')"), 2);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 2);
}

static void test_stmt_cache(void **state)
{
	struct test_store *f = *state;
	static const char sql[] = "SELECT ?";
	char buffer[64];
	sqlite3_stmt *first;
	sqlite3_stmt *second;

	first = store_stmt_prepare(f->store, sql);
	assert_non_null(first);
	sqlite3_bind_int(first, 1, 7);
	assert_int_equal(sqlite3_step(first), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(first, 0), 7);
	store_stmt_release(first);
	/* The same SQL gives the same compiled statement, reset and unbound. */
	second = store_stmt_prepare(f->store, sql);
	assert_ptr_equal(first, second);
	assert_int_equal(sqlite3_step(second), SQLITE_ROW);
	assert_int_equal(sqlite3_column_type(second, 0), SQLITE_NULL);
	store_stmt_release(second);

	/* A buffer reused for other SQL is not mistaken for the old statement. */
	strcpy(buffer, "SELECT 1");
	first = store_stmt_prepare(f->store, buffer);
	assert_non_null(first);
	store_stmt_release(first);
	strcpy(buffer, "SELECT 2");
	second = store_stmt_prepare(f->store, buffer);
	assert_non_null(second);
	assert_int_equal(sqlite3_step(second), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(second, 0), 2);
	store_stmt_release(second);

	assert_null(store_stmt_prepare(f->store, "SELECT FROM nothing"));
	store_stmt_release(NULL);
}

/*
 * Takes the store back to schema version 7, as a popgate of an older release
 * left it: the message table without the CHECK and the columns of migration
 * 8, no envelope tables, none of migration 9. Foreign keys go off for it, as in store_migrate:
 * with them on, dropping the table would delete what refers to it.
 */
static void make_v7(struct test_store *f)
{
	test_exec_sql(f->store,
		      "PRAGMA foreign_keys = OFF;"
		      "BEGIN;"
		      "DROP TABLE ciss_held; DROP TABLE ciss_challenge;"
		      "DROP TABLE ciss_trusted; DROP TABLE local_domain;"
		      "DROP TABLE envelope_recipient; DROP TABLE envelope;"
		      "DROP TABLE message;"
		      "DROP TABLE local_network; DROP TABLE transport_rule;"
		      "DROP TABLE correspondent; DROP TABLE dkim_key;"
		      "DROP TABLE mta_sts_policy;"
		      "DROP TABLE filter_profile_filter; DROP TABLE filter_profile;"
		      "DROP TABLE sender_list; DROP TABLE spam_report;"
		      "DROP TABLE fuzzy_sighting; DROP TABLE fuzzy_band; DROP TABLE fuzzy_fingerprint;"
		      "ALTER TABLE user DROP COLUMN profile;"
		      "CREATE TABLE message ("
		      "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
		      "  id TEXT UNIQUE NOT NULL,"
		      "  account_id INTEGER NOT NULL REFERENCES account(id),"
		      "  state TEXT NOT NULL,"
		      "  uidl TEXT,"
		      "  body_size INTEGER NOT NULL,"
		      "  sha256 TEXT,"
		      "  prepend TEXT NOT NULL DEFAULT '',"
		      "  attempts INTEGER NOT NULL DEFAULT 0,"
		      "  received_at INTEGER NOT NULL,"
		      "  state_changed_at INTEGER NOT NULL,"
		      "  owner_user_id INTEGER REFERENCES user(id)"
		      ");"
		      "CREATE INDEX message_account_state_seq ON message(account_id, state, seq);"
		      "CREATE INDEX message_state_seq ON message(state, seq);"
		      "CREATE INDEX message_owner ON message(owner_user_id);"
		      "PRAGMA user_version = 7;"
		      "COMMIT;"
		      "PRAGMA foreign_keys = ON;");
}

/* A v7 database with a message in each of its states, a recipient row for
 * each, and an AUTOINCREMENT counter past the last row. */
static void fill_v7(struct test_store *f)
{
	test_exec_sql(
	    f->store,
	    "INSERT INTO user (id, name, origin, created_at) VALUES (1, 'u', 'provider', 1);"
	    "INSERT INTO account (id, name, login, host, user_id, password_hash,"
	    " password_secret, created_at) VALUES (10, 'a@h', 'a', 'h', 1, 'x', x'00', 1);"
	    "INSERT INTO message (seq, id, account_id, state, uidl, body_size, sha256, prepend,"
	    " attempts, received_at, state_changed_at, owner_user_id) VALUES"
	    " (3, 'aaaaaaaaaaaaaaaaaaaaaaaa', 10, 'processing', 'u1', 11, 'ff', '', 0, 5, 6, NULL),"
	    " (4, 'bbbbbbbbbbbbbbbbbbbbbbbb', 10, 'delivery', 'u2', 22, NULL, 'X-A: 1\r\n', 0,"
	    "  7, 8, 1),"
	    " (5, 'cccccccccccccccccccccccc', 10, 'delivered', NULL, 33, NULL, '', 0, 9, 10, NULL),"
	    " (9, 'dddddddddddddddddddddddd', 10, 'suspect', 'u4', 44, NULL, '', 2, 11, 12, NULL);"
	    "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'message';"
	    "INSERT INTO message_recipient (message_id, user_id, address)"
	    " SELECT id, 1, 'u@example.net' FROM message;");
}

static void test_migration_8_keeps_every_row(void **state)
{
	struct test_store *f = *state;
	char text[128];

	make_v7(f);
	fill_v7(f);
	store_close(&f->store);
	f->store = test_store_open(f->dir);
	assert_int_equal(store_schema_version(f->store), 14);
	/* Every row, with every column it had, and where it came from. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 4);
	assert_string_equal(
	    test_query_text(
		f->store,
		"SELECT group_concat(seq || ':' || state || ':' || body_size || ':'"
		" || attempts || ':' || source || ':' || ifnull(owner_user_id, '-'), ' ')"
		" FROM (SELECT * FROM message ORDER BY seq)",
		text, sizeof(text)),
	    "3:processing:11:0:fetched:- 4:delivery:22:0:fetched:1 5:delivered:33:0:fetched:- "
	    "9:suspect:44:2:fetched:-");
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM message WHERE id ="
					" 'bbbbbbbbbbbbbbbbbbbbbbbb' AND uidl = 'u2'"
					" AND prepend = 'X-A: 1\r\n' AND received_at = 7"
					" AND state_changed_at = 8 AND verdict_score IS NULL"),
			 1);
	/* The rows referring to the messages were not taken with the old table. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"), 4);
	/* A deleted row's seq is never given again. */
	assert_int_equal(
	    test_query_int(f->store, "SELECT seq FROM sqlite_sequence WHERE name = 'message'"), 20);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM sqlite_master WHERE"
						  " name IN ('message_account_state_seq',"
						  " 'message_state_seq', 'message_owner',"
						  " 'envelope', 'envelope_recipient')"),
			 5);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM sqlite_master"
						  " WHERE name = 'message_v8'"),
			 0);
	/* Foreign keys are on again, and still hold for the new table. */
	assert_int_equal(test_query_int(f->store, "PRAGMA foreign_keys"), 1);
	assert_int_not_equal(sqlite3_exec(f->store->db,
					  "INSERT INTO message_recipient (message_id, user_id,"
					  " address) VALUES ('eeeeeeeeeeeeeeeeeeeeeeee', 1, 'x')",
					  NULL, NULL, NULL),
			     SQLITE_OK);
	test_exec_sql(f->store, "DELETE FROM message WHERE seq = 3");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"), 3);
}

static void test_state_check(void **state)
{
	struct test_store *f = *state;
	static const char insert[] =
	    "INSERT INTO message (id, account_id, state, source, body_size, received_at,"
	    " state_changed_at) VALUES ('%s', %s, '%s', '%s', 1, 1, 1)";
	static const char *const states[] = {"processing", "delivery",	 "delivered",
					     "suspect",	   "quarantine", "challenged",
					     "outbound",   "sent",	 "bounced"};
	char sql[512], id[32];

	test_exec_sql(
	    f->store,
	    "INSERT INTO user (id, name, origin, created_at) VALUES (1, 'u', 'local', 1);"
	    "INSERT INTO account (id, name, login, host, user_id, password_hash,"
	    " password_secret, created_at) VALUES (10, 'a@h', 'a', 'h', 1, 'x', x'00', 1)");
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		snprintf(id, sizeof(id), "%024zu", i);
		snprintf(sql, sizeof(sql), insert, id, "10", states[i], "fetched");
		test_exec_sql(f->store, sql);
	}
	/* An unknown state or source is refused by the database itself. */
	snprintf(sql, sizeof(sql), insert, "a00000000000000000000000", "10", "archived", "fetched");
	assert_int_not_equal(sqlite3_exec(f->store->db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_non_null(strstr(sqlite3_errmsg(f->store->db), "CHECK"));
	snprintf(sql, sizeof(sql), insert, "a00000000000000000000000", "10", "Delivery", "fetched");
	assert_int_not_equal(sqlite3_exec(f->store->db, sql, NULL, NULL, NULL), SQLITE_OK);
	snprintf(sql, sizeof(sql), insert, "a00000000000000000000000", "10", "delivery", "stolen");
	assert_int_not_equal(sqlite3_exec(f->store->db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_not_equal(sqlite3_exec(f->store->db,
					  "UPDATE message SET state = 'gone' WHERE seq = 1", NULL,
					  NULL, NULL),
			     SQLITE_OK);
	/* Mail submitted over SMTP has no account. */
	snprintf(sql, sizeof(sql), insert, "a00000000000000000000000", "NULL", "processing",
		 "submitted");
	test_exec_sql(f->store, sql);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 10);
}

/* A v7 database holding a state no build ever wrote cannot take the CHECK:
 * the migration fails whole and leaves the database as it was. */
static void test_migration_8_refuses_unknown_state(void **state)
{
	struct test_store *f = *state;
	char err[256] = "";

	make_v7(f);
	fill_v7(f);
	test_exec_sql(f->store, "UPDATE message SET state = 'bogus' WHERE seq = 9");
	store_close(&f->store);
	f->store = store_open(f->dir, err, sizeof(err));
	assert_null(f->store);
	assert_non_null(strstr(err, "migration 8"));
	assert_non_null(strstr(err, "CHECK"));
	/* Repaired by hand, it migrates. */
	{
		sqlite3 *db = NULL;
		char *path = xasprintf("%s/popgate.db", f->dir);

		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
					      "UPDATE message SET state = 'suspect' WHERE seq = 9;"
					      "PRAGMA user_version;",
					      NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
		free(path);
	}
	f->store = test_store_open(f->dir);
	assert_int_equal(store_schema_version(f->store), 14);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 4);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"), 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_applies_migrations, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_reopen_is_noop, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_open_missing_folder_fails, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_check_constraints, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_begin_commit_rollback, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_tx_nested, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_stmt_cache, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_migration_8_keeps_every_row, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_state_check, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_migration_8_refuses_unknown_state, setup,
					    test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
