/*
 * client.c — popgate as an SMTP client: one connection to an MX or relay
 * host (client.h says the conversation and the contract).
 *
 * A state machine over the replies: smtp/reply.c cuts the input into
 * replies, client_handle_reply moves the state on. With PIPELINING, MAIL,
 * the RCPTs and DATA leave in one write and their replies are taken in
 * order (RFC 2920 3.1: every reply is checked, DATA's too).
 *
 * Owns: the connection, its callbacks and timeouts; the message being sent
 * (copies, the body descriptor's dup, the reads in flight); the password,
 * wiped as soon as AUTH is answered.
 * Must never: free the client inside its own handlers (a free asked for
 * there waits for the handler to return: client_release); call the ready or
 * sent callback twice; log a password or body bytes; read the body file in
 * the loop when the read would wait on the disk.
 *
 * SECURITY: replies are untrusted and bounded by reply.c; an unexpected one
 * ends the connection. Command arguments never hold a CR or LF. Credentials
 * go out only on a TLS connection; their lines are added to the output by
 * reference and wiped once written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <sodium.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/reply.h"

/* Bytes of the body read at once. */
#define CLIENT_BODY_CHUNK (64 * 1024)
/* The body is read while the output holds less than this... */
#define CLIENT_OUTPUT_HIGH_WATER (256 * 1024)
/* ...and reading resumes once the output drained below this. */
#define CLIENT_OUTPUT_LOW_WATER (64 * 1024)
/* The longest address sent in MAIL or RCPT (RFC 5321 4.5.3.1.3 says 256;
 * a little room for servers that take more). */
#define CLIENT_ADDRESS_MAX 1000

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

static const char *const client_state_names[] = {
    [CLIENT_GREETING] = "greeting",
    [CLIENT_EHLO] = "ehlo",
    [CLIENT_HELO] = "helo",
    [CLIENT_STARTTLS] = "starttls",
    [CLIENT_TLS_HANDSHAKE] = "tls-handshake",
    [CLIENT_AUTH] = "auth",
    [CLIENT_AUTH_LOGIN_USER] = "auth-login-user",
    [CLIENT_AUTH_LOGIN_PASSWORD] = "auth-login-password",
    [CLIENT_READY] = "ready",
    [CLIENT_MAIL] = "mail",
    [CLIENT_RCPT] = "rcpt",
    [CLIENT_DATA] = "data",
    [CLIENT_BODY] = "body",
    [CLIENT_DOT] = "dot",
    [CLIENT_EMPTY_DOT] = "empty-dot",
    [CLIENT_RSET] = "rset",
    [CLIENT_QUIT] = "quit",
    [CLIENT_CLOSED] = "closed",
};
_Static_assert(sizeof(client_state_names) / sizeof(client_state_names[0]) == CLIENT_STATE_COUNT,
	       "every client state has a name");

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
	char *auth_user;
	char *auth_password; /* wiped and freed once AUTH is answered */
	enum smtp_tls_mode tls_mode;
	int timeout;

	enum client_state state;
	struct smtp_reply_parser parser;
	struct smtp_client_capabilities capabilities;
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

static void client_read_cb(struct bufferevent *bev, void *ctx);
static void client_write_cb(struct bufferevent *bev, void *ctx);
static void client_event_cb(struct bufferevent *bev, short events, void *ctx);
static void client_body_fill(struct smtp_client *client);

/* ---- helpers ---------------------------------------------------------- */

static void client_enter_state(struct smtp_client *client, enum client_state state)
{
	log_debug("smtp client %s: %s -> %s", client->server_name,
		  client_state_names[client->state], client_state_names[state]);
	client->state = state;
}

/* Whether the handler running must stop touching the connection. */
static bool client_gone(const struct smtp_client *client)
{
	return client->free_requested || client->state == CLIENT_CLOSED;
}

static void client_password_wipe(struct smtp_client *client)
{
	if (client->auth_password != NULL) {
		sodium_memzero(client->auth_password, strlen(client->auth_password));
		xfree(&client->auth_password);
	}
}

static void client_set_timeouts(struct smtp_client *client, bool read, bool write)
{
	struct timeval tv = {.tv_sec = client->timeout};

	if (client->bev != NULL)
		bufferevent_set_timeouts(client->bev, read ? &tv : NULL, write ? &tv : NULL);
}

/* Frees SEND; a read in flight takes its descriptor and closes it. */
static void client_send_free(struct client_send *send)
{
	if (send == NULL)
		return;
	if (send->reading != NULL) {
		send->reading->client = NULL;
		send->reading = NULL;
	} else if (send->fd >= 0) {
		close(send->fd);
	}
	free(send->sender);
	for (size_t i = 0; i < send->recipient_count; i++)
		free(send->recipients[i]);
	free(send->recipients);
	free(send->prepend);
	free(send->chunk);
	smtp_reply_clear(&send->result.mail);
	for (size_t i = 0; i < send->recipient_count; i++)
		smtp_reply_clear(&send->result.recipients[i]);
	free(send->result.recipients);
	smtp_reply_clear(&send->result.data);
	free(send);
}

static void client_destroy(struct smtp_client *client)
{
	client_send_free(client->send);
	if (client->bev != NULL)
		bufferevent_free(client->bev);
	if (client->kick != NULL)
		event_free(client->kick);
	smtp_reply_parser_clear(&client->parser);
	client_password_wipe(client);
	free(client->helo_name);
	free(client->server_name);
	free(client->ca_file);
	free(client->auth_user);
	free(client);
}

