/*
 * popgatectl.c — the administrator's command line: its main, the command
 * table, the commands on users, addresses and seats (through store/user.h),
 * the read-only commands on accounts and the configuration, and the queue
 * commands (list, show, release, delete).
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
#include "core/crypto.h"
#include "core/log.h"
#include "core/util.h"
#include "store/account.h"
#include "store/db.h"
#include "store/message.h"
#include "store/query.h"
#include "store/spool.h"
#include "store/user.h"

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
static int ctl_user_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_user_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_user_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_user_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_user_passwd(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_seat_status(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_seat_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_address_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_address_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_address_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_queue_release(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);
static int ctl_queue_delete(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv);

static const struct ctl_command ctl_commands[] = {
    {"user", "list", "", "list the users",
     "Shows each user's origin (provider or local), seat (yes or waiting), and\n"
     "its numbers of addresses, accounts and messages.\n",
     ctl_user_list},
    {"user", "show", "NAME", "show one user",
     "Shows the user's origin, seat or waiting time, creation time, addresses,\n"
     "provider accounts and number of messages. Exits 1 if there is no such user.\n",
     ctl_user_show},
    {"user", "add", "NAME", "create a local user",
     "Creates the local user NAME with the primary address NAME@<pseudo_domain>\n"
     "and no password (see 'user passwd'); it gets a seat if one is free, else\n"
     "it waits for one.\n",
     ctl_user_add},
    {"user", "del", "NAME", "delete a user and its addresses",
     "Refused (exit 1) for an unknown user and for one that still has provider\n"
     "accounts or messages.\n",
     ctl_user_del},
    {"user", "passwd", "NAME", "set a local user's password from standard input",
     "Reads one line from standard input as the new password (echo is not\n"
     "turned off; pipe it in) and stores its argon2id hash. Refused for an\n"
     "unknown user and for a provider-created one.\n",
     ctl_user_passwd},
    {"address", "list", "[--user U]", "list the assigned addresses",
     "  --user U  only user U's addresses (exits 1 if there is no user U)\n"
     "Shows each address, its user and whether it is the user's primary one.\n",
     ctl_address_list},
    {"address", "add", "ADDRESS USER", "assign ADDRESS to USER",
     "Refused (exit 1) for an invalid address, one already assigned and an\n"
     "unknown user.\n",
     ctl_address_add},
    {"address", "del", "ADDRESS", "take ADDRESS away from its user",
     "Refused (exit 1) for an unknown address and for a user's primary one.\n", ctl_address_del},
    {"seat", "status", "", "show the seat limit and the waiting users",
     "Shows the limit (0 = unlimited), the seats used and free, and the users\n"
     "waiting for a seat, oldest first.\n",
     ctl_seat_status},
    {"seat", "set", "N", "set the seat limit (0 = unlimited)",
     "Then gives seats to waiting users, oldest first, while seats are free.\n"
     "Refused (exit 1) for a limit below the seats in use.\n",
     ctl_seat_set},
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
    {"queue", "release", "ID", "send a suspect message back to processing",
     "Moves the message from suspect to processing; the daemon resumes\n"
     "processing it at its next start. Exits 1 if there is no such message or\n"
     "it is not suspect.\n",
     ctl_queue_release},
    {"queue", "delete", "ID", "delete a message and its body",
     "Deletes the message's record and spool file. Refused (exit 1) for a\n"
     "message in processing (the daemon owns it) and an unknown id.\n",
     ctl_queue_delete},
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

/* A command's single operand, or a usage error (the caller returns it). */
static int ctl_one_arg(const struct ctl_command *cmd, int argc, char **argv, const char *what)
{
	(void)argv;
	if (argc != 1)
		return ctl_usage_error(cmd, "'%s %s' takes %s", cmd->group, cmd->name, what);
	return CTL_OK;
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

static int ctl_queue_release(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_message m;
	char buf[256];
	int found, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one message id")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (!spool_id_valid(argv[0]))
		return ctl_refuse("no message '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	memset(&m, 0, sizeof(m));
	found = store_message_get(ctl->store, argv[0], &m);
	store_message_clear(&m);
	if (found < 0)
		return ctl_refuse("cannot read the message");
	if (found == 0)
		return ctl_refuse("no message '%s'", argv[0]);
	/* The move checks the state itself, so a concurrent change is seen. */
	found = store_message_move(ctl->store, argv[0], MESSAGE_SUSPECT, MESSAGE_PROCESSING, NULL);
	if (found < 0)
		return ctl_refuse("cannot move the message");
	if (found == 0)
		return ctl_refuse("message %s is not suspect; only a suspect message can be "
				  "released",
				  argv[0]);
	if (ctl->json)
		return ctl_printed(cli_json_print(
		    json_pack("{s:s, s:s, s:s}", "id", argv[0], "state", "processing", "note",
			      "popgate resumes processing it at its next start"),
		    stdout));
	return ctl_printed(printf("message %s released to processing; popgate resumes "
				  "processing it at its next start\n",
				  argv[0]) < 0 ||
				   fflush(stdout) != 0
			       ? -1
			       : 0);
}

static int ctl_queue_delete(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char buf[256];
	int deleted, rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one message id")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (!spool_id_valid(argv[0]))
		return ctl_refuse("no message '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	deleted = store_query_message_delete(ctl->store, argv[0]);
	if (deleted < -1)
		return ctl_refuse("message %s is in processing; the daemon owns it until it "
				  "leaves that state",
				  argv[0]);
	if (deleted < 0)
		return ctl_refuse("cannot delete the message");
	if (deleted == 0)
		return ctl_refuse("no message '%s'", argv[0]);
	/* The row is gone; a body left behind is an orphan that the daemon
	 * removes at its next start, so this is only a warning. */
	if (spool_remove(ctl->store->data_dir, argv[0]) < 0)
		fprintf(stderr,
			"popgatectl: warning: cannot remove the body of %s (%s); popgate "
			"removes it at its next start\n",
			argv[0], strerror(errno));
	if (ctl->json)
		return ctl_printed(
		    cli_json_print(json_pack("{s:s, s:b}", "id", argv[0], "deleted", 1), stdout));
	return ctl_printed(printf("message %s deleted\n", argv[0]) < 0 || fflush(stdout) != 0 ? -1
											      : 0);
}

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

static int ctl_user_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

static int ctl_user_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct store_user u;
	struct store_address *addrs = NULL;
	size_t naddrs = 0, naccounts = 0;
	char **accounts = NULL;
	char buf[256], err[512];
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
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
fail:
	store_query_names_free(&accounts, naccounts);
	store_address_list_free(&addrs, naddrs);
	store_user_clear(&u);
	return rc;
}

static int ctl_user_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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
	if (ctl->json)
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:o, s:o, s:b}", "name", cli_json_string(u.name), "address",
			      cli_json_string(address), "seat", u.has_seat),
		    stdout));
	else
		rc = ctl_printed(printf("user %s created (local, primary address %s, %s)\n", u.name,
					address,
					u.has_seat ? "has a seat" : "waiting for a seat") < 0 ||
					 fflush(stdout) != 0
				     ? -1
				     : 0);
	store_user_clear(&u);
