/*
 * ctl_queue.c — popgatectl's queue commands: list (by state and user), show
 * one message's record (never its body), release a suspect message, delete
 * one; and the relay's outbound mail: list it with each recipient's status,
 * make recipients due now (retry, flush) or fail them (bounce, with a DSN).
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
#include "store/envelope.h"
#include "store/fingerprint.h"
#include "store/message.h"
#include "store/outbound.h"
#include "store/query.h"
#include "store/spam_report.h"
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
				    "unknown state '%s' (processing, delivery, delivered, suspect, "
				    "quarantine, challenged, outbound, sent, bounced)",
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
			    array,
			    json_pack("{s:s, s:o, s:o, s:s, s:I, s:o, s:o}", "id", list[i].id,
				      "account", cli_json_string(list[i].account_name), "user",
				      cli_json_string(list[i].user_name), "state",
				      store_message_state_name(list[i].state), "size",
				      (json_int_t)list[i].body_size, "received",
				      cli_json_time(list[i].received_at), "owner",
				      cli_json_string(list[i].owner_name)));
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
	struct store_query_recipient *recipients = NULL;
	size_t recipient_count = 0;
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
	if (store_query_message_recipients(ctl->store, m.id, &recipients, &recipient_count) < 0) {
		store_query_message_clear(&m);
		return ctl_refuse("cannot read the message's recipients");
	}
	double score = 0;
	char *action = NULL, *explanation = NULL;
	if (store_message_verdict_get(ctl->store, m.id, &score, &action, &explanation) < 0) {
		store_query_recipients_free(&recipients, recipient_count);
		store_query_message_clear(&m);
		return ctl_refuse("cannot read the message's verdict");
	}
	if (ctl->json) {
		/* The prepended lines are ours and ASCII; sanitise only if not. */
		json_t *prepend = json_string(m.prepend);
		json_t *attributed = json_array();

		if (prepend == NULL)
			prepend = cli_json_string(m.prepend);
		for (size_t i = 0; i < recipient_count; i++)
			json_array_append_new(attributed,
					      json_pack("{s:o, s:o}", "user",
							cli_json_string(recipients[i].user_name),
							"address",
							cli_json_string(recipients[i].address)));
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:s, s:o, s:o, s:s, s:I, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
			      "id", m.id, "account", cli_json_string(m.account_name), "user",
			      cli_json_string(m.user_name), "state",
			      store_message_state_name(m.state), "size", (json_int_t)m.body_size,
			      "attempts", m.attempts, "received", cli_json_time(m.received_at),
			      "state_changed", cli_json_time(m.state_changed_at), "uidl",
			      cli_json_string(m.uidl), "sha256", cli_json_string(m.sha256),
			      "prepend", prepend, "owner", cli_json_string(m.owner_name),
			      "recipients", attributed,
			      "verdict", action == NULL ? json_null()
					 : json_pack("{s:s, s:f, s:o}", "action", action, "score",
						     score, "filters",
						     ctl_explanation_json(explanation))),
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
		cli_table_add(table, (const char *const[]){"owner", m.owner_name});
		if (recipient_count == 0)
			cli_table_add(table, (const char *const[]){"recipients", NULL});
		for (size_t i = 0; i < recipient_count; i++) {
			char *who =
			    xasprintf("%s <%s>", recipients[i].user_name, recipients[i].address);

			cli_table_add(table,
				      (const char *const[]){i == 0 ? "recipients" : "", who});
			free(who);
		}
		if (action != NULL) {
			char points[32];

			snprintf(points, sizeof(points), "%.3f", score);
			cli_table_add(table, (const char *const[]){"action", action});
			cli_table_add(table, (const char *const[]){"score", points});
			ctl_explanation_rows(table, "filters", explanation);
		} else {
			cli_table_add(table, (const char *const[]){"action", NULL});
		}
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
	free(action);
	free(explanation);
	store_query_recipients_free(&recipients, recipient_count);
	store_query_message_clear(&m);
	return rc;
}

/*
 * The operand ID and the option --user U of 'queue release|delete': CTL_OK
 * with *ID_R and *USER_R (NULL without --user), or a usage error.
 */
