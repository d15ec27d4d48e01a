/*
 * test_login.c — the store side of logins (store/login.c): the name a first
 * POP3 login gives its new user (U2, no silent sharing of one user by two
 * logins), finding the user a name typed at the console means (U6), and the
 * failed-login counters (also taking one failure back, as a POP3 login
 * counted at its start does when the password proves right), each test on
 * its own store in a temp data folder.
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
#include "store/login.h"
#include "store/user.h"

#include "test_support.h"

/* The failure window the counter tests use, in seconds. */
#define WINDOW 60

static int setup(void **state)
{
	return test_store_setup(state, "login");
}

/* Creates the provider account LOGIN@HOST for user USER_NAME (made if new,
 * as a first POP3 login does) and returns the account's id. */
static int64_t make_account(struct store *store, const char *login, const char *host,
			    const char *user_name)
{
	/* Numbered, so users whose names differ only in case get distinct addresses. */
	char *primary = xasprintf("user%lld@pop3proxy.test",
				  (long long)test_query_int(store, "SELECT count(*) FROM user"));
	int64_t id = test_account_create(store, login, host, user_name, primary, NULL);

	free(primary);
	return id;
}

/* Creates the local user NAME and returns its id. */
static int64_t make_local_user(struct store *store, const char *name)
{
	char err[256] = "";
	int64_t id = 0;

	if (store_user_add_local(store, name, NULL, &id, err, sizeof(err)) < 0)
		fail_msg("store_user_add_local %s: %s", name, err);
	return id;
}

/* The id of user NAME (exact), which must exist. */
static int64_t user_id_of(struct store *store, const char *name)
{
	char *sql = xasprintf("SELECT id FROM user WHERE name = '%s'", name);
	int64_t id = test_query_int(store, sql);

	free(sql);
	return id;
}

/* Asserts that store_login_user_name_new gives EXPECTED for LOGIN at HOST. */
static void assert_name_new(struct store *store, const char *login, const char *host,
			    const char *expected)
{
	char *name = store_login_user_name_new(store, login, host);

	assert_non_null(name);
	assert_string_equal(name, expected);
	free(name);
}

/* Asserts that NAME finds user USER_NAME with account ACCOUNT_ID and no own
 * password. */
static void assert_finds(struct store *store, const char *name, const char *user_name,
			 int64_t account_id)
{
	struct store_login_user user;

	assert_int_equal(store_login_user_find(store, name, &user), 1);
	assert_int_equal(user.user_id, user_id_of(store, user_name));
	assert_string_equal(user.user_name, user_name);
	assert_null(user.local_hash);
	assert_int_equal(user.account_id, account_id);
	store_login_user_clear(&user);
}

/* Asserts that NAME finds nobody and leaves *USER zeroed, whatever it held. */
static void assert_finds_nobody(struct store *store, const char *name)
{
	char junk[] = "junk";
	struct store_login_user user = {
	    .user_id = 42, .user_name = junk, .local_hash = junk, .account_id = 7};

	assert_int_equal(store_login_user_find(store, name, &user), 0);
	assert_int_equal(user.user_id, 0);
	assert_null(user.user_name);
	assert_null(user.local_hash);
	assert_int_equal(user.account_id, 0);
}

