/*
 * client.c — popgate as an SMTP client: one connection to an MX or relay
 * host (client.h says the conversation and the contract; client_internal.h
 * how the work is split between client.c, client_session.c,
 * client_transaction.c and client_body.c).
 *
 * This file is the connection: the client made, quit and freed; the
 * bufferevent's callbacks and timeouts; command lines out; the input cut
 * into replies by smtp/reply.c and handed to client_handle_reply; the
 * STARTTLS upgrade through the connector; failure, and the one report to
 * the ready or sent callback.
 *
 * Owns: the connection, its callbacks and timeouts; the end of the message
 * being sent (its copies and the body descriptor's dup freed, a read in
 * flight detached); the password, wiped as soon as AUTH is answered.
 * Must never: free the client inside its own handlers (a free asked for
 * there waits for the handler to return: client_release); call the ready or
 * sent callback twice; log a password or body bytes; decide what a reply
 * means (client_session.c and client_transaction.c do).
 *
 * SECURITY: replies are untrusted and bounded by reply.c; an unexpected one
 * ends the connection. Command arguments never hold a CR or LF. Credentials
 * go out only on a TLS connection; their lines are added to the output by
 * reference and wiped once written.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/resolver.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/client_internal.h"
#include "smtp/reply.h"

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

static void client_read_cb(struct bufferevent *bev, void *ctx);
static void client_write_cb(struct bufferevent *bev, void *ctx);
static void client_event_cb(struct bufferevent *bev, short events, void *ctx);

/* ---- helpers ---------------------------------------------------------- */

void client_enter_state(struct smtp_client *client, enum client_state state)
{
	log_debug("smtp client %s: %s -> %s", client->server_name,
		  client_state_names[client->state], client_state_names[state]);
	client->state = state;
}

/* Whether the handler running must stop touching the connection. */
bool client_gone(const struct smtp_client *client)
{
	return client->free_requested || client->state == CLIENT_CLOSED;
}

void client_password_wipe(struct smtp_client *client)
{
	if (client->auth_password != NULL) {
		sodium_memzero(client->auth_password, strlen(client->auth_password));
		xfree(&client->auth_password);
	}
}

void client_set_timeouts(struct smtp_client *client, bool read, bool write)
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
	for (size_t i = 0; i < client->tlsa_count; i++)
		free(client->tlsa[i].data);
	free(client->tlsa);
	free(client->auth_user);
	free(client);
}

/* Ends a handler: a free asked for inside it happens now. */
void client_release(struct smtp_client *client)
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
void client_quit_later(struct smtp_client *client)
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
void client_send_complete(struct smtp_client *client)
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

void client_ready_report(struct smtp_client *client, const struct smtp_reply *reply,
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
void client_fail(struct smtp_client *client, const struct smtp_reply *reply, const char *fmt, ...)
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
void client_fail_reply(struct smtp_client *client, const struct smtp_reply *reply, const char *what)
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
int client_write_line(struct smtp_client *client, const char *fmt, ...)
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

/* ---- STARTTLS ------------------------------------------------------------ */

/* 220 to STARTTLS: the handshake, through the connector. */
void client_start_tls(struct smtp_client *client)
{
	struct connector_target target = {
	    .host = client->server_name,
	    .tls = CONNECTOR_TLS_UPGRADE,
	    .ca_file = client->ca_file,
	    .verify = client->tls_mode == SMTP_TLS_VERIFIED,
	    .timeout = client->timeout,
	    .tlsa = client->tlsa,
	    .tlsa_count = client->tlsa_count,
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

/* ---- replies and events ---------------------------------------------------- */

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
	if (client->state == CLIENT_TLS_HANDSHAKE) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		client->tls_failed = true;
		client->tls_verify_result = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
	}
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
	    strpbrk(config->server_name, "\r\n") != NULL || config->timeout_seconds <= 0 ||
	    /* DANE without records would authenticate nothing. */
	    (config->tls_mode == SMTP_TLS_DANE && config->tlsa_count == 0)) {
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
	if (config->tls_mode == SMTP_TLS_DANE && config->tlsa_count > 0) {
		client->tlsa = xcalloc(config->tlsa_count, sizeof(*client->tlsa));
		for (size_t i = 0; i < config->tlsa_count; i++) {
			client->tlsa[i] = config->tlsa[i];
			client->tlsa[i].data = xmalloc(config->tlsa[i].length);
			memcpy(client->tlsa[i].data, config->tlsa[i].data, config->tlsa[i].length);
		}
		client->tlsa_count = config->tlsa_count;
	}
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

long smtp_client_tls_verify_result(const struct smtp_client *client)
{
	return client->tls_verify_result;
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
