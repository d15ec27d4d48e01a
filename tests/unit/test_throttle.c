/*
 * test_throttle.c — unit tests for src/pop3/throttle.c, the one login
 * throttle: the keys a POP3 login attempt is counted under (IPv4, IPv6 by
 * /64, IPv4-mapped IPv6, the account name case aside), a console attempt's
 * (its name key, "address:IP" or none from the command line), and the
 * counting itself against a store in a temp data folder (counted at the
 * start, released on success, refused at the limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/config.h"
#include "pop3/throttle.h"
#include "popgate.h"
#include "store/login.h"

#include "test_support.h"

static void assert_address_key(const char *address, const char *expected)
{
	char key[THROTTLE_KEY_MAX];

	throttle_address_key(key, sizeof(key), address);
	assert_string_equal(key, expected);
}

static void assert_account_key(const char *name, const char *expected)
{
	char key[THROTTLE_KEY_MAX];

	throttle_account_key(key, sizeof(key), name);
	assert_string_equal(key, expected);
}

static void test_address_key_ipv4(void **state)
{
	(void)state;
	assert_address_key("192.0.2.1", "pop3-address:192.0.2.1");
	assert_address_key("127.0.0.2", "pop3-address:127.0.0.2");
}

static void test_address_key_ipv6_by_64(void **state)
{
	(void)state;
	/* Every address of one /64 is one key; another /64 is another. */
	assert_address_key("2001:db8:1:2:3:4:5:6", "pop3-address:2001:db8:1:2::/64");
	assert_address_key("2001:db8:1:2::1", "pop3-address:2001:db8:1:2::/64");
	assert_address_key("2001:DB8:1:2:ffff:ffff:ffff:ffff", "pop3-address:2001:db8:1:2::/64");
	assert_address_key("2001:db8:1:3::1", "pop3-address:2001:db8:1:3::/64");
	assert_address_key("::1", "pop3-address:::/64");
	assert_address_key("fe80::1:2:3:4", "pop3-address:fe80::/64");
}

static void test_address_key_ipv4_mapped(void **state)
{
	(void)state;
	/* A dual-stack listener sees IPv4 clients this way: the IPv4 address. */
	assert_address_key("::ffff:192.0.2.1", "pop3-address:192.0.2.1");
	assert_address_key("::ffff:c000:201", "pop3-address:192.0.2.1");
}

static void test_address_key_other_text(void **state)
{
	(void)state;
	assert_address_key("?", "pop3-address:?");
}

static void test_address_key_never_overruns(void **state)
{
	char key[16];

	(void)state;
	memset(key, 'x', sizeof(key));
	throttle_address_key(key, sizeof(key), "2001:db8:1:2:3:4:5:6");
	assert_int_equal(strlen(key), sizeof(key) - 1);
}

static void test_account_key_case(void **state)
{
	(void)state;
	assert_account_key("me@pop.example.org", "pop3-account:me@pop.example.org");
	assert_account_key("ME@Pop.Example.ORG", "pop3-account:me@pop.example.org");
	assert_account_key("Me@Mail.Example@pop.example.org",
			   "pop3-account:me@mail.example@pop.example.org");
	/* Only ASCII letters fold; other bytes stay as they are. */
	assert_account_key("J\xc3\x9cRGEN@h", "pop3-account:j\xc3\x9crgen@h");
}

static void test_account_key_never_overruns(void **state)
{
	char key[20];

	(void)state;
	throttle_account_key(key, sizeof(key), "ALICE@POP.EXAMPLE.ORG");
	assert_string_equal(key, "pop3-account:alice@");
}

/* ---- counting --------------------------------------------------------- */

struct fixture {
	struct test_store store;
	struct popgate_config cfg;
	struct popgate pg;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	void *store_state = NULL;

	test_store_setup(&store_state, "throttle");
	f->store = *(struct test_store *)store_state;
	free(store_state);
	config_defaults(&f->cfg);
	f->cfg.login_fail_limit = 2;
	f->pg.cfg = &f->cfg;
	f->pg.store = f->store.store;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	config_free(&f->cfg);
	store_close(&f->store.store);
	test_dir_remove(f->store.dir);
	free(f);
	return 0;
}

static int failures(struct fixture *f, const char *key)
{
	return store_login_failures(f->pg.store, key, f->cfg.login_fail_window, util_now());
}

/* Counts ATTEMPT as the writer thread does (throttle_count_start). */
static int count(struct fixture *f, struct throttle_attempt *attempt)
{
	return throttle_store_count(f->pg.store, attempt, f->cfg.login_fail_window,
				    f->cfg.login_fail_limit, util_now());
}

/* Counted at the start: LIMIT attempts in flight refuse the next one. */
static void test_counted_at_start(void **state)
{
	struct fixture *f = *state;
	struct throttle_attempt a, b, c;

	throttle_attempt_init(&a, "127.0.0.1", "me@host");
	throttle_attempt_init(&b, "127.0.0.1", "ME@host");
	throttle_attempt_init(&c, "127.0.0.1", "me@HOST");
	assert_int_equal(throttle_check(&f->pg, &a), 1);
	assert_int_equal(count(f, &a), 1);
	assert_int_equal(throttle_check(&f->pg, &b), 1);
	assert_int_equal(count(f, &b), 1);
	/* Neither has an answer yet, and still the third is refused. */
	assert_int_equal(throttle_check(&f->pg, &c), 0);
	/* One that passed the check with them is refused when counted, in the
	 * writer's transaction, and counts nothing. */
	assert_int_equal(count(f, &c), 0);
	assert_false(c.counted);
	assert_int_equal(failures(f, "pop3-account:me@host"), 2);
	assert_int_equal(failures(f, "pop3-address:127.0.0.1"), 2);
}

