/*
 * auth.h — the one login state machine: a mail client's POP3 login (P1, P2,
 * G2), a user's console login (U6) and the administrator's. POP3: the
 * account name, the provider policy, the stored argon2id hash, the live
 * check at the provider for a first login or a changed password, creating
 * the user (U1, U2). Console: the user a name means, its own password, its
 * account's hash, the provider live. All: throttling failed logins per
 * client address and per account or user (counted when a check starts, kept
 * in the store: pop3/throttle.h), capping the live checks in flight
 * ([server] max_login_checks, max_login_checks_per_ip), and answering a
 * failure only after login_fail_delay_ms.
 *
 * The web console calls these from the daemon's loop; popgatectl's 'auth
 * check' and 'admin check' from a loop of their own (with an auth of their
 * own: its live-check caps count only its requests).
 */
#ifndef POPGATE_POP3_AUTH_H
#define POPGATE_POP3_AUTH_H

#include <stdint.h>

struct popgate;
struct auth;
struct auth_request;

enum auth_result {
	AUTH_OK,	  /* ACCOUNT_ID is set */
	AUTH_REJECTED,	  /* wrong password: -ERR [AUTH] */
	AUTH_BAD_NAME,	  /* malformed account name: -ERR with the expected form */
	AUTH_REFUSED,	  /* policy: the provider host is not allowed */
	AUTH_THROTTLED,	  /* too many failures: -ERR [SYS/TEMP] */
	AUTH_UNAVAILABLE, /* the provider could not be asked, a cap on live checks
			     was reached, or an internal error: -ERR [SYS/TEMP] */
};

/* MESSAGE is the text for the client's -ERR (never contains the password). */
typedef void auth_done_cb(enum auth_result result, int64_t account_id, const char *account_name,
			  const char *message, void *ctx);

/* Who a console login logged in as. */
enum auth_role {
	AUTH_ROLE_USER,	 /* a user of the console: USER_NAME says which */
	AUTH_ROLE_ADMIN, /* the administrator */
};

/* For a console or administrator login: RESULT is AUTH_OK, AUTH_REJECTED
 * (unknown user or wrong password, not told apart), AUTH_THROTTLED or
 * AUTH_UNAVAILABLE. USER_NAME is the user logged in (NULL unless OK and
 * ROLE is AUTH_ROLE_USER); MESSAGE a short text for the person (never the
 * password). */
typedef void auth_console_cb(enum auth_result result, enum auth_role role, const char *user_name,
			     const char *message, void *ctx);

struct auth *auth_new(struct popgate *pg);
void auth_free(struct auth **auth);

/*
 * Starts a login of NAME with PASSWORD from CLIENT_ADDRESS (text). CALLBACK is
 * called exactly once, always later from the loop (after login_fail_delay_ms
 * for a wrong password), unless the request is cancelled first.
 */
struct auth_request *auth_login(struct auth *auth, const char *name, const char *password,
				const char *client_address, auth_done_cb *callback, void *ctx);

/*
 * Starts a console login of NAME with PASSWORD from CLIENT_ADDRESS (text,
 * NULL when there is none, as on the command line). A user logs in with the
 * user name ('+' for '@'), or the full POP3 account name with '@' or '+'.
 * Needs the auth's popgate base, cfg, store, offload and fetcher. CALLBACK
 * is called exactly once, always later from the loop, unless the login is
 * cancelled first.
 */
struct auth_request *auth_console_login(struct auth *auth, const char *name, const char *password,
					const char *client_address, auth_console_cb *callback,
					void *ctx);

/* The same for the administrator, against the password 'admin passwd' set
 * (setting STORE_SETTING_ADMIN_HASH). */
struct auth_request *auth_admin_login(struct auth *auth, const char *password,
				      const char *client_address, auth_console_cb *callback,
				      void *ctx);

/* Cancels a login in progress (the client went away). NULL is fine. */
void auth_cancel(struct auth_request **request);

/* Drops cached logins that have expired (a timer calls this, so the table
 * stays bounded by recent activity; the failure counters in the store are
 * expired by store_login_failures_expire). */
void auth_expire(struct auth *auth);

#endif
