/*
 * test_verdict.c — combining per-filter results through a profile into one
 * action (pipeline/verdict.c): tables of results and profiles, with the
 * edges — a score equal to a threshold, no results at all, a filter that
 * failed or sent nothing, results the profile did not ask for — and the
 * header lines and reasons that come out.
 *
 * Owns: nothing. Must never: depend on anything but verdict.c and the x*
 * allocators.
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
#include "pipeline/verdict.h"

#define TEST_RESULTS_MAX 4

/* A result row: NAME NULL ends the list. */
struct test_result {
	const char *name;
	enum pipeline_result_status status;
	double score;
	const char *reason;
	const char *headers;
};

struct test_case {
	const char *what;
	/* The profile: filters "a" (weight WEIGHT_A) and "b" (weight 1), the
	 * thresholds and flags. */
	double weight_a;
	double tag_at;
	double quarantine_at;
	bool challenge;
	bool hold;
	bool sender_known;
	struct test_result results[TEST_RESULTS_MAX];
	/* What must come out. */
	enum verdict_action action;
	double score;
	const char *reasons;
};

#define OK PIPELINE_RESULT_OK
#define FAILED PIPELINE_RESULT_FAILED
/* A result row without (R) or with (RR) a reason. */
#define R(name, status, score) {name, status, score, NULL, NULL}
#define RR(name, status, score, reason) {name, status, score, reason, NULL}

static const struct test_case test_cases[] = {
    {"no results: nothing scores, delivered", 1, 5, 10, false, false, true, {R(NULL, 0, 0)},
     VERDICT_DELIVER, 0, "a=failed: no result; b=failed: no result"},
    {"zero scores", 1, 5, 10, false, false, true, {R("a", OK, 0), R("b", OK, 0)}, VERDICT_DELIVER,
     0, "a=0.000; b=0.000"},
    {"just below tag_at", 1, 5, 10, false, false, true, {R("a", OK, 2.5), R("b", OK, 2.499)},
     VERDICT_DELIVER, 4.999, "a=2.500; b=2.499"},
    {"equal to tag_at is tagged", 1, 5, 10, false, false, true, {R("a", OK, 2.5), R("b", OK, 2.5)},
     VERDICT_TAG, 5, "a=2.500; b=2.500"},
    {"just below quarantine_at is tagged", 1, 5, 10, false, false, true,
     {R("a", OK, 9.5), R("b", OK, 0.25)}, VERDICT_TAG, 9.75, "a=9.500; b=0.250"},
    {"equal to quarantine_at is quarantined", 1, 5, 10, false, false, true,
     {R("a", OK, 7.5), R("b", OK, 2.5)}, VERDICT_QUARANTINE, 10, "a=7.500; b=2.500"},
    {"weights multiply", 2, 5, 10, false, false, true, {R("a", OK, 2.5), R("b", OK, 0)},
     VERDICT_TAG, 5, "a=2.500; b=0.000"},
    {"a zero weight silences a filter", 0, 5, 10, false, false, true,
     {R("a", OK, 100), R("b", OK, 1)}, VERDICT_DELIVER, 1, "a=100.000; b=1.000"},
    {"negative scores pull down", 1, 5, 10, false, false, true, {R("a", OK, 12), R("b", OK, -3)},
     VERDICT_TAG, 9, "a=12.000; b=-3.000"},
    {"a failed filter adds nothing", 1, 5, 10, false, false, true,
     {RR("a", FAILED, 50, "timed out"), RR("b", OK, 1, "one rule")}, VERDICT_DELIVER, 1,
     "a=failed: timed out; b=1.000: one rule"},
    {"a failed filter without a reason", 1, 5, 10, false, false, true,
     {R("a", FAILED, 0), R("b", OK, 6)}, VERDICT_TAG, 6, "a=failed; b=6.000"},
    {"a filter that sent nothing", 1, 5, 10, false, false, true, {R("b", OK, 6)}, VERDICT_TAG, 6,
     "a=failed: no result; b=6.000"},
    {"a result the profile did not ask for is ignored", 1, 5, 10, false, false, true,
     {R("a", OK, 0), R("evil", OK, 1000), R("b", OK, 0)}, VERDICT_DELIVER, 0, "a=0.000; b=0.000"},
    {"hold wins over everything", 1, 5, 10, true, true, false, {R("a", OK, 50), R("b", OK, 0)},
     VERDICT_HOLD, 50, "a=50.000; b=0.000"},
    {"unknown sender challenged", 1, 5, 10, true, false, false, {R("a", OK, 0), R("b", OK, 0)},
     VERDICT_CHALLENGE, 0, "a=0.000; b=0.000"},
    {"unknown sender with a tagging score is still challenged", 1, 5, 10, true, false, false,
     {R("a", OK, 6), R("b", OK, 0)}, VERDICT_CHALLENGE, 6, "a=6.000; b=0.000"},
    {"quarantine wins over challenge", 1, 5, 10, true, false, false,
     {R("a", OK, 10), R("b", OK, 0)}, VERDICT_QUARANTINE, 10, "a=10.000; b=0.000"},
    {"a known sender is not challenged", 1, 5, 10, true, false, true,
     {R("a", OK, 0), R("b", OK, 0)}, VERDICT_DELIVER, 0, "a=0.000; b=0.000"},
    {"no challenge without the flag", 1, 5, 10, false, false, false,
     {R("a", OK, 0), R("b", OK, 0)}, VERDICT_DELIVER, 0, "a=0.000; b=0.000"},
    {"a threshold of 0 tags a zero score", 1, 0, 10, false, false, true,
     {R("a", OK, 0), R("b", OK, 0)}, VERDICT_TAG, 0, "a=0.000; b=0.000"},
};

