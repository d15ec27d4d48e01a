/*
 * proto.c — strict decoding of the frames between the main
 * process and the workers (the format is described in proto.h).
 *
 * Owns: nothing; the decoders hand out what a job or verdict points to
 * (freed by proto_job_clear and proto_verdict_clear). The encoders are in
 * proto_encode.c.
 * Must never: read a byte past LEN, trust a length before checking it
 * against what holds it, accept what its own encoders would refuse, or need
 * anything but libc, the x* allocators and depot_fields_free (the fuzz
 * target links this file almost alone).
 *
 * SECURITY: verdicts come from workers that have read hostile mail and may be
 * compromised; everything in a frame is untrusted until decoded here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/dns.h"
#include "pipeline/proto.h"

/* Highest known tag at any level: the size of a field table. */
#define PROTO_TAG_MAX 11
/* RFC 5322 2.1.1: a line is at most 998 characters without its CRLF. */
#define PROTO_LINE_MAX 998
/* Points travel as thousandths. */

/* A known field of a split sequence: the first occurrence, and how many. */
struct proto_field {
	unsigned count;
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

/* The same rule as spool_id_valid, repeated here so this file needs no store
 * code: an id is a key in the main process and names the body it opens. */
bool proto_id_valid(const unsigned char *id, size_t len)
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

/*
 * Splits the field sequence DATA (LEN bytes) into FIELDS, indexed by tag
 * number (the tag without PROTO_TAG_REQUIRED), for tags 1 to KNOWN. A tag in
 * the bit mask REPEATABLE may appear any number of times (the caller bounds
 * the count); any other known tag at most once. An unknown tag is skipped,
 * unless it is marked required. A field header cut short or a value running
 * past LEN is an error.
 */
static int proto_fields_split(const unsigned char *data, size_t len, unsigned known,
			      unsigned repeatable, struct proto_field fields[PROTO_TAG_MAX + 1],
			      const char **err_r)
{
	size_t pos = 0;

	memset(fields, 0, sizeof(*fields) * (PROTO_TAG_MAX + 1));
	while (pos < len) {
		uint16_t tag;
		unsigned number;
		uint32_t field_len;

		if (len - pos < PROTO_FIELD_HEADER_LEN) {
			*err_r = "truncated field header";
			return -1;
		}
		tag = proto_get_u16(data + pos);
		number = tag & ~PROTO_TAG_REQUIRED;
		field_len = proto_get_u32(data + pos + 2);
		pos += PROTO_FIELD_HEADER_LEN;
		if (field_len > len - pos) {
			*err_r = "field runs past its end";
			return -1;
		}
		if (number == 0) {
			*err_r = "field tag 0";
			return -1;
		}
		if (number > known) {
			if ((tag & PROTO_TAG_REQUIRED) != 0) {
				*err_r = "unknown required field";
				return -1;
			}
			pos += field_len;
			continue;
		}
		if (fields[number].count > 0 && (repeatable & (1u << number)) == 0) {
			*err_r = "repeated field";
			return -1;
		}
		if (fields[number].count++ == 0) {
			fields[number].data = data + pos;
			fields[number].len = field_len;
		}
		pos += field_len;
	}
	return 0;
}

/*
 * The next field of tag number NUMBER in DATA (LEN bytes, already checked by
 * proto_fields_split) at or after *POS: true with its value, false when
 * there is none left.
 */
static bool proto_field_next(const unsigned char *data, size_t len, size_t *pos, unsigned number,
			     const unsigned char **value_r, size_t *value_len_r)
{
	while (len - *pos >= PROTO_FIELD_HEADER_LEN) {
		unsigned tag = proto_get_u16(data + *pos) & ~PROTO_TAG_REQUIRED;
		uint32_t field_len = proto_get_u32(data + *pos + 2);

		*pos += PROTO_FIELD_HEADER_LEN;
		if (field_len > len - *pos)
			return false;
		*pos += field_len;
		if (tag == number) {
			*value_r = data + *pos - field_len;
			*value_len_r = field_len;
			return true;
		}
	}
	return false;
}

/* Decodes the frame at BUF and checks it is of TYPE; returns its payload. */
static int proto_typed_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			      enum proto_type type, const unsigned char **payload_r,
			      size_t *payload_len_r, const char **err_r)
{
	enum proto_type got;
	size_t consumed;

	*consumed_r = 0;
	if (proto_frame_decode(buf, len, &consumed, &got, payload_r, payload_len_r, err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (got != type) {
		*err_r = "unexpected frame type";
		return -1;
	}
	*consumed_r = consumed;
	return 0;
}

bool proto_points_valid(double points)
{
	return isfinite(points) && points <= FILTER_SCORE_MAX && points >= -FILTER_SCORE_MAX;
}

/* A points field: 4 bytes, within FILTER_SCORE_MAX. */
static bool proto_points_decode(const struct proto_field *field, double *points_r)
{
	int32_t milli;

	if (field->len != 4)
		return false;
	milli = (int32_t)proto_get_u32(field->data);
	*points_r = milli / PROTO_MILLI;
	return proto_points_valid(*points_r);
}

/* An int64 field that must be positive (a row id). */
static bool proto_id64_decode(const struct proto_field *field, int64_t *value_r)
{
	uint64_t value;

	if (field->len != 8)
		return false;
	value = (uint64_t)proto_get_u32(field->data) << 32 | proto_get_u32(field->data + 4);
	if (value == 0 || value > (uint64_t)INT64_MAX)
		return false;
	*value_r = (int64_t)value;
	return true;
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

/* Splits the checked list TEXT (LEN bytes, COUNT items separated by '\n')
 * into an allocated array of allocated strings. */
static char **proto_list_split(const char *text, size_t len, size_t count)
{
	char **list = xcalloc(count, sizeof(*list));
	const char *p = text;
	const char *end = text + len;

	for (size_t i = 0; i < count; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		list[i] = xstrndup(p, n);
		p += n + 1;
	}
	return list;
}

bool proto_filter_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > FILTER_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Whether TEXT (LEN bytes) is 1 to MAX bytes of printable ASCII. */
static bool proto_printable(const char *text, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c > 0x7e)
			return false;
	}
	return true;
}

bool proto_reason_valid(const char *text, size_t len)
{
	return proto_printable(text, len, PROTO_REASON_MAX);
}

int proto_frame_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       enum proto_type *type_r, const unsigned char **payload_r,
		       size_t *payload_len_r, const char **err_r)
{
	size_t magic_seen = len < sizeof(proto_magic_bytes) ? len : sizeof(proto_magic_bytes);
	uint16_t type = 0;
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
		if (type < PROTO_TYPE_JOB || type > PROTO_TYPE_ANSWER) {
			*err_r = "unknown frame type";
			return -1;
		}
	}
	if (len < PROTO_HEADER_LEN)
		return 0;
	payload_len = proto_get_u32(buf + 8);
	/* Only a verdict may be longer: it carries the archive's fields. */
	if (payload_len >
	    (type == PROTO_TYPE_VERDICT ? PROTO_VERDICT_PAYLOAD_MAX : PROTO_PAYLOAD_MAX)) {
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

/* Decodes a PROFILE value into *PROFILE. */
static int proto_profile_decode(const unsigned char *data, size_t len,
				struct filter_profile *profile, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	struct proto_field filter_fields[PROTO_TAG_MAX + 1];
	const unsigned char *value;
	size_t value_len;
	size_t pos = 0;
	unsigned flags;

	if (proto_fields_split(data, len, PROTO_PROFILE_FLAGS, 1u << PROTO_PROFILE_FILTER, fields,
			       err_r) < 0)
		return -1;
	if (fields[PROTO_PROFILE_FILTER].count > FILTER_PROFILE_MAX) {
		*err_r = "too many filters in the profile";
		return -1;
	}
	if (fields[PROTO_PROFILE_TAG_AT].count == 0 ||
	    fields[PROTO_PROFILE_QUARANTINE_AT].count == 0 ||
	    fields[PROTO_PROFILE_FLAGS].count == 0) {
		*err_r = "profile lacks a required field";
		return -1;
	}
	memset(profile, 0, sizeof(*profile));
	if (!proto_points_decode(&fields[PROTO_PROFILE_TAG_AT], &profile->tag_at) ||
	    !proto_points_decode(&fields[PROTO_PROFILE_QUARANTINE_AT], &profile->quarantine_at)) {
		*err_r = "bad profile threshold";
		return -1;
	}
	/* A flag this version does not know changes what the profile means:
	 * refused, not ignored. */
	flags = fields[PROTO_PROFILE_FLAGS].len == 1 ? fields[PROTO_PROFILE_FLAGS].data[0] : 0x100;
	if ((flags & ~(unsigned)(PROTO_PROFILE_CHALLENGE | PROTO_PROFILE_HOLD)) != 0) {
		*err_r = "bad profile flags";
		return -1;
	}
	profile->challenge_unknown_senders = (flags & PROTO_PROFILE_CHALLENGE) != 0;
	profile->hold = (flags & PROTO_PROFILE_HOLD) != 0;
	while (proto_field_next(data, len, &pos, PROTO_PROFILE_FILTER, &value, &value_len)) {
		struct filter_setting *setting = &profile->filters[profile->filter_count];
		const struct proto_field *name;

		if (proto_fields_split(value, value_len, PROTO_FILTER_WEIGHT, 0, filter_fields,
				       err_r) < 0)
			return -1;
		name = &filter_fields[PROTO_FILTER_NAME];
		if (name->count == 0 ||
		    !proto_filter_name_valid((const char *)name->data, name->len)) {
			*err_r = "bad filter name";
			return -1;
		}
		for (size_t i = 0; i < profile->filter_count; i++) {
			if (strlen(profile->filters[i].name) == name->len &&
			    memcmp(profile->filters[i].name, name->data, name->len) == 0) {
				*err_r = "filter named twice in the profile";
				return -1;
			}
		}
		if (filter_fields[PROTO_FILTER_WEIGHT].count == 0 ||
		    !proto_points_decode(&filter_fields[PROTO_FILTER_WEIGHT], &setting->weight)) {
			*err_r = "bad filter weight";
			return -1;
		}
		memcpy(setting->name, name->data, name->len);
		profile->filter_count++;
	}
	return 0;
}

bool proto_settings_valid(const char *text, size_t len)
{
	size_t i = 0;

	if (len > PROTO_SETTINGS_MAX)
		return false;
	while (i < len) {
		size_t key_start = i;

		while (i < len && ((text[i] >= 'a' && text[i] <= 'z') ||
				   (text[i] >= '0' && text[i] <= '9') || text[i] == '_'))
			i++;
		if (i == key_start || i >= len || text[i] != ' ')
			return false;
		for (i++; i < len && text[i] != '\n'; i++) {
			if (text[i] < 0x20 || text[i] > 0x7e)
				return false;
		}
		if (i >= len)
			return false;
		i++;
	}
	return true;
}

int proto_setup_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       struct proto_setup *setup, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const unsigned char *payload;
	size_t payload_len;
	size_t consumed;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_SETUP, &payload, &payload_len,
			       err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (proto_fields_split(payload, payload_len, PROTO_SETUP_RULES, 0, fields, err_r) < 0)
		return -1;
	if ((fields[PROTO_SETUP_BAYES_DB].count > 0 && fields[PROTO_SETUP_BAYES_DB].len != 0) ||
	    (fields[PROTO_SETUP_RULES].count > 0 && fields[PROTO_SETUP_RULES].len != 0)) {
		*err_r = "bad setup field";
		return -1;
	}
	if (fields[PROTO_SETUP_SETTINGS].count > 0 &&
	    !proto_settings_valid((const char *)fields[PROTO_SETUP_SETTINGS].data,
				  fields[PROTO_SETUP_SETTINGS].len)) {
		*err_r = "bad setup settings";
		return -1;
	}
	setup->bayes_db = fields[PROTO_SETUP_BAYES_DB].count > 0;
	setup->rules = fields[PROTO_SETUP_RULES].count > 0;
	setup->settings = NULL;
	if (fields[PROTO_SETUP_SETTINGS].count > 0)
		setup->settings = xstrndup((const char *)fields[PROTO_SETUP_SETTINGS].data,
					   fields[PROTO_SETUP_SETTINGS].len);
	*consumed_r = consumed;
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
	const struct proto_field *source = &fields[PROTO_JOB_SOURCE];
	const struct proto_field *user = &fields[PROTO_JOB_OWNER_USER];
	const struct proto_field *owner_account = &fields[PROTO_JOB_OWNER_ACCOUNT];
	const struct proto_field *sender = &fields[PROTO_JOB_ENVELOPE_SENDER];
	const struct proto_field *recipients = &fields[PROTO_JOB_ENVELOPE_RECIPIENTS];
	const struct proto_field *profile = &fields[PROTO_JOB_PROFILE];
	const struct proto_field *archive = &fields[PROTO_JOB_ARCHIVE];
	struct pipeline_job out = {0};
	const unsigned char *payload;
	size_t payload_len;
	size_t recipient_count = 0;
	size_t consumed;
	uint64_t received_at;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_JOB, &payload, &payload_len, err_r) <
	    0)
		return -1;
	if (consumed == 0)
		return 0;
	if (proto_fields_split(payload, payload_len, PROTO_JOB_ARCHIVE, 0, fields, err_r) < 0)
		return -1;
	if (!id->count || !account->count || !host->count || !received->count || !profile->count) {
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
	if (source->count && (source->len != 1 || source->data[0] > PIPELINE_SOURCE_LAST)) {
		*err_r = "bad source";
		return -1;
	}
	if (archive->count && archive->len != 0) {
		*err_r = "bad archive flag";
		return -1;
	}
	if ((user->count && !proto_id64_decode(user, &out.owner.user_id)) ||
	    (owner_account->count && !proto_id64_decode(owner_account, &out.owner.account_id))) {
		*err_r = "bad owner";
		return -1;
	}
	if (sender->count && !proto_address_valid((const char *)sender->data, sender->len)) {
		*err_r = "bad envelope sender";
		return -1;
	}
	if (recipients->count) {
		recipient_count =
		    proto_recipients_count((const char *)recipients->data, recipients->len);
		if (recipient_count == 0) {
			*err_r = "bad envelope recipients";
			return -1;
		}
	}
	out.profile = xmalloc(sizeof(*out.profile));
	if (proto_profile_decode(profile->data, profile->len, out.profile, err_r) < 0) {
		free(out.profile);
		return -1;
	}
	memcpy(out.id, id->data, id->len);
	memcpy(out.account, account->data, account->len);
	memcpy(out.provider_host, host->data, host->len);
	out.received_at = (int64_t)received_at;
	if (source->count)
		out.source = (enum pipeline_source)source->data[0];
	out.archive = archive->count > 0;
	if (sender->count)
		out.envelope.sender = xstrndup((const char *)sender->data, sender->len);
	if (recipient_count > 0) {
		out.envelope.recipients = proto_list_split((const char *)recipients->data,
							   recipients->len, recipient_count);
		out.envelope.recipient_count = recipient_count;
	}
	*job = out;
	*consumed_r = consumed;
	return 0;
}

