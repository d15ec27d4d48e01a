/*
 * ctl_user.c — popgatectl's commands on users (list, show, add, del,
 * passwd), their addresses (list, add, del) and the seats (status, set),
 * through store/user.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "core/crypto.h"
#include "store/profile.h"
#include "store/query.h"
#include "store/user.h"

/* ---- users ------------------------------------------------------------- */

static json_t *ctl_user_json(const struct store_user *u)
{
	return json_pack(
	    "{s:o, s:o, s:b, s:o, s:o, s:I, s:I, s:I}", "name", cli_json_string(u->name), "origin",
	    cli_json_string(u->origin), "seat", u->has_seat, "waiting_since",
	    u->has_seat ? json_null() : cli_json_time(u->seat_requested_at), "created",
	    cli_json_time(u->created_at), "addresses", (json_int_t)u->address_count, "accounts",
	    (json_int_t)u->account_count, "messages", (json_int_t)u->message_count);
}

int ctl_user_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"USER",	  "ORIGIN",   "SEAT",	"ADDRESSES",
					      "ACCOUNTS", "MESSAGES", "CREATED"};
	struct store_user *list = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'user list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_user_list(ctl->store, &list, &count) < 0)
		return ctl_refuse("cannot read the users");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array, ctl_user_json(&list[i]));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(7, headers);

		for (size_t i = 0; i < count; i++) {
			char n[3][24], created[CLI_TIME_LEN];

			snprintf(n[0], sizeof(n[0]), "%lld", (long long)list[i].address_count);
			snprintf(n[1], sizeof(n[1]), "%lld", (long long)list[i].account_count);
			snprintf(n[2], sizeof(n[2]), "%lld", (long long)list[i].message_count);
			cli_format_time(list[i].created_at, created);
			cli_table_add(table,
				      (const char *const[]){list[i].name, list[i].origin,
							    list[i].has_seat ? "yes" : "waiting",
							    n[0], n[1], n[2], created});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_user_list_free(&list, count);
	return rc;
}

