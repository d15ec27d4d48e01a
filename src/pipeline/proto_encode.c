/*
 * proto_encode.c — encoding of the frames between the main process and the
 * workers (the format is described in proto.h; decoding is in proto.c).
 *
 * Owns: nothing; the encoders hand out frames the caller frees.
 * Must never: produce a frame the decoders would refuse (they check their
 * input with the decoders' own rules, so a bug on the sending side shows up
 * here), or need anything but libc and the x* allocators (the fuzz target
 * links it).
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/dns.h"
#include "pipeline/proto.h"

/* A growing buffer for the encoders. */
struct proto_writer {
	unsigned char *buf;
	size_t len;
	size_t cap;
};

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

static void proto_writer_reserve(struct proto_writer *w, size_t more)
{
	if (w->cap - w->len >= more)
		return;
	while (w->cap - w->len < more)
		w->cap = w->cap != 0 ? 2 * w->cap : 256;
	w->buf = xrealloc(w->buf, w->cap);
}

static void proto_writer_put(struct proto_writer *w, const void *data, size_t len)
{
	proto_writer_reserve(w, len);
	if (len > 0)
		memcpy(w->buf + w->len, data, len);
	w->len += len;
}

/* Starts a field of TAG whose length is filled in by proto_writer_close,
 * for a value written piece by piece; returns where the length goes. */
static size_t proto_writer_open(struct proto_writer *w, uint16_t tag)
{
	unsigned char header[PROTO_FIELD_HEADER_LEN] = {0};
	size_t at;

	proto_put_u16(header, tag);
	proto_writer_put(w, header, sizeof(header));
	at = w->len - 4;
	return at;
}

static void proto_writer_close(struct proto_writer *w, size_t at)
{
	proto_put_u32(w->buf + at, (uint32_t)(w->len - at - 4));
}

static void proto_writer_field(struct proto_writer *w, uint16_t tag, const void *data, size_t len)
{
	size_t at = proto_writer_open(w, tag);

	proto_writer_put(w, data, len);
	proto_writer_close(w, at);
}

static void proto_writer_u8(struct proto_writer *w, uint16_t tag, unsigned value)
{
	unsigned char byte = (unsigned char)value;

	proto_writer_field(w, tag, &byte, 1);
}

static void proto_writer_i64(struct proto_writer *w, uint16_t tag, int64_t value)
{
	unsigned char bytes[8];

	proto_put_u32(proto_put_u32(bytes, (uint32_t)((uint64_t)value >> 32)), (uint32_t)value);
	proto_writer_field(w, tag, bytes, sizeof(bytes));
}

static void proto_writer_points(struct proto_writer *w, uint16_t tag, double points)
{
	double scaled = points * PROTO_MILLI;
	int32_t milli = (int32_t)(scaled < 0 ? scaled - 0.5 : scaled + 0.5);
	unsigned char bytes[4];

	proto_put_u32(bytes, (uint32_t)milli);
	proto_writer_field(w, tag, bytes, sizeof(bytes));
}

/* Starts a frame of TYPE; proto_writer_finish fills in its length. */
static void proto_writer_start(struct proto_writer *w, enum proto_type type)
{
	unsigned char header[PROTO_HEADER_LEN];
	unsigned char *p = proto_put_u32(header, PROTO_MAGIC);

	p = proto_put_u16(p, PROTO_VERSION);
	p = proto_put_u16(p, (uint16_t)type);
	proto_put_u32(p, 0);
	memset(w, 0, sizeof(*w));
	proto_writer_put(w, header, sizeof(header));
}

static int proto_writer_finish(struct proto_writer *w, unsigned char **frame_r, size_t *len_r,
			       const char **err_r)
{
	/* The type is at bytes 6 and 7: only a verdict may be longer. */
	size_t max =
	    w->buf[7] == PROTO_TYPE_VERDICT ? PROTO_VERDICT_PAYLOAD_MAX : PROTO_PAYLOAD_MAX;

	if (w->len - PROTO_HEADER_LEN > max) {
		free(w->buf);
		*err_r = "payload too long";
		return -1;
	}
	proto_put_u32(w->buf + 8, (uint32_t)(w->len - PROTO_HEADER_LEN));
	*frame_r = w->buf;
	*len_r = w->len;
	return 0;
}

