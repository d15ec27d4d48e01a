/*
 * server_session.h — the POP3 server session as pop3/server.c (its life:
 * accept, login, sending a message, the end) and pop3/commands.c (the
 * command table and the commands) share it. Private to those two files.
 *
 * SECURITY: see server.c: a session holds a client's name and, briefly, its
 * password (wiped after use); everything it was sent is untrusted.
 */
#ifndef POPGATE_POP3_SERVER_SESSION_H
#define POPGATE_POP3_SERVER_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/session.h"
#include "pop3/parse.h"
#include "store/message.h"
#include "store/spool.h"

struct bufferevent;
struct listener_peer;
struct popgate;

/* Message file reads, one chunk at a time. */
#define SEND_CHUNK (64 * 1024)
/* A message being sent is refilled only while the pending output is under
 * core/session's high-water mark, the one at which it stops reading. */
#define OUTPUT_HIGH_WATER SESSION_OUTPUT_HIGH_WATER

enum session_state {
	SESSION_AUTHORIZATION,
	SESSION_AUTH_PENDING, /* a login is being checked; input waits, EOF is watched */
	SESSION_TRANSACTION,
	SESSION_CLOSING, /* the last reply drains, then the session is freed */
	SESSION_STATE_COUNT
};

enum message_flag {
	MESSAGE_FLAG_DELETED = 1 << 0,
	MESSAGE_FLAG_RETRIEVED = 1 << 1,
};

/* A message of the maildrop, as the session holds it while it is open (an
 * idle session's largest part): what the commands need, no more. */
struct session_message {
	char id[SPOOL_ID_LEN + 1];
	uint8_t flags; /* enum message_flag */
	int64_t size;  /* as served: the prepended header lines, the body and its
			  subject tag */
};

/* A pickup's QUIT on its way to the store (commands.c): the ids to move,
 * copied, since the writer thread must not read the session. */
struct session_pickup {
	struct pop3_session *session; /* NULL once the session is freed */
	size_t count;
	char (*ids)[SPOOL_ID_LEN + 1];
};

/* A read of a message file that would have waited on the disk (server.c). */
struct session_read;

/* Every idle session holds one: fields are laid out without holes (the
 * connection's bufferevent is the core's, session_output). */
struct pop3_session {
	struct pop3_server *server;
	struct session *core;		     /* the connection, line reader and timers */
	struct listener_peer *listener_peer; /* our place in the session limits */
	const char *peer;		     /* the client's address (text), in LISTENER_PEER */
	char *user_name;		     /* from USER, until PASS */
	struct auth_request *auth;
	enum session_state state;
	unsigned bad_commands;
	bool loopback;	    /* the client is on this host */
	bool awaiting_sasl; /* AUTH PLAIN sent "+ "; the next line is the response */
	bool quit_done;	    /* QUIT committed the pickup */
	bool send_is_retr;  /* of the message being sent, below */
	struct pop3_dot_encoder encoder; /* of the message being sent, below */

	int64_t account_id; /* 0 until logged in */
	struct session_pickup *pickup; /* QUIT's moves, being committed */
	char *account_name;
	struct session_message *messages;
	size_t message_count;
	/* What each message is served with beside its body (prepended header
	 * lines, subject tag), read for the whole listing at the first RETR or
	 * TOP: NULL until then, so a session that only logged in holds none. An
	 * entry's prepend is NULL if its message left the queue. */
	struct store_served *served;

	/* A message being sent (RETR or TOP). */
	int send_fd;
	uint32_t send_index; /* messages are numbered in 32 bits (pop3/parse.h) */
	int64_t send_offset; /* bytes of its body file sent so far */
	struct session_read *reading; /* a read of it in an offload thread */

	TAILQ_ENTRY(pop3_session) entry;
};

TAILQ_HEAD(pop3_session_list, pop3_session);

struct pop3_server {
	struct popgate *pg;
	struct listener *listener;
	struct session_config session_config;
	struct pop3_session_list sessions;
	unsigned session_count;
	char *send_chunk; /* SEND_CHUNK bytes: message file reads, one at a time */
};

/* ---- server.c ---------------------------------------------------------------- */

void session_enter_state(struct pop3_session *session, enum session_state state);

/* Adds a reply line (CR LF added). */
void session_reply(struct pop3_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Counts a bad command after its -ERR; past the limit the session ends.
 * True if it ended. */
bool session_bad_command(struct pop3_session *session, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends what is queued, then ends the session. */
void session_close(struct pop3_session *session);

/* Ends the session from the loop, dropping pending output. */
void session_free_later(struct pop3_session *session);

/* Bytes of replies still on their way out. */
size_t session_output_size(struct pop3_session *session);

bool session_is_encrypted(const struct pop3_session *session);

/* A password may be sent: TLS, loopback, or the config allows it. */
bool session_plaintext_allowed(const struct pop3_session *session);

/* Starts sending message INDEX (RETR, or TOP with BODY_LINES lines). */
void session_send_message(struct pop3_session *session, size_t index, bool top,
			  uint32_t body_lines);

/* Starts checking NAME and PASSWORD (the session waits for the answer). */
void session_login(struct pop3_session *session, const char *name, const char *password);

/* Upgrades the connection after "+OK begin TLS negotiation": 0 or -1. */
int session_upgrade_tls(struct pop3_session *session);

/* ---- commands.c -------------------------------------------------------------- */

/* Handles one command line (or the SASL response AUTH PLAIN waits for). */
void pop3_command_handle(struct pop3_session *session, const char *line, size_t len);

#endif
