/*
 * listing.h — a provider mailbox's listing as a fetch sees it: the UIDL
 * lines made into entries (at most a bound; the rest only counted), the
 * LIST sizes found for them by message number, the UIDLs listed more than
 * once, and what a fetch may do with each entry.
 *
 * Pure: no loop, no store, no I/O, so the fuzz target drives it as the
 * fetch does (tests/fuzz/fuzz_provider.c).
 */
#ifndef POPGATE_POP3_LISTING_H
#define POPGATE_POP3_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pop3/parse.h"

/* One message in the provider's listing. */
struct provider_entry {
	uint32_t number;
	uint64_t size; /* from LIST; 0 if the provider did not list it */
	char uidl[POP3_UIDL_MAX + 1];
	bool deleted;	/* DELE answered +OK */
	bool duplicate; /* another entry of the listing has the same UIDL */
	bool compare;	/* retrieved, then compared with what is stored under its UIDL */
};

/* An entry's place, sorted by message number for LIST. */
struct listing_number {
	uint32_t number;
	uint32_t index;
};

struct provider_listing {
	struct provider_entry *entries;
	size_t count;
	size_t capacity;
	size_t max;			  /* entries taken from one listing */
	size_t unlisted;		  /* entries past MAX, left for a later fetch */
	struct listing_number *by_number; /* set by listing_close */
	size_t duplicate_uidls;		  /* UIDLs listed more than once */
	size_t first_duplicate;		  /* the first entry with such a UIDL */
};

/* What a fetch may do with an entry. */
enum listing_action {
	LISTING_RETRIEVE,	  /* not stored: retrieve, store, then delete */
	LISTING_RETRIEVE_COMPARE, /* its UIDL proves nothing: retrieve, and delete
				   * only if the same body is stored under it */
	LISTING_DELETE_ONLY,	  /* provably stored already: only delete */
};

/* An empty listing that takes at most MAX entries. */
void listing_init(struct provider_listing *listing, size_t max);
void listing_free(struct provider_listing *listing);

/* Adds a UIDL listing line (past MAX it is only counted). 0, or -1 if the
 * line is malformed. */
int listing_add_uidl(struct provider_listing *listing, const char *line, size_t len);

/* The UIDL listing ended: indexes the entries by number and marks the
 * UIDLs listed more than once. */
void listing_close(struct provider_listing *listing);

/* Records the size of a LIST line's entry; lines that do not parse or name
 * no entry are ignored (sizes are advisory). After listing_close. */
void listing_add_size(struct provider_listing *listing, const char *line, size_t len);

/* The entry with message NUMBER, or NULL. After listing_close. */
struct provider_entry *listing_find(const struct provider_listing *listing, uint32_t number);

/*
 * What to do with ENTRY, whose UIDL is recorded as stored (KNOWN) with the
 * LIST size STORED_SIZE of that time (0 = not known). Only an entry listed
 * once, with a known size equal to the stored one, is deleted unretrieved.
 */
enum listing_action listing_entry_action(const struct provider_entry *entry, bool known,
					 uint64_t stored_size);

#endif
