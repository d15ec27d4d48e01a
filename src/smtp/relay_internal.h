/*
 * relay_internal.h — what the files of the delivery scheduler share: the
 * relay's state, its jobs, destinations and connections, and the functions
 * one file calls in another. relay.h stays the public face.
 *
 * Three files share what is here:
 *   relay.c        the scheduler: runs (the due recipients read, a message
 *                  past its queue lifetime failed, the rest handed to their
 *                  destinations), kicks and the timer, the messages in
 *                  flight, the back-off, and the writer jobs that record
 *                  each result; relay_new, relay_stop, relay_free;
 *   relay_destination.c
 *                  destinations: a recipient's transport rule or its
 *                  domain's MX hosts (no MX: the domain itself; a null MX
 *                  fails it), the jobs waiting on each, and the pump that
 *                  looks the MTA-STS policy and the MX up and opens
 *                  connections within the limits;
 *   relay_connection.c
 *                  connections: core/connector (the address policy) then
 *                  smtp/client with the rule's TLS mode and AUTH (an MX
 *                  host found securely: its DANE policy, smtp/dane.c), a
 *                  failed opportunistic STARTTLS tried once more in plain
 *                  text, the next host, jobs sent one after another on a
 *                  connection and each recipient's outcome, and the clients
 *                  held while they quit.
 *
 * Nothing outside those three files includes this header.
 */
#ifndef POPGATE_SMTP_RELAY_INTERNAL_H
#define POPGATE_SMTP_RELAY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/crypto.h"
#include "smtp/client.h"
#include "smtp/dane.h"
#include "smtp/relay.h"
#include "store/db.h"
#include "store/envelope.h"
#include "store/outbound.h"
#include "store/spool.h"
#include "store/transport.h"

struct connector;
struct connector_attempt;
struct mta_sts_lookup;
struct mta_sts_policy;
struct resolver;
struct resolver_lookup;

/* A reply recorded is its first line, at most this long. */
#define RELAY_REPLY_MAX 400

/* One message to one destination. */
struct relay_job {
	struct relay_job *next;
	char id[SPOOL_ID_LEN + 1];
	char *sender;
	int64_t received_at;
	uint64_t body_size;
	char **recipients;
	int *attempts; /* each recipient's attempts so far */
	size_t count;
};

struct relay_destination {
	struct relay_destination *next;
	struct relay *relay;
	char *key;			  /* "rule ID" or "mx DOMAIN": one destination per key */
	char *domain;			  /* MX: the recipient domain */
	struct store_transport_rule rule; /* a rule's copy (HOST NULL for MX) */
	char **hosts;			  /* MX hosts in preference order, once resolved */
	size_t host_count;
	bool resolved;
	bool mx_secure; /* the MX answer (or its denial) was DNSSEC-validated: DANE applies */
	struct resolver_lookup *lookup;
	/* MX delivery: the domain's MTA-STS policy (smtp/mta_sts_fetch.h), or
	 * NULL for none; looked up before the MX. */
	struct mta_sts_lookup *sts_lookup;
	struct mta_sts_policy *sts;
	bool sts_known;		       /* the MTA-STS lookup has ended */
	struct relay_job *head, *tail; /* jobs waiting for a connection */
	size_t queued;
	size_t connections; /* open or opening */
	size_t opening;	    /* of those, not yet ready (each will take a job) */
};

struct relay_connection {
	struct relay_connection *next;
	struct relay_destination *dest;
	struct connector_attempt *attempt;
	struct smtp_client *client;
	size_t host_index;
	struct relay_job *job;	     /* being sent */
	int messages;		     /* sent over this connection */
	enum smtp_tls_mode tls_mode; /* of the session being started */
	bool plain;		     /* opportunistic TLS failed on this host: plain now */
	bool ready;		     /* its session was ready once */
	/* MTA-STS testing: the verified session enforce would need failed on
	 * this host; it goes on as without a policy (RFC 8461 5). */
	bool sts_relaxed;
	char last_error[RELAY_REPLY_MAX];
	/* DANE (smtp/dane.h), for an MX host a secure MX answer named. */
	struct dane_lookup *dane_lookup; /* in flight */
	/* The host's policy (DANE_NONE without). Where it has secure TLSA
	 * records DANE governs the host and MTA-STS is not applied (RFC 8461 2). */
	struct dane_policy dane;
};

