/*
 * fuzz_provider.c — libFuzzer target for a whole provider conversation as a
 * fetch reads it: greeting, CAPA, UIDL and LIST listings, and multi-line RETR
 * bodies, driven through the same pure parts pop3/client.c and pop3/ingest.c
 * use (pop3/parse.c for status lines and dot-stuffing, pop3/listing.c for
 * the listing and the delete rule, store/spool.c for CRLF line ends).
 *
 * The input's first bytes choose the chunking seed, [fetch] max_listed and
 * which UIDLs an earlier fetch had stored (with which sizes); the rest is
 * what the provider sends. Properties checked with abort():
 *   - a body decodes to the same bytes whatever the chunk split points:
 *     one chunk, one byte at a time, pseudo-random chunks, and (for short
 *     bodies) two chunks split at every byte;
 *   - that body equals an independent reference (un-stuffed lines, each line
 *     end made CRLF) and holds no line end but CRLF;
 *   - the listing keeps at most max_listed entries and counts the rest; a
 *     LIST number finds exactly the entry with that number;
 *   - no entry is deleted that was not stored: only one listed once, with a
 *     UIDL stored before under the same LIST size, or whose body is stored
 *     under its UIDL;
 *   - malformed input ends the conversation, never a crash.
 *
 * Must never: touch the file system or keep state between runs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/listing.h"
#include "pop3/parse.h"
#include "store/spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LINE_MAX_LEN 8192 /* PROVIDER_LINE_MAX in pop3/client.c */
#define SPLIT_ALL_MAX 512 /* bodies this short are split at every byte */
#define STORED_MAX 64	  /* messages the simulated store holds */

struct buffer {
	char *data;
	size_t len;
	size_t size;
};

/* What the simulated store holds: UIDL, LIST size then, and body. */
struct stored {
	char uidl[POP3_UIDL_MAX + 1];
	uint64_t listed_size;
	struct buffer body;
};

struct conversation {
	const char *in;
	size_t len;
	size_t pos;
	uint32_t seed;
	struct stored stored[STORED_MAX];
	size_t stored_count;
};

static void check(bool condition)
{
	if (!condition)
		abort();
}

static void buffer_init(struct buffer *buffer, size_t size)
{
	buffer->data = malloc(size > 0 ? size : 1);
	check(buffer->data != NULL);
	buffer->len = 0;
	buffer->size = size;
}

static void buffer_add(struct buffer *buffer, const char *data, size_t len)
{
	check(buffer->len + len <= buffer->size);
	memcpy(buffer->data + buffer->len, data, len);
	buffer->len += len;
}

