/*
 * ciss.c — the store's part of challenge-response (see store/ciss.h): the
 * local_domain, ciss_trusted, ciss_challenge and ciss_held tables and the
 * ciss_* rows of the setting table.
 *
 * Owns: those tables and settings. Must never: release a held message other
 * than through store/lifecycle.h, answer a challenge twice or after its
 * time, or let the pseudo-domain be added or deleted as a row.
 * SECURITY: senders, recipients and subjects come from hostile mail; nonces
 * come from the sender page's link and are compared in constant time.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "core/address.h"
#include "core/log.h"
#include "core/util.h"
#include "store/ciss.h"
#include "store/lifecycle.h"
#include "store/message.h"
#include "store/setting.h"
#include "store/user_internal.h"

/* TEXT in lower case (allocated). */
static char *ciss_fold(const char *text)
{
	char *folded = xstrdup(text);

	for (char *c = folded; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	return folded;
}

static bool ciss_is_pseudo(const char *pseudo_domain, const char *domain)
{
	return pseudo_domain != NULL && pseudo_domain[0] != '\0' &&
	       util_strcaseeq(pseudo_domain, domain);
}

/* ---- Local Domains ---- */

int store_local_domain_add(struct store *store, const char *pseudo_domain, const char *domain,
			   char *err, size_t errlen)
{
	static const char sql[] = "INSERT INTO local_domain (domain, created_at) VALUES (?, ?)"
				  " ON CONFLICT (domain) DO NOTHING";
	sqlite3_stmt *stmt;
	char *folded;

	if (!address_domain_valid(domain)) {
		user_err(err, errlen, "'%s' is not a valid domain name", domain);
		return -1;
	}
	if (ciss_is_pseudo(pseudo_domain, domain)) {
		user_err(err, errlen, "%s is the pseudo-domain, a Local Domain by itself",
			 pseudo_domain);
		return -1;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL) {
		user_err_db(err, errlen);
		return -1;
	}
	folded = ciss_fold(domain);
	sqlite3_bind_text(stmt, 1, folded, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, util_now());
	if (store_stmt_done(store, stmt, "adding a local domain") < 0) {
		free(folded);
		user_err_db(err, errlen);
		return -1;
	}
	free(folded);
	if (sqlite3_changes(store->db) == 0) {
		user_err(err, errlen, "%s is a Local Domain already", domain);
		return -1;
	}
	return 0;
}

int store_local_domain_del(struct store *store, const char *pseudo_domain, const char *domain,
			   char *err, size_t errlen)
{
	static const char sql[] = "DELETE FROM local_domain WHERE domain = ?";
	struct ciss_settings settings;
	bool applied;

	if (ciss_is_pseudo(pseudo_domain, domain)) {
		user_err(err, errlen,
			 "%s is the pseudo-domain, a Local Domain by itself: it cannot be deleted",
			 pseudo_domain);
		return -1;
	}
	if (store_ciss_settings_get(store, &settings) < 0) {
		user_err_db(err, errlen);
		return -1;
	}
	applied = ciss_settings_has_domain(&settings, domain);
	ciss_settings_clear(&settings);
	if (applied) {
		user_err(err, errlen,
			 "CISS applies to %s: take it out of 'popgatectl ciss set domains' first",
			 domain);
		return -1;
	}
	if (user_stmt_done(store, user_stmt_text(store, sql, domain), "deleting a local domain") <
	    0) {
		user_err_db(err, errlen);
		return -1;
	}
	if (sqlite3_changes(store->db) == 0) {
		user_err(err, errlen, "%s is not a Local Domain", domain);
		return -1;
	}
	return 0;
}

int store_local_domain_list(struct store *store, const char *pseudo_domain,
			    struct store_local_domain **list_r, size_t *count_r, char *err,
			    size_t errlen)
{
	static const char sql[] = "SELECT domain, created_at FROM local_domain ORDER BY domain";
	struct store_local_domain *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL) {
		user_err_db(err, errlen);
		return -1;
	}
	if (pseudo_domain != NULL && pseudo_domain[0] != '\0') {
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count++] = (struct store_local_domain){
		    .domain = ciss_fold(pseudo_domain), .builtin = true, .created_at = 0};
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *domain = (const char *)sqlite3_column_text(stmt, 0);

		/* A row for the pseudo-domain (written by hand) is shown once. */
		if (domain == NULL || ciss_is_pseudo(pseudo_domain, domain))
			continue;
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count++] =
		    (struct store_local_domain){.domain = xstrdup(domain),
						.builtin = false,
						.created_at = sqlite3_column_int64(stmt, 1)};
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing local domains");
		user_err_db(err, errlen);
		store_local_domain_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_local_domain_list_free(struct store_local_domain **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*list)[i].domain);
	xfree(list);
}

