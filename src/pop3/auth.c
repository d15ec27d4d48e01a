/*
 * auth.c — the one login state machine (P1, P2, G2, U1, U2, U6): a mail
 * client's POP3 login, a user's console login and the administrator's, each
 * an auth_request that goes through the same steps — throttle check, find
 * what the name means, the stored argon2id hash(es) in the offload threads,
 * the live check at the provider, the delayed answer from the loop.
 *
 * POP3: the account name is split at its last '@' into login and provider
 * host. An account seen before is checked against its argon2id hash; on a mismatch
 * the provider is asked live, since the user may have changed the password
 * there, and on success the stored hash and sealed password are replaced. A
 * first login is always checked live before anything is stored; success
 * creates the user and its primary address in the pseudo-domain.
 *
 * Every kind of login is throttled alike: attempts are counted per client
 * address and per account or user name within a window, in the store, when
 * their check starts (pop3/throttle.c, the one throttle); past the
 * limit further attempts are refused without asking anyone, and a wrong
 * password is answered only after a delay. Live checks at providers are
 * capped, globally and per client address, so that slow providers cannot
 * pile them up: a login beyond a cap is refused at once.
 *
 * Console (popgatectl auth check, and the web console to come): the name
 * means a user (store_login_user_find); a user's own password ('user
 * passwd') is tried first, then its account's stored hash, then the
 * provider live; a console login never changes the stored provider
 * credentials (a POP3 login does that). The administrator has one password,
 * its hash in the setting table. A console login reports a role, never a
 * magic name. Unknown users and wrong passwords get the same answer.
 *
 * A repeated POP3 login with the password that last succeeded is recognised
 * by the login cache (pop3/auth_cache.c), so a client that polls every
 * minute costs one hash, not one argon2id run.
 *
 * Nothing here writes the store from the loop: the throttle's counts and
 * the accounts and users a login creates or updates (pop3/auth_store.c)
 * are committed by the writer thread (store/writer.h), and the request goes
 * on in the completion; meanwhile it stays alive on a cancel, as while an offload
 * job runs.
 *
 * SECURITY: the name and password come from the client. The password is
 * copied only into the live check (which wipes it) and hashed; it is never
 * logged nor put into a message, and every buffer that held it or something
 * derived from it is wiped before it is freed. Names are sanitised before
 * they are logged.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <sodium.h>

#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "pop3/auth.h"
#include "pop3/auth_cache.h"
#include "pop3/auth_internal.h"
#include "pop3/fetch.h"
#include "pop3/parse.h"
#include "pop3/throttle.h"
#include "popgate.h"
#include "store/account.h"
#include "store/login.h"
#include "store/setting.h"

/* ---- live checks at providers ---------------------------------------------- */

/* Live checks in flight from REQUEST's client address (its /64 for IPv6). */
static unsigned auth_live_checks_from(const struct auth_request *request)
{
	const struct auth_request *other;
	unsigned count = 0;

	TAILQ_FOREACH(other, &request->auth->requests, entry) {
		if (other->live_check &&
		    strcmp(other->throttle.address_key, request->throttle.address_key) == 0)
			count++;
	}
	return count;
}

static void auth_live_check_begin(struct auth_request *request)
{
	request->live_check = true;
	request->auth->live_checks++;
}

static void auth_live_check_end(struct auth_request *request)
{
	if (!request->live_check)
		return;
	request->live_check = false;
	request->auth->live_checks--;
}

/* ---- requests ------------------------------------------------------------ */

void auth_wipe(char **secret)
{
	if (*secret == NULL)
		return;
	sodium_memzero(*secret, strlen(*secret));
	xfree(secret);
}

void auth_request_free(struct auth_request *request)
{
	TAILQ_REMOVE(&request->auth->requests, request, entry);
	throttle_count_forget(&request->count);
	if (request->store_job != NULL)
		auth_store_job_detach(request->store_job);
	auth_live_check_end(request);
	fetch_verify_cancel(&request->verify);
	if (request->reply_timer != NULL)
		event_free(request->reply_timer);
	auth_wipe(&request->password);
	auth_wipe(&request->stored_hash);
	sodium_memzero(request->new_hash, sizeof(request->new_hash));
	if (request->new_secret != NULL)
		sodium_memzero(request->new_secret, request->new_secret_len);
	free(request->new_secret);
	free(request->name);
	free(request->shown);
	free(request->typed);
	free(request->login);
	free(request->host);
	free(request->client_address);
	free(request);
}

