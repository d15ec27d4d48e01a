/*
 * client_internal.h — what the files of the outbound SMTP client share: the
 * client's state, the message being sent, and the functions one file calls
 * in another. client.h stays the public face.
 *
 * Four files share what is here:
 *   client.c       the connection: the client made, freed and quit, its
 *                  callbacks and timeouts, command lines out, replies in
 *                  (through smtp/reply.c), the STARTTLS upgrade, failure
 *                  and the reports to the ready and sent callbacks;
 *   client_session.c
 *                  the session's setup: greeting, EHLO (or HELO) and its
 *                  capabilities, STARTTLS by the TLS mode, AUTH PLAIN or
 *                  LOGIN; and what each reply means in the state it came in;
 *   client_transaction.c
 *                  a message's transaction: smtp_client_send's checks and
 *                  early answers (SIZE, SMTPUTF8), MAIL, the RCPTs and DATA
 *                  (pipelined or not), the per-recipient results, RSET;
 *   client_body.c  the body: the prepended lines and the spool file read in
 *                  chunks under a high-water mark (preadv2 RWF_NOWAIT, an
 *                  offload thread when the disk would wait), dot-stuffed,
 *                  ended by the final dot.
 *
 * Nothing outside src/smtp/client*.c includes this header.
 *
 * SECURITY: replies are untrusted and bounded by reply.c. Command lines go
 * out only through client_write_line, which refuses a CR or LF. The
 * password is wiped as soon as AUTH is answered, and never logged.
 */
#ifndef POPGATE_SMTP_CLIENT_INTERNAL_H
#define POPGATE_SMTP_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "smtp/client.h"
#include "smtp/reply.h"

enum client_state {
	CLIENT_GREETING,
	CLIENT_EHLO,
	CLIENT_HELO,
	CLIENT_STARTTLS,
	CLIENT_TLS_HANDSHAKE,
	CLIENT_AUTH,		    /* AUTH PLAIN (initial response) or LOGIN's last step */
	CLIENT_AUTH_LOGIN_USER,	    /* AUTH LOGIN sent: the 334 for the user name */
	CLIENT_AUTH_LOGIN_PASSWORD, /* the user name sent: the 334 for the password */
	CLIENT_READY,		    /* idle: a message may be sent */
	CLIENT_MAIL,
	CLIENT_RCPT,
	CLIENT_DATA,
	CLIENT_BODY,	  /* the body is being written */
	CLIENT_DOT,	  /* the body's final dot is written: its reply */
	CLIENT_EMPTY_DOT, /* DATA took 354 with no recipient: the empty body's reply */
	CLIENT_RSET,
	CLIENT_QUIT,
	CLIENT_CLOSED, /* failed, or closed: nothing more is read or written */
	CLIENT_STATE_COUNT
};

struct client_read;

/* The message being sent. */
struct client_send {
	smtp_client_sent_cb *sent;
	void *ctx;
	char *sender;
	char **recipients;
	size_t recipient_count;
	char *prepend;
	int fd; /* a dup of the caller's; closed here, or by a read in flight */
	uint64_t size;
	uint64_t offset; /* of the next body byte to read */
	bool pipelined;
	size_t rcpt_sent;     /* RCPTs written */
	size_t rcpt_answered; /* RCPT replies taken */
	size_t accepted;      /* of those, 2yz */
	struct smtp_dot_encoder encoder;
	char *chunk;		     /* CLIENT_BODY_CHUNK bytes, from the start of the body */
	struct client_read *reading; /* an offload read in flight */
	bool early;		     /* answered before a command went out (SIZE, SMTPUTF8) */
	struct smtp_client_result result;
};

struct smtp_client {
	struct connector *connector;
	struct offload *offload;
	struct bufferevent *bev; /* NULL once closed */
	char *helo_name;
	char *server_name;
	char *ca_file;
	struct resolver_tlsa *tlsa; /* DANE: copies of the records given */
	size_t tlsa_count;
	char *auth_user;
	char *auth_password; /* wiped and freed once AUTH is answered */
	enum smtp_tls_mode tls_mode;
	int timeout;

