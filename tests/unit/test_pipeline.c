/*
 * test_pipeline.c — the processing stage end to end: a real spawner and real
 * worker processes (this test binary, exec'd with --spawner and then
 * --worker), real spool files, a real event loop. Covers verdicts, the
 * trace header, duplicates, a worker killed while it works, a hung worker
 * timed out, malformed replies, a retry submitted from the callback, bodies
 * the main process cannot hand over, a worker given a job without exactly
 * one body descriptor, the setup frame and the Bayes database it hands over,
 * the workers replaced when that database changes, the back-off for
 * workers that die at start, the virus scan before the worker (a fake
 * clamd in a thread), and the archive's fields a confined worker extracts
 * for a job that asks (charsets converted, an office document read).
 *
 * Owns: a temp data folder per test (removed at the end) and the spawner
 * it starts (reaped before a test ends; the spawner reaps the workers).
 * Must never: wait without a bound — every loop runs under a timer.
 *
 * The "slow worker" of the kill and timeout tests is this binary in "hang"
 * mode (TEST_MODE_ENV): it takes one job and never answers. The spawner
 * passes its environment to every worker, so only the worker that creates
 * the marker file TEST_ONCE_ENV names misbehaves, and the replacement is a
 * real one. Mode "exit" makes every worker exit at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/resolver.h"
#include "core/util.h"
#include "depot/depot.h"
#include "filters/bayes.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "pipeline/spawner.h"
#include "pipeline/workers.h"
#include "store/spool.h"

#include "test_dnsmasq.h"
#include "test_support.h"

#define TEST_SELF "/proc/self/exe"
#define TEST_HOSTNAME "gw.example.org"
#define TEST_RECEIVED_AT INT64_C(1795832053) /* Sat, 28 Nov 2026 02:14:13 +0000 */
/* Read by this binary's --worker branch only: makes the worker misbehave. */
#define TEST_MODE_ENV "POPGATE_TEST_PIPELINE_WORKER"
/* ... and the marker file the first worker to start creates to take it. */
#define TEST_ONCE_ENV "POPGATE_TEST_PIPELINE_ONCE"
/* How long a test waits for its workers to be ready. */
#define TEST_READY_MS 10000
#define TEST_MAX_VERDICTS 32
#define TEST_MAX_PIDS 256

struct test_verdict {
	char id[SPOOL_ID_LEN + 1];
	enum pipeline_outcome outcome;
	char *prepend; /* the results' header lines, joined; NULL if none */
	char *results; /* "name:ok,name:failed(reason),..."; NULL if none */
	char *reason;
	bool had_job;			       /* the callback saw the job it was for */
	size_t profile_filters;		       /* its profile's filter count, or 0 */
	char first_filter[FILTER_NAME_MAX + 1]; /* and its first filter */
	char *scan;				/* the virus scan's reason, or NULL */
	/* The archive's fields, "sender|recipients|subject|date|names|body|
	 * attachment text", or NULL for none. */
	char *archive;
};

struct test_ctx {
	char dir[TEST_DIR_SIZE];
	struct event_base *base;
	struct pipeline *pipeline;
	struct test_verdict verdicts[TEST_MAX_VERDICTS];
	size_t verdict_count;
	size_t want;	  /* stop the loop once this many verdicts are in */
	int retries_left; /* resubmit a failed job from the callback */
	int retry_rc;	  /* what pipeline_submit returned there */
	bool timed_out;
	unsigned pipelines; /* made so far: names each one's marker file */
};

static void test_on_verdict(const struct pipeline_verdict *verdict, void *arg)
{
	struct test_ctx *ctx = arg;
	struct test_verdict *copy;

	assert_true(ctx->verdict_count < TEST_MAX_VERDICTS);
	copy = &ctx->verdicts[ctx->verdict_count++];
	memcpy(copy->id, verdict->id, sizeof(copy->id));
	copy->outcome = verdict->outcome;
	for (size_t i = 0; i < verdict->result_count; i++) {
		const struct pipeline_result *result = &verdict->results[i];
		char *joined;

		if (result->headers != NULL) {
			joined = xasprintf("%s%s", copy->prepend != NULL ? copy->prepend : "",
					   result->headers);
			free(copy->prepend);
			copy->prepend = joined;
		}
		joined = xasprintf("%s%s%s:%s%s%s%s", copy->results != NULL ? copy->results : "",
				   i > 0 ? "," : "", result->name,
				   result->status == PIPELINE_RESULT_OK ? "ok" : "failed",
				   result->reason != NULL ? "(" : "",
				   result->reason != NULL ? result->reason : "",
				   result->reason != NULL ? ")" : "");
		free(copy->results);
		copy->results = joined;
	}
	copy->reason = verdict->reason != NULL ? xstrdup(verdict->reason) : NULL;
	if (verdict->scan != NULL)
		copy->scan = xasprintf("%s:%s", verdict->scan->name, verdict->scan->reason);
	if (verdict->archive_fields != NULL) {
		const struct depot_fields *f = verdict->archive_fields;

		copy->archive = xasprintf(
		    "%s|%zu:%s|%s|%lld|%zu:%s|%s|%s", f->sender != NULL ? f->sender : "-",
		    f->recipient_count, f->recipient_count > 0 ? f->recipients[0] : "-",
		    f->subject != NULL ? f->subject : "-", (long long)f->date, f->attachment_count,
		    f->attachment_count > 0 ? f->attachments[0] : "-", f->body, f->attachment_text);
	}
	copy->had_job = verdict->job != NULL && strcmp(verdict->job->id, verdict->id) == 0;
	if (verdict->job != NULL && verdict->job->profile != NULL) {
		copy->profile_filters = verdict->job->profile->filter_count;
		memcpy(copy->first_filter, verdict->job->profile->filters[0].name,
		       sizeof(copy->first_filter));
	}
	if (verdict->outcome == PIPELINE_WORKER_FAILED && ctx->retries_left > 0) {
		struct pipeline_job job = {.received_at = TEST_RECEIVED_AT};

		ctx->retries_left--;
		memcpy(job.id, verdict->id, sizeof(job.id));
		strcpy(job.account, "retry@example.net");
		strcpy(job.provider_host, "pop.example.net");
		ctx->retry_rc = pipeline_submit(ctx->pipeline, &job);
	}
	if (ctx->want > 0 && ctx->verdict_count >= ctx->want)
		event_base_loopbreak(ctx->base);
}

static void test_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct test_ctx *ctx = arg;

	(void)fd;
	(void)what;
	ctx->timed_out = true;
	event_base_loopbreak(ctx->base);
}

/* Runs the loop until WANT verdicts in all (0: none awaited) or MS passed.
 * Returns true if the deadline was hit. */
static bool test_run(struct test_ctx *ctx, size_t want, int ms)
{
	struct event *deadline = evtimer_new(ctx->base, test_on_deadline, ctx);
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	ctx->want = want;
	ctx->timed_out = false;
	if (want == 0 || ctx->verdict_count < want) {
		evtimer_add(deadline, &tv);
		event_base_dispatch(ctx->base);
	}
	event_free(deadline);
	ctx->want = 0;
	return ctx->timed_out;
}

static void test_job_make(struct pipeline_job *job, const char *id, const char *account)
{
	memset(job, 0, sizeof(*job));
	snprintf(job->id, sizeof(job->id), "%s", id);
	snprintf(job->account, sizeof(job->account), "%s", account);
	strcpy(job->provider_host, "pop.example.net");
	job->received_at = TEST_RECEIVED_AT;
}

/* Makes a fresh id and the folder its body goes in; returns the body path. */
static char *test_body_path(struct test_ctx *ctx, char id[SPOOL_ID_LEN + 1])
{
	char *path;
	char *dir;

	util_random_hex(id, SPOOL_ID_LEN / 2);
	path = spool_path(ctx->dir, id);
	dir = xstrndup(path, (size_t)(strrchr(path, '/') - path));
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	free(dir);
	return path;
}

static void test_body_write(struct test_ctx *ctx, char id[SPOOL_ID_LEN + 1])
{
	char *path = test_body_path(ctx, id);

	test_write_file(path, "From: bob@example.com\r\nSubject: hello\r\n\r\nHi.\r\n");
	free(path);
}

/* A FIFO where a body should be: opening it for reading would block until
 * someone writes, and it is not a regular file. */
static void test_body_fifo(struct test_ctx *ctx, char id[SPOOL_ID_LEN + 1])
{
	char *path = test_body_path(ctx, id);

	assert_int_equal(mkfifo(path, 0600), 0);
	free(path);
}

