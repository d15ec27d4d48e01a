/*
 * workers.c — the worker processes of the pipeline, as the daemon sees them:
 * asking the spawner (spawner.h) to start one for a slot and taking the
 * socket it answers with, having it kill one, logging how each ended as it
 * reports, and restarting a dead one with a back-off when they keep dying.
 *
 * Owns: the daemon's end of the spawner's socket and the requests not yet
 * sent on it, the tick that restarts workers, and the setup frame each new
 * worker is sent first (proto.h): the Bayes database, opened here at every
 * start, so a worker started after training reads the new one; and the
 * replacement of the workers when the database changes (a control notice
 * after `popgatectl bayes train`, or the fallback check, asks).
 * Must never: block the event loop (the spawner's socket is non-blocking;
 * a request it has no room for waits in spawner_output), or trust what the
 * spawner says: it runs as the workers' user, so each answer is checked
 * against what was asked (a start for a slot waiting for one, a stream
 * socket attached), and anything else ends the daemon as a lost spawner
 * would.
 *
 * Why the workers are not forked here: they run as a user of their own
 * ([server] worker_user), and this process has no right left to make a
 * process another user once it dropped root (popgate.c). See spawner.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "filters/bayes.h"
#include "pipeline/proto.h"
#include "pipeline/workers.h"

/* Messages handled per wake-up of the spawner's socket, so that a chatty
 * spawner cannot hold the loop. */
#define WORKERS_SPAWNER_BATCH 64

/* Logs how a worker ended, as the spawner reports. A clean exit is routine,
 * and so are SIGKILL and SIGTERM, which only the spawner sends (the failure
 * was logged then); a crash (SIGSEGV, SIGABRT from a sanitizer) or an
 * error status is not. */
static void workers_renew_marked(struct pipeline *pipeline);

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

/* Arms the tick for the earliest worker whose back-off ends. */
static void workers_tick_schedule(struct pipeline *pipeline)
{
	int64_t now = util_monotonic_ms();
	int64_t delay = -1;
	struct timeval tv;

	for (size_t i = 0; i < pipeline->worker_count; i++) {
		const struct pipeline_worker *worker = &pipeline->workers[i];
		int64_t wait;

		if (worker->pid > 0 || worker->starting)
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
 * The spawner is gone or broke the protocol (REASON): no worker can be
 * started any more, and this process cannot start another spawner (it has
 * no root left to give it the workers' user). So the daemon stops, with an
 * error status for the service manager to restart it; no message is lost,
 * their states are in the store and recovery resumes them.
 */
static void workers_spawner_fail(struct pipeline *pipeline, const char *reason)
{
	if (pipeline->spawner_lost)
		return;
	pipeline->spawner_lost = true;
	log_error("pipeline: the worker spawner %s; stopping, since no worker can be started "
		  "without it",
		  reason);
	if (pipeline->spawner_event != NULL)
		event_del(pipeline->spawner_event);
	if (pipeline->spawner_write_event != NULL)
		event_del(pipeline->spawner_write_event);
	event_base_loopexit(pipeline->base, NULL);
}

bool workers_spawner_lost(struct pipeline *pipeline)
{
	struct pollfd pfd = {.fd = pipeline->spawner.fd, .events = POLLRDHUP};

	if (pipeline->spawner_lost)
		return true;
	/* The spawner's socket is closed when it exits, before its workers
	 * are sent their parent-death signal: a worker that died with it
	 * finds it closed already. */
	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLRDHUP | POLLERR)) != 0)
		workers_spawner_fail(pipeline, "exited");
	return pipeline->spawner_lost;
}

/* Sends what waits in spawner_output, as far as the socket takes it. */
static void workers_spawner_flush(struct pipeline *pipeline)
{
	struct spawner_message message;

	while (evbuffer_get_length(pipeline->spawner_output) >= sizeof(message)) {
		evbuffer_copyout(pipeline->spawner_output, &message, sizeof(message));
		if (spawner_send(pipeline->spawner.fd, &message, -1, MSG_DONTWAIT) < 0) {
			char reason[128];

			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(pipeline->spawner_write_event, NULL);
				return;
			}
			snprintf(reason, sizeof(reason), "cannot be written to: %s",
				 strerror(errno));
			workers_spawner_fail(pipeline, reason);
			return;
		}
		evbuffer_drain(pipeline->spawner_output, sizeof(message));
	}
	event_del(pipeline->spawner_write_event);
}

static void workers_on_spawner_writable(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	workers_spawner_flush(arg);
}

/* Sends MESSAGE to the spawner now, or queues it behind earlier ones. -1
 * once the spawner is lost. */
