/*
 * mta_sts_fetch.c — a domain's MTA-STS policy for the relay: the TXT
 * record, the cache, the HTTPS fetch (mta_sts_fetch.h says the rules).
 *
 * A lookup goes: TXT lookup → the cache read (the loop's connection) →
 * done with the cached policy, or connect (core/connector: implicit TLS,
 * verified) → GET → the response framed (mta_sts_http_response) and the
 * policy parsed → the cache written by a writer job → done. One timer
 * bounds the fetch, and also makes "no policy" for a domain that cannot
 * have one arrive later, from the loop.
 *
 * Owns: the lookups in flight, their resolver lookup, connector attempt
 * and connection, and the writer jobs' copies of the policy they store.
 * Must never: follow a redirect, read more than MTA_STS_POLICY_MAX bytes
 * of body, take a response cut without a clean TLS close for whole.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/connector.h"
#include "core/log.h"
#include "core/resolver.h"
#include "core/util.h"
#include "smtp/mta_sts_fetch.h"
#include "store/mta_sts.h"
#include "store/writer.h"

struct mta_sts_lookup {
	struct mta_sts_env env;
	char *domain;
	char *ca_file;
	mta_sts_lookup_cb *callback;
	void *ctx;
	struct resolver_lookup *txt;
	struct connector_attempt *attempt;
	struct bufferevent *bev;
	struct event *timer;
	char id[MTA_STS_ID_MAX + 1];   /* the id the TXT record names */
	struct mta_sts_policy *cached; /* the unexpired cached policy, or NULL */
	char cached_id[MTA_STS_ID_MAX + 1];
};

void mta_sts_policy_free(struct mta_sts_policy *policy)
{
	if (policy == NULL)
		return;
	mta_sts_policy_clear(policy);
	free(policy);
}

static void mta_sts_lookup_free(struct mta_sts_lookup *lookup)
{
	resolver_cancel(&lookup->txt);
	connector_cancel(&lookup->attempt);
	if (lookup->bev != NULL)
		bufferevent_free(lookup->bev);
	if (lookup->timer != NULL)
		event_free(lookup->timer);
	mta_sts_policy_free(lookup->cached);
	free(lookup->domain);
	free(lookup->ca_file);
	free(lookup);
}

void mta_sts_lookup_cancel(struct mta_sts_lookup **lookup)
{
	if (*lookup == NULL)
		return;
	mta_sts_lookup_free(*lookup);
	*lookup = NULL;
}

/* Ends LOOKUP with POLICY (given to the callback) and frees it. */
static void mta_sts_finish(struct mta_sts_lookup *lookup, struct mta_sts_policy *policy)
{
	mta_sts_lookup_cb *callback = lookup->callback;
	void *ctx = lookup->ctx;

	mta_sts_lookup_free(lookup);
	callback(policy, ctx);
}

/* LOOKUP's cached policy, now the caller's (NULL for none). */
static struct mta_sts_policy *mta_sts_take_cached(struct mta_sts_lookup *lookup)
{
	struct mta_sts_policy *cached = lookup->cached;

	lookup->cached = NULL;
	return cached;
}

/* Ends LOOKUP with the cached policy, if any (the fetch failed: WHY). */
static void mta_sts_fall_back(struct mta_sts_lookup *lookup, const char *why)
{
	struct mta_sts_policy *cached = mta_sts_take_cached(lookup);

	log_event(LOG_WARN, "relay", NULL, NULL,
		  "MTA-STS: the policy of %s cannot be fetched (%s); %s", lookup->domain, why,
		  cached != NULL ? "the cached one is used" : "delivering without MTA-STS");
	mta_sts_finish(lookup, cached);
}

/* A fetched policy on its way into the cache. */
struct mta_sts_write {
	struct store_mta_sts entry;
};

static int mta_sts_write_work(struct store *store, void *arg)
{
	struct mta_sts_write *write = arg;

	return store_mta_sts_put(store, &write->entry);
}

static void mta_sts_write_done(int result, const char *error, void *arg)
{
	struct mta_sts_write *write = arg;

	if (result < 0)
		log_event(LOG_WARN, "relay", NULL, NULL,
			  "MTA-STS: the policy of %s could not be cached: %s", write->entry.domain,
			  error != NULL ? error : "store error");
	store_mta_sts_clear(&write->entry);
	free(write);
}

