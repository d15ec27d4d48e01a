/*
 * relay_connection.c — the relay's connections (relay_internal.h): each
 * goes through core/connector (resolve, the address policy, connect) to
 * one host of its destination, then smtp/client, and sends the
 * destination's jobs one after another.
 *
 * To an MX host: opportunistic STARTTLS (a session that dies in it is tried
 * once more in plain text, RFC 7435), and an MX address in a private range
 * is refused unless [relay] allow_private. An MX host that a DNSSEC-secure
 * MX answer named gets its DANE policy first (smtp/dane.h): usable TLSA
 * records make STARTTLS mandatory and the certificate authenticated by
 * them, never plain text; a failed or bogus lookup, or a certificate no
 * record matches, fails that host ("DANE: ..." in the log and the queue).
 * A host without secure TLSA records is held to the domain's MTA-STS
 * policy (RFC 8461 4, 5) in enforce mode: an MX host the policy does not
 * name is not used, and one it names needs STARTTLS with its certificate
 * verified for its name ([relay] ca_file or the system's CAs), else that
 * host failed, never plain text; in testing mode the same checks are only
 * logged. To a rule's host: the rule's TLS mode and AUTH, any address (no
 * DANE, no MTA-STS). A host that fails gives way to the next MX host; when
 * none is left, every job waiting on the destination pends. A connection
 * takes jobs until its destination has none or it carried
 * messages_per_connection, then quits; the quitting client is held here
 * until it closes (or the relay stops).
 *
 * Owns: the connections, their SMTP clients and the quitting ones, the
 * job being sent on each, each recipient's outcome from the replies.
 * Must never: write to the store (results go to relay_record_submit); log
 * a password (the rule's AUTH secret is opened for the client and wiped at
 * once) or a body; send a job twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/x509.h>

#include "core/connector.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/mta_sts.h"
#include "smtp/relay_internal.h"
#include "store/message.h"
#include "store/spool.h"
#include "store/transport.h"

static void relay_connection_next(struct relay_connection *conn);

/* REPLY as one line for the store: "550 5.1.1 text" (its first line). */
static void relay_reply_text(const struct smtp_reply *reply, char *out, size_t outlen)
{
	const char *text = reply->text != NULL ? reply->text : "";
	size_t len = strcspn(text, "\n");

	snprintf(out, outlen, "%d%s%s %.*s", reply->code, reply->enhanced[0] != '\0' ? " " : "",
		 reply->enhanced, (int)len, text);
}

/* The outcome of recipient I of a sent message (smtp/client.h says how the
 * replies combine), into *STATUS_R and REPLY. */
static void relay_outcome(const struct smtp_client_result *result, size_t i,
			  enum envelope_status *status_r, char *reply, size_t len)
{
	const struct smtp_reply *steps[3] = {&result->mail, &result->recipients[i], &result->data};

	for (size_t s = 0; s < 3; s++) {
		const struct smtp_reply *r = steps[s];

		if (r->code == 0) {
			/* Not answered: the connection failed first. */
			snprintf(reply, len, "(popgate) %s",
				 result->error != NULL ? result->error : "no reply");
			*status_r = ENVELOPE_PENDING;
			return;
		}
		if (r->code / 100 != 2) {
			relay_reply_text(r, reply, len);
			*status_r = r->code / 100 == 5 ? ENVELOPE_FAILED : ENVELOPE_PENDING;
			return;
		}
	}
	relay_reply_text(&result->data, reply, len);
	*status_r = ENVELOPE_SENT;
}

/* A client's QUIT ended: it frees itself after this. */
static void relay_quit_done_cb(struct smtp_client *client, void *ctx)
{
	struct relay_quitting *quitting = ctx;
	struct relay *relay = quitting->relay;

	(void)client;
	for (struct relay_quitting **p = &relay->quitting; *p != NULL; p = &(*p)->next) {
		if (*p == quitting) {
			*p = quitting->next;
			break;
		}
	}
	free(quitting);
}

