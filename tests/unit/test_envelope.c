/*
 * test_envelope.c — the envelope of a message to relay: its sender, each
 * recipient with its own status, attempts and next attempt, the due list,
 * and rows going with their message.
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
#include "store/db.h"
#include "store/envelope.h"

#include "test_support.h"

#define M1 "111111111111111111111111"
#define M2 "222222222222222222222222"

static int setup(void **state)
{
	struct test_store *f;

	test_store_setup(state, "envelope");
	f = *state;
	/* Submitted mail: no account. */
	test_exec_sql(f->store, "INSERT INTO message (id, account_id, state, source, body_size,"
				" received_at, state_changed_at) VALUES"
				" ('" M1 "', NULL, 'outbound', 'submitted', 1, 1, 1),"
				" ('" M2 "', NULL, 'outbound', 'submitted', 1, 1, 1)");
	return 0;
}

static void test_status_names(void **state)
{
	(void)state;
	for (int i = 0; i < ENVELOPE_STATUS_COUNT; i++)
		assert_int_equal(store_envelope_status_parse(store_envelope_status_name(i)), i);
	assert_string_equal(store_envelope_status_name(ENVELOPE_PENDING), "pending");
	assert_int_equal(store_envelope_status_parse("Pending"), -1);
}

static void test_add_and_sender(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net", "c@example.org", "b@example.net"};
	char *sender = NULL;

	assert_int_equal(store_envelope_add(f->store, M1, "a@example.com", to, 3), 0);
	assert_int_equal(store_envelope_sender(f->store, M1, &sender), 1);
	assert_string_equal(sender, "a@example.com");
	free(sender);
	/* One row per recipient, pending and due at once. */
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM envelope_recipient"
						  " WHERE status = 'pending' AND attempts = 0"
						  " AND next_attempt_at = 0"),
			 2);
	/* The null sender is "". */
	assert_int_equal(store_envelope_add(f->store, M2, "", to, 1), 0);
	assert_int_equal(store_envelope_sender(f->store, M2, &sender), 1);
	assert_string_equal(sender, "");
	free(sender);
	/* A second envelope, or one for no message, is refused whole. */
	assert_int_equal(store_envelope_add(f->store, M1, "x@example.com", to + 1, 1), -1);
	assert_int_equal(
	    store_envelope_add(f->store, "333333333333333333333333", "x@example.com", to, 1), -1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM envelope_recipient"), 3);
	assert_int_equal(store_envelope_sender(f->store, "333333333333333333333333", &sender), 0);
	assert_null(sender);

	/* The recipients of one envelope, in address order; none without one. */
	char **recipients = NULL;
	size_t count = 0;
	assert_int_equal(store_envelope_recipients(f->store, M1, &recipients, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(recipients[0], "b@example.net");
	assert_string_equal(recipients[1], "c@example.org");
	store_envelope_recipients_free(&recipients, count);
	assert_null(recipients);
	assert_int_equal(
	    store_envelope_recipients(f->store, "333333333333333333333333", &recipients, &count),
	    0);
	assert_int_equal(count, 0);
	assert_null(recipients);
}

static void test_due_and_set(void **state)
{
	struct test_store *f = *state;
	static const char *const to1[] = {"b@example.net", "c@example.org"};
	static const char *const to2[] = {"d@example.com"};
	struct store_envelope_recipient *list = NULL;
	size_t count = 0;

	assert_int_equal(store_envelope_add(f->store, M1, "a@example.com", to1, 2), 0);
	assert_int_equal(store_envelope_add(f->store, M2, "a@example.com", to2, 1), 0);
	/* b deferred to 500 after one attempt, c sent, d due at 0. */
	assert_int_equal(
	    store_envelope_set_recipient(f->store, M1, "b@example.net", ENVELOPE_PENDING, 1, 500),
	    1);
	assert_int_equal(
	    store_envelope_set_recipient(f->store, M1, "c@example.org", ENVELOPE_SENT, 1, 0), 1);
	assert_int_equal(
	    store_envelope_set_recipient(f->store, M1, "zz@example.org", ENVELOPE_SENT, 1, 0), 0);

	assert_int_equal(store_envelope_list_due(f->store, 100, 10, &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].message_id, M2);
	assert_string_equal(list[0].address, "d@example.com");
	assert_int_equal(list[0].status, ENVELOPE_PENDING);
	store_envelope_list_free(&list, count);
	assert_null(list);

	/* Longest due first, and at most LIMIT. */
	assert_int_equal(store_envelope_list_due(f->store, 1000, 10, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].address, "d@example.com");
	assert_string_equal(list[1].address, "b@example.net");
	assert_int_equal(list[1].attempts, 1);
	assert_int_equal(list[1].next_attempt_at, 500);
	store_envelope_list_free(&list, count);
	assert_int_equal(store_envelope_list_due(f->store, 1000, 1, &list, &count), 0);
	assert_int_equal(count, 1);
	store_envelope_list_free(&list, count);

	/* Failed for good: never due again. */
	assert_int_equal(
	    store_envelope_set_recipient(f->store, M2, "d@example.com", ENVELOPE_FAILED, 3, 0), 1);
	assert_int_equal(store_envelope_list_due(f->store, 1000, 10, &list, &count), 0);
	assert_int_equal(count, 1);
	store_envelope_list_free(&list, count);
	assert_int_not_equal(sqlite3_exec(f->store->db,
					  "UPDATE envelope_recipient SET status = 'lost'", NULL,
					  NULL, NULL),
			     SQLITE_OK);
}

/* The envelope goes with its message. */
static void test_cascade(void **state)
{
	struct test_store *f = *state;
	static const char *const to[] = {"b@example.net", "c@example.org"};

	assert_int_equal(store_envelope_add(f->store, M1, "a@example.com", to, 2), 0);
	test_exec_sql(f->store, "DELETE FROM message WHERE id = '" M1 "'");
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM envelope"), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM envelope_recipient"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test_setup_teardown(test_add_and_sender, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_due_and_set, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_cascade, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
