/*
 * user.h — managing users, their addresses and seats (U1–U6), and the
 * settings table, for popgatectl, the console and the daemon.
 *
 * The functions that change something check the request and make the change
 * in one transaction: a refusal (unknown user, address already assigned, …)
 * writes nothing and puts a sentence for the administrator into ERR. They
 * return 0 when done and -1 when refused or failed; ERR is set in both cases
 * (a database failure is also logged). This module never sees a plain
 * password, only argon2id hashes.
 */
#ifndef POPGATE_STORE_USER_H
#define POPGATE_STORE_USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/* Longest user name, and the key of the seat limit in the setting table. */
#define STORE_USER_NAME_MAX 255
#define STORE_SETTING_SEAT_LIMIT "seat_limit"

struct store_user {
	int64_t id;
	char *name;
	char *origin;	     /* "provider" (U1) or "local" */
	char *password_hash; /* a local user's own argon2id hash; NULL if none */
	bool has_seat;
	int64_t created_at;
	int64_t seat_requested_at; /* waiting order for a seat */
	int64_t address_count;
	int64_t account_count;
	int64_t message_count; /* of its accounts, or owned by it (U5) */
};

void store_user_clear(struct store_user *user);

/* True if NAME is 1..STORE_USER_NAME_MAX characters of [A-Za-z0-9._+-]. */
bool store_user_name_valid(const char *name);

/* All users by name: *list_r (allocated, free with store_user_list_free). 0/-1. */
int store_user_list(struct store *store, struct store_user **list_r, size_t *count_r);
void store_user_list_free(struct store_user **list, size_t count);

/* User NAME (exact). *USER is overwritten, not cleared first; clear it after
 * use. 1 found, 0 not found, -1 error. */
int store_user_get(struct store *store, const char *name, struct store_user *user);

/*
 * Creates the local user NAME, with PRIMARY_ADDRESS (may be NULL) as its
 * primary address, and gives it a seat if one is free, else it waits.
 * Refused for an invalid name, a name that exists (compared without case), or
 * an invalid or assigned address. Its id into *ID_R (may be NULL). 0/-1.
 */
int store_user_add_local(struct store *store, const char *name, const char *primary_address,
			 int64_t *id_r, char *err, size_t errlen);

/* Deletes user NAME and its addresses. Refused for an unknown user, or while
 * it has provider accounts or messages. 0/-1. */
int store_user_delete(struct store *store, const char *name, char *err, size_t errlen);

/* Sets the own password hash of the local user NAME (U6). Refused for an
 * unknown user and for a provider-created one (it logs in with its provider
 * password). 0/-1. */
int store_user_set_password(struct store *store, const char *name, const char *password_hash,
			    char *err, size_t errlen);

struct store_address {
	char *address;
	int64_t user_id;
	char *user_name;
	bool is_primary;
};

/* True if ADDRESS is local@domain: one '@', a dot-atom local part of at most
 * 64 printable characters, a domain of dot-separated [A-Za-z0-9-] labels. */
bool store_address_valid(const char *address);

/* The addresses of user USER_NAME, or of everyone if it is NULL, by address.
 * Refused for an unknown user. 0/-1. */
int store_address_list(struct store *store, const char *user_name, struct store_address **list_r,
		       size_t *count_r, char *err, size_t errlen);
void store_address_list_free(struct store_address **list, size_t count);

/* Assigns ADDRESS to user USER_NAME. Refused for an invalid address, one
 * already assigned (ERR names the owner), or an unknown user. 0/-1. */
int store_address_add(struct store *store, const char *address, const char *user_name, char *err,
		      size_t errlen);

/* Takes ADDRESS away. Refused if unknown, or a user's primary address. 0/-1. */
int store_address_delete(struct store *store, const char *address, char *err, size_t errlen);

/* The user ADDRESS (compared without case) belongs to (U4, U5), into
 * *USER_ID_R. 1 found, 0 not assigned, -1 error. */
int store_address_owner(struct store *store, const char *address, int64_t *user_id_r);

/*
 * Records whom message ID belongs to, in one transaction: its owner (U5, the
 * user owning its sender address; 0 for none) and the users its recipient
 * addresses belong to (U4): RECIPIENT_USER_IDS[i] owns ADDRESSES[i], N of
 * each. A user named twice keeps the first address. Replaces what was
 * recorded before, so a retried message is attributed once. 1 done, 0 no
 * such message, -1 error (logged).
 */
int store_message_attribute(struct store *store, const char *id, int64_t owner_user_id,
			    const int64_t *recipient_user_ids, char *const *addresses, size_t n);

struct store_seat_status {
	int64_t limit;	 /* 0 = unlimited */
	int64_t used;	 /* users with a seat */
	int64_t free;	 /* seats left, -1 when unlimited */
	int64_t waiting; /* users without a seat */
};

/* 0/-1. */
int store_seat_status(struct store *store, struct store_seat_status *status);

/*
 * Sets the seat limit (0 = unlimited), then gives seats to waiting users,
 * oldest first, while seats are free. Refused for a negative LIMIT and for a
 * LIMIT below the seats in use. Returns how many users got a seat, or -1.
 */
int store_seat_set_limit(struct store *store, int64_t limit, char *err, size_t errlen);

/* Gives user USER_ID a seat if it has none and one is free, else it waits
 * (for a user just created, U3). 1 has a seat, 0 waiting, -1 error (also for
 * an unknown user). */
int store_seat_assign(struct store *store, int64_t user_id);

/* The value of setting KEY into *VALUE_R (allocated). 1 found, 0 absent (then
 * *VALUE_R is NULL), -1 error. */
int store_setting_get(struct store *store, const char *key, char **value_r);

/* Sets KEY to VALUE (replacing it). 0/-1. */
int store_setting_set(struct store *store, const char *key, const char *value);

#endif