int store_local_domain_is_local(struct store *store, const char *pseudo_domain, const char *domain)
{
	static const char sql[] = "SELECT 1 FROM local_domain WHERE domain = ?";

	if (ciss_is_pseudo(pseudo_domain, domain))
		return 1;
	return store_stmt_exists(store, user_stmt_text(store, sql, domain),
				 "looking up a local domain");
}

/* ---- CISS settings ---- */

#define CISS_KEY_DOMAINS "ciss_domains"
#define CISS_KEY_HOLD_EXPIRY "ciss_hold_expiry"

static const struct {
	const char *name; /* as popgatectl names it */
	const char *key;  /* in the setting table */
	int fallback;
	int least;
} ciss_numbers[CISS_SETTING_COUNT] = {
    [CISS_SETTING_PERIOD] = {"period", "ciss_period_days", CISS_DEFAULT_PERIOD_DAYS, 0},
    [CISS_SETTING_CAP_HOUR] = {"cap-hour", "ciss_cap_hour", CISS_DEFAULT_CAP_HOUR, 1},
    [CISS_SETTING_CAP_USER_HOUR] = {"cap-user-hour", "ciss_cap_user_hour",
				    CISS_DEFAULT_CAP_USER_HOUR, 1},
    [CISS_SETTING_HOLD_DAYS] = {"hold-days", "ciss_hold_days", CISS_DEFAULT_HOLD_DAYS, 1},
    [CISS_SETTING_LINK_DAYS] = {"link-days", "ciss_link_days", CISS_DEFAULT_LINK_DAYS, 1},
};

static const char *const ciss_hold_expiry_names[] = {
    [CISS_HOLD_EXPIRY_QUARANTINE] = "quarantine",
    [CISS_HOLD_EXPIRY_DELETE] = "delete",
};

const char *ciss_setting_name(enum ciss_setting setting)
{
	return ciss_numbers[setting].name;
}

int ciss_setting_parse(const char *name)
{
	for (int i = 0; i < CISS_SETTING_COUNT; i++) {
		if (strcmp(ciss_numbers[i].name, name) == 0)
			return i;
	}
	return -1;
}

const char *ciss_hold_expiry_name(enum ciss_hold_expiry expiry)
{
	return ciss_hold_expiry_names[expiry];
}

int ciss_hold_expiry_parse(const char *name)
{
	for (int i = 0;
	     i < (int)(sizeof(ciss_hold_expiry_names) / sizeof(ciss_hold_expiry_names[0])); i++) {
		if (strcmp(ciss_hold_expiry_names[i], name) == 0)
			return i;
	}
	return -1;
}

/* TEXT as a number from LEAST to CISS_SETTING_MAX into *VALUE_R. 0/-1. */
static int ciss_number_parse(const char *text, int least, int *value_r)
{
	char *end;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < least || value > CISS_SETTING_MAX)
		return -1;
	*value_r = (int)value;
	return 0;
}

/* Splits the stored domain list TEXT (space-separated) into SETTINGS. */
static void ciss_domains_split(const char *text, struct ciss_settings *settings)
{
	size_t capacity = 0;
	const char *p = text;

	while (*p != '\0') {
		size_t len = strcspn(p, " ");

		if (len > 0) {
			settings->domains =
			    store_list_grow(settings->domains, settings->domain_count, &capacity,
					    sizeof(*settings->domains));
			settings->domains[settings->domain_count++] = xstrndup(p, len);
		}
		p += len;
		p += strspn(p, " ");
	}
}

