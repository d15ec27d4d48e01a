/*
 * test_profile.c — filter profiles (store/profile.c): each key checked alone
 * (store_profile_apply) and the whole (store_profile_check), the snapshot a
 * job carries, and the rows: 'default' from migration 11, add, set (all or
 * nothing), delete (never default, never one in use), a user's choice and
 * the profile a user's job gets.
 *
 * Owns: its temp store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "store/profile.h"
#include "store/user.h"
#include "test_support.h"

static int setup(void **state)
{
	return test_store_setup(state, "profile");
}

/* A fresh copy of 'default' from F's store. */
static struct store_profile *default_profile(struct test_store *f)
{
	struct store_profile *p = xcalloc(1, sizeof(*p));

	assert_int_equal(store_profile_get(f->store, "DEFAULT", p), 1);
	return p;
}

static void test_default_exists(void **state)
{
	struct test_store *f = *state;
	struct store_profile *p = default_profile(f);
	struct filter_profile snapshot;

	assert_string_equal(p->name, "default");
	assert_true(p->tag_at == 5.0 && p->quarantine_at == 10.0);
	assert_false(p->hold);
	assert_false(p->challenge);
	assert_int_equal(p->filter_count, 3);
	assert_string_equal(p->filters[0].name, "trace");
	assert_string_equal(p->filters[1].name, "address");
	assert_string_equal(p->filters[2].name, "senders");
	store_profile_snapshot(p, &snapshot);
	assert_int_equal(snapshot.filter_count, 3);
	assert_true(snapshot.filters[2].weight == 1.0);
	free(p);
}

