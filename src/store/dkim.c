/*
 * dkim.c — the DKIM signing keys of the domains popgate signs for.
 *
 * Owns: the dkim_key table.
 * Must never: store a private key unsealed, return one from the listing, or
 * leave an opened one in memory it frees without wiping.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/dkim.h"

/* The domain column is compared as stored (lowercase): so are the names. */
static char *store_dkim_lower(const char *s)
{
	char *copy = xstrdup(s);

	for (char *p = copy; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return copy;
}

/* True if S[0..LEN) is one DNS label: letters, digits, '-' not at its ends. */
static bool store_dkim_label_valid(const char *s, size_t len)
{
	if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* True if NAME is dot-separated labels, at most MAX long, with at least
 * MIN_DOTS dots. */
static bool store_dkim_labels_valid(const char *name, size_t max, int min_dots)
{
	size_t len = strlen(name);
	const char *label = name;
	int dots = 0;

	if (len == 0 || len > max)
		return false;
	for (;;) {
		const char *dot = strchr(label, '.');
		size_t label_len = dot != NULL ? (size_t)(dot - label) : strlen(label);

		if (!store_dkim_label_valid(label, label_len))
			return false;
		if (dot == NULL)
			break;
		dots++;
		label = dot + 1;
	}
	return dots >= min_dots;
}

const char *store_dkim_algorithm_name(enum store_dkim_algorithm algorithm)
{
	return algorithm == STORE_DKIM_ED25519 ? "ed25519" : "rsa";
}

int store_dkim_algorithm_parse(const char *name, enum store_dkim_algorithm *algorithm_r)
{
	if (strcasecmp(name, "rsa") == 0)
		*algorithm_r = STORE_DKIM_RSA;
	else if (strcasecmp(name, "ed25519") == 0)
		*algorithm_r = STORE_DKIM_ED25519;
	else
		return -1;
	return 0;
}

bool store_dkim_domain_valid(const char *name)
{
	return store_dkim_labels_valid(name, STORE_DKIM_DOMAIN_MAX, 1);
}

bool store_dkim_selector_valid(const char *name)
{
	return store_dkim_labels_valid(name, STORE_DKIM_SELECTOR_MAX, 0);
}

void store_dkim_key_clear(struct store_dkim_key *key)
{
	free(key->domain);
	free(key->selector);
	if (key->private_key != NULL) {
		sodium_memzero(key->private_key, strlen(key->private_key));
		free(key->private_key);
	}
	memset(key, 0, sizeof(*key));
}

/* Fills KEY's public fields from STMT's row (domain, selector, algorithm,
 * created_at). */
static void store_dkim_read(sqlite3_stmt *stmt, struct store_dkim_key *key)
{
	const char *algorithm = (const char *)sqlite3_column_text(stmt, 2);

	key->domain = xstrdup((const char *)sqlite3_column_text(stmt, 0));
	key->selector = xstrdup((const char *)sqlite3_column_text(stmt, 1));
	/* The table's CHECK allows only the two names. */
	if (algorithm == NULL || store_dkim_algorithm_parse(algorithm, &key->algorithm) < 0)
		key->algorithm = STORE_DKIM_RSA;
	key->created_at = sqlite3_column_int64(stmt, 3);
}

int store_dkim_put(struct store *store, const struct crypto_key *credential,
		   const struct store_dkim_key *key, bool replace)
{
	static const char exists_sql[] = "SELECT 1 FROM dkim_key WHERE domain = ?";
	static const char sql[] =
	    "INSERT OR REPLACE INTO dkim_key (domain, selector, algorithm, private_key, created_at)"
	    " VALUES (?, ?, ?, ?, ?)";
	unsigned char *sealed = NULL;
	size_t sealed_len = 0;
	sqlite3_stmt *stmt;
	bool outer;
	int existed;

	if (crypto_secret_seal(credential, key->private_key, &sealed, &sealed_len) < 0) {
		log_error("store: cannot seal the DKIM key of %s", key->domain);
		return -1;
	}
	if (store_tx_begin(store, &outer) < 0)
		goto fail_sealed;
	stmt = store_stmt_prepare(store, exists_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, key->domain, -1, SQLITE_STATIC);
	existed = store_stmt_exists(store, stmt, "looking up a DKIM key");
	if (existed < 0)
		goto fail;
	if (existed == 1 && !replace) {
		store_tx_rollback(store, outer);
		free(sealed);
		return -2;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_text(stmt, 1, key->domain, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, key->selector, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, store_dkim_algorithm_name(key->algorithm), -1, SQLITE_STATIC);
	sqlite3_bind_blob(stmt, 4, sealed, (int)sealed_len, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, util_now());
	if (store_stmt_done(store, stmt, "storing a DKIM key") < 0)
		goto fail;
	if (store_tx_commit(store, outer) < 0)
		goto fail_sealed;
	free(sealed);
	return existed;
fail:
	store_tx_rollback(store, outer);
fail_sealed:
	free(sealed);
	return -1;
}

int store_dkim_get(struct store *store, const struct crypto_key *credential, const char *domain,
		   struct store_dkim_key *key)
{
	static const char sql[] = "SELECT domain, selector, algorithm, created_at, private_key"
				  " FROM dkim_key WHERE domain = ?";
	char *lower = store_dkim_lower(domain);
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result = -1;

	memset(key, 0, sizeof(*key));
	if (stmt == NULL)
		goto done;
	sqlite3_bind_text(stmt, 1, lower, -1, SQLITE_STATIC);
	result = store_stmt_step(store, stmt, "reading a DKIM key");
	if (result == 1) {
		/* column_blob first, then column_bytes: the documented safe order. */
		const unsigned char *sealed = sqlite3_column_blob(stmt, 4);
		int sealed_len = sqlite3_column_bytes(stmt, 4);

		store_dkim_read(stmt, key);
		if (sealed == NULL || crypto_secret_open(credential, sealed, (size_t)sealed_len,
							 &key->private_key) < 0) {
			/* Sealed with another credential key, or damaged: signing with
			 * nothing is better than with a guess. */
			log_error("store: the DKIM key of %s does not open with the credential key",
				  key->domain);
			store_dkim_key_clear(key);
			result = -1;
		}
	}
	store_stmt_release(stmt);
done:
	free(lower);
	return result;
}

int store_dkim_list(struct store *store, struct store_dkim_key **keys_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT domain, selector, algorithm, created_at FROM dkim_key ORDER BY domain";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	struct store_dkim_key *keys = NULL;
	size_t count = 0, capacity = 0;
	int step;

	*keys_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((step = store_stmt_step(store, stmt, "listing the DKIM keys")) == 1) {
		keys = store_list_grow(keys, count, &capacity, sizeof(*keys));
		memset(&keys[count], 0, sizeof(keys[count]));
		store_dkim_read(stmt, &keys[count]);
		count++;
	}
	store_stmt_release(stmt);
	if (step < 0) {
		store_dkim_list_free(&keys, count);
		return -1;
	}
	*keys_r = keys;
	*count_r = count;
	return 0;
}

void store_dkim_list_free(struct store_dkim_key **keys, size_t count)
{
	if (*keys == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		store_dkim_key_clear(&(*keys)[i]);
	xfree(keys);
}

int store_dkim_delete(struct store *store, const char *domain)
{
	static const char sql[] = "DELETE FROM dkim_key WHERE domain = ?";
	char *lower = store_dkim_lower(domain);
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int result = -1;

	if (stmt != NULL) {
		sqlite3_bind_text(stmt, 1, lower, -1, SQLITE_STATIC);
		if (store_stmt_done(store, stmt, "deleting a DKIM key") == 0)
			result = sqlite3_changes(store->db) > 0 ? 1 : 0;
	}
	free(lower);
	return result;
}
