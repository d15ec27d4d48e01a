/*
 * pipeline.c — the main process's side of the processing stage: queues jobs
 * (each a copy, with the profile it will be judged by), hands each to a free
 * worker with its body's descriptor, reads the verdicts, and fails a worker
 * that dies, hangs or answers garbage. Starting and stopping the worker
 * processes (through the spawner) is workers.c's.
 *
 * Owns: the main process's end of each worker socket, the queued and
 * running jobs, and each running job's DNS lookup in flight (cancelled when
 * the job ends or its worker does).
 * Must never: block the event loop (sockets are non-blocking; the spawner
 * reaps the workers), trust a byte a worker sends before proto.c has
 * decoded it, lose a job silently (every job submitted and not dropped by
 * pipeline_free ends in exactly one call of the callback), or call the
 * callback from anywhere but the event loop (so a caller's pipeline_submit
 * never finds itself inside its own callback).
 *
 * SECURITY: workers read hostile mail and are assumed compromisable. A reply
 * is accepted only as well-formed DNS questions (query frames: a valid name,
 * a known type, at most PIPELINE_QUERIES_MAX asked of the resolver per job,
 * one in flight at a time) and then one well-formed verdict for the job the
 * worker holds; anything else ends that worker. Workers are exec'd afresh by the spawner
 * (spawner.h) as a user of their own ([server] worker_user, when popgate was
 * started as root), inherit only their socket (fd 3) and the log (stderr),
 * never see the credential key, the store or the data folder's name, and
 * confine themselves (confine.h): this process opens each body read-only and
 * hands the worker that one descriptor with the job (and, once at its start,
 * the Bayes database read-only: workers.c). With a uid of their
 * own they cannot signal or trace this process, nor read its files should
 * the confinement fail; this process, in turn, cannot signal them, so it
 * has the spawner kill a worker that hangs.
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
#include "filters/rules.h"
#include "pipeline/lookup.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "pipeline/workers.h"
#include "store/spool.h"

static void pipeline_on_timeout(evutil_socket_t fd, short what, void *arg);
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
	scan_entry_clear(*entry);
	free((*entry)->scan_result.reason);
	free((*entry)->scan_result.headers);
	free((*entry)->frame);
	/* The entry's copy of the job is shaped like a decoded one. */
	proto_job_clear(&(*entry)->job);
	xfree(entry);
}

/* Copies JOB into ENTRY, with what it points to, so the caller's job may go
 * away; the default profile stays NULL (it is static). */
static void pipeline_entry_set_job(struct pipeline_entry *entry, const struct pipeline_job *job)
{
	const struct pipeline_envelope *envelope = &job->envelope;

	entry->job = *job;
	entry->job.envelope.sender = envelope->sender != NULL ? xstrdup(envelope->sender) : NULL;
	entry->job.envelope.recipients = NULL;
	if (envelope->recipient_count > 0) {
		entry->job.envelope.recipients =
		    xcalloc(envelope->recipient_count, sizeof(*envelope->recipients));
		for (size_t i = 0; i < envelope->recipient_count; i++)
			entry->job.envelope.recipients[i] = xstrdup(envelope->recipients[i]);
	}
	entry->job.profile = NULL;
	if (job->profile != NULL) {
		entry->job.profile = xmalloc(sizeof(*entry->job.profile));
		*entry->job.profile = *job->profile;
	}
}

/* Reports VERDICT for ENTRY (which has left the queue and its worker) and
 * frees the entry. */
static void pipeline_report(struct pipeline *pipeline, struct pipeline_entry *entry,
			    const struct pipeline_verdict *verdict)
{
	struct pipeline_verdict reported = *verdict;

	pipeline_entry_forget(pipeline, entry);
	reported.job = &entry->job;
	reported.scan = entry->scanned ? &entry->scan_result : NULL;
	pipeline->callback(&reported, pipeline->ctx);
	pipeline_entry_free(&entry);
}

