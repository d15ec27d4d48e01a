/*
 * test_network.c — store/network.c: the seeded loopback networks, adding
 * (canonical text, every refusal writing nothing), deleting, listing, and
 * the loaded set the SMTP server asks (a row that no longer parses opens
 * nothing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "store/network.h"

#include "test_support.h"

static int setup(void **state)
{
	return test_store_setup(state, "network");
}

/* A client address from TEXT (IPv4, or IPv6 when it holds ':'), in SS. */
static const struct sockaddr *client(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
	}
	return (const struct sockaddr *)ss;
}

/* Whether the networks loaded from STORE now hold client TEXT. */
static bool loaded_contains(struct store *store, const char *text)
{
	struct sockaddr_storage ss;
	struct local_networks *set = local_networks_load(store);
	bool result;

	assert_non_null(set);
	result = local_networks_contains(set, client(text, &ss));
	local_networks_free(&set);
	assert_null(set);
	return result;
}

static int64_t row_count(struct store *store)
{
	return test_query_int(store, "SELECT COUNT(*) FROM local_network");
}

static void test_seeded_loopback(void **state)
{
	struct test_store *f = *state;
	struct store_network *list = NULL;
	size_t count = 0;
	char err[256];

	assert_int_equal(store_network_list(f->store, &list, &count, err, sizeof(err)), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].name, "loopback");
	assert_string_equal(list[0].cidr, "127.0.0.0/8");
	assert_string_equal(list[1].name, "loopback6");
	assert_string_equal(list[1].cidr, "::1/128");
	store_network_list_free(&list, count);
	assert_null(list);
	assert_true(loaded_contains(f->store, "127.0.0.1"));
	assert_true(loaded_contains(f->store, "127.0.0.2"));
	assert_true(loaded_contains(f->store, "::1"));
	assert_true(loaded_contains(f->store, "::ffff:127.0.0.1"));
	assert_false(loaded_contains(f->store, "192.168.1.10"));
	assert_false(loaded_contains(f->store, "::2"));
}

static void test_add(void **state)
{
	struct test_store *f = *state;
	char canonical[CIDR_TEXT_MAX], err[256];
	char text[128];

	assert_int_equal(store_network_add(f->store, "office", "192.168.1.0/24", canonical,
					   sizeof(canonical), err, sizeof(err)),
			 0);
	assert_string_equal(canonical, "192.168.1.0/24");
	assert_int_equal(store_network_add(f->store, "printer", "10.9.8.7", canonical,
					   sizeof(canonical), err, sizeof(err)),
			 0);
	assert_string_equal(canonical, "10.9.8.7/32");
	assert_int_equal(store_network_add(f->store, "v6.office_1", "2001:DB8:0::/48", canonical,
					   sizeof(canonical), err, sizeof(err)),
			 0);
	assert_string_equal(canonical, "2001:db8::/48");
	assert_string_equal(
	    test_query_text(f->store, "SELECT cidr FROM local_network WHERE name = 'v6.office_1'",
			    text, sizeof(text)),
	    "2001:db8::/48");
	assert_true(
	    test_query_int(f->store, "SELECT created_at FROM local_network WHERE name = 'office'") >
	    0);
	assert_int_equal(row_count(f->store), 5);
	assert_true(loaded_contains(f->store, "192.168.1.77"));
	assert_true(loaded_contains(f->store, "::ffff:192.168.1.77"));
	assert_false(loaded_contains(f->store, "192.168.2.77"));
	assert_true(loaded_contains(f->store, "10.9.8.7"));
	assert_false(loaded_contains(f->store, "10.9.8.6"));
	assert_true(loaded_contains(f->store, "2001:db8:0:ffff::1"));
	assert_false(loaded_contains(f->store, "2001:db8:1::1"));
}

/* NAME and CIDR are refused with a sentence holding WANT, and nothing is
 * written. */
static void assert_add_refused(struct store *store, const char *name, const char *cidr,
			       const char *want)
{
	char canonical[CIDR_TEXT_MAX] = "x", err[256] = "";
	int64_t before = row_count(store);

	assert_int_equal(
	    store_network_add(store, name, cidr, canonical, sizeof(canonical), err, sizeof(err)),
	    -1);
	if (strstr(err, want) == NULL)
		fail_msg("add %s %s: '%s' lacks '%s'", name, cidr, err, want);
	assert_string_equal(canonical, "");
	assert_int_equal(row_count(store), before);
}

