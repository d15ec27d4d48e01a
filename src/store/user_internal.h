/*
 * user_internal.h — helpers shared by the store's user, address, seat and
 * setting files (store/user.c defines them). Not for callers outside
 * src/store/.
 */
#ifndef POPGATE_STORE_USER_INTERNAL_H
#define POPGATE_STORE_USER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/db.h"

/* Writes a sentence for the administrator into ERR (nothing when ERRLEN is 0). */
void user_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The text of a database failure, whose details store_* logged already. */
void user_err_db(char *err, size_t errlen);

/* A column's text as a new string; NULL stays NULL. */
char *user_column_strdup(sqlite3_stmt *stmt, int column);

/* The cached statement for SQL with TEXT (NULL binds SQL NULL), or with
 * VALUE, bound to its first parameter. NULL on error (logged). */
sqlite3_stmt *user_stmt_text(struct store *store, const char *sql, const char *text);
sqlite3_stmt *user_stmt_int(struct store *store, const char *sql, int64_t value);

/* store_stmt_step and store_stmt_done for a statement from user_stmt_*,
 * which is NULL when preparing it failed: -1 then. */
int user_stmt_row(struct store *store, sqlite3_stmt *stmt, const char *what);
int user_stmt_done(struct store *store, sqlite3_stmt *stmt, const char *what);

/* store_tx_begin and store_tx_commit, with the database-error text in ERR
 * when they fail. 0 or -1. */
int user_tx_begin(struct store *store, bool *outer_r, char *err, size_t errlen);
int user_tx_commit(struct store *store, bool outer, char *err, size_t errlen);

/* Runs SQL with KEY bound to its parameter; copies the first column of its
 * row into OUT of OUTLEN. 1/0/-1 (logged as WHAT). */
int user_text_by_key(struct store *store, const char *sql, const char *key, const char *what,
		     char *out, size_t outlen);

/*
 * The id and origin ("provider"/"local", into ORIGIN of ORIGINLEN, may be
 * NULL) of user NAME. 1 found; 0 none, with "no user NAME" in ERR; -1 on a
 * database error, with its text in ERR.
 */
int user_id_by_name(struct store *store, const char *name, int64_t *id_r, char *origin,
		    size_t originlen, char *err, size_t errlen);

/*
 * Inserts ADDRESS for USER_ID after checking it is free (and, when CHECK_SHAPE,
 * that it is valid); inside the caller's transaction (store/address.c).
 * 0 done, -1 refused or failed (ERR set).
 */
int address_insert(struct store *store, const char *address, int64_t user_id, bool is_primary,
		   bool check_shape, char *err, size_t errlen);

#endif
