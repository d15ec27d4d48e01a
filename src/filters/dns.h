/*
 * dns.h — the DNS questions a filter asks about one message (the hand-off
 * address on blocklists, SPF records, DKIM keys, DMARC policies, link
 * domains), and who answers them.
 *
 * A filter asks through filter_dns_query with the message it judges; the
 * message carries the answerer (struct filter_dns) and its time budget. In a
 * worker, which has no network, the answerer sends each question to the main
 * process, whose resolver answers it (pipeline/proto.h: QUERY and ANSWER
 * frames); in popgatectl filter check a resolver of its own answers; in unit
 * tests a table. A message without an answerer gets FILTER_DNS_FAILED for
 * every question.
 *
 * Time: each message may spend FILTER_DNS_BUDGET_MS (or [spam]
 * dns_time_limit) waiting for answers, in all. A question asked once the
 * budget is spent is not sent: it ends as FILTER_DNS_TIMEOUT at once. A
 * filter treats TIMEOUT and FAILED as "no evidence" (a neutral result),
 * never as a reason to hold the message.
 *
 * Records come back as text, the way a filter reads them: A and AAAA as the
 * address ("192.0.2.1", "2001:db8::1"), TXT as its strings joined, MX as
 * "PREFERENCE EXCHANGE", PTR as the name. An answer keeps at most
 * FILTER_DNS_RECORDS_MAX records, each at most FILTER_DNS_RECORD_MAX bytes;
 * longer ones are left out.
 *
 * SECURITY: names asked for come from hostile mail: filter_dns_query sends
 * only syntactically valid names (letters, digits, '-', '_', dots; labels of
 * 1-63, 253 in all) and refuses the rest as FAILED. Answers come from the
 * network and are untrusted text.
 */
#ifndef POPGATE_FILTERS_DNS_H
#define POPGATE_FILTERS_DNS_H

#include <stddef.h>
#include <stdint.h>

/* The time one message may spend on DNS answers, in all, by default. */
#define FILTER_DNS_BUDGET_MS 5000
#define FILTER_DNS_RECORDS_MAX 32
#define FILTER_DNS_RECORD_MAX 1024
#define FILTER_DNS_NAME_MAX 253

/* Record types, by their DNS numbers (as core/resolver.h's). */
enum filter_dns_type {
	FILTER_DNS_A = 1,
	FILTER_DNS_PTR = 12,
	FILTER_DNS_MX = 15,
	FILTER_DNS_TXT = 16,
	FILTER_DNS_AAAA = 28,
};

enum filter_dns_status {
	FILTER_DNS_OK,	      /* answered: the records, maybe none */
	FILTER_DNS_NOT_FOUND, /* the name does not exist (NXDOMAIN) */
	FILTER_DNS_FAILED,    /* no usable answer (or no answerer, or a bad name) */
	FILTER_DNS_TIMEOUT,   /* no answer in time, or the budget was spent */
};

struct filter_dns_answer {
	enum filter_dns_status status;
	size_t count;
	char *records[FILTER_DNS_RECORDS_MAX]; /* NUL-terminated text, allocated */
};

/*
 * An answerer. QUERY asks NAME's records of TYPE, waiting at most
 * TIMEOUT_MS, and fills ANSWER (status, and records for OK). It returns
 * nothing: what went wrong is the status.
 */
struct filter_dns {
	void (*query)(struct filter_dns *dns, const char *name, enum filter_dns_type type,
		      int timeout_ms, struct filter_dns_answer *answer);
	void *ctx;
	/* The budget left for the message now being judged, in milliseconds;
	 * filter_dns_begin sets it, filter_dns_query spends it. */
	int64_t budget_ms;
	/* Answers kept across messages (filter_dns_cache_new), or NULL. */
	struct filter_dns_cache *cache;
};

/*
 * The answerer's own cache: answers (records, or that there are none) are
 * kept FILTER_DNS_CACHE_MS and given again without a round trip (in a
 * worker, to the main process and its resolver, which caches by TTL too);
 * failures and timeouts are not kept. FILTER_DNS_CACHE_SLOTS answers, the
 * older one giving way when two names meet in a slot. The lifetime is
 * short so that a blocklist's new listing counts within a minute whatever
 * the TTL.
 */
#define FILTER_DNS_CACHE_SLOTS 1024
#define FILTER_DNS_CACHE_MS 60000

struct filter_dns_cache *filter_dns_cache_new(void);
void filter_dns_cache_free(struct filter_dns_cache **cache);

struct filter_message;

/* Gives DNS (may be NULL) BUDGET_MS for the next message. */
void filter_dns_begin(struct filter_dns *dns, int64_t budget_ms);

/*
 * Asks MESSAGE's answerer NAME's records of TYPE and fills ANSWER (free its
 * records with filter_dns_answer_clear, whatever the status). A name that
 * is not a valid DNS name, a message without an answerer and a spent budget
 * are answered at once (FAILED, FAILED, TIMEOUT). Names are asked without a
 * trailing dot; one given with it is the same name.
 */
void filter_dns_query(const struct filter_message *message, const char *name,
		      enum filter_dns_type type, struct filter_dns_answer *answer);

/* Frees ANSWER's records and zeroes it. */
void filter_dns_answer_clear(struct filter_dns_answer *answer);

/* Whether NAME is a name filter_dns_query would send (see SECURITY). */
int filter_dns_name_valid(const char *name);

#endif