/* Fills RESULTS from ROWS; returns how many. */
static size_t test_results_fill(const struct test_result *rows,
				struct pipeline_result results[TEST_RESULTS_MAX])
{
	size_t count = 0;

	memset(results, 0, sizeof(*results) * TEST_RESULTS_MAX);
	while (count < TEST_RESULTS_MAX && rows[count].name != NULL) {
		struct pipeline_result *result = &results[count];

		snprintf(result->name, sizeof(result->name), "%s", rows[count].name);
		result->status = rows[count].status;
		result->score = rows[count].score;
		result->reason = (char *)rows[count].reason;
		result->headers = (char *)rows[count].headers;
		count++;
	}
	return count;
}

static void test_profile_fill(const struct test_case *c, struct filter_profile *profile)
{
	memset(profile, 0, sizeof(*profile));
	strcpy(profile->filters[0].name, "a");
	profile->filters[0].weight = c->weight_a;
	strcpy(profile->filters[1].name, "b");
	profile->filters[1].weight = 1;
	profile->filter_count = 2;
	profile->tag_at = c->tag_at;
	profile->quarantine_at = c->quarantine_at;
	profile->challenge_unknown_senders = c->challenge;
	profile->hold = c->hold;
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(test_cases) / sizeof(test_cases[0]); i++) {
		const struct test_case *c = &test_cases[i];
		struct pipeline_result results[TEST_RESULTS_MAX];
		struct filter_profile profile;
		struct verdict_decision decision;
		size_t count = test_results_fill(c->results, results);

		test_profile_fill(c, &profile);
		verdict_combine(&profile, results, count, c->sender_known, &decision);
		if (decision.action != c->action || decision.score != c->score ||
		    strcmp(decision.reasons, c->reasons) != 0)
			fail_msg("%s: got %s %.3f \"%s\", want %s %.3f \"%s\"", c->what,
				 verdict_action_name(decision.action), decision.score,
				 decision.reasons, verdict_action_name(c->action), c->score,
				 c->reasons);
		verdict_decision_clear(&decision);
		assert_null(decision.headers);
		assert_null(decision.reasons);
	}
	verdict_decision_clear(NULL);
}

