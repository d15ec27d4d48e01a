/*
 * outbound.h — the results of the relay's deliveries: each attempt recorded
 * per recipient (status, attempts, next attempt, last attempt, the remote
 * server's last reply), the correspondents learnt from a delivery, and the
 * end of a message's relay once every recipient is final: outbound → sent
 * (all sent) or → bounced (any failed), the bounce with a DSN to the sender
 * (smtp/dsn.h) queued as a new submitted message in the same transaction.
 * And what `popgatectl queue` does to outbound mail.
 *
 * All writes are meant for the writer thread (store/writer.h) in the daemon,
 * or for popgatectl; each function is atomic on its own (store_tx_begin) and
 * joins the caller's transaction when there is one.
 *
 * Must never: change a recipient that is final (sent or failed): a late
 * result of a delivery the administrator bounced meanwhile is dropped, and
 * a recipient once sent is never sent again.
 */
#ifndef POPGATE_STORE_OUTBOUND_H
#define POPGATE_STORE_OUTBOUND_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "store/envelope.h"
#include "store/spool.h"

/* The reply recorded for recipients the administrator bounced. */
#define OUTBOUND_BOUNCED_REPLY "bounced by the administrator"

/* One recipient's attempt. */
struct outbound_attempt {
	const char *address;
	enum envelope_status status; /* PENDING: retry at NEXT_ATTEMPT_AT */
	int64_t next_attempt_at;
	const char *reply; /* the remote server's reply ("250 2.0.0 ok"), or why none */
};

/*
 * Records COUNT attempts on MESSAGE_ID's recipients made at NOW (attempts
 * one more; only recipients still pending change), and for each one sent
 * adds it to the correspondents of the message's owner. 0 or -1.
 */
int store_outbound_record(struct store *store, const char *message_id,
			  const struct outbound_attempt *attempts, size_t count, int64_t now);

/*
 * Ends MESSAGE_ID's relay if every recipient is final: moves it outbound →
 * sent, or → bounced when any failed, then (for a sender that is not <>,
 * once: envelope.dsn_sent) writes a DSN from REPORTING_MTA to the sender
 * into the spool (durably) and queues it as a submitted message, its id in
 * DSN_ID ("" if none). 0 nothing to do (a recipient pending, or the message
 * not in outbound), 1 sent, 2 bounced, -1 error (the DSN's body, if
 * written, is an orphan that the start-up sweep removes).
 */
int store_outbound_finish(struct store *store, const char *message_id, const char *reporting_mta,
			  int64_t now, char dsn_id[SPOOL_ID_LEN + 1]);

/* Makes the pending recipients of outbound message MESSAGE_ID (NULL: of
 * every outbound message) due at NOW. How many, or -1. */
int store_outbound_retry(struct store *store, const char *message_id, int64_t now);

/*
 * Fails the pending recipients of outbound message MESSAGE_ID (reply
 * OUTBOUND_BOUNCED_REPLY), for popgatectl. The daemon's relay ends the
 * message's relay at its next run (store_outbound_unfinished): the DSN is
 * written by the daemon, whose user owns the spool. How many recipients
 * failed (0: none was pending), or -1.
 */
int store_outbound_bounce(struct store *store, const char *message_id, int64_t now);

/* Up to LIMIT messages in outbound whose recipients are all final (their
 * relay still to end: a bounce by popgatectl): *IDS_R (allocated), *COUNT_R.
 * 0 or -1. */
int store_outbound_unfinished(struct store *store, size_t limit, char (**ids_r)[SPOOL_ID_LEN + 1],
			      size_t *count_r);

struct outbound_recipient {
	char *address;
	enum envelope_status status;
	int attempts;
	int64_t next_attempt_at;
	int64_t last_attempt_at;
	char *last_reply;
};

struct outbound_message {
	char id[SPOOL_ID_LEN + 1];
	char *sender; /* "" for <> */
	int64_t received_at;
	int64_t body_size;
	int64_t owner_user_id; /* 0: none */
	struct outbound_recipient *recipients;
	size_t recipient_count;
};

/* The messages in outbound, oldest first, each with its recipients (for
 * `popgatectl queue outbound`). ID NULL: all; else only that one. 0/-1. */
int store_outbound_list(struct store *store, const char *id, struct outbound_message **list_r,
			size_t *count_r);
void store_outbound_list_free(struct outbound_message **list, size_t count);

/* One pending recipient due for the relay, with what it needs of its message. */
struct outbound_due {
	char message_id[SPOOL_ID_LEN + 1];
	char *address;
	int attempts;
	char *last_reply;
	char *sender; /* "" for <> */
	int64_t received_at;
	int64_t body_size;
};

/*
 * The pending recipients due at NOW (next_attempt_at <= NOW) of messages in
 * outbound (a message still being filtered has its envelope too, and waits),
 * grouped by message, at most LIMIT: *LIST_R (store_outbound_due_free),
 * *COUNT_R. 0 or -1.
 */
int store_outbound_due(struct store *store, int64_t now, size_t limit, struct outbound_due **list_r,
		       size_t *count_r);
void store_outbound_due_free(struct outbound_due **list, size_t count);

/* The earliest next attempt after NOW of a pending recipient of an outbound
 * message, into *NEXT_R (0: none). 0 or -1. */
int store_outbound_next_due(struct store *store, int64_t now, int64_t *next_r);

#endif
