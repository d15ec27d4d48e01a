/*
 * commands.c — the SMTP commands a client may send, as one table: each
 * command's handler and flags (an EHLO or HELO first, inside or outside a
 * mail transaction, after MAIL or after a RCPT, before TLS only), and the
 * dispatch that checks the flags before any handler runs (503 5.5.1).
 * BDAT (CHUNKING, RFC 3030) checks its own sequence: its octets are read
 * before any reply, a refusal's too. BINARYMIME is not offered.
 * AUTH checks the port and TLS itself, for replies of its own (502, 538).
 * Argument syntax is smtp/parse.c's; the relay decision is
 * smtp/relay_policy.c's.
 *
 * Owns nothing: the session (commands.h) holds the state; server.c logs in,
 * starts TLS and stores messages.
 *
 * SECURITY: every line is untrusted. A refusal never echoes what the client
 * sent. AUTH's credentials are copied only into buffers wiped after the
 * login check has them, and are never logged.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sodium.h>

#include "core/config.h"
#include "core/log.h"
#include "core/session.h"
#include "core/util.h"
#include "pop3/parse.h"
#include "popgate.h"
#include "smtp/commands.h"
#include "smtp/parse.h"
#include "smtp/relay_policy.h"

/* Longest user name and password taken from AUTH (RFC 4954 allows the
 * whole 12288-octet line; no console name or password comes near this). */
#define CREDENTIAL_MAX 512
/* The HELO name kept for the Received header, cut to this. */
#define HELO_MAX 255

/* What a command needs before its handler runs. */
enum command_flag {
	COMMAND_HELO = 1 << 0,	       /* after EHLO or HELO */
	COMMAND_OUTSIDE_MAIL = 1 << 1, /* not inside a transaction */
	COMMAND_AFTER_MAIL = 1 << 2,   /* after MAIL */
	COMMAND_AFTER_RCPT = 1 << 3,   /* after a RCPT that was taken */
	COMMAND_BEFORE_TLS = 1 << 4,   /* only before TLS */
};

struct command {
	void (*handle)(struct smtp_session *session, const struct smtp_command *cmd);
	unsigned flags;
};

/* ---- helpers --------------------------------------------------------------------- */

/* Copies the first word of the HELO argument, with every byte that could
 * forge a Received clause or a header line made '?'. */
static char *helo_sanitise(const char *arg, size_t len)
{
	size_t n = 0;

	while (n < len && n < HELO_MAX && arg[n] != ' ')
		n++;
	char *out = xstrndup(arg, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];
		if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == ';' || c == '\\')
			out[i] = '?';
	}
	return out;
}

/* Forgets AUTH LOGIN's user name: an exchange cut short (cancelled,
 * malformed, a line too long) must not leave it for the next AUTH, whose
 * user name would be taken for a password. */
static void sasl_forget(struct smtp_session *session)
{
	if (session->sasl_name == NULL)
		return;
	sodium_memzero(session->sasl_name, strlen(session->sasl_name));
	xfree(&session->sasl_name);
}

/* Whether AUTH may be offered and taken now. */
static bool auth_offered(const struct smtp_session *session)
{
	return session->submission && session_is_tls(session->core) && session->user_name == NULL;
}

/* ---- the commands ----------------------------------------------------------------- */

static void command_helo(struct smtp_session *session, const struct smtp_command *cmd)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	struct evbuffer *out = session_output(session->core);
	bool ehlo = cmd->verb == SMTP_VERB_EHLO;

	smtp_session_reset_transaction(session);
	free(session->helo);
	session->helo = helo_sanitise(cmd->arg, cmd->arg_len);
	session->esmtp = ehlo;
	smtp_session_enter_state(session, SMTP_STATE_READY);
	if (!ehlo) {
		smtp_session_reply(session, "250 %s", cfg->hostname);
		return;
	}
	evbuffer_add_printf(out, "250-%s greets %s\r\n", cfg->hostname, session->peer);
	evbuffer_add_printf(out,
			    "250-PIPELINING\r\n250-SIZE %lld\r\n250-8BITMIME\r\n"
			    "250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n",
			    cfg->smtp_max_message_size);
	if (!session_is_tls(session->core) && session->server->pg->server_tls != NULL)
		evbuffer_add_printf(out, "250-STARTTLS\r\n");
	if (auth_offered(session))
		evbuffer_add_printf(out, "250-AUTH PLAIN LOGIN\r\n");
	evbuffer_add_printf(out, "250 HELP\r\n");
}