/* Ends a handler: a free asked for inside it happens now. */
static void client_release(struct smtp_client *client)
{
	if (--client->busy == 0 && client->free_requested)
		client_destroy(client);
}

/* Closes the connection; nothing more is read or written. */
static void client_close(struct smtp_client *client)
{
	if (client->state != CLIENT_CLOSED)
		client_enter_state(client, CLIENT_CLOSED);
	/* Freeing a bufferevent inside its own callback is safe: libevent
	 * holds a reference while the callback runs. */
	if (client->bev != NULL) {
		bufferevent_free(client->bev);
		client->bev = NULL;
	}
	client_password_wipe(client);
}

/* A QUIT is over (or the client was closed for it): CLOSED is told from
 * the loop (client_kick_cb), never inside smtp_client_quit. */
static void client_quit_later(struct smtp_client *client)
{
	static const struct timeval now = {0, 0};

	client_close(client);
	evtimer_add(client->kick, &now);
}

/* In a handler: tells CLOSED, and the client is freed when it returns. */
static void client_quit_finish(struct smtp_client *client)
{
	smtp_client_closed_cb *closed = client->closed;

	client->closed = NULL;
	client->free_requested = true;
	if (closed != NULL)
		closed(client, client->closed_ctx);
}

/* The message is done (or failed): SENT is told, the client is idle again
 * unless the connection is closed. */
static void client_send_complete(struct smtp_client *client)
{
	struct client_send *send = client->send;

	client->send = NULL;
	if (client->state != CLIENT_CLOSED) {
		client_enter_state(client, CLIENT_READY);
		client_set_timeouts(client, false, false);
		bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
	}
	send->result.error = client->state == CLIENT_CLOSED ? client->error : NULL;
	if (send->sent != NULL && !client->quitting)
		send->sent(client, &send->result, send->ctx);
	client_send_free(send);
}

static void client_ready_report(struct smtp_client *client, const struct smtp_reply *reply,
				const char *error)
{
	smtp_client_ready_cb *ready = client->ready;

	client->ready = NULL;
	if (ready != NULL && !client->quitting)
		ready(client, reply, error, client->ready_ctx);
}

/*
 * Ends the session on an error: records why (REPLY the server's reply that
 * caused it, or NULL), closes the connection, and tells whoever waits: the
 * message being sent, or the ready callback. A quitting client tells its
 * CLOSED callback instead, from the loop.
 */
