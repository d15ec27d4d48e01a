/*
 * account.c — provider accounts (LOGIN@HOST), the users and addresses made
 * for them, and the UIDLs popgate has stored from each provider mailbox.
 *
 * Owns: the user, address, account and provider_uidl tables.
 * Must never: see or store a plain password (only the argon2id hash and the
 * sealed secret pass through here), or leave a user without its primary
 * address or an account without its user (all are written in one unit).
 */
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/account.h"
#include "store/user.h"

/* The columns store_account_read expects, in its order. */
#define ACCOUNT_COLUMNS                                                                            \
	"a.id, a.name, a.login, a.host, a.user_id, u.name, a.password_hash,"                       \
	" a.password_secret, a.last_fetch_at, a.last_error, a.fetch_failures,"                     \
	" a.next_fetch_at"
#define ACCOUNT_FROM " FROM account a JOIN user u ON u.id = a.user_id"

/* A column's text as a new string; NULL stays NULL. */
static char *store_column_strdup(sqlite3_stmt *stmt, int column)
{
	const char *text = (const char *)sqlite3_column_text(stmt, column);

	return text != NULL ? xstrdup(text) : NULL;
}

/* Fills ACCOUNT from the current row of STMT (ACCOUNT_COLUMNS). */
static void store_account_read(sqlite3_stmt *stmt, struct store_account *account)
{
	const void *secret;
	int secret_len;

	account->id = sqlite3_column_int64(stmt, 0);
	account->name = store_column_strdup(stmt, 1);
	account->login = store_column_strdup(stmt, 2);
	account->host = store_column_strdup(stmt, 3);
	account->user_id = sqlite3_column_int64(stmt, 4);
	account->user_name = store_column_strdup(stmt, 5);
	account->password_hash = store_column_strdup(stmt, 6);
	/* column_blob first, then column_bytes: the documented safe order. */
	secret = sqlite3_column_blob(stmt, 7);
	secret_len = sqlite3_column_bytes(stmt, 7);
	account->secret = xmalloc((size_t)secret_len);
	if (secret_len > 0)
		memcpy(account->secret, secret, (size_t)secret_len);
	account->secret_len = (size_t)secret_len;
	account->last_fetch_at = sqlite3_column_int64(stmt, 8);
	account->last_error = store_column_strdup(stmt, 9);
	account->fetch_failures = sqlite3_column_int(stmt, 10);
	account->next_fetch_at = sqlite3_column_int64(stmt, 11);
}

/*
 * Clears ACCOUNT, then runs a one-row account query whose first parameter is
 * already bound, filling ACCOUNT from its row. STMT is NULL when preparing it
 * failed. 1/0/-1.
 */
static int store_account_fetch_one(struct store *store, sqlite3_stmt *stmt,
				   struct store_account *account)
{
	int result;

	memset(account, 0, sizeof(*account));
	if (stmt == NULL)
		return -1;
	result = store_stmt_step(store, stmt, "reading an account");
	if (result == 1)
		store_account_read(stmt, account);
	store_stmt_release(stmt);
	return result;
}

/*
 * The id of user NAME and, when ACCOUNT_NAME_R is not NULL, the name of its
 * first account (NULL for none) as a new string. 1/0/-1.
 */
static int store_user_lookup(struct store *store, const char *name, int64_t *user_id_r,
			     char **account_name_r)
{
	static const char sql[] =
	    "SELECT u.id,"
	    " (SELECT a.name FROM account a WHERE a.user_id = u.id ORDER BY a.id LIMIT 1)"
	    " FROM user u WHERE u.name = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result;

	if (account_name_r != NULL)
		*account_name_r = NULL;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "looking up a user");
	if (result == 1) {
		*user_id_r = sqlite3_column_int64(stmt, 0);
		if (account_name_r != NULL)
			*account_name_r = store_column_strdup(stmt, 1);
	}
	store_stmt_release(stmt);
	return result;
}

/* The id of user NAME, creating it with its primary address (through
 * store_user_create, the one way a user is made). 0 or -1. */
