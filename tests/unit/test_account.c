/*
 * test_account.c — accounts, their users and addresses, credentials, fetch
 * records and provider UIDLs, each test in its own temp data folder.
 */
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

#include "core/util.h"
#include "store/account.h"
#include "store/message.h"
#include "store/user.h"
#include "store/db.h"

#include "test_support.h"

/* A sealed secret is bytes: a NUL inside must survive. */
static const unsigned char secret_bytes[] = {0x01, 0x00, 0xff, 0x7f, 0x00, 0x42};

static int setup(void **state)
{
	return test_store_setup(state, "account");
}

/* Creates LOGIN@HOST for USER_NAME (primary address USER_NAME@pop3proxy.test). */
static int create_account(struct test_store *f, const char *login, const char *host,
			  const char *user_name, struct store_account *account)
{
	char *address = xasprintf("%s@pop3proxy.test", user_name);
	int rc;

	memset(account, 0, sizeof(*account));
	account->name = xasprintf("%s@%s", login, host);
	account->login = xstrdup(login);
	account->host = xstrdup(host);
	account->password_hash = xstrdup("$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA");
	account->secret = xmalloc(sizeof(secret_bytes));
	memcpy(account->secret, secret_bytes, sizeof(secret_bytes));
	account->secret_len = sizeof(secret_bytes);
	rc = store_account_create(f->store, account, user_name, address);
	free(address);
	return rc;
}

static void test_create_and_get(void **state)
{
	struct test_store *f = *state;
	struct store_account created;
	struct store_account loaded;

	assert_int_equal(create_account(f, "me@gmx.de", "pop3.gmx.de", "me+gmx.de", &created), 0);
	assert_true(created.id > 0);
	assert_true(created.user_id > 0);
	assert_string_equal(created.user_name, "me+gmx.de");

	/* The name is found whatever its case. */
	assert_int_equal(store_account_get(f->store, "ME@GMX.DE@pop3.gmx.de", &loaded), 1);
	assert_int_equal(loaded.id, created.id);
	assert_string_equal(loaded.name, "me@gmx.de@pop3.gmx.de");
	assert_string_equal(loaded.login, "me@gmx.de");
	assert_string_equal(loaded.host, "pop3.gmx.de");
	assert_int_equal(loaded.user_id, created.user_id);
	assert_string_equal(loaded.user_name, "me+gmx.de");
	assert_string_equal(loaded.password_hash, created.password_hash);
	assert_int_equal(loaded.secret_len, sizeof(secret_bytes));
	assert_memory_equal(loaded.secret, secret_bytes, sizeof(secret_bytes));
	assert_int_equal(loaded.last_fetch_at, 0);
	assert_null(loaded.last_error);
	assert_int_equal(loaded.fetch_failures, 0);
	assert_int_equal(loaded.next_fetch_at, 0);
	store_account_clear(&loaded);
	assert_null(loaded.name);

	assert_int_equal(store_account_get_by_id(f->store, created.id, &loaded), 1);
	assert_string_equal(loaded.name, "me@gmx.de@pop3.gmx.de");
	store_account_clear(&loaded);
	assert_int_equal(store_account_get_by_id(f->store, created.id + 100, &loaded), 0);
	assert_int_equal(store_account_get(f->store, "other@pop3.gmx.de", &loaded), 0);

	/* The user and its primary address were made with it. */
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM user WHERE name = 'me+gmx.de'"
					" AND origin = 'provider'"),
			 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM address WHERE address ="
						  " 'ME+GMX.DE@pop3proxy.test' AND is_primary = 1"),
			 1);
	store_account_clear(&created);
}

static void test_new_users_take_seats_while_free(void **state)
{
	struct test_store *f = *state;
	struct store_account a, b;
	char err[128] = "";

	/* U3: with a limit of one seat, the first new user gets it, the next waits. */
	assert_int_equal(store_seat_set_limit(f->store, 1, err, sizeof(err)), 0);
	assert_int_equal(create_account(f, "one", "pop.example.net", "one+pop.example.net", &a), 0);
	assert_int_equal(create_account(f, "two", "pop.example.net", "two+pop.example.net", &b), 0);
	assert_int_equal(test_query_int(f->store, "SELECT has_seat FROM user WHERE name = "
						  "'one+pop.example.net'"),
			 1);
	assert_int_equal(test_query_int(f->store, "SELECT has_seat FROM user WHERE name = "
						  "'two+pop.example.net'"),
			 0);
	store_account_clear(&a);
	store_account_clear(&b);
}

