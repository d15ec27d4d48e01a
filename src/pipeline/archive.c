/*
 * archive.c — the archiver behind archive.h: a thread with one depot
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
#include "pipeline/archive.h"

/* Buckets of the id index; ids are random hex, so any few digits spread well. */
#define ARCHIVE_ID_BUCKETS 1024

struct archive_job {
	struct archive *archive;
	struct archive_request *request;
	archive_done_fn *done;
	archive_drop_fn *drop;
	void *arg;
	/* Set by the thread: the entry, or (-1) why it failed. */
	int64_t seq;
	char error[256];
	unsigned failures;
	struct event *retry_timer; /* armed while held */
	STAILQ_ENTRY(archive_job) queue_link;
	LIST_ENTRY(archive_job) id_link;
};

STAILQ_HEAD(archive_job_list, archive_job);
LIST_HEAD(archive_bucket, archive_job);

struct archive {
	struct event_base *base;
	struct popgate_config *const *cfg;
	char *data_dir;
	char *depot_dir;
	int batch;
	int checkpoint_interval;
	/* Under LOCK: */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct archive_job_list queued;
	struct archive_job_list finished;
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
	struct archive_bucket buckets[ARCHIVE_ID_BUCKETS];
	size_t held;
};

void archive_fields_copy(struct depot_fields *to, const struct depot_fields *from)
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

