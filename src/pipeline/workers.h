/*
 * workers.h — what pipeline.c and workers.c share: the pipeline's structs
 * and the calls between the two. Not for any other file: the rest of the
 * daemon sees only pipeline.h.
 */
#ifndef POPGATE_PIPELINE_WORKERS_H
#define POPGATE_PIPELINE_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "pipeline/pipeline.h"

/* The worker's socket, as "--worker 3" tells it. */
#define PIPELINE_WORKER_FD 3
#define PIPELINE_WORKER_FD_ARG "3"
#define PIPELINE_WORKERS_MAX 256
/* Buckets of the id index; ids are random hex, so any few digits spread well. */
#define PIPELINE_ID_BUCKETS 1024
/* More than PIPELINE_DEATHS_MAX worker deaths within PIPELINE_DEATH_WINDOW_MS
 * (a broken binary, say) and new workers are started only after
 * PIPELINE_BACKOFF_MS, instead of forking in a tight loop. */
#define PIPELINE_DEATHS_MAX 5
#define PIPELINE_DEATH_WINDOW_MS 1000
#define PIPELINE_BACKOFF_MS 1000
/* How often a killed worker that has not yet exited is looked for. */
#define PIPELINE_REAP_INTERVAL_MS 100
/* How long pipeline_free waits for idle workers to exit by themselves, and
 * then after SIGTERM before SIGKILL. */
#define PIPELINE_EXIT_WAIT_MS 100
#define PIPELINE_STOP_WAIT_MS 500

/* A job from pipeline_submit until its verdict is reported. */
struct pipeline_entry {
	struct pipeline_job job;
	unsigned char *frame; /* the job, encoded once at submit */
	size_t frame_len;
	char fail_reason[160]; /* while on the failed queue: why */
	/* While waiting for a worker, or, on the failed queue, for its report. */
	TAILQ_ENTRY(pipeline_entry) queue_link;
	LIST_ENTRY(pipeline_entry) id_link;	/* while queued or running */
};

TAILQ_HEAD(pipeline_queue, pipeline_entry);
LIST_HEAD(pipeline_bucket, pipeline_entry);

struct pipeline_worker {
	struct pipeline *pipeline;
	size_t index;
	pid_t pid;		      /* -1 while no process runs in this slot */
	int fd;			      /* our end of the socket, or -1 */
	struct event *read_event;     /* on FD, while a process runs */
	struct event *timeout_event;  /* armed while a job runs */
	struct evbuffer *input;	      /* bytes of a reply read so far */
	struct pipeline_entry *entry; /* the job it is working on, or NULL */
	char send_error[128];	      /* set when sending a job failed */
	int64_t restart_at_ms;	      /* while pid is -1: when to start one */
};

struct pipeline {
	struct event_base *base;
	char *self_exe;
	/* SELF_EXE opened once (O_PATH): workers are exec'd through it, so the
	 * program's folder need not be reachable by the service user. */
	int exe_fd;
	char *data_dir;
	char *hostname;
	int worker_timeout;
	pipeline_verdict_cb *callback;
	void *ctx;
	struct pipeline_worker *workers;
	size_t worker_count;
	struct pipeline_queue queue;
	/* Jobs whose body could not be opened, reported from the loop by
	 * failed_event (never from inside pipeline_submit). */
	struct pipeline_queue failed;
	struct event *failed_event;
	struct pipeline_bucket buckets[PIPELINE_ID_BUCKETS];
	size_t pending;
	/* Workers killed or gone but not yet reaped. */
	pid_t *zombies;
	size_t zombie_count;
	size_t zombie_cap;
	/* Reaps zombies and restarts workers after a back-off; armed only while
	 * there is something to do. */
	struct event *tick_event;
	int64_t death_window_start_ms;
	unsigned deaths_in_window;
};

/* workers.c: the worker processes. */

/* Starts a worker process in WORKER's slot. 0, or -1 with ERR set. */
int workers_start(struct pipeline_worker *worker, char *err, size_t errlen);

/* Ends WORKER's process: stops watching it, closes the socket (a worker
 * waiting for a job then exits by itself), sends SIGNAL_NUMBER unless it is
 * 0, and leaves the pid to be reaped. The job it held, if any, is the
 * caller's. */
void workers_stop(struct pipeline_worker *worker, int signal_number);

/* Starts a process for WORKER's empty slot now, or after the back-off when
 * workers have been dying too fast. */
void workers_restart(struct pipeline_worker *worker);

/* Collects every zombie that has exited; the rest stay on the list. */
void workers_reap(struct pipeline *pipeline);

/* Reaps until no zombie is left or MS have passed; for pipeline_free only,
 * when blocking the loop briefly is expected. */
void workers_reap_wait(struct pipeline *pipeline, int64_t ms);

/* The tick event's callback: reaps, and starts workers whose back-off ended. */
void workers_on_tick(evutil_socket_t fd, short what, void *arg);

/* pipeline.c: the jobs. */

/* Hands queued jobs to idle workers, oldest job first. */
void pipeline_dispatch(struct pipeline *pipeline);

/* The read event's callback of a worker's socket. */
void pipeline_on_read(evutil_socket_t fd, short what, void *arg);

#endif
