/*
 * test_proto_archive.c — MailDepot's fields in the worker protocol (frame
 * version 7): a job's ARCHIVE flag, a verdict's ARCHIVE fields round trip
 * (hand-filled, at every bound at once, and as depot_extract gives them),
 * the encoder refusing what the decoder would, and the decoder refusing
 * hand-built hostile values: too long, a missing required field, invalid
 * UTF-8, NULs and control characters, too many or empty list items, bad
 * dates, repeated and unknown required fields.
 *
 * Owns: nothing outside this process.
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
#include "depot/depot.h"
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

/* The archive flag travels with the job, set or not. */
static void test_job_archive_flag(void **state)
{
	struct pipeline_job in;
	struct pipeline_job out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;
	unsigned char id[] = TEST_ID;
	unsigned char received[8] = {0};
	size_t profile_len;
	unsigned char *profile = test_profile_value(&profile_len);

	(void)state;
	for (int archive = 0; archive < 2; archive++) {
		test_job_fill(&in);
		in.archive = archive == 1;
		assert_int_equal(proto_job_encode(&in, &frame, &len, &err), 0);
		assert_int_equal(proto_job_decode(frame, len, &consumed, &out, &err), 0);
		assert_int_equal(consumed, len);
		assert_int_equal(out.archive, archive == 1);
		proto_job_clear(&out);
		free(frame);
	}
	/* The flag is empty; a value is refused. */
	{
		struct test_field fields[] = {
		    {PROTO_JOB_ID, id, SPOOL_ID_LEN},	       {PROTO_JOB_ACCOUNT, "a", 1},
		    {PROTO_JOB_PROVIDER_HOST, "h", 1},	       {PROTO_JOB_RECEIVED_AT, received, 8},
		    {PROTO_JOB_PROFILE, profile, profile_len}, {PROTO_JOB_ARCHIVE, "\1", 1},
		};

		test_job_fields_rejected(fields, 6);
	}
	free(profile);
}

/* A verdict for TEST_ID carrying FIELDS. */
static void test_verdict_with(struct pipeline_verdict *verdict, struct depot_fields *fields)
{
	memset(verdict, 0, sizeof(*verdict));
	strcpy(verdict->id, TEST_ID);
	verdict->outcome = PIPELINE_JUDGED;
	verdict->archive_fields = fields;
}

static void test_fields_equal(const struct depot_fields *a, const struct depot_fields *b)
{
	if (a->sender == NULL)
		assert_null(b->sender);
	else
		assert_string_equal(a->sender, b->sender);
	if (a->subject == NULL)
		assert_null(b->subject);
	else
		assert_string_equal(a->subject, b->subject);
	if (a->message_id == NULL)
		assert_null(b->message_id);
	else
		assert_string_equal(a->message_id, b->message_id);
	assert_int_equal(a->date, b->date);
	assert_int_equal(a->recipient_count, b->recipient_count);
	for (size_t i = 0; i < a->recipient_count; i++)
		assert_string_equal(a->recipients[i], b->recipients[i]);
	assert_int_equal(a->attachment_count, b->attachment_count);
	for (size_t i = 0; i < a->attachment_count; i++)
		assert_string_equal(a->attachments[i], b->attachments[i]);
	assert_string_equal(a->headers, b->headers);
	assert_string_equal(a->body, b->body);
	assert_string_equal(a->attachment_text, b->attachment_text);
}

/* Encodes a verdict with FIELDS, decodes it, expects the same fields. */
static void test_round_trip(struct depot_fields *fields)
{
	struct pipeline_verdict in;
	struct pipeline_verdict out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	test_verdict_with(&in, fields);
	if (proto_verdict_encode(&in, &frame, &len, &err) < 0)
		fail_msg("encode: %s", err);
	assert_true(len <= PROTO_VERDICT_FRAME_MAX);
	if (proto_verdict_decode(frame, len, &consumed, &out, &err) < 0)
		fail_msg("decode: %s", err);
	assert_int_equal(consumed, len);
	assert_non_null(out.archive_fields);
	test_fields_equal(fields, out.archive_fields);
	proto_verdict_clear(&out);
	assert_null(out.archive_fields);
	free(frame);
}

