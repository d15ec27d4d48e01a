/*
 * worker.c — the worker process: reads the setup frame (with the Bayes
 * database's descriptor, if there is one), loads its filters, confines
 * itself (confine.c), then reads jobs from its socket, each with the
 * message body's descriptor attached,
 * runs the job's profile's filters (src/filters/) over the body and answers
 * with a verdict: one result per filter, and, when the job asks
 * (job->archive), the fields MailDepot indexes (depot_extract). The
 * filters' DNS questions go to
 * the main process as query frames, and the worker waits for each answer
 * within the message's [spam] dns_time_limit (filters/dns.h, proto.h).
 * Runs as "popgate --worker FD HOSTNAME".
 *
 * Owns: its end of the socket and the body descriptor of the job it is on.
 * Must never: open a file by name (the filter refuses it anyway: it knows no
 * data folder, no key, no store, no spool path), run a job before it is
 * confined, or carry on after anything unexpected — it exits instead, and
 * the main process reports the job as WORKER_FAILED and starts a fresh
 * worker.
 *
 * SECURITY: message bodies are hostile; everything parsed from them is parsed
 * here, in a process whose crash costs one job and whose compromise yields
 * nothing but the bodies it is handed. Jobs come from the main process and
 * are trusted, but the account and provider host inside them were typed by
 * users, so the trace filter sanitises them before they go into a header.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "depot/depot.h"
#include "filters/auth.h"
#include "filters/bayes.h"
#include "filters/ciss.h"
#include "filters/dns.h"
#include "filters/filter.h"
#include "filters/message.h"
#include "filters/mime.h"
#include "filters/received.h"
#include "filters/rules.h"
#include "pipeline/confine.h"
#include "pipeline/headers.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

/* How much of a body is read at a time. */
#define WORKER_CHUNK_SIZE 65536

/* The archive's fields come from the body as read: all that depot_extract
 * looks at of a message, so they are the same as popgatectl's. */
_Static_assert(FILTER_BODY_MAX >= MIME_INPUT_MAX, "the worker reads what depot_extract reads");

/*
 * Reads the body of MESSAGE->job from BODY_FD (the main process opened it:
 * a regular file of the spool), in chunks, filling in what the filters need
 * to know. 0, or -1 (logged) when it cannot be read.
 */
static int worker_message_read(int body_fd, struct filter_message *message)
{
	const struct pipeline_job *job = message->job;
	unsigned char *chunk = xmalloc(WORKER_CHUNK_SIZE);
	char *body = NULL;
	size_t body_len = 0;
	size_t body_capacity = 0;

	message->size = 0;
	headers_init(message->headers);
	for (;;) {
		ssize_t n = read(body_fd, chunk, WORKER_CHUNK_SIZE);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_event(LOG_ERROR, "worker_read_failed", job->account, job->id,
				  "read: %s", strerror(errno));
			free(chunk);
			free(body);
			return -1;
		}
		if (n == 0)
			break;
		if (!message->headers->done)
			headers_feed(message->headers, (const char *)chunk, (size_t)n);
		message->size += (uint64_t)n;
		/* The content filters read the body from memory, up to a bound. */
		if (body_len < FILTER_BODY_MAX) {
			size_t keep = (size_t)n < FILTER_BODY_MAX - body_len
					  ? (size_t)n
					  : FILTER_BODY_MAX - body_len;

			if (body_len + keep + 1 > body_capacity) {
				body_capacity = 2 * (body_len + keep) + 1;
				if (body_capacity > FILTER_BODY_MAX + 1)
					body_capacity = FILTER_BODY_MAX + 1;
				body = xrealloc(body, body_capacity);
			}
			memcpy(body + body_len, chunk, keep);
			body_len += keep;
			body[body_len] = '\0';
		}
	}
	free(chunk);
	message->body = body != NULL ? body : xcalloc(1, 1);
	message->body_len = body_len;
	return 0;
}