static void client_fail(struct smtp_client *client, const struct smtp_reply *reply, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
static void client_fail(struct smtp_client *client, const struct smtp_reply *reply, const char *fmt,
			...)
{
	va_list ap;

	if (client->state == CLIENT_CLOSED)
		return;
	va_start(ap, fmt);
	vsnprintf(client->error, sizeof(client->error), fmt, ap);
	va_end(ap);
	log_debug("smtp client %s: %s", client->server_name, client->error);
	client_close(client);
	if (client->quitting) {
		client_quit_later(client);
		return;
	}
	if (client->send != NULL)
		client_send_complete(client);
	else if (client->ready != NULL)
		client_ready_report(client, reply, reply != NULL ? NULL : client->error);
}

/* Fails on REPLY, its text in the error. */
static void client_fail_reply(struct smtp_client *client, const struct smtp_reply *reply,
			      const char *what)
{
	char text[300];

	smtp_reply_format(reply, text, sizeof(text));
	client_fail(client, reply, "%s: %s", what, text);
}

/* Wipes and frees a command line once libevent is done with it. */
static void client_line_cleanup(const void *data, size_t len, void *extra)
{
	(void)extra;
	sodium_memzero((void *)data, len);
	free((void *)data);
}

/*
 * Queues one command line. A line with a CR or LF in it is refused and the
 * session fails (every argument was checked before; this is the last
 * guard). Lines go by reference, wiped when written: an AUTH line must not
 * stay in libevent's chunks. 0, or -1 with the client failed.
 */
static int client_write_line(struct smtp_client *client, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int client_write_line(struct smtp_client *client, const char *fmt, ...)
{
	va_list ap;
	char *line;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0) {
		client_fail(client, NULL, "cannot format a command");
		return -1;
	}
	line = xmalloc((size_t)len + 3);
	va_start(ap, fmt);
	vsnprintf(line, (size_t)len + 1, fmt, ap);
	va_end(ap);
	if (memchr(line, '\r', (size_t)len) != NULL || memchr(line, '\n', (size_t)len) != NULL) {
		client_line_cleanup(line, (size_t)len, NULL);
		client_fail(client, NULL, "refused to send a command with a CR or LF in it");
		return -1;
	}
	memcpy(line + len, "\r\n", 2);
	if (evbuffer_add_reference(bufferevent_get_output(client->bev), line, (size_t)len + 2,
				   client_line_cleanup, NULL) < 0) {
		client_line_cleanup(line, (size_t)len + 2, NULL);
		client_fail(client, NULL, "cannot queue a command");
		return -1;
	}
	return 0;
}

/* Base64 of RAW[0..LEN), allocated; the caller wipes and frees it. */
static char *client_base64(const void *raw, size_t len, size_t *size)
{
	*size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(*size);

	sodium_bin2base64(b64, *size, raw, len, sodium_base64_VARIANT_ORIGINAL);
	return b64;
}

/* Whether ADDRESS may go into MAIL FROM:<…> or RCPT TO:<…>: no control byte
 * (a CR or LF would smuggle a command), no angle bracket, not too long. */
static bool client_address_valid(const char *address, bool empty_allowed)
{
	size_t len = strlen(address);

	if (len > CLIENT_ADDRESS_MAX || (len == 0 && !empty_allowed))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)address[i];
		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

static bool client_is_ascii(const char *s)
{
	for (; *s != '\0'; s++) {
		if ((unsigned char)*s >= 0x80)
			return false;
	}
	return true;
}

/* ---- the session: greeting, EHLO, STARTTLS, AUTH -------------------------- */

/* One EHLO keyword line: "SIZE 10240000", "AUTH PLAIN LOGIN", "AUTH=LOGIN". */
static void client_take_capability(struct smtp_client *client, const char *line, size_t len)
{
	struct smtp_client_capabilities *caps = &client->capabilities;
	char word[24];
	size_t n = 0;

	while (n < len && n < sizeof(word) - 1 && line[n] != ' ' && line[n] != '=') {
		word[n] = line[n];
		n++;
	}
	word[n] = '\0';
	if (util_strcaseeq(word, "PIPELINING")) {
		caps->pipelining = true;
	} else if (util_strcaseeq(word, "SIZE")) {
		caps->size = true;
		caps->size_max = 0;
		for (size_t i = n + 1; i < len && line[i] >= '0' && line[i] <= '9'; i++) {
			if (caps->size_max > (UINT64_MAX - 9) / 10) {
				caps->size_max = 0; /* absurd: as if no limit were given */
				break;
			}
			caps->size_max = caps->size_max * 10 + (uint64_t)(line[i] - '0');
		}
	} else if (util_strcaseeq(word, "8BITMIME")) {
		caps->eight_bit_mime = true;
	} else if (util_strcaseeq(word, "STARTTLS")) {
		caps->starttls = true;
	} else if (util_strcaseeq(word, "SMTPUTF8")) {
		caps->smtputf8 = true;
	} else if (util_strcaseeq(word, "ENHANCEDSTATUSCODES")) {
		caps->enhanced_status_codes = true;
	} else if (util_strcaseeq(word, "AUTH")) {
		/* The mechanisms, separated by spaces. */
		size_t i = n;
		while (i < len) {
			while (i < len && (line[i] == ' ' || line[i] == '='))
				i++;
			size_t start = i;
			while (i < len && line[i] != ' ')
				i++;
			if (i - start == 5 && strncasecmp(line + start, "PLAIN", 5) == 0)
				caps->auth_plain = true;
			else if (i - start == 5 && strncasecmp(line + start, "LOGIN", 5) == 0)
				caps->auth_login = true;
		}
	}
}

/* The EHLO reply's lines after the first (the server's name). */
static void client_take_capabilities(struct smtp_client *client, const struct smtp_reply *reply)
{
	const char *line = strchr(reply->text, '\n');

	memset(&client->capabilities, 0, sizeof(client->capabilities));
	while (line != NULL) {
		line++;
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
		client_take_capability(client, line, len);
		line = end;
	}
}

static void client_session_ready(struct smtp_client *client)
{
	client_enter_state(client, CLIENT_READY);
	client_set_timeouts(client, false, false);
	log_debug("smtp client %s: ready (%s%s)", client->server_name,
		  client->tls_active ? "TLS" : "plain",
		  client->authenticated ? ", authenticated" : "");
	client_ready_report(client, NULL, NULL);
}

static void client_send_ehlo(struct smtp_client *client)
{
	if (client_write_line(client, "EHLO %s", client->helo_name) == 0)
		client_enter_state(client, CLIENT_EHLO);
}

/* AUTH PLAIN with an initial response (RFC 4954), or AUTH LOGIN. */
static void client_send_auth(struct smtp_client *client)
{
	const struct smtp_client_capabilities *caps = &client->capabilities;

	if (!caps->auth_plain && !caps->auth_login) {
		client_fail(client, NULL,
			    "the server offers no AUTH mechanism popgate uses (PLAIN "
			    "or LOGIN)");
		return;
	}
	if (!caps->auth_plain) {
		if (client_write_line(client, "AUTH LOGIN") == 0)
			client_enter_state(client, CLIENT_AUTH_LOGIN_USER);
		return;
	}
	size_t user_len = strlen(client->auth_user), pass_len = strlen(client->auth_password);
	size_t raw_len = 1 + user_len + 1 + pass_len, b64_size;
	unsigned char *raw = xmalloc(raw_len);

	raw[0] = '\0'; /* no authorisation identity */
	memcpy(raw + 1, client->auth_user, user_len);
	raw[1 + user_len] = '\0';
	memcpy(raw + 2 + user_len, client->auth_password, pass_len);
	char *b64 = client_base64(raw, raw_len, &b64_size);
	sodium_memzero(raw, raw_len);
	free(raw);
	client_password_wipe(client);
	if (client_write_line(client, "AUTH PLAIN %s", b64) == 0)
		client_enter_state(client, CLIENT_AUTH);
	sodium_memzero(b64, b64_size);
	free(b64);
}

/* After EHLO (or HELO, or a refused STARTTLS): TLS, AUTH, or ready. */
static void client_after_ehlo(struct smtp_client *client)
{
	if (!client->tls_active && !client->tls_refused && client->tls_mode != SMTP_TLS_NONE) {
		if (client->capabilities.starttls) {
			if (client_write_line(client, "STARTTLS") == 0)
				client_enter_state(client, CLIENT_STARTTLS);
			return;
		}
		if (client->tls_mode != SMTP_TLS_OPPORTUNISTIC) {
			client_fail(client, NULL,
				    "the server does not offer STARTTLS, which the "
				    "TLS mode requires");
			return;
		}
	}
	if (client->auth_user != NULL) {
		if (!client->tls_active) {
			client_fail(client, NULL,
				    "refused to send credentials over a connection "
				    "without TLS");
			return;
		}
		client_send_auth(client);
		return;
	}
	client_session_ready(client);
}

/* 220 to STARTTLS: the handshake, through the connector. */
static void client_start_tls(struct smtp_client *client)
{
	struct connector_target target = {
	    .host = client->server_name,
	    .tls = CONNECTOR_TLS_UPGRADE,
	    .ca_file = client->ca_file,
	    .verify = client->tls_mode == SMTP_TLS_VERIFIED,
	    .timeout = client->timeout,
	};
	char err[300];
	struct bufferevent *tls_bev =
	    connector_start_tls(client->connector, client->bev, &target, err, sizeof(err));

	if (tls_bev == NULL) {
		client_fail(client, NULL, "%s", err);
		return;
	}
	/* The connector dropped what the server sent after its 220; a reply
	 * half read before the handshake must not be finished after it. */
	smtp_reply_parser_clear(&client->parser);
	smtp_reply_parser_init(&client->parser);
	client->bev = tls_bev;
	bufferevent_setcb(client->bev, client_read_cb, client_write_cb, client_event_cb, client);
	bufferevent_enable(client->bev, EV_READ | EV_WRITE);
	client_set_timeouts(client, true, true);
	client_enter_state(client, CLIENT_TLS_HANDSHAKE);
}

/* ---- a message: MAIL, RCPT, DATA, the body ------------------------------- */

/* A RSET closes a transaction that did not end with the body accepted. */
static void client_send_rset(struct smtp_client *client)
{
	if (client_write_line(client, "RSET") == 0)
		client_enter_state(client, CLIENT_RSET);
}

static int client_send_rcpt(struct smtp_client *client, size_t index)
{
	client->send->rcpt_sent++;
	return client_write_line(client, "RCPT TO:<%s>", client->send->recipients[index]);
}

/* Adds body bytes (or, with DATA NULL, the end) to the output, encoded. */
static void client_body_add(struct smtp_client *client, const char *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(client->bev);
	struct evbuffer_iovec vec;
	size_t room = data != NULL ? 2 * len + 1 : 5;

	if (evbuffer_reserve_space(out, (ev_ssize_t)room, &vec, 1) < 1) {
		client_fail(client, NULL, "cannot queue the body");
		return;
	}
	if (data != NULL)
		vec.iov_len = smtp_dot_encode(&client->send->encoder, data, len, vec.iov_base);
	else
		vec.iov_len = smtp_dot_encoder_finish(&client->send->encoder, vec.iov_base);
	evbuffer_commit_space(out, &vec, 1);
}

/* The body's bytes are all queued: the final dot, then its reply. */
static void client_body_end(struct smtp_client *client)
{
	client_body_add(client, NULL, 0);
	if (client_gone(client))
		return;
	bufferevent_setwatermark(client->bev, EV_WRITE, 0, 0);
	client_set_timeouts(client, true, true);
	client_enter_state(client, CLIENT_DOT);
}

/* N bytes read from the body file at the send's offset (N < 0: the read
 * failed with ERROR; 0: the file ended). */
static void client_body_data(struct smtp_client *client, const char *data, ssize_t n, int error)
{
	struct client_send *send = client->send;

	if (n < 0) {
		/* Mid-body there is no way to say so: the connection ends before
		 * the final dot, and the server drops the message. */
		client_fail(client, NULL, "cannot read the message body: %s", strerror(error));
		return;
	}
	if (n == 0) {
		client_fail(client, NULL, "the message body ends %llu bytes before its size",
			    (unsigned long long)(send->size - send->offset));
		return;
	}
	send->offset += (uint64_t)n;
	client_body_add(client, data, (size_t)n);
}

/* In an offload thread. */
static void client_read_work(void *arg)
{
	struct client_read *read_job = arg;

	do
		read_job->n =
		    pread(read_job->fd, read_job->chunk, read_job->want, (off_t)read_job->offset);
	while (read_job->n < 0 && errno == EINTR);
	read_job->error = read_job->n < 0 ? errno : 0;
}

/* In the loop: the bytes go out, and the filling goes on. */
static void client_read_done(void *arg)
{
	struct client_read *read_job = arg;
	struct smtp_client *client = read_job->client;

	if (client == NULL) {
		close(read_job->fd);
	} else {
		client->busy++;
		client->send->reading = NULL;
		client_body_data(client, read_job->chunk, read_job->n, read_job->error);
		if (!client_gone(client))
			client_body_fill(client);
		client_release(client);
	}
	free(read_job->chunk);
	free(read_job);
}

/*
 * Fills the output from the body file up to the high-water mark. A read
 * that would wait on the disk (RWF_NOWAIT says EAGAIN) goes to an offload
 * thread and the filling goes on when it is done: the loop never waits on
 * the disk, and a body in the page cache is read here without a thread's
 * round trip (as pop3/server.c serves RETR).
 */
static void client_body_fill(struct smtp_client *client)
{
	while (client->state == CLIENT_BODY && !client->free_requested &&
	       client->send->reading == NULL &&
	       evbuffer_get_length(bufferevent_get_output(client->bev)) <
		   CLIENT_OUTPUT_HIGH_WATER) {
		struct client_send *send = client->send;
		if (send->offset >= send->size) {
			client_body_end(client);
			return;
		}
		uint64_t left = send->size - send->offset;
		size_t want = left < CLIENT_BODY_CHUNK ? (size_t)left : CLIENT_BODY_CHUNK;
		struct iovec vec = {.iov_base = send->chunk, .iov_len = want};
		ssize_t n = preadv2(send->fd, &vec, 1, (off_t)send->offset, RWF_NOWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
			n = pread(send->fd, send->chunk, want,
				  (off_t)send->offset); /* no RWF_NOWAIT */
		if (n < 0 && errno == EAGAIN) {
			struct client_read *read_job = xcalloc(1, sizeof(*read_job));
			read_job->client = client;
			read_job->fd = send->fd;
			read_job->offset = send->offset;
			read_job->want = want;
			read_job->chunk = xmalloc(CLIENT_BODY_CHUNK);
			send->reading = read_job;
			offload_run(client->offload, client_read_work, client_read_done, read_job);
			return;
		}
		client_body_data(client, send->chunk, n, n < 0 ? errno : 0);
	}
}

/* 354: the prepended lines, then the file. */
static void client_body_start(struct smtp_client *client)
{
	struct client_send *send = client->send;

	client_enter_state(client, CLIENT_BODY);
	smtp_dot_encoder_init(&send->encoder);
	send->chunk = xmalloc(CLIENT_BODY_CHUNK);
	/* While the body is written the server says nothing: only the write
	 * side is timed. The write callback refills below the low-water mark. */
	client_set_timeouts(client, false, true);
	bufferevent_setwatermark(client->bev, EV_WRITE, CLIENT_OUTPUT_LOW_WATER, 0);
	if (send->prepend != NULL)
		client_body_add(client, send->prepend, strlen(send->prepend));
	if (!client_gone(client))
		client_body_fill(client);
}

/* MAIL FROM, and with PIPELINING the RCPTs and DATA behind it. */
static void client_send_envelope(struct smtp_client *client)
{
	struct client_send *send = client->send;
	const struct smtp_client_capabilities *caps = &client->capabilities;
	char size[32] = "";
	bool utf8 = !client_is_ascii(send->sender);

	for (size_t i = 0; i < send->recipient_count; i++)
		utf8 = utf8 || !client_is_ascii(send->recipients[i]);
	if (caps->size)
		snprintf(
		    size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)(send->size + (send->prepend ? strlen(send->prepend) : 0)));
	if (client_write_line(client, "MAIL FROM:<%s>%s%s%s", send->sender, size,
			      caps->eight_bit_mime ? " BODY=8BITMIME" : "",
			      utf8 ? " SMTPUTF8" : "") < 0)
		return;
	client_enter_state(client, CLIENT_MAIL);
	client_set_timeouts(client, true, true);
	if (!send->pipelined)
		return;
	for (size_t i = 0; i < send->recipient_count; i++) {
		if (client_send_rcpt(client, i) < 0)
			return;
	}
	client_write_line(client, "DATA");
}

/* The replies of a transaction, in order. */
static void client_handle_send_reply(struct smtp_client *client, struct smtp_reply *reply)
{
	struct client_send *send = client->send;
	bool mail_ok = smtp_reply_positive(&send->result.mail);

	switch (client->state) {
	case CLIENT_MAIL:
		send->result.mail = *reply;
		*reply = (struct smtp_reply){0};
		if (send->pipelined) {
			client_enter_state(client, CLIENT_RCPT);
			return;
		}
		if (!smtp_reply_positive(&send->result.mail)) {
			client_send_rset(client);
			return;
		}
		if (client_send_rcpt(client, 0) == 0)
			client_enter_state(client, CLIENT_RCPT);
		return;
	case CLIENT_RCPT: {
		size_t index = send->rcpt_answered++;
		if (mail_ok) {
			if (smtp_reply_positive(reply))
				send->accepted++;
			send->result.recipients[index] = *reply;
			*reply = (struct smtp_reply){0};
		}
		if (send->pipelined) {
			if (send->rcpt_answered == send->recipient_count)
				client_enter_state(client, CLIENT_DATA);
			return;
		}
		if (send->rcpt_sent < send->recipient_count) {
			client_send_rcpt(client, send->rcpt_sent);
			return;
		}
		if (send->accepted == 0) {
			client_send_rset(client);
			return;
		}
		if (client_write_line(client, "DATA") == 0)
			client_enter_state(client, CLIENT_DATA);
		return;
	}
	case CLIENT_DATA:
		if (reply->code == 354) {
			if (send->accepted > 0 && mail_ok) {
				client_body_start(client);
				return;
			}
			/* Pipelined, and the server took DATA with no recipient:
			 * end an empty body (RFC 2920 3.1). */
			if (client_write_line(client, ".") == 0)
				client_enter_state(client, CLIENT_EMPTY_DOT);
			return;
		}
		if (mail_ok) {
			send->result.data = *reply;
			*reply = (struct smtp_reply){0};
		}
		client_send_rset(client);
		return;
	case CLIENT_BODY:
		/* A reply while the body is written: the server gave up on it. The
		 * stream is out of step; the connection ends. */
		send->result.data = *reply;
		*reply = (struct smtp_reply){0};
		client_fail(client, NULL, "the server replied before the end of the body");
		return;
	case CLIENT_DOT:
		/* The final dot ends the transaction whatever its reply: no RSET. */
		send->result.data = *reply;
		*reply = (struct smtp_reply){0};
		client_send_complete(client);
		return;
	case CLIENT_EMPTY_DOT:
		client_send_complete(client);
		return;
	case CLIENT_RSET:
		if (!smtp_reply_positive(reply)) {
			client_fail_reply(client, reply, "the server refused RSET");
			return;
		}
		client_send_complete(client);
		return;
	default:
		return;
	}
}

/* ---- replies and events ---------------------------------------------------- */

static void client_handle_reply(struct smtp_client *client, struct smtp_reply *reply)
{
	/* A message answered here waits for the loop to report it: the server
	 * was asked nothing, so any reply now is unasked for. */
	if (client->send != NULL && client->send->early) {
		client_fail_reply(client, reply, "an unexpected reply from the server");
		return;
	}
	switch (client->state) {
	case CLIENT_GREETING:
		if (reply->code != 220) {
			client_fail_reply(client, reply, "the server refused the session");
			return;
		}
		client_send_ehlo(client);
		return;
	case CLIENT_EHLO:
		if (smtp_reply_positive(reply)) {
			client_take_capabilities(client, reply);
			client_after_ehlo(client);
			return;
		}
		/* RFC 5321 3.2: a server that does not know EHLO says 5yz; then
		 * HELO, and no extensions. Not after STARTTLS: that server knew it. */
		if (smtp_reply_permanent(reply) && !client->tls_active) {
			if (client_write_line(client, "HELO %s", client->helo_name) == 0)
				client_enter_state(client, CLIENT_HELO);
			return;
		}
		client_fail_reply(client, reply, "the server refused EHLO");
		return;
	case CLIENT_HELO:
		if (!smtp_reply_positive(reply)) {
			client_fail_reply(client, reply, "the server refused HELO");
			return;
		}
		memset(&client->capabilities, 0, sizeof(client->capabilities));
		client_after_ehlo(client);
		return;
	case CLIENT_STARTTLS:
		if (reply->code == 220) {
			client_start_tls(client);
			return;
		}
		if (client->tls_mode == SMTP_TLS_OPPORTUNISTIC) {
			client->tls_refused = true;
			client_after_ehlo(client);
			return;
		}
		client_fail_reply(client, reply, "the server refused STARTTLS");
		return;
	case CLIENT_AUTH_LOGIN_USER:
	case CLIENT_AUTH_LOGIN_PASSWORD: {
		if (reply->code != 334) {
			client_password_wipe(client);
			client_fail_reply(client, reply, "the server refused AUTH LOGIN");
			return;
		}
		bool user = client->state == CLIENT_AUTH_LOGIN_USER;
		const char *value = user ? client->auth_user : client->auth_password;
		size_t b64_size;
		char *b64 = client_base64(value, strlen(value), &b64_size);
		if (!user)
			client_password_wipe(client);
		if (client_write_line(client, "%s", b64) == 0)
			client_enter_state(client, user ? CLIENT_AUTH_LOGIN_PASSWORD : CLIENT_AUTH);
		sodium_memzero(b64, b64_size);
		free(b64);
		return;
	}
	case CLIENT_AUTH:
		client_password_wipe(client);
		if (reply->code != 235) {
			client_fail_reply(client, reply, "the server refused the login");
			return;
		}
		client->authenticated = true;
		client_session_ready(client);
		return;
	case CLIENT_MAIL:
	case CLIENT_RCPT:
	case CLIENT_DATA:
	case CLIENT_BODY:
	case CLIENT_DOT:
	case CLIENT_EMPTY_DOT:
	case CLIENT_RSET:
		client_handle_send_reply(client, reply);
		return;
	case CLIENT_QUIT:
		client_quit_later(client);
		return;
	case CLIENT_READY:
	case CLIENT_TLS_HANDSHAKE:
	case CLIENT_CLOSED:
	case CLIENT_STATE_COUNT:
		break;
	}
	/* A reply no command asked for (a 421 while idle, say): the server is
	 * going away or out of step. */
	client_fail_reply(client, reply, "an unexpected reply from the server");
}

/* Takes the replies waiting in the input, one after the other. */
static void client_process_input(struct smtp_client *client)
{
	while (client->bev != NULL && !client_gone(client) &&
	       client->state != CLIENT_TLS_HANDSHAKE) {
		struct evbuffer *in = bufferevent_get_input(client->bev);
		struct evbuffer_iovec vec;
		struct smtp_reply reply = {0};
		size_t used = 0;

		if (evbuffer_get_length(in) == 0 || evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			return;
		int r = smtp_reply_parser_feed(&client->parser, vec.iov_base, vec.iov_len, &used,
					       &reply);
		evbuffer_drain(in, used);
		if (r < 0) {
			client_fail(client, NULL,
				    "a malformed reply from the server in state %s: %s",
				    client_state_names[client->state], client->parser.error);
			return;
		}
		if (r == 1) {
			client_handle_reply(client, &reply);
			smtp_reply_clear(&reply);
		}
	}
}

static void client_read_cb(struct bufferevent *bev, void *ctx)
{
	struct smtp_client *client = ctx;
	(void)bev;

	client->busy++;
	client_process_input(client);
	client_release(client);
}

static void client_write_cb(struct bufferevent *bev, void *ctx)
{
	struct smtp_client *client = ctx;
	(void)bev;

	client->busy++;
	if (client->state == CLIENT_BODY)
		client_body_fill(client);
	client_release(client);
}

static void client_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct smtp_client *client = ctx;
	unsigned long ssl_error;
	const char *state = client_state_names[client->state];

	client->busy++;
	if (events & BEV_EVENT_CONNECTED) {
		if (client->state == CLIENT_TLS_HANDSHAKE) {
			client->tls_active = true;
			memset(&client->capabilities, 0, sizeof(client->capabilities));
			client_send_ehlo(client); /* RFC 3207 4.2: forget, ask again */
			client_process_input(client);
		}
		goto done;
	}
	ssl_error = connector_tls_error(bev, events);
	if (client->state == CLIENT_TLS_HANDSHAKE)
		client->tls_failed = true;
	if (client->state == CLIENT_QUIT) {
		/* The server closed first, or did not answer QUIT: done either way. */
		client_quit_later(client);
		goto done;
	}
	if (events & BEV_EVENT_TIMEOUT) {
		client_fail(client, NULL, "timeout in state %s after %d s", state, client->timeout);
	} else if (events & BEV_EVENT_ERROR) {
		if (ssl_error != 0) {
			char buf[200];
			ERR_error_string_n(ssl_error, buf, sizeof(buf));
			client_fail(client, NULL, "TLS error in state %s: %s", state, buf);
		} else {
			int err = EVUTIL_SOCKET_ERROR();
			client_fail(client, NULL, "connection error in state %s: %s", state,
				    err ? evutil_socket_error_to_string(err) : "closed");
		}
	} else if (events & BEV_EVENT_EOF) {
		client_fail(client, NULL, "the server closed the connection in state %s", state);
	}
done:
	client_release(client);
}

/* From the loop: input buffered before the client was made, or the early
 * answer to a message (smtp_client_send). */
static void client_kick_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct smtp_client *client = ctx;
	(void)fd;
	(void)what;

	client->busy++;
	if (client->quitting) {
		if (client->state == CLIENT_CLOSED)
			client_quit_finish(client);
	} else if (client->send != NULL && client->send->early) {
		client_send_complete(client);
	} else {
		client_process_input(client);
	}
	client_release(client);
}