static void test_add_refused(void **state)
{
	struct test_store *f = *state;
	char err[256];
	char long_name[STORE_NETWORK_NAME_MAX + 2];

	assert_int_equal(
	    store_network_add(f->store, "office", "192.168.1.0/24", NULL, 0, err, sizeof(err)), 0);
	assert_add_refused(f->store, "lan", "192.168.1.5/24",
			   "192.168.1.5/24 has host bits set; the network is 192.168.1.0/24");
	assert_add_refused(f->store, "lan", "192.168.1.0/33", "prefix length");
	assert_add_refused(f->store, "lan", "not-a-network", "not a network");
	assert_add_refused(f->store, "lan", "", "no address");
	/* Wider than the widest private range: an open relay, or nearly. */
	assert_add_refused(f->store, "lan", "0.0.0.0/0",
			   "0.0.0.0/0 is too wide for a Local Network, whose clients may all "
			   "relay: the widest allowed is /8");
	assert_add_refused(f->store, "lan", "8.0.0.0/7", "the widest allowed is /8");
	assert_add_refused(f->store, "lan", "::/0", "::/0 is too wide");
	assert_add_refused(f->store, "lan", "fc00::/6", "the widest allowed is /7");
	assert_add_refused(f->store, "office", "10.0.0.0/8", "named office already");
	assert_add_refused(f->store, "OFFICE", "10.0.0.0/8", "named office already");
	assert_add_refused(f->store, "LoopBack", "10.0.0.0/8", "named loopback already");
	assert_add_refused(f->store, "lan", "192.168.1.0/24", "already, named office");
	assert_add_refused(f->store, "lan", "127.0.0.0/8", "already, named loopback");
	assert_add_refused(f->store, "", "10.0.0.0/8", "not a valid network name");
	assert_add_refused(f->store, "my lan", "10.0.0.0/8", "not a valid network name");
	assert_add_refused(f->store, "lan/1", "10.0.0.0/8", "not a valid network name");
	assert_add_refused(f->store, "l\xc3\xa4n", "10.0.0.0/8", "not a valid network name");
	memset(long_name, 'n', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	assert_add_refused(f->store, long_name, "10.0.0.0/8", "not a valid network name");
	/* The widest private ranges themselves are fine. */
	assert_int_equal(store_network_add(f->store, "ula", "fc00::/7", NULL, 0, err, sizeof(err)),
			 0);
	assert_int_equal(
	    store_network_add(f->store, "ten", "10.0.0.0/8", NULL, 0, err, sizeof(err)), 0);
	long_name[STORE_NETWORK_NAME_MAX] = '\0';
	assert_int_equal(
	    store_network_add(f->store, long_name, "11.0.0.0/8", NULL, 0, err, sizeof(err)), 0);
}

static void test_delete(void **state)
{
	struct test_store *f = *state;
	char err[256];

	assert_int_equal(
	    store_network_add(f->store, "office", "192.168.1.0/24", NULL, 0, err, sizeof(err)), 0);
	assert_true(loaded_contains(f->store, "192.168.1.1"));
	assert_int_equal(store_network_delete(f->store, "Office", err, sizeof(err)), 1);
	assert_false(loaded_contains(f->store, "192.168.1.1"));
	assert_int_equal(store_network_delete(f->store, "office", err, sizeof(err)), 0);
	assert_non_null(strstr(err, "no local network named office"));
	/* Even loopback can go: then only authenticated clients may relay. */
	assert_int_equal(store_network_delete(f->store, "loopback", err, sizeof(err)), 1);
	assert_int_equal(store_network_delete(f->store, "loopback6", err, sizeof(err)), 1);
	assert_false(loaded_contains(f->store, "127.0.0.1"));
	assert_false(loaded_contains(f->store, "::1"));
	assert_int_equal(row_count(f->store), 0);
	struct local_networks *set = local_networks_load(f->store);
	assert_non_null(set);
	assert_int_equal(local_networks_count(set), 0);
	local_networks_free(&set);
}

/* A row written by hand that cidr_parse refuses is skipped, never guessed
 * at; the others still work. */
static void test_load_skips_bad_rows(void **state)
{
	struct test_store *f = *state;
	struct sockaddr_storage ss;

	test_exec_sql(f->store, "INSERT INTO local_network (name, cidr, created_at) VALUES"
				" ('hand', '10.0.0.5/8', 1), ('junk', 'everything', 1),"
				" ('spaced', '0.0.0.0/0 ', 1), ('open', '0.0.0.0/0', 1),"
				" ('open6', '::/0', 1)");
	struct local_networks *set = local_networks_load(f->store);
	assert_non_null(set);
	assert_int_equal(local_networks_count(set), 2);
	assert_true(local_networks_contains(set, client("127.0.0.1", &ss)));
	assert_false(local_networks_contains(set, client("10.0.0.5", &ss)));
	assert_false(local_networks_contains(set, client("10.1.1.1", &ss)));
	assert_false(local_networks_contains(set, client("203.0.113.1", &ss)));
	assert_false(local_networks_contains(set, client("2001:db8::1", &ss)));
	assert_false(local_networks_contains(set, NULL));
	local_networks_free(&set);
	assert_false(local_networks_contains(NULL, client("127.0.0.1", &ss)));
	assert_int_equal(local_networks_count(NULL), 0);
	local_networks_free(&set);
}

static void test_name_valid(void **state)
{
	(void)state;
	assert_true(store_network_name_valid("office"));
	assert_true(store_network_name_valid("A.b_c-9"));
	assert_false(store_network_name_valid(""));
	assert_false(store_network_name_valid("a b"));
	assert_false(store_network_name_valid("a\n"));
	assert_false(store_network_name_valid("a'b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seeded_loopback, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_add, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_add_refused, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_load_skips_bad_rows, setup, test_store_teardown),
	    cmocka_unit_test(test_name_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
