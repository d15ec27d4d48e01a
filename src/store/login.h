/*
 * login.h — what logins read and write in the store: the name of a user a
 * first POP3 login creates, the user a name typed at the console means
 * (U6), and the counters of failed logins, the console's ("user:NAME",
 * "admin", "address:IP") and POP3's ("pop3-address:…", "pop3-account:…",
 * see pop3/throttle.h).
 *
 * The counters live in the store, not in memory, because popgatectl and the
 * daemon both check logins and must see each other's failures, and because
 * they must survive a restart.
 */
#ifndef POPGATE_STORE_LOGIN_H
#define POPGATE_STORE_LOGIN_H

#include <stdint.h>

#include "store/db.h"

/*
 * The name for the user a first POP3 login of LOGIN at HOST creates (U2):
 * the login with '@' replaced by '+' when the login is a mail address
 * (unique by itself); otherwise the login plus '+' and the provider host, so
 * the same login at two providers never becomes one user. Bytes that a
 * user name cannot hold (anything but [A-Za-z0-9._+-]) become '-'. A name already
 * taken gets '+' and the host appended, then '+2', '+3' … Returns an
 * allocated name, or NULL on a store error.
 */
char *store_login_user_name_new(struct store *store, const char *login, const char *host);

/* The user a console login name names. */
struct store_login_user {
	int64_t user_id;
	char *user_name;
	char *local_hash; /* the user's own argon2id hash ('user passwd'), NULL if none */
	int64_t account_id; /* the provider account to check against, 0 if none */
};

void store_login_user_clear(struct store_login_user *user);

/*
 * Finds the user NAME means, tolerantly (case aside): the user name itself
 * ("me+gmx.net"), the same with '@' for '+' ("me@gmx.net"), or the full POP3
 * account name with '@' or '+' ("me@gmx.net@pop.gmx.net",
 * "me+gmx.net+pop.gmx.net"). The account is the one NAME named, else the
 * user's oldest. A name that two accounts could mean names neither, unless
 * it is one of them exactly.
 * *USER is overwritten; clear it after use. 1 found, 0 not found, -1 error.
 */
int store_login_user_find(struct store *store, const char *name, struct store_login_user *user);

/* The failures counted for KEY in the window of WINDOW seconds that is
 * current at NOW (0 once the window has passed). -1 on error. */
int store_login_failures(struct store *store, const char *key, int64_t window, int64_t now);

/* Counts one failure for KEY (a new window starts when the last has passed).
 * 0 or -1. */
int store_login_failure_add(struct store *store, const char *key, int64_t window, int64_t now);

/* Takes back one failure of KEY (an attempt counted when it started that
 * turned out not to be one); the last one removes KEY's row. 0 or -1. */
int store_login_failure_remove(struct store *store, const char *key);

/* Forgets KEY's failures (after a successful login). 0 or -1. */
int store_login_failures_clear(struct store *store, const char *key);

/* Drops the counters whose window has passed at NOW, so the table stays as
 * small as recent activity. 0 or -1. */
int store_login_failures_expire(struct store *store, int64_t window, int64_t now);

#endif
