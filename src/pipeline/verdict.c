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

/* REASON (NULL: none) cut to VERDICT_REASON_MAX, each byte outside printable
 * ASCII (and the tab the explanation separates fields with) turned into '?'. */
static char *verdict_reason_clean(const char *reason)
{
	size_t len = reason != NULL ? strnlen(reason, VERDICT_REASON_MAX) : 0;
	char *clean = xmalloc(len + 1);

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)reason[i];

		clean[i] = c < 0x20 || c > 0x7e ? '?' : (char)c;
	}
	clean[len] = '\0';
	return clean;
}

char *verdict_spam_headers(const struct filter_profile *profile,
			   const struct verdict_decision *decision,
			   const struct pipeline_result *results, size_t count)
{
	char *lines =
	    xasprintf(VERDICT_HEADER_STATUS
		      ": %s, action=%s\r\n" VERDICT_HEADER_SCORE
		      ": %.3f (tag_at=%.3f, quarantine_at=%.3f)\r\n" VERDICT_HEADER_REASONS ":",
		      decision->score >= profile->tag_at ? "Yes" : "No",
		      verdict_action_name(decision->action), decision->score, profile->tag_at,
		      profile->quarantine_at);

	if (profile->filter_count == 0)
		verdict_append(&lines, "", " none");
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter_setting *setting = &profile->filters[i];
		const struct pipeline_result *result =
		    verdict_result_find(results, count, setting->name);
		bool ok = result != NULL && result->status == PIPELINE_RESULT_OK;
		char *reason = verdict_reason_clean(result == NULL ? "no result" : result->reason);
		char score[32];
		char *entry;

		if (ok)
			snprintf(score, sizeof(score), "%.3f", result->score);
		else
			snprintf(score, sizeof(score), "failed");
		/* Folded: one filter per line, each well under 998 octets. */
		entry =
		    xasprintf("%s%s=%s x%.3f%s%s%s%s", i > 0 ? "\r\n\t" : " ", setting->name, score,
			      setting->weight, *reason != '\0' ? " (" : "", reason,
			      *reason != '\0' ? ")" : "", i + 1 < profile->filter_count ? ";" : "");
		verdict_append(&lines, "", entry);
		free(entry);
		free(reason);
	}
	verdict_append(&lines, "", "\r\n");
	return lines;
}

void verdict_combine(const struct filter_profile *profile, const struct pipeline_result *results,
		     size_t count, bool sender_known, struct verdict_decision *decision)
{
	bool force_quarantine = false;

	memset(decision, 0, sizeof(*decision));
	decision->headers = xstrdup("");
	decision->reasons = xstrdup("");
	decision->explanation = xstrdup("");
	for (size_t i = 0; i < profile->filter_count; i++) {
		const struct filter_setting *setting = &profile->filters[i];
		const struct pipeline_result *result =
		    verdict_result_find(results, count, setting->name);
		char *reason = verdict_reason_format(setting->name, result);
		bool ok = result != NULL && result->status == PIPELINE_RESULT_OK;
		char *clean = verdict_reason_clean(result == NULL ? "no result" : result->reason);
		char *line =
		    ok ? xasprintf("%s\t%.3f\t%.3f\t%s\n", setting->name, result->score,
				   setting->weight, clean)
		       : xasprintf("%s\tfailed\t%.3f\t%s\n", setting->name, setting->weight, clean);

		verdict_append(&decision->reasons, "; ", reason);
		verdict_append(&decision->explanation, "", line);
		free(line);
		free(clean);
		free(reason);
		if (!ok)
			continue;
		decision->score += setting->weight * result->score;
		/* Weight 0 runs a filter for its reasons alone: it forces nothing. */
		if (result->force_quarantine && setting->weight > 0)
			force_quarantine = true;
		if (result->headers != NULL)
			verdict_append(&decision->headers, "", result->headers);
	}
	/* Scores and thresholds travel in thousandths; a sum of doubles is not
	 * exact (2.5 + 2.499 is not 4.999), so round it back to that grid before
	 * comparing, or a score equal to a threshold might fall just short. */
	decision->score = round(decision->score * PROTO_MILLI) / PROTO_MILLI;
	if (profile->hold)
		decision->action = VERDICT_HOLD;
	else if (force_quarantine || decision->score >= profile->quarantine_at)
		decision->action = VERDICT_QUARANTINE;
	else if (profile->challenge_unknown_senders && !sender_known)
		decision->action = VERDICT_CHALLENGE;
	else if (decision->score >= profile->tag_at)
		decision->action = VERDICT_TAG;
	else
		decision->action = VERDICT_DELIVER;
	decision->spam_headers = verdict_spam_headers(profile, decision, results, count);
}

int verdict_explanation_parse(const char *explanation, struct verdict_line **lines_r,
			      size_t *count_r)
{
	struct verdict_line *lines = NULL;
	size_t count = 0;
	const char *p = explanation != NULL ? explanation : "";

	while (*p != '\0') {
		size_t len = strcspn(p, "\n");
		char *text = xstrndup(p, len);
		char *fields[4] = {NULL};
		char *cursor = text;
		size_t n = 0;

		while (n < 4 && cursor != NULL) {
			fields[n++] = cursor;
			cursor = n < 4 ? strchr(cursor, '\t') : NULL;
			if (cursor != NULL)
				*cursor++ = '\0';
		}
		if (n == 4 && strlen(fields[0]) > 0 && strlen(fields[0]) <= FILTER_NAME_MAX) {
			struct verdict_line *line;

			lines = xrealloc(lines, (count + 1) * sizeof(*lines));
			line = &lines[count++];
			memset(line, 0, sizeof(*line));
			snprintf(line->name, sizeof(line->name), "%s", fields[0]);
			line->failed = strcmp(fields[1], "failed") == 0;
			line->score = line->failed ? 0 : strtod(fields[1], NULL);
			line->weight = strtod(fields[2], NULL);
			line->reason = xstrdup(fields[3]);
		}
		free(text);
		p += len;
		if (*p == '\n')
			p++;
	}
	*lines_r = lines;
	*count_r = count;
	return 0;
}

void verdict_lines_free(struct verdict_line **lines, size_t count)
{
	if (*lines == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		free((*lines)[i].reason);
	xfree(lines);
}

void verdict_decision_clear(struct verdict_decision *decision)
{
	if (decision == NULL)
		return;
	xfree(&decision->headers);
	xfree(&decision->spam_headers);
	xfree(&decision->reasons);
	xfree(&decision->explanation);
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
