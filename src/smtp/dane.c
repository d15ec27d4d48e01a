/*
 * dane.c — DANE for the SMTP relay: an MX host's A, AAAA and TLSA lookups
 * and what they decide (dane.h says the rules, RFC 7672 the reasons).
 *
 * The three questions go out at once; each answer is kept as the decision
 * needs it (the TLSA records copied: an answer lives only during its
 * callback), and the last one to come decides. The lookup is freed before
 * its callback runs, so the callback may cancel or free whatever holds it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resolver.h"
#include "core/util.h"
#include "smtp/dane.h"

/* The questions of a lookup, by index. */
enum { DANE_Q_A, DANE_Q_AAAA, DANE_Q_TLSA, DANE_QUESTIONS };

struct dane_question {
	struct dane_lookup *lookup;
	struct resolver_lookup *handle; /* while in flight */
	struct dane_answer answer;
	struct resolver_tlsa *records; /* TLSA: copies, owned here */
};

struct dane_lookup {
	char *host;
	int port;
	dane_cb *callback;
	void *ctx;
	struct dane_question questions[DANE_QUESTIONS];
	size_t pending;
};

/* RFC 6698 2.1.3: the sizes of SHA-256 and SHA-512 digests. */
#define DANE_SHA256_LEN 32
#define DANE_SHA512_LEN 64

bool dane_tlsa_usable(const struct resolver_tlsa *record)
{
	if (record->usage != 2 && record->usage != 3)
		return false; /* PKIX-TA, PKIX-EE (RFC 7672 3.1.3), or unknown */
	if (record->selector > 1 || record->length == 0)
		return false;
	switch (record->matching) {
	case 0:
		return true;
	case 1:
		return record->length == DANE_SHA256_LEN;
	case 2:
		return record->length == DANE_SHA512_LEN;
	}
	return false;
}

/* An address answer that proves what it says: records or their absence. */
static bool dane_address_secure(const struct dane_answer *answer)
{
	return (answer->status == RESOLVER_OK || answer->status == RESOLVER_NOT_FOUND) &&
	       answer->secure;
}

/* An address answer that came at all (not a failure or a timeout). */
static bool dane_address_answered(const struct dane_answer *answer)
{
	return answer->status == RESOLVER_OK || answer->status == RESOLVER_NOT_FOUND;
}

void dane_decide(const struct dane_answer *a, const struct dane_answer *aaaa,
		 const struct dane_answer *tlsa, const char *host, int port,
		 struct dane_policy *policy)
{
	size_t usable = 0;

	memset(policy, 0, sizeof(*policy));
	if (a->bogus || aaaa->bogus) {
		policy->state = DANE_DEFER;
		snprintf(policy->reason, sizeof(policy->reason),
			 "DANE: the DNSSEC validation of %s's addresses failed (bogus)", host);
		return;
	}
	/* RFC 7672 2.2.2: TLSA records count only for a host whose addresses
	 * are secure; each address answer that came must be, one at least. */
	if (!(dane_address_answered(a) || dane_address_answered(aaaa)) ||
	    (dane_address_answered(a) && !dane_address_secure(a)) ||
	    (dane_address_answered(aaaa) && !dane_address_secure(aaaa))) {
		policy->state = DANE_NONE;
		snprintf(policy->reason, sizeof(policy->reason),
			 "DANE: %s's addresses are not DNSSEC-signed", host);
		return;
	}
	if (tlsa->bogus) {
		policy->state = DANE_DEFER;
		snprintf(policy->reason, sizeof(policy->reason),
			 "DANE: the DNSSEC validation of the TLSA records at _%d._tcp.%s failed "
			 "(bogus)",
			 port, host);
		return;
	}
	if (tlsa->status == RESOLVER_FAILED || tlsa->status == RESOLVER_TIMEOUT) {
		/* Not "no records": an attacker who drops the answer must not
		 * get plain text (RFC 7672 2.2). */
		policy->state = DANE_DEFER;
		snprintf(policy->reason, sizeof(policy->reason),
			 "DANE: the TLSA lookup at _%d._tcp.%s failed: %s", port, host,
			 resolver_status_text(tlsa->status));
		return;
	}
	if (tlsa->status == RESOLVER_NOT_FOUND || tlsa->count == 0 || !tlsa->secure) {
		policy->state = DANE_NONE;
		snprintf(policy->reason, sizeof(policy->reason), "DANE: %s at _%d._tcp.%s",
			 tlsa->status == RESOLVER_OK && tlsa->count > 0 ? "insecure TLSA records"
									: "no TLSA records",
			 port, host);
		return;
	}
	for (size_t i = 0; i < tlsa->count; i++)
		usable += dane_tlsa_usable(&tlsa->records[i]);
	if (usable == 0) {
		policy->state = DANE_ENCRYPT;
		snprintf(policy->reason, sizeof(policy->reason),
			 "DANE: none of the %zu TLSA records at _%d._tcp.%s is usable; TLS "
			 "without authentication",
			 tlsa->count, port, host);
		return;
	}
	policy->state = DANE_AUTHENTICATE;
	policy->records = xcalloc(usable, sizeof(*policy->records));
	for (size_t i = 0; i < tlsa->count; i++) {
		const struct resolver_tlsa *record = &tlsa->records[i];

		if (!dane_tlsa_usable(record))
			continue;
		struct resolver_tlsa *copy = &policy->records[policy->count++];
		*copy = *record;
		copy->data = xmalloc(record->length);
		memcpy(copy->data, record->data, record->length);
	}
	snprintf(policy->reason, sizeof(policy->reason),
		 "DANE: %zu usable TLSA records at _%d._tcp.%s", policy->count, port, host);
}

