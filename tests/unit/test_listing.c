/*
 * test_listing.c — a provider's listing as a fetch sees it: the bound
 * (max_listed), LIST sizes found by number, UIDLs listed twice, and the rule
 * that only an entry listed once with its stored LIST size is deleted
 * unretrieved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pop3/listing.h"

static void add_uidl(struct provider_listing *listing, const char *line)
{
	assert_int_equal(listing_add_uidl(listing, line, strlen(line)), 0);
}

static void add_size(struct provider_listing *listing, const char *line)
{
	listing_add_size(listing, line, strlen(line));
}

static void test_bound_and_sizes(void **state)
{
	struct provider_listing listing;
	char line[32];
	(void)state;

	listing_init(&listing, 1000);
	/* Listed out of order: the sizes still find their entries. */
	for (int i = 2000; i >= 1; i--) {
		snprintf(line, sizeof(line), "%d u%d", i, i);
		add_uidl(&listing, line);
	}
	assert_int_equal(listing.count, 1000);
	assert_int_equal(listing.unlisted, 1000);
	assert_int_equal(listing_add_uidl(&listing, "x y", 3), -1);
	listing_close(&listing);
	for (int i = 1; i <= 2000; i++) {
		snprintf(line, sizeof(line), "%d %d", i, i * 10);
		add_size(&listing, line);
	}
	add_size(&listing, "garbage");
	assert_non_null(listing_find(&listing, 2000));
	assert_int_equal(listing_find(&listing, 2000)->size, 20000);
	assert_int_equal(listing_find(&listing, 1001)->size, 10010);
	assert_null(listing_find(&listing, 1000)); /* past the bound */
	assert_int_equal(listing.duplicate_uidls, 0);
	listing_free(&listing);
}

static void test_duplicates(void **state)
{
	struct provider_listing listing;
	(void)state;

	listing_init(&listing, 100);
	add_uidl(&listing, "1 a");
	add_uidl(&listing, "2 b");
	add_uidl(&listing, "3 c");
	add_uidl(&listing, "4 b");
	add_uidl(&listing, "5 c");
	add_uidl(&listing, "6 b");
	listing_close(&listing);
	assert_int_equal(listing.duplicate_uidls, 2);
	assert_int_equal(listing.first_duplicate, 1);
	assert_false(listing.entries[0].duplicate);
	for (size_t i = 1; i < 6; i++)
		assert_true(listing.entries[i].duplicate);
	listing_free(&listing);
}

static void test_action(void **state)
{
	struct provider_entry entry = {.number = 1, .size = 500, .uidl = "u"};
	(void)state;

	assert_int_equal(listing_entry_action(&entry, false, 0), LISTING_RETRIEVE);
	assert_int_equal(listing_entry_action(&entry, true, 500), LISTING_DELETE_ONLY);
	/* Another size: another message under a reused UIDL. */
	assert_int_equal(listing_entry_action(&entry, true, 501), LISTING_RETRIEVE_COMPARE);
	/* A size not known then proves nothing. */
	assert_int_equal(listing_entry_action(&entry, true, 0), LISTING_RETRIEVE_COMPARE);
	entry.size = 0;
	assert_int_equal(listing_entry_action(&entry, true, 0), LISTING_RETRIEVE_COMPARE);
	/* Listed twice: never deleted unretrieved, known or not. */
	entry.size = 500;
	entry.duplicate = true;
	assert_int_equal(listing_entry_action(&entry, true, 500), LISTING_RETRIEVE_COMPARE);
	assert_int_equal(listing_entry_action(&entry, false, 0), LISTING_RETRIEVE_COMPARE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bound_and_sizes),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_action),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