static void test_second_account_reuses_user(void **state)
{
	struct test_store *f = *state;
	struct store_account first;
	struct store_account second;
	int64_t *ids = NULL;
	size_t count = 0;

	assert_int_equal(create_account(f, "me", "pop.a.example", "shared", &first), 0);
	assert_int_equal(create_account(f, "me", "pop.b.example", "shared", &second), 0);
	assert_int_not_equal(first.id, second.id);
	assert_int_equal(first.user_id, second.user_id);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM address"), 1);

	assert_int_equal(store_account_list_ids(f->store, &ids, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(ids[0], first.id);
	assert_int_equal(ids[1], second.id);
	free(ids);
	store_account_clear(&first);
	store_account_clear(&second);
}

static void test_create_failure_writes_nothing(void **state)
{
	struct test_store *f = *state;
	struct store_account first;
	struct store_account again;

	assert_int_equal(create_account(f, "me", "pop.example", "one", &first), 0);
	/* The account name exists (in another case): the new user must not stay. */
	assert_int_equal(create_account(f, "ME", "POP.example", "two", &again), -1);
	assert_int_equal(again.id, 0);
	assert_int_equal(store_user_exists(f->store, "two", NULL), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM address"), 1);
	assert_true(sqlite3_get_autocommit(f->store->db));
	store_account_clear(&again);

	/* Inside a caller's transaction, only this call's writes are undone. */
	assert_int_equal(store_begin(f->store), 0);
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('mine', 'local', 1)");
	assert_int_equal(create_account(f, "me", "pop.example", "three", &again), -1);
	assert_false(sqlite3_get_autocommit(f->store->db));
	assert_int_equal(store_commit(f->store), 0);
	assert_int_equal(store_user_exists(f->store, "mine", NULL), 1);
	assert_int_equal(store_user_exists(f->store, "three", NULL), 0);
	store_account_clear(&again);
	store_account_clear(&first);
}

static void test_update_credentials(void **state)
{
	struct test_store *f = *state;
	static const unsigned char new_secret[] = {9, 8, 7, 0, 6, 5, 4, 3, 2, 1};
	struct store_account account;
	struct store_account loaded;

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	assert_int_equal(store_account_update_credentials(f->store, account.id, "$argon2id$new",
							  new_secret, sizeof(new_secret)),
			 0);
	assert_int_equal(store_account_get(f->store, "me@pop.example", &loaded), 1);
	assert_string_equal(loaded.password_hash, "$argon2id$new");
	assert_int_equal(loaded.secret_len, sizeof(new_secret));
	assert_memory_equal(loaded.secret, new_secret, sizeof(new_secret));
	store_account_clear(&loaded);
	assert_int_equal(store_account_update_credentials(f->store, account.id + 1, "$argon2id$x",
							  new_secret, sizeof(new_secret)),
			 -1);
	store_account_clear(&account);
}

static void test_record_fetch(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	struct store_account loaded;
	int64_t before = util_now();

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	assert_int_equal(
	    store_account_record_fetch(f->store, account.id, "connection refused", 3, before + 600),
	    0);
	assert_int_equal(store_account_get_by_id(f->store, account.id, &loaded), 1);
	assert_string_equal(loaded.last_error, "connection refused");
	assert_int_equal(loaded.fetch_failures, 3);
	assert_int_equal(loaded.next_fetch_at, before + 600);
	assert_true(loaded.last_fetch_at >= before);
	store_account_clear(&loaded);

	/* Success clears the error and the failure count. */
	assert_int_equal(store_account_record_fetch(f->store, account.id, NULL, 3, 0), 0);
	assert_int_equal(store_account_get_by_id(f->store, account.id, &loaded), 1);
	assert_null(loaded.last_error);
	assert_int_equal(loaded.fetch_failures, 0);
	assert_int_equal(loaded.next_fetch_at, 0);
	store_account_clear(&loaded);

	assert_int_equal(store_account_record_fetch(f->store, account.id + 5, NULL, 0, 0), -1);
	store_account_clear(&account);
}

static void test_user_exists(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	char sentinel[] = "stale";
	char *owner = sentinel;

	/* Not found: the out-parameter is cleared, not left as it was. */
	assert_int_equal(store_user_exists(f->store, "me+pop", &owner), 0);
	assert_null(owner);
	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	assert_int_equal(store_user_exists(f->store, "me+pop", &owner), 1);
	assert_string_equal(owner, "me@pop.example");
	free(owner);
	/* A user made locally has no account. */
	test_exec_sql(f->store,
		      "INSERT INTO user (name, origin, created_at) VALUES ('local', 'local', 1)");
	assert_int_equal(store_user_exists(f->store, "local", &owner), 1);
	assert_null(owner);
	assert_int_equal(store_user_exists(f->store, "local", NULL), 1);
	store_account_clear(&account);
}

static void test_uidl_known_and_forget(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	char *sql;

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	sql = xasprintf("INSERT INTO provider_uidl (account_id, uidl, stored_at) VALUES"
			" (%lld, 'Abc', 1)",
			(long long)account.id);
	test_exec_sql(f->store, sql);
	free(sql);
	assert_int_equal(store_uidl_known(f->store, account.id, "Abc"), 1);
	/* UIDLs are case-sensitive (RFC 1939). */
	assert_int_equal(store_uidl_known(f->store, account.id, "abc"), 0);
	assert_int_equal(store_uidl_forget(f->store, account.id, "abc"), 0);
	assert_int_equal(store_uidl_known(f->store, account.id, "Abc"), 1);
	assert_int_equal(store_uidl_forget(f->store, account.id, "Abc"), 0);
	assert_int_equal(store_uidl_known(f->store, account.id, "Abc"), 0);
	store_account_clear(&account);
}

/* A stored UIDL carries the provider's LIST size, which proves the message
 * the same only when it matches (0 = not known). */
static void test_uidl_lookup_size(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	int64_t size = -1;
	char *sql;

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	assert_int_equal(store_uidl_lookup(f->store, account.id, "u1", &size), 0);
	assert_int_equal(size, 0);
	sql = xasprintf("INSERT INTO provider_uidl (account_id, uidl, stored_at) VALUES"
			" (%lld, 'u1', 1)",
			(long long)account.id);
	test_exec_sql(f->store, sql);
	free(sql);
	assert_int_equal(store_uidl_lookup(f->store, account.id, "u1", &size), 1);
	assert_int_equal(size, 0);
	assert_int_equal(store_uidl_set_size(f->store, account.id, "u1", 4321), 0);
	assert_int_equal(store_uidl_lookup(f->store, account.id, "u1", &size), 1);
	assert_int_equal(size, 4321);
	/* Setting the size of an unknown UIDL records nothing. */
	assert_int_equal(store_uidl_set_size(f->store, account.id, "u2", 9), 0);
	assert_int_equal(store_uidl_lookup(f->store, account.id, "u2", &size), 0);
	store_account_clear(&account);
}

/* A fetch marks its account until it ends without failing; a restart
 * fetches the marked ones at once (popgate.c, recover). */
static void test_fetch_unfinished(void **state)
{
	struct test_store *f = *state;
	struct store_account a, b;
	int64_t *ids = NULL;
	size_t count = 0;

	assert_int_equal(create_account(f, "a", "pop.example", "a+pop", &a), 0);
	assert_int_equal(create_account(f, "b", "pop.example", "b+pop", &b), 0);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, true, &ids, &count), 0);
	assert_int_equal(count, 0);
	free(ids);

	assert_int_equal(store_account_fetch_begin(f->store, a.id), 0);
	assert_int_equal(store_account_fetch_begin(f->store, a.id), 0);
	assert_int_equal(store_account_fetch_begin(f->store, b.id), 0);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, true, &ids, &count), 0);
	assert_int_equal(count, 2);
	free(ids);

	/* A failed fetch keeps the mark, a clean one (anomaly or not) clears it. */
	assert_int_equal(store_account_record_fetch(f->store, a.id, "timeout", 1, 99), 0);
	assert_int_equal(store_account_record_fetch(f->store, b.id, "odd provider", 0, 0), 0);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, true, &ids, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(ids[0], a.id);
	free(ids);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, false, &ids, &count), 0);
	assert_int_equal(count, 1);
	assert_int_equal(ids[0], b.id);
	free(ids);
	assert_int_equal(store_account_record_fetch(f->store, a.id, NULL, 0, 0), 0);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, true, &ids, &count), 0);
	assert_int_equal(count, 0);
	free(ids);
	store_account_clear(&a);
	store_account_clear(&b);
}