/* Decodes one RESULT value into *RESULT (allocating its reason and headers).
 * On failure *RESULT holds nothing to free. */
static int proto_result_decode(const unsigned char *data, size_t len,
			       struct pipeline_result *result, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *name = &fields[PROTO_RESULT_NAME];
	const struct proto_field *status = &fields[PROTO_RESULT_STATUS];
	const struct proto_field *score = &fields[PROTO_RESULT_SCORE];
	const struct proto_field *reason = &fields[PROTO_RESULT_REASON];
	const struct proto_field *headers = &fields[PROTO_RESULT_HEADERS];

	memset(result, 0, sizeof(*result));
	if (proto_fields_split(data, len, PROTO_RESULT_HEADERS, 0, fields, err_r) < 0)
		return -1;
	if (!name->count || !status->count || !score->count) {
		*err_r = "result lacks a required field";
		return -1;
	}
	if (!proto_filter_name_valid((const char *)name->data, name->len)) {
		*err_r = "bad filter name";
		return -1;
	}
	if (status->len != 1 ||
	    (status->data[0] != PIPELINE_RESULT_OK && status->data[0] != PIPELINE_RESULT_FAILED)) {
		*err_r = "bad result status";
		return -1;
	}
	if (!proto_points_decode(score, &result->score)) {
		*err_r = "bad score";
		return -1;
	}
	if (reason->count && !proto_reason_valid((const char *)reason->data, reason->len)) {
		*err_r = "bad reason";
		return -1;
	}
	if (headers->count &&
	    !proto_prepend_valid((const char *)headers->data, headers->len, err_r))
		return -1;
	memcpy(result->name, name->data, name->len);
	result->status = (enum pipeline_result_status)status->data[0];
	if (reason->count)
		result->reason = xstrndup((const char *)reason->data, reason->len);
	if (headers->count)
		result->headers = xstrndup((const char *)headers->data, headers->len);
	return 0;
}