static int store_user_get_or_create(struct store *store, const char *name,
				    const char *primary_address, int64_t *user_id_r)
{
	char err[256];
	int found = store_user_lookup(store, name, user_id_r, NULL);

	if (found != 0)
		return found < 0 ? -1 : 0;
	if (store_user_create(store, name, STORE_USER_PROVIDER, primary_address, user_id_r, err,
			      sizeof(err)) < 0) {
		log_error("store: creating user %s: %s", name, err);
		return -1;
	}
	return 0;
}

void store_account_clear(struct store_account *account)
{
	free(account->name);
	free(account->login);
	free(account->host);
	free(account->user_name);
	free(account->password_hash);
	free(account->secret);
	free(account->last_error);
	memset(account, 0, sizeof(*account));
}

int store_account_get(struct store *store, const char *name, struct store_account *account)
{
	static const char sql[] = "SELECT " ACCOUNT_COLUMNS ACCOUNT_FROM " WHERE a.name = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	return store_account_fetch_one(store, stmt, account);
}

int store_account_get_by_id(struct store *store, int64_t id, struct store_account *account)
{
	static const char sql[] = "SELECT " ACCOUNT_COLUMNS ACCOUNT_FROM " WHERE a.id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL)
		sqlite3_bind_int64(stmt, 1, id);
	return store_account_fetch_one(store, stmt, account);
}

int store_account_create(struct store *store, struct store_account *account, const char *user_name,
			 const char *primary_address)
{
	static const char sql[] =
	    "INSERT INTO account (name, login, host, user_id, password_hash, password_secret,"
	    " created_at, last_fetch_at, last_error, fetch_failures, next_fetch_at)"
	    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *stmt;
	int64_t user_id;
	int64_t account_id;
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (store_user_get_or_create(store, user_name, primary_address, &user_id) < 0)
		goto fail;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, account->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, account->login, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, account->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, user_id);
	sqlite3_bind_text(stmt, 5, account->password_hash, -1, SQLITE_STATIC);
	/* A NULL secret binds as SQL NULL, which the NOT NULL column refuses. */
	sqlite3_bind_blob(stmt, 6, account->secret, (int)account->secret_len, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 7, util_now());
	sqlite3_bind_int64(stmt, 8, account->last_fetch_at);
	sqlite3_bind_text(stmt, 9, account->last_error, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 10, account->fetch_failures);
	sqlite3_bind_int64(stmt, 11, account->next_fetch_at);
	if (store_stmt_done(store, stmt, "creating an account") < 0)
		goto fail;
	account_id = sqlite3_last_insert_rowid(store->db);
	if (store_tx_commit(store, outer) < 0)
		return -1;
	account->id = account_id;
	account->user_id = user_id;
	free(account->user_name);
	account->user_name = xstrdup(user_name);
	return 0;
fail:
	store_tx_rollback(store, outer);
	return -1;
}

/* Runs STMT, a bound UPDATE of account ACCOUNT_ID, and releases it. 0, or
 * -1 when it fails or there is no such account (logged as WHAT). */
static int store_account_update_done(struct store *store, sqlite3_stmt *stmt, const char *what,
				     int64_t account_id)
{
	if (store_stmt_done(store, stmt, what) < 0)
		return -1;
	if (sqlite3_changes(store->db) == 0) {
		log_error("store: %s: no account %lld", what, (long long)account_id);
		return -1;
	}
	return 0;
}

int store_account_update_credentials(struct store *store, int64_t account_id,
				     const char *password_hash, const unsigned char *secret,
				     size_t secret_len)
{
	static const char sql[] =
	    "UPDATE account SET password_hash = ?, password_secret = ?, fetch_failures = 0,"
	    " next_fetch_at = 0 WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 2, secret, (int)secret_len, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, account_id);
	return store_account_update_done(store, stmt, "updating credentials", account_id);
}