/* A client saying QUIT: it frees itself once done, unless the relay stops
 * first and frees it. */
struct relay_quitting {
	struct relay_quitting *next;
	struct relay *relay;
	struct smtp_client *client;
};

/* A message with jobs whose results are not yet committed. */
struct relay_flight {
	struct relay_flight *next;
	char id[SPOOL_ID_LEN + 1];
	size_t jobs;
};

struct relay {
	struct event_base *base;
	struct store *store;
	struct writer *writer;
	struct resolver *resolver;
	struct connector *connector;
	struct offload *offload;
	const struct crypto_key *key;
	struct popgate_config *const *config;
	relay_queued_cb *queued;
	void *queued_ctx;
	struct event *run_event;
	struct event *timer;
	struct relay_destination *destinations;
	struct relay_connection *connections;
	size_t connection_count;
	struct relay_flight *flights;
	struct relay_quitting *quitting;
	bool stopped; /* relay_stop: no more runs */
};

/* The results of one job on their way to the writer thread. */
struct relay_record {
	struct relay *relay;
	char id[SPOOL_ID_LEN + 1];
	struct outbound_attempt *attempts;
	size_t count;
	int64_t now;
	char *reporting_mta;
	char dsn_id[SPOOL_ID_LEN + 1];
};

/* ---- relay.c ------------------------------------------------------------- */

/* The configuration in force (a reload's new one from then on). */
const struct popgate_config *relay_config(const struct relay *relay);
/* One more job of message ID is in flight: later runs leave it alone. */
void relay_flight_add(struct relay *relay, const char *id);
void relay_job_free(struct relay_job *job);
/* A new record for JOB's recipients (the caller sets each one's result). */
struct relay_record *relay_record_new(struct relay *relay, const struct relay_job *job);
/* Sets recipient I of RECORD (of JOB): STATUS with REPLY; a PENDING one
 * gets its next attempt. */
void relay_record_set(struct relay *relay, struct relay_record *record, const struct relay_job *job,
		      size_t i, enum envelope_status status, const char *reply);
/* Hands RECORD to the writer; its message stays in flight until then. */
void relay_record_submit(struct relay *relay, struct relay_record *record);
/* Ends JOB with one result for all its recipients, and frees it. */
void relay_job_end(struct relay *relay, struct relay_job *job, enum envelope_status status,
		   const char *reply);

/* ---- relay_destination.c ------------------------------------------------- */

void relay_destination_free(struct relay_destination *dest);
/* Frees DEST if nothing needs it any more. */
void relay_destination_release(struct relay_destination *dest);
/* The first job waiting on DEST, taken off its queue, or NULL. */
struct relay_job *relay_destination_take(struct relay_destination *dest);
/* Ends every job waiting on DEST with STATUS and REPLY. */
void relay_destination_fail(struct relay_destination *dest, enum envelope_status status,
			    const char *reply);
/* Appends DUE's recipient to the job of its message for its destination
 * (by RULES, else its domain's MX), or to *FAILED when it has no domain. */
void relay_queue_recipient(struct relay *relay, const struct outbound_due *due,
			   const struct store_transport_rule *rules, size_t rule_count,
			   struct relay_job **failed);
/* Looks up the destinations that need it, opens connections where jobs
 * wait (within the limits), and frees the destinations nothing needs. */
void relay_pump(struct relay *relay);

/* The MTA-STS policy DEST's MX hosts are held to (mode testing or
 * enforce), or NULL: none, mode none, or a transport rule. */
const struct mta_sts_policy *relay_destination_sts(const struct relay_destination *dest);

/* ---- relay_connection.c -------------------------------------------------- */

/* A new connection to DEST: it takes DEST's jobs once its session is ready. */
void relay_connection_open(struct relay_destination *dest);
/* Ends CONN: a reusable client quits politely (unless the relay stops),
 * and CONN leaves its destination's and the relay's counts. */
void relay_connection_close(struct relay_connection *conn);

#endif