static void test_expect_deliver(const struct test_verdict *verdict, const char *id)
{
	char *expected =
	    xasprintf("Received: from pop.example.net by " TEST_HOSTNAME " (popgate) with POP3\r\n"
		      "\tid %s for <alice@example.net>; Sat, 28 Nov 2026 02:14:13 +0000\r\n",
		      id);

	assert_string_equal(verdict->id, id);
	assert_int_equal(verdict->outcome, PIPELINE_JUDGED);
	assert_non_null(verdict->prepend);
	assert_string_equal(verdict->prepend, expected);
	/* The default profile's filters ran, in its order. */
	assert_string_equal(verdict->results, "trace:ok,address:ok");
	assert_null(verdict->reason);
	assert_true(verdict->had_job);
	assert_int_equal(verdict->profile_filters, 0); /* NULL: the default */
	free(expected);
}

static void test_expect_failed(const struct test_verdict *verdict, const char *id,
			       const char *reason_part)
{
	assert_string_equal(verdict->id, id);
	assert_int_equal(verdict->outcome, PIPELINE_WORKER_FAILED);
	assert_null(verdict->prepend);
	assert_null(verdict->results);
	assert_non_null(verdict->reason);
	if (strstr(verdict->reason, reason_part) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", verdict->reason, reason_part);
}

/* Starts a spawner of EXE, running as this user. 0, or -1 with ERR set. */
static int test_spawner_start(const char *exe, struct spawner_process *spawner, char *err,
			      size_t errlen)
{
	struct spawner_identity same_user = {.change = false};
	int exe_fd = open(exe, O_PATH | O_CLOEXEC);
	int rc;

	assert_true(exe_fd >= 0);
	rc = spawner_start(exe_fd, &same_user, TEST_HOSTNAME, spawner, err, errlen);
	close(exe_fd);
	return rc;
}

/*
 * A pipeline of WORKERS workers, each first in MODE (NULL: none; "exit":
 * every worker exits at once; else the first worker only, see the top),
 * with TIMEOUT seconds per job. Returns once every worker is ready, unless
 * they all exit.
 */
static struct pipeline *test_pipeline_new(struct test_ctx *ctx, const char *mode, int workers,
					  int timeout)
{
	struct spawner_process spawner;
	char err[256] = "";
	char *once = xasprintf("%s/bad-worker-%u", ctx->dir, ctx->pipelines++);
	int pids[TEST_MAX_PIDS];
	size_t want = workers > 0 ? (size_t)workers : (size_t)sysconf(_SC_NPROCESSORS_ONLN);

	if (mode != NULL) {
		assert_int_equal(setenv(TEST_MODE_ENV, mode, 1), 0);
		assert_int_equal(setenv(TEST_ONCE_ENV, once, 1), 0);
	}
	if (test_spawner_start(TEST_SELF, &spawner, err, sizeof(err)) < 0)
		fail_msg("spawner_start: %s", err);
	assert_int_equal(unsetenv(TEST_MODE_ENV), 0);
	assert_int_equal(unsetenv(TEST_ONCE_ENV), 0);
	free(once);
	ctx->pipeline = pipeline_new(ctx->base, &spawner, ctx->dir, workers, timeout,
				     test_on_verdict, ctx, err, sizeof(err));
	if (ctx->pipeline == NULL)
		fail_msg("pipeline_new: %s", err);
	assert_int_equal(spawner.fd, -1); /* the pipeline took it */
	if (mode != NULL && strcmp(mode, "exit") == 0)
		return ctx->pipeline;
	/* Workers start in the loop, as the spawner answers. */
	for (int waited = 0; pipeline_worker_pids(ctx->pipeline, pids, TEST_MAX_PIDS) < want;
	     waited += 10) {
		assert_true(waited < TEST_READY_MS);
		test_run(ctx, 0, 10);
	}
	return ctx->pipeline;
}

/* The one worker's pid (the tests that use it run a single worker), once it
 * is ready: a replacement starts in the loop. */
static pid_t test_worker_pid(struct test_ctx *ctx)
{
	int pid = -1;

	for (int waited = 0; pipeline_worker_pids(ctx->pipeline, &pid, 1) < 1; waited += 10) {
		assert_true(waited < TEST_READY_MS);
		test_run(ctx, 0, 10);
	}
	assert_true(pid > 0);
	return pid;
}

/* Every child this test started has been reaped. */
static void test_expect_no_children(void)
{
	errno = 0;
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static int test_setup(void **state)
{
	struct test_ctx *ctx = xcalloc(1, sizeof(*ctx));

	if (test_dir_make(ctx->dir, sizeof(ctx->dir), "pipeline") < 0)
		goto fail;
	ctx->base = event_base_new();
	if (ctx->base == NULL)
		goto fail;
	*state = ctx;
	return 0;
fail:
	if (ctx->dir[0] != '\0')
		rmdir(ctx->dir);
	free(ctx);
	return -1;
}

static int test_teardown(void **state)
{
	struct test_ctx *ctx = *state;

	pipeline_free(&ctx->pipeline);
	for (size_t i = 0; i < ctx->verdict_count; i++) {
		free(ctx->verdicts[i].prepend);
		free(ctx->verdicts[i].results);
		free(ctx->verdicts[i].reason);
		free(ctx->verdicts[i].scan);
		free(ctx->verdicts[i].archive);
	}
	event_base_free(ctx->base);
	test_dir_remove(ctx->dir);
	free(ctx);
	return 0;
}

/* Five messages through two workers: each gets its own trace header. */
static void test_deliver(void **state)
{
	struct test_ctx *ctx = *state;
	char ids[5][SPOOL_ID_LEN + 1];
	int pids[4];

	test_pipeline_new(ctx, NULL, 2, 10);
	assert_int_equal(pipeline_worker_pids(ctx->pipeline, pids, 4), 2);
	for (int i = 0; i < 5; i++) {
		struct pipeline_job job;

		test_body_write(ctx, ids[i]);
		test_job_make(&job, ids[i], "alice@example.net");
		assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	}
	assert_int_equal(pipeline_pending(ctx->pipeline), 5);
	assert_false(test_run(ctx, 5, 10000));
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	for (int i = 0; i < 5; i++) {
		bool found = false;

		for (size_t v = 0; v < ctx->verdict_count; v++) {
			if (strcmp(ctx->verdicts[v].id, ids[i]) != 0)
				continue;
			assert_false(found);
			found = true;
			test_expect_deliver(&ctx->verdicts[v], ids[i]);
		}
		assert_true(found);
	}
	pipeline_free(&ctx->pipeline);
	assert_null(ctx->pipeline);
	test_expect_no_children();
}

/*
 * A job that asks for the archive's fields gets them from its (confined)
 * worker: a KOI8-R subject and a Windows-1252 body converted with the
 * converters loaded before confinement, an .odt attachment's text read
 * with libarchive; a job that does not ask gets none. A long message's
 * fields make a verdict frame longer than any other frame may be.
 */
static void test_archive_fields(void **state)
{
	static const char body[] =
	    "From: Anna <Anna@Example.org>\r\n"
	    "To: alice@example.net\r\n"
	    "Subject: =?koi8-r?B?8NLJ18XU?=\r\n"
	    "Date: Sat, 28 Nov 2026 02:14:13 +0000\r\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\r\n"
	    "\r\n"
	    "--b\r\n"
	    "Content-Type: text/plain; charset=windows-1252\r\n"
	    "\r\n"
	    "\x93quoted\x94\r\n"
	    "--b\r\n"
	    "Content-Type: application/vnd.oasis.opendocument.text\r\n"
	    "Content-Disposition: attachment; filename=\"vertrag.odt\"\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "\r\n"
	    "UEsDBBQAAAAIAAAAIVwBwUvcOgAAAFgAAAALAAAAY29udGVudC54bWyzyU9Ly0xOtSpJrSixswGR\r\n"
	    "VgV2YalFJUWJ6QpqibkF1gqOeTmJ6ak2+lBJmKLg1MySVAUjhLg+slEAUEsBAhQDFAAAAAgAAAAh\r\n"
	    "XAHBS9w6AAAAWAAAAAsAAAAAAAAAAAAAAIABAAAAAGNvbnRlbnQueG1sUEsFBgAAAAABAAEAOQAA\r\n"
	    "AGMAAAAAAA==\r\n"
	    "--b--\r\n";
	size_t long_len = 2 * DEPOT_TEXT_MAX;
	char *long_body = xmalloc(long_len + 64);
	struct test_ctx *ctx = *state;
	char ids[3][SPOOL_ID_LEN + 1];

	strcpy(long_body, "From: a@example.org\r\n\r\n");
	for (size_t i = strlen(long_body); i < long_len; i += 6)
		memcpy(long_body + i, "words ", 6);
	long_body[long_len] = '\0';
	test_pipeline_new(ctx, NULL, 1, 10);
	for (int i = 0; i < 3; i++) {
		struct pipeline_job job;
		char *path = test_body_path(ctx, ids[i]);

		test_write_file(path, i == 2 ? long_body : body);
		free(path);
		test_job_make(&job, ids[i], "alice@example.net");
		job.archive = i != 1;
		assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	}
	assert_false(test_run(ctx, 3, 10000));
	for (size_t v = 0; v < 3; v++) {
		const struct test_verdict *verdict = &ctx->verdicts[v];

		assert_int_equal(verdict->outcome, PIPELINE_JUDGED);
		if (strcmp(verdict->id, ids[1]) == 0) {
			assert_null(verdict->archive);
			continue;
		}
		if (strcmp(verdict->id, ids[2]) == 0) {
			assert_non_null(verdict->archive);
			assert_true(strlen(verdict->archive) > DEPOT_TEXT_MAX - 6);
			assert_true(strlen(verdict->archive) > PROTO_PAYLOAD_MAX);
			continue;
		}
		assert_string_equal(verdict->id, ids[0]);
		assert_non_null(verdict->archive);
		assert_string_equal(verdict->archive,
				    "anna@example.org|1:alice@example.net|Привет|"
				    "1795832053|1:vertrag.odt|\u201cquoted\u201d\n|"
				    "Vertrag & Anlage\nSeite 2\n");
	}
	free(long_body);
}

/* What users typed cannot break out of the header's tokens or lines. */
static void test_trace_header_sanitised(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	char *expected;

	test_pipeline_new(ctx, NULL, 1, 10);
	test_body_write(ctx, id);
	test_job_make(&job, id, "ev<il>; x\r\nBcc: me@\xc3\xa9vil");
	strcpy(job.provider_host, "pop host;\tby");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 1, 10000));
	assert_int_equal(ctx->verdicts[0].outcome, PIPELINE_JUDGED);
	expected =
	    xasprintf("Received: from pop?host??by by " TEST_HOSTNAME " (popgate) with POP3\r\n"
		      "\tid %s for <ev?il???x??Bcc:?me@??vil>; Sat, 28 Nov 2026 02:14:13 +0000\r\n",
		      id);
	assert_string_equal(ctx->verdicts[0].prepend, expected);
	free(expected);
}

