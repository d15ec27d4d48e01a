/*
 * retention.h — how long MailDepot keeps a message, what stops its removal,
 * and the one way archived mail leaves (SPEC A1, issue 11 point 3).
 *
 * A retention period belongs to a scope: "domain:example.org" (mail owned
 * through an address of that domain), "user:NAME" (mail owned by that
 * user) or "default" (every other message; without that row, the
 * configured [depot] retention_days). A message's retention is the longest
 * of its owners' periods, where an owner's period is the longer of its
 * user's and its address domain's rows, or the default when neither has
 * one; a message without owners has the default. So a short period for one
 * owner never cuts another owner's mail short.
 *
 * A legal hold belongs to a scope too: "domain:D", "user:NAME",
 * "message:SEQ" or "all". A message under any hold that covers it (the
 * domain of an owner address, an owner's user, the message, or all) is
 * never removed.
 *
 * Every change of a period or a hold is an entry of the chain ("retention",
 * "hold", "unhold", with the scope in its detail), and depot_expire records
 * what it removed as one "expire" entry: so the chain shows why any message
 * is gone.
 *
 * Must never: remove a message under hold or before its retention has
 * passed; remove a chain entry or a message row's seq; remove a blob a kept
 * message still refers to.
 */
#ifndef POPGATE_DEPOT_RETENTION_H
#define POPGATE_DEPOT_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "depot/depot.h"

/* The longest retention a scope may have, in days (100 years). */
#define DEPOT_RETENTION_DAYS_MAX 36525
/* The longest reason a hold keeps, in bytes. */
#define DEPOT_HOLD_REASON_MAX 200

/*
 * The scope text for KIND ("domain", "user", "message"; "all" and "default"
 * take no VALUE) and VALUE, checked (a domain's shape, lowercased; a user
 * name's; a message's seq > 0): allocated, or NULL with ERR.
 */
char *depot_scope(const char *kind, const char *value, char *err, size_t errlen);

/* One retention or hold row. */
struct depot_scope_row {
	char *scope;
	int64_t days; /* retention */
	char *reason; /* hold; NULL for none */
	int64_t at;   /* hold: since when */
};
void depot_scope_rows_free(struct depot_scope_row **rows, size_t count);

/*
 * Sets SCOPE's (depot_scope: domain, user or default) retention to DAYS
 * (1..DEPOT_RETENTION_DAYS_MAX) and appends the chain entry "retention"
 * with detail "<scope> days:<DAYS>", in one transaction under write.lock.
 * 0 / -1 ERR.
 */
int depot_retention_set(struct depot *depot, const char *scope, int64_t days, char *err,
			size_t errlen);

/* Every retention row, by scope, into *ROWS_R (depot_scope_rows_free). 0 / -1 ERR. */
int depot_retention_list(struct depot *depot, struct depot_scope_row **rows_r, size_t *count_r,
			 char *err, size_t errlen);

/*
 * Puts SCOPE under hold with REASON (may be NULL; at most
 * DEPOT_HOLD_REASON_MAX bytes, control characters made spaces) and appends
 * the chain entry "hold" with detail "<scope>" or "<scope> reason:<text>".
 * A "message:SEQ" scope must name an archived message. 1 held, 0 SCOPE was
 * held already (nothing changes), -1 ERR.
 */
int depot_hold_add(struct depot *depot, const char *scope, const char *reason, char *err,
		   size_t errlen);

/* Lifts the hold of SCOPE and appends the chain entry "unhold" with detail
 * "<scope>". 1 lifted, 0 there was none, -1 ERR. */
int depot_hold_del(struct depot *depot, const char *scope, char *err, size_t errlen);

/* Every hold, by scope, into *ROWS_R (depot_scope_rows_free). 0 / -1 ERR. */
int depot_hold_list(struct depot *depot, struct depot_scope_row **rows_r, size_t *count_r,
		    char *err, size_t errlen);

/* What depot_expire found and did. */
struct depot_expiry {
	int64_t *seqs; /* the messages expired (or, dry, to expire), ascending */
	size_t count;
	int64_t held;	       /* due, but kept by a hold */
	int64_t blobs_removed; /* blobs no kept message refers to any more */
	int64_t bytes_freed;   /* of disk, given back by punching their records out */
	int64_t entry_seq;     /* the "expire" chain entry, 0 when none was written */
};
void depot_expiry_free(struct depot_expiry *expiry);

/*
 * Expires every archived message whose archive time plus its retention
 * (DEFAULT_DAYS for the default unless a "default" row says otherwise) is
 * before NOW and which no hold covers. Unless DRY_RUN, in one transaction
 * under write.lock: removes its index rows (the message's sender, subject,
 * date and Message-ID, its recipients, owners and attachments; its source,
 * direction, size, blob hash and archive time stay, as its chain entry
 * does) and its full-text row (depot_extract
 * on its blob gives the values the contentless FTS5 table needs to
 * delete it), marks it expired with the seq of ONE new chain entry "expire"
 * whose detail lists "seq:<n>" for each, marks every blob no kept message
 * refers to removed, then audits "delete" as ACTOR; after the commit those
 * blobs' records are punched out of their packs (a crash before that leaves
 * their bytes unreferenced, never a referenced blob gone). DRY_RUN only
 * fills *EXPIRY. 0 / -1 ERR (nothing changed).
 */
int depot_expire(struct depot *depot, int64_t now, int64_t default_days, bool dry_run,
		 const char *actor, struct depot_expiry *expiry, char *err, size_t errlen);

#endif
