/*
 * pipeline.c — the main process's side of the processing stage: starts the
 * worker processes, queues jobs, hands each to a free worker, reads the
 * verdicts, and replaces a worker that dies, hangs or answers garbage.
 *
 * Owns: the worker processes (their pids, until reaped), the main process's
 * end of each worker socket, and the queued and running jobs.
 * Must never: block the event loop (sockets are non-blocking, children are
 * reaped with WNOHANG), trust a byte a worker sends before proto.c has
 * decoded it, lose a job silently (every job submitted and not dropped by
 * pipeline_free ends in exactly one call of the callback), or call the
 * callback from anywhere but the event loop (so a caller's pipeline_submit
 * never finds itself inside its own callback).
 *
 * SECURITY: workers read hostile mail and are assumed compromisable. A reply
 * is accepted only as one well-formed verdict for the job the worker holds;
 * anything else ends that worker. Workers are exec'd afresh, inherit only
 * their socket (fd 3) and the log (stderr), never see the credential key, the
 * database or the data folder's name, and confine themselves (confine.h):
 * this process opens each body read-only and hands the worker that one
 * descriptor with the job.
 *
 * Why the workers run as the daemon's user rather than a user of their own:
 * the daemon drops root before it starts them (popgate.c), and it starts
 * replacements for dead workers at any time later. A separate uid would need
 * a process that keeps root (or CAP_SETUID, with which a compromised daemon
 * could become any user) for as long as the daemon runs. The seccomp filter
 * refuses every open, socket, exec, ptrace and kill, so the uid a worker has
 * reaches nothing: what it could read by its uid it cannot name, and the
 * same holds for a daemon started without root.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/util.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "store/spool.h"

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

static void pipeline_on_read(evutil_socket_t fd, short what, void *arg);
static void pipeline_on_timeout(evutil_socket_t fd, short what, void *arg);
static void pipeline_on_tick(evutil_socket_t fd, short what, void *arg);
static void pipeline_on_failed(evutil_socket_t fd, short what, void *arg);

static struct pipeline_bucket *pipeline_bucket_for(struct pipeline *pipeline, const char *id)
{
	unsigned hash = 0;

	for (const char *p = id; *p != '\0'; p++)
		hash = hash * 31 + (unsigned char)*p;
	return &pipeline->buckets[hash % PIPELINE_ID_BUCKETS];
}

static struct pipeline_entry *pipeline_entry_find(struct pipeline *pipeline, const char *id)
{
	struct pipeline_entry *entry;

	LIST_FOREACH(entry, pipeline_bucket_for(pipeline, id), id_link)
	{
		if (strcmp(entry->job.id, id) == 0)
			return entry;
	}
	return NULL;
}

/* Takes ENTRY (no longer queued) out of the index; the caller frees it. */
static void pipeline_entry_forget(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	LIST_REMOVE(entry, id_link);
	pipeline->pending--;
}

static void pipeline_entry_free(struct pipeline_entry **entry)
{
	if (*entry == NULL)
		return;
	free((*entry)->frame);
	xfree(entry);
}

/* Logs how a reaped worker ended. A clean exit is routine, and so are
 * SIGKILL and SIGTERM, which only we send (the failure was logged then); a
 * crash (SIGSEGV, SIGABRT from a sanitizer) or an error status is not. */
static void pipeline_log_exit(pid_t pid, int status)
{
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_debug("pipeline: worker %ld exited", (long)pid);
	else if (WIFEXITED(status))
		log_warn("pipeline: worker %ld exited with status %d", (long)pid,
			 WEXITSTATUS(status));
	else if (WIFSIGNALED(status) &&
		 (WTERMSIG(status) == SIGKILL || WTERMSIG(status) == SIGTERM))
		log_debug("pipeline: worker %ld ended by signal %d", (long)pid, WTERMSIG(status));
	else if (WIFSIGNALED(status))
		log_warn("pipeline: worker %ld ended by signal %d", (long)pid, WTERMSIG(status));
}

