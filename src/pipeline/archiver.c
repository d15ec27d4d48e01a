/*
 * archiver.c — the archiver behind archiver.h: a thread with one depot
 * connection that archives the queued requests in batches, and, in the
 * loop, the index of pending requests and the held ones' retry timers.
 *
 * Owns: its thread and the depot it opened (used by the thread only), the
 * queue of requests and the list of finished ones (under a mutex; the
 * thread wakes the loop through an eventfd, as store/writer.c does), each
 * request's retry timer and the id index (loop only).
 * Must never: call into libevent from the thread, call a DONE before the
 * batch holding its message committed, skip a request that failed (it is
 * held and retried, its message stays in processing), or log a message's
 * bytes or text.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/archiver.h"

/* Buckets of the id index; ids are random hex, so any few digits spread well. */
#define ARCHIVER_ID_BUCKETS 1024

struct archiver_job {
	struct archiver *archiver;
	struct archiver_request *request;
	archiver_done_fn *done;
	archiver_drop_fn *drop;
	void *arg;
	/* Set by the thread: the entry, or (-1) why it failed. */
	int64_t seq;
	char error[256];
	unsigned failures;
	struct event *retry_timer; /* armed while held */
	STAILQ_ENTRY(archiver_job) queue_link;
	LIST_ENTRY(archiver_job) id_link;
};

STAILQ_HEAD(archiver_job_list, archiver_job);
LIST_HEAD(archiver_bucket, archiver_job);

struct archiver {
	struct event_base *base;
	struct popgate_config *const *cfg;
	char *data_dir;
	char *depot_dir;
	int batch;
	int checkpoint_interval;
	/* Under LOCK: */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct archiver_job_list queued;
	struct archiver_job_list finished;
	bool stopping;
	/* The thread's own: */
	bool thread_started;
	pthread_t thread;
	struct depot *depot;
	dev_t depot_dev; /* the folder DEPOT was opened in */
	ino_t depot_ino;
	/* The newest entry archived, and the chain's head at the last
	 * checkpoint: entries are unsigned while the first is greater (a
	 * message archived again returns an older entry). */
	int64_t newest_seq;
	int64_t signed_seq;
	int64_t checkpoint_at; /* when the last one was made (or the start) */
	/* The loop's: */
	int notify_fd;
	struct event *notify_event;
	struct archiver_bucket buckets[ARCHIVER_ID_BUCKETS];
	size_t held;
};

void archiver_fields_copy(struct depot_fields *to, const struct depot_fields *from)
{
	memset(to, 0, sizeof(*to));
	if (from == NULL)
		return;
	to->sender = from->sender != NULL ? xstrdup(from->sender) : NULL;
	to->recipients = xcalloc(from->recipient_count + 1, sizeof(*to->recipients));
	for (size_t i = 0; i < from->recipient_count; i++)
		to->recipients[i] = xstrdup(from->recipients[i] != NULL ? from->recipients[i] : "");
	to->recipient_count = from->recipient_count;
	to->subject = from->subject != NULL ? xstrdup(from->subject) : NULL;
	to->date = from->date;
	to->message_id = from->message_id != NULL ? xstrdup(from->message_id) : NULL;
	to->attachments = xcalloc(from->attachment_count + 1, sizeof(*to->attachments));
	for (size_t i = 0; i < from->attachment_count; i++)
		to->attachments[i] =
		    xstrdup(from->attachments[i] != NULL ? from->attachments[i] : "");
	to->attachment_count = from->attachment_count;
	to->headers = from->headers != NULL ? xstrdup(from->headers) : NULL;
	to->body = from->body != NULL ? xstrdup(from->body) : NULL;
	to->attachment_text = from->attachment_text != NULL ? xstrdup(from->attachment_text) : NULL;
}

