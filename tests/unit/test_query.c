/*
 * test_query.c — the administrator's views of the store (store/query.c):
 * message rows with their account's and user's names, filtered by state and
 * by user (U4: on a collective mailbox each user sees the mail of their own
 * addresses), a message's recipient users, taking a user off a message,
 * deleting a message row, and a user's account names. Each test runs on its
 * own store in a temp data folder.
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
#include "store/message.h"
#include "store/query.h"
#include "store/user.h"

#include "test_support.h"

/* Message ids of one repeated digit, so tests can name them. */
#define M1 "111111111111111111111111"
#define M2 "222222222222222222222222"
#define M3 "333333333333333333333333"
#define M4 "444444444444444444444444"
#define M5 "555555555555555555555555"
#define M7 "777777777777777777777777"
#define M9 "999999999999999999999999"
#define UNKNOWN_ID "ffffffffffffffffffffffff"

/* A collective provider mailbox, account team@example.net of user "coll", whose
 * mail belongs to the local users alice, bob and carol by address:
 * M1 to alice, M2 to bob, M4 to bob and carol, M5 to no local address. */
struct collective {
	int64_t coll_account;
	int64_t alice;
	int64_t bob;
	int64_t carol;
};

static int setup(void **state)
{
	return test_store_setup(state, "query");
}

/* Creates provider account LOGIN@HOST for user USER_NAME (the user too, if it
 * does not exist yet, U1). Returns the account's id, its user's in *USER_ID_R. */
static int64_t make_account(struct store *store, const char *user_name, const char *login,
			    const char *host, int64_t *user_id_r)
{
	char *primary = xasprintf("%s@pop3proxy.test", user_name);
	int64_t id = test_account_create(store, login, host, user_name, primary, user_id_r);

	free(primary);
	return id;
}

/* Creates local user NAME with primary address NAME@x.org; returns its id. */
static int64_t make_local_user(struct store *store, const char *name)
{
	char *address = xasprintf("%s@x.org", name);
	char err[256] = "";
	int64_t id = 0;

	if (store_user_add_local(store, name, address, &id, err, sizeof(err)) != 0)
		fail_msg("store_user_add_local %s: %s", name, err);
	free(address);
	return id;
}

/* Attributes message ID to the N users of USER_IDS by their NAME@x.org. */
static void attribute(struct store *store, const char *id, const int64_t *user_ids,
		      const char *const *names, size_t n)
{
	char *addresses[4];

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		addresses[i] = xasprintf("%s@x.org", names[i]);
	assert_int_equal(store_message_attribute(store, id, 0, user_ids, addresses, n), 1);
	for (size_t i = 0; i < n; i++)
		free(addresses[i]);
}

/* Builds the collective mailbox of struct collective; M1 carries UIDL "uidl-1".
 * M4's recipients are recorded carol first, so that their order by name is
 * not their order of insertion. */
static void make_collective(struct store *store, struct collective *c)
{
	c->coll_account = make_account(store, "coll", "team", "example.net", NULL);
	c->alice = make_local_user(store, "alice");
	c->bob = make_local_user(store, "bob");
	c->carol = make_local_user(store, "carol");
	assert_int_equal(store_message_insert(store, M1, c->coll_account, "uidl-1", 11, NULL), 0);
	assert_int_equal(store_message_insert(store, M2, c->coll_account, "uidl-2", 22, NULL), 0);
	assert_int_equal(store_message_insert(store, M4, c->coll_account, "uidl-4", 44, NULL), 0);
	assert_int_equal(store_message_insert(store, M5, c->coll_account, "uidl-5", 55, NULL), 0);

	const int64_t m1_users[] = {c->alice};
	const char *const m1_names[] = {"alice"};
	const int64_t m2_users[] = {c->bob};
	const char *const m2_names[] = {"bob"};
	const int64_t m4_users[] = {c->carol, c->bob};
	const char *const m4_names[] = {"carol", "bob"};

	attribute(store, M1, m1_users, m1_names, 1);
	attribute(store, M2, m2_users, m2_names, 1);
	attribute(store, M4, m4_users, m4_names, 2);
}

