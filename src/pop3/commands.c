/*
 * commands.c — the POP3 commands a client may send, as one table: each
 * command's handler and flags (the states it is allowed in, whether it
 * carries a password and so needs TLS, whether its number must name a
 * message), and the dispatch that checks the flags before any handler runs.
 * Argument syntax (how many, words or numbers, their ranges) is checked
 * before that, by pop3/parse.c's verb table.
 *
 * Owns nothing: the session (server_session.h) holds the state, server.c
 * logs in and sends messages.
 *
 * SECURITY: every command line is untrusted and parsed by pop3/parse.c;
 * names and passwords are copied only as long as the login needs them and
 * wiped after. Plain-text logins are refused unless session_plaintext_allowed.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sodium.h>

#include "core/log.h"
#include "core/util.h"
#include "pop3/fetch.h"
#include "pop3/parse.h"
#include "pop3/server_session.h"
#include "popgate.h"
#include "store/message.h"
#include "store/writer.h"

#define NAME_MAX_LEN 512
#define PASSWORD_MAX_LEN 512

/* What a command needs before its handler runs. */
enum command_flag {
	COMMAND_AUTHORIZATION = 1 << 0, /* allowed before login */
	COMMAND_TRANSACTION = 1 << 1,	/* allowed after login */
	COMMAND_CREDENTIALS = 1 << 2,	/* with arguments it carries a name or password:
					   TLS, loopback or allow_plaintext_auth */
	COMMAND_MESSAGE = 1 << 3,	/* its first number, if given, names a message
					   that is not deleted */
};

struct command {
	const char *name;
	void (*handle)(struct pop3_session *session, const struct pop3_command *cmd);
	unsigned flags;
};

/* The message numbered NUMBER, or NULL after replying -ERR. */
static const struct session_message *session_message(struct pop3_session *session, uint32_t number)
{
	if (number == 0 || number > session->message_count) {
		session_reply(session, "-ERR no such message, only %zu in the mailbox",
			      session->message_count);
		return NULL;
	}
	if (session->messages[number - 1].flags & MESSAGE_FLAG_DELETED) {
		session_reply(session, "-ERR message %u is deleted", number);
		return NULL;
	}
	return &session->messages[number - 1];
}

static void session_stat(struct pop3_session *session)
{
	size_t count = 0;
	int64_t total = 0;

	for (size_t i = 0; i < session->message_count; i++) {
		if (session->messages[i].flags & MESSAGE_FLAG_DELETED)
			continue;
		count++;
		total += session->messages[i].size;
	}
	session_reply(session, "+OK %zu %lld", count, (long long)total);
}

static void session_list(struct pop3_session *session, const struct pop3_command *cmd, bool uidl)
{
	struct evbuffer *out = session_output(session->core);
	const struct session_message *message;

	if (cmd->has_number) {
		message = session_message(session, cmd->numbers[0]);
		if (message == NULL)
			return;
		if (uidl)
			session_reply(session, "+OK %u %s", cmd->numbers[0], message->id);
		else
			session_reply(session, "+OK %u %lld", cmd->numbers[0],
				      (long long)message->size);
		return;
	}
	evbuffer_add_printf(out, "+OK\r\n");
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->messages[i].flags & MESSAGE_FLAG_DELETED)
			continue;
		if (uidl)
			evbuffer_add_printf(out, "%zu %s\r\n", i + 1, session->messages[i].id);
		else
			evbuffer_add_printf(out, "%zu %lld\r\n", i + 1,
					    (long long)session->messages[i].size);
	}
	evbuffer_add(out, ".\r\n", 3);
}

static void session_pickup_free(struct session_pickup *pickup)
{
	free(pickup->ids);
	free(pickup);
}

