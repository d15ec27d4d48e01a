/*
 * test_fingerprint.c — the fuzzy fingerprints in the store
 * (store/fingerprint.c) and their judgement in the main process
 * (fuzzy_judge, filters/fuzzy.c): a near fingerprint is a sighting of the
 * stored one, an unrelated one starts its own; sightings count within the
 * window, one message once; the score starts at fuzzy_min_count distinct
 * senders and grows in proportion up to its cap; allowed senders and
 * correspondents are exempt; a ham report stops the scoring; old rows
 * expire.
 *
 * Owns: its temp store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/fuzzy.h"
#include "store/correspondent.h"
#include "store/fingerprint.h"
#include "store/sender_list.h"
#include "store/user.h"
#include "test_support.h"

#define NOW INT64_C(1795832053)

static const char campaign[] =
    "Dear friend, you have been selected to receive a free vacation package to the "
    "Bahamas worth $2500. To claim your prize call 555-0199 within 48 hours or visit "
    "http://claim.example.com/?id=77 and enter your code. This offer expires soon, so "
    "do not miss this once in a lifetime opportunity to relax on the beach.";
static const char unrelated[] =
    "Hi all, the meeting about the build server moves to Thursday afternoon because "
    "the room is taken on Wednesday. Please bring the list of failing tests and the "
    "numbers from the last benchmark run so we can decide what to fix first.";

static int setup(void **state)
{
	filter_settings_set("fuzzy_min_count 3\nfuzzy_window 3600\n");
	return test_store_setup(state, "fingerprint");
}

static int teardown(void **state)
{
	filter_settings_set(NULL);
	return test_store_teardown(state);
}

/* The fingerprint of campaign copy N: another name, number and link. */
static void campaign_copy(unsigned n, struct filter_fingerprint *fingerprint)
{
	static const char *const names[] = {"Peter", "Anna", "Li", "Omar", "Eve", "Raj"};
	char *text = xasprintf("Hello %s! %s Reference %u, http://t%u.example/x", names[n % 6],
			       campaign, n * 1013, n);

	fuzzy_fingerprint_text(text, strlen(text), fingerprint);
	free(text);
	assert_true(fingerprint->present);
}

/* A message id for N. */
static const char *message_id(unsigned n, char id[SPOOL_ID_LEN + 1])
{
	snprintf(id, SPOOL_ID_LEN + 1, "%024x", n + 1);
	return id;
}

