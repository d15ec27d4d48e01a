/*
 * test_proto.c — the frames between the main process and the workers:
 * round trips, incomplete frames, and rejection of every kind of bad frame,
 * the setup frame's among them.
 * The fields of version 4 (envelope, profile, results) and the skipping of
 * unknown fields are in test_proto_fields.c.
 *
 * Owns: nothing outside this process. Must never: depend on another
 * module's behaviour beyond the x* allocators.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
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

static unsigned char *test_job_frame(size_t *len_r)
{
	struct pipeline_job job;
	unsigned char *frame;
	const char *err = NULL;

	test_job_fill(&job);
	assert_int_equal(proto_job_encode(&job, &frame, len_r, &err), 0);
	return frame;
}

/* A verdict frame with one result, "trace", adding the header lines PREPEND,
 * or with no result when PREPEND is NULL. */
static unsigned char *test_verdict_frame(const char *prepend, size_t *len_r)
{
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	struct pipeline_result result = {.name = "trace", .status = PIPELINE_RESULT_OK};
	unsigned char *frame;
	const char *err = NULL;

	strcpy(verdict.id, TEST_ID);
	result.headers = (char *)prepend;
	if (prepend != NULL) {
		verdict.results = &result;
		verdict.result_count = 1;
	}
	assert_int_equal(proto_verdict_encode(&verdict, &frame, len_r, &err), 0);
	return frame;
}

static void test_job_round_trip(void **state)
{
	struct pipeline_job in;
	struct pipeline_job out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	test_job_fill(&in);
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_string_equal(out.id, in.id);
	assert_string_equal(out.account, in.account);
	assert_string_equal(out.provider_host, in.provider_host);
	assert_int_equal(out.received_at, TEST_RECEIVED_AT);
	/* Unset, the source is "fetched" and owner and envelope are absent. */
	assert_int_equal(out.source, PIPELINE_SOURCE_FETCHED);
	assert_int_equal(out.owner.user_id, 0);
	assert_int_equal(out.owner.account_id, 0);
	assert_null(out.envelope.sender);
	assert_int_equal(out.envelope.recipient_count, 0);
	/* The profile comes back whole. */
	assert_non_null(out.profile);
	assert_int_equal(out.profile->filter_count, 2);
	assert_string_equal(out.profile->filters[0].name, "trace");
	assert_true(out.profile->filters[0].weight == 1.0);
	assert_string_equal(out.profile->filters[1].name, "bayes-2");
	assert_true(out.profile->filters[1].weight == -0.5);
	assert_true(out.profile->tag_at == 4.25);
	assert_true(out.profile->quarantine_at == 12.0);
	assert_true(out.profile->challenge_unknown_senders);
	assert_true(out.profile->hold);
	proto_job_clear(&out);
	assert_null(out.profile);
	free(frame);

	/* The extremes of every field survive too. */
	memset(in.account, 'a', sizeof(in.account) - 1);
	memset(in.provider_host, 'h', sizeof(in.provider_host) - 1);
	in.received_at = PROTO_RECEIVED_AT_MAX;
	assert_int_equal(proto_job_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_int_equal(strlen(out.account), sizeof(out.account) - 1);
	assert_int_equal(strlen(out.provider_host), sizeof(out.provider_host) - 1);
	assert_int_equal(out.received_at, PROTO_RECEIVED_AT_MAX);
	proto_job_clear(&out);
	free(frame);
	proto_job_clear(NULL);
}

static void test_verdict_round_trip(void **state)
{
	static const char prepend[] = "Received: from a by b (popgate) with POP3\r\n"
				      "\tid 0123 for <x@y>; Sat, 28 Nov 2026 02:14:13 +0000\r\n"
				      "X-Spam: no\r\n";
	struct pipeline_verdict verdict;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	frame = test_verdict_frame(prepend, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, len);
	assert_string_equal(verdict.id, TEST_ID);
	assert_int_equal(verdict.outcome, PIPELINE_JUDGED);
	assert_int_equal(verdict.result_count, 1);
	assert_string_equal(verdict.results[0].name, "trace");
	assert_int_equal(verdict.results[0].status, PIPELINE_RESULT_OK);
	assert_true(verdict.results[0].score == 0);
	assert_null(verdict.results[0].reason);
	assert_string_equal(verdict.results[0].headers, prepend);
	assert_null(verdict.reason);
	assert_null(verdict.job);
	proto_verdict_clear(&verdict);
	assert_null(verdict.results);
	assert_int_equal(verdict.result_count, 0);
	free(frame);

	/* Without results, none come back. */
	frame = test_verdict_frame(NULL, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, len);
	assert_int_equal(verdict.result_count, 0);
	assert_null(verdict.results);
	free(frame);
	proto_verdict_clear(NULL);
}

/* U4, U5: the sender and the recipients travel with the verdict, in order. */
static void test_verdict_addresses_round_trip(void **state)
{
	char *recipients[PROTO_RECIPIENTS_MAX];
	char names[PROTO_RECIPIENTS_MAX][PROTO_ADDRESS_MAX + 1];
	struct pipeline_verdict in = {.outcome = PIPELINE_JUDGED};
	struct pipeline_verdict out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	strcpy(in.id, TEST_ID);
	in.sender = "owner@gmx.net";
	recipients[0] = "bob@example.org";
	recipients[1] = "carol+tag@example.org";
	in.recipients = recipients;
	in.recipient_count = 2;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_string_equal(out.sender, "owner@gmx.net");
	assert_int_equal(out.recipient_count, 2);
	assert_string_equal(out.recipients[0], "bob@example.org");
	assert_string_equal(out.recipients[1], "carol+tag@example.org");
	assert_int_equal(out.result_count, 0);
	proto_verdict_clear(&out);
	assert_null(out.sender);
	assert_null(out.recipients);
	assert_int_equal(out.recipient_count, 0);
	free(frame);

	/* Recipients without a sender, and the most there may be, each as long
	 * as allowed (the frame still fits). */
	in.sender = NULL;
	for (size_t i = 0; i < PROTO_RECIPIENTS_MAX; i++) {
		memset(names[i], 'a', PROTO_ADDRESS_MAX);
		names[i][PROTO_ADDRESS_MAX] = '\0';
		names[i][PROTO_ADDRESS_MAX - 4] = '@';
		names[i][0] = (char)('A' + i % 26);
		names[i][1] = (char)('A' + i / 26);
		recipients[i] = names[i];
	}
	in.recipient_count = PROTO_RECIPIENTS_MAX;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_null(out.sender);
	assert_int_equal(out.recipient_count, PROTO_RECIPIENTS_MAX);
	for (size_t i = 0; i < PROTO_RECIPIENTS_MAX; i++)
		assert_string_equal(out.recipients[i], names[i]);
	proto_verdict_clear(&out);
	free(frame);

	/* A sender alone. */
	in.sender = "a@b";
	in.recipient_count = 0;
	in.recipients = NULL;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_string_equal(out.sender, "a@b");
	assert_int_equal(out.recipient_count, 0);
	assert_null(out.recipients);
	proto_verdict_clear(&out);
	free(frame);
}

/* The fuzzy fingerprint travels whole; a decoder refuses one of another
 * length or two of them, and a verdict without one decodes as none. */
static void test_verdict_fingerprint(void **state)
{
	struct pipeline_verdict in = {.outcome = PIPELINE_JUDGED};
	struct pipeline_verdict out;
	unsigned char value[PROTO_FINGERPRINT_LEN + 1] = {0};
	unsigned char *frame;
	size_t len, consumed;
	const char *err = NULL;

	(void)state;
	strcpy(in.id, TEST_ID);
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_false(out.fingerprint.present);
	proto_verdict_clear(&out);
	free(frame);

	in.fingerprint.present = true;
	for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++)
		in.fingerprint.minhash[i] = (uint32_t)(0x01020304u * (i + 1));
	in.fingerprint.minhash[7] = UINT32_MAX;
	in.fingerprint.minhash[8] = 0;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_true(out.fingerprint.present);
	assert_memory_equal(out.fingerprint.minhash, in.fingerprint.minhash,
			    sizeof(in.fingerprint.minhash));
	proto_verdict_clear(&out);
	assert_false(out.fingerprint.present);
	free(frame);

	static const unsigned char outcome = PIPELINE_JUDGED;
	static const size_t bad_lens[] = {0, 4, PROTO_FINGERPRINT_LEN - 1,
					  PROTO_FINGERPRINT_LEN + 1};
	for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
		struct test_field fields[] = {
		    {PROTO_VERDICT_FINGERPRINT, value, bad_lens[i]},
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, strlen(TEST_ID)},
		};

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
		err = NULL;
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), -1);
		assert_string_equal(err, "bad fingerprint");
		free(frame);
	}
	struct test_field twice[] = {
	    {PROTO_VERDICT_FINGERPRINT, value, PROTO_FINGERPRINT_LEN},
	    {PROTO_VERDICT_FINGERPRINT, value, PROTO_FINGERPRINT_LEN},
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, TEST_ID, strlen(TEST_ID)},
	};
	frame = test_frame_build(PROTO_TYPE_VERDICT, twice, 4, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), -1);
	assert_string_equal(err, "repeated field");
	free(frame);
	/* With the required bit, a reader of this version knows it still. */
	struct test_field required[] = {
	    {PROTO_VERDICT_FINGERPRINT | PROTO_TAG_REQUIRED, value, PROTO_FINGERPRINT_LEN},
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, TEST_ID, strlen(TEST_ID)},
	};
	frame = test_frame_build(PROTO_TYPE_VERDICT, required, 3, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_true(out.fingerprint.present);
	proto_verdict_clear(&out);
	free(frame);
}

