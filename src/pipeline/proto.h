/*
 * proto.h — the messages between the main process and a worker: a setup
 * (main to worker, once, first), a job (main to worker), the DNS questions
 * the job's filters ask (query, worker to main) and their answers (answer,
 * main to worker), and a verdict (worker to main), each one typed,
 * versioned frame.
 *
 * A frame is a 12-byte header and a payload, all integers in network order:
 *
 *   uint32 magic 0x50475750 ("PGWP")   uint16 version (8)
 *   uint16 type (1 job, 2 verdict,     uint32 payload length (at most 64 KiB;
 *                3 setup, 4 query,            a verdict's at most
 *                5 answer)                    PROTO_VERDICT_PAYLOAD_MAX, for
 *                                             its ARCHIVE field)
 *
 * The payload is a sequence of fields, each uint16 tag, uint32 length, LENGTH
 * bytes (type, length, value). A field's value may itself be such a sequence
 * (a job's PROFILE and its FILTERs, a verdict's RESULTs); a nested field
 * must end inside its parent. Tag 0 is never valid.
 *
 * Extension: the top bit of a tag (PROTO_TAG_REQUIRED) says whether a reader
 * that does not know the field may skip it. A field a reader does not know
 * is skipped when the bit is clear — an optional addition, such as a hint
 * an older worker can ignore — and makes the whole frame invalid when it is
 * set — a field that changes what the rest means. The fields below are known
 * to every reader of this version and are sent with the bit clear; a reader
 * takes a known tag with either bit. Each known field appears at most once,
 * except RESULT, FILTER and RECORD, which repeat (at most
 * PIPELINE_RESULTS_MAX, FILTER_PROFILE_MAX and FILTER_DNS_RECORDS_MAX
 * times).
 *
 * Version history: 2 added SENDER and RECIPIENTS; 3 passed each body as a
 * descriptor; 4 (the "pipeline v3") added the envelope, source,
 * owner and profile to jobs, per-filter results to verdicts in place of one
 * prepend text, and skippable fields; 5 added the setup frame; 6 the query
 * and answer frames; 7 the job's ARCHIVE flag and the verdict's ARCHIVE
 * fields (MailDepot), with the longer verdict frames they need; 8 the
 * verdict's CISS facts.
 *
 * The setup frame is the first the main process sends on a new worker's
 * socket, before any job; the worker reads it before its filters' inits and
 * before it confines itself. It hands over what the filters need but the
 * worker may not open by name (its user cannot read the data folder): with
 * BAYES_DB, the Bayes database, opened read-only, travels attached to the
 * frame's first byte (SCM_RIGHTS). No BAYES_DB, no descriptor: there is no
 * database (yet). With RULES, the administrator's rules file ([spam]
 * rules_file, filters/rules.h), as the main process read and checked it,
 * travels attached too, after the Bayes database when both do: a sealed
 * memory file (memfd, no write, no resize), so that every worker gets the
 * text that was checked, whatever the file holds by then, up to
 * RULES_FILE_MAX (256 KiB, more than a frame's payload could carry).
 * Anything else attached is a protocol error.
 *
 * Every job frame travels with exactly one descriptor attached to its first
 * byte (SCM_RIGHTS): the message body, opened read-only by the main process.
 * The frame names no path; the worker knows no data folder. A job without
 * its descriptor, with more than one, or followed by bytes other than
 * answers before the verdict is a protocol error (worker.c).
 *
 * DNS (filters/dns.h): a worker has no network, so while it holds a job its
 * filters' questions travel to the main process as query frames, each with
 * an id of its own (1, 2, ... over the worker's life), and the worker waits
 * for the answer frame with that id for as long as the message's DNS budget
 * lasts. The main process answers each query once, from its resolver
 * (pipeline.c); a worker that stopped waiting has given up on that id and
 * drops its answer when it comes (any answer to an earlier id, also one
 * still arriving after the verdict, before the next job). A new query
 * tells the main process the earlier one is given up (its lookup is
 * cancelled), as does the verdict. A query while the worker holds no job,
 * or an answer to an id not yet asked, is a protocol error.
 *
 *   job:     ID (24 hex digits), ACCOUNT, PROVIDER_HOST, RECEIVED_AT (int64),
 *            PROFILE; optional SOURCE (1 byte), OWNER_USER, OWNER_ACCOUNT
 *            (int64 each, > 0), ENVELOPE_SENDER (one address),
 *            ENVELOPE_RECIPIENTS (an address list), ARCHIVE (empty: the
 *            worker is to extract the archive's fields, job->archive)
 *   profile: FILTER (repeated: NAME, WEIGHT), TAG_AT, QUARANTINE_AT, FLAGS
 *            (1 byte: 1 challenge unknown senders, 2 hold)
 *   setup:   optional BAYES_DB (empty: the descriptor attached is the
 *            Bayes database), optional SETTINGS (the [spam] section's
 *            keys for the filters: lines "KEY VALUE", KEY of [a-z0-9_],
 *            VALUE printable ASCII, each ending in '\n'; at most
 *            PROTO_SETTINGS_MAX bytes), optional RULES (empty: the
 *            descriptor attached after the Bayes one, or alone, holds the
 *            rules file's text)
 *   verdict: OUTCOME (1 byte), ID, RESULT (repeated: NAME, STATUS (1 byte),
 *            SCORE, optional REASON, optional HEADERS), SENDER (optional,
 *            one address), RECIPIENTS (optional, an address list),
 *            FINGERPRINT (optional: the fuzzy filter's fingerprint of the
 *            body, FILTER_FINGERPRINT_HASHES uint32 MinHash values, exactly
 *            PROTO_FINGERPRINT_LEN bytes; added in version 5 as an optional
 *            field, so the version stayed), ARCHIVE (optional, at most
 *            PROTO_ARCHIVE_MAX bytes: the fields depot_extract gave, see
 *            below), CISS (optional: FLAGS, uint16 of PIPELINE_CISS_* bits,
 *            no unknown bit; optional SUBJECT, one line of printable ASCII,
 *            at most PIPELINE_CISS_SUBJECT_MAX)
 *   archive: DATE (int64, 0 to PROTO_RECEIVED_AT_MAX), HEADERS, BODY,
 *            ATTACHMENT_TEXT (each always there, maybe empty); optional
 *            SENDER (an archive address), RECIPIENTS (1 to
 *            DEPOT_RECIPIENTS_MAX archive addresses, '\n' between them),
 *            SUBJECT (maybe empty), MESSAGE_ID, ATTACHMENTS (1 to
 *            DEPOT_ATTACHMENTS_MAX names, '\n' between them). All of it
 *            valid UTF-8 within depot.h's bounds (DEPOT_ADDRESS_MAX,
 *            DEPOT_LINE_MAX, DEPOT_NAME_MAX, DEPOT_HEADERS_MAX,
 *            DEPOT_TEXT_MAX); the texts (HEADERS, BODY, ATTACHMENT_TEXT)
 *            without control characters but tab and newline, every other
 *            value without any; an archive address, a message id and a
 *            name not empty, an archive address without spaces
 *   query:   ID (uint32, not 0), NAME (a name filter_dns_name_valid
 *            accepts, without the trailing dot), TYPE (uint16: A, PTR,
 *            MX, TXT or AAAA)
 *   answer:  ID (the query's), STATUS (1 byte: enum filter_dns_status),
 *            RECORD (repeated, at most FILTER_DNS_RECORDS_MAX, only with
 *            status OK: 1 to FILTER_DNS_RECORD_MAX printable ASCII
 *            characters, the record as text as filters/dns.h says)
 *
 * Scores, weights and thresholds travel as int32 thousandths of a point, at
 * most FILTER_SCORE_MAX points either way. An address list is 1 to
 * PROTO_RECIPIENTS_MAX addresses with a single '\n' between them.
 *
 * SECURITY: a verdict comes from a worker that has read hostile content, so
 * it may be anything. The decoders never read past LEN, check every length
 * against what holds it before using it, and accept only what the encoders
 * can produce: a valid id, a known outcome and status, filter names of
 * [a-z0-9_-], reasons as one line of printable ASCII, HEADERS only as
 * well-formed header lines (printable ASCII, folded lines, CRLF endings, no
 * empty line that would end the header block and push the rest into the
 * body), and addresses only as at most PROTO_ADDRESS_MAX printable ASCII
 * characters without space, '<', '>' or ',', with exactly one '@'; the
 * archive's fields as valid UTF-8 within their bounds (the main process
 * only stores and searches them). They need nothing but libc, the x*
 * allocators and depot_fields_free, so they can be fuzzed on their own.
 */