void archiver_request_add_owner(struct archiver_request *request, const char *address,
				const char *user)
{
	char *lower;

	if (address == NULL || *address == '\0')
		return;
	if (user != NULL && *user == '\0')
		user = NULL;
	lower = xstrdup(address);
	for (char *p = lower; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	for (size_t i = 0; i < request->owner_count; i++) {
		const struct depot_owner *owner = &request->owners[i];

		if (strcmp(owner->address, lower) == 0 &&
		    strcmp(owner->user != NULL ? owner->user : "", user != NULL ? user : "") == 0) {
			free(lower);
			return;
		}
	}
	request->owners =
	    xrealloc(request->owners, (request->owner_count + 1) * sizeof(*request->owners));
	request->owners[request->owner_count].address = lower;
	request->owners[request->owner_count].user = user != NULL ? xstrdup(user) : NULL;
	request->owner_count++;
}

void archiver_request_free(struct archiver_request *request)
{
	if (request == NULL)
		return;
	depot_fields_free(&request->fields);
	for (size_t i = 0; i < request->owner_count; i++) {
		free(request->owners[i].address);
		free(request->owners[i].user);
	}
	free(request->owners);
	free(request);
}

/* ---- the thread ------------------------------------------------------------ */

/* The whole spool body of ID into *RAW_R (malloc) and *LEN_R. 0, or -1 with
 * ERROR set. */
static int archiver_read_body(const struct archiver *archiver, const char *id, char **raw_r,
			      size_t *len_r, char *error, size_t errlen)
{
	char *path = spool_path(archiver->data_dir, id);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	size_t len = 0;
	char *raw = NULL;

	free(path);
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(error, errlen, "cannot read the body: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(error, errlen, "cannot read the body: not a regular file");
		goto fail;
	}
	raw = xmalloc((size_t)st.st_size + 1);
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, raw + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(error, errlen, "cannot read the body: %s",
				 n < 0 ? strerror(errno) : "it is shorter than its size");
			goto fail;
		}
		len += (size_t)n;
	}
	close(fd);
	*raw_r = raw;
	*len_r = len;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(raw);
	return -1;
}

/* Opens the depot if it is not open, or was opened in a folder that is not
 * the one at its path any more. 0, or -1 with ERROR set. */
static int archiver_depot_ready(struct archiver *archiver, char *error, size_t errlen)
{
	struct stat st;

	if (archiver->depot != NULL &&
	    (stat(archiver->depot_dir, &st) < 0 || st.st_dev != archiver->depot_dev ||
	     st.st_ino != archiver->depot_ino))
		depot_close(&archiver->depot);
	if (archiver->depot != NULL)
		return 0;
	archiver->depot = depot_open(archiver->depot_dir, true, error, errlen);
	if (archiver->depot == NULL)
		return -1;
	if (stat(archiver->depot_dir, &st) < 0) {
		snprintf(error, errlen, "%s: %s", archiver->depot_dir, strerror(errno));
		depot_close(&archiver->depot);
		return -1;
	}
	archiver->depot_dev = st.st_dev;
	archiver->depot_ino = st.st_ino;
	return 0;
}

static void archiver_fail_all(struct archiver_job **jobs, size_t n, const char *error)
{
	for (size_t i = 0; i < n; i++) {
		jobs[i]->seq = -1;
		snprintf(jobs[i]->error, sizeof(jobs[i]->error), "%s", error);
	}
}

static void archiver_archived(struct archiver *archiver, struct archiver_job *job, int64_t seq)
{
	job->seq = seq;
	if (seq > archiver->newest_seq)
		archiver->newest_seq = seq;
}

/* Archives N read jobs (their items in ITEMS) as one batch; if that fails,
 * each alone, so one message the depot refuses holds only itself. */
static void archiver_ingest(struct archiver *archiver, struct archiver_job **jobs,
			    const struct depot_item *items, size_t n)
{
	int64_t *seqs = xcalloc(n, sizeof(*seqs));
	char error[256];

	if (depot_ingest(archiver->depot, items, n, seqs, error, sizeof(error)) == 0) {
		for (size_t i = 0; i < n; i++)
			archiver_archived(archiver, jobs[i], seqs[i]);
		free(seqs);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (n > 1 && depot_ingest(archiver->depot, &items[i], 1, &seqs[i], error,
					  sizeof(error)) == 0) {
			archiver_archived(archiver, jobs[i], seqs[i]);
			continue;
		}
		archiver_fail_all(&jobs[i], 1, error);
	}
	/* Opened again before the next batch: the folder may have been
	 * repaired or replaced meanwhile. */
	depot_close(&archiver->depot);
	free(seqs);
}

