/*
 * route.h — the main process's answer to a verdict: where the judged
 * message goes next (the pipeline's callback, formerly in popgate.c).
 */
#ifndef POPGATE_PIPELINE_ROUTE_H
#define POPGATE_PIPELINE_ROUTE_H

#include "pipeline/pipeline.h"
#include "pipeline/verdict.h"
#include "store/account.h"
#include "store/message.h"

struct popgate;

/*
 * The pipeline_verdict_cb of the daemon (CTX is its struct popgate): a
 * judged message is attributed to its users and its results combined into
 * an action (verdict.h), which moves it out of processing (hold: to
 * suspect, for the administrator; a user without a seat: delivered, U3);
 * a message a worker failed on is retried once and then held as suspect.
 * With [depot] enabled, a judged message is archived (pipeline/archiver.h)
 * before it moves; until then it stays in processing, and a verdict for a
 * message whose archive is pending is ignored.
 */
void route_on_verdict(const struct pipeline_verdict *verdict, void *ctx);

/* The state an action moves a message to (hold: MESSAGE_SUSPECT, where
 * popgatectl queue release finds it). */
enum message_state route_action_state(enum verdict_action action);

/*
 * Fills *JOB for MESSAGE, fetched for ACCOUNT (both loaded by the caller):
 * source fetched, the account and its user as owner, no envelope sender,
 * the account's login as the one recipient when it is an address (pointed
 * to through RECIPIENT, which must live until the job is submitted), the
 * owner's filter profile as read from PG's store now (store/profile.h), into
 * PROFILE, which must live as long, and archive set when PG archives
 * ([depot] enabled).
 */
void route_job_fill(struct popgate *pg, const struct store_message *message,
		    const struct store_account *account, struct pipeline_job *job,
		    char *recipient[1], struct filter_profile *profile);

/*
 * The results a verdict is combined from: the worker's VERDICT results
 * (copies), without any for a filter the main process judges, and that
 * filter's own for each the profile of JOB runs: the senders filter's
 * (filters/senders.h), judged now; the fuzzy filter's (filters/fuzzy.h),
 * which only reads the fingerprints here (the verdict's writes record it);
 * clamav's, VERDICT->scan (failed when there is none). *RESULTS_R: free
 * with route_results_free. The count.
 */
size_t route_results_complete(struct store *store, const struct pipeline_job *job,
			      const struct pipeline_verdict *verdict,
			      struct pipeline_result **results_r);
void route_results_free(struct pipeline_result **results, size_t count);

#endif