static void test_archive_round_trip(void **state)
{
	char *recipients[] = {"bob@example.org", "jörg@bücher.example"};
	char *attachments[] = {"Rechnung März.pdf", "a.txt"};
	struct depot_fields fields = {
	    .sender = "alice@example.net",
	    .recipients = recipients,
	    .recipient_count = 2,
	    .subject = "Grüße aus Köln",
	    .date = 1796115600,
	    .message_id = "abc.123@example.org",
	    .attachments = attachments,
	    .attachment_count = 2,
	    .headers = "From: Alice alice@example.net\nSubject: Grüße aus Köln\n",
	    .body = "Hallo\tWelt\n\nzweite Zeile 😀\n",
	    .attachment_text = "Kunde\nBetrag\n",
	};
	struct depot_fields sparse = {
	    .headers = "", .body = "", .attachment_text = "", .subject = ""};
	struct pipeline_verdict in;
	struct pipeline_verdict out;
	unsigned char *frame;
	size_t len;
	size_t consumed;
	const char *err = NULL;

	(void)state;
	test_round_trip(&fields);
	test_round_trip(&sparse);
	/* NULL texts travel as empty ones. */
	memset(&sparse, 0, sizeof(sparse));
	test_verdict_with(&in, &sparse);
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_string_equal(out.archive_fields->body, "");
	assert_string_equal(out.archive_fields->headers, "");
	assert_null(out.archive_fields->sender);
	proto_verdict_clear(&out);
	free(frame);
	/* No fields: none decoded. */
	test_verdict_with(&in, NULL);
	assert_int_equal(proto_verdict_encode(&in, &frame, &len, &err), 0);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &out, &err), 0);
	assert_null(out.archive_fields);
	proto_verdict_clear(&out);
	free(frame);
}

/* Every field at its bound at once still fits a verdict frame. */
static void test_archive_at_bounds(void **state)
{
	struct depot_fields fields = {0};
	char *line = xmalloc(DEPOT_LINE_MAX + 1);

	(void)state;
	memset(line, 'x', DEPOT_LINE_MAX);
	line[DEPOT_LINE_MAX] = '\0';
	fields.recipients = xcalloc(DEPOT_RECIPIENTS_MAX, sizeof(char *));
	for (size_t i = 0; i < DEPOT_RECIPIENTS_MAX; i++) {
		char *address = xmalloc(DEPOT_ADDRESS_MAX + 1);

		memset(address, 'a', DEPOT_ADDRESS_MAX);
		snprintf(address, 12, "%04zu@", i);
		address[strlen(address)] = 'b';
		address[DEPOT_ADDRESS_MAX] = '\0';
		fields.recipients[i] = address;
	}
	fields.recipient_count = DEPOT_RECIPIENTS_MAX;
	fields.attachments = xcalloc(DEPOT_ATTACHMENTS_MAX, sizeof(char *));
	for (size_t i = 0; i < DEPOT_ATTACHMENTS_MAX; i++) {
		char *name = xmalloc(DEPOT_NAME_MAX + 1);

		memset(name, 'n', DEPOT_NAME_MAX);
		snprintf(name, 8, "%04zu.", i);
		name[strlen(name)] = 'n';
		name[DEPOT_NAME_MAX] = '\0';
		fields.attachments[i] = name;
	}
	fields.attachment_count = DEPOT_ATTACHMENTS_MAX;
	fields.sender = xstrdup(fields.recipients[0]);
	fields.subject = xstrdup(line);
	fields.message_id = xstrdup(line);
	fields.date = PROTO_RECEIVED_AT_MAX;
	fields.headers = xmalloc(DEPOT_HEADERS_MAX + 1);
	memset(fields.headers, 'h', DEPOT_HEADERS_MAX);
	fields.headers[DEPOT_HEADERS_MAX] = '\0';
	fields.body = xmalloc(DEPOT_TEXT_MAX + 1);
	memset(fields.body, 'b', DEPOT_TEXT_MAX);
	fields.body[DEPOT_TEXT_MAX] = '\0';
	fields.attachment_text = xstrdup(fields.body);
	test_round_trip(&fields);
	depot_fields_free(&fields);
	free(line);
}