/* Writes an address list field; false if an address is invalid or there
 * are none or too many. */
static bool proto_writer_recipients(struct proto_writer *w, uint16_t tag, char *const *list,
				    size_t count)
{
	size_t at;

	if (count == 0 || count > PROTO_RECIPIENTS_MAX || list == NULL)
		return false;
	at = proto_writer_open(w, tag);
	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(list[i]);

		if (!proto_address_valid(list[i], n))
			return false;
		if (i > 0)
			proto_writer_put(w, "\n", 1);
		proto_writer_put(w, list[i], n);
	}
	proto_writer_close(w, at);
	return true;
}

/* Checks PROFILE as the decoder would. */
static bool proto_profile_valid(const struct filter_profile *profile)
{
	if (profile->filter_count > FILTER_PROFILE_MAX || !proto_points_valid(profile->tag_at) ||
	    !proto_points_valid(profile->quarantine_at))
		return false;
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter_setting *setting = &profile->filters[i];

		if (!proto_filter_name_valid(setting->name,
					     strnlen(setting->name, sizeof(setting->name))) ||
		    !proto_points_valid(setting->weight))
			return false;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(profile->filters[j].name, setting->name) == 0)
				return false;
		}
	}
	return true;
}

static void proto_writer_profile(struct proto_writer *w, const struct filter_profile *profile)
{
	size_t at = proto_writer_open(w, PROTO_JOB_PROFILE);

	for (size_t i = 0; i < profile->filter_count; i++) {
		size_t filter_at = proto_writer_open(w, PROTO_PROFILE_FILTER);

		proto_writer_field(w, PROTO_FILTER_NAME, profile->filters[i].name,
				   strlen(profile->filters[i].name));
		proto_writer_points(w, PROTO_FILTER_WEIGHT, profile->filters[i].weight);
		proto_writer_close(w, filter_at);
	}
	proto_writer_points(w, PROTO_PROFILE_TAG_AT, profile->tag_at);
	proto_writer_points(w, PROTO_PROFILE_QUARANTINE_AT, profile->quarantine_at);
	proto_writer_u8(w, PROTO_PROFILE_FLAGS,
			(profile->challenge_unknown_senders ? PROTO_PROFILE_CHALLENGE : 0) |
			    (profile->hold ? PROTO_PROFILE_HOLD : 0));
	proto_writer_close(w, at);
}

int proto_job_encode(const struct pipeline_job *job, unsigned char **frame_r, size_t *len_r,
		     const char **err_r)
{
	size_t account_len = strnlen(job->account, sizeof(job->account));
	size_t host_len = strnlen(job->provider_host, sizeof(job->provider_host));
	struct proto_writer w;

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
	if ((unsigned)job->source > PIPELINE_SOURCE_LAST) {
		*err_r = "bad source";
		return -1;
	}
	if (job->owner.user_id < 0 || job->owner.account_id < 0) {
		*err_r = "bad owner";
		return -1;
	}
	if (job->envelope.sender != NULL &&
	    !proto_address_valid(job->envelope.sender, strlen(job->envelope.sender))) {
		*err_r = "bad envelope sender";
		return -1;
	}
	if (job->profile == NULL || !proto_profile_valid(job->profile)) {
		*err_r = "bad profile";
		return -1;
	}
	proto_writer_start(&w, PROTO_TYPE_JOB);
	proto_writer_field(&w, PROTO_JOB_ACCOUNT, job->account, account_len);
	proto_writer_field(&w, PROTO_JOB_PROVIDER_HOST, job->provider_host, host_len);
	proto_writer_i64(&w, PROTO_JOB_RECEIVED_AT, job->received_at);
	proto_writer_u8(&w, PROTO_JOB_SOURCE, (unsigned)job->source);
	if (job->owner.user_id > 0)
		proto_writer_i64(&w, PROTO_JOB_OWNER_USER, job->owner.user_id);
	if (job->owner.account_id > 0)
		proto_writer_i64(&w, PROTO_JOB_OWNER_ACCOUNT, job->owner.account_id);
	if (job->envelope.sender != NULL)
		proto_writer_field(&w, PROTO_JOB_ENVELOPE_SENDER, job->envelope.sender,
				   strlen(job->envelope.sender));
	if (job->envelope.recipient_count > 0 &&
	    !proto_writer_recipients(&w, PROTO_JOB_ENVELOPE_RECIPIENTS, job->envelope.recipients,
				     job->envelope.recipient_count)) {
		free(w.buf);
		*err_r = "bad envelope recipients";
		return -1;
	}
	proto_writer_profile(&w, job->profile);
	if (job->archive)
		proto_writer_field(&w, PROTO_JOB_ARCHIVE, "", 0);
	/* The id goes last: a payload cut short at a field boundary then always
	 * lacks a required field. */
	proto_writer_field(&w, PROTO_JOB_ID, job->id, SPOOL_ID_LEN);
	return proto_writer_finish(&w, frame_r, len_r, err_r);
}

