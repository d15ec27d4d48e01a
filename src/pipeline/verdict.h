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
 *             quarantine  if score >= quarantine_at, or an OK result of a
 *                         filter with a weight above 0 forces it (a virus:
 *                         filters/clamav.h) whatever the score;
 *             challenge   if the profile challenges unknown senders and the
 *                         sender is not known;
 *             tag         if score >= tag_at;
 *             deliver     otherwise.
 *   headers = the results' header lines, in the profile's order (today's
 *             Received trace header).
 *   spam_headers = the verdict for a mail client to filter on, for fetched
 *             mail (verdict_spam_headers):
 *               X-Popgate-Spam-Status: Yes, action=tag
 *               X-Popgate-Spam-Score: 6.000 (tag_at=5.000, quarantine_at=10.000)
 *               X-Popgate-Spam-Reasons: trace=0.000 x1.000;
 *                 senders=6.000 x1.000 (sender blocked ...)
 *             Yes when the score reaches tag_at, else No; one folded line
 *             per filter in the reasons, each reason cut to
 *             VERDICT_REASON_MAX characters and any byte outside printable
 *             ASCII turned into '?', so no reason can end the header or
 *             start another.
 *   reasons = one "name=score" per filter ("name=failed" for one that
 *             failed), with its reason after a colon if it gave one,
 *             separated by "; ": a one-line summary.
 *   explanation = the same per filter, one line each, for the store and
 *             popgatectl (verdict_explanation_parse reads it back):
 *             "NAME<TAB>SCORE|failed<TAB>WEIGHT<TAB>REASON\n".
 */
#ifndef POPGATE_PIPELINE_VERDICT_H
#define POPGATE_PIPELINE_VERDICT_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/filter.h"
#include "pipeline/pipeline.h"

#define VERDICT_HEADER_STATUS "X-Popgate-Spam-Status"
#define VERDICT_HEADER_SCORE "X-Popgate-Spam-Score"
#define VERDICT_HEADER_REASONS "X-Popgate-Spam-Reasons"
/* The longest reason a header or an explanation carries. */
#define VERDICT_REASON_MAX 200

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
	char *headers;	    /* the filters' header lines ("" if none); caller frees */
	char *spam_headers; /* the X-Popgate-Spam-* lines; caller frees */
	char *reasons;	    /* the one-line summary ("" if none); caller frees */
	char *explanation;  /* one line per filter, for the store; caller frees */
};

/* One line of an explanation, as verdict_explanation_parse gives it back. */
struct verdict_line {
	char name[FILTER_NAME_MAX + 1];
	bool failed;
	double score;
	double weight;
	char *reason; /* "" if none */
};

/*
 * Combines RESULTS (COUNT of them) through PROFILE into *DECISION (see
 * above). SENDER_KNOWN says whether the owner is known to correspond with
 * the sender; it matters only to a profile that challenges unknown senders.
 * Free the decision with verdict_decision_clear.
 */
void verdict_combine(const struct filter_profile *profile, const struct pipeline_result *results,
		     size_t count, bool sender_known, struct verdict_decision *decision);

/*
 * The X-Popgate-Spam-* lines verdict_combine gave DECISION (see above), for
 * its action as it is now: for a caller that changes the action (CISS
 * quarantines a challenge it may not send). The caller frees them.
 */
char *verdict_spam_headers(const struct filter_profile *profile,
			   const struct verdict_decision *decision,
			   const struct pipeline_result *results, size_t count);

/*
 * Parses EXPLANATION (as verdict_combine writes it) into *LINES_R (free with
 * verdict_lines_free) and *COUNT_R. Lines that are not of that shape (an
 * older verdict's text) are skipped. 0 always.
 */
int verdict_explanation_parse(const char *explanation, struct verdict_line **lines_r,
			      size_t *count_r);
void verdict_lines_free(struct verdict_line **lines, size_t count);

/* Frees what DECISION owns; NULL is fine. */
void verdict_decision_clear(struct verdict_decision *decision);

/* "deliver", "tag", "quarantine", "challenge" or "hold": the action's name
 * in logs and in the store. */
const char *verdict_action_name(enum verdict_action action);

#endif
