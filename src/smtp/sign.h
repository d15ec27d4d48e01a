/*
 * sign.h — the DKIM signature of a message on its way to the outbound
 * queue: once per message, between its verdict and its move to outbound, so
 * every delivery attempt sends the same signed bytes.
 *
 * The keys are read on the loop (a few rows of the store); the signing, which
 * reads the body file and does the public-key arithmetic, runs on an offload
 * thread (core/offload.h). With no DKIM key in the store nothing leaves the
 * loop.
 */
#ifndef POPGATE_SMTP_SIGN_H
#define POPGATE_SMTP_SIGN_H

#include "popgate.h"

/*
 * In the loop: RESULT 1 signed, *PREPEND the message's new prepend (the
 * DKIM-Signature field, then the header lines it had; the callee's to free);
 * 0 not signed (no key for its From domain, or none at all), PREPEND NULL;
 * -1 not now (ERROR says why: the body or the store could not be read, the
 * domain's key does not open, signing failed, popgate stops): the message
 * must not go out unsigned, so it stays where it is and is tried again.
 */
typedef void sign_done_fn(int result, char *prepend, const char *error, void *ctx);

/*
 * Signs message ID with the key of its From: domain, if the store has one.
 * 1: a signing job runs, DONE follows in the loop (never from inside this
 * call); 0: the store holds no DKIM key at all, the message goes as it is
 * (DONE is not called); -1: the keys or the message cannot be read now
 * (logged; DONE is not called; try again later).
 */
int sign_outbound(struct popgate *pg, const char *id, sign_done_fn *done, void *ctx);

/* At shutdown, after offload_free: the signing jobs it dropped end with
 * DONE(-1), so their owners free what they hold. */
void sign_outbound_drop_pending(void);

#endif
