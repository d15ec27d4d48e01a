/*
 * pipeline.h — the processing stage: worker processes that read message
 * bodies (hostile content) and return a verdict; the main process owns every
 * state change.
 *
 * Workers are started by the spawner (spawner.h), a process of their own
 * user that the daemon forked while still root, by fork + exec of popgate
 * itself ("popgate --worker"), so a worker — even one respawned after the
 * credential key was loaded — never holds the key or the database, and each
 * confines itself (confine.h) before its first job: it cannot open a file
 * or reach the network. The main process opens each message body and sends
 * it as a descriptor with the job over a socketpair (SCM_RIGHTS), answers
 * the DNS questions the job's filters ask through its resolver
 * (pipeline_set_resolver), and gets back a typed, versioned verdict
 * (pipeline/proto.h); a malformed reply is treated as a worker failure,
 * never trusted. A worker that dies or runs
 * past worker_timeout is killed (by the spawner) and replaced, and its job
 * is reported with WORKER_FAILED so the caller can retry it once and then
 * hold the message as suspect.
 *
 * A job whose profile runs clamav is first scanned for viruses by this
 * process (pipeline/scan.c: clamd, in the event loop); it waits, queued and
 * indexed, until clamd has answered, however many retries that takes, and
 * its verdict carries the result (pipeline_verdict.scan).
 */
#ifndef POPGATE_PIPELINE_H
#define POPGATE_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "filters/filter.h"
#include "store/spool.h"

struct pipeline;
struct depot_fields;

/* Where a message came from. FETCHED is 0 so that a job filled in without
 * naming its source (every job before SMTP existed) is one. */
enum pipeline_source {
	PIPELINE_SOURCE_FETCHED = 0, /* from a provider, over POP3 */
	PIPELINE_SOURCE_SUBMITTED,   /* from a client, over SMTP */
	PIPELINE_SOURCE_IMPORTED,    /* by an administrator */
};
#define PIPELINE_SOURCE_LAST PIPELINE_SOURCE_IMPORTED

/* The envelope: for SMTP, MAIL FROM and each RCPT TO; for fetched mail what
 * is known — no sender, and the account's address as the one recipient.
 * Addresses as proto_address_valid accepts them; NULL / 0 when unknown. */
struct pipeline_envelope {
	char *sender;
	char **recipients;
	size_t recipient_count;
};

/* Whose message it is; 0 where unknown (submitted mail has no account, a
 * provider account may have no user yet). */
struct pipeline_owner {
	int64_t user_id;
	int64_t account_id;
};

/*
 * A job. Its pointers belong to whoever filled it in: the caller of
 * pipeline_submit (which copies what it keeps), or proto_job_decode (freed
 * by proto_job_clear).
 */
struct pipeline_job {
	char id[SPOOL_ID_LEN + 1];
	char account[512]; /* the account name, for the trace header and logs */
	char provider_host[256];
	int64_t received_at; /* seconds */
	enum pipeline_source source;
	struct pipeline_owner owner;
	struct pipeline_envelope envelope;
	/* The owner's filter profile, a snapshot; NULL: the built-in default
	 * (filter_profile_default). A decoded job always has one. */
	struct filter_profile *profile;
	/* MailDepot is on ([depot] enabled): the worker also extracts the
	 * fields the archive indexes (depot_extract) and sends them back. */
	bool archive;
};

enum pipeline_outcome {
	PIPELINE_JUDGED = 1,	/* the profile's filters ran: see the results */
	PIPELINE_WORKER_FAILED, /* the worker died, hung or answered garbage */
};

/* At most one result per filter a profile may run. */
#define PIPELINE_RESULTS_MAX FILTER_PROFILE_MAX

enum pipeline_result_status {
	PIPELINE_RESULT_OK = 1,
	PIPELINE_RESULT_FAILED, /* the filter could not judge the message */
};

/* What one filter found. Its score counts only when its status is OK. */
struct pipeline_result {
	char name[FILTER_NAME_MAX + 1];
	enum pipeline_result_status status;
	double score;  /* points, before the profile's weight */
	char *reason;  /* one line of printable ASCII, or NULL */
	char *headers; /* header lines (CRLF-terminated) to add, or NULL */
	/* Set by the main process only, never on the wire (a worker cannot set
	 * it): the message is quarantined whatever the score (a virus,
	 * filters/clamav.h). */
	bool force_quarantine;
};