/* Archives the GROUP's requests; marks each job's outcome. */
static void archiver_run_group(struct archiver *archiver, struct archiver_job **group, size_t n)
{
	struct depot_item *items = xcalloc(n, sizeof(*items));
	struct archiver_job **ready = xcalloc(n, sizeof(*ready));
	char **raws = xcalloc(n, sizeof(*raws));
	char **sources = xcalloc(n, sizeof(*sources));
	size_t count = 0;
	char error[256];

	if (archiver_depot_ready(archiver, error, sizeof(error)) < 0) {
		archiver_fail_all(group, n, error);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const struct archiver_request *request = group[i]->request;
		struct depot_item *item = &items[count];

		if (archiver_read_body(archiver, request->id, &raws[count], &item->len,
				       group[i]->error, sizeof(group[i]->error)) < 0) {
			group[i]->seq = -1;
			continue;
		}
		sources[count] = xasprintf("popgate:%s", request->id);
		item->raw = raws[count];
		item->direction = request->direction;
		item->source = sources[count];
		item->fields = &request->fields;
		item->owners = request->owners;
		item->owner_count = request->owner_count;
		ready[count++] = group[i];
	}
	if (count > 0)
		archiver_ingest(archiver, ready, items, count);
done:
	for (size_t i = 0; i < count; i++) {
		free(raws[i]);
		free(sources[i]);
	}
	free(sources);
	free(raws);
	free(ready);
	free(items);
}

/* Signs the chain's head if entries were archived since the last time and
 * the interval passed (FORCE: at the stop, whenever). */
static void archiver_checkpoint(struct archiver *archiver, bool force)
{
	int64_t now = util_now();
	int64_t seq = 0;
	char error[256];

	if (archiver->checkpoint_interval <= 0 || archiver->newest_seq <= archiver->signed_seq ||
	    (!force && now < archiver->checkpoint_at + archiver->checkpoint_interval))
		return;
	archiver->checkpoint_at = now;
	if (archiver_depot_ready(archiver, error, sizeof(error)) < 0 ||
	    depot_checkpoint(archiver->depot, &seq, error, sizeof(error)) < 0) {
		log_event(LOG_ERROR, "depot_checkpoint", NULL, NULL,
			  "cannot sign the chain's head: %s; tried again in %d s", error,
			  archiver->checkpoint_interval);
		return;
	}
	archiver->signed_seq = seq;
	log_event(LOG_INFO, "depot_checkpoint", NULL, NULL, "signed the chain's head, entry %lld",
		  (long long)seq);
}

/* Under LOCK: waits for requests, or until a checkpoint is due. */
static void archiver_wait(struct archiver *archiver)
{
	while (!archiver->stopping && STAILQ_EMPTY(&archiver->queued)) {
		if (archiver->checkpoint_interval > 0 &&
		    archiver->newest_seq > archiver->signed_seq) {
			struct timespec due = {.tv_sec = (time_t)(archiver->checkpoint_at +
								  archiver->checkpoint_interval)};

			if (pthread_cond_timedwait(&archiver->wake, &archiver->lock, &due) ==
			    ETIMEDOUT)
				return;
		} else {
			pthread_cond_wait(&archiver->wake, &archiver->lock);
		}
	}
}