/* BODY (LEN bytes) came back: the policy, cached and given on. */
static void mta_sts_fetched(struct mta_sts_lookup *lookup, const char *body, size_t len)
{
	struct mta_sts_policy *policy = xcalloc(1, sizeof(*policy));
	struct mta_sts_write *write;
	char err[160];
	int64_t now = util_now();

	if (mta_sts_policy_parse(body, len, policy, err, sizeof(err)) < 0) {
		free(policy);
		mta_sts_fall_back(lookup, err);
		return;
	}
	log_event(LOG_INFO, "relay", NULL, NULL,
		  "MTA-STS: fetched the policy %s of %s: mode %s, %zu mx, max_age %lld", lookup->id,
		  lookup->domain, mta_sts_mode_name(policy->mode), policy->mx_count,
		  (long long)policy->max_age);
	write = xcalloc(1, sizeof(*write));
	write->entry.domain = xstrdup(lookup->domain);
	write->entry.policy_id = xstrdup(lookup->id);
	write->entry.policy = xmalloc(len + 1);
	memcpy(write->entry.policy, body, len);
	write->entry.policy[len] = '\0';
	write->entry.mode = xstrdup(mta_sts_mode_name(policy->mode));
	write->entry.fetched_at = now;
	write->entry.expires_at = now + policy->max_age;
	if (writer_submit(lookup->env.writer, NULL, mta_sts_write_work, mta_sts_write_done, write) <
	    0)
		mta_sts_write_done(-1, "the writer is busy", write);
	mta_sts_finish(lookup, policy);
}

/* Frames what has arrived; CLOSED once the server closed cleanly. */
static void mta_sts_response(struct mta_sts_lookup *lookup, bool closed)
{
	struct evbuffer *input = bufferevent_get_input(lookup->bev);
	size_t len = evbuffer_get_length(input), offset, body_len;
	char err[160];
	const char *buf;
	int framed;

	if (len > MTA_STS_HEADER_MAX + MTA_STS_POLICY_MAX + 4) {
		mta_sts_fall_back(lookup, "the response is too long");
		return;
	}
	buf = (const char *)evbuffer_pullup(input, -1);
	framed = mta_sts_http_response(buf != NULL ? buf : "", len, closed, &offset, &body_len, err,
				       sizeof(err));
	if (framed < 0)
		mta_sts_fall_back(lookup, err);
	else if (framed > 0)
		mta_sts_fetched(lookup, buf + offset, body_len);
	else if (closed)
		mta_sts_fall_back(lookup, "the response ended early");
}

static void mta_sts_read_cb(struct bufferevent *bev, void *ctx)
{
	(void)bev;
	mta_sts_response(ctx, false);
}

static void mta_sts_event_cb(struct bufferevent *bev, short events, void *ctx)
{
	struct mta_sts_lookup *lookup = ctx;
	char why[160];

	if (events & BEV_EVENT_EOF) {
		/* Only a TLS close_notify ends the stream cleanly; a cut one is an
		 * error below (libevent's strict shutdown). */
		mta_sts_response(lookup, true);
		return;
	}
	if (events & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		unsigned long tls = connector_tls_error(bev, events);

		/* A response already whole (a Content-Length) needs no clean close. */
		if (!(events & BEV_EVENT_TIMEOUT) &&
		    evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
			struct evbuffer *input = bufferevent_get_input(bev);
			size_t offset, body_len;
			const char *buf = (const char *)evbuffer_pullup(input, -1);

			if (mta_sts_http_response(buf, evbuffer_get_length(input), false, &offset,
						  &body_len, why, sizeof(why)) > 0) {
				mta_sts_fetched(lookup, buf + offset, body_len);
				return;
			}
		}
		snprintf(why, sizeof(why), "%s",
			 events & BEV_EVENT_TIMEOUT ? "no answer in time"
			 : tls != 0		    ? "the connection failed (TLS)"
						    : "the connection failed");
		mta_sts_fall_back(lookup, why);
	}
}

static void mta_sts_connected_cb(struct bufferevent *bev, const char *error, void *ctx)
{
	struct mta_sts_lookup *lookup = ctx;

	lookup->attempt = NULL;
	if (bev == NULL) {
		mta_sts_fall_back(lookup, error);
		return;
	}
	lookup->bev = bev;
	bufferevent_setcb(bev, mta_sts_read_cb, NULL, mta_sts_event_cb, lookup);
	/* HTTP/1.0: the body ends with the connection or its Content-Length,
	 * never chunked. */
	evbuffer_add_printf(bufferevent_get_output(bev),
			    "GET /.well-known/mta-sts.txt HTTP/1.0\r\n"
			    "Host: mta-sts.%s\r\n"
			    "User-Agent: popgate\r\n"
			    "Connection: close\r\n\r\n",
			    lookup->domain);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		mta_sts_response(lookup, false);
}

