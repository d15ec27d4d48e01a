/*
 * auth.c — logging a mail client in (P1, P2, G2, U1, U2).
 *
 * The account name is split at its last '@' into login and provider host.
 * An account seen before is checked against its argon2id hash; on a mismatch
 * the provider is asked live, since the user may have changed the password
 * there, and on success the stored hash and sealed password are replaced. A
 * first login is always checked live before anything is stored; success
 * creates the user and its primary address in the pseudo-domain.
 *
 * Attempts are counted per client address and per account name within a
 * window, in the store, when their check starts (pop3/throttle.c); past the
 * limit further attempts are refused without asking anyone, and a wrong
 * password is answered only after a delay. Live checks at providers are
 * capped, globally and per client address, so that slow providers cannot
 * pile them up: a login beyond a cap is refused at once.
 *
 * A repeated login with the password that last succeeded is recognised by a
 * keyed BLAKE2b digest kept in memory (never the password), so a client that
 * polls every minute costs one hash, not one argon2id run.
 *
 * SECURITY: the name and password come from the client. The password is
 * copied only into the live check (which wipes it) and hashed; it is never
 * logged nor put into a message, and every buffer that held it or something
 * derived from it is wiped before it is freed. Names are sanitised before
 * they are logged.
 */
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
#include "pop3/fetch.h"
#include "pop3/parse.h"
#include "pop3/throttle.h"
#include "popgate.h"
#include "store/account.h"
#include "store/login.h"

#define AUTH_TABLE_BUCKETS 1024
/* A remembered successful login is trusted this long without argon2id. */
#define AUTH_CACHE_SECONDS 3600
#define AUTH_LOGIN_MAX 256
#define AUTH_HOST_MAX 256

/* One entry of the login cache. */
struct auth_entry {
	char *key;
	unsigned char digest[32]; /* crypto_login_digest of the last success */
	int64_t cached_until;
	struct auth_entry *next;
};

struct auth_request {
	struct auth *auth;
	char *name;	     /* normalised "login@host" */
	char *login;
	char *host;
	char *password;	     /* wiped when the request ends */
	char *client_address;
	bool exists;	     /* the account was found in the store */
	int64_t account_id;
	struct throttle_attempt throttle;
	bool live_check;     /* counted in auth->live_checks */
	struct fetch_verify *verify;
	struct event *reply_timer;

	/* argon2id runs in the offload threads; while a job runs, the request
	 * must stay alive (a cancel only marks it, and the job's end frees it). */
	bool job_running;
	bool cancelled;
	char *stored_hash;	/* the account's hash, for the verify job */
	int verify_result;	/* crypto_password_verify's answer */
	int hash_status;	/* 0 when NEW_HASH and NEW_SECRET were made */
	char new_hash[CRYPTO_HASH_MAX];
	unsigned char *new_secret;
	size_t new_secret_len;
	enum auth_result result;
	char message[256];
	auth_done_cb *callback;
	void *ctx;
	TAILQ_ENTRY(auth_request) entry;
};

TAILQ_HEAD(auth_request_list, auth_request);

struct auth {
	struct popgate *pg;
	struct auth_entry *cache[AUTH_TABLE_BUCKETS];
	struct auth_request_list requests;
	unsigned live_checks; /* requests with live_check set */
};

static unsigned auth_bucket(const char *key)
{
	/* FNV-1a: the keys are not secret and the buckets only spread load. */
	uint32_t hash = 2166136261u;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		hash = (hash ^ *p) * 16777619u;
	return hash % AUTH_TABLE_BUCKETS;
}

static struct auth_entry *auth_table_get(struct auth_entry **table, const char *key, bool create)
{
	unsigned bucket = auth_bucket(key);
	struct auth_entry *entry;

	for (entry = table[bucket]; entry != NULL; entry = entry->next) {
		if (strcmp(entry->key, key) == 0)
			return entry;
	}
	if (!create)
		return NULL;
	entry = xcalloc(1, sizeof(*entry));
	entry->key = xstrdup(key);
	entry->next = table[bucket];
	table[bucket] = entry;
	return entry;
}

static void auth_entry_free(struct auth_entry *entry)
{
	sodium_memzero(entry->digest, sizeof(entry->digest));
	free(entry->key);
	free(entry);
}

static void auth_table_free(struct auth_entry **table)
{
	for (size_t i = 0; i < AUTH_TABLE_BUCKETS; i++) {
		struct auth_entry *entry = table[i], *next;
		for (; entry != NULL; entry = next) {
			next = entry->next;
			auth_entry_free(entry);
		}
		table[i] = NULL;
	}
}

