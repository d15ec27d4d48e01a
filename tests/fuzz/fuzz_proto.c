/*
 * fuzz_proto.c — libFuzzer target for the worker protocol decoders
 * (pipeline/proto.c): the verdict decoder reads what a possibly compromised
 * worker sends, the job and setup decoders what a worker is given; the
 * query decoder a worker's DNS question, the answer decoder what a worker
 * is given back. They read nested fields (a job's profile, a verdict's
 * results, its archive fields and CISS facts) and skip unknown optional
 * ones; a verdict's fuzzy fingerprint is checked whole.
 *
 * Owns: nothing. Must never: accept a frame the encoders could not have
 * produced. Beyond the sanitizers it checks three properties and aborts on a
 * violation: a decoded frame re-encodes to bytes that decode to the same
 * values (unknown optional fields are dropped on the way); a frame cut by
 * one byte is "incomplete", never an error or a success; and what is
 * consumed is never more than what was given.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_job(const uint8_t *data, size_t size)
{
	struct pipeline_job job;
	struct pipeline_job again;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	size_t consumed_again;
	const char *err;

	if (proto_job_decode(data, size, &consumed, &job, &err) < 0 || consumed == 0)
		return;
	if (consumed > size)
		abort();
	if (proto_job_decode(data, consumed - 1, &consumed_again, &again, &err) != 0 ||
	    consumed_again != 0)
		abort();
	if (proto_job_encode(&job, &frame, &frame_len, &err) < 0)
		abort();
	if (proto_job_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len)
		abort();
	if (strcmp(job.id, again.id) != 0 || strcmp(job.account, again.account) != 0 ||
	    strcmp(job.provider_host, again.provider_host) != 0 ||
	    job.received_at != again.received_at || job.source != again.source ||
	    job.archive != again.archive || job.owner.user_id != again.owner.user_id ||
	    job.owner.account_id != again.owner.account_id ||
	    (job.envelope.sender == NULL) != (again.envelope.sender == NULL) ||
	    job.envelope.recipient_count != again.envelope.recipient_count ||
	    job.profile->filter_count != again.profile->filter_count ||
	    job.profile->tag_at != again.profile->tag_at ||
	    job.profile->quarantine_at != again.profile->quarantine_at ||
	    job.profile->hold != again.profile->hold ||
	    job.profile->challenge_unknown_senders != again.profile->challenge_unknown_senders)
		abort();
	for (size_t i = 0; i < job.profile->filter_count; i++) {
		if (strcmp(job.profile->filters[i].name, again.profile->filters[i].name) != 0 ||
		    job.profile->filters[i].weight != again.profile->filters[i].weight)
			abort();
	}
	proto_job_clear(&again);
	proto_job_clear(&job);
	free(frame);
}

static bool fuzz_same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Whether the archive fields A and B (either NULL) are the same, and A's
 * pass the encoder's rules. */
static bool fuzz_same_archive(const struct depot_fields *a, const struct depot_fields *b)
{
	const char *err;

	if (a == NULL || b == NULL)
		return a == b;
	if (!proto_archive_fields_valid(a, &err) || !fuzz_same_text(a->sender, b->sender) ||
	    !fuzz_same_text(a->subject, b->subject) ||
	    !fuzz_same_text(a->message_id, b->message_id) || a->date != b->date ||
	    !fuzz_same_text(a->headers, b->headers) || !fuzz_same_text(a->body, b->body) ||
	    !fuzz_same_text(a->attachment_text, b->attachment_text) ||
	    a->recipient_count != b->recipient_count || a->attachment_count != b->attachment_count)
		return false;
	for (size_t i = 0; i < a->recipient_count; i++) {
		if (strcmp(a->recipients[i], b->recipients[i]) != 0)
			return false;
	}
	for (size_t i = 0; i < a->attachment_count; i++) {
		if (strcmp(a->attachments[i], b->attachments[i]) != 0)
			return false;
	}
	return true;
}