static bool buffer_equal(const struct buffer *a, const struct buffer *b)
{
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static uint32_t fuzz_random(uint32_t *seed)
{
	*seed ^= *seed << 13;
	*seed ^= *seed >> 17;
	*seed ^= *seed << 5;
	return *seed;
}

/* The next line (LF or CRLF ended, without it), as client.c reads status and
 * listing lines. False at the end of input or on an over-long line. */
static bool next_line(struct conversation *c, const char **line, size_t *len)
{
	const char *start = c->in + c->pos;
	size_t left = c->len - c->pos;
	const char *nl = memchr(start, '\n', left);

	if (nl == NULL)
		return false;
	*line = start;
	*len = (size_t)(nl - start);
	if (*len > 0 && start[*len - 1] == '\r')
		(*len)--;
	if (*len > LINE_MAX_LEN)
		return false;
	c->pos += (size_t)(nl - start) + 1;
	return true;
}

/* A status line that must be +OK. */
static bool expect_ok(struct conversation *c)
{
	struct pop3_reply reply;
	const char *line;
	size_t len;

	if (!next_line(c, &line, &len) || pop3_reply_parse(line, len, &reply) < 0)
		return false;
	check(reply.text >= line && reply.text + reply.text_len <= line + len);
	return reply.ok;
}

/* Lines of a multi-line reply up to its terminator, un-stuffed, each given
 * to EACH (which may refuse it). False if the reply does not end well. */
static bool read_listing(struct conversation *c, struct provider_listing *listing,
			 int (*each)(struct provider_listing *, const char *, size_t))
{
	const char *line;
	size_t len;

	while (next_line(c, &line, &len)) {
		if (len > 0 && line[0] == '.' && !pop3_is_terminator(line, len)) {
			line++;
			len--;
		}
		if (pop3_is_terminator(line, len))
			return true;
		if (each != NULL && each(listing, line, len) < 0)
			return false;
	}
	return false;
}

static int add_size(struct provider_listing *listing, const char *line, size_t len)
{
	uint32_t number;
	uint64_t size;

	listing_add_size(listing, line, len);
	if (pop3_parse_list_line(line, len, &number, &size) == 0) {
		struct provider_entry *found = listing_find(listing, number);
		bool any = false;
		for (size_t i = 0; i < listing->count; i++)
			any |= listing->entries[i].number == number;
		check(any == (found != NULL));
		check(found == NULL || (found->number == number && found->size == size));
	}
	return 0;
}

/* ---- bodies ---------------------------------------------------------- */

struct body_sink {
	struct spool_crlf crlf;
	struct buffer out;
	char *scratch;
};

static void body_out(void *ctx, const char *data, size_t len)
{
	struct body_sink *sink = ctx;
	size_t n = spool_crlf_normalise(&sink->crlf, data, len, sink->scratch);

	check(n <= 2 * len + 1);
	buffer_add(&sink->out, sink->scratch, n);
}

/*
 * Decodes the body at IN[0..LEN) as ingest.c does, in chunks: CHUNK(i) gives
 * the size of the next one. Returns the bytes consumed (up to and with the
 * terminator), *DONE whether the terminator came; the body in OUT.
 */
static size_t decode_body(const char *in, size_t len, size_t (*chunk)(void *, size_t),
			  void *chunk_ctx, struct buffer *out, bool *done)
{
	struct pop3_dot_decoder decoder;
	struct body_sink sink = {.crlf = {0}};
	size_t pos = 0;

	buffer_init(&sink.out, 2 * len + 2);
	sink.scratch = malloc(2 * len + 2);
	check(sink.scratch != NULL);
	pop3_dot_decoder_init(&decoder);
	while (pos < len && !decoder.done) {
		size_t n = chunk(chunk_ctx, len - pos);
		size_t used = pop3_dot_decode(&decoder, in + pos, n, body_out, &sink);
		check(used == n || (decoder.done && used < n));
		pos += used;
	}
	char tail[1];
	buffer_add(&sink.out, tail, spool_crlf_finish(&sink.crlf, tail));
	free(sink.scratch);
	*done = decoder.done;
	*out = sink.out;
	return pos;
}

static size_t chunk_whole(void *ctx, size_t left)
{
	(void)ctx;
	return left;
}

static size_t chunk_byte(void *ctx, size_t left)
{
	(void)ctx;
	(void)left;
	return 1;
}

static size_t chunk_random(void *ctx, size_t left)
{
	uint32_t r = fuzz_random(ctx);
	size_t n = (r & 3) == 0 ? 1 + (r >> 2) % 512 : 1 + (r >> 2) % 4;

	return n < left ? n : left;
}

/* Two chunks: the first ends at *ctx bytes (then the rest). */
static size_t chunk_split(void *ctx, size_t left)
{
	size_t *first = ctx;
	size_t n = *first > 0 && *first < left ? *first : left;

	*first = 0;
	return n;
}

/* The body's bytes by the book: lines un-stuffed up to the "." line, every
 * line end (CRLF, LF, or CR alone) written as CRLF. */
static void reference_body(const char *in, size_t len, struct buffer *out, bool *done)
{
	struct buffer raw;
	size_t pos = 0;

	buffer_init(&raw, len);
	buffer_init(out, 2 * len + 2);
	*done = false;
	while (pos < len) {
		const char *nl = memchr(in + pos, '\n', len - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - (in + pos)) + 1 : len - pos;
		const char *line = in + pos;
		if (line_len > 0 && line[0] == '.') {
			if ((line_len == 2 && line[1] == '\n') ||
			    (line_len == 3 && line[1] == '\r' && line[2] == '\n')) {
				*done = true;
				break;
			}
			line++;
			line_len--;
			pos++;
		}
		buffer_add(&raw, line, line_len);
		pos += line_len;
	}
	for (size_t i = 0; i < raw.len; i++) {
		if (raw.data[i] == '\r') {
			buffer_add(out, "\r\n", 2);
			if (i + 1 < raw.len && raw.data[i + 1] == '\n')
				i++;
		} else if (raw.data[i] == '\n') {
			buffer_add(out, "\r\n", 2);
		} else {
			buffer_add(out, &raw.data[i], 1);
		}
	}
	free(raw.data);
}

static void check_crlf_only(const struct buffer *body)
{
	for (size_t i = 0; i < body->len; i++) {
		if (body->data[i] == '\r')
			check(i + 1 < body->len && body->data[i + 1] == '\n');
		if (body->data[i] == '\n')
			check(i > 0 && body->data[i - 1] == '\r');
	}
}

/*
 * Reads one RETR body from the conversation; the same bytes whatever the
 * chunking. False if it does not end (the conversation is over then).
 */
static bool read_body(struct conversation *c, struct buffer *body)
{
	const char *in = c->in + c->pos;
	size_t len = c->len - c->pos;
	struct buffer other, reference;
	bool done, other_done, reference_done;
	size_t used, other_used;

	used = decode_body(in, len, chunk_whole, NULL, body, &done);
	reference_body(in, len, &reference, &reference_done);
	check(done == reference_done);
	if (done) {
		check(buffer_equal(body, &reference));
		check_crlf_only(body);
	}
	free(reference.data);

	other_used = decode_body(in, len, chunk_byte, NULL, &other, &other_done);
	check(other_used == used && other_done == done && buffer_equal(&other, body));
	free(other.data);
	other_used = decode_body(in, len, chunk_random, &c->seed, &other, &other_done);
	check(other_used == used && other_done == done && buffer_equal(&other, body));
	free(other.data);
	if (used <= SPLIT_ALL_MAX) {
		for (size_t split = 1; split < used; split++) {
			size_t first = split;
			other_used = decode_body(in, len, chunk_split, &first, &other, &other_done);
			check(other_used == used && other_done == done &&
			      buffer_equal(&other, body));
			free(other.data);
		}
	}
	if (!done) {
		free(body->data);
		return false;
	}
	c->pos += used;
	return true;
}

/* ---- the fetch ------------------------------------------------------- */

static struct stored *stored_find(struct conversation *c, const char *uidl,
				  const struct buffer *body)
{
	for (size_t i = 0; i < c->stored_count; i++) {
		struct stored *s = &c->stored[i];
		if (strcmp(s->uidl, uidl) == 0 && (body == NULL || buffer_equal(&s->body, body)))
			return s;
	}
	return NULL;
}

/* What an earlier fetch stored: a UIDL and LIST size per line of SETUP
 * ("UIDL SIZE"); their bodies are empty. */
static void store_setup(struct conversation *c, const char *setup, size_t len)
{
	size_t pos = 0;

	while (pos < len && c->stored_count < STORED_MAX) {
		const char *nl = memchr(setup + pos, '\n', len - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - (setup + pos)) : len - pos;
		uint32_t size;
		struct stored *s = &c->stored[c->stored_count];
		/* "N UIDL" reads as a listing line: N is the LIST size here. */
		if (pop3_parse_uidl_line(setup + pos, line_len, &size, s->uidl) == 0) {
			s->listed_size = size;
			buffer_init(&s->body, 0);
			c->stored_count++;
		}
		pos += line_len + 1;
	}
}

/* Works through the listing as client.c does, checking every DELE. */
static void fetch_entries(struct conversation *c, struct provider_listing *listing)
{
	for (size_t i = 0; i < listing->count; i++) {
		struct provider_entry *entry = &listing->entries[i];
		struct stored *before = stored_find(c, entry->uidl, NULL);
		enum listing_action action = listing_entry_action(
		    entry, before != NULL, before != NULL ? before->listed_size : 0);
		struct buffer body;

		if (action == LISTING_DELETE_ONLY) {
			/* The DELE without RETR: only for proof by UIDL and size. */
			check(before != NULL && !entry->duplicate && entry->size > 0 &&
			      entry->size == before->listed_size);
			entry->deleted = true;
			continue;
		}
		check(action == LISTING_RETRIEVE_COMPARE || (before == NULL && !entry->duplicate));
		if (!expect_ok(c))
			return; /* -ERR or garbage: the message stays at the provider */
		if (!read_body(c, &body))
			return;
		if (stored_find(c, entry->uidl, &body) != NULL) {
			check(action == LISTING_RETRIEVE_COMPARE); /* a copy: DELE only */
			free(body.data);
		} else if (c->stored_count < STORED_MAX) {
			struct stored *s = &c->stored[c->stored_count++];
			memcpy(s->uidl, entry->uidl, sizeof(s->uidl));
			s->listed_size = entry->size;
			s->body = body;
		} else {
			free(body.data);
			return;
		}
		check(stored_find(c, entry->uidl, NULL) != NULL);
		entry->deleted = true;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conversation c = {0};
	struct provider_listing listing;
	size_t setup_len, uidl_lines = 0;

	if (size < 4)
		return 0;
	c.seed = (uint32_t)data[0] | (uint32_t)data[1] << 8 | 1;
	size_t max_listed = 1 + data[2] % 32;
	setup_len = data[3];
	data += 4;
	size -= 4;
	if (setup_len > size)
		setup_len = size;
	store_setup(&c, (const char *)data, setup_len);
	c.in = (const char *)data + setup_len;
	c.len = size - setup_len;

	listing_init(&listing, max_listed);
	/* Greeting, CAPA, UIDL, LIST: any failure ends the conversation. */
	if (!expect_ok(&c) || !expect_ok(&c) || !read_listing(&c, &listing, NULL) || !expect_ok(&c))
		goto done;
	size_t before = c.pos;
	if (!read_listing(&c, &listing, listing_add_uidl))
		goto done;
	/* Count the UIDL lines the listing took or left for later. */
	for (size_t p = before; p < c.pos;) {
		const char *nl = memchr(c.in + p, '\n', c.pos - p);
		size_t line_len = (size_t)(nl - (c.in + p));
		const char *line = c.in + p;
		if (line_len > 0 && line[line_len - 1] == '\r')
			line_len--;
		if (line_len > 0 && line[0] == '.' && !pop3_is_terminator(line, line_len)) {
			line++;
			line_len--;
		}
		uint32_t number;
		char uidl[POP3_UIDL_MAX + 1];
		if (!pop3_is_terminator(line, line_len) &&
		    pop3_parse_uidl_line(line, line_len, &number, uidl) == 0)
			uidl_lines++;
		p = (size_t)(nl - c.in) + 1;
	}
	check(listing.count <= max_listed && listing.count + listing.unlisted == uidl_lines);
	listing_close(&listing);
	for (size_t i = 0; i < listing.count; i++) {
		bool twice = false;
		for (size_t j = 0; j < listing.count; j++)
			twice |=
			    j != i && strcmp(listing.entries[i].uidl, listing.entries[j].uidl) == 0;
		check(twice == listing.entries[i].duplicate);
	}
	if (!expect_ok(&c) || !read_listing(&c, &listing, add_size))
		goto done;
	fetch_entries(&c, &listing);
done:
	listing_free(&listing);
	for (size_t i = 0; i < c.stored_count; i++)
		free(c.stored[i].body.data);
	return 0;
}
