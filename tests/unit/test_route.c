/*
 * test_route.c — the parts of pipeline/route.c that need no running daemon:
 * where each action sends a message, the job a fetched message gets (with
 * its owner's profile, read from a temp store), and the results a verdict
 * is combined from (the senders filter judged here, a worker's result under
 * its name dropped). (The verdict callback itself runs in the integration
 * tests: every delivered message passes through it.)
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
#include "pipeline/route.h"
#include "popgate.h"
#include "store/profile.h"
#include "store/sender_list.h"
#include "store/user.h"
#include "test_support.h"

static int setup(void **state)
{
	return test_store_setup(state, "route");
}

static void test_action_states(void **state)
{
	(void)state;
	assert_int_equal(route_action_state(VERDICT_DELIVER), MESSAGE_DELIVERY);
	assert_int_equal(route_action_state(VERDICT_TAG), MESSAGE_DELIVERY);
	assert_int_equal(route_action_state(VERDICT_QUARANTINE), MESSAGE_QUARANTINE);
	assert_int_equal(route_action_state(VERDICT_CHALLENGE), MESSAGE_CHALLENGED);
	/* Hold: beside the suspects, for the administrator. */
	assert_int_equal(route_action_state(VERDICT_HOLD), MESSAGE_SUSPECT);
}

static void test_job_fill(void **state)
{
	struct test_store *f = *state;
	struct filter_profile profile;
	struct store_message message = {
	    .id = "0123456789abcdef01234567", .account_id = 5, .received_at = 42};
	struct store_account account = {
	    .id = 5, .name = "alice@gmx.de@pop.gmx.net", .login = "alice@gmx.de",
	    .host = "pop.gmx.net", .user_id = 9};
	struct pipeline_job job;
	char *recipient[1];
	struct popgate pg = {.store = f->store};

	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_string_equal(job.id, message.id);
	/* [depot] off: the worker is not asked for the archive's fields. */
	assert_false(job.archive);
	assert_int_equal(job.received_at, 42);
	assert_string_equal(job.account, "alice@gmx.de@pop.gmx.net");
	assert_string_equal(job.provider_host, "pop.gmx.net");
	assert_int_equal(job.source, PIPELINE_SOURCE_FETCHED);
	assert_int_equal(job.owner.account_id, 5);
	assert_int_equal(job.owner.user_id, 9);
	assert_null(job.envelope.sender);
	assert_int_equal(job.envelope.recipient_count, 1);
	assert_string_equal(job.envelope.recipients[0], "alice@gmx.de");
	/* User 9 does not exist: the stored default profile. */
	assert_ptr_equal(job.profile, &profile);
	assert_int_equal(profile.filter_count, 3);
	assert_string_equal(profile.filters[2].name, "senders");
	assert_true(profile.tag_at == 5.0 && profile.quarantine_at == 10.0);

	/* A login that is not an address gives no recipient; a missing
	 * account gives "-" as its name and host (what the log shows for an
	 * unknown account), not empty fields an encoder would refuse. */
	account.login = "alice";
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_int_equal(job.envelope.recipient_count, 0);
	assert_null(job.envelope.recipients);
	memset(&account, 0, sizeof(account));
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_string_equal(job.account, "-");
	assert_string_equal(job.provider_host, "-");
	assert_int_equal(job.owner.account_id, 0);
	assert_int_equal(job.source, PIPELINE_SOURCE_FETCHED);

	/* Only mail submitted over SMTP has no account: such a message
	 * resumed from the store (control_resume_processing) is submitted. */
	message.account_id = 0;
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_int_equal(job.source, PIPELINE_SOURCE_SUBMITTED);
}

/* The owner's own profile, read at each job: a change shows at the next. */
static void test_job_profile_of_owner(void **state)
{
	struct test_store *f = *state;
	struct store_message message = {.id = "0123456789abcdef01234567", .received_at = 42};
	struct store_account account = {.id = 5, .name = "a@h", .login = "a", .host = "h"};
	static const char *const keys[] = {"tag_at", "quarantine_at", "senders", "hold"};
	static const char *const values[] = {"1.5", "2.25", "off", "yes"};
	struct filter_profile profile;
	struct pipeline_job job;
	char *recipient[1];
	char err[256];
	int64_t user_id;
	struct popgate pg = {.store = f->store};

	message.account_id = 5;
	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &user_id, err, sizeof(err)),
			 0);
	assert_int_equal(store_profile_add(f->store, "mine", err, sizeof(err)), 0);
	assert_int_equal(store_profile_set(f->store, "mine", keys, values, 4, err, sizeof(err)), 0);
	account.user_id = user_id;
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_int_equal(profile.filter_count, 3);
	assert_int_equal(store_profile_assign(f->store, "carol", "mine", err, sizeof(err)), 0);
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_int_equal(profile.filter_count, 2);
	assert_true(profile.tag_at == 1.5 && profile.quarantine_at == 2.25);
	assert_true(profile.hold);
	/* A profile that cannot be read: the built-in one, never none. */
	test_exec_sql(f->store, "DROP TABLE filter_profile_filter");
	route_job_fill(&pg, &message, &account, &job, recipient, &profile);
	assert_int_equal(profile.filter_count, filter_profile_default()->filter_count);
}

/* The senders filter is judged here, over the worker's sender; a result a
 * worker sent under its name is dropped, not combined. */
static void test_results_complete(void **state)
{
	struct test_store *f = *state;
	struct filter_profile profile;
	struct pipeline_result forged[2] = {0};
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	struct pipeline_job job = {.profile = &profile};
	struct pipeline_result *results = NULL;
	char err[256];
	size_t count;

	assert_int_equal(store_profile_for_user(f->store, 0, &profile), 0);
	assert_int_equal(
	    store_sender_list_add(f->store, NULL, SENDER_LIST_BLOCK, "evil.example", err, sizeof(err)),
	    0);
	strcpy(forged[0].name, "trace");
	forged[0].status = PIPELINE_RESULT_OK;
	strcpy(forged[1].name, "senders");
	forged[1].status = PIPELINE_RESULT_OK;
	forged[1].score = -1000;
	verdict.results = forged;
	verdict.result_count = 2;
	verdict.sender = "Bad@Evil.Example";
	count = route_results_complete(f->store, &job, &verdict, &results);
	assert_int_equal(count, 2);
	assert_string_equal(results[0].name, "trace");
	assert_string_equal(results[1].name, "senders");
	assert_true(results[1].score == SENDERS_BLOCK_SCORE);
	assert_string_equal(results[1].reason, "sender blocked by the global list entry evil.example");
	route_results_free(&results, count);
	assert_null(results);

	/* No sender: nothing to judge, no score. */
	verdict.sender = NULL;
	count = route_results_complete(f->store, &job, &verdict, &results);
	assert_true(results[1].score == 0);
	assert_string_equal(results[1].reason, "no sender address");
	route_results_free(&results, count);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_action_states),
	    cmocka_unit_test_setup_teardown(test_job_fill, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_job_profile_of_owner, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_results_complete, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