static void mta_sts_fetch(struct mta_sts_lookup *lookup)
{
	char *host = xasprintf("mta-sts.%s", lookup->domain);
	struct connector_target target = {
	    .host = host,
	    .port = lookup->env.port,
	    .tls = CONNECTOR_TLS_IMPLICIT,
	    .ca_file = lookup->ca_file,
	    .verify = true,
	    .allow_private = lookup->env.allow_private,
	    .timeout = lookup->env.connect_timeout,
	    .log_event = "relay",
	};
	const struct timeval deadline = {MTA_STS_FETCH_SECONDS, 0};
	char err[256];

	evtimer_add(lookup->timer, &deadline);
	lookup->attempt = connector_connect(lookup->env.connector, &target, mta_sts_connected_cb,
					    lookup, err, sizeof(err));
	free(host);
	if (lookup->attempt == NULL)
		mta_sts_fall_back(lookup, err);
}

/* Reads DOMAIN's cached policy, if unexpired, into LOOKUP. */
static void mta_sts_read_cache(struct mta_sts_lookup *lookup)
{
	struct store_mta_sts entry;
	struct mta_sts_policy *policy;
	char err[160];

	if (store_mta_sts_get(lookup->env.store, lookup->domain, &entry) != 1)
		return;
	if (entry.expires_at > util_now() && strlen(entry.policy_id) <= MTA_STS_ID_MAX) {
		policy = xcalloc(1, sizeof(*policy));
		if (mta_sts_policy_parse(entry.policy, strlen(entry.policy), policy, err,
					 sizeof(err)) == 0) {
			lookup->cached = policy;
			snprintf(lookup->cached_id, sizeof(lookup->cached_id), "%s",
				 entry.policy_id);
		} else {
			free(policy);
		}
	}
	store_mta_sts_clear(&entry);
}

static void mta_sts_txt_cb(const struct resolver_answer *answer, void *ctx)
{
	struct mta_sts_lookup *lookup = ctx;
	int records = 0;
	bool invalid = false;

	lookup->txt = NULL;
	for (size_t i = 0; answer->status == RESOLVER_OK && i < answer->count; i++) {
		const struct resolver_record *record = &answer->records[i];
		char id[MTA_STS_ID_MAX + 1];
		int parsed = mta_sts_record_parse(record->text, record->text_length, id);

		if (parsed != 0)
			records++;
		if (parsed < 0)
			invalid = true;
		else if (parsed > 0)
			memcpy(lookup->id, id, sizeof(id));
	}
	mta_sts_read_cache(lookup);
	if (records != 1 || invalid) {
		/* 3.1: no policy announced (or an unusable announcement): a
		 * cached one still holds until it expires (5.1). */
		if (records > 0)
			log_event(LOG_WARN, "relay", NULL, NULL,
				  "MTA-STS: %s has %d STSv1 records%s: none used", lookup->domain,
				  records, invalid ? ", malformed" : "");
		mta_sts_finish(lookup, mta_sts_take_cached(lookup));
		return;
	}
	if (lookup->cached != NULL && strcmp(lookup->cached_id, lookup->id) == 0) {
		mta_sts_finish(lookup, mta_sts_take_cached(lookup));
		return;
	}
	mta_sts_fetch(lookup);
}

static void mta_sts_timer_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct mta_sts_lookup *lookup = ctx;

	(void)fd;
	(void)what;
	if (lookup->attempt == NULL && lookup->bev == NULL) {
		/* Not fetching: a domain that can have no policy. */
		mta_sts_finish(lookup, NULL);
		return;
	}
	mta_sts_fall_back(lookup, "no answer within the time allowed");
}

/* Whether DOMAIN is a host name a policy may be looked up for. */
static bool mta_sts_domain_usable(const char *domain)
{
	size_t len = strlen(domain);

	if (len == 0 || len > 240 || strchr(domain, '.') == NULL)
		return false;
	for (const char *c = domain; *c != '\0'; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '.')
			return false;
	return true;
}

struct mta_sts_lookup *mta_sts_lookup_start(const struct mta_sts_env *env, const char *domain,
					    mta_sts_lookup_cb *callback, void *ctx)
{
	struct mta_sts_lookup *lookup = xcalloc(1, sizeof(*lookup));
	const struct timeval now = {0, 0};
	char *name;

	lookup->env = *env;
	lookup->env.ca_file = NULL;
	lookup->ca_file = env->ca_file != NULL ? xstrdup(env->ca_file) : NULL;
	lookup->domain = xstrdup(domain);
	for (char *c = lookup->domain; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	lookup->callback = callback;
	lookup->ctx = ctx;
	lookup->timer = evtimer_new(env->base, mta_sts_timer_cb, lookup);
	if (lookup->timer == NULL)
		abort();
	if (!mta_sts_domain_usable(lookup->domain)) {
		evtimer_add(lookup->timer, &now);
		return lookup;
	}
	name = xasprintf("_mta-sts.%s", lookup->domain);
	lookup->txt = resolver_lookup(env->resolver, name, RESOLVER_TXT, mta_sts_txt_cb, lookup);
	free(name);
	return lookup;
}
