/*
 * fuzz_session.c — libFuzzer target for the client session's framing: what a
 * mail client sends, cut into lines by core/line.c (as core/session.c does,
 * through an evbuffer, with the SASL continuation of AUTH PLAIN and the stop
 * at STLS), and what popgate streams back for RETR and TOP through the
 * dot-stuffing encoder of pop3/parse.c.
 *
 * Input: byte 0 sets the line limit, byte 1 TOP's line count, bytes 2-5 seed
 * the split points; the rest is both the client's byte stream and a message
 * body. Besides the sanitizers it checks, and aborts on a broken promise:
 *   - the framer hands on no line over the limit, with no LF in it, and the
 *     same lines (and over-long-line errors) whatever the split, as a plain
 *     reference splitter on LF does, also with its buffer released between
 *     pieces as core/session.c does between reads;
 *   - every byte the framer took from the evbuffer is zero afterwards, and so
 *     is the framer's buffer after a reset (passwords do not linger);
 *   - the encoder's output is the same however the body is split, has CR LF
 *     line ends and one terminator, a doubled dot on each line that began
 *     with one, decodes back to the body, and TOP n gives the header and at
 *     most n body lines, exactly as a reference cut of the body does.
 *
 * Must never: touch the file system or the network; leak per run.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/line.h"
#include "pop3/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

/* ---- growing byte buffers ------------------------------------------------ */

struct bytes {
	char *data;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + len)
			cap *= 2;
		b->data = realloc(b->data, cap);
		check(b->data != NULL);
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

static void bytes_out(void *ctx, const char *data, size_t len)
{
	check(len > 0);
	bytes_add(ctx, data, len);
}

