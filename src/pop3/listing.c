/*
 * listing.c — a provider mailbox's listing: UIDL lines into entries up to a
 * bound, LIST sizes found by number, duplicated UIDLs marked, and the rule
 * for what a fetch may do with an entry. See listing.h.
 *
 * Must never: trust a UIDL alone to delete a message unretrieved (a
 * provider may list one UIDL for two messages, or reuse one).
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pop3/listing.h"

void listing_init(struct provider_listing *listing, size_t max)
{
	memset(listing, 0, sizeof(*listing));
	listing->max = max;
	listing->first_duplicate = SIZE_MAX;
}

void listing_free(struct provider_listing *listing)
{
	free(listing->entries);
	free(listing->by_number);
	listing_init(listing, listing->max);
}

int listing_add_uidl(struct provider_listing *listing, const char *line, size_t len)
{
	struct provider_entry entry = {0};

	if (pop3_parse_uidl_line(line, len, &entry.number, entry.uidl) < 0)
		return -1;
	/* A huge mailbox is taken in parts: the rest waits for the next fetch. */
	if (listing->count >= listing->max || listing->count >= UINT32_MAX) {
		listing->unlisted++;
		return 0;
	}
	if (listing->count == listing->capacity) {
		listing->capacity = listing->capacity ? listing->capacity * 2 : 64;
		listing->entries =
		    xrealloc(listing->entries, listing->capacity * sizeof(*listing->entries));
	}
	listing->entries[listing->count++] = entry;
	return 0;
}

static int listing_number_compare(const void *a, const void *b)
{
	const struct listing_number *x = a, *y = b;

	return x->number < y->number ? -1 : x->number > y->number;
}

static int listing_uidl_compare(const void *a, const void *b)
{
	const struct provider_entry *const *x = a, *const *y = b;
	int order = strcmp((*x)->uidl, (*y)->uidl);

	/* Ties in listing order, so the first duplicate is the first listed. */
	if (order == 0)
		order = *x < *y ? -1 : *x > *y;
	return order;
}

/* Marks the entries whose UIDL the listing holds more than once (RFC 1939
 * forbids it; providers whose UIDL is a content hash or a buggy counter do
 * it). */
static void listing_mark_duplicates(struct provider_listing *listing)
{
	struct provider_entry **order = xcalloc(listing->count + 1, sizeof(*order));

	for (size_t i = 0; i < listing->count; i++)
		order[i] = &listing->entries[i];
	qsort(order, listing->count, sizeof(*order), listing_uidl_compare);
	for (size_t i = 1; i < listing->count; i++) {
		struct provider_entry *previous = order[i - 1], *entry = order[i];
		if (strcmp(previous->uidl, entry->uidl) != 0)
			continue;
		if (!previous->duplicate)
			listing->duplicate_uidls++;
		size_t index = (size_t)(previous - listing->entries);
		if (listing->first_duplicate == SIZE_MAX || index < listing->first_duplicate)
			listing->first_duplicate = index;
		previous->duplicate = true;
		entry->duplicate = true;
	}
	free(order);
}

void listing_close(struct provider_listing *listing)
{
	free(listing->by_number);
	listing->by_number = xcalloc(listing->count + 1, sizeof(*listing->by_number));
	for (size_t i = 0; i < listing->count; i++) {
		listing->by_number[i].number = listing->entries[i].number;
		listing->by_number[i].index = (uint32_t)i;
	}
	/* Each LIST line then finds its entry directly: listings may hold
	 * hundreds of thousands of messages. */
	qsort(listing->by_number, listing->count, sizeof(*listing->by_number),
	      listing_number_compare);
	listing_mark_duplicates(listing);
}

struct provider_entry *listing_find(const struct provider_listing *listing, uint32_t number)
{
	struct listing_number key = {.number = number};
	const struct listing_number *found;

	if (listing->by_number == NULL)
		return NULL;
	found = bsearch(&key, listing->by_number, listing->count, sizeof(*listing->by_number),
			listing_number_compare);
	return found != NULL ? &listing->entries[found->index] : NULL;
}

void listing_add_size(struct provider_listing *listing, const char *line, size_t len)
{
	struct provider_entry *entry;
	uint32_t number;
	uint64_t size;

	if (pop3_parse_list_line(line, len, &number, &size) < 0)
		return; /* the size limit is enforced while reading anyway */
	entry = listing_find(listing, number);
	if (entry != NULL)
		entry->size = size;
}

enum listing_action listing_entry_action(const struct provider_entry *entry, bool known,
					 uint64_t stored_size)
{
	if (entry->duplicate)
		return LISTING_RETRIEVE_COMPARE;
	if (!known)
		return LISTING_RETRIEVE;
	if (entry->size > 0 && entry->size == stored_size)
		return LISTING_DELETE_ONLY;
	return LISTING_RETRIEVE_COMPARE;
}
