/*
 * test_policy.c — which provider addresses count as public (pop3/policy.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/policy.h"

static bool address_public(const char *text)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};

	if (inet_pton(AF_INET, text, &v4.sin_addr) == 1)
		return policy_address_public((struct sockaddr *)&v4);
	assert_int_equal(inet_pton(AF_INET6, text, &v6.sin6_addr), 1);
	return policy_address_public((struct sockaddr *)&v6);
}

static void test_ipv4_public(void **state)
{
	(void)state;
	static const char *const public[] = {"212.227.17.1", "8.8.8.8", "172.15.255.255",
					     "172.32.0.1",   "192.167.1.1", "100.63.255.255",
					     "100.128.0.0",  "169.253.1.1", "223.255.255.255"};
	for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++) {
		if (!address_public(public[i]))
			fail_msg("%s should be public", public[i]);
	}
}

static void test_ipv4_not_public(void **state)
{
	(void)state;
	static const char *const internal[] = {
		"127.0.0.1",   "127.255.255.254", "10.0.0.1",	"10.255.255.255", "172.16.0.1",
		"172.31.255.255", "192.168.0.1",  "192.168.255.255", "169.254.169.254",
		"100.64.0.1",  "100.127.255.255", "0.0.0.0",	"0.1.2.3",	  "224.0.0.1",
		"239.255.255.250", "240.0.0.1",	  "255.255.255.255"};
	for (size_t i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
		if (address_public(internal[i]))
			fail_msg("%s must not be public", internal[i]);
	}
}

static void test_ipv6(void **state)
{
	(void)state;
	assert_true(address_public("2a00:1450:4001:80b::2005"));
	assert_true(address_public("::ffff:212.227.17.1"));
	assert_false(address_public("::1"));
	assert_false(address_public("::"));
	assert_false(address_public("fe80::1"));
	assert_false(address_public("fec0::1"));
	assert_false(address_public("fc00::1"));
	assert_false(address_public("fd12:3456::1"));
	assert_false(address_public("ff02::1"));
	/* An IPv4 address in IPv6 clothing is judged as the IPv4 address. */
	assert_false(address_public("::ffff:127.0.0.1"));
	assert_false(address_public("::ffff:10.1.2.3"));
	assert_false(address_public("::ffff:192.168.1.1"));
	assert_false(address_public("::10.1.2.3"));
}

static void test_other_families(void **state)
{
	(void)state;
	struct sockaddr unix_addr = {.sa_family = AF_UNIX};
	assert_false(policy_address_public(&unix_addr));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4_public),
		cmocka_unit_test(test_ipv4_not_public),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_other_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