/* Decodes a verdict's CISS value into *CISS (allocating its subject). On
 * failure *CISS holds nothing to free. */
static int proto_ciss_decode(const unsigned char *data, size_t len, struct pipeline_ciss *ciss,
			     const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *flags = &fields[PROTO_CISS_FLAGS];
	const struct proto_field *subject = &fields[PROTO_CISS_SUBJECT];
	unsigned value;

	memset(ciss, 0, sizeof(*ciss));
	if (proto_fields_split(data, len, PROTO_CISS_SUBJECT, 0, fields, err_r) < 0)
		return -1;
	if (!flags->count || flags->len != 2) {
		*err_r = "bad CISS flags";
		return -1;
	}
	value = proto_get_u16(flags->data);
	if ((value & ~(unsigned)PIPELINE_CISS_FLAGS_ALL) != 0) {
		*err_r = "unknown CISS flag";
		return -1;
	}
	if (subject->count && (subject->len == 0 || subject->len > PIPELINE_CISS_SUBJECT_MAX ||
			       !proto_archive_text_valid((const char *)subject->data, subject->len,
							 PIPELINE_CISS_SUBJECT_MAX, false))) {
		*err_r = "bad CISS subject";
		return -1;
	}
	ciss->present = true;
	ciss->flags = value;
	if (subject->count)
		ciss->subject = xstrndup((const char *)subject->data, subject->len);
	return 0;
}

