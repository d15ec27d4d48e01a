/*
 * ctl_profile.c — popgatectl's filter profile commands (profile add, set,
 * show, list, del; user set NAME profile P) and the sender allow and block
 * lists (sender add, del, list). The running daemon reads a user's profile
 * and the lists at each message, so a change judges the next message
 * without a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "store/account.h"
#include "store/profile.h"
#include "store/sender_list.h"
#include "store/user.h"

/* ---- profiles ------------------------------------------------------------ */

static json_t *ctl_profile_json(const struct store_profile *p)
{
	json_t *filters = json_array();

	for (size_t i = 0; i < p->filter_count; i++)
		json_array_append_new(
		    filters, json_pack("{s:s, s:b, s:f}", "name", p->filters[i].name, "enabled",
				       p->filters[i].enabled, "weight", p->filters[i].weight));
	return json_pack("{s:s, s:f, s:f, s:b, s:b, s:I, s:o}", "name", p->name, "tag_at",
			 p->tag_at, "quarantine_at", p->quarantine_at, "hold", p->hold, "challenge",
			 p->challenge, "users", (json_int_t)p->user_count, "filters", filters);
}

/* "trace, address, senders x2.000": the filters P runs, for a listing. */
static char *ctl_profile_filters_text(const struct store_profile *p)
{
	char *text = xstrdup("");

	for (size_t i = 0; i < p->filter_count; i++) {
		char *joined;

		if (!p->filters[i].enabled)
			continue;
		if (p->filters[i].weight != 1.0)
			joined = xasprintf("%s%s%s x%.3f", text, *text != '\0' ? ", " : "",
					   p->filters[i].name, p->filters[i].weight);
		else
			joined = xasprintf("%s%s%s", text, *text != '\0' ? ", " : "",
					   p->filters[i].name);
		free(text);
		text = joined;
	}
	return text;
}

int ctl_profile_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"NAME", "TAG_AT", "QUARANTINE_AT", "USERS",
					      "FILTERS"};
	struct store_profile *list = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc != 0)
		return ctl_usage_error(cmd, "'profile list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_profile_list(ctl->store, &list, &count) < 0)
		return ctl_refuse("cannot read the profiles");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array, ctl_profile_json(&list[i]));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(5, headers);

		for (size_t i = 0; i < count; i++) {
			char tag[32], quarantine[32], users[24];
			char *filters = ctl_profile_filters_text(&list[i]);

			snprintf(tag, sizeof(tag), "%.3f", list[i].tag_at);
			snprintf(quarantine, sizeof(quarantine), "%.3f", list[i].quarantine_at);
			snprintf(users, sizeof(users), "%lld", (long long)list[i].user_count);
			cli_table_add(table, (const char *const[]){list[i].name, tag, quarantine,
								   users, filters});
			free(filters);
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	free(list);
	return rc;
}

