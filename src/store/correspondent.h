/*
 * correspondent.h — the addresses each user has written to (U5): learnt
 * when the relay delivers a user's message to a recipient, so the
 * challenge-response stage can trust mail from them.
 */
#ifndef POPGATE_STORE_CORRESPONDENT_H
#define POPGATE_STORE_CORRESPONDENT_H

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

#endif
