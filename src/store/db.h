/*
 * db.h — the store's SQLite database (DATA/popgate.db, WAL): opening it,
 * applying the numbered schema migrations, and transactions.
 *
 * SQLite is the truth about every message, account and user. The store is
 * used from the main process only; workers never open it.
 */
#ifndef POPGATE_DB_H
#define POPGATE_DB_H

#include <stddef.h>

#include <sqlite3.h>

struct store {
	sqlite3 *db;
	char *data_dir; /* owned */
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

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. 0 or -1 (logged). */
int store_begin(struct store *store);
int store_commit(struct store *store);
void store_rollback(struct store *store);

/* The last SQLite error, for one log line. */
const char *store_errmsg(struct store *store);

#endif