/* Collects every zombie that has exited; the rest stay on the list. */
static void pipeline_reap(struct pipeline *pipeline)
{
	size_t i = 0;

	while (i < pipeline->zombie_count) {
		pid_t pid = pipeline->zombies[i];
		int status = 0;
		pid_t rc = waitpid(pid, &status, WNOHANG);

		if (rc == 0 || (rc < 0 && errno == EINTR)) {
			i++;
			continue;
		}
		/* ECHILD: someone set SIGCHLD to SIG_IGN, the kernel reaped it. */
		if (rc == pid)
			pipeline_log_exit(pid, status);
		pipeline->zombies[i] = pipeline->zombies[--pipeline->zombie_count];
	}
}

/* Reaps until no zombie is left or MS have passed; for pipeline_free only,
 * when blocking the loop briefly is expected. */
static void pipeline_reap_wait(struct pipeline *pipeline, int64_t ms)
{
	int64_t deadline = util_monotonic_ms() + ms;

	for (;;) {
		struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};

		pipeline_reap(pipeline);
		if (pipeline->zombie_count == 0 || util_monotonic_ms() >= deadline)
			return;
		nanosleep(&pause, NULL);
	}
}

static void pipeline_zombie_add(struct pipeline *pipeline, pid_t pid)
{
	if (pipeline->zombie_count == pipeline->zombie_cap) {
		pipeline->zombie_cap = pipeline->zombie_cap ? 2 * pipeline->zombie_cap : 8;
		pipeline->zombies =
		    xrealloc(pipeline->zombies, pipeline->zombie_cap * sizeof(pid_t));
	}
	pipeline->zombies[pipeline->zombie_count++] = pid;
}

/* Arms the tick for the earliest thing it has to do: look for zombies soon,
 * or start a worker whose back-off ends. */
static void pipeline_tick_schedule(struct pipeline *pipeline)
{
	int64_t now = util_monotonic_ms();
	int64_t delay = -1;
	struct timeval tv;

	if (pipeline->zombie_count > 0)
		delay = PIPELINE_REAP_INTERVAL_MS;
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		const struct pipeline_worker *worker = &pipeline->workers[i];
		int64_t wait;

		if (worker->pid > 0)
			continue;
		wait = worker->restart_at_ms > now ? worker->restart_at_ms - now : 0;
		if (delay < 0 || wait < delay)
			delay = wait;
	}
	if (delay < 0)
		return;
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	evtimer_add(pipeline->tick_event, &tv);
}

/*
 * In the child between fork and exec: only async-signal-safe calls. Puts FD
 * on PIPELINE_WORKER_FD without close-on-exec, LOG_FD on stderr, marks everything else the
 * main process may have left inheritable (listening sockets, the database)
 * close-on-exec, and execs the worker program open as EXE_FD.
 */
