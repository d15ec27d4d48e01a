/*
 * session.c — the plumbing of a line-protocol server session (see
 * session.h): its bufferevent (plain, TLS, or a TLS filter over the plain one
 * after STLS), the line reader, flow control, timeouts and the deadline,
 * freeing from the loop, and the command loop. Owns the connection and
 * everything read from it; never interprets a line (the protocol's on_line
 * does) and never frees the protocol's state (its on_close does). Raw bytes
 * a protocol asked for (session_read_bytes) are handed on in the same loop,
 * in turn with the lines before and after them.
 *
 * SECURITY: input is wiped as it is consumed and when the session ends.
 * TLS buffers are released while idle (SSL_MODE_RELEASE_BUFFERS): thousands
 * of idle sessions would otherwise hold some 34 kB each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <sodium.h>

#include "core/line.h"
#include "core/log.h"
#include "core/session.h"
#include "core/util.h"

/*
 * The write callback runs once the output drains to OUTPUT_LOW_WATER.
 * TLS_UNDERLYING_HIGH_WATER bounds what a TLS filter hands the plain
 * bufferevent below it, so the write callback still sees the backlog.
 * Unhandled input stops being read at INPUT_HIGH_WATER.
 */
#define OUTPUT_LOW_WATER (64 * 1024)
#define TLS_UNDERLYING_HIGH_WATER (64 * 1024)
#define INPUT_HIGH_WATER (64 * 1024)
/* Raw bytes behind an empty first chain are joined this many at a time. */
#define RAW_JOIN (4 * 1024)
/* How often a closing session looks whether its last reply has gone out. */
#define FLUSH_RECHECK_US (10 * 1000)

struct session {
	const struct session_config *config;
	const struct session_ops *ops;
	void *owner;
	struct bufferevent *bev;
	const char *peer; /* the owner's, valid until on_close */
	struct line_framer framer;
	uint64_t raw_left; /* bytes still owed to on_bytes (session_read_bytes) */
	/* Flags side by side: every idle session holds this struct. */
	int read_timeout;	   /* seconds, 0: none */
	bool tls;
	bool input_paused;	   /* not read until the output drains (write callback) */
	bool closing;		   /* session_finish or session_drop was called */
	bool flushing;		   /* closing: the last reply is still draining */
	struct event *deadline;	   /* session_set_deadline */
	int64_t flush_deadline_ms; /* give up on a peer that does not read */
	struct event *free_event;  /* sessions are freed from the loop, never
				      inside their own handlers */
};

static void session_read_cb(struct bufferevent *bev, void *ctx);
static void session_write_cb(struct bufferevent *bev, void *ctx);
static void session_event_cb(struct bufferevent *bev, short events, void *ctx);

/*
 * Silence is a read timeout; output that does not drain is a write timeout.
 * Over STLS the plain bufferevent below the filter gets the same timeouts:
 * it reports them through the filter, and its write timeout is the one that
 * sees a peer that does not read.
 */
static void session_apply_timeouts(struct session *session)
{
	struct timeval read_tv = {.tv_sec = session->read_timeout};
	struct timeval write_tv = {.tv_sec = session->config->write_timeout};
	const struct timeval *read_p = session->read_timeout > 0 ? &read_tv : NULL;
	struct bufferevent *underlying = bufferevent_get_underlying(session->bev);

	bufferevent_set_timeouts(session->bev, read_p, &write_tv);
	if (underlying != NULL)
		bufferevent_set_timeouts(underlying, read_p, &write_tv);
}

/* Callbacks, watermarks, timeouts and reading for the session's (new)
 * bufferevent: at accept, and again for the TLS filter after STLS. */
static void session_setup_bev(struct session *session)
{
	bufferevent_setcb(session->bev, session_read_cb, session_write_cb, session_event_cb,
			  session);
	bufferevent_setwatermark(session->bev, EV_WRITE, OUTPUT_LOW_WATER, 0);
	bufferevent_setwatermark(session->bev, EV_READ, 0, INPUT_HIGH_WATER);
	session_apply_timeouts(session);
	bufferevent_enable(session->bev, EV_READ | EV_WRITE);
}

static void session_free_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct session *session = ctx;
	(void)fd;
	(void)what;

	if (session->flushing && session_pending_output(session) > 0 &&
	    util_monotonic_ms() < session->flush_deadline_ms) {
		static const struct timeval recheck = {0, FLUSH_RECHECK_US};
		evtimer_add(session->free_event, &recheck);
		return;
	}
	session_free(session);
}

static void session_schedule_free(struct session *session)
{
	static const struct timeval now = {0, 0};

	if (session->free_event == NULL)
		session->free_event = evtimer_new(session->config->base, session_free_cb, session);
	evtimer_add(session->free_event, &now);
}

/* Frees the session once its output has drained (write callback, or now). */
static void session_free_when_flushed(struct session *session)
{
	if (evbuffer_get_length(bufferevent_get_output(session->bev)) > 0)
		return; /* the write callback calls again */
	session_schedule_free(session);
}