static int workers_spawner_request(struct pipeline *pipeline, const struct spawner_message *message)
{
	if (pipeline->spawner_lost)
		return -1;
	evbuffer_add(pipeline->spawner_output, message, sizeof(*message));
	workers_spawner_flush(pipeline);
	return pipeline->spawner_lost ? -1 : 0;
}

/* True if FD is a connected stream socket, as a worker's must be. */
static bool workers_socket_valid(int fd)
{
	struct stat st;
	int type = 0;
	socklen_t len = sizeof(type);

	return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
	       getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
}

/* Fills *ID from ST (NULL: no database). */
static void workers_bayes_id_set(struct workers_bayes_id *id, const struct stat *st)
{
	memset(id, 0, sizeof(*id));
	if (st == NULL)
		return;
	id->present = true;
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->mtime = st->st_mtim;
}

static bool workers_bayes_id_equal(const struct workers_bayes_id *a,
				   const struct workers_bayes_id *b)
{
	if (a->present != b->present)
		return false;
	return !a->present ||
	       (a->dev == b->dev && a->ino == b->ino && a->mtime.tv_sec == b->mtime.tv_sec &&
		a->mtime.tv_nsec == b->mtime.tv_nsec);
}

/*
 * Opens the Bayes database for a new worker, read-only: the worker's user
 * cannot open the data folder. The descriptor, or -1 when there is none
 * (not trained yet) or it cannot be opened (logged; the filter then says
 * it is not trained). *ID says which file it is, also when it could not be
 * opened (so that workers_bayes_check does not replace workers over and
 * over for a file that cannot be opened anyway).
 */
static int workers_bayes_open(const struct pipeline *pipeline, struct workers_bayes_id *id)
{
	char *path = xasprintf("%s/%s", pipeline->data_dir, BAYES_DB_NAME);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;

	if (fd < 0 && errno != ENOENT)
		log_warn("pipeline: opening %s for the workers: %s", path, strerror(errno));
	if (fd >= 0 ? fstat(fd, &st) == 0 : lstat(path, &st) == 0)
		workers_bayes_id_set(id, &st);
	else
		workers_bayes_id_set(id, NULL);
	free(path);
	return fd;
}

/*
 * Sends the new WORKER its setup frame, the first on its socket, with the
 * Bayes database and the rules file's text attached when there are. A failure is handled from the
 * event loop, as a failed job send is (pipeline.c).
 */
static void workers_setup_send(struct pipeline_worker *worker)
{
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(2 * sizeof(int))];
	} control;
	int attached[2];
	size_t attached_count = 0;
	struct proto_setup setup = {0};
	unsigned char *frame;
	size_t frame_len;
	struct iovec iov;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int bayes_fd = workers_bayes_open(worker->pipeline, &worker->bayes);
	ssize_t n;

	setup.bayes_db = bayes_fd >= 0;
	setup.rules = worker->pipeline->rules_fd >= 0;
	setup.settings = worker->pipeline->filter_settings;
	proto_setup_encode(&setup, &frame, &frame_len);
	iov.iov_base = frame;
	iov.iov_len = frame_len;
	if (bayes_fd >= 0)
		attached[attached_count++] = bayes_fd;
	if (worker->pipeline->rules_fd >= 0)
		attached[attached_count++] = worker->pipeline->rules_fd;
	if (attached_count > 0) {
		struct cmsghdr *c;

		memset(control.data, 0, sizeof(control.data));
		msg.msg_control = control.data;
		msg.msg_controllen = CMSG_SPACE(attached_count * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(attached_count * sizeof(int));
		memcpy(CMSG_DATA(c), attached, attached_count * sizeof(int));
	}
	/* The socket is new and empty: a frame of a few bytes goes out whole. */
	n = sendmsg(worker->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (bayes_fd >= 0)
		close(bayes_fd);
	if (n < 0 || (size_t)n != frame_len) {
		snprintf(worker->send_error, sizeof(worker->send_error), "sending the setup: %s",
			 n < 0 ? strerror(errno) : "short write");
		event_active(worker->read_event, EV_READ, 0);
	}
	free(frame);
}

/* The spawner started the worker of MESSAGE->slot; FD is its socket (ours
 * now). -1 with *ERR set if that is not what was asked. */
static int workers_on_started(struct pipeline *pipeline, const struct spawner_message *message,
			      int fd, const char **err)
{
	struct pipeline_worker *worker;

	if (message->slot >= pipeline->worker_count || !pipeline->workers[message->slot].starting) {
		*err = "started a worker nobody asked for";
		return -1;
	}
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		if (pipeline->workers[i].pid == message->pid) {
			*err = "started a worker with the pid of another";
			return -1;
		}
	}
	if (!workers_socket_valid(fd) || evutil_make_socket_nonblocking(fd) < 0) {
		*err = "sent a worker socket that is not one";
		return -1;
	}
	worker = &pipeline->workers[message->slot];
	worker->read_event =
	    event_new(pipeline->base, fd, EV_READ | EV_PERSIST, pipeline_on_read, worker);
	worker->write_event = event_new(pipeline->base, fd, EV_WRITE, pipeline_on_write, worker);
	if (worker->read_event == NULL || worker->write_event == NULL ||
	    event_add(worker->read_event, NULL) < 0) {
		if (worker->read_event != NULL)
			event_free(worker->read_event);
		if (worker->write_event != NULL)
			event_free(worker->write_event);
		worker->read_event = NULL;
		worker->write_event = NULL;
		*err = "sent a worker socket that cannot be watched";
		return -1;
	}
	worker->starting = false;
	worker->pid = message->pid;
	worker->fd = fd;
	worker->send_error[0] = '\0';
	worker->renew = false;
	workers_setup_send(worker);
	log_event(LOG_INFO, "worker_started", NULL, NULL, "pid=%ld slot=%zu", (long)worker->pid,
		  worker->index);
	return 0;
}

