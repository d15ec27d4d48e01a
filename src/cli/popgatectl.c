/*
 * popgatectl.c — the administrator's command line: its main, the command
 * table, and the read-only commands on accounts, the queues and the
 * configuration.
 *
 *   popgatectl --config FILE [--json] COMMAND ...
 *
 * It opens the same store as the daemon, beside it (SQLite WAL and a busy
 * timeout make that safe). Exit status: 0 ok, 1 refused or not found (with a
 * message on stderr), 2 usage error.
 *
 * Must never: load the credential key, or print a password, a password hash,
 * a sealed secret or a message body.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/output.h"
#include "core/config.h"
#include "core/log.h"
#include "core/util.h"
#include "store/account.h"
#include "store/db.h"
#include "store/message.h"
#include "store/query.h"
#include "store/spool.h"

enum ctl_status { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2 };

struct ctl {
	bool json;
	struct popgate_config cfg;
	struct store *store; /* NULL for commands that do not need it */
};

struct ctl_command {
	const char *group; /* "account" */
	const char *name;  /* "list" */
	const char *args;  /* "[--state S] [--user U]" */
	const char *summary;
	const char *details; /* options and output, for COMMAND --help; may be NULL */
	/* ARGV holds the arguments after the command's name, --json taken out. */
	int (*run)(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
};

static int ctl_account_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_account_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_queue_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_queue_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_config_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

static const struct ctl_command ctl_commands[] = {
    {"account", "list", "", "list the provider accounts",
     "Shows each account's user, provider host, last fetch, last error and its\n"
     "messages per queue (processing, delivery, delivered, suspect).\n",
     ctl_account_list},
    {"account", "show", "NAME", "show one account (LOGIN@HOST)",
     "Shows the account's provider host, login, user, last fetch time, last\n"
     "error, fetch failures, next retry and its messages per queue.\n"
     "Exits 1 if there is no such account.\n",
     ctl_account_show},
    {"queue", "list", "[--state S] [--user U]", "list messages, oldest first",
     "  --state S  only messages in queue S: processing, delivery, delivered, suspect\n"
     "  --user U   only messages of user U's accounts (exits 1 if there is no user U)\n"
     "Shows each message's id, account, user, state, size and received time.\n",
     ctl_queue_list},
    {"queue", "show", "ID", "show one message's record (not its body)",
     "Shows the message's account, user, state, size, worker attempts, times,\n"
     "provider UIDL, SHA-256 and the header lines popgate prepends.\n"
     "Exits 1 if there is no such message.\n",
     ctl_queue_show},
    {"config", "show", "", "print the effective configuration",
     "Prints every key as INI that popgate reads back (with --json: an object\n"
     "of sections of keys). The configuration holds no secret.\n",
     ctl_config_show},
};

#define CTL_COMMAND_COUNT (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

/* ---- usage ------------------------------------------------------------- */

static void ctl_usage(FILE *out)
{
	fprintf(out, "usage: popgatectl --config FILE [--json] COMMAND [ARGS...]\n"
		     "       popgatectl [COMMAND] --help\n\n"
		     "options:\n"
		     "  --config FILE  popgate's configuration (the store is its data_dir)\n"
		     "  --json         print JSON instead of tables\n"
		     "  --help         print this, or a command's usage\n\n"
		     "commands:\n");
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++) {
		const struct ctl_command *c = &ctl_commands[i];
		char *head =
		    xasprintf("%s %s%s%s", c->group, c->name, *c->args ? " " : "", c->args);

		fprintf(out, "  %-36s %s\n", head, c->summary);
		free(head);
	}
	fprintf(out, "\nexit status: 0 ok, 1 refused or not found, 2 usage error\n");
}

static void ctl_command_usage(const struct ctl_command *c, FILE *out, bool details)
{
	fprintf(out, "usage: popgatectl --config FILE [--json] %s %s%s%s\n", c->group, c->name,
		*c->args ? " " : "", c->args);
	if (details)
		fprintf(out, "%s.\n%s", c->summary, c->details != NULL ? c->details : "");
}

/* The usage of every command of GROUP. */
static void ctl_group_usage(const char *group, FILE *out)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0)
			ctl_command_usage(&ctl_commands[i], out, false);
}

static bool ctl_group_known(const char *group)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0)
			return true;
	return false;
}

static const struct ctl_command *ctl_command_find(const char *group, const char *name)
{
	for (size_t i = 0; i < CTL_COMMAND_COUNT; i++)
		if (strcmp(ctl_commands[i].group, group) == 0 &&
		    strcmp(ctl_commands[i].name, name) == 0)
			return &ctl_commands[i];
	return NULL;
}

/* Prints "popgatectl: MESSAGE" and CMD's usage on stderr; CTL_USAGE. */
static int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("popgatectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL)
		ctl_command_usage(cmd, stderr, false);
	else
		fputs("try 'popgatectl --help'\n", stderr);
	return CTL_USAGE;
}