/* In the writer thread: the moves, all or none. */
static int session_pickup_work(struct store *store, void *arg)
{
	struct session_pickup *pickup = arg;

	for (size_t i = 0; i < pickup->count; i++) {
		if (store_message_move(store, pickup->ids[i], MESSAGE_DELIVERY, MESSAGE_DELIVERED,
				       NULL) < 0)
			return -1;
	}
	return 0;
}

/* In the loop, once the moves committed (or failed): the answer to QUIT. */
static void session_pickup_done(int result, const char *error, void *arg)
{
	struct session_pickup *pickup = arg;
	struct pop3_session *session = pickup->session;
	size_t moved = pickup->count;

	session_pickup_free(pickup);
	if (session == NULL)
		return; /* the client left before the answer; the moves stand */
	session->pickup = NULL;
	if (result < 0) {
		log_event(LOG_ERROR, "error", session->account_name, NULL,
			  "cannot record the pickup: %s", error);
		session_reply(session, "-ERR [SYS/TEMP] messages could not be removed; they will "
				       "be offered again");
		session_close(session);
		return;
	}
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->messages[i].flags != 0)
			log_event(LOG_INFO, "delivered", session->account_name,
				  session->messages[i].id, "to %s", session->peer);
	}
	session_reply(session, "+OK %zu message(s) delivered, bye", moved);
	session->quit_done = true;
	/* P4: the pickup is over; fetch the account's new mail for the next one. */
	fetcher_request(session->server->pg->fetcher, session->account_id, 0);
	session_close(session);
}

/*
 * QUIT in TRANSACTION (the UPDATE state): every message the client retrieved
 * or deleted leaves the Delivery Queue, whatever DELE said (P7), in one
 * transaction committed before +OK. The writer thread commits it (with
 * others queued meanwhile); no command is taken while it does (CLOSING).
 */
static void session_update(struct pop3_session *session)
{
	struct session_pickup *pickup = xcalloc(1, sizeof(*pickup));

	pickup->session = session;
	pickup->ids = xcalloc(session->message_count + 1, sizeof(*pickup->ids));
	for (size_t i = 0; i < session->message_count; i++) {
		if (session->messages[i].flags != 0)
			memcpy(pickup->ids[pickup->count++], session->messages[i].id,
			       sizeof(pickup->ids[0]));
	}
	session_enter_state(session, SESSION_CLOSING);
	if (pickup->count == 0) {
		session_pickup_done(0, NULL, pickup); /* nothing to write */
		return;
	}
	if (writer_submit(session->server->pg->writer, NULL, session_pickup_work,
			  session_pickup_done, pickup) < 0) {
		session_pickup_free(pickup);
		log_event(LOG_ERROR, "error", session->account_name, NULL,
			  "cannot record the pickup: the store is overloaded");
		session_reply(session, "-ERR [SYS/TEMP] messages could not be removed; they will "
				       "be offered again");
		session_close(session);
		return;
	}
	session->pickup = pickup;
}

/* ---- the commands ----------------------------------------------------------- */

static void command_capa(struct pop3_session *session, const struct pop3_command *cmd)
{
	struct evbuffer *out = session_output(session->core);
	(void)cmd;

	evbuffer_add_printf(out, "+OK capability list follows\r\n");
	if (session->state == SESSION_AUTHORIZATION) {
		if (session_plaintext_allowed(session))
			evbuffer_add_printf(out, "USER\r\nSASL PLAIN\r\n");
		if (!session_is_encrypted(session) && session->server->pg->server_tls != NULL)
			evbuffer_add_printf(out, "STLS\r\n");
	}
	/* EXPIRE 0: messages a client retrieved leave the mailbox at QUIT (P7). */
	evbuffer_add_printf(out, "TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
				 "EXPIRE 0\r\nIMPLEMENTATION popgate\r\n.\r\n");
}

static void command_stls(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	if (session_is_encrypted(session)) {
		session_bad_command(session, "already using TLS");
		return;
	}
	if (session->server->pg->server_tls == NULL) {
		session_reply(session, "-ERR [SYS/TEMP] TLS is not available");
		return;
	}
	session_reply(session, "+OK begin TLS negotiation");
	if (session_upgrade_tls(session) < 0)
		session_close(session);
}

