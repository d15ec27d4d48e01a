/*
 * offload.c — the thread pool behind offload.h.
 *
 * Jobs wait in one queue under a mutex; a finished job moves to the done
 * list and the loop is woken through an eventfd, whose event runs the DONE
 * callbacks in the loop's thread. The threads never call into libevent.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include "core/offload.h"
#include "core/util.h"

#define OFFLOAD_THREADS_MAX 64

struct offload_job {
	offload_fn *work;
	offload_fn *done;
	void *arg;
	STAILQ_ENTRY(offload_job) entry;
};

STAILQ_HEAD(offload_job_list, offload_job);

struct offload {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct offload_job_list queued;
	struct offload_job_list finished;
	bool stopping;
	pthread_t threads[OFFLOAD_THREADS_MAX];
	unsigned thread_count;
	int notify_fd; /* eventfd: the threads tell the loop that jobs finished */
	struct event *notify_event;
};

static void offload_job_list_free(struct offload_job_list *list)
{
	struct offload_job *job;

	while ((job = STAILQ_FIRST(list)) != NULL) {
		STAILQ_REMOVE_HEAD(list, entry);
		free(job);
	}
}

static void *offload_thread_main(void *ctx)
{
	struct offload *offload = ctx;
	const uint64_t one = 1;

	pthread_mutex_lock(&offload->lock);
	for (;;) {
		while (!offload->stopping && STAILQ_EMPTY(&offload->queued))
			pthread_cond_wait(&offload->wake, &offload->lock);
		if (offload->stopping)
			break;
		struct offload_job *job = STAILQ_FIRST(&offload->queued);
		STAILQ_REMOVE_HEAD(&offload->queued, entry);
		pthread_mutex_unlock(&offload->lock);

		job->work(job->arg);

		pthread_mutex_lock(&offload->lock);
		STAILQ_INSERT_TAIL(&offload->finished, job, entry);
		/* A failed write means the counter is already non-zero: the loop
		 * wakes anyway. */
		(void)!write(offload->notify_fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&offload->lock);
	return NULL;
}

/* In the loop: runs the DONE callbacks of the finished jobs. */
static void offload_notify_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct offload *offload = ctx;
	struct offload_job_list finished;
	struct offload_job *job;
	uint64_t count;
	(void)what;

	(void)!read(fd, &count, sizeof(count));
	pthread_mutex_lock(&offload->lock);
	STAILQ_INIT(&finished);
	STAILQ_CONCAT(&finished, &offload->finished);
	pthread_mutex_unlock(&offload->lock);
	while ((job = STAILQ_FIRST(&finished)) != NULL) {
		STAILQ_REMOVE_HEAD(&finished, entry);
		job->done(job->arg);
		free(job);
	}
}

struct offload *offload_new(struct event_base *base, unsigned threads, char *err, size_t errlen)
{
	struct offload *offload = xcalloc(1, sizeof(*offload));

	offload->notify_fd = -1;
	if (threads == 0)
		threads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	if (threads == 0 || threads > OFFLOAD_THREADS_MAX)
		threads = threads == 0 ? 1 : OFFLOAD_THREADS_MAX;
	pthread_mutex_init(&offload->lock, NULL);
	pthread_cond_init(&offload->wake, NULL);
	STAILQ_INIT(&offload->queued);
	STAILQ_INIT(&offload->finished);
	offload->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (offload->notify_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	offload->notify_event = event_new(base, offload->notify_fd, EV_READ | EV_PERSIST,
					  offload_notify_cb, offload);
	if (offload->notify_event == NULL || event_add(offload->notify_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the offload eventfd");
		goto fail;
	}
	for (; offload->thread_count < threads; offload->thread_count++) {
		int rc = pthread_create(&offload->threads[offload->thread_count], NULL,
					offload_thread_main, offload);
		if (rc != 0) {
			snprintf(err, errlen, "cannot start a thread: %s", strerror(rc));
			goto fail;
		}
	}
	return offload;
fail:
	offload_free(&offload);
	return NULL;
}

void offload_run(struct offload *offload, offload_fn *work, offload_fn *done, void *arg)
{
	struct offload_job *job = xcalloc(1, sizeof(*job));

	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&offload->lock);
	STAILQ_INSERT_TAIL(&offload->queued, job, entry);
	pthread_cond_signal(&offload->wake);
	pthread_mutex_unlock(&offload->lock);
}

void offload_free(struct offload **offload_p)
{
	struct offload *offload = *offload_p;

	if (offload == NULL)
		return;
	pthread_mutex_lock(&offload->lock);
	offload->stopping = true;
	pthread_cond_broadcast(&offload->wake);
	pthread_mutex_unlock(&offload->lock);
	for (unsigned i = 0; i < offload->thread_count; i++)
		pthread_join(offload->threads[i], NULL);
	offload_job_list_free(&offload->queued);
	offload_job_list_free(&offload->finished);
	if (offload->notify_event != NULL)
		event_free(offload->notify_event);
	if (offload->notify_fd >= 0)
		close(offload->notify_fd);
	pthread_cond_destroy(&offload->wake);
	pthread_mutex_destroy(&offload->lock);
	free(offload);
	*offload_p = NULL;
}