int ctl_profile_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_profile *p;
	char buf[256];
	int found, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one profile name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	p = xcalloc(1, sizeof(*p));
	found = store_profile_get(ctl->store, argv[0], p);
	if (found != 1) {
		free(p);
		if (found < 0)
			return ctl_refuse("cannot read the profile");
		return ctl_refuse("no profile '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	}
	if (ctl->json) {
		rc = ctl_printed(cli_json_print(ctl_profile_json(p), stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char tag[32], quarantine[32], users[24];

		snprintf(tag, sizeof(tag), "%.3f", p->tag_at);
		snprintf(quarantine, sizeof(quarantine), "%.3f", p->quarantine_at);
		snprintf(users, sizeof(users), "%lld", (long long)p->user_count);
		cli_table_add(table, (const char *const[]){"profile", p->name});
		cli_table_add(table, (const char *const[]){"tag_at", tag});
		cli_table_add(table, (const char *const[]){"quarantine_at", quarantine});
		cli_table_add(table, (const char *const[]){"hold", p->hold ? "yes" : "no"});
		cli_table_add(table,
			      (const char *const[]){"challenge", p->challenge ? "yes" : "no"});
		cli_table_add(table, (const char *const[]){"users", users});
		for (size_t i = 0; i < p->filter_count; i++) {
			char *text =
			    xasprintf("%s %s weight %.3f", p->filters[i].name,
				      p->filters[i].enabled ? "on" : "off", p->filters[i].weight);

			cli_table_add(table, (const char *const[]){i == 0 ? "filters" : "", text});
			free(text);
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	free(p);
	return rc;
}

int ctl_profile_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one profile name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_profile_add(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL, json_pack("{s:s}", "profile", argv[0]),
			   "profile %s added (a copy of default)", argv[0]);
}

int ctl_profile_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char **keys, **values;
	size_t count;
	char err[512];
	int rc;

	if (argc < 3 || (argc - 1) % 2 != 0)
		return ctl_usage_error(cmd,
				       "'profile set' takes a profile name and KEY VALUE pairs");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	count = (size_t)(argc - 1) / 2;
	keys = xcalloc(count, sizeof(*keys));
	values = xcalloc(count, sizeof(*values));
	for (size_t i = 0; i < count; i++) {
		keys[i] = argv[1 + 2 * i];
		values[i] = argv[2 + 2 * i];
	}
	rc = store_profile_set(ctl->store, argv[0], keys, values, count, err, sizeof(err));
	free(keys);
	free(values);
	if (rc < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:s, s:i}", "profile", argv[0], "changed", (int)count),
			   "profile %s: %zu setting(s) changed", argv[0], count);
}

int ctl_profile_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one profile name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_profile_delete(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL, json_pack("{s:s, s:b}", "profile", argv[0], "deleted", 1),
			   "profile %s deleted", argv[0]);
}

int ctl_user_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char buf[256], err[512];
	int rc;

	if (argc != 3)
		return ctl_usage_error(cmd, "'user set' takes a user name, a key and a value");
	if (strcmp(argv[1], "profile") != 0)
		return ctl_usage_error(cmd, "unknown user setting '%s' (known: profile)",
				       ctl_clean(argv[1], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_profile_assign(ctl->store, argv[0], argv[2], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL, json_pack("{s:s, s:s}", "user", argv[0], "profile", argv[2]),
			   "user %s: profile %s", argv[0], argv[2]);
}

/* ---- sender lists -------------------------------------------------------- */

/* The operands and --user of 'sender add|del': NEED operands into OPS. */
static int ctl_sender_args(const struct ctl_command *cmd, int argc, char **argv, size_t need,
			   const char **ops, const char **user_r)
{
	size_t have = 0;
	char buf[256];

	*user_r = NULL;
	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value = ctl_option("--user", argc, argv, &i, &missing);

		if (value != NULL)
			*user_r = value;
		else if (missing)
			return ctl_usage_error(cmd, "--user needs a value");
		else if (have < need && (argv[i][0] != '-' || have > 0))
			ops[have++] = argv[i];
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if (have != need)
		return ctl_usage_error(cmd, "missing arguments");
	return CTL_OK;
}

int ctl_sender_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *ops[2], *user;
	char buf[256], err[512];
	int kind, rc;

	if ((rc = ctl_sender_args(cmd, argc, argv, 2, ops, &user)) != CTL_OK)
		return rc;
	kind = sender_list_kind_parse(ops[0]);
	if (kind < 0)
		return ctl_usage_error(cmd, "the list is allow or block, not '%s'",
				       ctl_clean(ops[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_sender_list_add(ctl->store, user, kind, ops[1], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:s, s:s, s:o}", "list", ops[0], "pattern", ops[1], "user",
				     cli_json_string(user)),
			   "%s added to the %s %s list", ops[1], user != NULL ? user : "global",
			   ops[0]);
}

int ctl_sender_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *ops[1], *user;
	char err[512];
	int rc;

	if ((rc = ctl_sender_args(cmd, argc, argv, 1, ops, &user)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_sender_list_del(ctl->store, user, ops[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(ctl, NULL,
			   json_pack("{s:s, s:o, s:b}", "pattern", ops[0], "user",
				     cli_json_string(user), "deleted", 1),
			   "%s taken off the %s lists", ops[0], user != NULL ? user : "global");
}

int ctl_sender_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"OWNER", "LIST", "PATTERN", "ADDED"};
	struct sender_list_entry *list = NULL;
	const char *user;
	size_t count = 0;
	char buf[256];
	int rc;

	if ((rc = ctl_sender_args(cmd, argc, argv, 0, NULL, &user)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (user != NULL) {
		int exists = store_user_exists(ctl->store, user, NULL);

		if (exists < 0)
			return ctl_refuse("cannot read the users");
		if (exists == 0)
			return ctl_refuse("no user '%s'", ctl_clean(user, buf, sizeof(buf)));
	}
	if (store_sender_list_list(ctl->store, user, &list, &count) < 0)
		return ctl_refuse("cannot read the sender lists");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array, json_pack("{s:o, s:s, s:o, s:o}", "user",
					     cli_json_string(list[i].user_name), "list",
					     sender_list_kind_name(list[i].kind), "pattern",
					     cli_json_string(list[i].pattern), "added",
					     cli_json_time(list[i].created_at)));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(4, headers);

		for (size_t i = 0; i < count; i++) {
			char added[CLI_TIME_LEN];

			cli_format_time(list[i].created_at, added);
			cli_table_add(
			    table,
			    (const char *const[]){
				list[i].user_name != NULL ? list[i].user_name : "(global)",
				sender_list_kind_name(list[i].kind), list[i].pattern, added});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_sender_list_free(&list, count);
	return rc;
}
