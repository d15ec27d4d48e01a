/*
 * test_dane.c — DANE for the SMTP relay (smtp/dane.c): the decision from an
 * MX host's A, AAAA and TLSA answers (RFC 7672 2.2, 2.2.2, 3.1.3), which
 * records are usable, and a whole lookup through the resolver against a
 * real name server (dnsmasq, which signs nothing: no DANE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/resolver.h"
#include "smtp/dane.h"
#include "test_dnsmasq.h"
#include "test_support.h"

/* Bounds the wait for the lookup's answer, in seconds. */
#define TEST_DEADLINE_SECONDS 20

static uint8_t digest256[32] = {1, 2, 3};
static uint8_t digest512[64] = {4, 5, 6};

static const struct dane_answer secure_a = {.status = RESOLVER_OK, .secure = true};
static const struct dane_answer secure_nodata = {.status = RESOLVER_OK, .secure = true};
static const struct dane_answer insecure_a = {.status = RESOLVER_OK};
static const struct dane_answer bogus = {.status = RESOLVER_FAILED, .bogus = true};
static const struct dane_answer failed = {.status = RESOLVER_FAILED};

/* A secure TLSA answer with RECORDS. */
static struct dane_answer tlsa_answer(const struct resolver_tlsa *records, size_t count)
{
	struct dane_answer answer = {
	    .status = RESOLVER_OK, .secure = true, .records = records, .count = count};
	return answer;
}

static void test_usable_records(void **state)
{
	(void)state;
	struct resolver_tlsa record = {3, 1, 1, digest256, sizeof(digest256)};

	assert_true(dane_tlsa_usable(&record));
	record.usage = 2;
	assert_true(dane_tlsa_usable(&record));
	/* PKIX-TA and PKIX-EE are not for SMTP (RFC 7672 3.1.3), nor unknown usages. */
	for (uint8_t usage = 0; usage < 2; usage++) {
		record.usage = usage;
		assert_false(dane_tlsa_usable(&record));
	}
	record.usage = 4;
	assert_false(dane_tlsa_usable(&record));
	record.usage = 3;
	record.selector = 2;
	assert_false(dane_tlsa_usable(&record));
	record.selector = 0;
	/* A digest of the wrong size for its matching type. */
	record.matching = 2;
	assert_false(dane_tlsa_usable(&record));
	record.data = digest512;
	record.length = sizeof(digest512);
	assert_true(dane_tlsa_usable(&record));
	record.matching = 3;
	assert_false(dane_tlsa_usable(&record));
	/* Exact data of any length. */
	record.matching = 0;
	record.length = 5;
	assert_true(dane_tlsa_usable(&record));
	record.length = 0;
	assert_false(dane_tlsa_usable(&record));
}

static void test_usable_records_authenticate(void **state)
{
	(void)state;
	struct resolver_tlsa records[] = {
	    {0, 0, 1, digest256, sizeof(digest256)}, /* PKIX-TA: skipped */
	    {3, 1, 1, digest256, sizeof(digest256)},
	    {2, 0, 2, digest512, sizeof(digest512)},
	};
	struct dane_answer tlsa = tlsa_answer(records, 3);
	struct dane_policy policy;

	dane_decide(&secure_a, &secure_nodata, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_AUTHENTICATE);
	assert_int_equal(policy.count, 2);
	assert_int_equal(policy.records[0].usage, 3);
	assert_int_equal(policy.records[1].usage, 2);
	/* Copies: the answer may go. */
	assert_ptr_not_equal(policy.records[0].data, digest256);
	assert_memory_equal(policy.records[1].data, digest512, sizeof(digest512));
	assert_non_null(strstr(policy.reason, "_25._tcp.mx.example.test"));
	dane_policy_clear(&policy);
	assert_int_equal(policy.state, DANE_NONE);
	assert_null(policy.records);
}

static void test_unusable_records_still_require_tls(void **state)
{
	(void)state;
	struct resolver_tlsa records[] = {{1, 1, 1, digest256, sizeof(digest256)}};
	struct dane_answer tlsa = tlsa_answer(records, 1);
	struct dane_policy policy;

	dane_decide(&secure_a, &secure_nodata, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_ENCRYPT);
	assert_int_equal(policy.count, 0);
	dane_policy_clear(&policy);
}