/* A second submit of an id that is running, or queued, is ignored. */
static void test_duplicates_ignored(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	struct pipeline_job other;
	char id[SPOOL_ID_LEN + 1];
	char other_id[SPOOL_ID_LEN + 1];

	test_pipeline_new(ctx, NULL, 1, 10);
	test_body_write(ctx, id);
	test_body_write(ctx, other_id);
	test_job_make(&job, id, "alice@example.net");
	test_job_make(&other, other_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);   /* running */
	assert_int_equal(pipeline_submit(ctx->pipeline, &other), 0); /* queued */
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_int_equal(pipeline_submit(ctx->pipeline, &other), 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 2);
	assert_false(test_run(ctx, 2, 10000));
	/* Nothing more arrives. */
	assert_true(test_run(ctx, 0, 300));
	assert_int_equal(ctx->verdict_count, 2);
	test_expect_deliver(&ctx->verdicts[0], id);
	test_expect_deliver(&ctx->verdicts[1], other_id);
	/* Once reported, the id may be submitted again. */
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 1);
	assert_false(test_run(ctx, 3, 10000));
	test_expect_deliver(&ctx->verdicts[2], id);
}

/* The workers run confined (confine.c; what that stops is proved in
 * test_worker_confine.c): a seccomp filter and no_new_privs, from the moment
 * they report being ready. */
static void test_workers_confined(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	char path[64];
	char *text = xmalloc(4096);
	size_t len;
	FILE *f;

	test_pipeline_new(ctx, NULL, 1, 10);
	/* Once it has judged a job, the worker is past its confinement. */
	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 1, 10000));
	test_expect_deliver(&ctx->verdicts[0], id);
	snprintf(path, sizeof(path), "/proc/%ld/status", (long)test_worker_pid(ctx));
	f = fopen(path, "r");
	assert_non_null(f);
	len = fread(text, 1, 4095, f);
	fclose(f);
	text[len] = '\0';
	assert_non_null(strstr(text, "NoNewPrivs:\t1\n"));
	assert_non_null(strstr(text, "Seccomp:\t2\n"));
	free(text);
}

/* Sends FRAME (FRAME_LEN bytes) on FD with FD_COUNT descriptors of PATH
 * attached to its first byte. True if it went out whole. */
static bool test_frame_send(int fd, const unsigned char *frame, size_t frame_len, const char *path,
			    size_t fd_count)
{
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(2 * sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = (void *)frame, .iov_len = frame_len};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[2];
	ssize_t n;

	if (fd_count > 0) {
		struct cmsghdr *c;

		for (size_t i = 0; i < fd_count; i++) {
			fds[i] = open(path, O_RDONLY | O_CLOEXEC);
			assert_true(fds[i] >= 0);
		}
		memset(control.data, 0, sizeof(control.data));
		msg.msg_control = control.data;
		msg.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
		memcpy(CMSG_DATA(c), fds, fd_count * sizeof(int));
	}
	n = sendmsg(fd, &msg, MSG_NOSIGNAL);
	for (size_t i = 0; i < fd_count; i++)
		close(fds[i]);
	return n == (ssize_t)frame_len;
}

/* What test_worker_direct sends first: a setup frame that names the Bayes
 * database or not, with SETUP_FD_COUNT descriptors of SETUP_PATH. */
struct test_setup {
	bool bayes_db;
	const char *path;
	size_t fd_count;
};

/*
 * Starts this binary as a real worker on a socket of our own, sends it
 * SETUP (NULL: a setup without a database) then JOB (with its profile, or
 * the default one) with FD_COUNT descriptors of BODY_PATH attached, and
 * returns what came back before EOF (in REPLY, *REPLY_LEN bytes) and the
 * worker's wait status.
 */
static int test_worker_direct(const struct test_setup *setup, const struct pipeline_job *job,
			      const char *body_path, size_t fd_count, unsigned char *reply,
			      size_t *reply_len)
{
	struct proto_setup setup_frame = {.bayes_db = setup != NULL && setup->bayes_db};
	unsigned char *frame;
	size_t frame_len;
	const char *err;
	int sv[2];
	int status;
	pid_t pid;
	/* The encoder wants the profile pipeline_submit would fill in. */
	struct pipeline_job resolved = *job;

	if (resolved.profile == NULL)
		resolved.profile = (struct filter_profile *)filter_profile_default();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = {(char *)"popgate", (char *)"--worker", (char *)"3",
				(char *)TEST_HOSTNAME, NULL};

		if (dup2(sv[1], 3) < 0)
			_exit(127);
		execv(TEST_SELF, argv);
		_exit(127);
	}
	close(sv[1]);
	proto_setup_encode(&setup_frame, &frame, &frame_len);
	assert_true(test_frame_send(sv[0], frame, frame_len, setup != NULL ? setup->path : NULL,
				    setup != NULL ? setup->fd_count : 0));
	free(frame);
	assert_int_equal(proto_job_encode(&resolved, &frame, &frame_len, &err), 0);
	/* A worker that refused its setup may be gone already: then the job
	 * cannot be sent, and the reply below is empty. */
	test_frame_send(sv[0], frame, frame_len, body_path, fd_count);
	free(frame);
	/* The worker answers (or gives up) and then sees EOF once we stop
	 * writing; a deadline bounds the wait. */
	shutdown(sv[0], SHUT_WR);
	*reply_len = 0;
	for (;;) {
		struct pollfd pfd = {.fd = sv[0], .events = POLLIN};
		ssize_t n;

		assert_int_equal(poll(&pfd, 1, 10000), 1);
		n = read(sv[0], reply + *reply_len, PROTO_FRAME_MAX - *reply_len);
		if (n <= 0)
			break;
		*reply_len += (size_t)n;
	}
	close(sv[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_body_links(struct test_ctx *ctx, char id[SPOOL_ID_LEN + 1], int count,
			    bool listed);

/* Starts this binary as a real worker on a socket of our own, sends it a
 * setup frame with SETTINGS; returns our end of the socket and *PID_R. */
static int test_worker_spawn(const char *settings, pid_t *pid_r)
{
	struct proto_setup setup = {.settings = (char *)settings};
	unsigned char *frame;
	size_t frame_len;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fflush(NULL);
	*pid_r = fork();
	assert_true(*pid_r >= 0);
	if (*pid_r == 0) {
		char *argv[] = {(char *)"popgate", (char *)"--worker", (char *)"3",
				(char *)TEST_HOSTNAME, NULL};

		if (dup2(sv[1], 3) < 0)
			_exit(127);
		execv(TEST_SELF, argv);
		_exit(127);
	}
	close(sv[1]);
	proto_setup_encode(&setup, &frame, &frame_len);
	assert_true(test_frame_send(sv[0], frame, frame_len, NULL, 0));
	free(frame);
	return sv[0];
}

/* Reads from FD into BUF (*HAVE bytes so far) until a whole frame is at
 * its front; returns its type, or 0 at EOF. */
static enum proto_type test_frame_read(int fd, unsigned char *buf, size_t *have)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		const unsigned char *payload;
		size_t payload_len;
		size_t consumed;
		enum proto_type type;
		const char *err;
		ssize_t n;

		assert_int_equal(
		    proto_frame_decode(buf, *have, &consumed, &type, &payload, &payload_len, &err),
		    0);
		if (consumed > 0)
			return type;
		assert_int_equal(poll(&pfd, 1, 10000), 1);
		n = read(fd, buf + *have, PROTO_FRAME_MAX - *have);
		if (n <= 0)
			return 0;
		*have += (size_t)n;
	}
}

