/*
 * spam_report.c — reports of a message's class for a classifier to learn
 * from, a release from quarantine, and a message's recorded verdict (see
 * store/spam_report.h).
 *
 * Owns: the spam_report rows. Must never: move a message but through
 * store/lifecycle.c (store_message_move), or record a release whose move
 * did not happen.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "core/util.h"
#include "store/message.h"
#include "store/spam_report.h"
#include "store/user_internal.h"

const char *spam_class_name(enum spam_class spam_class)
{
	return spam_class == SPAM_CLASS_SPAM ? "spam" : "ham";
}

int store_spam_report_add(struct store *store, const char *id, enum spam_class spam_class,
			  const char *origin)
{
	static const char sql[] = "INSERT INTO spam_report (message_id, class, origin, reported_at)"
				  " VALUES (?, ?, ?, ?)";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_text(stmt, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 2, spam_class_name(spam_class), -1, SQLITE_STATIC);
	sqlite3_bind_text(stmt, 3, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 4, util_now());
	return store_stmt_done(store, stmt, "recording a spam report");
}

int store_spam_release(struct store *store, const char *id)
{
	bool outer;
	int moved;

	if (store_tx_begin(store, &outer) < 0)
		return -1;
	moved = store_message_move(store, id, MESSAGE_QUARANTINE, MESSAGE_DELIVERY, NULL);
	if (moved < 0)
		goto fail;
	if (moved == 1 && store_spam_report_add(store, id, SPAM_CLASS_HAM, "release") < 0)
		goto fail;
	if (store_tx_commit(store, outer) < 0)
		return -1;
	return moved;
fail:
	store_tx_rollback(store, outer);
	return -1;
}

int store_spam_report_unlearnt(struct store *store, size_t max, struct spam_report **list_r,
			       size_t *count_r)
{
	static const char sql[] = "SELECT seq, message_id, class, origin, reported_at"
				  " FROM spam_report WHERE learnt_at IS NULL ORDER BY seq LIMIT ?";
	struct spam_report *list = NULL;
	size_t count = 0, capacity = 0;
	sqlite3_stmt *stmt = user_stmt_int(store, sql, (int64_t)max);
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if (stmt == NULL)
		return -1;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(stmt, 1);
		const char *spam_class = (const char *)sqlite3_column_text(stmt, 2);
		const char *origin = (const char *)sqlite3_column_text(stmt, 3);
		struct spam_report *report;

		if (id == NULL || !spool_id_valid(id))
			continue;
		list = store_list_grow(list, count, &capacity, sizeof(*list));
		report = &list[count++];
		report->seq = sqlite3_column_int64(stmt, 0);
		memcpy(report->message_id, id, SPOOL_ID_LEN + 1);
		report->spam_class = spam_class != NULL && strcmp(spam_class, "spam") == 0
					 ? SPAM_CLASS_SPAM
					 : SPAM_CLASS_HAM;
		snprintf(report->origin, sizeof(report->origin), "%s",
			 origin != NULL ? origin : "");
		report->reported_at = sqlite3_column_int64(stmt, 4);
	}
	store_stmt_release(stmt);
	if (rc != SQLITE_DONE) {
		store_log_error(store, "reading the spam reports");
		free(list);
		return -1;
	}
	*list_r = list;
	*count_r = count;
	return 0;
}

int store_spam_report_learnt(struct store *store, int64_t seq, const char *result)
{
	static const char sql[] =
	    "UPDATE spam_report SET learnt_at = ?, learn_result = ? WHERE seq = ?";
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	sqlite3_bind_int64(stmt, 1, util_now());
	sqlite3_bind_text(stmt, 2, result, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, seq);
	return store_stmt_done(store, stmt, "marking a spam report learnt");
}

int store_spam_report_counted(struct store *store, const char *id, int64_t *seq_r,
			      enum spam_class *class_r)
{
	static const char sql[] = "SELECT seq, class FROM spam_report WHERE message_id = ?"
				  " AND learn_result = '" SPAM_REPORT_LEARNT "'"
				  " ORDER BY seq DESC LIMIT 1";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, id);
	int found = user_stmt_row(store, stmt, "reading a message's learnt report");

	if (found == 1) {
		const char *spam_class = (const char *)sqlite3_column_text(stmt, 1);

		*seq_r = sqlite3_column_int64(stmt, 0);
		*class_r = spam_class != NULL && strcmp(spam_class, "spam") == 0 ? SPAM_CLASS_SPAM
										  : SPAM_CLASS_HAM;
	}
	store_stmt_release(stmt);
	return found;
}

int store_message_verdict_get(struct store *store, const char *id, double *score_r, char **action_r,
			      char **explanation_r)
{
	static const char sql[] =
	    "SELECT verdict_score, verdict_action, verdict_reasons FROM message WHERE id = ?";
	sqlite3_stmt *stmt = user_stmt_text(store, sql, id);
	int found = user_stmt_row(store, stmt, "reading a verdict");

	*score_r = 0;
	*action_r = NULL;
	*explanation_r = NULL;
	if (found == 1) {
		*score_r = sqlite3_column_double(stmt, 0);
		*action_r = user_column_strdup(stmt, 1);
		*explanation_r = user_column_strdup(stmt, 2);
	}
	store_stmt_release(stmt);
	return found;
}