/* Asserts that store_query_messages(STATE, USER_NAME) lists exactly the N
 * ids of EXPECTED, in that order. */
static void assert_messages(struct store *store, int state, const char *user_name,
			    const char *const *expected, size_t n)
{
	struct store_query_message *list = NULL;
	size_t count = 99;

	assert_int_equal(store_query_messages(store, state, user_name, &list, &count), 0);
	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(list[i].id, expected[i]);
	if (n == 0)
		assert_null(list);
	store_query_message_list_free(&list, count);
	assert_null(list);
}

/* Asserts that message ID's recipients are the N users NAMES, by name, each
 * with NAME@x.org. */
static void assert_recipients(struct store *store, const char *id, const char *const *names,
			      size_t n)
{
	struct store_query_recipient *list = NULL;
	size_t count = 99;

	assert_int_equal(store_query_message_recipients(store, id, &list, &count), 0);
	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++) {
		char *address = xasprintf("%s@x.org", names[i]);

		assert_string_equal(list[i].user_name, names[i]);
		assert_string_equal(list[i].address, address);
		free(address);
	}
	if (n == 0)
		assert_null(list);
	store_query_recipients_free(&list, count);
	assert_null(list);
}

static int64_t recipient_rows(struct store *store)
{
	return test_query_int(store, "SELECT count(*) FROM message_recipient");
}

/* Filter by state, oldest first, and every field of a row. */
static void test_messages_fields_and_order(void **state)
{
	struct test_store *f = *state;
	int64_t account = make_account(f->store, "coll", "team", "example.net", NULL);
	int64_t alice = make_local_user(f->store, "alice");
	struct store_query_message *list = NULL;
	size_t count = 0;

	/* Inserted in an order that neither the ids nor received_at sort. */
	assert_int_equal(store_message_insert(f->store, M9, account, "u-9", 100, "ab12"), 0);
	assert_int_equal(store_message_insert(f->store, M3, account, NULL, 200, NULL), 0);
	assert_int_equal(store_message_insert(f->store, M7, account, "u-7", 300, NULL), 0);
	assert_int_equal(store_message_move(f->store, M9, MESSAGE_PROCESSING, MESSAGE_DELIVERY,
					    "X-Popgate: ok\r\n"),
			 1);
	assert_int_equal(
	    store_message_move(f->store, M7, MESSAGE_PROCESSING, MESSAGE_DELIVERY, NULL), 1);
	assert_int_equal(store_message_add_attempt(f->store, M3), 1);
	assert_int_equal(store_message_add_attempt(f->store, M3), 2);
	/* Alice owns M9's sender address (U5). */
	assert_int_equal(store_message_attribute(f->store, M9, alice, NULL, NULL, 0), 1);
	/* Times apart from each other and from the sizes, to tell the columns
	 * apart; received_at runs against arrival, as a clock stepped back does:
	 * the list still follows arrival. */
	test_exec_sql(f->store, "UPDATE message SET received_at = 2000 - body_size,"
				" state_changed_at = 5000 + body_size");

	assert_messages(f->store, -1, NULL, (const char *const[]){M9, M3, M7}, 3);
	assert_messages(f->store, MESSAGE_DELIVERY, NULL, (const char *const[]){M9, M7}, 2);
	assert_messages(f->store, MESSAGE_PROCESSING, NULL, (const char *const[]){M3}, 1);
	assert_messages(f->store, MESSAGE_SUSPECT, NULL, NULL, 0);

	assert_int_equal(store_query_messages(f->store, -1, NULL, &list, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].account_name, "team@example.net");
	assert_string_equal(list[0].user_name, "coll");
	assert_int_equal(list[0].state, MESSAGE_DELIVERY);
	assert_int_equal(list[0].body_size, 100);
	assert_int_equal(list[0].attempts, 0);
	assert_int_equal(list[0].received_at, 1900);
	assert_int_equal(list[0].state_changed_at, 5100);
	assert_string_equal(list[0].uidl, "u-9");
	assert_string_equal(list[0].sha256, "ab12");
	assert_string_equal(list[0].prepend, "X-Popgate: ok\r\n");
	assert_string_equal(list[0].owner_name, "alice");

	assert_string_equal(list[1].account_name, "team@example.net");
	assert_int_equal(list[1].state, MESSAGE_PROCESSING);
	assert_int_equal(list[1].body_size, 200);
	assert_int_equal(list[1].attempts, 2);
	assert_int_equal(list[1].received_at, 1800);
	assert_int_equal(list[1].state_changed_at, 5200);
	assert_null(list[1].uidl);
	assert_null(list[1].sha256);
	assert_non_null(list[1].prepend);
	assert_string_equal(list[1].prepend, "");
	assert_null(list[1].owner_name);

	assert_int_equal(list[2].state, MESSAGE_DELIVERY);
	assert_string_equal(list[2].uidl, "u-7");
	assert_string_equal(list[2].prepend, "");
	store_query_message_list_free(&list, count);
}