/* Reads nothing more until the write callback finds the output drained. */
static void session_pause_input(struct session *session)
{
	if (session->input_paused)
		return;
	session->input_paused = true;
	bufferevent_disable(session->bev, EV_READ);
}

/*
 * Hands on the next piece of the raw bytes asked for: what lies at the
 * front of the input in one piece, up to what is still owed, wiped once the
 * protocol had it. False when no input waits.
 */
static bool session_hand_bytes(struct session *session)
{
	struct evbuffer *in = bufferevent_get_input(session->bev);
	size_t len = evbuffer_get_contiguous_space(in);

	if (len == 0) {
		/* An empty first chain before data: join a little. */
		len = evbuffer_get_length(in);
		if (len == 0)
			return false;
		if (len > RAW_JOIN)
			len = RAW_JOIN;
	}
	if (len > session->raw_left)
		len = (size_t)session->raw_left;
	char *bytes = (char *)evbuffer_pullup(in, (ev_ssize_t)len);
	if (bytes == NULL)
		return false;
	session->raw_left -= len;
	session->ops->on_bytes(session->owner, bytes, len, session->raw_left);
	sodium_memzero(bytes, len);
	evbuffer_drain(in, len);
	return true;
}

/*
 * Hands on complete lines while the protocol takes them. It stops while the
 * protocol is producing a reply or the output is over its high-water mark,
 * and the write callback calls it again: each line is handled here, in
 * turn, never from inside another's handler.
 */
static void session_process_input(struct session *session)
{
	while (!session->closing) {
		enum session_intake intake = session->ops->intake(session->owner);
		if (intake == SESSION_HOLD_LINES)
			break;
		if (intake == SESSION_PAUSE_INPUT ||
		    session_pending_output(session) >= SESSION_OUTPUT_HIGH_WATER) {
			session_pause_input(session);
			break;
		}
		if (session->raw_left > 0) {
			if (!session_hand_bytes(session))
				break;
			continue;
		}
		struct bufferevent *bev_before = session->bev;
		enum line_frame frame = line_framer_feed_evbuffer(
		    &session->framer, bufferevent_get_input(session->bev));
		if (frame == LINE_FRAME_NONE)
			break;
		if (frame == LINE_FRAME_TOO_LONG) {
			session->ops->on_line_too_long(session->owner);
			continue;
		}
		session->ops->on_line(session->owner, session->framer.line, session->framer.len);
		line_framer_reset(&session->framer); /* it may have held a password */
		if (session->bev != bev_before)
			break; /* TLS started: the rest comes through the read callback */
	}
	/* Between reads the line buffer is kept only for a partial line: an idle
	 * session holds none. Pipelined lines of one read share one buffer. */
	line_framer_release(&session->framer);
}

/* ---- libevent callbacks --------------------------------------------------- */

static void session_read_cb(struct bufferevent *bev, void *ctx)
{
	(void)bev;
	session_process_input(ctx);
}

/* Output drained to OUTPUT_LOW_WATER: let the protocol refill it, finish a
 * closing session, or take up the lines that wait. */
static void session_write_cb(struct bufferevent *bev, void *ctx)
{
	struct session *session = ctx;
	(void)bev;

	if (!session->closing && session->ops->on_drain != NULL)
		session->ops->on_drain(session->owner);
	if (session->closing) {
		if (session->flushing)
			session_free_when_flushed(session);
		return;
	}
	if (!session->input_paused || session->ops->intake(session->owner) == SESSION_PAUSE_INPUT ||
	    session_pending_output(session) >= SESSION_OUTPUT_HIGH_WATER)
		return;
	session->input_paused = false;
	bufferevent_enable(session->bev, EV_READ);
	session_process_input(session);
}

static void session_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct session *session = ctx;
	(void)bev;

	if (events & BEV_EVENT_TIMEOUT) {
		if ((events & BEV_EVENT_READING) && !session->closing) {
			session->ops->on_timeout(session->owner, SESSION_TIMEOUT_SILENCE);
			return;
		}
		session->ops->on_timeout(session->owner, SESSION_TIMEOUT_WRITE);
		session_free(session); /* output did not drain: the peer is gone */
		return;
	}
	if (events & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (events & BEV_EVENT_ERROR)
			log_debug("%s %s: connection error", session->config->protocol,
				  session->peer);
		session_free(session);
	}
}

static void session_deadline_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct session *session = ctx;
	(void)fd;
	(void)what;

	if (!session->closing)
		session->ops->on_timeout(session->owner, SESSION_TIMEOUT_DEADLINE);
}

/* ---- public ----------------------------------------------------------------- */

