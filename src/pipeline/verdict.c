/*
 * verdict.c — combines a verdict's per-filter results through the job's
 * profile into one action (the rules are in verdict.h).
 *
 * Owns: nothing. Must never: touch the store, the log or the clock (it is a
 * pure function, tested with tables), or let a result the profile did not
 * ask for change the outcome.
 *
 * SECURITY: the results come from a worker; proto.c has checked their
 * shape (names, finite bounded scores, well-formed header lines, printable
 * reasons), and this file only adds and compares them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "pipeline/proto.h"
#include "pipeline/verdict.h"

/* The result RESULTS holds for filter NAME, or NULL. */
static const struct pipeline_result *verdict_result_find(const struct pipeline_result *results,
							 size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(results[i].name, name) == 0)
			return &results[i];
	}
	return NULL;
}

/* Appends TEXT to *BUF (allocated), with SEPARATOR first unless *BUF is empty. */
static void verdict_append(char **buf, const char *separator, const char *text)
{
	char *joined = xasprintf("%s%s%s", *buf, **buf != '\0' ? separator : "", text);

	free(*buf);
	*buf = joined;
}

/* The reasons entry for filter NAME given RESULT (NULL: none came back). */
static char *verdict_reason_format(const char *name, const struct pipeline_result *result)
{
	if (result == NULL)
		return xasprintf("%s=failed: no result", name);
	if (result->status != PIPELINE_RESULT_OK)
		return xasprintf("%s=failed%s%s", name, result->reason != NULL ? ": " : "",
				 result->reason != NULL ? result->reason : "");
	return xasprintf("%s=%.3f%s%s", name, result->score, result->reason != NULL ? ": " : "",
			 result->reason != NULL ? result->reason : "");
}

void verdict_combine(const struct filter_profile *profile, const struct pipeline_result *results,
		     size_t count, bool sender_known, struct verdict_decision *decision)
{
	memset(decision, 0, sizeof(*decision));
	decision->headers = xstrdup("");
	decision->reasons = xstrdup("");
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter_setting *setting = &profile->filters[i];
		const struct pipeline_result *result =
		    verdict_result_find(results, count, setting->name);
		char *reason = verdict_reason_format(setting->name, result);

		verdict_append(&decision->reasons, "; ", reason);
		free(reason);
		if (result == NULL || result->status != PIPELINE_RESULT_OK)
			continue;
		decision->score += setting->weight * result->score;
		if (result->headers != NULL)
			verdict_append(&decision->headers, "", result->headers);
	}
	/* Scores and thresholds travel in thousandths; a sum of doubles is not
	 * exact (2.5 + 2.499 is not 4.999), so round it back to that grid before
	 * comparing, or a score equal to a threshold might fall just short. */
	decision->score = round(decision->score * PROTO_MILLI) / PROTO_MILLI;
	if (profile->hold)
		decision->action = VERDICT_HOLD;
	else if (decision->score >= profile->quarantine_at)
		decision->action = VERDICT_QUARANTINE;
	else if (profile->challenge_unknown_senders && !sender_known)
		decision->action = VERDICT_CHALLENGE;
	else if (decision->score >= profile->tag_at)
		decision->action = VERDICT_TAG;
	else
		decision->action = VERDICT_DELIVER;
	if (decision->action == VERDICT_TAG) {
		char *line = xasprintf(VERDICT_HEADER ": tag; score=%.3f; tag_at=%.3f\r\n",
				       decision->score, profile->tag_at);

		verdict_append(&decision->headers, "", line);
		free(line);
	}
}

void verdict_decision_clear(struct verdict_decision *decision)
{
	if (decision == NULL)
		return;
	xfree(&decision->headers);
	xfree(&decision->reasons);
}

const char *verdict_action_name(enum verdict_action action)
{
	static const char *const names[] = {
	    [VERDICT_DELIVER] = "deliver",
	    [VERDICT_TAG] = "tag",
	    [VERDICT_QUARANTINE] = "quarantine",
	    [VERDICT_CHALLENGE] = "challenge",
	    [VERDICT_HOLD] = "hold",
	};
	_Static_assert(sizeof(names) / sizeof(names[0]) == VERDICT_HOLD + 1,
		       "a name for every action");

	if ((size_t)action >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[action];
}
