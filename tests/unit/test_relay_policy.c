/*
 * test_relay_policy.c — relay_policy.c: the open-relay battery from outside
 * every Local Network (one test per trick), what inside and authenticated
 * clients may send, the syntax every client must keep, and the mailbox
 * stored for an accepted path.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp/relay_policy.h"

/* The local addresses: what "popgatectl address add" would have assigned.
 * Compared without case, as store_address_owner does. address_valid allows
 * '%' and '!' in a local part, so an administrator could assign the last
 * two: even then they are refused from outside, since the next hop may read
 * them as routes. */
static const char *const local_addresses[] = {"alice@example.org",
					      "bob@example.org",
					      "postmaster@example.org",
					      "u@local.test",
					      "victim%foreign.example@example.org",
					      "foreign.example!victim@example.org"};

struct lookup {
	int calls;
	char last[RELAY_PATH_MAX];
};

static bool is_local(const char *address, void *ctx)
{
	struct lookup *lookup = ctx;

	lookup->calls++;
	snprintf(lookup->last, sizeof(lookup->last), "%s", address);
	for (size_t i = 0; i < sizeof(local_addresses) / sizeof(local_addresses[0]); i++)
		if (strcasecmp(address, local_addresses[i]) == 0)
			return true;
	return false;
}

static const struct relay_client outside = {.in_local_network = false, .authenticated = false};
static const struct relay_client inside = {.in_local_network = true, .authenticated = false};
static const struct relay_client authed = {.in_local_network = false, .authenticated = true};

static enum relay_decision check(const struct relay_client *client, const char *path)
{
	struct lookup lookup = {0};
	char reason[128];

	return relay_policy_check_recipient(client, path, is_local, &lookup, reason,
					    sizeof(reason));
}

/* PATH is refused from outside with 554 5.7.1, and without IS_LOCAL being
 * asked for anything but the plain address (none here). */
static void assert_denied_outside(const char *path)
{
	struct lookup lookup = {0};
	char reason[128] = "";

	assert_int_equal(
	    relay_policy_check_recipient(&outside, path, is_local, &lookup, reason, sizeof(reason)),
	    RELAY_DENIED);
	assert_non_null(strstr(reason, "denied"));
}

static void test_local_recipient_from_outside(void **state)
{
	struct lookup lookup = {0};
	char reason[128];
	(void)state;

	assert_int_equal(relay_policy_check_recipient(&outside, "<alice@example.org>", is_local,
						      &lookup, reason, sizeof(reason)),
			 RELAY_ACCEPT);
	assert_int_equal(lookup.calls, 1);
	assert_string_equal(lookup.last, "alice@example.org");
	assert_int_equal(check(&outside, "<postmaster@example.org>"), RELAY_ACCEPT);
}

static void test_foreign_from_outside(void **state)
{
	(void)state;
	assert_denied_outside("<victim@foreign.example>");
	assert_denied_outside("<alice@example.org.foreign.example>");
	assert_denied_outside("<alice@other.org>");
}

static void test_percent_hack(void **state)
{
	(void)state;
	assert_denied_outside("<victim%foreign.example@example.org>");
	assert_denied_outside("<alice%example.org@example.org>");
}

static void test_bang_path(void **state)
{
	(void)state;
	assert_denied_outside("<foreign.example!victim@example.org>");
	assert_denied_outside("<foreign.example!alice@example.org>");
}

static void test_source_route(void **state)
{
	(void)state;
	assert_denied_outside("<@example.org:victim@foreign.example>");
	/* Even when the mailbox is local: the route would be followed by
	 * whoever gets the mail next. */
	assert_denied_outside("<@foreign.example:alice@example.org>");
	assert_denied_outside("<@example.org,@foreign.example:alice@example.org>");
}

static void test_quoted_local_part(void **state)
{
	(void)state;
	assert_denied_outside("<\"victim@foreign.example\"@example.org>");
	assert_denied_outside("<\"victim%foreign.example\"@example.org>");
	assert_denied_outside("<\"foreign!victim\"@example.org>");
	/* Even the quoted spelling of a local address: no real MTA quotes a
	 * dot-atom, and refusing all quoting leaves nothing to interpret. */
	assert_denied_outside("<\"alice\"@example.org>");
}

