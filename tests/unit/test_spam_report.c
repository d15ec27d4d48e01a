/*
 * test_spam_report.c — reports for the spam classifier and the release from
 * quarantine (store/spam_report.c): a release moves the message to delivery
 * and records it as ham in one transaction, a message not in quarantine is
 * neither moved nor reported, the trainer reads the reports not learnt yet
 * and marks them; and a message's recorded verdict read back.
 *
 * Owns: its temp store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "store/message.h"
#include "store/spam_report.h"
#include "test_support.h"

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "bbbbbbbbbbbbbbbbbbbbbbbb"

static int setup(void **state)
{
	struct test_store *f;

	test_store_setup(state, "spam-report");
	f = *state;
	test_account_create(f->store, "alice", "localhost", "alice+localhost", NULL, NULL);
	assert_int_equal(store_message_insert(f->store, ID_A, 1, NULL, 10, NULL), 0);
	assert_int_equal(store_message_insert(f->store, ID_B, 1, NULL, 10, NULL), 0);
	return 0;
}

static void test_release(void **state)
{
	struct test_store *f = *state;
	struct spam_report *list = NULL;
	size_t count = 0;

	/* In processing: not released, not reported. */
	assert_int_equal(store_spam_release(f->store, ID_A), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM spam_report"), 0);
	assert_int_equal(
	    store_message_move(f->store, ID_A, MESSAGE_PROCESSING, MESSAGE_QUARANTINE, NULL), 1);
	assert_int_equal(store_spam_release(f->store, ID_A), 1);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM message WHERE id = '" ID_A
						  "' AND state = 'delivery'"),
			 1);
	assert_int_equal(store_spam_release(f->store, ID_A), 0);
	assert_int_equal(store_spam_report_add(f->store, ID_B, SPAM_CLASS_SPAM, "report"), 0);

	assert_int_equal(store_spam_report_unlearnt(f->store, 10, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].message_id, ID_A);
	assert_int_equal(list[0].spam_class, SPAM_CLASS_HAM);
	assert_string_equal(list[0].origin, "release");
	assert_string_equal(list[1].message_id, ID_B);
	assert_int_equal(list[1].spam_class, SPAM_CLASS_SPAM);
	assert_string_equal(list[1].origin, "report");
	int64_t seq;
	enum spam_class spam_class;

	assert_int_equal(store_spam_report_counted(f->store, ID_A, &seq, &spam_class), 0);
	assert_int_equal(store_spam_report_learnt(f->store, list[0].seq, SPAM_REPORT_LEARNT), 0);
	assert_int_equal(store_spam_report_counted(f->store, ID_A, &seq, &spam_class), 1);
	assert_int_equal(seq, list[0].seq);
	assert_int_equal(spam_class, SPAM_CLASS_HAM);
	free(list);
	assert_int_equal(store_spam_report_unlearnt(f->store, 10, &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].message_id, ID_B);
	/* Reversed or not learnable: no longer counted. */
	assert_int_equal(store_spam_report_learnt(f->store, list[0].seq, "the body is gone"), 0);
	assert_int_equal(store_spam_report_counted(f->store, ID_B, &seq, &spam_class), 0);
	free(list);
	assert_int_equal(store_spam_report_unlearnt(f->store, 10, &list, &count), 0);
	assert_int_equal(count, 0);
	free(list);
	assert_true(sqlite3_get_autocommit(f->store->db));
}

static void test_verdict_get(void **state)
{
	struct test_store *f = *state;
	char *action, *explanation;
	double score;

	assert_int_equal(store_message_verdict_get(f->store, ID_A, &score, &action, &explanation),
			 1);
	assert_null(action);
	assert_null(explanation);
	assert_int_equal(store_message_set_verdict(f->store, ID_A, 12.5, "quarantine",
						   "senders\t100.000\t1\tx\n"),
			 0);
	assert_int_equal(store_message_verdict_get(f->store, ID_A, &score, &action, &explanation),
			 1);
	assert_true(score == 12.5);
	assert_string_equal(action, "quarantine");
	assert_string_equal(explanation, "senders\t100.000\t1\tx\n");
	free(action);
	free(explanation);
	assert_int_equal(store_message_verdict_get(f->store, "cccccccccccccccccccccccc", &score,
						   &action, &explanation),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_release, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_verdict_get, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
