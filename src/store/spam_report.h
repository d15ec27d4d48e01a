/*
 * spam_report.h — what the administrator and users say about a message's
 * class, for a spam classifier to learn from (issue 10): releasing a message
 * from quarantine reports it as ham; popgatectl report spam|ham ID reports
 * it either way. Each report is a spam_report row (message id, class,
 * origin, when) that stays until a trainer marks it learnt; the trainer
 * reads the message's body from the spool (a body expired before it was
 * learnt is skipped). Also the verdict recorded on a message row, for
 * popgatectl queue show.
 */
#ifndef POPGATE_STORE_SPAM_REPORT_H
#define POPGATE_STORE_SPAM_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"
#include "store/spool.h"

enum spam_class { SPAM_CLASS_HAM, SPAM_CLASS_SPAM };

struct spam_report {
	int64_t seq;
	char message_id[SPOOL_ID_LEN + 1];
	enum spam_class spam_class;
	char origin[16]; /* "release" or "report" */
	int64_t reported_at;
};

/* "spam" or "ham". */
const char *spam_class_name(enum spam_class spam_class);

/* Records a report that message ID is of SPAM_CLASS, from ORIGIN ("release"
 * or "report"), in the caller's transaction or its own. 0 or -1 (logged). */
int store_spam_report_add(struct store *store, const char *id, enum spam_class spam_class,
			  const char *origin);

/*
 * Moves message ID from quarantine to delivery (the next pickup serves it)
 * and records it as ham, in one transaction. 1 done, 0 it is not in
 * quarantine, -1 error (logged).
 */
int store_spam_release(struct store *store, const char *id);

/* Up to MAX reports not learnt yet, oldest first: *LIST_R (free()) and
 * *COUNT_R. 0 or -1. For the trainer. */
int store_spam_report_unlearnt(struct store *store, size_t max, struct spam_report **list_r,
			       size_t *count_r);

/* What a learnt report did (the learn_result column). */
#define SPAM_REPORT_LEARNT "learnt"	/* the classifier counts it now */
#define SPAM_REPORT_REVERSED "reversed" /* a later report of the other class undid it */

/* Marks report SEQ learnt with RESULT: SPAM_REPORT_LEARNT, SPAM_REPORT_REVERSED
 * or a sentence on why it taught nothing. 0 or -1. */
int store_spam_report_learnt(struct store *store, int64_t seq, const char *result);

/*
 * The report of message ID the classifier counts now (learn_result
 * SPAM_REPORT_LEARNT), if any: its *SEQ_R and *CLASS_R. Within a trainer's
 * transaction it sees the trainer's own marks. 1 found, 0 none, -1 error.
 */
int store_spam_report_counted(struct store *store, const char *id, int64_t *seq_r,
			      enum spam_class *class_r);

/* The verdict recorded for message ID: score, action and explanation
 * (pipeline/verdict.h; allocated, NULL if none). 1 found (even with no
 * verdict yet: *ACTION_R NULL then), 0 no such message, -1 error. */
int store_message_verdict_get(struct store *store, const char *id, double *score_r, char **action_r,
			      char **explanation_r);

#endif
