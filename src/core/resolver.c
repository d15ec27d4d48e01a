/*
 * resolver.c — popgate's resolver on libunbound (resolver.h says what it
 * answers and promises).
 *
 * libunbound resolves in a thread of its own (ub_ctx_async) and hands each
 * answer back through a pipe, ub_fd; an event on that pipe calls ub_process,
 * which runs the answers' callbacks on the loop's thread. The event is in
 * the loop only while a question is in flight, so that a loop with nothing
 * else to do still ends (popgatectl's login check runs one).
 *
 * A lookup asks one question, or two for a host's addresses (A and AAAA at
 * once), and carries its own timer: libunbound has no deadline per query,
 * and a name server that never answers would otherwise keep a lookup for as
 * long as its retries last. The same timer, set to fire at once, delivers
 * what is known without asking (a numeric host, a question libunbound
 * refused), so a callback never runs inside the call that started it.
 *
 * Cancelling (a timeout, resolver_cancel) uses ub_cancel, after which
 * libunbound runs no callback for the question: its answer, if one comes,
 * is dropped inside ub_process, and one still out when the context is freed
 * is freed with it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/util.h>
#include <unbound.h>

#include "core/log.h"
#include "core/rdata.h"
#include "core/resolver.h"
#include "core/util.h"

/* An address lookup asks for A and AAAA; any other lookup asks once. */
#define RESOLVER_QUESTIONS_MAX 2
#define RESOLVER_CLASS_IN 1
#define RESOLVER_RCODE_NXDOMAIN 3

struct resolver_question {
	struct resolver_lookup *lookup;
	enum resolver_type type;
	int async_id;
	bool pending; /* asked; neither answered nor cancelled */
	enum resolver_status status;
	struct ub_result *result; /* when answered; freed with the lookup */
};

struct resolver_lookup {
	struct resolver *resolver;
	TAILQ_ENTRY(resolver_lookup) entry;
	char *name;
	enum resolver_type type; /* for resolver_lookup */
	bool addresses;		 /* for resolver_lookup_addresses */
	int port;
	resolver_answer_cb *answer_callback;
	resolver_addresses_cb *addresses_callback;
	void *ctx;
	/* The timeout, or "at once" when nothing is pending. */
	struct event *timer;
	struct resolver_question questions[RESOLVER_QUESTIONS_MAX];
	size_t question_count;
	/* A numeric host: its address, known without a question. */
	struct resolver_address numeric;
	bool is_numeric;
};

struct resolver {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *answer_event; /* ub_fd is readable */
	size_t pending;		    /* questions in flight, all lookups together */
	bool broken;		    /* libunbound's pipe failed; lookups time out */
	int timeout_ms;
	TAILQ_HEAD(, resolver_lookup) lookups;
};

/* ---- questions in flight ------------------------------------------------ */

static void resolver_pending_add(struct resolver *resolver)
{
	if (resolver->pending++ == 0 && !resolver->broken)
		event_add(resolver->answer_event, NULL);
}

static void resolver_pending_done(struct resolver *resolver)
{
	if (--resolver->pending == 0)
		event_del(resolver->answer_event);
}

static void resolver_answer_event_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct resolver *resolver = ctx;
	(void)fd;
	(void)what;

	int rc = ub_process(resolver->ub);
	if (rc != 0) {
		/* The thread is gone (out of memory): no answer can come any
		 * more. Leave the pipe, which would stay readable, and let the
		 * lookups' timers end them. */
		log_error("resolver: %s; lookups will time out", ub_strerror(rc));
		resolver->broken = true;
		event_del(resolver->answer_event);
	}
}

/* ---- answers ------------------------------------------------------------ */

static enum resolver_status resolver_result_status(int error, const struct ub_result *result)
{
	if (error != 0 || result == NULL || result->bogus)
		return RESOLVER_FAILED;
	if (result->nxdomain || result->rcode == RESOLVER_RCODE_NXDOMAIN)
		return RESOLVER_NOT_FOUND;
	return result->rcode == 0 ? RESOLVER_OK : RESOLVER_FAILED;
}

