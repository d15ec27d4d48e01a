/*
 * lifecycle.c — the transition table of a message's states and the only
 * statement that changes a message's `state` (the INSERT of a new row takes
 * its first state from store_lifecycle_initial).
 *
 * Owns: the table below, and the UPDATE of message.state.
 * Must never: move a message that is not in the state the caller expects
 * (the WHERE clause checks it, so a late or repeated event is a no-op), or
 * make a move the table does not hold.
 */
#include <stdbool.h>
#include <stdlib.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/lifecycle.h"

/*
 * LIFECYCLE_MOVES[FROM][TO]: whether a message in FROM may move to TO. The
 * states still to come (quarantine, challenged, outbound, sent, bounced)
 * have their moves here already, so the modules that bring them only call
 * store_lifecycle_move.
 */
static const bool lifecycle_moves[MESSAGE_STATE_COUNT][MESSAGE_STATE_COUNT] = {
    [MESSAGE_PROCESSING] =
	{
	    [MESSAGE_DELIVERY] = true,	 /* the verdict: deliver or tag */
	    [MESSAGE_SUSPECT] = true,	 /* a worker died on it twice */
	    [MESSAGE_QUARANTINE] = true, /* the verdict: quarantine */
	    [MESSAGE_CHALLENGED] = true, /* the verdict: challenge the sender */
	    [MESSAGE_OUTBOUND] = true,	 /* submitted mail, filtered */
	},
    [MESSAGE_DELIVERY] = {[MESSAGE_DELIVERED] = true}, /* picked up, QUIT */
    [MESSAGE_SUSPECT] = {[MESSAGE_PROCESSING] = true}, /* released: filtered again */
    [MESSAGE_QUARANTINE] =
	{
	    [MESSAGE_DELIVERY] = true,	 /* released by its user or an administrator */
	    [MESSAGE_PROCESSING] = true, /* released to be filtered again */
	},
    [MESSAGE_CHALLENGED] =
	{
	    [MESSAGE_DELIVERY] = true,	 /* the sender answered */
	    [MESSAGE_QUARANTINE] = true, /* no answer in time */
	},
    [MESSAGE_OUTBOUND] =
	{
	    [MESSAGE_SENT] = true,    /* every recipient accepted it */
	    [MESSAGE_BOUNCED] = true, /* a recipient refused it for good */
	},
};

/* STATE's name, or "?" for a value out of the enum (a bug, logged as such). */
static const char *lifecycle_name(enum message_state state)
{
	if (state < 0 || state >= MESSAGE_STATE_COUNT)
		return "?";
	return store_message_state_name(state);
}

bool store_lifecycle_allowed(enum message_state from, enum message_state to)
{
	if (from < 0 || from >= MESSAGE_STATE_COUNT || to < 0 || to >= MESSAGE_STATE_COUNT)
		return false;
	return lifecycle_moves[from][to];
}

enum message_state store_lifecycle_initial(enum message_source source)
{
	(void)source;
	return MESSAGE_PROCESSING;
}

int store_lifecycle_move(struct store *store, const char *id, enum message_state from,
			 enum message_state to, const char *prepend)
{
	/* RETURNING names the account, so the state event can be found by
	 * account as well as by message id, like the message's other events. */
	static const char sql[] =
	    "UPDATE message SET state = ?, state_changed_at = ?, prepend = coalesce(?, prepend)"
	    " WHERE id = ? AND state = ?"
	    " RETURNING (SELECT name FROM account WHERE account.id = message.account_id)";
	sqlite3_stmt *stmt;
	char *account_name = NULL;
	int rc;

	if (!store_lifecycle_allowed(from, to)) {
		log_event(LOG_ERROR, "state_refused", NULL, id, "from=%s to=%s",
			  lifecycle_name(from), lifecycle_name(to));
		return -1;
	}
	/*
	 * One UPDATE that checks FROM and writes TO: SQLite makes a single
	 * statement atomic by itself when no transaction is open, and inside a
	 * caller's transaction a failed statement undoes only itself. So this
	 * works standalone and nested without a transaction of its own.
	 */
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, store_message_state_name(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, util_now());
	sqlite3_bind_text(stmt, 3, prepend, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, store_message_state_name(from), -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(stmt, 0);
		account_name = name != NULL ? xstrdup((const char *)name) : NULL;
		rc = sqlite3_step(stmt);
	}
	if (rc != SQLITE_DONE) {
		store_log_error(store, "moving a message");
		store_stmt_release(stmt);
		free(account_name);
		return -1;
	}
	store_stmt_release(stmt);
	if (sqlite3_changes(store->db) == 0)
		return 0;
	/* Logged when the statement ran: a caller's transaction rolled back
	 * later undoes the move, and that caller logs its own failure. */
	log_event(LOG_INFO, "state", account_name, id, "from=%s to=%s",
		  store_message_state_name(from), store_message_state_name(to));
	free(account_name);
	return 1;
}