int store_account_fetch_begin(struct store *store, int64_t account_id)
{
	/* Written only when it changes: most fetches start after a clean one. */
	static const char sql[] =
	    "UPDATE account SET fetch_unfinished = 1 WHERE id = ? AND fetch_unfinished = 0";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	return store_stmt_done(store, stmt, "marking a fetch as started");
}

int store_account_record_fetch(struct store *store, int64_t account_id, const char *error,
			       int fetch_failures, int64_t next_fetch_at)
{
	/* A failed fetch keeps the account marked unfinished: its stored
	 * messages may still be at the provider, and a restart must fetch it. */
	static const char sql[] = "UPDATE account SET last_fetch_at = ?1, last_error = ?2,"
				  " fetch_failures = ?3, next_fetch_at = ?4,"
				  " fetch_unfinished = CASE WHEN ?3 = 0 THEN 0"
				  " ELSE fetch_unfinished END WHERE id = ?5";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, util_now());
	sqlite3_bind_text(stmt, 2, error, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 3, error == NULL ? 0 : fetch_failures);
	sqlite3_bind_int64(stmt, 4, next_fetch_at);
	sqlite3_bind_int64(stmt, 5, account_id);
	return store_account_update_done(store, stmt, "recording a fetch", account_id);
}

int store_user_exists(struct store *store, const char *name, char **account_name_r)
{
	int64_t user_id;

	return store_user_lookup(store, name, &user_id, account_name_r);
}

/* The ids SQL (one column, no parameter) returns, *ids_r allocated. 0 or -1. */
static int store_account_ids(struct store *store, const char *sql, int64_t **ids_r,
			     size_t *count_r)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int64_t *ids = NULL;
	size_t count = 0;
	size_t capacity = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		ids = store_list_grow(ids, count, &capacity, sizeof(*ids));
		ids[count++] = sqlite3_column_int64(stmt, 0);
	}
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing accounts");
		store_stmt_release(stmt);
		free(ids);
		return -1;
	}
	store_stmt_release(stmt);
	*ids_r = ids;
	*count_r = count;
	return 0;
}

int store_account_list_ids(struct store *store, int64_t **ids_r, size_t *count_r)
{
	return store_account_ids(store, "SELECT id FROM account ORDER BY id", ids_r, count_r);
}

int store_account_list_ids_by_fetch(struct store *store, bool unfinished, int64_t **ids_r,
				    size_t *count_r)
{
	return store_account_ids(store,
				 unfinished ? "SELECT id FROM account WHERE fetch_unfinished != 0"
					      " ORDER BY id"
					    : "SELECT id FROM account WHERE fetch_unfinished = 0"
					      " ORDER BY id",
				 ids_r, count_r);
}

/* The cached statement for SQL with ACCOUNT_ID and UIDL bound to its two
 * parameters. NULL on error (logged). */
static sqlite3_stmt *store_uidl_stmt(struct store *store, const char *sql, int64_t account_id,
				     const char *uidl)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt != NULL) {
		sqlite3_bind_int64(stmt, 1, account_id);
		sqlite3_bind_text(stmt, 2, uidl, -1, SQLITE_STATIC);
	}
	return stmt;
}

int store_uidl_known(struct store *store, int64_t account_id, const char *uidl)
{
	static const char sql[] = "SELECT 1 FROM provider_uidl WHERE account_id = ? AND uidl = ?";
	sqlite3_stmt *stmt = store_uidl_stmt(store, sql, account_id, uidl);

	return stmt != NULL ? store_stmt_exists(store, stmt, "looking up a UIDL") : -1;
}

int store_uidl_lookup(struct store *store, int64_t account_id, const char *uidl,
		      int64_t *provider_size)
{
	static const char sql[] =
	    "SELECT provider_size FROM provider_uidl WHERE account_id = ? AND uidl = ?";
	sqlite3_stmt *stmt = store_uidl_stmt(store, sql, account_id, uidl);
	int rc;

	*provider_size = 0;
	if (stmt == NULL)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*provider_size = sqlite3_column_int64(stmt, 0);
		store_stmt_release(stmt);
		return 1;
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "looking up a UIDL");
		return -1;
	}
	return 0;
}