/* Checks RESULT as the decoder would; false with *ERR_R. */
static bool proto_result_valid(const struct pipeline_result *result, const char **err_r)
{
	if (!proto_filter_name_valid(result->name, strnlen(result->name, sizeof(result->name)))) {
		*err_r = "bad filter name";
		return false;
	}
	if (result->status != PIPELINE_RESULT_OK && result->status != PIPELINE_RESULT_FAILED) {
		*err_r = "bad result status";
		return false;
	}
	if (!proto_points_valid(result->score)) {
		*err_r = "bad score";
		return false;
	}
	if (result->reason != NULL && !proto_reason_valid(result->reason, strlen(result->reason))) {
		*err_r = "bad reason";
		return false;
	}
	return result->headers == NULL ||
	       proto_prepend_valid(result->headers, strlen(result->headers), err_r);
}

/* Writes a list field of TAG: the COUNT strings of LIST, '\n' between
 * them (checked already), unless there are none. */
static void proto_writer_list(struct proto_writer *w, uint16_t tag, char *const *list, size_t count)
{
	size_t at;

	if (count == 0)
		return;
	at = proto_writer_open(w, tag);
	for (size_t i = 0; i < count; i++) {
		if (i > 0)
			proto_writer_put(w, "\n", 1);
		proto_writer_put(w, list[i], strlen(list[i]));
	}
	proto_writer_close(w, at);
}

/* Writes the text field TAG: TEXT, or empty for NULL. */
static void proto_writer_text(struct proto_writer *w, uint16_t tag, const char *text)
{
	proto_writer_field(w, tag, text != NULL ? text : "", text != NULL ? strlen(text) : 0);
}

/* Writes the verdict's ARCHIVE field from FIELDS (checked already); false
 * when it would be longer than PROTO_ARCHIVE_MAX. */
static bool proto_writer_archive(struct proto_writer *w, const struct depot_fields *fields)
{
	size_t at = proto_writer_open(w, PROTO_VERDICT_ARCHIVE);

	if (fields->sender != NULL)
		proto_writer_text(w, PROTO_ARCHIVE_SENDER, fields->sender);
	proto_writer_list(w, PROTO_ARCHIVE_RECIPIENTS, fields->recipients, fields->recipient_count);
	if (fields->subject != NULL)
		proto_writer_text(w, PROTO_ARCHIVE_SUBJECT, fields->subject);
	proto_writer_i64(w, PROTO_ARCHIVE_DATE, fields->date);
	if (fields->message_id != NULL)
		proto_writer_text(w, PROTO_ARCHIVE_MESSAGE_ID, fields->message_id);
	proto_writer_list(w, PROTO_ARCHIVE_ATTACHMENTS, fields->attachments,
			  fields->attachment_count);
	proto_writer_text(w, PROTO_ARCHIVE_HEADERS, fields->headers);
	proto_writer_text(w, PROTO_ARCHIVE_BODY, fields->body);
	proto_writer_text(w, PROTO_ARCHIVE_ATTACHMENT_TEXT, fields->attachment_text);
	proto_writer_close(w, at);
	return w->len - at - 4 <= PROTO_ARCHIVE_MAX;
}