static void auth_cache_store(struct auth *auth, const char *name, const char *password)
{
	struct auth_entry *entry = auth_table_get(auth->cache, name, true);

	crypto_login_digest(entry->digest, name, password);
	entry->cached_until = util_now() + AUTH_CACHE_SECONDS;
}

static bool auth_cache_match(struct auth *auth, const char *name, const char *password)
{
	struct auth_entry *entry = auth_table_get(auth->cache, name, false);
	unsigned char digest[32];
	bool match;

	if (entry == NULL || entry->cached_until < util_now())
		return false;
	crypto_login_digest(digest, name, password);
	match = sodium_memcmp(digest, entry->digest, sizeof(digest)) == 0;
	sodium_memzero(digest, sizeof(digest));
	return match;
}

static void auth_cache_forget(struct auth *auth, const char *name)
{
	struct auth_entry *entry = auth_table_get(auth->cache, name, false);
	if (entry != NULL)
		entry->cached_until = 0;
}

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

static void auth_request_free(struct auth_request *request)
{
	TAILQ_REMOVE(&request->auth->requests, request, entry);
	auth_live_check_end(request);
	fetch_verify_cancel(&request->verify);
	if (request->reply_timer != NULL)
		event_free(request->reply_timer);
	if (request->password != NULL) {
		sodium_memzero(request->password, strlen(request->password));
		free(request->password);
	}
	if (request->stored_hash != NULL) {
		sodium_memzero(request->stored_hash, strlen(request->stored_hash));
		free(request->stored_hash);
	}
	sodium_memzero(request->new_hash, sizeof(request->new_hash));
	if (request->new_secret != NULL)
		sodium_memzero(request->new_secret, request->new_secret_len);
	free(request->new_secret);
	free(request->name);
	free(request->login);
	free(request->host);
	free(request->client_address);
	free(request);
}

static void auth_reply_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct auth_request *request = ctx;
	auth_done_cb *callback = request->callback;
	void *callback_ctx = request->ctx;
	enum auth_result result = request->result;
	int64_t account_id = request->account_id;
	char name[AUTH_LOGIN_MAX + AUTH_HOST_MAX + 2];
	char message[sizeof(request->message)];
	(void)fd;
	(void)what;

	snprintf(name, sizeof(name), "%s", request->name != NULL ? request->name : "");
	memcpy(message, request->message, sizeof(message));
	auth_request_free(request);
	callback(result, account_id, name, message, callback_ctx);
}

/*
 * Ends REQUEST with RESULT. The callback runs from the loop — after
 * login_fail_delay_ms for a failure, so that guessing is slow.
 */
static void auth_finish(struct auth_request *request, enum auth_result result, const char *fmt,
			...) __attribute__((format(printf, 3, 4)));
static void auth_finish(struct auth_request *request, enum auth_result result, const char *fmt,
			...)
{
	struct auth *auth = request->auth;
	struct timeval delay = {0, 0};
	va_list ap;

	request->result = result;
	va_start(ap, fmt);
	vsnprintf(request->message, sizeof(request->message), fmt, ap);
	va_end(ap);
	if (request->password != NULL) {
		sodium_memzero(request->password, strlen(request->password));
		xfree(&request->password);
	}
	if (result == AUTH_REJECTED) {
		int ms = auth->pg->cfg->login_fail_delay_ms;
		delay.tv_sec = ms / 1000;
		delay.tv_usec = (ms % 1000) * 1000;
	}
	request->reply_timer = evtimer_new(auth->pg->base, auth_reply_cb, request);
	evtimer_add(request->reply_timer, &delay);
}

/* An internal error: the client is not at fault, so the attempt's pending
 * count is released. */
static void auth_fail_internal(struct auth_request *request)
{
	throttle_release(request->auth->pg, &request->throttle);
	auth_finish(request, AUTH_UNAVAILABLE, "[SYS/TEMP] internal error; try again later");
}

/* The provider refused the password: the attempt's count stays a failure. */
static void auth_fail_credentials(struct auth_request *request)
{
	log_event(LOG_WARN, "login_failed", request->name, NULL, "from %s: wrong password",
		  request->client_address);
	auth_finish(request, AUTH_REJECTED, "[AUTH] invalid login or password");
}

static void auth_succeed(struct auth_request *request)
{
	throttle_succeeded(request->auth->pg, &request->throttle);
	auth_cache_store(request->auth, request->name, request->password);
	log_event(LOG_INFO, "login", request->name, NULL, "from %s", request->client_address);
	auth_finish(request, AUTH_OK, "logged in");
}

