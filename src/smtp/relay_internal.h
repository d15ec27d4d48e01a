/*
 * relay_internal.h — the delivery scheduler's state: the relay, its jobs,
 * destinations, connections, messages in flight and the records on their
 * way to the writer, for the files of the relay to share. relay.h stays
 * the public face.
 *
 * Nothing outside src/smtp/relay.c includes this header.
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
#include "smtp/relay.h"
#include "store/db.h"
#include "store/envelope.h"
#include "store/outbound.h"
#include "store/spool.h"
#include "store/transport.h"

struct connector;
struct connector_attempt;
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
	struct resolver_lookup *lookup;
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
	char last_error[RELAY_REPLY_MAX];
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

#endif
