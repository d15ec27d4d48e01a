/*
 * relay.c — the delivery scheduler (relay.h): runs, connections and their
 * SMTP clients, and the writer jobs that record each result; the
 * destinations (a transport rule, or a domain's MX hosts) are
 * relay_destination.c's.
 *
 * A run groups the due recipients of each message by destination into
 * jobs (one message, one destination, its recipients) and queues them on
 * the destination, which opens connections up to its limits; a connection
 * takes jobs from its destination's queue until it is empty or carried
 * messages_per_connection, then quits. A job ends as a writer job that
 * records its recipients' results; until that commits, its message is in
 * flight and later runs leave it alone.
 *
 * Owns: everything hung on struct relay. Destinations live while they have
 * jobs or connections; the MX lookup is made again by each destination (the
 * resolver caches by TTL).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/resolver.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/relay.h"
#include "smtp/relay_internal.h"
#include "store/message.h"
#include "store/outbound.h"
#include "store/transport.h"
#include "store/writer.h"

/* Due recipients read per run; a full batch asks for another run. */
#define RELAY_BATCH 1000

static void relay_connection_next(struct relay_connection *conn);

const struct popgate_config *relay_config(const struct relay *relay)
{
	return *relay->config;
}

/* ---- messages in flight -------------------------------------------------- */

static struct relay_flight **relay_flight_find(struct relay *relay, const char *id)
{
	struct relay_flight **p;

	for (p = &relay->flights; *p != NULL; p = &(*p)->next)
		if (strcmp((*p)->id, id) == 0)
			break;
	return p;
}

void relay_flight_add(struct relay *relay, const char *id)
{
	struct relay_flight **p = relay_flight_find(relay, id);

	if (*p == NULL) {
		*p = xcalloc(1, sizeof(**p));
		memcpy((*p)->id, id, SPOOL_ID_LEN + 1);
	}
	(*p)->jobs++;
}

static void relay_flight_drop(struct relay *relay, const char *id)
{
	struct relay_flight **p = relay_flight_find(relay, id);
	struct relay_flight *flight = *p;

	if (flight == NULL || --flight->jobs > 0)
		return;
	*p = flight->next;
	free(flight);
}

/* ---- jobs and their results ------------------------------------------------ */

void relay_job_free(struct relay_job *job)
{
	if (job == NULL)
		return;
	for (size_t i = 0; i < job->count; i++)
		free(job->recipients[i]);
	free(job->recipients);
	free(job->attempts);
	free(job->sender);
	free(job);
}

static void relay_record_free(struct relay_record *record)
{
	for (size_t i = 0; i < record->count; i++) {
		free((char *)record->attempts[i].address);
		free((char *)record->attempts[i].reply);
	}
	free(record->attempts);
	free(record->reporting_mta);
	free(record);
}

/* In the writer thread: the attempts, then the message's end if it came. */
static int relay_record_work(struct store *store, void *arg)
{
	struct relay_record *record = arg;

	if (store_outbound_record(store, record->id, record->attempts, record->count, record->now) <
	    0)
		return -1;
	return store_outbound_finish(store, record->id, record->reporting_mta, record->now,
				     record->dsn_id);
}

static void relay_record_done(int result, const char *error, void *arg)
{
	struct relay_record *record = arg;
	struct relay *relay = record->relay;

	if (result < 0)
		log_event(LOG_ERROR, "relay", NULL, record->id,
			  "the delivery results could not be recorded (%s); the recipients are "
			  "tried again",
			  error != NULL ? error : "?");
	else if (result == 1)
		log_event(LOG_INFO, "relay", NULL, record->id, "sent to every recipient");
	else if (result == 2)
		log_event(LOG_INFO, "relay", NULL, record->id, "bounced");
	relay_flight_drop(relay, record->id);
	/* Stopped: the next start hands the DSN, in processing, to the pipeline. */
	if (result >= 0 && record->dsn_id[0] != '\0' && relay->queued != NULL && !relay->stopped)
		relay->queued(record->dsn_id, relay->queued_ctx);
	relay_record_free(record);
	relay_kick(relay);
}