static void test_at_in_local_part(void **state)
{
	(void)state;
	/* Unquoted it is no address at all, for anyone. */
	assert_int_equal(check(&outside, "<victim@foreign.example@example.org>"),
			 RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<victim@foreign.example@example.org>"), RELAY_BAD_ADDRESS);
	assert_denied_outside("<\"victim@foreign.example\"@example.org>");
}

static void test_upper_case_domain(void **state)
{
	struct lookup lookup = {0};
	char reason[128];
	(void)state;

	/* A foreign address stays foreign in any case. */
	assert_denied_outside("<victim@FOREIGN.EXAMPLE>");
	assert_denied_outside("<VICTIM@Foreign.Example>");
	/* A local one stays local, and IS_LOCAL sees the domain lower-cased. */
	assert_int_equal(relay_policy_check_recipient(&outside, "<Alice@EXAMPLE.Org>", is_local,
						      &lookup, reason, sizeof(reason)),
			 RELAY_ACCEPT);
	assert_string_equal(lookup.last, "Alice@example.org");
}

static void test_ip_literal(void **state)
{
	(void)state;
	assert_denied_outside("<victim@[192.0.2.1]>");
	assert_denied_outside("<alice@[127.0.0.1]>");
	assert_denied_outside("<alice@[IPv6:2001:db8::1]>");
	/* Inside, a well-formed literal is a recipient like any other... */
	assert_int_equal(check(&inside, "<u@[192.0.2.1]>"), RELAY_ACCEPT);
	assert_int_equal(check(&inside, "<u@[IPv6:2001:db8::1]>"), RELAY_ACCEPT);
	/* ...and a malformed one is no address. */
	assert_int_equal(check(&inside, "<u@[192.0.2.256]>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<u@[2001:db8::1]>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<u@[x-tag:stuff]>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<u@[192.0.2.1>"), RELAY_BAD_ADDRESS);
}

static void test_trailing_dot(void **state)
{
	(void)state;
	/* RFC 5321 has no domain with an empty label: bad syntax for all. */
	assert_int_equal(check(&outside, "<alice@example.org.>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&outside, "<victim@foreign.example.>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<victim@foreign.example.>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&outside, "<alice@example..org>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&outside, "<alice@.example.org>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&outside, "<alice.@example.org>"), RELAY_BAD_ADDRESS);
}

static void test_null_recipient(void **state)
{
	(void)state;
	assert_int_equal(check(&outside, "<>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&authed, "<>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&outside, ""), RELAY_BAD_ADDRESS);
}

static void test_postmaster_without_domain(void **state)
{
	(void)state;
	assert_int_equal(check(&outside, "<postmaster>"), RELAY_DENIED);
	assert_int_equal(check(&outside, "<PostMaster>"), RELAY_DENIED);
	assert_int_equal(check(&inside, "<postmaster>"), RELAY_DENIED);
	assert_int_equal(check(&outside, "<alice>"), RELAY_BAD_ADDRESS);
}

static void test_non_ascii_from_outside(void **state)
{
	(void)state;
	assert_denied_outside("<j\xc3\xb6rg@example.org>");
	assert_denied_outside("<alice@\xc3\xa9xample.org>");
	assert_int_equal(check(&inside, "<j\xc3\xb6rg@\xc3\xa9xample.org>"), RELAY_ACCEPT);
	/* Malformed UTF-8 is no address: an overlong '@', a cut sequence, a
	 * surrogate. */
	assert_int_equal(check(&inside, "<a\xc0\x80@example.org>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<a\xc3@example.org>"), RELAY_BAD_ADDRESS);
	assert_int_equal(check(&inside, "<a\xed\xa0\x80@example.org>"), RELAY_BAD_ADDRESS);
}

static void test_inside_accepts_everything_valid(void **state)
{
	const char *paths[] = {
	    "<victim@foreign.example>",
	    "<alice@example.org>",
	    "<u%foreign.example@example.org>",
	    "<foreign!u@example.org>",
	    "<\"john doe\"@foreign.example>",
	    "<\"a\\\"b@c\"@foreign.example>",
	    "<@hop.example:victim@foreign.example>",
	    "<@a.example,@b.example:victim@foreign.example>",
	    "<VICTIM@FOREIGN.EXAMPLE>",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct lookup lookup = {0};
		char reason[128];

		assert_int_equal(relay_policy_check_recipient(&inside, paths[i], is_local, &lookup,
							      reason, sizeof(reason)),
				 RELAY_ACCEPT);
		assert_int_equal(relay_policy_check_recipient(&authed, paths[i], is_local, &lookup,
							      reason, sizeof(reason)),
				 RELAY_ACCEPT);
		/* Nothing to look up for a client allowed to relay. */
		assert_int_equal(lookup.calls, 0);
	}
}

static void test_syntax_for_everyone(void **state)
{
	const char *paths[] = {
	    "alice@example.org",		/* no brackets */
	    "<alice@example.org",		/* no closing bracket */
	    "<alice@example.org> ",		/* anything after '>' */
	    "<alice@example.org>>",		/* a second '>' */
	    "<<alice@example.org>",		/* a second '<' */
	    "<alice example@example.org>",	/* a space unquoted */
	    "<alice@exa mple.org>",		/* a space in the domain */
	    "<alice@>",				/* no domain */
	    "<@example.org>",			/* a route and nothing else */
	    "<@example.org:>",			/* a route to nothing */
	    "<@:alice@example.org>",		/* an empty route domain */
	    "<@example.org;alice@example.org>", /* a route without ':' */
	    "<\"alice@example.org>",		/* an unclosed quote */
	    "<\"a\x01\"@example.org>",		/* a control character quoted */
	    "<a\tb@example.org>",		/* a control character */
	    "<alice@-example.org>",		/* a label starting with '-' */
	    "<alice@example-.org>",		/* a label ending with '-' */
	    "<alice@exam_ple.org>",		/* an underscore in the domain */
	    "<a..b@example.org>",		/* an empty part between dots */
	    "<.a@example.org>",			/* a leading dot */
	};
	(void)state;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		assert_int_equal(check(&inside, paths[i]), RELAY_BAD_ADDRESS);
		assert_int_equal(check(&outside, paths[i]), RELAY_BAD_ADDRESS);
	}
}

