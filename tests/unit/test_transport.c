/*
 * test_transport.c — transport rules: patterns checked, matching (domain,
 * subdomain, *, sender forms, case), first match by position, insertion at
 * a position that is taken, deletion, and AUTH secrets sealed by the
 * popgatectl side and opened only with the credential key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/crypto.h"
#include "store/transport.h"

#include "test_support.h"

static struct store_transport_rule rule_of(enum transport_match match, const char *pattern)
{
	return (struct store_transport_rule){.match = match,
					     .pattern = (char *)pattern,
					     .host = (char *)"relay.example",
					     .port = 25,
					     .tls = TRANSPORT_TLS_OPPORTUNISTIC};
}

static void test_patterns(void **state)
{
	(void)state;
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, "example.com"));
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, "*.example.com"));
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, "*"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, "a@example.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, "ex ample.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_DOMAIN, ""));
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "a@example.com"));
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "@example.com"));
	assert_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "*@*.example.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "example.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "a@*.example.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "*@example.com"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "@*"));
	assert_non_null(transport_pattern_refusal(TRANSPORT_MATCH_SENDER, "a b@example.com"));
}

static void test_domain_matching(void **state)
{
	struct store_transport_rule exact = rule_of(TRANSPORT_MATCH_DOMAIN, "example.com");
	struct store_transport_rule sub = rule_of(TRANSPORT_MATCH_DOMAIN, "*.example.com");
	struct store_transport_rule all = rule_of(TRANSPORT_MATCH_DOMAIN, "*");
	(void)state;

	assert_true(transport_rule_matches(&exact, "s@x.org", "b@example.com"));
	assert_true(transport_rule_matches(&exact, "s@x.org", "b@EXAMPLE.Com"));
	assert_false(transport_rule_matches(&exact, "s@x.org", "b@mail.example.com"));
	assert_false(transport_rule_matches(&exact, "s@x.org", "b@badexample.com"));
	/* *.domain: subdomains, not the apex. */
	assert_true(transport_rule_matches(&sub, "s@x.org", "b@mail.example.com"));
	assert_true(transport_rule_matches(&sub, "s@x.org", "b@a.b.EXAMPLE.com"));
	assert_false(transport_rule_matches(&sub, "s@x.org", "b@example.com"));
	assert_false(transport_rule_matches(&sub, "s@x.org", "b@evilexample.com"));
	assert_true(transport_rule_matches(&all, "", "b@anything.net"));
	/* The sender does not count for a domain rule. */
	assert_false(transport_rule_matches(&exact, "b@example.com", "c@x.org"));
}

static void test_sender_matching(void **state)
{
	struct store_transport_rule one = rule_of(TRANSPORT_MATCH_SENDER, "Boss@Example.com");
	struct store_transport_rule domain = rule_of(TRANSPORT_MATCH_SENDER, "@example.com");
	struct store_transport_rule sub = rule_of(TRANSPORT_MATCH_SENDER, "*@*.example.com");
	(void)state;

	assert_true(transport_rule_matches(&one, "boss@example.COM", "x@y.org"));
	assert_false(transport_rule_matches(&one, "other@example.com", "x@y.org"));
	assert_true(transport_rule_matches(&domain, "any@EXAMPLE.com", "x@y.org"));
	assert_false(transport_rule_matches(&domain, "any@mail.example.com", "x@y.org"));
	assert_true(transport_rule_matches(&sub, "any@mail.example.com", "x@y.org"));
	assert_false(transport_rule_matches(&sub, "any@example.com", "x@y.org"));
	/* The null sender matches no sender rule. */
	assert_false(transport_rule_matches(&domain, "", "x@example.com"));
}

static void test_add_list_order(void **state)
{
	struct test_store *f = *state;
	struct store_transport_rule a = rule_of(TRANSPORT_MATCH_DOMAIN, "example.com");
	struct store_transport_rule b = rule_of(TRANSPORT_MATCH_DOMAIN, "*");
	struct store_transport_rule c = rule_of(TRANSPORT_MATCH_SENDER, "@example.org");
	struct store_transport_rule *list = NULL;
	const struct store_transport_rule *hit;
	size_t count = 0;

	a.host = (char *)"a.relay";
	b.host = (char *)"b.relay";
	c.host = (char *)"c.relay";
	assert_int_equal(store_transport_add(f->store, &a), 0);
	assert_int_equal(a.position, 1);
	assert_int_equal(store_transport_add(f->store, &b), 0);
	assert_int_equal(b.position, 2);
	/* Position 1 is taken: the others move down. */
	c.position = 1;
	assert_int_equal(store_transport_add(f->store, &c), 0);
	assert_int_equal(store_transport_list(f->store, &list, &count), 0);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].host, "c.relay");
	assert_string_equal(list[1].host, "a.relay");
	assert_string_equal(list[2].host, "b.relay");
	assert_int_equal(list[1].position, 2);
	assert_int_equal(list[2].position, 3);
	/* First match wins. */
	hit = transport_rule_find(list, count, "s@example.org", "r@example.com");
	assert_string_equal(hit->host, "c.relay");
	hit = transport_rule_find(list, count, "s@x.net", "r@example.com");
	assert_string_equal(hit->host, "a.relay");
	hit = transport_rule_find(list, count, "s@x.net", "r@else.net");
	assert_string_equal(hit->host, "b.relay");
	store_transport_list_free(&list, count);
	assert_int_equal(store_transport_del(f->store, b.id), 1);
	assert_int_equal(store_transport_del(f->store, b.id), 0);
	assert_int_equal(store_transport_list(f->store, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_null(transport_rule_find(list, count, "s@x.net", "r@else.net"));
	store_transport_list_free(&list, count);
}

static void test_sealed_secret(void **state)
{
	struct test_store *f = *state;
	struct crypto_key key, other;
	struct store_transport_rule r = rule_of(TRANSPORT_MATCH_DOMAIN, "*");
	struct store_transport_rule *list = NULL;
	unsigned char *blob = NULL;
	size_t len = 0, count = 0;
	char *secret = NULL;

	assert_int_equal(crypto_init(), 0);
	randombytes_buf(key.bytes, sizeof(key.bytes));
	randombytes_buf(other.bytes, sizeof(other.bytes));
	/* No key published yet (no daemon of this version ran): refused. */
	assert_int_equal(store_transport_seal(f->store, "s3cret", &blob, &len), -1);
	assert_int_equal(store_transport_publish_key(f->store, &key), 0);
	assert_int_equal(store_transport_seal(f->store, "s3cret", &blob, &len), 0);
	assert_null(memmem(blob, len, "s3cret", 6));
	r.auth_user = (char *)"relayuser";
	r.auth_secret = blob;
	r.auth_secret_len = len;
	assert_int_equal(store_transport_add(f->store, &r), 0);
	free(blob);
	assert_int_equal(store_transport_list(f->store, &list, &count), 0);
	assert_int_equal(count, 1);
	assert_string_equal(list[0].auth_user, "relayuser");
	assert_int_equal(
	    transport_secret_open(&other, list[0].auth_secret, list[0].auth_secret_len, &secret),
	    -1);
	assert_int_equal(
	    transport_secret_open(&key, list[0].auth_secret, list[0].auth_secret_len, &secret), 0);
	assert_string_equal(secret, "s3cret");
	crypto_password_free(&secret);
	store_transport_list_free(&list, count);
}

static int setup(void **state)
{
	return test_store_setup(state, "transport");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_patterns),
	    cmocka_unit_test(test_domain_matching),
	    cmocka_unit_test(test_sender_matching),
	    cmocka_unit_test_setup_teardown(test_add_list_order, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_sealed_secret, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