/*
 * Runs the job's profile's filters over MESSAGE, in the profile's order,
 * each filling one result. A filter the table lacks, or one that cannot
 * judge the message, gives a failed result; the others still run. (What a
 * filter puts in its result must pass the encoder's checks, or the whole
 * job ends as a worker failure: a filter's bug, found.)
 */
static void worker_filters_run(const struct filter_message *message,
			       struct pipeline_verdict *verdict)
{
	const struct filter_profile *profile = message->job->profile;

	verdict->results = xcalloc(profile->filter_count + 1, sizeof(*verdict->results));
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter *filter = filter_find(profile->filters[i].name);
		struct pipeline_result *result;

		/* Judged by the main process, which has the store it needs;
		 * the worker collects what it needs from the body. */
		if (filter != NULL && filter->run == NULL) {
			if (filter->collect != NULL)
				filter->collect(message, verdict);
			continue;
		}
		result = &verdict->results[verdict->result_count++];

		memcpy(result->name, profile->filters[i].name, sizeof(result->name));
		result->status = PIPELINE_RESULT_OK;
		if (filter == NULL) {
			result->status = PIPELINE_RESULT_FAILED;
			result->reason = xstrdup("no such filter");
		} else if (filter->run(message, result, verdict) < 0) {
			result->status = PIPELINE_RESULT_FAILED;
			result->score = 0;
			xfree(&result->headers);
			if (result->reason == NULL)
				result->reason = xstrdup("failed");
		}
		if (result->status == PIPELINE_RESULT_FAILED)
			log_event(LOG_WARN, "filter_failed", message->job->account,
				  message->job->id, "filter=%s reason=%s", result->name,
				  result->reason);
	}
}

/* The fields MailDepot indexes of MESSAGE (job->archive) into VERDICT: a
 * parse of its own, since the filters' shared one keeps neither the parts'
 * roles (body or attachment) nor the addresses' structure. None when the
 * extraction fails (logged). */
static void worker_archive_extract(const struct filter_message *message,
				   struct pipeline_verdict *verdict)
{
	struct depot_fields *fields = xcalloc(1, sizeof(*fields));
	char err[256];

	if (depot_extract(message->body, message->body_len, fields, err, sizeof(err)) < 0) {
		log_event(LOG_WARN, "worker_archive_failed", message->job->account,
			  message->job->id, "%s", err);
		free(fields);
		return;
	}
	verdict->archive_fields = fields;
}

/* The time each message may wait for DNS answers: [spam] dns_time_limit
 * (seconds), or FILTER_DNS_BUDGET_MS when it is not set. */
static int64_t worker_dns_budget_ms(void)
{
	const char *setting = filter_setting("dns_time_limit");
	char *end;
	long seconds;

	if (setting == NULL || *setting == '\0')
		return FILTER_DNS_BUDGET_MS;
	seconds = strtol(setting, &end, 10);
	if (*end != '\0' || seconds < 0 || seconds > 3600)
		return FILTER_DNS_BUDGET_MS;
	return (int64_t)seconds * 1000;
}

/* Reads the body of JOB and runs its profile's filters over it, DNS (may
 * be NULL) answering their questions, filling VERDICT and, if not NULL,
 * *HANDOFF with the hand-off the filters saw. 0 or -1 (logged) when the
 * body cannot be read. */
static int worker_job_run(int body_fd, const char *hostname, const struct pipeline_job *job,
			  struct filter_dns *dns, struct pipeline_verdict *verdict,
			  struct filter_handoff *handoff)
{
	/* Fresh for every job: the spf, dkim and dmarc filters share it. */
	struct filter_auth auth = {0};
	/* Fresh for every job: the content filters share one MIME parse. */
	struct filter_mime mime = {0};
	struct filter_message message = {
	    .job = job, .hostname = hostname, .dns = dns, .auth = &auth, .mime = &mime};
	int rc = -1;