/* One inner field (tag, length, value) of a nested field, into OUT; its
 * length. */
static size_t test_inner_field(unsigned char *out, uint16_t tag, const void *value, size_t len)
{
	out[0] = (unsigned char)(tag >> 8);
	out[1] = (unsigned char)tag;
	out[2] = (unsigned char)(len >> 24);
	out[3] = (unsigned char)(len >> 16);
	out[4] = (unsigned char)(len >> 8);
	out[5] = (unsigned char)len;
	memcpy(out + 6, value, len);
	return 6 + len;
}

/* A verdict with CISS facts VALUE (LEN bytes) decodes to -1 with ERR. */
static void test_ciss_refused(const unsigned char *value, size_t len, const char *expected)
{
	static const unsigned char outcome = PIPELINE_JUDGED;
	struct test_field fields[] = {
	    {PROTO_VERDICT_CISS, value, len},
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, TEST_ID, strlen(TEST_ID)},
	};
	struct pipeline_verdict out;
	size_t frame_len, consumed;
	unsigned char *frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &frame_len);
	const char *err = NULL;

	assert_int_equal(proto_verdict_decode(frame, frame_len, &consumed, &out, &err), -1);
	assert_string_equal(err, expected);
	free(frame);
}

/* The CISS facts travel whole (flags and subject); the decoder refuses
 * unknown flags, a subject that is no line of UTF-8 or too long, and
 * facts without flags; the encoder refuses what the decoder would. */
static void test_verdict_ciss(void **state)
{
	struct pipeline_verdict in = {.outcome = PIPELINE_JUDGED};
	struct pipeline_verdict out;
	unsigned char value[512];
	char long_subject[PIPELINE_CISS_SUBJECT_MAX + 2];
	unsigned char *frame;
	size_t len, consumed, at;
	const char *err = NULL;

	(void)state;
	strcpy(in.id, TEST_ID);
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_false(out.ciss.present);
	proto_verdict_clear(&out);
	free(frame);

	in.ciss.present = true;
	in.ciss.flags = PIPELINE_CISS_LIST | PIPELINE_CISS_DKIM_ALIGNED_PASS;
	in.ciss.subject = "Re: lunch?";
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(consumed, len);
	assert_true(out.ciss.present);
	assert_int_equal(out.ciss.flags, PIPELINE_CISS_LIST | PIPELINE_CISS_DKIM_ALIGNED_PASS);
	assert_string_equal(out.ciss.subject, "Re: lunch?");
	proto_verdict_clear(&out);
	assert_false(out.ciss.present);
	assert_null(out.ciss.subject);
	free(frame);

	/* A subject is UTF-8 (decoded by the worker); bytes that are no UTF-8
	 * are refused. */
	in.ciss.subject = "Gr\xc3\xbc\xc3\x9f"
			  "e";
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_string_equal(out.ciss.subject, "Gr\xc3\xbc\xc3\x9f"
					      "e");
	proto_verdict_clear(&out);
	free(frame);
	in.ciss.subject = "caf\xe9";
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);

	/* Facts without a subject. */
	in.ciss.subject = NULL;
	in.ciss.flags = PIPELINE_CISS_FLAGS_ALL;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_int_equal(out.ciss.flags, PIPELINE_CISS_FLAGS_ALL);
	assert_null(out.ciss.subject);
	proto_verdict_clear(&out);
	free(frame);

	/* The encoder refuses what no decoder takes. */
	in.ciss.flags = PIPELINE_CISS_FLAGS_ALL + 1;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	assert_string_equal(err, "bad CISS facts");
	in.ciss.flags = 0;
	in.ciss.subject = "two\r\nlines";
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);
	memset(long_subject, 'x', sizeof(long_subject) - 1);
	long_subject[sizeof(long_subject) - 1] = '\0';
	in.ciss.subject = long_subject;
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), -1);

	/* The decoder refuses them too. */
	static const unsigned char unknown_flag[] = {0x04, 0x00};
	static const unsigned char short_flags[] = {0x01};
	static const unsigned char good_flags[] = {0x00, 0x01};
	test_ciss_refused(value, test_inner_field(value, PROTO_CISS_FLAGS, unknown_flag, 2),
			  "unknown CISS flag");
	test_ciss_refused(value, test_inner_field(value, PROTO_CISS_FLAGS, short_flags, 1),
			  "bad CISS flags");
	test_ciss_refused(value, test_inner_field(value, PROTO_CISS_SUBJECT, "hi", 2),
			  "bad CISS flags");
	at = test_inner_field(value, PROTO_CISS_FLAGS, good_flags, 2);
	at += test_inner_field(value + at, PROTO_CISS_SUBJECT, "a\nb", 3);
	test_ciss_refused(value, at, "bad CISS subject");
	at = test_inner_field(value, PROTO_CISS_FLAGS, good_flags, 2);
	at += test_inner_field(value + at, PROTO_CISS_SUBJECT, "", 0);
	test_ciss_refused(value, at, "bad CISS subject");
	at = test_inner_field(value, PROTO_CISS_FLAGS, good_flags, 2);
	at += test_inner_field(value + at, PROTO_CISS_SUBJECT, long_subject,
			       PIPELINE_CISS_SUBJECT_MAX + 1);
	test_ciss_refused(value, at, "bad CISS subject");
	/* A nested field running past its parent. */
	at = test_inner_field(value, PROTO_CISS_FLAGS, good_flags, 2);
	test_ciss_refused(value, at - 1, "field runs past its end");
}