void archive_request_add_owner(struct archive_request *request, const char *address,
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

void archive_request_free(struct archive_request *request)
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
static int archive_read_body(const struct archive *archive, const char *id, char **raw_r,
			     size_t *len_r, char *error, size_t errlen)
{
	char *path = spool_path(archive->data_dir, id);
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
static int archive_depot_ready(struct archive *archive, char *error, size_t errlen)
{
	struct stat st;

	if (archive->depot != NULL &&
	    (stat(archive->depot_dir, &st) < 0 || st.st_dev != archive->depot_dev ||
	     st.st_ino != archive->depot_ino))
		depot_close(&archive->depot);
	if (archive->depot != NULL)
		return 0;
	archive->depot = depot_open(archive->depot_dir, true, error, errlen);
	if (archive->depot == NULL)
		return -1;
	if (stat(archive->depot_dir, &st) < 0) {
		snprintf(error, errlen, "%s: %s", archive->depot_dir, strerror(errno));
		depot_close(&archive->depot);
		return -1;
	}
	archive->depot_dev = st.st_dev;
	archive->depot_ino = st.st_ino;
	return 0;
}

static void archive_fail_all(struct archive_job **jobs, size_t n, const char *error)
{
	for (size_t i = 0; i < n; i++) {
		jobs[i]->seq = -1;
		snprintf(jobs[i]->error, sizeof(jobs[i]->error), "%s", error);
	}
}

static void archive_archived(struct archive *archive, struct archive_job *job, int64_t seq)
{
	job->seq = seq;
	if (seq > archive->newest_seq)
		archive->newest_seq = seq;
}

/* Archives N read jobs (their items in ITEMS) as one batch; if that fails,
 * each alone, so one message the depot refuses holds only itself. */
static void archive_ingest(struct archive *archive, struct archive_job **jobs,
			   const struct depot_item *items, size_t n)
{
	int64_t *seqs = xcalloc(n, sizeof(*seqs));
	char error[256];

	if (depot_ingest(archive->depot, items, n, seqs, error, sizeof(error)) == 0) {
		for (size_t i = 0; i < n; i++)
			archive_archived(archive, jobs[i], seqs[i]);
		free(seqs);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (n > 1 && depot_ingest(archive->depot, &items[i], 1, &seqs[i], error,
					  sizeof(error)) == 0) {
			archive_archived(archive, jobs[i], seqs[i]);
			continue;
		}
		archive_fail_all(&jobs[i], 1, error);
	}
	/* Opened again before the next batch: the folder may have been
	 * repaired or replaced meanwhile. */
	depot_close(&archive->depot);
	free(seqs);
}

/* Archives the GROUP's requests; marks each job's outcome. */
static void archive_run_group(struct archive *archive, struct archive_job **group, size_t n)
{
	struct depot_item *items = xcalloc(n, sizeof(*items));
	struct archive_job **ready = xcalloc(n, sizeof(*ready));
	char **raws = xcalloc(n, sizeof(*raws));
	char **sources = xcalloc(n, sizeof(*sources));
	size_t count = 0;
	char error[256];

	if (archive_depot_ready(archive, error, sizeof(error)) < 0) {
		archive_fail_all(group, n, error);
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		const struct archive_request *request = group[i]->request;
		struct depot_item *item = &items[count];

		if (archive_read_body(archive, request->id, &raws[count], &item->len,
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
		archive_ingest(archive, ready, items, count);
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
static void archive_checkpoint(struct archive *archive, bool force)
{
	int64_t now = util_now();
	int64_t seq = 0;
	char error[256];

	if (archive->checkpoint_interval <= 0 || archive->newest_seq <= archive->signed_seq ||
	    (!force && now < archive->checkpoint_at + archive->checkpoint_interval))
		return;
	archive->checkpoint_at = now;
	if (archive_depot_ready(archive, error, sizeof(error)) < 0 ||
	    depot_checkpoint(archive->depot, &seq, error, sizeof(error)) < 0) {
		log_event(LOG_ERROR, "depot_checkpoint", NULL, NULL,
			  "cannot sign the chain's head: %s; tried again in %d s", error,
			  archive->checkpoint_interval);
		return;
	}
	archive->signed_seq = seq;
	log_event(LOG_INFO, "depot_checkpoint", NULL, NULL, "signed the chain's head, entry %lld",
		  (long long)seq);
}

/* Under LOCK: waits for requests, or until a checkpoint is due. */
static void archive_wait(struct archive *archive)
{
	while (!archive->stopping && STAILQ_EMPTY(&archive->queued)) {
		if (archive->checkpoint_interval > 0 && archive->newest_seq > archive->signed_seq) {
			struct timespec due = {.tv_sec = (time_t)(archive->checkpoint_at +
								  archive->checkpoint_interval)};

			if (pthread_cond_timedwait(&archive->wake, &archive->lock, &due) ==
			    ETIMEDOUT)
				return;
		} else {
			pthread_cond_wait(&archive->wake, &archive->lock);
		}
	}
}

static void *archive_thread_main(void *ctx)
{
	struct archive *archive = ctx;
	struct archive_job **group = xcalloc((size_t)archive->batch, sizeof(*group));
	const uint64_t one = 1;

	pthread_mutex_lock(&archive->lock);
	while (!archive->stopping) {
		size_t n = 0;
		long long bytes = 0;

		archive_wait(archive);
		if (archive->stopping)
			break;
		while (n < (size_t)archive->batch && !STAILQ_EMPTY(&archive->queued)) {
			struct archive_job *job = STAILQ_FIRST(&archive->queued);

			if (n > 0 && bytes + job->request->size > ARCHIVE_BATCH_BYTES)
				break;
			bytes += job->request->size;
			STAILQ_REMOVE_HEAD(&archive->queued, queue_link);
			group[n++] = job;
		}
		pthread_mutex_unlock(&archive->lock);

		if (n > 0)
			archive_run_group(archive, group, n);
		archive_checkpoint(archive, false);

		pthread_mutex_lock(&archive->lock);
		for (size_t i = 0; i < n; i++)
			STAILQ_INSERT_TAIL(&archive->finished, group[i], queue_link);
		/* A failed write means the counter is already non-zero. */
		if (n > 0)
			(void)!write(archive->notify_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&archive->lock);
	archive_checkpoint(archive, true);
	depot_close(&archive->depot);
	free(group);
	return NULL;
}

/* ---- the loop -------------------------------------------------------------- */

/* ID's bucket, from hex digits of its random part (ids are spool_id_valid). */
static struct archive_bucket *archive_bucket_for(struct archive *archive, const char *id)
{
	unsigned hash = 0;

	for (size_t i = SPOOL_ID_LEN / 2; i < SPOOL_ID_LEN / 2 + 4 && id[i] != '\0'; i++)
		hash = hash * 16 +
		       (unsigned)(isdigit((unsigned char)id[i]) ? id[i] - '0' : id[i] - 'a' + 10);
	return &archive->buckets[hash % ARCHIVE_ID_BUCKETS];
}

/* Frees JOB, which is out of the index. */
static void archive_job_free(struct archive_job *job)
{
	if (job->retry_timer != NULL)
		event_free(job->retry_timer);
	archive_request_free(job->request);
	free(job);
}

static void archive_enqueue(struct archive *archive, struct archive_job *job)
{
	pthread_mutex_lock(&archive->lock);
	STAILQ_INSERT_TAIL(&archive->queued, job, queue_link);
	pthread_cond_signal(&archive->wake);
	pthread_mutex_unlock(&archive->lock);
}

static void archive_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct archive_job *job = arg;

	(void)fd;
	(void)what;
	job->archive->held--;
	archive_enqueue(job->archive, job);
}

/* JOB failed: held, and queued again after the back-off. */
static void archive_hold(struct archive *archive, struct archive_job *job)
{
	unsigned growth =
	    job->failures < ARCHIVE_RETRY_GROWTH_MAX ? job->failures : ARCHIVE_RETRY_GROWTH_MAX;
	int delay = (*archive->cfg)->depot_retry << growth;

	job->failures++;
	log_event(LOG_WARN, "archive_failed", job->request->account, job->request->id,
		  "%s; held in processing, archived again in %d s (attempt %u)", job->error, delay,
		  job->failures);
	if (job->retry_timer == NULL)
		job->retry_timer = evtimer_new(archive->base, archive_retry_cb, job);
	archive->held++;
	evtimer_add(job->retry_timer, &(struct timeval){.tv_sec = delay});
}

/* In the loop: the finished requests' DONE, or their hold. */
static void archive_deliver(struct archive *archive)
{
	struct archive_job_list finished;
	struct archive_job *job;

	STAILQ_INIT(&finished);
	pthread_mutex_lock(&archive->lock);
	STAILQ_CONCAT(&finished, &archive->finished);
	pthread_mutex_unlock(&archive->lock);
	while ((job = STAILQ_FIRST(&finished)) != NULL) {
		STAILQ_REMOVE_HEAD(&finished, queue_link);
		if (job->seq < 0) {
			archive_hold(archive, job);
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
		archive_job_free(job);
	}
}

static void archive_notify_cb(evutil_socket_t fd, short what, void *ctx)
{
	uint64_t count;

	(void)what;
	(void)!read(fd, &count, sizeof(count));
	archive_deliver(ctx);
}

struct archive *archive_new(struct event_base *base, const char *data_dir, int batch,
			    int checkpoint_interval, struct popgate_config *const *cfg, char *err,
			    size_t errlen)
{
	struct archive *archive = xcalloc(1, sizeof(*archive));
	int rc;

	archive->base = base;
	archive->cfg = cfg;
	archive->data_dir = xstrdup(data_dir);
	archive->depot_dir = xasprintf("%s/%s", data_dir, ARCHIVE_DEPOT_DIR);
	archive->batch = batch > 0 ? batch : 1;
	archive->checkpoint_interval = checkpoint_interval;
	archive->checkpoint_at = util_now();
	archive->notify_fd = -1;
	pthread_mutex_init(&archive->lock, NULL);
	pthread_cond_init(&archive->wake, NULL);
	STAILQ_INIT(&archive->queued);
	STAILQ_INIT(&archive->finished);
	for (size_t i = 0; i < ARCHIVE_ID_BUCKETS; i++)
		LIST_INIT(&archive->buckets[i]);
	archive->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (archive->notify_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	archive->notify_event =
	    event_new(base, archive->notify_fd, EV_READ | EV_PERSIST, archive_notify_cb, archive);
	if (archive->notify_event == NULL || event_add(archive->notify_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the archiver's eventfd");
		goto fail;
	}
	rc = pthread_create(&archive->thread, NULL, archive_thread_main, archive);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the archiver thread: %s", strerror(rc));
		goto fail;
	}
	archive->thread_started = true;
	return archive;
fail:
	archive_free(&archive);
	return NULL;
}

void archive_submit(struct archive *archive, struct archive_request *request, archive_done_fn *done,
		    archive_drop_fn *drop, void *arg)
{
	struct archive_job *job = xcalloc(1, sizeof(*job));

	job->archive = archive;
	job->request = request;
	job->done = done;
	job->drop = drop;
	job->arg = arg;
	LIST_INSERT_HEAD(archive_bucket_for(archive, request->id), job, id_link);
	archive_enqueue(archive, job);
}

bool archive_pending(const struct archive *archive, const char *id)
{
	const struct archive_job *job;

	if (archive == NULL)
		return false;
	/* The index is only read here. */
	LIST_FOREACH(job, archive_bucket_for((struct archive *)archive, id), id_link)
	{
		if (strcmp(job->request->id, id) == 0)
			return true;
	}
	return false;
}

size_t archive_held(const struct archive *archive)
{
	return archive != NULL ? archive->held : 0;
}

void archive_free(struct archive **archive_p)
{
	struct archive *archive = *archive_p;

	if (archive == NULL)
		return;
	pthread_mutex_lock(&archive->lock);
	archive->stopping = true;
	pthread_cond_broadcast(&archive->wake);
	pthread_mutex_unlock(&archive->lock);
	if (archive->thread_started)
		pthread_join(archive->thread, NULL);
	/* Queued, finished or held: every job still indexed is dropped. */
	for (size_t i = 0; i < ARCHIVE_ID_BUCKETS; i++) {
		while (!LIST_EMPTY(&archive->buckets[i])) {
			struct archive_job *job = LIST_FIRST(&archive->buckets[i]);

			LIST_REMOVE(job, id_link);
			job->drop(job->arg);
			archive_job_free(job);
		}
	}
	if (archive->notify_event != NULL)
		event_free(archive->notify_event);
	if (archive->notify_fd >= 0)
		close(archive->notify_fd);
	pthread_cond_destroy(&archive->wake);
	pthread_mutex_destroy(&archive->lock);
	free(archive->depot_dir);
	free(archive->data_dir);
	free(archive);
	*archive_p = NULL;
}
