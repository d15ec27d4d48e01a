/*
 * envelope.h — the envelope of a message to relay: its sender and each of
 * its recipients with a status of its own, the attempts made and when the
 * next one is due (a relay delivers to each recipient's server separately,
 * and one refusing or being down must not hold back the others).
 *
 * Rows go with their message (ON DELETE CASCADE).
 */
#ifndef POPGATE_STORE_ENVELOPE_H
#define POPGATE_STORE_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "store/spool.h"

enum envelope_status {
	ENVELOPE_PENDING, /* to be sent, at next_attempt_at */
	ENVELOPE_SENT,	  /* accepted by the recipient's server */
	ENVELOPE_FAILED,  /* refused for good */
	ENVELOPE_STATUS_COUNT
};

/* "pending", "sent", "failed"; and back (-1 for an unknown name). */
const char *store_envelope_status_name(enum envelope_status status);
int store_envelope_status_parse(const char *name);

/* One recipient of a message's envelope. */
struct store_envelope_recipient {
	char message_id[SPOOL_ID_LEN + 1];
	char *address;
	enum envelope_status status;
	int attempts;
	int64_t next_attempt_at; /* Unix seconds */
};

/*
 * Records the envelope of message MESSAGE_ID: SENDER ("" for the null sender
 * <>) and the COUNT addresses of RECIPIENTS, each pending and due at once. A
 * recipient named twice is recorded once. All or nothing (its own
 * transaction unless the caller holds one). 0, or -1 (logged; also for a
 * message that does not exist or already has an envelope).
 */
int store_envelope_add(struct store *store, const char *message_id, const char *sender,
		       const char *const *recipients, size_t count);

/*
 * The sender of MESSAGE_ID's envelope into *SENDER_R (allocated, the
 * caller's to free). 1 found, 0 no envelope, -1 error.
 */
int store_envelope_sender(struct store *store, const char *message_id, char **sender_r);

/*
 * The recipient addresses of MESSAGE_ID's envelope, in address order, into
 * *ADDRESSES_R (free with store_envelope_recipients_free) and *COUNT_R (0
 * with no envelope). 0 or -1.
 */
int store_envelope_recipients(struct store *store, const char *message_id, char ***addresses_r,
			      size_t *count_r);
void store_envelope_recipients_free(char ***addresses, size_t count);

/*
 * The pending recipients due at NOW (next_attempt_at <= NOW), the longest
 * due first, at most LIMIT: *LIST_R (free with store_envelope_list_free) and
 * *COUNT_R. 0 or -1.
 */
int store_envelope_list_due(struct store *store, int64_t now, size_t limit,
			    struct store_envelope_recipient **list_r, size_t *count_r);

void store_envelope_list_free(struct store_envelope_recipient **list, size_t count);

/*
 * Sets recipient ADDRESS of MESSAGE_ID's envelope to STATUS, ATTEMPTS and
 * NEXT_ATTEMPT_AT. 1 set, 0 no such recipient, -1 error.
 */
int store_envelope_set_recipient(struct store *store, const char *message_id, const char *address,
				 enum envelope_status status, int attempts,
				 int64_t next_attempt_at);

#endif