/* Addresses a worker may not send: the decoder refuses them, and so does
 * the encoder. */
static void test_bad_addresses_rejected(void **state)
{
	static const char *const bad[] = {
	    "",	    "nobody", "a@b@c",	 "a b@c", "a<b@c",
	    "a@b>", "a,b@c",  "a@b\x7f", "a@\tb", "a@b\x80z",
	};
	static const char *const bad_lists[] = {
	    "a@b\n", "\na@b", "a@b\n\nc@d", "a@b\nnobody", "a@b\r\nc@d", "a@b c@d", "a@b,c@d",
	};
	unsigned char outcome = PIPELINE_JUDGED;
	char long_address[PROTO_ADDRESS_MAX + 2];
	char many[(4 + 1) * (PROTO_RECIPIENTS_MAX + 1)];
	struct test_field fields[] = {
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
	    {PROTO_VERDICT_SENDER, "a@b", 3},
	};
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	char *one[1];
	unsigned char *frame = NULL;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	/* The base frame is valid as a sender and as a recipient list. */
	frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
	proto_verdict_clear(&verdict);
	free(frame);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		fields[2].tag = PROTO_VERDICT_SENDER;
		fields[2].data = bad[i];
		fields[2].len = strlen(bad[i]);
		test_verdict_fields_rejected(fields, 3);
		fields[2].tag = PROTO_VERDICT_RECIPIENTS;
		test_verdict_fields_rejected(fields, 3);
		assert_false(proto_address_valid(bad[i], strlen(bad[i])));
	}
	fields[2].tag = PROTO_VERDICT_RECIPIENTS;
	for (size_t i = 0; i < sizeof(bad_lists) / sizeof(bad_lists[0]); i++) {
		fields[2].data = bad_lists[i];
		fields[2].len = strlen(bad_lists[i]);
		test_verdict_fields_rejected(fields, 3);
	}
	/* A NUL inside an address. */
	fields[2].data = "a@b\0c";
	fields[2].len = 5;
	test_verdict_fields_rejected(fields, 3);
	/* One character too long. */
	memset(long_address, 'a', sizeof(long_address) - 1);
	long_address[sizeof(long_address) - 1] = '\0';
	long_address[10] = '@';
	fields[2].data = long_address;
	fields[2].len = PROTO_ADDRESS_MAX + 1;
	test_verdict_fields_rejected(fields, 3);
	fields[2].len = PROTO_ADDRESS_MAX;
	frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
	proto_verdict_clear(&verdict);
	free(frame);
	/* One recipient too many: 65 "a@bc" joined by newlines. */
	many[0] = '\0';
	for (size_t i = 0; i <= PROTO_RECIPIENTS_MAX; i++)
		strcat(many, i == 0 ? "a@bc" : "\na@bc");
	fields[2].data = many;
	fields[2].len = strlen(many);
	test_verdict_fields_rejected(fields, 3);
	fields[2].len -= 5; /* exactly the limit */
	frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), 0);
	assert_int_equal(verdict.recipient_count, PROTO_RECIPIENTS_MAX);
	proto_verdict_clear(&verdict);
	free(frame);

	/* The encoder refuses the same. */
	frame = NULL;
	strcpy(verdict.id, TEST_ID);
	verdict.outcome = PIPELINE_JUDGED;
	verdict.sender = "a b@c";
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	assert_string_equal(err, "bad sender");
	verdict.sender = NULL;
	one[0] = "a@b\nc@d";
	verdict.recipients = one;
	verdict.recipient_count = 1;
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	assert_string_equal(err, "bad recipients");
	verdict.recipients = NULL;
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	verdict.recipients = one;
	one[0] = "a@b";
	verdict.recipient_count = PROTO_RECIPIENTS_MAX + 1;
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	assert_null(frame);
}

/* Every proper prefix of a valid frame, down to nothing, asks for more. */
static void test_truncations_need_more(void **state)
{
	unsigned char *job_frame;
	unsigned char *verdict_frame;
	size_t job_len;
	size_t verdict_len;

	(void)state;
	job_frame = test_job_frame(&job_len);
	verdict_frame = test_verdict_frame("X-Test: yes\r\n", &verdict_len);
	for (size_t cut = 0; cut < job_len; cut++) {
		struct pipeline_job job;
		size_t consumed = 99;
		const char *err = NULL;

		/* A copy of exactly CUT bytes, so ASan sees any read past it. */
		unsigned char *copy = xmalloc(cut);

		memcpy(copy, job_frame, cut);
		assert_int_equal(proto_job_decode(copy, cut, &consumed, &job, &err), 0);
		assert_int_equal(consumed, 0);
		free(copy);
	}
	for (size_t cut = 0; cut < verdict_len; cut++) {
		struct pipeline_verdict verdict;
		size_t consumed = 99;
		const char *err = NULL;
		unsigned char *copy = xmalloc(cut);

		memcpy(copy, verdict_frame, cut);
		assert_int_equal(proto_verdict_decode(copy, cut, &consumed, &verdict, &err), 0);
		assert_int_equal(consumed, 0);
		free(copy);
	}
	free(job_frame);
	free(verdict_frame);
}

