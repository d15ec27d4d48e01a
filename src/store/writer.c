/*
 * writer.c — the writer thread behind writer.h: group commit of spool bodies
 * and rows, off the event loop.
 *
 * Owns: its thread, its SQLite connection, the queue of jobs and the list of
 * finished ones. Jobs wait in the queue under a mutex; the thread takes all
 * of them (at most WRITER_BATCH_MAX) as one group, and a finished group moves
 * to the done list and wakes the loop through an eventfd, whose event runs
 * the DONE callbacks in the loop's thread (as core/offload.c does).
 * Must never: call into libevent from the thread, call a DONE before the
 * commit its job is part of (DONE acknowledges: a DELE, a +OK), or commit a
 * row whose body is not durable in the spool.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "store/writer.h"

/* Jobs per transaction at most: bounds how long one commit holds the lock
 * (and how long popgatectl may wait for it). */
#define WRITER_BATCH_MAX 1024
/* Bucket folders: two hex digits. */
#define WRITER_BUCKETS 256

struct writer_job {
	struct spool_writer *body; /* NULL when the job has none */
	writer_work_fn *work;
	writer_done_fn *done;
	void *arg;
	int result;
	char error[200]; /* why RESULT is -1 */
	STAILQ_ENTRY(writer_job) entry;
};

STAILQ_HEAD(writer_job_list, writer_job);

struct writer {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct writer_job_list queued;
	struct writer_job_list finished;
	size_t queued_count;
	bool stopping;
	bool thread_started;
	pthread_t thread;
	uint64_t transactions;
	struct store *store; /* the thread's connection */
	int notify_fd;	     /* eventfd: the thread tells the loop that jobs finished */
	struct event *notify_event;
};