/* Takes the query at the front of BUF out of it. */
static struct proto_query test_query_take(unsigned char *buf, size_t *have)
{
	struct proto_query query;
	size_t consumed;
	const char *err;

	assert_int_equal(proto_query_decode(buf, *have, &consumed, &query, &err), 0);
	assert_true(consumed > 0);
	memmove(buf, buf + consumed, *have - consumed);
	*have -= consumed;
	return query;
}

static void test_answer_send(int fd, uint32_t id, enum filter_dns_status status, const char *record)
{
	struct proto_answer answer = {.id = id, .answer = {.status = status}};
	unsigned char *frame;
	size_t frame_len;
	const char *err;

	if (record != NULL)
		answer.answer.records[answer.answer.count++] = (char *)record;
	assert_int_equal(proto_answer_encode(&answer, &frame, &frame_len, &err), 0);
	assert_true(test_frame_send(fd, frame, frame_len, NULL, 0));
	free(frame);
}

/* Sends a job for a body with links to d0-example.com and
 * listed-example.com, judged by uribl alone. */
static void test_uribl_job_send(struct test_ctx *ctx, int fd, char id[SPOOL_ID_LEN + 1],
				int link_count)
{
	struct filter_profile profile = {.tag_at = 5, .quarantine_at = 10, .filter_count = 1};
	struct pipeline_job job;
	unsigned char *frame;
	size_t frame_len;
	const char *err;
	char *path;

	strcpy(profile.filters[0].name, "uribl");
	test_body_links(ctx, id, link_count, true);
	path = spool_path(ctx->dir, id);
	test_job_make(&job, id, "alice@example.net");
	job.profile = &profile;
	assert_int_equal(proto_job_encode(&job, &frame, &frame_len, &err), 0);
	assert_true(test_frame_send(fd, frame, frame_len, path, 1));
	free(frame);
	free(path);
}

/*
 * The worker's side of the DNS questions, with this test as the main
 * process: each question is a query frame with a new id; an answer to an
 * earlier id is dropped (before the right one, and after the verdict,
 * before the next job); an answer to an id not asked yet ends the worker
 * without a verdict.
 */
static void test_worker_asks_main_process(void **state)
{
	struct test_ctx *ctx = *state;
	unsigned char *buf = xmalloc(PROTO_FRAME_MAX);
	struct pipeline_verdict verdict;
	struct proto_query first;
	struct proto_query second;
	char id[SPOOL_ID_LEN + 1];
	size_t have = 0;
	size_t consumed;
	const char *err;
	int status;
	pid_t pid;
	int fd = test_worker_spawn("uribl_zones uribl.test\n", &pid);

	test_uribl_job_send(ctx, fd, id, 1);
	assert_int_equal(test_frame_read(fd, buf, &have), PROTO_TYPE_QUERY);
	first = test_query_take(buf, &have);
	assert_string_equal(first.name, "d0-example.com.uribl.test");
	assert_int_equal(first.type, FILTER_DNS_A);
	test_answer_send(fd, first.id, FILTER_DNS_NOT_FOUND, NULL);
	assert_int_equal(test_frame_read(fd, buf, &have), PROTO_TYPE_QUERY);
	second = test_query_take(buf, &have);
	assert_string_equal(second.name, "listed-example.com.uribl.test");
	assert_int_equal(second.id, first.id + 1);
	/* A late answer to the first question, then the second's. */
	test_answer_send(fd, first.id, FILTER_DNS_OK, "127.0.0.9");
	test_answer_send(fd, second.id, FILTER_DNS_OK, "127.0.0.2");
	assert_int_equal(test_frame_read(fd, buf, &have), PROTO_TYPE_VERDICT);
	assert_int_equal(proto_verdict_decode(buf, have, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, have);
	have = 0;
	assert_string_equal(verdict.results[0].reason,
			    "listed: listed-example.com (uribl.test 127.0.0.2)");
	proto_verdict_clear(&verdict);

	/* An answer the last job gave up on, before the next job: dropped.
	 * The next job's links: d0 and listed-example.com were answered
	 * (the worker keeps answers, filters/dns.h), d1 is asked. */
	test_answer_send(fd, second.id, FILTER_DNS_FAILED, NULL);
	test_uribl_job_send(ctx, fd, id, 2);
	assert_int_equal(test_frame_read(fd, buf, &have), PROTO_TYPE_QUERY);
	first = test_query_take(buf, &have);
	assert_string_equal(first.name, "d1-example.com.uribl.test");
	assert_int_equal(first.id, second.id + 1);
	/* An answer to a question not asked: the worker exits, no verdict. */
	test_answer_send(fd, first.id + 1, FILTER_DNS_NOT_FOUND, NULL);
	assert_int_equal(test_frame_read(fd, buf, &have), 0);
	assert_int_equal(have, 0);
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	free(buf);
}

/* The worker takes a job only with exactly one body descriptor: none, or
 * two, and it answers nothing and exits with an error. */
static void test_worker_needs_one_body(void **state)
{
	struct test_ctx *ctx = *state;
	unsigned char *reply = xmalloc(PROTO_FRAME_MAX);
	struct pipeline_verdict verdict;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	size_t reply_len;
	size_t consumed;
	const char *err;
	char *path;
	int status;

	test_body_write(ctx, id);
	path = spool_path(ctx->dir, id);
	test_job_make(&job, id, "alice@example.net");

	status = test_worker_direct(NULL, &job, path, 1, reply, &reply_len);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(proto_verdict_decode(reply, reply_len, &consumed, &verdict, &err), 0);
	assert_int_equal(consumed, reply_len);
	assert_string_equal(verdict.id, id);
	proto_verdict_clear(&verdict);

	for (size_t fd_count = 0; fd_count <= 2; fd_count += 2) {
		status = test_worker_direct(NULL, &job, path, fd_count, reply, &reply_len);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 1);
		assert_int_equal(reply_len, 0);
	}
	free(path);
	free(reply);
}

/*
 * The Bayes database comes with the setup frame, as a descriptor: the
 * worker loads it from there (the file's name and folder are not ones it
 * could know) and judges with it. A setup that names the database without
 * one, or carries descriptors it does not name, ends the worker before any
 * job.
 */
