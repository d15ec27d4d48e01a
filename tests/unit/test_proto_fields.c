/*
 * test_proto_fields.c — the fields of frame version 4: a job's envelope,
 * source, owner and profile, a verdict's per-filter results, and the rule
 * for fields a reader does not know (skipped when optional, refused when
 * marked required), at the top of a frame and inside nested fields.
 *
 * Owns: nothing outside this process. Must never: depend on another
 * module's behaviour beyond the x* allocators.
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
#include "pipeline/proto.h"

#include "test_proto_support.h"

static void test_job_fill(struct pipeline_job *job)
{
	memset(job, 0, sizeof(*job));
	strcpy(job->id, TEST_ID);
	strcpy(job->account, "alice@gmx.de@pop.gmx.net");
	strcpy(job->provider_host, "pop.gmx.net");
	job->received_at = TEST_RECEIVED_AT;
	job->profile = &test_profile;
}

/* A submitted message's envelope, source and owner travel with its job. */
static void test_job_envelope_round_trip(void **state)
{
	char *recipients[] = {"bob@example.org", "carol@example.org"};
	struct pipeline_job in;
	struct pipeline_job out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	test_job_fill(&in);
	in.source = PIPELINE_SOURCE_SUBMITTED;
	in.owner.user_id = 7;
	in.owner.account_id = INT64_MAX;
	in.envelope.sender = "alice@example.net";
	in.envelope.recipients = recipients;
	in.envelope.recipient_count = 2;
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_int_equal(out.source, PIPELINE_SOURCE_SUBMITTED);
	assert_int_equal(out.owner.user_id, 7);
	assert_int_equal(out.owner.account_id, INT64_MAX);
	assert_string_equal(out.envelope.sender, "alice@example.net");
	assert_int_equal(out.envelope.recipient_count, 2);
	assert_string_equal(out.envelope.recipients[0], "bob@example.org");
	assert_string_equal(out.envelope.recipients[1], "carol@example.org");
	proto_job_clear(&out);
	free(frame);

	/* What the decoder would refuse, the encoder refuses. */
	in.envelope.sender = "not an address";
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad envelope sender");
	in.envelope.sender = NULL;
	recipients[1] = "two@@example.org";
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad envelope recipients");
	recipients[1] = "carol@example.org";
	in.source = (enum pipeline_source)(PIPELINE_SOURCE_LAST + 1);
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad source");
	in.source = PIPELINE_SOURCE_IMPORTED;
	in.owner.user_id = -1;
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad owner");
	in.owner.user_id = 0;
	in.profile = NULL;
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad profile");
}

