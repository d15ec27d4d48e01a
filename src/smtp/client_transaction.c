/*
 * client_transaction.c — one message's transaction on the SMTP client
 * (client.h): smtp_client_send's checks and copies; what the server said
 * it cannot take (over its SIZE, an address that needs SMTPUTF8) answered
 * before any command; MAIL FROM with SIZE=, BODY=8BITMIME and SMTPUTF8 as
 * offered; the RCPTs and DATA, in one write with PIPELINING (RFC 2920:
 * their replies are taken in order and every one is checked, DATA's too),
 * else one at a time; the per-recipient results; RSET for a transaction
 * that did not end with the body accepted. The body itself is
 * client_body.c's.
 *
 * Owns: the message's copies and results (struct client_send), made here
 * and freed by client.c.
 * Must never: put an address with a control byte or an angle bracket into
 * a command; record RCPT or DATA replies after a refused MAIL (a
 * pipelining server's 503s say nothing about the recipients); RSET after
 * the final dot was answered; call SENT inside smtp_client_send.
 *
 * SECURITY: addresses come from the spool's envelope and are checked here
 * before they go into a command line; client_write_line is the last guard.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/util.h"
#include "smtp/client.h"
#include "smtp/client_internal.h"
#include "smtp/reply.h"

/* The longest address sent in MAIL or RCPT (RFC 5321 4.5.3.1.3 says 256;
 * a little room for servers that take more). */
#define CLIENT_ADDRESS_MAX 1000

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

/* ---- MAIL, RCPT, DATA, RSET ------------------------------------------------ */

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
void client_handle_send_reply(struct smtp_client *client, struct smtp_reply *reply)
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

/* ---- public ------------------------------------------------------------ */

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
