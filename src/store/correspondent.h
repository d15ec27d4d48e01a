/*
 * correspondent.h — the addresses each user has written to (U5): learnt
 * when the relay delivers a user's message to a recipient, so the
 * challenge-response stage can trust mail from them.
 */
#ifndef POPGATE_STORE_CORRESPONDENT_H
#define POPGATE_STORE_CORRESPONDENT_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/*
 * Records that USER_ID's message reached ADDRESS at NOW: a new row (first_at
 * and last_at NOW, messages 1) or, for one known, last_at NOW and one more
 * message. The address is kept in lower case, so one correspondent is one
 * row however it was spelt. 0 or -1 (logged).
 */
int store_correspondent_add(struct store *store, int64_t user_id, const char *address, int64_t now);

/* 1 when ADDRESS is one of USER_ID's correspondents, 0 if not, -1 error. */
int store_correspondent_known(struct store *store, int64_t user_id, const char *address);

struct store_correspondent {
	int64_t user_id;
	char *user_name;
	char *address;
	int64_t first_at;
	int64_t last_at;
	int64_t messages;
};

/* The correspondents of USER_ID (0: every user's), by user name and
 * address: *LIST_R (free with store_correspondent_list_free). 0 or -1. */
int store_correspondent_list(struct store *store, int64_t user_id,
			     struct store_correspondent **list_r, size_t *count_r);
void store_correspondent_list_free(struct store_correspondent **list, size_t count);

#endif