/* Each new job field, and each profile field, broken in turn. */
static void test_bad_job_extensions_rejected(void **state)
{
	static const unsigned char when[8] = {0, 0, 0, 0, 0x6b, 0x09, 0x5f, 0xf5};
	static const unsigned char zero64[8] = {0};
	static const unsigned char sources[] = {PIPELINE_SOURCE_LAST + 1, 0xff};
	static const unsigned char weight[4] = {0, 0, 0x03, 0xe8};
	/* 1,000,001 points: one more than FILTER_SCORE_MAX. */
	static const unsigned char too_much[4] = {0x3b, 0x9a, 0xcd, 0xe8};
	static const unsigned char flags_bad = 0x04;
	static const unsigned char flags_ok = PROTO_PROFILE_CHALLENGE | PROTO_PROFILE_HOLD;
	size_t profile_len;
	unsigned char *profile = test_profile_value(&profile_len);
	struct test_field fields[] = {
	    {PROTO_JOB_ID, TEST_ID, SPOOL_ID_LEN},
	    {PROTO_JOB_ACCOUNT, "a@b", 3},
	    {PROTO_JOB_PROVIDER_HOST, "b", 1},
	    {PROTO_JOB_RECEIVED_AT, when, 8},
	    {PROTO_JOB_PROFILE, profile, profile_len},
	    {0, NULL, 0}, /* the field under test */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(sources); i++) {
		fields[5] = (struct test_field){PROTO_JOB_SOURCE, &sources[i], 1};
		test_job_fields_rejected(fields, 6);
	}
	fields[5] = (struct test_field){PROTO_JOB_OWNER_USER, zero64, 8};
	test_job_fields_rejected(fields, 6);
	fields[5] = (struct test_field){PROTO_JOB_OWNER_ACCOUNT, zero64, 7};
	test_job_fields_rejected(fields, 6);
	fields[5] = (struct test_field){PROTO_JOB_ENVELOPE_SENDER, "a b@c", 5};
	test_job_fields_rejected(fields, 6);
	fields[5] = (struct test_field){PROTO_JOB_ENVELOPE_RECIPIENTS, "a@b\n", 4};
	test_job_fields_rejected(fields, 6);
	free(profile);

	/* Profiles: every case below is one bad profile. */
	for (int which = 0; which < 7; which++) {
		struct test_field filter_fields[] = {
		    {PROTO_FILTER_NAME, "trace", 5},
		    {PROTO_FILTER_WEIGHT, weight, 4},
		};
		struct test_field profile_fields[FILTER_PROFILE_MAX + 4];
		size_t filter_len;
		size_t count = 0;
		unsigned char *filter;

		if (which == 0)
			filter_fields[0].data = "Trace"; /* upper case */
		if (which == 1)
			filter_fields[1].data = too_much;
		if (which == 2)
			filter_fields[1].len = 3;
		filter = test_fields_build(filter_fields, 2, &filter_len);
		profile_fields[count++] = (struct test_field){PROTO_PROFILE_FILTER, filter, filter_len};
		/* 3: the same filter twice; 4: one filter too many (and the limit
		 * itself is fine: test_results_round_trip). */
		if (which == 3)
			profile_fields[count++] = profile_fields[0];
		profile_fields[count++] = (struct test_field){PROTO_PROFILE_TAG_AT, weight, 4};
		profile_fields[count++] =
		    (struct test_field){PROTO_PROFILE_QUARANTINE_AT, which == 5 ? too_much : weight, 4};
		profile_fields[count++] =
		    (struct test_field){PROTO_PROFILE_FLAGS, which == 6 ? &flags_bad : &flags_ok, 1};
		if (which == 4) {
			free(filter);
			profile = test_profile_of(FILTER_PROFILE_MAX + 1, &profile_len);
			fields[4] = (struct test_field){PROTO_JOB_PROFILE, profile, profile_len};
			test_job_fields_rejected(fields, 5);
			free(profile);
			continue;
		}
		profile = test_fields_build(profile_fields, count, &profile_len);
		fields[4] = (struct test_field){PROTO_JOB_PROFILE, profile, profile_len};
		test_job_fields_rejected(fields, 5);
		free(profile);
		free(filter);
	}
}

/* Results of every shape come back as sent: failed ones, negative and
 * fractional scores, reasons, headers, and the most there may be. */