static void command_mail(struct smtp_session *session, const struct smtp_command *cmd)
{
	const struct popgate_config *cfg = session->server->pg->cfg;

	/* RFC 6409 4.3: submission is for users who logged in (or clients a
	 * Local Network lets send without, S1). */
	if (session->submission && session->user_name == NULL && !session->in_local_network) {
		smtp_session_reply(session, "530 5.7.0 Authentication required");
		return;
	}
	if (cmd->has_size && cmd->size > (uint64_t)cfg->smtp_max_message_size) {
		smtp_session_reply(session,
				   "552 5.3.4 Message size exceeds the limit of %lld bytes",
				   cfg->smtp_max_message_size);
		return;
	}
	if (!cmd->smtputf8 && smtp_path_is_utf8(cmd->path)) {
		smtp_session_reply(session, "553 5.6.7 A non-ASCII address needs SMTPUTF8");
		return;
	}
	/* Stored as the mailbox the relay gives the next hop (a source route
	 * dropped, the domain lower-cased); a sender the policy's syntax does
	 * not take (postmaster without a domain) is kept as sent. */
	char *path = xasprintf("<%s>", cmd->path);
	char mailbox[RELAY_PATH_MAX];
	session->sender =
	    xstrdup(cmd->path[0] != '\0' && relay_path_mailbox(path, mailbox, sizeof(mailbox)) == 0
			? mailbox
			: cmd->path);
	free(path);
	session->smtputf8 = cmd->smtputf8;
	smtp_session_enter_state(session, SMTP_STATE_MAIL);
	smtp_session_reply(session, "250 2.1.0 Ok");
}