done:
	free(address);
	return rc;
}

static int ctl_user_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_user_delete(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	if (ctl->json)
		return ctl_printed(cli_json_print(
		    json_pack("{s:o, s:b}", "name", cli_json_string(argv[0]), "deleted", 1),
		    stdout));
	return ctl_printed(printf("user %s deleted\n", argv[0]) < 0 || fflush(stdout) != 0 ? -1
											   : 0);
}

static int ctl_user_passwd(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char hash[CRYPTO_HASH_MAX], err[512];
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one user name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	rc = CTL_REFUSED;
	len = getline(&line, &cap, stdin);
	if (len < 0) {
		ctl_refuse("no password on standard input");
		goto done;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len == 0) {
		ctl_refuse("the password is empty");
		goto done;
	}
	if (crypto_init() < 0 || crypto_password_hash(hash, line) < 0) {
		ctl_refuse("cannot hash the password");
		goto done;
	}
	if (store_user_set_password(ctl->store, argv[0], hash, err, sizeof(err)) < 0) {
		ctl_refuse("%s", err);
		goto done;
	}
	if (ctl->json)
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:o, s:b}", "name", cli_json_string(argv[0]), "password_set", 1),
		    stdout));
	else
		rc = ctl_printed(printf("password of %s set\n", argv[0]) < 0 || fflush(stdout) ? -1
											       : 0);
done:
	/* The plain password must not linger in freed memory. */
	if (line != NULL)
		explicit_bzero(line, cap);
	explicit_bzero(hash, sizeof(hash));
	free(line);
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

static int ctl_seat_status(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

static int ctl_seat_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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
	if (ctl->json)
		return ctl_printed(
		    cli_json_print(json_pack("{s:I, s:b, s:i}", "limit", (json_int_t)limit,
					     "unlimited", limit == 0, "seated", seated),
				   stdout));
	if (limit == 0)
		rc = printf("seat limit set to unlimited; %d waiting user(s) got a seat\n", seated);
	else
		rc = printf("seat limit set to %lld; %d waiting user(s) got a seat\n", limit,
			    seated);
	return ctl_printed(rc < 0 || fflush(stdout) != 0 ? -1 : 0);
}

/* ---- addresses --------------------------------------------------------- */

static int ctl_address_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

static int ctl_address_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if (argc != 2)
		return ctl_usage_error(cmd, "'address add' takes an address and a user name");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_address_add(ctl->store, argv[0], argv[1], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	if (ctl->json)
		return ctl_printed(
		    cli_json_print(json_pack("{s:o, s:o}", "address", cli_json_string(argv[0]),
					     "user", cli_json_string(argv[1])),
				   stdout));
	return ctl_printed(
	    printf("%s assigned to %s\n", argv[0], argv[1]) < 0 || fflush(stdout) ? -1 : 0);
}

static int ctl_address_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one address")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_address_delete(ctl->store, argv[0], err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	if (ctl->json)
		return ctl_printed(cli_json_print(
		    json_pack("{s:o, s:b}", "address", cli_json_string(argv[0]), "deleted", 1),
		    stdout));
	return ctl_printed(printf("%s taken away\n", argv[0]) < 0 || fflush(stdout) ? -1 : 0);
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