#ifndef POPGATE_PIPELINE_PROTO_H
#define POPGATE_PIPELINE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "depot/depot.h"
#include "filters/dns.h"
#include "pipeline/pipeline.h"

#define PROTO_MAGIC 0x50475750u
#define PROTO_VERSION 8
#define PROTO_HEADER_LEN 12
#define PROTO_FIELD_HEADER_LEN 6
#define PROTO_PAYLOAD_MAX 65536
#define PROTO_FRAME_MAX (PROTO_HEADER_LEN + PROTO_PAYLOAD_MAX)
/* A verdict's ARCHIVE value at most (depot.h's bounds, all together, are
 * some 880 KB), and so a verdict's payload and frame. */
#define PROTO_ARCHIVE_MAX (1024 * 1024)
#define PROTO_VERDICT_PAYLOAD_MAX (PROTO_PAYLOAD_MAX + PROTO_FIELD_HEADER_LEN + PROTO_ARCHIVE_MAX)
#define PROTO_VERDICT_FRAME_MAX (PROTO_HEADER_LEN + PROTO_VERDICT_PAYLOAD_MAX)
/* Points (scores, weights, thresholds) travel as int32 thousandths. */
#define PROTO_MILLI 1000.0
/* Set in the tag of a field a reader must understand (see above). */
#define PROTO_TAG_REQUIRED 0x8000u