int store_ciss_settings_get(struct store *store, struct ciss_settings *settings)
{
	int *numbers[CISS_SETTING_COUNT] = {
	    [CISS_SETTING_PERIOD] = &settings->period_days,
	    [CISS_SETTING_CAP_HOUR] = &settings->cap_hour,
	    [CISS_SETTING_CAP_USER_HOUR] = &settings->cap_user_hour,
	    [CISS_SETTING_HOLD_DAYS] = &settings->hold_days,
	    [CISS_SETTING_LINK_DAYS] = &settings->link_days,
	};
	char *value;
	int rc, expiry;

	memset(settings, 0, sizeof(*settings));
	for (int i = 0; i < CISS_SETTING_COUNT; i++) {
		*numbers[i] = ciss_numbers[i].fallback;
		rc = store_setting_get(store, ciss_numbers[i].key, &value);
		if (rc < 0)
			return -1;
		if (rc == 1 && ciss_number_parse(value, ciss_numbers[i].least, numbers[i]) < 0)
			log_warn("store: setting %s is not a number from %d to %d; using %d",
				 ciss_numbers[i].key, ciss_numbers[i].least, CISS_SETTING_MAX,
				 ciss_numbers[i].fallback);
		free(value);
	}
	settings->hold_expiry = CISS_HOLD_EXPIRY_QUARANTINE;
	rc = store_setting_get(store, CISS_KEY_HOLD_EXPIRY, &value);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		expiry = ciss_hold_expiry_parse(value);
		if (expiry < 0)
			log_warn(
			    "store: setting %s is neither quarantine nor delete; using quarantine",
			    CISS_KEY_HOLD_EXPIRY);
		else
			settings->hold_expiry = (enum ciss_hold_expiry)expiry;
	}
	free(value);
	rc = store_setting_get(store, CISS_KEY_DOMAINS, &value);
	if (rc < 0)
		return -1;
	if (rc == 1)
		ciss_domains_split(value, settings);
	free(value);
	return 0;
}

void ciss_settings_clear(struct ciss_settings *settings)
{
	for (size_t i = 0; i < settings->domain_count; i++)
		free(settings->domains[i]);
	free(settings->domains);
	memset(settings, 0, sizeof(*settings));
}

bool ciss_settings_has_domain(const struct ciss_settings *settings, const char *domain)
{
	for (size_t i = 0; i < settings->domain_count; i++) {
		if (util_strcaseeq(settings->domains[i], domain))
			return true;
	}
	return false;
}

/* store_setting_set with the database-error text in ERR. 0/-1. */
static int ciss_setting_write(struct store *store, const char *key, const char *value, char *err,
			      size_t errlen)
{
	if (store_setting_set(store, key, value) < 0) {
		user_err_db(err, errlen);
		return -1;
	}
	return 0;
}

int store_ciss_set_number(struct store *store, enum ciss_setting setting, long value, char *err,
			  size_t errlen)
{
	char text[32];

	if (value < ciss_numbers[setting].least || value > CISS_SETTING_MAX) {
		user_err(err, errlen, "%s must be a number from %d to %d",
			 ciss_numbers[setting].name, ciss_numbers[setting].least, CISS_SETTING_MAX);
		return -1;
	}
	snprintf(text, sizeof(text), "%ld", value);
	return ciss_setting_write(store, ciss_numbers[setting].key, text, err, errlen);
}

int store_ciss_set_hold_expiry(struct store *store, enum ciss_hold_expiry expiry, char *err,
			       size_t errlen)
{
	return ciss_setting_write(store, CISS_KEY_HOLD_EXPIRY, ciss_hold_expiry_name(expiry), err,
				  errlen);
}

int store_ciss_set_domains(struct store *store, const char *pseudo_domain,
			   const char *const *domains, size_t count, char *err, size_t errlen)
{
	char *text = xstrdup(""), *folded, *joined;
	int rc;

	for (size_t i = 0; i < count; i++) {
		for (size_t j = 0; j < i; j++) {
			if (util_strcaseeq(domains[i], domains[j])) {
				user_err(err, errlen, "%s is named twice", domains[i]);
				goto fail;
			}
		}
		rc = address_domain_valid(domains[i])
			 ? store_local_domain_is_local(store, pseudo_domain, domains[i])
			 : 0;
		if (rc < 0) {
			user_err_db(err, errlen);
			goto fail;
		}
		if (rc == 0) {
			user_err(err, errlen,
				 "%s is not a Local Domain (see 'popgatectl domain list')",
				 domains[i]);
			goto fail;
		}
		folded = ciss_fold(domains[i]);
		joined = xasprintf("%s%s%s", text, i > 0 ? " " : "", folded);
		free(folded);
		free(text);
		text = joined;
	}
	rc = ciss_setting_write(store, CISS_KEY_DOMAINS, text, err, errlen);
	free(text);
	return rc;
fail:
	free(text);
	return -1;
}