static int ctl_queue_target(const struct ctl_command *cmd, int argc, char **argv, const char **id_r,
			    const char **user_r)
{
	char buf[256];

	*id_r = NULL;
	*user_r = NULL;
	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value = ctl_option("--user", argc, argv, &i, &missing);

		if (value != NULL)
			*user_r = value;
		else if (missing)
			return ctl_usage_error(cmd, "--user needs a value");
		else if (*id_r == NULL && argv[i][0] != '-')
			*id_r = argv[i];
		else
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], buf, sizeof(buf)));
	}
	if (*id_r == NULL)
		return ctl_usage_error(cmd, "'%s %s' takes one message id", cmd->group, cmd->name);
	return CTL_OK;
}

/*
 * CTL_OK when message ID exists and, with USER, is that user's (U4); else
 * the refusal. A message that is someone else's is "not yours", so a user
 * learns nothing of other users' mail but that.
 */
static int ctl_queue_check(struct ctl *ctl, const char *id, const char *user)
{
	struct store_message m;
	char buf[256];
	int found;

	if (!spool_id_valid(id))
		return ctl_refuse("no message '%s'", ctl_clean(id, buf, sizeof(buf)));
	if (user != NULL) {
		found = store_user_exists(ctl->store, user, NULL);
		if (found < 0)
			return ctl_refuse("cannot read the users");
		if (found == 0)
			return ctl_refuse("no user '%s'", ctl_clean(user, buf, sizeof(buf)));
	}
	memset(&m, 0, sizeof(m));
	found = store_message_get(ctl->store, id, &m);
	store_message_clear(&m);
	if (found < 0)
		return ctl_refuse("cannot read the message");
	if (found == 0)
		return ctl_refuse("no message '%s'", id);
	if (user == NULL)
		return CTL_OK;
	found = store_query_message_of_user(ctl->store, id, user);
	if (found < 0)
		return ctl_refuse("cannot read the message");
	if (found == 0)
		return ctl_refuse("message %s is not one of user %s's", id, user);
	return CTL_OK;
}

/* The common start of 'queue release|delete': arguments, store, and the
 * message's check. */
