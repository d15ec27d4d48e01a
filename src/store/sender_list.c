/*
 * sender_list.c — the sender allow and block lists (see store/sender_list.h):
 * checking patterns, and the rows of the sender_list table.
 *
 * Owns: the sender_list rows. Must never: store a pattern
 * sender_list_pattern_canonical refuses (the senders filter matches them
 * with fnmatch and puts them into reasons and headers).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/sender_list.h"
#include "store/user_internal.h"

/* The characters of a pattern: those of an address's local part and domain
 * that are safe in a header and a reason, and '*'. Not '?', '[' or '\\',
 * which fnmatch would take for more than themselves. */
#define SENDER_PATTERN_CHARS "abcdefghijklmnopqrstuvwxyz0123456789.-_+=!#$%&'/^`{|}~*@"

const char *sender_list_kind_name(enum sender_list_kind kind)
{
	return kind == SENDER_LIST_BLOCK ? "block" : "allow";
}

int sender_list_kind_parse(const char *name)
{
	if (strcmp(name, "allow") == 0)
		return SENDER_LIST_ALLOW;
	if (strcmp(name, "block") == 0)
		return SENDER_LIST_BLOCK;
	return -1;
}

int sender_list_pattern_canonical(const char *pattern, char *out, char *err, size_t errlen)
{
	const char *text = pattern[0] == '@' ? pattern + 1 : pattern;
	size_t len = strlen(text);
	const char *at;

	if (len == 0 || len > SENDER_PATTERN_MAX) {
		user_err(err, errlen, "a sender pattern is 1 to %d characters", SENDER_PATTERN_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)text[i]);
	out[len] = '\0';
	if (strspn(out, SENDER_PATTERN_CHARS) != len) {
		user_err(err, errlen,
			 "a sender pattern is an address (joe@example.com), a domain (example.com) "
			 "or a wildcard pattern with '*' (*.example.com, *@*.example.net); "
			 "'%s' has a character none of them may have",
			 pattern);
		return -1;
	}
	at = strchr(out, '@');
	/* "@domain" is a domain; anything else with an '@' is one address. */
	if (at != NULL &&
	    (text != pattern || strchr(at + 1, '@') != NULL || at[1] == '\0' || at == out)) {
		user_err(err, errlen,
			 "'%s' is not an address pattern: one '@' with text on both sides",
			 pattern);
		return -1;
	}
	return 0;
}

/* The id of USER into *USER_ID_R (0 for NULL: the global lists). 0 or -1
 * with ERR. */
static int sender_list_owner(struct store *store, const char *user, int64_t *user_id_r, char *err,
			     size_t errlen)
{
	*user_id_r = 0;
	if (user == NULL)
		return 0;
	return user_id_by_name(store, user, user_id_r, NULL, 0, err, errlen) == 1 ? 0 : -1;
}

/* Binds USER_ID (0: SQL NULL) to parameter INDEX of STMT. */
static void sender_list_bind_owner(sqlite3_stmt *stmt, int index, int64_t user_id)
{
	if (user_id == 0)
		sqlite3_bind_null(stmt, index);
	else
		sqlite3_bind_int64(stmt, index, user_id);
}

