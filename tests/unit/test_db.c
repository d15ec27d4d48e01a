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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
