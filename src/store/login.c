/*
 * login.c — the store side of logins: the name a first POP3 login gives its
 * new user (U2), resolving a name typed at the console back to a user (U6),
 * and the failed-login counters of the console and of POP3 logins (table
 * login_failure; each caller keeps to keys of its own form).
 *
 * A name is compared with '@' and '+' taken as the same character, since
 * users are named after their POP3 login with '@' replaced by '+', and people
 * type either.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/account.h"
#include "store/login.h"

void store_login_user_clear(struct store_login_user *user)
{
	free(user->user_name);
	if (user->local_hash != NULL) {
		explicit_bzero(user->local_hash, strlen(user->local_hash));
		free(user->local_hash);
	}
	memset(user, 0, sizeof(*user));
}

/* Reads the user columns (id, name, password_hash) and the account id of
 * STMT's row into USER. */
static void store_login_user_read(sqlite3_stmt *stmt, struct store_login_user *user)
{
	const unsigned char *hash = sqlite3_column_text(stmt, 2);

	user->user_id = sqlite3_column_int64(stmt, 0);
	user->user_name = xstrdup((const char *)sqlite3_column_text(stmt, 1));
	user->local_hash = hash != NULL ? xstrdup((const char *)hash) : NULL;
	user->account_id = sqlite3_column_int64(stmt, 3);
}

/* Whether a user is named NAME, case aside (a name differing only in case
 * would collide with its addresses, which are compared without case). */
static int store_login_name_taken(struct store *store, const char *name)
{
	static const char sql[] = "SELECT 1 FROM user WHERE name = ? COLLATE NOCASE";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	return store_stmt_exists(store, stmt, "checking a user name");
}

char *store_login_user_name_new(struct store *store, const char *login, const char *host)
{
	bool mail_login = strchr(login, '@') != NULL;
	char *base = mail_login ? xstrdup(login) : xasprintf("%s+%s", login, host);
	bool host_tried = !mail_login;
	int number = 2;
	char *name;
	int taken;

	/* A user name becomes part of addresses and paths: '@' turns into '+',
	 * and any other byte outside [A-Za-z0-9._+-] (a space, '/', UTF-8)
	 * into '-'. */
	for (char *p = base; *p != '\0'; p++)
		if (*p == '@')
			*p = '+';
		else if (strchr(
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-",
			     *p) == NULL)
			*p = '-';
	name = xstrdup(base);
	/* Bounded by the users there are: each round tries a new name. */
	while ((taken = store_login_name_taken(store, name)) == 1) {
		free(name);
		if (!host_tried) {
			host_tried = true;
			name = xasprintf("%s+%s", base, host);
		} else {
			name = xasprintf("%s+%d", base, number++);
		}
	}
	free(base);
	if (taken < 0) {
		free(name);
		return NULL;
	}
	return name;
}

int store_login_user_find(struct store *store, const char *name, struct store_login_user *user)
{
	/* The user by name, an exact match before one that differs in case. */
	static const char by_user[] =
	    "SELECT u.id, u.name, u.password_hash,"
	    " (SELECT min(a.id) FROM account a WHERE a.user_id = u.id)"
	    " FROM user u WHERE u.name = replace(?1, '@', '+') COLLATE NOCASE"
	    " ORDER BY u.name = replace(?1, '@', '+') DESC, u.id LIMIT 1";
	/* The user by an account's name: the account typed exactly first;
	 * otherwise two rows mean NAME is ambiguous. */
	static const char by_account[] =
	    "SELECT u.id, u.name, u.password_hash, a.id, a.name = ?1 COLLATE NOCASE"
	    " FROM account a JOIN user u ON u.id = a.user_id"
	    " WHERE replace(a.name, '@', '+') = replace(?1, '@', '+') COLLATE NOCASE"
	    " ORDER BY a.name = ?1 COLLATE NOCASE DESC, a.id LIMIT 2";
	sqlite3_stmt *stmt;
	int rc;

	memset(user, 0, sizeof(*user));
	if ((stmt = store_stmt_prepare(store, by_user)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = store_stmt_step(store, stmt, "finding a console user");
	if (rc == 1)
		store_login_user_read(stmt, user);
	store_stmt_release(stmt);
	if (rc != 0)
		return rc;

	if ((stmt = store_stmt_prepare(store, by_account)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = store_stmt_step(store, stmt, "finding a console user's account");
	if (rc == 1 && sqlite3_column_int(stmt, 4) == 1) {
		store_login_user_read(stmt, user);
	} else if (rc == 1) {
		store_login_user_read(stmt, user);
		rc = store_stmt_step(store, stmt, "finding a console user's account");
		if (rc != 0) {
			store_login_user_clear(user);
			rc = rc < 0 ? -1 : 0;
		} else {
			rc = 1;
		}
	}
	store_stmt_release(stmt);
	return rc;
}

int store_login_failures(struct store *store, const char *key, int64_t window, int64_t now)
{
	static const char sql[] = "SELECT failures FROM login_failure"
				  " WHERE key = ? AND ? - window_start < ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, now);
	sqlite3_bind_int64(stmt, 3, window);
	rc = store_stmt_step(store, stmt, "reading login failures");
	if (rc == 1)
		rc = sqlite3_column_int(stmt, 0);
	store_stmt_release(stmt);
	return rc;
}

int store_login_failure_add(struct store *store, const char *key, int64_t window, int64_t now)
{
	static const char sql[] =
	    "INSERT INTO login_failure (key, failures, window_start) VALUES (?1, 1, ?2)"
	    " ON CONFLICT (key) DO UPDATE SET"
	    "  failures = CASE WHEN ?2 - window_start >= ?3 THEN 1 ELSE failures + 1 END,"
	    "  window_start = CASE WHEN ?2 - window_start >= ?3 THEN ?2 ELSE window_start END";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, now);
	sqlite3_bind_int64(stmt, 3, window);
	return store_stmt_exists(store, stmt, "counting a login failure") < 0 ? -1 : 0;
}

int store_login_failure_remove(struct store *store, const char *key)
{
	/* The last failure goes with its row, so the table holds only keys that
	 * count; the delete runs first, or it would take a row just lowered to 1. */
	static const char drop[] = "DELETE FROM login_failure WHERE key = ? AND failures <= 1";
	static const char lower[] = "UPDATE login_failure SET failures = failures - 1"
				    " WHERE key = ? AND failures > 1";
	sqlite3_stmt *stmt = store_stmt_prepare(store, drop);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "releasing a login attempt") < 0)
		return -1;
	if ((stmt = store_stmt_prepare(store, lower)) == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	return store_stmt_done(store, stmt, "releasing a login attempt");
}

int store_login_failures_clear(struct store *store, const char *key)
{
	static const char sql[] = "DELETE FROM login_failure WHERE key = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	return store_stmt_exists(store, stmt, "clearing login failures") < 0 ? -1 : 0;
}

int store_login_failures_expire(struct store *store, int64_t window, int64_t now)
{
	static const char sql[] = "DELETE FROM login_failure WHERE ? - window_start >= ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_int64(stmt, 2, window);
	return store_stmt_exists(store, stmt, "expiring login failures") < 0 ? -1 : 0;
}
