/*
 * address.c — the addresses users own (U4, U5): listing, assigning, taking
 * away, finding an address's owner, and recording whom a message belongs to.
 *
 * Owns: the address and message_recipient tables' rows and message's owner
 * column. Must never: change anything when it refuses, take away a user's
 * primary address, or give one address to two users.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/address.h"
#include "core/util.h"
#include "store/address.h"
#include "store/user.h"
#include "store/user_internal.h"

bool store_address_valid(const char *address)
{
	return address_valid(address);
}

/*
 * Inserts ADDRESS for USER_ID after checking it is valid and free; inside the
 * caller's transaction. 0 done, -1 refused or failed (ERR set).
 */
int address_insert(struct store *store, const char *address, int64_t user_id, bool is_primary,
		   bool check_shape, char *err, size_t errlen)
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

	if (check_shape && !address_valid(address)) {
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
	    address_insert(store, address, user_id, false, true, err, errlen) < 0) {
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

int store_address_owner_name(struct store *store, const char *address, char **name_r)
{
	static const char sql[] = "SELECT user.name FROM address JOIN user ON user.id = "
				  "address.user_id WHERE address.address = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, address);
	int result = user_stmt_row(store, stmt, "looking up an address's user");

	if (result == 1)
		*name_r = xstrdup((const char *)sqlite3_column_text(stmt, 0));
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