/* Decodes an AUTH PLAIN response and starts the login. */
static void command_auth_plain(struct pop3_session *session, const char *b64, size_t len)
{
	char name[NAME_MAX_LEN], password[PASSWORD_MAX_LEN];

	if (pop3_auth_plain_decode(b64, len, name, sizeof(name), password, sizeof(password)) < 0) {
		sodium_memzero(name, sizeof(name));
		sodium_memzero(password, sizeof(password));
		session_bad_command(session, "malformed AUTH PLAIN response");
		return;
	}
	session_login(session, name, password);
	sodium_memzero(name, sizeof(name));
	sodium_memzero(password, sizeof(password));
}

static void command_auth(struct pop3_session *session, const struct pop3_command *cmd)
{
	if (cmd->arg_count == 0) {
		session_reply(session, "+OK\r\nPLAIN\r\n.");
		return;
	}
	if (cmd->arg_len[0] != 5 || strncasecmp(cmd->args[0], "PLAIN", 5) != 0) {
		session_bad_command(session, "unsupported authentication mechanism");
		return;
	}
	if (cmd->arg_count == 1) {
		session->awaiting_sasl = true;
		session_reply(session, "+ ");
		return;
	}
	command_auth_plain(session, cmd->args[1], cmd->arg_len[1]);
}

/* The line after AUTH PLAIN's "+ ". */
static void command_sasl_response(struct pop3_session *session, const char *line, size_t len)
{
	session->awaiting_sasl = false;
	if (len == 1 && line[0] == '*') {
		session_reply(session, "-ERR authentication cancelled");
		return;
	}
	command_auth_plain(session, line, len);
}

static void command_user(struct pop3_session *session, const struct pop3_command *cmd)
{
	if (session->user_name != NULL)
		sodium_memzero(session->user_name, strlen(session->user_name));
	free(session->user_name);
	session->user_name = xstrndup(cmd->args[0], cmd->arg_len[0]);
	session_reply(session, "+OK send your provider password with PASS");
}

static void command_pass(struct pop3_session *session, const struct pop3_command *cmd)
{
	if (session->user_name == NULL) {
		session_bad_command(session, "USER first");
		return;
	}
	char *password = xstrndup(cmd->args[0], cmd->arg_len[0]);
	char *name = session->user_name;
	session->user_name = NULL;
	session_login(session, name, password);
	sodium_memzero(password, strlen(password));
	sodium_memzero(name, strlen(name));
	free(password);
	free(name);
}

static void command_apop(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	session_bad_command(session, "APOP is not supported; use USER and PASS");
}

static void command_noop(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	session_reply(session, "+OK");
}

static void command_stat(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	session_stat(session);
}

static void command_list(struct pop3_session *session, const struct pop3_command *cmd)
{
	session_list(session, cmd, false);
}

static void command_uidl(struct pop3_session *session, const struct pop3_command *cmd)
{
	session_list(session, cmd, true);
}

static void command_retr(struct pop3_session *session, const struct pop3_command *cmd)
{
	session_send_message(session, cmd->numbers[0] - 1, false, 0);
}

static void command_top(struct pop3_session *session, const struct pop3_command *cmd)
{
	session_send_message(session, cmd->numbers[0] - 1, true, cmd->numbers[1]);
}

static void command_dele(struct pop3_session *session, const struct pop3_command *cmd)
{
	session->messages[cmd->numbers[0] - 1].flags |= MESSAGE_FLAG_DELETED;
	session_reply(session, "+OK message %u deleted", cmd->numbers[0]);
}

static void command_rset(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	for (size_t i = 0; i < session->message_count; i++)
		session->messages[i].flags &= (uint8_t)~MESSAGE_FLAG_DELETED;
	session_reply(session, "+OK");
}