	memset(verdict, 0, sizeof(*verdict));
	memcpy(verdict->id, job->id, sizeof(verdict->id));
	verdict->outcome = PIPELINE_JUDGED;
	/* Large (the longest field it parses is 64 KiB), so not on the stack. */
	message.headers = xmalloc(sizeof(*message.headers));
	if (worker_message_read(body_fd, &message) < 0)
		goto done;
	filter_dns_begin(dns, worker_dns_budget_ms());
	/* Before any filter: the DNS blocklists and SPF judge the hand-off. Only
	 * fetched mail has one; a submitted message's client is popgate's. */
	if (job->source == PIPELINE_SOURCE_FETCHED)
		received_handoff_find(message.body, message.body_len, job->provider_host,
				      filter_setting("trusted_relays"), &message.handoff);
	if (handoff != NULL)
		*handoff = message.handoff;
	worker_filters_run(&message, verdict);
	/* Only fetched mail is challenged (the relay sends submitted mail). */
	if (job->profile->challenge_unknown_senders && job->source == PIPELINE_SOURCE_FETCHED)
		ciss_facts_collect(&message, &verdict->ciss);
	if (job->archive)
		worker_archive_extract(&message, verdict);
	log_event(LOG_DEBUG, "worker_verdict", job->account, job->id,
		  "size=%llu results=%zu recipients=%zu", (unsigned long long)message.size,
		  verdict->result_count, verdict->recipient_count);
	rc = 0;
done:
	filter_mime_clear(&mime);
	free((char *)message.body);
	free(message.headers);
	return rc;
}

/* Writes all of DATA to FD. 0 or -1 with errno. */
static int worker_write_all(int fd, const unsigned char *data, size_t len)
{
	while (len > 0) {
		/* MSG_NOSIGNAL: a main process that went away is an error to
		 * return, not a SIGPIPE. */
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Encodes VERDICT and sends it. 0 or -1 (logged). */
static int worker_verdict_send(int fd, const struct pipeline_verdict *verdict)
{
	unsigned char *frame = NULL;
	size_t frame_len;
	const char *err;
	int rc;

	if (proto_verdict_encode(verdict, &frame, &frame_len, &err) < 0) {
		log_event(LOG_ERROR, "worker_encode_failed", NULL, verdict->id, "%s", err);
		return -1;
	}
	rc = worker_write_all(fd, frame, frame_len);
	if (rc < 0)
		log_error("worker: sending a verdict: %s", strerror(errno));
	free(frame);
	return rc;
}

/*
 * Reads from FD into BUF (ROOM bytes) what the main process sent, and the
 * descriptor attached to it, if any, into *BODY_FD_R; with SECOND_R (the
 * setup frame's, which may carry two), a second one into *SECOND_R. Returns
 * the bytes read (0 at EOF), or -1 (logged) on an error or a protocol
 * breach: more descriptors than that, one while a body is already held
 * (*BODY_FD_R >= 0), control data of another kind, or control data cut
 * short. Descriptors it refuses are closed.
 */
static ssize_t worker_receive(int fd, unsigned char *buf, size_t room, int *body_fd_r,
			      int *second_r)
{
	union {
		struct cmsghdr align;
		/* Room for more than one, so that extra descriptors are seen and
		 * closed here rather than cut off by the kernel unseen. */
		char data[CMSG_SPACE(4 * sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = room};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.data,
	    .msg_controllen = sizeof(control.data),
	};
	bool bad = false;
	ssize_t n;

	do
		n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		log_error("worker: reading a job: %s", strerror(errno));
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		size_t count;
		int fds[4];

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = true;
			continue;
		}
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(c), count * sizeof(int));
		if (count == 1 && *body_fd_r < 0 && !bad) {
			*body_fd_r = fds[0];
			continue;
		}
		if (count == 2 && second_r != NULL && *second_r < 0 && *body_fd_r < 0 && !bad) {
			*body_fd_r = fds[0];
			*second_r = fds[1];
			continue;
		}
		bad = true;
		for (size_t i = 0; i < count; i++)
			close(fds[i]);
	}
	if (bad || (msg.msg_flags & MSG_CTRUNC) != 0) {
		log_error("worker: a job came with descriptors other than its one body");
		return -1;
	}
	return n;
}

