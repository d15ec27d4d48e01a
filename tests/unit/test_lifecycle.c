/*
 * test_lifecycle.c — the transition table of a message's states and its one
 * writer of `state`: allowed and refused moves, and the log event of each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/db.h"
#include "store/lifecycle.h"
#include "store/message.h"

#include "test_support.h"

#define ID "0123456789abcdef01234567"

static int setup(void **state)
{
	struct test_store *f;
	char *log_path;

	test_store_setup(state, "lifecycle");
	f = *state;
	log_path = xasprintf("%s/popgate.log", f->dir);
	assert_int_equal(log_open(log_path, LOG_DEBUG), 0);
	free(log_path);
	test_exec_sql(
	    f->store,
	    "INSERT INTO user (id, name, origin, created_at) VALUES (1, 'u', 'local', 1);"
	    "INSERT INTO account (id, name, login, host, user_id, password_hash,"
	    " password_secret, created_at) VALUES (10, 'a@h', 'a', 'h', 1, 'x', x'00', 1)");
	assert_int_equal(store_message_insert(f->store, ID, 10, NULL, 1, NULL), 0);
	return 0;
}

static int teardown(void **state)
{
	log_close();
	return test_store_teardown(state);
}

/* Not inlined, as in test_log.c (-Wdangling-pointer false alarm at -O2). */
static __attribute__((noinline)) char *read_log(struct test_store *f)
{
	char *path = xasprintf("%s/popgate.log", f->dir);
	char *data;
	size_t len;

	assert_int_equal(util_read_file(path, &data, &len), 0);
	free(path);
	return data;
}

/* How many lines of the log hold NEEDLE. */
static int log_count(struct test_store *f, const char *needle)
{
	char *data = read_log(f);
	int count = 0;

	for (const char *p = data; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	free(data);
	return count;
}

static void test_table(void **state)
{
	(void)state;
	/* Today's life. */
	assert_true(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_DELIVERY));
	assert_true(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_SUSPECT));
	assert_true(store_lifecycle_allowed(MESSAGE_DELIVERY, MESSAGE_DELIVERED));
	assert_true(store_lifecycle_allowed(MESSAGE_SUSPECT, MESSAGE_PROCESSING));
	/* The states to come. */
	assert_true(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_QUARANTINE));
	assert_true(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_CHALLENGED));
	assert_true(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_OUTBOUND));
	assert_true(store_lifecycle_allowed(MESSAGE_QUARANTINE, MESSAGE_DELIVERY));
	assert_true(store_lifecycle_allowed(MESSAGE_CHALLENGED, MESSAGE_DELIVERY));
	assert_true(store_lifecycle_allowed(MESSAGE_OUTBOUND, MESSAGE_SENT));
	assert_true(store_lifecycle_allowed(MESSAGE_OUTBOUND, MESSAGE_BOUNCED));
	/* Never: unfiltered to the client, back from the end, or staying put. */
	assert_false(store_lifecycle_allowed(MESSAGE_PROCESSING, MESSAGE_DELIVERED));
	assert_false(store_lifecycle_allowed(MESSAGE_SUSPECT, MESSAGE_DELIVERY));
	assert_false(store_lifecycle_allowed(MESSAGE_DELIVERED, MESSAGE_DELIVERY));
	assert_false(store_lifecycle_allowed(MESSAGE_SENT, MESSAGE_OUTBOUND));
	assert_false(store_lifecycle_allowed(MESSAGE_BOUNCED, MESSAGE_PROCESSING));
	assert_false(store_lifecycle_allowed(MESSAGE_OUTBOUND, MESSAGE_DELIVERY));
	for (int s = 0; s < MESSAGE_STATE_COUNT; s++)
		assert_false(store_lifecycle_allowed(s, s));
	assert_false(store_lifecycle_allowed(MESSAGE_STATE_COUNT, MESSAGE_DELIVERY));
	assert_false(store_lifecycle_allowed(MESSAGE_PROCESSING, (enum message_state) - 1));
	for (int s = 0; s < MESSAGE_SOURCE_COUNT; s++)
		assert_int_equal(store_lifecycle_initial(s), MESSAGE_PROCESSING);
}

/* Each move is one "state" event with the account, id, from and to; a move
 * the table refuses is one "state_refused" event and changes nothing; a move
 * from a state the message is not in is silent. */
static void test_move_logged(void **state)
{
	struct test_store *f = *state;

	assert_int_equal(
	    store_lifecycle_move(f->store, ID, MESSAGE_PROCESSING, MESSAGE_DELIVERY, "X-A: 1\r\n"),
	    1);
	assert_int_equal(
	    log_count(f, "event=state account=a@h id=" ID " from=processing to=delivery\n"), 1);
	assert_int_equal(
	    store_lifecycle_move(f->store, ID, MESSAGE_PROCESSING, MESSAGE_DELIVERY, NULL), 0);
	assert_int_equal(log_count(f, "event=state "), 1);

	assert_int_equal(
	    store_lifecycle_move(f->store, ID, MESSAGE_DELIVERY, MESSAGE_PROCESSING, NULL), -1);
	assert_int_equal(
	    log_count(f, "event=state_refused account=- id=" ID " from=delivery to=processing\n"),
	    1);
	assert_int_equal(test_query_int(f->store,
					"SELECT count(*) FROM message WHERE state = 'delivery'"
					" AND prepend = 'X-A: 1\r\n'"),
			 1);

	assert_int_equal(
	    store_lifecycle_move(f->store, ID, MESSAGE_DELIVERY, MESSAGE_DELIVERED, NULL), 1);
	assert_int_equal(log_count(f, "from=delivery to=delivered\n"), 1);
	assert_int_equal(log_count(f, "event=state "), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test_setup_teardown(test_move_logged, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
