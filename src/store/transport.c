/*
 * transport.c — the transport_rule table, matching a message against the
 * rules, and the sealed AUTH secrets (transport.h says why sealed).
 *
 * Owns: the transport_rule table and the setting TRANSPORT_PUBLIC_KEY_SETTING.
 * Must never: hand out a secret but to the daemon's relay, or log one.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/config.h"
#include "core/config_key.h"
#include "core/log.h"
#include "core/util.h"
#include "store/setting.h"
#include "store/transport.h"

/* Keyed BLAKE2b of this text under the credential key seeds the pair, so it
 * is no other use's key. */
static const char transport_key_context[] = "popgate transport rule secrets v1";

static const char *const transport_match_names[] = {
    [TRANSPORT_MATCH_DOMAIN] = "domain",
    [TRANSPORT_MATCH_SENDER] = "sender",
};

static const char *const transport_tls_names[] = {
    [TRANSPORT_TLS_NONE] = "none",
    [TRANSPORT_TLS_OPPORTUNISTIC] = "opportunistic",
    [TRANSPORT_TLS_REQUIRED] = "required",
    [TRANSPORT_TLS_VERIFIED] = "verified",
};
_Static_assert(sizeof(transport_tls_names) / sizeof(transport_tls_names[0]) == TRANSPORT_TLS_COUNT,
	       "every TLS mode has a name");

const char *transport_match_name(enum transport_match match)
{
	assert(match == TRANSPORT_MATCH_DOMAIN || match == TRANSPORT_MATCH_SENDER);
	return transport_match_names[match];
}

int transport_match_parse(const char *name)
{
	for (int i = 0; i < 2; i++)
		if (strcmp(name, transport_match_names[i]) == 0)
			return i;
	return -1;
}

const char *transport_tls_name(enum transport_tls tls)
{
	assert(tls >= 0 && tls < TRANSPORT_TLS_COUNT);
	return transport_tls_names[tls];
}

int transport_tls_parse(const char *name)
{
	for (int i = 0; i < TRANSPORT_TLS_COUNT; i++)
		if (strcmp(name, transport_tls_names[i]) == 0)
			return i;
	return -1;
}

const char *transport_pattern_refusal(enum transport_match match, const char *pattern)
{
	const char *at = strrchr(pattern, '@');

	if (match == TRANSPORT_MATCH_DOMAIN) {
		if (!config_valid_pattern(pattern))
			return "a domain pattern is a domain, *.domain or *";
		return NULL;
	}
	if (at == NULL)
		return "a sender pattern is an address, @domain or *@*.domain";
	if (!config_valid_pattern(at + 1) || strcmp(at + 1, "*") == 0)
		return "a sender pattern's domain is a domain or *.domain";
	if (at == pattern)
		return NULL; /* @domain */
	if (at - pattern == 1 && pattern[0] == '*')
		return at[1] == '*' ? NULL : "use @domain for any address of one domain";
	if (at[1] == '*')
		return "*.domain goes with *@ only";
	for (const char *c = pattern; c < at; c++)
		if ((unsigned char)*c <= ' ' || *c == '<' || *c == '>' || *c == '*')
			return "an address pattern holds no spaces, brackets or *";
	return NULL;
}

/* The domain of ADDRESS (after its last '@'), or "" when it has none. */
static const char *transport_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

bool transport_rule_matches(const struct store_transport_rule *rule, const char *sender,
			    const char *recipient)
{
	const char *at;

	if (rule->match == TRANSPORT_MATCH_DOMAIN)
		return config_pattern_match(rule->pattern, transport_domain(recipient));
	/* The null sender has no domain: only no sender rule matches it. */
	if (*sender == '\0')
		return false;
	at = strrchr(rule->pattern, '@');
	if (at == NULL)
		return false;
	if (at == rule->pattern || (at[1] == '*' && at - rule->pattern == 1))
		return config_pattern_match(at + 1, transport_domain(sender));
	return util_strcaseeq(rule->pattern, sender);
}

const struct store_transport_rule *transport_rule_find(const struct store_transport_rule *rules,
						       size_t count, const char *sender,
						       const char *recipient)
{
	for (size_t i = 0; i < count; i++)
		if (transport_rule_matches(&rules[i], sender, recipient))
			return &rules[i];
	return NULL;
}