/* Fills ADDRESS from an A or AAAA record's RDATA. 0, or -1 if it is not
 * one's length. */
static int resolver_address_read(enum resolver_type type, const void *data, int len, int port,
				 struct resolver_address *address)
{
	memset(address, 0, sizeof(*address));
	if (type == RESOLVER_A && len == 4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&address->addr;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, data, 4);
		address->len = sizeof(*sin);
		return 0;
	}
	if (type == RESOLVER_AAAA && len == 16) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&address->addr;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, data, 16);
		address->len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

/* The number of records RESULT holds. */
static size_t resolver_result_count(const struct ub_result *result)
{
	size_t count = 0;

	if (result != NULL && result->data != NULL)
		while (result->data[count] != NULL)
			count++;
	return count;
}

static void resolver_deliver_addresses(struct resolver_lookup *lookup)
{
	size_t capacity = lookup->is_numeric ? 1 : 0, count = 0;
	enum resolver_status status =
	    lookup->is_numeric ? RESOLVER_OK : lookup->questions[0].status;
	struct resolver_address *addresses;

	for (size_t q = 0; q < lookup->question_count; q++)
		capacity += resolver_result_count(lookup->questions[q].result);
	addresses = xcalloc(capacity > 0 ? capacity : 1, sizeof(*addresses));
	if (lookup->is_numeric)
		addresses[count++] = lookup->numeric;
	/* The questions are A then AAAA: IPv4 addresses come first. */
	for (size_t q = 0; q < lookup->question_count; q++) {
		const struct resolver_question *question = &lookup->questions[q];

		/* One question failing must not hide the other's answer: the
		 * best status of the two counts (they are listed best first). */
		if (question->status < status)
			status = question->status;
		if (question->status != RESOLVER_OK)
			continue;
		for (size_t i = 0; question->result->data[i] != NULL; i++)
			if (resolver_address_read(question->type, question->result->data[i],
						  question->result->len[i], lookup->port,
						  &addresses[count]) == 0)
				count++;
	}
	if (count > 0)
		status = RESOLVER_OK;
	lookup->addresses_callback(status, addresses, count, lookup->ctx);
	free(addresses);
}

/* Reads RDATA of TYPE into RECORD, NAME being room for one name. 0, or -1 if
 * it is malformed. */
static int resolver_record_read(enum resolver_type type, const uint8_t *data, size_t len,
				struct resolver_record *record, char *name)
{
	switch (type) {
	case RESOLVER_A:
	case RESOLVER_AAAA:
		return resolver_address_read(type, data, (int)len, 0, &record->address);
	case RESOLVER_MX:
		if (rdata_mx(data, len, &record->preference, name, RDATA_NAME_TEXT_MAX) < 0)
			return -1;
		record->name = xstrdup(name);
		return 0;
	case RESOLVER_PTR:
		if (rdata_ptr(data, len, name, RDATA_NAME_TEXT_MAX) < 0)
			return -1;
		record->name = xstrdup(name);
		return 0;
	case RESOLVER_TLSA: {
		struct rdata_tlsa tlsa;

		if (rdata_tlsa(data, len, &tlsa) < 0)
			return -1;
		record->tlsa = xcalloc(1, sizeof(*record->tlsa));
		record->tlsa->usage = tlsa.usage;
		record->tlsa->selector = tlsa.selector;
		record->tlsa->matching = tlsa.matching;
		record->tlsa->data = xmalloc(tlsa.length);
		memcpy(record->tlsa->data, tlsa.data, tlsa.length);
		record->tlsa->length = tlsa.length;
		return 0;
	}
	case RESOLVER_TXT: {
		int count = rdata_txt_count(data, len);
		size_t offset = 0, at = 0;

		if (count < 0)
			return -1;
		record->strings = xcalloc((size_t)count, sizeof(*record->strings));
		record->text = xmalloc(len + 1); /* the strings take less than LEN */
		for (int i = 0; i < count; i++) {
			struct resolver_txt_string *string = &record->strings[i];
			const uint8_t *bytes;

			rdata_txt_next(data, len, &offset, &bytes, &string->length);
			string->data = xmalloc(string->length + 1);
			memcpy(string->data, bytes, string->length);
			string->data[string->length] = '\0';
			memcpy(record->text + at, bytes, string->length);
			at += string->length;
		}
		record->text[at] = '\0';
		record->text_length = at;
		record->string_count = (size_t)count;
		return 0;
	}
	}
	return -1;
}

