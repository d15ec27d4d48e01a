/*
 * accept.c — the writer-thread job that stores a message received over SMTP
 * (see accept.h), and its hand-over to the pipeline after the commit.
 *
 * Owns: the copies of the envelope until the job is done. Must never: call
 * DONE before the commit, or write anything in the loop's thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "popgate.h"
#include "smtp/accept.h"
#include "store/address.h"
#include "store/envelope.h"
#include "store/message.h"
#include "store/writer.h"

struct smtp_accept {
	struct popgate *pg;
	smtp_accept_done_fn *done; /* NULL once detached */
	void *ctx;
	char id[SPOOL_ID_LEN + 1];
	int64_t size;
	char *sender;
	char **recipients;
	size_t recipient_count;
	char *prepend;
	int64_t owner; /* found in the writer thread */
};

static void accept_free(struct smtp_accept *accept)
{
	free(accept->sender);
	for (size_t i = 0; i < accept->recipient_count; i++)
		free(accept->recipients[i]);
	free(accept->recipients);
	free(accept->prepend);
	free(accept);
}

/* In the writer thread: the row, its owner and its envelope, all or none. */
static int accept_work(struct store *store, void *arg)
{
	struct smtp_accept *accept = arg;

	/* U5: whose message it is. Not finding an owner is no reason to
	 * refuse it (a sender that is no user's address); an error is. */
	accept->owner = 0;
	if (accept->sender[0] != '\0' &&
	    store_address_owner(store, accept->sender, &accept->owner) < 0)
		return -1;
	if (store_message_insert_submitted(store, accept->id, accept->size, accept->prepend,
					   accept->owner) < 0)
		return -1;
	if (store_envelope_add(store, accept->id, accept->sender,
			       (const char *const *)accept->recipients,
			       accept->recipient_count) < 0)
		return -1;
	return 0;
}

/* Hands the committed message to the pipeline; if it cannot take it, the
 * message stays in processing and is submitted at the next check or start
 * (core/control.c). */
static void accept_pipeline_submit(struct smtp_accept *accept)
{
	struct pipeline_job job = {.source = PIPELINE_SOURCE_SUBMITTED};

	memcpy(job.id, accept->id, sizeof(job.id));
	job.received_at = util_now();
	snprintf(job.account, sizeof(job.account), "-");
	snprintf(job.provider_host, sizeof(job.provider_host), "-");
	job.owner.user_id = accept->owner;
	job.archive = accept->pg->archiver != NULL;
	/* The pipeline's frames carry only addresses it can check (an SMTP
	 * path may be quoted, or be no address at all, as postmaster): the
	 * filters are given those, the relay the envelope as stored. */
	if (proto_address_valid(accept->sender, strlen(accept->sender)))
		job.envelope.sender = accept->sender;
	char **recipients = xcalloc(accept->recipient_count + 1, sizeof(*recipients));
	for (size_t i = 0; i < accept->recipient_count; i++) {
		if (proto_address_valid(accept->recipients[i], strlen(accept->recipients[i])))
			recipients[job.envelope.recipient_count++] = accept->recipients[i];
	}
	job.envelope.recipients = job.envelope.recipient_count > 0 ? recipients : NULL;
	if (pipeline_submit(accept->pg->pipeline, &job) < 0)
		log_event(LOG_ERROR, "error", NULL, accept->id,
			  "cannot queue for processing; it will be processed at the next check");
	free(recipients);
}

/* In the loop, after the commit (or its failure). */
static void accept_done(int result, const char *error, void *arg)
{
	struct smtp_accept *accept = arg;

	if (result >= 0) {
		log_event(LOG_INFO, "stored", NULL, accept->id,
			  "submitted over SMTP, %lld bytes, %zu recipient(s)",
			  (long long)accept->size, accept->recipient_count);
		accept_pipeline_submit(accept);
	}
	if (accept->done != NULL)
		accept->done(result < 0 ? -1 : 0, accept->id, error, accept->ctx);
	accept_free(accept);
}

struct smtp_accept *smtp_accept_submit(struct popgate *pg, struct spool_writer *body,
				       const struct smtp_envelope *envelope,
				       smtp_accept_done_fn *done, void *ctx)
{
	struct smtp_accept *accept = xcalloc(1, sizeof(*accept));

	accept->pg = pg;
	accept->done = done;
	accept->ctx = ctx;
	memcpy(accept->id, body->id, sizeof(accept->id));
	accept->size = (int64_t)body->size;
	accept->sender = xstrdup(envelope->sender);
	accept->recipients = xcalloc(envelope->recipient_count + 1, sizeof(char *));
	for (size_t i = 0; i < envelope->recipient_count; i++)
		accept->recipients[i] = xstrdup(envelope->recipients[i]);
	accept->recipient_count = envelope->recipient_count;
	accept->prepend = xstrdup(envelope->prepend != NULL ? envelope->prepend : "");
	if (writer_submit(pg->writer, body, accept_work, accept_done, accept) < 0) {
		accept_free(accept);
		return NULL;
	}
	return accept;
}

void smtp_accept_detach(struct smtp_accept *accept)
{
	accept->done = NULL;
}
