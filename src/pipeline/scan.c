/*
 * scan.c — the pipeline's virus scan: a job whose profile runs clamav has
 * its body streamed to clamd (INSTREAM, filters/clamd.h) by this process,
 * in the event loop, before it goes to a worker (workers have no network);
 * the result travels with the job to the verdict (pipeline_verdict.scan).
 *
 * At most [spam] clamd_max_connections scans run at once, the rest wait in
 * order. A scan that cannot finish — clamd down or refusing, no answer
 * within clamd_timeout (connect, send and answer in all), an ERROR reply,
 * a garbled one — leaves the job where it is: indexed in the pipeline, its
 * message in processing, scanned again after clamd_retry seconds (doubling
 * after each failure, up to CLAMAV_RETRY_GROWTH_MAX times). It is never
 * passed to a worker unscanned and never dropped; a restart, even after
 * SIGKILL, finds the message in processing and scans it again.
 *
 * Owns: each scan's connection, body descriptor and timer (struct
 * pipeline_scan, hung on its entry).
 * Must never: block the loop (the socket is non-blocking; the body is a
 * local file read a chunk at a time as clamd takes it), call the verdict
 * callback (only a worker's verdict or a body that cannot be opened ends a
 * job), or buffer more than a reply's CLAMD_REPLY_MAX bytes from clamd.
 *
 * SECURITY: clamd is another process and its reply is parsed by clamd.c
 * (bounded, sanitised). The body is opened as for a worker: read-only, a
 * regular file, not a link.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/workers.h"

/* The bytes queued for clamd before the body is read further. */
#define SCAN_OUTPUT_HIGH (4 * CLAMD_CHUNK_MAX)

struct pipeline_scan {
	struct pipeline *pipeline;
	struct pipeline_entry *entry;
	struct bufferevent *connection; /* while a scan is under way */
	int body_fd;			/* while a scan is under way, else -1 */
	bool body_sent;			/* the zero-length chunk is queued */
	/* While connected: the scan's deadline; while held: the retry. */
	struct event *timer;
	bool held;
};

static void scan_dispatch(struct pipeline *pipeline);

/* Ends SCAN's connection (if any) and disarms its timer. */
static void scan_disconnect(struct pipeline_scan *scan)
{
	evtimer_del(scan->timer);
	if (scan->connection != NULL) {
		bufferevent_free(scan->connection);
		scan->connection = NULL;
		scan->pipeline->scans_running--;
	}
	if (scan->body_fd >= 0) {
		close(scan->body_fd);
		scan->body_fd = -1;
	}
}

/* ENTRY is scanned (its scan_result set): on to the worker queue. */
static void scan_succeeded(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	log_event(entry->scan_result.force_quarantine ? LOG_WARN : LOG_DEBUG, "scanned",
		  entry->job.account, entry->job.id, "clamav: %s", entry->scan_result.reason);
	scan_entry_clear(entry);
	entry->scanned = true;
	TAILQ_INSERT_TAIL(&pipeline->queue, entry, queue_link);
	pipeline_dispatch(pipeline);
}

/* SCAN could not be made (REASON): the job is held and scanned again later. */
static void scan_failed(struct pipeline_scan *scan, const char *reason)
{
	struct pipeline_entry *entry = scan->entry;
	int delay;

	scan_disconnect(scan);
	entry->scan_failures++;
	delay = clamav_retry_delay(&scan->pipeline->clamav, entry->scan_failures);
	log_event(LOG_WARN, "scan_failed", entry->job.account, entry->job.id,
		  "clamd (%s): %s; held in processing, scanned again in %d s (attempt %u)",
		  scan->pipeline->clamav.socket, reason, delay, entry->scan_failures);
	scan->held = true;
	evtimer_add(scan->timer, &(struct timeval){.tv_sec = delay});
}

/* clamd answered REPLY for SCAN. */
static void scan_answered(struct pipeline_scan *scan, const struct clamd_reply *reply)
{
	struct pipeline *pipeline = scan->pipeline;
	char reason[CLAMD_TEXT_MAX + 32];

	if (reply->verdict == CLAMD_ERROR) {
		snprintf(reason, sizeof(reason), "it answered: %s", reply->text);
		scan_failed(scan, reason);
	} else {
		clamav_result_from_reply(reply, &scan->entry->scan_result);
		scan_succeeded(pipeline, scan->entry);
	}
	scan_dispatch(pipeline);
}