void relay_connection_close(struct relay_connection *conn)
{
	struct relay_destination *dest = conn->dest;
	struct relay *relay = dest->relay;

	connector_cancel(&conn->attempt);
	dane_lookup_cancel(&conn->dane_lookup);
	dane_policy_clear(&conn->dane);
	if (conn->client != NULL && smtp_client_reusable(conn->client) && !relay->stopped) {
		struct relay_quitting *quitting = xcalloc(1, sizeof(*quitting));

		quitting->relay = relay;
		quitting->client = conn->client;
		quitting->next = relay->quitting;
		relay->quitting = quitting;
		conn->client = NULL;
		smtp_client_quit(quitting->client, relay_quit_done_cb, quitting);
	}
	smtp_client_free(&conn->client);
	if (conn->job != NULL) {
		/* Only while the relay stops: its message is tried again later. */
		relay_job_free(conn->job);
	}
	for (struct relay_connection **p = &relay->connections; *p != NULL; p = &(*p)->next) {
		if (*p == conn) {
			*p = conn->next;
			break;
		}
	}
	relay->connection_count--;
	dest->connections--;
	if (!conn->ready)
		dest->opening--;
	free(conn);
}

/* The host and port CONN tries now. */
static const char *relay_connection_host(const struct relay_connection *conn, int *port_r)
{
	const struct relay_destination *dest = conn->dest;

	if (dest->rule.host != NULL) {
		*port_r = dest->rule.port;
		return dest->rule.host;
	}
	*port_r = relay_config(dest->relay)->relay_mx_port;
	return dest->hosts[conn->host_index];
}

static void relay_connection_try(struct relay_connection *conn);

/* CONN's host failed (WHY): the next host, or every waiting job pends. */
static void relay_connection_failed(struct relay_connection *conn, const char *why)
{
	struct relay_destination *dest = conn->dest;
	struct relay *relay = dest->relay;
	int port;
	const char *host = relay_connection_host(conn, &port);

	snprintf(conn->last_error, sizeof(conn->last_error), "(popgate) %s:%d: %s", host, port,
		 why);
	log_event(LOG_WARN, "relay", NULL, NULL, "%s", conn->last_error);
	if (conn->client != NULL)
		smtp_client_free(&conn->client);
	if (dest->rule.host == NULL && conn->host_index + 1 < dest->host_count) {
		conn->host_index++;
		conn->plain = false;
		conn->sts_relaxed = false;
		relay_connection_try(conn);
		return;
	}
	/* No host took the connection: what waits for it would fare the same. */
	relay_destination_fail(dest, ENVELOPE_PENDING, conn->last_error);
	relay_connection_close(conn);
	relay_destination_release(dest);
	relay_pump(relay);
}

/* The MTA-STS policy CONN's host is held to, or NULL: none, or DANE
 * governs the host and wins (RFC 8461 2). */
static const struct mta_sts_policy *relay_connection_sts(const struct relay_connection *conn)
{
	if (conn->dane.state == DANE_ENCRYPT || conn->dane.state == DANE_AUTHENTICATE)
		return NULL;
	return relay_destination_sts(conn->dest);
}