/* ---- the archive's fields ------------------------------------------------- */

/* The length of the valid UTF-8 sequence at S (LEN bytes left), or 0. */
static size_t proto_utf8_length(const unsigned char *s, size_t len)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool proto_archive_text_valid(const char *text, size_t len, size_t max, bool multiline)
{
	const unsigned char *s = (const unsigned char *)text;
	size_t i = 0;

	if (len > max)
		return false;
	while (i < len) {
		size_t n = proto_utf8_length(s + i, len - i);

		if (n == 0)
			return false;
		if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f) &&
		    !(multiline && (s[i] == '\n' || s[i] == '\t')))
			return false;
		i += n;
	}
	return true;
}

/* An archive address: 1 to DEPOT_ADDRESS_MAX bytes of one line, no space. */
static bool proto_archive_address_valid(const char *text, size_t len)
{
	return len > 0 && memchr(text, ' ', len) == NULL &&
	       proto_archive_text_valid(text, len, DEPOT_ADDRESS_MAX, false);
}

/* An attachment name: 1 to DEPOT_NAME_MAX bytes of one line. */
static bool proto_archive_name_valid(const char *text, size_t len)
{
	return len > 0 && proto_archive_text_valid(text, len, DEPOT_NAME_MAX, false);
}

/* Checks the list TEXT (LEN bytes): 1 to MAX items separated by single
 * '\n', each one ITEM_VALID accepts. Returns how many, or 0 if invalid. */