enum proto_type {
	PROTO_TYPE_JOB = 1,
	PROTO_TYPE_VERDICT = 2,
	PROTO_TYPE_SETUP = 3,
	PROTO_TYPE_QUERY = 4,
	PROTO_TYPE_ANSWER = 5,
};

enum proto_setup_tag {
	PROTO_SETUP_BAYES_DB = 1,
	PROTO_SETUP_SETTINGS = 2,
	PROTO_SETUP_RULES = 3,
};

/* The longest SETTINGS text a setup frame carries. */
#define PROTO_SETTINGS_MAX 32768

/* What a setup frame says. */
struct proto_setup {
	bool bayes_db; /* the Bayes database is attached */
	bool rules;    /* the rules file's text is attached (after it) */
	/* The filters' settings (filters/filter.h, filter_settings_set): lines
	 * "KEY VALUE\n", or NULL for none. Decoded: allocated, free it. */
	char *settings;
};

enum proto_job_tag {
	PROTO_JOB_ID = 1,
	PROTO_JOB_ACCOUNT = 2,
	PROTO_JOB_PROVIDER_HOST = 3,
	PROTO_JOB_RECEIVED_AT = 4,
	PROTO_JOB_SOURCE = 5,
	PROTO_JOB_OWNER_USER = 6,
	PROTO_JOB_OWNER_ACCOUNT = 7,
	PROTO_JOB_ENVELOPE_SENDER = 8,
	PROTO_JOB_ENVELOPE_RECIPIENTS = 9,
	PROTO_JOB_PROFILE = 10,
	PROTO_JOB_ARCHIVE = 11,
};

/* Inside a job's PROFILE. */
enum proto_profile_tag {
	PROTO_PROFILE_FILTER = 1,
	PROTO_PROFILE_TAG_AT = 2,
	PROTO_PROFILE_QUARANTINE_AT = 3,
	PROTO_PROFILE_FLAGS = 4,
};

/* Inside a PROFILE's FILTER. */
enum proto_filter_tag {
	PROTO_FILTER_NAME = 1,
	PROTO_FILTER_WEIGHT = 2,
};

#define PROTO_PROFILE_CHALLENGE 0x01
#define PROTO_PROFILE_HOLD 0x02

enum proto_verdict_tag {
	PROTO_VERDICT_ID = 1,
	PROTO_VERDICT_OUTCOME = 2,
	PROTO_VERDICT_RESULT = 3,
	PROTO_VERDICT_SENDER = 4,
	PROTO_VERDICT_RECIPIENTS = 5,
	PROTO_VERDICT_FINGERPRINT = 6,
	PROTO_VERDICT_ARCHIVE = 7,
	PROTO_VERDICT_CISS = 8,
};