/* Two frames back to back: the decoder takes exactly the first. */
static void test_frames_back_to_back(void **state)
{
	unsigned char *frame;
	unsigned char *two;
	size_t len;
	size_t consumed;
	struct pipeline_verdict verdict;
	const char *err = NULL;

	(void)state;
	frame = test_verdict_frame("X-A: 1\r\n", &len);
	two = xmalloc(2 * len);
	memcpy(two, frame, len);
	memcpy(two + len, frame, len);
	assert_int_equal(proto_verdict_decode(two, 2 * len, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, len);
	proto_verdict_clear(&verdict);
	assert_int_equal(proto_verdict_decode(two + len, len, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, len);
	proto_verdict_clear(&verdict);
	free(two);
	free(frame);
}

/*
 * Changes each header byte (magic, version, type, length) to each other
 * value. The corrupt frame is followed by 0xff filler (as long as the
 * longest frame, a verdict's), so a length made larger cannot pass as
 * "incomplete": the decoder must refuse it.
 */
static void test_header_corruption_rejected(void **state)
{
	unsigned char *frames[2];
	size_t lens[2];

	(void)state;
	frames[0] = test_job_frame(&lens[0]);
	frames[1] = test_verdict_frame("X-Test: yes\r\n", &lens[1]);
	for (int which = 0; which < 2; which++) {
		size_t total = lens[which] + PROTO_VERDICT_FRAME_MAX;
		unsigned char *buf = xmalloc(total);

		memset(buf + lens[which], 0xff, PROTO_VERDICT_FRAME_MAX);
		for (size_t pos = 0; pos < PROTO_HEADER_LEN; pos++) {
			for (int value = 0; value < 256; value++) {
				size_t consumed = 99;
				const char *err = NULL;
				int rc;

				if (value == frames[which][pos])
					continue;
				memcpy(buf, frames[which], lens[which]);
				buf[pos] = (unsigned char)value;
				if (which == 0) {
					struct pipeline_job job;

					rc = proto_job_decode(buf, total, &consumed, &job, &err);
				} else {
					struct pipeline_verdict verdict;

					rc = proto_verdict_decode(buf, total, &consumed, &verdict,
								  &err);
				}
				if (rc != -1)
					fail_msg("frame %d byte %zu = %d accepted", which, pos,
						 value);
				assert_non_null(err);
			}
		}
		free(buf);
	}
	free(frames[0]);
	free(frames[1]);
}

/* A bad magic, version or type is refused as soon as it has arrived. */
static void test_bad_header_rejected_early(void **state)
{
	static const unsigned char bad_magic[] = {'+', 'O', 'K'};
	/* Version 1 frames (before SENDER and RECIPIENTS) and version 2 (jobs
	 * without their body's descriptor) are refused too. */
	static const unsigned char bad_version[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x01};
	static const unsigned char old_version[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x02};
	static const unsigned char bad_type[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x08, 0x00, 0x06};
	/* A verdict of PROTO_VERDICT_PAYLOAD_MAX + 1 bytes, a job of
	 * PROTO_PAYLOAD_MAX + 1. */
	static const unsigned char too_long[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x08,
						 0x00, 0x02, 0x00, 0x11, 0x00, 0x07};
	static const unsigned char job_too_long[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x08,
						     0x00, 0x01, 0x00, 0x01, 0x00, 0x01};
	static const unsigned char good_start[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x08, 0x00};
	/* Version 7: no CISS facts in its verdicts. */
	static const unsigned char v7[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x07};
	/* Version 6: no archive fields, which its workers would not send. */
	static const unsigned char v6[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x06};
	/* Version 5: no DNS questions, which its workers would not ask. */
	static const unsigned char v5[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x05};
	/* Version 3: one prepend text, no results; refused as well. */
	static const unsigned char v3[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x03};
	/* Version 4: no setup frame, which its workers would not expect. */
	static const unsigned char v4[] = {0x50, 0x47, 0x57, 0x50, 0x00, 0x04};
	struct pipeline_verdict verdict;
	struct pipeline_job job;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	assert_int_equal(PROTO_VERDICT_PAYLOAD_MAX + 1, 0x110007);
	assert_int_equal(proto_verdict_decode(bad_magic, 1, &consumed, &verdict, &err), -1);
	assert_string_equal(err, "bad magic");
	assert_int_equal(
	    proto_verdict_decode(bad_version, sizeof(bad_version), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(
	    proto_verdict_decode(old_version, sizeof(old_version), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(proto_verdict_decode(v3, sizeof(v3), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(proto_verdict_decode(v4, sizeof(v4), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(proto_verdict_decode(v5, sizeof(v5), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(proto_verdict_decode(v6, sizeof(v6), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(proto_verdict_decode(v7, sizeof(v7), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unsupported version");
	assert_int_equal(
	    proto_verdict_decode(bad_type, sizeof(bad_type), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unknown frame type");
	/* Too many bytes announced: refused without waiting for them. */
	assert_int_equal(
	    proto_verdict_decode(too_long, sizeof(too_long), &consumed, &verdict, &err), -1);
	assert_string_equal(err, "payload too long");
	assert_int_equal(
	    proto_job_decode(job_too_long, sizeof(job_too_long), &consumed, &job, &err), -1);
	assert_string_equal(err, "payload too long");
	assert_int_equal(
	    proto_verdict_decode(good_start, sizeof(good_start), &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, 0);
}

/*
 * The setup frame: with and without the Bayes database, round trip, cut
 * short, an unknown optional field skipped, an unknown required one or a
 * BAYES_DB with a value refused, and it is neither a job nor a verdict.
 */
static void test_setup_frame(void **state)
{
	struct test_field fields[2];
	struct proto_setup setup;
	struct pipeline_verdict verdict;
	struct pipeline_job job;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	const char *err;

	(void)state;
	for (int with = 0; with <= 1; with++) {
		proto_setup_encode(&(struct proto_setup){.bayes_db = with == 1}, &frame,
				   &frame_len);
		for (size_t cut = 0; cut < frame_len; cut++) {
			assert_int_equal(proto_setup_decode(frame, cut, &consumed, &setup, &err),
					 0);
			assert_int_equal(consumed, 0);
		}
		setup.bayes_db = with == 0;
		assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), 0);
		assert_int_equal(consumed, frame_len);
		assert_int_equal(setup.bayes_db, with == 1);
		assert_int_equal(proto_job_decode(frame, frame_len, &consumed, &job, &err), -1);
		assert_string_equal(err, "unexpected frame type");
		assert_int_equal(proto_verdict_decode(frame, frame_len, &consumed, &verdict, &err),
				 -1);
		free(frame);
	}
	/* A job is not a setup. */
	fields[0] = (struct test_field){.tag = PROTO_SETUP_BAYES_DB, .data = "", .len = 0};
	frame = test_frame_build(PROTO_TYPE_JOB, fields, 1, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), -1);
	assert_string_equal(err, "unexpected frame type");
	free(frame);
	/* A later version's optional hint is skipped. */
	fields[1] = (struct test_field){.tag = 7, .data = "hint", .len = 4};
	frame = test_frame_build(PROTO_TYPE_SETUP, fields, 2, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), 0);
	assert_int_equal(consumed, frame_len);
	assert_true(setup.bayes_db);
	free(frame);
	/* ... but not one it must understand. */
	fields[1].tag = PROTO_TAG_REQUIRED | 7;
	frame = test_frame_build(PROTO_TYPE_SETUP, fields, 2, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), -1);
	free(frame);
	/* BAYES_DB is empty (the database travels beside the frame), once. */
	fields[0].data = "x";
	fields[0].len = 1;
	frame = test_frame_build(PROTO_TYPE_SETUP, fields, 1, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), -1);
	assert_string_equal(err, "bad setup field");
	free(frame);
	fields[0].len = 0;
	fields[1] = fields[0];
	frame = test_frame_build(PROTO_TYPE_SETUP, fields, 2, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), -1);
	free(frame);
}

/* The filters' settings travel whole in a setup frame; a text that is not
 * lines of "KEY VALUE" (a control character, a key without its space, a
 * last line without its newline) makes the frame invalid. */
static void test_setup_settings(void **state)
{
	static const char *const bad[] = {
	    "dnsbl_zones zen.example\nnoval\n", "Key x\n", "a b", " x\n", "a b\x01c\n",
	};
	struct test_field field = {.tag = PROTO_SETUP_SETTINGS};
	struct proto_setup setup;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	const char *err;

	(void)state;
	proto_setup_encode(
	    &(struct proto_setup){
		.settings = "dnsbl_zones zen.example bl.example\nquarantine_days 30\nempty \n"},
	    &frame, &frame_len);
	assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), 0);
	assert_int_equal(consumed, frame_len);
	assert_false(setup.bayes_db);
	assert_string_equal(setup.settings,
			    "dnsbl_zones zen.example bl.example\nquarantine_days 30\nempty \n");
	free(setup.settings);
	free(frame);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		field.data = bad[i];
		field.len = strlen(bad[i]);
		frame = test_frame_build(PROTO_TYPE_SETUP, &field, 1, &frame_len);
		assert_int_equal(proto_setup_decode(frame, frame_len, &consumed, &setup, &err), -1);
		assert_string_equal(err, "bad setup settings");
		free(frame);
		assert_false(proto_settings_valid(bad[i], strlen(bad[i])));
	}
}

/* A query round trip, cut short, and what the decoder refuses: a name
 * filter_dns_name_valid refuses, an unknown type, id 0; and the encoder
 * refuses the same. */
static void test_query_frame(void **state)
{
	static const char *const bad_names[] = {"", "a..b", "a b.example", "-\x01.x", ".a"};
	struct proto_query query = {.id = 7, .type = FILTER_DNS_TXT};
	struct proto_query got;
	struct test_field fields[3];
	unsigned char id[4] = {0, 0, 0, 9};
	unsigned char type[2] = {0, FILTER_DNS_A};
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	const char *err;
	char long_name[300];

	(void)state;
	strcpy(query.name, "2.0.0.127.zen.example");
	assert_int_equal(proto_query_encode(&query, &frame, &frame_len, &err), 0);
	for (size_t cut = 0; cut < frame_len; cut++) {
		assert_int_equal(proto_query_decode(frame, cut, &consumed, &got, &err), 0);
		assert_int_equal(consumed, 0);
	}
	assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &got, &err), 0);
	assert_int_equal(consumed, frame_len);
	assert_int_equal(got.id, 7);
	assert_int_equal(got.type, FILTER_DNS_TXT);
	assert_string_equal(got.name, "2.0.0.127.zen.example");
	free(frame);

	fields[0] = (struct test_field){PROTO_QUERY_ID, id, 4};
	fields[1] = (struct test_field){PROTO_QUERY_TYPE, type, 2};
	for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
		fields[2] =
		    (struct test_field){PROTO_QUERY_NAME, bad_names[i], strlen(bad_names[i])};
		frame = test_frame_build(PROTO_TYPE_QUERY, fields, 3, &frame_len);
		assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &got, &err), -1);
		assert_string_equal(err, "bad query name");
		free(frame);
	}
	memset(long_name, 'a', sizeof(long_name));
	for (size_t i = 60; i < sizeof(long_name); i += 61)
		long_name[i] = '.';
	fields[2] = (struct test_field){PROTO_QUERY_NAME, long_name, 254};
	frame = test_frame_build(PROTO_TYPE_QUERY, fields, 3, &frame_len);
	assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &got, &err), -1);
	free(frame);
	fields[2] = (struct test_field){PROTO_QUERY_NAME, "ok.example", 10};
	type[1] = 52; /* TLSA: not a filter's question */
	frame = test_frame_build(PROTO_TYPE_QUERY, fields, 3, &frame_len);
	assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad query type");
	free(frame);
	type[1] = FILTER_DNS_A;
	id[3] = 0;
	frame = test_frame_build(PROTO_TYPE_QUERY, fields, 3, &frame_len);
	assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad query id");
	free(frame);

	query.id = 0;
	assert_int_equal(proto_query_encode(&query, &frame, &frame_len, &err), -1);
	query.id = 1;
	strcpy(query.name, "a b");
	assert_int_equal(proto_query_encode(&query, &frame, &frame_len, &err), -1);
	strcpy(query.name, "ok.example");
	query.type = (enum filter_dns_type)52;
	assert_int_equal(proto_query_encode(&query, &frame, &frame_len, &err), -1);
}

/* An answer round trip with records (and without, for the other statuses);
 * records only with OK, at most FILTER_DNS_RECORDS_MAX, each printable and
 * bounded; a status past TIMEOUT refused. */
static void test_answer_frame(void **state)
{
	struct proto_answer answer = {.id = 3, .answer = {.status = FILTER_DNS_OK, .count = 2}};
	struct proto_answer got;
	struct test_field fields[FILTER_DNS_RECORDS_MAX + 3];
	unsigned char id[4] = {0, 0, 1, 0};
	unsigned char status = FILTER_DNS_OK;
	char big[FILTER_DNS_RECORD_MAX + 1];
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	const char *err;

	(void)state;
	answer.answer.records[0] = (char *)"127.0.0.2";
	answer.answer.records[1] = (char *)"v=spf1 -all";
	assert_int_equal(proto_answer_encode(&answer, &frame, &frame_len, &err), 0);
	for (size_t cut = 0; cut < frame_len; cut++) {
		assert_int_equal(proto_answer_decode(frame, cut, &consumed, &got, &err), 0);
		assert_int_equal(consumed, 0);
	}
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), 0);
	assert_int_equal(consumed, frame_len);
	assert_int_equal(got.id, 3);
	assert_int_equal(got.answer.status, FILTER_DNS_OK);
	assert_int_equal(got.answer.count, 2);
	assert_string_equal(got.answer.records[0], "127.0.0.2");
	assert_string_equal(got.answer.records[1], "v=spf1 -all");
	filter_dns_answer_clear(&got.answer);
	free(frame);
	for (int status_value = FILTER_DNS_NOT_FOUND; status_value <= FILTER_DNS_TIMEOUT;
	     status_value++) {
		struct proto_answer none = {.id = 4, .answer = {.status = status_value}};

		assert_int_equal(proto_answer_encode(&none, &frame, &frame_len, &err), 0);
		assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), 0);
		assert_int_equal(got.answer.status, status_value);
		assert_int_equal(got.answer.count, 0);
		free(frame);
	}
	/* The encoder refuses what the decoder would. */
	answer.answer.status = FILTER_DNS_NOT_FOUND;
	assert_int_equal(proto_answer_encode(&answer, &frame, &frame_len, &err), -1);
	answer.answer.status = FILTER_DNS_OK;
	answer.answer.records[1] = (char *)"tab\there";
	assert_int_equal(proto_answer_encode(&answer, &frame, &frame_len, &err), -1);
	answer.id = 0;
	answer.answer.records[1] = (char *)"fine";
	assert_int_equal(proto_answer_encode(&answer, &frame, &frame_len, &err), -1);

	/* Built by hand: records with a failure, too many, too long, empty,
	 * not printable; a status that does not exist. */
	fields[0] = (struct test_field){PROTO_ANSWER_ID, id, 4};
	fields[1] = (struct test_field){PROTO_ANSWER_STATUS, &status, 1};
	for (size_t i = 0; i < FILTER_DNS_RECORDS_MAX + 1; i++)
		fields[2 + i] = (struct test_field){PROTO_ANSWER_RECORD, "127.0.0.2", 9};
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 2 + FILTER_DNS_RECORDS_MAX, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), 0);
	assert_int_equal(got.answer.count, FILTER_DNS_RECORDS_MAX);
	filter_dns_answer_clear(&got.answer);
	free(frame);
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 3 + FILTER_DNS_RECORDS_MAX, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad answer records");
	free(frame);
	status = FILTER_DNS_FAILED;
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 3, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad answer records");
	free(frame);
	status = FILTER_DNS_TIMEOUT + 1;
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 2, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad answer status");
	free(frame);
	status = FILTER_DNS_OK;
	memset(big, 'x', sizeof(big));
	fields[2] = (struct test_field){PROTO_ANSWER_RECORD, big, sizeof(big)};
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 3, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	assert_string_equal(err, "bad answer record");
	free(frame);
	fields[2] = (struct test_field){PROTO_ANSWER_RECORD, "", 0};
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 3, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	free(frame);
	fields[2] = (struct test_field){PROTO_ANSWER_RECORD, "a\0b", 3};
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 3, &frame_len);
	assert_int_equal(proto_answer_decode(frame, frame_len, &consumed, &got, &err), -1);
	free(frame);
	/* An answer is not a query, nor a verdict. */
	frame = test_frame_build(PROTO_TYPE_ANSWER, fields, 2, &frame_len);
	{
		struct proto_query query;
		struct pipeline_verdict verdict;

		assert_int_equal(proto_query_decode(frame, frame_len, &consumed, &query, &err), -1);
		assert_string_equal(err, "unexpected frame type");
		assert_int_equal(proto_verdict_decode(frame, frame_len, &consumed, &verdict, &err),
				 -1);
	}
	free(frame);
}

