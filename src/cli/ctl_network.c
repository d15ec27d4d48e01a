/*
 * ctl_network.c — popgatectl's commands on the Local Networks (SPEC S2):
 * network list, add and del, through store/network.h. After a change the
 * running daemon is told (ctl_changed), and its SMTP server loads the
 * networks again, so a network added or deleted counts from the next
 * client on.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/cidr.h"
#include "store/network.h"

/* Whether the daemon uses row text CIDR: a row written by hand that
 * store_network_add would refuse is ignored (store/network.h). */
static bool ctl_network_valid(const char *cidr)
{
	struct cidr net;
	char err[256];

	return cidr != NULL && store_network_parse(cidr, &net, err, sizeof(err)) == 0;
}

int ctl_network_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"NAME", "CIDR", "CREATED", "NOTE"};
	struct store_network *list = NULL;
	size_t count = 0;
	char buf[256], err[512];
	int rc;

	if (argc != 0)
		return ctl_usage_error(cmd, "unexpected argument '%s'",
				       ctl_clean(argv[0], buf, sizeof(buf)));
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_network_list(ctl->store, &list, &count, err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(array,
					      json_pack("{s:o, s:o, s:o, s:b}", "name",
							cli_json_string(list[i].name), "cidr",
							cli_json_string(list[i].cidr), "created",
							cli_json_time(list[i].created_at), "valid",
							ctl_network_valid(list[i].cidr)));
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(4, headers);

		for (size_t i = 0; i < count; i++) {
			char created[CLI_TIME_LEN];

			cli_format_time(list[i].created_at, created);
			cli_table_add(
			    table, (const char *const[]){list[i].name, list[i].cidr, created,
							 ctl_network_valid(list[i].cidr)
							     ? ""
							     : "invalid: ignored (see the log)"});
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_network_list_free(&list, count);
	return rc;
}

int ctl_network_add(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char canonical[CIDR_TEXT_MAX], err[512], clean[512];
	int rc;

	if (argc != 2)
		return ctl_usage_error(cmd, "'network add' takes a name and a network (CIDR)");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_network_add(ctl->store, argv[0], argv[1], canonical, sizeof(canonical), err,
			      sizeof(err)) < 0)
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:o}", "name", cli_json_string(argv[0]), "cidr",
				     cli_json_string(canonical)),
			   "local network %s added: %s", argv[0], canonical);
}

int ctl_network_del(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	char err[512], clean[512];
	int rc;

	if ((rc = ctl_one_arg(cmd, argc, argv, "one network name")) != CTL_OK)
		return rc;
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	rc = store_network_delete(ctl->store, argv[0], err, sizeof(err));
	if (rc <= 0)
		return ctl_refuse("%s", ctl_clean(err, clean, sizeof(clean)));
	return ctl_changed(ctl, NULL,
			   json_pack("{s:o, s:b}", "name", cli_json_string(argv[0]), "deleted", 1),
			   "local network %s deleted", argv[0]);
}
