/*
 * user.c — managing users, their addresses and seats, and the settings
 * table: what popgatectl's user, address and seat commands change.
 *
 * Owns: the setting table; the seat and password columns of user; adding
 * and deleting local users and addresses (account.c makes provider users).
 * Must never: change anything when it refuses (every check runs inside the
 * transaction that would write), delete a user that still has accounts or
 * mail, take away a primary address, or give out more seats than the limit.
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

/* The longest local part and address RFC 5321 allows, and a DNS label. */
#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_MAX 254
#define ADDRESS_LABEL_MAX 63

/* The columns store_user_read expects, in its order. */
#define USER_COLUMNS                                                                               \
	"u.id, u.name, u.origin, u.password_hash, u.has_seat, u.created_at,"                       \
	" u.seat_requested_at,"                                                                    \
	" (SELECT count(*) FROM address d WHERE d.user_id = u.id),"                                \
	" (SELECT count(*) FROM account a WHERE a.user_id = u.id),"                                \
	" (SELECT count(*) FROM message m WHERE m.owner_user_id = u.id OR m.account_id IN"         \
	"   (SELECT a.id FROM account a WHERE a.user_id = u.id))"

static void user_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void user_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The text of a database failure, whose details store_* logged already. */
static void user_err_db(char *err, size_t errlen)
{
	user_err(err, errlen, "database error (see the log)");
}

/* A column's text as a new string; NULL stays NULL. */
static char *user_column_strdup(sqlite3_stmt *stmt, int column)
{
	const char *text = (const char *)sqlite3_column_text(stmt, column);

	return text != NULL ? xstrdup(text) : NULL;
}

/* The cached statement for SQL with TEXT (NULL binds SQL NULL), or with
 * VALUE, bound to its first parameter. NULL on error (logged). */
static sqlite3_stmt *user_stmt_text(struct store *store, const char *sql, const char *text)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_text(stmt, 1, text, -1, SQLITE_STATIC);
	return stmt;
}

static sqlite3_stmt *user_stmt_int(struct store *store, const char *sql, int64_t value)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_int64(stmt, 1, value);
	return stmt;
}

/* store_stmt_step and store_stmt_done for a statement from user_stmt_*,
 * which is NULL when preparing it failed: -1 then. */
static int user_stmt_row(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	return stmt != NULL ? store_stmt_step(store, stmt, what) : -1;
}

static int user_stmt_done(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	return stmt != NULL ? store_stmt_done(store, stmt, what) : -1;
}

/* store_tx_begin and store_tx_commit, with the database-error text in ERR
 * when they fail. 0 or -1. */
static int user_tx_begin(struct store *store, bool *outer_r, char *err, size_t errlen)
{
	if (store_tx_begin(store, outer_r) == 0)
		return 0;
	user_err_db(err, errlen);
	return -1;
}