/* A job is not a verdict and a verdict is not a job. */
static void test_type_mismatch_rejected(void **state)
{
	unsigned char *frame;
	size_t len;
	size_t consumed;
	struct pipeline_job job;
	struct pipeline_verdict verdict;
	const char *err = NULL;

	(void)state;
	frame = test_job_frame(&len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
	assert_string_equal(err, "unexpected frame type");
	free(frame);
	frame = test_verdict_frame(NULL, &len);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), -1);
	assert_string_equal(err, "unexpected frame type");
	free(frame);
}

static void test_bad_ids_rejected(void **state)
{
	static const char *const bad_ids[] = {
	    "0123456789ABCDEF01234567",	 /* upper case */
	    "0123456789abcdef0123456",	 /* 23 digits */
	    "0123456789abcdef012345678", /* 25 digits */
	    "0123456789abcdef0123456g",	 /* not hex */
	    "../../../../etc/passwd000", "",
	};
	const unsigned char outcome = PIPELINE_JUDGED;

	(void)state;
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, bad_ids[i], strlen(bad_ids[i])},
		};

		test_verdict_fields_rejected(fields, 2);
	}
	/* A NUL inside the id is no better. */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID,
		     "0123456789abcdef\0"
		     "1234567",
		     SPOOL_ID_LEN},
		};

		test_verdict_fields_rejected(fields, 2);
	}
}

