/*
 * login.h — logging in to the user console (U6), and as the administrator.
 *
 * The web console calls these from the daemon's loop; popgatectl's
 * 'auth check' and 'admin check' call them from a loop of their own.
 *
 * A user logs in with the user name ('+' for '@'), or tolerantly with the
 * full POP3 account name with '@' or '+'. A user made by 'user passwd' has a
 * local password, checked first; a provider-created user's password is
 * checked against the stored argon2id hash of its account, then, on a
 * mismatch, live at the provider (the password may have changed there). A
 * console login never changes the stored provider credentials: a POP3 login
 * does that.
 *
 * Failures are counted in the store per user name and per client address
 * and throttled by the same limits as POP3 logins (login_fail_limit within
 * login_fail_window, each failure answered after login_fail_delay_ms).
 */
#ifndef POPGATE_CONSOLE_LOGIN_H
#define POPGATE_CONSOLE_LOGIN_H

struct popgate;
struct console_login;

enum console_login_result {
	CONSOLE_LOGIN_OK,
	CONSOLE_LOGIN_REJECTED,	   /* unknown user or wrong password (not told apart) */
	CONSOLE_LOGIN_THROTTLED,   /* too many failures; try later */
	CONSOLE_LOGIN_UNAVAILABLE, /* the store or the provider could not be asked */
};

/* USER_NAME is the user logged in (NULL unless OK; "admin" for the
 * administrator); MESSAGE a short text for the person (never the password). */
typedef void console_login_cb(enum console_login_result result, const char *user_name,
			      const char *message, void *ctx);

/*
 * Starts a console login of NAME with PASSWORD from CLIENT_ADDRESS (text,
 * NULL when there is none, as on the command line). Needs PG's base, cfg,
 * store, offload and fetcher. CALLBACK is called exactly once, always later
 * from the loop, unless the login is cancelled first.
 */
struct console_login *console_login_start(struct popgate *pg, const char *name,
					  const char *password, const char *client_address,
					  console_login_cb *callback, void *ctx);

/* The same for the administrator, against the password 'admin passwd' set. */
struct console_login *console_admin_login_start(struct popgate *pg, const char *password,
						const char *client_address,
						console_login_cb *callback, void *ctx);

/* Stops a login in progress; its callback is not called. NULL is fine. */
void console_login_cancel(struct console_login **login);

/* The setting that holds the administrator's argon2id hash. */
#define CONSOLE_ADMIN_HASH_SETTING "admin_password_hash"

#endif