static void test_no_dane_without_secure_records(void **state)
{
	(void)state;
	struct resolver_tlsa records[] = {{3, 1, 1, digest256, sizeof(digest256)}};
	struct dane_answer tlsa = tlsa_answer(records, 1);
	struct dane_answer insecure_tlsa = tlsa;
	struct dane_answer none = {.status = RESOLVER_OK, .secure = true};
	struct dane_answer nxdomain = {.status = RESOLVER_NOT_FOUND, .secure = true};
	struct dane_policy policy;

	/* Insecure addresses: the TLSA records are not even looked at. */
	dane_decide(&insecure_a, &secure_nodata, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	dane_decide(&secure_a, &insecure_a, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	/* Nothing answered at all. */
	dane_decide(&failed, &failed, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	/* One family failing does not hide the other's secure answer. */
	dane_decide(&secure_a, &failed, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_AUTHENTICATE);
	dane_policy_clear(&policy);
	/* No records, proved or not. */
	dane_decide(&secure_a, &secure_nodata, &none, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	dane_decide(&secure_a, &secure_nodata, &nxdomain, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	/* Records that are not signed are not believed. */
	insecure_tlsa.secure = false;
	dane_decide(&secure_a, &secure_nodata, &insecure_tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_NONE);
	assert_null(policy.records);
}

static void test_failures_defer(void **state)
{
	(void)state;
	struct resolver_tlsa records[] = {{3, 1, 1, digest256, sizeof(digest256)}};
	struct dane_answer tlsa = tlsa_answer(records, 1);
	struct dane_answer timeout = {.status = RESOLVER_TIMEOUT};
	struct dane_policy policy;

	/* A bogus TLSA answer is never "no TLSA". */
	dane_decide(&secure_a, &secure_nodata, &bogus, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_DEFER);
	assert_non_null(strstr(policy.reason, "bogus"));
	/* Nor a failed or lost one. */
	dane_decide(&secure_a, &secure_nodata, &failed, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_DEFER);
	dane_decide(&secure_a, &secure_nodata, &timeout, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_DEFER);
	assert_non_null(strstr(policy.reason, "DANE: the TLSA lookup at _25._tcp.mx.example.test"));
	/* Bogus addresses. */
	dane_decide(&bogus, &secure_nodata, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_DEFER);
	dane_decide(&secure_a, &bogus, &tlsa, "mx.example.test", 25, &policy);
	assert_int_equal(policy.state, DANE_DEFER);
	assert_null(policy.records);
	assert_string_equal(dane_state_name(DANE_DEFER), "defer");
}

/* ---- a lookup through the resolver ----------------------------------------- */

static const char *const records[] = {
    "host-record=mx.mail.test,127.0.0.9",
    "dns-rr=_25._tcp.mx.mail.test,52,"
    "0301010001020304050607080900010203040506070809000102030405060708"
    "0901",
    "local=/test/",
};

struct seen {
	struct event_base *base;
	int calls;
	struct dane_policy policy;
};

static void policy_cb(struct dane_policy *policy, void *ctx)
{
	struct seen *seen = ctx;

	seen->calls++;
	seen->policy = *policy;
	event_base_loopbreak(seen->base);
}

static void never_cb(struct dane_policy *policy, void *ctx)
{
	(void)policy;
	(void)ctx;
	fail_msg("a cancelled DANE lookup called back");
}

static void test_lookup_unsigned_zone(void **state)
{
	(void)state;
	char dir[TEST_DIR_SIZE], err[256] = "";
	struct test_dnsmasq dns;
	struct seen seen = {.base = event_base_new()};
	struct timeval deadline = {TEST_DEADLINE_SECONDS, 0};
	struct resolver *resolver;
	struct dane_lookup *lookup;

	assert_int_equal(test_dir_make(dir, sizeof(dir), "dane"), 0);
	assert_int_equal(
	    test_dnsmasq_start(&dns, dir, records, sizeof(records) / sizeof(records[0])), 0);
	resolver = resolver_new(seen.base, dns.address, err, sizeof(err));
	assert_non_null(resolver);
	/* Cancelled at once: no callback, nothing leaked. */
	lookup = dane_lookup_start(resolver, "mx.mail.test", 25, never_cb, NULL);
	dane_lookup_cancel(&lookup);
	assert_null(lookup);
	/* The records are there, but nothing is signed: no DANE. */
	lookup = dane_lookup_start(resolver, "mx.mail.test", 25, policy_cb, &seen);
	assert_non_null(lookup);
	assert_int_equal(seen.calls, 0);
	event_base_loopexit(seen.base, &deadline);
	event_base_dispatch(seen.base);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.policy.state, DANE_NONE);
	assert_non_null(strstr(seen.policy.reason, "not DNSSEC-signed"));
	dane_policy_clear(&seen.policy);
	resolver_free(&resolver);
	event_base_free(seen.base);
	test_dnsmasq_stop(&dns);
	test_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_usable_records),
	    cmocka_unit_test(test_usable_records_authenticate),
	    cmocka_unit_test(test_unusable_records_still_require_tls),
	    cmocka_unit_test(test_no_dane_without_secure_records),
	    cmocka_unit_test(test_failures_defer),
	    cmocka_unit_test(test_lookup_unsigned_zone),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