static void test_worker_bayes_setup(void **state)
{
	static const char spam[] = "From: a@example.biz\nSubject: free money\n\nclick here now\n";
	static const char ham[] = "From: b@example.org\nSubject: minutes\n\nmeeting notes\n";
	static const struct {
		bool bayes_db;
		size_t fd_count;
	} broken[] = {{true, 0}, {false, 1}, {true, 2}};
	struct test_ctx *ctx = *state;
	unsigned char *reply = xmalloc(PROTO_FRAME_MAX);
	struct filter_profile *profile = xcalloc(1, sizeof(*profile));
	char *db_path = xasprintf("%s/handed-over.db", ctx->dir);
	struct pipeline_verdict verdict;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	char learn_err[256];
	const char *err;
	size_t reply_len;
	size_t consumed;
	char *path;
	int status;

	assert_int_equal(
	    bayes_learn(db_path, spam, strlen(spam), true, learn_err, sizeof(learn_err)), 0);
	assert_int_equal(
	    bayes_learn(db_path, ham, strlen(ham), false, learn_err, sizeof(learn_err)), 0);
	test_body_write(ctx, id);
	path = spool_path(ctx->dir, id);
	test_job_make(&job, id, "alice@example.net");
	profile->tag_at = 5;
	profile->quarantine_at = 10;
	strcpy(profile->filters[0].name, "bayes");
	profile->filter_count = 1;
	job.profile = profile;

	status = test_worker_direct(
	    &(struct test_setup){.bayes_db = true, .path = db_path, .fd_count = 1}, &job, path, 1,
	    reply, &reply_len);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(proto_verdict_decode(reply, reply_len, &consumed, &verdict, &err), 0);
	assert_int_equal(verdict.result_count, 1);
	assert_string_equal(verdict.results[0].name, "bayes");
	assert_int_equal(verdict.results[0].status, PIPELINE_RESULT_OK);
	assert_int_equal(strncmp(verdict.results[0].reason, "bayes: 0.", 9), 0);
	proto_verdict_clear(&verdict);

	/* No database handed over: the filter says so, the worker goes on. */
	status = test_worker_direct(NULL, &job, path, 1, reply, &reply_len);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(proto_verdict_decode(reply, reply_len, &consumed, &verdict, &err), 0);
	assert_int_equal(verdict.results[0].status, PIPELINE_RESULT_FAILED);
	assert_string_equal(verdict.results[0].reason,
			    "bayes: not trained (popgatectl bayes train)");
	proto_verdict_clear(&verdict);

	for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
		status = test_worker_direct(&(struct test_setup){.bayes_db = broken[i].bayes_db,
								 .path = db_path,
								 .fd_count = broken[i].fd_count},
					    &job, path, 1, reply, &reply_len);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 1);
		assert_int_equal(reply_len, 0);
	}
	free(profile);
	free(path);
	free(db_path);
	free(reply);
}

/*
 * The daemon hands a worker the Bayes database in the data folder at its
 * start; when the file changes, pipeline_bayes_check replaces the workers
 * that have another, and the next job is judged with the new one. A check
 * with nothing changed replaces nothing.
 */
static void test_bayes_renewal(void **state)
{
	static const char spam[] = "From: a@example.biz\nSubject: free money\n\nclick here now\n";
	static const char ham[] = "From: b@example.org\nSubject: minutes\n\nmeeting notes\n";
	struct test_ctx *ctx = *state;
	struct filter_profile *profile = xcalloc(1, sizeof(*profile));
	char *db_path = xasprintf("%s/bayes.db", ctx->dir);
	struct pipeline_job job;
	char ids[2][SPOOL_ID_LEN + 1];
	char err[256];
	pid_t first;
	pid_t second;

	profile->tag_at = 5;
	profile->quarantine_at = 10;
	strcpy(profile->filters[0].name, "bayes");
	profile->filter_count = 1;
	test_pipeline_new(ctx, NULL, 1, 10);
	first = test_worker_pid(ctx);
	/* Nothing changed: the worker stays. */
	pipeline_bayes_check(ctx->pipeline);
	assert_int_equal(test_worker_pid(ctx), first);
	test_body_write(ctx, ids[0]);
	test_job_make(&job, ids[0], "alice@example.net");
	job.profile = profile;
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 1, 10000));
	assert_string_equal(ctx->verdicts[0].results,
			    "bayes:failed(bayes: not trained (popgatectl bayes train))");

	/* Trained (the file appears): the idle worker is replaced. */
	assert_int_equal(bayes_learn(db_path, spam, strlen(spam), true, err, sizeof(err)), 0);
	assert_int_equal(bayes_learn(db_path, ham, strlen(ham), false, err, sizeof(err)), 0);
	pipeline_bayes_check(ctx->pipeline);
	second = test_worker_pid(ctx);
	assert_int_not_equal(second, first);
	pipeline_bayes_check(ctx->pipeline);
	assert_int_equal(test_worker_pid(ctx), second);
	test_body_write(ctx, ids[1]);
	test_job_make(&job, ids[1], "alice@example.net");
	job.profile = profile;
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 2, 10000));
	assert_int_equal(strncmp(ctx->verdicts[1].results, "bayes:ok(bayes: 0.", 18), 0);
	assert_int_equal(ctx->verdicts[1].outcome, PIPELINE_JUDGED);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
	free(profile);
	free(db_path);
}

/* A worker killed while it works: its job fails, a new worker takes over. */
static void test_worker_killed(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char slow_id[SPOOL_ID_LEN + 1];
	char id[SPOOL_ID_LEN + 1];
	pid_t first;
	pid_t second;

	test_pipeline_new(ctx, "hang", 1, 0);
	test_body_write(ctx, slow_id);
	test_job_make(&job, slow_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	/* Give the worker time to take the job and hang on it. */
	assert_true(test_run(ctx, 0, 300));
	assert_int_equal(ctx->verdict_count, 0);
	first = test_worker_pid(ctx);
	assert_int_equal(kill(first, SIGKILL), 0);
	assert_false(test_run(ctx, 1, 5000));
	test_expect_failed(&ctx->verdicts[0], slow_id, "worker exited");
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	second = test_worker_pid(ctx);
	assert_true(second != first);

	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 2, 10000));
	test_expect_deliver(&ctx->verdicts[1], id);
	assert_int_equal(test_worker_pid(ctx), second);
	/* The dead worker has been reaped by the spawner, not left a zombie
	 * (which kill would still find). */
	for (int waited = 0; kill(first, 0) == 0; waited += 10) {
		assert_true(waited < TEST_READY_MS);
		test_run(ctx, 0, 10);
	}
	assert_int_equal(errno, ESRCH);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* The state letter and the parent of PID, from /proc; false if it is gone. */
static bool test_process_stat(pid_t pid, char *state, pid_t *parent)
{
	char path[64];
	char *text = xmalloc(4096);
	size_t len;
	long parent_id = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL) {
		free(text);
		return false;
	}
	len = fread(text, 1, 4095, f);
	fclose(f);
	text[len] = '\0';
	/* "PID (COMM) STATE PPID ...": COMM may hold anything but ends at the
	 * last ')'. */
	assert_non_null(strrchr(text, ')'));
	assert_int_equal(sscanf(strrchr(text, ')') + 1, " %c %ld", state, &parent_id), 2);
	*parent = (pid_t)parent_id;
	free(text);
	return true;
}

/*
 * The spawner killed: the pipeline ends the loop and says the spawner is
 * lost. Its workers die with it; the job one of them held is not reported
 * as a worker failure (which would count against the message): it stays
 * pending until pipeline_free drops it, and the store resumes it later.
 */
