/*
 * proto.c — encoding and strict decoding of the frames between the main
 * process and the workers (the format is described in proto.h).
 *
 * Owns: nothing; encoders hand out buffers the caller frees, the verdict
 * decoder hands out the prepend text and the addresses (freed by
 * proto_verdict_clear).
 * Must never: read a byte past LEN, trust a length before checking it, accept
 * what its own encoders would refuse, or need anything but libc and the x*
 * allocators (the fuzz target links this file almost alone).
 *
 * SECURITY: verdicts come from workers that have read hostile mail and may be
 * compromised; everything in a frame is untrusted until decoded here.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pipeline/proto.h"

/* Highest tag of either frame type: the size of the field table. */
#define PROTO_TAG_MAX 5
#define PROTO_FIELD_HEADER_LEN 6
/* RFC 5322 2.1.1: a line is at most 998 characters without its CRLF. */
#define PROTO_LINE_MAX 998

struct proto_field {
	bool present;
	const unsigned char *data;
	size_t len;
};

static const unsigned char proto_magic_bytes[4] = {0x50, 0x47, 0x57, 0x50};

static uint16_t proto_get_u16(const unsigned char *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t proto_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static unsigned char *proto_put_u16(unsigned char *p, uint16_t value)
{
	p[0] = (unsigned char)(value >> 8);
	p[1] = (unsigned char)value;
	return p + 2;
}

static unsigned char *proto_put_u32(unsigned char *p, uint32_t value)
{
	p[0] = (unsigned char)(value >> 24);
	p[1] = (unsigned char)(value >> 16);
	p[2] = (unsigned char)(value >> 8);
	p[3] = (unsigned char)value;
	return p + 4;
}

static unsigned char *proto_put_field(unsigned char *p, uint16_t tag, const void *data, size_t len)
{
	p = proto_put_u16(p, tag);
	p = proto_put_u32(p, (uint32_t)len);
	memcpy(p, data, len);
	return p + len;
}

/* The same rule as spool_id_valid, repeated here so this file needs no store
 * code: an id is a key in the main process and names the body it opens. */
static bool proto_id_valid(const unsigned char *id, size_t len)
{
	if (len != SPOOL_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	}
	return true;
}

/* A C string field: LEN bytes of text without NUL, non-empty, that fits a
 * buffer of SIZE with its NUL. */
static bool proto_text_valid(const unsigned char *text, size_t len, size_t size)
{
	return len > 0 && len < size && memchr(text, '\0', len) == NULL;
}

/* An ftext character of RFC 5322 3.6.8: what a header field name is made of. */
static bool proto_is_ftext(unsigned char c)
{
	return c >= 33 && c <= 126 && c != ':';
}

static bool proto_is_wsp(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* Splits PAYLOAD into FIELDS, indexed by tag; tags above MAX_TAG, repeated
 * tags and a field running past the payload are errors. */
static int proto_fields_split(const unsigned char *payload, size_t len, unsigned max_tag,
			      struct proto_field fields[PROTO_TAG_MAX + 1], const char **err_r)
{
	size_t pos = 0;

	memset(fields, 0, sizeof(*fields) * (PROTO_TAG_MAX + 1));
	while (pos < len) {
		uint16_t tag;
		uint32_t field_len;

		if (len - pos < PROTO_FIELD_HEADER_LEN) {
			*err_r = "truncated field header";
			return -1;
		}
		tag = proto_get_u16(payload + pos);
		field_len = proto_get_u32(payload + pos + 2);
		pos += PROTO_FIELD_HEADER_LEN;
		if (tag == 0 || tag > max_tag) {
			*err_r = "unknown field";
			return -1;
		}
		if (field_len > len - pos) {
			*err_r = "field runs past the payload";
			return -1;
		}
		if (fields[tag].present) {
			*err_r = "repeated field";
			return -1;
		}
		fields[tag].present = true;
		fields[tag].data = payload + pos;
		fields[tag].len = field_len;
		pos += field_len;
	}
	return 0;
}

/* Decodes the frame at BUF and checks it is of TYPE; returns its fields. */
static int proto_typed_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			      enum proto_type type, unsigned max_tag,
			      struct proto_field fields[PROTO_TAG_MAX + 1], const char **err_r)
{
	enum proto_type got;
	const unsigned char *payload;
	size_t payload_len;
	size_t consumed;

	*consumed_r = 0;
	if (proto_frame_decode(buf, len, &consumed, &got, &payload, &payload_len, err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (got != type) {
		*err_r = "unexpected frame type";
		return -1;
	}
	if (proto_fields_split(payload, payload_len, max_tag, fields, err_r) < 0)
		return -1;
	*consumed_r = consumed;
	return 0;
}

/* Writes the header of a frame of TYPE with PAYLOAD_LEN bytes to come. */
static unsigned char *proto_put_header(unsigned char *p, enum proto_type type, size_t payload_len)
{
	p = proto_put_u32(p, PROTO_MAGIC);
	p = proto_put_u16(p, PROTO_VERSION);
	p = proto_put_u16(p, (uint16_t)type);
	return proto_put_u32(p, (uint32_t)payload_len);
}

bool proto_address_valid(const char *address, size_t len)
{
	const char *at = memchr(address, '@', len);

	if (len == 0 || len > PROTO_ADDRESS_MAX || at == NULL ||
	    memchr(at + 1, '@', len - (size_t)(at - address) - 1) != NULL)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)address[i];

		if (c < 0x21 || c > 0x7e || c == '<' || c == '>' || c == ',')
			return false;
	}
	return true;
}

/* Checks the RECIPIENTS field (LEN bytes): 1 to PROTO_RECIPIENTS_MAX valid
 * addresses separated by single '\n'. Returns how many, or 0 if invalid. */
static size_t proto_recipients_count(const char *text, size_t len)
{
	size_t count = 0;
	size_t pos = 0;

	for (;;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;

		if (count == PROTO_RECIPIENTS_MAX || !proto_address_valid(text + pos, end - pos))
			return 0;
		count++;
		if (nl == NULL)
			return count;
		pos = end + 1;
	}
}

int proto_frame_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       enum proto_type *type_r, const unsigned char **payload_r,
		       size_t *payload_len_r, const char **err_r)
{
	size_t magic_seen = len < sizeof(proto_magic_bytes) ? len : sizeof(proto_magic_bytes);
	uint16_t type;
	uint32_t payload_len;

	*consumed_r = 0;
	/* Garbage is refused from its first byte rather than after a header's
	 * worth of it, so a confused peer is noticed at once. */
	if (memcmp(buf, proto_magic_bytes, magic_seen) != 0) {
		*err_r = "bad magic";
		return -1;
	}
	if (len >= 6 && proto_get_u16(buf + 4) != PROTO_VERSION) {
		*err_r = "unsupported version";
		return -1;
	}
	if (len >= 8) {
		type = proto_get_u16(buf + 6);
		if (type != PROTO_TYPE_JOB && type != PROTO_TYPE_VERDICT) {
			*err_r = "unknown frame type";
			return -1;
		}
	}
	if (len < PROTO_HEADER_LEN)
		return 0;
	payload_len = proto_get_u32(buf + 8);
	if (payload_len > PROTO_PAYLOAD_MAX) {
		*err_r = "payload too long";
		return -1;
	}
	if (len - PROTO_HEADER_LEN < payload_len)
		return 0;
	*type_r = (enum proto_type)proto_get_u16(buf + 6);
	*payload_r = buf + PROTO_HEADER_LEN;
	*payload_len_r = payload_len;
	*consumed_r = PROTO_HEADER_LEN + payload_len;
	return 0;
}

