/*
 * account.h — provider accounts (LOGIN@HOST), their users and addresses, and
 * the UIDLs popgate has stored from each provider mailbox.
 *
 * The password kept for fetching is stored only sealed (crypto_secret_seal);
 * the login check uses an argon2id hash. This module never sees a plain
 * password.
 */
#ifndef POPGATE_STORE_ACCOUNT_H
#define POPGATE_STORE_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

struct store_account {
	int64_t id;
	char *name;		/* "login@host", as the client typed it, host lowercased */
	char *login;
	char *host;
	int64_t user_id;
	char *user_name;	/* the owning user's name */
	char *password_hash;	/* argon2id string */
	unsigned char *secret;	/* sealed password */
	size_t secret_len;
	int64_t last_fetch_at;	/* 0 = never */
	char *last_error;	/* NULL = none */
	int fetch_failures;
	int64_t next_fetch_at;	/* earliest next fetch (back-off), 0 = any time */
};

void store_account_clear(struct store_account *account);

/* Loads the account NAME (compared without case). *ACCOUNT is overwritten,
 * not cleared first; clear it after use. 1 found, 0 not found, -1 error. */
int store_account_get(struct store *store, const char *name, struct store_account *account);
int store_account_get_by_id(struct store *store, int64_t id, struct store_account *account);

/*
 * Creates the account, and its user USER_NAME with primary address
 * PRIMARY_ADDRESS if the user does not exist (U1, U2), in one transaction.
 * Fills ACCOUNT->id, ->user_id and ->user_name. Uses name, login, host,
 * password_hash, secret, and the fetch fields (usually zero) of ACCOUNT.
 * An existing user is reused as it is (PRIMARY_ADDRESS is then unused).
 * 0, or -1 (nothing written; inside a caller's transaction only this call's
 * writes are undone).
 */
int store_account_create(struct store *store, struct store_account *account,
			 const char *user_name, const char *primary_address);

/* Replaces hash and sealed password after a successful live login, and ends
 * the fetch back-off: the provider has just accepted these credentials, so
 * failures the old ones earned no longer delay the next fetch. 0 or -1 (also
 * when there is no such account). */
int store_account_update_credentials(struct store *store, int64_t account_id,
				     const char *password_hash, const unsigned char *secret,
				     size_t secret_len);

/* Marks ACCOUNT_ID's fetch as started and not yet ended (fetch_unfinished):
 * a restart that finds the mark fetches the account at once, since the fetch
 * may have stored messages it could not delete at the provider (G3). 0 or -1
 * (no account is not an error). */
int store_account_fetch_begin(struct store *store, int64_t account_id);

/* Records a fetch's outcome at the current time (last_fetch_at is the time
 * of the last attempt): ERROR NULL = success (failures reset to 0 whatever
 * FETCH_FAILURES says). A fetch without failures (ERROR NULL, or an anomaly
 * with FETCH_FAILURES 0) clears the mark of store_account_fetch_begin; a
 * failed one keeps it. 0 or -1. */
int store_account_record_fetch(struct store *store, int64_t account_id, const char *error,
			       int fetch_failures, int64_t next_fetch_at);

/* True if user NAME exists; its owner account name into *account_name_r
 * (allocated, may be NULL if the user has none; the first account made if
 * several). ACCOUNT_NAME_R may be NULL. 1/0/-1. */
int store_user_exists(struct store *store, const char *name, char **account_name_r);

/* The ids of all accounts (for start-up work), *ids_r allocated. 0 or -1. */
int store_account_list_ids(struct store *store, int64_t **ids_r, size_t *count_r);

/* The ids of the accounts whose last fetch is UNFINISHED (or, false, ended
 * cleanly; see store_account_fetch_begin), by id, *ids_r allocated. 0 or -1. */
int store_account_list_ids_by_fetch(struct store *store, bool unfinished, int64_t **ids_r,
				    size_t *count_r);

/* What store_account_delete did. */
struct store_account_deletion {
	char **message_ids;	/* the account's messages, whose spool files go now */
	size_t message_count;
	int64_t pending;	/* of those, in processing or delivery */
	int64_t uidl_count;	/* provider UIDLs forgotten */
	char *user_name;	/* the account's user */
	bool user_deleted;	/* the user went too (with its addresses) */
};

/* Frees what DELETION holds and zeroes it. */
void store_account_deletion_clear(struct store_account_deletion *deletion);

/*
 * Deletes the account NAME in one transaction: its messages' rows (their
 * spool files are the caller's to remove, after this returns: a body without
 * a row is an orphan removed at the next start), its provider UIDLs, the
 * account, and its user with the user's addresses when the user has no other
 * account, was made by a provider login (origin 'provider') and no other
 * message is attributed to it. Messages still in processing or delivery (mail
 * not yet picked up) make it refuse unless FORCE. Fills *DELETION (clear it
 * after use, whatever the result). 1 deleted, 0 no such account, -2 refused
 * for pending messages (DELETION->pending says how many; nothing written),
 * -1 error (logged; nothing written).
 */
int store_account_delete(struct store *store, const char *name, bool force,
			 struct store_account_deletion *deletion);

/* 1 if UIDL of ACCOUNT_ID is recorded as stored, 0 if not, -1 error. */
int store_uidl_known(struct store *store, int64_t account_id, const char *uidl);

/*
 * 1 if UIDL of ACCOUNT_ID is recorded as stored, with the size the provider
 * listed for it then in *PROVIDER_SIZE (0 if not known); 0 if not; -1 error.
 */
int store_uidl_lookup(struct store *store, int64_t account_id, const char *uidl,
		      int64_t *provider_size);

/* Records PROVIDER_SIZE (the provider's LIST size) for a stored UIDL. 0 or -1. */
int store_uidl_set_size(struct store *store, int64_t account_id, const char *uidl,
			int64_t provider_size);

/* Forgets UIDL (the provider has deleted it). 0 or -1. */
int store_uidl_forget(struct store *store, int64_t account_id, const char *uidl);

/*
 * Forgets every UIDL of ACCOUNT_ID that is not in PRESENT (the provider's
 * current list): those messages are gone from the provider. Atomic; O(n log
 * n) for long lists. 0 or -1.
 */
int store_uidl_prune(struct store *store, int64_t account_id, char *const *present,
		     size_t present_count);

#endif