/* ---- Trusted senders ---- */

static const char *const ciss_trust_via_names[] = {
    [CISS_TRUST_ANSWER] = "answer",
    [CISS_TRUST_ADMIN] = "admin",
};

const char *ciss_trust_via_name(enum ciss_trust_via via)
{
	return ciss_trust_via_names[via];
}

int store_ciss_trust(struct store *store, int64_t user_id, const char *address,
		     enum ciss_trust_via via, int64_t now, char *err, size_t errlen)
{
	static const char sql[] =
	    "INSERT INTO ciss_trusted (user_id, address, via, trusted_at) VALUES (?, ?, ?, ?)"
	    " ON CONFLICT (user_id, address) DO UPDATE SET via = excluded.via,"
	    " trusted_at = excluded.trusted_at";
	sqlite3_stmt *stmt;
	char *folded;
	int rc;

	if (!address_valid(address)) {
		user_err(err, errlen, "'%s' is not a valid address", address);
		return -1;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL) {
		user_err_db(err, errlen);
		return -1;
	}
	folded = ciss_fold(address);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, ciss_trust_via_name(via), -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, now);
	rc = store_stmt_done(store, stmt, "trusting a sender");
	free(folded);
	if (rc < 0)
		user_err_db(err, errlen);
	return rc;
}

int store_ciss_untrust(struct store *store, int64_t user_id, const char *address)
{
	static const char sql[] = "DELETE FROM ciss_trusted WHERE user_id = ? AND address = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = ciss_fold(address);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	rc = store_stmt_done(store, stmt, "untrusting a sender");
	free(folded);
	if (rc < 0)
		return -1;
	return sqlite3_changes(store->db) > 0 ? 1 : 0;
}

int store_ciss_is_trusted(struct store *store, int64_t user_id, const char *address)
{
	static const char sql[] = "SELECT 1 FROM ciss_trusted WHERE user_id = ? AND address = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = ciss_fold(address);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	rc = store_stmt_exists(store, stmt, "reading trusted senders");
	free(folded);
	return rc;
}

int store_ciss_trusted_list(struct store *store, int64_t user_id, struct ciss_trusted **list_r,
			    size_t *count_r)
{
	static const char sql[] = "SELECT t.user_id, u.name, t.address, t.via, t.trusted_at"
				  " FROM ciss_trusted t JOIN user u ON u.id = t.user_id"
				  " WHERE ? = 0 OR t.user_id = ? ORDER BY u.name, t.address";
	struct ciss_trusted *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_int64(stmt, 2, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *via = (const char *)sqlite3_column_text(stmt, 3);

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		list[count++] = (struct ciss_trusted){
		    .user_id = sqlite3_column_int64(stmt, 0),
		    .user_name = user_column_strdup(stmt, 1),
		    .address = user_column_strdup(stmt, 2),
		    .via = via != NULL && strcmp(via, "admin") == 0 ? CISS_TRUST_ADMIN
								    : CISS_TRUST_ANSWER,
		    .trusted_at = sqlite3_column_int64(stmt, 4),
		};
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing trusted senders");
		store_ciss_trusted_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_ciss_trusted_list_free(struct ciss_trusted **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].user_name);
		free((*list)[i].address);
	}
	xfree(list);
}

/* ---- Challenges ---- */

void ciss_challenge_clear(struct ciss_challenge *challenge)
{
	free(challenge->sender);
	free(challenge->recipient);
	free(challenge->subject);
	memset(challenge, 0, sizeof(*challenge));
}

int store_ciss_challenge_add(struct store *store, int64_t user_id, const char *sender,
			     const char *recipient, const char *subject, const char *message_id,
			     int64_t now, int64_t expires_at, int64_t *id_r,
			     char nonce[CISS_NONCE_LEN + 1])
{
	static const char sql[] =
	    "INSERT INTO ciss_challenge (user_id, sender, recipient, subject, message_id, nonce,"
	    " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
	char clean_subject[CISS_SUBJECT_MAX + 1];
	sqlite3_stmt *stmt;
	char *folded;
	int rc;

	if (!address_valid(sender) || !spool_id_valid(message_id)) {
		log_error("store: a challenge needs a valid sender and message id");
		return -1;
	}
	stmt = store_stmt_prepare(store, sql);
	if (stmt == NULL)
		return -1;
	util_random_hex(nonce, CISS_NONCE_BYTES);
	util_sanitize(clean_subject, sizeof(clean_subject), subject, strlen(subject));
	folded = ciss_fold(sender);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, recipient, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 4, clean_subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 5, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 6, nonce, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 7, now);
	sqlite3_bind_int64(stmt, 8, expires_at);
	rc = store_stmt_done(store, stmt, "recording a challenge");
	free(folded);
	if (rc < 0)
		return -1;
	*id_r = sqlite3_last_insert_rowid(store->db);
	return 0;
}

