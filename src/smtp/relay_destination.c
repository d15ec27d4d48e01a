/*
 * relay_destination.c — the relay's destinations (relay_internal.h): where
 * each due recipient goes, and the jobs that wait there for a connection.
 *
 * A recipient goes to the first transport rule that matches (its host,
 * port, TLS mode and AUTH), else to its domain's MX hosts in preference
 * order: no MX, the domain itself (RFC 5321 5.1); a null MX "0 ."
 * (RFC 7505), it fails at once, 556 5.1.10; a domain that does not exist,
 * 550 5.1.2; a lookup that fails, pending again. Before the MX, the
 * domain's MTA-STS policy (RFC 8461, smtp/mta_sts_fetch.h), which
 * relay_connection.c applies to each MX host. The pump looks up what is
 * unresolved and opens connections where jobs wait, within
 * max_per_destination and max_connections.
 *
 * Owns: the destinations (one per rule or MX domain, living while they
 * have jobs, connections or a lookup), their jobs waiting, their MX and
 * MTA-STS lookups (made again by each destination; the resolver caches by
 * TTL, the store the policies), and the policy found.
 * Must never: connect or speak SMTP (relay_connection.c does); write to the
 * store; free a destination that a connection or a lookup still holds.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resolver.h"
#include "core/util.h"
#include "smtp/mta_sts_fetch.h"
#include "smtp/relay_internal.h"
#include "store/outbound.h"
#include "store/transport.h"

void relay_destination_free(struct relay_destination *dest)
{
	struct relay_job *job;

	resolver_cancel(&dest->lookup);
	mta_sts_lookup_cancel(&dest->sts_lookup);
	mta_sts_policy_free(dest->sts);
	while ((job = dest->head) != NULL) {
		dest->head = job->next;
		relay_job_free(job);
	}
	for (size_t i = 0; i < dest->host_count; i++)
		free(dest->hosts[i]);
	free(dest->hosts);
	free(dest->rule.pattern);
	free(dest->rule.host);
	free(dest->rule.auth_user);
	free(dest->rule.auth_secret);
	free(dest->domain);
	free(dest->key);
	free(dest);
}

/* Frees DEST if nothing needs it any more. */
void relay_destination_release(struct relay_destination *dest)
{
	struct relay *relay = dest->relay;

	if (dest->head != NULL || dest->connections > 0 || dest->lookup != NULL ||
	    dest->sts_lookup != NULL)
		return;
	for (struct relay_destination **p = &relay->destinations; *p != NULL; p = &(*p)->next) {
		if (*p == dest) {
			*p = dest->next;
			break;
		}
	}
	relay_destination_free(dest);
}

struct relay_job *relay_destination_take(struct relay_destination *dest)
{
	struct relay_job *job = dest->head;

	if (job != NULL) {
		dest->head = job->next;
		if (dest->head == NULL)
			dest->tail = NULL;
		job->next = NULL;
		dest->queued--;
	}
	return job;
}

/* Ends every job waiting on DEST with STATUS and REPLY. */
void relay_destination_fail(struct relay_destination *dest, enum envelope_status status,
			    const char *reply)
{
	struct relay_job *job;

	while ((job = relay_destination_take(dest)) != NULL)
		relay_job_end(dest->relay, job, status, reply);
}

/* The destination of KEY, made when new (RULE the matching rule, or NULL
 * with DOMAIN for MX delivery). */
static struct relay_destination *relay_destination_get(struct relay *relay, const char *key,
						       const struct store_transport_rule *rule,
						       const char *domain)
{
	struct relay_destination *dest;

	for (dest = relay->destinations; dest != NULL; dest = dest->next)
		if (strcmp(dest->key, key) == 0)
			return dest;
	dest = xcalloc(1, sizeof(*dest));
	dest->relay = relay;
	dest->key = xstrdup(key);
	if (rule != NULL) {
		dest->rule = *rule;
		dest->rule.pattern = xstrdup(rule->pattern);
		dest->rule.host = xstrdup(rule->host);
		dest->rule.auth_user = rule->auth_user != NULL ? xstrdup(rule->auth_user) : NULL;
		if (rule->auth_secret != NULL) {
			dest->rule.auth_secret = xmalloc(rule->auth_secret_len);
			memcpy(dest->rule.auth_secret, rule->auth_secret, rule->auth_secret_len);
		}
		dest->resolved = true;
	} else {
		dest->domain = xstrdup(domain);
	}
	dest->next = relay->destinations;
	relay->destinations = dest;
	return dest;
}

static void relay_mx_cb(const struct resolver_answer *answer, void *ctx)
{
	struct relay_destination *dest = ctx;
	char reply[RELAY_REPLY_MAX];

	size_t exchanges = 0;

	dest->lookup = NULL;
	for (size_t i = 0; answer->status == RESOLVER_OK && i < answer->count; i++)
		exchanges += strcmp(answer->records[i].name, ".") != 0;
	if (answer->status == RESOLVER_OK && answer->count > 0 && exchanges == 0) {
		/* RFC 7505: "0 ." says the domain accepts no mail. */
		relay_destination_fail(dest, ENVELOPE_FAILED,
				       "556 5.1.10 (popgate) the domain accepts no mail (null MX)");
	} else if (answer->status == RESOLVER_OK) {
		/* In preference order (the resolver sorts them); a "." among
		 * real exchanges is no host to try. */
		dest->hosts = xcalloc(answer->count + 1, sizeof(*dest->hosts));
		for (size_t i = 0; i < answer->count; i++)
			if (strcmp(answer->records[i].name, ".") != 0)
				dest->hosts[dest->host_count++] = xstrdup(answer->records[i].name);
		/* No MX: the domain is its own mail host (RFC 5321 5.1). */
		if (dest->host_count == 0)
			dest->hosts[dest->host_count++] = xstrdup(dest->domain);
		dest->resolved = true;
		/* DANE (RFC 7672 2.2.1): only for MX hosts a validated answer named. */
		dest->mx_secure = answer->secure;
	} else if (answer->status == RESOLVER_NOT_FOUND) {
		relay_destination_fail(dest, ENVELOPE_FAILED,
				       "550 5.1.2 (popgate) the recipient domain does not exist");
	} else {
		/* A bogus MX is never taken for "no MX" (RFC 7672 2.2.1). */
		snprintf(reply, sizeof(reply), "451 4.4.3 (popgate) MX lookup of %s: %s",
			 dest->domain,
			 answer->bogus ? "DNSSEC validation failed (bogus)"
				       : resolver_status_text(answer->status));
		relay_destination_fail(dest, ENVELOPE_PENDING, reply);
	}
	relay_pump(dest->relay);
}

