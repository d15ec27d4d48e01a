/*
 * message.h — message rows: one per message, its queue is its `state`.
 *
 *   provider ─fetch─▶ processing ─worker─▶ delivery ─pickup, QUIT─▶ delivered ─(N days)─▶ gone
 *                          └─▶ suspect (a worker died on it twice)
 *
 * store/lifecycle.h holds the whole table of moves, including those of the
 * states still to come (quarantine, challenged, outbound, sent, bounced),
 * and is the only writer of `state`. A state changes only from the state the
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
	MESSAGE_QUARANTINE, /* held by a filter's verdict until released */
	MESSAGE_CHALLENGED, /* held until its sender answers a challenge */
	MESSAGE_OUTBOUND,   /* submitted mail waiting for its relay */
	MESSAGE_SENT,	    /* relayed to every recipient */
	MESSAGE_BOUNCED,    /* refused for good by a recipient's server */
	MESSAGE_STATE_COUNT
};

/* Where a message came from (the `source` column). */
enum message_source {
	MESSAGE_SOURCE_FETCHED,	  /* from a provider over POP3 */
	MESSAGE_SOURCE_SUBMITTED, /* over SMTP: it has no provider account */
	MESSAGE_SOURCE_IMPORTED,
	MESSAGE_SOURCE_COUNT
};

/* "processing", "delivery", …; and back (-1 for an unknown name). */
const char *store_message_state_name(enum message_state state);
int store_message_state_parse(const char *name);

/* "fetched", "submitted", "imported". */
const char *store_message_source_name(enum message_source source);

/*
 * Reads the id (column ID_COL) and state (STATE_COL) of STMT's message row
 * into ID_OUT and *STATE_R. For every reader of message rows. 0; 1 for a row
 * in a state this program does not know (a newer one wrote it), which the
 * reader skips: the warning is logged here, and one such row must not make
 * every listing fail; -1 (logged) for a row whose id is no spool id, refused
 * because ids become paths.
 */
int store_message_row_key(sqlite3_stmt *stmt, int id_col, int state_col,
			  char id_out[SPOOL_ID_LEN + 1], enum message_state *state_r);

struct store_message {
	char id[SPOOL_ID_LEN + 1];
	enum message_state state;
	int64_t account_id;	/* 0: none (mail submitted over SMTP) */
	int64_t body_size;	/* bytes of the spool file */
	int64_t prepend_size;	/* bytes of PREPEND */
	char *prepend;		/* header lines added in front when served ("" if none);
				   NULL in a listing (store_message_read_prepend) */
	int64_t subject_tag_size; /* bytes the subject tag inserts when served (0: none) */
	int attempts;		/* worker deaths on this message */
	int64_t received_at;
};

void store_message_clear(struct store_message *message);

/*
 * Inserts a new message, fetched, in the state store/lifecycle.h gives new
 * fetched mail (processing), and records UIDL (may be NULL)
 * as stored for ACCOUNT_ID in the same statement group. The caller holds the
 * transaction (store_begin/commit) so the row and the UIDL commit together;
 * called outside one, it makes its own. ID must be spool_id_valid. 0 or -1
 * (neither row written).
 */
int store_message_insert(struct store *store, const char *id, int64_t account_id,
			 const char *uidl, int64_t body_size, const char *sha256_hex);

/*
 * Inserts a new message submitted over SMTP: no account, source submitted,
 * in the state store/lifecycle.h gives it (processing), with PREPEND (its
 * Received header; NULL for none) and OWNER_USER_ID (the user owning its
 * sender address, U5; 0 for none). In the caller's transaction (the writer
 * thread's). 0 or -1 (logged).
 */
int store_message_insert_submitted(struct store *store, const char *id, int64_t body_size,
				   const char *prepend, int64_t owner_user_id);

/*
 * 1 if ACCOUNT_ID has a message stored under UIDL whose body's SHA-256 is
 * SHA256_HEX (the same message, provably), 0 if not, -1 on error.
 */
int store_message_has_copy(struct store *store, int64_t account_id, const char *uidl,
			   const char *sha256_hex);

/*
 * Moves ID from state FROM to TO (its own transaction unless the caller holds
 * one): store_lifecycle_move, which checks the move against the table and
 * logs it. PREPEND, if not NULL, replaces the prepended header text. Returns
 * 1 if moved, 0 if the message was not in FROM, -1 on error or for a move the
 * table refuses (logged).
 */
int store_message_move(struct store *store, const char *id, enum message_state from,
		       enum message_state to, const char *prepend);

/*
 * Records the verdict the pipeline combined for ID: its SCORE, its ACTION
 * ("deliver", "tag", "quarantine", …) and the REASONS (one text, NULL for
 * none), replacing an earlier verdict. It moves nothing: the state is
 * store_lifecycle_move's. 0, or -1 for an error or no such message (logged).
 */
int store_message_set_verdict(struct store *store, const char *id, double score,
			      const char *action, const char *reasons);