__attribute__((noreturn)) static void pipeline_child_exec(int fd, int log_fd, int exe_fd,
							  char *const argv[])
{
	sigset_t none;

	/* The main process's handlers (libevent's write to a socket it shares
	 * with the main process) must not run here if a signal arrives before
	 * exec: back to the defaults while all signals are still blocked. */
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction action;

		if (sigaction(sig, NULL, &action) < 0 || action.sa_handler == SIG_IGN ||
		    action.sa_handler == SIG_DFL)
			continue;
		action.sa_handler = SIG_DFL;
		action.sa_flags = 0;
		sigemptyset(&action.sa_mask);
		sigaction(sig, &action, NULL);
	}
	/* A worker starts with no signal blocked, whatever the loop blocks. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Both descriptors first go above every slot they are headed for, so
	 * that placing one cannot overwrite the other: the log is descriptor 3
	 * itself whenever the daemon opened it first, and the socket could be
	 * 2 if the daemon was started without a stderr. */
	int sock_dup = fcntl(fd, F_DUPFD, PIPELINE_WORKER_FD + 1);
	int log_dup =
	    log_fd > STDERR_FILENO ? fcntl(log_fd, F_DUPFD, PIPELINE_WORKER_FD + 1) : STDERR_FILENO;
	if (sock_dup < 0 || log_dup < 0)
		_exit(127);
	/* The worker writes its log lines to its stderr: make that the log file.
	 * dup2 leaves the new descriptors without FD_CLOEXEC. */
	if (log_dup != STDERR_FILENO && dup2(log_dup, STDERR_FILENO) < 0)
		_exit(127);
	if (dup2(sock_dup, PIPELINE_WORKER_FD) < 0)
		_exit(127);
	/* CLOSE_RANGE_CLOEXEC rather than closing: EXE_FD must stay open until
	 * the exec, which then closes it with the rest. */
	if (close_range(PIPELINE_WORKER_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		_exit(127);
	fexecve(exe_fd, argv, environ);
	_exit(127);
}

/* Starts a worker process in WORKER's slot. 0, or -1 with ERR set. */
static int pipeline_worker_start(struct pipeline_worker *worker, char *err, size_t errlen)
{
	struct pipeline *pipeline = worker->pipeline;
	/* argv[0] only names the process for ps: the program is exec'd through
	 * its descriptor, and its path may be /proc/self/fd/N (popgate.c). */
	char name[] = "popgate";
	char worker_flag[] = "--worker";
	char fd_arg[] = PIPELINE_WORKER_FD_ARG;
	char *argv[] = {name, worker_flag, fd_arg, pipeline->hostname, NULL};
	sigset_t all_signals;
	sigset_t saved_signals;
	int sv[2] = {-1, -1};
	pid_t pid = -1;
	int fork_errno;

	/* CLOEXEC on both ends: other workers started later must not inherit
	 * this one's socket, or its EOF would never be seen. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	/* Signals stay blocked from fork until the child has reset its
	 * handlers (see pipeline_child_exec). */
	sigfillset(&all_signals);
	sigprocmask(SIG_SETMASK, &all_signals, &saved_signals);
	pid = fork();
	if (pid == 0)
		pipeline_child_exec(sv[1], log_get_fd(), pipeline->exe_fd, argv);
	fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved_signals, NULL);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(fork_errno));
		goto fail;
	}
	close(sv[1]);
	sv[1] = -1;
	if (evutil_make_socket_nonblocking(sv[0]) < 0) {
		snprintf(err, errlen, "making the worker socket non-blocking failed");
		goto fail;
	}
	worker->read_event =
	    event_new(pipeline->base, sv[0], EV_READ | EV_PERSIST, pipeline_on_read, worker);
	if (worker->read_event == NULL || event_add(worker->read_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the worker socket");
		goto fail;
	}
	worker->pid = pid;
	worker->fd = sv[0];
	worker->send_error[0] = '\0';
	log_event(LOG_INFO, "worker_started", NULL, NULL, "pid=%ld slot=%zu", (long)pid,
		  worker->index);
	return 0;
fail:
	if (worker->read_event != NULL)
		event_free(worker->read_event);
	worker->read_event = NULL;
	if (pid > 0) {
		kill(pid, SIGKILL);
		pipeline_zombie_add(pipeline, pid);
	}
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return -1;
}

/* Ends WORKER's process: stops watching it, closes the socket (a worker
 * waiting for a job then exits by itself), sends SIGNAL unless it is 0, and
 * leaves the pid to be reaped. The job it held, if any, is the caller's. */
static void pipeline_worker_stop(struct pipeline_worker *worker, int signal_number)
{
	struct pipeline *pipeline = worker->pipeline;

	if (worker->read_event != NULL)
		event_free(worker->read_event);
	worker->read_event = NULL;
	if (worker->timeout_event != NULL)
		evtimer_del(worker->timeout_event);
	if (worker->fd >= 0)
		close(worker->fd);
	worker->fd = -1;
	if (worker->input != NULL)
		evbuffer_drain(worker->input, evbuffer_get_length(worker->input));
	worker->send_error[0] = '\0';
	if (worker->pid > 0) {
		if (signal_number != 0)
			kill(worker->pid, signal_number);
		pipeline_zombie_add(pipeline, worker->pid);
	}
	worker->pid = -1;
}

/* Starts a process for WORKER's empty slot now, or after the back-off when
 * workers have been dying too fast. */