int proto_verdict_encode(const struct pipeline_verdict *verdict, unsigned char **frame_r,
			 size_t *len_r, const char **err_r)
{
	unsigned char outcome = (unsigned char)verdict->outcome;
	struct proto_writer w;

	if (strnlen(verdict->id, sizeof(verdict->id)) != SPOOL_ID_LEN ||
	    !proto_id_valid((const unsigned char *)verdict->id, SPOOL_ID_LEN)) {
		*err_r = "bad message id";
		return -1;
	}
	if (!proto_outcome_valid((int)verdict->outcome)) {
		*err_r = "bad outcome";
		return -1;
	}
	if (verdict->result_count > PIPELINE_RESULTS_MAX ||
	    (verdict->result_count > 0 && verdict->results == NULL)) {
		*err_r = "too many results";
		return -1;
	}
	for (size_t i = 0; i < verdict->result_count; i++) {
		if (!proto_result_valid(&verdict->results[i], err_r))
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(verdict->results[j].name, verdict->results[i].name) == 0) {
				*err_r = "two results for one filter";
				return -1;
			}
		}
	}
	if (verdict->sender != NULL &&
	    !proto_address_valid(verdict->sender, strlen(verdict->sender))) {
		*err_r = "bad sender";
		return -1;
	}
	if (verdict->archive_fields != NULL &&
	    !proto_archive_fields_valid(verdict->archive_fields, err_r))
		return -1;
	proto_writer_start(&w, PROTO_TYPE_VERDICT);
	for (size_t i = 0; i < verdict->result_count; i++) {
		const struct pipeline_result *result = &verdict->results[i];
		size_t at = proto_writer_open(&w, PROTO_VERDICT_RESULT);

		proto_writer_field(&w, PROTO_RESULT_NAME, result->name, strlen(result->name));
		proto_writer_u8(&w, PROTO_RESULT_STATUS, (unsigned)result->status);
		proto_writer_points(&w, PROTO_RESULT_SCORE, result->score);
		if (result->reason != NULL)
			proto_writer_field(&w, PROTO_RESULT_REASON, result->reason,
					   strlen(result->reason));
		if (result->headers != NULL)
			proto_writer_field(&w, PROTO_RESULT_HEADERS, result->headers,
					   strlen(result->headers));
		proto_writer_close(&w, at);
	}
	if (verdict->sender != NULL)
		proto_writer_field(&w, PROTO_VERDICT_SENDER, verdict->sender,
				   strlen(verdict->sender));
	if (verdict->recipient_count > 0 &&
	    !proto_writer_recipients(&w, PROTO_VERDICT_RECIPIENTS, verdict->recipients,
				     verdict->recipient_count)) {
		free(w.buf);
		*err_r = "bad recipients";
		return -1;
	}
	if (verdict->fingerprint.present) {
		unsigned char packed[PROTO_FINGERPRINT_LEN];

		for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++)
			proto_put_u32(packed + 4 * i, verdict->fingerprint.minhash[i]);
		proto_writer_field(&w, PROTO_VERDICT_FINGERPRINT, packed, sizeof(packed));
	}
	if (verdict->ciss.present) {
		size_t at = proto_writer_open(&w, PROTO_VERDICT_CISS);
		unsigned char flags[2];

		if ((verdict->ciss.flags & ~(unsigned)PIPELINE_CISS_FLAGS_ALL) != 0 ||
		    (verdict->ciss.subject != NULL &&
		     (verdict->ciss.subject[0] == '\0' ||
		      strlen(verdict->ciss.subject) > PIPELINE_CISS_SUBJECT_MAX ||
		      !proto_archive_text_valid(verdict->ciss.subject,
						strlen(verdict->ciss.subject),
						PIPELINE_CISS_SUBJECT_MAX, false)))) {
			free(w.buf);
			*err_r = "bad CISS facts";
			return -1;
		}
		proto_put_u16(flags, (uint16_t)verdict->ciss.flags);
		proto_writer_field(&w, PROTO_CISS_FLAGS, flags, sizeof(flags));
		if (verdict->ciss.subject != NULL)
			proto_writer_field(&w, PROTO_CISS_SUBJECT, verdict->ciss.subject,
					   strlen(verdict->ciss.subject));
		proto_writer_close(&w, at);
	}
	if (verdict->archive_fields != NULL && !proto_writer_archive(&w, verdict->archive_fields)) {
		free(w.buf);
		*err_r = "archive fields too long";
		return -1;
	}
	/* The id goes last: a payload cut short at a field boundary then always
	 * lacks a required field, whatever else the verdict holds. */
	proto_writer_field(&w, PROTO_VERDICT_OUTCOME, &outcome, 1);
	proto_writer_field(&w, PROTO_VERDICT_ID, verdict->id, SPOOL_ID_LEN);
	return proto_writer_finish(&w, frame_r, len_r, err_r);
}