int proto_job_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		     struct pipeline_job *job, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *id = &fields[PROTO_JOB_ID];
	const struct proto_field *account = &fields[PROTO_JOB_ACCOUNT];
	const struct proto_field *host = &fields[PROTO_JOB_PROVIDER_HOST];
	const struct proto_field *received = &fields[PROTO_JOB_RECEIVED_AT];
	size_t consumed;
	uint64_t received_at;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_JOB, PROTO_JOB_RECEIVED_AT, fields,
			       err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (!id->present || !account->present || !host->present || !received->present) {
		*err_r = "job lacks a required field";
		return -1;
	}
	if (!proto_id_valid(id->data, id->len)) {
		*err_r = "bad message id";
		return -1;
	}
	if (!proto_text_valid(account->data, account->len, sizeof(job->account))) {
		*err_r = "bad account";
		return -1;
	}
	if (!proto_text_valid(host->data, host->len, sizeof(job->provider_host))) {
		*err_r = "bad provider host";
		return -1;
	}
	if (received->len != 8) {
		*err_r = "bad received_at length";
		return -1;
	}
	received_at =
	    (uint64_t)proto_get_u32(received->data) << 32 | proto_get_u32(received->data + 4);
	if (received_at > (uint64_t)PROTO_RECEIVED_AT_MAX) {
		*err_r = "received_at out of range";
		return -1;
	}
	memset(job, 0, sizeof(*job));
	memcpy(job->id, id->data, id->len);
	memcpy(job->account, account->data, account->len);
	memcpy(job->provider_host, host->data, host->len);
	job->received_at = (int64_t)received_at;
	*consumed_r = consumed;
	return 0;
}

