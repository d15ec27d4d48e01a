/*
 * test_cidr.c — cidr.c: parsing IPv4 and IPv6 networks and single hosts,
 * each refusal with its sentence, matching at the edge prefixes (/0, /1,
 * /32, /128), IPv4-mapped clients, and the canonical text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "core/cidr.h"

/* NET parsed from TEXT, which must be valid. */
static struct cidr parsed(const char *text)
{
	struct cidr net;
	char err[256] = "";

	if (cidr_parse(text, &net, err, sizeof(err)) != 0)
		fail_msg("cidr_parse(%s): %s", text, err);
	return net;
}

/* True if the client address TEXT (IPv4 or IPv6) lies in network NET_TEXT. */
static bool contains(const char *net_text, const char *text)
{
	struct cidr net = parsed(net_text);
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return cidr_contains(&net, (struct sockaddr *)&ss);
}

static void assert_canonical(const char *text, const char *expected)
{
	struct cidr net = parsed(text);
	char out[CIDR_TEXT_MAX];

	cidr_format(&net, out, sizeof(out));
	assert_string_equal(out, expected);
	/* The canonical text parses to the same network. */
	struct cidr again = parsed(out);
	assert_memory_equal(&again, &net, sizeof(net));
}

/* TEXT is refused, with a sentence holding WANT. */
static void assert_refused(const char *text, const char *want)
{
	struct cidr net;
	char err[256] = "";

	assert_int_equal(cidr_parse(text, &net, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL)
		fail_msg("cidr_parse(%s): '%s' lacks '%s'", text, err, want);
	assert_int_equal(net.family, 0);
}

static void test_parse_canonical(void **state)
{
	(void)state;
	assert_canonical("192.168.1.0/24", "192.168.1.0/24");
	assert_canonical("10.0.0.1", "10.0.0.1/32");
	assert_canonical("0.0.0.0/0", "0.0.0.0/0");
	assert_canonical("128.0.0.0/1", "128.0.0.0/1");
	assert_canonical("127.0.0.0/8", "127.0.0.0/8");
	assert_canonical("::1", "::1/128");
	assert_canonical("::1/128", "::1/128");
	assert_canonical("::/0", "::/0");
	assert_canonical("8000::/1", "8000::/1");
	assert_canonical("2001:DB8:0:0::/32", "2001:db8::/32");
	assert_canonical("fe80::/10", "fe80::/10");
	/* Below /96 the ::ffff:0:0 range is an ordinary IPv6 network. */
	assert_canonical("::/64", "::/64");
}

static void test_refused(void **state)
{
	(void)state;
	assert_refused("10.0.0.5/24", "10.0.0.5/24 has host bits set; the network is 10.0.0.0/24");
	assert_refused("2001:db8::1/32", "the network is 2001:db8::/32");
	assert_refused("128.0.0.0/0", "the network is 0.0.0.0/0");
	assert_refused("10.0.0.0/33", "prefix length");
	assert_refused("::/129", "from 0 to 128");
	assert_refused("10.0.0.0/", "prefix length");
	assert_refused("10.0.0.0/-1", "prefix length");
	assert_refused("10.0.0.0/+8", "prefix length");
	assert_refused("10.0.0.0/08", "prefix length");
	assert_refused("10.0.0.0/8/8", "prefix length");
	assert_refused("10.0.0.0/ 8", "prefix length");
	assert_refused("10.0.0.0/1000000000000", "prefix length");
	assert_refused("010.0.0.1", "leading zero");
	assert_refused("10.0.0.01/32", "leading zero");
	assert_refused("", "no address");
	assert_refused("/8", "no address");
	assert_refused("garbage", "not a network");
	assert_refused("10.0.0", "not a network");
	assert_refused("10.0.0.0.0", "not a network");
	assert_refused("256.0.0.0", "not a network");
	assert_refused(" 10.0.0.0", "not a network");
	assert_refused("10.0.0.0 ", "not a network");
	assert_refused("fe80::1%eth0", "not a network");
	assert_refused("localhost", "not a network");
	assert_refused("0x0a.0.0.1", "not a network");
	assert_refused("::ffff:10.0.0.0/104", "write it as IPv4: 10.0.0.0/8");
	assert_refused("::ffff:10.1.2.3", "write it as IPv4: 10.1.2.3/32");
	/* Hostile text is made safe in the sentence. */
	struct cidr net;
	char err[512];
	assert_int_equal(cidr_parse("bad\r\nline", &net, err, sizeof(err)), -1);
	assert_null(strchr(err, '\r'));
	assert_null(strchr(err, '\n'));
	/* A long text is refused without overrunning anything. */
	char longer[300];
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_refused(longer, "not a network");
}

static void test_contains_ipv4(void **state)
{
	(void)state;
	assert_true(contains("192.168.1.0/24", "192.168.1.0"));
	assert_true(contains("192.168.1.0/24", "192.168.1.255"));
	assert_false(contains("192.168.1.0/24", "192.168.2.0"));
	assert_false(contains("192.168.1.0/24", "192.168.0.255"));
	assert_true(contains("10.0.0.1", "10.0.0.1"));
	assert_false(contains("10.0.0.1/32", "10.0.0.2"));
	assert_true(contains("0.0.0.0/0", "203.0.113.9"));
	assert_true(contains("0.0.0.0/0", "0.0.0.0"));
	assert_true(contains("128.0.0.0/1", "255.255.255.255"));
	assert_true(contains("128.0.0.0/1", "128.0.0.0"));
	assert_false(contains("128.0.0.0/1", "127.255.255.255"));
	assert_true(contains("0.0.0.0/1", "127.255.255.255"));
	assert_true(contains("10.0.0.0/12", "10.15.255.255"));
	assert_false(contains("10.0.0.0/12", "10.16.0.0"));
	/* No IPv4 network holds an IPv6 client. */
	assert_false(contains("0.0.0.0/0", "2001:db8::1"));
}

static void test_contains_ipv6(void **state)
{
	(void)state;
	assert_true(contains("::1/128", "::1"));
	assert_false(contains("::1/128", "::2"));
	assert_true(contains("::/0", "2001:db8::1"));
	assert_true(contains("8000::/1", "ffff::1"));
	assert_false(contains("8000::/1", "7fff:ffff::"));
	assert_true(contains("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(contains("2001:db8::/32", "2001:db9::"));
	assert_true(contains("fe80::/10", "febf::1"));
	assert_false(contains("fe80::/10", "fec0::1"));
	/* No IPv6 network holds an IPv4 client. */
	assert_false(contains("::/0", "127.0.0.1"));
}

static void test_contains_mapped(void **state)
{
	(void)state;
	/* A dual-stack listener's IPv4 client is taken as IPv4. */
	assert_true(contains("10.0.0.0/8", "::ffff:10.1.2.3"));
	assert_true(contains("127.0.0.0/8", "::ffff:127.0.0.1"));
	assert_false(contains("10.0.0.0/8", "::ffff:11.1.2.3"));
	assert_true(contains("0.0.0.0/0", "::ffff:192.0.2.1"));
	assert_false(contains("::/0", "::ffff:10.1.2.3"));
	/* IPv4-compatible (::a.b.c.d, deprecated) is not mapped: IPv6. */
	assert_false(contains("10.0.0.0/8", "::10.1.2.3"));
}

static void test_contains_other(void **state)
{
	struct cidr net = parsed("0.0.0.0/0");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	(void)state;

	assert_false(cidr_contains(&net, (struct sockaddr *)&sun));
	assert_false(cidr_contains(&net, NULL));
	/* A network that was never parsed matches nothing. */
	struct cidr zero;
	memset(&zero, 0, sizeof(zero));
	struct sockaddr_in sin = {.sin_family = AF_INET};
	assert_false(cidr_contains(&zero, (struct sockaddr *)&sin));
}

static void test_format_small(void **state)
{
	struct cidr net = parsed("2001:db8::/32");
	char out[8];
	(void)state;

	cidr_format(&net, out, sizeof(out));
	assert_string_equal(out, "2001:db");
	cidr_format(&net, out, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_canonical), cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_contains_ipv4),   cmocka_unit_test(test_contains_ipv6),
	    cmocka_unit_test(test_contains_mapped), cmocka_unit_test(test_contains_other),
	    cmocka_unit_test(test_format_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