static void relay_ready_cb(struct smtp_client *client, const struct smtp_reply *reply,
			   const char *error, void *ctx)
{
	struct relay_connection *conn = ctx;
	char why[RELAY_REPLY_MAX], detail[RELAY_REPLY_MAX / 2 + 100];
	long verify;

	if (reply == NULL && error == NULL) {
		conn->ready = true;
		conn->dest->opening--;
		relay_connection_next(conn);
		return;
	}
	/* Opportunistic TLS tried but the session died in it (the handshake,
	 * or the server closing right after it, as a TLS 1.3 server that
	 * rejects the client does): RFC 7435 lets a sender go on in plain
	 * text, on a new connection to the same host, once. */
	if (reply == NULL && conn->tls_mode == SMTP_TLS_OPPORTUNISTIC && !conn->plain &&
	    (smtp_client_tls_failed(client) || smtp_client_capabilities(client)->starttls ||
	     smtp_client_tls_active(client))) {
		log_event(LOG_WARN, "relay", NULL, NULL,
			  "%s: STARTTLS failed (%s); trying again without TLS",
			  relay_connection_host(conn, &(int){0}), error);
		smtp_client_free(&conn->client);
		conn->plain = true;
		relay_connection_try(conn);
		return;
	}
	verify = smtp_client_tls_verify_result(client);
	if (conn->tls_mode == SMTP_TLS_DANE && verify == X509_V_ERR_DANE_NO_MATCH)
		snprintf(detail, sizeof(detail), "DANE: no TLSA record matched the certificate of %s",
			 relay_connection_host(conn, &(int){0}));
	else if (conn->tls_mode == SMTP_TLS_DANE && verify != X509_V_OK)
		/* A DANE-TA chain whose certificate names another host, say. */
		snprintf(detail, sizeof(detail),
			 "DANE: the certificate of %s is not authenticated: %s",
			 relay_connection_host(conn, &(int){0}),
			 X509_verify_cert_error_string(verify));
	else if (reply != NULL)
		relay_reply_text(reply, detail, sizeof(detail));
	else
		snprintf(detail, sizeof(detail), "%s", error);
	snprintf(why, sizeof(why), "%s", detail);
	/* The administrator reads in the queue why DANE kept the mail back. */
	if (conn->dane.state != DANE_NONE && strncmp(detail, "DANE:", 5) != 0) {
		/* Cut to fit: the reply recorded is one bounded line. */
		snprintf(why, sizeof(why), "DANE (%s): %s", dane_state_name(conn->dane.state),
			 detail);
	} else if (conn->tls_mode == SMTP_TLS_VERIFIED && relay_connection_sts(conn) != NULL) {
		const char *host = relay_connection_host(conn, &(int){0});

		if (relay_connection_sts(conn)->mode == MTA_STS_TESTING) {
			/* RFC 8461 5: testing reports, delivers as usual. */
			log_event(LOG_WARN, "relay", NULL, NULL,
				  "MTA-STS (testing): enforce would refuse %s for %s: %s; "
				  "delivering as usual",
				  host, conn->dest->domain, why);
			smtp_client_free(&conn->client);
			conn->sts_relaxed = true;
			relay_connection_try(conn);
			return;
		}
		/* Enforce: never in plain text nor unverified (RFC 8461 5). */
		snprintf(why, sizeof(why), "MTA-STS: %s of %s: %s", host, conn->dest->domain,
			 detail);
	}
	relay_connection_failed(conn, why);
}

static void relay_connected_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct relay_connection *conn = ctx;
	struct relay_destination *dest = conn->dest;
	struct relay *relay = dest->relay;
	const struct popgate_config *cfg = relay_config(relay);
	struct smtp_client_config config = {
	    .helo_name = cfg->hostname,
	    .tls_mode = SMTP_TLS_OPPORTUNISTIC,
	    .timeout_seconds = cfg->relay_timeout,
	    .offload = relay->offload,
	};
	char *password = NULL;
	int port;

	conn->attempt = NULL;
	if (bev == NULL) {
		relay_connection_failed(conn, error);
		return;
	}
	config.server_name = relay_connection_host(conn, &port);
	if (dest->rule.host != NULL) {
		static const enum smtp_tls_mode modes[] = {
		    [TRANSPORT_TLS_NONE] = SMTP_TLS_NONE,
		    [TRANSPORT_TLS_OPPORTUNISTIC] = SMTP_TLS_OPPORTUNISTIC,
		    [TRANSPORT_TLS_REQUIRED] = SMTP_TLS_REQUIRED,
		    [TRANSPORT_TLS_VERIFIED] = SMTP_TLS_VERIFIED,
		};

		config.tls_mode = modes[dest->rule.tls];
		if (dest->rule.auth_user != NULL) {
			if (transport_secret_open(relay->key, dest->rule.auth_secret,
						  dest->rule.auth_secret_len, &password) < 0) {
				bufferevent_free(bev);
				relay_connection_failed(
				    conn, "the rule's AUTH password cannot be opened (another "
					  "credential key?); add the rule again");
				return;
			}
			config.auth_user = dest->rule.auth_user;
			config.auth_password = password;
		}
	}
	if (conn->dane.state == DANE_AUTHENTICATE) {
		config.tls_mode = SMTP_TLS_DANE;
		config.tlsa = conn->dane.records;
		config.tlsa_count = conn->dane.count;
	} else if (conn->dane.state == DANE_ENCRYPT) {
		config.tls_mode = SMTP_TLS_REQUIRED;
	} else if (!conn->sts_relaxed && relay_connection_sts(conn) != NULL &&
		   mta_sts_policy_allows(relay_connection_sts(conn), config.server_name)) {
		/* RFC 8461 4.2: STARTTLS, the certificate verified for the MX name. */
		config.tls_mode = SMTP_TLS_VERIFIED;
	}
	if (config.tls_mode == SMTP_TLS_VERIFIED)
		config.ca_file = cfg->relay_ca_file;
	if (conn->plain && config.tls_mode == SMTP_TLS_OPPORTUNISTIC)
		config.tls_mode = SMTP_TLS_NONE;
	conn->tls_mode = config.tls_mode;
	conn->client = smtp_client_new(relay->connector, bev, &config, relay_ready_cb, conn);
	crypto_password_free(&password);
	if (conn->client == NULL)
		relay_connection_failed(conn, "cannot start an SMTP session");
}