int proto_verdict_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			 struct pipeline_verdict *verdict, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *id = &fields[PROTO_VERDICT_ID];
	const struct proto_field *outcome = &fields[PROTO_VERDICT_OUTCOME];
	const struct proto_field *prepend = &fields[PROTO_VERDICT_PREPEND];
	const struct proto_field *sender = &fields[PROTO_VERDICT_SENDER];
	const struct proto_field *recipients = &fields[PROTO_VERDICT_RECIPIENTS];
	size_t recipient_count = 0;
	size_t consumed;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_VERDICT, PROTO_VERDICT_RECIPIENTS,
			       fields, err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (!id->present || !outcome->present) {
		*err_r = "verdict lacks a required field";
		return -1;
	}
	if (!proto_id_valid(id->data, id->len)) {
		*err_r = "bad message id";
		return -1;
	}
	if (outcome->len != 1 || !proto_outcome_valid(outcome->data[0])) {
		*err_r = "bad outcome";
		return -1;
	}
	if (prepend->present &&
	    !proto_prepend_valid((const char *)prepend->data, prepend->len, err_r))
		return -1;
	if (sender->present && !proto_address_valid((const char *)sender->data, sender->len)) {
		*err_r = "bad sender";
		return -1;
	}
	if (recipients->present) {
		recipient_count =
		    proto_recipients_count((const char *)recipients->data, recipients->len);
		if (recipient_count == 0) {
			*err_r = "bad recipients";
			return -1;
		}
	}
	memset(verdict, 0, sizeof(*verdict));
	memcpy(verdict->id, id->data, id->len);
	verdict->outcome = (enum pipeline_outcome)outcome->data[0];
	if (prepend->present)
		verdict->prepend = xstrndup((const char *)prepend->data, prepend->len);
	if (sender->present)
		verdict->sender = xstrndup((const char *)sender->data, sender->len);
	if (recipient_count > 0) {
		const char *p = (const char *)recipients->data;
		const char *end = p + recipients->len;

		verdict->recipients = xcalloc(recipient_count, sizeof(*verdict->recipients));
		for (size_t i = 0; i < recipient_count; i++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

			verdict->recipients[i] = xstrndup(p, n);
			p += n + 1;
		}
		verdict->recipient_count = recipient_count;
	}
	*consumed_r = consumed;
	return 0;
}