static void test_record_and_stats(void **state)
{
	struct test_store *f = *state;
	struct filter_fingerprint a, b, other;
	struct fingerprint_stats stats;
	struct fingerprint_row row;
	char id[SPOOL_ID_LEN + 1];
	int64_t first, again, other_id;

	campaign_copy(0, &a);
	campaign_copy(1, &b);
	fuzzy_fingerprint_text(unrelated, strlen(unrelated), &other);
	assert_true(fuzzy_near(&a, &b));
	assert_false(fuzzy_near(&a, &other));

	/* Nothing stored: no near fingerprint. */
	assert_int_equal(store_fingerprint_stats(f->store, &a, 0, NULL, 1, 1, &stats), 0);
	assert_int_equal(stats.id, 0);

	assert_int_equal(
	    store_fingerprint_record(f->store, &a, message_id(0, id), 11, 1, NOW, &first), 0);
	/* The same message again does not count twice. */
	assert_int_equal(
	    store_fingerprint_record(f->store, &a, message_id(0, id), 11, 1, NOW + 5, &again), 0);
	assert_int_equal(again, first);
	/* A near copy is a sighting of the same fingerprint; an unrelated text
	 * starts its own. */
	assert_int_equal(
	    store_fingerprint_record(f->store, &b, message_id(1, id), 22, 2, NOW + 10, &again), 0);
	assert_int_equal(again, first);
	assert_int_equal(store_fingerprint_record(f->store, &other, message_id(2, id), 22, 2,
						  NOW + 10, &other_id),
			 0);
	assert_true(other_id != first);

	assert_int_equal(store_fingerprint_get(f->store, first, &row), 1);
	assert_int_equal(row.first_seen, NOW);
	assert_int_equal(row.last_seen, NOW + 10);
	assert_int_equal(row.messages, 2);
	assert_int_equal(row.senders, 2);
	assert_int_equal(row.owners, 2);
	assert_false(row.ham);
	assert_int_equal(store_fingerprint_get(f->store, 999, &row), 0);

	/* Within the window from NOW: both sightings; sender 22 is among them,
	 * 33 is not; message 1 left out when asked. */
	assert_int_equal(store_fingerprint_stats(f->store, &a, NOW, NULL, 22, 3, &stats), 0);
	assert_int_equal(stats.id, first);
	assert_int_equal(stats.messages, 2);
	assert_int_equal(stats.senders, 2);
	assert_int_equal(stats.owners, 2);
	assert_int_equal(stats.first_seen, NOW);
	assert_true(stats.sender_seen);
	assert_false(stats.owner_seen);
	assert_int_equal(
	    store_fingerprint_stats(f->store, &b, NOW, message_id(1, id), 33, 1, &stats), 0);
	assert_int_equal(stats.messages, 1);
	assert_false(stats.sender_seen);
	assert_true(stats.owner_seen);
	/* A window starting later sees only the later sighting. */
	assert_int_equal(store_fingerprint_stats(f->store, &a, NOW + 1, NULL, 11, 0, &stats), 0);
	assert_int_equal(stats.messages, 1);
	assert_int_equal(stats.first_seen, NOW + 10);
	assert_false(stats.sender_seen);

	/* Ham: marked through any of its messages, and unmarked. */
	assert_int_equal(store_fingerprint_set_ham(f->store, message_id(1, id), true), 1);
	assert_int_equal(store_fingerprint_stats(f->store, &a, 0, NULL, 0, 0, &stats), 0);
	assert_true(stats.ham);
	assert_int_equal(store_fingerprint_set_ham(f->store, message_id(0, id), false), 1);
	assert_int_equal(store_fingerprint_stats(f->store, &a, 0, NULL, 0, 0, &stats), 0);
	assert_false(stats.ham);
	assert_int_equal(store_fingerprint_set_ham(f->store, message_id(50, id), true), 0);

	/* Expiry: sightings and fingerprints older than the cutoff go. */
	assert_int_equal(store_fingerprint_expire(f->store, NOW + 1), 0);
	assert_int_equal(store_fingerprint_stats(f->store, &a, 0, NULL, 0, 0, &stats), 0);
	assert_int_equal(stats.messages, 1);
	assert_int_equal(store_fingerprint_expire(f->store, NOW + 11), 2);
	assert_int_equal(store_fingerprint_get(f->store, first, &row), 0);
	assert_int_equal(store_fingerprint_stats(f->store, &a, 0, NULL, 0, 0, &stats), 0);
	assert_int_equal(stats.id, 0);
}

/* Judges copy N of the campaign from SENDER for OWNER at AT, then records
 * it as the verdict's writes would. */
static double judge_copy(struct store *store, unsigned n, const char *sender, int64_t owner,
			 int64_t at, char **reason_r)
{
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	struct pipeline_result result = {.name = FUZZY_FILTER_NAME};
	char id[SPOOL_ID_LEN + 1];

	campaign_copy(n, &verdict.fingerprint);
	verdict.sender = (char *)sender;
	message_id(100 + n, id);
	assert_int_equal(fuzzy_judge(store, owner, id, &verdict, at, &result), 0);
	assert_int_equal(result.status, PIPELINE_RESULT_OK);
	if (fuzzy_sender_exempt(store, owner, sender) == 0)
		assert_int_equal(store_fingerprint_record(store, &verdict.fingerprint, id,
							  fuzzy_sender_hash(sender), owner, at,
							  NULL),
				 0);
	*reason_r = result.reason;
	return result.score;
}