static void command_rcpt(struct smtp_session *session, const struct smtp_command *cmd)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	const struct relay_client client = {
	    .in_local_network = session->in_local_network,
	    .authenticated = session->user_name != NULL,
	};
	char reason[256] = "";

	if (session->recipient_count >= (size_t)cfg->smtp_max_recipients) {
		smtp_session_reply(session, "452 4.5.3 Too many recipients");
		return;
	}
	if (!session->smtputf8 && smtp_path_is_utf8(cmd->path)) {
		smtp_session_reply(session, "553 5.6.7 A non-ASCII address needs SMTPUTF8");
		return;
	}
	/* The policy judges the path as sent, with its angle brackets. */
	char *path = xasprintf("<%s>", cmd->path);
	char mailbox[RELAY_PATH_MAX];
	enum relay_decision decision = relay_policy_check_recipient(
	    &client, path, smtp_session_address_is_local, session->server, reason, sizeof(reason));
	if (decision == RELAY_ACCEPT && relay_path_mailbox(path, mailbox, sizeof(mailbox)) < 0)
		decision = RELAY_BAD_ADDRESS;
	free(path);
	switch (decision) {
	case RELAY_ACCEPT:
		break;
	case RELAY_DENIED:
		log_event(LOG_INFO, "relay_denied", NULL, NULL, "smtp %s: %s", session->peer,
			  reason);
		smtp_session_bad_command(session, "554 5.7.1 Relay access denied");
		return;
	case RELAY_BAD_ADDRESS:
		smtp_session_bad_command(session, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	session->recipients =
	    xrealloc(session->recipients, (session->recipient_count + 1) * sizeof(char *));
	session->recipients[session->recipient_count++] = xstrdup(mailbox);
	smtp_session_enter_state(session, SMTP_STATE_RCPT);
	smtp_session_reply(session, "250 2.1.5 Ok");
}

static void command_data(struct smtp_session *session, const struct smtp_command *cmd)
{
	struct popgate *pg = session->server->pg;

	(void)cmd;
	if (smtp_data_begin(&session->data, pg->store->data_dir,
			    (uint64_t)pg->cfg->smtp_max_message_size) < 0) {
		log_event(LOG_ERROR, "error", NULL, NULL, "smtp %s: cannot create a spool file",
			  session->peer);
		smtp_session_reply(session, "451 4.3.0 Local error in processing; try again later");
		return;
	}
	smtp_session_enter_state(session, SMTP_STATE_DATA);
	smtp_session_reply(session, "354 End data with <CR><LF>.<CR><LF>");
}

/* Why a BDAT may not add to a body now (a static text for 503 5.5.1), or
 * NULL. Its octets are read all the same. */
static const char *chunk_refusal(const struct smtp_session *session)
{
	switch (session->state) {
	case SMTP_STATE_FRESH:
		return "send EHLO or HELO first";
	case SMTP_STATE_MAIL:
		return "need RCPT first";
	case SMTP_STATE_RCPT:
	case SMTP_STATE_CHUNKING:
		return NULL;
	default:
		return "need MAIL first";
	}
}

/* A BDAT's octets were all read (or it had none): its reply. */
static void chunk_done(struct smtp_session *session)
{
	const struct popgate_config *cfg = session->server->pg->cfg;
	const char *refusal = session->chunk_refusal;

	session->chunk_refusal = NULL;
	if (refusal != NULL) {
		smtp_session_bad_command(session, "503 5.5.1 Bad sequence of commands: %s",
					 refusal);
		return;
	}
	if (session->chunk_last) {
		smtp_chunk_end(&session->chunk, &session->data, (size_t)cfg->smtp_max_text_line);
		smtp_session_data_end(session); /* durable, then 250; or the refusal */
		return;
	}
	/* RFC 3030 2: a chunk that broke a limit is refused at once; the
	 * transaction ends, and the BDATs the client pipelined after it get
	 * 503 (their octets read and dropped). */
	if (smtp_data_outcome(&session->data) != SMTP_DATA_OK) {
		smtp_session_data_end(session);
		return;
	}
	smtp_session_reply(session, "250 2.0.0 Ok: %llu octets received",
			   (unsigned long long)session->chunk_size);
}

/*
 * BDAT size [LAST] (RFC 3030): SIZE octets follow the line, whatever the
 * reply; they are read (stored, or dropped when refused) before it, so the
 * session stays in step with a client that pipelined them. The first BDAT
 * of a transaction starts the body; DATA, MAIL and RCPT may not follow it.
 */
static void command_bdat(struct smtp_session *session, const struct smtp_command *cmd)
{
	struct popgate *pg = session->server->pg;

	session->chunk_refusal = chunk_refusal(session);
	session->chunk_size = cmd->chunk_size;
	session->chunk_last = cmd->last;
	if (session->chunk_refusal == NULL && session->state == SMTP_STATE_RCPT) {
		/* A body that could not be begun is refused at its end (451). */
		if (smtp_data_begin(&session->data, pg->store->data_dir,
				    (uint64_t)pg->cfg->smtp_max_message_size) < 0)
			log_event(LOG_ERROR, "error", NULL, NULL,
				  "smtp %s: cannot create a spool file", session->peer);
		smtp_chunk_clear(&session->chunk);
		smtp_session_enter_state(session, SMTP_STATE_CHUNKING);
	}
	if (session->chunk_refusal == NULL)
		smtp_chunk_expect(&session->data, cmd->chunk_size);
	if (cmd->chunk_size > 0) {
		session_read_bytes(session->core, cmd->chunk_size);
		return;
	}
	chunk_done(session);
}

static void command_rset(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_session_reset_transaction(session);
	if (session->state != SMTP_STATE_FRESH)
		smtp_session_enter_state(session, SMTP_STATE_READY);
	smtp_session_reply(session, "250 2.0.0 Ok");
}

static void command_noop(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_session_reply(session, "250 2.0.0 Ok");
}

static void command_quit(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_session_reply(session, "221 2.0.0 Bye");
	smtp_session_close(session);
}

static void command_vrfy(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	/* RFC 5321 3.5.3: not telling which addresses exist. */
	smtp_session_reply(session,
			   "252 2.5.0 Cannot VRFY; send the message and delivery is tried");
}

static void command_expn(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_session_reply(session, "502 5.5.1 EXPN is not offered");
}

static void command_help(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	smtp_session_reply(session, "214 2.0.0 See RFC 5321; commands: EHLO HELO MAIL RCPT DATA "
				    "BDAT RSET NOOP QUIT VRFY STARTTLS AUTH");
}

static void command_starttls(struct smtp_session *session, const struct smtp_command *cmd)
{
	(void)cmd;
	if (session->server->pg->server_tls == NULL) {
		smtp_session_reply(session, "454 4.7.0 TLS not available");
		return;
	}
	smtp_session_reply(session, "220 2.0.0 Ready to start TLS");
	if (smtp_session_start_tls(session) < 0)
		smtp_session_close(session);
}

/* Decodes an AUTH PLAIN response and starts the login. */
static void auth_plain(struct smtp_session *session, const char *b64, size_t len)
{
	char *name = xmalloc(CREDENTIAL_MAX), *password = xmalloc(CREDENTIAL_MAX);

	if (pop3_auth_plain_decode(b64, len, name, CREDENTIAL_MAX, password, CREDENTIAL_MAX) < 0)
		smtp_session_bad_command(session, "501 5.5.2 Malformed AUTH PLAIN response");
	else
		smtp_session_login(session, name, password);
	sodium_memzero(name, CREDENTIAL_MAX);
	sodium_memzero(password, CREDENTIAL_MAX);
	free(name);
	free(password);
}

/* Decodes one base64 line of AUTH LOGIN into OUT (CREDENTIAL_MAX bytes,
 * NUL-terminated). 0, or -1 if malformed, empty or holding a control byte. */
static int auth_login_decode(const char *b64, size_t len, char *out)
{
	size_t n = 0;

	if (sodium_base642bin((unsigned char *)out, CREDENTIAL_MAX - 1, b64, len, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) < 0 ||
	    n == 0)
		return -1;
	out[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)out[i] < 0x20)
			return -1;
	}
	return 0;
}