/* Parses what clamd sent on SCAN's connection so far (ENDED: it closed).
 * True when a whole reply was there (and SCAN has been dealt with). */
static bool scan_take_reply(struct pipeline_scan *scan, bool ended)
{
	struct evbuffer *input = bufferevent_get_input(scan->connection);
	size_t len = evbuffer_get_length(input);
	struct clamd_reply reply;

	if (len > CLAMD_REPLY_MAX + 1)
		len = CLAMD_REPLY_MAX + 1;
	if (clamd_reply_parse((const char *)evbuffer_pullup(input, (ssize_t)len), len, ended,
			      &reply) == CLAMD_INCOMPLETE)
		return false;
	scan_answered(scan, &reply);
	return true;
}

/* Queues body chunks for clamd until SCAN_OUTPUT_HIGH bytes wait, and the
 * zero-length chunk after the last. 0, or -1 (SCAN failed) on a read error. */
static int scan_fill(struct pipeline_scan *scan)
{
	struct evbuffer *output = bufferevent_get_output(scan->connection);
	unsigned char header[4];
	char *chunk = xmalloc(CLAMD_CHUNK_MAX);
	int rc = 0;

	while (!scan->body_sent && evbuffer_get_length(output) < SCAN_OUTPUT_HIGH) {
		ssize_t n = read(scan->body_fd, chunk, CLAMD_CHUNK_MAX);
		char reason[128];

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(reason, sizeof(reason), "cannot read the body: %s",
				 strerror(errno));
			scan_failed(scan, reason);
			rc = -1;
			break;
		}
		clamd_chunk_header((uint32_t)n, header);
		evbuffer_add(output, header, sizeof(header));
		evbuffer_add(output, chunk, (size_t)n);
		scan->body_sent = n == 0;
	}
	free(chunk);
	return rc;
}

static void scan_on_read(struct bufferevent *connection, void *arg)
{
	struct pipeline_scan *scan = arg;

	(void)connection;
	scan_take_reply(scan, false);
}

static void scan_on_write(struct bufferevent *connection, void *arg)
{
	struct pipeline_scan *scan = arg;

	(void)connection;
	if (!scan->body_sent && scan_fill(scan) < 0)
		scan_dispatch(scan->pipeline);
}

static void scan_on_event(struct bufferevent *connection, short what, void *arg)
{
	struct pipeline_scan *scan = arg;
	struct evbuffer *input = bufferevent_get_input(connection);
	int error = errno;
	char reason[160];

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & BEV_EVENT_EOF)) {
		socklen_t len = sizeof(int);
		int socket_error = 0;
		size_t have = evbuffer_get_length(input);

		/* A connect that failed later (TCP) left its error on the socket. */
		if (getsockopt(bufferevent_getfd(connection), SOL_SOCKET, SO_ERROR, &socket_error,
			       &len) == 0 &&
		    socket_error != 0)
			error = socket_error;
		/* clamd may have answered and closed while the body was still
		 * going out (over its size limit): its answer may wait unread
		 * behind our failed write, and says more than the write's error. */
		if (have <= CLAMD_REPLY_MAX)
			evbuffer_read(input, bufferevent_getfd(connection),
				      (int)(CLAMD_REPLY_MAX + 1 - have));
	}
	if (evbuffer_get_length(input) > 0) {
		scan_take_reply(scan, true);
		return;
	}
	snprintf(reason, sizeof(reason), "%s",
		 (what & BEV_EVENT_EOF) ? "closed the connection without an answer"
					: strerror(error));
	scan_failed(scan, reason);
	scan_dispatch(scan->pipeline);
}

static void scan_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline_scan *scan = arg;
	struct pipeline *pipeline = scan->pipeline;
	char reason[96];

	(void)fd;
	(void)what;
	if (scan->held) {
		/* The wait is over: back in line for a connection. */
		scan->held = false;
		TAILQ_INSERT_TAIL(&pipeline->scan_queue, scan->entry, queue_link);
	} else {
		snprintf(reason, sizeof(reason), "no answer within %d s (clamd_timeout)",
			 pipeline->clamav.timeout_seconds);
		scan_failed(scan, reason);
	}
	scan_dispatch(pipeline);
}

/* Starts ENTRY's scan: its body to clamd, or its result at once when it is
 * too large to scan, or a failure (held) when clamd cannot be reached. */
