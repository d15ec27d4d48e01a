/*
 * filter.c — the table of filters and the built-in profile.
 *
 * Owns: the table (one row per file in src/filters/) and the default
 * profile (the filters' settings are filters/settings.c's). Must never: hold per-message state (a filter's run gets all it
 * needs as arguments) or name a filter a profile can run without a row here.
 * A profile naming a filter that is not in the table gets a failed result
 * for it from the worker, never a crash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"

/* Every filter, by name. The order here means nothing: a profile says which
 * run and in what order. */
static const struct filter *const filter_table[] = {
    &filter_trace,
    &filter_address,
    &filter_senders,
    &filter_bayes,
    &filter_spf,
    &filter_dkim,
    &filter_dmarc,
    &filter_dnsbl,
    &filter_uribl,
    &filter_fuzzy,
    &filter_clamav,
    &filter_attachments,
    &filter_rules,
};

#define FILTER_TABLE_COUNT (sizeof(filter_table) / sizeof(filter_table[0]))

/* See filter.h: today's behaviour, as a profile. */
static const struct filter_profile filter_default_profile = {
    .filters =
	{
	    {.name = "trace", .weight = 1.0},
	    {.name = "address", .weight = 1.0},
	},
    .filter_count = 2,
    .tag_at = 5.0,
    .quarantine_at = 10.0,
    .challenge_unknown_senders = false,
    .hold = false,
};

const struct filter_profile *filter_profile_default(void)
{
	return &filter_default_profile;
}

const struct filter *filter_find(const char *name)
{
	for (size_t i = 0; i < FILTER_TABLE_COUNT; i++) {
		if (strcmp(filter_table[i]->name, name) == 0)
			return filter_table[i];
	}
	return NULL;
}

const struct filter *filter_at(size_t index)
{
	return index < FILTER_TABLE_COUNT ? filter_table[index] : NULL;
}

int filter_init_all(char *err, size_t errlen)
{
	for (size_t i = 0; i < FILTER_TABLE_COUNT; i++) {
		char filter_err[256] = "";

		if (filter_table[i]->init == NULL)
			continue;
		if (filter_table[i]->init(filter_err, sizeof(filter_err)) < 0) {
			snprintf(err, errlen, "filter %s: %s", filter_table[i]->name, filter_err);
			return -1;
		}
	}
	return 0;
}

void filter_result_add_headers(struct pipeline_result *result, const char *lines)
{
	char *joined = xasprintf("%s%s", result->headers != NULL ? result->headers : "", lines);

	free(result->headers);
	result->headers = joined;
}