/*
 * What challenge-response (CISS, filters/ciss.h) must know of a message
 * that only its header and its authentication say, found by the worker for
 * a job whose profile challenges unknown senders. The G4 rules in the main
 * process read these flags; the worker does not decide.
 */
#define PIPELINE_CISS_NULL_SENDER 0x0001	 /* Return-Path: <> */
#define PIPELINE_CISS_NO_SENDER 0x0002		 /* no usable Return-Path */
#define PIPELINE_CISS_AUTO_SUBMITTED 0x0004	 /* Auto-Submitted, other than "no" */
#define PIPELINE_CISS_BULK 0x0008		 /* Precedence: bulk, list or junk */
#define PIPELINE_CISS_LIST 0x0010		 /* a List-Id field */
#define PIPELINE_CISS_OUR_CHALLENGE 0x0020	 /* an X-Popgate-Challenge field */
#define PIPELINE_CISS_SPF_FAIL 0x0040		 /* SPF: fail */
#define PIPELINE_CISS_SPF_ALIGNED_PASS 0x0080	 /* SPF pass, its domain aligned with From */
#define PIPELINE_CISS_DKIM_ALIGNED_PASS 0x0100	 /* a DKIM pass with d= aligned with From */
#define PIPELINE_CISS_DKIM_UNALIGNED_PASS 0x0200 /* a DKIM pass, none aligned */
#define PIPELINE_CISS_FLAGS_ALL 0x03ff

/* The longest subject the facts carry (longer ones are cut). */
#define PIPELINE_CISS_SUBJECT_MAX 200

struct pipeline_ciss {
	bool present;	/* the worker looked */
	unsigned flags; /* PIPELINE_CISS_* */
	char *subject;	/* the Subject decoded, one line of UTF-8, cut; NULL: none */
};

struct pipeline_verdict {
	char id[SPOOL_ID_LEN + 1];
	enum pipeline_outcome outcome;
	/* For JUDGED: one result per filter that ran, in the profile's order. */
	struct pipeline_result *results;
	size_t result_count;
	char *reason; /* for WORKER_FAILED: why, for the log */
	/* For JUDGED (U4, U5, from the address filter): the author's address
	 * from the first From, or NULL; the recipient addresses, most trusted
	 * first (Delivered-To, X-Original-To, Envelope-To, To and Cc),
	 * lowercased and distinct. The main process looks up whose they are;
	 * they are hostile input, so they are only ever compared, never
	 * trusted. */
	char *sender;
	char **recipients;
	size_t recipient_count;
	/* For JUDGED, when the profile runs the fuzzy filter: the body's
	 * fingerprint (filters/fuzzy.h), or none. */
	struct filter_fingerprint fingerprint;
	/* For JUDGED, when the job's profile challenges unknown senders: what
	 * challenge-response needs (hostile, bounded by the decoder). */
	struct pipeline_ciss ciss;
	/* In the main process's callback only (never on the wire): the job as
	 * it was submitted, with the profile it was judged by (NULL: the
	 * default). */
	const struct pipeline_job *job;
	/* In the main process's callback only: clamav's result for a job whose
	 * profile runs it (the daemon scanned the body before a worker saw it:
	 * pipeline/scan.c), else NULL. */
	const struct pipeline_result *scan;
	/* For JUDGED, when the job asked (job->archive): the fields the archive
	 * indexes (depot/depot.h), extracted by the worker, or NULL when the
	 * extraction failed. Hostile input like the rest: bounded by the
	 * decoder, only ever stored and searched. */
	struct depot_fields *archive_fields;
};

/*
 * Called once for every submitted job: with its verdict, or with
 * WORKER_FAILED and a reason; VERDICT->job is the job as submitted, in
 * both cases. VERDICT and what it points to live only during the call. It
 * is only ever called from the event loop (never from inside
 * pipeline_submit); it may call pipeline_submit (a retry of the same id is
 * accepted), but must not call pipeline_free.
 */
typedef void pipeline_verdict_cb(const struct pipeline_verdict *verdict, void *ctx);

struct spawner_process;

