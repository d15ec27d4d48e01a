/*
 * test_senders.c — the senders filter (filters/senders.c) and its lists
 * (store/sender_list.c): patterns made canonical or refused, entries added
 * and deleted per owner, and which entry decides for a sender — the
 * owner's before the global ones, an address before a domain before a
 * wildcard pattern, block before allow at the same rank — with the score
 * and reason the filter gives.
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
#include "filters/senders.h"
#include "store/sender_list.h"
#include "store/user.h"
#include "test_support.h"

static int setup(void **state)
{
	return test_store_setup(state, "senders");
}

static void test_patterns(void **state)
{
	char out[SENDER_PATTERN_MAX + 1], err[512];
	static const char *const good[][2] = {
	    {"Joe@Example.COM", "joe@example.com"},	  {"@example.com", "example.com"},
	    {"*.example.com", "*.example.com"},		  {"*@*.example.net", "*@*.example.net"},
	    {"news-*@example.org", "news-*@example.org"},
	};
	static const char *const bad[] = {"",	 "@",	 "a b@x", "x@",	    "@x@y", "a@b@c",
					  "x?y", "[ab]", "a\\b",  "x\r\ny", "a<b>", "\"x\"@y"};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(sender_list_pattern_canonical(good[i][0], out, err, sizeof(err)),
				 0);
		assert_string_equal(out, good[i][1]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (sender_list_pattern_canonical(bad[i], out, err, sizeof(err)) != -1)
			fail_msg("pattern \"%s\" accepted", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(sender_list_kind_parse("allow"), SENDER_LIST_ALLOW);
	assert_int_equal(sender_list_kind_parse("block"), SENDER_LIST_BLOCK);
	assert_int_equal(sender_list_kind_parse("deny"), -1);
}

static void test_add_delete(void **state)
{
	struct test_store *f = *state;
	struct sender_list_entry *list = NULL;
	size_t count = 0;
	char err[512];
	int64_t carol;

	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &carol, err, sizeof(err)),
			 0);
	assert_int_equal(store_sender_list_add(f->store, NULL, SENDER_LIST_BLOCK, "@Spam.Example",
					       err, sizeof(err)),
			 0);
	assert_int_equal(store_sender_list_add(f->store, NULL, SENDER_LIST_ALLOW, "spam.example",
					       err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "spam.example is on the global block list already"));
	/* The same pattern on a user's list is another entry. */
	assert_int_equal(store_sender_list_add(f->store, "carol", SENDER_LIST_ALLOW, "spam.example",
					       err, sizeof(err)),
			 0);
	assert_int_equal(store_sender_list_add(f->store, "dan", SENDER_LIST_ALLOW, "x.example", err,
					       sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no user dan"));
	assert_int_equal(store_sender_list_list(f->store, NULL, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_null(list[0].user_name);
	assert_int_equal(list[0].kind, SENDER_LIST_BLOCK);
	assert_string_equal(list[1].user_name, "carol");
	assert_int_equal(list[1].user_id, carol);
	store_sender_list_free(&list, count);
	assert_int_equal(store_sender_list_for_user(f->store, 0, &list, &count), 0);
	assert_int_equal(count, 1);
	store_sender_list_free(&list, count);
	assert_int_equal(store_sender_list_for_user(f->store, carol, &list, &count), 0);
	assert_int_equal(count, 2);
	store_sender_list_free(&list, count);

	assert_int_equal(store_sender_list_del(f->store, "carol", "x.example", err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "x.example is not on the carol lists"));
	assert_int_equal(store_sender_list_del(f->store, "carol", "SPAM.example", err, sizeof(err)),
			 0);
	assert_int_equal(store_sender_list_del(f->store, NULL, "spam.example", err, sizeof(err)),
			 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM sender_list"), 0);
}

/* Entries as the store gives them: owner 0 global, 7 the owner's, 8 another
 * user's. */
static const struct sender_list_entry test_entries[] = {
    {0, NULL, SENDER_LIST_BLOCK, "*.example", 0},
    {0, NULL, SENDER_LIST_ALLOW, "ok.example", 0},
    {0, NULL, SENDER_LIST_BLOCK, "boss@ok.example", 0},
    {0, NULL, SENDER_LIST_ALLOW, "*@*.news.test", 0},
    {0, NULL, SENDER_LIST_BLOCK, "*@*.news.test", 0},
    {7, NULL, SENDER_LIST_ALLOW, "*.spam.example", 0},
    {8, NULL, SENDER_LIST_BLOCK, "mine.example", 0},
};

/* The pattern of the entry that decides for SENDER of owner OWNER, or NULL. */
static const char *decides(int64_t owner, const char *sender)
{
	const struct sender_list_entry *entry = senders_match(
	    test_entries, sizeof(test_entries) / sizeof(test_entries[0]), owner, sender);

	return entry != NULL ? entry->pattern : NULL;
}

static void test_match_order(void **state)
{
	(void)state;
	/* A domain beats a wildcard; an address beats a domain. */
	assert_string_equal(decides(0, "joe@ok.example"), "ok.example");
	assert_string_equal(decides(0, "Boss@OK.Example"), "boss@ok.example");
	assert_string_equal(decides(0, "x@other.example"), "*.example");
	/* Same rank: block before allow. */
	assert_string_equal(decides(0, "x@a.news.test"), "*@*.news.test");
	assert_int_equal(senders_match(test_entries, 7, 0, "x@a.news.test")->kind,
			 SENDER_LIST_BLOCK);
	/* The owner's own entry first, even a wildcard over a global address. */
	assert_string_equal(decides(7, "x@shop.spam.example"), "*.spam.example");
	assert_string_equal(decides(0, "x@shop.spam.example"), "*.example");
	/* Another user's entries never count. */
	assert_string_equal(decides(7, "x@mine.example"), "*.example");
	assert_string_equal(decides(8, "x@mine.example"), "mine.example");
	/* No match, no sender, no '@'. */
	assert_null(decides(0, "x@example.org"));
	assert_null(decides(0, NULL));
	assert_null(decides(0, "no-at-sign"));
}

static void test_judge(void **state)
{
	struct test_store *f = *state;
	struct pipeline_result result;
	char err[512];

	assert_int_equal(store_sender_list_add(f->store, NULL, SENDER_LIST_BLOCK, "*.bad.example",
					       err, sizeof(err)),
			 0);
	memset(&result, 0, sizeof(result));
	assert_int_equal(senders_judge(f->store, 0, "x@mail.bad.example", &result), 0);
	assert_int_equal(result.status, PIPELINE_RESULT_OK);
	assert_true(result.score == SENDERS_BLOCK_SCORE);
	assert_string_equal(result.reason, "sender blocked by the global list entry *.bad.example");
	free(result.reason);
	memset(&result, 0, sizeof(result));
	assert_int_equal(senders_judge(f->store, 0, "x@good.example", &result), 0);
	assert_true(result.score == 0);
	assert_null(result.reason);
	/* The lists cannot be read: a failed result, never a pass. */
	test_exec_sql(f->store, "DROP TABLE sender_list");
	memset(&result, 0, sizeof(result));
	assert_int_equal(senders_judge(f->store, 0, "x@mail.bad.example", &result), -1);
	assert_int_equal(result.status, PIPELINE_RESULT_FAILED);
	free(result.reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_patterns),
	    cmocka_unit_test_setup_teardown(test_add_delete, setup, test_store_teardown),
	    cmocka_unit_test(test_match_order),
	    cmocka_unit_test_setup_teardown(test_judge, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
