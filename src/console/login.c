/*
 * login.c — console logins (U6) and the administrator's login: resolving
 * the name, the throttle, the argon2id checks in the offload threads, and the
 * live check at the provider.
 *
 * A login goes through these steps, each ending the login or leading to the
 * next: throttle check → find the user → local password (if the user has
 * one) → the account's stored hash → live at the provider. Every answer
 * comes from the loop; a failure only after login_fail_delay_ms.
 *
 * SECURITY: the password is copied once, wiped when the login ends, and
 * never logged. Unknown users and wrong passwords get the same answer.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <sodium.h>

#include "console/login.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/offload.h"
#include "core/util.h"
#include "pop3/fetch.h"
#include "popgate.h"
#include "store/account.h"
#include "store/login.h"
#include "store/user.h"

/* Longer names cannot be a user or an account; they are refused unread. */
#define CONSOLE_NAME_MAX 512

struct console_login {
	struct popgate *pg;
	char *shown_name;  /* NAME sanitised, for the log */
	char *name_key;	   /* "user:NAME" folded, or "admin" */
	char *address_key; /* "address:IP", NULL without a client address */
	char *password;	   /* wiped when the login ends */
	struct store_login_user user;
	struct store_account account;
	bool account_checked; /* the account's hash was tried */

	/* argon2id runs in the offload threads; while a job runs the login must
	 * stay alive (a cancel only marks it, and the job's end frees it). */
	char *hash;	/* the hash the running job checks */
	int hash_match; /* crypto_password_verify's answer */
	bool job_running;
	bool cancelled;

	struct fetch_verify *verify;
	struct event *reply_timer;
	enum console_login_result result;
	char message[160];
	console_login_cb *callback;
	void *ctx;
};

static void console_login_wipe(char **secret)
{
	if (*secret == NULL)
		return;
	sodium_memzero(*secret, strlen(*secret));
	xfree(secret);
}

static void console_login_free(struct console_login *login)
{
	fetch_verify_cancel(&login->verify);
	if (login->reply_timer != NULL)
		event_free(login->reply_timer);
	console_login_wipe(&login->password);
	console_login_wipe(&login->hash);
	store_login_user_clear(&login->user);
	store_account_clear(&login->account);
	free(login->shown_name);
	free(login->name_key);
	free(login->address_key);
	free(login);
}

static void console_login_reply_cb(evutil_socket_t fd, short what, void *ctx)
{
	struct console_login *login = ctx;
	char user_name[CONSOLE_NAME_MAX + 1];
	char message[sizeof(login->message)];
	enum console_login_result result = login->result;
	console_login_cb *callback = login->callback;
	void *callback_ctx = login->ctx;
	(void)fd;
	(void)what;

	snprintf(user_name, sizeof(user_name), "%s",
		 login->user.user_name != NULL ? login->user.user_name : "admin");
	memcpy(message, login->message, sizeof(message));
	console_login_free(login);
	callback(result, result == CONSOLE_LOGIN_OK ? user_name : NULL, message, callback_ctx);
}

/* Counts a failure for KEY; a store error only loses the count (logged). */
static void console_login_count_failure(struct console_login *login, const char *key)
{
	const struct popgate_config *cfg = login->pg->cfg;

	if (key != NULL)
		store_login_failure_add(login->pg->store, key, cfg->login_fail_window, util_now());
}

/*
 * Ends LOGIN with RESULT and the message FMT: counts or clears its failures,
 * logs it, and answers from the loop (a rejection after the delay).
 */