/* ---- public ------------------------------------------------------------ */

struct smtp_client *smtp_client_new(struct connector *connector, struct bufferevent *bev,
				    const struct smtp_client_config *config,
				    smtp_client_ready_cb *ready, void *ctx)
{
	static const struct timeval now = {0, 0};
	struct smtp_client *client;

	if (config->helo_name == NULL || config->server_name == NULL || config->offload == NULL ||
	    strpbrk(config->helo_name, "\r\n ") != NULL || config->helo_name[0] == '\0' ||
	    strpbrk(config->server_name, "\r\n") != NULL || config->timeout_seconds <= 0) {
		bufferevent_free(bev);
		return NULL;
	}
	client = xcalloc(1, sizeof(*client));
	client->connector = connector;
	client->offload = config->offload;
	client->bev = bev;
	client->helo_name = xstrdup(config->helo_name);
	client->server_name = xstrdup(config->server_name);
	client->ca_file = config->ca_file != NULL ? xstrdup(config->ca_file) : NULL;
	if (config->auth_user != NULL) {
		client->auth_user = xstrdup(config->auth_user);
		client->auth_password = xstrdup(config->auth_password ? config->auth_password : "");
	}
	client->tls_mode = config->tls_mode;
	client->timeout = config->timeout_seconds;
	client->ready = ready;
	client->ready_ctx = ctx;
	/* Implicit TLS (port 465): the connection is TLS already. */
	client->tls_active = bufferevent_openssl_get_ssl(bev) != NULL;
	smtp_reply_parser_init(&client->parser);
	client->state = CLIENT_GREETING;
	bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, client);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	client_set_timeouts(client, true, true);
	client->kick = evtimer_new(bufferevent_get_base(bev), client_kick_cb, client);
	evtimer_add(client->kick, &now);
	return client;
}