int store_uidl_set_size(struct store *store, int64_t account_id, const char *uidl,
			int64_t provider_size)
{
	static const char sql[] =
	    "UPDATE provider_uidl SET provider_size = ?3 WHERE account_id = ?1 AND uidl = ?2";
	sqlite3_stmt *stmt = store_uidl_stmt(store, sql, account_id, uidl);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 3, provider_size);
	return store_stmt_done(store, stmt, "recording a UIDL's size");
}

int store_uidl_forget(struct store *store, int64_t account_id, const char *uidl)
{
	static const char sql[] = "DELETE FROM provider_uidl WHERE account_id = ? AND uidl = ?";
	sqlite3_stmt *stmt = store_uidl_stmt(store, sql, account_id, uidl);

	return stmt != NULL ? store_stmt_done(store, stmt, "forgetting a UIDL") : -1;
}

int store_uidl_prune(struct store *store, int64_t account_id, char *const *present,
		     size_t present_count)
{
	/*
	 * The provider's list goes into an in-memory temp table with a primary
	 * key, so the NOT IN below is an index probe per stored UIDL: lists of
	 * tens of thousands stay O(n log n).
	 */
	static const char create_sql[] =
	    "CREATE TEMP TABLE IF NOT EXISTS uidl_present (uidl TEXT PRIMARY KEY) WITHOUT ROWID";
	static const char clear_sql[] = "DELETE FROM temp.uidl_present";
	static const char insert_sql[] =
	    "INSERT OR IGNORE INTO temp.uidl_present (uidl) VALUES (?)";
	static const char prune_sql[] = "DELETE FROM provider_uidl WHERE account_id = ?"
					" AND uidl NOT IN (SELECT uidl FROM temp.uidl_present)";
	sqlite3_stmt *stmt;
	bool outer;

	/* The DDL is not cached: a statement prepared before the table existed
	 * would be re-prepared anyway, and this runs once per fetch. */
	if (sqlite3_exec(store->db, create_sql, NULL, NULL, NULL) != SQLITE_OK) {
		store_log_error(store, "making the UIDL list table");
		return -1;
	}
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	stmt = store_stmt_prepare(store, clear_sql);
	if (stmt == NULL || store_stmt_done(store, stmt, "clearing the UIDL list") < 0)
		goto fail;
	for (size_t i = 0; i < present_count; i++) {
		stmt = store_stmt_prepare(store, insert_sql);
		if (stmt == NULL)
			goto fail;
		sqlite3_bind_text(stmt, 1, present[i], -1, SQLITE_STATIC);
		if (store_stmt_done(store, stmt, "listing present UIDLs") < 0)
			goto fail;
	}
	stmt = store_stmt_prepare(store, prune_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_int64(stmt, 1, account_id);
	if (store_stmt_done(store, stmt, "pruning UIDLs") < 0)
		goto fail;
	/* Emptied again so the list does not sit in memory until the next fetch. */
	stmt = store_stmt_prepare(store, clear_sql);
	if (stmt == NULL || store_stmt_done(store, stmt, "clearing the UIDL list") < 0)
		goto fail;
	return store_tx_commit(store, outer);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

void store_account_deletion_clear(struct store_account_deletion *deletion)
{
	for (size_t i = 0; i < deletion->message_count; i++)
		free(deletion->message_ids[i]);
	free(deletion->message_ids);
	free(deletion->user_name);
	memset(deletion, 0, sizeof(*deletion));
}

/* Runs STMT (ID bound to ?1) to its end, releasing it. 0, or -1 (logged). */
static int store_account_delete_step(struct store *store, const char *sql, int64_t id,
				     const char *what)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	return store_stmt_done(store, stmt, what);
}

/* Reads the ids of ACCOUNT_ID's messages into DELETION and counts those not
 * yet picked up. 0 or -1. */
static int store_account_delete_list(struct store *store, int64_t account_id,
				     struct store_account_deletion *deletion)
{
	static const char sql[] = "SELECT id, state IN ('processing', 'delivery') FROM message"
				  " WHERE account_id = ? ORDER BY seq";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	size_t capacity = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, account_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		deletion->message_ids = store_list_grow(deletion->message_ids,
							deletion->message_count, &capacity,
							sizeof(*deletion->message_ids));
		deletion->message_ids[deletion->message_count++] = store_column_strdup(stmt, 0);
		deletion->pending += sqlite3_column_int(stmt, 1);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing an account's messages");
		return -1;
	}
	return 0;
}