/* Prints "popgatectl: MESSAGE" on stderr; CTL_REFUSED. */
static int ctl_refuse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int ctl_refuse(const char *fmt, ...)
{
	va_list ap;

	fputs("popgatectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_REFUSED;
}

/* S for a message on stderr (it came from the command line), in BUF. */
static const char *ctl_clean(const char *s, char *buf, size_t len)
{
	util_sanitize(buf, len, s, strlen(s));
	return buf;
}

/* CTL_OK, or CTL_REFUSED when printing failed (a closed pipe, a full disk). */
static int ctl_printed(int rc)
{
	if (rc < 0)
		return ctl_refuse("cannot write the output: %s", strerror(errno));
	return CTL_OK;
}

/* Opens the store in the configured data folder, which must hold one: the
 * CLI never creates a database (that is the daemon's first start). Commands
 * call it after checking their arguments, so a usage error is one even
 * without a store. */
static int ctl_open_store(struct ctl *ctl)
{
	char *path = xasprintf("%s/popgate.db", ctl->cfg.data_dir);
	char err[512];
	int rc = CTL_OK;

	if (access(path, F_OK) < 0) {
		rc = ctl_refuse("no store at %s (has popgate been started with this "
				"configuration?)",
				path);
	} else {
		ctl->store = store_open(ctl->cfg.data_dir, err, sizeof(err));
		if (ctl->store == NULL)
			rc = ctl_refuse("cannot open the store: %s", err);
	}
	free(path);
	return rc;
}

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

static int ctl_account_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

static int ctl_account_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

/* ---- queues ------------------------------------------------------------ */

/*
 * The value of option NAME at ARGV[*I] ("--name V" or "--name=V"), moving *I
 * past it; NULL if ARGV[*I] is not that option. *MISSING_R is set when the
 * option is there but its value is not.
 */
static const char *ctl_option(const char *name, int argc, char **argv, int *i, bool *missing_r)
{
	size_t len = strlen(name);

	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing_r = true;
		return NULL;
	}
	(*i)++;
	return argv[*i];
}

static int ctl_queue_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ID", "ACCOUNT", "USER", "STATE", "SIZE", "RECEIVED"};
	struct store_query_message *list = NULL;
	const char *user = NULL;
	size_t count = 0;
	int state = -1, rc;
	char buf[256];

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--state", argc, argv, &i, &missing)) != NULL) {
			state = store_message_state_parse(value);
			if (state < 0)
				return ctl_usage_error(
				    cmd,
				    "unknown state '%s' (processing, delivery, delivered, suspect)",
				    ctl_clean(value, buf, sizeof(buf)));
		} else if ((value = ctl_option("--user", argc, argv, &i, &missing)) != NULL) {
			user = value;
		} else if (missing) {
			return ctl_usage_error(cmd, "%s needs a value", argv[i]);
		} else {
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
		}
	}
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (user != NULL) {
		int exists = store_user_exists(ctl->store, user, NULL);

		if (exists < 0)
			return ctl_refuse("cannot read the users");
		if (exists == 0)
			return ctl_refuse("no user '%s'", ctl_clean(user, buf, sizeof(buf)));
	}
	if (store_query_messages(ctl->store, state, user, &list, &count) < 0)
		return ctl_refuse("cannot read the messages");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array, json_pack("{s:s, s:o, s:o, s:s, s:I, s:o}", "id", list[i].id,
					     "account", cli_json_string(list[i].account_name),
					     "user", cli_json_string(list[i].user_name), "state",
					     store_message_state_name(list[i].state), "size",
					     (json_int_t)list[i].body_size, "received",
					     cli_json_time(list[i].received_at)));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(6, headers);

		for (size_t i = 0; i < count; i++) {
			char size[24], received[CLI_TIME_LEN];

			snprintf(size, sizeof(size), "%lld", (long long)list[i].body_size);
			cli_format_time(list[i].received_at, received);
			cli_table_add(table,
				      (const char *const[]){
					  list[i].id, list[i].account_name, list[i].user_name,
					  store_message_state_name(list[i].state), size, received});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_query_message_list_free(&list, count);
	return rc;
}