static int writer_hex_value(char c)
{
	return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* The bucket of ID (a spool id: two lowercase hex digits first) as 0..255. */
static unsigned writer_bucket_of(const char *id)
{
	return (unsigned)(writer_hex_value(id[0]) * 16 + writer_hex_value(id[1]));
}

static void writer_job_fail(struct writer_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void writer_job_fail(struct writer_job *job, const char *fmt, ...)
{
	va_list ap;

	job->result = -1;
	va_start(ap, fmt);
	vsnprintf(job->error, sizeof(job->error), fmt, ap);
	va_end(ap);
}

/*
 * Makes the group's bodies durable: the writeback of all of them started,
 * then each file fsynced and renamed into
 * place, then each bucket folder that got one fsynced once. A job whose body
 * fails is marked failed and its body removed.
 */
static void writer_place_bodies(struct writer_job_list *group)
{
	bool touched[WRITER_BUCKETS] = {false};
	bool failed[WRITER_BUCKETS] = {false};
	char bucket_error[120] = "";
	struct writer_job *job;

	/* All the group's data goes out at once; the fsyncs below then wait on
	 * writes already under way instead of starting one body at a time. */
	STAILQ_FOREACH(job, group, entry)
	{
		if (job->body != NULL)
			spool_writer_start_writeback(job->body);
	}
	STAILQ_FOREACH(job, group, entry)
	{
		if (job->body == NULL)
			continue;
		if (spool_writer_place(job->body) < 0) {
			writer_job_fail(job, "cannot store the body: %s", strerror(errno));
			continue;
		}
		touched[writer_bucket_of(job->body->id)] = true;
	}
	STAILQ_FOREACH(job, group, entry)
	{
		if (job->body == NULL || job->result < 0)
			continue;
		unsigned bucket = writer_bucket_of(job->body->id);
		if (touched[bucket]) {
			touched[bucket] = false; /* synced once, whatever the outcome */
			if (spool_writer_sync_bucket(job->body) < 0) {
				failed[bucket] = true;
				snprintf(bucket_error, sizeof(bucket_error),
					 "cannot sync the spool folder: %s", strerror(errno));
			}
		}
		if (failed[bucket]) {
			writer_job_fail(job, "%s", bucket_error);
			spool_writer_discard(job->body);
		}
	}
}

/* Runs the group's jobs in one transaction; marks each job's outcome. */
static void writer_run_group(struct writer *writer, struct writer_job_list *group)
{
	struct store *store = writer->store;
	struct writer_job *job;
	bool any = false;

	writer_place_bodies(group);
	STAILQ_FOREACH(job, group, entry)
		any = any || job->result >= 0;
	if (!any)
		goto bodies;
	/* BEGIN IMMEDIATE waits here, in this thread, for the busy timeout. */
	if (store_begin(store) < 0) {
		STAILQ_FOREACH(job, group, entry)
		{
			if (job->result >= 0)
				writer_job_fail(job, "%s", store_errmsg(store));
		}
		goto bodies;
	}
	STAILQ_FOREACH(job, group, entry)
	{
		bool outer;

		if (job->result < 0)
			continue;
		/* A savepoint per job: a failing job undoes only its own writes. */
		if (store_tx_begin(store, &outer) < 0) {
			writer_job_fail(job, "%s", store_errmsg(store));
			continue;
		}
		int result = job->work(store, job->arg);
		if (result < 0) {
			writer_job_fail(job, "%s", store_errmsg(store));
			store_tx_rollback(store, outer);
			continue;
		}
		if (store_tx_commit(store, outer) < 0) {
			writer_job_fail(job, "%s", store_errmsg(store));
			continue;
		}
		job->result = result;
	}
	if (store_commit(store) < 0) {
		/* Nothing of the group was written. */
		STAILQ_FOREACH(job, group, entry)
		{
			if (job->result >= 0)
				writer_job_fail(job, "%s", store_errmsg(store));
		}
	} else {
		pthread_mutex_lock(&writer->lock);
		writer->transactions++;
		pthread_mutex_unlock(&writer->lock);
	}
bodies:
	/* A body whose row was not committed must not stay behind. */
	STAILQ_FOREACH(job, group, entry)
	{
		if (job->body != NULL && job->result < 0)
			spool_writer_discard(job->body);
		spool_writer_free(&job->body);
	}
}

static void *writer_thread_main(void *ctx)
{
	struct writer *writer = ctx;
	const uint64_t one = 1;

	pthread_mutex_lock(&writer->lock);
	for (;;) {
		struct writer_job_list group;

		while (!writer->stopping && STAILQ_EMPTY(&writer->queued))
			pthread_cond_wait(&writer->wake, &writer->lock);
		/* Stopping drains: every queued job still commits. */
		if (STAILQ_EMPTY(&writer->queued))
			break;
		STAILQ_INIT(&group);
		for (size_t n = 0; n < WRITER_BATCH_MAX && !STAILQ_EMPTY(&writer->queued); n++) {
			struct writer_job *job = STAILQ_FIRST(&writer->queued);
			STAILQ_REMOVE_HEAD(&writer->queued, entry);
			STAILQ_INSERT_TAIL(&group, job, entry);
			writer->queued_count--;
		}
		pthread_mutex_unlock(&writer->lock);

		writer_run_group(writer, &group);

		pthread_mutex_lock(&writer->lock);
		STAILQ_CONCAT(&writer->finished, &group);
		/* A failed write means the counter is already non-zero: the loop
		 * wakes anyway. */
		(void)!write(writer->notify_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&writer->lock);
	return NULL;
}

/* In the loop (or in writer_free): runs the DONE callbacks of finished jobs. */
static void writer_deliver(struct writer *writer)
{
	struct writer_job_list finished;
	struct writer_job *job;

	STAILQ_INIT(&finished);
	pthread_mutex_lock(&writer->lock);
	STAILQ_CONCAT(&finished, &writer->finished);
	pthread_mutex_unlock(&writer->lock);
	while ((job = STAILQ_FIRST(&finished)) != NULL) {
		STAILQ_REMOVE_HEAD(&finished, entry);
		job->done(job->result, job->result < 0 ? job->error : NULL, job->arg);
		free(job);
	}
}

static void writer_notify_cb(evutil_socket_t fd, short what, void *ctx)
{
	uint64_t count;
	(void)what;

	(void)!read(fd, &count, sizeof(count));
	writer_deliver(ctx);
}

struct writer *writer_new(struct event_base *base, const char *data_dir, char *err,
			  size_t errlen)
{
	struct writer *writer = xcalloc(1, sizeof(*writer));
	int rc;

	writer->notify_fd = -1;
	pthread_mutex_init(&writer->lock, NULL);
	pthread_cond_init(&writer->wake, NULL);
	STAILQ_INIT(&writer->queued);
	STAILQ_INIT(&writer->finished);
	writer->store = store_open(data_dir, err, errlen);
	if (writer->store == NULL)
		goto fail;
	writer->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (writer->notify_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	writer->notify_event = event_new(base, writer->notify_fd, EV_READ | EV_PERSIST,
					 writer_notify_cb, writer);
	if (writer->notify_event == NULL || event_add(writer->notify_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the writer's eventfd");
		goto fail;
	}
	rc = pthread_create(&writer->thread, NULL, writer_thread_main, writer);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the writer thread: %s", strerror(rc));
		goto fail;
	}
	writer->thread_started = true;
	return writer;
fail:
	writer_free(&writer);
	return NULL;
}

int writer_submit(struct writer *writer, struct spool_writer *body, writer_work_fn *work,
		  writer_done_fn *done, void *arg)
{
	struct writer_job *job;

	pthread_mutex_lock(&writer->lock);
	if (writer->stopping || writer->queued_count >= WRITER_QUEUE_MAX) {
		pthread_mutex_unlock(&writer->lock);
		log_error("writer: the queue is full (%d jobs); a write is refused",
			  WRITER_QUEUE_MAX);
		spool_writer_free(&body);
		return -1;
	}
	job = xcalloc(1, sizeof(*job));
	job->body = body;
	job->work = work;
	job->done = done;
	job->arg = arg;
	STAILQ_INSERT_TAIL(&writer->queued, job, entry);
	writer->queued_count++;
	pthread_cond_signal(&writer->wake);
	pthread_mutex_unlock(&writer->lock);
	return 0;
}

uint64_t writer_transactions(struct writer *writer)
{
	uint64_t count;

	pthread_mutex_lock(&writer->lock);
	count = writer->transactions;
	pthread_mutex_unlock(&writer->lock);
	return count;
}

void writer_free(struct writer **writer_p)
{
	struct writer *writer = *writer_p;

	if (writer == NULL)
		return;
	pthread_mutex_lock(&writer->lock);
	writer->stopping = true;
	pthread_cond_broadcast(&writer->wake);
	pthread_mutex_unlock(&writer->lock);
	if (writer->thread_started)
		pthread_join(writer->thread, NULL);
	/* The thread drained the queue: every job is finished, committed or not. */
	writer_deliver(writer);
	if (writer->notify_event != NULL)
		event_free(writer->notify_event);
	if (writer->notify_fd >= 0)
		close(writer->notify_fd);
	store_close(&writer->store);
	pthread_cond_destroy(&writer->wake);
	pthread_mutex_destroy(&writer->lock);
	free(writer);
	*writer_p = NULL;
}