static void relay_try_failed_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct relay_connection *conn = ctx;
	char why[RELAY_REPLY_MAX];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "%s", conn->last_error);
	relay_connection_failed(conn, why);
}

/* Whether CONN's MTA-STS policy in enforce mode does not name HOST
 * (RFC 8461 4.1): then HOST fails, later, from the loop. In testing mode
 * that is only logged. */
static bool relay_sts_refuses(struct relay_connection *conn, const char *host)
{
	const struct mta_sts_policy *sts = relay_connection_sts(conn);
	struct relay_destination *dest = conn->dest;

	if (sts == NULL || mta_sts_policy_allows(sts, host))
		return false;
	if (sts->mode == MTA_STS_TESTING) {
		log_event(LOG_WARN, "relay", NULL, NULL,
			  "MTA-STS (testing): %s does not match the policy of %s; delivering as "
			  "usual",
			  host, dest->domain);
		return false;
	}
	snprintf(conn->last_error, sizeof(conn->last_error),
		 "MTA-STS: %s does not match the policy of %s", host, dest->domain);
	event_base_once(dest->relay->base, -1, EV_TIMEOUT, relay_try_failed_cb, conn,
			&(struct timeval){0, 0});
	return true;
}


/* Connects CONN to its host, its DANE policy known. */
static void relay_connection_connect(struct relay_connection *conn)
{
	struct relay_destination *dest = conn->dest;
	const struct popgate_config *cfg = relay_config(dest->relay);
	struct connector_target target = {
	    .tls = CONNECTOR_TLS_UPGRADE,
	    .verify = dest->rule.host != NULL && dest->rule.tls == TRANSPORT_TLS_VERIFIED,
	    /* A rule's host is the administrator's choice; MX hosts come from
	     * DNS, which anyone can point into the office network. */
	    .allow_private = dest->rule.host != NULL || cfg->relay_allow_private,
	    .timeout = cfg->relay_connect_timeout,
	    .log_event = "relay",
	};
	char err[256];

	target.host = relay_connection_host(conn, &target.port);
	if (relay_sts_refuses(conn, target.host))
		return;
	conn->attempt = connector_connect(dest->relay->connector, &target, relay_connected_cb, conn,
					  err, sizeof(err));
	if (conn->attempt == NULL) {
		/* Later, from the loop: the caller may be walking the destinations. */
		snprintf(conn->last_error, sizeof(conn->last_error), "%s", err);
		event_base_once(dest->relay->base, -1, EV_TIMEOUT, relay_try_failed_cb, conn,
				&(struct timeval){0, 0});
	}
}

static void relay_dane_cb(struct dane_policy *policy, void *ctx)
{
	struct relay_connection *conn = ctx;
	const char *host = relay_connection_host(conn, &(int){0});

	conn->dane_lookup = NULL;
	conn->dane = *policy;
	if (conn->dane.state == DANE_DEFER) {
		char why[RELAY_REPLY_MAX];

		snprintf(why, sizeof(why), "%s", conn->dane.reason);
		relay_connection_failed(conn, why);
		return;
	}
	log_event(LOG_DEBUG, "relay", NULL, NULL, "%s: %s (%s)", host, conn->dane.reason,
		  dane_state_name(conn->dane.state));
	relay_connection_connect(conn);
}