static void test_bad_outcomes_rejected(void **state)
{
	static const unsigned char outcomes[] = {0, PIPELINE_WORKER_FAILED, 3, 0x7f, 0xff};
	static const unsigned char two[] = {PIPELINE_JUDGED, PIPELINE_JUDGED};

	(void)state;
	for (size_t i = 0; i < sizeof(outcomes); i++) {
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcomes[i], 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		test_verdict_fields_rejected(fields, 2);
	}
	/* The outcome is one byte, not zero or two. */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, two, 0},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		test_verdict_fields_rejected(fields, 2);
		fields[0].len = 2;
		test_verdict_fields_rejected(fields, 2);
	}
	assert_true(proto_outcome_valid(PIPELINE_JUDGED));
	assert_false(proto_outcome_valid(PIPELINE_WORKER_FAILED));
}

static const char *const test_bad_prepends[] = {
    "",
    "X-A: b",			      /* no CRLF at all */
    "X-A: b\n",			      /* LF only */
    "X-A: b\r",			      /* CR only */
    "X-A: b\r\n\r\n",		      /* an empty line ends the header block */
    "\r\n",			      /* nothing but an empty line */
    "\r\nX-A: b\r\n",		      /* empty line first */
    " folded first\r\n",	      /* a continuation with nothing before it */
    "\tfolded first\r\n",	      /* the same with a tab */
    "X-A b\r\n",		      /* no colon */
    ": b\r\n",			      /* empty field name */
    "X A: b\r\n",		      /* space in the name */
    "X-A: b\x01\r\n",		      /* control character */
    "X-A: b\x7f\r\n",		      /* DEL */
    "X-A: \xc3\xa9\r\n",	      /* 8-bit */
    "X-A: b\rc\r\n",		      /* bare CR */
    "X-A: b\nc\r\n",		      /* bare LF */
    "X-A: b\r\n \r\n",		      /* whitespace-only continuation */
    "X-A: b\r\n\t \t\r\n",	      /* the same with tabs */
    "X-A: b\r\nBody text\r\n",	      /* a line that is not a header */
    "X-A: b\r\n\r\nBody: forged\r\n", /* header injection into the body */
};

