/*
 * test_route.c — the parts of pipeline/route.c that need no running daemon:
 * where each action sends a message, and the job a fetched message gets.
 * (The verdict callback itself runs in the integration tests: every
 * delivered message passes through it.)
 *
 * Owns: nothing. Must never: open a store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/route.h"

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
	struct store_message message = {
	    .id = "0123456789abcdef01234567", .account_id = 5, .received_at = 42};
	struct store_account account = {
	    .id = 5, .name = "alice@gmx.de@pop.gmx.net", .login = "alice@gmx.de",
	    .host = "pop.gmx.net", .user_id = 9};
	struct pipeline_job job;
	char *recipient[1];

	(void)state;
	route_job_fill(&message, &account, &job, recipient);
	assert_string_equal(job.id, message.id);
	assert_int_equal(job.received_at, 42);
	assert_string_equal(job.account, "alice@gmx.de@pop.gmx.net");
	assert_string_equal(job.provider_host, "pop.gmx.net");
	assert_int_equal(job.source, PIPELINE_SOURCE_FETCHED);
	assert_int_equal(job.owner.account_id, 5);
	assert_int_equal(job.owner.user_id, 9);
	assert_null(job.envelope.sender);
	assert_int_equal(job.envelope.recipient_count, 1);
	assert_string_equal(job.envelope.recipients[0], "alice@gmx.de");
	assert_null(job.profile);

	/* A login that is not an address gives no recipient; a missing
	 * account gives "-" as its name and host (what the log shows for an
	 * unknown account), not empty fields an encoder would refuse. */
	account.login = "alice";
	route_job_fill(&message, &account, &job, recipient);
	assert_int_equal(job.envelope.recipient_count, 0);
	assert_null(job.envelope.recipients);
	memset(&account, 0, sizeof(account));
	route_job_fill(&message, &account, &job, recipient);
	assert_string_equal(job.account, "-");
	assert_string_equal(job.provider_host, "-");
	assert_int_equal(job.owner.account_id, 0);
	assert_int_equal(job.source, PIPELINE_SOURCE_FETCHED);

	/* Only mail submitted over SMTP has no account: such a message
	 * resumed from the store (control_resume_processing) is submitted. */
	message.account_id = 0;
	route_job_fill(&message, &account, &job, recipient);
	assert_int_equal(job.source, PIPELINE_SOURCE_SUBMITTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_action_states),
	    cmocka_unit_test(test_job_fill),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
