/*
 * fuzz_subject_tag.c — libFuzzer target for the subject tag's planner
 * (pipeline/subject_tag.c), which reads a hostile header block in the
 * daemon's writer thread.
 *
 * Owns: nothing. Must never: plan an insertion outside the bytes given.
 * Beyond the sanitizers it checks and aborts on a violation: an insertion is
 * inside the input, right after a colon or a blank; the message read in part
 * (as a long one is) plans the same insertion or says it cannot tell; and
 * the input with the tag applied is planned as already tagged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/subject_tag.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *header = (const char *)data;
	struct subject_tag_plan whole, part, again;
	size_t cut = size > 0 ? data[0] % (size + 1) : 0;

	subject_tag_plan(header, size, true, "[SPAM]", &whole);
	if (whole.kind == SUBJECT_TAG_UNKNOWN)
		abort(); /* the whole message always has a plan */
	if (whole.kind == SUBJECT_TAG_INSERT) {
		if (whole.offset < 1 || (size_t)whole.offset > size)
			abort();
		char before = header[whole.offset - 1];
		if (before != ':' && before != ' ' && before != '\t')
			abort();
	}
	subject_tag_plan(header, cut, false, "[SPAM]", &part);
	if (part.kind != SUBJECT_TAG_UNKNOWN && part.kind == SUBJECT_TAG_INSERT &&
	    (whole.kind != SUBJECT_TAG_INSERT || part.offset != whole.offset))
		abort();
	if (whole.kind == SUBJECT_TAG_INSERT || whole.kind == SUBJECT_TAG_ADD) {
		size_t text_len = strlen(whole.text);
		size_t at = whole.kind == SUBJECT_TAG_INSERT ? (size_t)whole.offset : 0;
		char *tagged = malloc(size + text_len + 1);

		if (tagged == NULL)
			abort();
		memcpy(tagged, header, at);
		memcpy(tagged + at, whole.text, text_len);
		memcpy(tagged + at + text_len, header + at, size - at);
		subject_tag_plan(tagged, size + text_len, true, "[SPAM]", &again);
		if (again.kind != SUBJECT_TAG_ALREADY)
			abort();
		free(tagged);
	}
	return 0;
}
