/*
 * user.h — managing users (U1–U6) for popgatectl, the console and the
 * daemon. Their addresses, seats and the settings table have headers of
 * their own (store/address.h, seat.h, setting.h), included here for callers
 * that use several.
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

#include "store/address.h"
#include "store/db.h"
#include "store/seat.h"
#include "store/setting.h"

/* Longest user name. */
#define STORE_USER_NAME_MAX 255

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

/* Where a user came from: 'user add' (local) or a first provider login (U1). */
enum store_user_origin { STORE_USER_LOCAL, STORE_USER_PROVIDER };

/*
 * The one way a user is made, inside the caller's transaction (or its own):
 * user NAME of ORIGIN with PRIMARY_ADDRESS (may be NULL), given a seat if one
 * is free, else waiting (U3). A local user's name and address, typed by the
 * administrator, must be valid and free (names compared without case); a
 * provider user's are derived from its login (store_login_user_name_new) and
 * only need to be free. Its id into *ID_R (may be NULL). 0, or -1 with ERR.
 */
int store_user_create(struct store *store, const char *name, enum store_user_origin origin,
		      const char *primary_address, int64_t *id_r, char *err, size_t errlen);

/* Deletes user NAME and its addresses. Refused for an unknown user, or while
 * it has provider accounts or messages. 0/-1. */
int store_user_delete(struct store *store, const char *name, char *err, size_t errlen);

/* Sets the own password hash of the local user NAME (U6). Refused for an
 * unknown user and for a provider-created one (it logs in with its provider
 * password). 0/-1. */
int store_user_set_password(struct store *store, const char *name, const char *password_hash,
			    char *err, size_t errlen);

#endif