int store_ciss_challenge_open(struct store *store, int64_t user_id, const char *sender, int64_t now,
			      int64_t *id_r)
{
	static const char sql[] = "SELECT id FROM ciss_challenge WHERE user_id = ? AND sender = ?"
				  " AND answered_at IS NULL AND expires_at > ?"
				  " ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = ciss_fold(sender);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, now);
	rc = store_stmt_step(store, stmt, "looking up an open challenge");
	if (rc == 1)
		*id_r = sqlite3_column_int64(stmt, 0);
	store_stmt_release(stmt);
	free(folded);
	return rc;
}

int store_ciss_challenge_get(struct store *store, int64_t id, struct ciss_challenge *challenge)
{
	static const char sql[] =
	    "SELECT id, user_id, sender, recipient, subject, coalesce(message_id, ''), nonce,"
	    " created_at, expires_at, coalesce(answered_at, 0) FROM ciss_challenge WHERE id = ?";
	sqlite3_stmt *stmt = user_stmt_int(store, sql, id);
	int rc = user_stmt_row(store, stmt, "reading a challenge");

	memset(challenge, 0, sizeof(*challenge));
	if (rc == 1) {
		const char *message_id = (const char *)sqlite3_column_text(stmt, 5);
		const char *nonce = (const char *)sqlite3_column_text(stmt, 6);

		challenge->id = sqlite3_column_int64(stmt, 0);
		challenge->user_id = sqlite3_column_int64(stmt, 1);
		challenge->sender = user_column_strdup(stmt, 2);
		challenge->recipient = user_column_strdup(stmt, 3);
		challenge->subject = user_column_strdup(stmt, 4);
		snprintf(challenge->message_id, sizeof(challenge->message_id), "%s",
			 message_id != NULL ? message_id : "");
		snprintf(challenge->nonce, sizeof(challenge->nonce), "%s",
			 nonce != NULL ? nonce : "");
		challenge->created_at = sqlite3_column_int64(stmt, 7);
		challenge->expires_at = sqlite3_column_int64(stmt, 8);
		challenge->answered_at = sqlite3_column_int64(stmt, 9);
	}
	store_stmt_release(stmt);
	return rc;
}

/* The count STMT (bound) yields; -1 error (logged as WHAT). */
static int64_t ciss_count(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	int rc = store_stmt_step(store, stmt, what);
	int64_t count = rc == 1 ? sqlite3_column_int64(stmt, 0) : -1;

	store_stmt_release(stmt);
	return count;
}

int64_t store_ciss_challenge_count_sender(struct store *store, int64_t user_id, const char *sender,
					  int64_t since)
{
	static const char sql[] = "SELECT count(*) FROM ciss_challenge"
				  " WHERE user_id = ? AND sender = ? AND created_at >= ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int64_t count;

	if (stmt == NULL)
		return -1;
	folded = ciss_fold(sender);
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, folded, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, since);
	count = ciss_count(store, stmt, "counting a sender's challenges");
	free(folded);
	return count;
}

int64_t store_ciss_challenge_count_since(struct store *store, int64_t user_id, int64_t since)
{
	static const char sql[] = "SELECT count(*) FROM ciss_challenge"
				  " WHERE created_at >= ? AND (? = 0 OR user_id = ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, since);
	sqlite3_bind_int64(stmt, 2, user_id);
	sqlite3_bind_int64(stmt, 3, user_id);
	return ciss_count(store, stmt, "counting challenges");
}

/* Moves every message USER_ID holds for SENDER from challenged to delivery
 * and forgets their hold, inside the caller's transaction. How many, or -1. */
