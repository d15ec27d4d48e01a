/*
 * db.h — the store's SQLite database (DATA/popgate.db, WAL): opening it,
 * applying the numbered schema migrations, and transactions.
 *
 * SQLite is the truth about every message, account and user. The store is
 * used from the main process only; workers never open it.
 */
#ifndef POPGATE_DB_H
#define POPGATE_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <sqlite3.h>

struct store_cached_stmt;

struct store {
	sqlite3 *db;
	char *data_dir; /* owned */
	struct store_cached_stmt *stmts; /* prepared statements, see store_stmt_prepare */
	size_t stmt_count;
};

/*
 * Opens (creating) DATA_DIR/popgate.db, sets WAL, synchronous=FULL, foreign
 * keys and a busy timeout (so popgatectl may work beside the daemon), then
 * applies missing migrations in one transaction each. Returns the store (free
 * with store_close) or NULL with a message in ERR.
 */
struct store *store_open(const char *data_dir, char *err, size_t errlen);

/* Closes the database and frees *STORE; NULL is fine; sets *STORE to NULL. */
void store_close(struct store **store);

/* The schema version the database is at, after store_open. */
int store_schema_version(struct store *store);

/*
 * BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0 or -1 (logged). A COMMIT that fails
 * rolls the transaction back, so -1 always means nothing was written;
 * store_rollback outside a transaction does nothing, so calling it after a
 * failed commit is harmless.
 */
int store_begin(struct store *store);
int store_commit(struct store *store);
void store_rollback(struct store *store);

/* The last SQLite error, for one log line. */
const char *store_errmsg(struct store *store);

/*
 * For the store's modules. The store functions log their own SQLite errors
 * (with store_log_error), so their callers need not.
 */

/* Logs "store: WHAT: <last SQLite error>" at error level. */
void store_log_error(struct store *store, const char *what);

/*
 * The prepared statement for SQL, reset and with no bindings, from a cache
 * that lives as long as the store (so a hot statement is compiled once).
 * SQL should be a string literal: entries are looked up by address (and
 * checked by text). NULL on error (logged). Call store_stmt_release when
 * done with it, before the same SQL is prepared again, so no read stays open.
 */
sqlite3_stmt *store_stmt_prepare(struct store *store, const char *sql);

/* Resets STMT and clears its bindings; NULL is fine. */
void store_stmt_release(sqlite3_stmt *stmt);

/*
 * Steps STMT (bound) once: 1 for a row, which stays readable until the
 * caller's store_stmt_release; 0 when there is none; -1 on error (logged as
 * WHAT). STMT is not released.
 */
int store_stmt_step(struct store *store, sqlite3_stmt *stmt, const char *what);

/* LIST (of *CAPACITY entries of SIZE bytes, COUNT used) with room for one
 * more: grown to 16, then doubled, when full. For the modules' row lists. */
void *store_list_grow(void *list, size_t count, size_t *capacity, size_t size);

/* store_stmt_step, then store_stmt_release: whether STMT yields a row. 1/0/-1. */
int store_stmt_exists(struct store *store, sqlite3_stmt *stmt, const char *what);

/* Runs STMT (bound), which must return no rows, then releases it. 0 or -1
 * (logged as WHAT). */
int store_stmt_done(struct store *store, sqlite3_stmt *stmt, const char *what);

/*
 * A unit of work that is atomic whether or not the caller already holds a
 * transaction: outside one it is BEGIN IMMEDIATE … COMMIT, inside one a
 * SAVEPOINT, so a failure rolls back only this unit's writes and leaves the
 * caller's transaction usable. *OUTER_R tells the other two calls which it
 * was. 0 or -1 (logged).
 */
int store_tx_begin(struct store *store, bool *outer_r);
int store_tx_commit(struct store *store, bool outer);
void store_tx_rollback(struct store *store, bool outer);

#endif