/* Migration 7 marks the accounts that may hold messages stored but not yet
 * deleted at the provider: those with recorded UIDLs or failed fetches. */
static void test_migration_marks_unfinished(void **state)
{
	struct test_store *f = *state;
	struct store_account with_uidl, failed, clean;
	int64_t *ids = NULL;
	size_t count = 0;
	char *sql;

	assert_int_equal(create_account(f, "a", "pop.example", "a+pop", &with_uidl), 0);
	assert_int_equal(create_account(f, "b", "pop.example", "b+pop", &failed), 0);
	assert_int_equal(create_account(f, "c", "pop.example", "c+pop", &clean), 0);
	sql = xasprintf("INSERT INTO provider_uidl (account_id, uidl, stored_at) VALUES"
			" (%lld, 'u1', 1)",
			(long long)with_uidl.id);
	test_exec_sql(f->store, sql);
	free(sql);
	assert_int_equal(store_account_record_fetch(f->store, failed.id, "timeout", 2, 9), 0);
	test_exec_sql(f->store, "DROP TABLE ciss_held; DROP TABLE ciss_challenge;"
				"DROP TABLE ciss_trusted; DROP TABLE local_domain;"
				"DROP TABLE envelope_recipient; DROP TABLE envelope;"
				"DROP TABLE local_network; DROP TABLE transport_rule;"
				"DROP TABLE correspondent; DROP TABLE dkim_key;"
				"DROP TABLE mta_sts_policy;"
				"DROP TABLE filter_profile_filter; DROP TABLE filter_profile;"
				"DROP TABLE sender_list; DROP TABLE spam_report;"
				"DROP TABLE fuzzy_sighting; DROP TABLE fuzzy_band;"
				"DROP TABLE fuzzy_fingerprint;"
				"ALTER TABLE user DROP COLUMN profile;"
				"ALTER TABLE account DROP COLUMN fetch_unfinished;"
				"PRAGMA user_version = 6;");
	store_close(&f->store);
	f->store = test_store_open(f->dir);
	assert_int_equal(store_account_list_ids_by_fetch(f->store, true, &ids, &count), 0);
	assert_int_equal(count, 2);
	assert_int_equal(ids[0], with_uidl.id);
	assert_int_equal(ids[1], failed.id);
	free(ids);
	store_account_clear(&with_uidl);
	store_account_clear(&failed);
	store_account_clear(&clean);
}