int proto_job_encode(const struct pipeline_job *job, unsigned char **frame_r, size_t *len_r,
		     const char **err_r)
{
	size_t account_len = strnlen(job->account, sizeof(job->account));
	size_t host_len = strnlen(job->provider_host, sizeof(job->provider_host));
	unsigned char received[8];
	size_t payload_len;
	unsigned char *frame;
	unsigned char *p;

	if (strnlen(job->id, sizeof(job->id)) != SPOOL_ID_LEN ||
	    !proto_id_valid((const unsigned char *)job->id, SPOOL_ID_LEN)) {
		*err_r = "bad message id";
		return -1;
	}
	if (account_len == 0 || account_len == sizeof(job->account)) {
		*err_r = "bad account";
		return -1;
	}
	if (host_len == 0 || host_len == sizeof(job->provider_host)) {
		*err_r = "bad provider host";
		return -1;
	}
	if (job->received_at < 0 || job->received_at > PROTO_RECEIVED_AT_MAX) {
		*err_r = "received_at out of range";
		return -1;
	}
	proto_put_u32(proto_put_u32(received, (uint32_t)((uint64_t)job->received_at >> 32)),
		      (uint32_t)job->received_at);
	/* The fields are small and bounded by the struct, far below the limit. */
	payload_len =
	    4 * PROTO_FIELD_HEADER_LEN + account_len + host_len + sizeof(received) + SPOOL_ID_LEN;
	frame = xmalloc(PROTO_HEADER_LEN + payload_len);
	p = proto_put_header(frame, PROTO_TYPE_JOB, payload_len);
	p = proto_put_field(p, PROTO_JOB_ACCOUNT, job->account, account_len);
	p = proto_put_field(p, PROTO_JOB_PROVIDER_HOST, job->provider_host, host_len);
	p = proto_put_field(p, PROTO_JOB_RECEIVED_AT, received, sizeof(received));
	proto_put_field(p, PROTO_JOB_ID, job->id, SPOOL_ID_LEN);
	*frame_r = frame;
	*len_r = PROTO_HEADER_LEN + payload_len;
	return 0;
}

int proto_verdict_encode(const struct pipeline_verdict *verdict, unsigned char **frame_r,
			 size_t *len_r, const char **err_r)
{
	size_t prepend_len = verdict->prepend != NULL ? strlen(verdict->prepend) : 0;
	size_t sender_len = verdict->sender != NULL ? strlen(verdict->sender) : 0;
	size_t recipients_len = 0;
	unsigned char outcome = (unsigned char)verdict->outcome;
	size_t payload_len;
	unsigned char *frame;
	unsigned char *p;

	if (strnlen(verdict->id, sizeof(verdict->id)) != SPOOL_ID_LEN ||
	    !proto_id_valid((const unsigned char *)verdict->id, SPOOL_ID_LEN)) {
		*err_r = "bad message id";
		return -1;
	}
	if (!proto_outcome_valid((int)verdict->outcome)) {
		*err_r = "bad outcome";
		return -1;
	}
	if (verdict->prepend != NULL && !proto_prepend_valid(verdict->prepend, prepend_len, err_r))
		return -1;
	if (verdict->sender != NULL && !proto_address_valid(verdict->sender, sender_len)) {
		*err_r = "bad sender";
		return -1;
	}
	if (verdict->recipient_count > PROTO_RECIPIENTS_MAX ||
	    (verdict->recipient_count > 0 && verdict->recipients == NULL)) {
		*err_r = "bad recipients";
		return -1;
	}
	for (size_t i = 0; i < verdict->recipient_count; i++) {
		size_t n = strlen(verdict->recipients[i]);

		if (!proto_address_valid(verdict->recipients[i], n)) {
			*err_r = "bad recipients";
			return -1;
		}
		recipients_len += n + (i > 0);
	}
	payload_len = 2 * PROTO_FIELD_HEADER_LEN + 1 + SPOOL_ID_LEN;
	if (verdict->prepend != NULL)
		payload_len += PROTO_FIELD_HEADER_LEN + prepend_len;
	if (verdict->sender != NULL)
		payload_len += PROTO_FIELD_HEADER_LEN + sender_len;
	if (verdict->recipient_count > 0)
		payload_len += PROTO_FIELD_HEADER_LEN + recipients_len;
	if (payload_len > PROTO_PAYLOAD_MAX) {
		*err_r = "payload too long";
		return -1;
	}
	frame = xmalloc(PROTO_HEADER_LEN + payload_len);
	p = proto_put_header(frame, PROTO_TYPE_VERDICT, payload_len);
	/* The id goes last: a payload cut short at a field boundary then always
	 * lacks a required field, whatever else the verdict holds. */
	if (verdict->prepend != NULL)
		p = proto_put_field(p, PROTO_VERDICT_PREPEND, verdict->prepend, prepend_len);
	if (verdict->sender != NULL)
		p = proto_put_field(p, PROTO_VERDICT_SENDER, verdict->sender, sender_len);
	if (verdict->recipient_count > 0) {
		p = proto_put_u16(p, PROTO_VERDICT_RECIPIENTS);
		p = proto_put_u32(p, (uint32_t)recipients_len);
		for (size_t i = 0; i < verdict->recipient_count; i++) {
			size_t n = strlen(verdict->recipients[i]);

			if (i > 0)
				*p++ = '\n';
			memcpy(p, verdict->recipients[i], n);
			p += n;
		}
	}
	p = proto_put_field(p, PROTO_VERDICT_OUTCOME, &outcome, 1);
	proto_put_field(p, PROTO_VERDICT_ID, verdict->id, SPOOL_ID_LEN);
	*frame_r = frame;
	*len_r = PROTO_HEADER_LEN + payload_len;
	return 0;
}