/* The wait before attempt number ATTEMPTS + 2 of a recipient of a message
 * received at RECEIVED_AT: retry_min doubled per attempt made, up to
 * retry_max, and never past the message's lifetime (it fails then). */
static int64_t relay_next_attempt(const struct relay *relay, int attempts, int64_t received_at,
				  int64_t now)
{
	const struct popgate_config *cfg = relay_config(relay);
	int64_t wait = cfg->relay_retry_min;
	int64_t end = received_at + cfg->relay_queue_lifetime;

	for (int i = 0; i < attempts && wait < cfg->relay_retry_max; i++)
		wait *= 2;
	if (wait > cfg->relay_retry_max)
		wait = cfg->relay_retry_max;
	if (now + wait > end)
		return end > now ? end : now + 1;
	return now + wait;
}

/* A new record for JOB's recipients (the caller sets each one's result). */
struct relay_record *relay_record_new(struct relay *relay, const struct relay_job *job)
{
	struct relay_record *record = xcalloc(1, sizeof(*record));

	record->relay = relay;
	memcpy(record->id, job->id, SPOOL_ID_LEN + 1);
	record->attempts = xcalloc(job->count, sizeof(*record->attempts));
	record->count = job->count;
	record->now = util_now();
	record->reporting_mta = xstrdup(relay_config(relay)->hostname);
	return record;
}

/* Sets recipient I of RECORD (of JOB): STATUS with REPLY; a PENDING one
 * gets its next attempt. */
void relay_record_set(struct relay *relay, struct relay_record *record, const struct relay_job *job,
		      size_t i, enum envelope_status status, const char *reply)
{
	struct outbound_attempt *a = &record->attempts[i];

	a->address = xstrdup(job->recipients[i]);
	a->status = status;
	a->reply = xstrdup(reply);
	if (status == ENVELOPE_PENDING)
		a->next_attempt_at =
		    relay_next_attempt(relay, job->attempts[i], job->received_at, record->now);
	log_event(status == ENVELOPE_SENT ? LOG_INFO : LOG_WARN, "relay", NULL, job->id,
		  "to=<%s> %s: %s", job->recipients[i], store_envelope_status_name(status), reply);
}

/* Hands RECORD to the writer; JOB's message stays in flight until then. */
void relay_record_submit(struct relay *relay, struct relay_record *record)
{
	if (writer_submit(relay->writer, NULL, relay_record_work, relay_record_done, record) < 0) {
		log_event(LOG_ERROR, "relay", NULL, record->id,
			  "the writer refused the delivery results; the recipients are tried "
			  "again");
		relay_flight_drop(relay, record->id);
		relay_record_free(record);
	}
}

/* Ends JOB with one result for all its recipients, and frees it. */
void relay_job_end(struct relay *relay, struct relay_job *job, enum envelope_status status,
		   const char *reply)
{
	struct relay_record *record = relay_record_new(relay, job);

	for (size_t i = 0; i < job->count; i++)
		relay_record_set(relay, record, job, i, status, reply);
	relay_record_submit(relay, record);
	relay_job_free(job);
}

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

/* ---- connections --------------------------------------------------------------- */

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

static void relay_connection_close(struct relay_connection *conn)
{
	struct relay_destination *dest = conn->dest;
	struct relay *relay = dest->relay;

	connector_cancel(&conn->attempt);
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
		relay_connection_try(conn);
		return;
	}
	/* No host took the connection: what waits for it would fare the same. */
	relay_destination_fail(dest, ENVELOPE_PENDING, conn->last_error);
	relay_connection_close(conn);
	relay_destination_release(dest);
	relay_pump(relay);
}

