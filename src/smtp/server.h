/*
 * server.h — popgate's SMTP server (RFC 5321): the port office PCs and
 * other servers hand mail to (clients in a Local Network may relay, S1, S2;
 * others only to this gateway's users), and the submission port (RFC 6409)
 * where roaming users log in with AUTH after STARTTLS (U6). Each accepted
 * message is durable before its 250 (smtp/accept.h) and goes through the
 * pipeline to the outbound queue.
 */
#ifndef POPGATE_SMTP_SERVER_H
#define POPGATE_SMTP_SERVER_H

#include <stddef.h>

struct popgate;
struct smtp_server;

/*
 * Serves on the already bound, listening sockets PLAIN_FD (the SMTP port)
 * and SUBMISSION_FD (either may be -1; both are taken, also on failure).
 * Reads the Local Networks from the store. NULL with a message in ERR.
 */
struct smtp_server *smtp_server_new(struct popgate *pg, int plain_fd, int submission_fd, char *err,
				    size_t errlen);

/* Closes every session and the listeners, frees *SERVER; NULL is fine. */
void smtp_server_free(struct smtp_server **server);

/* Reads the Local Networks again (popgatectl network changed them); the
 * sessions that follow are judged by them. NULL is fine. */
void smtp_server_reload_networks(struct smtp_server *server);

/* Sessions open now. */
unsigned smtp_server_session_count(const struct smtp_server *server);

#endif
