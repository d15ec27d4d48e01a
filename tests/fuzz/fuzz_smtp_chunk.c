/*
 * fuzz_smtp_chunk.c — libFuzzer target for BDAT's line-end normaliser
 * (smtp_chunk_normalise/_finish, smtp/chunk.c) on any octets, split into
 * three pieces where the first two input bytes say.
 *
 * Besides the sanitizers it checks the normaliser's promises and aborts on a
 * broken one: the pieces give what the whole gives (line ends, Received
 * count, longest line), however the split falls; the result has only CR LF
 * line ends (every CR followed by a LF, every LF after a CR); a non-empty
 * result ends with CR LF; its bytes other than CR and LF are the input's
 * in order; it stays within the room the header promises.
 *
 * Must never: touch the file system.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

/* IN normalised in the pieces [0, A), [A, B), [B, LEN) into OUT. */
static size_t normalise(struct smtp_chunk *chunk, const char *in, size_t len, size_t a, size_t b,
			char *out)
{
	size_t used = 0;

	smtp_chunk_init(chunk);
	used += smtp_chunk_normalise(chunk, in, a, out + used);
	used += smtp_chunk_normalise(chunk, in + a, b - a, out + used);
	used += smtp_chunk_normalise(chunk, in + b, len - b, out + used);
	used += smtp_chunk_finish(chunk, out + used);
	return used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *in = (const char *)data + 2;
	size_t len = size - 2;
	size_t a = len > 0 ? data[0] % (len + 1) : 0;
	size_t b = len > 0 ? data[1] % (len + 1) : 0;
	if (a > b) {
		size_t t = a;
		a = b;
		b = t;
	}
	size_t room = SMTP_CHUNK_OUT_SIZE(len) + SMTP_CHUNK_FINISH_SIZE;
	char *whole = malloc(room), *split = malloc(room);
	struct smtp_chunk whole_chunk, split_chunk;

	size_t whole_len = normalise(&whole_chunk, in, len, len, len, whole);
	size_t split_len = normalise(&split_chunk, in, len, a, b, split);
	check(whole_len <= room && split_len == whole_len);
	check(memcmp(whole, split, whole_len) == 0);
	check(whole_chunk.received_count == split_chunk.received_count);
	check(whole_chunk.longest_line == split_chunk.longest_line);
	check(whole_chunk.past_header == split_chunk.past_header);
	check(whole_chunk.line_len == 0);
	for (size_t i = 0; i < whole_len; i++) {
		if (whole[i] == '\r')
			check(i + 1 < whole_len && whole[i + 1] == '\n');
		if (whole[i] == '\n')
			check(i > 0 && whole[i - 1] == '\r');
	}
	if (whole_len > 0)
		check(whole_len >= 2 && whole[whole_len - 2] == '\r' &&
		      whole[whole_len - 1] == '\n');
	/* The text between the line ends is the input's. */
	size_t j = 0;
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r' || in[i] == '\n')
			continue;
		while (j < whole_len && (whole[j] == '\r' || whole[j] == '\n'))
			j++;
		check(j < whole_len && whole[j] == in[i]);
		j++;
	}
	free(whole);
	free(split);
	return 0;
}