static int64_t count_rows(struct test_store *f, const char *table, const char *where)
{
	char *sql = xasprintf("SELECT count(*) FROM %s WHERE %s", table, where);
	int64_t count = test_query_int(f->store, sql);

	free(sql);
	return count;
}

/* Inserts message ID of ACCOUNT_ID under UIDL, moved to state TO. */
static void add_message(struct test_store *f, int64_t account_id, const char *id,
			const char *uidl, enum message_state to)
{
	enum message_state from = MESSAGE_PROCESSING;

	assert_int_equal(store_message_insert(f->store, id, account_id, uidl, 10, "00"), 0);
	/* Through the moves the life cycle allows (store/lifecycle.c). */
	if (to == MESSAGE_DELIVERED) {
		assert_int_equal(store_message_move(f->store, id, from, MESSAGE_DELIVERY, NULL), 1);
		from = MESSAGE_DELIVERY;
	}
	if (to != from)
		assert_int_equal(store_message_move(f->store, id, from, to, NULL), 1);
}

#define MESSAGE_ID_1 "0123456789abcdef01234567"
#define MESSAGE_ID_2 "1123456789abcdef01234567"
#define MESSAGE_ID_3 "2123456789abcdef01234567"

/* account del: rows, UIDLs, the provider-made user with its addresses, all
 * in one go; mail not yet picked up needs FORCE. */