static struct auth_request *auth_request_new(struct auth *auth, enum auth_kind kind,
					     const char *password, const char *client_address,
					     void *ctx)
{
	struct auth_request *request = xcalloc(1, sizeof(*request));

	request->auth = auth;
	request->kind = kind;
	request->ctx = ctx;
	request->password = xstrdup(password);
	request->client_address = client_address != NULL ? xstrdup(client_address) : NULL;
	TAILQ_INSERT_TAIL(&auth->requests, request, entry);
	return request;
}

static const char *auth_from(const struct auth_request *request)
{
	return request->client_address != NULL ? request->client_address : "the command line";
}

/* Logs a failed attempt: "login_failed" for POP3 (under the account name),
 * "console_login_failed" for the console (under the name typed). */
static void auth_log_failed(const struct auth_request *request, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void auth_log_failed(const struct auth_request *request, const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (request->kind == AUTH_KIND_POP3)
		log_event(LOG_WARN, "login_failed", request->name, NULL, "from %s: %s",
			  auth_from(request), reason);
	else
		log_event(LOG_WARN, "console_login_failed", request->shown, NULL, "from %s: %s",
			  auth_from(request), reason);
}

static void auth_reply_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct auth_request *request = ctx;
	enum auth_kind kind = request->kind;
	auth_done_cb *callback = request->callback;
	auth_console_cb *console_callback = request->console_callback;
	void *callback_ctx = request->ctx;
	enum auth_result result = request->result;
	int64_t account_id = request->account_id;
	char name[AUTH_CONSOLE_NAME_MAX + 1];
	char message[sizeof(request->message)];
	(void)fd;
	(void)what;

	snprintf(name, sizeof(name), "%s", request->name != NULL ? request->name : "");
	memcpy(message, request->message, sizeof(message));
	auth_request_free(request);
	if (kind == AUTH_KIND_POP3)
		callback(result, account_id, name, message, callback_ctx);
	else
		console_callback(result, kind == AUTH_KIND_ADMIN ? AUTH_ROLE_ADMIN : AUTH_ROLE_USER,
				 result == AUTH_OK && kind == AUTH_KIND_CONSOLE ? name : NULL,
				 message, callback_ctx);
}

/*
 * Ends REQUEST with RESULT. The callback runs from the loop — after
 * login_fail_delay_ms for a failure, so that guessing is slow. A console
 * message goes to a person, not a mail client: without the POP3 response
 * code ("[SYS/TEMP] ").
 */
