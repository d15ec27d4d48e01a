/*
 * test_proto_support.h — hand-built frames for test_proto.c and
 * test_proto_fields.c: fields and frames assembled without the encoders'
 * checks, so the decoders can be shown what a hostile worker might send.
 *
 * Owns: nothing. Everything here is static inline, for the two test files.
 */
#ifndef POPGATE_TEST_PROTO_SUPPORT_H
#define POPGATE_TEST_PROTO_SUPPORT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pipeline/proto.h"

#define TEST_ID "0123456789abcdef01234567"
#define TEST_RECEIVED_AT INT64_C(1795832053)

/* One field of a hand-built frame. */
struct test_field {
	uint16_t tag;
	const void *data;
	size_t len;
};

static inline void test_put_u16(unsigned char *p, uint16_t value)
{
	p[0] = (unsigned char)(value >> 8);
	p[1] = (unsigned char)value;
}

static inline void test_put_u32(unsigned char *p, uint32_t value)
{
	p[0] = (unsigned char)(value >> 24);
	p[1] = (unsigned char)(value >> 16);
	p[2] = (unsigned char)(value >> 8);
	p[3] = (unsigned char)value;
}

/* Builds a field sequence from FIELDS (a payload, or the value of a nested
 * field), bypassing the encoders' checks. Caller frees. */
static inline unsigned char *test_fields_build(const struct test_field *fields, size_t count,
					size_t *len_r)
{
	size_t len = 0;
	unsigned char *buf;
	unsigned char *p;

	for (size_t i = 0; i < count; i++)
		len += 6 + fields[i].len;
	buf = xmalloc(len + 1);
	p = buf;
	for (size_t i = 0; i < count; i++) {
		test_put_u16(p, fields[i].tag);
		test_put_u32(p + 2, (uint32_t)fields[i].len);
		if (fields[i].len > 0)
			memcpy(p + 6, fields[i].data, fields[i].len);
		p += 6 + fields[i].len;
	}
	*len_r = len;
	return buf;
}

/* Builds a frame of TYPE from FIELDS, bypassing the encoders' checks, so the
 * decoders can be shown what a hostile worker might send. Caller frees. */
static inline unsigned char *test_frame_build(uint16_t type, const struct test_field *fields, size_t count,
				       size_t *len_r)
{
	size_t payload_len;
	unsigned char *payload = test_fields_build(fields, count, &payload_len);
	unsigned char *frame = xmalloc(PROTO_HEADER_LEN + payload_len);

	test_put_u32(frame, PROTO_MAGIC);
	test_put_u16(frame + 4, PROTO_VERSION);
	test_put_u16(frame + 6, type);
	test_put_u32(frame + 8, (uint32_t)payload_len);
	memcpy(frame + PROTO_HEADER_LEN, payload, payload_len);
	free(payload);
	*len_r = PROTO_HEADER_LEN + payload_len;
	return frame;
}

/* A profile for the jobs of these tests: two filters, other thresholds than
 * the default's, both flags. */
/* One copy per test file, which is all either needs. */
static struct filter_profile test_profile = {
    .filters = {{.name = "trace", .weight = 1.0}, {.name = "bayes-2", .weight = -0.5}},
    .filter_count = 2,
    .tag_at = 4.25,
    .quarantine_at = 12.0,
    .challenge_unknown_senders = true,
    .hold = true,
};

/* One RESULT value (NAME, STATUS ok, SCORE 1.5, HEADERS if not NULL), hand
 * built. Caller frees. */
static inline unsigned char *test_result_value(const char *headers, size_t *len_r)
{
	static const unsigned char status = PIPELINE_RESULT_OK;
	static const unsigned char score[4] = {0, 0, 0x05, 0xdc}; /* 1500 thousandths */
	struct test_field fields[] = {
	    {PROTO_RESULT_NAME, "trace", 5},
	    {PROTO_RESULT_STATUS, &status, 1},
	    {PROTO_RESULT_SCORE, score, 4},
	    {PROTO_RESULT_HEADERS, headers, headers != NULL ? strlen(headers) : 0},
	};

	return test_fields_build(fields, headers != NULL ? 4 : 3, len_r);
}