/* The AUTH LOGIN step for the line B64: the user name, then the password. */
static void auth_login_step(struct smtp_session *session, const char *b64, size_t len)
{
	char *text = xmalloc(CREDENTIAL_MAX);

	if (auth_login_decode(b64, len, text) < 0) {
		sasl_forget(session);
		smtp_session_enter_state(session, SMTP_STATE_READY);
		smtp_session_bad_command(session, "501 5.5.2 Malformed AUTH LOGIN response");
	} else if (session->sasl_name == NULL) {
		session->sasl_name = xstrdup(text);
		session->sasl_step = SMTP_SASL_LOGIN_PASSWORD;
		smtp_session_enter_state(session, SMTP_STATE_SASL);
		smtp_session_reply(session, "334 UGFzc3dvcmQ6"); /* "Password:" */
	} else {
		char *name = session->sasl_name;
		session->sasl_name = NULL;
		smtp_session_login(session, name, text);
		sodium_memzero(name, strlen(name));
		free(name);
	}
	sodium_memzero(text, CREDENTIAL_MAX);
	free(text);
}

static void command_auth(struct smtp_session *session, const struct smtp_command *cmd)
{
	if (!session->submission) {
		smtp_session_bad_command(session,
					 "502 5.5.1 AUTH is offered on the submission port");
		return;
	}
	if (!session_is_tls(session->core)) {
		smtp_session_reply(session, "538 5.7.11 Encryption required: use STARTTLS first");
		return;
	}
	if (session->user_name != NULL) {
		smtp_session_bad_command(session, "503 5.5.1 Already authenticated");
		return;
	}
	sasl_forget(session);
	if (strcmp(cmd->mechanism, "PLAIN") == 0) {
		if (cmd->initial != NULL) {
			auth_plain(session, cmd->initial, cmd->initial_len);
			return;
		}
		session->sasl_step = SMTP_SASL_PLAIN;
		smtp_session_enter_state(session, SMTP_STATE_SASL);
		smtp_session_reply(session, "334 ");
		return;
	}
	if (strcmp(cmd->mechanism, "LOGIN") == 0) {
		session->sasl_step = SMTP_SASL_LOGIN_USER;
		if (cmd->initial != NULL) {
			auth_login_step(session, cmd->initial, cmd->initial_len);
			return;
		}
		smtp_session_enter_state(session, SMTP_STATE_SASL);
		smtp_session_reply(session, "334 VXNlcm5hbWU6"); /* "Username:" */
		return;
	}
	smtp_session_bad_command(session, "504 5.5.4 Unrecognized authentication mechanism");
}

/* The line after a 334: a SASL response, or "*" to cancel. */
static void command_sasl_response(struct smtp_session *session, const char *line, size_t len)
{
	smtp_session_enter_state(session, SMTP_STATE_READY);
	if (len == 1 && line[0] == '*') {
		sasl_forget(session);
		smtp_session_reply(session, "501 5.0.0 Authentication cancelled");
		return;
	}
	if (session->sasl_step == SMTP_SASL_PLAIN)
		auth_plain(session, line, len);
	else
		auth_login_step(session, line, len);
}

/* ---- the table -------------------------------------------------------------- */