static int ctl_queue_open(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv,
			  const char **id_r, const char **user_r)
{
	int rc;

	if ((rc = ctl_queue_target(cmd, argc, argv, id_r, user_r)) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	return ctl_queue_check(ctl, *id_r, *user_r);
}

/*
 * Right after a report was recorded: the Bayes database learns it (and any
 * report left from before), ctl_learn.c. Returns what the report's message
 * came to, for the command's output: "learnt", "counted already" (an
 * earlier report of the same class), "not learnable" (its body is gone) or
 * "not learnt yet" (the database could not be written: said on
 * stderr; the report stays for the next run).
 */
static const char *ctl_queue_learn(struct ctl *ctl)
{
	struct ctl_learnt learnt;
	char err[512];

	if (ctl_learn_reports(ctl, &learnt, err, sizeof(err)) < 0) {
		fprintf(stderr, "popgatectl: note: the report is recorded but not learnt yet: %s\n",
			err);
		return "not learnt yet";
	}
	if (learnt.learnt > 0)
		return "learnt";
	return learnt.already > 0 ? "counted already" : "not learnable: its body is gone";
}

int ctl_queue_release(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *id, *user;
	int moved, rc;

	if ((rc = ctl_queue_open(ctl, cmd, argc, argv, &id, &user)) != CTL_OK)
		return rc;
	/* The move checks the state itself, so a concurrent change is seen. */
	moved = store_message_move(ctl->store, id, MESSAGE_SUSPECT, MESSAGE_PROCESSING, NULL);
	if (moved < 0)
		return ctl_refuse("cannot move the message");
	if (moved == 1)
		return ctl_changed(ctl, id,
				   json_pack("{s:s, s:s}", "id", id, "state", "processing"),
				   "message %s released to processing", id);
	/* Held for a challenge's answer (CISS): to delivery, without one. */
	moved = store_message_move(ctl->store, id, MESSAGE_CHALLENGED, MESSAGE_DELIVERY, NULL);
	if (moved < 0)
		return ctl_refuse("cannot move the message");
	if (moved == 1)
		return ctl_changed(ctl, id, json_pack("{s:s, s:s}", "id", id, "state", "delivery"),
				   "message %s released from the challenge hold to delivery", id);
	/* Quarantined: to delivery, and learnt as ham (store/spam_report.h). */
	moved = store_spam_release(ctl->store, id);
	if (moved < 0)
		return ctl_refuse("cannot move the message");
	if (moved == 0)
		return ctl_refuse("message %s is not suspect, challenged or quarantined; only "
				  "such a message can be released",
				  id);
	const char *bayes = ctl_queue_learn(ctl);
	return ctl_changed(ctl, id,
			   json_pack("{s:s, s:s, s:s, s:s}", "id", id, "state", "delivery",
				     "reported", "ham", "bayes", bayes),
			   "message %s released from quarantine to delivery (reported as ham; "
			   "Bayes: %s)",
			   id, bayes);
}

int ctl_report(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	enum spam_class spam_class =
	    strcmp(cmd->name, "spam") == 0 ? SPAM_CLASS_SPAM : SPAM_CLASS_HAM;
	const char *id, *user;
	int rc;

	if ((rc = ctl_queue_open(ctl, cmd, argc, argv, &id, &user)) != CTL_OK)
		return rc;
	if (store_spam_report_add(ctl->store, id, spam_class, "report") < 0)
		return ctl_refuse("cannot record the report");
	/* The fuzzy filter stops (ham) or starts again (spam) scoring mail like
	 * it: a newsletter a user wants is not a campaign (filters/fuzzy.h). */
	if (store_fingerprint_set_ham(ctl->store, id, spam_class == SPAM_CLASS_HAM) < 0)
		return ctl_refuse("cannot mark the message's fuzzy fingerprint");
	const char *bayes = ctl_queue_learn(ctl);
	return ctl_changed(ctl, id,
			   json_pack("{s:s, s:s, s:s}", "id", id, "reported",
				     spam_class_name(spam_class), "bayes", bayes),
			   "message %s reported as %s (Bayes: %s)", id, spam_class_name(spam_class),
			   bayes);
}

int ctl_queue_delete(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	const char *id, *user;
	int deleted, rc;

	if ((rc = ctl_queue_open(ctl, cmd, argc, argv, &id, &user)) != CTL_OK)
		return rc;
	/* A message that other users' addresses keep loses only this user. */
	if (user != NULL) {
		int detached = store_query_message_detach_user(ctl->store, id, user);

		if (detached < 0)
			return ctl_refuse("cannot delete the message");
		if (detached == 1)
			return ctl_changed(ctl, id,
					   json_pack("{s:s, s:b, s:s}", "id", id, "deleted", 0,
						     "removed_user", user),
					   "message %s deleted for %s (other users' addresses "
					   "keep it)",
					   id, user);
	}
	deleted = store_query_message_delete(ctl->store, id);
	if (deleted < -1)
		return ctl_refuse("message %s is in processing; the daemon owns it until it "
				  "leaves that state",
				  id);
	if (deleted < 0)
		return ctl_refuse("cannot delete the message");
	if (deleted == 0)
		return ctl_refuse("no message '%s'", id);
	/* The row is gone; a body left behind is an orphan that the daemon
	 * removes at its next start, so this is only a warning. */
	if (spool_remove(ctl->store->data_dir, id) < 0)
		fprintf(stderr,
			"popgatectl: warning: cannot remove the body of %s (%s); popgate "
			"removes it at its next start\n",
			id, strerror(errno));
	return ctl_changed(ctl, id, json_pack("{s:s, s:b}", "id", id, "deleted", 1),
			   "message %s deleted", id);
}

/* ---- outbound mail (the relay's queue) ----------------------------------- */

/* One recipient's row of 'queue outbound' as JSON. */
static json_t *ctl_outbound_recipient_json(const struct outbound_recipient *r)
{
	return json_pack("{s:o, s:s, s:i, s:o, s:o, s:o}", "address", cli_json_string(r->address),
			 "status", store_envelope_status_name(r->status), "attempts", r->attempts,
			 "next_attempt", r->status == ENVELOPE_PENDING
					     ? cli_json_time(r->next_attempt_at)
					     : json_null(),
			 "last_attempt", cli_json_time(r->last_attempt_at), "last_reply",
			 cli_json_string(r->last_reply));
}

int ctl_queue_outbound(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ID",	  "SENDER",	  "RECIPIENT", "STATUS",
					      "ATTEMPTS", "NEXT ATTEMPT", "LAST REPLY"};
	struct outbound_message *list = NULL;
	const char *id = NULL;
	size_t count = 0;
	char buf[256];
	int rc;

	if (argc > 1)
		return ctl_usage_error(cmd, "'queue outbound' takes at most one message id");
	if (argc == 1) {
		if (!spool_id_valid(argv[0]))
			return ctl_refuse("no message '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
		id = argv[0];
	}
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_outbound_list(ctl->store, id, &list, &count) < 0)
		return ctl_refuse("cannot read the outbound queue");
	if (id != NULL && count == 0)
		return ctl_refuse("no outbound message '%s'", id);
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++) {
			json_t *recipients = json_array();

			for (size_t j = 0; j < list[i].recipient_count; j++)
				json_array_append_new(
				    recipients, ctl_outbound_recipient_json(&list[i].recipients[j]));
			json_array_append_new(
			    array, json_pack("{s:s, s:o, s:I, s:o, s:o}", "id", list[i].id, "sender",
					     cli_json_string(list[i].sender), "size",
					     (json_int_t)list[i].body_size, "received",
					     cli_json_time(list[i].received_at), "recipients",
					     recipients));
		}
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(7, headers);

		for (size_t i = 0; i < count; i++) {
			for (size_t j = 0; j < list[i].recipient_count; j++) {
				const struct outbound_recipient *r = &list[i].recipients[j];
				char attempts[24], next[CLI_TIME_LEN];
				char *sender = xasprintf("<%s>", list[i].sender);

				snprintf(attempts, sizeof(attempts), "%d", r->attempts);
				cli_format_time(r->status == ENVELOPE_PENDING ? r->next_attempt_at : 0,
						next);
				cli_table_add(table, (const char *const[]){
							 j == 0 ? list[i].id : "", j == 0 ? sender : "",
							 r->address, store_envelope_status_name(r->status),
							 attempts, next, r->last_reply});
				free(sender);
			}
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_outbound_list_free(&list, count);
	return rc;
}