/* What depot_extract gives of a real message travels unchanged. */
static void test_archive_extracted(void **state)
{
	static const char message[] = "From: =?ISO-8859-1?Q?J=F6rg?= <Joerg@Example.org>\r\n"
				      "To: a@example.org, Team: b@example.org;\r\n"
				      "Subject: =?utf-8?B?R3LDvMOfZQ==?=\r\n"
				      "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
				      "Message-ID: <x@y>\r\n"
				      "Content-Type: multipart/mixed; boundary=b\r\n"
				      "\r\n"
				      "--b\r\n"
				      "Content-Type: text/plain; charset=iso-8859-1\r\n"
				      "\r\n"
				      "Gr\xfc\xdf"
				      "e \x01\r\n"
				      "--b\r\n"
				      "Content-Type: text/plain; name=notes.txt\r\n"
				      "\r\n"
				      "notes\r\n"
				      "--b--\r\n";
	struct depot_fields fields;
	char err[256];

	(void)state;
	assert_int_equal(depot_extract(message, sizeof(message) - 1, &fields, err, sizeof(err)), 0);
	assert_string_equal(fields.body, "Grüße  \n");
	assert_string_equal(fields.attachments[0], "notes.txt");
	test_round_trip(&fields);
	depot_fields_free(&fields);
}

/* The encoder refuses what the decoder would. */
static void test_encoder_refuses(void **state)
{
	char *bad_recipients[] = {"bob@example.org", "with space@example.org"};
	char *empty_name[] = {""};
	char *good[] = {"x@example.org"};
	struct depot_fields cases[] = {
	    {.sender = "a b@example.org"},
	    {.sender = ""},
	    {.recipients = bad_recipients, .recipient_count = 2},
	    {.recipients = good, .recipient_count = DEPOT_RECIPIENTS_MAX + 1},
	    {.subject = "two\nlines"},
	    {.subject = "bad \xff byte"},
	    {.message_id = ""},
	    {.date = -1},
	    {.date = PROTO_RECEIVED_AT_MAX + 1},
	    {.attachments = empty_name, .attachment_count = 1},
	    {.body = "overlong \xc0\xaf"},
	    {.body = "a bell \a"},
	    {.headers = "surrogate \xed\xa0\x80"},
	};
	char *big = xmalloc(DEPOT_TEXT_MAX + 2);
	struct pipeline_verdict verdict;
	unsigned char *frame = NULL;
	size_t len;
	const char *err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_verdict_with(&verdict, &cases[i]);
		err = NULL;
		if (proto_verdict_encode(&verdict, &frame, &len, &err) != -1)
			fail_msg("case %zu encoded", i);
		assert_non_null(err);
	}
	memset(big, 'b', DEPOT_TEXT_MAX + 1);
	big[DEPOT_TEXT_MAX + 1] = '\0';
	cases[0] = (struct depot_fields){.attachment_text = big};
	test_verdict_with(&verdict, &cases[0]);
	assert_int_equal(proto_verdict_encode(&verdict, &frame, &len, &err), -1);
	free(big);
}

/* A verdict whose ARCHIVE value is VALUE (LEN bytes), decoded: 0 or -1. */
static int test_archive_decode(const unsigned char *value, size_t len,
			       struct pipeline_verdict *verdict)
{
	unsigned char id[] = TEST_ID;
	unsigned char outcome = PIPELINE_JUDGED;
	struct test_field fields[] = {
	    {PROTO_VERDICT_ARCHIVE, value, len},
	    {PROTO_VERDICT_OUTCOME, &outcome, 1},
	    {PROTO_VERDICT_ID, id, SPOOL_ID_LEN},
	};
	unsigned char *frame;
	size_t frame_len;
	size_t consumed = 99;
	const char *err = NULL;
	int rc;