bool proto_outcome_valid(int outcome)
{
	/* WORKER_FAILED is the main process's conclusion about a worker; a worker
	 * claiming it would only be confusing. */
	switch (outcome) {
	case PIPELINE_DELIVER:
		return true;
	default:
		return false;
	}
}

bool proto_prepend_valid(const char *text, size_t len, const char **err_r)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t pos = 0;

	if (len < 2 || s[len - 2] != '\r' || s[len - 1] != '\n') {
		*err_r = "prepend does not end in CRLF";
		return false;
	}
	while (pos < len) {
		size_t start = pos;
		bool content = false;

		if (s[pos] == '\r') {
			/* An empty line ends the header block: what follows would
			 * become the body, or the real headers would. */
			*err_r = "empty line in prepend";
			return false;
		}
		if (proto_is_wsp(s[pos])) {
			if (start == 0) {
				*err_r = "prepend starts with a continuation line";
				return false;
			}
		} else {
			while (pos < len && proto_is_ftext(s[pos]))
				pos++;
			if (pos == start || pos == len || s[pos] != ':') {
				*err_r = "prepend line is not a header field";
				return false;
			}
			content = true;
		}
		for (; pos < len && s[pos] != '\r'; pos++) {
			if (s[pos] != '\t' && (s[pos] < 0x20 || s[pos] > 0x7e)) {
				*err_r = "bad character in prepend";
				return false;
			}
			if (!proto_is_wsp(s[pos]))
				content = true;
		}
		/* The CRLF at the end is guaranteed, so a CR here has a next byte. */
		if (s[pos + 1] != '\n') {
			*err_r = "bare CR in prepend";
			return false;
		}
		if (!content) {
			/* Many readers take a blank line as the end of the header. */
			*err_r = "whitespace-only line in prepend";
			return false;
		}
		if (pos - start > PROTO_LINE_MAX) {
			*err_r = "prepend line too long";
			return false;
		}
		pos += 2;
	}
	return true;
}

void proto_verdict_clear(struct pipeline_verdict *verdict)
{
	if (verdict == NULL)
		return;
	xfree(&verdict->prepend);
	xfree(&verdict->reason);
	xfree(&verdict->sender);
	for (size_t i = 0; i < verdict->recipient_count; i++)
		free(verdict->recipients[i]);
	xfree(&verdict->recipients);
	verdict->recipient_count = 0;
}
