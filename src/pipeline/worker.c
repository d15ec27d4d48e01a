/*
 * worker.c — the worker process: reads jobs from its socket, reads the
 * message body from the spool, runs the filter chain and answers with a
 * verdict. Runs as "popgate --worker FD DATA_DIR HOSTNAME".
 *
 * Owns: its end of the socket and the body file it is reading.
 * Must never: open the database, hold the credential key, write to the spool,
 * or carry on after anything unexpected — it exits instead, and the main
 * process reports the job as WORKER_FAILED and starts a fresh worker.
 *
 * SECURITY: message bodies are hostile; everything parsed from them is parsed
 * here, in a process whose crash costs one job. Jobs come from the main
 * process and are trusted, but the account and provider host inside them were
 * typed by users, so they are sanitised before they go into a header.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/headers.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "store/spool.h"

/* How much of a body is read at a time. */
#define WORKER_CHUNK_SIZE 65536

/* What a filter step sees: the job and what reading the body found out. */
struct worker_message {
	const struct pipeline_job *job;
	const char *hostname;
	uint64_t size;			/* bytes in the body */
	struct headers_parser *headers; /* fed the body's header block */
};

/*
 * One step of the chain. RUN looks at MESSAGE and adds to VERDICT (its
 * outcome and prepend); it returns 0, or -1 when the message cannot be judged,
 * which ends the worker so the job is retried and then held as suspect.
 */
struct worker_filter {
	const char *name;
	int (*run)(const struct worker_message *message, struct pipeline_verdict *verdict);
};

/* Appends LINES (whole header lines, CRLF-terminated) to VERDICT's prepend. */
static void worker_verdict_prepend(struct pipeline_verdict *verdict, const char *lines)
{
	char *joined = xasprintf("%s%s", verdict->prepend != NULL ? verdict->prepend : "", lines);

	free(verdict->prepend);
	verdict->prepend = joined;
}

/*
 * Copies S into OUT (size OUTLEN, cut to fit) for use inside a trace header:
 * only printable ASCII survives, and not the characters that would end the
 * token it stands in ("<", ">", ";", space) — a user must not be able to
 * forge a trace clause or a header line.
 */
static void worker_sanitize_token(char *out, size_t outlen, const char *s)
{
	size_t n = strnlen(s, outlen - 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>' || c == ';')
			c = '?';
		out[i] = (char)c;
	}
	out[n] = '\0';
}

/* Formats WHEN as an RFC 5322 date-time in UTC ("Sat, 28 Nov 2026 02:14:13
 * +0000"). The names are spelled out here, not taken from strftime, because
 * the format must not follow the locale. */
static void worker_format_date(char *out, size_t outlen, int64_t when)
{
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)when;
	struct tm tm;

	/* The decoder limits received_at to years 1970-9999, where gmtime_r
	 * cannot fail; the epoch is a visible rather than a silent fallback. */
	if (gmtime_r(&t, &tm) == NULL) {
		t = 0;
		gmtime_r(&t, &tm);
	}
	snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
		 months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The trace header (RFC 5322 3.6.7) recording that popgate fetched the
 * message from the provider over POP3 for the account. */
static int worker_filter_trace(const struct worker_message *message,
			       struct pipeline_verdict *verdict)
{
	const struct pipeline_job *job = message->job;
	char account[sizeof(job->account)];
	char host[sizeof(job->provider_host)];
	char hostname[256];
	char date[64];
	char *line;

	worker_sanitize_token(account, sizeof(account), job->account);
	worker_sanitize_token(host, sizeof(host), job->provider_host);
	worker_sanitize_token(hostname, sizeof(hostname), message->hostname);
	worker_format_date(date, sizeof(date), job->received_at);
	line = xasprintf("Received: from %s by %s (popgate) with POP3\r\n"
			 "\tid %s for <%s>; %s\r\n",
			 host, hostname, job->id, account, date);
	worker_verdict_prepend(verdict, line);
	free(line);
	return 0;
}

/* U4, U5: the sender and recipient addresses, so the main process can
 * attribute the message to the users who own them. Parsed here because the
 * header is hostile; the main process only looks the results up. */
static int worker_filter_addresses(const struct worker_message *message,
				   struct pipeline_verdict *verdict)
{
	const char *sender;
	const char *const *recipients;
	size_t count = headers_finish(message->headers, &sender, &recipients);

	if (sender != NULL)
		verdict->sender = xstrdup(sender);
	if (count > 0) {
		verdict->recipients = xcalloc(count, sizeof(*verdict->recipients));
		for (size_t i = 0; i < count; i++)
			verdict->recipients[i] = xstrdup(recipients[i]);
		verdict->recipient_count = count;
	}
	return 0;
}