void proto_setup_encode(const struct proto_setup *setup, unsigned char **frame_r, size_t *len_r)
{
	struct proto_writer w;
	const char *err;

	proto_writer_start(&w, PROTO_TYPE_SETUP);
	if (setup->bayes_db)
		proto_writer_field(&w, PROTO_SETUP_BAYES_DB, "", 0);
	if (setup->rules)
		proto_writer_field(&w, PROTO_SETUP_RULES, "", 0);
	if (setup->settings != NULL &&
	    proto_settings_valid(setup->settings, strlen(setup->settings)))
		proto_writer_field(&w, PROTO_SETUP_SETTINGS, setup->settings,
				   strlen(setup->settings));
	/* At most PROTO_SETTINGS_MAX and a few bytes: never over the limit. */
	proto_writer_finish(&w, frame_r, len_r, &err);
}

int proto_query_encode(const struct proto_query *query, unsigned char **frame_r, size_t *len_r,
		       const char **err_r)
{
	size_t name_len = strnlen(query->name, sizeof(query->name));
	unsigned char bytes[4];
	struct proto_writer w;

	if (query->id == 0) {
		*err_r = "bad query id";
		return -1;
	}
	if (!proto_dns_type_valid((unsigned)query->type)) {
		*err_r = "bad query type";
		return -1;
	}
	if (name_len == sizeof(query->name) || !filter_dns_name_valid(query->name)) {
		*err_r = "bad query name";
		return -1;
	}
	proto_writer_start(&w, PROTO_TYPE_QUERY);
	proto_writer_field(&w, PROTO_QUERY_NAME, query->name, name_len);
	proto_put_u16(bytes, (uint16_t)query->type);
	proto_writer_field(&w, PROTO_QUERY_TYPE, bytes, 2);
	proto_put_u32(bytes, query->id);
	proto_writer_field(&w, PROTO_QUERY_ID, bytes, 4);
	return proto_writer_finish(&w, frame_r, len_r, err_r);
}

int proto_answer_encode(const struct proto_answer *answer, unsigned char **frame_r, size_t *len_r,
			const char **err_r)
{
	const struct filter_dns_answer *dns = &answer->answer;
	unsigned char bytes[4];
	struct proto_writer w;

	if (answer->id == 0) {
		*err_r = "bad answer id";
		return -1;
	}
	if ((unsigned)dns->status > FILTER_DNS_TIMEOUT) {
		*err_r = "bad answer status";
		return -1;
	}
	if (dns->count > FILTER_DNS_RECORDS_MAX ||
	    (dns->count > 0 && dns->status != FILTER_DNS_OK)) {
		*err_r = "bad answer records";
		return -1;
	}
	for (size_t i = 0; i < dns->count; i++) {
		if (dns->records[i] == NULL ||
		    !proto_dns_record_valid(dns->records[i], strlen(dns->records[i]))) {
			*err_r = "bad answer record";
			return -1;
		}
	}
	proto_writer_start(&w, PROTO_TYPE_ANSWER);
	for (size_t i = 0; i < dns->count; i++)
		proto_writer_field(&w, PROTO_ANSWER_RECORD, dns->records[i],
				   strlen(dns->records[i]));
	proto_writer_u8(&w, PROTO_ANSWER_STATUS, (unsigned)dns->status);
	/* The id goes last, as in the other frames. */
	proto_put_u32(bytes, answer->id);
	proto_writer_field(&w, PROTO_ANSWER_ID, bytes, 4);
	return proto_writer_finish(&w, frame_r, len_r, err_r);
}