static int ctl_queue_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_query_message m;
	char buf[256];
	int found, rc;

	if (argc != 1)
		return ctl_usage_error(cmd, "'queue show' takes one message id");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	/* Ids are SPOOL_ID_LEN hex digits; anything else cannot name a message. */
	if (!spool_id_valid(argv[0]))
		return ctl_refuse("no message '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	found = store_query_message_get(ctl->store, argv[0], &m);
	if (found < 0) {
		store_query_message_clear(&m);
		return ctl_refuse("cannot read the message");
	}
	if (found == 0)
		return ctl_refuse("no message '%s'", argv[0]);
	if (ctl->json) {
		/* The prepended lines are ours and ASCII; sanitise only if not. */
		json_t *prepend = json_string(m.prepend);

		if (prepend == NULL)
			prepend = cli_json_string(m.prepend);
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:s, s:o, s:o, s:s, s:I, s:i, s:o, s:o, s:o, s:o, s:o}", "id", m.id,
			      "account", cli_json_string(m.account_name), "user",
			      cli_json_string(m.user_name), "state",
			      store_message_state_name(m.state), "size", (json_int_t)m.body_size,
			      "attempts", m.attempts, "received", cli_json_time(m.received_at),
			      "state_changed", cli_json_time(m.state_changed_at), "uidl",
			      cli_json_string(m.uidl), "sha256", cli_json_string(m.sha256),
			      "prepend", prepend),
		    stdout));
	} else {
		struct cli_table *table = cli_table_new(2, NULL);
		char size[24], attempts[24], received[CLI_TIME_LEN], changed[CLI_TIME_LEN];
		const char *label = "prepended";
		const char *line = m.prepend;

		snprintf(size, sizeof(size), "%lld", (long long)m.body_size);
		snprintf(attempts, sizeof(attempts), "%d", m.attempts);
		cli_format_time(m.received_at, received);
		cli_format_time(m.state_changed_at, changed);
		cli_table_add(table, (const char *const[]){"id", m.id});
		cli_table_add(table, (const char *const[]){"account", m.account_name});
		cli_table_add(table, (const char *const[]){"user", m.user_name});
		cli_table_add(table,
			      (const char *const[]){"state", store_message_state_name(m.state)});
		cli_table_add(table, (const char *const[]){"size", size});
		cli_table_add(table, (const char *const[]){"attempts", attempts});
		cli_table_add(table, (const char *const[]){"received", received});
		cli_table_add(table, (const char *const[]){"state changed", changed});
		cli_table_add(table, (const char *const[]){"uidl", m.uidl});
		cli_table_add(table, (const char *const[]){"sha256", m.sha256});
		/* The prepended header lines, one per row, so CRLFs are not
		 * turned into "??" in the middle of a row. */
		if (*line == '\0')
			cli_table_add(table, (const char *const[]){label, NULL});
		while (*line != '\0') {
			size_t len = strcspn(line, "\r\n");
			char *text = xstrndup(line, len);

			/* A folded line's leading tab would print as '?'. */
			for (char *t = text; *t != '\0'; t++)
				if (*t == '\t')
					*t = ' ';
			cli_table_add(table, (const char *const[]){label, text});
			free(text);
			label = "";
			line += len;
			line += strspn(line, "\r\n");
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_query_message_clear(&m);
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

static int ctl_config_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option options[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct ctl ctl = {0};
	const struct ctl_command *cmd;
	const char *config_path = NULL;
	bool help = false;
	char err[512], buf[256];
	int opt, rc, rest_argc = 0;
	char **rest = NULL;

	opterr = 0;
	/* "+": options end at the command, whose own options it parses. */
	while ((opt = getopt_long(argc, argv, "+", options, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 'j':
			ctl.json = true;
			break;
		case 'h':
			help = true;
			break;
		default:
			return ctl_usage_error(NULL, "unknown option or missing value: '%s'",
					       ctl_clean(argv[optind - 1], buf, sizeof(buf)));
		}
	}
	if (optind >= argc) {
		if (help) {
			ctl_usage(stdout);
			return CTL_OK;
		}
		ctl_usage(stderr);
		return CTL_USAGE;
	}
	if (!ctl_group_known(argv[optind]))
		return ctl_usage_error(NULL, "unknown command '%s'",
				       ctl_clean(argv[optind], buf, sizeof(buf)));
	if (optind + 1 >= argc || strcmp(argv[optind + 1], "--help") == 0) {
		if (help || optind + 1 < argc) {
			ctl_group_usage(argv[optind], stdout);
			return CTL_OK;
		}
		fprintf(stderr, "popgatectl: '%s' needs a subcommand\n", argv[optind]);
		ctl_group_usage(argv[optind], stderr);
		return CTL_USAGE;
	}
	cmd = ctl_command_find(argv[optind], argv[optind + 1]);
	if (cmd == NULL) {
		fprintf(stderr, "popgatectl: unknown command '%s %s'\n", argv[optind],
			ctl_clean(argv[optind + 1], buf, sizeof(buf)));
		ctl_group_usage(argv[optind], stderr);
		return CTL_USAGE;
	}
	/* The command's arguments, with --json and --help (allowed anywhere)
	 * taken out. */
	rest = xcalloc((size_t)argc, sizeof(*rest));
	for (int i = optind + 2; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			ctl.json = true;
		else if (strcmp(argv[i], "--help") == 0)
			help = true;
		else
			rest[rest_argc++] = argv[i];
	}
	if (help) {
		ctl_command_usage(cmd, stdout, true);
		rc = CTL_OK;
		goto done;
	}
	if (config_path == NULL) {
		rc = ctl_usage_error(cmd, "--config FILE is required");
		goto done;
	}

	log_set_role("ctl");
	/* Store errors go to stderr, beside the command's own message. */
	if (log_open(NULL, LOG_WARN) < 0) {
		rc = ctl_refuse("cannot open the log: %s", strerror(errno));
		goto done;
	}
	if (config_load(&ctl.cfg, config_path, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	rc = cmd->run(&ctl, cmd, rest_argc, rest);
done:
	store_close(&ctl.store);
	config_free(&ctl.cfg);
	free(rest);
	log_close();
	return rc;
}