static void test_spawner_lost(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char slow_id[SPOOL_ID_LEN + 1];
	siginfo_t info;
	pid_t worker;
	pid_t spawner;
	pid_t parent;
	char proc_state;

	test_pipeline_new(ctx, "hang", 1, 0);
	test_body_write(ctx, slow_id);
	test_job_make(&job, slow_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	/* Give the worker time to take the job and hang on it. */
	assert_true(test_run(ctx, 0, 300));
	worker = test_worker_pid(ctx);
	assert_true(test_process_stat(worker, &proc_state, &spawner));
	assert_true(spawner > 0 && spawner != getpid());
	assert_false(pipeline_spawner_lost(ctx->pipeline));
	/* Both are dead before the loop runs again, so that it finds the
	 * worker's socket closed with the spawner's, as when a worker dies
	 * with its spawner (the hanging worker sets no parent-death signal:
	 * it is killed here). */
	assert_int_equal(kill(worker, SIGKILL), 0);
	for (int waited = 0; test_process_stat(worker, &proc_state, &parent) && proc_state != 'Z';
	     waited++) {
		struct timespec pause = {.tv_nsec = 1000 * 1000};

		assert_true(waited < TEST_READY_MS);
		nanosleep(&pause, NULL);
	}
	assert_int_equal(kill(spawner, SIGKILL), 0);
	assert_int_equal(waitid(P_PID, (id_t)spawner, &info, WEXITED | WNOWAIT), 0);
	/* The pipeline ends the loop by itself, long before the deadline. */
	assert_false(test_run(ctx, 0, 10000));
	assert_true(pipeline_spawner_lost(ctx->pipeline));
	assert_int_equal(ctx->verdict_count, 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 1);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* A worker that hangs past worker_timeout is killed and its job reported;
 * the job queued behind it is served by the replacement. */
static void test_worker_timeout(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char slow_id[SPOOL_ID_LEN + 1];
	char id[SPOOL_ID_LEN + 1];
	int64_t start = util_monotonic_ms();
	pid_t first;

	test_pipeline_new(ctx, "hang", 1, 1);
	first = test_worker_pid(ctx);
	test_body_write(ctx, slow_id);
	test_body_write(ctx, id);
	test_job_make(&job, slow_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 2);
	assert_false(test_run(ctx, 1, 5000));
	assert_true(util_monotonic_ms() - start >= 900);
	test_expect_failed(&ctx->verdicts[0], slow_id, "timed out after 1 s");
	assert_true(test_worker_pid(ctx) != first);
	assert_false(test_run(ctx, 2, 5000));
	test_expect_deliver(&ctx->verdicts[1], id);
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* A missing body fails its job (the main process cannot open it; no worker
 * is harmed); the callback's retry (submitted from inside the callback)
 * fails the same way, and then the worker serves the next message. */
static void test_retry_from_callback(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char missing_id[SPOOL_ID_LEN + 1];
	char id[SPOOL_ID_LEN + 1];
	pid_t first;

	test_pipeline_new(ctx, NULL, 1, 10);
	util_random_hex(missing_id, SPOOL_ID_LEN / 2);
	test_job_make(&job, missing_id, "alice@example.net");
	ctx->retries_left = 1;
	ctx->retry_rc = -2;
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 2, 10000));
	assert_int_equal(ctx->retry_rc, 0);
	test_expect_failed(&ctx->verdicts[0], missing_id,
			   "cannot open the body: No such file or directory");
	test_expect_failed(&ctx->verdicts[1], missing_id,
			   "cannot open the body: No such file or directory");
	assert_true(test_run(ctx, 0, 200));
	assert_int_equal(ctx->verdict_count, 2);
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	first = test_worker_pid(ctx);

	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 3, 10000));
	test_expect_deliver(&ctx->verdicts[2], id);
	assert_int_equal(test_worker_pid(ctx), first);
}

/* A FIFO or a link in a body's place is refused by the main process without
 * blocking on it, and the job behind it is served. */
static void test_body_not_regular(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char fifo_id[SPOOL_ID_LEN + 1];
	char link_id[SPOOL_ID_LEN + 1];
	char id[SPOOL_ID_LEN + 1];
	char *target;
	char *link_path;

	test_pipeline_new(ctx, NULL, 1, 10);
	test_body_fifo(ctx, fifo_id);
	test_body_write(ctx, id);
	link_path = test_body_path(ctx, link_id);
	target = spool_path(ctx->dir, id);
	assert_int_equal(symlink(target, link_path), 0);
	test_job_make(&job, fifo_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	test_job_make(&job, link_id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 3, 10000));
	test_expect_failed(&ctx->verdicts[0], fifo_id, "the body is not a regular file");
	test_expect_failed(&ctx->verdicts[1], link_id, "cannot open the body");
	test_expect_deliver(&ctx->verdicts[2], id);
	free(target);
	free(link_path);
}

/*
 * A job's profile decides which filters run, in what order: a profile of
 * "address" then "trace" gets their results in that order, one naming a
 * filter the table lacks gets a failed result for it and the others still
 * run, and an empty profile runs nothing. The callback sees the profile the
 * job was submitted with (a copy: the caller's may be gone).
 */