static void test_apply_each_key(void **state)
{
	struct test_store *f = *state;
	struct store_profile *p = default_profile(f);
	struct filter_profile snapshot;
	char err[512];

	assert_int_equal(store_profile_apply(p, "tag_at", "2.0004", err, sizeof(err)), 0);
	assert_true(p->tag_at == 2.0); /* thousandths, as jobs carry them */
	assert_int_equal(store_profile_apply(p, "quarantine_at", "-3", err, sizeof(err)), 0);
	assert_true(p->quarantine_at == -3.0);
	assert_int_equal(store_profile_apply(p, "hold", "yes", err, sizeof(err)), 0);
	assert_true(p->hold);
	assert_int_equal(store_profile_apply(p, "challenge", "on", err, sizeof(err)), 0);
	assert_true(p->challenge);
	assert_int_equal(store_profile_apply(p, "senders", "off", err, sizeof(err)), 0);
	assert_false(p->filters[2].enabled);
	assert_int_equal(store_profile_apply(p, "senders.weight", "0", err, sizeof(err)), 0);
	assert_true(p->filters[2].weight == 0.0);
	store_profile_snapshot(p, &snapshot);
	assert_int_equal(snapshot.filter_count, 2); /* the filters that are on */
	assert_true(snapshot.hold && snapshot.challenge_unknown_senders);

	/* Refusals name the problem and change nothing. */
	struct {
		const char *key, *value, *says;
	} refused[] = {
	    {"tag_at", "", "tag_at must be a number"},
	    {"tag_at", "1e9", "tag_at must be a number from -1000 to 1000"},
	    {"tag_at", "nan", "tag_at must be a number"},
	    {"quarantine_at", "5x", "quarantine_at must be a number"},
	    {"senders.weight", "100.5", "the weight of senders must be a number from 0 to 100"},
	    {"senders.weight", "-0.5", "the weight of senders must be a number from 0 to 100"},
	    {"senders.score", "1", "unknown key 'senders.score'"},
	    {"nosuch", "on", "unknown key or filter 'nosuch'"},
	    {"nosuch.weight", "1", "unknown key or filter 'nosuch'"},
	    {"trace", "maybe", "filter trace takes on or off"},
	    {"hold", "2", "hold takes yes or no"},
	    {"subject_prefix", "[SPAM]", "unknown key or filter 'subject_prefix'"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		struct store_profile before = *p;

		err[0] = '\0';
		assert_int_equal(
		    store_profile_apply(p, refused[i].key, refused[i].value, err, sizeof(err)), -1);
		if (strstr(err, refused[i].says) == NULL)
			fail_msg("%s %s: \"%s\" does not say \"%s\"", refused[i].key,
				 refused[i].value, err, refused[i].says);
		assert_memory_equal(&before, p, sizeof(before));
	}
	free(p);
}

static void test_check_whole(void **state)
{
	struct test_store *f = *state;
	struct store_profile *p = default_profile(f);
	char err[512];

	assert_int_equal(store_profile_check(p, err, sizeof(err)), 0);
	p->tag_at = 10.001;
	assert_int_equal(store_profile_check(p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "tag_at (10.001) must not be above quarantine_at (10.000)"));
	p->tag_at = 10.0; /* equal: no tag band, allowed */
	assert_int_equal(store_profile_check(p, err, sizeof(err)), 0);
	p->filters[1].enabled = false;
	assert_int_equal(store_profile_check(p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "filter address cannot be off"));
	free(p);
}

static void test_add_set_delete(void **state)
{
	struct test_store *f = *state;
	static const char *const keys[] = {"tag_at", "quarantine_at", "senders.weight"};
	static const char *const values[] = {"1", "2", "3"};
	static const char *const bad_values[] = {"4", "2", "3"};
	struct store_profile *p = xcalloc(1, sizeof(*p));
	struct store_profile *list = NULL;
	size_t count = 0;
	char err[512];
	int64_t user_id;

	assert_int_equal(store_profile_add(f->store, "Strict", err, sizeof(err)), 0);
	assert_int_equal(store_profile_add(f->store, "strict", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "profile Strict already exists"));
	assert_int_equal(store_profile_add(f->store, "no way", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a valid profile name"));
	assert_int_equal(store_profile_set(f->store, "strict", keys, values, 3, err, sizeof(err)),
			 0);
	assert_int_equal(store_profile_get(f->store, "strict", p), 1);
	assert_true(p->tag_at == 1.0 && p->quarantine_at == 2.0 && p->filters[2].weight == 3.0);
	/* All or nothing: tag_at 4 above quarantine_at 2 refuses the lot. */
	assert_int_equal(
	    store_profile_set(f->store, "strict", keys, bad_values, 3, err, sizeof(err)), -1);
	assert_int_equal(store_profile_get(f->store, "strict", p), 1);
	assert_true(p->tag_at == 1.0);
	assert_int_equal(store_profile_set(f->store, "none", keys, values, 3, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "no profile none"));

	assert_int_equal(store_profile_list(f->store, &list, &count), 0);
	assert_int_equal(count, 2);
	/* By name, without case. */
	assert_string_equal(list[0].name, "default");
	assert_string_equal(list[1].name, "Strict");
	free(list);

	/* In use: not deletable; 'default' never. */
	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &user_id, err, sizeof(err)),
			 0);
	assert_int_equal(store_profile_assign(f->store, "carol", "STRICT", err, sizeof(err)), 0);
	assert_int_equal(store_profile_get(f->store, "strict", p), 1);
	assert_int_equal(p->user_count, 1);
	assert_int_equal(store_profile_delete(f->store, "strict", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "used by 1 user"));
	assert_int_equal(store_profile_delete(f->store, "default", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot be deleted"));
	assert_int_equal(store_profile_assign(f->store, "carol", "nosuch", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no profile nosuch"));
	assert_int_equal(store_profile_assign(f->store, "dan", "default", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no user dan"));
	assert_int_equal(store_profile_assign(f->store, "carol", "default", err, sizeof(err)), 0);
	assert_int_equal(store_profile_delete(f->store, "strict", err, sizeof(err)), 0);
	assert_int_equal(store_profile_get(f->store, "strict", p), 0);
	assert_int_equal(test_query_int(f->store, "SELECT count(*) FROM filter_profile_filter"
						  " WHERE profile = 'Strict'"),
			 0);
	free(p);
}

static void test_profile_for_user(void **state)
{
	struct test_store *f = *state;
	static const char *const keys[] = {"quarantine_at", "tag_at"};
	static const char *const values[] = {"7", "6"};
	struct filter_profile snapshot;
	char name[STORE_PROFILE_NAME_MAX + 1];
	char err[512];
	int64_t user_id;

	assert_int_equal(store_user_add_local(f->store, "carol", NULL, &user_id, err, sizeof(err)),
			 0);
	assert_int_equal(store_profile_of_user(f->store, user_id, name), 0);
	assert_string_equal(name, "default");
	assert_int_equal(store_profile_of_user(f->store, 0, name), 0);
	assert_string_equal(name, "default");
	assert_int_equal(store_profile_add(f->store, "mine", err, sizeof(err)), 0);
	assert_int_equal(store_profile_set(f->store, "mine", keys, values, 2, err, sizeof(err)), 0);
	assert_int_equal(store_profile_assign(f->store, "carol", "mine", err, sizeof(err)), 0);
	assert_int_equal(store_profile_for_user(f->store, user_id, &snapshot), 0);
	assert_true(snapshot.tag_at == 6.0 && snapshot.quarantine_at == 7.0);
	assert_int_equal(store_profile_for_user(f->store, 0, &snapshot), 0);
	assert_true(snapshot.tag_at == 5.0);
	/* A profile row gone (edited by hand): the built-in profile, -1. */
	test_exec_sql(f->store, "DELETE FROM filter_profile WHERE name = 'mine'");
	assert_int_equal(store_profile_for_user(f->store, user_id, &snapshot), -1);
	assert_int_equal(snapshot.filter_count, filter_profile_default()->filter_count);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_default_exists, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_apply_each_key, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_check_whole, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_add_set_delete, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_profile_for_user, setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