static size_t proto_archive_list_count(const char *text, size_t len, size_t max,
				       bool (*item_valid)(const char *, size_t))
{
	size_t count = 0;
	size_t pos = 0;

	for (;;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;

		if (count == max || !item_valid(text + pos, end - pos))
			return 0;
		count++;
		if (nl == NULL)
			return count;
		pos = end + 1;
	}
}

/* Whether the C strings LIST (COUNT of them) form a valid archive list. */
static bool proto_archive_list_valid(char *const *list, size_t count, size_t max,
				     bool (*item_valid)(const char *, size_t))
{
	if (count > max || (count > 0 && list == NULL))
		return false;
	for (size_t i = 0; i < count; i++) {
		if (list[i] == NULL || !item_valid(list[i], strlen(list[i])))
			return false;
	}
	return true;
}

bool proto_archive_fields_valid(const struct depot_fields *fields, const char **err_r)
{
	const char *texts[] = {fields->headers, fields->body, fields->attachment_text};
	const size_t maxima[] = {DEPOT_HEADERS_MAX, DEPOT_TEXT_MAX, DEPOT_TEXT_MAX};

	if (fields->sender != NULL &&
	    !proto_archive_address_valid(fields->sender, strlen(fields->sender))) {
		*err_r = "bad archive sender";
		return false;
	}
	if (!proto_archive_list_valid(fields->recipients, fields->recipient_count,
				      DEPOT_RECIPIENTS_MAX, proto_archive_address_valid)) {
		*err_r = "bad archive recipients";
		return false;
	}
	if ((fields->subject != NULL &&
	     !proto_archive_text_valid(fields->subject, strlen(fields->subject), DEPOT_LINE_MAX,
				       false)) ||
	    (fields->message_id != NULL &&
	     (*fields->message_id == '\0' ||
	      !proto_archive_text_valid(fields->message_id, strlen(fields->message_id),
					DEPOT_LINE_MAX, false)))) {
		*err_r = "bad archive subject or message id";
		return false;
	}
	if (fields->date < 0 || fields->date > PROTO_RECEIVED_AT_MAX) {
		*err_r = "bad archive date";
		return false;
	}
	if (!proto_archive_list_valid(fields->attachments, fields->attachment_count,
				      DEPOT_ATTACHMENTS_MAX, proto_archive_name_valid)) {
		*err_r = "bad archive attachments";
		return false;
	}
	for (size_t i = 0; i < 3; i++) {
		if (texts[i] != NULL &&
		    !proto_archive_text_valid(texts[i], strlen(texts[i]), maxima[i], true)) {
			*err_r = "bad archive text";
			return false;
		}
	}
	return true;
}

/* Decodes an ARCHIVE value (LEN bytes) into *FIELDS_R (allocated; free with
 * depot_fields_free and free). */