static void resolver_record_clear(struct resolver_record *record)
{
	for (size_t i = 0; i < record->string_count; i++)
		free(record->strings[i].data);
	free(record->strings);
	free(record->text);
	free(record->name);
	if (record->tlsa != NULL)
		free(record->tlsa->data);
	free(record->tlsa);
}

/* MX records by preference, lowest first; equal ones stay in the order the
 * answer gave (the relay picks among them, RFC 5321 5.1). */
static void resolver_sort_mx(struct resolver_record *records, size_t count)
{
	for (size_t i = 1; i < count; i++) {
		struct resolver_record record = records[i];
		size_t j = i;

		for (; j > 0 && records[j - 1].preference > record.preference; j--)
			records[j] = records[j - 1];
		records[j] = record;
	}
}

static void resolver_deliver_answer(struct resolver_lookup *lookup)
{
	const struct resolver_question *question = &lookup->questions[0];
	struct resolver_answer answer = {
	    .status = question->status, .type = lookup->type, .name = lookup->name};
	size_t total =
	    question->status == RESOLVER_OK ? resolver_result_count(question->result) : 0;
	char *name = xmalloc(RDATA_NAME_TEXT_MAX);

	answer.records = xcalloc(total > 0 ? total : 1, sizeof(*answer.records));
	for (size_t i = 0; i < total; i++)
		if (resolver_record_read(lookup->type, (const uint8_t *)question->result->data[i],
					 (size_t)question->result->len[i],
					 &answer.records[answer.count], name) == 0)
			answer.count++;
	free(name);
	if (total > 0 && answer.count == 0) {
		/* Only malformed records: no answer one can use. */
		log_warn("resolver: the %d records of %s are all malformed", (int)total,
			 lookup->name);
		answer.status = RESOLVER_FAILED;
	}
	if (lookup->type == RESOLVER_MX)
		resolver_sort_mx(answer.records, answer.count);
	/* A name that does not exist can be proved so (NSEC, NSEC3) as well. */
	answer.secure = (answer.status == RESOLVER_OK || answer.status == RESOLVER_NOT_FOUND) &&
			question->result->secure;
	answer.bogus = question->result != NULL && question->result->bogus;
	if (answer.bogus)
		log_warn("resolver: DNSSEC validation of %s failed: %s", lookup->name,
			 question->result->why_bogus != NULL ? question->result->why_bogus
							     : "bogus");
	lookup->answer_callback(&answer, lookup->ctx);
	for (size_t i = 0; i < answer.count; i++)
		resolver_record_clear(&answer.records[i]);
	free(answer.records);
}

static void resolver_lookup_free(struct resolver_lookup *lookup)
{
	struct resolver *resolver = lookup->resolver;

	for (size_t q = 0; q < lookup->question_count; q++) {
		struct resolver_question *question = &lookup->questions[q];

		if (question->pending) {
			ub_cancel(resolver->ub, question->async_id);
			question->pending = false;
			resolver_pending_done(resolver);
		}
		ub_resolve_free(question->result);
	}
	event_free(lookup->timer);
	TAILQ_REMOVE(&resolver->lookups, lookup, entry);
	free(lookup->name);
	free(lookup);
}

/* Every question is answered (or timed out): the callback, then the end. */
static void resolver_lookup_finish(struct resolver_lookup *lookup)
{
	evtimer_del(lookup->timer);
	if (lookup->addresses)
		resolver_deliver_addresses(lookup);
	else
		resolver_deliver_answer(lookup);
	resolver_lookup_free(lookup);
}

