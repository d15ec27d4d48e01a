/*
 * verdict.h — what becomes of a judged message: the main process combines
 * the filters' results through the job's profile into one action.
 *
 * The combination is a pure function of its arguments (no store, no log, no
 * clock), so it can be tested with tables of results and profiles.
 *
 *   score   = the sum over the profile's filters, in its order, of weight x
 *             score, for each filter whose result came back OK. A filter
 *             that failed, or sent no result, adds nothing (its reason is
 *             recorded); a result for a filter the profile does not run is
 *             ignored (the worker is not trusted to choose). The sum is
 *             rounded to thousandths of a point, the precision scores and
 *             thresholds travel in, so that a score equal to a threshold
 *             compares equal.
 *   action  = hold        if the profile holds all mail;
 *             quarantine  if score >= quarantine_at;
 *             challenge   if the profile challenges unknown senders and the
 *                         sender is not known;
 *             tag         if score >= tag_at;
 *             deliver     otherwise.
 *   headers = the results' header lines, in the profile's order (today's
 *             Received trace header), and for tag one more line:
 *             "X-Popgate-Verdict: tag; score=S; tag_at=T" (S and T with
 *             three decimals), the line a mail client filters on.
 *   reasons = one "name=score" per filter ("name=failed" for one that
 *             failed), with its reason after a colon if it gave one,
 *             separated by "; ": what the store records beside the action.
 */
#ifndef POPGATE_PIPELINE_VERDICT_H
#define POPGATE_PIPELINE_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/filter.h"
#include "pipeline/pipeline.h"

#define VERDICT_HEADER "X-Popgate-Verdict"

enum verdict_action {
	VERDICT_DELIVER,
	VERDICT_TAG,
	VERDICT_QUARANTINE,
	VERDICT_CHALLENGE,
	VERDICT_HOLD,
};

struct verdict_decision {
	enum verdict_action action;
	double score;
	char *headers; /* header lines to add ("" if none); caller frees */
	char *reasons; /* for the store and the log ("" if none); caller frees */
};

/*
 * Combines RESULTS (COUNT of them) through PROFILE into *DECISION (see
 * above). SENDER_KNOWN says whether the owner is known to correspond with
 * the sender; it matters only to a profile that challenges unknown senders.
 * Free the decision with verdict_decision_clear.
 */
void verdict_combine(const struct filter_profile *profile, const struct pipeline_result *results,
		     size_t count, bool sender_known, struct verdict_decision *decision);

/* Frees what DECISION owns; NULL is fine. */
void verdict_decision_clear(struct verdict_decision *decision);

/* "deliver", "tag", "quarantine", "challenge" or "hold": the action's name
 * in logs and in the store. */
const char *verdict_action_name(enum verdict_action action);

#endif