void dane_policy_clear(struct dane_policy *policy)
{
	for (size_t i = 0; i < policy->count; i++)
		free(policy->records[i].data);
	free(policy->records);
	memset(policy, 0, sizeof(*policy));
}

const char *dane_state_name(enum dane_state state)
{
	switch (state) {
	case DANE_NONE:
		return "none";
	case DANE_ENCRYPT:
		return "encrypt";
	case DANE_AUTHENTICATE:
		return "authenticate";
	case DANE_DEFER:
		return "defer";
	}
	return "unknown";
}

/* ---- the lookup ----------------------------------------------------------- */

static void dane_lookup_free(struct dane_lookup *lookup)
{
	for (size_t q = 0; q < DANE_QUESTIONS; q++) {
		struct dane_question *question = &lookup->questions[q];

		resolver_cancel(&question->handle);
		for (size_t i = 0; i < question->answer.count && question->records != NULL; i++)
			free(question->records[i].data);
		free(question->records);
	}
	free(lookup->host);
	free(lookup);
}

static void dane_answer_cb(const struct resolver_answer *answer, void *ctx)
{
	struct dane_question *question = ctx;
	struct dane_lookup *lookup = question->lookup;
	struct dane_policy policy;
	dane_cb *callback;
	void *callback_ctx;

	question->handle = NULL;
	question->answer.status = answer->status;
	question->answer.secure = answer->secure;
	question->answer.bogus = answer->bogus;
	if (answer->type == RESOLVER_TLSA && answer->status == RESOLVER_OK && answer->count > 0) {
		question->records = xcalloc(answer->count, sizeof(*question->records));
		for (size_t i = 0; i < answer->count; i++) {
			const struct resolver_tlsa *record = answer->records[i].tlsa;

			question->records[i] = *record;
			question->records[i].data = xmalloc(record->length);
			memcpy(question->records[i].data, record->data, record->length);
		}
		question->answer.records = question->records;
		question->answer.count = answer->count;
	}
	if (--lookup->pending > 0)
		return;
	dane_decide(&lookup->questions[DANE_Q_A].answer, &lookup->questions[DANE_Q_AAAA].answer,
		    &lookup->questions[DANE_Q_TLSA].answer, lookup->host, lookup->port, &policy);
	callback = lookup->callback;
	callback_ctx = lookup->ctx;
	dane_lookup_free(lookup);
	callback(&policy, callback_ctx);
}

struct dane_lookup *dane_lookup_start(struct resolver *resolver, const char *host, int port,
				      dane_cb *callback, void *ctx)
{
	static const enum resolver_type types[DANE_QUESTIONS] = {
	    [DANE_Q_A] = RESOLVER_A, [DANE_Q_AAAA] = RESOLVER_AAAA, [DANE_Q_TLSA] = RESOLVER_TLSA};
	struct dane_lookup *lookup = xcalloc(1, sizeof(*lookup));
	char *tlsa_name = xasprintf("_%d._tcp.%s", port, host);

	lookup->host = xstrdup(host);
	lookup->port = port;
	lookup->callback = callback;
	lookup->ctx = ctx;
	/* The resolver never answers inside resolver_lookup: all three are
	 * asked before the first answer can come. */
	lookup->pending = DANE_QUESTIONS;
	for (size_t q = 0; q < DANE_QUESTIONS; q++) {
		struct dane_question *question = &lookup->questions[q];

		question->lookup = lookup;
		question->handle = resolver_lookup(resolver, q == DANE_Q_TLSA ? tlsa_name : host,
						   types[q], dane_answer_cb, question);
	}
	free(tlsa_name);
	return lookup;
}

void dane_lookup_cancel(struct dane_lookup **lookup_p)
{
	if (*lookup_p == NULL)
		return;
	dane_lookup_free(*lookup_p);
	*lookup_p = NULL;
}
