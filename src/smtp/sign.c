/*
 * sign.c — DKIM-signing a message before it enters the outbound queue (what
 * and why in sign.h): the keys and the message's prepend are read on the
 * loop, the signature is made on an offload thread, the new prepend handed
 * back on the loop.
 *
 * Owns: the signing jobs, from sign_outbound until their DONE (the list of
 * those under way, so a stop that drops them still ends each one).
 * Must never: read the body or sign on the loop; let a message whose
 * domain has a key go on unsigned (an error is -1, never "not signed"); log
 * a key or message bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "smtp/dkim.h"
#include "smtp/sign.h"
#include "store/message.h"
#include "store/spool.h"

struct sign_job {
	LIST_ENTRY(sign_job) link;
	char id[SPOOL_ID_LEN + 1];
	struct dkim_keyring *ring;
	char *prepend; /* the message's prepend now; may be NULL */
	int body_fd;
	/* Set by the thread. */
	int result;
	char *header;
	char error[256];
	sign_done_fn *done;
	void *ctx;
};

/* The jobs handed to the offload threads and not yet ended (loop only). */
static LIST_HEAD(, sign_job) sign_pending = LIST_HEAD_INITIALIZER(sign_pending);

static void sign_job_free(struct sign_job *job)
{
	dkim_keyring_free(&job->ring);
	free(job->prepend);
	free(job->header);
	if (job->body_fd >= 0)
		close(job->body_fd);
	free(job);
}

/* On an offload thread: reads only what the job owns. */
static void sign_work(void *arg)
{
	struct sign_job *job = arg;

	job->result = dkim_keyring_sign(job->ring, job->prepend, job->body_fd, &job->header,
					job->error, sizeof(job->error));
}

/* Ends JOB: DONE gets the new prepend when it was signed. */
static void sign_end(struct sign_job *job)
{
	char *prepend = NULL;

	LIST_REMOVE(job, link);
	if (job->result == 1)
		prepend = xasprintf("%s%s", job->header, job->prepend != NULL ? job->prepend : "");
	job->done(job->result, prepend, job->result < 0 ? job->error : NULL, job->ctx);
	sign_job_free(job);
}

static void sign_done(void *arg)
{
	sign_end(arg);
}

int sign_outbound(struct popgate *pg, const char *id, sign_done_fn *done, void *ctx)
{
	struct sign_job *job = xcalloc(1, sizeof(*job));
	char *path;

	job->body_fd = -1;
	if (dkim_keyring_load(pg->store, &pg->key, &job->ring) < 0)
		goto fail;
	if (dkim_keyring_count(job->ring) == 0) {
		sign_job_free(job);
		return 0;
	}
	if (store_message_read_prepend(pg->store, id, &job->prepend) < 0)
		goto fail;
	path = spool_path(pg->store->data_dir, id);
	job->body_fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (job->body_fd < 0) {
		log_event(LOG_ERROR, "error", NULL, id, "cannot open the body to sign it: %s",
			  strerror(errno));
		goto fail;
	}
	snprintf(job->id, sizeof(job->id), "%s", id);
	job->done = done;
	job->ctx = ctx;
	LIST_INSERT_HEAD(&sign_pending, job, link);
	offload_run(pg->offload, sign_work, sign_done, job);
	return 1;
fail:
	sign_job_free(job);
	return -1;
}

void sign_outbound_drop_pending(void)
{
	while (!LIST_EMPTY(&sign_pending)) {
		struct sign_job *job = LIST_FIRST(&sign_pending);

		job->result = -1;
		snprintf(job->error, sizeof(job->error), "popgate is stopping");
		sign_end(job);
	}
}