int ctl_user_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_user u;
	struct store_address *addrs = NULL;
	size_t naddrs = 0, naccounts = 0;
	char **accounts = NULL;
	char buf[256], err[512];
	char profile[STORE_PROFILE_NAME_MAX + 1];
	int found, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	memset(&u, 0, sizeof(u));
	found = store_user_get(ctl->store, argv[0], &u);
	if (found < 0) {
		rc = ctl_refuse("cannot read the user");
		goto fail;
	}
	if (found == 0) {
		rc = ctl_refuse("no user '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
		goto fail;
	}
	if (store_address_list(ctl->store, u.name, &addrs, &naddrs, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto fail;
	}
	if (store_query_user_accounts(ctl->store, u.id, &accounts, &naccounts) < 0) {
		rc = ctl_refuse("cannot read the user's accounts");
		goto fail;
	}
	if (store_profile_of_user(ctl->store, u.id, profile) < 0) {
		rc = ctl_refuse("cannot read the user's profile");
		goto fail;
	}
	if (ctl->json) {
		json_t *obj = ctl_user_json(&u), *a = json_array(), *acc = json_array();

		for (size_t i = 0; i < naddrs; i++)
			json_array_append_new(a, json_pack("{s:o, s:b}", "address",
							   cli_json_string(addrs[i].address),
							   "primary", addrs[i].is_primary));
		for (size_t i = 0; i < naccounts; i++)
			json_array_append_new(acc, cli_json_string(accounts[i]));
		json_object_set_new(obj, "addresses", a);
		json_object_set_new(obj, "accounts", acc);
		json_object_set_new(obj, "local_password", json_boolean(u.password_hash != NULL));
		json_object_set_new(obj, "profile", json_string(profile));
		rc = ctl_printed(cli_json_print(obj, stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char created[CLI_TIME_LEN], since[CLI_TIME_LEN], seat[48], messages[24];
		const char *label = "addresses";

		cli_format_time(u.created_at, created);
		cli_format_time(u.seat_requested_at, since);
		if (u.has_seat)
			snprintf(seat, sizeof(seat), "yes");
		else
			snprintf(seat, sizeof(seat), "waiting since %s", since);
		snprintf(messages, sizeof(messages), "%lld", (long long)u.message_count);
		cli_table_add(table, (const char *const[]){"user", u.name});
		cli_table_add(table, (const char *const[]){"origin", u.origin});
		cli_table_add(table, (const char *const[]){"seat", seat});
		cli_table_add(table, (const char *const[]){"created", created});
		cli_table_add(table, (const char *const[]){"local password",
							   strcmp(u.origin, "local") != 0 ? "-"
							   : u.password_hash != NULL	  ? "set"
										     : "not set"});
		if (naddrs == 0)
			cli_table_add(table, (const char *const[]){label, NULL});
		for (size_t i = 0; i < naddrs; i++, label = "") {
			char *text = xasprintf("%s%s", addrs[i].address,
					       addrs[i].is_primary ? " (primary)" : "");

			cli_table_add(table, (const char *const[]){label, text});
			free(text);
		}
		label = "accounts";
		if (naccounts == 0)
			cli_table_add(table, (const char *const[]){label, NULL});
		for (size_t i = 0; i < naccounts; i++, label = "")
			cli_table_add(table, (const char *const[]){label, accounts[i]});
		cli_table_add(table, (const char *const[]){"messages", messages});
		cli_table_add(table, (const char *const[]){"profile", profile});
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
fail:
	store_query_names_free(&accounts, naccounts);
	store_address_list_free(&addrs, naddrs);
	store_user_clear(&u);
	return rc;
}

int ctl_user_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_user u;
	char *address = NULL;
	char err[512];
	int found, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	address = xasprintf("%s@%s", argv[0], ctl->cfg.pseudo_domain);
	if (store_user_add_local(ctl->store, argv[0], address, NULL, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	memset(&u, 0, sizeof(u));
	found = store_user_get(ctl->store, argv[0], &u);
	if (found != 1) {
		store_user_clear(&u);
		rc = ctl_refuse("user '%s' was created but cannot be read back", argv[0]);
		goto done;
	}
	rc = ctl_changed(ctl, NULL,
			 json_pack("{s:o, s:o, s:b}", "name", cli_json_string(u.name), "address",
				   cli_json_string(address), "seat", u.has_seat),
			 "user %s created (local, primary address %s, %s)", u.name, address,
			 u.has_seat ? "has a seat" : "waiting for a seat");
	store_user_clear(&u);
done:
	free(address);
	return rc;
}

int ctl_user_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_user_delete(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:b}", "name", cli_json_string(argv[0]), "deleted", 1),
			   "user %s deleted", argv[0]);
}

int ctl_user_passwd(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char hash[CRYPTO_HASH_MAX], err[512];
	char *password = NULL;
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if ((rc = ctl_read_password(&password)) != CTL_OK)
		return rc;
	rc = CTL_REFUSED;
	if (crypto_init() < 0 || crypto_password_hash(hash, password) < 0) {
		ctl_refuse("cannot hash the password");
		goto done;
	}
	if (store_user_set_password(ctl->store, argv[0], hash, err, sizeof(err)) < 0) {
		ctl_refuse("%s", err);
		goto done;
	}
	rc = ctl_changed(
	    ctl, NULL, json_pack("{s:o, s:b}", "name", cli_json_string(argv[0]), "password_set", 1),
	    "password of %s set", argv[0]);
done:
	ctl_password_free(&password);
	explicit_bzero(hash, sizeof(hash));
	return rc;
}

/* ---- seats ------------------------------------------------------------- */

/* Orders waiting users oldest first (ties by id, the order of creation). */
static int ctl_user_cmp_waiting(const void *a, const void *b)
{
	const struct store_user *x = a, *y = b;

	if (x->seat_requested_at != y->seat_requested_at)
		return x->seat_requested_at < y->seat_requested_at ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

int ctl_seat_status(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_seat_status st;
	struct store_user *list = NULL;
	size_t count = 0, waiting = 0;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'seat status' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_seat_status(ctl->store, &st) < 0 ||
	    store_user_list(ctl->store, &list, &count) < 0)
		return ctl_refuse("cannot read the seats");
	/* The waiting users first, in waiting order. */
	for (size_t i = 0; i < count; i++)
		if (!list[i].has_seat) {
			struct store_user t = list[waiting];

			list[waiting++] = list[i];
			list[i] = t;
		}
	qsort(list, waiting, sizeof(*list), ctl_user_cmp_waiting);
	if (ctl->json) {
		json_t *w = json_array();

		for (size_t i = 0; i < waiting; i++)
			json_array_append_new(
			    w, json_pack("{s:o, s:o}", "name", cli_json_string(list[i].name),
					 "since", cli_json_time(list[i].seat_requested_at)));
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:I, s:b, s:I, s:o, s:I, s:o}", "limit", (json_int_t)st.limit,
			      "unlimited", st.limit == 0, "used", (json_int_t)st.used, "free",
			      st.free < 0 ? json_null() : json_integer(st.free), "waiting",
			      (json_int_t)st.waiting, "waiting_users", w),
		    stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char n[4][24];
		const char *label = "waiting users";

		snprintf(n[0], sizeof(n[0]), "%lld", (long long)st.limit);
		snprintf(n[1], sizeof(n[1]), "%lld", (long long)st.used);
		snprintf(n[2], sizeof(n[2]), "%lld", (long long)st.free);
		snprintf(n[3], sizeof(n[3]), "%lld", (long long)st.waiting);
		cli_table_add(table,
			      (const char *const[]){"limit", st.limit == 0 ? "unlimited" : n[0]});
		cli_table_add(table, (const char *const[]){"used", n[1]});
		cli_table_add(table,
			      (const char *const[]){"free", st.free < 0 ? "unlimited" : n[2]});
		cli_table_add(table, (const char *const[]){"waiting", n[3]});
		if (waiting == 0)
			cli_table_add(table, (const char *const[]){label, NULL});
		for (size_t i = 0; i < waiting; i++, label = "") {
			char since[CLI_TIME_LEN];
			char *text;

			cli_format_time(list[i].seat_requested_at, since);
			text = xasprintf("%s (since %s)", list[i].name, since);
			cli_table_add(table, (const char *const[]){label, text});
			free(text);
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_user_list_free(&list, count);
	return rc;
}

int ctl_seat_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], buf[256], *end;
	long long limit;
	int seated, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one number")) != CTL_OK)
		return rc;
	errno = 0;
	limit = strtoll(argv[0], &end, 10);
	if (errno != 0 || end == argv[0] || *end != '\0')
		return ctl_usage_error(cmd, "'%s' is not a number",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	seated = store_seat_set_limit(ctl->store, limit, err, sizeof(err));
	if (seated < 0)
		return ctl_refuse("%s", err);
	if (limit == 0)
		snprintf(buf, sizeof(buf), "unlimited");
	else
		snprintf(buf, sizeof(buf), "%lld", limit);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:I, s:b, s:i}", "limit", (json_int_t)limit, "unlimited",
				     limit == 0, "seated", seated),
			   "seat limit set to %s; %d waiting user(s) got a seat", buf, seated);
}

