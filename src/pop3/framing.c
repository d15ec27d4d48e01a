/*
 * framing.c — the client session's line framer and input wiping (see
 * framing.h). Owns no sockets and no session state: server.c feeds it the
 * bytes a client sent and acts on the lines it hands back, which is what
 * lets tests/fuzz/fuzz_session.c drive it with any split of the input.
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
#include "pop3/framing.h"

/* How many evbuffer chunks one feed step looks at. */
#define FRAMING_PEEK_CHUNKS 8

void pop3_framer_init(struct pop3_framer *framer, size_t max_line)
{
	memset(framer, 0, sizeof(*framer));
	framer->max_line = max_line < 2 ? 2 : max_line;
	framer->line = xcalloc(framer->max_line, 1);
}

void pop3_framer_reset(struct pop3_framer *framer)
{
	/* The line and its NUL; nothing past them was ever written. */
	if (framer->line != NULL)
		sodium_memzero(framer->line,
			       framer->len < framer->max_line ? framer->len + 1 : framer->max_line);
	framer->len = 0;
	framer->discarding = false;
	framer->complete = false;
}

void pop3_framer_free(struct pop3_framer *framer)
{
	pop3_framer_reset(framer);
	free(framer->line);
	framer->line = NULL;
}

size_t pop3_framer_feed(struct pop3_framer *framer, const char *in, size_t len,
			enum pop3_frame *frame)
{
	/* Content bytes a line may have: MAX_LINE less its LF. */
	const size_t room = framer->max_line - 1;
	const char *nl = memchr(in, '\n', len);
	size_t seg = nl != NULL ? (size_t)(nl - in) : len;
	size_t used = nl != NULL ? seg + 1 : len;

	if (framer->complete)
		pop3_framer_reset(framer);
	*frame = POP3_FRAME_NONE;
	if (!framer->discarding && seg > room - framer->len) {
		/* Over the limit: what is buffered goes, the rest is skipped. */
		sodium_memzero(framer->line, framer->len);
		framer->len = 0;
		framer->discarding = true;
	}
	if (framer->discarding) {
		if (nl != NULL) {
			framer->discarding = false;
			*frame = POP3_FRAME_TOO_LONG;
		}
		return used;
	}
	memcpy(framer->line + framer->len, in, seg);
	framer->len += seg;
	if (nl == NULL)
		return used;
	if (framer->len > 0 && framer->line[framer->len - 1] == '\r')
		framer->len--;
	framer->line[framer->len] = '\0';
	framer->complete = true;
	*frame = POP3_FRAME_LINE;
	return used;
}

enum pop3_frame pop3_framer_feed_evbuffer(struct pop3_framer *framer, struct evbuffer *in)
{
	enum pop3_frame frame = POP3_FRAME_NONE;

	while (frame == POP3_FRAME_NONE && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec chunks[FRAMING_PEEK_CHUNKS];
		int n = evbuffer_peek(in, -1, NULL, chunks, FRAMING_PEEK_CHUNKS);
		size_t used = 0;

		if (n > FRAMING_PEEK_CHUNKS)
			n = FRAMING_PEEK_CHUNKS;
		for (int i = 0; i < n && frame == POP3_FRAME_NONE; i++) {
			size_t took = pop3_framer_feed(framer, chunks[i].iov_base,
						       chunks[i].iov_len, &frame);
			sodium_memzero(chunks[i].iov_base, took);
			used += took;
		}
		if (used == 0)
			break; /* only empty chunks: nothing to take */
		evbuffer_drain(in, used);
	}
	return frame;
}

void pop3_evbuffer_wipe(struct evbuffer *buf)
{
	while (evbuffer_get_length(buf) > 0) {
		struct evbuffer_iovec chunks[FRAMING_PEEK_CHUNKS];
		int n = evbuffer_peek(buf, -1, NULL, chunks, FRAMING_PEEK_CHUNKS);
		size_t seen = 0;

		if (n > FRAMING_PEEK_CHUNKS)
			n = FRAMING_PEEK_CHUNKS;
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