static void test_results_round_trip(void **state)
{
	struct pipeline_result results[PIPELINE_RESULTS_MAX];
	struct pipeline_verdict in = {.outcome = PIPELINE_JUDGED, .results = results};
	struct pipeline_verdict out;
	struct pipeline_job job;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	memset(results, 0, sizeof(results));
	strcpy(in.id, TEST_ID);
	for (size_t i = 0; i < PIPELINE_RESULTS_MAX; i++) {
		snprintf(results[i].name, sizeof(results[i].name), "filter-%zu", i);
		results[i].status = PIPELINE_RESULT_OK;
		results[i].score = (double)i - 7.125;
	}
	results[0].headers = "X-A: b\r\n";
	results[0].reason = "matched rule 7: \"free money\"";
	results[1].status = PIPELINE_RESULT_FAILED;
	results[1].reason = "timed out";
	results[2].score = FILTER_SCORE_MAX;
	results[3].score = -FILTER_SCORE_MAX;
	memset(results[4].name, 'z', FILTER_NAME_MAX);
	in.result_count = PIPELINE_RESULTS_MAX;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_int_equal(out.result_count, PIPELINE_RESULTS_MAX);
	for (size_t i = 0; i < PIPELINE_RESULTS_MAX; i++) {
		assert_string_equal(out.results[i].name, results[i].name);
		assert_int_equal(out.results[i].status, results[i].status);
		assert_true(out.results[i].score == results[i].score);
		if (results[i].reason == NULL)
			assert_null(out.results[i].reason);
		else
			assert_string_equal(out.results[i].reason, results[i].reason);
		if (results[i].headers == NULL)
			assert_null(out.results[i].headers);
		else
			assert_string_equal(out.results[i].headers, results[i].headers);
	}
	proto_verdict_clear(&out);
	free(frame);

	/* One result too many, two of one name, a score past the limit, a bad
	 * name, status or reason: the encoder refuses each. */
	in.result_count = PIPELINE_RESULTS_MAX + 1;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	in.result_count = 2;
	strcpy(results[1].name, results[0].name);
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "two results for one filter");
	strcpy(results[1].name, "other");
	results[1].score = FILTER_SCORE_MAX * 2;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad score");
	results[1].score = 0.0 / 0.0;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	results[1].score = 0;
	strcpy(results[1].name, "Other");
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad filter name");
	strcpy(results[1].name, "other");
	results[1].status = 3;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	results[1].status = PIPELINE_RESULT_OK;
	results[1].reason = "two\nlines";
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad reason");

	/* A profile of FILTER_PROFILE_MAX filters is the limit, and fine. */
	{
		size_t profile_len;
		unsigned char *profile = test_profile_of(FILTER_PROFILE_MAX, &profile_len);
		static const unsigned char when[8] = {0, 0, 0, 0, 0x6b, 0x09, 0x5f, 0xf5};
		struct test_field fields[] = {
		    {PROTO_JOB_ID, TEST_ID, SPOOL_ID_LEN},
		    {PROTO_JOB_ACCOUNT, "a@b", 3},
		    {PROTO_JOB_PROVIDER_HOST, "b", 1},
		    {PROTO_JOB_RECEIVED_AT, when, 8},
		    {PROTO_JOB_PROFILE, profile, profile_len},
		};

		frame = test_frame_build(PROTO_TYPE_JOB, fields, 5, &len);
		assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), 0);
		assert_int_equal(job.profile->filter_count, FILTER_PROFILE_MAX);
		assert_string_equal(job.profile->filters[FILTER_PROFILE_MAX - 1].name, "p");
		proto_job_clear(&job);
		free(frame);
		free(profile);
	}
}

/* A hostile worker's results: each refused, with the verdict around it. */
static void test_bad_results_rejected(void **state)
{
	static const unsigned char outcome = PIPELINE_JUDGED;
	static const unsigned char ok = PIPELINE_RESULT_OK;
	static const unsigned char statuses[] = {0, 3, 0xff};
	static const unsigned char score[4] = {0, 0, 0, 0};
	static const unsigned char score8[8] = {0};
	static const unsigned char too_much[4] = {0xc4, 0x65, 0x35, 0xff}; /* -1e9 - 1 */
	char long_name[FILTER_NAME_MAX + 1];
	char long_reason[PROTO_REASON_MAX + 1];
	struct test_field result_fields[] = {
	    {PROTO_RESULT_NAME, "trace", 5},
	    {PROTO_RESULT_STATUS, &ok, 1},
	    {PROTO_RESULT_SCORE, score, 4},
	    {PROTO_RESULT_REASON, "fine", 4},
	};
	struct test_field fields[] = {
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
	    {PROTO_VERDICT_RESULT, NULL, 0},
	    {PROTO_VERDICT_RESULT, NULL, 0},
	};
	unsigned char *value;
	size_t value_len;

	(void)state;
	memset(long_name, 'a', sizeof(long_name));
	memset(long_reason, 'r', sizeof(long_reason));
/* Builds the result from RESULT_FIELDS (the first COUNT) and expects the
 * verdict holding it (RESULTS times) refused. */
#define TEST_RESULT_REJECTED(count, results)                                                       \
	do {                                                                                       \
		value = test_fields_build(result_fields, (count), &value_len);                     \
		fields[2].data = fields[3].data = value;                                           \
		fields[2].len = fields[3].len = value_len;                                         \
		test_verdict_fields_rejected(fields, 2 + (results));                               \
		free(value);                                                                       \
	} while (0)

	/* The base result is valid: once is fine, twice is one filter twice. */
	{
		struct pipeline_verdict verdict;
		unsigned char *frame;
		size_t len;
		size_t consumed;
		const char *err = NULL;

		value = test_fields_build(result_fields, 4, &value_len);
		fields[2].data = value;
		fields[2].len = value_len;
		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
		assert_string_equal(verdict.results[0].reason, "fine");
		proto_verdict_clear(&verdict);
		free(frame);
		free(value);
	}
	TEST_RESULT_REJECTED(4, 2);
	TEST_RESULT_REJECTED(2, 1); /* no score */
	result_fields[0].len = 0;   /* empty name */
	TEST_RESULT_REJECTED(4, 1);
	result_fields[0].data = long_name; /* one character too long */
	result_fields[0].len = sizeof(long_name);
	TEST_RESULT_REJECTED(4, 1);
	result_fields[0].data = "tr ce";
	result_fields[0].len = 5;
	TEST_RESULT_REJECTED(4, 1);
	result_fields[0].data = "trace";
	for (size_t i = 0; i < sizeof(statuses); i++) {
		result_fields[1].data = &statuses[i];
		TEST_RESULT_REJECTED(4, 1);
	}
	result_fields[1].data = &ok;
	result_fields[2].data = score8; /* a score is 4 bytes */
	result_fields[2].len = 8;
	TEST_RESULT_REJECTED(4, 1);
	result_fields[2].len = 4;
	result_fields[2].data = too_much;
	TEST_RESULT_REJECTED(4, 1);
	result_fields[2].data = score;
	result_fields[3].data = long_reason;
	result_fields[3].len = sizeof(long_reason);
	TEST_RESULT_REJECTED(4, 1);
	result_fields[3].data = "a\r\nX-Forged: yes";
	result_fields[3].len = strlen(result_fields[3].data);
	TEST_RESULT_REJECTED(4, 1);
	result_fields[3].len = 0;
	TEST_RESULT_REJECTED(4, 1);
	/* A nested field running past its RESULT (though not past the frame). */
	result_fields[3].data = "fine";
	result_fields[3].len = 4;
	value = test_fields_build(result_fields, 4, &value_len);
	fields[2].data = value;
	fields[2].len = value_len - 1;
	fields[3] = (struct test_field){PROTO_VERDICT_SENDER, "a@b", 3};
	test_verdict_fields_rejected(fields, 4);
	free(value);
#undef TEST_RESULT_REJECTED
}