static int proto_archive_decode(const unsigned char *data, size_t len,
				struct depot_fields **fields_r, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *sender = &fields[PROTO_ARCHIVE_SENDER];
	const struct proto_field *recipients = &fields[PROTO_ARCHIVE_RECIPIENTS];
	const struct proto_field *subject = &fields[PROTO_ARCHIVE_SUBJECT];
	const struct proto_field *date = &fields[PROTO_ARCHIVE_DATE];
	const struct proto_field *message_id = &fields[PROTO_ARCHIVE_MESSAGE_ID];
	const struct proto_field *attachments = &fields[PROTO_ARCHIVE_ATTACHMENTS];
	const struct proto_field *texts[] = {&fields[PROTO_ARCHIVE_HEADERS],
					     &fields[PROTO_ARCHIVE_BODY],
					     &fields[PROTO_ARCHIVE_ATTACHMENT_TEXT]};
	const size_t maxima[] = {DEPOT_HEADERS_MAX, DEPOT_TEXT_MAX, DEPOT_TEXT_MAX};
	struct depot_fields *out;
	size_t recipient_count = 0;
	size_t attachment_count = 0;
	uint64_t seconds;

	if (len > PROTO_ARCHIVE_MAX) {
		*err_r = "archive fields too long";
		return -1;
	}
	if (proto_fields_split(data, len, PROTO_ARCHIVE_ATTACHMENT_TEXT, 0, fields, err_r) < 0)
		return -1;
	if (!date->count || !texts[0]->count || !texts[1]->count || !texts[2]->count) {
		*err_r = "archive lacks a required field";
		return -1;
	}
	if (sender->count &&
	    !proto_archive_address_valid((const char *)sender->data, sender->len)) {
		*err_r = "bad archive sender";
		return -1;
	}
	if (recipients->count) {
		recipient_count =
		    proto_archive_list_count((const char *)recipients->data, recipients->len,
					     DEPOT_RECIPIENTS_MAX, proto_archive_address_valid);
		if (recipient_count == 0) {
			*err_r = "bad archive recipients";
			return -1;
		}
	}
	if ((subject->count && !proto_archive_text_valid((const char *)subject->data, subject->len,
							 DEPOT_LINE_MAX, false)) ||
	    (message_id->count &&
	     (message_id->len == 0 ||
	      !proto_archive_text_valid((const char *)message_id->data, message_id->len,
					DEPOT_LINE_MAX, false)))) {
		*err_r = "bad archive subject or message id";
		return -1;
	}
	if (date->len != 8) {
		*err_r = "bad archive date";
		return -1;
	}
	seconds = (uint64_t)proto_get_u32(date->data) << 32 | proto_get_u32(date->data + 4);
	if (seconds > (uint64_t)PROTO_RECEIVED_AT_MAX) {
		*err_r = "bad archive date";
		return -1;
	}
	if (attachments->count) {
		attachment_count =
		    proto_archive_list_count((const char *)attachments->data, attachments->len,
					     DEPOT_ATTACHMENTS_MAX, proto_archive_name_valid);
		if (attachment_count == 0) {
			*err_r = "bad archive attachments";
			return -1;
		}
	}
	for (size_t i = 0; i < 3; i++) {
		if (!proto_archive_text_valid((const char *)texts[i]->data, texts[i]->len,
					      maxima[i], true)) {
			*err_r = "bad archive text";
			return -1;
		}
	}
	out = xcalloc(1, sizeof(*out));
	if (sender->count)
		out->sender = xstrndup((const char *)sender->data, sender->len);
	if (recipient_count > 0) {
		out->recipients = proto_list_split((const char *)recipients->data, recipients->len,
						   recipient_count);
		out->recipient_count = recipient_count;
	}
	if (subject->count)
		out->subject = xstrndup((const char *)subject->data, subject->len);
	out->date = (int64_t)seconds;
	if (message_id->count)
		out->message_id = xstrndup((const char *)message_id->data, message_id->len);
	if (attachment_count > 0) {
		out->attachments = proto_list_split((const char *)attachments->data,
						    attachments->len, attachment_count);
		out->attachment_count = attachment_count;
	}
	out->headers = xstrndup((const char *)texts[0]->data, texts[0]->len);
	out->body = xstrndup((const char *)texts[1]->data, texts[1]->len);
	out->attachment_text = xstrndup((const char *)texts[2]->data, texts[2]->len);
	*fields_r = out;
	return 0;
}

