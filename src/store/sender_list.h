/*
 * sender_list.h — the sender allow and block lists (issue 10): global ones,
 * and one pair per user, each entry an address (joe@example.com), a domain
 * (example.com, also written @example.com) or a wildcard pattern
 * (*.example.com, *@*.example.net, news-*@example.org). The senders filter
 * (filters/senders.h) judges mail by them.
 *
 * Patterns are stored lowercased, a domain without its '@'. A pattern is
 * 1 to 254 of a-z 0-9 and . - _ + = ! # $ % & ' / ^ ` { | } ~ * @, with at
 * most one '@' and not ending with one.
 */
#ifndef POPGATE_STORE_SENDER_LIST_H
#define POPGATE_STORE_SENDER_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

#define SENDER_PATTERN_MAX 254

enum sender_list_kind { SENDER_LIST_ALLOW, SENDER_LIST_BLOCK };

struct sender_list_entry {
	int64_t user_id; /* 0: the global lists */
	char *user_name; /* NULL for the global lists */
	enum sender_list_kind kind;
	char *pattern;
	int64_t created_at;
};

/* "allow" or "block"; and back (-1 for anything else). */
const char *sender_list_kind_name(enum sender_list_kind kind);
int sender_list_kind_parse(const char *name);

/* PATTERN made canonical into OUT (SENDER_PATTERN_MAX + 1 bytes): 0, or -1
 * with ERR saying what is wrong with it. */
int sender_list_pattern_canonical(const char *pattern, char *out, char *err, size_t errlen);

/* Adds PATTERN to the KIND list of USER (NULL: the global lists). Refused
 * for a bad pattern, an unknown user, and a pattern already on either of
 * that owner's lists. 0, or -1 with ERR. */
int store_sender_list_add(struct store *store, const char *user, enum sender_list_kind kind,
			  const char *pattern, char *err, size_t errlen);

/* Takes PATTERN off USER's lists (NULL: the global ones). 0, or -1 with ERR
 * (also when it is not there). */
int store_sender_list_del(struct store *store, const char *user, const char *pattern, char *err,
			  size_t errlen);

/* The entries of USER (NULL: every list, global first), by owner and pattern:
 * *LIST_R (free with store_sender_list_free). 0 or -1 (an unknown user is
 * an empty list: the caller checks the name). */
int store_sender_list_list(struct store *store, const char *user, struct sender_list_entry **list_r,
			   size_t *count_r);

/* The entries that judge mail of user USER_ID (0: none): the global ones and
 * that user's. 0 or -1. */
int store_sender_list_for_user(struct store *store, int64_t user_id,
			       struct sender_list_entry **list_r, size_t *count_r);

void store_sender_list_free(struct sender_list_entry **list, size_t count);

#endif