int smtp_client_send(struct smtp_client *client, const struct smtp_client_message *message,
		     smtp_client_sent_cb *sent, void *ctx)
{
	static const struct timeval now = {0, 0};
	struct client_send *send;
	int fd;

	if (!smtp_client_reusable(client) || message->recipient_count == 0 ||
	    message->sender == NULL || !client_address_valid(message->sender, true))
		return -1;
	for (size_t i = 0; i < message->recipient_count; i++) {
		if (message->recipients[i] == NULL ||
		    !client_address_valid(message->recipients[i], false))
			return -1;
	}
	fd = fcntl(message->body_fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	send = xcalloc(1, sizeof(*send));
	send->sent = sent;
	send->ctx = ctx;
	send->fd = fd;
	send->size = message->body_size;
	send->sender = xstrdup(message->sender);
	send->recipients = xcalloc(message->recipient_count, sizeof(*send->recipients));
	send->recipient_count = message->recipient_count;
	for (size_t i = 0; i < message->recipient_count; i++)
		send->recipients[i] = xstrdup(message->recipients[i]);
	send->prepend = message->prepend != NULL ? xstrdup(message->prepend) : NULL;
	send->result.recipients =
	    xcalloc(message->recipient_count, sizeof(*send->result.recipients));
	send->result.recipient_count = message->recipient_count;
	send->pipelined = client->capabilities.pipelining;
	client->send = send;

	/* What the server said it cannot take is answered here, before any
	 * command: the MAIL it would refuse (RFC 1870 SIZE, RFC 6531 3.2). */
	bool utf8 = !client_is_ascii(send->sender);
	for (size_t i = 0; i < send->recipient_count; i++)
		utf8 = utf8 || !client_is_ascii(send->recipients[i]);
	uint64_t total = send->size + (send->prepend ? strlen(send->prepend) : 0);
	const char *early = NULL;
	char text[160];
	if (client->capabilities.size && client->capabilities.size_max > 0 &&
	    total > client->capabilities.size_max) {
		snprintf(text, sizeof(text),
			 "(popgate) the message's %llu bytes are over the server's limit of %llu",
			 (unsigned long long)total,
			 (unsigned long long)client->capabilities.size_max);
		send->result.mail.code = 552;
		early = "5.3.4";
	} else if (utf8 && !client->capabilities.smtputf8) {
		snprintf(text, sizeof(text),
			 "(popgate) an address needs SMTPUTF8, which the "
			 "server does not offer");
		send->result.mail.code = 553;
		early = "5.6.7";
	}
	if (early != NULL) {
		snprintf(send->result.mail.enhanced, sizeof(send->result.mail.enhanced), "%s",
			 early);
		send->result.mail.text = xstrdup(text);
		send->result.mail.line_count = 1;
		send->early = true;
		client_enter_state(client, CLIENT_MAIL);
		evtimer_add(client->kick, &now);
		return 0;
	}
	client_send_envelope(client);
	return 0;
}

bool smtp_client_reusable(const struct smtp_client *client)
{
	return client != NULL && client->state == CLIENT_READY && client->send == NULL &&
	       !client->free_requested && !client->quitting && client->bev != NULL;
}

const struct smtp_client_capabilities *smtp_client_capabilities(const struct smtp_client *client)
{
	return &client->capabilities;
}

bool smtp_client_tls_active(const struct smtp_client *client)
{
	return client->tls_active;
}

bool smtp_client_authenticated(const struct smtp_client *client)
{
	return client->authenticated;
}

bool smtp_client_tls_failed(const struct smtp_client *client)
{
	return client->tls_failed;
}

void smtp_client_quit(struct smtp_client *client, smtp_client_closed_cb *closed, void *ctx)
{
	if (client == NULL || client->quitting)
		return;
	client->quitting = true;
	client->ready = NULL;
	client->closed = closed;
	client->closed_ctx = ctx;
	if (client->state != CLIENT_READY || client->send != NULL || client->bev == NULL) {
		client_quit_later(client);
		return;
	}
	/* A failure here closes the client and schedules CLOSED (client_fail). */
	if (client_write_line(client, "QUIT") == 0) {
		client_enter_state(client, CLIENT_QUIT);
		client_set_timeouts(client, true, true);
	}
}

void smtp_client_free(struct smtp_client **client_p)
{
	struct smtp_client *client = *client_p;

	*client_p = NULL;
	if (client == NULL)
		return;
	client->closed = NULL;
	if (client->busy > 0) {
		/* Inside one of its handlers: no callback any more, the connection
		 * closed now, the memory when the handler returns. */
		client->quitting = true;
		client_close(client);
		client->free_requested = true;
		return;
	}
	client_destroy(client);
}

/* ---- the body's encoding ---------------------------------------------------- */

void smtp_dot_encoder_init(struct smtp_dot_encoder *encoder)
{
	encoder->line_start = true;
	encoder->after_cr = false;
}

size_t smtp_dot_encode(struct smtp_dot_encoder *encoder, const char *in, size_t len, char *out)
{
	size_t used = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (encoder->after_cr && c != '\n') {
			out[used++] = '\n'; /* a lone CR ends a line too */
			encoder->line_start = true;
		}
		if (c == '\n' && !encoder->after_cr)
			out[used++] = '\r'; /* a bare LF */
		if (c == '.' && encoder->line_start)
			out[used++] = '.'; /* RFC 5321 4.5.2 */
		out[used++] = c;
		encoder->after_cr = c == '\r';
		encoder->line_start = c == '\n';
	}
	return used;
}

size_t smtp_dot_encoder_finish(struct smtp_dot_encoder *encoder, char *out)
{
	size_t used = 0;

	if (encoder->after_cr) {
		out[used++] = '\n';
	} else if (!encoder->line_start) {
		out[used++] = '\r';
		out[used++] = '\n';
	}
	memcpy(out + used, ".\r\n", 3);
	encoder->after_cr = false;
	encoder->line_start = true;
	return used + 3;
}
