/*
 * relay.h — the delivery scheduler: sends outbound mail on, recipient by
 * recipient, and records every result in the store.
 *
 * A run (relay_kick, a timer for the next retry that is due, the control
 * check) reads the pending recipients that are due of messages in outbound
 * (store/outbound.h), and sends each to its destination: the first
 * transport rule that matches (store/transport.h: its host, port, TLS mode
 * and AUTH), else the recipient domain's MX hosts in preference order (no
 * MX: the domain itself, RFC 5321 5.1; a null MX "0 ." (RFC 7505): the
 * recipient fails at once, 556 5.1.10). The recipients of one message to
 * one destination go in one transaction; messages to one destination share
 * a connection (up to [relay] messages_per_connection), with at most
 * max_per_destination connections to it and max_connections in all.
 * Connections go through core/connector (each address judged by the
 * address policy: an MX host in a private range is refused unless [relay]
 * allow_private; a transport rule's host may be anywhere) and smtp/client,
 * with opportunistic STARTTLS to MX hosts (a session that dies in it is
 * tried once more in plain text, RFC 7435) and a rule's own TLS mode and
 * AUTH; the recipient domain's MTA-STS policy (RFC 8461, smtp/mta_sts.h)
 * for MX hosts. DANE is not applied yet.
 *
 * Per recipient: 2xx sent; 5xx failed (for that recipient only); 4xx, no
 * connection or no answer: pending again, after retry_min doubling per
 * attempt up to retry_max; a recipient still pending when its message has
 * waited queue_lifetime fails. Each result goes through the writer thread
 * (store_outbound_record, then store_outbound_finish: sent | bounced and
 * the DSN), never written on the loop's connection. A recipient once sent
 * is never sent again; a delivery cut after the remote server took the
 * body but before its reply arrived is repeated (at least once).
 *
 * A run also ends the relay of messages whose recipients all became final
 * outside it (`popgatectl queue bounce`): the DSN is written here, by the
 * daemon's user, who owns the spool.
 *
 * All state is in the store: after a restart the pending recipients are
 * simply due again.
 *
 * Owns: its connector, destinations, connections and SMTP clients, the
 * messages in flight (so a run does not send one twice at once).
 * Must never: write to the store on the loop, log a password or a body.
 */
#ifndef POPGATE_SMTP_RELAY_H
#define POPGATE_SMTP_RELAY_H

#include <event2/event.h>

#include "core/config.h"
#include "core/crypto.h"
#include "store/db.h"
#include "store/spool.h"

struct relay;
struct resolver;
struct writer;
struct offload;

/* A DSN was queued as message ID (a submitted message in processing), for
 * the caller to hand to the pipeline. */
typedef void relay_queued_cb(const char *id, void *ctx);

/*
 * A relay on BASE reading STORE (the loop's connection), writing through
 * WRITER, resolving with RESOLVER, reading bodies with OFFLOAD (all must
 * outlive it; the writer's last completions may still reach it, so free it
 * after writer_free). *CONFIG is read at each use (a reload's new one holds
 * from then on); KEY opens the transport rules' AUTH secrets. The first run
 * is at once. NULL if libevent fails.
 */
struct relay *relay_new(struct event_base *base, struct store *store, struct writer *writer,
			struct resolver *resolver, struct offload *offload,
			const struct crypto_key *key, struct popgate_config *const *config,
			relay_queued_cb *queued, void *ctx);

/* Asks for a run soon (from the loop): a message entered outbound, or
 * popgatectl changed the queue or the rules. Cheap; runs coalesce. */
void relay_kick(struct relay *relay);

/* Stops every connection and lookup at once, and runs no more (at
 * shutdown, before the offload threads and the resolver go). NULL is fine. */
void relay_stop(struct relay *relay);

/* relay_stop, then frees *RELAY (NULL is fine) and sets it to NULL. */
void relay_free(struct relay **relay);

#endif