static bool bytes_equal(const struct bytes *a, const struct bytes *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* ---- split points --------------------------------------------------------- */

static uint32_t rng_next(uint32_t *state)
{
	uint32_t x = *state ? *state : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*state = x;
	return x;
}

/* A piece length for the next split: mostly small, sometimes large. */
static size_t rng_piece(uint32_t *state, size_t left)
{
	uint32_t r = rng_next(state);
	size_t piece = (r & 3) == 0 ? (r >> 8) % 512 + 1 : (r >> 8) % 8 + 1;
	return piece < left ? piece : left;
}

/* ---- the client side: framing and a session's view of the lines ---------- */

/*
 * What the session makes of each frame, as a transcript: "T" for an
 * over-long line, "S" + result for a SASL response, "L" + length + bytes for
 * a command line; STLS ends the transcript (what follows came in the clear
 * and is dropped).
 */
struct session_model {
	size_t max_line;
	bool awaiting_sasl;
	bool stopped; /* STLS seen */
	struct bytes transcript;
};

static void model_frame(struct session_model *m, enum line_frame frame, const char *line,
			size_t len)
{
	struct pop3_command cmd;
	const char *error;

	if (frame == LINE_FRAME_NONE || m->stopped)
		return;
	if (frame == LINE_FRAME_TOO_LONG) {
		bytes_add(&m->transcript, "T", 1);
		return;
	}
	check(len + 1 <= m->max_line);
	check(line[len] == '\0');
	check(memchr(line, '\n', len) == NULL);
	if (m->awaiting_sasl) {
		char name[256], password[256];
		char ok;
		m->awaiting_sasl = false;
		ok = pop3_auth_plain_decode(line, len, name, sizeof(name), password,
					    sizeof(password)) == 0;
		if (ok)
			check(name[0] != '\0' && password[0] != '\0' &&
			      strlen(name) < sizeof(name) && strlen(password) < sizeof(password));
		bytes_add(&m->transcript, "S", 1);
		bytes_add(&m->transcript, &ok, 1);
		return;
	}
	bytes_add(&m->transcript, "L", 1);
	bytes_add(&m->transcript, &len, sizeof(len));
	bytes_add(&m->transcript, line, len);
	if (pop3_command_parse(line, len, &cmd, &error) < 0)
		return;
	if (cmd.verb == POP3_VERB_AUTH && cmd.arg_count == 1)
		m->awaiting_sasl = true;
	if (cmd.verb == POP3_VERB_STLS)
		m->stopped = true;
}

/* The reference: lines are what lies between LFs; over MAX_LINE with the
 * LF is an error; a trailing piece without LF is no line yet. */
static void frame_reference(struct session_model *m, const char *in, size_t len)
{
	char *line = malloc(m->max_line);
	size_t start = 0;

	check(line != NULL);
	for (size_t i = 0; i < len && !m->stopped; i++) {
		if (in[i] != '\n')
			continue;
		size_t n = i - start;
		if (n + 1 > m->max_line) {
			model_frame(m, LINE_FRAME_TOO_LONG, NULL, 0);
		} else {
			memcpy(line, in + start, n);
			if (n > 0 && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			model_frame(m, LINE_FRAME_LINE, line, n);
		}
		start = i + 1;
	}
	free(line);
}

/* The framer fed everything at once. */
static void frame_one_shot(struct session_model *m, const char *in, size_t len)
{
	struct line_framer framer;
	size_t pos = 0;

	line_framer_init(&framer, m->max_line);
	while (pos < len && !m->stopped) {
		enum line_frame frame;
		size_t used = line_framer_feed(&framer, in + pos, len - pos, &frame);
		check(used > 0 && used <= len - pos);
		model_frame(m, frame, framer.line, framer.len);
		pos += used;
	}
	line_framer_free(&framer);
}

/*
 * The framer fed from an evbuffer that receives the input in pieces, by
 * reference to a writable copy, so the wiping of consumed bytes shows in
 * the copy itself.
 */
static void frame_split(struct session_model *m, const char *in, size_t len, uint32_t seed)
{
	struct line_framer framer;
	struct evbuffer *buf = evbuffer_new();
	char *copy = malloc(len > 0 ? len : 1);
	size_t added = 0;

	check(buf != NULL && copy != NULL);
	if (len > 0)
		memcpy(copy, in, len);
	line_framer_init(&framer, m->max_line);
	while (added < len && !m->stopped) {
		size_t piece = rng_piece(&seed, len - added);
		check(evbuffer_add_reference(buf, copy + added, piece, NULL, NULL) == 0);
		added += piece;
		enum line_frame frame;
		while (!m->stopped &&
		       (frame = line_framer_feed_evbuffer(&framer, buf)) != LINE_FRAME_NONE)
			model_frame(m, frame, framer.line, framer.len);
		if (!m->stopped)
			check(evbuffer_get_length(buf) == 0);
		/* As core/session does between reads: the buffer goes unless it
		 * holds a partial line, which must survive whole. */
		line_framer_release(&framer);
	}
	if (m->stopped) {
		/* As STLS does: drop what came after, wiped. */
		line_evbuffer_wipe(buf);
		line_framer_reset(&framer);
		for (size_t i = 0; framer.line != NULL && i < framer.max_line; i++)
			check(framer.line[i] == '\0');
	}
	/* Every byte the evbuffer held was taken by the framer or wiped. */
	for (size_t i = 0; i < added; i++)
		check(copy[i] == '\0');
	line_framer_reset(&framer);
	for (size_t i = 0; framer.line != NULL && i < framer.max_line; i++)
		check(framer.line[i] == '\0');
	line_framer_free(&framer);
	evbuffer_free(buf);
	free(copy);
}

static void fuzz_framing(const char *in, size_t len, size_t max_line, uint32_t seed)
{
	struct session_model reference = {.max_line = max_line};
	struct session_model one_shot = {.max_line = max_line};
	struct session_model split = {.max_line = max_line};

	frame_reference(&reference, in, len);
	frame_one_shot(&one_shot, in, len);
	frame_split(&split, in, len, seed);
	check(bytes_equal(&reference.transcript, &one_shot.transcript));
	check(bytes_equal(&reference.transcript, &split.transcript));
	free(reference.transcript.data);
	free(one_shot.transcript.data);
	free(split.transcript.data);
}

/* ---- the server side: RETR and TOP streaming ------------------------------ */

/* A stored body has CR LF line ends: a lone LF gets its CR, a lone CR goes. */
static void body_normalise(struct bytes *body, const char *in, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (in[i] == '\r')
			continue;
		if (in[i] == '\n')
			bytes_add(body, "\r", 1);
		bytes_add(body, in + i, 1);
	}
}

static void encode(struct bytes *out, const struct bytes *body, bool top, uint32_t lines,
		   uint32_t *seed)
{
	struct pop3_dot_encoder encoder;
	size_t pos = 0;

	pop3_dot_encoder_init(&encoder, top, lines);
	while (pos < body->len) {
		size_t piece = seed != NULL ? rng_piece(seed, body->len - pos) : body->len - pos;
		pop3_dot_encode(&encoder, body->data + pos, piece, bytes_out, out);
		pos += piece;
	}
	pop3_dot_encoder_finish(&encoder, bytes_out, out);
}

/* CR LF line ends, a doubled leading dot, one terminator at the end. */
static void check_encoded(const struct bytes *out)
{
	size_t start = 0;

	check(out->len >= 3 && memcmp(out->data + out->len - 3, ".\r\n", 3) == 0);
	for (size_t i = 0; i < out->len; i++) {
		if (out->data[i] == '\r')
			check(i + 1 < out->len && out->data[i + 1] == '\n');
		if (out->data[i] != '\n')
			continue;
		check(i > start && out->data[i - 1] == '\r');
		size_t line_len = i - 1 - start;
		bool last = i + 1 == out->len;
		if (last)
			check(line_len == 1 && out->data[start] == '.');
		else if (line_len > 0 && out->data[start] == '.')
			check(line_len >= 2 && out->data[start + 1] == '.');
		start = i + 1;
	}
}

static void decode(struct bytes *out, const struct bytes *encoded)
{
	struct pop3_dot_decoder decoder;

	pop3_dot_decoder_init(&decoder);
	size_t used = pop3_dot_decode(&decoder, encoded->data, encoded->len, bytes_out, out);
	check(decoder.done && used == encoded->len);
}

/* TOP's reference: the lines of FULL up to its first empty line, then at
 * most LINES more. FULL has CR LF line ends. */
static size_t top_reference_len(const struct bytes *full, uint32_t lines)
{
	size_t pos = 0;
	bool in_body = false;

	while (pos < full->len) {
		const char *nl = memchr(full->data + pos, '\n', full->len - pos);
		check(nl != NULL);
		size_t end = (size_t)(nl - full->data) + 1;
		if (in_body) {
			if (lines == 0)
				return pos;
			lines--;
		} else if (end - pos == 2) {
			in_body = true;
		}
		pos = end;
	}
	return full->len;
}

static void fuzz_streaming(const char *in, size_t len, uint32_t top_lines, uint32_t seed)
{
	struct bytes body = {0}, whole = {0}, split = {0}, decoded = {0};
	struct bytes top = {0}, top_split = {0}, top_decoded = {0};

	body_normalise(&body, in, len);
	encode(&whole, &body, false, 0, NULL);
	encode(&split, &body, false, 0, &seed);
	check(bytes_equal(&whole, &split));
	check_encoded(&whole);
	decode(&decoded, &whole);
	/* The body comes back, with a line end added to an unfinished last line. */
	if (body.len > 0 && body.data[body.len - 1] != '\n')
		bytes_add(&body, "\r\n", 2);
	check(bytes_equal(&decoded, &body));

	encode(&top, &body, true, top_lines, NULL);
	encode(&top_split, &body, true, top_lines, &seed);
	check(bytes_equal(&top, &top_split));
	check_encoded(&top);
	decode(&top_decoded, &top);
	check(top_decoded.len == top_reference_len(&body, top_lines));
	check(top_decoded.len == 0 || memcmp(top_decoded.data, body.data, top_decoded.len) == 0);

	free(body.data);
	free(whole.data);
	free(split.data);
	free(decoded.data);
	free(top.data);
	free(top_split.data);
	free(top_decoded.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 6)
		return 0;
	size_t max_line = 2 + data[0];
	uint32_t top_lines = data[1] % 16;
	uint32_t seed = (uint32_t)data[2] | (uint32_t)data[3] << 8 | (uint32_t)data[4] << 16 |
			(uint32_t)data[5] << 24;
	/* An exact-size heap copy, so ASan sees any read past the end. */
	size_t len = size - 6;
	char *in = malloc(len > 0 ? len : 1);

	if (in == NULL)
		return 0;
	if (len > 0)
		memcpy(in, data + 6, len);
	fuzz_framing(in, len, max_line, seed);
	fuzz_streaming(in, len, top_lines, seed);
	free(in);
	return 0;
}