/* Tries CONN's host: its DANE policy first when its MX answer was secure
 * (not for a rule's host, whose TLS mode is the administrator's, nor for
 * the plain retry of a failed opportunistic STARTTLS, which no DANE policy
 * allowed but DANE_NONE). */
static void relay_connection_try(struct relay_connection *conn)
{
	struct relay_destination *dest = conn->dest;
	int port;
	const char *host = relay_connection_host(conn, &port);

	if (conn->plain) {
		relay_connection_connect(conn);
		return;
	}
	dane_policy_clear(&conn->dane);
	if (dest->rule.host == NULL && dest->mx_secure) {
		conn->dane_lookup =
		    dane_lookup_start(dest->relay->resolver, host, port, relay_dane_cb, conn);
		return;
	}
	relay_connection_connect(conn);
}

void relay_connection_open(struct relay_destination *dest)
{
	struct relay *relay = dest->relay;
	struct relay_connection *conn = xcalloc(1, sizeof(*conn));

	conn->dest = dest;
	conn->next = relay->connections;
	relay->connections = conn;
	relay->connection_count++;
	dest->connections++;
	dest->opening++;
	relay_connection_try(conn);
}

static void relay_sent_cb(struct smtp_client *client, const struct smtp_client_result *result,
			  void *ctx)
{
	struct relay_connection *conn = ctx;
	struct relay *relay = conn->dest->relay;
	struct relay_job *job = conn->job;
	struct relay_record *record = relay_record_new(relay, job);
	char reply[RELAY_REPLY_MAX];

	(void)client;
	conn->job = NULL;
	conn->messages++;
	for (size_t i = 0; i < job->count; i++) {
		enum envelope_status status;

		if (i < result->recipient_count) {
			relay_outcome(result, i, &status, reply, sizeof(reply));
		} else {
			snprintf(reply, sizeof(reply), "(popgate) no reply for this recipient");
			status = ENVELOPE_PENDING;
		}
		relay_record_set(relay, record, job, i, status, reply);
	}
	relay_record_submit(relay, record);
	relay_job_free(job);
	relay_connection_next(conn);
}

/* Sends CONN's destination's next job on it, or ends it when there is none
 * (or it carried enough, or is dead). */
static void relay_connection_next(struct relay_connection *conn)
{
	struct relay_destination *dest = conn->dest;
	struct relay *relay = dest->relay;
	const struct popgate_config *cfg = relay_config(relay);

	while (conn->client != NULL && smtp_client_reusable(conn->client) &&
	       conn->messages < cfg->relay_messages_per_connection && dest->head != NULL) {
		struct relay_job *job = relay_destination_take(dest);
		char *path = spool_path(relay->store->data_dir, job->id);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		struct smtp_client_message message = {
		    .sender = job->sender,
		    .recipients = (const char *const *)job->recipients,
		    .recipient_count = job->count,
		    .body_fd = fd,
		    .body_size = job->body_size,
		};
		char *prepend = NULL;

		free(path);
		if (fd < 0) {
			log_event(LOG_ERROR, "relay", NULL, job->id, "cannot open the body: %s",
				  strerror(errno));
			relay_job_end(relay, job, ENVELOPE_PENDING,
				      "(popgate) the message body cannot be read");
			continue;
		}
		if (store_message_read_prepend(relay->store, job->id, &prepend) < 0) {
			close(fd);
			relay_job_end(relay, job, ENVELOPE_PENDING,
				      "(popgate) the message cannot be read");
			continue;
		}
		message.prepend = prepend != NULL && *prepend != '\0' ? prepend : NULL;
		conn->job = job;
		if (smtp_client_send(conn->client, &message, relay_sent_cb, conn) < 0) {
			conn->job = NULL;
			relay_job_end(
			    relay, job, ENVELOPE_PENDING,
			    "(popgate) the message could not be handed to the SMTP client");
		}
		close(fd);
		free(prepend);
		if (conn->job != NULL)
			return;
	}
	relay_connection_close(conn);
	relay_destination_release(dest);
	relay_pump(relay);
}