int proto_verdict_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			 struct pipeline_verdict *verdict, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *id = &fields[PROTO_VERDICT_ID];
	const struct proto_field *outcome = &fields[PROTO_VERDICT_OUTCOME];
	const struct proto_field *sender = &fields[PROTO_VERDICT_SENDER];
	const struct proto_field *recipients = &fields[PROTO_VERDICT_RECIPIENTS];
	const struct proto_field *results = &fields[PROTO_VERDICT_RESULT];
	const struct proto_field *fingerprint = &fields[PROTO_VERDICT_FINGERPRINT];
	const struct proto_field *archive = &fields[PROTO_VERDICT_ARCHIVE];
	const struct proto_field *ciss = &fields[PROTO_VERDICT_CISS];
	struct pipeline_verdict out = {0};
	const unsigned char *payload;
	const unsigned char *value;
	size_t payload_len;
	size_t value_len;
	size_t recipient_count = 0;
	size_t consumed;
	size_t pos = 0;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_VERDICT, &payload, &payload_len,
			       err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (proto_fields_split(payload, payload_len, PROTO_VERDICT_CISS, 1u << PROTO_VERDICT_RESULT,
			       fields, err_r) < 0)
		return -1;
	if (!id->count || !outcome->count) {
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
	if (results->count > PIPELINE_RESULTS_MAX) {
		*err_r = "too many results";
		return -1;
	}
	if (sender->count && !proto_address_valid((const char *)sender->data, sender->len)) {
		*err_r = "bad sender";
		return -1;
	}
	if (recipients->count) {
		recipient_count =
		    proto_recipients_count((const char *)recipients->data, recipients->len);
		if (recipient_count == 0) {
			*err_r = "bad recipients";
			return -1;
		}
	}
	if (fingerprint->count && fingerprint->len != PROTO_FINGERPRINT_LEN) {
		*err_r = "bad fingerprint";
		return -1;
	}
	if (ciss->count && proto_ciss_decode(ciss->data, ciss->len, &out.ciss, err_r) < 0)
		return -1;
	if (results->count > 0)
		out.results = xcalloc(results->count, sizeof(*out.results));
	while (proto_field_next(payload, payload_len, &pos, PROTO_VERDICT_RESULT, &value,
				&value_len)) {
		struct pipeline_result *result = &out.results[out.result_count];

		if (proto_result_decode(value, value_len, result, err_r) < 0)
			goto fail;
		out.result_count++;
		for (size_t i = 0; i + 1 < out.result_count; i++) {
			if (strcmp(out.results[i].name, result->name) == 0) {
				*err_r = "two results for one filter";
				goto fail;
			}
		}
	}
	memcpy(out.id, id->data, id->len);
	out.outcome = (enum pipeline_outcome)outcome->data[0];
	if (sender->count)
		out.sender = xstrndup((const char *)sender->data, sender->len);
	if (recipient_count > 0) {
		out.recipients = proto_list_split((const char *)recipients->data, recipients->len,
						  recipient_count);
		out.recipient_count = recipient_count;
	}
	if (fingerprint->count) {
		out.fingerprint.present = true;
		for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++)
			out.fingerprint.minhash[i] = proto_get_u32(fingerprint->data + 4 * i);
	}
	if (archive->count &&
	    proto_archive_decode(archive->data, archive->len, &out.archive_fields, err_r) < 0)
		goto fail;
	*verdict = out;
	*consumed_r = consumed;
	return 0;
fail:
	proto_verdict_clear(&out);
	return -1;
}

bool proto_dns_type_valid(unsigned type)
{
	switch (type) {
	case FILTER_DNS_A:
	case FILTER_DNS_PTR:
	case FILTER_DNS_MX:
	case FILTER_DNS_TXT:
	case FILTER_DNS_AAAA:
		return true;
	default:
		return false;
	}
}

bool proto_dns_record_valid(const char *text, size_t len)
{
	return proto_printable(text, len, FILTER_DNS_RECORD_MAX);
}

/* A query id: 4 bytes, not 0. */
static bool proto_query_id_decode(const struct proto_field *field, uint32_t *id_r)
{
	if (field->count == 0 || field->len != 4)
		return false;
	*id_r = proto_get_u32(field->data);
	return *id_r != 0;
}