/* The outbound message ARGV[0] of 'queue retry|bounce', checked. */
static int ctl_outbound_target(struct ctl *ctl, const struct ctl_command *cmd, int argc,
			       char **argv)
{
	struct outbound_message *list = NULL;
	size_t count = 0;
	char buf[256];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one message id")) != CTL_OK)
		return rc;
	if (!spool_id_valid(argv[0]))
		return ctl_refuse("no message '%s'", ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_outbound_list(ctl->store, argv[0], &list, &count) < 0)
		return ctl_refuse("cannot read the outbound queue");
	store_outbound_list_free(&list, count);
	if (count == 0)
		return ctl_refuse("no outbound message '%s'", argv[0]);
	return CTL_OK;
}

int ctl_queue_retry(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc, due;

	if ((rc = ctl_outbound_target(ctl, cmd, argc, argv)) != CTL_OK)
		return rc;
	due = store_outbound_retry(ctl->store, argv[0], util_now());
	if (due < 0)
		return ctl_refuse("cannot change the message");
	return ctl_changed(ctl, argv[0], json_pack("{s:s, s:i}", "id", argv[0], "due", due),
			   "message %s: %d pending recipient(s) due now", argv[0], due);
}

int ctl_queue_bounce(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc, failed;

	if ((rc = ctl_outbound_target(ctl, cmd, argc, argv)) != CTL_OK)
		return rc;
	failed = store_outbound_bounce(ctl->store, argv[0], util_now());
	if (failed < 0)
		return ctl_refuse("cannot bounce the message");
	return ctl_changed(ctl, argv[0], json_pack("{s:s, s:i}", "id", argv[0], "failed", failed),
			   "message %s: %d pending recipient(s) failed; popgate bounces it", argv[0],
			   failed);
}

int ctl_queue_flush(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	int rc, due;

	(void)argv;
	if (argc != 0)
		return ctl_usage_error(cmd, "'queue flush' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	due = store_outbound_retry(ctl->store, NULL, util_now());
	if (due < 0)
		return ctl_refuse("cannot change the outbound queue");
	return ctl_changed(ctl, NULL, json_pack("{s:i}", "due", due),
			   "outbound queue flushed: %d pending recipient(s) due now", due);
}