static void fuzz_verdict(const uint8_t *data, size_t size)
{
	struct pipeline_verdict verdict;
	struct pipeline_verdict again;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	size_t consumed_again;
	const char *err;

	if (proto_verdict_decode(data, size, &consumed, &verdict, &err) < 0 || consumed == 0)
		return;
	if (consumed > size)
		abort();
	if (proto_verdict_decode(data, consumed - 1, &consumed_again, &again, &err) != 0 ||
	    consumed_again != 0)
		abort();
	for (size_t i = 0; i < verdict.result_count; i++) {
		const struct pipeline_result *result = &verdict.results[i];

		if (result->headers != NULL &&
		    !proto_prepend_valid(result->headers, strlen(result->headers), &err))
			abort();
		if (result->reason != NULL &&
		    !proto_reason_valid(result->reason, strlen(result->reason)))
			abort();
	}
	if (proto_verdict_encode(&verdict, &frame, &frame_len, &err) < 0)
		abort();
	if (proto_verdict_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len)
		abort();
	if (strcmp(verdict.id, again.id) != 0 || verdict.outcome != again.outcome ||
	    verdict.result_count != again.result_count ||
	    verdict.recipient_count != again.recipient_count ||
	    (verdict.sender == NULL) != (again.sender == NULL) ||
	    verdict.fingerprint.present != again.fingerprint.present ||
	    memcmp(verdict.fingerprint.minhash, again.fingerprint.minhash,
		   sizeof(verdict.fingerprint.minhash)) != 0 ||
	    !fuzz_same_archive(verdict.archive_fields, again.archive_fields) ||
	    verdict.ciss.present != again.ciss.present || verdict.ciss.flags != again.ciss.flags ||
	    (verdict.ciss.subject == NULL) != (again.ciss.subject == NULL) ||
	    (verdict.ciss.subject != NULL && strcmp(verdict.ciss.subject, again.ciss.subject) != 0))
		abort();
	for (size_t i = 0; i < verdict.result_count; i++) {
		const struct pipeline_result *a = &verdict.results[i];
		const struct pipeline_result *b = &again.results[i];

		if (strcmp(a->name, b->name) != 0 || a->status != b->status ||
		    a->score != b->score || (a->headers == NULL) != (b->headers == NULL) ||
		    (a->headers != NULL && strcmp(a->headers, b->headers) != 0) ||
		    (a->reason == NULL) != (b->reason == NULL) ||
		    (a->reason != NULL && strcmp(a->reason, b->reason) != 0))
			abort();
	}
	proto_verdict_clear(&again);
	proto_verdict_clear(&verdict);
	free(frame);
}

static void fuzz_setup(const uint8_t *data, size_t size)
{
	struct proto_setup setup;
	struct proto_setup again;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	size_t consumed_again;
	const char *err;

	if (proto_setup_decode(data, size, &consumed, &setup, &err) < 0 || consumed == 0)
		return;
	if (consumed > size)
		abort();
	if (proto_setup_decode(data, consumed - 1, &consumed_again, &again, &err) != 0 ||
	    consumed_again != 0)
		abort();
	proto_setup_encode(&setup, &frame, &frame_len);
	if (proto_setup_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len || again.bayes_db != setup.bayes_db ||
	    (setup.settings == NULL) != (again.settings == NULL) ||
	    (setup.settings != NULL && strcmp(setup.settings, again.settings) != 0))
		abort();
	free(again.settings);
	free(setup.settings);
	free(frame);
}

static void fuzz_query(const uint8_t *data, size_t size)
{
	struct proto_query query;
	struct proto_query again;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	size_t consumed_again;
	const char *err;

	if (proto_query_decode(data, size, &consumed, &query, &err) < 0 || consumed == 0)
		return;
	if (consumed > size || !filter_dns_name_valid(query.name))
		abort();
	if (proto_query_decode(data, consumed - 1, &consumed_again, &again, &err) != 0 ||
	    consumed_again != 0)
		abort();
	if (proto_query_encode(&query, &frame, &frame_len, &err) < 0)
		abort();
	if (proto_query_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len || again.id != query.id || again.type != query.type ||
	    strcmp(again.name, query.name) != 0)
		abort();
	free(frame);
}

static void fuzz_answer(const uint8_t *data, size_t size)
{
	struct proto_answer answer;
	struct proto_answer again;
	unsigned char *frame;
	size_t frame_len;
	size_t consumed;
	size_t consumed_again;
	const char *err;

	if (proto_answer_decode(data, size, &consumed, &answer, &err) < 0 || consumed == 0)
		return;
	if (consumed > size || answer.answer.count > FILTER_DNS_RECORDS_MAX ||
	    (answer.answer.count > 0 && answer.answer.status != FILTER_DNS_OK))
		abort();
	for (size_t i = 0; i < answer.answer.count; i++) {
		if (!proto_dns_record_valid(answer.answer.records[i],
					    strlen(answer.answer.records[i])))
			abort();
	}
	if (proto_answer_decode(data, consumed - 1, &consumed_again, &again, &err) != 0 ||
	    consumed_again != 0)
		abort();
	if (proto_answer_encode(&answer, &frame, &frame_len, &err) < 0)
		abort();
	if (proto_answer_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len || again.id != answer.id ||
	    again.answer.status != answer.answer.status ||
	    again.answer.count != answer.answer.count)
		abort();
	for (size_t i = 0; i < answer.answer.count; i++) {
		if (strcmp(answer.answer.records[i], again.answer.records[i]) != 0)
			abort();
	}
	filter_dns_answer_clear(&again.answer);
	filter_dns_answer_clear(&answer.answer);
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_setup(data, size);
	fuzz_query(data, size);
	fuzz_answer(data, size);
	fuzz_job(data, size);
	fuzz_verdict(data, size);
	return 0;
}
