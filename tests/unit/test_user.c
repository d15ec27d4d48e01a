/*
 * test_user.c — users, addresses, seats and settings (store/user.c,
 * address.c, seat.c, setting.c; core/address.c's address check), and
 * schema migrations 2 to 4, and recording whom a message belongs to (U4,
 * U5), each test on its own store in a temp data folder.
 * Every refusal is checked to write nothing and to say why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/account.h"
#include "store/db.h"
#include "store/user.h"

#include "test_support.h"

#define COUNT_ROWS                                                                                 \
	"SELECT (SELECT count(*) FROM user) * 1000000 + (SELECT count(*) FROM address) * 1000"     \
	" + (SELECT count(*) FROM user WHERE has_seat = 1) * 10"                                   \
	" + (SELECT count(*) FROM user WHERE password_hash IS NOT NULL)"

static int setup(void **state)
{
	return test_store_setup(state, "user");
}

/* A fingerprint of the user and address tables, to show a refusal wrote nothing. */
static int64_t rows_fingerprint(struct store *store)
{
	return test_query_int(store, COUNT_ROWS);
}

/* Creates provider user NAME with an account LOGIN@example.net (U1). */
static int64_t make_provider_user(struct store *store, const char *name, const char *login)
{
	char *primary = xasprintf("%s@pop3proxy.test", name);
	int64_t user_id;

	test_account_create(store, login, "example.net", name, primary, &user_id);
	free(primary);
	return user_id;
}

static void test_migration_fresh(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_schema_version(f->store), 14);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM pragma_table_info('user') WHERE name IN"
				     " ('password_hash', 'has_seat', 'seat_requested_at')"),
	    3);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM pragma_table_info('message')"
					" WHERE name = 'owner_user_id'"),
			 1);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM pragma_table_info('setting')"
					" WHERE name IN ('key', 'value')"),
			 2);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM pragma_table_info('message_recipient')"
				     " WHERE name IN ('message_id', 'user_id', 'address')"),
	    3);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM pragma_table_info('login_failure')"
				     " WHERE name IN ('key', 'failures', 'window_start')"),
	    3);
}

/* U4, U5: a message's owner and recipient users, replaced as a whole, and
 * gone with the message. */
static void test_message_attribute(void **state)
{
	struct test_store *f = *state;
	int64_t alice = make_provider_user(f->store, "alice", "alice");
	int64_t bob = make_provider_user(f->store, "bob", "bob");
	int64_t ids[3] = {alice, bob, alice};
	char *addresses[3] = {"a@x.org", "b@x.org", "a2@x.org"};
	char sql[256];

	test_exec_sql(f->store,
		      "INSERT INTO message (id, account_id, state, body_size, received_at,"
		      " state_changed_at) SELECT '0123456789abcdef01234567', max(id),"
		      " 'processing', 1, 1, 1 FROM account");
	assert_int_equal(
	    store_message_attribute(f->store, "0123456789abcdef01234567", bob, ids, addresses, 3),
	    1);
	assert_int_equal(test_query_int(f->store, "SELECT owner_user_id FROM message"), bob);
	/* Alice named twice keeps her first address. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"), 2);
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM message_recipient WHERE user_id = %lld AND"
		 " address = 'a@x.org'",
		 (long long)alice);
	assert_int_equal(test_query_int(f->store, sql), 1);
	/* A second attribution replaces the first. */
	assert_int_equal(store_message_attribute(f->store, "0123456789abcdef01234567", 0, ids + 1,
						 addresses + 1, 1),
			 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"
						  " WHERE owner_user_id IS NULL"),
			 1);
	assert_int_equal(test_query_int(f->store, "SELECT user_id FROM message_recipient"), bob);
	/* An unknown message, and an unknown user, change nothing. */
	assert_int_equal(
	    store_message_attribute(f->store, "ffffffffffffffffffffffff", alice, ids, addresses, 1),
	    0);
	ids[0] = 999;
	assert_int_equal(
	    store_message_attribute(f->store, "0123456789abcdef01234567", alice, ids, addresses, 1),
	    -1);
	assert_int_equal(test_query_int(f->store, "SELECT user_id FROM message_recipient"), bob);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"
						  " WHERE owner_user_id IS NULL"),
			 1);
	/* A user a message is attributed to still has mail: not deleted. */
	int64_t carol = 0;
	char err[256] = "";
	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &carol, err, sizeof(err)), 0);
	ids[0] = carol;
	assert_int_equal(
	    store_message_attribute(f->store, "0123456789abcdef01234567", 0, ids, addresses, 1), 1);
	assert_int_equal(store_user_delete(f->store, "carol", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "message"));
	/* The rows go with their message. */
	test_exec_sql(f->store, "DELETE FROM message");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"), 0);
}

