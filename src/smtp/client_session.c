/*
 * client_session.c — the SMTP client's session setup (client.h): the
 * greeting; EHLO, or HELO when EHLO gets a 5yz, and the capabilities EHLO
 * lists; STARTTLS by the TLS mode (client.c does the handshake), then EHLO
 * again; AUTH PLAIN with an initial response, or AUTH LOGIN; then ready.
 * And client_handle_reply: what each reply means in the state it came in,
 * the transaction's states handed to client_transaction.c.
 *
 * Owns: nothing; the connection is client.c's, the message
 * client_transaction.c's.
 * Must never: send credentials without TLS; keep the password once AUTH is
 * answered (wiped, even on a refusal); log the password or the AUTH lines;
 * take capabilities from before the TLS handshake (RFC 3207 4.2).
 *
 * SECURITY: the EHLO reply is the remote server's; its keywords are read
 * into bounded fields, a SIZE too large for 64 bits counts as no limit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "core/log.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/client_internal.h"
#include "smtp/reply.h"

/* Base64 of RAW[0..LEN), allocated; the caller wipes and frees it. */
static char *client_base64(const void *raw, size_t len, size_t *size)
{
	*size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = xmalloc(*size);

	sodium_bin2base64(b64, *size, raw, len, sodium_base64_VARIANT_ORIGINAL);
	return b64;
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

void client_send_ehlo(struct smtp_client *client)
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

/* ---- replies ---------------------------------------------------------------- */

void client_handle_reply(struct smtp_client *client, struct smtp_reply *reply)
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