/* A proven password clears the account and releases its own count on the
 * address; a released attempt (internal error, a cap) takes back both. */
static void test_success_and_release(void **state)
{
	struct fixture *f = *state;
	struct throttle_attempt a, b;

	throttle_attempt_init(&a, "127.0.0.1", "me@host");
	throttle_attempt_init(&b, "127.0.0.1", "me@host");
	assert_int_equal(count(f, &a), 1);
	assert_int_equal(count(f, &b), 1);
	throttle_store_release(f->pg.store, &b);
	assert_int_equal(failures(f, "pop3-account:me@host"), 1);
	assert_int_equal(failures(f, "pop3-address:127.0.0.1"), 1);
	throttle_store_release(f->pg.store, &b); /* only once */
	assert_int_equal(failures(f, "pop3-address:127.0.0.1"), 1);

	throttle_attempt_init(&b, "127.0.0.1", "me@host");
	assert_int_equal(count(f, &b), 1);
	throttle_store_succeeded(f->pg.store, &b);
	assert_int_equal(failures(f, "pop3-account:me@host"), 0);
	/* A's count (say, a wrong password) stays on the address. */
	assert_int_equal(failures(f, "pop3-address:127.0.0.1"), 1);
}

/* The per-account key alone throttles attempts from many addresses. */
static void test_account_key_alone(void **state)
{
	struct fixture *f = *state;
	struct throttle_attempt a, b, c;

	throttle_attempt_init(&a, "127.0.0.2", "me@host");
	throttle_attempt_init(&b, "2001:db8::2", "Me@host");
	throttle_attempt_init(&c, "127.0.0.4", "mE@host");
	assert_int_equal(count(f, &a), 1);
	assert_int_equal(count(f, &b), 1);
	assert_int_equal(throttle_check(&f->pg, &c), 0);
	/* Another account from those addresses is still let through. */
	throttle_attempt_init(&c, "127.0.0.4", "you@host");
	assert_int_equal(throttle_check(&f->pg, &c), 1);
}

/* The per-address key alone throttles one /64's attempts at many accounts. */
static void test_address_key_alone(void **state)
{
	struct fixture *f = *state;
	struct throttle_attempt a, b, c;

	throttle_attempt_init(&a, "2001:db8:0:1::a", "one@host");
	throttle_attempt_init(&b, "2001:db8:0:1::b", "two@host");
	throttle_attempt_init(&c, "2001:db8:0:1:ffff::c", "three@host");
	assert_int_equal(count(f, &a), 1);
	assert_int_equal(count(f, &b), 1);
	assert_int_equal(throttle_check(&f->pg, &c), 0);
	throttle_attempt_init(&c, "2001:db8:0:2::c", "three@host");
	assert_int_equal(throttle_check(&f->pg, &c), 1);
}

/* A console attempt counts under its name key and "address:IP" (the /64 for
 * IPv6); from the command line, with no address, under its name key alone —
 * and is throttled by it. */
static void test_console_keys(void **state)
{
	struct fixture *f = *state;
	struct throttle_attempt a, b;

	throttle_attempt_init_console(&a, "2001:db8:0:1::a", "user:me+host");
	assert_string_equal(a.address_key, "address:2001:db8:0:1::/64");
	assert_string_equal(a.account_key, "user:me+host");
	assert_int_equal(count(f, &a), 1);
	assert_int_equal(failures(f, "address:2001:db8:0:1::/64"), 1);

	throttle_attempt_init_console(&b, NULL, "admin");
	assert_string_equal(b.address_key, "");
	assert_int_equal(throttle_check(&f->pg, &b), 1);
	assert_int_equal(count(f, &b), 1);
	assert_int_equal(failures(f, "admin"), 1);
	assert_int_equal(failures(f, ""), 0);
	throttle_store_release(f->pg.store, &b);
	assert_int_equal(failures(f, "admin"), 0);
	for (int i = 0; i < f->cfg.login_fail_limit; i++)
		assert_int_equal(count(f, &b), 1);
	assert_int_equal(throttle_check(&f->pg, &b), 0);
	throttle_store_succeeded(f->pg.store, &b);
	assert_int_equal(failures(f, "admin"), 0);
	assert_int_equal(failures(f, "address:2001:db8:0:1::/64"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_address_key_ipv4),
	    cmocka_unit_test(test_address_key_ipv6_by_64),
	    cmocka_unit_test(test_address_key_ipv4_mapped),
	    cmocka_unit_test(test_address_key_other_text),
	    cmocka_unit_test(test_address_key_never_overruns),
	    cmocka_unit_test(test_account_key_case),
	    cmocka_unit_test(test_account_key_never_overruns),
	    cmocka_unit_test_setup_teardown(test_counted_at_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_success_and_release, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_account_key_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_address_key_alone, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_console_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
