/*
 * query.h — read-only views of the store for the administrator's CLI
 * (popgatectl): messages with the names of their account and user, filtered
 * by state and user, and the account names of a user; plus the one change the
 * CLI needs that no other module offers: deleting a message's row.
 *
 * They never return a password hash, a sealed secret or a message body.
 */
#ifndef POPGATE_STORE_QUERY_H
#define POPGATE_STORE_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "store/message.h"
#include "store/spool.h"

/* One message row as the administrator sees it. */
struct store_query_message {
	char id[SPOOL_ID_LEN + 1];
	char *account_name; /* "login@host" */
	char *user_name;    /* the account's user */
	enum message_state state;
	int64_t body_size;
	int attempts; /* worker deaths on this message */
	int64_t received_at;
	int64_t state_changed_at;
	char *uidl;    /* the provider's UIDL, NULL if none was recorded */
	char *sha256;  /* hex digest of the body, NULL if none */
	char *prepend; /* header lines added in front when served ("" if none) */
};

void store_query_message_clear(struct store_query_message *message);

/*
 * The messages in STATE (-1: any) of the user named USER_NAME (NULL: any),
 * oldest first: *list_r (allocated array, free with
 * store_query_message_list_free) and *count_r. 0 or -1.
 */
int store_query_messages(struct store *store, int state, const char *user_name,
			 struct store_query_message **list_r, size_t *count_r);

void store_query_message_list_free(struct store_query_message **list, size_t count);

/* Fills *MESSAGE for ID (overwritten, not cleared first; clear it after use).
 * 1 found, 0 not found, -1 error. */
int store_query_message_get(struct store *store, const char *id,
			    struct store_query_message *message);

/*
 * Deletes message ID's row unless it is in state processing (a worker may be
 * filtering it; the daemon owns those). Its UIDL record stays, so the message
 * is not fetched again. The caller removes the spool body after this returns
 * 1. Returns 1 deleted, 0 no such message, -2 refused (in processing), -1
 * error.
 */
int store_query_message_delete(struct store *store, const char *id);

/* The names of user USER_ID's provider accounts, by name: *names_r (allocated
 * array of allocated strings, free with store_query_names_free). 0 or -1. */
int store_query_user_accounts(struct store *store, int64_t user_id, char ***names_r,
			      size_t *count_r);

void store_query_names_free(char ***names, size_t count);

#endif
