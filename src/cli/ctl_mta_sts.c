/*
 * ctl_mta_sts.c — popgatectl mta-sts list: the MTA-STS policies (RFC 8461)
 * the relay has cached, per recipient domain, with their mode, MX
 * patterns, id and expiry. Read from the store; the daemon fills it.
 *
 * Must never: write the cache (only the daemon's writer does).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/util.h"
#include "smtp/mta_sts.h"
#include "store/mta_sts.h"

/* The MX patterns of ENTRY's policy joined by ", " (allocated); "" when it
 * has none or does not parse. */
static char *ctl_mta_sts_mx(const struct store_mta_sts *entry, json_t *array)
{
	struct mta_sts_policy policy;
	char err[160];
	char *joined = xstrdup("");

	if (mta_sts_policy_parse(entry->policy, strlen(entry->policy), &policy, err, sizeof(err)) <
	    0)
		return joined;
	for (size_t i = 0; i < policy.mx_count; i++) {
		char *next = xasprintf("%s%s%s", joined, i > 0 ? ", " : "", policy.mx[i]);

		free(joined);
		joined = next;
		if (array != NULL)
			json_array_append_new(array, cli_json_string(policy.mx[i]));
	}
	mta_sts_policy_clear(&policy);
	return joined;
}

int ctl_mta_sts_list(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	static const char *const headers[] = {"DOMAIN", "MODE", "MX", "ID", "FETCHED", "EXPIRES"};
	struct store_mta_sts *entries = NULL;
	size_t count = 0;
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'mta-sts list' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (store_mta_sts_list(ctl->store, &entries, &count) < 0)
		return ctl_refuse("cannot read the MTA-STS policies");
	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++) {
			json_t *mx = json_array();

			free(ctl_mta_sts_mx(&entries[i], mx));
			json_array_append_new(
			    array, json_pack("{s:o, s:o, s:o, s:o, s:o, s:o}", "domain",
					     cli_json_string(entries[i].domain), "mode",
					     cli_json_string(entries[i].mode), "mx", mx, "id",
					     cli_json_string(entries[i].policy_id), "fetched",
					     cli_json_time(entries[i].fetched_at), "expires",
					     cli_json_time(entries[i].expires_at)));
		}
		rc = ctl_printed(cli_json_print(array, stdout));
	} else {
		struct cli_table *table = cli_table_new(6, headers);

		for (size_t i = 0; i < count; i++) {
			char fetched[CLI_TIME_LEN], expires[CLI_TIME_LEN];
			char *mx = ctl_mta_sts_mx(&entries[i], NULL);
			const char *cells[6] = {entries[i].domain,    entries[i].mode, mx,
						entries[i].policy_id, fetched,	       expires};

			cli_format_time(entries[i].fetched_at, fetched);
			cli_format_time(entries[i].expires_at, expires);
			cli_table_add(table, cells);
			free(mx);
		}
		rc = ctl_printed(cli_table_print(table, stdout));
		cli_table_free(&table);
	}
	store_mta_sts_list_free(&entries, count);
	return rc;
}
