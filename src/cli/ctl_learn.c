/*
 * ctl_learn.c — the Bayes database learns the spam reports (issue 10: a
 * release from quarantine trains ham, `report spam ID` trains spam), right
 * after popgatectl recorded them, and `bayes learn` for any left over; and
 * the lock that makes every writer of the database wait its turn.
 *
 * Owns: the lock file beside the database while it learns. Must never: learn
 * a report twice, count a message as both spam and ham (a report of the
 * other class first forgets the earlier one), or mark a report learnt whose
 * learning was not saved. A body that is gone (expired, deleted) makes its
 * report "not learnable", never a failure of the command.
 *
 * Why popgatectl and not the daemon: popgatectl has the store and may read
 * the spool; one message's learning is one load and one save of the database,
 * too long for the daemon's loop and not worth a thread. Once saved, the
 * daemon is told (ctl_changed) and replaces its workers, who then read the
 * new database (pipeline_bayes_check).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cli/ctl.h"
#include "core/util.h"
#include "filters/bayes.h"
#include "filters/mime.h"
#include "store/spam_report.h"
#include "store/spool.h"

/* Reports learnt per load and save of the database. */
#define CTL_LEARN_BATCH 1000

int ctl_bayes_lock(const char *database, char *err, size_t errlen)
{
	char *path = xasprintf("%s.lock", database);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	/* Blocking: a training holds it for as long as its files take; the
	 * next writer must load what it saved, not overwrite it. */
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			snprintf(err, errlen, "%s: cannot lock: %s", path, strerror(errno));
			close(fd);
			free(path);
			return -1;
		}
	}
	free(path);
	return fd;
}

/*
 * Teaches *DB report REPORT (reading its body from the spool), in the
 * caller's transaction; counts what it did in *LEARNT. -1 only for a store
 * error: a body that cannot be read is "not learnable", recorded as such.
 */
static int ctl_learn_one(struct ctl *ctl, struct bayes_db *db, const struct spam_report *report,
			 struct ctl_learnt *learnt)
{
	bool spam = report->spam_class == SPAM_CLASS_SPAM;
	char *path = spool_path(ctl->cfg.data_dir, report->message_id);
	struct mime_message message;
	enum spam_class counted_class;
	int64_t counted_seq;
	char result[160];
	char *data;
	size_t len;
	int counted;

	if (util_read_file(path, &data, &len) < 0) {
		snprintf(result, sizeof(result), "not learnable: the body cannot be read (%s)",
			 errno == ENOENT ? "gone: expired or deleted" : strerror(errno));
		free(path);
		learnt->unlearnable++;
		return store_spam_report_learnt(ctl->store, report->seq, result);
	}
	free(path);
	counted =
	    store_spam_report_counted(ctl->store, report->message_id, &counted_seq, &counted_class);
	if (counted < 0) {
		free(data);
		return -1;
	}
	if (counted == 1 && counted_class == report->spam_class) {
		free(data);
		learnt->already++;
		snprintf(result, sizeof(result), "not learnt again: report %lld counts it as %s",
			 (long long)counted_seq, spam_class_name(counted_class));
		return store_spam_report_learnt(ctl->store, report->seq, result);
	}
	mime_parse(data, len, &message);
	if (counted == 1) {
		/* The other class before: forgotten, then learnt as this one. */
		bayes_forget(db, &message, counted_class == SPAM_CLASS_SPAM);
		learnt->reversed++;
		if (store_spam_report_learnt(ctl->store, counted_seq, SPAM_REPORT_REVERSED) < 0) {
			mime_message_free(&message);
			free(data);
			return -1;
		}
	}
	bayes_train(db, &message, spam);
	mime_message_free(&message);
	free(data);
	learnt->learnt++;
	return store_spam_report_learnt(ctl->store, report->seq, SPAM_REPORT_LEARNT);
}

int ctl_learn_reports(struct ctl *ctl, struct ctl_learnt *learnt, char *err, size_t errlen)
{
	char *database = xasprintf("%s/%s", ctl->cfg.data_dir, BAYES_DB_NAME);
	struct spam_report *reports = NULL;
	struct bayes_db db;
	size_t count = 0;
	bool outer = false;
	bool in_tx = false;
	int lock = -1;
	int rc = -1;

	memset(learnt, 0, sizeof(*learnt));
	memset(&db, 0, sizeof(db));
	lock = ctl_bayes_lock(database, err, errlen);
	if (lock < 0)
		goto done;
	mime_init();
	do {
		bayes_db_free(&db);
		free(reports);
		reports = NULL;
		/* Read under the lock: another popgatectl may have learnt them. */
		if (store_spam_report_unlearnt(ctl->store, CTL_LEARN_BATCH, &reports, &count) < 0) {
			snprintf(err, errlen, "cannot read the spam reports");
			goto done;
		}
		if (count == 0)
			break;
		if (bayes_db_load(database, &db, err, errlen) < 0)
			goto done;
		bayes_train_begin(&db);
		if (store_tx_begin(ctl->store, &outer) < 0) {
			snprintf(err, errlen, "cannot start a transaction");
			goto done;
		}
		in_tx = true;
		for (size_t i = 0; i < count; i++) {
			if (ctl_learn_one(ctl, &db, &reports[i], learnt) < 0) {
				snprintf(err, errlen, "cannot mark the spam reports learnt");
				goto done;
			}
		}
		/* Saved first, then marked: a crash between the two learns the
		 * batch again at the next run (counted twice), never loses it. */
		if (bayes_db_save(&db, database, err, errlen) < 0)
			goto done;
		in_tx = false;
		if (store_tx_commit(ctl->store, outer) < 0) {
			snprintf(err, errlen, "cannot mark the spam reports learnt");
			goto done;
		}
	} while (count == CTL_LEARN_BATCH);
	rc = 0;
done:
	if (in_tx)
		store_tx_rollback(ctl->store, outer);
	free(reports);
	bayes_db_free(&db);
	if (lock >= 0)
		close(lock); /* and with it the lock */
	free(database);
	return rc;
}