	enum client_state state;
	struct smtp_reply_parser parser;
	struct smtp_client_capabilities capabilities;
	/* X509_V_OK, or why the STARTTLS handshake refused the certificate. */
	long tls_verify_result;
	bool tls_active;
	bool tls_refused; /* OPPORTUNISTIC: STARTTLS was refused, go on in plain */
	bool tls_failed;  /* the session ended in the STARTTLS handshake */
	bool authenticated;
	bool quitting;		       /* smtp_client_quit: the client frees itself */
	smtp_client_closed_cb *closed; /* called once the QUIT is over */
	void *closed_ctx;

	smtp_client_ready_cb *ready; /* NULL once called */
	void *ready_ctx;
	struct client_send *send; /* the message being sent, or NULL */

	/* Handles input already buffered when the client was made, and an
	 * early answer of smtp_client_send: callbacks never run inside the
	 * call that started their step. */
	struct event *kick;
	unsigned busy;	     /* handlers of this client on the stack */
	bool free_requested; /* freed inside a handler: freed when it returns */
	char error[400];
};

/* A read of the body that would have waited on the disk, by an offload
 * thread. It owns its buffer, and the descriptor once detached. */
struct client_read {
	struct smtp_client *client; /* NULL once detached: then it closes FD */
	int fd;
	uint64_t offset;
	size_t want;
	char *chunk;
	ssize_t n;
	int error;
};

/* ---- client.c ------------------------------------------------------------ */

void client_enter_state(struct smtp_client *client, enum client_state state);

/* Whether the handler running must stop touching the connection. */
bool client_gone(const struct smtp_client *client);

void client_password_wipe(struct smtp_client *client);

/* Times the connection's reads and writes (timeout_seconds) or not. */
void client_set_timeouts(struct smtp_client *client, bool read, bool write);

/* Ends a handler (each begins with client->busy++): a free asked for inside
 * it happens now. */
void client_release(struct smtp_client *client);

/* A QUIT is over (or the client was closed for it): CLOSED is told from
 * the loop, never inside smtp_client_quit. */
void client_quit_later(struct smtp_client *client);

/* The message is done (or failed): SENT is told, the client is idle again
 * unless the connection is closed. */
void client_send_complete(struct smtp_client *client);

/* Tells the ready callback, once: REPLY and ERROR NULL for ready. */
void client_ready_report(struct smtp_client *client, const struct smtp_reply *reply,
			 const char *error);

/*
 * Ends the session on an error: records why (REPLY the server's reply that
 * caused it, or NULL), closes the connection, and tells whoever waits: the
 * message being sent, or the ready callback. A quitting client tells its
 * CLOSED callback instead, from the loop.
 */
void client_fail(struct smtp_client *client, const struct smtp_reply *reply, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fails on REPLY, its text in the error. */
void client_fail_reply(struct smtp_client *client, const struct smtp_reply *reply,
		       const char *what);

/*
 * Queues one command line. A line with a CR or LF in it is refused and the
 * session fails (every argument was checked before; this is the last
 * guard). Lines go by reference, wiped when written: an AUTH line must not
 * stay in libevent's chunks. 0, or -1 with the client failed.
 */
int client_write_line(struct smtp_client *client, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 220 to STARTTLS: the handshake, through the connector; EHLO follows it. */
void client_start_tls(struct smtp_client *client);

/* ---- client_session.c ---------------------------------------------------- */

/* Sends EHLO: after the greeting, and again after the TLS handshake. */
void client_send_ehlo(struct smtp_client *client);

/* One whole reply from the server, in the state that expects it; the
 * transaction's states go to client_handle_send_reply. May end CLIENT. */
void client_handle_reply(struct smtp_client *client, struct smtp_reply *reply);

/* ---- client_transaction.c ------------------------------------------------ */

/* The replies of a transaction (MAIL to RSET), in order. May take REPLY's
 * text (then REPLY is left zeroed). May end CLIENT. */
void client_handle_send_reply(struct smtp_client *client, struct smtp_reply *reply);

/* ---- client_body.c ------------------------------------------------------- */

/* 354: the prepended lines, then the file. */
void client_body_start(struct smtp_client *client);

/* Fills the output from the body file up to the high-water mark; the write
 * callback calls it again as the output drains. */
void client_body_fill(struct smtp_client *client);

#endif