static int user_tx_commit(struct store *store, bool outer, char *err, size_t errlen)
{
	if (store_tx_commit(store, outer) == 0)
		return 0;
	user_err_db(err, errlen);
	return -1;
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

/*
 * The id and origin ("provider"/"local", into ORIGIN of ORIGINLEN, may be
 * NULL) of user NAME. 1 found; 0 none, with "no user NAME" in ERR; -1 on a
 * database error, with its text in ERR.
 */
static int user_id_by_name(struct store *store, const char *name, int64_t *id_r, char *origin,
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
static int user_text_by_key(struct store *store, const char *sql, const char *key, const char *what,
			    char *out, size_t outlen)
{
	sqlite3_stmt *stmt = user_stmt_text(store, sql, key);
	int result = user_stmt_row(store, stmt, what);

	if (result == 1)
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
	store_stmt_release(stmt);
	return result;
}

/* Checks the address part before the '@' (LEN bytes): a dot-atom. */
static bool address_local_valid(const char *local, size_t len)
{
	if (len == 0 || len > ADDRESS_LOCAL_MAX || local[0] == '.' || local[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];

		/* Printable ASCII without space, and none of the specials that would
		 * need quoting (RFC 5322 atext plus the dot). */
		if (c <= ' ' || c >= 0x7f || strchr("()<>[]\\,;:\"@", c) != NULL)
			return false;
		if (c == '.' && local[i + 1] == '.')
			return false;
	}
	return true;
}

/* Checks the domain: dot-separated labels of [A-Za-z0-9-], no '-' at a
 * label's ends, no empty label (so no leading, trailing or double dot). */
static bool address_domain_valid(const char *domain)
{
	const char *label = domain;

	if (*domain == '\0')
		return false;
	for (;;) {
		size_t len = strspn(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789-");

		if (len == 0 || len > ADDRESS_LABEL_MAX || label[0] == '-' || label[len - 1] == '-')
			return false;
		if (label[len] == '\0')
			return true;
		if (label[len] != '.')
			return false;
		label += len + 1;
	}
}

bool store_address_valid(const char *address)
{
	const char *at = strchr(address, '@');

	if (at == NULL || strchr(at + 1, '@') != NULL || strlen(address) > ADDRESS_MAX)
		return false;
	return address_local_valid(address, (size_t)(at - address)) && address_domain_valid(at + 1);
}

/*
 * Inserts ADDRESS for USER_ID after checking it is valid and free; inside the
 * caller's transaction. 0 done, -1 refused or failed (ERR set).
 */
static int address_insert(struct store *store, const char *address, int64_t user_id,
			  bool is_primary, char *err, size_t errlen)
{
	/* The name of the user ADDRESS is assigned to. */
	static const char owner_sql[] =
	    "SELECT u.name FROM address d JOIN user u ON u.id = d.user_id"
	    " WHERE d.address = ?";
	static const char sql[] =
	    "INSERT INTO address (address, user_id, is_primary) VALUES (?, ?, ?)";
	char owner[STORE_USER_NAME_MAX + 1];
	sqlite3_stmt *stmt;
	int found;

	if (!store_address_valid(address)) {
		user_err(err, errlen, "'%s' is not a valid address (local@domain)", address);
		return -1;
	}
	found = user_text_by_key(store, owner_sql, address, "looking up an address", owner,
				 sizeof(owner));
	if (found != 0) {
		if (found == 1)
			user_err(err, errlen, "address %s is already assigned to user %s", address,
				 owner);
		else
			user_err_db(err, errlen);
		return -1;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, address, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, user_id);
	sqlite3_bind_int(stmt, 3, is_primary ? 1 : 0);
	if (store_stmt_done(store, stmt, "adding an address") < 0)
		goto fail;
	return 0;
fail:
	user_err_db(err, errlen);
	return -1;
}

/* The seat limit: 0 (unlimited) when unset. 0 or -1 (also for a value that
 * is not a number, which only a hand edit could write). */
static int seat_limit_read(struct store *store, int64_t *limit_r)
{
	char *value = NULL;
	char *end;
	long long limit;
	int found = store_setting_get(store, STORE_SETTING_SEAT_LIMIT, &value);

	*limit_r = 0;
	if (found <= 0)
		return found;
	errno = 0;
	limit = strtoll(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || limit < 0) {
		log_error("store: setting %s is not a number: '%s'", STORE_SETTING_SEAT_LIMIT,
			  value);
		free(value);
		return -1;
	}
	free(value);
	*limit_r = limit;
	return 0;
}

/* Seats in use and users waiting. 0/-1. */
static int seat_counts(struct store *store, int64_t *used_r, int64_t *waiting_r)
{
	static const char sql[] =
	    "SELECT coalesce(sum(has_seat != 0), 0), coalesce(sum(has_seat = 0), 0) FROM user";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result = user_stmt_row(store, stmt, "counting seats");

	if (result == 1) {
		*used_r = sqlite3_column_int64(stmt, 0);
		*waiting_r = sqlite3_column_int64(stmt, 1);
	}
	store_stmt_release(stmt);
	return result == 1 ? 0 : -1;
}

/* Gives USER_ID a seat, whether or not one is free. 0 or -1. */
static int seat_give(struct store *store, int64_t user_id)
{
	static const char sql[] = "UPDATE user SET has_seat = 1 WHERE id = ?";

	return user_stmt_done(store, user_stmt_int(store, sql, user_id), "giving a seat");
}

/* Inside a transaction: gives USER_ID a seat if one is free. 1 seat, 0
 * waiting, -1 error or unknown user. */
static int seat_give_if_free(struct store *store, int64_t user_id)
{
	static const char sql[] = "SELECT has_seat FROM user WHERE id = ?";
	sqlite3_stmt *stmt = user_stmt_int(store, sql, user_id);
	int found = user_stmt_row(store, stmt, "reading a user's seat");
	int64_t limit;
	int64_t used;
	int64_t waiting;
	int has_seat = 0;

	if (found == 1)
		has_seat = sqlite3_column_int(stmt, 0);
	store_stmt_release(stmt);
	if (found == 0)
		log_error("store: giving a seat: no user %lld", (long long)user_id);
	if (found != 1)
		return -1;
	if (has_seat)
		return 1;
	if (seat_limit_read(store, &limit) < 0 || seat_counts(store, &used, &waiting) < 0)
		return -1;
	if (limit != 0 && used >= limit)
		return 0;
	return seat_give(store, user_id) < 0 ? -1 : 1;
}

int store_user_add_local(struct store *store, const char *name, const char *primary_address,
			 int64_t *id_r, char *err, size_t errlen)
{
	static const char exists_sql[] = "SELECT name FROM user WHERE name = ? COLLATE NOCASE";
	static const char insert_sql[] = "INSERT INTO user (name, origin, created_at, "
					 "seat_requested_at) VALUES (?, 'local', ?, ?)";
	char existing[STORE_USER_NAME_MAX + 1];
	sqlite3_stmt *stmt;
	int64_t user_id;
	int64_t now = util_now();
	int found;
	bool outer;

	if (!store_user_name_valid(name)) {
		user_err(err, errlen,
			 "'%s' is not a valid user name (1 to %d of the characters A-Z a-z 0-9 . _ "
			 "+ -)",
			 name, STORE_USER_NAME_MAX);
		return -1;
	}
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	found = user_text_by_key(store, exists_sql, name, "looking up a user", existing,
				 sizeof(existing));
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
	sqlite3_bind_int64(stmt, 2, now);
	sqlite3_bind_int64(stmt, 3, now);
	if (store_stmt_done(store, stmt, "creating a user") < 0)
		goto fail_db;
	user_id = sqlite3_last_insert_rowid(store->db);
	if (primary_address != NULL &&
	    address_insert(store, primary_address, user_id, true, err, errlen) < 0)
		goto fail;
	if (seat_give_if_free(store, user_id) < 0)
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

int store_address_list(struct store *store, const char *user_name, struct store_address **list_r,
		       size_t *count_r, char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT d.address, d.user_id, u.name, d.is_primary FROM address d"
	    " JOIN user u ON u.id = d.user_id WHERE ?1 IS NULL OR u.name = ?1 ORDER BY d.address";
	struct store_address *list = NULL;
	size_t count = 0;
	size_t capacity = 0;
	sqlite3_stmt *stmt;
	int64_t user_id;
	int rc;

	if (user_name != NULL &&
	    user_id_by_name(store, user_name, &user_id, NULL, 0, err, errlen) != 1)
		return -1;
	stmt = user_stmt_text(store, sql, user_name);
	if (stmt == NULL) {
		user_err_db(err, errlen);
		return -1;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_address *entry;

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		entry = &list[count++];
		entry->address = user_column_strdup(stmt, 0);
		entry->user_id = sqlite3_column_int64(stmt, 1);
		entry->user_name = user_column_strdup(stmt, 2);
		entry->is_primary = sqlite3_column_int(stmt, 3) != 0;
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing addresses");
		user_err_db(err, errlen);
		store_address_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_address_list_free(struct store_address **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].address);
		free((*list)[i].user_name);
	}
	free(*list);
	*list = NULL;
}

int store_address_add(struct store *store, const char *address, const char *user_name, char *err,
		      size_t errlen)
{
	int64_t user_id = 0;
	bool outer;

	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (user_id_by_name(store, user_name, &user_id, NULL, 0, err, errlen) != 1 ||
	    address_insert(store, address, user_id, false, err, errlen) < 0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	return user_tx_commit(store, outer, err, errlen);
}

int store_address_delete(struct store *store, const char *address, char *err, size_t errlen)
{
	static const char get_sql[] = "SELECT d.is_primary, u.name FROM address d"
				      " JOIN user u ON u.id = d.user_id WHERE d.address = ?";
	static const char delete_sql[] = "DELETE FROM address WHERE address = ?";
	sqlite3_stmt *stmt;
	int is_primary = 0;
	char owner[STORE_USER_NAME_MAX + 1] = "";
	int found;
	bool outer;

	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	stmt = user_stmt_text(store, get_sql, address);
	found = user_stmt_row(store, stmt, "looking up an address");
	if (found == 1) {
		is_primary = sqlite3_column_int(stmt, 0);
		snprintf(owner, sizeof(owner), "%s", (const char *)sqlite3_column_text(stmt, 1));
	}
	store_stmt_release(stmt);
	if (found < 0)
		goto fail_db;
	if (found == 0) {
		user_err(err, errlen, "address %s is not assigned to anyone", address);
		goto fail;
	}
	/* The primary address is how the user was made and is found (U2). */
	if (is_primary) {
		user_err(err, errlen, "address %s is the primary address of user %s", address,
			 owner);
		goto fail;
	}
	if (user_stmt_done(store, user_stmt_text(store, delete_sql, address),
			   "deleting an address") < 0)
		goto fail_db;
	return user_tx_commit(store, outer, err, errlen);
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_address_owner(struct store *store, const char *address, int64_t *user_id_r)
{
	static const char sql[] = "SELECT user_id FROM address WHERE address = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, address);
	int result = user_stmt_row(store, stmt, "looking up an address");

	if (result == 1)
		*user_id_r = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	return result;
}

int store_message_attribute(struct store *store, const char *id, int64_t owner_user_id,
			    const int64_t *recipient_user_ids, char *const *addresses, size_t n)
{
	static const char owner_sql[] = "UPDATE message SET owner_user_id = ? WHERE id = ?";
	static const char clear_sql[] = "DELETE FROM message_recipient WHERE message_id = ?";
	/* OR IGNORE: two addresses of one user attribute the message once. */
	static const char insert_sql[] = "INSERT OR IGNORE INTO message_recipient"
					 " (message_id, user_id, address) VALUES (?, ?, ?)";
	sqlite3_stmt *stmt;
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	stmt = store_stmt_prepare(store, owner_sql);
	if (stmt == NULL)
		goto fail;
	if (owner_user_id > 0)
		sqlite3_bind_int64(stmt, 1, owner_user_id);
	else
		sqlite3_bind_null(stmt, 1);
	sqlite3_bind_text(stmt, 2, id, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "recording a message's owner") < 0)
		goto fail;
	if (sqlite3_changes(store->db) == 0) {
		store_tx_rollback(store, outer);
		return 0;
	}
	if (user_stmt_done(store, user_stmt_text(store, clear_sql, id),
			   "clearing a message's recipients") < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		stmt = store_stmt_prepare(store, insert_sql);
		if (stmt == NULL)
			goto fail;
		sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, recipient_user_ids[i]);
		sqlite3_bind_text(stmt, 3, addresses[i], -1, SQLITE_STATIC);
		if (store_stmt_done(store, stmt, "recording a message's recipient") < 0)
			goto fail;
	}
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return 1;
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_seat_status(struct store *store, struct store_seat_status *status)
{
	memset(status, 0, sizeof(*status));
	if (seat_limit_read(store, &status->limit) < 0 ||
	    seat_counts(store, &status->used, &status->waiting) < 0)
		return -1;
	if (status->limit == 0)
		status->free = -1;
	else
		status->free = status->limit > status->used ? status->limit - status->used : 0;
	return 0;
}

int store_seat_set_limit(struct store *store, int64_t limit, char *err, size_t errlen)
{
	/* Oldest request first; the id orders users made in the same second. */
	static const char waiting_sql[] =
	    "SELECT id FROM user WHERE has_seat = 0 ORDER BY seat_requested_at, id LIMIT ?";
	int64_t *ids = NULL;
	size_t count = 0;
	int64_t used;
	int64_t waiting;
	sqlite3_stmt *stmt;
	char *value;
	int rc;
	bool outer;

	if (limit < 0) {
		user_err(err, errlen, "the seat limit must be 0 (unlimited) or more, not %lld",
			 (long long)limit);
		return -1;
	}
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (seat_counts(store, &used, &waiting) < 0)
		goto fail_db;
	/* Taking a seat away from someone is not this command's job. */
	if (limit != 0 && limit < used) {
		user_err(err, errlen, "%lld seats are in use; the limit cannot be %lld",
			 (long long)used, (long long)limit);
		goto fail;
	}
	value = xasprintf("%lld", (long long)limit);
	rc = store_setting_set(store, STORE_SETTING_SEAT_LIMIT, value);
	free(value);
	if (rc < 0)
		goto fail_db;
	/* A negative LIMIT is no limit to SQLite. */
	stmt = user_stmt_int(store, waiting_sql, limit == 0 ? -1 : limit - used);
	if (stmt == NULL)
		goto fail_db;
	ids = xmalloc((size_t)(waiting > 0 ? waiting : 1) * sizeof(*ids));
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW && count < (size_t)waiting)
		ids[count++] = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		store_log_error(store, "listing waiting users");
		goto fail_db;
	}
	for (size_t i = 0; i < count; i++) {
		if (seat_give(store, ids[i]) < 0)
			goto fail_db;
	}
	free(ids);
	if (user_tx_commit(store, outer, err, errlen) < 0)
		return -1;
	if (count > 0)
		log_info("store: seat limit %lld: %zu waiting user(s) got a seat", (long long)limit,
			 count);
	return (int)count;
fail_db:
	user_err_db(err, errlen);
fail:
	free(ids);
	store_tx_rollback(store, outer);
	return -1;
}

int store_seat_assign(struct store *store, int64_t user_id)
{
	/* A user made before this call existed (seat_requested_at 0) waits from
	 * its creation. */
	static const char order_sql[] = "UPDATE user SET seat_requested_at = created_at"
					" WHERE id = ? AND seat_requested_at = 0";
	int result;
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (user_stmt_done(store, user_stmt_int(store, order_sql, user_id),
			   "recording a seat request") < 0)
		goto fail;
	result = seat_give_if_free(store, user_id);
	if (result < 0)
		goto fail;
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return result;
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_setting_get(struct store *store, const char *key, char **value_r)
{
	static const char sql[] = "SELECT value FROM setting WHERE key = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, key);
	int result = user_stmt_row(store, stmt, "reading a setting");

	*value_r = result == 1 ? user_column_strdup(stmt, 0) : NULL;
	store_stmt_release(stmt);
	return result;
}

int store_setting_set(struct store *store, const char *key, const char *value)
{
	static const char sql[] = "INSERT INTO setting (key, value) VALUES (?, ?)"
				  " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, value, -1, SQLITE_STATIC);
	return store_stmt_done(store, stmt, "writing a setting");
}