/*
 * Has the spawner SPAWNER (taken, also on failure; spawner_start made it)
 * start WORKER_COUNT workers (0 = one per core, at most 256); they become
 * ready as its answers arrive in the loop, and jobs submitted before wait
 * for them. Message bodies are opened in DATA_DIR's spool by this process,
 * one at a time as each job goes to a worker; a body that cannot be opened
 * (gone, not a regular file) is reported as WORKER_FAILED like a job its
 * worker failed on. A job running longer than WORKER_TIMEOUT_SECONDS (0 =
 * no limit) has its worker killed. Returns NULL with ERR set.
 *
 * Should the spawner end or break its protocol, the pipeline logs it and
 * has the event loop exit (pipeline_spawner_lost says so then): no worker
 * could be started any more.
 */
struct pipeline *pipeline_new(struct event_base *base, struct spawner_process *spawner,
			      const char *data_dir, int worker_count, int worker_timeout_seconds,
			      pipeline_verdict_cb *callback, void *ctx, char *err, size_t errlen);

/* Queues a copy of JOB (with the default profile if it names none); it is
 * sent to the next free worker (after its virus scan, when its profile runs
 * clamav). A job with an id already queued, scanning or running is ignored
 * (returns 0). -1 (logged) for a job that cannot be sent: a bad
 * id, an empty or unterminated account or host, received_at outside
 * 1970-9999, a bad envelope address or profile. */
int pipeline_submit(struct pipeline *pipeline, const struct pipeline_job *job);

/* The filters' settings (lines "KEY VALUE\n": config_section_text of the
 * [spam] section) that workers started from now on get in their setup
 * frame; workers running already are replaced, as after a Bayes change.
 * The main process's own filter_setting answers from them too, and the
 * virus scan takes clamd's settings from them at once (the scans under way
 * finish as they began). */
void pipeline_set_filter_settings(struct pipeline *pipeline, const char *settings);

/*
 * The rules file's text (filters/rules.h; checked by the caller with
 * rules_file_read), or NULL or "" for none, that workers started from now
 * on get attached to their setup frame; workers running already are
 * replaced when it changed. 0, or -1 with ERR set (nothing changed).
 */
int pipeline_set_rules(struct pipeline *pipeline, const char *text, char *err, size_t errlen);
struct resolver;

/* The resolver (core/resolver.h) that answers the workers' DNS questions
 * from now on (proto.h: query frames), at most 100 per job (the rest are
 * answered as failed); NULL: every question fails. It must outlive the
 * pipeline. */
void pipeline_set_resolver(struct pipeline *pipeline, struct resolver *resolver);

/* Jobs queued or running. */
size_t pipeline_pending(const struct pipeline *pipeline);

/* The log was reopened (SIGHUP): workers started from now on log to the new
 * file. */
void pipeline_log_reopened(struct pipeline *pipeline);

/* The Bayes database (DATA/bayes.db) may have changed (popgatectl bayes
 * train told the daemon): workers handed another file than the one there
 * now are replaced, the idle ones at once and the busy ones after their
 * verdict, so the next jobs are judged with it. Cheap when nothing changed
 * (one stat). */
void pipeline_bayes_check(struct pipeline *pipeline);

/* True once the spawner is gone (see pipeline_new): the daemon must stop. */
bool pipeline_spawner_lost(const struct pipeline *pipeline);

/* The workers' process ids (for tests and status), up to MAX; returns count. */
size_t pipeline_worker_pids(const struct pipeline *pipeline, int *pids, size_t max);

/* Stops the workers and the spawner (waiting for it briefly) and frees
 * *PIPELINE; NULL is fine. Jobs still queued or running are dropped without a callback. */
void pipeline_free(struct pipeline **pipeline);

/*
 * The worker's main loop, run by "popgate --worker FD HOSTNAME": confines
 * the process, then reads jobs (each with its body's descriptor) from FD
 * until it closes. Returns the process exit status.
 */
int pipeline_worker_main(int fd, const char *hostname);

/*
 * What a worker does with one job, in the calling process: reads the body
 * from BODY_FD and runs JOB's profile's filters (those a worker runs) into
 * *VERDICT (JUDGED; free with proto_verdict_clear), DNS (NULL: none)
 * answering their DNS questions within [spam] dns_time_limit, and the
 * hand-off the filters saw into *HANDOFF (if not NULL). For popgatectl
 * filter check, which explains a verdict offline. 0, or -1 (logged) when
 * the body cannot be read.
 */
int pipeline_judge(int body_fd, const char *hostname, const struct pipeline_job *job,
		   struct filter_dns *dns, struct pipeline_verdict *verdict,
		   struct filter_handoff *handoff);

#endif
