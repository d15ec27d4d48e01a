/*
 * relay.c — the delivery scheduler (relay.h): runs, kicks and the timer,
 * the messages in flight, the back-off, and the writer jobs that record
 * each result; relay_new, relay_stop, relay_free.
 *
 * A run reads the due recipients, fails those of a message past its queue
 * lifetime, and hands the rest to relay_destination.c, which groups them
 * into jobs (one message, one destination, its recipients) on their
 * destinations and opens connections (relay_connection.c) up to the
 * limits. A job ends as a writer job that records its recipients' results;
 * until that commits, its message is in flight and later runs leave it
 * alone.
 *
 * Owns: struct relay and everything hung on it (relay_stop frees the
 * destinations and connections through the other two files), the flights,
 * the records on their way to the writer.
 * Must never: write to the store on the loop (every result goes through
 * the writer thread); send a message that is in flight again.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/util.h"
#include "smtp/client.h"
#include "smtp/relay.h"
#include "smtp/relay_internal.h"
#include "store/outbound.h"
#include "store/transport.h"
#include "store/writer.h"

/* Due recipients read per run; a full batch asks for another run. */
#define RELAY_BATCH 1000

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