const struct mta_sts_policy *relay_destination_sts(const struct relay_destination *dest)
{
	if (dest->rule.host != NULL || dest->sts == NULL || dest->sts->mode == MTA_STS_NONE)
		return NULL;
	return dest->sts;
}

static void relay_sts_cb(struct mta_sts_policy *policy, void *ctx)
{
	struct relay_destination *dest = ctx;

	dest->sts_lookup = NULL;
	dest->sts_known = true;
	dest->sts = policy;
	relay_pump(dest->relay);
}

/* Starts DEST's MTA-STS lookup (RFC 8461), which comes before its MX. */
static void relay_sts_start(struct relay_destination *dest)
{
	struct relay *relay = dest->relay;
	const struct popgate_config *cfg = relay_config(relay);
	struct mta_sts_env env = {
	    .base = relay->base,
	    .resolver = relay->resolver,
	    .connector = relay->connector,
	    .store = relay->store,
	    .writer = relay->writer,
	    .port = cfg->relay_mta_sts_port,
	    .ca_file = cfg->relay_ca_file,
	    .allow_private = cfg->relay_allow_private,
	    .connect_timeout = cfg->relay_connect_timeout,
	};

	dest->sts_lookup = mta_sts_lookup_start(&env, dest->domain, relay_sts_cb, dest);
}

/* Opens connections where jobs wait, within the limits. */
void relay_pump(struct relay *relay)
{
	const struct popgate_config *cfg = relay_config(relay);
	struct relay_destination *dest, *next;

	for (dest = relay->destinations; dest != NULL; dest = next) {
		next = dest->next;
		if (!dest->resolved && !dest->sts_known && dest->head != NULL) {
			if (dest->sts_lookup == NULL)
				relay_sts_start(dest);
			continue;
		}
		if (!dest->resolved && dest->lookup == NULL && dest->head != NULL) {
			dest->lookup = resolver_lookup(relay->resolver, dest->domain, RESOLVER_MX,
						       relay_mx_cb, dest);
			continue;
		}
		/* Busy connections take a job each when done; one still opening
		 * will take one too: more are opened only for jobs beyond those. */
		while (dest->resolved && dest->queued > dest->opening &&
		       dest->connections < (size_t)cfg->relay_max_per_destination &&
		       relay->connection_count < (size_t)cfg->relay_max_connections)
			relay_connection_open(dest);
	}
	for (dest = relay->destinations; dest != NULL; dest = next) {
		next = dest->next;
		relay_destination_release(dest);
	}
}

/* The domain of ADDRESS in lower case (allocated), or NULL for none. */
static char *relay_domain(const char *address)
{
	const char *at = strrchr(address, '@');
	char *domain;

	if (at == NULL || at[1] == '\0')
		return NULL;
	domain = xstrdup(at + 1);
	for (char *c = domain; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return domain;
}

/* Appends DUE's recipient to the job of its message for its destination. */
void relay_queue_recipient(struct relay *relay, const struct outbound_due *due,
			   const struct store_transport_rule *rules, size_t rule_count,
			   struct relay_job **failed)
{
	const struct store_transport_rule *rule =
	    transport_rule_find(rules, rule_count, due->sender, due->address);
	struct relay_destination *dest;
	struct relay_job *job;
	char *domain = relay_domain(due->address), *key;

	if (rule != NULL)
		key = xasprintf("rule %lld", (long long)rule->id);
	else if (domain != NULL)
		key = xasprintf("mx %s", domain);
	else
		key = NULL;
	if (key != NULL) {
		dest = relay_destination_get(relay, key, rule, domain);
		job = dest->tail;
	} else {
		dest = NULL;
		job = *failed;
	}
	if (job == NULL || strcmp(job->id, due->message_id) != 0) {
		job = xcalloc(1, sizeof(*job));
		memcpy(job->id, due->message_id, SPOOL_ID_LEN + 1);
		job->sender = xstrdup(due->sender);
		job->received_at = due->received_at;
		job->body_size = due->body_size > 0 ? (uint64_t)due->body_size : 0;
		relay_flight_add(relay, job->id);
		if (dest != NULL) {
			if (dest->tail != NULL)
				dest->tail->next = job;
			else
				dest->head = job;
			dest->tail = job;
			dest->queued++;
		} else {
			job->next = *failed;
			*failed = job;
		}
	}
	job->recipients = xrealloc(job->recipients, (job->count + 1) * sizeof(*job->recipients));
	job->attempts = xrealloc(job->attempts, (job->count + 1) * sizeof(*job->attempts));
	job->recipients[job->count] = xstrdup(due->address);
	job->attempts[job->count] = due->attempts;
	job->count++;
	free(key);
	free(domain);
}
