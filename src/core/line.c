/*
 * line.c — the bounded line reader of every line-protocol session (POP3
 * today, SMTP next) and input wiping (see line.h). Owns no sockets and no
 * session state: core/session.c feeds it the bytes a peer sent and hands the
 * lines on, which is what lets tests/fuzz/fuzz_session.c drive it with any
 * split of the input.
 *
 * SECURITY: the framer copies at most MAX_LINE bytes of a line; an over-long
 * line is dropped as it arrives, so a client cannot make it buffer more.
 * Consumed bytes are overwritten in place (the evbuffer's own memory, the
 * line buffer), since they may have been a password.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "core/util.h"
#include "core/line.h"

/* How many evbuffer chunks one feed step looks at. */
#define LINE_PEEK_CHUNKS 8

void line_framer_init(struct line_framer *framer, size_t max_line)
{
	memset(framer, 0, sizeof(*framer));
	framer->max_line = max_line < 2 ? 2 : max_line;
}

void line_framer_reset(struct line_framer *framer)
{
	/* The line and its NUL; nothing past them was ever written. */
	if (framer->line != NULL)
		sodium_memzero(framer->line,
			       framer->len < framer->max_line ? framer->len + 1 : framer->max_line);
	framer->len = 0;
	framer->discarding = false;
	framer->complete = false;
}

void line_framer_free(struct line_framer *framer)
{
	line_framer_reset(framer);
	free(framer->line);
	framer->line = NULL;
}

void line_framer_release(struct line_framer *framer)
{
	if (framer->line == NULL || (framer->len > 0 && !framer->complete))
		return;
	/* Only a finished line's bytes and its NUL were ever written here. */
	sodium_memzero(framer->line, framer->complete ? framer->len + 1 : 0);
	free(framer->line);
	framer->line = NULL;
	framer->len = 0;
	framer->complete = false;
}

size_t line_framer_feed(struct line_framer *framer, const char *in, size_t len,
			enum line_frame *frame)
{
	/* Content bytes a line may have: MAX_LINE less its LF. */
	const size_t room = framer->max_line - 1;
	const char *nl = memchr(in, '\n', len);
	size_t seg = nl != NULL ? (size_t)(nl - in) : len;
	size_t used = nl != NULL ? seg + 1 : len;

	if (framer->complete)
		line_framer_reset(framer);
	*frame = LINE_FRAME_NONE;
	if (!framer->discarding && seg > room - framer->len) {
		/* Over the limit: what is buffered goes, the rest is skipped. */
		if (framer->line != NULL)
			sodium_memzero(framer->line, framer->len);
		framer->len = 0;
		framer->discarding = true;
	}
	if (framer->discarding) {
		if (nl != NULL) {
			framer->discarding = false;
			*frame = LINE_FRAME_TOO_LONG;
		}
		return used;
	}
	if (framer->line == NULL) {
		if (seg == 0 && nl == NULL)
			return used; /* nothing to keep */
		/* Allocated on the first byte of a line, not at connect: an idle
		 * session holds none (line_framer_release). */
		framer->line = xcalloc(framer->max_line, 1);
	}
	memcpy(framer->line + framer->len, in, seg);
	framer->len += seg;
	if (nl == NULL)
		return used;
	if (framer->len > 0 && framer->line[framer->len - 1] == '\r')
		framer->len--;
	framer->line[framer->len] = '\0';
	framer->complete = true;
	*frame = LINE_FRAME_LINE;
	return used;
}

enum line_frame line_framer_feed_evbuffer(struct line_framer *framer, struct evbuffer *in)
{
	enum line_frame frame = LINE_FRAME_NONE;

	while (frame == LINE_FRAME_NONE && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec chunks[LINE_PEEK_CHUNKS];
		int n = evbuffer_peek(in, -1, NULL, chunks, LINE_PEEK_CHUNKS);
		size_t used = 0;

		if (n > LINE_PEEK_CHUNKS)
			n = LINE_PEEK_CHUNKS;
		for (int i = 0; i < n && frame == LINE_FRAME_NONE; i++) {
			size_t took =
			    line_framer_feed(framer, chunks[i].iov_base, chunks[i].iov_len, &frame);
			sodium_memzero(chunks[i].iov_base, took);
			used += took;
		}
		if (used == 0)
			break; /* only empty chunks: nothing to take */
		evbuffer_drain(in, used);
	}
	return frame;
}

void line_evbuffer_wipe(struct evbuffer *buf)
{
	while (evbuffer_get_length(buf) > 0) {
		struct evbuffer_iovec chunks[LINE_PEEK_CHUNKS];
		int n = evbuffer_peek(buf, -1, NULL, chunks, LINE_PEEK_CHUNKS);
		size_t seen = 0;

		if (n > LINE_PEEK_CHUNKS)
			n = LINE_PEEK_CHUNKS;
		for (int i = 0; i < n; i++) {
			sodium_memzero(chunks[i].iov_base, chunks[i].iov_len);
			seen += chunks[i].iov_len;
		}
		if (seen == 0) {
			evbuffer_drain(buf, evbuffer_get_length(buf));
			break;
		}
		evbuffer_drain(buf, seen);
	}
}
