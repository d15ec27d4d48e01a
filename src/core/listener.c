/*
 * listener.c — accepting connections (see listener.h): the listening
 * sockets, the session limits counted per peer, and the back-off after a
 * failed accept(). Owns the listeners and the list of peers in use; never
 * reads from or keeps an accepted socket, and knows no protocol.
 *
 * SECURITY: a client over a limit gets the owner's one refusal line (plain
 * socket only: on the TLS socket nothing can be said before a handshake we
 * will not do) and is closed before anything it sends is read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/listener.h"
#include "core/log.h"
#include "core/util.h"

/* After a failed accept() (typically EMFILE: out of descriptors) both
 * sockets rest this long, doubling up to the maximum while it goes on; a
 * listener that retried at once would spin the loop on the same error. */
#define LISTENER_BACKOFF_FIRST_MS 100
#define LISTENER_BACKOFF_MAX_MS 2000

TAILQ_HEAD(listener_peer_list, listener_peer);

struct listener {
	struct event_base *base;
	struct evconnlistener *plain;
	struct evconnlistener *tls;
	struct listener_limits limits;
	char *refusal;
	listener_accept_cb *callback;
	void *ctx;
	struct listener_peer_list peers;
	unsigned peer_count;
	struct event *backoff_timer;
	int backoff_ms; /* 0: accepting normally */
};

static unsigned listener_count_address(const struct listener *listener,
				       const struct listener_peer *peer)
{
	const struct listener_peer *other;
	unsigned count = 0;

	TAILQ_FOREACH(other, &listener->peers, entry)
	{
		if (listener_peer_same_address(other, peer))
			count++;
	}
	return count;
}

static void listener_accept(struct listener *listener, evutil_socket_t fd, struct sockaddr *addr,
			    bool tls)
{
	struct listener_peer *peer = xcalloc(1, sizeof(*peer));
	int one = 1;

	listener->backoff_ms = 0;
	if (listener_peer_describe(peer, addr) < 0) {
		free(peer);
		evutil_closesocket(fd);
		return;
	}
	if (listener->peer_count >= listener->limits.max_sessions ||
	    listener_count_address(listener, peer) >= listener->limits.max_per_address) {
		log_event(LOG_WARN, "refused", NULL, NULL, "%s: session limit reached",
			  peer->address);
		if (!tls && listener->refusal != NULL) /* a best effort: the socket's buffer
							  is new and empty */
			(void)!send(fd, listener->refusal, strlen(listener->refusal),
				    MSG_DONTWAIT | MSG_NOSIGNAL);
		evutil_closesocket(fd);
		free(peer);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	peer->tls = tls;
	peer->listener = listener;
	TAILQ_INSERT_TAIL(&listener->peers, peer, entry);
	listener->peer_count++;
	listener->callback(fd, peer, listener->ctx);
}

static void listener_plain_cb(struct evconnlistener *evlistener, evutil_socket_t fd,
			      struct sockaddr *addr, int addrlen, void *ctx)
{
	(void)evlistener;
	(void)addrlen;
	listener_accept(ctx, fd, addr, false);
}

static void listener_tls_cb(struct evconnlistener *evlistener, evutil_socket_t fd,
			    struct sockaddr *addr, int addrlen, void *ctx)
{
	(void)evlistener;
	(void)addrlen;
	listener_accept(ctx, fd, addr, true);
}

static void listener_enable(struct listener *listener, bool enable)
{
	struct evconnlistener *sockets[] = {listener->plain, listener->tls};

	for (size_t i = 0; i < sizeof(sockets) / sizeof(sockets[0]); i++) {
		if (sockets[i] == NULL)
			continue;
		if (enable)
			evconnlistener_enable(sockets[i]);
		else
			evconnlistener_disable(sockets[i]);
	}
}

static void listener_backoff_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	listener_enable(ctx, true);
}

static void listener_error_cb(struct evconnlistener *evlistener, void *ctx)
{
	struct listener *listener = ctx;
	int err = EVUTIL_SOCKET_ERROR();
	(void)evlistener;

	listener->backoff_ms =
	    listener->backoff_ms == 0 ? LISTENER_BACKOFF_FIRST_MS : listener->backoff_ms * 2;
	if (listener->backoff_ms > LISTENER_BACKOFF_MAX_MS)
		listener->backoff_ms = LISTENER_BACKOFF_MAX_MS;
	log_event(LOG_ERROR, "error", NULL, NULL, "accept failed: %s; pausing accepts for %d ms",
		  evutil_socket_error_to_string(err), listener->backoff_ms);
	listener_enable(listener, false);
	struct timeval delay = {.tv_sec = listener->backoff_ms / 1000,
				.tv_usec = (listener->backoff_ms % 1000) * 1000};
	evtimer_add(listener->backoff_timer, &delay);
}