/* Adds one to the attempts of ID and returns the new count, or -1. */
int store_message_add_attempt(struct store *store, const char *id);

/*
 * The messages of ACCOUNT_ID in STATE, oldest first: *list_r (allocated array,
 * free with store_message_list_free) and *count_r. 0 or -1. A listing gives
 * each message's prepend_size, not its text (PREPEND NULL): a POP3 session
 * holds its listing while it is open, and reads the text only to send it.
 */
int store_message_list(struct store *store, int64_t account_id, enum message_state state,
		       struct store_message **list_r, size_t *count_r);

/* The ids of all messages in STATE (any account), oldest first. */
int store_message_list_all(struct store *store, enum message_state state,
			   struct store_message **list_r, size_t *count_r);

void store_message_list_free(struct store_message **list, size_t count);

/* Fills *MESSAGE for ID (overwritten, not cleared first; clear it after use).
 * 1 found, 0 not found (or in a state this program does not know, warned),
 * -1 error. */
int store_message_get(struct store *store, const char *id, struct store_message *message);

/*
 * Records that ID is served with TAG (its subject tag, pipeline/subject_tag.h;
 * "" for none) inserted at byte AT of its body. In the caller's transaction,
 * after store_message_set_verdict (which clears an earlier tag). 0, or -1 for
 * an error or no such message (logged).
 */
int store_message_set_subject_tag(struct store *store, const char *id, int64_t at, const char *tag);

/* The header lines prepended to ID when served, into *PREPEND_R (allocated;
 * "" if none). 1 found, 0 not found (*PREPEND_R NULL), -1 error. */
int store_message_read_prepend(struct store *store, const char *id, char **prepend_r);

/* What a message is served with beside its body file. */
struct store_served {
	char *prepend;	   /* header lines in front of the body ("" if none) */
	char *subject_tag; /* bytes inserted at SUBJECT_TAG_AT of the body; NULL: none */
	int64_t subject_tag_at;
};

void store_served_clear(struct store_served *served);

/* ID's served additions into *SERVED (clear it after use). 1 found, 0 not
 * found (*SERVED zeroed), -1 error. */
int store_message_read_served(struct store *store, const char *id, struct store_served *served);

/* Calls TAKE with the id and served additions of each message of ACCOUNT_ID
 * in STATE, oldest first: a POP3 session's first RETR or TOP reads them for
 * its whole listing in one query. TAKE may take SERVED's strings (setting
 * them NULL). 0 or -1. */
int store_message_each_served(struct store *store, int64_t account_id, enum message_state state,
			      void (*take)(void *ctx, const char *id, struct store_served *served),
			      void *ctx);

/* True if a row with ID exists (for spool_remove_orphans). 1/0/-1. */
int store_message_exists(struct store *store, const char *id);

/*
 * Deletes rows in state delivered whose state changed before CUTOFF, and their
 * bodies (after the deletion commits). Must be called outside a transaction.
 * Returns how many, or -1.
 */
int store_message_expire_delivered(struct store *store, int64_t cutoff);

/*
 * Deletes rows in state delivered whose state changed before CUTOFF, in the
 * caller's transaction if there is one (the writer thread's), and hands back
 * the ids of the bodies to remove once that commits (*IDS_R, *COUNT_R, freed
 * by the caller). Returns how many rows, or -1 (nothing handed back).
 */
int store_message_expire_rows(struct store *store, int64_t cutoff, char (**ids_r)[SPOOL_ID_LEN + 1],
			      size_t *count_r);

/* The same for rows in state quarantine ([spam] quarantine_days). */
int store_message_expire_quarantine_rows(struct store *store, int64_t cutoff,
					 char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r);

/* The same for rows in state challenged (CISS hold-days, hold-expiry delete). */
int store_message_expire_challenged_rows(struct store *store, int64_t cutoff,
					 char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r);

/* The ids of the messages in STATE whose state changed before CUTOFF, oldest
 * first: *IDS_R (allocated) and *COUNT_R. 0 or -1 (logged). */
int store_message_ids_before(struct store *store, enum message_state state, int64_t cutoff,
			     char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r);

/* Adds LINE (one explanation line, "NAME<TAB>SCORE<TAB>WEIGHT<TAB>REASON\n")
 * to the verdict explanation of ID, and makes its recorded action ACTION.
 * 0, or -1 for an error or no such message (logged). */
int store_message_add_reason(struct store *store, const char *id, const char *action,
			     const char *line);

/* Removes the bodies IDS (after their rows' deletion committed); a failure is
 * logged, and the start-up sweep removes what is left. */
void store_message_remove_bodies(const char *data_dir, const char (*ids)[SPOOL_ID_LEN + 1],
				 size_t count);

/* Counts of the account's messages per state into COUNTS[MESSAGE_STATE_COUNT].
 * 0 or -1. */
int store_message_count_by_state(struct store *store, int64_t account_id,
				 int64_t counts[MESSAGE_STATE_COUNT]);

#endif
