/*
 * listener.h — accepting connections for a server that speaks a line
 * protocol (POP3 today, SMTP next): a plain and an implicit-TLS listening
 * socket, a limit on sessions overall and per client address, and a back-off
 * when accept() fails (out of descriptors), so the loop does not spin.
 *
 * The owner gets each accepted socket with its peer and keeps the peer until
 * the session ends; releasing it frees the session's place in the limits.
 * Nothing here knows the protocol: the one line sent to a client that is
 * over a limit is the owner's.
 *
 * SECURITY: the peer address is what accept() returned; it counts against
 * the limits before a byte is read. An IPv6 client counts by its /64 (one
 * host usually holds a whole /64), an IPv4-mapped address as the IPv4
 * address it carries.
 */
#ifndef POPGATE_CORE_LISTENER_H
#define POPGATE_CORE_LISTENER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/util.h>

struct event_base;
struct listener;

/* Long enough for any address inet_ntop writes. */
#define LISTENER_ADDRESS_LEN INET6_ADDRSTRLEN

/* A connected client, from accept until the owner releases it. */
struct listener_peer {
	char address[LISTENER_ADDRESS_LEN]; /* text; an IPv4-mapped address as IPv4 */
	bool loopback;			    /* the client is on this host */
	bool tls;			    /* accepted on the implicit-TLS socket */

	/* Private to listener.c. */
	uint8_t key[9]; /* family byte, then the IPv4 address or the IPv6 /64 */
	struct listener *listener;
	TAILQ_ENTRY(listener_peer) entry;
};

/*
 * Called for each accepted connection within the limits. The owner takes FD
 * (non-blocking, TCP_NODELAY set) and PEER, and hands PEER back with
 * listener_peer_release when the session ends, even if setting it up failed.
 */
typedef void listener_accept_cb(evutil_socket_t fd, struct listener_peer *peer, void *ctx);

struct listener_limits {
	unsigned max_sessions;	  /* connections held at once */
	unsigned max_per_address; /* of those, from one address (or IPv6 /64) */
	const char *refusal;	  /* sent on the plain socket when over a limit,
				     with its line end ("-ERR …\r\n"); or NULL */
};

/*
 * Serves the already bound, listening sockets PLAIN_FD and TLS_FD (either
 * may be -1; they are closed by listener_free). NULL with a message in ERR.
 */
struct listener *listener_new(struct event_base *base, int plain_fd, int tls_fd,
			      const struct listener_limits *limits, listener_accept_cb *callback,
			      void *ctx, char *err, size_t errlen);

/* Stops accepting and closes the sockets; NULL is fine. Every peer must have
 * been released first. */
void listener_free(struct listener **listener);

/* Gives PEER's place back and frees it; NULL is fine. */
void listener_peer_release(struct listener_peer **peer);

/* Connections accepted and not yet released. */
unsigned listener_peer_count(const struct listener *listener);

/*
 * Fills PEER's address text, loopback flag and limit key from ADDR (what
 * accept() returned). 0, or -1 for a family other than IPv4 and IPv6.
 * Public for the unit test.
 */
int listener_peer_describe(struct listener_peer *peer, const struct sockaddr *addr);

/* True if A and B count as the same client address for the per-address limit. */
bool listener_peer_same_address(const struct listener_peer *a, const struct listener_peer *b);

#endif