static struct evconnlistener *listener_open(struct listener *listener, int fd,
					    evconnlistener_cb callback)
{
	const unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
	/* Backlog 0: the sockets already listen with the daemon's backlog; any
	 * other value would make libevent call listen() again with a smaller one. */
	struct evconnlistener *evlistener =
	    evconnlistener_new(listener->base, callback, listener, flags, 0, fd);

	if (evlistener != NULL)
		evconnlistener_set_error_cb(evlistener, listener_error_cb);
	return evlistener;
}

/* ---- public ----------------------------------------------------------------- */

int listener_peer_describe(struct listener_peer *peer, const struct sockaddr *addr)
{
	memset(peer->key, 0, sizeof(peer->key));
	if (addr->sa_family == AF_INET) {
		const struct in_addr *a4 = &((const struct sockaddr_in *)addr)->sin_addr;
		inet_ntop(AF_INET, a4, peer->address, sizeof(peer->address));
		peer->loopback = (ntohl(a4->s_addr) >> 24) == 127;
		peer->key[0] = 4;
		memcpy(peer->key + 1, &a4->s_addr, 4);
		return 0;
	}
	if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			/* A dual-stack socket's IPv4 client is that IPv4 client. */
			inet_ntop(AF_INET, &a6->s6_addr[12], peer->address, sizeof(peer->address));
			peer->loopback = a6->s6_addr[12] == 127;
			peer->key[0] = 4;
			memcpy(peer->key + 1, &a6->s6_addr[12], 4);
			return 0;
		}
		inet_ntop(AF_INET6, a6, peer->address, sizeof(peer->address));
		peer->loopback = IN6_IS_ADDR_LOOPBACK(a6);
		peer->key[0] = 6;
		memcpy(peer->key + 1, a6->s6_addr, 8);
		return 0;
	}
	snprintf(peer->address, sizeof(peer->address), "?");
	return -1;
}

bool listener_peer_same_address(const struct listener_peer *a, const struct listener_peer *b)
{
	return memcmp(a->key, b->key, sizeof(a->key)) == 0;
}

struct listener *listener_new(struct event_base *base, int plain_fd, int tls_fd,
			      const struct listener_limits *limits, listener_accept_cb *callback,
			      void *ctx, char *err, size_t errlen)
{
	struct listener *listener = xcalloc(1, sizeof(*listener));

	listener->base = base;
	listener->limits = *limits;
	listener->refusal = limits->refusal != NULL ? xstrdup(limits->refusal) : NULL;
	listener->limits.refusal = NULL;
	listener->callback = callback;
	listener->ctx = ctx;
	TAILQ_INIT(&listener->peers);
	listener->backoff_timer = evtimer_new(base, listener_backoff_cb, listener);
	if (listener->backoff_timer == NULL)
		goto fail;
	if (plain_fd >= 0 &&
	    (listener->plain = listener_open(listener, plain_fd, listener_plain_cb)) == NULL)
		goto fail;
	if (tls_fd >= 0 &&
	    (listener->tls = listener_open(listener, tls_fd, listener_tls_cb)) == NULL)
		goto fail;
	return listener;
fail:
	snprintf(err, errlen, "cannot listen: %s", strerror(errno));
	listener_free(&listener);
	return NULL;
}

void listener_free(struct listener **listener_p)
{
	struct listener *listener = *listener_p;

	if (listener == NULL)
		return;
	if (listener->plain != NULL)
		evconnlistener_free(listener->plain);
	if (listener->tls != NULL)
		evconnlistener_free(listener->tls);
	if (listener->backoff_timer != NULL)
		event_free(listener->backoff_timer);
	free(listener->refusal);
	free(listener);
	*listener_p = NULL;
}

void listener_peer_release(struct listener_peer **peer_p)
{
	struct listener_peer *peer = *peer_p;

	if (peer == NULL)
		return;
	if (peer->listener != NULL) {
		TAILQ_REMOVE(&peer->listener->peers, peer, entry);
		peer->listener->peer_count--;
	}
	free(peer);
	*peer_p = NULL;
}

unsigned listener_peer_count(const struct listener *listener)
{
	return listener->peer_count;
}
