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
	char *account_name; /* "login@host", NULL for mail without an account */
	char *user_name;    /* the account's user, NULL without one */
	enum message_state state;
	int64_t body_size;
	int attempts; /* worker deaths on this message */
	int64_t received_at;
	int64_t state_changed_at;
	char *uidl;    /* the provider's UIDL, NULL if none was recorded */
	char *sha256;  /* hex digest of the body, NULL if none */
	char *prepend; /* header lines added in front when served ("" if none) */
	char *owner_name; /* the user owning its sender address (U5), NULL if none */
};

/* A user a message is attributed to by a recipient address (U4). */
struct store_query_recipient {
	char *user_name;
	char *address;
};

void store_query_message_clear(struct store_query_message *message);

/*
 * The messages in STATE (-1: any) of the user named USER_NAME (NULL: any),
 * oldest first, but for those in a state this program does not know (skipped
 * with a warning, so one such row does not make the listing fail): *list_r (allocated array, free with
 * store_query_message_list_free) and *count_r. 0 or -1.
 *
 * A message is a user's (U4) when the user owns one of its recipient
 * addresses, or, when no local user owns any of them, when the user's
 * account fetched it. So on a collective mailbox each user sees the mail of
 * their own addresses and no one else's.
 */
int store_query_messages(struct store *store, int state, const char *user_name,
			 struct store_query_message **list_r, size_t *count_r);

void store_query_message_list_free(struct store_query_message **list, size_t count);

/* Fills *MESSAGE for ID (overwritten, not cleared first; clear it after use).
 * 1 found, 0 not found, -1 error. */
int store_query_message_get(struct store *store, const char *id,
			    struct store_query_message *message);

/* Whether message ID is USER_NAME's, by the rule of store_query_messages.
 * 1 yes, 0 no (or no such message), -1 error. */
int store_query_message_of_user(struct store *store, const char *id, const char *user_name);

/* The users message ID is attributed to, by name: *list_r (free with
 * store_query_recipients_free) and *count_r. 0 or -1. */
int store_query_message_recipients(struct store *store, const char *id,
				   struct store_query_recipient **list_r, size_t *count_r);

void store_query_recipients_free(struct store_query_recipient **list, size_t count);

/*
 * Takes user USER_NAME off message ID when another user's address keeps it
 * (a user deleting a message addressed to several users deletes only their
 * own entry). 1 taken off, 0 not (the user is its only recipient, or none),
 * -1 error.
 */
int store_query_message_detach_user(struct store *store, const char *id, const char *user_name);

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