/* Header lines come out in the profile's order, whatever order the results
 * came in; a failed filter's lines are dropped; tag adds the verdict line. */
static void test_headers(void **state)
{
	static const struct test_case deliver = {
	    "headers", 1, 5, 10, false, false, true,
	    {{"b", OK, 0, NULL, "X-B: 1\r\n"}, {"a", OK, 0, NULL, "X-A: 1\r\n\tfolded\r\n"}, R(NULL, 0, 0)},
	    VERDICT_DELIVER, 0, NULL};
	struct pipeline_result results[TEST_RESULTS_MAX];
	struct filter_profile profile;
	struct verdict_decision decision;
	size_t count = test_results_fill(deliver.results, results);

	(void)state;
	test_profile_fill(&deliver, &profile);
	verdict_combine(&profile, results, count, true, &decision);
	assert_int_equal(decision.action, VERDICT_DELIVER);
	assert_string_equal(decision.headers, "X-A: 1\r\n\tfolded\r\nX-B: 1\r\n");
	assert_string_equal(decision.spam_headers,
			    "X-Popgate-Spam-Status: No, action=deliver\r\n"
			    "X-Popgate-Spam-Score: 0.000 (tag_at=5.000, quarantine_at=10.000)\r\n"
			    "X-Popgate-Spam-Reasons: a=0.000 x1.000;\r\n\tb=0.000 x1.000\r\n");
	verdict_decision_clear(&decision);

	/* Tagged: the same lines; the spam lines say so. */
	results[0].score = 5.5;
	results[0].reason = "five and a half";
	verdict_combine(&profile, results, count, true, &decision);
	assert_int_equal(decision.action, VERDICT_TAG);
	assert_string_equal(decision.headers, "X-A: 1\r\n\tfolded\r\nX-B: 1\r\n");
	assert_string_equal(decision.spam_headers,
			    "X-Popgate-Spam-Status: Yes, action=tag\r\n"
			    "X-Popgate-Spam-Score: 5.500 (tag_at=5.000, quarantine_at=10.000)\r\n"
			    "X-Popgate-Spam-Reasons: a=0.000 x1.000;\r\n"
			    "\tb=5.500 x1.000 (five and a half)\r\n");
	assert_string_equal(decision.explanation,
			    "a\t0.000\t1.000\t\nb\t5.500\t1.000\tfive and a half\n");
	verdict_decision_clear(&decision);
	results[0].reason = NULL;

	/* A failed filter's lines are not added. */
	results[1].status = PIPELINE_RESULT_FAILED;
	results[0].score = 0;
	verdict_combine(&profile, results, count, true, &decision);
	assert_string_equal(decision.headers, "X-B: 1\r\n");
	verdict_decision_clear(&decision);

	/* No results, nothing to add. */
	verdict_combine(&profile, results, 0, true, &decision);
	assert_string_equal(decision.headers, "");
	verdict_decision_clear(&decision);
}

/* A reason cannot end the header it is in or start another: control bytes
 * (CR, LF, tab, DEL, 8-bit) become '?', and it is cut to VERDICT_REASON_MAX;
 * the explanation keeps one line per filter. */