/* Inside a verdict's ARCHIVE. */
enum proto_archive_tag {
	PROTO_ARCHIVE_SENDER = 1,
	PROTO_ARCHIVE_RECIPIENTS = 2,
	PROTO_ARCHIVE_SUBJECT = 3,
	PROTO_ARCHIVE_DATE = 4,
	PROTO_ARCHIVE_MESSAGE_ID = 5,
	PROTO_ARCHIVE_ATTACHMENTS = 6,
	PROTO_ARCHIVE_HEADERS = 7,
	PROTO_ARCHIVE_BODY = 8,
	PROTO_ARCHIVE_ATTACHMENT_TEXT = 9,
};

/* Inside a verdict's CISS. */
enum proto_ciss_tag {
	PROTO_CISS_FLAGS = 1,
	PROTO_CISS_SUBJECT = 2,
};

/* The length of a verdict's FINGERPRINT. */
#define PROTO_FINGERPRINT_LEN (FILTER_FINGERPRINT_HASHES * 4)

/* Inside a verdict's RESULT. */
enum proto_result_tag {
	PROTO_RESULT_NAME = 1,
	PROTO_RESULT_STATUS = 2,
	PROTO_RESULT_SCORE = 3,
	PROTO_RESULT_REASON = 4,
	PROTO_RESULT_HEADERS = 5,
};

enum proto_query_tag {
	PROTO_QUERY_ID = 1,
	PROTO_QUERY_NAME = 2,
	PROTO_QUERY_TYPE = 3,
};

enum proto_answer_tag {
	PROTO_ANSWER_ID = 1,
	PROTO_ANSWER_STATUS = 2,
	PROTO_ANSWER_RECORD = 3,
};

/* A filter's DNS question, as a query frame carries it. */
struct proto_query {
	uint32_t id;
	enum filter_dns_type type;
	char name[FILTER_DNS_NAME_MAX + 1];
};

/* The answer to query ID. Decoded: its records are allocated (free them
 * with filter_dns_answer_clear). */
struct proto_answer {
	uint32_t id;
	struct filter_dns_answer answer;
};

/* Limits on addresses (RFC 5321 4.5.3.1 for the length). */
#define PROTO_ADDRESS_MAX 254
#define PROTO_RECIPIENTS_MAX 64
/* The longest reason a result may give. */
#define PROTO_REASON_MAX 200

/* Latest received_at accepted: 9999-12-31T23:59:59Z, so a date always formats. */
#define PROTO_RECEIVED_AT_MAX INT64_C(253402300799)

/*
 * The decoders share one convention. They look at the front of BUF (LEN
 * bytes, of which only the first frame is read) and return:
 *   0 with *CONSUMED_R > 0  a whole valid frame was decoded; it was
 *                           *CONSUMED_R bytes long;
 *   0 with *CONSUMED_R == 0 the frame is incomplete so far: read more bytes;
 *   -1                      the bytes are not a valid frame of that type;
 *                           *ERR_R is a static reason for the log.
 * A header that is wrong is rejected as soon as its bad byte is seen, even
 * before the frame is complete.
 */

/* Checks the frame header and returns the frame's type and payload (pointing
 * into BUF) when the whole frame is there. */
int proto_frame_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       enum proto_type *type_r, const unsigned char **payload_r,
		       size_t *payload_len_r, const char **err_r);

/* Decodes a job frame into *JOB (strings NUL-terminated). On success the
 * job's envelope and profile are allocated: free with proto_job_clear.
 * Otherwise *JOB holds nothing to free. */
int proto_job_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		     struct pipeline_job *job, const char **err_r);

/* Whether TEXT (LEN bytes) is a valid SETTINGS text (see above). */
bool proto_settings_valid(const char *text, size_t len);

/* Decodes a setup frame into *SETUP; its settings are allocated (or NULL). */
int proto_setup_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       struct proto_setup *setup, const char **err_r);