/* A first login was confirmed by the provider: create account and user. */
static void auth_create_account(struct auth_request *request)
{
	struct popgate *pg = request->auth->pg;
	struct store_account account = {0};
	char *user_name = NULL;
	char *address = NULL;

	user_name = store_login_user_name_new(pg->store, request->login, request->host);
	if (user_name == NULL)
		goto fail;
	address = xasprintf("%s@%s", user_name, pg->cfg->pseudo_domain);
	account.name = request->name;
	account.login = request->login;
	account.host = request->host;
	account.password_hash = request->new_hash;
	account.secret = request->new_secret;
	account.secret_len = request->new_secret_len;
	if (store_account_create(pg->store, &account, user_name, address) < 0) {
		/* Another session may have created it a moment ago. */
		struct store_account existing = {0};
		if (store_account_get(pg->store, request->name, &existing) != 1) {
			store_account_clear(&existing);
			goto fail;
		}
		account.id = existing.id;
		store_account_clear(&existing);
		store_account_update_credentials(pg->store, account.id, request->new_hash,
						 request->new_secret, request->new_secret_len);
	} else {
		log_event(LOG_INFO, "user_created", request->name, NULL, "user %s, address %s",
			  user_name, address);
	}
	request->account_id = account.id;
	free(account.user_name); /* filled in by store_account_create */
	free(user_name);
	free(address);
	auth_succeed(request);
	return;
fail:
	free(account.user_name);
	free(user_name);
	free(address);
	/* The store logged its own error; its message is gone by now. */
	log_event(LOG_ERROR, "error", request->name, NULL,
		  "cannot create the account (see the store's error before this line)");
	auth_fail_internal(request);
}

/* The password differed from the stored one but the provider took it. */
static void auth_update_credentials(struct auth_request *request)
{
	struct popgate *pg = request->auth->pg;

	if (store_account_update_credentials(pg->store, request->account_id, request->new_hash,
					     request->new_secret, request->new_secret_len) < 0) {
		auth_fail_internal(request);
		return;
	}
	log_event(LOG_INFO, "credentials_updated", request->name, NULL,
		  "the provider accepted a new password");
	auth_succeed(request);
}

/* In an offload thread: the argon2id hash and the sealed copy of the password. */
static void auth_credentials_work(void *arg)
{
	struct auth_request *request = arg;

	request->hash_status = crypto_password_hash(request->new_hash, request->password) == 0 &&
					       crypto_secret_seal(&request->auth->pg->key,
								  request->password,
								  &request->new_secret,
								  &request->new_secret_len) == 0
				       ? 0
				       : -1;
}

/* In the loop: store what the provider confirmed. */
static void auth_credentials_done(void *arg)
{
	struct auth_request *request = arg;

	request->job_running = false;
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	if (request->hash_status < 0) {
		auth_fail_internal(request);
		return;
	}
	if (request->exists)
		auth_update_credentials(request);
	else
		auth_create_account(request);
}

static void auth_verified_cb(enum fetch_verify_result result, const char *error, void *ctx)
{
	struct auth_request *request = ctx;

	request->verify = NULL;
	auth_live_check_end(request);
	switch (result) {
	case FETCH_VERIFY_OK:
		request->job_running = true;
		offload_run(request->auth->pg->offload, auth_credentials_work,
			    auth_credentials_done, request);
		return;
	case FETCH_VERIFY_REJECTED:
		auth_fail_credentials(request);
		return;
	case FETCH_VERIFY_FAILED:
		/* Counted like a wrong password: an unreachable, blocked or
		 * unknown host must not be an unthrottled way to make popgate
		 * connect somewhere. */
		log_event(LOG_WARN, "login_failed", request->name, NULL,
			  "from %s: cannot check at the provider: %s", request->client_address,
			  error);
		auth_finish(request, AUTH_UNAVAILABLE,
			    "[SYS/TEMP] cannot reach your provider %s to check the password; try "
			    "again later",
			    request->host);
		return;
	}
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
	else if (auth_live_checks_from(request) >= (unsigned)cfg->max_login_checks_per_ip)
		cap = "max_login_checks_per_ip";
	if (cap != NULL) {
		throttle_release(auth->pg, &request->throttle);
		log_event(LOG_WARN, "login_failed", request->name, NULL,
			  "from %s: too many live login checks at once (%s)",
			  request->client_address, cap);
		auth_finish(request, AUTH_UNAVAILABLE,
			    "[SYS/TEMP] too many logins are being checked right now; try again "
			    "later");
		return;
	}
	auth_live_check_begin(request);
	request->verify = fetch_verify_start(auth->pg->fetcher, request->login, request->host,
					     request->password, auth_verified_cb, request);
}

