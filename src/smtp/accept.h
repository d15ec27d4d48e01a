/*
 * accept.h — a message received over SMTP into the store, durable before
 * the client is told (issue 9, item 3): one writer-thread job (store/writer.h)
 * that fsyncs the spool body, renames it into place, and in the group's
 * transaction inserts the message row (source submitted, no account, its
 * Received header as prepend, its owner: the user owning the sender
 * address, U5) and its envelope (sender, each recipient pending). Only after
 * the commit is DONE called, and only then may the session say 250; then
 * the message goes to the pipeline, which moves it to outbound
 * (pipeline/route.c).
 *
 * Many sessions' messages share one fsync of the bucket folder and one
 * commit: the writer thread groups what is queued.
 */
#ifndef POPGATE_SMTP_ACCEPT_H
#define POPGATE_SMTP_ACCEPT_H

#include <stddef.h>
#include <stdint.h>

#include "store/spool.h"

struct popgate;
struct spool_writer;
struct smtp_accept;

/*
 * Called in the loop once the message is committed (RESULT 0, ID its id) or
 * not (RESULT -1, ERROR says why; nothing was stored). Not called if the
 * accept was detached first.
 */
typedef void smtp_accept_done_fn(int result, const char *id, const char *error, void *ctx);

/* What a message is accepted with. The strings are copied. */
struct smtp_envelope {
	const char *sender; /* "" for the null sender */
	const char *const *recipients;
	size_t recipient_count;
	const char *prepend; /* the Received header, with its CR LF */
};

/*
 * Queues BODY (taken, in every case) with ENVELOPE for the writer thread.
 * The accept in progress, or NULL if the writer refused it (overloaded or
 * stopping: BODY removed, DONE never called).
 */
struct smtp_accept *smtp_accept_submit(struct popgate *pg, struct spool_writer *body,
				       const struct smtp_envelope *envelope,
				       smtp_accept_done_fn *done, void *ctx);

/* The session went away: the commit goes on, DONE is not called (the
 * message, if committed, is relayed all the same: the client will send it
 * again, a duplicate rather than a loss). */
void smtp_accept_detach(struct smtp_accept *accept);

#endif