/* An optional field this reader does not know — at the top of a job or a
 * verdict, inside a RESULT, inside a PROFILE or one of its FILTERs — is
 * skipped, and everything around it still decodes. */
static void test_unknown_optional_fields_skipped(void **state)
{
	static const unsigned char outcome = PIPELINE_JUDGED;
	static const unsigned char ok = PIPELINE_RESULT_OK;
	static const unsigned char score[4] = {0, 0, 0x05, 0xdc};
	static const unsigned char when[8] = {0, 0, 0, 0, 0x6b, 0x09, 0x5f, 0xf5};
	static const unsigned char weight[4] = {0, 0, 0x03, 0xe8};
	static const unsigned char flags = PROTO_PROFILE_HOLD;
	/* Tags well past the known ones, without PROTO_TAG_REQUIRED. */
	const uint16_t unknown = 0x7f01;
	struct test_field result_fields[] = {
	    {unknown, "future", 6},
	    {PROTO_RESULT_NAME, "trace", 5},
	    {PROTO_RESULT_STATUS, &ok, 1},
	    {unknown + 1, "", 0},
	    {PROTO_RESULT_SCORE, score, 4},
	    {PROTO_RESULT_HEADERS, "X-A: b\r\n", 8},
	};
	struct pipeline_verdict verdict;
	struct pipeline_job job;
	unsigned char *result;
	unsigned char *frame;
	size_t result_len;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	result = test_fields_build(result_fields, 6, &result_len);
	{
		struct test_field fields[] = {
		    {unknown, "\x01\x02\x03", 3},
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_RESULT, result, result_len},
		    {unknown, "again", 5}, /* an unknown field may repeat */
		    {PROTO_VERDICT_SENDER, "a@b", 3},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 6, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
		assert_int_equal(consumed, len);
		assert_string_equal(verdict.id, TEST_ID);
		assert_int_equal(verdict.outcome, PIPELINE_JUDGED);
		assert_string_equal(verdict.sender, "a@b");
		assert_int_equal(verdict.result_count, 1);
		assert_string_equal(verdict.results[0].name, "trace");
		assert_true(verdict.results[0].score == 1.5);
		assert_string_equal(verdict.results[0].headers, "X-A: b\r\n");
		proto_verdict_clear(&verdict);
		free(frame);
	}
	free(result);
	{
		struct test_field filter_fields[] = {
		    {PROTO_FILTER_NAME, "trace", 5},
		    {unknown, "x", 1},
		    {PROTO_FILTER_WEIGHT, weight, 4},
		};
		size_t filter_len;
		unsigned char *filter = test_fields_build(filter_fields, 3, &filter_len);
		struct test_field profile_fields[] = {
		    {PROTO_PROFILE_FILTER, filter, filter_len},
		    {unknown, "y", 1},
		    {PROTO_PROFILE_TAG_AT, weight, 4},
		    {PROTO_PROFILE_QUARANTINE_AT, weight, 4},
		    {PROTO_PROFILE_FLAGS, &flags, 1},
		};
		size_t profile_len;
		unsigned char *profile = test_fields_build(profile_fields, 5, &profile_len);
		struct test_field fields[] = {
		    {PROTO_JOB_ID, TEST_ID, SPOOL_ID_LEN},
		    {unknown, "z", 1},
		    {PROTO_JOB_ACCOUNT, "a@b", 3},
		    {PROTO_JOB_PROVIDER_HOST, "b", 1},
		    {PROTO_JOB_RECEIVED_AT, when, 8},
		    {PROTO_JOB_PROFILE, profile, profile_len},
		};

		frame = test_frame_build(PROTO_TYPE_JOB, fields, 6, &len);
		assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), 0);
		assert_int_equal(consumed, len);
		assert_string_equal(job.account, "a@b");
		assert_int_equal(job.profile->filter_count, 1);
		assert_string_equal(job.profile->filters[0].name, "trace");
		assert_true(job.profile->filters[0].weight == 1.0);
		assert_true(job.profile->hold);
		proto_job_clear(&job);
		free(frame);
		free(profile);
		free(filter);
	}
}