/* In an offload thread: the stored argon2id hash against the password. */
static void auth_verify_work(void *arg)
{
	struct auth_request *request = arg;

	request->verify_result = crypto_password_verify(request->stored_hash, request->password);
}

/* In the loop: a match logs in; a mismatch asks the provider (the password
 * may have changed there). */
static void auth_verify_done(void *arg)
{
	struct auth_request *request = arg;

	request->job_running = false;
	if (request->cancelled) {
		auth_request_free(request);
		return;
	}
	if (request->verify_result == 1) {
		auth_succeed(request);
		return;
	}
	auth_cache_forget(request->auth, request->name);
	auth_ask_provider(request);
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
		log_event(LOG_WARN, "login_failed", request->name, NULL,
			  "from %s: throttled after too many failures", request->client_address);
		auth_finish(request, AUTH_THROTTLED,
			    "[SYS/TEMP] too many failed logins; try again later");
		return false;
	}
	return true;
}

/* Counts REQUEST as a pending failure (see pop3/throttle.h). 0, or -1 after
 * answering it (a store error: refused rather than let through uncounted). */
static int auth_attempt_count(struct auth_request *request)
{
	if (throttle_count(request->auth->pg, &request->throttle) < 0) {
		auth_fail_internal(request);
		return -1;
	}
	return 0;
}

struct auth_request *auth_login(struct auth *auth, const char *name, const char *password,
				const char *client_address, auth_done_cb *callback, void *ctx)
{
	struct popgate *pg = auth->pg;
	struct auth_request *request = xcalloc(1, sizeof(*request));
	char login[AUTH_LOGIN_MAX];
	char host[AUTH_HOST_MAX];
	struct store_account account = {0};

	request->auth = auth;
	request->callback = callback;
	request->ctx = ctx;
	request->password = xstrdup(password);
	request->client_address = xstrdup(client_address);
	TAILQ_INSERT_TAIL(&auth->requests, request, entry);

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
		if (auth_attempt_count(request) < 0)
			return request;
		log_event(LOG_WARN, "login_failed", request->name, NULL,
			  "from %s: provider host not allowed", client_address);
		auth_finish(request, AUTH_REFUSED,
			    "[AUTH] provider host %s is not allowed on this gateway", host);
		return request;
	}

	int found = store_account_get(pg->store, request->name, &account);
	if (found < 0) {
		store_account_clear(&account);
		auth_fail_internal(request);
		return request;
	}
	/* The password that last succeeded needs no check and is not counted. */
	if (found == 1 && auth_cache_match(auth, request->name, password)) {
		request->exists = true;
		request->account_id = account.id;
		store_account_clear(&account);
		auth_succeed(request);
		return request;
	}
	if (auth_attempt_count(request) < 0) {
		store_account_clear(&account);
		return request;
	}
	if (found == 0) {
		store_account_clear(&account);
		auth_ask_provider(request); /* G2: a first login is checked live */
		return request;
	}
	request->exists = true;
	request->account_id = account.id;
	request->stored_hash = xstrdup(account.password_hash);
	store_account_clear(&account);
	request->job_running = true;
	offload_run(pg->offload, auth_verify_work, auth_verify_done, request);
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
		return;
	}
	auth_request_free(request);
}

/* Removes entries of TABLE for which IS_EXPIRED says so. */
static void auth_table_expire(struct auth *auth, struct auth_entry **table,
			      bool (*is_expired)(const struct auth *, const struct auth_entry *))
{
	for (size_t i = 0; i < AUTH_TABLE_BUCKETS; i++) {
		struct auth_entry **link = &table[i];
		while (*link != NULL) {
			struct auth_entry *entry = *link;
			if (is_expired(auth, entry)) {
				*link = entry->next;
				auth_entry_free(entry);
			} else {
				link = &entry->next;
			}
		}
	}
}

static bool auth_cache_expired(const struct auth *auth, const struct auth_entry *entry)
{
	(void)auth;
	return entry->cached_until < util_now();
}

void auth_expire(struct auth *auth)
{
	auth_table_expire(auth, auth->cache, auth_cache_expired);
}

struct auth *auth_new(struct popgate *pg)
{
	struct auth *auth = xcalloc(1, sizeof(*auth));

	auth->pg = pg;
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
	auth_table_free(auth->cache);
	free(auth);
	*auth_p = NULL;
}