/* A PROFILE value running one filter, "trace", hand built. Caller frees. */
static inline unsigned char *test_profile_value(size_t *len_r)
{
	static const unsigned char weight[4] = {0, 0, 0x03, 0xe8}; /* 1.000 */
	static const unsigned char tag_at[4] = {0, 0, 0x13, 0x88}; /* 5.000 */
	static const unsigned char flags = 0;
	struct test_field filter_fields[] = {
	    {PROTO_FILTER_NAME, "trace", 5},
	    {PROTO_FILTER_WEIGHT, weight, 4},
	};
	size_t filter_len;
	unsigned char *filter = test_fields_build(filter_fields, 2, &filter_len);
	struct test_field fields[] = {
	    {PROTO_PROFILE_FILTER, filter, filter_len},
	    {PROTO_PROFILE_TAG_AT, tag_at, 4},
	    {PROTO_PROFILE_QUARANTINE_AT, tag_at, 4},
	    {PROTO_PROFILE_FLAGS, &flags, 1},
	};
	unsigned char *value = test_fields_build(fields, 4, len_r);

	free(filter);
	return value;
}

/* A PROFILE value running COUNT filters named "a", "b", ... Caller frees. */
static inline unsigned char *test_profile_of(size_t count, size_t *len_r)
{
	static const unsigned char weight[4] = {0, 0, 0x03, 0xe8};
	static const unsigned char flags = 0;
	static const char letters[] = "abcdefghijklmnopqrstuvwxyz";
	struct test_field fields[FILTER_PROFILE_MAX + 4];
	unsigned char *values[FILTER_PROFILE_MAX + 1];
	unsigned char *profile;
	size_t n = 0;

	assert_true(count <= FILTER_PROFILE_MAX + 1);
	for (size_t i = 0; i < count; i++) {
		struct test_field filter_fields[] = {
		    {PROTO_FILTER_NAME, &letters[i], 1},
		    {PROTO_FILTER_WEIGHT, weight, 4},
		};
		size_t len;

		values[i] = test_fields_build(filter_fields, 2, &len);
		fields[n++] = (struct test_field){PROTO_PROFILE_FILTER, values[i], len};
	}
	fields[n++] = (struct test_field){PROTO_PROFILE_TAG_AT, weight, 4};
	fields[n++] = (struct test_field){PROTO_PROFILE_QUARANTINE_AT, weight, 4};
	fields[n++] = (struct test_field){PROTO_PROFILE_FLAGS, &flags, 1};
	profile = test_fields_build(fields, n, len_r);
	for (size_t i = 0; i < count; i++)
		free(values[i]);
	return profile;
}

/* Decodes a hand-built verdict and expects it refused. */
static inline void test_verdict_fields_rejected(const struct test_field *fields, size_t count)
{
	struct pipeline_verdict verdict;
	unsigned char *frame;
	size_t len;
	size_t consumed = 99;
	const char *err = NULL;

	frame = test_frame_build(PROTO_TYPE_VERDICT, fields, count, &len);
	assert_int_equal(proto_verdict_decode(frame, len, &consumed, &verdict, &err), -1);
	assert_non_null(err);
	free(frame);
}

static inline void test_job_fields_rejected(const struct test_field *fields, size_t count)
{
	struct pipeline_job job;
	unsigned char *frame;
	size_t len;
	size_t consumed = 99;
	const char *err = NULL;

	frame = test_frame_build(PROTO_TYPE_JOB, fields, count, &len);
	assert_int_equal(proto_job_decode(frame, len, &consumed, &job, &err), -1);
	assert_non_null(err);
	free(frame);
}

#endif