/* Runs SQL (no rows, no bindings) as part of the caller's unit. 0/-1. */
static int transport_exec(struct store *store, const char *sql, const char *what)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	return store_stmt_done(store, stmt, what);
}

/* Makes room at POSITION: it and every later position move one down. The
 * UNIQUE index is checked per row, so the rows go through negative values. */
static int transport_make_room(struct store *store, int64_t position)
{
	static const char flip[] =
	    "UPDATE transport_rule SET position = -(position + 1) WHERE position >= ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, flip);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, position);
	if (store_stmt_done(store, stmt, "moving transport rules") < 0)
		return -1;
	return transport_exec(store,
			      "UPDATE transport_rule SET position = -position WHERE position < 0",
			      "moving transport rules");
}

static int transport_insert(struct store *store, struct store_transport_rule *rule)
{
	static const char last[] = "SELECT coalesce(max(position), 0) + 1 FROM transport_rule";
	static const char insert[] =
	    "INSERT INTO transport_rule (position, match_kind, pattern, host, port, tls_mode,"
	    " auth_user, auth_secret, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *stmt;

	if (rule->position <= 0) {
		stmt = store_stmt_prepare(store, last);
		if (stmt == NULL || store_stmt_step(store, stmt, "reading transport rules") != 1) {
			store_stmt_release(stmt);
			return -1;
		}
		rule->position = sqlite3_column_int64(stmt, 0);
		store_stmt_release(stmt);
	} else if (transport_make_room(store, rule->position) < 0) {
		return -1;
	}
	rule->created_at = util_now();
	stmt = store_stmt_prepare(store, insert);
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, rule->position);
	sqlite3_bind_text(stmt, 2, transport_match_name(rule->match), -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, rule->pattern, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, rule->host, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 5, rule->port);
	sqlite3_bind_text(stmt, 6, transport_tls_name(rule->tls), -1, SQLITE_STATIC);
	if (rule->auth_user != NULL)
		sqlite3_bind_text(stmt, 7, rule->auth_user, -1, SQLITE_STATIC);
	if (rule->auth_secret != NULL)
		sqlite3_bind_blob(stmt, 8, rule->auth_secret, (int)rule->auth_secret_len,
				  SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 9, rule->created_at);
	if (store_stmt_done(store, stmt, "adding a transport rule") < 0)
		return -1;
	rule->id = sqlite3_last_insert_rowid(store->db);
	return 0;
}

