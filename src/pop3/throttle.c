/*
 * throttle.c — the one failed-login throttle (G6), of POP3 and console
 * logins alike (pop3/auth.c): derives the keys an attempt is counted under
 * and keeps the counts in the store's login_failure table (store/login.c),
 * shared by every process (the daemon, popgatectl) and kept across restarts.
 *
 * Counting happens when a check starts, not when the provider answers: a
 * burst of parallel logins could otherwise all reach the provider before the
 * first failure was counted. See throttle.h for when a count is released.
 *
 * A store error while counting refuses the login rather than letting it
 * through uncounted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"
#include "pop3/throttle.h"
#include "popgate.h"
#include "store/login.h"

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

int throttle_count(struct popgate *pg, struct throttle_attempt *attempt)
{
	const struct popgate_config *cfg = pg->cfg;
	int64_t now = util_now();

	if (throttle_has_address(attempt) &&
	    store_login_failure_add(pg->store, attempt->address_key, cfg->login_fail_window, now) < 0)
		return -1;
	if (store_login_failure_add(pg->store, attempt->account_key, cfg->login_fail_window, now) <
	    0) {
		if (throttle_has_address(attempt))
			store_login_failure_remove(pg->store, attempt->address_key);
		return -1;
	}
	attempt->counted = true;
	return 0;
}

void throttle_succeeded(struct popgate *pg, struct throttle_attempt *attempt)
{
	/* A login the cache answered was never counted; the account's earlier
	 * failures are cleared only when there are some, so a client polling
	 * every minute costs no write. */
	if (attempt->counted || attempt->account_failures > 0)
		store_login_failures_clear(pg->store, attempt->account_key);
	if (attempt->counted && throttle_has_address(attempt))
		store_login_failure_remove(pg->store, attempt->address_key);
	attempt->counted = false;
	attempt->account_failures = 0;
}

void throttle_release(struct popgate *pg, struct throttle_attempt *attempt)
{
	if (!attempt->counted)
		return;
	if (throttle_has_address(attempt))
		store_login_failure_remove(pg->store, attempt->address_key);
	store_login_failure_remove(pg->store, attempt->account_key);
	attempt->counted = false;
}
