/*
 * ctl_ciss.c — popgatectl's commands on challenge-response (SPEC C1, C2,
 * G4, G5): the Local Domains (domain list|add|del, the pseudo-domain shown
 * as built in), the CISS settings (ciss show|set), the senders a user
 * trusts (ciss trust|untrust|list) and the messages held for an answer
 * (ciss pending), through store/ciss.h and store/correspondent.h.
 *
 * The daemon reads the settings and lists at each message, so a change
 * counts from the next one without telling it.
 *
 * Must never: delete the pseudo-domain, or print a challenge's nonce (the
 * secret of its link).
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
#include "store/ciss.h"
#include "store/correspondent.h"
#include "store/user.h"

/* ---- domain ---- */

int ctl_domain_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"DOMAIN", "ADDED", "NOTE"};
	struct store_local_domain *list = NULL;
	struct ciss_settings settings;
	size_t count = 0;
	char buf[256], err[512];
	int rc;

	if (argc != 0)
		return ctl_usage_error(cmd, "unexpected argument '%s'",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_ciss_settings_get(ctl->store, &settings) < 0)
		return ctl_refuse("cannot read the CISS settings (see the log)");
	if (store_local_domain_list(ctl->store, ctl->cfg.pseudo_domain, &list, &count, err,
				    sizeof(err)) < 0) {
		ciss_settings_clear(&settings);
		return ctl_refuse("%s", err);
	}
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array,
			    json_pack("{s:o, s:b, s:o, s:b}", "domain",
				      cli_json_string(list[i].domain), "builtin", list[i].builtin,
				      "added", cli_json_time(list[i].created_at), "ciss",
				      ciss_settings_has_domain(&settings, list[i].domain)));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(3, headers);

		for (size_t i = 0; i < count; i++) {
			bool ciss = ciss_settings_has_domain(&settings, list[i].domain);
			char added[CLI_TIME_LEN];
			char note[96];

			cli_format_time(list[i].created_at, added);
			snprintf(note, sizeof(note), "%s%s%s",
				 list[i].builtin ? "built in: the pseudo-domain" : "",
				 list[i].builtin && ciss ? "; " : "", ciss ? "CISS applies" : "");
			cli_table_add(table,
				      (const char *const[]){list[i].domain,
							    list[i].builtin ? "-" : added, note});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_local_domain_list_free(&list, count);
	ciss_settings_clear(&settings);
	return rc;
}

int ctl_domain_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], clean[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one domain")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_local_domain_add(ctl->store, ctl->cfg.pseudo_domain, argv[0], err, sizeof(err)) <
	    0)
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:b}", "domain", cli_json_string(argv[0]), "added", 1),
			   "local domain %s added", argv[0]);
}

int ctl_domain_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], clean[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one domain")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_local_domain_del(ctl->store, ctl->cfg.pseudo_domain, argv[0], err, sizeof(err)) <
	    0)
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	return ctl_changed(
	    ctl, NULL, json_pack("{s:o, s:b}", "domain", cli_json_string(argv[0]), "deleted", 1),
	    "local domain %s deleted", argv[0]);
}

/* ---- ciss show, set ---- */

int ctl_ciss_show(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ciss_settings s;
	char buf[256];
	int rc;

	if (argc != 0)
		return ctl_usage_error(cmd, "unexpected argument '%s'",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_ciss_settings_get(ctl->store, &s) < 0)
		return ctl_refuse("cannot read the CISS settings (see the log)");
	if (ctl->json) {
		json_t *domains = json_array();

		for (size_t i = 0; i < s.domain_count; i++)
			json_array_append_new(domains, cli_json_string(s.domains[i]));
		rc = ctl_printed(cli_json_print(
		    json_pack("{s:o, s:i, s:i, s:i, s:i, s:s, s:i}", "domains", domains, "period",
			      s.period_days, "cap-hour", s.cap_hour, "cap-user-hour",
			      s.cap_user_hour, "hold-days", s.hold_days, "hold-expiry",
			      ciss_hold_expiry_name(s.hold_expiry), "link-days", s.link_days),
		    stdout));
	} else {
		char *domains = xstrdup("");

		for (size_t i = 0; i < s.domain_count; i++) {
			char *joined = xasprintf("%s%s%s", domains, i > 0 ? " " : "", s.domains[i]);

			free(domains);
			domains = joined;
		}
		rc = ctl_printed(
		    printf("domains        %s\n"
			   "period         %d days (one sender is not challenged twice within)\n"
			   "cap-hour       %d challenges per hour, all users\n"
			   "cap-user-hour  %d challenges per hour for one user\n"
			   "hold-days      %d days a held message waits for an answer\n"
			   "hold-expiry    %s\n"
			   "link-days      %d days a challenge's link is valid\n",
			   s.domain_count > 0 ? domains : "(none: CISS is off)", s.period_days,
			   s.cap_hour, s.cap_user_hour, s.hold_days,
			   ciss_hold_expiry_name(s.hold_expiry), s.link_days) < 0
			? -1
			: 0);
		free(domains);
	}
	ciss_settings_clear(&s);
	return rc;
}

