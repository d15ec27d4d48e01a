/*
 * server.h — the client side: popgate as the POP3 server its users' mail
 * clients talk to (RFC 1939, 2449 CAPA, 2595 STLS, 5034 AUTH PLAIN), on a
 * plain port with STLS and a POP3S port with implicit TLS.
 */
#ifndef POPGATE_POP3_SERVER_H
#define POPGATE_POP3_SERVER_H

#include <stddef.h>

struct popgate;
struct pop3_server;

/*
 * Serves on the already bound, listening sockets PLAIN_FD and TLS_FD (either
 * may be -1). NULL with a message in ERR.
 */
struct pop3_server *pop3_server_new(struct popgate *pg, int plain_fd, int tls_fd, char *err,
				     size_t errlen);

/* Closes every session and the listeners, frees *SERVER; NULL is fine. */
void pop3_server_free(struct pop3_server **server);

/* Sessions open now. */
unsigned pop3_server_session_count(const struct pop3_server *server);

#endif