struct session *session_new(const struct session_config *config, evutil_socket_t fd,
			    SSL_CTX *tls_ctx, const char *peer, const struct session_ops *ops,
			    void *owner)
{
	/* Deferred: libevent never calls a session's callbacks from inside its
	 * own handlers (adding output to a TLS bufferevent would, at once). */
	const int bev_options = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	struct session *session = xcalloc(1, sizeof(*session));

	session->config = config;
	session->ops = ops;
	session->owner = owner;
	session->peer = peer;
	if (tls_ctx != NULL) {
		SSL *ssl = SSL_new(tls_ctx);
		if (ssl == NULL)
			goto fail;
		SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
		session->bev = bufferevent_openssl_socket_new(
		    config->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, bev_options);
		session->tls = true;
	} else {
		session->bev = bufferevent_socket_new(config->base, fd, bev_options);
	}
	if (session->bev == NULL)
		goto fail;
	line_framer_init(&session->framer, config->max_line);
	session_setup_bev(session);
	return session;
fail:
	evutil_closesocket(fd);
	free(session);
	return NULL;
}

void session_free(struct session *session)
{
	if (session->free_event != NULL)
		event_free(session->free_event);
	if (session->deadline != NULL)
		event_free(session->deadline);
	/* Unhandled input may hold a pipelined password. */
	line_evbuffer_wipe(bufferevent_get_input(session->bev));
	bufferevent_free(session->bev);
	line_framer_free(&session->framer);
	session->ops->on_close(session->owner);
	free(session);
}

struct bufferevent *session_bufferevent(struct session *session)
{
	return session->bev;
}

struct evbuffer *session_output(struct session *session)
{
	return bufferevent_get_output(session->bev);
}

void session_add_vline(struct session *session, const char *fmt, va_list ap)
{
	struct evbuffer *out = bufferevent_get_output(session->bev);

	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
}

void session_add_line(struct session *session, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_add_vline(session, fmt, ap);
	va_end(ap);
}

size_t session_pending_output(struct session *session)
{
	struct bufferevent *underlying = bufferevent_get_underlying(session->bev);
	size_t size = evbuffer_get_length(bufferevent_get_output(session->bev));

	if (underlying != NULL)
		size += evbuffer_get_length(bufferevent_get_output(underlying));
	return size;
}

bool session_is_tls(const struct session *session)
{
	return session->tls;
}

bool session_is_closing(const struct session *session)
{
	return session->closing;
}

void session_set_read_timeout(struct session *session, int seconds)
{
	session->read_timeout = seconds;
	session_apply_timeouts(session);
}

void session_set_deadline(struct session *session, int seconds)
{
	if (seconds <= 0) {
		if (session->deadline != NULL)
			evtimer_del(session->deadline);
		return;
	}
	if (session->deadline == NULL)
		session->deadline =
		    evtimer_new(session->config->base, session_deadline_cb, session);
	struct timeval delay = {.tv_sec = seconds};
	evtimer_add(session->deadline, &delay);
}

void session_process(struct session *session)
{
	session_process_input(session);
}

void session_read_bytes(struct session *session, uint64_t count)
{
	session->raw_left = count;
}

int session_start_tls(struct session *session, SSL *ssl)
{
	struct bufferevent *tls_bev;

	SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
	/* Anything the peer pipelined after the command was sent in the clear and
	 * must not be taken as if it came over TLS (the STARTTLS injection). */
	line_evbuffer_wipe(bufferevent_get_input(session->bev));
	line_framer_reset(&session->framer);
	session->raw_left = 0;
	tls_bev = bufferevent_openssl_filter_new(session->config->base, session->bev, ssl,
						 BUFFEREVENT_SSL_ACCEPTING,
						 BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (tls_bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	/* The filter hands the plain bufferevent at most this much, so the
	 * backlog stays in the filter's buffer, where the write callback sees it. */
	bufferevent_setwatermark(session->bev, EV_WRITE, 0, TLS_UNDERLYING_HIGH_WATER);
	session->bev = tls_bev;
	session->tls = true;
	session_setup_bev(session);
	return 0;
}

void session_finish(struct session *session)
{
	session->closing = true;
	bufferevent_disable(session->bev, EV_READ);
	session->flushing = true;
	session->flush_deadline_ms = util_monotonic_ms() + 1000LL * session->config->write_timeout;
	session_free_when_flushed(session);
}

void session_drop(struct session *session)
{
	session->closing = true;
	session->flushing = false;
	bufferevent_disable(session->bev, EV_READ | EV_WRITE);
	session_schedule_free(session);
}

void session_flush_now(struct session *session)
{
	struct bufferevent *bev = session->bev;
	struct evbuffer *out = bufferevent_get_output(bev);
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl != NULL) {
		size_t len = evbuffer_get_length(out);
		unsigned char *data = evbuffer_pullup(out, -1);
		if (len > 0 && data != NULL && len <= INT32_MAX &&
		    SSL_write(ssl, data, (int)len) > 0)
			evbuffer_drain(out, len);
		bev = bufferevent_get_underlying(bev);
		if (bev == NULL)
			return; /* the TLS object wrote to the socket itself */
		out = bufferevent_get_output(bev);
	}
	evutil_socket_t fd = bufferevent_getfd(bev);
	/* A socket bufferevent keeps the front of its output frozen except in
	 * its own write callback; the bufferevent is freed right after this. */
	evbuffer_unfreeze(out, 1);
	while (fd >= 0 && evbuffer_get_length(out) > 0 && evbuffer_write(out, fd) > 0)
		continue;
	evbuffer_freeze(out, 1);
}