/* A mail-address login is unique by itself: '@' becomes '+', no host added. */
static void test_name_mail_address_login(void **state)
{
	struct test_store *f = *state;

	assert_name_new(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net");
	/* Only a name is chosen; no user is made. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM user"), 0);
}

/* A plain login carries its host, so "alice" at two providers is two users. */
static void test_name_plain_login_carries_host(void **state)
{
	struct test_store *f = *state;

	assert_name_new(f->store, "alice", "pop3.web.de", "alice+pop3.web.de");
	assert_name_new(f->store, "alice", "pop.gmx.net", "alice+pop.gmx.net");
}

/* A taken mail-address name gets the host, then a number. */
static void test_name_mail_address_taken(void **state)
{
	struct test_store *f = *state;

	make_local_user(f->store, "me+gmx.net");
	assert_name_new(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net+pop.gmx.net");
	make_local_user(f->store, "me+gmx.net+pop.gmx.net");
	assert_name_new(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net+2");
	make_local_user(f->store, "me+gmx.net+2");
	assert_name_new(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net+3");
}

/* A taken plain-login name (it already has the host) gets a number. */
static void test_name_plain_login_taken(void **state)
{
	struct test_store *f = *state;

	make_account(f->store, "alice", "pop3.web.de", "alice+pop3.web.de");
	assert_name_new(f->store, "alice", "pop3.web.de", "alice+pop3.web.de+2");
	make_local_user(f->store, "alice+pop3.web.de+2");
	assert_name_new(f->store, "alice", "pop3.web.de", "alice+pop3.web.de+3");
}

/* Every '@' of a login becomes '+', giving a valid user name. */
static void test_name_every_at_replaced(void **state)
{
	struct test_store *f = *state;
	char *name = store_login_user_name_new(f->store, "a@b@example.org", "pop.example.org");

	assert_non_null(name);
	assert_string_equal(name, "a+b+example.org");
	assert_true(store_user_name_valid(name));
	free(name);
}

/* Bytes a user name cannot hold (space, '/', UTF-8) become '-', so a login
 * the provider accepts always gives a valid user name. */
static void test_name_odd_characters_replaced(void **state)
{
	struct test_store *f = *state;
	char *name = store_login_user_name_new(f->store, "j\xc3\xb6rg w/x", "pop.example.org");

	assert_non_null(name);
	assert_string_equal(name, "j--rg-w-x+pop.example.org");
	assert_true(store_user_name_valid(name));
	free(name);
	name = store_login_user_name_new(f->store, "a b@example.org", "pop.example.org");
	assert_string_equal(name, "a-b+example.org");
	free(name);
}

/* A provider user is found by its name, with '@' for '+', in any case, and
 * by its account's full name in either form. */
static void test_find_provider_user(void **state)
{
	struct test_store *f = *state;
	int64_t account_id;

	make_account(f->store, "bob", "pop.example.org", "bob+pop.example.org");
	account_id = make_account(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net");

	assert_finds(f->store, "me+gmx.net", "me+gmx.net", account_id);
	assert_finds(f->store, "me@gmx.net", "me+gmx.net", account_id);
	assert_finds(f->store, "ME+Gmx.Net", "me+gmx.net", account_id);
	assert_finds(f->store, "Me@GMX.net", "me+gmx.net", account_id);
	assert_finds(f->store, "me@gmx.net@pop.gmx.net", "me+gmx.net", account_id);
	assert_finds(f->store, "me+gmx.net+pop.gmx.net", "me+gmx.net", account_id);
	assert_finds(f->store, "ME@gmx.net+POP.gmx.net", "me+gmx.net", account_id);
}

/* The account is the one the name named, else the user's oldest. */
static void test_find_account_named_else_oldest(void **state)
{
	struct test_store *f = *state;
	int64_t first = make_account(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net");
	int64_t second = make_account(f->store, "me@gmx.net", "mail.gmx.net", "me+gmx.net");

	assert_true(first != second);
	assert_finds(f->store, "me+gmx.net", "me+gmx.net", first);
	assert_finds(f->store, "me@gmx.net@mail.gmx.net", "me+gmx.net", second);
	assert_finds(f->store, "me@gmx.net@pop.gmx.net", "me+gmx.net", first);
}

/* A local user has no account; its own hash shows once it is set. */
static void test_find_local_user(void **state)
{
	struct test_store *f = *state;
	int64_t id = make_local_user(f->store, "carol");
	struct store_login_user user;
	char err[256] = "";

	assert_finds(f->store, "Carol", "carol", 0);

	assert_int_equal(
	    store_user_set_password(f->store, "carol", "$argon2id$v=19$carol", err, sizeof(err)),
	    0);
	assert_int_equal(store_login_user_find(f->store, "carol", &user), 1);
	assert_int_equal(user.user_id, id);
	assert_string_equal(user.user_name, "carol");
	assert_non_null(user.local_hash);
	assert_string_equal(user.local_hash, "$argon2id$v=19$carol");
	assert_int_equal(user.account_id, 0);
	store_login_user_clear(&user);
	assert_null(user.user_name);
	assert_null(user.local_hash);
}

/* A name nobody has finds nobody, also one that is part of a user's name. */
static void test_find_unknown(void **state)
{
	struct test_store *f = *state;

	assert_finds_nobody(f->store, "nobody");
	make_account(f->store, "me@gmx.net", "pop.gmx.net", "me+gmx.net");
	make_local_user(f->store, "carol");
	assert_finds_nobody(f->store, "me");
	assert_finds_nobody(f->store, "me+gmx");
	assert_finds_nobody(f->store, "me@gmx.net@pop");
	assert_finds_nobody(f->store, "carol@pop.gmx.net");
	assert_finds_nobody(f->store, "");
}

/* Of two users whose names differ only in case, the exact one wins,
 * whichever is older. */
static void test_find_exact_case_wins(void **state)
{
	struct test_store *f = *state;
	int64_t upper = make_account(f->store, "Bob@x.org", "pop.x.org", "Bob+x.org");
	int64_t lower = make_account(f->store, "bob@x.org", "mail.x.org", "bob+x.org");

	assert_finds(f->store, "Bob+x.org", "Bob+x.org", upper);
	assert_finds(f->store, "bob+x.org", "bob+x.org", lower);
	assert_finds(f->store, "bob@x.org", "bob+x.org", lower);
}

/* Two accounts whose names differ only by '@' against '+' make their full
 * name ambiguous: it finds neither, while their user names still work. */
static void test_find_ambiguous_account(void **state)
{
	struct test_store *f = *state;
	int64_t plus = make_account(f->store, "a+b", "h.example", "first");
	int64_t at = make_account(f->store, "a@b", "h.example", "second");

	/* A form both accounts could mean names neither ... */
	assert_finds_nobody(f->store, "a+b+h.example");
	/* ... but each account's exact name (case aside) names its own. */
	assert_finds(f->store, "a+b@h.example", "first", plus);
	assert_finds(f->store, "A@B@h.example", "second", at);
	assert_finds(f->store, "first", "first", plus);
	assert_finds(f->store, "second", "second", at);
}

static void test_failures_unknown_key(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_login_failures(f->store, "user:nobody", WINDOW, 1000), 0);
}

/* Failures within one window add up. */
static void test_failures_count_in_window(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_login_failure_add(f->store, "admin", WINDOW, 1000), 0);
	assert_int_equal(store_login_failures(f->store, "admin", WINDOW, 1000), 1);
	assert_int_equal(store_login_failure_add(f->store, "admin", WINDOW, 1010), 0);
	assert_int_equal(store_login_failure_add(f->store, "admin", WINDOW, 1000 + WINDOW - 1), 0);
	assert_int_equal(store_login_failures(f->store, "admin", WINDOW, 1000 + WINDOW - 1), 3);
}

/* Once the window has passed nothing counts, and the next failure starts a
 * new window at 1. */
static void test_failures_window_passes(void **state)
{
	struct test_store *f = *state;
	int64_t next = 1000 + WINDOW;

	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1000), 0);
	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1001), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, next - 1), 2);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, next), 0);

	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, next), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, next), 1);
	assert_int_equal(test_query_int(f->store, "SELECT window_start FROM login_failure"), next);
	/* The new window runs from the failure that started it. */
	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, next + 5), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, next + WINDOW - 1),
			 2);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, next + WINDOW), 0);
}