/* The spawner could not start the worker of MESSAGE->slot. */
static int workers_on_start_failed(struct pipeline *pipeline, const struct spawner_message *message,
				   const char **err)
{
	struct pipeline_worker *worker;

	if (message->slot >= pipeline->worker_count || !pipeline->workers[message->slot].starting) {
		*err = "failed a start nobody asked for";
		return -1;
	}
	worker = &pipeline->workers[message->slot];
	worker->starting = false;
	log_error("pipeline: starting a worker: %s", strerror(message->value));
	worker->restart_at_ms = util_monotonic_ms() + PIPELINE_BACKOFF_MS;
	workers_tick_schedule(pipeline);
	return 0;
}

/* Handles one message from the spawner (FD came with it, or -1); -1 with
 * *ERR set if it is not one the daemon expects. */
static int workers_on_message(struct pipeline *pipeline, const struct spawner_message *message,
			      int fd, const char **err)
{
	switch (message->type) {
	case SPAWNER_STARTED:
		if (workers_on_started(pipeline, message, fd, err) < 0) {
			close(fd);
			return -1;
		}
		pipeline_dispatch(pipeline);
		return 0;
	case SPAWNER_START_FAILED:
		return workers_on_start_failed(pipeline, message, err);
	case SPAWNER_ENDED:
		workers_log_exit(message->pid, message->value);
		return 0;
	case SPAWNER_READY:
	case SPAWNER_START:
	case SPAWNER_KILL:
	case SPAWNER_LOG:
		break;
	}
	if (fd >= 0)
		close(fd);
	*err = "sent a message only the daemon sends, or a second READY";
	return -1;
}

static void workers_on_spawner_read(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pipeline = arg;

	(void)what;
	for (int i = 0; i < WORKERS_SPAWNER_BATCH && !pipeline->spawner_lost; i++) {
		struct spawner_message message;
		const char *err;
		char reason[160];
		int attached;

		switch (spawner_receive(fd, &message, &attached, &err)) {
		case SPAWNER_NOTHING:
			return;
		case SPAWNER_CLOSED:
			workers_spawner_fail(pipeline, "exited");
			return;
		case SPAWNER_BROKEN:
			snprintf(reason, sizeof(reason), "broke the protocol: %s", err);
			workers_spawner_fail(pipeline, reason);
			return;
		case SPAWNER_RECEIVED:
			break;
		}
		if (workers_on_message(pipeline, &message, attached, &err) < 0) {
			snprintf(reason, sizeof(reason), "broke the protocol: %s", err);
			workers_spawner_fail(pipeline, reason);
			return;
		}
	}
}

void workers_log_reopened(struct pipeline *pipeline)
{
	struct spawner_message message = {.type = SPAWNER_LOG};

	/* Behind the requests still queued, if any: tried once, and a socket
	 * without room only costs the new workers' lines their file. */
	workers_spawner_flush(pipeline);
	if (pipeline->spawner_lost || evbuffer_get_length(pipeline->spawner_output) > 0 ||
	    spawner_send(pipeline->spawner.fd, &message, log_get_fd(), MSG_DONTWAIT) < 0)
		log_warn("pipeline: workers started from now on log to the old log file");
}

