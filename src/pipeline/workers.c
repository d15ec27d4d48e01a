/*
 * workers.c — the worker processes of the pipeline: starting one (fork and
 * fexecve of popgate itself with "--worker"), stopping one, restarting a
 * dead one with a back-off when they keep dying, and reaping them.
 *
 * Owns: the worker processes' pids until they are reaped (the zombie list)
 * and the tick that reaps and restarts. Must never: block the event loop
 * (children are reaped with WNOHANG; only pipeline_free waits, briefly),
 * let a worker inherit any descriptor but its socket and the log, or run
 * anything in the child between fork and exec that is not
 * async-signal-safe. Why workers run as the daemon's user: see pipeline.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/workers.h"

/* Logs how a reaped worker ended. A clean exit is routine, and so are
 * SIGKILL and SIGTERM, which only we send (the failure was logged then); a
 * crash (SIGSEGV, SIGABRT from a sanitizer) or an error status is not. */
static void workers_log_exit(pid_t pid, int status)
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
void workers_reap(struct pipeline *pipeline)
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
			workers_log_exit(pid, status);
		pipeline->zombies[i] = pipeline->zombies[--pipeline->zombie_count];
	}
}

/* Reaps until no zombie is left or MS have passed; for pipeline_free only,
 * when blocking the loop briefly is expected. */
void workers_reap_wait(struct pipeline *pipeline, int64_t ms)
{
	int64_t deadline = util_monotonic_ms() + ms;

	for (;;) {
		struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};

		workers_reap(pipeline);
		if (pipeline->zombie_count == 0 || util_monotonic_ms() >= deadline)
			return;
		nanosleep(&pause, NULL);
	}
}

static void workers_zombie_add(struct pipeline *pipeline, pid_t pid)
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
static void workers_tick_schedule(struct pipeline *pipeline)
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
__attribute__((noreturn)) static void workers_child_exec(int fd, int log_fd, int exe_fd,
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
int workers_start(struct pipeline_worker *worker, char *err, size_t errlen)
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
	 * handlers (see workers_child_exec). */
	sigfillset(&all_signals);
	sigprocmask(SIG_SETMASK, &all_signals, &saved_signals);
	pid = fork();
	if (pid == 0)
		workers_child_exec(sv[1], log_get_fd(), pipeline->exe_fd, argv);
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
		workers_zombie_add(pipeline, pid);
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
void workers_stop(struct pipeline_worker *worker, int signal_number)
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
		workers_zombie_add(pipeline, worker->pid);
	}
	worker->pid = -1;
}

/* Starts a process for WORKER's empty slot now, or after the back-off when
 * workers have been dying too fast. */
void workers_restart(struct pipeline_worker *worker)
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
	} else if (workers_start(worker, err, sizeof(err)) < 0) {
		log_error("pipeline: starting a worker: %s", err);
		worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
	}
	workers_tick_schedule(pipeline);
}

void workers_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pipeline = arg;
	int64_t now = util_monotonic_ms();
	char err[256];

	(void)fd;
	(void)what;
	workers_reap(pipeline);
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		if (worker->pid > 0 || worker->restart_at_ms > now)
			continue;
		if (workers_start(worker, err, sizeof(err)) < 0) {
			log_error("pipeline: starting a worker: %s", err);
			worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
		}
	}
	workers_tick_schedule(pipeline);
	pipeline_dispatch(pipeline);
}