/* U4: a message is a user's by its recipient addresses, or, when none is a
 * local user's, by the account that fetched it. */
static void test_messages_of_user(void **state)
{
	struct test_store *f = *state;
	struct collective c;
	static const char *const ids[] = {M1, M2, M4, M5};
	static const char *const users[] = {"alice", "bob", "carol", "coll"};
	/* expected[user][message]: whose each message is. */
	static const int expected[4][4] = {
	    {1, 0, 0, 0}, /* alice */
	    {0, 1, 1, 0}, /* bob */
	    {0, 0, 1, 0}, /* carol */
	    {0, 0, 0, 1}, /* coll */
	};

	make_collective(f->store, &c);
	assert_messages(f->store, -1, "alice", (const char *const[]){M1}, 1);
	assert_messages(f->store, -1, "bob", (const char *const[]){M2, M4}, 2);
	assert_messages(f->store, -1, "carol", (const char *const[]){M4}, 1);
	assert_messages(f->store, -1, "coll", (const char *const[]){M5}, 1);
	assert_messages(f->store, -1, "nobody", NULL, 0);
	assert_messages(f->store, -1, NULL, (const char *const[]){M1, M2, M4, M5}, 4);

	/* The state filter and the user filter together. */
	assert_int_equal(
	    store_message_move(f->store, M4, MESSAGE_PROCESSING, MESSAGE_DELIVERY, NULL), 1);
	assert_messages(f->store, MESSAGE_DELIVERY, "bob", (const char *const[]){M4}, 1);
	assert_messages(f->store, MESSAGE_PROCESSING, "bob", (const char *const[]){M2}, 1);
	assert_messages(f->store, MESSAGE_DELIVERY, "coll", NULL, 0);

	for (size_t u = 0; u < 4; u++) {
		for (size_t m = 0; m < 4; m++) {
			int of_user = store_query_message_of_user(f->store, ids[m], users[u]);

			if (of_user != expected[u][m])
				fail_msg("store_query_message_of_user(%s, %s) = %d, expected %d",
					 ids[m], users[u], of_user, expected[u][m]);
		}
		assert_int_equal(store_query_message_of_user(f->store, UNKNOWN_ID, users[u]), 0);
	}
	assert_int_equal(store_query_message_of_user(f->store, M5, "nobody"), 0);
}

static void test_message_recipients(void **state)
{
	struct test_store *f = *state;
	struct collective c;

	make_collective(f->store, &c);
	/* By user name, not by the order they were recorded in. */
	assert_recipients(f->store, M4, (const char *const[]){"bob", "carol"}, 2);
	assert_recipients(f->store, M1, (const char *const[]){"alice"}, 1);
	assert_recipients(f->store, M5, NULL, 0);
	assert_recipients(f->store, UNKNOWN_ID, NULL, 0);
}

/* A user deleting a message addressed to several users deletes only their
 * own entry; the last recipient's entry stays with the message. */