int workers_begin(struct pipeline *pipeline, char *err, size_t errlen)
{
	char start_err[256];

	if (evutil_make_socket_nonblocking(pipeline->spawner.fd) < 0) {
		snprintf(err, errlen, "making the spawner's socket non-blocking failed");
		return -1;
	}
	pipeline->spawner_output = evbuffer_new();
	pipeline->spawner_event =
	    event_new(pipeline->base, pipeline->spawner.fd, EV_READ | EV_PERSIST,
		      workers_on_spawner_read, pipeline);
	pipeline->spawner_write_event = event_new(pipeline->base, pipeline->spawner.fd, EV_WRITE,
						  workers_on_spawner_writable, pipeline);
	if (pipeline->spawner_output == NULL || pipeline->spawner_event == NULL ||
	    pipeline->spawner_write_event == NULL || event_add(pipeline->spawner_event, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the spawner's socket");
		return -1;
	}
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		if (workers_start(&pipeline->workers[i], start_err, sizeof(start_err)) < 0) {
			snprintf(err, errlen, "starting a worker: %s", start_err);
			return -1;
		}
	}
	return 0;
}

int workers_start(struct pipeline_worker *worker, char *err, size_t errlen)
{
	struct spawner_message request = {.type = SPAWNER_START, .slot = (uint32_t)worker->index};

	if (workers_spawner_request(worker->pipeline, &request) < 0) {
		snprintf(err, errlen, "the worker spawner is gone");
		return -1;
	}
	worker->starting = true;
	return 0;
}

void workers_stop(struct pipeline_worker *worker, bool kill_process)
{
	struct pipeline *pipeline = worker->pipeline;

	if (worker->read_event != NULL)
		event_free(worker->read_event);
	worker->read_event = NULL;
	if (worker->write_event != NULL)
		event_free(worker->write_event);
	worker->write_event = NULL;
	/* Its questions die with it. */
	resolver_cancel(&worker->lookup);
	worker->queries = 0;
	if (worker->output != NULL)
		evbuffer_drain(worker->output, evbuffer_get_length(worker->output));
	if (worker->timeout_event != NULL)
		evtimer_del(worker->timeout_event);
	if (worker->fd >= 0)
		close(worker->fd);
	worker->fd = -1;
	if (worker->input != NULL)
		evbuffer_drain(worker->input, evbuffer_get_length(worker->input));
	worker->send_error[0] = '\0';
	worker->renew = false;
	/* The spawner kills only a worker of its own that it has not reaped:
	 * one that ended meanwhile is refused, never another process. */
	if (worker->pid > 0 && kill_process) {
		struct spawner_message request = {.type = SPAWNER_KILL, .pid = worker->pid};

		workers_spawner_request(pipeline, &request);
	}
	worker->pid = -1;
}

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

void workers_bayes_check(struct pipeline *pipeline)
{
	char *path = xasprintf("%s/%s", pipeline->data_dir, BAYES_DB_NAME);
	struct workers_bayes_id now;
	struct stat st;
	size_t marked = 0;

	workers_bayes_id_set(&now, lstat(path, &st) == 0 ? &st : NULL);
	free(path);
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		/* A worker still starting opens the file when it is started. */
		if (worker->pid <= 0 || worker->renew ||
		    workers_bayes_id_equal(&worker->bayes, &now))
			continue;
		worker->renew = true;
		marked++;
	}
	if (marked == 0)
		return;
	log_event(LOG_INFO, "bayes_changed", NULL, NULL, "workers=%zu", marked);
	workers_renew_marked(pipeline);
}

void workers_renew_all(struct pipeline *pipeline)
{
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		if (pipeline->workers[i].pid > 0)
			pipeline->workers[i].renew = true;
	}
	workers_renew_marked(pipeline);
}

static void workers_renew_marked(struct pipeline *pipeline)
{
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		if (worker->renew && worker->entry == NULL && worker->send_error[0] == '\0')
			workers_renew(worker);
	}
}

void workers_renew(struct pipeline_worker *worker)
{
	char err[256];

	workers_stop(worker, false);
	if (workers_start(worker, err, sizeof(err)) < 0) {
		log_error("pipeline: starting a worker: %s", err);
		worker->restart_at_ms = util_monotonic_ms() + PIPELINE_BACKOFF_MS;
		workers_tick_schedule(worker->pipeline);
	}
}

void workers_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline *pipeline = arg;
	int64_t now = util_monotonic_ms();
	char err[256];

	(void)fd;
	(void)what;
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		if (worker->pid > 0 || worker->starting || worker->restart_at_ms > now)
			continue;
		if (workers_start(worker, err, sizeof(err)) < 0) {
			log_error("pipeline: starting a worker: %s", err);
			worker->restart_at_ms = now + PIPELINE_BACKOFF_MS;
		}
	}
	workers_tick_schedule(pipeline);
}