static void resolver_question_cb(void *ctx, int error, struct ub_result *result)
{
	struct resolver_question *question = ctx;
	struct resolver_lookup *lookup = question->lookup;

	question->pending = false;
	question->result = result;
	question->status = resolver_result_status(error, result);
	resolver_pending_done(lookup->resolver);
	for (size_t q = 0; q < lookup->question_count; q++)
		if (lookup->questions[q].pending)
			return;
	resolver_lookup_finish(lookup);
}

/* The timeout, or the "at once" of a lookup with nothing pending. */
static void resolver_timer_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct resolver_lookup *lookup = ctx;
	(void)fd;
	(void)what;

	for (size_t q = 0; q < lookup->question_count; q++) {
		struct resolver_question *question = &lookup->questions[q];

		if (question->pending) {
			ub_cancel(lookup->resolver->ub, question->async_id);
			question->pending = false;
			question->status = RESOLVER_TIMEOUT;
			resolver_pending_done(lookup->resolver);
		}
	}
	resolver_lookup_finish(lookup);
}

/* ---- starting a lookup -------------------------------------------------- */

static struct resolver_lookup *resolver_lookup_new(struct resolver *resolver, const char *name,
						   void *ctx)
{
	struct resolver_lookup *lookup = xcalloc(1, sizeof(*lookup));

	lookup->resolver = resolver;
	lookup->name = xstrdup(name);
	lookup->ctx = ctx;
	lookup->timer = evtimer_new(resolver->base, resolver_timer_cb, lookup);
	if (lookup->timer == NULL)
		abort(); /* out of memory, as the x* wrappers do */
	TAILQ_INSERT_TAIL(&resolver->lookups, lookup, entry);
	return lookup;
}

/* Asks NAME's records of TYPE for LOOKUP. A question libunbound does not
 * take (a name it cannot read) is answered at once as failed. */
static void resolver_ask(struct resolver_lookup *lookup, enum resolver_type type)
{
	struct resolver *resolver = lookup->resolver;
	struct resolver_question *question = &lookup->questions[lookup->question_count++];

	question->lookup = lookup;
	question->type = type;
	question->status = RESOLVER_FAILED;
	if (ub_resolve_async(resolver->ub, lookup->name, (int)type, RESOLVER_CLASS_IN, question,
			     resolver_question_cb, &question->async_id) != 0)
		return;
	question->pending = true;
	resolver_pending_add(resolver);
}

/* Sets LOOKUP's timer: its timeout, or at once if no question is pending. */
static void resolver_lookup_arm(struct resolver_lookup *lookup)
{
	struct timeval delay = {0, 0};

	for (size_t q = 0; q < lookup->question_count; q++) {
		if (lookup->questions[q].pending) {
			delay.tv_sec = lookup->resolver->timeout_ms / 1000;
			delay.tv_usec = (lookup->resolver->timeout_ms % 1000) * 1000;
			break;
		}
	}
	evtimer_add(lookup->timer, &delay);
}

/* Reads HOST as a numeric IPv4 or IPv6 address with PORT. true if it is one. */
static bool resolver_numeric(const char *host, int port, struct resolver_address *address)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&address->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&address->addr;

	memset(address, 0, sizeof(*address));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		address->len = sizeof(*sin);
		return true;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		address->len = sizeof(*sin6);
		return true;
	}
	return false;
}

/* ---- setting up --------------------------------------------------------- */