static void pipeline_worker_restart(struct pipeline_worker *worker)
{
	struct pipeline *pipeline = worker->pipeline;
	int64_t now = util_monotonic_ms();
	char err[256];

	if (now - pipeline->death_window_start_ms >= PIPELINE_DEATH_WINDOW_MS) {
		pipeline->death_window_start_ms = now;
		pipeline->deaths_in_window = 0;
	}
	pipeline->deaths_in_window++;
	if (pipeline->deaths_in_window > PIPELINE_DEATHS_MAX) {
		if (pipeline->deaths_in_window == PIPELINE_DEATHS_MAX + 1)
			log_warn("pipeline: workers keep dying; starting new ones after %d ms",
				 PIPELINE_BACKOFF_MS);
		worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
	} else if (pipeline_worker_start(worker, err, sizeof(err)) < 0) {
		log_error("pipeline: starting a worker: %s", err);
		worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
	}
	pipeline_tick_schedule(pipeline);
}

/* Reports VERDICT for ENTRY (which has left the queue and its worker) and
 * frees the entry. */
static void pipeline_report(struct pipeline *pipeline, struct pipeline_entry *entry,
			    const struct pipeline_verdict *verdict)
{
	pipeline_entry_forget(pipeline, entry);
	pipeline->callback(verdict, pipeline->ctx);
	pipeline_entry_free(&entry);
}

static void pipeline_dispatch(struct pipeline *pipeline);

/*
 * WORKER died, hung or broke the protocol: kill it, start another, and
 * report its job (if it had one) as WORKER_FAILED with REASON.
 */
static void pipeline_worker_fail(struct pipeline_worker *worker, const char *reason)
{
	struct pipeline *pipeline = worker->pipeline;
	struct pipeline_entry *entry = worker->entry;
	char reason_copy[256];

	/* REASON may live in the worker (send_error), which stop clears. */
	snprintf(reason_copy, sizeof(reason_copy), "%s", reason);
	worker->entry = NULL;
	log_event(LOG_WARN, "worker_failed", entry != NULL ? entry->job.account : NULL,
		  entry != NULL ? entry->job.id : NULL, "pid=%ld reason=%s", (long)worker->pid,
		  reason_copy);
	pipeline_worker_stop(worker, SIGKILL);
	pipeline_reap(pipeline);
	pipeline_worker_restart(worker);
	/* Every piece of state is settled before the callback runs, so a retry
	 * submitted from it finds the id free and may go to the new worker. */
	if (entry != NULL) {
		struct pipeline_verdict verdict = {
		    .outcome = PIPELINE_WORKER_FAILED,
		    .reason = reason_copy,
		};

		memcpy(verdict.id, entry->job.id, sizeof(verdict.id));
		pipeline_report(pipeline, entry, &verdict);
	}
	pipeline_dispatch(pipeline);
}

/*
 * Opens ENTRY's body for a worker: read-only, a regular file, not a link,
 * and without blocking on a FIFO someone put in its place. The descriptor,
 * or -1 with ENTRY->fail_reason set.
 */
