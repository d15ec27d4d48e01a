/*
 * fingerprint.h — the fuzzy fingerprints the main process has seen
 * (filters/fuzzy.h), so repeated campaigns are recognised across messages.
 *
 * A fingerprint row keeps its MinHash values, when it was first and last
 * seen, how many messages it had and how many distinct senders and owners
 * (users) those came from, and whether a user reported it as ham. Its bands
 * (FUZZY_BANDS keys) find near fingerprints; its sightings (one per message:
 * when, a hash of the sender, the owner) count within a window. A message
 * whose fingerprint is near a stored one is a sighting of that one; else it
 * starts a new fingerprint. Rows not seen within the window expire
 * (store_fingerprint_expire, from the housekeeping).
 */
#ifndef POPGATE_STORE_FINGERPRINT_H
#define POPGATE_STORE_FINGERPRINT_H

#include <stdbool.h>
#include <stdint.h>

#include "filters/filter.h"
#include "store/db.h"

/* What the sightings of one fingerprint within a window say. */
struct fingerprint_stats {
	int64_t id;	    /* the stored fingerprint near the one asked about; 0: none */
	bool ham;	    /* reported as ham */
	int64_t messages;   /* sightings within the window */
	int64_t senders;    /* distinct sender hashes among them */
	int64_t owners;	    /* distinct owners among them (0, none, counts as one) */
	int64_t first_seen; /* the earliest of them; 0 when there is none */
	bool sender_seen;   /* the sender asked about is among them */
	bool owner_seen;    /* the owner asked about is among them */
};

/*
 * Finds the stored fingerprint nearest FINGERPRINT (at least FUZZY_MATCH_MIN
 * equal values) and fills *STATS from its sightings at or after SINCE,
 * leaving out those of message EXCLUDE_ID (NULL: none; so a message judged
 * again is not counted twice), and saying whether SENDER_HASH and OWNER_ID
 * are among them. No near fingerprint: *STATS zeroed. 0 or -1 (logged).
 */
int store_fingerprint_stats(struct store *store, const struct filter_fingerprint *fingerprint,
			    int64_t since, const char *exclude_id, int64_t sender_hash,
			    int64_t owner_id, struct fingerprint_stats *stats);

/*
 * Records that message MESSAGE_ID (from SENDER_HASH, owned by OWNER_ID, 0:
 * none) had FINGERPRINT at NOW: a sighting of the nearest stored
 * fingerprint, or of a new one. A message recorded already is not counted
 * again. The fingerprint's last_seen, messages, senders and owners follow.
 * *ID_R (may be NULL): the fingerprint's id. 0 or -1 (logged).
 */
int store_fingerprint_record(struct store *store, const struct filter_fingerprint *fingerprint,
			     const char *message_id, int64_t sender_hash, int64_t owner_id,
			     int64_t now, int64_t *id_r);

/* Marks the fingerprint of message MESSAGE_ID as ham (HAM true: it scores no
 * more) or not. The number of fingerprints changed (0: the message had
 * none, or it expired), or -1 (logged). */
int store_fingerprint_set_ham(struct store *store, const char *message_id, bool ham);

/* Deletes the sightings before CUTOFF and the fingerprints last seen before
 * it (with their bands). The number of fingerprints deleted, or -1. */
int store_fingerprint_expire(struct store *store, int64_t cutoff);

/* A stored fingerprint, for tests and popgatectl. */
struct fingerprint_row {
	int64_t id;
	int64_t first_seen;
	int64_t last_seen;
	int64_t messages;
	int64_t senders;
	int64_t owners;
	bool ham;
};

/* The row of fingerprint ID: 1, 0 when there is none, -1 (logged). */
int store_fingerprint_get(struct store *store, int64_t id, struct fingerprint_row *row);

#endif