/* The chain, in order; later filters are added as new steps. */
static const struct worker_filter worker_filters[] = {
    {"trace", worker_filter_trace},
    {"addresses", worker_filter_addresses},
};

/*
 * Reads the body of MESSAGE->job from the spool, in chunks, filling in what
 * the filters need to know. 0, or -1 (logged) when it cannot be read.
 */
static int worker_message_read(const char *data_dir, struct worker_message *message)
{
	const struct pipeline_job *job = message->job;
	char *path = spool_path(data_dir, job->id);
	unsigned char *chunk = xmalloc(WORKER_CHUNK_SIZE);
	struct stat st;
	int fd;

	/* A spool body is a regular file written by the main process; a link
	 * or anything else in its place is not ours to read. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		log_event(LOG_ERROR, "worker_read_failed", job->account, job->id, "open: %s",
			  strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_event(LOG_ERROR, "worker_read_failed", job->account, job->id,
			  "not a regular file");
		goto fail;
	}
	message->size = 0;
	headers_init(message->headers);
	for (;;) {
		ssize_t n = read(fd, chunk, WORKER_CHUNK_SIZE);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_event(LOG_ERROR, "worker_read_failed", job->account, job->id,
				  "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		if (!message->headers->done)
			headers_feed(message->headers, (const char *)chunk, (size_t)n);
		message->size += (uint64_t)n;
	}
	close(fd);
	free(chunk);
	free(path);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	free(chunk);
	free(path);
	return -1;
}

/* Runs the chain over JOB and fills VERDICT. 0 or -1 (logged). */
static int worker_job_run(const char *data_dir, const char *hostname,
			  const struct pipeline_job *job, struct pipeline_verdict *verdict)
{
	struct worker_message message = {.job = job, .hostname = hostname};
	int rc = -1;

	memset(verdict, 0, sizeof(*verdict));
	memcpy(verdict->id, job->id, sizeof(verdict->id));
	verdict->outcome = PIPELINE_DELIVER;
	/* Large (the longest field it parses is 64 KiB), so not on the stack. */
	message.headers = xmalloc(sizeof(*message.headers));
	if (worker_message_read(data_dir, &message) < 0)
		goto done;
	for (size_t i = 0; i < sizeof(worker_filters) / sizeof(worker_filters[0]); i++) {
		if (worker_filters[i].run(&message, verdict) < 0) {
			log_event(LOG_ERROR, "worker_filter_failed", job->account, job->id,
				  "filter=%s", worker_filters[i].name);
			goto done;
		}
	}
	log_event(LOG_DEBUG, "worker_verdict", job->account, job->id,
		  "size=%llu outcome=%d recipients=%zu", (unsigned long long)message.size,
		  (int)verdict->outcome, verdict->recipient_count);
	rc = 0;
done:
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

int pipeline_worker_main(int fd, const char *data_dir, const char *hostname)
{
	unsigned char *buf = xmalloc(PROTO_FRAME_MAX);
	size_t buffered = 0;
	int status = 1;

	log_set_role("worker");
	/* No set-uid program run from here may gain privileges, and a worker
	 * must not outlive the main process that would collect its verdicts.
	 * (Should the main process die before this line, the socket's EOF ends
	 * the loop below instead.) Both are cheap hardening: a failure is
	 * logged, not fatal. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		log_warn("worker: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		log_warn("worker: PR_SET_PDEATHSIG: %s", strerror(errno));

	for (;;) {
		struct pipeline_job job;
		struct pipeline_verdict verdict;
		size_t consumed;
		const char *err;
		ssize_t n;

		if (proto_job_decode(buf, buffered, &consumed, &job, &err) < 0) {
			log_error("worker: bad job frame: %s", err);
			goto done;
		}
		if (consumed == 0) {
			/* The decoder asks for more only while a frame fits the buffer. */
			n = read(fd, buf + buffered, PROTO_FRAME_MAX - buffered);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				log_error("worker: reading a job: %s", strerror(errno));
				goto done;
			}
			if (n == 0) {
				/* The main process closed the socket: a clean stop,
				 * unless it left half a frame behind. */
				if (buffered == 0)
					status = 0;
				else
					log_error("worker: socket closed inside a job frame");
				goto done;
			}
			buffered += (size_t)n;
			continue;
		}
		memmove(buf, buf + consumed, buffered - consumed);
		buffered -= consumed;
		if (worker_job_run(data_dir, hostname, &job, &verdict) < 0) {
			proto_verdict_clear(&verdict);
			goto done;
		}
		if (worker_verdict_send(fd, &verdict) < 0) {
			proto_verdict_clear(&verdict);
			goto done;
		}
		proto_verdict_clear(&verdict);
	}
done:
	free(buf);
	close(fd);
	return status;
}