static void scan_start(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	struct pipeline_scan *scan = entry->scan;
	struct stat st;
	int body_fd, fd;

	body_fd = pipeline_body_open(pipeline, entry);
	if (body_fd < 0) {
		/* As for a worker: the job fails (route.c retries, then holds it
		 * as suspect). */
		scan_entry_clear(entry);
		pipeline_body_failed(pipeline, entry);
		return;
	}
	if (fstat(body_fd, &st) == 0 && (long long)st.st_size > pipeline->clamav.max_size) {
		close(body_fd);
		clamav_result_too_large((uint64_t)st.st_size, pipeline->clamav.max_size,
					&entry->scan_result);
		scan_succeeded(pipeline, entry);
		return;
	}
	if (scan == NULL) {
		scan = entry->scan = xcalloc(1, sizeof(*scan));
		scan->pipeline = pipeline;
		scan->entry = entry;
		scan->body_fd = -1;
		scan->timer = evtimer_new(pipeline->base, scan_on_timer, scan);
		if (scan->timer == NULL)
			abort(); /* out of memory, as the x* allocators handle it */
	}
	scan->body_fd = body_fd;
	scan->body_sent = false;
	if (pipeline->clamd_address_error[0] != '\0') {
		scan_failed(scan, pipeline->clamd_address_error);
		return;
	}
	/* Connected here rather than by libevent, so a refusal (clamd down)
	 * is known with its errno at once. */
	fd = socket(pipeline->clamd_address.addr.ss_family,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&pipeline->clamd_address.addr,
			       pipeline->clamd_address.len) < 0 &&
		       errno != EINPROGRESS)) {
		char reason[160];

		snprintf(reason, sizeof(reason), "cannot connect: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		scan_failed(scan, reason);
		return;
	}
	scan->connection = bufferevent_socket_new(pipeline->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (scan->connection == NULL)
		abort(); /* out of memory, as the x* allocators handle it */
	pipeline->scans_running++;
	bufferevent_setcb(scan->connection, scan_on_read, scan_on_write, scan_on_event, scan);
	/* The write callback runs when what waits for clamd falls below half;
	 * a reply is read up to one byte past its limit, which the parser
	 * refuses. */
	bufferevent_setwatermark(scan->connection, EV_WRITE, SCAN_OUTPUT_HIGH / 2, 0);
	bufferevent_setwatermark(scan->connection, EV_READ, 0, CLAMD_REPLY_MAX + 1);
	evtimer_add(scan->timer, &(struct timeval){.tv_sec = pipeline->clamav.timeout_seconds});
	evbuffer_add(bufferevent_get_output(scan->connection), CLAMD_COMMAND, CLAMD_COMMAND_LEN);
	if (scan_fill(scan) < 0)
		return;
	bufferevent_enable(scan->connection, EV_READ | EV_WRITE);
}

/* Starts the waiting scans, oldest first, while connections are free. */
static void scan_dispatch(struct pipeline *pipeline)
{
	while (!TAILQ_EMPTY(&pipeline->scan_queue) &&
	       pipeline->scans_running < (size_t)pipeline->clamav.max_connections) {
		struct pipeline_entry *entry = TAILQ_FIRST(&pipeline->scan_queue);

		TAILQ_REMOVE(&pipeline->scan_queue, entry, queue_link);
		scan_start(pipeline, entry);
	}
}

void scan_configure(struct pipeline *pipeline)
{
	clamav_settings_load(&pipeline->clamav);
	pipeline->clamd_address_error[0] = '\0';
	if (clamd_address_parse(pipeline->clamav.socket, &pipeline->clamd_address,
				pipeline->clamd_address_error,
				sizeof(pipeline->clamd_address_error)) < 0 &&
	    pipeline->clamd_address_error[0] == '\0')
		snprintf(pipeline->clamd_address_error, sizeof(pipeline->clamd_address_error),
			 "clamd_socket cannot be used");
	/* More connections may be allowed now. */
	scan_dispatch(pipeline);
}

void scan_submit(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	TAILQ_INSERT_TAIL(&pipeline->scan_queue, entry, queue_link);
	scan_dispatch(pipeline);
}

void scan_entry_clear(struct pipeline_entry *entry)
{
	struct pipeline_scan *scan = entry->scan;

	if (scan == NULL)
		return;
	scan_disconnect(scan);
	event_free(scan->timer);
	free(scan);
	entry->scan = NULL;
}
