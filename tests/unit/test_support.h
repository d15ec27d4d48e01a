/*
 * test_support.h — what the unit tests share: a temp folder per test and its
 * removal, looking at folders, and for the store's tests a store opened in
 * that folder with raw SQL beside it, and provider accounts made as a first
 * POP3 login makes them.
 *
 * Owns: nothing; each helper cleans up what it opens, or hands it back.
 * Must never: define a symbol that is not static. Every test links all of
 * src/ and is built with -Wmissing-prototypes, so each helper is static
 * inline (an unused one is then no warning either).
 */
#ifndef POPGATE_TEST_SUPPORT_H
#define POPGATE_TEST_SUPPORT_H

#include <dirent.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/util.h"
#include "store/account.h"
#include "store/db.h"

/* Room for the path test_dir_make writes, with any NAME the tests use. */
#define TEST_DIR_SIZE 64

/* Makes a fresh folder /tmp/popgate-test-NAME-XXXXXX, its path in DIR. 0 or -1. */
static inline int test_dir_make(char *dir, size_t size, const char *name)
{
	snprintf(dir, size, "/tmp/popgate-test-%s-XXXXXX", name);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static inline int test_remove_entry(const char *path, const struct stat *st, int flag,
				    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Removes DIR and all below it, not following links. 0 or -1. */
static inline int test_dir_remove(const char *dir)
{
	/* Depth first, so each folder is empty by the time it is removed. */
	return nftw(dir, test_remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

static inline bool test_path_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Number of entries in DIR_PATH besides "." and "..". */
static inline int test_count_entries(const char *dir_path)
{
	DIR *dir = opendir(dir_path);
	struct dirent *entry;
	int count = 0;

	assert_non_null(dir);
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
			count++;
	}
	closedir(dir);
	return count;
}

/* Writes TEXT (without its NUL) as the whole of a new file PATH. */
static inline void test_write_file(const char *path, const char *text)
{
	FILE *file = fopen(path, "w");
	size_t len = strlen(text);

	assert_non_null(file);
	assert_int_equal(fwrite(text, 1, len, file), len);
	assert_int_equal(fclose(file), 0);
}

/* Opens the store in DIR, failing the test with the reason if it cannot. */
static inline struct store *test_store_open(const char *dir)
{
	char err[256] = "";
	struct store *store = store_open(dir, err, sizeof(err));

	if (store == NULL)
		fail_msg("store_open %s: %s", dir, err);
	return store;
}

/* Runs SQL (any number of statements) on STORE's database, bypassing the store. */
static inline void test_exec_sql(struct store *store, const char *sql)
{
	char *error = NULL;

	if (sqlite3_exec(store->db, sql, NULL, NULL, &error) != SQLITE_OK)
		fail_msg("%s: %s", sql, error);
}

/* SQL prepared and stepped to its first row, which must exist; the caller
 * finalizes it. */
static inline sqlite3_stmt *test_query_row(struct store *store, const char *sql)
{
	sqlite3_stmt *stmt = NULL;

	assert_int_equal(sqlite3_prepare_v2(store->db, sql, -1, &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	return stmt;
}

/* The first column of the first row of SQL, as an integer. */
static inline int64_t test_query_int(struct store *store, const char *sql)
{
	sqlite3_stmt *stmt = test_query_row(store, sql);
	int64_t value = sqlite3_column_int64(stmt, 0);

	sqlite3_finalize(stmt);
	return value;
}

/* The first column of the first row of SQL, as text copied into OUT. */
static inline const char *test_query_text(struct store *store, const char *sql, char *out,
					  size_t outlen)
{
	sqlite3_stmt *stmt = test_query_row(store, sql);

	snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(stmt, 0));
	sqlite3_finalize(stmt);
	return out;
}

/* The fixture of tests that need a temp data folder with a store open in it. */
struct test_store {
	char dir[TEST_DIR_SIZE];
	struct store *store;
};

/* A cmocka setup: a struct test_store in *STATE, its folder named after NAME. */
static inline int test_store_setup(void **state, const char *name)
{
	struct test_store *f = xcalloc(1, sizeof(*f));

	assert_int_equal(test_dir_make(f->dir, sizeof(f->dir), name), 0);
	f->store = test_store_open(f->dir);
	*state = f;
	return 0;
}

/* The cmocka teardown that goes with test_store_setup. */
static inline int test_store_teardown(void **state)
{
	struct test_store *f = *state;

	store_close(&f->store);
	test_dir_remove(f->dir);
	free(f);
	return 0;
}

/*
 * Creates the provider account LOGIN@HOST (with a fake hash and secret) for
 * user USER_NAME, who is made with PRIMARY as primary address if new, as a
 * first POP3 login does (U1). Returns the account's id; its user's id in
 * *USER_ID_R unless that is NULL.
 */
static inline int64_t test_account_create(struct store *store, const char *login, const char *host,
					  const char *user_name, const char *primary,
					  int64_t *user_id_r)
{
	struct store_account account = {0};
	static const unsigned char secret[4] = {1, 2, 3, 4};
	int64_t id;

	account.name = xasprintf("%s@%s", login, host);
	account.login = xstrdup(login);
	account.host = xstrdup(host);
	account.password_hash = xstrdup("$argon2id$fake");
	account.secret = xmalloc(sizeof(secret));
	memcpy(account.secret, secret, sizeof(secret));
	account.secret_len = sizeof(secret);
	assert_int_equal(store_account_create(store, &account, user_name, primary), 0);
	id = account.id;
	if (user_id_r != NULL)
		*user_id_r = account.user_id;
	store_account_clear(&account);
	return id;
}

#endif
