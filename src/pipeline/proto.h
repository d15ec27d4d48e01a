/*
 * proto.h — the messages between the main process and a worker: a job (main
 * to worker) and a verdict (worker to main), each one typed, versioned frame.
 *
 * A frame is a 12-byte header and a payload, all integers in network order:
 *
 *   uint32 magic 0x50475750 ("PGWP")   uint16 version (3: bodies as descriptors)
 *   uint16 type (1 job, 2 verdict)     uint32 payload length (at most 64 KiB)
 *
 * Version 3: every job frame travels with exactly one descriptor attached to
 * its first byte (SCM_RIGHTS): the message body, opened read-only by the main
 * process. The frame names no path; the worker knows no data folder. A job
 * without its descriptor, with more than one, or followed by bytes before
 * the verdict is a protocol error (worker.c). Version 2 added SENDER and
 * RECIPIENTS.
 *
 * The payload is a sequence of fields, each uint16 tag, uint32 length, bytes.
 * Every field appears at most once; unknown tags are errors, not extensions
 * (a new field means a new version).
 *
 *   job:     ID (24 hex digits), ACCOUNT, PROVIDER_HOST, RECEIVED_AT (int64)
 *   verdict: PREPEND (optional), OUTCOME (1 byte), ID, SENDER (optional,
 *            one address), RECIPIENTS (optional, 1 to PROTO_RECIPIENTS_MAX
 *            addresses, each followed by nothing but the '\n' between them)
 *
 * SECURITY: a verdict comes from a worker that has read hostile content, so
 * it may be anything. The decoders never read past LEN, check every length
 * before using it, and accept only what the encoders can produce: a valid id,
 * a known outcome, and PREPEND only as well-formed header lines (printable
 * ASCII, folded lines, CRLF endings, no empty line that would end the header
 * block and push the rest into the body), and addresses only as at most
 * PROTO_ADDRESS_MAX printable ASCII characters without space, '<', '>' or
 * ',', with exactly one '@'. They need nothing but libc and the
 * x* allocators, so they can be fuzzed on their own.
 */
#ifndef POPGATE_PIPELINE_PROTO_H
#define POPGATE_PIPELINE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline/pipeline.h"

#define PROTO_MAGIC 0x50475750u
#define PROTO_VERSION 3
#define PROTO_HEADER_LEN 12
#define PROTO_PAYLOAD_MAX 65536
#define PROTO_FRAME_MAX (PROTO_HEADER_LEN + PROTO_PAYLOAD_MAX)

enum proto_type {
	PROTO_TYPE_JOB = 1,
	PROTO_TYPE_VERDICT = 2,
};

enum proto_job_tag {
	PROTO_JOB_ID = 1,
	PROTO_JOB_ACCOUNT = 2,
	PROTO_JOB_PROVIDER_HOST = 3,
	PROTO_JOB_RECEIVED_AT = 4,
};

enum proto_verdict_tag {
	PROTO_VERDICT_ID = 1,
	PROTO_VERDICT_OUTCOME = 2,
	PROTO_VERDICT_PREPEND = 3,
	PROTO_VERDICT_SENDER = 4,
	PROTO_VERDICT_RECIPIENTS = 5,
};

/* Limits on a verdict's addresses (RFC 5321 4.5.3.1 for the length). */
#define PROTO_ADDRESS_MAX 254
#define PROTO_RECIPIENTS_MAX 64

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

/* Decodes a job frame into *JOB (strings NUL-terminated). */
int proto_job_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		     struct pipeline_job *job, const char **err_r);

/*
 * Decodes a verdict frame into *VERDICT. On success VERDICT->prepend,
 * sender and recipients are allocated (or NULL / 0 when the worker sent
 * none) and VERDICT->reason is NULL;
 * free with proto_verdict_clear. Otherwise *VERDICT holds nothing to free.
 * Only outcomes a worker may give are accepted (not WORKER_FAILED).
 */
int proto_verdict_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			 struct pipeline_verdict *verdict, const char **err_r);

/*
 * Encode JOB or VERDICT as one frame into a newly allocated buffer (*FRAME_R,
 * caller frees) of *LEN_R bytes. They refuse with -1 and *ERR_R what the
 * decoders would refuse, so a bug on the sending side shows up there.
 * VERDICT->reason is not sent: it is the main process's own note.
 */
int proto_job_encode(const struct pipeline_job *job, unsigned char **frame_r, size_t *len_r,
		     const char **err_r);
int proto_verdict_encode(const struct pipeline_verdict *verdict, unsigned char **frame_r,
			 size_t *len_r, const char **err_r);

/* True if OUTCOME may travel in a verdict frame. */
bool proto_outcome_valid(int outcome);

/* True if TEXT (LEN bytes) is acceptable as a verdict's PREPEND; else false
 * with *ERR_R. */
bool proto_prepend_valid(const char *text, size_t len, const char **err_r);

/* True if ADDRESS (LEN bytes) is acceptable as a verdict's address. */
bool proto_address_valid(const char *address, size_t len);

/* Frees what a decoded or filled-in verdict owns (prepend, reason, sender,
 * recipients); the struct itself stays. NULL is fine. */
void proto_verdict_clear(struct pipeline_verdict *verdict);

#endif