/* Forwards to each "IP[:PORT]" item of NAMESERVERS. 0, or -1 with ERR set. */
static int resolver_forward_to(struct ub_ctx *ub, const char *nameservers, char *err, size_t errlen)
{
	char *copy = xstrdup(nameservers), *save = NULL;
	int rc = 0;

	for (char *item = strtok_r(copy, " ,", &save); item != NULL && rc == 0;
	     item = strtok_r(NULL, " ,", &save)) {
		struct sockaddr_storage addr;
		int len = (int)sizeof(addr);
		char host[INET6_ADDRSTRLEN], server[INET6_ADDRSTRLEN + 8];
		const void *bytes;
		int port;

		if (evutil_parse_sockaddr_port(item, (struct sockaddr *)&addr, &len) != 0) {
			snprintf(err, errlen, "cannot use the name server %s", item);
			rc = -1;
			break;
		}
		if (addr.ss_family == AF_INET) {
			bytes = &((struct sockaddr_in *)&addr)->sin_addr;
			port = ntohs(((struct sockaddr_in *)&addr)->sin_port);
		} else {
			bytes = &((struct sockaddr_in6 *)&addr)->sin6_addr;
			port = ntohs(((struct sockaddr_in6 *)&addr)->sin6_port);
		}
		inet_ntop(addr.ss_family, bytes, host, sizeof(host));
		/* libunbound writes a port as IP@PORT. */
		snprintf(server, sizeof(server), "%s@%d", host, port != 0 ? port : 53);
		int ub_rc = ub_ctx_set_fwd(ub, server);
		if (ub_rc != 0) {
			snprintf(err, errlen, "cannot use the name server %s: %s", item,
				 ub_strerror(ub_rc));
			rc = -1;
		}
	}
	free(copy);
	return rc;
}

/* ---- public ------------------------------------------------------------- */

struct resolver *resolver_new(struct event_base *base, const char *nameservers, char *err,
			      size_t errlen)
{
	struct resolver *resolver = xcalloc(1, sizeof(*resolver));
	int rc;

	resolver->base = base;
	resolver->timeout_ms = RESOLVER_TIMEOUT_MS;
	TAILQ_INIT(&resolver->lookups);
	resolver->ub = ub_ctx_create();
	if (resolver->ub == NULL) {
		snprintf(err, errlen, "cannot set up the resolver");
		goto fail;
	}
	/* A thread rather than libunbound's default, a forked process: a fork
	 * of the daemon would hold its listening sockets and key. */
	if ((rc = ub_ctx_async(resolver->ub, 1)) != 0 ||
	    /* Name servers on loopback (dnsmasq, systemd-resolved's
	     * 127.0.0.53, a local unbound) are the common case, not a
	     * misconfiguration to refuse. */
	    (rc = ub_ctx_set_option(resolver->ub, "do-not-query-localhost:", "no")) != 0 ||
	    /* libunbound answers names under test. NXDOMAIN itself; they are
	     * for test beds (RFC 6761), whose name servers (the integration
	     * tests' dnsmasq) answer them, as for the system's resolver. A
	     * transparent zone without data passes every question on. */
	    (rc = ub_ctx_set_option(resolver->ub, "local-zone:", "test. transparent")) != 0) {
		snprintf(err, errlen, "cannot set up the resolver: %s", ub_strerror(rc));
		goto fail;
	}
	if (nameservers != NULL && *nameservers != '\0') {
		if (resolver_forward_to(resolver->ub, nameservers, err, errlen) < 0)
			goto fail;
	} else {
		rc = ub_ctx_resolvconf(resolver->ub, NULL);
		/* Without the file, resolv.conf(5)'s own default: this machine. */
		if (rc == UB_READFILE)
			rc = ub_ctx_set_fwd(resolver->ub, "127.0.0.1");
		if (rc != 0) {
			snprintf(err, errlen,
				 "cannot set up the resolver from /etc/resolv.conf: %s",
				 ub_strerror(rc));
			goto fail;
		}
	}
	/* Names such as localhost still come from the hosts file. A machine
	 * without one, or with a line libunbound cannot read, still starts:
	 * the name servers answer instead. */
	(void)ub_ctx_hosts(resolver->ub, NULL);
	resolver->answer_event = event_new(base, ub_fd(resolver->ub), EV_READ | EV_PERSIST,
					   resolver_answer_event_cb, resolver);
	if (resolver->answer_event == NULL) {
		snprintf(err, errlen, "cannot set up the resolver's event");
		goto fail;
	}
	return resolver;

fail:
	resolver_free(&resolver);
	return NULL;
}