/*
 * WORKER died, hung or broke the protocol: kill it, start another, and
 * report its job (if it had one) as WORKER_FAILED with REASON.
 */
static void pipeline_worker_fail(struct pipeline_worker *worker, const char *reason)
{
	struct pipeline *pipeline = worker->pipeline;
	struct pipeline_entry *entry = worker->entry;
	char reason_copy[256];

	worker->entry = NULL;
	/* A worker that died with the spawner is not its job's fault, and the
	 * daemon is stopping: the job goes back to the queue (pipeline_free
	 * drops it; its message is resumed from the store at the next start)
	 * rather than count as a failed attempt. */
	if (workers_spawner_lost(pipeline)) {
		workers_stop(worker, false);
		if (entry != NULL)
			TAILQ_INSERT_HEAD(&pipeline->queue, entry, queue_link);
		return;
	}
	/* REASON may live in the worker (send_error), which stop clears. */
	snprintf(reason_copy, sizeof(reason_copy), "%s", reason);
	log_event(LOG_WARN, "worker_failed", entry != NULL ? entry->job.account : NULL,
		  entry != NULL ? entry->job.id : NULL, "pid=%ld reason=%s", (long)worker->pid,
		  reason_copy);
	workers_stop(worker, true);
	workers_restart(worker);
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
int pipeline_body_open(struct pipeline *pipeline, struct pipeline_entry *entry)
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

void pipeline_body_failed(struct pipeline *pipeline, struct pipeline_entry *entry)
{
	TAILQ_INSERT_TAIL(&pipeline->failed, entry, queue_link);
	event_active(pipeline->failed_event, EV_TIMEOUT, 0);
}

/* Hands queued jobs to idle workers, oldest job first. */
void pipeline_dispatch(struct pipeline *pipeline)
{
	size_t i = 0;

	while (!TAILQ_EMPTY(&pipeline->queue) && i < pipeline->worker_count) {
		struct pipeline_worker *worker = &pipeline->workers[i];
		struct pipeline_entry *entry;
		int body_fd;

		if (worker->pid <= 0 || worker->entry != NULL || worker->send_error[0] != '\0' ||
		    evbuffer_get_length(worker->output) > 0) {
			i++;
			continue;
		}
		entry = TAILQ_FIRST(&pipeline->queue);
		TAILQ_REMOVE(&pipeline->queue, entry, queue_link);
		body_fd = pipeline_body_open(pipeline, entry);
		if (body_fd < 0) {
			/* The worker stays idle for the next job. */
			pipeline_body_failed(pipeline, entry);
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

/* Writes what waits in WORKER's output, as far as its socket takes it; the
 * rest when write_event says there is room. A failure is handled from the
 * loop, as a failed job send is. */
static void pipeline_worker_flush(struct pipeline_worker *worker)
{
	while (evbuffer_get_length(worker->output) > 0) {
		size_t len = evbuffer_get_contiguous_space(worker->output);
		const unsigned char *data = evbuffer_pullup(worker->output, (ev_ssize_t)len);
		/* MSG_NOSIGNAL: a dead worker is EPIPE, not a SIGPIPE. */
		ssize_t n = send(worker->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
			event_add(worker->write_event, NULL);
			return;
		}
		if (n < 0) {
			snprintf(worker->send_error, sizeof(worker->send_error),
				 "sending an answer: %s", strerror(errno));
			event_active(worker->read_event, EV_READ, 0);
			return;
		}
		evbuffer_drain(worker->output, (size_t)n);
	}
}

void pipeline_on_write(evutil_socket_t fd, short what, void *arg)
{
	struct pipeline_worker *worker = arg;

	(void)fd;
	(void)what;
	pipeline_worker_flush(worker);
	/* A worker that got its verdict's last answer out may take a job. */
	if (evbuffer_get_length(worker->output) == 0)
		pipeline_dispatch(worker->pipeline);
}

/* Sends WORKER ANSWER (to the question it asked last). */
static void pipeline_worker_answer(struct pipeline_worker *worker, struct proto_answer *answer)
{
	unsigned char *frame;
	size_t frame_len;
	const char *err;

	if (proto_answer_encode(answer, &frame, &frame_len, &err) < 0) {
		/* lookup.c hands over only what the encoder takes; still, the
		 * worker must get an answer. */
		log_warn("pipeline: cannot encode a DNS answer: %s", err);
		filter_dns_answer_clear(&answer->answer);
		answer->answer.status = FILTER_DNS_FAILED;
		if (proto_answer_encode(answer, &frame, &frame_len, &err) < 0)
			return;
	}
	evbuffer_add(worker->output, frame, frame_len);
	free(frame);
	pipeline_worker_flush(worker);
}

/* The resolver answered WORKER's question. */
static void pipeline_on_answer(const struct resolver_answer *from, void *arg)
{
	struct pipeline_worker *worker = arg;
	struct proto_answer answer = {.id = worker->query_id};

	worker->lookup = NULL;
	lookup_answer_fill(from, &answer.answer);
	pipeline_worker_answer(worker, &answer);
	filter_dns_answer_clear(&answer.answer);
}

/*
 * A query frame at the front of WORKER's input: a question of the job it
 * holds, asked through the resolver (the one asked before, if still in
 * flight, is given up: the worker waits for one answer at a time). 0, or
 * -1 when the worker was failed for it.
 */
static int pipeline_worker_query(struct pipeline_worker *worker, const unsigned char *data,
				 size_t len)
{
	struct pipeline *pipeline = worker->pipeline;
	struct proto_query query;
	char reason[160];
	size_t consumed;
	const char *err;

	if (proto_query_decode(data, len, &consumed, &query, &err) < 0) {
		snprintf(reason, sizeof(reason), "malformed query: %s", err);
		pipeline_worker_fail(worker, reason);
		return -1;
	}
	if (worker->entry == NULL) {
		pipeline_worker_fail(worker, "query without a job");
		return -1;
	}
	evbuffer_drain(worker->input, consumed);
	resolver_cancel(&worker->lookup);
	worker->query_id = query.id;
	if (++worker->queries > PIPELINE_QUERIES_MAX || pipeline->resolver == NULL) {
		struct proto_answer answer = {.id = query.id,
					      .answer = {.status = FILTER_DNS_FAILED}};

		if (worker->queries == PIPELINE_QUERIES_MAX + 1)
			log_event(LOG_WARN, "dns_queries_limit", worker->entry->job.account,
				  worker->entry->job.id, "limit=%d", PIPELINE_QUERIES_MAX);
		pipeline_worker_answer(worker, &answer);
		return 0;
	}
	worker->lookup =
	    resolver_lookup(pipeline->resolver, query.name, (enum resolver_type)query.type,
			    pipeline_on_answer, worker);
	return 0;
}

/* Handles the bytes a worker sent so far: nothing until a whole frame is
 * there; its job's DNS questions, each answered; then exactly one verdict
 * for the job the worker holds. */
static void pipeline_worker_parse(struct pipeline_worker *worker)
{
	struct pipeline *pipeline = worker->pipeline;
	size_t len = evbuffer_get_length(worker->input);
	const unsigned char *data = evbuffer_pullup(worker->input, -1);
	const unsigned char *payload;
	size_t payload_len;
	enum proto_type type;
	struct pipeline_verdict verdict;
	struct pipeline_entry *entry;
	char reason[160];
	size_t consumed;
	const char *err;

	while (len > 0 &&
	       proto_frame_decode(data, len, &consumed, &type, &payload, &payload_len, &err) == 0 &&
	       consumed > 0 && type == PROTO_TYPE_QUERY) {
		if (pipeline_worker_query(worker, data, len) < 0)
			return;
		len = evbuffer_get_length(worker->input);
		data = evbuffer_pullup(worker->input, -1);
	}
	if (len == 0)
		return;
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
	/* The job's questions end with it. */
	resolver_cancel(&worker->lookup);
	worker->queries = 0;
	worker->entry = NULL;
	pipeline_report(pipeline, entry, &verdict);
	proto_verdict_clear(&verdict);
	/* Idle now: replaced if the Bayes database changed while it worked. */
	if (worker->renew && worker->entry == NULL)
		workers_renew(worker);
	pipeline_dispatch(pipeline);
}

void pipeline_on_read(evutil_socket_t fd, short what, void *arg)
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

struct pipeline *pipeline_new(struct event_base *base, struct spawner_process *spawner,
			      const char *data_dir, int worker_count, int worker_timeout_seconds,
			      pipeline_verdict_cb *callback, void *ctx, char *err, size_t errlen)
{
	struct pipeline *pipeline = NULL;

	if (worker_count < 0 || worker_count > PIPELINE_WORKERS_MAX) {
		snprintf(err, errlen, "workers must be 0 to %d", PIPELINE_WORKERS_MAX);
		goto fail;
	}
	if (worker_timeout_seconds < 0) {
		snprintf(err, errlen, "worker_timeout must not be negative");
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
	pipeline->spawner = *spawner;
	spawner->fd = -1;
	spawner->pid = -1;
	pipeline->data_dir = xstrdup(data_dir);
	pipeline->rules_fd = -1;
	pipeline->worker_timeout = worker_timeout_seconds;
	pipeline->callback = callback;
	pipeline->ctx = ctx;
	TAILQ_INIT(&pipeline->queue);
	TAILQ_INIT(&pipeline->failed);
	TAILQ_INIT(&pipeline->scan_queue);
	scan_configure(pipeline);
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
	pipeline->tick_event = evtimer_new(base, workers_on_tick, pipeline);
	pipeline->failed_event = event_new(base, -1, 0, pipeline_on_failed, pipeline);
	if (pipeline->tick_event == NULL || pipeline->failed_event == NULL) {
		snprintf(err, errlen, "cannot create the pipeline timer");
		goto fail;
	}
	for (size_t i = 0; i < pipeline->worker_count; i++) {
		struct pipeline_worker *worker = &pipeline->workers[i];

		worker->input = evbuffer_new();
		worker->output = evbuffer_new();
		worker->timeout_event = evtimer_new(base, pipeline_on_timeout, worker);
		if (worker->input == NULL || worker->output == NULL ||
		    worker->timeout_event == NULL) {
			snprintf(err, errlen, "cannot create the worker buffers");
			goto fail;
		}
	}
	if (workers_begin(pipeline, err, errlen) < 0)
		goto fail;
	return pipeline;
fail:
	/* The spawner is ours even when this fails. */
	if (pipeline == NULL)
		spawner_stop(spawner);
	pipeline_free(&pipeline);
	return NULL;
}

int pipeline_submit(struct pipeline *pipeline, const struct pipeline_job *job)
{
	struct pipeline_job resolved = *job;
	struct pipeline_entry *entry;
	const char *err;

	/* The worker is always told which filters to run. */
	if (resolved.profile == NULL)
		resolved.profile = (struct filter_profile *)filter_profile_default();
	entry = xcalloc(1, sizeof(*entry));
	/* Encoding checks the job (id, strings, date, envelope, profile) before
	 * it is queued, so a bad job is the caller's error now rather than a
	 * worker failure later. */
	if (proto_job_encode(&resolved, &entry->frame, &entry->frame_len, &err) < 0) {
		log_error("pipeline: refusing a job: %s", err);
		pipeline_entry_free(&entry);
		return -1;
	}
	if (pipeline_entry_find(pipeline, job->id) != NULL) {
		pipeline_entry_free(&entry);
		return 0;
	}
	pipeline_entry_set_job(entry, job);
	LIST_INSERT_HEAD(pipeline_bucket_for(pipeline, job->id), entry, id_link);
	pipeline->pending++;
	/* Scanned for viruses first (scan.c), when its profile asks: the job
	 * stays indexed, so a resubmission of the message meanwhile (the
	 * release check resumes everything in processing) is ignored. */
	if (clamav_profile_runs(resolved.profile)) {
		scan_submit(pipeline, entry);
		return 0;
	}
	TAILQ_INSERT_TAIL(&pipeline->queue, entry, queue_link);
	pipeline_dispatch(pipeline);
	return 0;
}

void pipeline_set_filter_settings(struct pipeline *pipeline, const char *settings)
{
	/* The filters the main process judges (filters/fuzzy.h) read them too. */
	filter_settings_set(settings);
	if (pipeline->filter_settings != NULL && settings != NULL &&
	    strcmp(pipeline->filter_settings, settings) == 0)
		return;
	free(pipeline->filter_settings);
	pipeline->filter_settings = settings != NULL ? xstrdup(settings) : NULL;
	/* This process reads clamd's settings itself (it scans). */
	filter_settings_set(settings);
	scan_configure(pipeline);
	workers_renew_all(pipeline);
}

int pipeline_set_rules(struct pipeline *pipeline, const char *text, char *err, size_t errlen)
{
	int fd = -1;

	if (text != NULL && *text == '\0')
		text = NULL;
	if ((pipeline->rules_text == NULL && text == NULL) ||
	    (pipeline->rules_text != NULL && text != NULL &&
	     strcmp(pipeline->rules_text, text) == 0))
		return 0;
	if (text != NULL && (fd = rules_text_fd(text, strlen(text))) < 0) {
		snprintf(err, errlen, "cannot hand the rules file to the workers: %s",
			 strerror(errno));
		return -1;
	}
	free(pipeline->rules_text);
	if (pipeline->rules_fd >= 0)
		close(pipeline->rules_fd);
	pipeline->rules_text = text != NULL ? xstrdup(text) : NULL;
	pipeline->rules_fd = fd;
	workers_renew_all(pipeline);
	return 0;
}

void pipeline_set_resolver(struct pipeline *pipeline, struct resolver *resolver)
{
	pipeline->resolver = resolver;
}

size_t pipeline_pending(const struct pipeline *pipeline)
{
	return pipeline->pending;
}

void pipeline_log_reopened(struct pipeline *pipeline)
{
	workers_log_reopened(pipeline);
}

void pipeline_bayes_check(struct pipeline *pipeline)
{
	workers_bayes_check(pipeline);
}

bool pipeline_spawner_lost(const struct pipeline *pipeline)
{
	return pipeline->spawner_lost;
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
	/* Closing its socket lets an idle worker exit cleanly; closing the
	 * spawner's has it end the rest (SIGTERM, then SIGKILL) and exit. */
	for (size_t i = 0; i < pipeline->worker_count; i++)
		workers_stop(&pipeline->workers[i], false);
	spawner_stop(&pipeline->spawner);
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
		if (worker->output != NULL)
			evbuffer_free(worker->output);
	}
	if (pipeline->tick_event != NULL)
		event_free(pipeline->tick_event);
	if (pipeline->failed_event != NULL)
		event_free(pipeline->failed_event);
	if (pipeline->spawner_event != NULL)
		event_free(pipeline->spawner_event);
	if (pipeline->spawner_write_event != NULL)
		event_free(pipeline->spawner_write_event);
	if (pipeline->spawner_output != NULL)
		evbuffer_free(pipeline->spawner_output);
	free(pipeline->workers);
	free(pipeline->data_dir);
	free(pipeline->filter_settings);
	free(pipeline->rules_text);
	if (pipeline->rules_fd >= 0)
		close(pipeline->rules_fd);
	xfree(pipeline_r);
}