static void console_login_finish(struct console_login *login, enum console_login_result result,
				 const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void console_login_finish(struct console_login *login, enum console_login_result result,
				 const char *fmt, ...)
{
	const struct popgate_config *cfg = login->pg->cfg;
	struct timeval delay = {0, 0};
	va_list ap;

	console_login_wipe(&login->password);
	login->result = result;
	va_start(ap, fmt);
	vsnprintf(login->message, sizeof(login->message), fmt, ap);
	va_end(ap);
	switch (result) {
	case CONSOLE_LOGIN_OK:
		store_login_failures_clear(login->pg->store, login->name_key);
		log_event(LOG_INFO, "console_login", login->shown_name, NULL, "from %s",
			  login->address_key != NULL ? login->address_key + 8 : "the command line");
		break;
	case CONSOLE_LOGIN_REJECTED:
		console_login_count_failure(login, login->name_key);
		console_login_count_failure(login, login->address_key);
		delay.tv_sec = cfg->login_fail_delay_ms / 1000;
		delay.tv_usec = (cfg->login_fail_delay_ms % 1000) * 1000;
		/* fall through */
	case CONSOLE_LOGIN_THROTTLED:
	case CONSOLE_LOGIN_UNAVAILABLE:
		log_event(LOG_WARN, "console_login_failed", login->shown_name, NULL, "from %s: %s",
			  login->address_key != NULL ? login->address_key + 8 : "the command line",
			  login->message);
		break;
	}
	login->reply_timer = evtimer_new(login->pg->base, console_login_reply_cb, login);
	evtimer_add(login->reply_timer, &delay);
}

static void console_login_reject(struct console_login *login)
{
	console_login_finish(login, CONSOLE_LOGIN_REJECTED, "invalid user name or password");
}

static void console_login_verified_cb(enum fetch_verify_result result, const char *error, void *ctx)
{
	struct console_login *login = ctx;

	login->verify = NULL;
	switch (result) {
	case FETCH_VERIFY_OK:
		console_login_finish(login, CONSOLE_LOGIN_OK, "logged in (checked at %s)",
				     login->account.host);
		return;
	case FETCH_VERIFY_REJECTED:
		console_login_reject(login);
		return;
	case FETCH_VERIFY_FAILED:
		console_login_finish(login, CONSOLE_LOGIN_UNAVAILABLE,
				     "cannot reach the provider %s to check the password: %s",
				     login->account.host, error);
		return;
	}
}

static void console_login_check_hash(struct console_login *login, const char *hash);

/* The next step after a local password that did not match (or none). */
static void console_login_check_account(struct console_login *login)
{
	int found;

	if (login->account_checked) {
		/* The stored hash differs: the password may have changed at the
		 * provider, which alone can say. */
		login->verify = fetch_verify_start(login->pg->fetcher, login->account.login,
						   login->account.host, login->password,
						   console_login_verified_cb, login);
		return;
	}
	if (login->user.account_id == 0) {
		console_login_reject(login);
		return;
	}
	found = store_account_get_by_id(login->pg->store, login->user.account_id, &login->account);
	if (found <= 0) {
		/* Deleted a moment ago, or the store failed. */
		if (found < 0)
			console_login_finish(login, CONSOLE_LOGIN_UNAVAILABLE,
					     "internal error; try again later");
		else
			console_login_reject(login);
		return;
	}
	login->account_checked = true;
	console_login_check_hash(login, login->account.password_hash);
}

/* In an offload thread. */
static void console_login_hash_work(void *arg)
{
	struct console_login *login = arg;

	login->hash_match = crypto_password_verify(login->hash, login->password);
}

/* In the loop: a match logs in; otherwise the next step. */
static void console_login_hash_done(void *arg)
{
	struct console_login *login = arg;

	login->job_running = false;
	console_login_wipe(&login->hash);
	if (login->cancelled) {
		console_login_free(login);
		return;
	}
	if (login->hash_match == 1) {
		console_login_finish(login, CONSOLE_LOGIN_OK, "logged in");
		return;
	}
	/* The administrator has one password only. */
	if (login->user.user_name == NULL) {
		console_login_reject(login);
		return;
	}
	console_login_check_account(login);
}

static void console_login_check_hash(struct console_login *login, const char *hash)
{
	login->hash = xstrdup(hash);
	login->job_running = true;
	offload_run(login->pg->offload, console_login_hash_work, console_login_hash_done, login);
}

/* A new login with its password and keys; NULL_ADDRESS gives no address key. */
static struct console_login *console_login_new(struct popgate *pg, const char *shown_name,
					       const char *name_key, const char *password,
					       const char *client_address,
					       console_login_cb *callback, void *ctx)
{
	struct console_login *login = xcalloc(1, sizeof(*login));

	login->pg = pg;
	login->shown_name = xstrdup(shown_name);
	login->name_key = xstrdup(name_key);
	login->address_key =
	    client_address != NULL ? xasprintf("address:%s", client_address) : NULL;
	login->password = xstrdup(password);
	login->callback = callback;
	login->ctx = ctx;
	return login;
}

/* True (and LOGIN answered) when its name or address is throttled. */
static bool console_login_throttled(struct console_login *login)
{
	const struct popgate_config *cfg = login->pg->cfg;
	const char *keys[] = {login->name_key, login->address_key};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		int failures;

		if (keys[i] == NULL)
			continue;
		failures = store_login_failures(login->pg->store, keys[i], cfg->login_fail_window,
						util_now());
		if (failures < 0) {
			console_login_finish(login, CONSOLE_LOGIN_UNAVAILABLE,
					     "internal error; try again later");
			return true;
		}
		if (failures >= cfg->login_fail_limit) {
			console_login_finish(login, CONSOLE_LOGIN_THROTTLED,
					     "too many failed logins; try again later");
			return true;
		}
	}
	return false;
}