static void test_reasons_cleaned(void **state)
{
	static const struct test_case hostile = {
	    "hostile reason", 1, 5, 10, false, false, true,
	    {RR("a", OK, 1, "x\r\nX-Evil: 1\r\n\r\nbody\t\x7f\xff"), R("b", OK, 0), R(NULL, 0, 0)},
	    VERDICT_DELIVER, 1, NULL};
	struct pipeline_result results[TEST_RESULTS_MAX];
	struct filter_profile profile;
	struct verdict_decision decision;
	size_t count = test_results_fill(hostile.results, results);
	struct verdict_line *lines = NULL;
	size_t line_count = 0;
	char *long_reason = xmalloc(VERDICT_REASON_MAX * 2 + 1);

	(void)state;
	test_profile_fill(&hostile, &profile);
	verdict_combine(&profile, results, count, true, &decision);
	assert_non_null(strstr(decision.spam_headers, "a=1.000 x1.000 (x?\?X-Evil: 1?\?\?\?body?\?\?);"));
	assert_null(strstr(decision.spam_headers, "\nX-Evil"));
	assert_int_equal(verdict_explanation_parse(decision.explanation, &lines, &line_count), 0);
	assert_int_equal(line_count, 2);
	assert_string_equal(lines[0].reason, "x?\?X-Evil: 1?\?\?\?body?\?\?");
	assert_true(lines[0].score == 1.0 && lines[0].weight == 1.0 && !lines[0].failed);
	verdict_lines_free(&lines, line_count);
	verdict_decision_clear(&decision);

	memset(long_reason, 'r', VERDICT_REASON_MAX * 2);
	long_reason[VERDICT_REASON_MAX * 2] = '\0';
	results[0].reason = long_reason;
	results[1].status = PIPELINE_RESULT_FAILED;
	verdict_combine(&profile, results, count, true, &decision);
	assert_int_equal(verdict_explanation_parse(decision.explanation, &lines, &line_count), 0);
	assert_int_equal(strlen(lines[0].reason), VERDICT_REASON_MAX);
	assert_true(lines[1].failed);
	verdict_lines_free(&lines, line_count);
	verdict_decision_clear(&decision);
	free(long_reason);

	/* Lines of another shape (an older verdict's text) are skipped. */
	assert_int_equal(verdict_explanation_parse("a=0.000; b=1.000", &lines, &line_count), 0);
	assert_int_equal(line_count, 0);
	assert_null(lines);
	assert_int_equal(verdict_explanation_parse(NULL, &lines, &line_count), 0);
	assert_int_equal(line_count, 0);
}

/* The built-in profile gives today's behaviour: the trace and address
 * filters (which never score) and every message delivered with the trace
 * header alone. */
static void test_default_profile(void **state)
{
	const struct filter_profile *profile = filter_profile_default();
	struct pipeline_result results[2];
	struct verdict_decision decision;

	(void)state;
	assert_int_equal(profile->filter_count, 2);
	assert_string_equal(profile->filters[0].name, "trace");
	assert_string_equal(profile->filters[1].name, "address");
	assert_false(profile->hold);
	assert_false(profile->challenge_unknown_senders);
	assert_non_null(filter_find("trace"));
	assert_non_null(filter_find("address"));
	assert_null(filter_find("nosuch"));
	memset(results, 0, sizeof(results));
	strcpy(results[0].name, "trace");
	results[0].status = PIPELINE_RESULT_OK;
	results[0].headers = "Received: from a by b (popgate) with POP3\r\n";
	strcpy(results[1].name, "address");
	results[1].status = PIPELINE_RESULT_OK;
	verdict_combine(profile, results, 2, false, &decision);
	assert_int_equal(decision.action, VERDICT_DELIVER);
	assert_string_equal(decision.headers, "Received: from a by b (popgate) with POP3\r\n");
	assert_string_equal(decision.reasons, "trace=0.000; address=0.000");
	verdict_decision_clear(&decision);
}

static void test_action_names(void **state)
{
	(void)state;
	assert_string_equal(verdict_action_name(VERDICT_DELIVER), "deliver");
	assert_string_equal(verdict_action_name(VERDICT_TAG), "tag");
	assert_string_equal(verdict_action_name(VERDICT_QUARANTINE), "quarantine");
	assert_string_equal(verdict_action_name(VERDICT_CHALLENGE), "challenge");
	assert_string_equal(verdict_action_name(VERDICT_HOLD), "hold");
	assert_string_equal(verdict_action_name((enum verdict_action)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_reasons_cleaned),
	    cmocka_unit_test(test_default_profile),
	    cmocka_unit_test(test_action_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