static int pipeline_body_open(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	char *path = spool_path(pipeline->data_dir, entry->job.id);
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	free(path);
	if (fd < 0) {
		snprintf(entry->fail_reason, sizeof(entry->fail_reason),
			 "cannot open the body: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(entry->fail_reason, sizeof(entry->fail_reason),
			 "the body is not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Sends ENTRY's job to the idle WORKER with BODY_FD attached (SCM_RIGHTS to
 * the frame's first byte). A failure is not handled here but from the event
 * loop (through the read event), so that pipeline_submit never calls the
 * callback.
 */
static void pipeline_worker_send(struct pipeline_worker *worker, struct pipeline_entry *entry,
				 int body_fd)
{
	struct pipeline *pipeline = worker->pipeline;
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = entry->frame, .iov_len = entry->frame_len};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.data,
	    .msg_controllen = sizeof(control.data),
	};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	ssize_t n;

	memset(control.data, 0, sizeof(control.data));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &body_fd, sizeof(int));
	worker->entry = entry;
	/* An idle worker has read every byte we sent it, so its socket buffer is
	 * empty and a frame of a few hundred bytes goes out whole; a short write
	 * could only mean something is badly wrong. MSG_NOSIGNAL turns a dead
	 * worker into EPIPE rather than a SIGPIPE for the whole gateway. */
	n = sendmsg(worker->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* The worker has its own copy now (or never will). */
	close(body_fd);
	if (n < 0 || (size_t)n != entry->frame_len) {
		snprintf(worker->send_error, sizeof(worker->send_error), "sending the job: %s",
			 n < 0 ? strerror(errno) : "short write");
		event_active(worker->read_event, EV_READ, 0);
		return;
	}
	if (pipeline->worker_timeout > 0) {
		struct timeval tv = {.tv_sec = pipeline->worker_timeout};

		evtimer_add(worker->timeout_event, &tv);
	}
}

/* Hands queued jobs to idle workers, oldest job first. */
static void pipeline_dispatch(struct pipeline *pipeline)
{
	size_t i = 0;

	while (!TAILQ_EMPTY(&pipeline->queue) && i < pipeline->worker_count) {
		struct pipeline_worker *worker = &pipeline->workers[i];
		struct pipeline_entry *entry;
		int body_fd;

		if (worker->pid <= 0 || worker->entry != NULL || worker->send_error[0] != '\0') {
			i++;
			continue;
		}
		entry = TAILQ_FIRST(&pipeline->queue);
		TAILQ_REMOVE(&pipeline->queue, entry, queue_link);
		body_fd = pipeline_body_open(pipeline, entry);
		if (body_fd < 0) {
			/* The worker stays idle for the next job. */
			TAILQ_INSERT_TAIL(&pipeline->failed, entry, queue_link);
			event_active(pipeline->failed_event, EV_TIMEOUT, 0);
			continue;
		}
		pipeline_worker_send(worker, entry, body_fd);
		i++;
	}
}

/* Reports the jobs whose body could not be opened. */
static void pipeline_on_failed(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pipeline = arg;
	struct pipeline_queue failed;

	(void)fd;
	(void)what;
	/* Taken as a whole first: a retry submitted from the callback may fail
	 * again and must wait for the next round, not loop here. */
	TAILQ_INIT(&failed);
	TAILQ_CONCAT(&failed, &pipeline->failed, queue_link);
	while (!TAILQ_EMPTY(&failed)) {
		struct pipeline_entry *entry = TAILQ_FIRST(&failed);
		struct pipeline_verdict verdict = {
		    .outcome = PIPELINE_WORKER_FAILED,
		    .reason = entry->fail_reason,
		};

		TAILQ_REMOVE(&failed, entry, queue_link);
		memcpy(verdict.id, entry->job.id, sizeof(verdict.id));
		log_event(LOG_WARN, "body_open_failed", entry->job.account, entry->job.id, "%s",
			  entry->fail_reason);
		pipeline_report(pipeline, entry, &verdict);
	}
	pipeline_dispatch(pipeline);
}

/* Handles the bytes of a reply read so far: nothing until a whole frame is
 * there, then exactly one verdict for the job the worker holds. */
static void pipeline_worker_parse(struct pipeline_worker *worker)
{
	struct pipeline *pipeline = worker->pipeline;
	size_t len = evbuffer_get_length(worker->input);
	const unsigned char *data = evbuffer_pullup(worker->input, -1);
	struct pipeline_verdict verdict;
	struct pipeline_entry *entry;
	char reason[160];
	size_t consumed;
	const char *err;

	if (proto_verdict_decode(data, len, &consumed, &verdict, &err) < 0) {
		snprintf(reason, sizeof(reason), "malformed reply: %s", err);
		pipeline_worker_fail(worker, reason);
		return;
	}
	if (consumed == 0)
		return;
	entry = worker->entry;
	err = NULL;
	if (entry == NULL)
		err = "reply without a job";
	else if (strcmp(verdict.id, entry->job.id) != 0)
		err = "reply for another message";
	else if (consumed != len)
		err = "bytes after the reply";
	if (err != NULL) {
		proto_verdict_clear(&verdict);
		pipeline_worker_fail(worker, err);
		return;
	}
	evbuffer_drain(worker->input, consumed);
	evtimer_del(worker->timeout_event);
	worker->entry = NULL;
	pipeline_report(pipeline, entry, &verdict);
	proto_verdict_clear(&verdict);
	pipeline_dispatch(pipeline);
}

static void pipeline_on_read(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline_worker *worker = arg;
	char reason[160];
	int n;

	(void)what;
	if (worker->send_error[0] != '\0') {
		pipeline_worker_fail(worker, worker->send_error);
		return;
	}
	/* At most one frame's worth: a worker that floods us is cut off by the
	 * decoder after the first frame, never buffered without bound. */
	n = evbuffer_read(worker->input, fd, PROTO_FRAME_MAX);
	if (n == 0) {
		pipeline_worker_fail(worker, "worker exited");
		return;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		snprintf(reason, sizeof(reason), "reading from the worker: %s", strerror(errno));
		pipeline_worker_fail(worker, reason);
		return;
	}
	pipeline_worker_parse(worker);
}

static void pipeline_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline_worker *worker = arg;
	char reason[64];

	(void)fd;
	(void)what;
	snprintf(reason, sizeof(reason), "timed out after %d s", worker->pipeline->worker_timeout);
	pipeline_worker_fail(worker, reason);
}