	frame = test_frame_build(PROTO_TYPE_VERDICT, fields, 3, &frame_len);
	rc = proto_verdict_decode(frame, frame_len, &consumed, verdict, &err);
	assert_true(rc == 0 ? consumed == frame_len : err != NULL);
	free(frame);
	return rc;
}

/* The required archive fields, then EXTRA (COUNT of them), as a value. */
static unsigned char *test_archive_value(const struct test_field *extra, size_t count,
					 size_t *len_r)
{
	static const unsigned char date[8] = {0, 0, 0, 0, 0x6b, 0x0e, 0x5a, 0x10};
	struct test_field fields[16] = {
	    {PROTO_ARCHIVE_DATE, date, 8},
	    {PROTO_ARCHIVE_HEADERS, "From: a", 7},
	    {PROTO_ARCHIVE_BODY, "text", 4},
	    {PROTO_ARCHIVE_ATTACHMENT_TEXT, "", 0},
	};

	assert_true(count <= 12);
	if (count > 0)
		memcpy(fields + 4, extra, count * sizeof(*extra));
	return test_fields_build(fields, 4 + count, len_r);
}

static void test_decoder_refuses(void **state)
{
	static const unsigned char date_big[8] = {0, 0, 0, 0x3b, 0, 0, 0, 0};
	static const unsigned char date_short[7] = {0};
	struct test_field bad[] = {
	    {PROTO_ARCHIVE_SENDER, "", 0},
	    {PROTO_ARCHIVE_SENDER, "a b@c", 5},
	    {PROTO_ARCHIVE_SENDER, "a\0b@c", 5},
	    {PROTO_ARCHIVE_RECIPIENTS, "a@b\n\nc@d", 8},
	    {PROTO_ARCHIVE_RECIPIENTS, "a@b\n", 4},
	    {PROTO_ARCHIVE_RECIPIENTS, "", 0},
	    {PROTO_ARCHIVE_SUBJECT, "two\nlines", 9},
	    {PROTO_ARCHIVE_SUBJECT, "nul\0", 4},
	    {PROTO_ARCHIVE_MESSAGE_ID, "", 0},
	    {PROTO_ARCHIVE_MESSAGE_ID, "\xe2\x82", 2},
	    {PROTO_ARCHIVE_ATTACHMENTS, "a.pdf\n", 6},
	    {PROTO_ARCHIVE_ATTACHMENTS, "a\rb", 3},
	    {PROTO_ARCHIVE_DATE, date_big, 8},
	    {PROTO_ARCHIVE_DATE, date_short, 7},
	    {PROTO_ARCHIVE_BODY, "x", 1},			  /* repeated */
	    {PROTO_ARCHIVE_HEADERS | PROTO_TAG_REQUIRED, "y", 1}, /* repeated, marked */
	    {20 | PROTO_TAG_REQUIRED, "", 0},			  /* unknown, required */
	};
	struct pipeline_verdict verdict;
	unsigned char *value;
	size_t len;

	(void)state;
	/* The required fields alone, and with an unknown optional one: fine. */
	value = test_archive_value(NULL, 0, &len);
	assert_int_equal(test_archive_decode(value, len, &verdict), 0);
	assert_int_equal(verdict.archive_fields->date, 1796102672);
	assert_string_equal(verdict.archive_fields->body, "text");
	proto_verdict_clear(&verdict);
	free(value);
	{
		struct test_field unknown = {20, "skip me", 7};

		value = test_archive_value(&unknown, 1, &len);
		assert_int_equal(test_archive_decode(value, len, &verdict), 0);
		proto_verdict_clear(&verdict);
		free(value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		value = test_archive_value(&bad[i], 1, &len);
		if (test_archive_decode(value, len, &verdict) != -1)
			fail_msg("bad field %zu accepted", i);
		free(value);
	}
	/* A required field missing. */
	for (size_t skip = 0; skip < 4; skip++) {
		static const unsigned char date[8] = {0};
		struct test_field all[] = {
		    {PROTO_ARCHIVE_DATE, date, 8},
		    {PROTO_ARCHIVE_HEADERS, "", 0},
		    {PROTO_ARCHIVE_BODY, "", 0},
		    {PROTO_ARCHIVE_ATTACHMENT_TEXT, "", 0},
		};
		struct test_field some[3];
		size_t n = 0;

		for (size_t i = 0; i < 4; i++) {
			if (i != skip)
				some[n++] = all[i];
		}
		value = test_fields_build(some, n, &len);
		assert_int_equal(test_archive_decode(value, len, &verdict), -1);
		free(value);
	}
	/* Texts: invalid UTF-8, NUL, control characters; over their bound. */
	{
		static const struct {
			const char *text;
			size_t len;
		} texts[] = {
		    {"caf\xe9", 4}, {"a\0b", 3}, {"bell\a", 5}, {"esc\x1b[0m", 6}, {"del\x7f", 4}};
		static const unsigned char date[8] = {0};
		char *big = xmalloc(DEPOT_TEXT_MAX + 1);

		memset(big, 'b', DEPOT_TEXT_MAX + 1);
		for (size_t i = 0; i <= sizeof(texts) / sizeof(texts[0]); i++) {
			bool too_long = i == sizeof(texts) / sizeof(texts[0]);
			struct test_field all[] = {
			    {PROTO_ARCHIVE_DATE, date, 8},
			    {PROTO_ARCHIVE_HEADERS, "", 0},
			    {PROTO_ARCHIVE_BODY, "", 0},
			    {PROTO_ARCHIVE_ATTACHMENT_TEXT, too_long ? big : texts[i].text,
			     too_long ? DEPOT_TEXT_MAX + 1 : texts[i].len},
			};

			value = test_fields_build(all, 4, &len);
			if (test_archive_decode(value, len, &verdict) != -1)
				fail_msg("bad text %zu accepted", i);
			free(value);
		}
		free(big);
	}
	/* Too many recipients: DEPOT_RECIPIENTS_MAX + 1 short addresses. */
	{
		size_t n = DEPOT_RECIPIENTS_MAX + 1;
		char *list = xmalloc(n * 4);
		struct test_field many;

		for (size_t i = 0; i < n; i++)
			memcpy(list + 4 * i, "a@b\n", 4);
		many = (struct test_field){PROTO_ARCHIVE_RECIPIENTS, list, n * 4 - 1};
		value = test_archive_value(&many, 1, &len);
		assert_int_equal(test_archive_decode(value, len, &verdict), -1);
		free(value);
		many.len = (n - 1) * 4 - 1;
		value = test_archive_value(&many, 1, &len);
		assert_int_equal(test_archive_decode(value, len, &verdict), 0);
		assert_int_equal(verdict.archive_fields->recipient_count, DEPOT_RECIPIENTS_MAX);
		proto_verdict_clear(&verdict);
		free(value);
		free(list);
	}
	/* An ARCHIVE value longer than PROTO_ARCHIVE_MAX, though each field
	 * in it would pass. */
	{
		size_t pad_len = PROTO_ARCHIVE_MAX;
		char *pad = xcalloc(1, pad_len);
		struct test_field padding = {21, pad, pad_len};

		value = test_archive_value(&padding, 1, &len);
		assert_true(len > PROTO_ARCHIVE_MAX);
		assert_int_equal(test_archive_decode(value, len, &verdict), -1);
		free(value);
		free(pad);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_job_archive_flag),  cmocka_unit_test(test_archive_round_trip),
	    cmocka_unit_test(test_archive_at_bounds), cmocka_unit_test(test_archive_extracted),
	    cmocka_unit_test(test_encoder_refuses),   cmocka_unit_test(test_decoder_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
