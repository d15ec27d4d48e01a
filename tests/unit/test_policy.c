/*
 * test_policy.c — which provider addresses count as public, and which host
 * names are refused as ambiguous IPv4 literals (core/policy.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "core/policy.h"

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

static void assert_all(const char *const *texts, size_t count, bool expected)
{
	for (size_t i = 0; i < count; i++) {
		if (address_public(texts[i]) != expected)
			fail_msg("%s should %sbe public", texts[i], expected ? "" : "not ");
	}
}

#define ASSERT_ALL(list, expected) assert_all(list, sizeof(list) / sizeof(list[0]), expected)

static void test_ipv4_special_purpose(void **state)
{
	(void)state;
	/* Each IANA special-purpose block: its first and last address. */
	static const char *const blocked[] = {
		"0.0.0.0",	  "0.255.255.255",   "10.0.0.0",	"10.255.255.255",
		"100.64.0.0",	  "100.127.255.255", "127.0.0.0",	"127.255.255.255",
		"169.254.0.0",	  "169.254.255.255", "172.16.0.0",	"172.31.255.255",
		"192.0.0.0",	  "192.0.0.255",     "192.0.2.0",	"192.0.2.255",
		"192.88.99.0",	  "192.88.99.255",   "192.168.0.0",	"192.168.255.255",
		"198.18.0.0",	  "198.19.255.255",  "198.51.100.0",	"198.51.100.255",
		"203.0.113.0",	  "203.0.113.255",   "224.0.0.0",	"239.255.255.255",
		"240.0.0.0",	  "255.255.255.254", "255.255.255.255",
	};
	/* The neighbours just outside each block. */
	static const char *const open[] = {
		"1.0.0.0",	   "9.255.255.255",  "11.0.0.0",     "100.63.255.255", "100.128.0.0",
		"126.255.255.255", "128.0.0.0",	     "169.253.255.255", "169.255.0.0", "172.15.255.255",
		"172.32.0.0",	   "191.255.255.255", "192.0.1.0",   "192.0.3.0",	"192.88.98.255",
		"192.88.100.0",	   "192.167.255.255", "192.169.0.0", "198.17.255.255", "198.20.0.0",
		"198.51.99.255",   "198.51.101.0",   "203.0.112.255", "203.0.114.0",	"223.255.255.255",
	};
	ASSERT_ALL(blocked, false);
	ASSERT_ALL(open, true);
}

static void test_ipv6_special_purpose(void **state)
{
	(void)state;
	static const char *const blocked[] = {
		"::",		  "::1",	    "::2",	      "::8.8.8.8",	"100::",
		"100::ffff:ffff:ffff:ffff", "1fff:ffff::1", "2001::",	  "2001:1ff:ffff::1",
		"2001:0:4136:e378:8000:63bf:3fff:fdd2", /* Teredo, refused outright */
		"2001:db8::1",	  "2001:db8:ffff::1", "3fff::1",	      "3fff:fff:ffff::1",
		"4000::1",	  "5f00::1",	    "fc00::1",	      "fdff::1",	"fe80::1",
		"febf::1",	  "fec0::1",	    "feff::1",	      "ff00::",	"ff02::1",
		"ffff::1",	  "64:ff9b:2::1",
	};
	static const char *const open[] = {
		"2000::1",	  "2001:200::1", "2001:db7:ffff::1", "2001:db9::1", "2a00:1450:4001:80b::2005",
		"3ffe::1",	  "3fff:1000::1", "2606:4700::1111",
	};
	ASSERT_ALL(blocked, false);
	ASSERT_ALL(open, true);
}

static void test_ipv6_embedded_ipv4(void **state)
{
	(void)state;
	/* Every IPv6 form that carries an IPv4 address, with a public one... */
	static const char *const open[] = {
		"::ffff:212.227.17.1",	     "::ffff:0:212.227.17.1", "64:ff9b::212.227.17.1",
		"64:ff9b:1::212.227.17.1",   "2002:d4e3:1101::1",     "2002:808:808:1234::5",
	};
	/* ...and with each kind of internal or special one. */
	static const char *const blocked[] = {
		"::ffff:127.0.0.1",	    "::ffff:0:127.0.0.1",   "::ffff:0:10.0.0.1",
		"::ffff:0:192.0.2.1",	    "64:ff9b::127.0.0.1",   "64:ff9b::10.1.2.3",
		"64:ff9b::169.254.169.254", "64:ff9b::198.18.0.1",  "64:ff9b::240.0.0.1",
		"64:ff9b:1::127.0.0.1",	    "64:ff9b:1::192.168.0.1",
		"64:ff9b:1:ff00::8.8.8.8", /* another layout of the local-use prefix */
		"2002:7f00:1::1",	    "2002:a00:1::1",	    "2002:c0a8:101::1",
		"2002:a9fe:a9fe::1",	    "2002:c633:6401::1",    "2002::1",
		"2002:ffff:ffff::1",
	};
	ASSERT_ALL(open, true);
	ASSERT_ALL(blocked, false);
}

static void test_host_literals(void **state)
{
	(void)state;
	/* Canonical dotted quads and ordinary names are looked up as they are
	 * (the address policy then judges what they resolve to). */
	static const char *const fine[] = {
		"127.0.0.1", "0.0.0.0",	       "255.255.255.255", "212.227.17.1", "pop.gmx.net",
		"web.de",    "0x7f.example", "127.0.0.1.nip.io", "1.2.3.4.example", "cafe",
		"deadbeef",  "::1",	      "pop3.web.de.",
	};
	/* Every other way to write an IPv4 address. */
	static const char *const refused[] = {
		"0177.0.0.1", "0x7f.0.0.1", "0x7f.1",	  "0X7F.0.0.1", "127.1",     "127.0.1",
		"2130706433", "0x7f000001", "017700000001", "127.000.000.001", "127.0.0.01",
		"127.0.0.1.", "256.0.0.1",  "1.2.3.4.5",   "1..2.3",	"0x",	     "0",
		"example.123", "a.b.0x10", "a.0x", ".1.2.3.4", "1.2.3.1000",
	};
	for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
		if (policy_host_refusal(fine[i]) != NULL)
			fail_msg("%s should be allowed", fine[i]);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		const char *reason = policy_host_refusal(refused[i]);

		if (reason == NULL)
			fail_msg("\"%s\" should be refused", refused[i]);
		assert_non_null(strstr(reason, "dotted quad"));
	}
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
		cmocka_unit_test(test_ipv4_special_purpose),
		cmocka_unit_test(test_ipv6_special_purpose),
		cmocka_unit_test(test_ipv6_embedded_ipv4),
		cmocka_unit_test(test_host_literals),
		cmocka_unit_test(test_other_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
