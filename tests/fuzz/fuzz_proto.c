/*
 * fuzz_proto.c — libFuzzer target for the worker protocol decoders
 * (pipeline/proto.c): the verdict decoder reads what a possibly compromised
 * worker sends, the job decoder what a worker is given.
 *
 * Owns: nothing. Must never: accept a frame the encoders could not have
 * produced. Beyond the sanitizers it checks three properties and aborts on a
 * violation: a decoded frame re-encodes to bytes that decode to the same
 * values; a frame cut by one byte is "incomplete", never an error or a
 * success; and what is consumed is never more than what was given.
 */
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
	    job.received_at != again.received_at)
		abort();
	free(frame);
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
	if (verdict.prepend != NULL &&
	    !proto_prepend_valid(verdict.prepend, strlen(verdict.prepend), &err))
		abort();
	if (proto_verdict_encode(&verdict, &frame, &frame_len, &err) < 0)
		abort();
	if (proto_verdict_decode(frame, frame_len, &consumed_again, &again, &err) < 0 ||
	    consumed_again != frame_len)
		abort();
	if (strcmp(verdict.id, again.id) != 0 || verdict.outcome != again.outcome ||
	    (verdict.prepend == NULL) != (again.prepend == NULL) ||
	    (verdict.prepend != NULL && strcmp(verdict.prepend, again.prepend) != 0))
		abort();
	proto_verdict_clear(&again);
	proto_verdict_clear(&verdict);
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_job(data, size);
	fuzz_verdict(data, size);
	return 0;
}