static void pipeline_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pipeline = arg;
	int64_t now = util_monotonic_ms();
	char err[256];

	(void)fd;
	(void)what;
	pipeline_reap(pipeline);
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		if (worker->pid > 0 || worker->restart_at_ms > now)
			continue;
		if (pipeline_worker_start(worker, err, sizeof(err)) < 0) {
			log_error("pipeline: starting a worker: %s", err);
			worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
		}
	}
	pipeline_tick_schedule(pipeline);
	pipeline_dispatch(pipeline);
}

struct pipeline *pipeline_new(struct event_base *base, const char *self_exe, const char *data_dir,
			      const char *hostname, int worker_count, int worker_timeout_seconds,
			      pipeline_verdict_cb *callback, void *ctx, char *err, size_t errlen)
{
	struct pipeline *pipeline = NULL;
	char start_err[256];

	if (worker_count < 0 || worker_count > PIPELINE_WORKERS_MAX) {
		snprintf(err, errlen, "workers must be 0 to %d", PIPELINE_WORKERS_MAX);
		goto fail;
	}
	if (worker_timeout_seconds < 0) {
		snprintf(err, errlen, "worker_timeout must not be negative");
		goto fail;
	}
	/* Checked here so a bad path is one clear error, not workers that die
	 * at start over and over. */
	if (access(self_exe, X_OK) < 0) {
		snprintf(err, errlen, "cannot run %s: %s", self_exe, strerror(errno));
		goto fail;
	}
	int exe_fd = open(self_exe, O_PATH | O_CLOEXEC);
	if (exe_fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", self_exe, strerror(errno));
		goto fail;
	}
	if (worker_count == 0) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);

		worker_count = PIPELINE_WORKERS_MAX;
		if (cores < PIPELINE_WORKERS_MAX)
			worker_count = cores < 1 ? 1 : (int)cores;
	}
	pipeline = xcalloc(1, sizeof(*pipeline));
	pipeline->base = base;
	pipeline->self_exe = xstrdup(self_exe);
	pipeline->exe_fd = exe_fd;
	pipeline->data_dir = xstrdup(data_dir);
	pipeline->hostname = xstrdup(hostname);
	pipeline->worker_timeout = worker_timeout_seconds;
	pipeline->callback = callback;
	pipeline->ctx = ctx;
	TAILQ_INIT(&pipeline->queue);
	TAILQ_INIT(&pipeline->failed);
	for (size_t i = 0; i < PIPELINE_ID_BUCKETS; i++)
		LIST_INIT(&pipeline->buckets[i]);
	pipeline->death_window_start_ms = util_monotonic_ms();
	pipeline->worker_count = (size_t)worker_count;
	pipeline->workers = xcalloc(pipeline->worker_count, sizeof(*pipeline->workers));
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		worker->pipeline = pipeline;
		worker->index = i;
		worker->pid = -1;
		worker->fd = -1;
	}
	pipeline->tick_event = evtimer_new(base, pipeline_on_tick, pipeline);
	pipeline->failed_event = event_new(base, -1, 0, pipeline_on_failed, pipeline);
	if (pipeline->tick_event == NULL || pipeline->failed_event == NULL) {
		snprintf(err, errlen, "cannot create the pipeline timer");
		goto fail;
	}
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		worker->input = evbuffer_new();
		worker->timeout_event = evtimer_new(base, pipeline_on_timeout, worker);
		if (worker->input == NULL || worker->timeout_event == NULL) {
			snprintf(err, errlen, "cannot create the worker buffers");
			goto fail;
		}
		if (pipeline_worker_start(worker, start_err, sizeof(start_err)) < 0) {
			snprintf(err, errlen, "starting a worker: %s", start_err);
			goto fail;
		}
	}
	return pipeline;