int store_sender_list_add(struct store *store, const char *user, enum sender_list_kind kind,
			  const char *pattern, char *err, size_t errlen)
{
	static const char exists_sql[] =
	    "SELECT kind FROM sender_list"
	    " WHERE coalesce(user_id, 0) = coalesce(?, 0) AND pattern = ?";
	static const char insert_sql[] =
	    "INSERT INTO sender_list (user_id, kind, pattern, created_at) VALUES (?, ?, ?, ?)";
	char canonical[SENDER_PATTERN_MAX + 1];
	sqlite3_stmt *stmt;
	int64_t user_id;
	bool outer;
	int found;

	if (sender_list_pattern_canonical(pattern, canonical, err, errlen) < 0)
		return -1;
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (sender_list_owner(store, user, &user_id, err, errlen) < 0)
		goto fail;
	stmt = store_stmt_prepare(store, exists_sql);
	if (stmt == NULL)
		goto fail_db;
	sender_list_bind_owner(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, canonical, -1, SQLITE_STATIC);
	found = store_stmt_step(store, stmt, "looking up a sender list entry");
	if (found == 1) {
		user_err(err, errlen, "%s is on the %s %s list already", canonical,
			 user != NULL ? user : "global",
			 (const char *)sqlite3_column_text(stmt, 0));
		store_stmt_release(stmt);
		goto fail;
	}
	store_stmt_release(stmt);
	if (found < 0)
		goto fail_db;
	stmt = store_stmt_prepare(store, insert_sql);
	if (stmt == NULL)
		goto fail_db;
	sender_list_bind_owner(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, sender_list_kind_name(kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, canonical, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, util_now());
	if (store_stmt_done(store, stmt, "adding a sender list entry") < 0)
		goto fail_db;
	return user_tx_commit(store, outer, err, errlen);
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_sender_list_del(struct store *store, const char *user, const char *pattern, char *err,
			  size_t errlen)
{
	static const char sql[] = "DELETE FROM sender_list"
				  " WHERE coalesce(user_id, 0) = coalesce(?, 0) AND pattern = ?";
	char canonical[SENDER_PATTERN_MAX + 1];
	sqlite3_stmt *stmt;
	int64_t user_id;
	bool outer;

	if (sender_list_pattern_canonical(pattern, canonical, err, errlen) < 0)
		return -1;
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	if (sender_list_owner(store, user, &user_id, err, errlen) < 0)
		goto fail;
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		goto fail_db;
	sender_list_bind_owner(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, canonical, -1, SQLITE_STATIC);
	if (store_stmt_done(store, stmt, "deleting a sender list entry") < 0)
		goto fail_db;
	if (sqlite3_changes(store->db) == 0) {
		user_err(err, errlen, "%s is not on the %s lists", canonical,
			 user != NULL ? user : "global");
		goto fail;
	}
	return user_tx_commit(store, outer, err, errlen);
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

/* Reads the rows of STMT (user_id, user name, kind, pattern, created_at). */
static int sender_list_read(struct store *store, sqlite3_stmt *stmt,
			    struct sender_list_entry **list_r, size_t *count_r)
{
	struct sender_list_entry *list = NULL;
	size_t count = 0, capacity = 0;
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(stmt, 2);
		struct sender_list_entry *entry;

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		entry = &list[count++];
		entry->user_id = sqlite3_column_int64(stmt, 0);
		entry->user_name = user_column_strdup(stmt, 1);
		entry->kind = kind != NULL && strcmp(kind, "block") == 0 ? SENDER_LIST_BLOCK
									 : SENDER_LIST_ALLOW;
		entry->pattern = user_column_strdup(stmt, 3);
		if (entry->pattern == NULL)
			entry->pattern = xstrdup("");
		entry->created_at = sqlite3_column_int64(stmt, 4);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "reading the sender lists");
		store_sender_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

#define SENDER_LIST_SELECT                                                                         \
	"SELECT coalesce(s.user_id, 0), u.name, s.kind, s.pattern, s.created_at"                   \
	" FROM sender_list s LEFT JOIN user u ON u.id = s.user_id"

int store_sender_list_list(struct store *store, const char *user, struct sender_list_entry **list_r,
			   size_t *count_r)
{
	static const char sql[] = SENDER_LIST_SELECT
	    " WHERE ?1 IS NULL OR u.name = ?1 ORDER BY s.user_id IS NOT NULL, u.name, s.pattern";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, user);

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	return sender_list_read(store, stmt, list_r, count_r);
}

int store_sender_list_for_user(struct store *store, int64_t user_id,
			       struct sender_list_entry **list_r, size_t *count_r)
{
	static const char sql[] =
	    SENDER_LIST_SELECT " WHERE s.user_id IS NULL OR s.user_id = ?1 ORDER BY s.id";
	sqlite3_stmt *stmt = user_stmt_int(store, sql, user_id);

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	return sender_list_read(store, stmt, list_r, count_r);
}

void store_sender_list_free(struct sender_list_entry **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].user_name);
		free((*list)[i].pattern);
	}
	xfree(list);
}