/*
 * Reads the setup frame, the first the main process sends, into BUF, and
 * hands the Bayes database and the rules text attached to it to their
 * filters. Bytes that came after it (the first job, maybe) stay in BUF
 * (*BUFFERED_R of them), and the descriptor that came with those in
 * *BODY_FD_R. 0, or -1 (logged).
 */
static int worker_setup_read(int fd, unsigned char *buf, size_t *buffered_r, int *body_fd_r)
{
	struct proto_setup setup;
	size_t buffered = 0;
	size_t consumed = 0;
	int attached = -1;
	int second = -1;
	size_t named;
	const char *err;

	for (;;) {
		ssize_t n;

		if (proto_setup_decode(buf, buffered, &consumed, &setup, &err) < 0) {
			log_error("worker: bad setup frame: %s", err);
			goto fail;
		}
		if (consumed > 0)
			break;
		n = worker_receive(fd, buf + buffered, PROTO_FRAME_MAX - buffered, &attached,
				   &second);
		if (n < 0)
			goto fail;
		if (n == 0) {
			log_error("worker: socket closed before the setup frame");
			goto fail;
		}
		buffered += (size_t)n;
	}
	filter_settings_set(setup.settings);
	free(setup.settings);
	/* The database and the rules text are attached to the setup's first
	 * byte, in that order (and the kernel ends a read after bytes with
	 * descriptors); without them, a descriptor can only be a job's, whose
	 * bytes came too. */
	named = (size_t)setup.bayes_db + (size_t)setup.rules;
	if ((named >= 1 && attached < 0) || (named == 2) != (second >= 0)) {
		log_error("worker: the setup frame came without the descriptors it names");
		goto fail;
	}
	if (named == 0 && attached >= 0 && consumed == buffered) {
		log_error("worker: the setup frame came with a descriptor it did not name");
		goto fail;
	}
	if (setup.bayes_db) {
		bayes_filter_use_db(attached);
		attached = second;
		second = -1;
	}
	if (setup.rules) {
		rules_filter_use_fd(attached);
		attached = -1;
	}
	memmove(buf, buf + consumed, buffered - consumed);
	*buffered_r = buffered - consumed;
	*body_fd_r = attached;
	return 0;
fail:
	if (attached >= 0)
		close(attached);
	if (second >= 0)
		close(second);
	return -1;
}

/* The worker's end of its socket: the bytes read and not yet used (a frame
 * at most), the descriptor that came with them, and the DNS questions it
 * sent the main process (its answerer). */
struct worker_link {
	int fd;
	unsigned char *buf; /* PROTO_FRAME_MAX bytes */
	size_t buffered;
	int body_fd;
	uint32_t last_query; /* the id of the last question sent; 0: none yet */
	bool broken;	     /* the main process broke the protocol, or went away */
	struct filter_dns dns;
};

enum worker_next {
	WORKER_NEXT_ERROR = -1, /* not a valid frame (logged) */
	WORKER_NEXT_MORE,	/* no whole frame yet */
	WORKER_NEXT_ANSWER,	/* an answer, taken from the buffer */
	WORKER_NEXT_OTHER,	/* a whole frame of another type, left in the buffer */
};

/* Looks at the frame at the front of LINK's buffer; an answer is decoded
 * into *ANSWER (its records allocated) and taken out of the buffer. */
static enum worker_next worker_answer_next(struct worker_link *link, struct proto_answer *answer)
{
	const unsigned char *payload;
	enum proto_type type;
	size_t payload_len;
	size_t consumed;
	const char *err;

