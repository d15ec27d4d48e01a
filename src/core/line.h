/*
 * line.h — a line-protocol session's input framing, apart from the session
 * and the event loop: a bounded line framer that hands on whole command
 * lines and discards over-long ones, and wiping input that may have held a
 * password before it is given back to the allocator.
 *
 * SECURITY: the input is untrusted client bytes. No line longer than the
 * limit is ever handed on, whatever the split of the input; every byte the
 * framer consumed is overwritten before it is dropped (POP3's USER, PASS,
 * AUTH lines and SASL responses carry credentials).
 */
#ifndef POPGATE_CORE_LINE_H
#define POPGATE_CORE_LINE_H

#include <stdbool.h>
#include <stddef.h>

struct evbuffer;

/* A line framer. MAX_LINE counts a line's bytes with its CR LF, as RFC 2449's
 * 255-octet limit does. */
struct line_framer {
	char *line;	 /* MAX_LINE bytes: the line being assembled, then NUL-ended;
			    NULL until a line's first byte and after line_framer_release */
	size_t max_line; /* at least 2 */
	size_t len;	 /* bytes of the current line in LINE (no LF) */
	bool discarding; /* the current line passed MAX_LINE: skip to its LF */
	bool complete;	 /* LINE holds a finished line; the next feed starts anew */
};

enum line_frame {
	LINE_FRAME_NONE,     /* all input consumed, no line ended */
	LINE_FRAME_LINE,     /* LINE holds LEN bytes without CR LF, NUL-terminated */
	LINE_FRAME_TOO_LONG, /* a line over MAX_LINE ended; its bytes were dropped */
};

void line_framer_init(struct line_framer *framer, size_t max_line);

/* Wipes the line buffer and frees it. */
void line_framer_free(struct line_framer *framer);

/* Frees the line buffer if it holds no partial line (wiped first; a
 * finished line is forgotten): an idle session then holds none. The next
 * byte allocates it again. */
void line_framer_release(struct line_framer *framer);

/* Forgets a partial or finished line (STLS: what came in the clear is not
 * continued under TLS), wiping it. */
void line_framer_reset(struct line_framer *framer);

/*
 * Consumes IN[0..LEN) up to and including the LF that ends a line, or all of
 * it. Returns how many bytes were consumed and sets *FRAME. After LINE the
 * line stays in the framer until the next feed or reset, which wipe it.
 */
size_t line_framer_feed(struct line_framer *framer, const char *in, size_t len,
			enum line_frame *frame);

/*
 * Feeds from the front of IN until a line ends or IN is empty; the bytes
 * consumed are overwritten with zeros in IN's own memory, then drained.
 */
enum line_frame line_framer_feed_evbuffer(struct line_framer *framer, struct evbuffer *in);

/* Overwrites every byte in BUF with zeros, then drains it. */
void line_evbuffer_wipe(struct evbuffer *buf);

#endif
