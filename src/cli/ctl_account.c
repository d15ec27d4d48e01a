/*
 * ctl_account.c — popgatectl's provider account commands (account list|show:
 * host, last fetch, last error, messages per queue, never a credential;
 * account del) and the effective configuration (config show).
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
#include "core/config.h"
#include "store/account.h"
#include "store/message.h"
#include "store/spool.h"

/* ---- accounts ---------------------------------------------------------- */

/* An account's figures, loaded without keeping its credentials. */
struct ctl_account {
	struct store_account account;
	int64_t counts[MESSAGE_STATE_COUNT];
};

/* Loads the account ID (NAME NULL) or NAME with its counts. 1/0/-1. */
static int ctl_account_load(struct ctl *ctl, int64_t id, const char *name, struct ctl_account *a)
{
	int found;

	memset(a, 0, sizeof(*a));
	found = name != NULL ? store_account_get(ctl->store, name, &a->account)
			     : store_account_get_by_id(ctl->store, id, &a->account);
	if (found != 1)
		return found;
	if (store_message_count_by_state(ctl->store, a->account.id, a->counts) < 0)
		return -1;
	return 1;
}

static json_t *ctl_account_json(const struct ctl_account *a)
{
	const struct store_account *acc = &a->account;
	json_t *messages = json_object();

	for (int s = 0; s < MESSAGE_STATE_COUNT; s++)
		json_object_set_new(messages, store_message_state_name((enum message_state)s),
				    json_integer(a->counts[s]));
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o}", "name",
			 cli_json_string(acc->name), "user", cli_json_string(acc->user_name),
			 "host", cli_json_string(acc->host), "login", cli_json_string(acc->login),
			 "last_fetch", cli_json_time(acc->last_fetch_at), "last_error",
			 cli_json_string(acc->last_error), "fetch_failures", acc->fetch_failures,
			 "next_retry", cli_json_time(acc->next_fetch_at), "messages", messages);
}

int ctl_account_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ACCOUNT",    "USER",	  "HOST",
					      "LAST FETCH", "PROCESSING", "DELIVERY",
					      "DELIVERED",  "SUSPECT",	  "LAST ERROR"};
	struct cli_table *table = NULL;
	json_t *list = NULL;
	int64_t *ids = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'account list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	rc = CTL_REFUSED;
	if (store_account_list_ids(ctl->store, &ids, &count) < 0) {
		ctl_refuse("cannot read the accounts");
		goto fail;
	}
	if (ctl->json)
		list = json_array();
	else
		table = cli_table_new(9, headers);
	for (size_t i = 0; i < count; i++) {
		struct ctl_account a;
		char when[CLI_TIME_LEN], n[MESSAGE_STATE_COUNT][24];
		int found = ctl_account_load(ctl, ids[i], NULL, &a);

		if (found < 0) {
			store_account_clear(&a.account);
			ctl_refuse("cannot read the accounts");
			goto fail;
		}
		/* One deleted between listing and loading is simply gone. */
		if (found == 0)
			continue;
		if (ctl->json) {
			json_array_append_new(list, ctl_account_json(&a));
		} else {
			cli_format_time(a.account.last_fetch_at, when);
			for (int s = 0; s < MESSAGE_STATE_COUNT; s++)
				snprintf(n[s], sizeof(n[s]), "%lld", (long long)a.counts[s]);
			cli_table_add(table, (const char *const[]){
						 a.account.name, a.account.user_name,
						 a.account.host, when, n[MESSAGE_PROCESSING],
						 n[MESSAGE_DELIVERY], n[MESSAGE_DELIVERED],
						 n[MESSAGE_SUSPECT], a.account.last_error});
		}
		store_account_clear(&a.account);
	}
	if (ctl->json) {
		rc = ctl_printed(cli_json_print(list, stdout));
		list = NULL;
	} else {
		rc = ctl_printed(cli_table_print(table, stdout));
	}
fail:
	json_decref(list);
	cli_table_free(&table);
	free(ids);
	return rc;
}