static void test_judge(void **state)
{
	struct test_store *f = *state;
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	struct pipeline_result result = {.name = FUZZY_FILTER_NAME};
	char id[SPOOL_ID_LEN + 1], err[256];
	int64_t carol;
	char *reason;
	double score;

	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &carol, err, sizeof(err)),
			 0);
	/* No fingerprint: neutral, and says why. */
	assert_int_equal(fuzzy_judge(f->store, carol, message_id(0, id), &verdict, NOW, &result),
			 0);
	assert_true(result.score == 0);
	assert_non_null(strstr(result.reason, "no fingerprint"));
	free(result.reason);

	/* fuzzy_min_count 3: the first two senders do not score. */
	score = judge_copy(f->store, 0, "a@one.example", carol, NOW, &reason);
	assert_true(score == 0);
	assert_string_equal(reason, "fuzzy: seen 1 time from 1 sender to 1 user since "
				    "2026-11-28T02:14Z (scores from 3 senders)");
	free(reason);
	score = judge_copy(f->store, 1, "b@two.example", carol, NOW + 60, &reason);
	assert_true(score == 0);
	free(reason);
	/* The same sender again adds a message, not a sender. */
	score = judge_copy(f->store, 2, "B@Two.example", carol, NOW + 90, &reason);
	assert_true(score == 0);
	assert_non_null(strstr(reason, "seen 3 times from 2 senders"));
	free(reason);
	/* The third sender scores 1, then in proportion. */
	score = judge_copy(f->store, 3, "c@three.example", 0, NOW + 120, &reason);
	assert_true(score > 0.999 && score < 1.001);
	assert_non_null(strstr(reason, "seen 4 times from 3 senders to 2 users since "));
	assert_non_null(strstr(reason, "(scores from 3 senders)"));
	assert_true(strlen(reason) <= 200);
	free(reason);
	score = judge_copy(f->store, 4, "d@four.example", carol, NOW + 180, &reason);
	assert_true(score > 1.33 && score < 1.34);
	free(reason);
	/* Capped. */
	for (unsigned n = 5; n < 15; n++) {
		char *sender = xasprintf("x%u@many.example", n);

		score = judge_copy(f->store, n, sender, carol, NOW + 200 + n, &reason);
		free(sender);
		free(reason);
	}
	assert_true(score == FUZZY_SCORE_MAX);

	/* Past the window (3600 s): the old sightings no longer count. */
	score = judge_copy(f->store, 15, "late@x.example", carol, NOW + 3900, &reason);
	assert_true(score == 0);
	assert_non_null(strstr(reason, "seen 1 time from 1 sender"));
	free(reason);

	/* An allowed sender and a correspondent: neither scored nor counted. */
	assert_int_equal(store_sender_list_add(f->store, "carol", SENDER_LIST_ALLOW, "news.example",
					       err, sizeof(err)),
			 0);
	assert_int_equal(store_correspondent_add(f->store, carol, "Friend@Pals.example", NOW), 0);
	assert_int_equal(fuzzy_sender_exempt(f->store, carol, "list@news.example"), 1);
	assert_int_equal(fuzzy_sender_exempt(f->store, carol, "friend@pals.example"), 1);
	assert_int_equal(fuzzy_sender_exempt(f->store, 0, "friend@pals.example"), 0);
	assert_int_equal(fuzzy_sender_exempt(f->store, carol, "other@pals.example"), 0);
	assert_int_equal(fuzzy_sender_exempt(f->store, carol, NULL), 0);
	score = judge_copy(f->store, 16, "list@news.example", carol, NOW + 3950, &reason);
	assert_true(score == 0);
	assert_non_null(strstr(reason, "allowed sender or a correspondent"));
	free(reason);
	for (unsigned n = 17; n < 20; n++) {
		char *sender = xasprintf("y%u@many.example", n);

		score = judge_copy(f->store, n, sender, carol, NOW + 3950 + n, &reason);
		free(sender);
		free(reason);
	}
	assert_true(score > 1.0);

	/* A user's ham report: it no longer scores. */
	assert_int_equal(store_fingerprint_set_ham(f->store, message_id(119, id), true), 1);
	score = judge_copy(f->store, 20, "z@many.example", carol, NOW + 4100, &reason);
	assert_true(score == 0);
	assert_non_null(strstr(reason, "reported as ham"));
	free(reason);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_record_and_stats, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_judge, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
