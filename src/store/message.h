/*
 * message.h — message rows: one per message, its queue is its `state`.
 *
 *   provider ─fetch─▶ processing ─worker─▶ delivery ─pickup, QUIT─▶ delivered ─(N days)─▶ gone
 *                          └─▶ suspect (a worker died on it twice)
 *
 * A state changes only inside a transaction, and only from the state the
 * caller expects (so a late or repeated event cannot move a message twice).
 */
#ifndef POPGATE_STORE_MESSAGE_H
#define POPGATE_STORE_MESSAGE_H

#include <stdint.h>

#include "store/db.h"
#include "store/spool.h"

enum message_state {
	MESSAGE_PROCESSING,
	MESSAGE_DELIVERY,
	MESSAGE_DELIVERED,
	MESSAGE_SUSPECT,
	MESSAGE_STATE_COUNT
};

/* "processing", "delivery", …; and back (-1 for an unknown name). */
const char *store_message_state_name(enum message_state state);
int store_message_state_parse(const char *name);

/*
 * Reads the id (column ID_COL) and state (STATE_COL) of STMT's message row
 * into ID_OUT and *STATE_R, refusing (logged) a row whose id is no spool id
 * or whose state is unknown: ids become paths. For every reader of message
 * rows. 0 or -1.
 */
int store_message_row_key(sqlite3_stmt *stmt, int id_col, int state_col,
			  char id_out[SPOOL_ID_LEN + 1], enum message_state *state_r);

struct store_message {
	char id[SPOOL_ID_LEN + 1];
	int64_t account_id;
	enum message_state state;
	int64_t body_size;	/* bytes of the spool file */
	char *prepend;		/* header lines added in front when served ("" if none) */
	int attempts;		/* worker deaths on this message */
	int64_t received_at;
};

void store_message_clear(struct store_message *message);

/*
 * Inserts a new message in state processing, and records UIDL (may be NULL)
 * as stored for ACCOUNT_ID in the same statement group. The caller holds the
 * transaction (store_begin/commit) so the row and the UIDL commit together;
 * called outside one, it makes its own. ID must be spool_id_valid. 0 or -1
 * (neither row written).
 */
int store_message_insert(struct store *store, const char *id, int64_t account_id,
			 const char *uidl, int64_t body_size, const char *sha256_hex);

/*
 * 1 if ACCOUNT_ID has a message stored under UIDL whose body's SHA-256 is
 * SHA256_HEX (the same message, provably), 0 if not, -1 on error.
 */
int store_message_has_copy(struct store *store, int64_t account_id, const char *uidl,
			   const char *sha256_hex);

/*
 * Moves ID from state FROM to TO (its own transaction unless the caller holds
 * one). PREPEND, if not NULL, replaces the prepended header text. Returns 1 if
 * moved, 0 if the message was not in FROM, -1 on error.
 */
int store_message_move(struct store *store, const char *id, enum message_state from,
		       enum message_state to, const char *prepend);

/* Adds one to the attempts of ID and returns the new count, or -1. */
int store_message_add_attempt(struct store *store, const char *id);

/*
 * The messages of ACCOUNT_ID in STATE, oldest first: *list_r (allocated array,
 * free with store_message_list_free) and *count_r. 0 or -1.
 */
int store_message_list(struct store *store, int64_t account_id, enum message_state state,
		       struct store_message **list_r, size_t *count_r);

/* The ids of all messages in STATE (any account), oldest first. */
int store_message_list_all(struct store *store, enum message_state state,
			   struct store_message **list_r, size_t *count_r);

void store_message_list_free(struct store_message **list, size_t count);

/* Fills *MESSAGE for ID (overwritten, not cleared first; clear it after use).
 * 1 found, 0 not found, -1 error. */
int store_message_get(struct store *store, const char *id, struct store_message *message);

/* True if a row with ID exists (for spool_remove_orphans). 1/0/-1. */
int store_message_exists(struct store *store, const char *id);

/*
 * Deletes rows in state delivered whose state changed before CUTOFF, and their
 * bodies (after the deletion commits). Must be called outside a transaction.
 * Returns how many, or -1.
 */
int store_message_expire_delivered(struct store *store, int64_t cutoff);

/* Counts of the account's messages per state into COUNTS[MESSAGE_STATE_COUNT].
 * 0 or -1. */
int store_message_count_by_state(struct store *store, int64_t account_id,
				 int64_t counts[MESSAGE_STATE_COUNT]);

#endif
