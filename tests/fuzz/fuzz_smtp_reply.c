/*
 * fuzz_smtp_reply.c — libFuzzer target for what an SMTP server sends the
 * outbound client: the incremental reply parser (smtp/reply.c).
 *
 * The input is fed three ways: whole, in pseudo-random chunks drawn from a
 * seed made of the input (mostly 1 to 4 bytes, where split points bite),
 * and split in two at a point the input chooses. Checked with abort(): each
 * way gives the same replies (code, enhanced code, text, line count) and
 * then the same error or none; every reply keeps reply.h's promises
 * (a code 200..559, no CR, LF-free lines within the limits, a NUL-ended
 * text of at most SMTP_REPLY_TEXT_MAX bytes); smtp_reply_format fits any
 * buffer.
 *
 * Must never: touch the file system or keep state between runs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What one way of feeding gave: the replies in order, then the error. */
struct outcome {
	struct smtp_reply *replies;
	size_t count;
	size_t capacity;
	const char *error;
};

static void check(bool condition)
{
	if (!condition)
		abort();
}

static uint32_t fuzz_random(uint32_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 17;
	*seed ^= *seed << 5;
	return *seed;
}

static size_t fuzz_chunk(uint32_t *seed, size_t left)
{
	uint32_t r = fuzz_random(seed);
	size_t n = (r & 3) == 0 ? 1 + (r >> 2) % 512 : 1 + (r >> 2) % 4;

	return n < left ? n : left;
}

/* The promises of reply.h for one reply. */
static void check_reply(const struct smtp_reply *reply)
{
	size_t len = strlen(reply->text), line = 0;
	char formatted[40];

	check(reply->code >= 200 && reply->code <= 559);
	check(reply->line_count >= 1 && reply->line_count <= SMTP_REPLY_LINES_MAX);
	check(len <= SMTP_REPLY_TEXT_MAX);
	check(strlen(reply->enhanced) < sizeof(reply->enhanced));
	check(reply->enhanced[0] == '\0' || reply->enhanced[0] == '0' + reply->code / 100);
	check(memchr(reply->text, '\r', len) == NULL);
	for (size_t i = 0; i <= len; i++) {
		if (i == len || reply->text[i] == '\n') {
			check(line <= SMTP_REPLY_LINE_MAX);
			line = 0;
		} else {
			line++;
		}
	}
	/* Formatting fits every buffer size. */
	for (size_t outlen = 1; outlen <= sizeof(formatted); outlen += 13) {
		smtp_reply_format(reply, formatted, outlen);
		check(strlen(formatted) < outlen);
	}
}

static void outcome_add(struct outcome *outcome, struct smtp_reply *reply)
{
	if (outcome->count == outcome->capacity) {
		outcome->capacity = outcome->capacity ? outcome->capacity * 2 : 8;
		outcome->replies =
		    realloc(outcome->replies, outcome->capacity * sizeof(*outcome->replies));
		check(outcome->replies != NULL);
	}
	outcome->replies[outcome->count++] = *reply;
}

/* Feeds IN: whole (SEED NULL, SPLIT 0), in chunks from SEED, or in two
 * pieces at SPLIT. */
static void fuzz_feed(const char *in, size_t len, uint32_t *seed, size_t split,
		      struct outcome *outcome)
{
	struct smtp_reply_parser parser;
	size_t pos = 0;

	memset(outcome, 0, sizeof(*outcome));
	smtp_reply_parser_init(&parser);
	while (pos < len) {
		size_t n = len - pos;
		if (seed != NULL)
			n = fuzz_chunk(seed, len - pos);
		else if (split > 0 && pos < split)
			n = split - pos;
		size_t end = pos + n;
		while (pos < end) {
			struct smtp_reply reply = {0};
			size_t used = 0;
			int r = smtp_reply_parser_feed(&parser, in + pos, end - pos, &used, &reply);

			check(used <= end - pos);
			if (r < 0) {
				check(used == 0 && parser.error != NULL);
				outcome->error = parser.error;
				smtp_reply_parser_clear(&parser);
				return;
			}
			check(r == 1 || used == end - pos);
			pos += used;
			if (r == 1) {
				check(used > 0);
				check_reply(&reply);
				outcome_add(outcome, &reply);
			}
		}
	}
	smtp_reply_parser_clear(&parser);
}

/* The same replies, then the same error (or none): an error comes after
 * the replies before it were handed out, whatever the split. */
static void outcome_compare(const struct outcome *a, const struct outcome *b)
{
	check(a->count == b->count);
	for (size_t i = 0; i < a->count; i++) {
		check(a->replies[i].code == b->replies[i].code);
		check(strcmp(a->replies[i].enhanced, b->replies[i].enhanced) == 0);
		check(strcmp(a->replies[i].text, b->replies[i].text) == 0);
		check(a->replies[i].line_count == b->replies[i].line_count);
	}
	check((a->error == NULL) == (b->error == NULL));
	if (a->error != NULL)
		check(strcmp(a->error, b->error) == 0);
}

static void outcome_free(struct outcome *outcome)
{
	for (size_t i = 0; i < outcome->count; i++)
		smtp_reply_clear(&outcome->replies[i]);
	free(outcome->replies);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past LEN. */
	char *in = malloc(size > 0 ? size : 1);
	uint32_t seed = 2166136261u;
	struct outcome whole, chunked, halves;

	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	for (size_t i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 16777619u;
	if (seed == 0)
		seed = 1;

	fuzz_feed(in, size, NULL, 0, &whole);
	fuzz_feed(in, size, &seed, 0, &chunked);
	fuzz_feed(in, size, NULL, size > 0 ? seed % size : 0, &halves);
	outcome_compare(&whole, &chunked);
	outcome_compare(&whole, &halves);
	outcome_free(&whole);
	outcome_free(&chunked);
	outcome_free(&halves);
	free(in);
	return 0;
}
