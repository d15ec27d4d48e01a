/*
 * throttle.c — the one failed-login throttle (G6), of POP3 and console
 * logins alike (pop3/auth.c): derives the keys an attempt is counted under
 * and keeps the counts in the store's login_failure table (store/login.c),
 * shared by every process (the daemon, popgatectl) and kept across restarts.
 *
 * Counting happens when a check starts, not when the provider answers: a
 * burst of parallel logins could otherwise all reach the provider before the
 * first failure was counted. See throttle.h for when a count is released.
 * The counts are written by the writer thread (store/writer.h), so the loop
 * never waits on the store; a count is checked against the limit again
 * there, in the transaction that writes it.
 *
 * A store error while counting refuses the login rather than letting it
 * through uncounted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "pop3/throttle.h"
#include "popgate.h"
#include "store/login.h"
#include "store/writer.h"

/* The key of client ADDRESS under PREFIX ("pop3-address:", "address:"). */
static void throttle_prefixed_address_key(char *key, size_t size, const char *prefix,
					  const char *address)
{
	struct in6_addr v6;
	struct in_addr v4;
	char text[INET6_ADDRSTRLEN];

	if (inet_pton(AF_INET6, address, &v6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&v6)) {
			memcpy(&v4, &v6.s6_addr[12], sizeof(v4));
			inet_ntop(AF_INET, &v4, text, sizeof(text));
			snprintf(key, size, "%s%s", prefix, text);
			return;
		}
		/* The interface identifier is the host's to choose: count the /64. */
		memset(&v6.s6_addr[8], 0, 8);
		inet_ntop(AF_INET6, &v6, text, sizeof(text));
		snprintf(key, size, "%s%s/64", prefix, text);
		return;
	}
	if (inet_pton(AF_INET, address, &v4) == 1) {
		inet_ntop(AF_INET, &v4, text, sizeof(text));
		snprintf(key, size, "%s%s", prefix, text);
		return;
	}
	snprintf(key, size, "%s%s", prefix, address);
}

void throttle_address_key(char *key, size_t size, const char *address)
{
	throttle_prefixed_address_key(key, size, "pop3-address:", address);
}

void throttle_account_key(char *key, size_t size, const char *name)
{
	static const char prefix[] = "pop3-account:";
	size_t i;

	snprintf(key, size, "%s%s", prefix, name);
	for (i = sizeof(prefix) - 1; i < size && key[i] != '\0'; i++)
		if (key[i] >= 'A' && key[i] <= 'Z')
			key[i] = (char)(key[i] - 'A' + 'a');
}

void throttle_attempt_init(struct throttle_attempt *attempt, const char *address, const char *name)
{
	memset(attempt, 0, sizeof(*attempt));
	throttle_address_key(attempt->address_key, sizeof(attempt->address_key), address);
	throttle_account_key(attempt->account_key, sizeof(attempt->account_key), name);
}

void throttle_attempt_init_console(struct throttle_attempt *attempt, const char *address,
				   const char *name_key)
{
	memset(attempt, 0, sizeof(*attempt));
	if (address != NULL)
		throttle_prefixed_address_key(attempt->address_key, sizeof(attempt->address_key),
					      "address:", address);
	snprintf(attempt->account_key, sizeof(attempt->account_key), "%s", name_key);
}

/* False for a login from the command line, which has no client address. */
static bool throttle_has_address(const struct throttle_attempt *attempt)
{
	return attempt->address_key[0] != '\0';
}

int throttle_check(struct popgate *pg, struct throttle_attempt *attempt)
{
	const struct popgate_config *cfg = pg->cfg;
	int64_t now = util_now();
	int address_failures = 0;

	if (throttle_has_address(attempt))
		address_failures = store_login_failures(pg->store, attempt->address_key,
							cfg->login_fail_window, now);

	if (address_failures < 0)
		return -1;
	attempt->account_failures =
	    store_login_failures(pg->store, attempt->account_key, cfg->login_fail_window, now);
	if (attempt->account_failures < 0)
		return -1;
	return address_failures < cfg->login_fail_limit &&
	       attempt->account_failures < cfg->login_fail_limit;
}

int throttle_store_count(struct store *store, struct throttle_attempt *attempt, int64_t window,
			 int limit, int64_t now)
{
	int failures = 0;

	/* Checked again here, in the writer's transaction: attempts that passed
	 * throttle_check together are counted one after the other, and the
	 * count that would pass the limit is refused. */
	if (throttle_has_address(attempt))
		failures = store_login_failures(store, attempt->address_key, window, now);
	if (failures < 0)
		return -1;
	if (failures >= limit)
		return 0;
	failures = store_login_failures(store, attempt->account_key, window, now);
	if (failures < 0)
		return -1;
	if (failures >= limit)
		return 0;
	if (throttle_has_address(attempt) &&
	    store_login_failure_add(store, attempt->address_key, window, now) < 0)
		return -1;
	if (store_login_failure_add(store, attempt->account_key, window, now) < 0)
		return -1; /* the caller's savepoint undoes the address's count */
	attempt->counted = true;
	return 1;
}