static void test_message_detach_user(void **state)
{
	struct test_store *f = *state;
	struct collective c;

	make_collective(f->store, &c);
	assert_int_equal(recipient_rows(f->store), 4);

	assert_int_equal(store_query_message_detach_user(f->store, M4, "bob"), 1);
	assert_int_equal(store_message_exists(f->store, M4), 1);
	assert_recipients(f->store, M4, (const char *const[]){"carol"}, 1);
	assert_int_equal(store_query_message_of_user(f->store, M4, "bob"), 0);
	assert_int_equal(store_query_message_of_user(f->store, M4, "carol"), 1);
	assert_messages(f->store, -1, "bob", (const char *const[]){M2}, 1);
	assert_messages(f->store, -1, "carol", (const char *const[]){M4}, 1);
	assert_int_equal(recipient_rows(f->store), 3);

	/* Carol is now its last recipient: not taken off. */
	assert_int_equal(store_query_message_detach_user(f->store, M4, "carol"), 0);
	assert_recipients(f->store, M4, (const char *const[]){"carol"}, 1);
	assert_int_equal(store_query_message_of_user(f->store, M4, "carol"), 1);

	/* Bob is not one of M1's recipients: nothing changes. */
	assert_int_equal(store_query_message_detach_user(f->store, M1, "bob"), 0);
	assert_recipients(f->store, M1, (const char *const[]){"alice"}, 1);
	assert_int_equal(recipient_rows(f->store), 3);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 4);
}