static void *archiver_thread_main(void *ctx)
{
	struct archiver *archiver = ctx;
	struct archiver_job **group = xcalloc((size_t)archiver->batch, sizeof(*group));
	const uint64_t one = 1;

	pthread_mutex_lock(&archiver->lock);
	while (!archiver->stopping) {
		size_t n = 0;
		long long bytes = 0;

		archiver_wait(archiver);
		if (archiver->stopping)
			break;
		while (n < (size_t)archiver->batch && !STAILQ_EMPTY(&archiver->queued)) {
			struct archiver_job *job = STAILQ_FIRST(&archiver->queued);

			if (n > 0 && bytes + job->request->size > ARCHIVER_BATCH_BYTES)
				break;
			bytes += job->request->size;
			STAILQ_REMOVE_HEAD(&archiver->queued, queue_link);
			group[n++] = job;
		}
		pthread_mutex_unlock(&archiver->lock);

		if (n > 0)
			archiver_run_group(archiver, group, n);
		archiver_checkpoint(archiver, false);

		pthread_mutex_lock(&archiver->lock);
		for (size_t i = 0; i < n; i++)
			STAILQ_INSERT_TAIL(&archiver->finished, group[i], queue_link);
		/* A failed write means the counter is already non-zero. */
		if (n > 0)
			(void)!write(archiver->notify_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&archiver->lock);
	archiver_checkpoint(archiver, true);
	depot_close(&archiver->depot);
	free(group);
	return NULL;
}

/* ---- the loop -------------------------------------------------------------- */

/* ID's bucket, from hex digits of its random part (ids are spool_id_valid). */
static struct archiver_bucket *archiver_bucket_for(struct archiver *archiver, const char *id)
{
	unsigned hash = 0;

	for (size_t i = SPOOL_ID_LEN / 2; i < SPOOL_ID_LEN / 2 + 4 && id[i] != '\0'; i++)
		hash = hash * 16 +
		       (unsigned)(isdigit((unsigned char)id[i]) ? id[i] - '0' : id[i] - 'a' + 10);
	return &archiver->buckets[hash % ARCHIVER_ID_BUCKETS];
}

/* Frees JOB, which is out of the index. */
static void archiver_job_free(struct archiver_job *job)
{
	if (job->retry_timer != NULL)
		event_free(job->retry_timer);
	archiver_request_free(job->request);
	free(job);
}

static void archiver_enqueue(struct archiver *archiver, struct archiver_job *job)
{
	pthread_mutex_lock(&archiver->lock);
	STAILQ_INSERT_TAIL(&archiver->queued, job, queue_link);
	pthread_cond_signal(&archiver->wake);
	pthread_mutex_unlock(&archiver->lock);
}

static void archiver_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct archiver_job *job = arg;

	(void)fd;
	(void)what;
	job->archiver->held--;
	archiver_enqueue(job->archiver, job);
}

/* JOB failed: held, and queued again after the back-off. */
static void archiver_hold(struct archiver *archiver, struct archiver_job *job)
{
	unsigned growth =
	    job->failures < ARCHIVER_RETRY_GROWTH_MAX ? job->failures : ARCHIVER_RETRY_GROWTH_MAX;
	int delay = (*archiver->cfg)->depot_retry << growth;

	job->failures++;
	log_event(LOG_WARN, "archive_failed", job->request->account, job->request->id,
		  "%s; held in processing, archived again in %d s (attempt %u)", job->error, delay,
		  job->failures);
	if (job->retry_timer == NULL)
		job->retry_timer = evtimer_new(archiver->base, archiver_retry_cb, job);
	archiver->held++;
	evtimer_add(job->retry_timer, &(struct timeval){.tv_sec = delay});
}

/* In the loop: the finished requests' DONE, or their hold. */
static void archiver_deliver(struct archiver *archiver)
{
	struct archiver_job_list finished;
	struct archiver_job *job;

	STAILQ_INIT(&finished);
	pthread_mutex_lock(&archiver->lock);
	STAILQ_CONCAT(&finished, &archiver->finished);
	pthread_mutex_unlock(&archiver->lock);
	while ((job = STAILQ_FIRST(&finished)) != NULL) {
		STAILQ_REMOVE_HEAD(&finished, queue_link);
		if (job->seq < 0) {
			archiver_hold(archiver, job);
			continue;
		}
		if (job->failures > 0)
			log_event(LOG_INFO, "archived", job->request->account, job->request->id,
				  "depot entry %lld, after %u failed attempt(s)",
				  (long long)job->seq, job->failures);
		else
			log_event(LOG_DEBUG, "archived", job->request->account, job->request->id,
				  "depot entry %lld", (long long)job->seq);
		/* Out of the index first: DONE may submit the message anew. */
		LIST_REMOVE(job, id_link);
		job->done(job->seq, job->arg);
		archiver_job_free(job);
	}
}