static void test_bad_prepends_rejected(void **state)
{
	const unsigned char outcome = PIPELINE_JUDGED;

	(void)state;
	for (size_t i = 0; i < sizeof(test_bad_prepends) / sizeof(test_bad_prepends[0]); i++) {
		const char *text = test_bad_prepends[i];
		size_t result_len;
		unsigned char *result_value = test_result_value(text, &result_len);
		struct test_field fields[] = {
		    {PROTO_VERDICT_RESULT, result_value, result_len},
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};
		struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
		struct pipeline_result result = {.name = "trace", .status = PIPELINE_RESULT_OK};
		unsigned char *frame = NULL;
		size_t len;
		const char *err = NULL;

		if (proto_prepend_valid(text, strlen(text), &err))
			fail_msg("prepend %zu accepted", i);
		assert_non_null(err);
		test_verdict_fields_rejected(fields, 3);
		free(result_value);
		/* The encoder refuses what the decoder would. */
		strcpy(verdict.id, TEST_ID);
		result.headers = (char *)text;
		verdict.results = &result;
		verdict.result_count = 1;
		assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
		assert_null(frame);
	}
	/* The reasons name the fault. */
	{
		static const struct {
			const char *text;
			const char *reason;
		} cases[] = {
		    {"X-A: b\r\n\r\n", "empty line in prepend"},
		    {"X-A: b\r\n \r\n", "whitespace-only line in prepend"},
		    {" X-A: b\r\n", "prepend starts with a continuation line"},
		    {"X-A: b\rc\r\n", "bare CR in prepend"},
		    {"X-A: b\nc\r\n", "bad character in prepend"},
		    {"X-A b\r\n", "prepend line is not a header field"},
		    {"X-A: b\n", "prepend does not end in CRLF"},
		};

		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			const char *err = NULL;

			assert_false(
			    proto_prepend_valid(cases[i].text, strlen(cases[i].text), &err));
			assert_string_equal(err, cases[i].reason);
		}
	}
	/* A NUL inside the prepend (the length says there is more). */
	{
		static const char with_nul[] = "X-A: b\0c\r\n";
		const char *err = NULL;

		assert_false(proto_prepend_valid(with_nul, sizeof(with_nul) - 1, &err));
	}
}

static void test_prepend_line_limit(void **state)
{
	/* "X-A: " and 993 more characters: 998, RFC 5322's limit. */
	char line[1003];
	const char *err = NULL;

	(void)state;
	memcpy(line, "X-A: ", 5);
	memset(line + 5, 'v', 993);
	memcpy(line + 998, "\r\n", 3);
	assert_true(proto_prepend_valid(line, 1000, &err));
	memset(line + 5, 'v', 994);
	memcpy(line + 999, "\r\n", 3);
	assert_false(proto_prepend_valid(line, 1001, &err));
	assert_string_equal(err, "prepend line too long");
	/* Folded lines, tabs and every printable character are fine. */
	{
		static const char folded[] = "A:\r\n\t b\r\n c\r\n";
		static const char printable[] =
		    "A:!\"#$%&'()*+,-./0123456789:;<=>?@[\\]^_`{|}~ \t\r\n";

		assert_true(proto_prepend_valid(folded, strlen(folded), &err));
		assert_true(proto_prepend_valid(printable, strlen(printable), &err));
	}
}

static void test_structure_errors_rejected(void **state)
{
	const unsigned char outcome = PIPELINE_JUDGED;

	(void)state;
	/* A required field missing: the id, the outcome, or both. */
	{
		struct test_field fields[] = {{PROTO_VERDICT_OUTCOME, &outcome, 1}};

		test_verdict_fields_rejected(fields, 1);
		test_verdict_fields_rejected(fields, 0);
	}
	{
		struct test_field fields[] = {{PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN}};

		test_verdict_fields_rejected(fields, 1);
	}
	/* A field twice. */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};

		test_verdict_fields_rejected(fields, 3);
		fields[2].tag = PROTO_VERDICT_OUTCOME;
		fields[2].data = &outcome;
		fields[2].len = 1;
		test_verdict_fields_rejected(fields, 3);
	}
	/* Tag 0, and unknown tags marked required. (Unknown optional tags are
	 * skipped: test_unknown_optional_fields_skipped.) */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		    {0, "x", 1},
		};

		test_verdict_fields_rejected(fields, 3);
		fields[2].tag = PROTO_TAG_REQUIRED;
		test_verdict_fields_rejected(fields, 3);
		fields[2].tag = PROTO_TAG_REQUIRED | (PROTO_VERDICT_RECIPIENTS + 1);
		test_verdict_fields_rejected(fields, 3);
		fields[2].tag = 0xffff;
		test_verdict_fields_rejected(fields, 3);
	}
	/* A field length running past the payload, and a cut field header. */
	{
		struct test_field fields[] = {
		    {PROTO_VERDICT_OUTCOME, &outcome, 1},
		    {PROTO_VERDICT_ID, TEST_ID, SPOOL_ID_LEN},
		};
		struct pipeline_verdict verdict;
		unsigned char *frame;
		size_t len;
		size_t consumed;
		const char *err = NULL;

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 2, &len);
		/* The id field's length (after outcome's 7 bytes and its tag) + 1. */
		test_put_u32(frame + PROTO_HEADER_LEN + 7 + 2, SPOOL_ID_LEN + 1);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
		assert_string_equal(err, "field runs past its end");
		free(frame);

		frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 2, &len);
		/* Payload length 7 + 5: the outcome field, then 5 bytes of a header. */
		test_put_u32(frame + 8, 12);
		assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
		assert_string_equal(err, "truncated field header");
		free(frame);
	}
}