int store_account_delete(struct store *store, const char *name, bool force,
			 struct store_account_deletion *deletion)
{
	static const char find_sql[] =
	    "SELECT a.id, a.user_id, u.name, u.origin = 'provider' AND NOT EXISTS"
	    "  (SELECT 1 FROM account o WHERE o.user_id = a.user_id AND o.id != a.id)"
	    " FROM account a JOIN user u ON u.id = a.user_id WHERE a.name = ?";
	/* Other accounts' mail attributed to the user keeps it (U4, U5). */
	static const char user_used_sql[] =
	    "SELECT EXISTS (SELECT 1 FROM message WHERE owner_user_id = ?1)"
	    " OR EXISTS (SELECT 1 FROM message_recipient WHERE user_id = ?1)";
	sqlite3_stmt *stmt;
	int64_t account_id = 0, user_id = 0;
	bool user_deletable = false;
	bool outer;
	int found;

	memset(deletion, 0, sizeof(*deletion));
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	stmt = store_stmt_prepare(store, find_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	found = store_stmt_step(store, stmt, "looking up an account");
	if (found == 1) {
		account_id = sqlite3_column_int64(stmt, 0);
		user_id = sqlite3_column_int64(stmt, 1);
		deletion->user_name = store_column_strdup(stmt, 2);
		user_deletable = sqlite3_column_int(stmt, 3) != 0;
	}
	store_stmt_release(stmt);
	if (found < 0)
		goto fail;
	if (found == 0) {
		store_tx_rollback(store, outer);
		return 0;
	}
	if (store_account_delete_list(store, account_id, deletion) < 0)
		goto fail;
	if (deletion->pending > 0 && !force) {
		store_tx_rollback(store, outer);
		return -2;
	}
	/* message_recipient rows go with their messages (ON DELETE CASCADE). */
	if (store_account_delete_step(store, "DELETE FROM message WHERE account_id = ?",
				      account_id, "deleting an account's messages") < 0)
		goto fail;
	if (store_account_delete_step(store, "DELETE FROM provider_uidl WHERE account_id = ?",
				      account_id, "deleting an account's UIDLs") < 0)
		goto fail;
	deletion->uidl_count = sqlite3_changes(store->db);
	if (store_account_delete_step(store, "DELETE FROM account WHERE id = ?", account_id,
				      "deleting an account") < 0)
		goto fail;
	if (user_deletable) {
		stmt = store_stmt_prepare(store, user_used_sql);
		if (stmt == NULL)
			goto fail;
		sqlite3_bind_int64(stmt, 1, user_id);
		found = store_stmt_step(store, stmt, "looking for a user's mail");
		if (found == 1)
			user_deletable = sqlite3_column_int(stmt, 0) == 0;
		store_stmt_release(stmt);
		if (found != 1)
			goto fail;
	}
	if (user_deletable) {
		if (store_account_delete_step(store, "DELETE FROM address WHERE user_id = ?",
					      user_id, "deleting a user's addresses") < 0 ||
		    store_account_delete_step(store, "DELETE FROM user WHERE id = ?", user_id,
					      "deleting a user") < 0)
			goto fail;
		deletion->user_deleted = true;
	}
	if (store_tx_commit(store, outer) < 0)
		goto fail_committed;
	return 1;
fail:
	store_tx_rollback(store, outer);
fail_committed:
	deletion->user_deleted = false;
	return -1;
}
