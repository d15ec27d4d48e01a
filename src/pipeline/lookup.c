/*
 * lookup.c — resolver answers as the text filters read (lookup.h), and the
 * answerer popgatectl filter check uses: a resolver on a loop of its own.
 *
 * Owns: the local answerer's event loop and resolver. Must never: hand a
 * filter a record that is not bounded, printable text (answers come from
 * the network), or wait past the question's time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/util.h"
#include "pipeline/lookup.h"
#include "pipeline/proto.h"

enum filter_dns_status lookup_status(enum resolver_status status)
{
	switch (status) {
	case RESOLVER_OK:
		return FILTER_DNS_OK;
	case RESOLVER_NOT_FOUND:
		return FILTER_DNS_NOT_FOUND;
	case RESOLVER_TIMEOUT:
		return FILTER_DNS_TIMEOUT;
	case RESOLVER_FAILED:
		break;
	}
	return FILTER_DNS_FAILED;
}

/* RECORD of TYPE as text into OUT (SIZE bytes), or NULL if it has none or
 * does not fit. TXT is returned as the record's own text. */
static const char *lookup_record_text(enum resolver_type type, const struct resolver_record *record,
				      char *out, size_t size)
{
	const struct sockaddr *sa = (const struct sockaddr *)&record->address.addr;

	switch (type) {
	case RESOLVER_A:
		if (sa->sa_family != AF_INET)
			return NULL;
		return inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out,
				 (socklen_t)size);
	case RESOLVER_AAAA:
		if (sa->sa_family != AF_INET6)
			return NULL;
		return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out,
				 (socklen_t)size);
	case RESOLVER_MX:
		if (record->name == NULL ||
		    (size_t)snprintf(out, size, "%u %s", record->preference, record->name) >= size)
			return NULL;
		return out;
	case RESOLVER_PTR:
		return record->name;
	case RESOLVER_TXT:
		/* A NUL among the strings ends the text early: the length check
		 * below then refuses it. */
		if (record->text == NULL || strlen(record->text) != record->text_length)
			return NULL;
		return record->text;
	case RESOLVER_TLSA:
		break;
	}
	return NULL;
}

void lookup_answer_fill(const struct resolver_answer *from, struct filter_dns_answer *answer)
{
	char text[FILTER_DNS_RECORD_MAX + 1];

	memset(answer, 0, sizeof(*answer));
	answer->status = lookup_status(from->status);
	if (answer->status != FILTER_DNS_OK)
		return;
	for (size_t i = 0; i < from->count && answer->count < FILTER_DNS_RECORDS_MAX; i++) {
		const char *record =
		    lookup_record_text(from->type, &from->records[i], text, sizeof(text));

		if (record != NULL && proto_dns_record_valid(record, strlen(record)))
			answer->records[answer->count++] = xstrdup(record);
	}
}

/* The local answerer: a loop and a resolver, and the question in flight. */
struct lookup_local {
	struct filter_dns dns; /* first: the answerer handed out */
	struct event_base *base;
	struct resolver *resolver;
	struct filter_dns_answer *answer; /* where the answer in flight goes */
	bool done;
};

static void lookup_local_on_answer(const struct resolver_answer *from, void *ctx)
{
	struct lookup_local *local = ctx;

	lookup_answer_fill(from, local->answer);
	local->done = true;
	event_base_loopbreak(local->base);
}

static void lookup_local_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			       int timeout_ms, struct filter_dns_answer *answer)
{
	struct lookup_local *local = dns->ctx;
	struct resolver_lookup *lookup;

	memset(answer, 0, sizeof(*answer));
	answer->status = FILTER_DNS_FAILED;
	local->answer = answer;
	local->done = false;
	/* The resolver's own timer ends the lookup as TIMEOUT in time. */
	resolver_set_timeout(local->resolver, timeout_ms > 0 ? timeout_ms : 1);
	lookup = resolver_lookup(local->resolver, name, (enum resolver_type)type,
				 lookup_local_on_answer, local);
	while (!local->done && event_base_loop(local->base, EVLOOP_ONCE) == 0)
		continue;
	if (!local->done)
		resolver_cancel(&lookup);
	local->answer = NULL;
}

struct filter_dns *lookup_local_new(const char *nameservers, char *err, size_t errlen)
{
	struct lookup_local *local = xcalloc(1, sizeof(*local));

	local->base = event_base_new();
	if (local->base == NULL) {
		snprintf(err, errlen, "cannot start an event loop");
		free(local);
		return NULL;
	}
	local->resolver = resolver_new(local->base, nameservers, err, errlen);
	if (local->resolver == NULL) {
		event_base_free(local->base);
		free(local);
		return NULL;
	}
	local->dns.query = lookup_local_query;
	local->dns.ctx = local;
	local->dns.budget_ms = FILTER_DNS_BUDGET_MS;
	local->dns.cache = filter_dns_cache_new();
	return &local->dns;
}

void lookup_local_free(struct filter_dns **dns)
{
	struct lookup_local *local;

	if (*dns == NULL)
		return;
	local = (*dns)->ctx;
	filter_dns_cache_free(&local->dns.cache);
	resolver_free(&local->resolver);
	event_base_free(local->base);
	free(local);
	*dns = NULL;
}