static int64_t ciss_release_sender(struct store *store, int64_t user_id, const char *sender)
{
	static const char list_sql[] = "SELECT message_id FROM ciss_held"
				       " WHERE user_id = ? AND sender = ? ORDER BY held_at";
	static const char forget_sql[] = "DELETE FROM ciss_held WHERE message_id = ?";
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, list_sql);
	int64_t moved = 0;
	int rc;

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_text(stmt, 2, sender, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);

		if (id == NULL || !spool_id_valid(id))
			continue;
		ids = store_list_grow(ids, count, &capacity, sizeof(*ids));
		snprintf(ids[count++], sizeof(ids[0]), "%s", id);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing held messages");
		free(ids);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		/* 0: no longer challenged (expired, or released by hand): not ours. */
		rc =
		    store_lifecycle_move(store, ids[i], MESSAGE_CHALLENGED, MESSAGE_DELIVERY, NULL);
		if (rc < 0 || user_stmt_done(store, user_stmt_text(store, forget_sql, ids[i]),
					     "forgetting a held message") < 0) {
			free(ids);
			return -1;
		}
		moved += rc;
	}
	free(ids);
	return moved;
}

int64_t store_ciss_release_sender(struct store *store, int64_t user_id, const char *sender)
{
	char *folded = ciss_fold(sender);
	int64_t moved;
	bool outer;

	if (store_tx_begin(store, &outer) < 0) {
		free(folded);
		return -1;
	}
	moved = ciss_release_sender(store, user_id, folded);
	free(folded);
	if (moved < 0) {
		store_tx_rollback(store, outer);
		return -1;
	}
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return moved;
}

int store_ciss_challenge_answer(struct store *store, int64_t id, const char *nonce, int64_t now,
				size_t *released_r)
{
	static const char mark_sql[] = "UPDATE ciss_challenge SET answered_at = ?"
				       " WHERE id = ? AND answered_at IS NULL";
	struct ciss_challenge challenge;
	char err[256];
	sqlite3_stmt *stmt;
	int64_t moved;
	bool outer;
	int rc;

	*released_r = 0;
	if (store_tx_begin(store, &outer) < 0)
		return -1;
	rc = store_ciss_challenge_get(store, id, &challenge);
	if (rc < 0)
		goto fail;
	if (rc == 0 || strlen(nonce) != CISS_NONCE_LEN ||
	    sodium_memcmp(nonce, challenge.nonce, CISS_NONCE_LEN) != 0) {
		rc = CISS_ANSWER_UNKNOWN;
		goto refused;
	}
	if (challenge.answered_at != 0) {
		rc = CISS_ANSWER_ANSWERED;
		goto refused;
	}
	if (now >= challenge.expires_at) {
		rc = CISS_ANSWER_EXPIRED;
		goto refused;
	}
	stmt = store_stmt_prepare(store, mark_sql);
	if (stmt == NULL)
		goto fail;
	sqlite3_bind_int64(stmt, 1, now);
	sqlite3_bind_int64(stmt, 2, id);
	if (store_stmt_done(store, stmt, "answering a challenge") < 0)
		goto fail;
	if (store_ciss_trust(store, challenge.user_id, challenge.sender, CISS_TRUST_ANSWER, now,
			     err, sizeof(err)) < 0)
		goto fail;
	moved = ciss_release_sender(store, challenge.user_id, challenge.sender);
	if (moved < 0)
		goto fail;
	if (store_tx_commit(store, outer) < 0) {
		ciss_challenge_clear(&challenge);
		return -1;
	}
	*released_r = (size_t)moved;
	ciss_challenge_clear(&challenge);
	return CISS_ANSWER_DONE;
refused:
	ciss_challenge_clear(&challenge);
	store_tx_rollback(store, outer);
	return rc;
fail:
	ciss_challenge_clear(&challenge);
	store_tx_rollback(store, outer);
	return -1;
}

/* ---- Held messages ---- */

int store_ciss_held_list(struct store *store, int64_t user_id, struct ciss_held **list_r,
			 size_t *count_r)
{
	static const char sql[] =
	    "SELECT h.message_id, h.user_id, u.name, h.sender, h.held_at,"
	    " (SELECT coalesce(max(c.id), 0) FROM ciss_challenge c"
	    "  WHERE c.user_id = h.user_id AND c.sender = h.sender)"
	    " FROM ciss_held h JOIN user u ON u.id = h.user_id JOIN message m ON m.id = "
	    "h.message_id"
	    " WHERE m.state = 'challenged' AND (? = 0 OR h.user_id = ?) ORDER BY h.held_at, m.seq";
	struct ciss_held *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, user_id);
	sqlite3_bind_int64(stmt, 2, user_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 0);
		struct ciss_held *held;

		if (id == NULL || !spool_id_valid(id))
			continue;
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		held = &list[count++];
		memcpy(held->message_id, id, SPOOL_ID_LEN + 1);
		held->user_id = sqlite3_column_int64(stmt, 1);
		held->user_name = user_column_strdup(stmt, 2);
		held->sender = user_column_strdup(stmt, 3);
		held->held_at = sqlite3_column_int64(stmt, 4);
		held->challenge_id = sqlite3_column_int64(stmt, 5);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing held messages");
		store_ciss_held_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_ciss_held_list_free(struct ciss_held **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].user_name);
		free((*list)[i].sender);
	}
	xfree(list);
}