/* TEXT as a whole number into *VALUE_R; false if it is not one. */
static bool ctl_ciss_number(const char *text, long *value_r)
{
	char *end;

	errno = 0;
	*value_r = strtol(text, &end, 10);
	return errno == 0 && end != text && *end == '\0';
}

int ctl_ciss_set(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], clean[512], buf[256];
	int setting, expiry = -1, rc;
	long value = 0;

	if (argc < 1)
		return ctl_usage_error(cmd, "'ciss set' takes a setting and its value");
	setting = ciss_setting_parse(argv[0]);
	if (strcmp(argv[0], "domains") != 0) {
		if (argc != 2)
			return ctl_usage_error(cmd, "'ciss set %s' takes one value",
					       ctl_clean(argv[0], buf, sizeof(buf)));
		if (strcmp(argv[0], "hold-expiry") == 0) {
			expiry = ciss_hold_expiry_parse(argv[1]);
			if (expiry < 0)
				return ctl_usage_error(cmd, "hold-expiry is quarantine or delete");
		} else if (setting < 0) {
			return ctl_usage_error(cmd, "unknown setting '%s'",
					       ctl_clean(argv[0], buf, sizeof(buf)));
		} else if (!ctl_ciss_number(argv[1], &value)) {
			return ctl_usage_error(cmd, "%s takes a number", argv[0]);
		}
	}
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (strcmp(argv[0], "domains") == 0)
		rc = store_ciss_set_domains(ctl->store, ctl->cfg.pseudo_domain,
					    (const char *const *)argv + 1, (size_t)argc - 1, err,
					    sizeof(err));
	else if (expiry >= 0)
		rc = store_ciss_set_hold_expiry(ctl->store, (enum ciss_hold_expiry)expiry, err,
						sizeof(err));
	else
		rc = store_ciss_set_number(ctl->store, (enum ciss_setting)setting, value, err,
					   sizeof(err));
	if (rc < 0)
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	if (strcmp(argv[0], "domains") == 0) {
		json_t *domains = json_array();
		char *text = xstrdup("");

		for (int i = 1; i < argc; i++) {
			char *joined = xasprintf("%s %s", text, argv[i]);

			free(text);
			text = joined;
			json_array_append_new(domains, cli_json_string(argv[i]));
		}
		rc = ctl_changed(ctl, NULL, json_pack("{s:o}", "domains", domains),
				 "CISS domains set to:%s", argc > 1 ? text : " none (CISS is off)");
		free(text);
		return rc;
	}
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:o}", "setting", cli_json_string(argv[0]), "value",
				     cli_json_string(argv[1])),
			   "CISS setting %s set to %s", argv[0], argv[1]);
}

/* ---- ciss trust, untrust, list, pending ---- */

/* The id of user NAME into *ID_R: CTL_OK, or CTL_REFUSED (said why). */
static int ctl_ciss_user(struct ctl *ctl, const char *name, int64_t *id_r)
{
	struct store_user user = {0};
	char clean[256];
	int found = store_user_get(ctl->store, name, &user);

	*id_r = user.id;
	store_user_clear(&user);
	if (found < 0)
		return ctl_refuse("cannot read the users (see the log)");
	if (found == 0)
		return ctl_refuse("no user %s", ctl_clean(name, clean, sizeof(clean)));
	return CTL_OK;
}

int ctl_ciss_trust(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], clean[512];
	int64_t user_id, released;
	int rc;

	if (argc != 2)
		return ctl_usage_error(cmd, "'ciss trust' takes a user and an address");
	if ((rc = ctl_open_store(ctl)) != CTL_OK || (rc = ctl_ciss_user(ctl, argv[0], &user_id)))
		return rc;
	/* Trusted, and what waits for this sender's answer released with it. */
	if (store_begin(ctl->store) < 0)
		return ctl_refuse("cannot write the trusted senders (see the log)");
	if (store_ciss_trust(ctl->store, user_id, argv[1], CISS_TRUST_ADMIN, util_now(), err,
			     sizeof(err)) < 0) {
		store_rollback(ctl->store);
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	}
	released = store_ciss_release_sender(ctl->store, user_id, argv[1]);
	if (released < 0 || store_commit(ctl->store) < 0) {
		store_rollback(ctl->store);
		return ctl_refuse("cannot release the held messages (see the log)");
	}
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:o, s:b, s:I}", "user", cli_json_string(argv[0]),
				     "address", cli_json_string(argv[1]), "trusted", 1, "released",
				     (json_int_t)released),
			   "user %s trusts %s; %lld held message(s) released to delivery", argv[0],
			   argv[1], (long long)released);
}