fail:
	pipeline_free(&pipeline);
	return NULL;
}

int pipeline_submit(struct pipeline *pipeline, const struct pipeline_job *job)
{
	struct pipeline_entry *entry;
	const char *err;

	entry = xcalloc(1, sizeof(*entry));
	/* Encoding checks the job (id, strings, date) before it is queued, so a
	 * bad job is the caller's error now rather than a worker failure later. */
	if (proto_job_encode(job, &entry->frame, &entry->frame_len, &err) < 0) {
		log_error("pipeline: refusing a job: %s", err);
		pipeline_entry_free(&entry);
		return -1;
	}
	if (pipeline_entry_find(pipeline, job->id) != NULL) {
		pipeline_entry_free(&entry);
		return 0;
	}
	entry->job = *job;
	TAILQ_INSERT_TAIL(&pipeline->queue, entry, queue_link);
	LIST_INSERT_HEAD(pipeline_bucket_for(pipeline, job->id), entry, id_link);
	pipeline->pending++;
	pipeline_dispatch(pipeline);
	return 0;
}

size_t pipeline_pending(const struct pipeline *pipeline)
{
	return pipeline->pending;
}

size_t pipeline_worker_pids(const struct pipeline *pipeline, int *pids, size_t max)
{
	size_t count = 0;

	for (size_t i = 0; i < pipeline->worker_count && count < max; i++) {
		if (pipeline->workers[i].pid > 0)
			pids[count++] = (int)pipeline->workers[i].pid;
	}
	return count;
}

void pipeline_free(struct pipeline **pipeline_r)
{
	struct pipeline *pipeline = *pipeline_r;

	if (pipeline == NULL)
		return;
	/* Closing the socket lets an idle worker exit cleanly; SIGTERM ends a
	 * busy one; SIGKILL, after a short wait, one that ignores SIGTERM. */
	for (size_t i = 0; i < pipeline->worker_count; i++)
		pipeline_worker_stop(&pipeline->workers[i], 0);
	pipeline_reap_wait(pipeline, PIPELINE_EXIT_WAIT_MS);
	for (size_t i = 0; i < pipeline->zombie_count; i++)
		kill(pipeline->zombies[i], SIGTERM);
	pipeline_reap_wait(pipeline, PIPELINE_STOP_WAIT_MS);
	for (size_t i = 0; i < pipeline->zombie_count; i++) {
		int status;

		kill(pipeline->zombies[i], SIGKILL);
		while (waitpid(pipeline->zombies[i], &status, 0) < 0 && errno == EINTR)
			continue;
	}
	for (size_t i = 0; i < PIPELINE_ID_BUCKETS; i++) {
		while (!LIST_EMPTY(&pipeline->buckets[i])) {
			struct pipeline_entry *entry = LIST_FIRST(&pipeline->buckets[i]);

			LIST_REMOVE(entry, id_link);
			pipeline_entry_free(&entry);
		}
	}
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		if (worker->timeout_event != NULL)
			event_free(worker->timeout_event);
		if (worker->input != NULL)
			evbuffer_free(worker->input);
	}
	if (pipeline->tick_event != NULL)
		event_free(pipeline->tick_event);
	if (pipeline->failed_event != NULL)
		event_free(pipeline->failed_event);
	free(pipeline->workers);
	free(pipeline->zombies);
	free(pipeline->self_exe);
	close(pipeline->exe_fd);
	free(pipeline->data_dir);
	free(pipeline->hostname);
	xfree(pipeline_r);
}
