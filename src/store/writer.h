/*
 * writer.h — the store's writer thread: spool fsyncs and commits off the
 * event loop, many per transaction (group commit).
 *
 * The loop queues a job: an optional spool body to make durable and a WORK
 * function that writes rows. The thread takes every job queued (up to a
 * batch), fsyncs their bodies and renames them into place, fsyncs each bucket
 * folder once, then runs each WORK in a savepoint of ONE transaction on its
 * own connection (WAL: the loop's connection goes on reading meanwhile) and
 * commits it. Only then is each job's DONE called, in the loop's thread. So
 * the loop never waits on a fsync, a commit or SQLite's busy timeout, and a
 * DONE that acknowledges something (a DELE, a +OK) only ever follows a
 * commit: on SIGKILL nothing committed is lost and nothing uncommitted was
 * acknowledged.
 */
#ifndef POPGATE_STORE_WRITER_H
#define POPGATE_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "store/db.h"
#include "store/spool.h"

struct writer;

/*
 * In the writer thread, inside the group's transaction and a savepoint of
 * its own: writes ARG's rows through STORE (the thread's connection; the
 * store functions log their errors). Touches only what ARG owns. Returns a
 * result >= 0 (handed to DONE), or -1: this job's writes are undone, the
 * others still commit.
 */
typedef int writer_work_fn(struct store *store, void *arg);

/*
 * In the loop's thread, once the job's transaction committed (RESULT is
 * WORK's) or failed (RESULT -1, ERROR says why; nothing of the job was
 * written and its body is removed). Owns ARG from here: frees it.
 */
typedef void writer_done_fn(int result, const char *error, void *arg);

/* Queued jobs at most; writer_submit refuses more. */
#define WRITER_QUEUE_MAX 8192

/*
 * Opens its own connection to DATA_DIR's store (already migrated by the
 * loop's store_open) and starts the thread; completions arrive through an
 * event on BASE. NULL with a message in ERR.
 */
struct writer *writer_new(struct event_base *base, const char *data_dir, char *err,
			  size_t errlen);

/*
 * Queues a job. BODY (may be NULL; taken in every case) is a spool body
 * written but not committed: it is fsynced and renamed into place before
 * WORK runs, and WORK runs only if that worked. -1 if the queue is full or
 * the writer stops (BODY removed, DONE never called: the caller still owns
 * ARG); else 0 and DONE follows, in the loop, never from inside this call.
 */
int writer_submit(struct writer *writer, struct spool_writer *body, writer_work_fn *work,
		  writer_done_fn *done, void *arg);

/* Transactions committed so far (the group commit shows as fewer of these
 * than jobs). Thread-safe. */
uint64_t writer_transactions(struct writer *writer);

/*
 * Stops taking jobs, lets the thread run and commit every job queued, stops
 * it, and calls the DONE of every finished job here, in the caller's thread.
 * NULL is fine; sets *WRITER to NULL.
 */
void writer_free(struct writer **writer);

#endif