static void test_limits(void **state)
{
	char path[RELAY_PATH_MAX + 8];
	char local[80];
	(void)state;

	/* A 64-character local part is fine, 65 is not. */
	memset(local, 'a', 64);
	local[64] = '\0';
	snprintf(path, sizeof(path), "<%s@foreign.example>", local);
	assert_int_equal(check(&inside, path), RELAY_ACCEPT);
	memset(local, 'a', 65);
	local[65] = '\0';
	snprintf(path, sizeof(path), "<%s@foreign.example>", local);
	assert_int_equal(check(&inside, path), RELAY_BAD_ADDRESS);
	/* A 63-character label is fine, 64 is not. */
	snprintf(path, sizeof(path), "<u@%.63s.example>",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_int_equal(check(&inside, path), RELAY_ACCEPT);
	snprintf(path, sizeof(path), "<u@%.64s.example>",
		 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	assert_int_equal(check(&inside, path), RELAY_BAD_ADDRESS);
	/* A path of 256 octets is fine, 257 is not. */
	memset(path, 0, sizeof(path));
	strcpy(path, "<u@");
	for (size_t i = 3; i < RELAY_PATH_MAX - 1; i++)
		path[i] = (i % 50 == 0) ? '.' : 'c';
	path[RELAY_PATH_MAX - 1] = '>';
	assert_int_equal(strlen(path), RELAY_PATH_MAX);
	assert_int_equal(check(&inside, path), RELAY_ACCEPT);
	path[RELAY_PATH_MAX - 1] = 'c';
	path[RELAY_PATH_MAX] = '>';
	assert_int_equal(check(&inside, path), RELAY_BAD_ADDRESS);
}

/* Each recipient of one transaction is decided on its own: the local ones
 * pass, the foreign and tricked ones do not, in any order. */
static void test_mixed_recipients(void **state)
{
	static const struct {
		const char *path;
		enum relay_decision decision;
	} rcpt[] = {
	    {"<alice@example.org>", RELAY_ACCEPT},
	    {"<victim@foreign.example>", RELAY_DENIED},
	    {"<bob@example.org>", RELAY_ACCEPT},
	    {"<victim%foreign.example@example.org>", RELAY_DENIED},
	    {"<u@local.test>", RELAY_ACCEPT},
	    {"<@example.org:victim@foreign.example>", RELAY_DENIED},
	    {"<>", RELAY_BAD_ADDRESS},
	    {"<BOB@EXAMPLE.ORG>", RELAY_ACCEPT},
	};
	(void)state;

	for (int round = 0; round < 2; round++)
		for (size_t n = 0; n < sizeof(rcpt) / sizeof(rcpt[0]); n++) {
			size_t i = round == 0 ? n : sizeof(rcpt) / sizeof(rcpt[0]) - 1 - n;

			assert_int_equal(check(&outside, rcpt[i].path), rcpt[i].decision);
			assert_int_equal(check(&inside, rcpt[i].path),
					 rcpt[i].decision == RELAY_BAD_ADDRESS ? RELAY_BAD_ADDRESS
									       : RELAY_ACCEPT);
		}
}

static void test_reason_never_echoes(void **state)
{
	char reason[128];
	struct lookup lookup = {0};
	(void)state;

	relay_policy_check_recipient(&outside, "<evil\r\nRSET@foreign.example>", is_local, &lookup,
				     reason, sizeof(reason));
	assert_null(strstr(reason, "evil"));
	assert_null(strchr(reason, '\r'));
	relay_policy_check_recipient(&outside, "<evil@foreign.example>", is_local, &lookup, reason,
				     sizeof(reason));
	assert_null(strstr(reason, "evil"));
	/* A short or absent buffer is fine. */
	relay_policy_check_recipient(&outside, "<evil@foreign.example>", is_local, &lookup, reason,
				     4);
	assert_int_equal(strlen(reason), 3);
	assert_int_equal(relay_policy_check_recipient(&outside, "<alice@example.org>", is_local,
						      &lookup, NULL, 0),
			 RELAY_ACCEPT);
}

static void test_mailbox(void **state)
{
	char out[RELAY_PATH_MAX], small[8];
	(void)state;

	assert_int_equal(relay_path_mailbox("<Alice@EXAMPLE.Org>", out, sizeof(out)), 0);
	assert_string_equal(out, "Alice@example.org");
	assert_int_equal(
	    relay_path_mailbox("<@hop.example,@b.example:u@Foreign.Example>", out, sizeof(out)), 0);
	assert_string_equal(out, "u@foreign.example");
	assert_int_equal(relay_path_mailbox("<\"John Doe\"@Foreign.Example>", out, sizeof(out)), 0);
	assert_string_equal(out, "\"John Doe\"@foreign.example");
	assert_int_equal(relay_path_mailbox("<u@[IPv6:2001:DB8::1]>", out, sizeof(out)), 0);
	assert_string_equal(out, "u@[ipv6:2001:db8::1]");
	assert_int_equal(relay_path_mailbox("<>", out, sizeof(out)), -1);
	assert_int_equal(relay_path_mailbox("<postmaster>", out, sizeof(out)), -1);
	assert_int_equal(relay_path_mailbox("<a@b@c>", out, sizeof(out)), -1);
	assert_int_equal(relay_path_mailbox("<alice@example.org>", small, sizeof(small)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_local_recipient_from_outside),
	    cmocka_unit_test(test_foreign_from_outside),
	    cmocka_unit_test(test_percent_hack),
	    cmocka_unit_test(test_bang_path),
	    cmocka_unit_test(test_source_route),
	    cmocka_unit_test(test_quoted_local_part),
	    cmocka_unit_test(test_at_in_local_part),
	    cmocka_unit_test(test_upper_case_domain),
	    cmocka_unit_test(test_ip_literal),
	    cmocka_unit_test(test_trailing_dot),
	    cmocka_unit_test(test_null_recipient),
	    cmocka_unit_test(test_postmaster_without_domain),
	    cmocka_unit_test(test_non_ascii_from_outside),
	    cmocka_unit_test(test_inside_accepts_everything_valid),
	    cmocka_unit_test(test_syntax_for_everyone),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_mixed_recipients),
	    cmocka_unit_test(test_reason_never_echoes),
	    cmocka_unit_test(test_mailbox),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
