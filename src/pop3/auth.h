/*
 * auth.h — logging a mail client in (P1, P2, G2): the account name, the
 * provider policy, the stored argon2id hash, the live check at the provider
 * for a first login or a changed password, creating the user (U1, U2),
 * throttling failed logins per client address and per account (counted when
 * a check starts, kept in the store: pop3/throttle.h), and capping the live
 * checks in flight ([server] max_login_checks, max_login_checks_per_ip).
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

struct auth *auth_new(struct popgate *pg);
void auth_free(struct auth **auth);

/*
 * Starts a login of NAME with PASSWORD from CLIENT_ADDRESS (text). CALLBACK is
 * called exactly once, always later from the loop (after login_fail_delay_ms
 * for a wrong password), unless the request is cancelled first.
 */
struct auth_request *auth_login(struct auth *auth, const char *name, const char *password,
				const char *client_address, auth_done_cb *callback, void *ctx);

/* Cancels a login in progress (the client went away). NULL is fine. */
void auth_cancel(struct auth_request **request);

/* Drops cached logins that have expired (a timer calls this, so the table
 * stays bounded by recent activity; the failure counters in the store are
 * expired by store_login_failures_expire). */
void auth_expire(struct auth *auth);

#endif
