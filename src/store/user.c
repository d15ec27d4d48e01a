/*
 * user.c — users: listing, reading, creating (the one place a user row is
 * made, for popgatectl's 'user add' and for a first provider login alike),
 * deleting, and a local user's own password; and the helpers the store's
 * address, seat and setting files share (store/user_internal.h).
 *
 * Owns: the user table's rows and their password column. Must never: change
 * anything when it refuses (every check runs inside the transaction that
 * would write), or delete a user that still has accounts or mail.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/user.h"
#include "store/user_internal.h"

/* The columns store_user_read expects, in its order. */
#define USER_COLUMNS                                                                               \
	"u.id, u.name, u.origin, u.password_hash, u.has_seat, u.created_at,"                       \
	" u.seat_requested_at,"                                                                    \
	" (SELECT count(*) FROM address d WHERE d.user_id = u.id),"                                \
	" (SELECT count(*) FROM account a WHERE a.user_id = u.id),"                                \
	" (SELECT count(*) FROM message m WHERE m.owner_user_id = u.id OR m.account_id IN"         \
	"   (SELECT a.id FROM account a WHERE a.user_id = u.id))"

void user_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The text of a database failure, whose details store_* logged already. */
void user_err_db(char *err, size_t errlen)
{
	user_err(err, errlen, "database error (see the log)");
}

/* A column's text as a new string; NULL stays NULL. */
char *user_column_strdup(sqlite3_stmt *stmt, int column)
{
	const char *text = (const char *)sqlite3_column_text(stmt, column);

	return text != NULL ? xstrdup(text) : NULL;
}

/* The cached statement for SQL with TEXT (NULL binds SQL NULL), or with
 * VALUE, bound to its first parameter. NULL on error (logged). */
sqlite3_stmt *user_stmt_text(struct store *store, const char *sql, const char *text)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
	return stmt;
}

sqlite3_stmt *user_stmt_int(struct store *store, const char *sql, int64_t value)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_int64(stmt, 1, value);
	return stmt;
}

/* store_stmt_step and store_stmt_done for a statement from user_stmt_*,
 * which is NULL when preparing it failed: -1 then. */
int user_stmt_row(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	return stmt != NULL ? store_stmt_step(store, stmt, what) : -1;
}

int user_stmt_done(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	return stmt != NULL ? store_stmt_done(store, stmt, what) : -1;
}

/* store_tx_begin and store_tx_commit, with the database-error text in ERR
 * when they fail. 0 or -1. */
int user_tx_begin(struct store *store, bool *outer_r, char *err, size_t errlen)
{
	if (store_tx_begin(store, outer_r) == 0)
		return 0;
	user_err_db(err, errlen);
	return -1;
}

int user_tx_commit(struct store *store, bool outer, char *err, size_t errlen)
{
	if (store_tx_commit(store, outer) == 0)
		return 0;
	user_err_db(err, errlen);
	return -1;
}

/*
 * The id and origin ("provider"/"local", into ORIGIN of ORIGINLEN, may be
 * NULL) of user NAME. 1 found; 0 none, with "no user NAME" in ERR; -1 on a
 * database error, with its text in ERR.
 */
int user_id_by_name(struct store *store, const char *name, int64_t *id_r, char *origin,
			   size_t originlen, char *err, size_t errlen)
{
	static const char sql[] = "SELECT id, origin FROM user WHERE name = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, name);
	int result = user_stmt_row(store, stmt, "looking up a user");

	if (result == 1) {
		*id_r = sqlite3_column_int64(stmt, 0);
		if (origin != NULL)
			snprintf(origin, originlen, "%s",
				 (const char *)sqlite3_column_text(stmt, 1));
	}
	store_stmt_release(stmt);
	if (result == 0)
		user_err(err, errlen, "no user %s", name);
	else if (result < 0)
		user_err_db(err, errlen);
	return result;
}

