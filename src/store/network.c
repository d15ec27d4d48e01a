/*
 * network.c — the Local Networks (see store/network.h): listing, adding and
 * deleting rows of the local_network table, and the loaded set the SMTP
 * server asks whether a client may relay.
 *
 * Owns: the local_network table's rows. Must never: store a network that
 * cidr_parse refuses, or let a row it cannot read match any client.
 * SECURITY: names and networks come from the administrator; a network here
 * opens the relay to its clients.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/cidr.h"
#include "core/log.h"
#include "core/util.h"
#include "store/network.h"
#include "store/user_internal.h"

struct local_networks {
	struct cidr *networks;
	size_t count;
};

/* A Local Network relays for everyone in it, so one wider than the widest
 * private range of its family would open the relay to much of the Internet
 * (0.0.0.0/0 is an open relay). */
int store_network_parse(const char *text, struct cidr *net, char *err, size_t errlen)
{
	char canonical[CIDR_TEXT_MAX];
	unsigned widest;

	if (cidr_parse(text, net, err, errlen) < 0)
		return -1;
	widest = net->family == AF_INET ? STORE_NETWORK_WIDEST_IPV4 : STORE_NETWORK_WIDEST_IPV6;
	if (net->prefix < widest) {
		cidr_format(net, canonical, sizeof(canonical));
		user_err(err, errlen,
			 "%s is too wide for a Local Network, whose clients may all relay: "
			 "the widest allowed is /%u",
			 canonical, widest);
		memset(net, 0, sizeof(*net));
		return -1;
	}
	return 0;
}

bool store_network_name_valid(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len <= STORE_NETWORK_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
		   len;
}

int store_network_list(struct store *store, struct store_network **list_r, size_t *count_r,
		       char *err, size_t errlen)
{
	static const char sql[] =
	    "SELECT name, cidr, created_at FROM local_network ORDER BY name COLLATE NOCASE, name";
	struct store_network *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL) {
		user_err_db(err, errlen);
		return -1;
	}
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct store_network *entry;

		list = store_list_grow(list, count, &capacity, sizeof(*list));
		entry = &list[count++];
		entry->name = user_column_strdup(stmt, 0);
		entry->cidr = user_column_strdup(stmt, 1);
		entry->created_at = sqlite3_column_int64(stmt, 2);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "listing local networks");
		user_err_db(err, errlen);
		store_network_list_free(&list, count);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

void store_network_list_free(struct store_network **list, size_t count)
{
	if (*list == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free((*list)[i].name);
		free((*list)[i].cidr);
	}
	xfree(list);
}

int store_network_add(struct store *store, const char *name, const char *cidr_text, char *canonical,
		      size_t canonical_len, char *err, size_t errlen)
{
	static const char name_sql[] =
	    "SELECT name FROM local_network WHERE name = ? COLLATE NOCASE";
	static const char cidr_sql[] = "SELECT name FROM local_network WHERE cidr = ?";
	static const char insert_sql[] =
	    "INSERT INTO local_network (name, cidr, created_at) VALUES (?, ?, ?)";
	char text[CIDR_TEXT_MAX], other[STORE_NETWORK_NAME_MAX + 1];
	struct cidr net;
	sqlite3_stmt *stmt;
	bool outer;
	int found;

	if (canonical != NULL && canonical_len > 0)
		canonical[0] = '\0';
	if (!store_network_name_valid(name)) {
		user_err(
		    err, errlen,
		    "'%s' is not a valid network name (1 to %d characters of A-Z a-z 0-9 . _ -)",
		    name, STORE_NETWORK_NAME_MAX);
		return -1;
	}
	if (store_network_parse(cidr_text, &net, err, errlen) < 0)
		return -1;
	cidr_format(&net, text, sizeof(text));
	if (user_tx_begin(store, &outer, err, errlen) < 0)
		return -1;
	found = user_text_by_key(store, name_sql, name, "looking up a local network", other,
				 sizeof(other));
	if (found == 1) {
		user_err(err, errlen, "there is a local network named %s already", other);
		goto fail;
	}
	if (found < 0)
		goto fail_db;
	/* The same network twice under two names would make deleting one of
	 * them look like closing the relay when it does not. */
	found = user_text_by_key(store, cidr_sql, text, "looking up a local network", other,
				 sizeof(other));
	if (found == 1) {
		user_err(err, errlen, "network %s is a local network already, named %s", text,
			 other);
		goto fail;
	}
	if (found < 0)
		goto fail_db;
	stmt = store_stmt_prepare(store, insert_sql);
	if (stmt == NULL)
		goto fail_db;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, text, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, util_now());
	if (store_stmt_done(store, stmt, "adding a local network") < 0)
		goto fail_db;
	if (user_tx_commit(store, outer, err, errlen) < 0)
		return -1;
	if (canonical != NULL && canonical_len > 0)
		snprintf(canonical, canonical_len, "%s", text);
	return 0;
fail_db:
	user_err_db(err, errlen);
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_network_delete(struct store *store, const char *name, char *err, size_t errlen)
{
	static const char sql[] = "DELETE FROM local_network WHERE name = ? COLLATE NOCASE";

	if (user_stmt_done(store, user_stmt_text(store, sql, name), "deleting a local network") <
	    0) {
		user_err_db(err, errlen);
		return -1;
	}
	if (sqlite3_changes(store->db) == 0) {
		user_err(err, errlen, "there is no local network named %s", name);
		return 0;
	}
	return 1;
}

struct local_networks *local_networks_load(struct store *store)
{
	struct store_network *rows = NULL;
	struct local_networks *set;
	size_t count = 0;
	char err[256];

	if (store_network_list(store, &rows, &count, err, sizeof(err)) < 0)
		return NULL;
	set = xcalloc(1, sizeof(*set));
	set->networks = xcalloc(count > 0 ? count : 1, sizeof(*set->networks));
	for (size_t i = 0; i < count; i++) {
		char clean[STORE_NETWORK_NAME_MAX * 4];

		if (rows[i].cidr == NULL ||
		    store_network_parse(rows[i].cidr, &set->networks[set->count], err,
					sizeof(err)) < 0) {
			/* Never guessed at: a network that cannot be read opens
			 * nothing. */
			util_sanitize(clean, sizeof(clean), rows[i].name, strlen(rows[i].name));
			log_event(LOG_WARN, "local_network_invalid", NULL, NULL,
				  "local network %s is skipped: %s", clean,
				  rows[i].cidr != NULL ? err : "no network");
			continue;
		}
		set->count++;
	}
	store_network_list_free(&rows, count);
	return set;
}

bool local_networks_contains(const struct local_networks *networks, const struct sockaddr *addr)
{
	if (networks == NULL || addr == NULL)
		return false;
	for (size_t i = 0; i < networks->count; i++)
		if (cidr_contains(&networks->networks[i], addr))
			return true;
	return false;
}

size_t local_networks_count(const struct local_networks *networks)
{
	return networks != NULL ? networks->count : 0;
}

void local_networks_free(struct local_networks **networks)
{
	if (*networks == NULL)
		return;
	free((*networks)->networks);
	xfree(networks);
}