int store_transport_add(struct store *store, struct store_transport_rule *rule)
{
	bool outer;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	if (transport_insert(store, rule) < 0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	return store_tx_commit(store, outer);
}

int store_transport_del(struct store *store, int64_t id)
{
	static const char sql[] = "DELETE FROM transport_rule WHERE id = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, id);
	if (store_stmt_done(store, stmt, "deleting a transport rule") < 0)
		return -1;
	return sqlite3_changes(store->db) > 0 ? 1 : 0;
}

static char *transport_column_strdup(sqlite3_stmt *stmt, int col)
{
	const unsigned char *text = sqlite3_column_text(stmt, col);

	return text != NULL ? xstrdup((const char *)text) : NULL;
}

int store_transport_list(struct store *store, struct store_transport_rule **list_r, size_t *count_r)
{
	static const char sql[] =
	    "SELECT id, position, match_kind, pattern, host, port, tls_mode, auth_user,"
	    " auth_secret, created_at FROM transport_rule ORDER BY position";
	struct store_transport_rule *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_transport_rule *r;
		const void *secret = sqlite3_column_blob(stmt, 8);
		int secret_len = sqlite3_column_bytes(stmt, 8);
		int match = transport_match_parse((const char *)sqlite3_column_text(stmt, 2));
		int tls = transport_tls_parse((const char *)sqlite3_column_text(stmt, 6));

		if (match < 0 || tls < 0)
			continue; /* the CHECKs make this a newer program's row */
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		r = &list[count++];
		memset(r, 0, sizeof(*r));
		r->id = sqlite3_column_int64(stmt, 0);
		r->position = sqlite3_column_int64(stmt, 1);
		r->match = match;
		r->pattern = transport_column_strdup(stmt, 3);
		r->host = transport_column_strdup(stmt, 4);
		r->port = sqlite3_column_int(stmt, 5);
		r->tls = tls;
		r->auth_user = transport_column_strdup(stmt, 7);
		if (secret != NULL && secret_len > 0) {
			r->auth_secret = xmalloc((size_t)secret_len);
			memcpy(r->auth_secret, secret, (size_t)secret_len);
			r->auth_secret_len = (size_t)secret_len;
		}
		r->created_at = sqlite3_column_int64(stmt, 9);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing transport rules");
		store_transport_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_transport_list_free(struct store_transport_rule **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		struct store_transport_rule *r = &(*list)[i];

		free(r->pattern);
		free(r->host);
		free(r->auth_user);
		free(r->auth_secret);
	}
	xfree(list);
}

/* The sealed-box pair derived from KEY. */
static void transport_keypair(const struct crypto_key *key,
			      unsigned char public_key[crypto_box_PUBLICKEYBYTES],
			      unsigned char secret_key[crypto_box_SECRETKEYBYTES])
{
	unsigned char seed[crypto_box_SEEDBYTES];

	crypto_generichash(seed, sizeof(seed), (const unsigned char *)transport_key_context,
			   sizeof(transport_key_context) - 1, key->bytes, sizeof(key->bytes));
	crypto_box_seed_keypair(public_key, secret_key, seed);
	sodium_memzero(seed, sizeof(seed));
}

int store_transport_publish_key(struct store *store, const struct crypto_key *key)
{
	unsigned char public_key[crypto_box_PUBLICKEYBYTES];
	unsigned char secret_key[crypto_box_SECRETKEYBYTES];
	char hex[crypto_box_PUBLICKEYBYTES * 2 + 1];
	char *current = NULL;
	int rc = 0;

	transport_keypair(key, public_key, secret_key);
	sodium_memzero(secret_key, sizeof(secret_key));
	sodium_bin2hex(hex, sizeof(hex), public_key, sizeof(public_key));
	/* Written only when it changed: a start needs no write otherwise. */
	if (store_setting_get(store, TRANSPORT_PUBLIC_KEY_SETTING, &current) < 0)
		return -1;
	if (current == NULL || strcmp(current, hex) != 0)
		rc = store_setting_set(store, TRANSPORT_PUBLIC_KEY_SETTING, hex);
	free(current);
	return rc;
}

int store_transport_seal(struct store *store, const char *secret, unsigned char **blob_r,
			 size_t *len_r)
{
	unsigned char public_key[crypto_box_PUBLICKEYBYTES];
	char *hex = NULL;
	size_t len = strlen(secret);
	size_t bin_len = 0;

	*blob_r = NULL;
	*len_r = 0;
	if (store_setting_get(store, TRANSPORT_PUBLIC_KEY_SETTING, &hex) != 1)
		return -1;
	if (sodium_hex2bin(public_key, sizeof(public_key), hex, strlen(hex), NULL, &bin_len, NULL) <
		0 ||
	    bin_len != sizeof(public_key)) {
		free(hex);
		return -1;
	}
	free(hex);
	*blob_r = xmalloc(len + crypto_box_SEALBYTES);
	if (crypto_box_seal(*blob_r, (const unsigned char *)secret, len, public_key) < 0) {
		xfree(blob_r);
		return -1;
	}
	*len_r = len + crypto_box_SEALBYTES;
	return 0;
}

int transport_secret_open(const struct crypto_key *key, const unsigned char *blob, size_t len,
			  char **secret_r)
{
	unsigned char public_key[crypto_box_PUBLICKEYBYTES];
	unsigned char secret_key[crypto_box_SECRETKEYBYTES];
	char *secret;
	int rc;

	*secret_r = NULL;
	if (len < crypto_box_SEALBYTES)
		return -1;
	secret = xmalloc(len - crypto_box_SEALBYTES + 1);
	transport_keypair(key, public_key, secret_key);
	rc = crypto_box_seal_open((unsigned char *)secret, blob, len, public_key, secret_key);
	sodium_memzero(secret_key, sizeof(secret_key));
	if (rc < 0) {
		free(secret);
		return -1;
	}
	secret[len - crypto_box_SEALBYTES] = '\0';
	*secret_r = secret;
	return 0;
}