static void test_message_delete(void **state)
{
	struct test_store *f = *state;
	struct collective c;

	make_collective(f->store, &c);
	assert_int_equal(
	    store_message_move(f->store, M1, MESSAGE_PROCESSING, MESSAGE_DELIVERY, NULL), 1);
	assert_int_equal(
	    store_message_move(f->store, M5, MESSAGE_PROCESSING, MESSAGE_SUSPECT, NULL), 1);

	assert_int_equal(store_query_message_delete(f->store, M1), 1);
	assert_int_equal(store_message_exists(f->store, M1), 0);
	/* Its recipient rows went with it, the others' stayed. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message_recipient"
						  " WHERE message_id = '" M1 "'"),
			 0);
	assert_int_equal(recipient_rows(f->store), 3);
	/* Its UIDL stays recorded, so it is not fetched again. */
	assert_int_equal(store_uidl_known(f->store, c.coll_account, "uidl-1"), 1);
	assert_int_equal(store_query_message_delete(f->store, M1), 0);

	assert_int_equal(store_query_message_delete(f->store, UNKNOWN_ID), 0);

	/* A worker may be filtering a message in processing: refused, kept. */
	assert_int_equal(store_query_message_delete(f->store, M2), -2);
	assert_int_equal(store_message_exists(f->store, M2), 1);
	assert_recipients(f->store, M2, (const char *const[]){"bob"}, 1);

	/* Any other state may be deleted. */
	assert_int_equal(store_query_message_delete(f->store, M5), 1);
	assert_int_equal(store_message_exists(f->store, M5), 0);
	assert_int_equal(store_uidl_known(f->store, c.coll_account, "uidl-5"), 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message"), 2);
}

static void test_message_get(void **state)
{
	struct test_store *f = *state;
	struct collective c;
	struct store_query_message message;

	make_collective(f->store, &c);
	assert_int_equal(store_message_move(f->store, M4, MESSAGE_PROCESSING, MESSAGE_SUSPECT,
					    "X-Popgate-Suspect: yes\r\n"),
			 1);
	assert_int_equal(store_message_add_attempt(f->store, M4), 1);
	assert_int_equal(
	    store_message_attribute(f->store, M2, c.carol, &c.bob, (char *const[]){"bob@x.org"}, 1),
	    1);
	test_exec_sql(f->store, "UPDATE message SET received_at = 77, state_changed_at = 88,"
				" sha256 = 'cafe' WHERE id = '" M4 "'");

	assert_int_equal(store_query_message_get(f->store, M4, &message), 1);
	assert_string_equal(message.id, M4);
	assert_string_equal(message.account_name, "team@example.net");
	assert_string_equal(message.user_name, "coll");
	assert_int_equal(message.state, MESSAGE_SUSPECT);
	assert_int_equal(message.body_size, 44);
	assert_int_equal(message.attempts, 1);
	assert_int_equal(message.received_at, 77);
	assert_int_equal(message.state_changed_at, 88);
	assert_string_equal(message.uidl, "uidl-4");
	assert_string_equal(message.sha256, "cafe");
	assert_string_equal(message.prepend, "X-Popgate-Suspect: yes\r\n");
	assert_null(message.owner_name);
	store_query_message_clear(&message);

	assert_int_equal(store_query_message_get(f->store, M2, &message), 1);
	assert_string_equal(message.id, M2);
	assert_int_equal(message.state, MESSAGE_PROCESSING);
	assert_int_equal(message.body_size, 22);
	assert_null(message.sha256);
	assert_string_equal(message.prepend, "");
	assert_string_equal(message.owner_name, "carol");
	store_query_message_clear(&message);

	assert_int_equal(store_query_message_get(f->store, UNKNOWN_ID, &message), 0);
	store_query_message_clear(&message);
}

static void test_user_accounts(void **state)
{
	struct test_store *f = *state;
	int64_t multi = 0, other = 0;
	int64_t local = make_local_user(f->store, "dora");
	char **names = NULL;
	size_t count = 99;

	/* Created in an order their names do not sort in. */
	make_account(f->store, "multi", "zed", "example.net", &multi);
	make_account(f->store, "other", "bea", "example.net", &other);
	make_account(f->store, "multi", "amy", "example.org", NULL);
	make_account(f->store, "multi", "max", "example.com", NULL);

	assert_int_equal(store_query_user_accounts(f->store, multi, &names, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(names[0], "amy@example.org");
	assert_string_equal(names[1], "max@example.com");
	assert_string_equal(names[2], "zed@example.net");
	store_query_names_free(&names, count);
	assert_null(names);

	assert_int_equal(store_query_user_accounts(f->store, other, &names, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(names[0], "bea@example.net");
	store_query_names_free(&names, count);

	/* A local user has no provider account. */
	count = 99;
	assert_int_equal(store_query_user_accounts(f->store, local, &names, &count), 0);
	assert_int_equal(count, 0);
	assert_null(names);
	store_query_names_free(&names, count);
}

/*
 * popgatectl's listings skip a row in a state this build does not know (a
 * newer popgate wrote it; ignore_check_constraints writes it here as a newer
 * schema's CHECK would allow), instead of failing whole; and mail without an
 * account (submitted over SMTP) is listed with no account or user.
 */
static void test_messages_unknown_state_and_no_account(void **state)
{
	struct test_store *f = *state;
	int64_t account = make_account(f->store, "coll", "team", "example.net", NULL);
	struct store_query_message *list = NULL;
	struct store_query_message message;
	size_t count = 0;

	assert_int_equal(store_message_insert(f->store, M9, account, "u-9", 100, NULL), 0);
	assert_int_equal(store_message_insert(f->store, M3, account, "u-3", 200, NULL), 0);
	test_exec_sql(f->store, "PRAGMA ignore_check_constraints = ON;"
				"UPDATE message SET state = 'archived' WHERE body_size = 100;"
				"PRAGMA ignore_check_constraints = OFF;"
				"INSERT INTO message (id, account_id, state, source, body_size,"
				" received_at, state_changed_at) VALUES"
				" ('" M7 "', NULL, 'processing', 'submitted', 300, 1, 1)");
	assert_int_equal(store_query_messages(f->store, -1, NULL, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].id, M3);
	assert_string_equal(list[1].id, M7);
	assert_null(list[1].account_name);
	assert_null(list[1].user_name);
	store_query_message_list_free(&list, count);
	assert_int_equal(store_query_messages(f->store, -1, "coll", &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].id, M3);
	store_query_message_list_free(&list, count);
	assert_int_equal(store_query_message_get(f->store, M9, &message), 0);
	store_query_message_clear(&message);
	assert_int_equal(store_query_message_get(f->store, M7, &message), 1);
	store_query_message_clear(&message);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_messages_fields_and_order, setup,
					    test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_messages_of_user, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_message_recipients, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_message_detach_user, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_message_delete, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_message_get, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_user_accounts, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_messages_unknown_state_and_no_account, setup,
					    test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
