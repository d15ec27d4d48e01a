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
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "core/resolver.h"
#include "filters/clamav.h"
#include "filters/clamd.h"
#include "pipeline/pipeline.h"
#include "pipeline/spawner.h"

#define PIPELINE_WORKERS_MAX SPAWNER_SLOTS_MAX
/* Buckets of the id index; ids are random hex, so any few digits spread well. */
#define PIPELINE_ID_BUCKETS 1024
/* DNS questions one job may ask; later ones are answered FAILED at once. */
#define PIPELINE_QUERIES_MAX 100
/* More than PIPELINE_DEATHS_MAX worker deaths within PIPELINE_DEATH_WINDOW_MS
 * (a broken binary, say) and new workers are started only after
 * PIPELINE_BACKOFF_MS, instead of forking in a tight loop. The window is
 * ten seconds so that a loop is seen as one also on a slow or loaded
 * machine, where each start takes a while. */
#define PIPELINE_DEATHS_MAX 5
#define PIPELINE_DEATH_WINDOW_MS 10000
#define PIPELINE_BACKOFF_MS 1000

/* A job from pipeline_submit until its verdict is reported. */
struct pipeline_entry {
	struct pipeline_job job;
	unsigned char *frame; /* the job, encoded once at submit */
	size_t frame_len;
	char fail_reason[160]; /* while on the failed queue: why */
	/* The virus scan before the worker, for a job whose profile runs
	 * clamav (scan.c): its result once scanned, the failed attempts so
	 * far, and the connection or the retry timer while it has one. */
	bool scanned;
	struct pipeline_result scan_result;
	unsigned scan_failures;
	struct pipeline_scan *scan;
	/* While waiting for a worker, for a scan, or, on the failed queue, for
	 * its report. */
	TAILQ_ENTRY(pipeline_entry) queue_link;
	LIST_ENTRY(pipeline_entry) id_link; /* while queued or running */
};

TAILQ_HEAD(pipeline_queue, pipeline_entry);
LIST_HEAD(pipeline_bucket, pipeline_entry);

/* Which Bayes database file a worker was handed: none, or the file with
 * this inode and modification time (training renames a new file over the
 * old one, so a retrained database is another inode). */
struct workers_bayes_id {
	bool present;
	dev_t dev;
	ino_t ino;
	struct timespec mtime;
};

struct pipeline_worker {
	struct pipeline *pipeline;
	size_t index;
	pid_t pid;		       /* -1 while no process runs in this slot */
	bool starting;		       /* asked the spawner for one; no answer yet */
	int fd;			       /* our end of the socket, or -1 */
	struct event *read_event;      /* on FD, while a process runs */
	struct event *timeout_event;   /* armed while a job runs */
	struct evbuffer *input;	       /* bytes of a reply read so far */
	/* Answers to its DNS questions not yet written (a socket without room
	 * waits for write_event); a job is sent only once it is empty. */
	struct evbuffer *output;
	struct event *write_event;
	/* Its job's DNS questions: the lookup in flight (NULL: none), the
	 * id of the question it answers, and how many the job asked. */
	struct resolver_lookup *lookup;
	uint32_t query_id;
	unsigned queries;
	struct pipeline_entry *entry;  /* the job it is working on, or NULL */
	char send_error[128];	       /* set when sending a job failed */
	int64_t restart_at_ms;	       /* while pid is -1, not starting: when to start one */
	struct workers_bayes_id bayes; /* the database it was handed at its start */
	bool renew;		       /* replace it once idle: the database changed */
};

