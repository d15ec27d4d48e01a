/*
 * session.h — what every line-protocol server session needs, below the
 * protocol: the connection (plain, implicit TLS, or upgraded to TLS by a
 * STLS/STARTTLS command), the bounded line reader, the output high-water
 * mark, silence timeouts and an absolute deadline, freeing from the loop,
 * and the command loop that hands on one line at a time — or, when the
 * protocol asks for them (SMTP's BDAT, RFC 3030), a counted run of raw
 * bytes, after which lines come again.
 *
 * The protocol (pop3/server.c, smtp/server.c) plugs in with session_ops:
 * it is given each line (or the raw bytes it asked for), says whether it
 * takes lines now, and is told when output drained, when a timeout fired
 * and when the session is freed.
 *
 * Flow control: lines are handed on only while the pending output is under
 * SESSION_OUTPUT_HIGH_WATER (256 kB); then reading stops, and the write
 * callback (run when the output drains to 64 kB) takes up the lines that
 * wait. The loop never nests: each line is handled in turn, never from
 * inside another line's handler, however many arrive in one read.
 *
 * SECURITY: what the peer sends is untrusted; no line longer than the limit
 * is handed on, and every byte read is wiped before it is dropped (lines may
 * hold passwords). Lines the peer sent in the clear after the command that
 * starts TLS are dropped, never taken as if they came over TLS.
 */
#ifndef POPGATE_CORE_SESSION_H
#define POPGATE_CORE_SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>
#include <openssl/ssl.h>

struct bufferevent;
struct event_base;
struct evbuffer;
struct session;

/* Pending output at which reading stops and a protocol stops refilling. */
#define SESSION_OUTPUT_HIGH_WATER (256 * 1024)

/* What the protocol wants done with complete lines now. */
enum session_intake {
	SESSION_TAKE_LINES,  /* hand them on */
	SESSION_HOLD_LINES,  /* keep them (a login is being checked); go on reading,
				bounded, so a peer that hangs up is seen */
	SESSION_PAUSE_INPUT, /* a reply is still being produced (a message being
				sent): stop reading until the output drains */
};

enum session_timeout {
	SESSION_TIMEOUT_SILENCE,  /* nothing read for the read timeout */
	SESSION_TIMEOUT_DEADLINE, /* the absolute deadline passed */
	SESSION_TIMEOUT_WRITE,	  /* output did not drain: the session is freed
				     right after the callback */
};

struct session_ops {
	/* Whether lines are taken now (see enum session_intake). */
	enum session_intake (*intake)(void *owner);
	/* A complete line, without its line end, NUL-terminated; wiped after. */
	void (*on_line)(void *owner, const char *line, size_t len);
	/* A line over the limit ended; its bytes were dropped. */
	void (*on_line_too_long)(void *owner);
	/* Raw bytes asked for with session_read_bytes, a piece at a time as
	 * they arrive (never more than asked, no line splitting, wiped after);
	 * LEFT is how many are still to come after these: 0 with the last
	 * piece, after which lines are handed on again. NULL if the protocol
	 * never asks. */
	void (*on_bytes)(void *owner, const char *bytes, size_t len, uint64_t left);
	/* The output drained to the low-water mark: refill it (may be NULL). */
	void (*on_drain)(void *owner);
	void (*on_timeout)(void *owner, enum session_timeout timeout);
	/* The session is being freed (peer gone, timeout, closed): the owner
	 * frees its own state. No session function may be called from here. */
	void (*on_close)(void *owner);
};

struct session_config {
	struct event_base *base;
	const char *protocol; /* for log lines: "pop3" */
	size_t max_line;      /* with its line end */
	int write_timeout;    /* seconds output may stay undrained */
};

/*
 * A session on the accepted socket FD, which it takes (closed on failure
 * too). TLS_CTX non-NULL: implicit TLS, the handshake runs first. PEER is the
 * client's address text for log lines, not copied: it must stay valid until
 * on_close (the owner's, as its place in the session limits is). CONFIG must
 * outlive the session. NULL on failure.
 */
struct session *session_new(const struct session_config *config, evutil_socket_t fd,
			    SSL_CTX *tls_ctx, const char *peer, const struct session_ops *ops,
			    void *owner);

/* Frees at once (from outside its callbacks: shutdown), calling on_close. */
void session_free(struct session *session);

/* The connection's current bufferevent (it changes when TLS starts). */
struct bufferevent *session_bufferevent(struct session *session);

/* Where replies go. */
struct evbuffer *session_output(struct session *session);

/* Adds a line and CR LF to the output. */
void session_add_line(struct session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void session_add_vline(struct session *session, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Bytes of replies still on their way out (over STLS, the plain
 * bufferevent's below the TLS filter too). */
size_t session_pending_output(struct session *session);

bool session_is_tls(const struct session *session);

/* True once session_finish or session_drop was called. */
bool session_is_closing(const struct session *session);

/*
 * Read timeout (silence) in seconds, 0 for none; the write timeout is the
 * config's. Applies to both bufferevents of an upgraded session.
 */
void session_set_read_timeout(struct session *session, int seconds);

/* Calls on_timeout(SESSION_TIMEOUT_DEADLINE) SECONDS from now, unless
 * cleared first; 0 clears it. */
void session_set_deadline(struct session *session, int seconds);

/*
 * Takes up the lines that wait (after the protocol stopped holding them).
 * Call it from outside on_line only: from a callback of the protocol's own.
 */
void session_process(struct session *session);

/*
 * The next COUNT bytes the peer sends (COUNT > 0) go to on_bytes as they
 * are, not framed as lines; then lines again. Call it from on_line: the
 * bytes that followed the line in the same read are the first ones. The
 * intake and the output high-water mark pause the bytes as they do lines.
 */
void session_read_bytes(struct session *session, uint64_t count);

/*
 * Starts TLS on a plain session, with SSL (taken; freed on failure): what
 * was queued to send goes out first, in the clear; what the peer sent after
 * the command is wiped. Call it from on_line: the command loop stops there
 * and the rest comes over TLS. 0, or -1 (the caller closes the session).
 */
int session_start_tls(struct session *session, SSL *ssl);

/* Sends what is queued, then frees the session from the loop (giving up on
 * a peer that does not read after the write timeout). */
void session_finish(struct session *session);

/* Frees the session from the loop, right after the current callback;
 * pending output is dropped (the peer is gone or the reply is broken). */
void session_drop(struct session *session);

/* Writes what is queued at once, without the loop, as far as the socket
 * takes it: a best effort before session_free at shutdown. */
void session_flush_now(struct session *session);

#endif