static void test_delete_account(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	struct store_account_deletion deletion;
	char *where;

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	add_message(f, account.id, MESSAGE_ID_1, "u1", MESSAGE_DELIVERED);
	add_message(f, account.id, MESSAGE_ID_2, "u2", MESSAGE_DELIVERY);

	assert_int_equal(store_account_delete(f->store, "nobody@pop.example", false, &deletion), 0);
	store_account_deletion_clear(&deletion);

	/* One message waits for its pickup: refused, nothing written. */
	assert_int_equal(store_account_delete(f->store, "ME@pop.example", false, &deletion), -2);
	assert_int_equal(deletion.pending, 1);
	store_account_deletion_clear(&deletion);
	assert_int_equal(count_rows(f, "message", "1"), 2);
	assert_int_equal(count_rows(f, "account", "1"), 1);

	assert_int_equal(store_account_delete(f->store, "ME@pop.example", true, &deletion), 1);
	assert_int_equal(deletion.message_count, 2);
	assert_string_equal(deletion.message_ids[0], MESSAGE_ID_1);
	assert_string_equal(deletion.message_ids[1], MESSAGE_ID_2);
	assert_int_equal(deletion.uidl_count, 2);
	assert_string_equal(deletion.user_name, "me+pop");
	assert_true(deletion.user_deleted);
	store_account_deletion_clear(&deletion);
	where = xasprintf("account_id = %lld", (long long)account.id);
	assert_int_equal(count_rows(f, "message", "1"), 0);
	assert_int_equal(count_rows(f, "provider_uidl", where), 0);
	assert_int_equal(count_rows(f, "account", "1"), 0);
	assert_int_equal(count_rows(f, "user", "1"), 0);
	assert_int_equal(count_rows(f, "address", "1"), 0);
	free(where);
	store_account_clear(&account);
}

/* The user stays when another account, a local origin, or other mail
 * attributed to it keeps it. */
static void test_delete_account_keeps_user(void **state)
{
	struct test_store *f = *state;
	struct store_account first, second, other;
	struct store_account_deletion deletion;
	char err[256];

	assert_int_equal(create_account(f, "one", "pop.example", "me+pop", &first), 0);
	assert_int_equal(create_account(f, "two", "pop.example", "me+pop", &second), 0);
	assert_int_equal(store_account_delete(f->store, "one@pop.example", false, &deletion), 1);
	assert_false(deletion.user_deleted);
	store_account_deletion_clear(&deletion);
	assert_int_equal(count_rows(f, "user", "name = 'me+pop'"), 1);

	/* Mail of another account attributed to the user keeps it (U4, U5). */
	assert_int_equal(create_account(f, "x", "pop.example", "x+pop", &other), 0);
	add_message(f, other.id, MESSAGE_ID_3, "u1", MESSAGE_DELIVERED);
	int64_t users[] = {second.user_id};
	char *addresses[] = {"me+pop@pop3proxy.test"};
	assert_int_equal(store_message_attribute(f->store, MESSAGE_ID_3, 0, users, addresses, 1),
			 1);
	assert_int_equal(store_account_delete(f->store, "two@pop.example", false, &deletion), 1);
	assert_false(deletion.user_deleted);
	store_account_deletion_clear(&deletion);
	assert_int_equal(count_rows(f, "user", "name = 'me+pop'"), 1);
	assert_int_equal(count_rows(f, "address", "address = 'me+pop@pop3proxy.test'"), 1);

	/* A local user is the administrator's, never removed with an account. */
	int64_t local_id = 0;
	assert_int_equal(store_user_add_local(f->store, "local", "local@pop3proxy.test", &local_id,
					      err, sizeof(err)),
			 0);
	test_exec_sql(f->store, "UPDATE account SET user_id = (SELECT id FROM user WHERE name ="
				" 'local') WHERE name = 'x@pop.example'");
	assert_int_equal(store_account_delete(f->store, "x@pop.example", false, &deletion), 1);
	assert_false(deletion.user_deleted);
	assert_int_equal(deletion.message_count, 1);
	store_account_deletion_clear(&deletion);
	assert_int_equal(count_rows(f, "user", "name = 'local'"), 1);
	assert_int_equal(count_rows(f, "message_recipient", "1"), 0);
	store_account_clear(&first);
	store_account_clear(&second);
	store_account_clear(&other);
}

