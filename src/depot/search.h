/*
 * search.h — finding archived messages in the depot's index (issue 11 point
 * 4): by sender, recipient, subject words, full-text terms, Date range,
 * owner, attachment name and direction, newest first and paged; and one
 * message's index fields with its chain entry. Every search and look-up is
 * audited (depot_audit) under the caller's actor.
 *
 * A user's search passes the addresses assigned to that user now
 * (RESTRICTED with ADDRESSES): only messages with an owner row of one of them
 * are found or shown, so a user never learns of another user's mail.
 *
 * Must never: let a user's words become FTS5 syntax or SQL (terms are quoted
 * here, values are bound); read a message body (that is depot_read's);
 * return an expired message.
 */
#ifndef POPGATE_DEPOT_SEARCH_H
#define POPGATE_DEPOT_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "depot/depot.h"

/* The page size without a limit, and the largest one. */
#define DEPOT_SEARCH_LIMIT_DEFAULT 50
#define DEPOT_SEARCH_LIMIT_MAX 1000
/* The longest text of one criterion, and the most words of a text one. */
#define DEPOT_SEARCH_TEXT_MAX 1024
#define DEPOT_SEARCH_WORDS_MAX 32

/*
 * What to look for; every criterion given must hold (NULL, 0 or -1: not
 * given). Strings are compared as the index keeps them: addresses
 * lowercased (done here), user names exactly.
 */
struct depot_query {
	const char *sender;    /* the sender's address */
	const char *recipient; /* one of the recipients' addresses */
	const char *subject;   /* words that all occur in the subject */
	/* Words that all occur somewhere: subject, headers, body or attachment
	 * text. A word ending in '*' matches as a prefix ("invoic*"). Any other
	 * punctuation separates words, as the index's tokenizer does. */
	const char *text;
	int64_t since;	   /* Date at or after, unix seconds (0: any) */
	int64_t until;	   /* Date at or before (0: any) */
	const char *owner; /* archived as mail of this user */
	/* An attachment's name: a glob ('*', '?', '[') matched whole and with
	 * case, else a substring matched without ASCII case. */
	const char *attachment;
	int direction; /* enum depot_direction, or -1 for any */
	/* A user's search: only messages owned through one of these addresses
	 * (none at all when ADDRESS_COUNT is 0). */
	bool restricted;
	const char *const *addresses;
	size_t address_count;
	int limit;	/* 0: DEPOT_SEARCH_LIMIT_DEFAULT; at most _MAX */
	int64_t before; /* only seq below this (paging; 0: from the newest) */
};

/* One message found: its index fields. */
struct depot_hit {
	int64_t seq;
	char sha256[65]; /* of the raw message, hex */
	enum depot_direction direction;
	char *source;
	char *sender; /* NULL if none */
	char **recipients;
	size_t recipient_count;
	char *subject;	  /* NULL if none */
	int64_t date;	  /* the Date header; 0 if none */
	int64_t size;	  /* raw bytes */
	char *message_id; /* NULL if none */
	int64_t archived; /* when, unix seconds */
	struct depot_owner *owners;
	size_t owner_count;
	char **attachments;
	size_t attachment_count;
};

/* The chain entry of an archived message. */
struct depot_entry_info {
	char kind[16];
	int64_t at;
	char hash[65];	 /* hex */
	char record[65]; /* the canonical record's SHA-256, hex; "" for none */
};

/*
 * Runs QUERY: the messages that match, newest (highest seq) first, at most
 * its limit, into *HITS_R (free with depot_hits_free) and *COUNT_R; audited
 * as "search" by ACTOR with the query as its detail. 0, or -1 with ERR (a
 * query that cannot be run, such as text with no word in it, or a database
 * failure; nothing is audited then).
 */
int depot_search(struct depot *depot, const struct depot_query *query, const char *actor,
		 struct depot_hit **hits_r, size_t *count_r, char *err, size_t errlen);

void depot_hits_free(struct depot_hit **hits, size_t count);

/*
 * Message SEQ's index fields into *HIT (clear with depot_hit_clear) and, if
 * ENTRY is not NULL, its chain entry; with QUERY->restricted only if one of
 * QUERY's addresses owns it (QUERY's other fields are unused; QUERY may be
 * NULL for no restriction). Audited as "show" by ACTOR (NULL: not audited,
 * for a caller that audits what it does with the message). 1 found, 0 no
 * such message (or expired, or not owned), -1 ERR.
 */
int depot_search_get(struct depot *depot, int64_t seq, const struct depot_query *query,
		     const char *actor, struct depot_hit *hit, struct depot_entry_info *entry,
		     char *err, size_t errlen);

/* 1 if message SEQ is archived, not expired and (QUERY->restricted) owned
 * through one of QUERY's addresses; 0 if not; -1 ERR. Not audited: the
 * caller audits what it does with the message. */
int depot_search_owns(struct depot *depot, int64_t seq, const struct depot_query *query, char *err,
		      size_t errlen);

void depot_hit_clear(struct depot_hit *hit);

/*
 * The FTS5 expression matching every word of TEXT (in column COLUMN if not
 * NULL): each word a quoted string, so nothing the user typed is FTS5
 * syntax; a trailing '*' makes the word a prefix. Allocated, or NULL with
 * ERR for text without a word or with too many. For depot_search, and the
 * tests.
 */
char *depot_search_match(const char *text, const char *column, char *err, size_t errlen);

#endif
