/*
 * chunk.c — BDAT's body into DATA's spool body (see chunk.h): line ends
 * made CR LF across chunk boundaries, the lines watched for DATA's limits.
 *
 * SECURITY: the octets are a client's; they are copied, never interpreted
 * beyond the line ends and the first bytes of header lines. A body over a
 * limit is not stored past it, and the normalised bytes are handled in
 * slices, so a chunk of any size needs a buffer of fixed size.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "smtp/chunk.h"
#include "smtp/data.h"

/* Input normalised at a time by smtp_chunk_store. */
#define CHUNK_SLICE (16 * 1024)

void smtp_chunk_init(struct smtp_chunk *chunk)
{
	memset(chunk, 0, sizeof(*chunk));
}

/* A line ended (its CR LF was passed on). */
static void chunk_line_end(struct smtp_chunk *chunk)
{
	if (chunk->line_len + 2 > chunk->longest_line)
		chunk->longest_line = chunk->line_len + 2;
	if (!chunk->past_header) {
		if (chunk->line_len == 0)
			chunk->past_header = true;
		else if (chunk->line_len >= SMTP_CHUNK_HEAD &&
			 strncasecmp(chunk->head, "Received:", SMTP_CHUNK_HEAD) == 0)
			chunk->received_count++;
	}
	chunk->line_len = 0;
}

/* Watches normalised bytes go by: in them every CR is followed by its LF
 * (now or in the next bytes), so a LF ends a line and a CR is skipped. */
static void chunk_watch(struct smtp_chunk *chunk, const char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = out[i];

		if (c == '\r')
			continue;
		if (c == '\n') {
			chunk_line_end(chunk);
			continue;
		}
		if (chunk->line_len < SMTP_CHUNK_HEAD)
			chunk->head[chunk->line_len] = c;
		chunk->line_len++;
	}
}

size_t smtp_chunk_normalise(struct smtp_chunk *chunk, const char *in, size_t len, char *out)
{
	size_t used = spool_crlf_normalise(&chunk->crlf, in, len, out);

	chunk_watch(chunk, out, used);
	return used;
}

size_t smtp_chunk_finish(struct smtp_chunk *chunk, char *out)
{
	size_t used = spool_crlf_finish(&chunk->crlf, out);

	if (used == 0 && chunk->line_len > 0) {
		out[0] = '\r';
		out[1] = '\n';
		used = 2;
	}
	chunk_watch(chunk, out, used);
	return used;
}

/* Appends the LEN normalised bytes in the buffer to DATA's body, unless a
 * limit was passed: then the body is marked as DATA's would be. */
static void chunk_put(struct smtp_chunk *chunk, struct smtp_data *data, size_t len, size_t max_line)
{
	if (data->body == NULL)
		return; /* no spool file could be made: refused at the end (451) */
	data->received_count = chunk->received_count;
	if (chunk->longest_line > max_line || chunk->line_len + 2 > max_line) {
		data->line_too_long = true;
		return;
	}
	if (data->size + len > data->limit) {
		/* The rest is read and dropped; the file is removed at the end. */
		data->too_big = true;
		return;
	}
	spool_writer_write(data->body, chunk->buffer, len);
	data->size += len;
}

/* The buffer, made once per body. */
static void chunk_buffer(struct smtp_chunk *chunk)
{
	if (chunk->buffer == NULL) {
		chunk->buffer_size = SMTP_CHUNK_OUT_SIZE(CHUNK_SLICE);
		chunk->buffer = xmalloc(chunk->buffer_size);
	}
}

void smtp_chunk_expect(struct smtp_data *data, uint64_t size)
{
	/* DATA's size never passes its limit: no overflow here. Without a
	 * body (no spool file) the end says 451, not 552. */
	if (data->body != NULL && size > data->limit - data->size)
		data->too_big = true;
}

void smtp_chunk_store(struct smtp_chunk *chunk, struct smtp_data *data, const char *in, size_t len,
		      size_t max_line)
{
	chunk_buffer(chunk);
	while (len > 0 && !data->too_big && !data->line_too_long) {
		size_t slice = len < CHUNK_SLICE ? len : CHUNK_SLICE;
		size_t out = smtp_chunk_normalise(chunk, in, slice, chunk->buffer);

		chunk_put(chunk, data, out, max_line);
		in += slice;
		len -= slice;
	}
}

void smtp_chunk_end(struct smtp_chunk *chunk, struct smtp_data *data, size_t max_line)
{
	if (data->too_big || data->line_too_long)
		return;
	chunk_buffer(chunk);
	chunk_put(chunk, data, smtp_chunk_finish(chunk, chunk->buffer), max_line);
}

void smtp_chunk_clear(struct smtp_chunk *chunk)
{
	free(chunk->buffer);
	smtp_chunk_init(chunk);
}