static void test_migration_from_v1(void **state)
{
	struct test_store *f = *state;
	char text[64];

	/* Take the database back to its version 1 shape, with users in it. */
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
				"ALTER TABLE message DROP COLUMN source;"
				"ALTER TABLE message DROP COLUMN verdict_score;"
				"ALTER TABLE message DROP COLUMN verdict_action;"
				"ALTER TABLE message DROP COLUMN verdict_reasons;"
				"DROP TABLE message_recipient; DROP TABLE login_failure;"
				"DROP TABLE IF EXISTS admin_change;"
				"DROP INDEX user_waiting; DROP INDEX message_owner;"
				"DROP TABLE setting;"
				"ALTER TABLE user DROP COLUMN password_hash;"
				"ALTER TABLE user DROP COLUMN has_seat;"
				"ALTER TABLE user DROP COLUMN seat_requested_at;"
				"ALTER TABLE message DROP COLUMN owner_user_id;"
				"ALTER TABLE provider_uidl DROP COLUMN provider_size;"
				"ALTER TABLE account DROP COLUMN fetch_unfinished;"
				"INSERT INTO user (name, origin, created_at) VALUES"
				" ('old1', 'provider', 5), ('old2', 'local', 7);"
				"PRAGMA user_version = 1;");
	store_close(&f->store);
	f->store = test_store_open(f->dir);
	assert_int_equal(store_schema_version(f->store), 14);
	/* Users made before seats existed all keep working, in creation order. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user WHERE has_seat = 1"
						  " AND seat_requested_at = created_at"
						  " AND password_hash IS NULL"),
			 2);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM pragma_table_info('message')"
					" WHERE name = 'owner_user_id'"),
			 1);
	assert_string_equal(test_query_text(f->store,
					    "SELECT name FROM user ORDER BY"
					    " seat_requested_at LIMIT 1",
					    text, sizeof(text)),
			    "old1");
}

static void test_user_name_valid(void **state)
{
	char long_name[STORE_USER_NAME_MAX + 2];

	(void)state;
	assert_true(store_user_name_valid("alice"));
	assert_true(store_user_name_valid("username+gmx.net"));
	assert_true(store_user_name_valid("A-b_c.9"));
	assert_false(store_user_name_valid(""));
	assert_false(store_user_name_valid("user@gmx.net"));
	assert_false(store_user_name_valid("a b"));
	assert_false(store_user_name_valid("../x/y"));
	assert_false(store_user_name_valid("tab\t"));
	assert_false(store_user_name_valid("caf\xc3\xa9"));
	memset(long_name, 'a', STORE_USER_NAME_MAX);
	long_name[STORE_USER_NAME_MAX] = '\0';
	assert_true(store_user_name_valid(long_name));
	long_name[STORE_USER_NAME_MAX] = 'a';
	long_name[STORE_USER_NAME_MAX + 1] = '\0';
	assert_false(store_user_name_valid(long_name));
}

static void test_address_valid(void **state)
{
	static const struct {
		const char *address;
		bool valid;
	} cases[] = {
	    {"user@gmx.net", true},
	    {"username+gmx.net@pop3proxy.reddoxx", true},
	    {"first.last@sub.example.com", true},
	    {"x@localhost", true},
	    {"o'brien!#$%&*/=?^_`{|}~@a-b.c", true},
	    {"", false},
	    {"user", false},
	    {"@gmx.net", false},
	    {"user@", false},
	    {"a@b@c.de", false},
	    {"us er@gmx.net", false},
	    {"user\t@gmx.net", false},
	    {"user\r\n@gmx.net", false},
	    {"us\x7f"
	     "er@gmx.net",
	     false},
	    {"<user>@gmx.net", false},
	    {"a,b@gmx.net", false},
	    {"\"q\"@gmx.net", false},
	    {".user@gmx.net", false},
	    {"user.@gmx.net", false},
	    {"us..er@gmx.net", false},
	    {"user@.gmx.net", false},
	    {"user@gmx.net.", false},
	    {"user@gmx..net", false},
	    {"user@-gmx.net", false},
	    {"user@gmx-.net", false},
	    {"user@gm_x.net", false},
	    {"user@gmx net", false},
	    {"user@[127.0.0.1]", false},
	    {"caf\xc3\xa9@gmx.net", false},
	};
	char *long_local = xasprintf("%065d@gmx.net", 0);
	char *max_local = xasprintf("%064d@gmx.net", 0);
	char *long_label = xasprintf("u@%064d.net", 0);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (store_address_valid(cases[i].address) != cases[i].valid)
			fail_msg("store_address_valid(\"%s\") should be %d", cases[i].address,
				 cases[i].valid);
	}
	assert_false(store_address_valid(long_local));
	assert_true(store_address_valid(max_local));
	assert_false(store_address_valid(long_label));
	free(long_local);
	free(max_local);
	free(long_label);
}

static void test_user_add_get_list(void **state)
{
	struct test_store *f = *state;
	struct store_user user;
	struct store_user *list = NULL;
	size_t count = 0;
	char err[256] = "";
	int64_t id = 0;

	assert_int_equal(store_user_add_local(f->store, "zed", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(
	    store_user_add_local(f->store, "bob", "bob@pop3proxy.test", &id, err, sizeof(err)), 0);
	assert_true(id > 0);
	assert_int_equal(store_user_get(f->store, "bob", &user), 1);
	assert_int_equal(user.id, id);
	assert_string_equal(user.name, "bob");
	assert_string_equal(user.origin, "local");
	assert_null(user.password_hash);
	assert_true(user.has_seat); /* no limit set: unlimited */
	assert_true(user.seat_requested_at > 0);
	assert_int_equal(user.address_count, 1);
	assert_int_equal(user.account_count, 0);
	assert_int_equal(user.message_count, 0);
	store_user_clear(&user);
	assert_null(user.name);
	assert_int_equal(store_user_get(f->store, "nobody", &user), 0);
	assert_int_equal(store_user_get(f->store, "BOB", &user), 0);

	make_provider_user(f->store, "carol+example.net", "carol");
	assert_int_equal(store_user_list(f->store, &list, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].name, "bob");
	assert_string_equal(list[1].name, "carol+example.net");
	assert_string_equal(list[1].origin, "provider");
	assert_int_equal(list[1].account_count, 1);
	assert_int_equal(list[1].address_count, 1);
	assert_string_equal(list[2].name, "zed");
	assert_int_equal(list[2].address_count, 0);
	store_user_list_free(&list, count);
	assert_null(list);
	store_user_list_free(&list, 0); /* NULL is fine */
}

static void test_user_add_refusals(void **state)
{
	struct test_store *f = *state;
	char err[256];
	int64_t before;

	assert_int_equal(
	    store_user_add_local(f->store, "alice", "alice@pop3proxy.test", NULL, err, sizeof(err)),
	    0);
	before = rows_fingerprint(f->store);

	err[0] = '\0';
	assert_int_equal(store_user_add_local(f->store, "bad name", NULL, NULL, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "not a valid user name"));
	err[0] = '\0';
	assert_int_equal(store_user_add_local(f->store, "", NULL, NULL, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	err[0] = '\0';
	assert_int_equal(store_user_add_local(f->store, "ALICE", NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already exists"));
	err[0] = '\0';
	/* The user row is written before the address check: it must be undone. */
	assert_int_equal(
	    store_user_add_local(f->store, "dave", "not-an-address", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a valid address"));
	err[0] = '\0';
	assert_int_equal(
	    store_user_add_local(f->store, "dave", "ALICE@pop3proxy.test", NULL, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "already assigned to user alice"));
	assert_int_equal(rows_fingerprint(f->store), before);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user WHERE name = 'dave'"),
			 0);
}

static void test_user_delete(void **state)
{
	struct test_store *f = *state;
	char err[256];
	int64_t owner_id;
	int64_t before;

	assert_int_equal(
	    store_user_add_local(f->store, "gone", "gone@pop3proxy.test", NULL, err, sizeof(err)),
	    0);
	assert_int_equal(store_address_add(f->store, "gone@gmx.net", "gone", err, sizeof(err)), 0);
	assert_int_equal(store_user_delete(f->store, "gone", err, sizeof(err)), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM address"), 0);

	make_provider_user(f->store, "prov+example.net", "prov");
	assert_int_equal(store_user_add_local(f->store, "owner", NULL, &owner_id, err, sizeof(err)),
			 0);
	/* A message fetched by prov's account but owned by user owner (U5). */
	test_exec_sql(f->store,
		      "INSERT INTO message (id, account_id, state, body_size, received_at,"
		      " state_changed_at, owner_user_id) SELECT 'm1', id, 'delivery', 1, 1, 1,"
		      " (SELECT id FROM user WHERE name = 'owner') FROM account");
	before = rows_fingerprint(f->store);

	err[0] = '\0';
	assert_int_equal(store_user_delete(f->store, "nobody", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no user nobody"));
	err[0] = '\0';
	assert_int_equal(store_user_delete(f->store, "prov+example.net", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "1 provider account(s)"));
	err[0] = '\0';
	assert_int_equal(store_user_delete(f->store, "owner", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "1 message(s)"));
	assert_int_equal(rows_fingerprint(f->store), before);

	test_exec_sql(f->store, "DELETE FROM message");
	assert_int_equal(store_user_delete(f->store, "owner", err, sizeof(err)), 0);
	assert_int_equal(store_user_get(f->store, "owner", &(struct store_user){0}), 0);
}

static void test_user_set_password(void **state)
{
	struct test_store *f = *state;
	struct store_user user;
	char err[256];
	int64_t before;

	assert_int_equal(store_user_add_local(f->store, "loc", NULL, NULL, err, sizeof(err)), 0);
	make_provider_user(f->store, "prov+example.net", "prov");
	assert_int_equal(
	    store_user_set_password(f->store, "loc", "$argon2id$v=19$x", err, sizeof(err)), 0);
	assert_int_equal(store_user_get(f->store, "loc", &user), 1);
	assert_string_equal(user.password_hash, "$argon2id$v=19$x");
	store_user_clear(&user);
	before = rows_fingerprint(f->store);

	err[0] = '\0';
	assert_int_equal(store_user_set_password(f->store, "nobody", "$h", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no user nobody"));
	err[0] = '\0';
	assert_int_equal(
	    store_user_set_password(f->store, "prov+example.net", "$h", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "provider password"));
	assert_int_equal(rows_fingerprint(f->store), before);
}

static void test_addresses(void **state)
{
	struct test_store *f = *state;
	struct store_address *list = NULL;
	size_t count = 0;
	char err[256];
	int64_t ann_id;
	int64_t owner = 0;
	int64_t before;

	assert_int_equal(
	    store_user_add_local(f->store, "ann", "ann@pop3proxy.test", &ann_id, err, sizeof(err)),
	    0);
	assert_int_equal(store_user_add_local(f->store, "ben", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(store_address_add(f->store, "ann@gmx.net", "ann", err, sizeof(err)), 0);
	assert_int_equal(store_address_add(f->store, "sales@office.test", "ben", err, sizeof(err)),
			 0);

	assert_int_equal(store_address_owner(f->store, "ANN@GMX.NET", &owner), 1);
	assert_int_equal(owner, ann_id);
	assert_int_equal(store_address_owner(f->store, "nobody@gmx.net", &owner), 0);
	/* Its user's name, for the archive's owners. */
	char *name = NULL;
	assert_int_equal(store_address_owner_name(f->store, "Ann@gmx.net", &name), 1);
	assert_string_equal(name, "ann");
	free(name);
	name = NULL;
	assert_int_equal(store_address_owner_name(f->store, "nobody@gmx.net", &name), 0);
	assert_null(name);

	assert_int_equal(store_address_list(f->store, NULL, &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].address, "ann@gmx.net");
	assert_false(list[0].is_primary);
	assert_string_equal(list[1].address, "ann@pop3proxy.test");
	assert_true(list[1].is_primary);
	assert_string_equal(list[1].user_name, "ann");
	assert_string_equal(list[2].user_name, "ben");
	store_address_list_free(&list, count);
	assert_int_equal(store_address_list(f->store, "ben", &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].address, "sales@office.test");
	store_address_list_free(&list, count);
	err[0] = '\0';
	assert_int_equal(store_address_list(f->store, "nobody", &list, &count, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no user nobody"));

	before = rows_fingerprint(f->store);
	err[0] = '\0';
	assert_int_equal(store_address_add(f->store, "bad address", "ben", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a valid address"));
	err[0] = '\0';
	assert_int_equal(store_address_add(f->store, "Ann@Gmx.Net", "ben", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "already assigned to user ann"));
	err[0] = '\0';
	assert_int_equal(store_address_add(f->store, "x@gmx.net", "nobody", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no user nobody"));
	err[0] = '\0';
	assert_int_equal(store_address_delete(f->store, "ann@pop3proxy.test", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "primary address of user ann"));
	err[0] = '\0';
	assert_int_equal(store_address_delete(f->store, "x@gmx.net", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not assigned"));
	assert_int_equal(rows_fingerprint(f->store), before);

	assert_int_equal(store_address_delete(f->store, "ANN@gmx.net", err, sizeof(err)), 0);
	assert_int_equal(store_address_owner(f->store, "ann@gmx.net", &owner), 0);
	/* Once free, the address can go to someone else. */
	assert_int_equal(store_address_add(f->store, "ann@gmx.net", "ben", err, sizeof(err)), 0);
}

static void test_settings(void **state)
{
	struct test_store *f = *state;
	char *value = (char *)"untouched";

	assert_int_equal(store_setting_get(f->store, "colour", &value), 0);
	assert_null(value);
	assert_int_equal(store_setting_set(f->store, "colour", "blue"), 0);
	assert_int_equal(store_setting_set(f->store, "colour", "green"), 0);
	assert_int_equal(store_setting_get(f->store, "colour", &value), 1);
	assert_string_equal(value, "green");
	free(value);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM setting"), 1);
}

static bool user_has_seat(struct store *store, const char *name)
{
	struct store_user user;
	bool has_seat;

	assert_int_equal(store_user_get(store, name, &user), 1);
	has_seat = user.has_seat;
	store_user_clear(&user);
	return has_seat;
}

static void test_seats_waiting_and_promotion(void **state)
{
	struct test_store *f = *state;
	struct store_seat_status status;
	char err[256];
	char *value = NULL;
	int64_t before;

	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.limit, 0);
	assert_int_equal(status.free, -1);
	assert_int_equal(store_seat_set_limit(f->store, 2, err, sizeof(err)), 0);
	assert_int_equal(store_setting_get(f->store, STORE_SETTING_SEAT_LIMIT, &value), 1);
	assert_string_equal(value, "2");
	free(value);

	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "u%d", i);
		assert_int_equal(store_user_add_local(f->store, name, NULL, NULL, err, sizeof(err)),
				 0);
	}
	assert_true(user_has_seat(f->store, "u0"));
	assert_true(user_has_seat(f->store, "u1"));
	assert_false(user_has_seat(f->store, "u2"));
	/* u4 asked before u3 and u2; u2 and u3 asked at the same time (id decides). */
	test_exec_sql(f->store,
		      "UPDATE user SET seat_requested_at = 100 WHERE name = 'u4';"
		      "UPDATE user SET seat_requested_at = 200 WHERE name IN ('u2', 'u3')");
	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.limit, 2);
	assert_int_equal(status.used, 2);
	assert_int_equal(status.free, 0);
	assert_int_equal(status.waiting, 3);

	before = rows_fingerprint(f->store);
	err[0] = '\0';
	assert_int_equal(store_seat_set_limit(f->store, 1, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "2 seats are in use"));
	err[0] = '\0';
	assert_int_equal(store_seat_set_limit(f->store, -1, err, sizeof(err)), -1);
	assert_true(strlen(err) > 0);
	assert_int_equal(rows_fingerprint(f->store), before);
	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.limit, 2);

	assert_int_equal(store_seat_set_limit(f->store, 2, err, sizeof(err)), 0);
	assert_int_equal(store_seat_set_limit(f->store, 3, err, sizeof(err)), 1);
	assert_true(user_has_seat(f->store, "u4"));
	assert_false(user_has_seat(f->store, "u2"));
	assert_int_equal(store_seat_set_limit(f->store, 4, err, sizeof(err)), 1);
	assert_true(user_has_seat(f->store, "u2"));
	assert_false(user_has_seat(f->store, "u3"));
	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.used, 4);
	assert_int_equal(status.free, 0);
	assert_int_equal(status.waiting, 1);
	/* Unlimited: everyone waiting gets a seat. */
	assert_int_equal(store_seat_set_limit(f->store, 0, err, sizeof(err)), 1);
	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.used, 5);
	assert_int_equal(status.free, -1);
	assert_int_equal(status.waiting, 0);
	/* A limit equal to the seats in use is fine. */
	assert_int_equal(store_seat_set_limit(f->store, 5, err, sizeof(err)), 0);
	assert_int_equal(store_seat_status(f->store, &status), 0);
	assert_int_equal(status.free, 0);
}

static void test_seat_assign(void **state)
{
	struct test_store *f = *state;
	char err[256];
	int64_t first;
	int64_t second;

	assert_int_equal(store_seat_set_limit(f->store, 1, err, sizeof(err)), 0);
	/* Provider users as the proxy makes them: the first takes the one seat. */
	first = make_provider_user(f->store, "one+example.net", "one");
	second = make_provider_user(f->store, "two+example.net", "two");
	assert_true(user_has_seat(f->store, "one+example.net"));
	assert_int_equal(store_seat_assign(f->store, first), 1);
	assert_int_equal(store_seat_assign(f->store, first), 1); /* already has one */
	assert_int_equal(store_seat_assign(f->store, second), 0);
	assert_false(user_has_seat(f->store, "two+example.net"));
	/* Waiting from its creation, so it queues in order. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user WHERE"
						  " seat_requested_at = created_at AND"
						  " seat_requested_at > 0"),
			 2);
	assert_int_equal(store_seat_assign(f->store, 999), -1);
	assert_int_equal(store_seat_set_limit(f->store, 2, err, sizeof(err)), 1);
	assert_true(user_has_seat(f->store, "two+example.net"));
}

/* A refusal inside a caller's transaction undoes only its own writes. */
static void test_refusal_inside_transaction(void **state)
{
	struct test_store *f = *state;
	char err[256];

	assert_int_equal(store_begin(f->store), 0);
	assert_int_equal(
	    store_user_add_local(f->store, "kept", "kept@pop3proxy.test", NULL, err, sizeof(err)),
	    0);
	assert_int_equal(
	    store_user_add_local(f->store, "other", "kept@pop3proxy.test", NULL, err, sizeof(err)),
	    -1);
	assert_int_equal(store_commit(f->store), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM address"), 1);
}

/* The one way a user is made: a provider user (U1) through store_user_create,
 * as store_account_create makes it, waits for a seat like a local one (U3),
 * and its derived address may be longer than an administrator may type. */
static void test_user_create_provider(void **state)
{
	struct test_store *f = *state;
	char long_name[80];
	char *long_address;
	struct store_user user;
	char err[256];
	int64_t id = 0;

	assert_int_equal(store_seat_set_limit(f->store, 1, err, sizeof(err)), 0);
	assert_int_equal(store_user_add_local(f->store, "first", NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(store_user_create(f->store, "p+x.org", STORE_USER_PROVIDER,
					   "p+x.org@pop3proxy.test", &id, err, sizeof(err)),
			 0);
	assert_true(id > 0);
	assert_int_equal(store_user_get(f->store, "p+x.org", &user), 1);
	assert_string_equal(user.origin, "provider");
	assert_false(user.has_seat);
	assert_int_equal(user.address_count, 1);
	store_user_clear(&user);

	/* A 70-character local part: derived from a provider login, kept; typed
	 * for a local user, refused. */
	memset(long_name, 'l', 70);
	long_name[70] = '\0';
	long_address = xasprintf("%s@pop3proxy.test", long_name);
	assert_int_equal(store_user_create(f->store, long_name, STORE_USER_PROVIDER, long_address,
					   NULL, err, sizeof(err)),
			 0);
	long_address[0] = 'k';
	long_name[0] = 'k';
	assert_int_equal(store_user_create(f->store, long_name, STORE_USER_LOCAL, long_address,
					   NULL, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "is not a valid address"));
	free(long_address);

	/* An address already assigned is refused for either origin. */
	assert_int_equal(store_user_create(f->store, "q+x.org", STORE_USER_PROVIDER,
					   "P+X.org@pop3proxy.test", NULL, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "already assigned to user p+x.org"));
	assert_int_equal(store_user_get(f->store, "q+x.org", &user), 0);
	store_user_clear(&user);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_migration_fresh, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_migration_from_v1, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_message_attribute, setup, test_store_teardown),
	    cmocka_unit_test(test_user_name_valid),
	    cmocka_unit_test(test_address_valid),
	    cmocka_unit_test_setup_teardown(test_user_add_get_list, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_add_refusals, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_create_provider, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_delete, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_set_password, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_addresses, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_settings, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_seats_waiting_and_promotion, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_seat_assign, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_refusal_inside_transaction, setup,
					    test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