static void auth_finish(struct auth_request *request, enum auth_result result, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
static void auth_finish(struct auth_request *request, enum auth_result result, const char *fmt,
			...)
{
	struct auth *auth = request->auth;
	struct timeval delay = {0, 0};
	char *text = request->message;
	va_list ap;

	request->result = result;
	va_start(ap, fmt);
	vsnprintf(request->message, sizeof(request->message), fmt, ap);
	va_end(ap);
	if (request->kind != AUTH_KIND_POP3 && text[0] == '[' && strstr(text, "] ") != NULL) {
		const char *rest = strstr(text, "] ") + 2;

		memmove(text, rest, strlen(rest) + 1);
	}
	auth_wipe(&request->password);
	if (result == AUTH_REJECTED) {
		int ms = auth->pg->cfg->login_fail_delay_ms;
		delay.tv_sec = ms / 1000;
		delay.tv_usec = (ms % 1000) * 1000;
	}
	request->reply_timer = evtimer_new(auth->pg->base, auth_reply_cb, request);
	evtimer_add(request->reply_timer, &delay);
}

/* In the loop, once the throttle's counts were released or cleared (or
 * failed to be: that only throttles sooner): the step that waited. */
static void auth_throttle_written_cb(int result, void *ctx)
{
	struct auth_request *request = ctx;
	(void)result;

	request->count = NULL;
	request->job_running = false;
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	request->after_count(request);
}

/* Takes step NEXT once the throttle's write WRITE (a handle of
 * throttle_release or throttle_succeeded; NULL: nothing to wait for) has
 * committed, so that the next attempt is checked against the counts as this
 * one left them. */
static void auth_after_throttle(struct auth_request *request, struct throttle_count *write,
				void (*next)(struct auth_request *request))
{
	if (write == NULL) {
		next(request);
		return;
	}
	request->count = write;
	request->after_count = next;
	request->job_running = true; /* a cancel only marks it */
}

static void auth_answer_internal(struct auth_request *request)
{
	auth_finish(request, AUTH_UNAVAILABLE, "[SYS/TEMP] internal error; try again later");
}

/* An internal error: the client is not at fault, so the attempt's pending
 * count is released. */
void auth_fail_internal(struct auth_request *request)
{
	auth_after_throttle(request,
			    throttle_release(request->auth->pg, &request->throttle,
					     auth_throttle_written_cb, request),
			    auth_answer_internal);
}

/* A wrong password (or, at the console, an unknown name: not told apart):
 * the attempt's count stays a failure. */
static void auth_fail_credentials(struct auth_request *request)
{
	if (request->kind == AUTH_KIND_POP3) {
		auth_log_failed(request, "wrong password");
		auth_finish(request, AUTH_REJECTED, "[AUTH] invalid login or password");
		return;
	}
	auth_log_failed(request, "invalid user name or password");
	auth_finish(request, AUTH_REJECTED, "invalid user name or password");
}

/* The password proved right, and the throttle knows it: the answer
 * (request->checked_live: checked by the provider just now). */
static void auth_succeed_answer(struct auth_request *request)
{
	if (request->kind == AUTH_KIND_POP3) {
		auth_cache_store(request->auth->cache, request->name, request->password);
		log_event(LOG_INFO, "login", request->name, NULL, "from %s", auth_from(request));
		auth_finish(request, AUTH_OK, "logged in");
		return;
	}
	log_event(LOG_INFO, "console_login", request->shown, NULL, "from %s", auth_from(request));
	if (request->checked_live)
		auth_finish(request, AUTH_OK, "logged in (checked at %s)", request->host);
	else
		auth_finish(request, AUTH_OK, "logged in");
}

/* The password proved right. CHECKED_LIVE: by the provider, just now. The
 * answer waits for the throttle's counts to be cleared, when there are any. */
void auth_succeed(struct auth_request *request, bool checked_live)
{
	request->checked_live = checked_live;
	auth_after_throttle(request,
			    throttle_succeeded(request->auth->pg, &request->throttle,
					       auth_throttle_written_cb, request),
			    auth_succeed_answer);
}

static void auth_verified_cb(enum fetch_verify_result result, const char *error, void *ctx)
{
	struct auth_request *request = ctx;

	request->verify = NULL;
	auth_live_check_end(request);
	switch (result) {
	case FETCH_VERIFY_OK:
		/* Only a POP3 login stores what the provider confirmed. */
		if (request->kind != AUTH_KIND_POP3) {
			auth_succeed(request, true);
			return;
		}
		auth_store_confirmed(request);
		return;
	case FETCH_VERIFY_REJECTED:
		auth_fail_credentials(request);
		return;
	case FETCH_VERIFY_FAILED:
		/* Counted like a wrong password: an unreachable, blocked or
		 * unknown host must not be an unthrottled way to make popgate
		 * connect somewhere. */
		auth_log_failed(request, "cannot check at the provider: %s", error);
		if (request->kind == AUTH_KIND_POP3)
			auth_finish(request, AUTH_UNAVAILABLE,
				    "[SYS/TEMP] cannot reach your provider %s to check the password; "
				    "try again later",
				    request->host);
		else
			auth_finish(request, AUTH_UNAVAILABLE,
				    "cannot reach the provider %s to check the password: %s",
				    request->host, error);
		return;
	}
}

static void auth_answer_capped(struct auth_request *request)
{
	auth_finish(request, AUTH_UNAVAILABLE,
		    "[SYS/TEMP] too many logins are being checked right now; try again later");
}

/*
 * Asks the provider live, unless that would pass a cap on live checks:
 * max_login_checks in all, max_login_checks_per_ip from one client address.
 * A login beyond a cap is refused at once, its count released (nothing was
 * tried).
 */
static void auth_ask_provider(struct auth_request *request)
{
	struct auth *auth = request->auth;
	const struct popgate_config *cfg = auth->pg->cfg;
	const char *cap = NULL;

	if (auth->live_checks >= (unsigned)cfg->max_login_checks)
		cap = "max_login_checks";
	else if (request->client_address != NULL &&
		 auth_live_checks_from(request) >= (unsigned)cfg->max_login_checks_per_ip)
		cap = "max_login_checks_per_ip";
	if (cap != NULL) {
		auth_log_failed(request, "too many live login checks at once (%s)", cap);
		auth_after_throttle(request,
				    throttle_release(auth->pg, &request->throttle,
						     auth_throttle_written_cb, request),
				    auth_answer_capped);
		return;
	}
	auth_live_check_begin(request);
	request->verify = fetch_verify_start(auth->pg->fetcher, request->login, request->host,
					     request->password, auth_verified_cb, request);
}

static void auth_verify_done(void *arg);

/* In an offload thread: the stored argon2id hash against the password. */
static void auth_verify_work(void *arg)
{
	struct auth_request *request = arg;

	request->verify_result = crypto_password_verify(request->stored_hash, request->password);
}

/* Checks the password against HASH in an offload thread; auth_verify_done
 * takes the answer. */
static void auth_check_stored_hash(struct auth_request *request)
{
	request->job_running = true;
	offload_run(request->auth->pg->offload, auth_verify_work, auth_verify_done, request);
}

static void auth_check_hash(struct auth_request *request, const char *hash)
{
	auth_wipe(&request->stored_hash);
	request->stored_hash = xstrdup(hash);
	auth_check_stored_hash(request);
}

/* A console user's own password did not match (or it has none): its
 * account's stored hash is next, if it has an account. */
static void auth_console_check_account(struct auth_request *request)
{
	struct store_account account = {0};
	int found;

	if (request->account_id == 0) {
		auth_fail_credentials(request);
		return;
	}
	found = store_account_get_by_id(request->auth->pg->store, request->account_id, &account);
	if (found <= 0) {
		/* Deleted a moment ago, or the store failed. */
		store_account_clear(&account);
		if (found < 0)
			auth_fail_internal(request);
		else
			auth_fail_credentials(request);
		return;
	}
	request->exists = true;
	request->login = xstrdup(account.login);
	request->host = xstrdup(account.host);
	auth_check_hash(request, account.password_hash);
	store_account_clear(&account);
}

/* In the loop: a match logs in; a mismatch goes on to the next step. */
static void auth_verify_done(void *arg)
{
	struct auth_request *request = arg;

	request->job_running = false;
	auth_wipe(&request->stored_hash);
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	if (request->verify_result == 1) {
		auth_succeed(request, false);
		return;
	}
	switch (request->kind) {
	case AUTH_KIND_POP3:
		/* The password may have changed at the provider, which alone can say. */
		auth_cache_forget(request->auth->cache, request->name);
		auth_ask_provider(request);
		return;
	case AUTH_KIND_CONSOLE:
		if (request->exists)
			auth_ask_provider(request);
		else
			auth_console_check_account(request);
		return;
	case AUTH_KIND_ADMIN:
		/* The administrator has one password only. */
		auth_fail_credentials(request);
		return;
	}
}

static void auth_refuse_throttled(struct auth_request *request)
{
	auth_log_failed(request, "throttled after too many failures");
	auth_finish(request, AUTH_THROTTLED, "[SYS/TEMP] too many failed logins; try again later");
}

/* True if REQUEST may go on; otherwise it was answered: throttled, or a
 * store error. */
static bool auth_throttle_passed(struct auth_request *request)
{
	int passed = throttle_check(request->auth->pg, &request->throttle);

	if (passed < 0) {
		auth_fail_internal(request);
		return false;
	}
	if (passed == 0) {
		auth_refuse_throttled(request);
		return false;
	}
	return true;
}

/* In the loop, once the count committed: the next step, or the answer (a
 * store error refuses rather than let the attempt through uncounted; a key
 * that reached the limit meanwhile, by attempts counted in parallel,
 * throttles it). */
static void auth_counted_cb(int result, void *ctx)
{
	struct auth_request *request = ctx;

	request->count = NULL;
	request->job_running = false;
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	if (result < 0)
		auth_fail_internal(request);
	else if (result == 0)
		auth_refuse_throttled(request);
	else
		request->after_count(request);
}

/*
 * Counts REQUEST as a pending failure (see pop3/throttle.h) in the writer
 * thread, then takes step NEXT: the count is committed before any check
 * starts, so parallel wrong passwords stay within the limit, and the loop
 * does not wait for it meanwhile.
 */
static void auth_attempt_count(struct auth_request *request,
			       void (*next)(struct auth_request *request))
{
	request->after_count = next;
	request->count =
	    throttle_count_start(request->auth->pg, &request->throttle, auth_counted_cb, request);
	if (request->count == NULL) {
		auth_fail_internal(request);
		return;
	}
	/* Kept alive by the count as by an offload job: a cancel only marks it. */
	request->job_running = true;
}

/* A POP3 login at a provider host the configuration does not allow. */
static void auth_refuse_host(struct auth_request *request)
{
	auth_log_failed(request, "provider host not allowed");
	auth_finish(request, AUTH_REFUSED, "[AUTH] provider host %s is not allowed on this gateway",
		    request->host);
}

struct auth_request *auth_login(struct auth *auth, const char *name, const char *password,
				const char *client_address, auth_done_cb *callback, void *ctx)
{
	struct popgate *pg = auth->pg;
	struct auth_request *request =
	    auth_request_new(auth, AUTH_KIND_POP3, password, client_address, ctx);
	char login[AUTH_LOGIN_MAX];
	char host[AUTH_HOST_MAX];
	struct store_account account = {0};

	request->callback = callback;
	if (pop3_account_name_split(name, strlen(name), login, sizeof(login), host,
				    sizeof(host)) < 0) {
		char shown[80];
		util_sanitize(shown, sizeof(shown), name, strlen(name));
		log_event(LOG_WARN, "login_failed", shown, NULL, "from %s: malformed account name",
			  client_address);
		auth_finish(request, AUTH_BAD_NAME,
			    "[AUTH] the user name must be your provider login and its POP3 server: "
			    "login@pop3.provider.example");
		return request;
	}
	request->login = xstrdup(login);
	request->host = xstrdup(host);
	request->name = xasprintf("%s@%s", login, host);
	throttle_attempt_init(&request->throttle, client_address, request->name);

	if (!auth_throttle_passed(request))
		return request;
	if (!config_host_allowed(pg->cfg, host)) {
		/* A policy refusal counts like a failed check: probing which
		 * hosts are allowed is throttled too. */
		auth_attempt_count(request, auth_refuse_host);
		return request;
	}

	int found = store_account_get(pg->store, request->name, &account);
	if (found < 0) {
		store_account_clear(&account);
		auth_fail_internal(request);
		return request;
	}
	/* The password that last succeeded needs no check and is not counted. */
	if (found == 1 && auth_cache_match(auth->cache, request->name, password)) {
		request->exists = true;
		request->account_id = account.id;
		store_account_clear(&account);
		auth_succeed(request, false);
		return request;
	}
	if (found == 0) {
		store_account_clear(&account);
		/* G2: a first login is checked live. */
		auth_attempt_count(request, auth_ask_provider);
		return request;
	}
	request->exists = true;
	request->account_id = account.id;
	request->stored_hash = xstrdup(account.password_hash);
	store_account_clear(&account);
	auth_attempt_count(request, auth_check_stored_hash);
	return request;
}

/* A console request past the throttle under NAME_KEY: counted, then step
 * NEXT; or answered already (throttled, a store error). */
static void auth_console_begin(struct auth_request *request, const char *name_key,
			       void (*next)(struct auth_request *request))
{
	throttle_attempt_init_console(&request->throttle, request->client_address, name_key);
	if (auth_throttle_passed(request))
		auth_attempt_count(request, next);
}

/* A console login, counted: the user by the name typed. */
static void auth_console_counted(struct auth_request *request)
{
	struct store_login_user user = {0};
	int found;

	if (request->typed == NULL || request->typed[0] == '\0' || request->password[0] == '\0') {
		auth_fail_credentials(request);
		return;
	}
	found = store_login_user_find(request->auth->pg->store, request->typed, &user);
	if (found <= 0) {
		store_login_user_clear(&user);
		if (found < 0)
			auth_fail_internal(request);
		else
			auth_fail_credentials(request);
		return;
	}
	request->name = xstrdup(user.user_name);
	request->account_id = user.account_id;
	if (user.local_hash != NULL)
		auth_check_hash(request, user.local_hash);
	else
		auth_console_check_account(request);
	store_login_user_clear(&user);
}

struct auth_request *auth_console_login(struct auth *auth, const char *name, const char *password,
					const char *client_address, auth_console_cb *callback,
					void *ctx)
{
	struct auth_request *request =
	    auth_request_new(auth, AUTH_KIND_CONSOLE, password, client_address, ctx);
	size_t len = strnlen(name, AUTH_CONSOLE_NAME_MAX + 1);
	bool too_long = len > AUTH_CONSOLE_NAME_MAX;
	char shown[AUTH_CONSOLE_NAME_MAX + 1];
	char *key = xasprintf("user:%.*s", (int)(too_long ? 0 : len), name);

	request->console_callback = callback;
	util_sanitize(shown, sizeof(shown), name, too_long ? AUTH_CONSOLE_NAME_MAX : len);
	request->shown = xstrdup(shown);
	/* Too long a name is no user: refused once counted, unread. */
	if (!too_long)
		request->typed = xstrdup(name);
	/* One counter for all the ways of typing a name. */
	for (char *p = key + 5; *p != '\0'; p++)
		*p = *p == '@' ? '+' : (char)tolower((unsigned char)*p);
	auth_console_begin(request, key, auth_console_counted);
	free(key);
	return request;
}

/* The administrator's login, counted: the password set for it. */
static void auth_admin_counted(struct auth_request *request)
{
	char *hash = NULL;
	int found = store_setting_get(request->auth->pg->store, STORE_SETTING_ADMIN_HASH, &hash);

	if (found < 0) {
		auth_fail_internal(request);
	} else if (found == 0) {
		auth_log_failed(request, "no administrator password is set");
		auth_finish(request, AUTH_REJECTED,
			    "no administrator password is set (popgatectl admin passwd)");
	} else {
		auth_check_hash(request, hash);
	}
	auth_wipe(&hash);
}

struct auth_request *auth_admin_login(struct auth *auth, const char *password,
				      const char *client_address, auth_console_cb *callback,
				      void *ctx)
{
	struct auth_request *request =
	    auth_request_new(auth, AUTH_KIND_ADMIN, password, client_address, ctx);

	request->console_callback = callback;
	request->shown = xstrdup("admin");
	auth_console_begin(request, "admin", auth_admin_counted);
	return request;
}

void auth_cancel(struct auth_request **request_p)
{
	struct auth_request *request = *request_p;

	if (request == NULL)
		return;
	*request_p = NULL;
	if (request->job_running) {
		/* A thread is using it: the job's end frees it. */
		request->cancelled = true;
		request->callback = NULL;
		request->console_callback = NULL;
		return;
	}
	auth_request_free(request);
}

void auth_expire(struct auth *auth)
{
	auth_cache_expire(auth->cache);
}

struct auth *auth_new(struct popgate *pg)
{
	struct auth *auth = xcalloc(1, sizeof(*auth));

	auth->pg = pg;
	auth->cache = auth_cache_new();
	TAILQ_INIT(&auth->requests);
	return auth;
}

void auth_free(struct auth **auth_p)
{
	struct auth *auth = *auth_p;
	struct auth_request *request;

	if (auth == NULL)
		return;
	while ((request = TAILQ_FIRST(&auth->requests)) != NULL)
		auth_request_free(request);
	auth_cache_free(&auth->cache);
	free(auth);
	*auth_p = NULL;
}
