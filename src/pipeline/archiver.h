/*
 * archiver.h — the daemon's archiver (MailDepot, SPEC A1, issue 11): every
 * judged message is archived in DATA/depot (depot/depot.h) before it leaves
 * processing, by a thread of its own, so the loop never waits on the
 * depot's compression, fsyncs or commits.
 *
 * The loop submits a request (the message's id, direction, indexed fields
 * and owners); the thread takes every request queued (at most [depot]
 * batch, and ARCHIVER_BATCH_BYTES of bodies), reads each body from the
 * spool, and archives them with one depot_ingest under the source
 * "popgate:<spool id>" (idempotent: a message archived before a crash is
 * not archived again; its first entry is returned). Only after the batch
 * committed is each request's DONE called, in the loop: the message may go
 * on. A request that fails (the depot folder unwritable or replaced, the
 * disk full, a body unreadable) is held, logged as event "archive_failed",
 * and tried again after [depot] retry seconds, doubling after each failure
 * up to ARCHIVER_RETRY_GROWTH_MAX times that; it is never skipped, so its
 * message stays in processing (popgatectl queue list shows it there) until
 * it is archived. Every [depot] checkpoint_interval seconds in which new
 * entries were archived, and at a clean stop, the thread signs the chain's
 * head (depot_checkpoint).
 */
#ifndef POPGATE_PIPELINE_ARCHIVER_H
#define POPGATE_PIPELINE_ARCHIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/config.h"
#include "depot/depot.h"
#include "store/spool.h"

/* Bytes of bodies one batch reads at most (a larger body goes alone). */
#define ARCHIVER_BATCH_BYTES (64LL * 1024 * 1024)
/* The retry wait doubles at most this many times ([depot] retry << 6). */
#define ARCHIVER_RETRY_GROWTH_MAX 6
/* The depot folder, relative to the data folder. */
#define ARCHIVER_DEPOT_DIR "depot"

struct archiver;

/* One message to archive. Everything in it belongs to the request. */
struct archiver_request {
	char id[SPOOL_ID_LEN + 1];
	char account[512]; /* for the log */
	int64_t size;	   /* bytes of its spool body (bounds a batch) */
	enum depot_direction direction;
	struct depot_fields fields; /* what the worker extracted, or empty */
	struct depot_owner *owners; /* each address and user, lowercased, distinct */
	size_t owner_count;
};

/* Deep copies of FROM into *TO (NULL FROM: empty fields). Freed with
 * depot_fields_free. */
void archiver_fields_copy(struct depot_fields *to, const struct depot_fields *from);

/* Adds ADDRESS (lowercased) and USER (NULL: none) to REQUEST's owners,
 * unless that pair is there already; a NULL or empty ADDRESS is ignored. */
void archiver_request_add_owner(struct archiver_request *request, const char *address,
				const char *user);

void archiver_request_free(struct archiver_request *request);

/* In the loop, once REQUEST's message is archived (committed): SEQ is its
 * chain entry. ARG is the caller's again. */
typedef void archiver_done_fn(int64_t seq, void *arg);
/* In the loop, from archiver_free only: the request was not archived (or its
 * DONE not called) before the stop; ARG is the caller's to free. */
typedef void archiver_drop_fn(void *arg);

/*
 * Starts the archiver for DATA_DIR's depot (DATA_DIR/ARCHIVER_DEPOT_DIR, made
 * on the first batch, and opened again after a failure, so a folder that
 * cannot be written at start-up only holds messages). BATCH and
 * CHECKPOINT_INTERVAL ([depot]) are fixed from now on; the retry wait is
 * read from *CFG at each failure (a SIGHUP changes it). NULL with ERR.
 */
struct archiver *archiver_new(struct event_base *base, const char *data_dir, int batch,
			      int checkpoint_interval, struct popgate_config *const *cfg, char *err,
			      size_t errlen);

/* Queues REQUEST (taken) for the thread; DONE or DROP follows, in the loop,
 * never from inside this call. */
void archiver_submit(struct archiver *archiver, struct archiver_request *request,
		     archiver_done_fn *done, archiver_drop_fn *drop, void *arg);

/* True while message ID has a request in the archiver (queued, being
 * archived, or held after a failure): its verdict is being acted on. */
bool archiver_pending(const struct archiver *archiver, const char *id);

/* Requests held after a failure, waiting for their retry. */
size_t archiver_held(const struct archiver *archiver);

/*
 * Lets the thread finish the batch it is archiving, signs the chain's head
 * if it has unsigned entries (checkpoint_interval not 0), stops it, and
 * calls DROP for every request not finished here: their messages stay in
 * processing and are judged and archived again at the next start (the
 * source finds any entry made already). NULL is fine; sets *ARCHIVE to NULL.
 */
void archiver_free(struct archiver **archiver);

#endif