static void command_quit(struct pop3_session *session, const struct pop3_command *cmd)
{
	(void)cmd;
	if (session->state == SESSION_TRANSACTION) {
		session_update(session);
		return;
	}
	session_reply(session, "+OK bye");
	session_close(session);
}

/* ---- the table -------------------------------------------------------------- */

#define AUTHORIZATION COMMAND_AUTHORIZATION
#define TRANSACTION COMMAND_TRANSACTION
#define BOTH_STATES (COMMAND_AUTHORIZATION | COMMAND_TRANSACTION)

static const struct command commands[] = {
    [POP3_VERB_UNKNOWN] = {"", NULL, 0}, /* refused by the parser */
    [POP3_VERB_USER] = {"USER", command_user, AUTHORIZATION | COMMAND_CREDENTIALS},
    [POP3_VERB_PASS] = {"PASS", command_pass, AUTHORIZATION},
    [POP3_VERB_STAT] = {"STAT", command_stat, TRANSACTION},
    [POP3_VERB_LIST] = {"LIST", command_list, TRANSACTION | COMMAND_MESSAGE},
    [POP3_VERB_UIDL] = {"UIDL", command_uidl, TRANSACTION | COMMAND_MESSAGE},
    [POP3_VERB_RETR] = {"RETR", command_retr, TRANSACTION | COMMAND_MESSAGE},
    [POP3_VERB_TOP] = {"TOP", command_top, TRANSACTION | COMMAND_MESSAGE},
    [POP3_VERB_DELE] = {"DELE", command_dele, TRANSACTION | COMMAND_MESSAGE},
    [POP3_VERB_RSET] = {"RSET", command_rset, TRANSACTION},
    [POP3_VERB_NOOP] = {"NOOP", command_noop, BOTH_STATES},
    [POP3_VERB_QUIT] = {"QUIT", command_quit, BOTH_STATES},
    [POP3_VERB_CAPA] = {"CAPA", command_capa, BOTH_STATES},
    [POP3_VERB_STLS] = {"STLS", command_stls, AUTHORIZATION},
    [POP3_VERB_AUTH] = {"AUTH", command_auth, AUTHORIZATION | COMMAND_CREDENTIALS},
    [POP3_VERB_APOP] = {"APOP", command_apop, AUTHORIZATION},
};
_Static_assert(sizeof(commands) / sizeof(commands[0]) == POP3_VERB_COUNT,
	       "every verb has a command entry");

#undef AUTHORIZATION
#undef TRANSACTION
#undef BOTH_STATES

/* ---- public ----------------------------------------------------------------- */

void pop3_command_handle(struct pop3_session *session, const char *line, size_t len)
{
	struct pop3_command cmd;
	const struct command *command;
	const char *error;
	bool logged_in = session->state == SESSION_TRANSACTION;

	if (session->awaiting_sasl) {
		command_sasl_response(session, line, len);
		return;
	}
	if (pop3_command_parse(line, len, &cmd, &error) < 0) {
		session_bad_command(session, "%s", error);
		return;
	}
	command = &commands[cmd.verb];
	if (command->handle == NULL ||
	    !(command->flags & (logged_in ? COMMAND_TRANSACTION : COMMAND_AUTHORIZATION))) {
		session_bad_command(session,
				    logged_in ? "%s is not valid after login"
					      : "%s is only valid after login",
				    command->name);
		return;
	}
	if ((command->flags & COMMAND_CREDENTIALS) && cmd.arg_count > 0 &&
	    !session_plaintext_allowed(session)) {
		session_reply(session, "-ERR [AUTH] plain-text login needs TLS first: use STLS");
		return;
	}
	if ((command->flags & COMMAND_MESSAGE) && cmd.has_number &&
	    session_message(session, cmd.numbers[0]) == NULL)
		return;
	command->handle(session, &cmd);
}