int proto_query_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
		       struct proto_query *query, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *name = &fields[PROTO_QUERY_NAME];
	const struct proto_field *type = &fields[PROTO_QUERY_TYPE];
	const unsigned char *payload;
	size_t payload_len;
	size_t consumed;
	uint32_t id;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_QUERY, &payload, &payload_len,
			       err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (proto_fields_split(payload, payload_len, PROTO_QUERY_TYPE, 0, fields, err_r) < 0)
		return -1;
	if (!proto_query_id_decode(&fields[PROTO_QUERY_ID], &id)) {
		*err_r = "bad query id";
		return -1;
	}
	if (type->count == 0 || type->len != 2 ||
	    !proto_dns_type_valid(proto_get_u16(type->data))) {
		*err_r = "bad query type";
		return -1;
	}
	if (name->count == 0 || name->len > FILTER_DNS_NAME_MAX ||
	    memchr(name->data, '\0', name->len) != NULL) {
		*err_r = "bad query name";
		return -1;
	}
	memset(query, 0, sizeof(*query));
	memcpy(query->name, name->data, name->len);
	if (!filter_dns_name_valid(query->name)) {
		*err_r = "bad query name";
		return -1;
	}
	query->id = id;
	query->type = (enum filter_dns_type)proto_get_u16(type->data);
	*consumed_r = consumed;
	return 0;
}

int proto_answer_decode(const unsigned char *buf, size_t len, size_t *consumed_r,
			struct proto_answer *answer, const char **err_r)
{
	struct proto_field fields[PROTO_TAG_MAX + 1];
	const struct proto_field *status = &fields[PROTO_ANSWER_STATUS];
	const struct proto_field *records = &fields[PROTO_ANSWER_RECORD];
	const unsigned char *payload;
	const unsigned char *value;
	size_t payload_len;
	size_t value_len;
	size_t consumed;
	size_t pos = 0;
	uint32_t id;

	*consumed_r = 0;
	if (proto_typed_decode(buf, len, &consumed, PROTO_TYPE_ANSWER, &payload, &payload_len,
			       err_r) < 0)
		return -1;
	if (consumed == 0)
		return 0;
	if (proto_fields_split(payload, payload_len, PROTO_ANSWER_RECORD, 1u << PROTO_ANSWER_RECORD,
			       fields, err_r) < 0)
		return -1;
	if (!proto_query_id_decode(&fields[PROTO_ANSWER_ID], &id)) {
		*err_r = "bad answer id";
		return -1;
	}
	if (status->count == 0 || status->len != 1 || status->data[0] > FILTER_DNS_TIMEOUT) {
		*err_r = "bad answer status";
		return -1;
	}
	/* Only an answer carries records. */
	if (records->count > FILTER_DNS_RECORDS_MAX ||
	    (records->count > 0 && status->data[0] != FILTER_DNS_OK)) {
		*err_r = "bad answer records";
		return -1;
	}
	while (
	    proto_field_next(payload, payload_len, &pos, PROTO_ANSWER_RECORD, &value, &value_len)) {
		if (!proto_dns_record_valid((const char *)value, value_len)) {
			*err_r = "bad answer record";
			return -1;
		}
	}
	memset(answer, 0, sizeof(*answer));
	answer->id = id;
	answer->answer.status = (enum filter_dns_status)status->data[0];
	pos = 0;
	while (
	    proto_field_next(payload, payload_len, &pos, PROTO_ANSWER_RECORD, &value, &value_len))
		answer->answer.records[answer->answer.count++] =
		    xstrndup((const char *)value, value_len);
	*consumed_r = consumed;
	return 0;
}

bool proto_outcome_valid(int outcome)
{
	/* WORKER_FAILED is the main process's conclusion about a worker; a worker
	 * claiming it would only be confusing. */
	switch (outcome) {
	case PIPELINE_JUDGED:
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

void proto_job_clear(struct pipeline_job *job)
{
	if (job == NULL)
		return;
	xfree(&job->envelope.sender);
	for (size_t i = 0; i < job->envelope.recipient_count; i++)
		free(job->envelope.recipients[i]);
	xfree(&job->envelope.recipients);
	job->envelope.recipient_count = 0;
	xfree(&job->profile);
}

void proto_verdict_clear(struct pipeline_verdict *verdict)
{
	if (verdict == NULL)
		return;
	for (size_t i = 0; i < verdict->result_count; i++) {
		xfree(&verdict->results[i].reason);
		xfree(&verdict->results[i].headers);
	}
	xfree(&verdict->results);
	verdict->result_count = 0;
	xfree(&verdict->reason);
	xfree(&verdict->sender);
	for (size_t i = 0; i < verdict->recipient_count; i++)
		free(verdict->recipients[i]);
	xfree(&verdict->recipients);
	verdict->recipient_count = 0;
	verdict->fingerprint.present = false;
	xfree(&verdict->ciss.subject);
	verdict->ciss.present = false;
	verdict->ciss.flags = 0;
	depot_fields_free(verdict->archive_fields);
	xfree(&verdict->archive_fields);
}