/* Runs SQL with KEY bound to its parameter; copies the first column of its
 * row into OUT of OUTLEN. 1/0/-1 (logged as WHAT). */
int user_text_by_key(struct store *store, const char *sql, const char *key, const char *what,
			    char *out, size_t outlen)
{
	sqlite3_stmt *stmt = user_stmt_text(store, sql, key);
	int result = user_stmt_row(store, stmt, what);

	if (result == 1)
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
	store_stmt_release(stmt);
	return result;
}

static void store_user_read(sqlite3_stmt *stmt, struct store_user *user)
{
	user->id = sqlite3_column_int64(stmt, 0);
	user->name = user_column_strdup(stmt, 1);
	user->origin = user_column_strdup(stmt, 2);
	user->password_hash = user_column_strdup(stmt, 3);
	user->has_seat = sqlite3_column_int(stmt, 4) != 0;
	user->created_at = sqlite3_column_int64(stmt, 5);
	user->seat_requested_at = sqlite3_column_int64(stmt, 6);
	user->address_count = sqlite3_column_int64(stmt, 7);
	user->account_count = sqlite3_column_int64(stmt, 8);
	user->message_count = sqlite3_column_int64(stmt, 9);
}

void store_user_clear(struct store_user *user)
{
	free(user->name);
	free(user->origin);
	free(user->password_hash);
	memset(user, 0, sizeof(*user));
}

bool store_user_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > STORE_USER_NAME_MAX)
		return false;
	/* No '@' and no '/': a user name becomes part of addresses and paths. */
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-") ==
	       len;
}