struct console_login *console_login_start(struct popgate *pg, const char *name,
					  const char *password, const char *client_address,
					  console_login_cb *callback, void *ctx)
{
	size_t len = strnlen(name, CONSOLE_NAME_MAX + 1);
	char shown[CONSOLE_NAME_MAX + 1];
	char *key = xasprintf("user:%.*s", (int)(len > CONSOLE_NAME_MAX ? 0 : len), name);
	struct console_login *login;
	int found;

	/* One counter for all the ways of typing a name. */
	for (char *p = key + 5; *p != '\0'; p++)
		*p = *p == '@' ? '+' : (char)tolower((unsigned char)*p);
	util_sanitize(shown, sizeof(shown), name, len > CONSOLE_NAME_MAX ? CONSOLE_NAME_MAX : len);
	login = console_login_new(pg, shown, key, password, client_address, callback, ctx);
	free(key);
	if (console_login_throttled(login))
		return login;
	if (len == 0 || len > CONSOLE_NAME_MAX || *password == '\0') {
		console_login_reject(login);
		return login;
	}
	found = store_login_user_find(pg->store, name, &login->user);
	if (found < 0) {
		console_login_finish(login, CONSOLE_LOGIN_UNAVAILABLE,
				     "internal error; try again later");
		return login;
	}
	if (found == 0) {
		console_login_reject(login);
		return login;
	}
	if (login->user.local_hash != NULL)
		console_login_check_hash(login, login->user.local_hash);
	else
		console_login_check_account(login);
	return login;
}

struct console_login *console_admin_login_start(struct popgate *pg, const char *password,
						const char *client_address,
						console_login_cb *callback, void *ctx)
{
	struct console_login *login =
	    console_login_new(pg, "admin", "admin", password, client_address, callback, ctx);
	char *hash = NULL;
	int found;

	if (console_login_throttled(login))
		return login;
	found = store_setting_get(pg->store, CONSOLE_ADMIN_HASH_SETTING, &hash);
	if (found < 0) {
		console_login_finish(login, CONSOLE_LOGIN_UNAVAILABLE,
				     "internal error; try again later");
	} else if (found == 0) {
		console_login_finish(login, CONSOLE_LOGIN_REJECTED,
				     "no administrator password is set (popgatectl admin passwd)");
	} else {
		console_login_check_hash(login, hash);
	}
	console_login_wipe(&hash);
	return login;
}

void console_login_cancel(struct console_login **login_p)
{
	struct console_login *login = *login_p;

	if (login == NULL)
		return;
	*login_p = NULL;
	if (login->job_running) {
		/* A thread is using it: the job's end frees it. */
		login->cancelled = true;
		login->callback = NULL;
		return;
	}
	console_login_free(login);
}