int ctl_ciss_untrust(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char clean[512];
	int64_t user_id;
	int rc;

	if (argc != 2)
		return ctl_usage_error(cmd, "'ciss untrust' takes a user and an address");
	if ((rc = ctl_open_store(ctl)) != CTL_OK || (rc = ctl_ciss_user(ctl, argv[0], &user_id)))
		return rc;
	rc = store_ciss_untrust(ctl->store, user_id, argv[1]);
	if (rc < 0)
		return ctl_refuse("cannot write the trusted senders (see the log)");
	if (rc == 0)
		return ctl_refuse("user %s does not trust %s", argv[0],
				  ctl_clean(argv[1], clean, sizeof(clean)));
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:o, s:b}", "user", cli_json_string(argv[0]), "address",
				     cli_json_string(argv[1]), "trusted", 0),
			   "user %s no longer trusts %s", argv[0], argv[1]);
}

/* The user id [USER] names (0: none named, every user) into *ID_R. */
static int ctl_ciss_optional_user(struct ctl *ctl, const struct ctl_command *cmd, int argc,
				  char **argv, int64_t *id_r)
{
	char buf[256];
	int rc;

	*id_r = 0;
	if (argc > 1)
		return ctl_usage_error(cmd, "unexpected argument '%s'",
				       ctl_clean(argv[1], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	return argc == 1 ? ctl_ciss_user(ctl, argv[0], id_r) : CTL_OK;
}

int ctl_ciss_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"USER", "SENDER", "KNOWN BY", "SINCE"};
	struct ciss_trusted *trusted = NULL;
	struct store_correspondent *correspondents = NULL;
	size_t trusted_count = 0, correspondent_count = 0;
	int64_t user_id;
	int rc;

	if ((rc = ctl_ciss_optional_user(ctl, cmd, argc, argv, &user_id)) != CTL_OK)
		return rc;
	if (store_ciss_trusted_list(ctl->store, user_id, &trusted, &trusted_count) < 0 ||
	    store_correspondent_list(ctl->store, user_id, &correspondents, &correspondent_count) <
		0) {
		store_ciss_trusted_list_free(&trusted, trusted_count);
		return ctl_refuse("cannot read the known senders (see the log)");
	}
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < trusted_count; i++)
			json_array_append_new(
			    array, json_pack("{s:o, s:o, s:s, s:o}", "user",
					     cli_json_string(trusted[i].user_name), "sender",
					     cli_json_string(trusted[i].address), "known_by",
					     ciss_trust_via_name(trusted[i].via), "since",
					     cli_json_time(trusted[i].trusted_at)));
		for (size_t i = 0; i < correspondent_count; i++)
			json_array_append_new(
			    array, json_pack("{s:o, s:o, s:s, s:o, s:I}", "user",
					     cli_json_string(correspondents[i].user_name), "sender",
					     cli_json_string(correspondents[i].address), "known_by",
					     "correspondent", "since",
					     cli_json_time(correspondents[i].first_at), "messages",
					     (json_int_t)correspondents[i].messages));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(4, headers);
		char since[CLI_TIME_LEN];

		for (size_t i = 0; i < trusted_count; i++) {
			cli_format_time(trusted[i].trusted_at, since);
			cli_table_add(
			    table, (const char *const[]){trusted[i].user_name, trusted[i].address,
							 trusted[i].via == CISS_TRUST_ADMIN
							     ? "trusted (admin)"
							     : "trusted (answered)",
							 since});
		}
		for (size_t i = 0; i < correspondent_count; i++) {
			cli_format_time(correspondents[i].first_at, since);
			cli_table_add(table, (const char *const[]){correspondents[i].user_name,
								   correspondents[i].address,
								   "correspondent", since});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_ciss_trusted_list_free(&trusted, trusted_count);
	store_correspondent_list_free(&correspondents, correspondent_count);
	return rc;
}

int ctl_ciss_pending(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"ID", "USER", "SENDER", "HELD", "CHALLENGE"};
	struct ciss_held *list = NULL;
	size_t count = 0;
	int64_t user_id;
	int rc;

	if ((rc = ctl_ciss_optional_user(ctl, cmd, argc, argv, &user_id)) != CTL_OK)
		return rc;
	if (store_ciss_held_list(ctl->store, user_id, &list, &count) < 0)
		return ctl_refuse("cannot read the held messages (see the log)");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array, json_pack("{s:s, s:o, s:o, s:o, s:I}", "id", list[i].message_id,
					     "user", cli_json_string(list[i].user_name), "sender",
					     cli_json_string(list[i].sender), "held",
					     cli_json_time(list[i].held_at), "challenge",
					     (json_int_t)list[i].challenge_id));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(5, headers);

		for (size_t i = 0; i < count; i++) {
			char held[CLI_TIME_LEN], challenge[24];

			cli_format_time(list[i].held_at, held);
			snprintf(challenge, sizeof(challenge), "%lld",
				 (long long)list[i].challenge_id);
			cli_table_add(table,
				      (const char *const[]){list[i].message_id, list[i].user_name,
							    list[i].sender, held, challenge});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_ciss_held_list_free(&list, count);
	return rc;
}