/* Clearing forgets a key's failures; clearing an unknown key is no error. */
static void test_failures_clear(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1000), 0);
	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1001), 0);
	assert_int_equal(store_login_failures_clear(f->store, "user:carol"), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, 1002), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM login_failure"), 0);
	assert_int_equal(store_login_failures_clear(f->store, "user:nobody"), 0);
	/* Counting starts again from 1. */
	assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1003), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, 1003), 1);
}

/* Expiring drops only the counters whose window has passed. */
static void test_failures_expire(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_login_failure_add(f->store, "old", WINDOW, 1000), 0);
	assert_int_equal(store_login_failure_add(f->store, "new", WINDOW, 1030), 0);
	assert_int_equal(store_login_failure_add(f->store, "new", WINDOW, 1040), 0);

	assert_int_equal(store_login_failures_expire(f->store, WINDOW, 1000 + WINDOW - 1), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM login_failure"), 2);

	assert_int_equal(store_login_failures_expire(f->store, WINDOW, 1000 + WINDOW), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM login_failure"), 1);
	assert_int_equal(
	    test_query_int(f->store, "SELECT count(*) FROM login_failure WHERE key = 'new'"), 1);
	assert_int_equal(store_login_failures(f->store, "new", WINDOW, 1000 + WINDOW), 2);

	assert_int_equal(store_login_failures_expire(f->store, WINDOW, 1030 + WINDOW), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM login_failure"), 0);
}

/* Each key counts and clears on its own. */
static void test_failures_keys_independent(void **state)
{
	struct test_store *f = *state;

	for (int i = 0; i < 3; i++)
		assert_int_equal(store_login_failure_add(f->store, "user:carol", WINDOW, 1000 + i),
				 0);
	assert_int_equal(store_login_failure_add(f->store, "address:127.0.0.1", WINDOW, 1005), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, 1010), 3);
	assert_int_equal(store_login_failures(f->store, "address:127.0.0.1", WINDOW, 1010), 1);
	assert_int_equal(store_login_failures(f->store, "user:Carol", WINDOW, 1010), 0);

	assert_int_equal(store_login_failures_clear(f->store, "user:carol"), 0);
	assert_int_equal(store_login_failures(f->store, "user:carol", WINDOW, 1010), 0);
	assert_int_equal(store_login_failures(f->store, "address:127.0.0.1", WINDOW, 1010), 1);
}

/* Removing takes back one failure, the last one with its row, and leaves
 * other keys alone; an unknown key is no error. */
static void test_failures_remove(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(store_login_failure_add(f->store, "pop3-account:a@b", WINDOW, 1000), 0);
	assert_int_equal(store_login_failure_add(f->store, "pop3-account:a@b", WINDOW, 1001), 0);
	assert_int_equal(store_login_failure_add(f->store, "pop3-address:127.0.0.1", WINDOW, 1001),
			 0);
	assert_int_equal(store_login_failure_remove(f->store, "pop3-account:a@b"), 0);
	assert_int_equal(store_login_failures(f->store, "pop3-account:a@b", WINDOW, 1002), 1);
	assert_int_equal(store_login_failures(f->store, "pop3-address:127.0.0.1", WINDOW, 1002), 1);
	assert_int_equal(store_login_failure_remove(f->store, "pop3-account:a@b"), 0);
	assert_int_equal(store_login_failure_remove(f->store, "pop3-account:a@b"), 0);
	assert_int_equal(store_login_failures(f->store, "pop3-account:a@b", WINDOW, 1002), 0);
	/* The last failure takes its row along. */
	assert_int_equal(
	    test_query_int(f->store,
			   "SELECT count(*) FROM login_failure WHERE key = 'pop3-account:a@b'"),
	    0);
	assert_int_equal(store_login_failure_remove(f->store, "pop3-account:nobody@b"), 0);
	/* The next failure counts from 1 again. */
	assert_int_equal(store_login_failure_add(f->store, "pop3-account:a@b", WINDOW, 1003), 0);
	assert_int_equal(store_login_failures(f->store, "pop3-account:a@b", WINDOW, 1003), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_name_mail_address_login, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_name_plain_login_carries_host, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_name_mail_address_taken, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_name_plain_login_taken, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_name_every_at_replaced, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_name_odd_characters_replaced, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_provider_user, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_account_named_else_oldest, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_local_user, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_unknown, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_exact_case_wins, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_find_ambiguous_account, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_unknown_key, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_count_in_window, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_window_passes, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_clear, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_expire, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_keys_independent, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_failures_remove, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
