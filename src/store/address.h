/*
 * address.h — the addresses users own (U4, U5) and whom a message belongs
 * to. Functions that change something return 0 done, -1 refused or failed,
 * with a sentence in ERR (store/user.h explains the convention).
 */
#ifndef POPGATE_STORE_ADDRESS_H
#define POPGATE_STORE_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

struct store_address {
	char *address;
	int64_t user_id;
	char *user_name;
	bool is_primary;
};

/* True if ADDRESS is local@domain (core/address.h's address_valid, the one
 * check of an address's shape). */
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

/* The name of the user ADDRESS belongs to, into *NAME_R (free()); for the
 * archive's owners (pipeline/archiver.h). 1 found, 0 not assigned, -1 error. */
int store_address_owner_name(struct store *store, const char *address, char **name_r);

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

#endif