static void archiver_notify_cb(evutil_socket_t fd, short what, void *ctx)
{
	uint64_t count;

	(void)what;
	(void)!read(fd, &count, sizeof(count));
	archiver_deliver(ctx);
}

struct archiver *archiver_new(struct event_base *base, const char *data_dir, int batch,
			      int checkpoint_interval, struct popgate_config *const *cfg, char *err,
			      size_t errlen)
{
	struct archiver *archiver = xcalloc(1, sizeof(*archiver));
	int rc;

	archiver->base = base;
	archiver->cfg = cfg;
	archiver->data_dir = xstrdup(data_dir);
	archiver->depot_dir = xasprintf("%s/%s", data_dir, ARCHIVER_DEPOT_DIR);
	archiver->batch = batch > 0 ? batch : 1;
	archiver->checkpoint_interval = checkpoint_interval;
	archiver->checkpoint_at = util_now();
	archiver->notify_fd = -1;
	pthread_mutex_init(&archiver->lock, NULL);
	pthread_cond_init(&archiver->wake, NULL);
	STAILQ_INIT(&archiver->queued);
	STAILQ_INIT(&archiver->finished);
	for (size_t i = 0; i < ARCHIVER_ID_BUCKETS; i++)
		LIST_INIT(&archiver->buckets[i]);
	archiver->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (archiver->notify_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	archiver->notify_event = event_new(base, archiver->notify_fd, EV_READ | EV_PERSIST,
					   archiver_notify_cb, archiver);
	if (archiver->notify_event == NULL || event_add(archiver->notify_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the archiver's eventfd");
		goto fail;
	}
	rc = pthread_create(&archiver->thread, NULL, archiver_thread_main, archiver);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the archiver thread: %s", strerror(rc));
		goto fail;
	}
	archiver->thread_started = true;
	return archiver;
fail:
	archiver_free(&archiver);
	return NULL;
}

void archiver_submit(struct archiver *archiver, struct archiver_request *request,
		     archiver_done_fn *done, archiver_drop_fn *drop, void *arg)
{
	struct archiver_job *job = xcalloc(1, sizeof(*job));

	job->archiver = archiver;
	job->request = request;
	job->done = done;
	job->drop = drop;
	job->arg = arg;
	LIST_INSERT_HEAD(archiver_bucket_for(archiver, request->id), job, id_link);
	archiver_enqueue(archiver, job);
}

bool archiver_pending(const struct archiver *archiver, const char *id)
{
	const struct archiver_job *job;

	if (archiver == NULL)
		return false;
	/* The index is only read here. */
	LIST_FOREACH(job, archiver_bucket_for((struct archiver *)archiver, id), id_link)
	{
		if (strcmp(job->request->id, id) == 0)
			return true;
	}
	return false;
}

size_t archiver_held(const struct archiver *archiver)
{
	return archiver != NULL ? archiver->held : 0;
}

void archiver_free(struct archiver **archiver_p)
{
	struct archiver *archiver = *archiver_p;

	if (archiver == NULL)
		return;
	pthread_mutex_lock(&archiver->lock);
	archiver->stopping = true;
	pthread_cond_broadcast(&archiver->wake);
	pthread_mutex_unlock(&archiver->lock);
	if (archiver->thread_started)
		pthread_join(archiver->thread, NULL);
	/* Queued, finished or held: every job still indexed is dropped. */
	for (size_t i = 0; i < ARCHIVER_ID_BUCKETS; i++) {
		while (!LIST_EMPTY(&archiver->buckets[i])) {
			struct archiver_job *job = LIST_FIRST(&archiver->buckets[i]);

			LIST_REMOVE(job, id_link);
			job->drop(job->arg);
			archiver_job_free(job);
		}
	}
	if (archiver->notify_event != NULL)
		event_free(archiver->notify_event);
	if (archiver->notify_fd >= 0)
		close(archiver->notify_fd);
	pthread_cond_destroy(&archiver->wake);
	pthread_mutex_destroy(&archiver->lock);
	free(archiver->depot_dir);
	free(archiver->data_dir);
	free(archiver);
	*archiver_p = NULL;
}