static const struct command commands[] = {
    [SMTP_VERB_UNKNOWN] = {NULL, 0}, /* refused by the parser */
    [SMTP_VERB_HELO] = {command_helo, 0},
    [SMTP_VERB_EHLO] = {command_helo, 0},
    [SMTP_VERB_MAIL] = {command_mail, COMMAND_HELO | COMMAND_OUTSIDE_MAIL},
    [SMTP_VERB_RCPT] = {command_rcpt, COMMAND_HELO | COMMAND_AFTER_MAIL},
    [SMTP_VERB_DATA] = {command_data, COMMAND_HELO | COMMAND_AFTER_RCPT},
    [SMTP_VERB_BDAT] = {command_bdat, 0},
    [SMTP_VERB_RSET] = {command_rset, 0},
    [SMTP_VERB_NOOP] = {command_noop, 0},
    [SMTP_VERB_QUIT] = {command_quit, 0},
    [SMTP_VERB_VRFY] = {command_vrfy, 0},
    [SMTP_VERB_EXPN] = {command_expn, 0},
    [SMTP_VERB_HELP] = {command_help, 0},
    [SMTP_VERB_STARTTLS] = {command_starttls,
			    COMMAND_HELO | COMMAND_OUTSIDE_MAIL | COMMAND_BEFORE_TLS},
    [SMTP_VERB_AUTH] = {command_auth, COMMAND_HELO | COMMAND_OUTSIDE_MAIL},
};
_Static_assert(sizeof(commands) / sizeof(commands[0]) == SMTP_VERB_COUNT,
	       "every verb has a command entry");

/* Why COMMAND may not run now (a static text for 503 5.5.1), or NULL. */
static const char *command_refusal(const struct smtp_session *session,
				   const struct command *command)
{
	bool in_mail = session->state == SMTP_STATE_MAIL || session->state == SMTP_STATE_RCPT;

	if ((command->flags & COMMAND_HELO) && session->state == SMTP_STATE_FRESH)
		return "send EHLO or HELO first";
	/* RFC 3030 2: after a BDAT only BDAT, or RSET to give up the body. */
	if ((command->flags & (COMMAND_OUTSIDE_MAIL | COMMAND_AFTER_MAIL | COMMAND_AFTER_RCPT)) &&
	    session->state == SMTP_STATE_CHUNKING)
		return "a BDAT body is being sent: BDAT or RSET";
	if ((command->flags & COMMAND_OUTSIDE_MAIL) && in_mail)
		return "not inside a mail transaction";
	if ((command->flags & COMMAND_AFTER_MAIL) && !in_mail)
		return "need MAIL first";
	if ((command->flags & COMMAND_AFTER_RCPT) && session->state != SMTP_STATE_RCPT)
		return in_mail ? "need RCPT first" : "need MAIL first";
	if ((command->flags & COMMAND_BEFORE_TLS) && session_is_tls(session->core))
		return "TLS already active";
	return NULL;
}

/* ---- public ----------------------------------------------------------------- */

void smtp_command_handle(struct smtp_session *session, const char *line, size_t len)
{
	struct smtp_command *cmd;
	const struct smtp_parse_error *error;
	const struct command *command;
	const char *refusal;

	if (session->state == SMTP_STATE_DATA) {
		if (smtp_data_line(&session->data, line, len))
			smtp_session_data_end(session);
		return;
	}
	if (session->state == SMTP_STATE_SASL) {
		command_sasl_response(session, line, len);
		return;
	}
	/* Too big for the stack with its path buffer in every session's line. */
	cmd = xmalloc(sizeof(*cmd));
	if (smtp_command_parse(line, len, cmd, &error) < 0) {
		smtp_session_bad_command(session, "%d %s %s", error->code, error->status,
					 error->text);
		goto done;
	}
	command = &commands[cmd->verb];
	refusal = command_refusal(session, command);
	if (refusal != NULL) {
		smtp_session_bad_command(session, "503 5.5.1 Bad sequence of commands: %s",
					 refusal);
		goto done;
	}
	command->handle(session, cmd);
done:
	free(cmd);
}

void smtp_command_chunk_bytes(struct smtp_session *session, const char *bytes, size_t len,
			      uint64_t left)
{
	if (session->chunk_refusal == NULL && session->state == SMTP_STATE_CHUNKING)
		smtp_chunk_store(&session->chunk, &session->data, bytes, len,
				 (size_t)session->server->pg->cfg->smtp_max_text_line);
	if (left == 0)
		chunk_done(session);
}

void smtp_command_line_too_long(struct smtp_session *session)
{
	if (session->state == SMTP_STATE_DATA) {
		smtp_data_line_too_long(&session->data);
		return;
	}
	if (session->state == SMTP_STATE_SASL) {
		sasl_forget(session);
		smtp_session_enter_state(session, SMTP_STATE_READY);
	}
	smtp_session_bad_command(session, "500 5.5.2 Line too long");
}