int throttle_store_succeeded(struct store *store, struct throttle_attempt *attempt)
{
	int rc = 0;

	/* A login the cache answered was never counted; the account's earlier
	 * failures are cleared only when there are some, so a client polling
	 * every minute costs no write. */
	if (attempt->counted || attempt->account_failures > 0)
		rc |= store_login_failures_clear(store, attempt->account_key);
	if (attempt->counted && throttle_has_address(attempt))
		rc |= store_login_failure_remove(store, attempt->address_key);
	attempt->counted = false;
	attempt->account_failures = 0;
	return rc < 0 ? -1 : 0;
}

int throttle_store_release(struct store *store, struct throttle_attempt *attempt)
{
	int rc = 0;

	if (!attempt->counted)
		return 0;
	if (throttle_has_address(attempt))
		rc |= store_login_failure_remove(store, attempt->address_key);
	rc |= store_login_failure_remove(store, attempt->account_key);
	attempt->counted = false;
	return rc < 0 ? -1 : 0;
}

/* ---- through the writer thread ------------------------------------------ */

/* A count on its way to the store, or a success or release (no callback). */
struct throttle_count {
	struct throttle_attempt copy; /* the keys, as the writer thread sees them */
	struct throttle_attempt *attempt; /* the owner's; NULL once forgotten */
	int64_t window;
	int limit;
	int64_t now;
	throttle_count_cb *callback;
	void *ctx;
};

static int throttle_count_work(struct store *store, void *arg)
{
	struct throttle_count *count = arg;

	return throttle_store_count(store, &count->copy, count->window, count->limit, count->now);
}

static void throttle_count_done(int result, const char *error, void *arg)
{
	struct throttle_count *count = arg;

	if (result < 0)
		log_error("login throttle: cannot count a login attempt: %s", error);
	if (count->attempt != NULL) {
		count->attempt->counted = result == 1;
		count->callback(result, count->ctx);
	}
	free(count);
}

struct throttle_count *throttle_count_start(struct popgate *pg, struct throttle_attempt *attempt,
					    throttle_count_cb *callback, void *ctx)
{
	struct throttle_count *count = xcalloc(1, sizeof(*count));

	count->copy = *attempt;
	count->copy.counted = false;
	count->attempt = attempt;
	count->window = pg->cfg->login_fail_window;
	count->limit = pg->cfg->login_fail_limit;
	count->now = util_now();
	count->callback = callback;
	count->ctx = ctx;
	if (writer_submit(pg->writer, NULL, throttle_count_work, throttle_count_done, count) < 0) {
		free(count);
		return NULL;
	}
	return count;
}

void throttle_count_forget(struct throttle_count **count_p)
{
	if (*count_p == NULL)
		return;
	(*count_p)->attempt = NULL;
	*count_p = NULL;
}

static int throttle_succeeded_work(struct store *store, void *arg)
{
	struct throttle_count *job = arg;

	return throttle_store_succeeded(store, &job->copy);
}

static int throttle_release_work(struct store *store, void *arg)
{
	struct throttle_count *job = arg;

	return throttle_store_release(store, &job->copy);
}

static void throttle_write_done(int result, const char *error, void *arg)
{
	struct throttle_count *job = arg;

	/* Counts left behind only throttle sooner, until their window ends. */
	if (result < 0)
		log_error("login throttle: cannot release the failure counts: %s", error);
	if (job->attempt != NULL)
		job->callback(result, job->ctx);
	free(job);
}

/* Queues WORK on a copy of ATTEMPT (the counts its owner is done with);
 * NULL if the writer refused it (logged). */
static struct throttle_count *throttle_write(struct popgate *pg, struct throttle_attempt *attempt,
					     writer_work_fn *work, throttle_count_cb *callback,
					     void *ctx)
{
	struct throttle_count *job = xcalloc(1, sizeof(*job));

	job->copy = *attempt;
	job->attempt = attempt;
	job->callback = callback;
	job->ctx = ctx;
	if (writer_submit(pg->writer, NULL, work, throttle_write_done, job) < 0) {
		log_error("login throttle: cannot release the failure counts: the store is "
			  "overloaded");
		free(job);
		return NULL;
	}
	return job;
}

struct throttle_count *throttle_succeeded(struct popgate *pg, struct throttle_attempt *attempt,
					  throttle_count_cb *callback, void *ctx)
{
	struct throttle_count *job = NULL;

	/* A login the cache answered was never counted, and an account without
	 * failures has none to clear: most logins write nothing. */
	if (attempt->counted || attempt->account_failures > 0)
		job = throttle_write(pg, attempt, throttle_succeeded_work, callback, ctx);
	attempt->counted = false;
	attempt->account_failures = 0;
	return job;
}

struct throttle_count *throttle_release(struct popgate *pg, struct throttle_attempt *attempt,
					throttle_count_cb *callback, void *ctx)
{
	struct throttle_count *job = NULL;

	if (attempt->counted)
		job = throttle_write(pg, attempt, throttle_release_work, callback, ctx);
	attempt->counted = false;
	return job;
}