/* ---- addresses --------------------------------------------------------- */

int ctl_address_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ADDRESS", "USER", "PRIMARY"};
	struct store_address *list = NULL;
	const char *user = NULL;
	size_t count = 0;
	char buf[256], err[512];
	int rc;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value = ctl_option("--user", argc, argv, &i, &missing);

		if (value != NULL)
			user = value;
		else if (missing)
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_address_list(ctl->store, user, &list, &count, err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array,
					      json_pack("{s:o, s:o, s:b}", "address",
							cli_json_string(list[i].address), "user",
							cli_json_string(list[i].user_name),
							"primary", list[i].is_primary));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(3, headers);

		for (size_t i = 0; i < count; i++)
			cli_table_add(table,
				      (const char *const[]){list[i].address, list[i].user_name,
							    list[i].is_primary ? "yes" : "no"});
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_address_list_free(&list, count);
	return rc;
}

int ctl_address_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if (argc != 2)
		return ctl_usage_error(cmd, "'address add' takes an address and a user name");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_address_add(ctl->store, argv[0], argv[1], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:o}", "address", cli_json_string(argv[0]), "user",
				     cli_json_string(argv[1])),
			   "%s assigned to %s", argv[0], argv[1]);
}

int ctl_address_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one address")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_address_delete(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(
	    ctl, NULL, json_pack("{s:o, s:b}", "address", cli_json_string(argv[0]), "deleted", 1),
	    "%s taken away", argv[0]);
}