static void test_bad_job_fields_rejected(void **state)
{
	unsigned char when[8] = {0, 0, 0, 0, 0x6b, 0x09, 0x5f, 0xf5};
	unsigned char negative[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	unsigned char too_late[8] = {0, 0, 0, 0x3b, 0x00, 0x00, 0x00, 0x00};
	char long_account[512];
	char long_host[256];
	size_t profile_len;
	unsigned char *profile = test_profile_value(&profile_len);
	/* The profile comes first, so that the counts below leave off the end. */
	struct test_field fields[] = {
	    {PROTO_JOB_PROFILE, profile, profile_len},
	    {PROTO_JOB_ID, TEST_ID, SPOOL_ID_LEN},
	    {PROTO_JOB_ACCOUNT, "a@b", 3},
	    {PROTO_JOB_PROVIDER_HOST, "b", 1},
	    {PROTO_JOB_RECEIVED_AT, when, 8},
	};
	struct pipeline_job job;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	memset(long_account, 'a', sizeof(long_account));
	memset(long_host, 'h', sizeof(long_host));
	/* The fields as given are a valid job; each change below breaks one. */
	frame = test_frame_build(PROTO_TYPE_JOB, fields, 5, &len);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), 0);
	assert_int_equal(job.received_at, 0x6b095ff5);
	assert_int_equal(job.profile->filter_count, 1);
	proto_job_clear(&job);
	free(frame);
	test_job_fields_rejected(fields, 4);	 /* no received_at */
	test_job_fields_rejected(fields + 1, 4); /* no profile */
	fields[2].len = 0;			 /* empty account */
	test_job_fields_rejected(fields, 5);
	fields[2].data = long_account; /* 512 bytes do not fit with a NUL */
	fields[2].len = sizeof(long_account);
	test_job_fields_rejected(fields, 5);
	fields[2].data = "a\0b"; /* NUL inside */
	fields[2].len = 3;
	test_job_fields_rejected(fields, 5);
	fields[2].data = "a@b";
	fields[3].data = long_host;
	fields[3].len = sizeof(long_host);
	test_job_fields_rejected(fields, 5);
	fields[3].data = "b";
	fields[3].len = 1;
	fields[4].len = 7; /* received_at is exactly 8 bytes */
	test_job_fields_rejected(fields, 5);
	fields[4].len = 8;
	fields[4].data = negative;
	test_job_fields_rejected(fields, 5);
	fields[4].data = too_late;
	test_job_fields_rejected(fields, 5);
	fields[4].data = when;
	fields[1].data = "0123456789abcdef0123456Z";
	test_job_fields_rejected(fields, 5);
	fields[1].data = TEST_ID;
	/* A profile cut inside: its last field runs past the PROFILE field. */
	fields[0].len = profile_len - 1;
	test_job_fields_rejected(fields, 5);
	fields[0].len = profile_len;
	free(profile);
}

static void test_encoders_refuse_bad_input(void **state)
{
	struct pipeline_job job;
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	unsigned char *frame = NULL;
	size_t len;
	const char *err = NULL;
	char *huge;

	(void)state;
	test_job_fill(&job);
	strcpy(job.id, "not-an-id");
	assert_int_equal(proto_job_encode(&job, &frame, &len, &err), -1);
	test_job_fill(&job);
	job.account[0] = '\0';
	assert_int_equal(proto_job_encode(&job, &frame, &len, &err), -1);
	test_job_fill(&job);
	memset(job.provider_host, 'h', sizeof(job.provider_host)); /* no NUL */
	assert_int_equal(proto_job_encode(&job, &frame, &len, &err), -1);
	test_job_fill(&job);
	job.received_at = -1;
	assert_int_equal(proto_job_encode(&job, &frame, &len, &err), -1);
	job.received_at = PROTO_RECEIVED_AT_MAX + 1;
	assert_int_equal(proto_job_encode(&job, &frame, &len, &err), -1);
	assert_null(frame);

	strcpy(verdict.id, TEST_ID);
	verdict.outcome = PIPELINE_WORKER_FAILED;
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	verdict.outcome = PIPELINE_JUDGED;
	/* Many valid lines, but more than a frame holds. */
	huge = xmalloc(PROTO_VERDICT_PAYLOAD_MAX + 100);
	for (size_t i = 0; i + 10 < PROTO_VERDICT_PAYLOAD_MAX + 100; i += 10)
		memcpy(huge + i, "X-A: 123\r\n", 10);
	huge[(PROTO_VERDICT_PAYLOAD_MAX + 90) / 10 * 10] = '\0';
	assert_true(proto_prepend_valid(huge, strlen(huge), &err));
	{
		static struct pipeline_result result = {.name = "trace",
							.status = PIPELINE_RESULT_OK};

		result.headers = huge;
		verdict.results = &result;
		verdict.result_count = 1;
	}
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	assert_string_equal(err, "payload too long");
	assert_null(frame);
	free(huge);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_round_trip),
	    cmocka_unit_test(test_verdict_round_trip),
	    cmocka_unit_test(test_verdict_addresses_round_trip),
	    cmocka_unit_test(test_verdict_fingerprint),
	    cmocka_unit_test(test_verdict_ciss),
	    cmocka_unit_test(test_bad_addresses_rejected),
	    cmocka_unit_test(test_truncations_need_more),
	    cmocka_unit_test(test_frames_back_to_back),
	    cmocka_unit_test(test_header_corruption_rejected),
	    cmocka_unit_test(test_bad_header_rejected_early),
	    cmocka_unit_test(test_type_mismatch_rejected),
	    cmocka_unit_test(test_setup_frame),
	    cmocka_unit_test(test_setup_settings),
	    cmocka_unit_test(test_query_frame),
	    cmocka_unit_test(test_answer_frame),
	    cmocka_unit_test(test_bad_ids_rejected),
	    cmocka_unit_test(test_bad_outcomes_rejected),
	    cmocka_unit_test(test_bad_prepends_rejected),
	    cmocka_unit_test(test_prepend_line_limit),
	    cmocka_unit_test(test_structure_errors_rejected),
	    cmocka_unit_test(test_bad_job_fields_rejected),
	    cmocka_unit_test(test_encoders_refuse_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
