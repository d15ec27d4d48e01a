/*
 * commands.h — the SMTP server session as smtp/server.c (its life: accept,
 * greeting, timeouts, login checks, storing a message, the end) and
 * smtp/commands.c (the command table and the commands) share it. Private
 * to those two files.
 *
 * SECURITY: see server.c. A session holds a client's envelope and, for the
 * length of an AUTH exchange, its user name (the password is wiped as soon
 * as the login check has it).
 */
#ifndef POPGATE_SMTP_COMMANDS_H
#define POPGATE_SMTP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/session.h"
#include "smtp/chunk.h"
#include "smtp/data.h"

struct listener;
struct listener_peer;
struct local_networks;
struct popgate;
struct smtp_accept;
struct auth_request;

enum smtp_state {
	SMTP_STATE_FRESH,    /* greeted; no EHLO or HELO yet (again after STARTTLS) */
	SMTP_STATE_READY,    /* EHLO or HELO done, no transaction */
	SMTP_STATE_MAIL,     /* MAIL taken: RCPT next */
	SMTP_STATE_RCPT,     /* one recipient or more: RCPT, DATA or BDAT */
	SMTP_STATE_DATA,     /* body lines until "." */
	SMTP_STATE_CHUNKING, /* a body begun by BDAT (RFC 3030): BDAT or RSET next */
	SMTP_STATE_SASL,     /* AUTH sent 334: the next line is the client's response */
	SMTP_STATE_PENDING,  /* a login check or a message's commit runs: lines wait */
	SMTP_STATE_CLOSING,  /* the last reply drains, then the session is freed */
	SMTP_STATE_COUNT
};

/* Which of AUTH LOGIN's two questions was asked. */
enum smtp_sasl_step {
	SMTP_SASL_PLAIN,	  /* PLAIN's one response */
	SMTP_SASL_LOGIN_USER,	  /* LOGIN: the user name */
	SMTP_SASL_LOGIN_PASSWORD, /* LOGIN: the password */
};

/* A listening port: plain SMTP (relay for Local Networks) or submission. */
struct smtp_port {
	struct smtp_server *server;
	struct listener *listener;
	bool submission;
};

struct smtp_session {
	struct smtp_server *server;
	struct session *core;		     /* the connection, line reader and timers */
	struct listener_peer *listener_peer; /* our place in the session limits */
	const char *peer;		     /* the client's address (text), in LISTENER_PEER */
	enum smtp_state state;
	enum smtp_sasl_step sasl_step;
	unsigned bad_commands;
	bool submission;       /* came in on the submission port */
	bool in_local_network; /* S1, S2: may relay without logging in */
	bool esmtp;	       /* greeted with EHLO (not HELO) */
	bool smtputf8;	       /* this transaction's MAIL asked for SMTPUTF8 */
	bool deadline_passed;  /* while PENDING: the session ends after the answer */
	char *helo;	       /* the name EHLO or HELO gave, sanitised */
	char *user_name;       /* logged in as (AUTH), or NULL */
	char *sasl_name;       /* AUTH LOGIN's user name, until its password came */

	/* The transaction. */
	char *sender; /* NULL before MAIL; "" for <> */
	char **recipients;
	size_t recipient_count;
	struct smtp_data data;
	struct smtp_chunk chunk;    /* BDAT's line ends and lines, across chunks */
	const char *chunk_refusal;  /* the BDAT being read is refused (503): why */
	uint64_t chunk_size;	    /* the BDAT being read: its size, */
	bool chunk_last;	    /* and whether it ends the body */
	struct smtp_accept *accept; /* the message being committed */
	struct auth_request *auth;  /* the login being checked */

	TAILQ_ENTRY(smtp_session) entry;
};

TAILQ_HEAD(smtp_session_list, smtp_session);

struct smtp_server {
	struct popgate *pg;
	struct smtp_port ports[2]; /* plain, submission */
	struct session_config session_config;
	struct smtp_session_list sessions;
	unsigned session_count;
	struct local_networks *networks; /* S2; NULL: none could be read, nobody relays */
};

/* ---- server.c ---------------------------------------------------------------- */

void smtp_session_enter_state(struct smtp_session *session, enum smtp_state state);

/* Adds a reply line (CR LF added). */
void smtp_session_reply(struct smtp_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Replies, counts a bad command; at [smtp] max_bad_commands the session
 * ends with 421 4.7.0. True if it ended. */
bool smtp_session_bad_command(struct smtp_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends what is queued, then ends the session. */
void smtp_session_close(struct smtp_session *session);

/* Forgets the transaction (sender, recipients, a body being read). */
void smtp_session_reset_transaction(struct smtp_session *session);

/* Starts TLS after "220 2.0.0 Ready to start TLS": 0, or -1 (the caller
 * closes). The session is as new: RFC 3207 4.2 forgets what came before. */
int smtp_session_start_tls(struct smtp_session *session);

/* Checks NAME and PASSWORD (wiped by the caller) with the console login
 * (U6); the session waits for the answer (PENDING). */
void smtp_session_login(struct smtp_session *session, const char *name, const char *password);

/* The body is complete: store it (durable before 250) or refuse it. */
void smtp_session_data_end(struct smtp_session *session);

/* True if ADDRESS is one of this gateway's users' (relay_is_local_fn). */
bool smtp_session_address_is_local(const char *address, void *ctx);

/* ---- commands.c -------------------------------------------------------------- */

/* Handles one line: a command, a SASL response or a body line. */
void smtp_command_handle(struct smtp_session *session, const char *line, size_t len);

/* A line over the limit ended (its bytes were dropped). */
void smtp_command_line_too_long(struct smtp_session *session);

/* BDAT's octets, as core/session hands them on (session_ops.on_bytes). */
void smtp_command_chunk_bytes(struct smtp_session *session, const char *bytes, size_t len,
			      uint64_t left);

#endif