/* The same places, with the unknown field marked required: the frame is
 * refused, since what it means cannot be known. */
static void test_unknown_required_fields_refused(void **state)
{
	static const unsigned char outcome = PIPELINE_JUDGED;
	static const unsigned char ok = PIPELINE_RESULT_OK;
	static const unsigned char score[4] = {0};
	const uint16_t required = PROTO_TAG_REQUIRED | 0x0f01;
	struct test_field result_fields[] = {
	    {PROTO_RESULT_NAME, "trace", 5},
	    {PROTO_RESULT_STATUS, &ok, 1},
	    {PROTO_RESULT_SCORE, score, 4},
	    {required, "x", 1},
	};
	struct pipeline_verdict verdict;
	unsigned char *result;
	unsigned char *frame;
	size_t result_len;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	/* In the verdict itself, and inside a result. */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {required, "x", 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
		assert_string_equal(err, "unknown required field");
		free(frame);
	}
	result = test_fields_build(result_fields, 4, &result_len);
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_RESULT, result, result_len},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
		assert_string_equal(err, "unknown required field");
		free(frame);
		/* Without it the same result is fine. */
		free(result);
		result = test_fields_build(result_fields, 3, &result_len);
		fields[1].data = result;
		fields[1].len = result_len;
		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
		proto_verdict_clear(&verdict);
		free(frame);
	}
	free(result);
	/* In a job. */
	{
		size_t profile_len;
		unsigned char *profile = test_profile_value(&profile_len);
		static const unsigned char when[8] = {0, 0, 0, 0, 0x6b, 0x09, 0x5f, 0xf5};
		struct test_field fields[] = {
		    {PROTO_JOB_ID, TEST_ID, SPOOL_ID_LEN},
		    {PROTO_JOB_ACCOUNT, "a@b", 3},
		    {PROTO_JOB_PROVIDER_HOST, "b", 1},
		    {PROTO_JOB_RECEIVED_AT, when, 8},
		    {PROTO_JOB_PROFILE, profile, profile_len},
		    {required, "", 0},
		};
		struct pipeline_job job;

		frame = test_frame_build(PROTO_TYPE_JOB, fields, 6, &len);
		assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), -1);
		assert_string_equal(err, "unknown required field");
		free(frame);
		free(profile);
	}
	/* A known tag with the bit set is still the known field. */
	{
		struct test_field fields[] = {
		    {PROTO_TAG_REQUIRED | PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 2, &len);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
		proto_verdict_clear(&verdict);
		free(frame);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_envelope_round_trip),
	    cmocka_unit_test(test_bad_job_extensions_rejected),
	    cmocka_unit_test(test_results_round_trip),
	    cmocka_unit_test(test_bad_results_rejected),
	    cmocka_unit_test(test_unknown_optional_fields_skipped),
	    cmocka_unit_test(test_unknown_required_fields_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
