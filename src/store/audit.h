/*
 * audit.h — the record of popgatectl's changes (the admin_change table), so
 * that every change reaches popgate's log whatever the log's destination.
 *
 * popgatectl adds a row for each change; when it could write the line to the
 * daemon's log file itself, the row is marked logged at once. Otherwise (the
 * daemon logs to its stderr, or the file is not writable for whoever ran
 * popgatectl) the daemon logs the row at its next poll and marks it.
 */
#ifndef POPGATE_STORE_AUDIT_H
#define POPGATE_STORE_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

/* Records a change made at AT (Unix seconds) about MESSAGE_ID (may be NULL),
 * described by TEXT; LOGGED when its line is already in popgate's log.
 * 0 or -1 (logged). */
int store_admin_change_add(struct store *store, int64_t at, const char *message_id,
			   const char *text, bool logged);

/* Called for each change not yet logged, oldest first. */
typedef void store_admin_change_cb(int64_t at, const char *message_id, const char *text, void *ctx);

/* Calls CALLBACK for at most LIMIT changes not yet logged, oldest first, and
 * marks them logged, in one transaction. The number handled, or -1 (logged;
 * then none is marked, and they come again). */
int store_admin_change_take(struct store *store, size_t limit, store_admin_change_cb *callback,
			    void *ctx);

#endif
