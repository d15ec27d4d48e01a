/*
 * ctl_queue.c — popgatectl's queue commands: list (by state and user), show
 * one message's record (never its body), release a suspect message, delete
 * one.
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
#include "store/account.h"
#include "store/message.h"
#include "store/query.h"
#include "store/spool.h"
#include "store/user.h"

/* ---- queues ------------------------------------------------------------ */

int ctl_queue_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

int ctl_queue_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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

int ctl_queue_release(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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
	return ctl_confirm(ctl,
			   json_pack("{s:s, s:s, s:s}", "id", argv[0], "state", "processing",
				     "note", "popgate resumes processing it at its next start"),
			   "message %s released to processing; popgate resumes processing it "
			   "at its next start",
			   argv[0]);
}

int ctl_queue_delete(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
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
	return ctl_confirm(ctl, json_pack("{s:s, s:b}", "id", argv[0], "deleted", 1),
			   "message %s deleted", argv[0]);
}
