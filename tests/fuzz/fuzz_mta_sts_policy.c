/*
 * fuzz_mta_sts_policy.c — libFuzzer target for what an MTA-STS policy host
 * and the DNS send the relay (smtp/mta_sts.c): the policy body, the
 * _mta-sts TXT record, and the HTTP response the policy comes in.
 *
 * The input goes to all three parsers. Checked with abort(): a policy
 * accepted keeps mta_sts.h's promises (a known mode, max_age within
 * 0..31557600, mx patterns that are lowercase, without a trailing dot, at
 * most MTA_STS_MX_MAX, and match themselves or, for "*.", one more
 * label; enforce and testing name at least one); a record accepted has an
 * id of 1 to 32 letters and digits; a response framed whole has its body
 * inside the input and within MTA_STS_POLICY_MAX, and stays whole when
 * the close is added. No input is read past its size (ASan).
 *
 * Must never: touch the file system or keep state between runs.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/mta_sts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

static void fuzz_policy(const char *text, size_t size)
{
	struct mta_sts_policy policy;
	char err[160];

	if (mta_sts_policy_parse(text, size, &policy, err, sizeof(err)) < 0) {
		check(policy.mx == NULL && policy.mx_count == 0);
		check(memchr(err, '\0', sizeof(err)) != NULL);
		return;
	}
	check(policy.mode == MTA_STS_NONE || policy.mode == MTA_STS_TESTING ||
	      policy.mode == MTA_STS_ENFORCE);
	check(policy.max_age >= 0 && policy.max_age <= MTA_STS_MAX_AGE_MAX);
	check(policy.mx_count <= MTA_STS_MX_MAX);
	check(policy.mode == MTA_STS_NONE || policy.mx_count > 0);
	for (size_t i = 0; i < policy.mx_count; i++) {
		const char *mx = policy.mx[i];
		size_t len = strlen(mx);
		char host[300];

		check(len > 0 && mx[len - 1] != '.');
		for (size_t j = 0; j < len; j++)
			check(!isupper((unsigned char)mx[j]));
		if (mx[0] == '*') {
			snprintf(host, sizeof(host), "a%s", mx + 1);
			check(mta_sts_mx_match(mx, host));
			snprintf(host, sizeof(host), "a.b%s", mx + 1);
			check(!mta_sts_mx_match(mx, host));
		} else {
			check(mta_sts_mx_match(mx, mx));
		}
	}
	mta_sts_policy_clear(&policy);
}

static void fuzz_record(const char *text, size_t size)
{
	char id[MTA_STS_ID_MAX + 1];

	if (mta_sts_record_parse(text, size, id) == 1) {
		size_t len = strlen(id);

		check(len >= 1 && len <= MTA_STS_ID_MAX);
		for (size_t i = 0; i < len; i++)
			check(isalnum((unsigned char)id[i]));
	}
}

static void fuzz_http(const char *text, size_t size)
{
	size_t offset = 0, length = 0, offset2 = 0, length2 = 0;
	char err[160];
	int open = mta_sts_http_response(text, size, false, &offset, &length, err, sizeof(err));
	int closed = mta_sts_http_response(text, size, true, &offset2, &length2, err, sizeof(err));

	if (open == 1) {
		check(offset <= size && length <= size - offset && length <= MTA_STS_POLICY_MAX);
		check(closed == 1 && offset2 == offset && length2 == length);
	}
	if (closed == 1)
		check(offset2 <= size && length2 <= size - offset2 &&
		      length2 <= MTA_STS_POLICY_MAX);
	check(closed != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly SIZE bytes, so ASan sees any read past the end. */
	char *text = malloc(size > 0 ? size : 1);

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	fuzz_policy(text, size);
	fuzz_record(text, size);
	fuzz_http(text, size);
	free(text);
	return 0;
}