int store_user_list(struct store *store, struct store_user **list_r, size_t *count_r)
{
	static const char sql[] = "SELECT " USER_COLUMNS " FROM user u ORDER BY u.name";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	struct store_user *list = NULL;
	size_t count = 0;
	size_t capacity = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		memset(&list[count], 0, sizeof(list[count]));
		store_user_read(stmt, &list[count++]);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing users");
		store_user_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_user_list_free(struct store_user **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_user_clear(&(*list)[i]);
	free(*list);
	*list = NULL;
}

int store_user_get(struct store *store, const char *name, struct store_user *user)
{
	static const char sql[] = "SELECT " USER_COLUMNS " FROM user u WHERE u.name = ?";
	sqlite3_stmt *stmt;
	int result;

	memset(user, 0, sizeof(*user));
	stmt = user_stmt_text(store, sql, name);
	result = user_stmt_row(store, stmt, "reading a user");
	if (result == 1)
		store_user_read(stmt, user);
	store_stmt_release(stmt);
	return result;
}

int store_user_create(struct store *store, const char *name, enum store_user_origin origin,
		      const char *primary_address, int64_t *id_r, char *err, size_t errlen)
{
	static const char exists_sql[] = "SELECT name FROM user WHERE name = ? COLLATE NOCASE";
	static const char insert_sql[] = "INSERT INTO user (name, origin, created_at, "
					 "seat_requested_at) VALUES (?, ?, ?, ?)";
	bool local = origin == STORE_USER_LOCAL;
	char existing[STORE_USER_NAME_MAX + 1];
	sqlite3_stmt *stmt;
	int64_t user_id;
	int64_t now = util_now();
	int found;
	bool outer;

	if (local && !store_user_name_valid(name)) {
		user_err(err, errlen,
			 "'%s' is not a valid user name (1 to %d of the characters A-Z a-z 0-9 . _ "
			 "+ -)",
			 name, STORE_USER_NAME_MAX);
		return -1;
	}
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	/* A provider user's name was chosen free of case-blind clashes already
	 * (store_login_user_name_new); only the exact one is refused then, by
	 * the table's UNIQUE. */
	found = local ? user_text_by_key(store, exists_sql, name, "looking up a user", existing,
					 sizeof(existing))
		      : 0;
	if (found < 0)
		goto fail_db;
	if (found == 1) {
		user_err(err, errlen, "user %s already exists", existing);
		goto fail;
	}
	stmt = store_stmt_prepare(store, insert_sql);
	if (stmt == NULL)
		goto fail_db;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, local ? "local" : "provider", -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, now);
	sqlite3_bind_int64(stmt, 4, now);
	if (store_stmt_done(store, stmt, "creating a user") < 0)
		goto fail_db;
	user_id = sqlite3_last_insert_rowid(store->db);
	if (primary_address != NULL &&
	    address_insert(store, primary_address, user_id, true, local, err, errlen) < 0)
		goto fail;
	/* U3: a new user takes a seat while one is free, else it waits for one. */
	if (store_seat_assign(store, user_id) < 0)
		goto fail_db;
	if (user_tx_commit(store, outer, err, errlen) < 0)
		return -1;
	if (id_r != NULL)
		*id_r = user_id;
	return 0;
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_user_add_local(struct store *store, const char *name, const char *primary_address,
			 int64_t *id_r, char *err, size_t errlen)
{
	return store_user_create(store, name, STORE_USER_LOCAL, primary_address, id_r, err, errlen);
}

int store_user_delete(struct store *store, const char *name, char *err, size_t errlen)
{
	static const char usage_sql[] =
	    "SELECT (SELECT count(*) FROM account WHERE user_id = ?1),"
	    " (SELECT count(*) FROM message WHERE owner_user_id = ?1 OR account_id IN"
	    "   (SELECT id FROM account WHERE user_id = ?1)"
	    "   OR id IN (SELECT message_id FROM message_recipient WHERE user_id = ?1))";
	static const char addresses_sql[] = "DELETE FROM address WHERE user_id = ?";
	static const char user_sql[] = "DELETE FROM user WHERE id = ?";
	sqlite3_stmt *stmt;
	int64_t user_id = 0;
	int64_t accounts = 0;
	int64_t messages = 0;
	int found;
	bool outer;

	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (user_id_by_name(store, name, &user_id, NULL, 0, err, errlen) != 1)
		goto fail;
	stmt = user_stmt_int(store, usage_sql, user_id);
	found = user_stmt_row(store, stmt, "counting a user's accounts and mail");
	if (found == 1) {
		accounts = sqlite3_column_int64(stmt, 0);
		messages = sqlite3_column_int64(stmt, 1);
	}
	store_stmt_release(stmt);
	if (found != 1)
		goto fail_db;
	/* Its mail would lose its owner, and an account would make it again. */
	if (accounts > 0 || messages > 0) {
		user_err(err, errlen,
			 "user %s still has %lld provider account(s) and %lld message(s); "
			 "delete those first",
			 name, (long long)accounts, (long long)messages);
		goto fail;
	}
	if (user_stmt_done(store, user_stmt_int(store, addresses_sql, user_id),
			   "deleting a user's addresses") < 0 ||
	    user_stmt_done(store, user_stmt_int(store, user_sql, user_id), "deleting a user") < 0)
		goto fail_db;
	return user_tx_commit(store, outer, err, errlen);
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_user_set_password(struct store *store, const char *name, const char *password_hash,
			    char *err, size_t errlen)
{
	static const char sql[] = "UPDATE user SET password_hash = ? WHERE id = ?";
	char origin[16] = "";
	sqlite3_stmt *stmt;
	int64_t user_id = 0;
	bool outer;

	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (user_id_by_name(store, name, &user_id, origin, sizeof(origin), err, errlen) != 1)
		goto fail;
	if (strcmp(origin, "local") != 0) {
		user_err(err, errlen,
			 "user %s was made by a provider login and logs in with its provider "
			 "password",
			 name);
		goto fail;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		goto fail_db;
	sqlite3_bind_text(stmt, 1, password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, user_id);
	if (store_stmt_done(store, stmt, "setting a user's password") < 0)
		goto fail_db;
	return user_tx_commit(store, outer, err, errlen);
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