struct pipeline {
	struct event_base *base;
	/* The process that starts and kills the workers (spawner.h); its
	 * socket is non-blocking here, watched by spawner_event. */
	struct spawner_process spawner;
	struct event *spawner_event;
	/* Requests the socket had no room for yet, whole records; sent when
	 * spawner_write_event finds room. */
	struct evbuffer *spawner_output;
	struct event *spawner_write_event;
	/* The spawner ended or broke the protocol: no worker can be started,
	 * the loop was told to exit. */
	bool spawner_lost;
	char *data_dir;
	/* The filters' settings each new worker gets in its setup frame
	 * (pipeline_set_filter_settings), or NULL. */
	char *filter_settings;
	/* The rules file's text (pipeline_set_rules), and a sealed memory
	 * file holding it that each new worker gets attached to its setup
	 * frame; NULL and -1 when there is none (the default rules alone). */
	char *rules_text;
	int rules_fd;
	/* Answers the workers' DNS questions (pipeline_set_resolver), or NULL:
	 * every question fails. */
	struct resolver *resolver;
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
	/* Jobs waiting for a connection to clamd (scan.c), oldest first; the
	 * scans under way; clamd's settings and address as last set. */
	struct pipeline_queue scan_queue;
	size_t scans_running;
	struct clamav_settings clamav;
	struct clamd_address clamd_address;
	char clamd_address_error[160]; /* set when clamd_socket cannot be used */
	struct pipeline_bucket buckets[PIPELINE_ID_BUCKETS];
	size_t pending;
	/* Restarts workers after a back-off; armed only while there is
	 * something to do. */
	struct event *tick_event;
	int64_t death_window_start_ms;
	unsigned deaths_in_window;
};

/* workers.c: the worker processes, through the spawner. */

/* Starts watching the spawner's socket and asks for a worker in every slot.
 * 0, or -1 with ERR set. */
int workers_begin(struct pipeline *pipeline, char *err, size_t errlen);

/* Asks the spawner for a worker in WORKER's empty slot; it is ready once the
 * answer arrives (the slot's pid is set then). 0, or -1 with ERR set. */
int workers_start(struct pipeline_worker *worker, char *err, size_t errlen);

/* Ends WORKER's process: stops watching it, closes the socket (a worker
 * waiting for a job then exits by itself), has the spawner SIGKILL it if
 * KILL_PROCESS, and leaves the slot empty. The job it held, if any, is the
 * caller's. */
void workers_stop(struct pipeline_worker *worker, bool kill_process);

/* Starts a process for WORKER's empty slot now, or after the back-off when
 * workers have been dying too fast. */
void workers_restart(struct pipeline_worker *worker);

/* Hands the log file log.c has open now to the spawner, for the workers it
 * starts from now on (those running keep theirs). */
void workers_log_reopened(struct pipeline *pipeline);

/* True once the spawner is gone: its socket is closed or broken, checked now
 * without blocking. A worker that dies with it is not the job's fault. */
bool workers_spawner_lost(struct pipeline *pipeline);

/* Marks for renewal every running worker that was handed another Bayes
 * database than the one DATA/bayes.db is now, and replaces those that are
 * idle at once (the others after their verdict, through workers_renew). */
void workers_bayes_check(struct pipeline *pipeline);

/* Marks every running worker for renewal and replaces the idle ones at once
 * (the filters' settings changed). */
void workers_renew_all(struct pipeline *pipeline);

/* Replaces WORKER, idle and marked for renewal: closes its socket (it exits
 * by itself, cleanly) and starts another, which is handed the database as
 * it is now. Not a death: no back-off is counted. */
void workers_renew(struct pipeline_worker *worker);

/* The tick event's callback: starts workers whose back-off ended. */
void workers_on_tick(evutil_socket_t fd, short what, void *arg);

/* scan.c: the virus scan, in this process, before a job goes to a worker. */

/* Reads clamd's settings (filter_setting) into PIPELINE. */
void scan_configure(struct pipeline *pipeline);

/* Queues ENTRY (indexed, on no queue) for its scan; once scanned it goes to
 * the worker queue. */
void scan_submit(struct pipeline *pipeline, struct pipeline_entry *entry);

/* Ends ENTRY's connection or retry timer, if it has one (pipeline_free). */
void scan_entry_clear(struct pipeline_entry *entry);

/* pipeline.c: the jobs. */

/* Opens ENTRY's body read-only: the descriptor, or -1 with ENTRY->fail_reason
 * set. */
int pipeline_body_open(struct pipeline *pipeline, struct pipeline_entry *entry);

/* Reports ENTRY, whose body could not be opened, as failed (from the loop). */
void pipeline_body_failed(struct pipeline *pipeline, struct pipeline_entry *entry);

/* Hands queued jobs to idle workers, oldest job first. */
void pipeline_dispatch(struct pipeline *pipeline);

/* The read event's callback of a worker's socket. */
void pipeline_on_read(evutil_socket_t fd, short what, void *arg);

/* The write event's callback: writes the answers waiting in the output. */
void pipeline_on_write(evutil_socket_t fd, short what, void *arg);

#endif