static void test_profile_filters_run(void **state)
{
	struct test_ctx *ctx = *state;
	struct filter_profile *profiles[3];
	struct pipeline_job job;
	char ids[3][SPOOL_ID_LEN + 1];

	test_pipeline_new(ctx, NULL, 1, 10);
	for (size_t i = 0; i < 3; i++) {
		profiles[i] = xcalloc(1, sizeof(*profiles[i]));
		profiles[i]->tag_at = 5;
		profiles[i]->quarantine_at = 10;
	}
	strcpy(profiles[0]->filters[0].name, "address");
	strcpy(profiles[0]->filters[1].name, "trace");
	profiles[0]->filter_count = 2;
	strcpy(profiles[1]->filters[0].name, "nosuch");
	strcpy(profiles[1]->filters[1].name, "trace");
	profiles[1]->filter_count = 2;
	for (size_t i = 0; i < 3; i++) {
		test_body_write(ctx, ids[i]);
		test_job_make(&job, ids[i], "alice@example.net");
		job.profile = profiles[i];
		assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
		free(profiles[i]);
	}
	assert_false(test_run(ctx, 3, 10000));
	for (size_t i = 0; i < 3; i++) {
		const struct test_verdict *verdict = NULL;

		for (size_t j = 0; j < 3; j++) {
			if (strcmp(ctx->verdicts[j].id, ids[i]) == 0)
				verdict = &ctx->verdicts[j];
		}
		assert_non_null(verdict);
		assert_int_equal(verdict->outcome, PIPELINE_JUDGED);
		assert_true(verdict->had_job);
		if (i == 0) {
			assert_string_equal(verdict->results, "address:ok,trace:ok");
			assert_non_null(strstr(verdict->prepend, "Received: from pop.example.net"));
			assert_int_equal(verdict->profile_filters, 2);
			assert_string_equal(verdict->first_filter, "address");
		} else if (i == 1) {
			assert_string_equal(verdict->results,
					    "nosuch:failed(no such filter),trace:ok");
			assert_non_null(verdict->prepend);
			assert_string_equal(verdict->first_filter, "nosuch");
		} else {
			assert_null(verdict->results);
			assert_null(verdict->prepend);
		}
	}
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* Writes a body with links to each of the COUNT domains d0-example.com, ...
 * and to listed-example.com when LISTED. */
static void test_body_links(struct test_ctx *ctx, char id[SPOOL_ID_LEN + 1], int count, bool listed)
{
	char *path = test_body_path(ctx, id);
	char *body = xstrdup("From: bob@example.com\r\nSubject: links\r\n\r\n");

	for (int i = 0; i < count; i++) {
		char *more = xasprintf("%shttp://www.d%d-example.com/\r\n", body, i);

		free(body);
		body = more;
	}
	if (listed) {
		char *more = xasprintf("%shttp://www.listed-example.com/offer\r\n", body);

		free(body);
		body = more;
	}
	test_write_file(path, body);
	free(body);
	free(path);
}

/* Submits a job for ID judged by the uribl filter alone. */
static void test_submit_uribl(struct test_ctx *ctx, const char *id)
{
	struct filter_profile profile = {.tag_at = 5, .quarantine_at = 10, .filter_count = 1};
	struct pipeline_job job;

	strcpy(profile.filters[0].name, "uribl");
	test_job_make(&job, id, "alice@example.net");
	job.profile = &profile;
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
}

/*
 * A worker's DNS questions go to the main process, whose resolver (here on
 * a real dnsmasq) answers them: the listed link domain is found. Then the
 * limits: a job asking more than PIPELINE_QUERIES_MAX questions gets the
 * rest answered as failures (20 domains on 8 zones is 160 questions); a
 * pipeline without a resolver answers every question as failed; a name
 * server that never answers costs the message [spam] dns_time_limit and
 * leaves a neutral result, and the worker goes on with the next job.
 */
static void test_worker_dns(void **state)
{
	static const char *const records[] = {
	    "local=/test/",
	    "host-record=listed-example.com.uribl.test,127.0.0.2",
	};
	struct test_ctx *ctx = *state;
	struct test_dnsmasq dnsmasq = {0};
	struct resolver *resolver;
	char ids[5][SPOOL_ID_LEN + 1];
	char err[256];
	char silent_address[32];
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sin_len = sizeof(sin);
	int silent;
	int64_t started;

	assert_int_equal(test_dnsmasq_start(&dnsmasq, ctx->dir, records, 2), 0);
	resolver = resolver_new(ctx->base, dnsmasq.address, err, sizeof(err));
	assert_non_null(resolver);
	test_pipeline_new(ctx, NULL, 1, 30);
	pipeline_set_resolver(ctx->pipeline, resolver);
	pipeline_set_filter_settings(ctx->pipeline, "uribl_zones uribl.test\n");
	test_body_links(ctx, ids[0], 2, true);
	test_submit_uribl(ctx, ids[0]);
	assert_false(test_run(ctx, 1, 10000));
	assert_string_equal(ctx->verdicts[0].results,
			    "uribl:ok(listed: listed-example.com (uribl.test 127.0.0.2))");

	/* 160 questions: the 101st and later fail at once. */
	pipeline_set_filter_settings(ctx->pipeline,
				     "uribl_zones z1.test z2.test z3.test z4.test z5.test z6.test "
				     "z7.test z8.test\n");
	test_body_links(ctx, ids[1], 20, false);
	test_submit_uribl(ctx, ids[1]);
	assert_false(test_run(ctx, 2, 20000));
	assert_string_equal(ctx->verdicts[1].results,
			    "uribl:ok(20 link domains, none listed; no answer: z5.test failed, "
			    "z6.test failed, z7.test failed, z8.test failed, z1.test failed, "
			    "z2.test failed, z3.test failed, z4.test failed)");

	/* No resolver: every question fails, the message is judged. */
	pipeline_set_resolver(ctx->pipeline, NULL);
	pipeline_set_filter_settings(ctx->pipeline, "uribl_zones uribl.test\n");
	test_body_links(ctx, ids[2], 0, true);
	test_submit_uribl(ctx, ids[2]);
	assert_false(test_run(ctx, 3, 10000));
	assert_string_equal(ctx->verdicts[2].results,
			    "uribl:ok(1 link domain, none listed; no answer: uribl.test failed)");
	pipeline_free(&ctx->pipeline);
	resolver_free(&resolver);
	test_dnsmasq_stop(&dnsmasq);

	/* A name server that reads and never answers. */
	silent = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(silent >= 0);
	assert_int_equal(bind(silent, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(silent, (struct sockaddr *)&sin, &sin_len), 0);
	snprintf(silent_address, sizeof(silent_address), "127.0.0.1:%u", ntohs(sin.sin_port));
	resolver = resolver_new(ctx->base, silent_address, err, sizeof(err));
	assert_non_null(resolver);
	test_pipeline_new(ctx, NULL, 1, 30);
	pipeline_set_resolver(ctx->pipeline, resolver);
	pipeline_set_filter_settings(ctx->pipeline, "uribl_zones uribl.test\ndns_time_limit 1\n");
	test_body_links(ctx, ids[3], 3, true);
	test_body_links(ctx, ids[4], 0, true);
	started = util_monotonic_ms();
	test_submit_uribl(ctx, ids[3]);
	test_submit_uribl(ctx, ids[4]);
	assert_false(test_run(ctx, 5, 10000));
	/* A second each, not the resolver's 15 s. */
	assert_true(util_monotonic_ms() - started < 4000);
	assert_string_equal(ctx->verdicts[3].results,
			    "uribl:ok(4 link domains, none listed; no answer: uribl.test timeout)");
	assert_string_equal(ctx->verdicts[4].results,
			    "uribl:ok(1 link domain, none listed; no answer: uribl.test timeout)");
	pipeline_free(&ctx->pipeline);
	resolver_free(&resolver);
	close(silent);
	test_expect_no_children();
}

/* A query from a worker that holds no job ends the worker (it is replaced),
 * after its job was judged. */
static void test_query_outside_job(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char ids[2][SPOOL_ID_LEN + 1];
	pid_t first;
	int pid = -1;

	test_pipeline_new(ctx, "stray-query", 1, 10);
	first = test_worker_pid(ctx);
	test_body_write(ctx, ids[0]);
	test_job_make(&job, ids[0], "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 1, 10000));
	assert_int_equal(ctx->verdicts[0].outcome, PIPELINE_JUDGED);
	for (int waited = 0; pipeline_worker_pids(ctx->pipeline, &pid, 1) < 1 || pid == first;
	     waited += 10) {
		assert_true(waited < TEST_READY_MS);
		test_run(ctx, 0, 10);
	}
	test_body_write(ctx, ids[1]);
	test_job_make(&job, ids[1], "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 2, 10000));
	test_expect_deliver(&ctx->verdicts[1], ids[1]);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* A fake clamd on a unix socket (a thread): takes one INSTREAM scan, reads
 * it to its zero-length chunk, and answers that it found a virus. */
struct test_clamd {
	char path[TEST_DIR_SIZE + 16];
	int listen_fd;
	pthread_t thread;
};

static void *test_clamd_run(void *arg)
{
	struct test_clamd *clamd = arg;
	unsigned char *seen = NULL;
	size_t seen_len = 0, pos = sizeof("zINSTREAM");
	bool ended = false;
	int fd = accept(clamd->listen_fd, NULL, NULL);

	while (fd >= 0 && !ended) {
		unsigned char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		seen = xrealloc(seen, seen_len + (size_t)n);
		memcpy(seen + seen_len, buf, (size_t)n);
		seen_len += (size_t)n;
		while (!ended && pos + 4 <= seen_len) {
			uint32_t len = (uint32_t)seen[pos] << 24 | (uint32_t)seen[pos + 1] << 16 |
				       (uint32_t)seen[pos + 2] << 8 | seen[pos + 3];

			if (pos + 4 + len > seen_len)
				break;
			pos += 4 + len;
			ended = len == 0;
		}
	}
	if (fd >= 0) {
		if (ended)
			(void)!write(fd, "stream: Test-Virus FOUND", 25);
		close(fd);
	}
	free(seen);
	return NULL;
}

static void test_clamd_start(struct test_clamd *clamd)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", clamd->path);
	clamd->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(clamd->listen_fd >= 0);
	assert_int_equal(bind(clamd->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(clamd->listen_fd, 4), 0);
	assert_int_equal(pthread_create(&clamd->thread, NULL, test_clamd_run, clamd), 0);
}

/*
 * A profile that runs clamav has its job scanned by clamd before a worker
 * sees it: while clamd is down the job waits (no verdict, still pending, a
 * resubmission ignored), and once clamd answers the verdict carries its
 * result; the worker sends none for clamav.
 */
static void test_virus_scan_first(void **state)
{
	struct test_ctx *ctx = *state;
	struct filter_profile profile = {.filter_count = 2, .tag_at = 5, .quarantine_at = 10};
	struct test_clamd clamd;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	char *settings;

	test_pipeline_new(ctx, NULL, 1, 10);
	snprintf(clamd.path, sizeof(clamd.path), "%s/clamd.sock", ctx->dir);
	settings = xasprintf("clamd_socket %s\nclamd_timeout 2\nclamd_retry 1\n", clamd.path);
	pipeline_set_filter_settings(ctx->pipeline, settings);
	free(settings);
	strcpy(profile.filters[0].name, "trace");
	strcpy(profile.filters[1].name, "clamav");
	profile.filters[0].weight = profile.filters[1].weight = 1;
	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	job.profile = &profile;
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);

	/* clamd down: held, retried, never passed on. */
	assert_true(test_run(ctx, 1, 2500));
	assert_int_equal(ctx->verdict_count, 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 1);
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 1);

	test_clamd_start(&clamd);
	assert_false(test_run(ctx, 1, 10000));
	pthread_join(clamd.thread, NULL);
	close(clamd.listen_fd);
	assert_int_equal(ctx->verdicts[0].outcome, PIPELINE_JUDGED);
	assert_string_equal(ctx->verdicts[0].results, "trace:ok");
	assert_non_null(ctx->verdicts[0].scan);
	assert_string_equal(ctx->verdicts[0].scan, "clamav:virus: Test-Virus");
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/* Replies that are not one valid verdict for the job end the worker; the
 * replacement (started without the misbehaviour) serves the next job. */
static void test_malformed_replies(void **state)
{
	static const struct {
		const char *mode;
		const char *reason;
	} cases[] = {
	    {"garbage", "malformed reply: bad magic"},
	    {"wrong-id", "reply for another message"},
	    {"two-replies", "bytes after the reply"},
	    {"bad-prepend", "malformed reply: empty line in prepend"},
	};
	struct test_ctx *ctx = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pipeline_job job;
		char bad_id[SPOOL_ID_LEN + 1];
		char id[SPOOL_ID_LEN + 1];
		size_t before = ctx->verdict_count;

		test_pipeline_new(ctx, cases[i].mode, 1, 10);
		test_body_write(ctx, bad_id);
		test_body_write(ctx, id);
		test_job_make(&job, bad_id, "alice@example.net");
		assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
		test_job_make(&job, id, "alice@example.net");
		assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
		assert_false(test_run(ctx, before + 2, 10000));
		test_expect_failed(&ctx->verdicts[before], bad_id, cases[i].reason);
		test_expect_deliver(&ctx->verdicts[before + 1], id);
		pipeline_free(&ctx->pipeline);
		test_expect_no_children();
	}
}

/* Workers that die at once are restarted a few times, then only after a
 * pause; jobs sent to them, or queued during the pause, are reported. */
static void test_backoff(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char id[SPOOL_ID_LEN + 1];
	int64_t restart_at;
	int pid;

	test_pipeline_new(ctx, "exit", 1, 10);
	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_false(test_run(ctx, 1, 5000));
	assert_int_equal(ctx->verdicts[0].outcome, PIPELINE_WORKER_FAILED);
	/* Each new worker dies at once; past PIPELINE_DEATHS_MAX deaths the
	 * slot stays empty until a restart time in the future (however slowly
	 * a loaded machine starts them: the wait is bounded by deaths, not by
	 * a guess at their speed). Without the back-off a dead worker is
	 * replaced at once and no restart time is set. */
	for (int i = 0; i < 400 && ctx->pipeline->workers[0].restart_at_ms <= util_monotonic_ms();
	     i++)
		test_run(ctx, 0, 25);
	restart_at = ctx->pipeline->workers[0].restart_at_ms;
	assert_true(restart_at > util_monotonic_ms());
	assert_true(ctx->pipeline->deaths_in_window > PIPELINE_DEATHS_MAX);
	assert_int_equal(pipeline_worker_pids(ctx->pipeline, &pid, 1), 0);
	/* A job waits for the pause to end, then fails on the next worker. */
	test_body_write(ctx, id);
	test_job_make(&job, id, "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), 0);
	assert_int_equal(pipeline_pending(ctx->pipeline), 1);
	assert_false(test_run(ctx, 2, 5000));
	assert_true(util_monotonic_ms() >= restart_at);
	test_expect_failed(&ctx->verdicts[1], id, "");
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

static void test_new_errors(void **state)
{
	struct test_ctx *ctx = *state;
	struct pipeline_job job;
	char err[256] = "";
	int pids[TEST_MAX_PIDS];

	struct spawner_process spawner;

	/* A program that is no spawner: it never says READY. */
	assert_int_equal(test_spawner_start("/bin/false", &spawner, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "the worker spawner exited at start"));
	test_expect_no_children();
	/* pipeline_new takes the spawner also when it fails, and stops it. */
	for (int i = 0; i < 2; i++) {
		err[0] = '\0';
		assert_int_equal(test_spawner_start(TEST_SELF, &spawner, err, sizeof(err)), 0);
		assert_null(pipeline_new(ctx->base, &spawner, ctx->dir, i == 0 ? -1 : 1,
					 i == 0 ? 1 : -1, test_on_verdict, ctx, err, sizeof(err)));
		assert_true(err[0] != '\0');
		assert_int_equal(spawner.fd, -1);
		test_expect_no_children();
	}

	/* Zero workers means one per core. */
	test_pipeline_new(ctx, NULL, 0, 1);
	assert_int_equal(pipeline_worker_pids(ctx->pipeline, pids, TEST_MAX_PIDS),
			 (size_t)sysconf(_SC_NPROCESSORS_ONLN));
	/* A job that cannot be encoded is refused, not queued. */
	test_job_make(&job, "not-an-id", "alice@example.net");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), -1);
	test_job_make(&job, "0123456789abcdef01234567", "");
	assert_int_equal(pipeline_submit(ctx->pipeline, &job), -1);
	assert_int_equal(pipeline_pending(ctx->pipeline), 0);
	pipeline_free(&ctx->pipeline);
	pipeline_free(&ctx->pipeline);
	test_expect_no_children();
}

/*
 * The misbehaving worker of test_malformed_replies: reads one job and
 * answers it wrongly as MODE says (or, in "hang" mode, never), then waits
 * for its socket to close.
 */
static int test_bad_worker_main(int fd, const char *mode)
{
	unsigned char buf[4096];
	size_t have = 0;
	size_t consumed = 0;
	struct pipeline_job job;
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	unsigned char *frame = NULL;
	size_t frame_len = 0;
	const char *err;
	struct proto_setup setup;
	bool set_up = false;

	/* The setup frame first (its descriptor, if any, is dropped by read). */
	while (consumed == 0) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);

		if (n <= 0)
			return 1;
		have += (size_t)n;
		if (!set_up) {
			if (proto_setup_decode(buf, have, &consumed, &setup, &err) < 0)
				return 1;
			if (consumed == 0)
				continue;
			set_up = true;
			free(setup.settings);
			memmove(buf, buf + consumed, have - consumed);
			have -= consumed;
			consumed = 0;
			if (have == 0)
				continue;
		}
		if (proto_job_decode(buf, have, &consumed, &job, &err) < 0)
			return 1;
	}
	proto_job_clear(&job);
	memcpy(verdict.id, job.id, sizeof(verdict.id));
	if (strcmp(mode, "stray-query") == 0) {
		/* A good verdict, then a question outside any job. */
		struct proto_query query = {.id = 1, .type = FILTER_DNS_A, .name = "a.example"};

		if (proto_verdict_encode(&verdict, &frame, &frame_len, &err) < 0 ||
		    send(fd, frame, frame_len, MSG_NOSIGNAL) != (ssize_t)frame_len)
			return 1;
		free(frame);
		/* Apart from the verdict: read with it, the query would be
		 * "bytes after the reply", and the job failed. */
		usleep(300000);
		if (proto_query_encode(&query, &frame, &frame_len, &err) < 0 ||
		    send(fd, frame, frame_len, MSG_NOSIGNAL) != (ssize_t)frame_len)
			return 1;
		free(frame);
		while (read(fd, buf, sizeof(buf)) > 0)
			continue;
		return 0;
	}
	if (strcmp(mode, "hang") == 0) {
		/* Never answers; ends when the pipeline kills it or closes. */
		while (read(fd, buf, sizeof(buf)) > 0)
			continue;
		return 0;
	}
	if (strcmp(mode, "garbage") == 0) {
		frame = (unsigned char *)xstrdup("+OK this is not a frame\r\n");
		frame_len = strlen((char *)frame);
	} else if (strcmp(mode, "wrong-id") == 0) {
		strcpy(verdict.id, "ffffffffffffffffffffffff");
		proto_verdict_encode(&verdict, &frame, &frame_len, &err);
	} else if (strcmp(mode, "two-replies") == 0) {
		proto_verdict_encode(&verdict, &frame, &frame_len, &err);
		frame = xrealloc(frame, 2 * frame_len);
		memcpy(frame + frame_len, frame, frame_len);
		frame_len *= 2;
	} else {
		/* The encoder would refuse an empty line, so encode good header
		 * lines and blank the second in the frame. The result is the
		 * first field: its header, then NAME "trace", STATUS and SCORE
		 * fields, then the HEADERS field's header and the first line. */
		struct pipeline_result result = {.name = "trace", .status = PIPELINE_RESULT_OK};

		result.headers = (char *)"X-A: b\r\nX:\r\nX: c\r\n";
		verdict.results = &result;
		verdict.result_count = 1;
		proto_verdict_encode(&verdict, &frame, &frame_len, &err);
		memcpy(frame + PROTO_HEADER_LEN + 6 + (6 + 5) + (6 + 1) + (6 + 4) + 6 + 8, "\r\n", 2);
	}
	if (frame == NULL || send(fd, frame, frame_len, MSG_NOSIGNAL) != (ssize_t)frame_len)
		return 1;
	free(frame);
	while (read(fd, buf, sizeof(buf)) > 0)
		continue;
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_deliver, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_trace_header_sanitised, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_archive_fields, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_duplicates_ignored, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_workers_confined, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_needs_one_body, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_bayes_setup, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_bayes_renewal, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_killed, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_timeout, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_spawner_lost, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_retry_from_callback, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_body_not_regular, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_profile_filters_run, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_virus_scan_first, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_replies, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_dns, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_worker_asks_main_process, test_setup,
					    test_teardown),
	    cmocka_unit_test_setup_teardown(test_query_outside_job, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_backoff, test_setup, test_teardown),
	    cmocka_unit_test_setup_teardown(test_new_errors, test_setup, test_teardown),
	};

	/* This binary is its own spawner and worker: the tests start the
	 * spawner from /proc/self/exe, and it execs that program again. */
	if (argc == 5 && strcmp(argv[1], "--spawner") == 0)
		return spawner_main(atoi(argv[2]), atoi(argv[3]), argv[4]);
	if (argc == 4 && strcmp(argv[1], "--worker") == 0) {
		const char *mode = getenv(TEST_MODE_ENV);
		const char *once = getenv(TEST_ONCE_ENV);
		int fd = atoi(argv[2]);

		if (mode != NULL && strcmp(mode, "exit") == 0)
			return 1;
		/* The first worker to create the marker misbehaves. */
		if (mode != NULL && once != NULL) {
			int marker = open(once, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

			if (marker >= 0) {
				close(marker);
				return test_bad_worker_main(fd, mode);
			}
		}
		return pipeline_worker_main(fd, argv[3]);
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