int store_ciss_held_expire(struct store *store, int64_t cutoff, enum ciss_hold_expiry expiry,
			   int hold_days, char (**ids_r)[SPOOL_ID_LEN + 1], size_t *count_r)
{
	static const char forget_sql[] = "DELETE FROM ciss_held WHERE message_id = ?";
	char(*ids)[SPOOL_ID_LEN + 1] = NULL;
	size_t count = 0;
	char *line;
	int moved = 0;

	*ids_r = NULL;
	*count_r = 0;
	if (expiry == CISS_HOLD_EXPIRY_DELETE)
		return store_message_expire_challenged_rows(store, cutoff, ids_r, count_r);
	if (store_message_ids_before(store, MESSAGE_CHALLENGED, cutoff, &ids, &count) < 0)
		return -1;
	line = xasprintf("ciss\t0.000\t0.000\tno answer to the challenge within %d days: to the "
			 "quarantine\n",
			 hold_days);
	for (size_t i = 0; i < count; i++) {
		int rc = store_lifecycle_move(store, ids[i], MESSAGE_CHALLENGED, MESSAGE_QUARANTINE,
					      NULL);

		if (rc < 0 ||
		    (rc == 1 && store_message_add_reason(store, ids[i], "quarantine", line) < 0) ||
		    user_stmt_done(store, user_stmt_text(store, forget_sql, ids[i]),
				   "forgetting a held message") < 0) {
			moved = -1;
			break;
		}
		moved += rc;
	}
	free(line);
	free(ids);
	return moved;
}

int store_ciss_user_address(struct store *store, const char *pseudo_domain,
			    const struct ciss_settings *settings, int64_t user_id, char *out,
			    size_t outlen)
{
	static const char sql[] =
	    "SELECT address FROM address WHERE user_id = ? ORDER BY is_primary DESC, address";
	sqlite3_stmt *stmt = user_stmt_int(store, sql, user_id);
	char **candidates = NULL;
	size_t count = 0, capacity = 0;
	int rc, found = 0;

	if (stmt == NULL)
		return -1;
	/* Collected first: the Local Domain look-up below needs a statement
	 * of its own while this one would still be open. */
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *address = (const char *)sqlite3_column_text(stmt, 0);
		const char *at = address != NULL ? strrchr(address, '@') : NULL;

		if (at == NULL || !ciss_settings_has_domain(settings, at + 1))
			continue;
		candidates = store_list_grow(candidates, count, &capacity, sizeof(*candidates));
		candidates[count++] = xstrdup(address);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "reading a user's addresses");
		found = -1;
	}
	for (size_t i = 0; i < count && found == 0; i++) {
		found = store_local_domain_is_local(store, pseudo_domain,
						    strrchr(candidates[i], '@') + 1);
		if (found == 1)
			snprintf(out, outlen, "%s", candidates[i]);
	}
	for (size_t i = 0; i < count; i++)
		free(candidates[i]);
	free(candidates);
	return found;
}

int store_ciss_hold(struct store *store, const char *message_id, int64_t user_id,
		    const char *sender, int64_t now)
{
	static const char sql[] =
	    "INSERT INTO ciss_held (message_id, user_id, sender, held_at) VALUES (?, ?, ?, ?)"
	    " ON CONFLICT (message_id) DO UPDATE SET user_id = excluded.user_id,"
	    " sender = excluded.sender, held_at = excluded.held_at";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	char *folded;
	int rc;

	if (stmt == NULL)
		return -1;
	folded = ciss_fold(sender);
	sqlite3_bind_text(stmt, 1, message_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, user_id);
	sqlite3_bind_text(stmt, 3, folded, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, now);
	rc = store_stmt_done(store, stmt, "recording a held message");
	free(folded);
	return rc;
}