	if (proto_frame_decode(link->buf, link->buffered, &consumed, &type, &payload, &payload_len,
			       &err) < 0) {
		log_error("worker: bad frame: %s", err);
		return WORKER_NEXT_ERROR;
	}
	if (consumed == 0)
		return WORKER_NEXT_MORE;
	if (type != PROTO_TYPE_ANSWER)
		return WORKER_NEXT_OTHER;
	if (proto_answer_decode(link->buf, link->buffered, &consumed, answer, &err) < 0) {
		log_error("worker: bad answer frame: %s", err);
		return WORKER_NEXT_ERROR;
	}
	memmove(link->buf, link->buf + consumed, link->buffered - consumed);
	link->buffered -= consumed;
	return WORKER_NEXT_ANSWER;
}

/*
 * The worker's answerer (filters/dns.h): sends the question as a query
 * frame and waits, at most TIMEOUT_MS, for the answer with its id, dropping
 * answers to questions given up on before. Anything else from the main
 * process breaks the link: this and every later question fail, and the
 * worker exits after the job.
 */
static void worker_dns_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			     int timeout_ms, struct filter_dns_answer *answer)
{
	struct worker_link *link = dns->ctx;
	struct proto_query query = {.type = type};
	int64_t deadline = util_monotonic_ms() + timeout_ms;
	unsigned char *frame;
	size_t frame_len;
	const char *err;

	memset(answer, 0, sizeof(*answer));
	answer->status = FILTER_DNS_FAILED;
	if (link->broken || strlen(name) >= sizeof(query.name))
		return;
	query.id = ++link->last_query;
	strcpy(query.name, name);
	if (proto_query_encode(&query, &frame, &frame_len, &err) < 0)
		return;
	if (worker_write_all(link->fd, frame, frame_len) < 0) {
		log_error("worker: sending a DNS question: %s", strerror(errno));
		link->broken = true;
		free(frame);
		return;
	}
	free(frame);
	for (;;) {
		struct pollfd pfd = {.fd = link->fd, .events = POLLIN};
		struct proto_answer got;
		int64_t left;
		ssize_t n;

		switch (worker_answer_next(link, &got)) {
		case WORKER_NEXT_ERROR:
			link->broken = true;
			return;
		case WORKER_NEXT_OTHER:
			log_error("worker: a frame other than an answer during a job");
			link->broken = true;
			return;
		case WORKER_NEXT_ANSWER:
			if (got.id == query.id) {
				*answer = got.answer;
				return;
			}
			filter_dns_answer_clear(&got.answer);
			if (got.id > query.id) {
				log_error("worker: an answer to a question not asked");
				link->broken = true;
				return;
			}
			continue; /* one given up on earlier */
		case WORKER_NEXT_MORE:
			break;
		}
		left = deadline - util_monotonic_ms();
		if (left <= 0) {
			answer->status = FILTER_DNS_TIMEOUT;
			return;
		}
		n = poll(&pfd, 1, (int)left);
		if (n < 0 && errno != EINTR) {
			log_error("worker: waiting for a DNS answer: %s", strerror(errno));
			link->broken = true;
			return;
		}
		if (n <= 0)
			continue;
		n = worker_receive(link->fd, link->buf + link->buffered,
				   PROTO_FRAME_MAX - link->buffered, &link->body_fd, NULL);
		if (n <= 0) {
			if (n == 0)
				log_error("worker: socket closed while waiting for a DNS answer");
			link->broken = true;
			return;
		}
		link->buffered += (size_t)n;
	}
}