/*
 * Decodes a verdict frame into *VERDICT. On success its results (and their
 * reasons and headers), sender, recipients and archive fields are allocated
 * (or NULL / 0 when the worker sent none), its fingerprint and CISS facts
 * are filled in (or not present), and VERDICT->reason and ->job are NULL;
 * free with
 * proto_verdict_clear. Otherwise *VERDICT holds nothing to free. Only
 * outcomes a worker may give are accepted (not WORKER_FAILED).
 */
int proto_verdict_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			 struct pipeline_verdict *verdict, const char **err_r);

/* Decodes a query frame into *QUERY (nothing allocated). */
int proto_query_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       struct proto_query *query, const char **err_r);

/* Decodes an answer frame into *ANSWER; its records are allocated. */
int proto_answer_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			struct proto_answer *answer, const char **err_r);

/*
 * Encode QUERY or ANSWER as one frame, as the encoders below do. They
 * refuse (-1 with *ERR_R) what the decoders would: a query id of 0, a bad
 * name or type; an answer with a bad status, records with a status other
 * than OK, too many records or one that is not printable ASCII of the
 * allowed length.
 */
int proto_query_encode(const struct proto_query *query, unsigned char **frame_r, size_t *len_r,
		       const char **err_r);
int proto_answer_encode(const struct proto_answer *answer, unsigned char **frame_r, size_t *len_r,
			const char **err_r);

/* True if TYPE is a record type a query may ask for. */
bool proto_dns_type_valid(unsigned type);

/* True if TEXT (LEN bytes) may travel as an answer's record. */
bool proto_dns_record_valid(const char *text, size_t len);

/*
 * Encode JOB or VERDICT as one frame into a newly allocated buffer (*FRAME_R,
 * caller frees) of *LEN_R bytes. They refuse with -1 and *ERR_R what the
 * decoders would refuse, so a bug on the sending side shows up there; a job
 * must name its profile (pipeline_submit fills in the default).
 * VERDICT->reason and ->job are not sent: they are the main process's own.
 */
int proto_job_encode(const struct pipeline_job *job, unsigned char **frame_r, size_t *len_r,
		     const char **err_r);
int proto_verdict_encode(const struct pipeline_verdict *verdict, unsigned char **frame_r,
			 size_t *len_r, const char **err_r);

/* Encodes SETUP as one frame, as above; it cannot be refused. */
void proto_setup_encode(const struct proto_setup *setup, unsigned char **frame_r, size_t *len_r);

/* True if ID (LEN bytes) is a message id: SPOOL_ID_LEN lowercase hex digits
 * (spool_id_valid's rule, repeated so this code needs no store code). */
bool proto_id_valid(const unsigned char *id, size_t len);

/* True if POINTS is finite and within FILTER_SCORE_MAX either way. */
bool proto_points_valid(double points);

/* True if OUTCOME may travel in a verdict frame. */
bool proto_outcome_valid(int outcome);

/* True if TEXT (LEN bytes) is acceptable as a result's HEADERS; else false
 * with *ERR_R. */
bool proto_prepend_valid(const char *text, size_t len, const char **err_r);

/* True if TEXT (LEN bytes) is acceptable as a result's REASON. */
bool proto_reason_valid(const char *text, size_t len);

/* True if NAME (LEN bytes) is shaped like a filter name: 1 to
 * FILTER_NAME_MAX of [a-z0-9_-]. */
bool proto_filter_name_valid(const char *name, size_t len);

/* True if ADDRESS (LEN bytes) is acceptable as an address in a frame. */
bool proto_address_valid(const char *address, size_t len);

/* True if TEXT (LEN bytes) is valid UTF-8 of at most MAX bytes without
 * control characters, but tab and newline when MULTILINE: an archive
 * value's rule (see above). */
bool proto_archive_text_valid(const char *text, size_t len, size_t max, bool multiline);

/* True if FIELDS may travel as a verdict's ARCHIVE (see above); else false
 * with *ERR_R. */
bool proto_archive_fields_valid(const struct depot_fields *fields, const char **err_r);

/* Frees what a decoded job owns (envelope, profile); NULL is fine. */
void proto_job_clear(struct pipeline_job *job);

/* Frees what a decoded or filled-in verdict owns (results, reason, sender,
 * recipients, archive fields); the struct itself stays. NULL is fine. */
void proto_verdict_clear(struct pipeline_verdict *verdict);

#endif
