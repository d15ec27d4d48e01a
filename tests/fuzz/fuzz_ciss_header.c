/*
 * fuzz_ciss_header.c — libFuzzer target for challenge-response's header
 * reader (filters/ciss_header.c): the G4 flags and the subject of a hostile
 * header block.
 *
 * Owns: nothing. Must never: read past the input (it is copied into a
 * buffer of exactly its size, so ASan sees any overread), set a flag
 * outside the header flags, or hand out a subject the worker protocol's
 * decoder would refuse (longer than PIPELINE_CISS_SUBJECT_MAX, or not one
 * line of UTF-8 without control characters: proto_archive_text_valid).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/ciss.h"
#include "pipeline/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned header_flags = PIPELINE_CISS_NULL_SENDER | PIPELINE_CISS_NO_SENDER |
					     PIPELINE_CISS_AUTO_SUBMITTED | PIPELINE_CISS_BULK |
					     PIPELINE_CISS_LIST | PIPELINE_CISS_OUR_CHALLENGE;
	char subject[PIPELINE_CISS_SUBJECT_MAX + 1];
	char *input = malloc(size > 0 ? size : 1);
	unsigned flags;
	size_t len;

	if (size > 0)
		memcpy(input, data, size);
	flags = ciss_header_facts(input, size, subject);
	if ((flags & ~header_flags) != 0)
		abort();
	/* Exactly one of: a sender, the null sender, none. */
	if ((flags & PIPELINE_CISS_NULL_SENDER) && (flags & PIPELINE_CISS_NO_SENDER))
		abort();
	len = strnlen(subject, sizeof(subject));
	if (len > PIPELINE_CISS_SUBJECT_MAX)
		abort();
	if (!proto_archive_text_valid(subject, len, PIPELINE_CISS_SUBJECT_MAX, false))
		abort();
	free(input);
	return 0;
}