int pipeline_worker_main(int fd, const char *hostname)
{
	struct worker_link link = {.fd = fd, .body_fd = -1};
	int status = 1;
	uid_t uid = getuid();
	char err[256];

	link.buf = xmalloc(PROTO_FRAME_MAX);
	link.dns.query = worker_dns_query;
	link.dns.ctx = &link;
	link.dns.cache = filter_dns_cache_new();
	log_set_role("worker");
	/* A worker must not outlive the spawner, its parent, which alone can
	 * kill it (should the spawner die before this line, the main process
	 * stops, and the socket's EOF ends the loop below instead); the main
	 * process's end is seen as that EOF. Cheap hardening: a failure is
	 * logged, not fatal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		log_warn("worker: PR_SET_PDEATHSIG: %s", strerror(errno));
	/* What the filters need but cannot open by name comes first. */
	if (worker_setup_read(fd, link.buf, &link.buffered, &link.body_fd) < 0)
		goto done;
	/* Filters load what they need while files can still be opened. */
	if (filter_init_all(err, sizeof(err)) < 0) {
		log_error("worker: %s", err);
		goto done;
	}
	/* So does the archive's extraction: GMime and the charset converters. */
	mime_init();
	/* Before the first byte of a job: a worker never runs unconfined. */
	if (confine_apply(err, sizeof(err)) < 0) {
		log_error("worker: cannot confine itself: %s", err);
		goto done;
	}
	/* Also the proof, in the log, that a confined worker can still log. */
	log_event(LOG_INFO, "worker_confined", NULL, NULL, "uid=%ld", (long)uid);

	for (;;) {
		struct pipeline_job job;
		struct pipeline_verdict verdict;
		struct proto_answer late;
		size_t consumed;
		const char *err_text;
		ssize_t n;
		int rc;

		switch (worker_answer_next(&link, &late)) {
		case WORKER_NEXT_ERROR:
			goto done;
		case WORKER_NEXT_ANSWER:
			/* The answer to a question the last job gave up on. */
			filter_dns_answer_clear(&late.answer);
			if (late.id > link.last_query) {
				log_error("worker: an answer to a question not asked");
				goto done;
			}
			continue;
		case WORKER_NEXT_MORE:
			/* The decoder asks for more only while a frame fits the buffer. */
			n = worker_receive(fd, link.buf + link.buffered,
					   PROTO_FRAME_MAX - link.buffered, &link.body_fd,
					   NULL);
			if (n < 0)
				goto done;
			if (n == 0) {
				/* The main process closed the socket: a clean stop,
				 * unless it left half a frame behind. */
				if (link.buffered == 0 && link.body_fd < 0)
					status = 0;
				else
					log_error("worker: socket closed inside a job frame");
				goto done;
			}
			link.buffered += (size_t)n;
			continue;
		case WORKER_NEXT_OTHER:
			break;
		}
		if (proto_job_decode(link.buf, link.buffered, &consumed, &job, &err_text) < 0) {
			log_error("worker: bad job frame: %s", err_text);
			goto done;
		}
		/* The main process sends one job, with its body attached, and
		 * waits for the verdict, answering questions: anything else is a
		 * broken peer. */
		if (consumed != link.buffered) {
			log_error("worker: bytes after a job frame");
			proto_job_clear(&job);
			goto done;
		}
		if (link.body_fd < 0) {
			log_error("worker: a job came without its body");
			proto_job_clear(&job);
			goto done;
		}
		link.buffered = 0;
		rc = worker_job_run(link.body_fd, hostname, &job, &link.dns, &verdict, NULL);
		proto_job_clear(&job);
		if (rc < 0 || link.broken) {
			proto_verdict_clear(&verdict);
			goto done;
		}
		close(link.body_fd);
		link.body_fd = -1;
		if (worker_verdict_send(fd, &verdict) < 0) {
			proto_verdict_clear(&verdict);
			goto done;
		}
		proto_verdict_clear(&verdict);
	}
done:
	if (link.body_fd >= 0)
		close(link.body_fd);
	filter_dns_cache_free(&link.dns.cache);
	free(link.buf);
	close(fd);
	return status;
}

int pipeline_judge(int body_fd, const char *hostname, const struct pipeline_job *job,
		   struct filter_dns *dns, struct pipeline_verdict *verdict,
		   struct filter_handoff *handoff)
{
	return worker_job_run(body_fd, hostname, job, dns, verdict, handoff);
}