int ctl_account_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_account a;
	char buf[256];
	int found, rc;

	if (argc != 1)
		return ctl_usage_error(cmd, "'account show' takes one account name");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	found = ctl_account_load(ctl, 0, argv[0], &a);
	if (found < 0) {
		store_account_clear(&a.account);
		return ctl_refuse("cannot read the account");
	}
	if (found == 0)
		return ctl_refuse("no account '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	if (ctl->json) {
		rc = ctl_printed(cli_json_print(ctl_account_json(&a), stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char last[CLI_TIME_LEN], next[CLI_TIME_LEN], failures[24];
		char n[MESSAGE_STATE_COUNT][24];

		cli_format_time(a.account.last_fetch_at, last);
		cli_format_time(a.account.next_fetch_at, next);
		snprintf(failures, sizeof(failures), "%d", a.account.fetch_failures);
		cli_table_add(table, (const char *const[]){"account", a.account.name});
		cli_table_add(table, (const char *const[]){"user", a.account.user_name});
		cli_table_add(table, (const char *const[]){"provider host", a.account.host});
		cli_table_add(table, (const char *const[]){"login", a.account.login});
		cli_table_add(table, (const char *const[]){"last fetch", last});
		cli_table_add(table, (const char *const[]){"last error", a.account.last_error});
		cli_table_add(table, (const char *const[]){"fetch failures", failures});
		cli_table_add(table, (const char *const[]){"next retry", next});
		for (int s = 0; s < MESSAGE_STATE_COUNT; s++) {
			char label[48];

			snprintf(n[s], sizeof(n[s]), "%lld", (long long)a.counts[s]);
			snprintf(label, sizeof(label), "messages %s",
				 store_message_state_name((enum message_state)s));
			cli_table_add(table, (const char *const[]){label, n[s]});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_account_clear(&a.account);
	return rc;
}

/*
 * account del NAME [--force]: the account, its messages (rows and bodies) and
 * provider UIDLs, and its user when the provider login made it and nothing
 * else keeps it (store_account_delete). Mail not yet picked up (processing,
 * delivery) needs --force: deleting it is losing it.
 *
 * A running daemon: a fetch of the account that is under way fails at its
 * next store step (the account row is gone, the foreign keys refuse the
 * message row), so nothing more is deleted at the provider; a later request
 * finds no account and fetches nothing. A message a worker still holds
 * (processing, --force) comes back as a verdict for an unknown message,
 * which the daemon logs and drops. The account's next login at popgate makes
 * it anew, as a first login.
 */
int ctl_account_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_account_deletion deletion;
	const char *name = NULL;
	bool force = false;
	char buf[256];
	int rc, result;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			force = true;
		else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if (name == NULL)
		return ctl_usage_error(cmd, "'account del' takes one account name");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	result = store_account_delete(ctl->store, name, force, &deletion);
	if (result == 0) {
		rc = ctl_refuse("no account '%s'", ctl_clean(name, buf, sizeof(buf)));
		goto done;
	}
	if (result == -2) {
		rc = ctl_refuse("account %s has %lld message(s) not yet picked up (processing or "
				"delivery); --force deletes them too",
				ctl_clean(name, buf, sizeof(buf)), (long long)deletion.pending);
		goto done;
	}
	if (result < 0) {
		rc = ctl_refuse("cannot delete the account");
		goto done;
	}
	/* The rows are gone; a body left behind is an orphan that the daemon
	 * removes at its next start, so this is only a warning. */
	for (size_t i = 0; i < deletion.message_count; i++) {
		if (spool_remove(ctl->store->data_dir, deletion.message_ids[i]) < 0)
			fprintf(stderr,
				"popgatectl: warning: cannot remove the body of %s (%s); popgate "
				"removes it at its next start\n",
				deletion.message_ids[i], strerror(errno));
	}
	rc = ctl_changed(ctl, NULL,
			 json_pack("{s:o, s:b, s:I, s:I, s:o, s:b}", "name", cli_json_string(name),
				   "deleted", 1, "messages", (json_int_t)deletion.message_count,
				   "uidls", (json_int_t)deletion.uidl_count, "user",
				   cli_json_string(deletion.user_name), "user_deleted",
				   deletion.user_deleted),
			 "account %s deleted with %zu message(s) (%lld not picked up) and %lld "
			 "provider uidl(s); user %s %s",
			 name, deletion.message_count, (long long)deletion.pending,
			 (long long)deletion.uidl_count, deletion.user_name,
			 deletion.user_deleted ? "deleted with its addresses" : "kept");
done:
	store_account_deletion_clear(&deletion);
	return rc;
}

/* ---- configuration ----------------------------------------------------- */

/* The INI that config_write_summary prints, as {section: {key: value}}. */
static json_t *ctl_config_json(const char *ini)
{
	json_t *root = json_object(), *section = NULL;
	char *copy = xstrdup(ini), *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t len = strlen(line);
		char *eq;

		if (line[0] == '[' && len > 2 && line[len - 1] == ']') {
			line[len - 1] = '\0';
			section = json_object();
			json_object_set_new(root, line + 1, section);
		} else if (section != NULL && (eq = strstr(line, " =")) != NULL) {
			const char *value = eq + 2;

			*eq = '\0';
			if (*value == ' ')
				value++;
			json_object_set_new(section, line, cli_json_string(value));
		}
	}
	free(copy);
	return root;
}

int ctl_config_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char *ini = NULL;
	size_t len = 0;
	FILE *mem;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'config show' takes no arguments");
	if (!ctl->json)
		return ctl_printed(
		    config_write_summary(&ctl->cfg, stdout) < 0 || fflush(stdout) ? -1 : 0);
	mem = open_memstream(&ini, &len);
	if (mem == NULL)
		return ctl_refuse("out of memory");
	rc = config_write_summary(&ctl->cfg, mem);
	if (fclose(mem) != 0 || rc < 0) {
		free(ini);
		return ctl_refuse("cannot write the configuration");
	}
	rc = ctl_printed(cli_json_print(ctl_config_json(ini), stdout));
	free(ini);
	return rc;
}