static void relay_ready_cb(struct smtp_client *client, const struct smtp_reply *reply,
			   const char *error, void *ctx)
{
	struct relay_connection *conn = ctx;
	char why[RELAY_REPLY_MAX];

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
	if (reply != NULL)
		relay_reply_text(reply, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", error);
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

static void relay_connection_try(struct relay_connection *conn)
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
	conn->attempt = connector_connect(dest->relay->connector, &target, relay_connected_cb, conn,
					  err, sizeof(err));
	if (conn->attempt == NULL) {
		/* Later, from the loop: the caller may be walking the destinations. */
		snprintf(conn->last_error, sizeof(conn->last_error), "%s", err);
		event_base_once(dest->relay->base, -1, EV_TIMEOUT, relay_try_failed_cb, conn,
				&(struct timeval){0, 0});
	}
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

/* ---- runs ------------------------------------------------------------------------ */

/* Fails the due recipients of a message past its lifetime, from DUE[FIRST]
 * on while they are that message's; returns the index after them. */
static size_t relay_expire(struct relay *relay, const struct outbound_due *due, size_t first,
			   size_t count)
{
	struct relay_job *job = xcalloc(1, sizeof(*job));
	struct relay_record *record;
	size_t i;

	memcpy(job->id, due[first].message_id, SPOOL_ID_LEN + 1);
	for (i = first; i < count && strcmp(due[i].message_id, job->id) == 0; i++) {
		job->recipients = xrealloc(job->recipients, (job->count + 1) * sizeof(char *));
		job->attempts = xrealloc(job->attempts, (job->count + 1) * sizeof(int));
		job->recipients[job->count] = xstrdup(due[i].address);
		job->attempts[job->count] = due[i].attempts;
		job->count++;
	}
	relay_flight_add(relay, job->id);
	record = relay_record_new(relay, job);
	for (size_t r = 0; r < job->count; r++) {
		const char *last = due[first + r].last_reply;
		char *reply = xasprintf("(popgate) the queue lifetime expired%s%s",
					*last != '\0' ? "; last reply: " : "", last);

		relay_record_set(relay, record, job, r, ENVELOPE_FAILED, reply);
		free(reply);
	}
	relay_record_submit(relay, record);
	relay_job_free(job);
	return i;
}

/* Arms the timer for the next recipient that falls due (at most an hour
 * away, so a change nobody announced is seen too). */
static void relay_arm(struct relay *relay, int64_t now, bool more)
{
	int64_t next = 0, wait = 3600;
	struct timeval tv;

	if (more)
		wait = 1;
	else if (store_outbound_next_due(relay->store, now, &next) == 0 && next > 0 &&
		 next - now < wait)
		wait = next - now > 0 ? next - now : 1;
	tv.tv_sec = (time_t)wait;
	tv.tv_usec = 0;
	event_add(relay->timer, &tv);
}

/* Ends the relay of messages whose recipients are all final but which are
 * still in outbound (popgatectl bounced them): state and DSN, here, where
 * the spool is ours to write. */
static void relay_finish_unfinished(struct relay *relay)
{
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0;

	if (store_outbound_unfinished(relay->store, RELAY_BATCH, &ids, &count) < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		struct relay_record *record;

		if (*relay_flight_find(relay, ids[i]) != NULL)
			continue;
		record = xcalloc(1, sizeof(*record));
		record->relay = relay;
		memcpy(record->id, ids[i], SPOOL_ID_LEN + 1);
		record->now = util_now();
		record->reporting_mta = xstrdup(relay_config(relay)->hostname);
		relay_flight_add(relay, record->id);
		relay_record_submit(relay, record);
	}
	free(ids);
}

static void relay_run(struct relay *relay)
{
	const struct popgate_config *cfg = relay_config(relay);
	struct store_transport_rule *rules = NULL;
	struct outbound_due *due = NULL;
	struct relay_job *failed = NULL, *job;
	size_t rule_count = 0, count = 0;
	int64_t now = util_now();

	if (relay->stopped)
		return;

	if (store_outbound_due(relay->store, now, RELAY_BATCH, &due, &count) < 0 ||
	    store_transport_list(relay->store, &rules, &rule_count) < 0) {
		store_outbound_due_free(&due, count);
		relay_arm(relay, now, true);
		return;
	}
	for (size_t i = 0; i < count;) {
		const char *id = due[i].message_id;

		if (*relay_flight_find(relay, id) != NULL) {
			while (i < count && strcmp(due[i].message_id, id) == 0)
				i++;
			continue;
		}
		if (due[i].received_at + cfg->relay_queue_lifetime <= now) {
			i = relay_expire(relay, due, i, count);
			continue;
		}
		for (; i < count && strcmp(due[i].message_id, id) == 0; i++)
			relay_queue_recipient(relay, &due[i], rules, rule_count, &failed);
	}
	relay_finish_unfinished(relay);
	while ((job = failed) != NULL) {
		failed = job->next;
		relay_job_end(relay, job, ENVELOPE_FAILED,
			      "553 5.1.3 (popgate) the recipient address has no domain");
	}
	relay_arm(relay, now, count == RELAY_BATCH);
	store_outbound_due_free(&due, count);
	store_transport_list_free(&rules, rule_count);
	relay_pump(relay);
}

static void relay_run_cb(evutil_socket_t fd, short what, void *ctx)
{
	(void)fd;
	(void)what;
	relay_run(ctx);
}

struct relay *relay_new(struct event_base *base, struct store *store, struct writer *writer,
			struct resolver *resolver, struct offload *offload,
			const struct crypto_key *key, struct popgate_config *const *config,
			relay_queued_cb *queued, void *ctx)
{
	struct relay *relay = xcalloc(1, sizeof(*relay));

	relay->base = base;
	relay->store = store;
	relay->writer = writer;
	relay->resolver = resolver;
	relay->offload = offload;
	relay->key = key;
	relay->config = config;
	relay->queued = queued;
	relay->queued_ctx = ctx;
	relay->connector = connector_new(base, resolver);
	relay->run_event = event_new(base, -1, 0, relay_run_cb, relay);
	relay->timer = evtimer_new(base, relay_run_cb, relay);
	if (relay->connector == NULL || relay->run_event == NULL || relay->timer == NULL) {
		relay_free(&relay);
		return NULL;
	}
	relay_kick(relay);
	return relay;
}

void relay_kick(struct relay *relay)
{
	if (relay != NULL && !relay->stopped)
		event_active(relay->run_event, 0, 0);
}

void relay_stop(struct relay *relay)
{
	if (relay == NULL)
		return;
	relay->stopped = true;
	while (relay->connections != NULL) {
		struct relay_connection *conn = relay->connections;

		/* At once: the loop no longer runs for a polite QUIT. */
		smtp_client_free(&conn->client);
		relay_connection_close(conn);
	}
	while (relay->destinations != NULL) {
		struct relay_destination *dest = relay->destinations;

		relay->destinations = dest->next;
		relay_destination_free(dest);
	}
	while (relay->quitting != NULL) {
		struct relay_quitting *quitting = relay->quitting;

		relay->quitting = quitting->next;
		smtp_client_free(&quitting->client); /* its CLOSED is never called */
		free(quitting);
	}
	if (relay->timer != NULL)
		event_del(relay->timer);
}

void relay_free(struct relay **relay_p)
{
	struct relay *relay = *relay_p;

	if (relay == NULL)
		return;
	relay_stop(relay);
	while (relay->flights != NULL) {
		struct relay_flight *flight = relay->flights;

		relay->flights = flight->next;
		free(flight);
	}
	if (relay->run_event != NULL)
		event_free(relay->run_event);
	if (relay->timer != NULL)
		event_free(relay->timer);
	connector_free(&relay->connector);
	free(relay);
	*relay_p = NULL;
}
