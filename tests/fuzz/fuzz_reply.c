/*
 * fuzz_reply.c — libFuzzer target for what a provider sends popgate: status
 * lines (pop3_reply_parse), UIDL and LIST listing lines, and multi-line
 * bodies through the dot decoder fed in pseudo-random chunk sizes.
 *
 * Two properties are checked with abort(): the decoder gives the same bytes
 * and the same consumed count whatever the chunking, and a message run
 * through pop3_dot_encode, pop3_dot_encoder_finish and pop3_dot_decode comes
 * back unchanged (plus a line end if it had none); under TOP it comes back as
 * a prefix ending at a line end.
 *
 * Must never: touch the file system or keep state between runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Output collected from a codec. */
struct buffer {
	char *data;
	size_t len;
	size_t size;
};

static void check(bool condition)
{
	if (!condition)
		abort();
}

static void buffer_out(void *ctx, const char *data, size_t len)
{
	struct buffer *buffer = ctx;

	/* The codecs promise runs, never empty calls. */
	check(len > 0);
	check(buffer->len + len <= buffer->size);
	memcpy(buffer->data + buffer->len, data, len);
	buffer->len += len;
}

static void buffer_init(struct buffer *buffer, size_t size)
{
	buffer->data = malloc(size > 0 ? size : 1);
	if (buffer->data == NULL)
		abort();
	buffer->len = 0;
	buffer->size = size;
}

/* A generator seeded from the input, so a crash reproduces from its file. */
static uint32_t fuzz_random(uint32_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 17;
	*seed ^= *seed << 5;
	return *seed;
}

/* Mostly tiny chunks (where split points bite), sometimes large ones. */
static size_t fuzz_chunk(uint32_t *seed, size_t left)
{
	uint32_t r = fuzz_random(seed);
	size_t n = (r & 3) == 0 ? 1 + (r >> 2) % 512 : 1 + (r >> 2) % 4;

	return n < left ? n : left;
}

static void fuzz_lines(const char *in, size_t len)
{
	const char *p = in, *end = in + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t line_len = (size_t)((nl != NULL ? nl : end) - p);
		struct pop3_reply reply;
		uint32_t number;
		uint64_t size;
		char uidl[POP3_UIDL_MAX + 1];

		if (line_len > 0 && p[line_len - 1] == '\r')
			line_len--;
		if (pop3_reply_parse(p, line_len, &reply) == 0) {
			check(reply.text >= p && reply.text + reply.text_len <= p + line_len);
			check(strlen(reply.code) < sizeof(reply.code));
		}
		if (pop3_parse_uidl_line(p, line_len, &number, uidl) == 0) {
			size_t uidl_len = strlen(uidl);

			check(number >= 1 && uidl_len >= 1 && uidl_len <= POP3_UIDL_MAX);
		}
		if (pop3_parse_list_line(p, line_len, &number, &size) == 0)
			check(number >= 1);
		if (pop3_is_terminator(p, line_len))
			check(line_len == 1 && p[0] == '.');
		p = nl != NULL ? nl + 1 : end;
	}
}

/* Decodes IN in chunks drawn from SEED (all at once if SEED is NULL). */
static size_t fuzz_decode(const char *in, size_t len, uint32_t *seed, struct buffer *out,
			  bool *done)
{
	struct pop3_dot_decoder decoder;
	size_t pos = 0;

	pop3_dot_decoder_init(&decoder);
	while (pos < len && !decoder.done) {
		size_t n = seed != NULL ? fuzz_chunk(seed, len - pos) : len - pos;
		size_t used = pop3_dot_decode(&decoder, in + pos, n, buffer_out, out);

		check(used == n || (decoder.done && used < n));
		pos += used;
	}
	*done = decoder.done;
	return pos;
}

static void fuzz_decoder(const char *in, size_t len, uint32_t seed)
{
	struct buffer whole, chunked;
	bool whole_done, chunked_done;
	size_t whole_used, chunked_used;

	buffer_init(&whole, len);
	buffer_init(&chunked, len);
	whole_used = fuzz_decode(in, len, NULL, &whole, &whole_done);
	chunked_used = fuzz_decode(in, len, &seed, &chunked, &chunked_done);
	check(whole_used == chunked_used && whole_done == chunked_done);
	check(whole.len == chunked.len && memcmp(whole.data, chunked.data, whole.len) == 0);
	check(whole.len <= whole_used);
	free(whole.data);
	free(chunked.data);
}

/* Encodes IN in chunks drawn from SEED, then decodes the result in chunks. */
static void fuzz_round_trip(const char *in, size_t len, uint32_t seed, bool limit, uint32_t lines)
{
	struct pop3_dot_encoder encoder;
	struct buffer encoded, decoded;
	size_t pos = 0, used;
	bool done;

	/* At worst every byte is an LF followed by a dot, plus CRLF and ".\r\n". */
	buffer_init(&encoded, 2 * len + 5);
	pop3_dot_encoder_init(&encoder, limit, lines);
	while (pos < len) {
		size_t n = fuzz_chunk(&seed, len - pos);

		pop3_dot_encode(&encoder, in + pos, n, buffer_out, &encoded);
		pos += n;
	}
	pop3_dot_encoder_finish(&encoder, buffer_out, &encoded);

	buffer_init(&decoded, encoded.len);
	used = fuzz_decode(encoded.data, encoded.len, &seed, &decoded, &done);
	/* The terminator is found, exactly at the end of what was encoded. */
	check(done && used == encoded.len);
	if (limit && encoder.stopped) {
		/* TOP: a prefix of the message that ends with a line. */
		check(decoded.len <= len && memcmp(decoded.data, in, decoded.len) == 0);
		check(decoded.len > 0 && decoded.data[decoded.len - 1] == '\n');
	} else if (len == 0 || in[len - 1] == '\n') {
		check(decoded.len == len && memcmp(decoded.data, in, len) == 0);
	} else {
		/* An unended last line was given its end: LF after a CR, else CRLF. */
		size_t extra = in[len - 1] == '\r' ? 1 : 2;

		check(decoded.len == len + extra && memcmp(decoded.data, in, len) == 0);
		check(decoded.data[decoded.len - 1] == '\n');
		check(extra == 1 || decoded.data[decoded.len - 2] == '\r');
	}
	free(encoded.data);
	free(decoded.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past LEN. */
	char *in = malloc(size > 0 ? size : 1);
	uint32_t seed = 2166136261u;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	if (seed == 0)
		seed = 1;

	fuzz_lines(in, size);
	fuzz_decoder(in, size, seed);
	fuzz_round_trip(in, size, seed, false, 0);
	fuzz_round_trip(in, size, seed, true, seed % 4);
	free(in);
	return 0;
}