int resolver_set_trust_anchor(struct resolver *resolver, const char *file, char *err, size_t errlen)
{
	FILE *probe = fopen(file, "r");
	int rc;

	/* libunbound reads the file only at the first lookup, where a failure
	 * would say little: the daemon's start says it instead. */
	if (probe == NULL) {
		snprintf(err, errlen, "cannot read the DNS trust anchor %s: %s", file,
			 strerror(errno));
		return -1;
	}
	fclose(probe);
	if ((rc = ub_ctx_add_ta_file(resolver->ub, file)) != 0) {
		snprintf(err, errlen, "cannot use the DNS trust anchor %s: %s", file,
			 ub_strerror(rc));
		return -1;
	}
	return 0;
}

void resolver_free(struct resolver **resolver_p)
{
	struct resolver *resolver = *resolver_p;
	struct resolver_lookup *lookup;

	if (resolver == NULL)
		return;
	while ((lookup = TAILQ_FIRST(&resolver->lookups)) != NULL)
		resolver_lookup_free(lookup);
	if (resolver->answer_event != NULL)
		event_free(resolver->answer_event);
	/* Stops the thread and frees the questions it still had. */
	if (resolver->ub != NULL)
		ub_ctx_delete(resolver->ub);
	free(resolver);
	*resolver_p = NULL;
}

void resolver_set_timeout(struct resolver *resolver, int milliseconds)
{
	resolver->timeout_ms = milliseconds;
}

struct resolver_lookup *resolver_lookup_addresses(struct resolver *resolver, const char *host,
						  int port, resolver_addresses_cb *callback,
						  void *ctx)
{
	struct resolver_lookup *lookup = resolver_lookup_new(resolver, host, ctx);

	lookup->addresses = true;
	lookup->port = port;
	lookup->addresses_callback = callback;
	lookup->is_numeric = resolver_numeric(host, port, &lookup->numeric);
	if (!lookup->is_numeric) {
		resolver_ask(lookup, RESOLVER_A);
		resolver_ask(lookup, RESOLVER_AAAA);
	}
	resolver_lookup_arm(lookup);
	return lookup;
}

struct resolver_lookup *resolver_lookup(struct resolver *resolver, const char *name,
					enum resolver_type type, resolver_answer_cb *callback,
					void *ctx)
{
	struct resolver_lookup *lookup = resolver_lookup_new(resolver, name, ctx);

	lookup->type = type;
	lookup->answer_callback = callback;
	resolver_ask(lookup, type);
	resolver_lookup_arm(lookup);
	return lookup;
}

void resolver_cancel(struct resolver_lookup **lookup_p)
{
	if (*lookup_p == NULL)
		return;
	resolver_lookup_free(*lookup_p);
	*lookup_p = NULL;
}

int resolver_reverse_name(const struct sockaddr *addr, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";

	if (addr->sa_family == AF_INET) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
		int n = snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);

		return n > 0 && (size_t)n < size ? 0 : -1;
	}
	if (addr->sa_family == AF_INET6) {
		const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in6 *)addr)->sin6_addr;
		size_t at = 0;

		/* 32 nibbles, each with its dot, then "ip6.arpa" and the NUL. */
		if (size < 64 + sizeof("ip6.arpa"))
			return -1;
		for (int i = 15; i >= 0; i--) {
			out[at++] = hex[b[i] & 0x0f];
			out[at++] = '.';
			out[at++] = hex[b[i] >> 4];
			out[at++] = '.';
		}
		memcpy(out + at, "ip6.arpa", sizeof("ip6.arpa"));
		return 0;
	}
	return -1;
}

const char *resolver_status_text(enum resolver_status status)
{
	switch (status) {
	case RESOLVER_OK:
		return "answered";
	case RESOLVER_NOT_FOUND:
		return "no such name";
	case RESOLVER_FAILED:
		return "the name servers failed";
	case RESOLVER_TIMEOUT:
		return "no answer in time";
	}
	return "unknown";
}