static void insert_uidls(struct test_store *f, int64_t account_id, int count)
{
	sqlite3_stmt *stmt = NULL;

	test_exec_sql(f->store, "BEGIN");
	assert_int_equal(
	    sqlite3_prepare_v2(f->store->db,
			       "INSERT INTO provider_uidl (account_id, uidl, stored_at)"
			       " VALUES (?, printf('u%d', ?), 1)",
			       -1, &stmt, NULL),
	    SQLITE_OK);
	for (int i = 0; i < count; i++) {
		sqlite3_bind_int64(stmt, 1, account_id);
		sqlite3_bind_int(stmt, 2, i);
		assert_int_equal(sqlite3_step(stmt), SQLITE_DONE);
		sqlite3_reset(stmt);
	}
	sqlite3_finalize(stmt);
	test_exec_sql(f->store, "COMMIT");
}

static int64_t count_uidls(struct test_store *f, int64_t account_id)
{
	char *sql = xasprintf("SELECT count(*) FROM provider_uidl WHERE account_id = %lld",
			      (long long)account_id);
	int64_t count = test_query_int(f->store, sql);

	free(sql);
	return count;
}

static void test_uidl_prune(void **state)
{
	struct test_store *f = *state;
	struct store_account mine;
	struct store_account other;
	char *present[] = {"u1", "u3", "u3", "not-stored"};

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &mine), 0);
	assert_int_equal(create_account(f, "you", "pop.example", "you+pop", &other), 0);
	insert_uidls(f, mine.id, 5);
	insert_uidls(f, other.id, 5);

	assert_int_equal(store_uidl_prune(f->store, mine.id, present, 4), 0);
	assert_int_equal(count_uidls(f, mine.id), 2);
	assert_int_equal(store_uidl_known(f->store, mine.id, "u1"), 1);
	assert_int_equal(store_uidl_known(f->store, mine.id, "u3"), 1);
	assert_int_equal(store_uidl_known(f->store, mine.id, "u0"), 0);
	assert_int_equal(store_uidl_known(f->store, mine.id, "not-stored"), 0);
	/* Another mailbox's UIDLs are not touched. */
	assert_int_equal(count_uidls(f, other.id), 5);

	/* A rolled-back caller transaction keeps them all. */
	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(store_uidl_prune(f->store, other.id, NULL, 0), 0);
	assert_int_equal(count_uidls(f, other.id), 0);
	store_rollback(f->store);
	assert_int_equal(count_uidls(f, other.id), 5);

	/* An empty provider mailbox: everything goes. */
	assert_int_equal(store_uidl_prune(f->store, other.id, NULL, 0), 0);
	assert_int_equal(count_uidls(f, other.id), 0);
	store_account_clear(&mine);
	store_account_clear(&other);
}

static void test_uidl_prune_large(void **state)
{
	struct test_store *f = *state;
	struct store_account account;
	enum { STORED = 20000, PRESENT = 10000 };
	char **present = xcalloc(PRESENT, sizeof(*present));
	int64_t start;

	assert_int_equal(create_account(f, "me", "pop.example", "me+pop", &account), 0);
	insert_uidls(f, account.id, STORED);
	/* Every second stored UIDL is still at the provider. */
	for (int i = 0; i < PRESENT; i++)
		present[i] = xasprintf("u%d", 2 * i);
	start = util_monotonic_ms();
	assert_int_equal(store_uidl_prune(f->store, account.id, present, PRESENT), 0);
	/* Quadratic work on these sizes would take minutes; this takes well under one second. */
	assert_true(util_monotonic_ms() - start < 3000);
	assert_int_equal(count_uidls(f, account.id), PRESENT);
	assert_int_equal(store_uidl_known(f->store, account.id, "u19998"), 1);
	assert_int_equal(store_uidl_known(f->store, account.id, "u19999"), 0);
	/* The same list again removes nothing more. */
	assert_int_equal(store_uidl_prune(f->store, account.id, present, PRESENT), 0);
	assert_int_equal(count_uidls(f, account.id), PRESENT);
	for (int i = 0; i < PRESENT; i++)
		free(present[i]);
	free(present);
	store_account_clear(&account);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_create_and_get, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_new_users_take_seats_while_free, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_second_account_reuses_user, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_create_failure_writes_nothing, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_update_credentials, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_record_fetch, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_exists, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_uidl_known_and_forget, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_uidl_prune, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_uidl_lookup_size, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_uidl_prune_large, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_fetch_unfinished, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_migration_marks_unfinished, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_delete_account, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_delete_account_keeps_user, setup,
					    test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
