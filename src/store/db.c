/*
 * db.c — the store's SQLite database: opening DATA/popgate.db, the numbered
 * schema migrations, transactions and the prepared-statement cache.
 *
 * Owns: the SQLite connection and its cached statements.
 * Must never: change a migration that has shipped (a database that applied it
 * would never see the change; add a new one instead), or run a migration
 * outside a transaction (a crash half-way would leave a schema no version
 * number describes).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/log.h"
#include "core/util.h"
#include "store/db.h"

/* Lets popgatectl work beside the daemon: a writer waits this long for the lock. */
#define STORE_BUSY_TIMEOUT_MS 5000

struct store_cached_stmt {
	const char *sql; /* the caller's pointer, the lookup key */
	sqlite3_stmt *stmt;
};

/*
 * The schema, one step per entry; PRAGMA user_version holds how many have
 * been applied. Append only.
 */
static const char *const store_migrations[] = {
    /* 1: users, addresses, provider accounts, messages, provider UIDLs. */
    "CREATE TABLE user ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT UNIQUE NOT NULL,"
    "  origin TEXT NOT NULL CHECK (origin IN ('provider', 'local')),"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE address ("
    "  address TEXT PRIMARY KEY COLLATE NOCASE,"
    "  user_id INTEGER NOT NULL REFERENCES user(id),"
    "  is_primary INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX address_user ON address(user_id);"
    "CREATE TABLE account ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT UNIQUE NOT NULL COLLATE NOCASE,"
    "  login TEXT NOT NULL,"
    "  host TEXT NOT NULL,"
    "  user_id INTEGER NOT NULL REFERENCES user(id),"
    "  password_hash TEXT NOT NULL,"
    "  password_secret BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  last_fetch_at INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  fetch_failures INTEGER NOT NULL DEFAULT 0,"
    "  next_fetch_at INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX account_user ON account(user_id);"
    "CREATE TABLE message ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT UNIQUE NOT NULL,"
    "  account_id INTEGER NOT NULL REFERENCES account(id),"
    "  state TEXT NOT NULL,"
    "  uidl TEXT,"
    "  body_size INTEGER NOT NULL,"
    "  sha256 TEXT,"
    "  prepend TEXT NOT NULL DEFAULT '',"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  received_at INTEGER NOT NULL,"
    "  state_changed_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX message_account_state_seq ON message(account_id, state, seq);"
    "CREATE INDEX message_state_seq ON message(state, seq);"
    "CREATE TABLE provider_uidl ("
    "  account_id INTEGER NOT NULL REFERENCES account(id),"
    "  uidl TEXT NOT NULL,"
    "  message_id TEXT,"
    "  stored_at INTEGER NOT NULL,"
    "  PRIMARY KEY (account_id, uidl)"
    ");",
    /*
     * 2: seats (U3), local users' own passwords (U6), settings, and the owner
     * of each message (U5). Users made before seats existed keep working: each
     * gets a seat, waiting order by creation.
     */
    "ALTER TABLE user ADD COLUMN password_hash TEXT;"
    "ALTER TABLE user ADD COLUMN has_seat INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE user ADD COLUMN seat_requested_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE user SET has_seat = 1, seat_requested_at = created_at;"
    "CREATE INDEX user_waiting ON user(has_seat, seat_requested_at, id);"
    "CREATE TABLE setting ("
    "  key TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "ALTER TABLE message ADD COLUMN owner_user_id INTEGER REFERENCES user(id);"
    "CREATE INDEX message_owner ON message(owner_user_id);",
    /*
     * 3: the users a message is attributed to by its recipient addresses
     * (U4), one row per user, with the address that matched. Rows go with
     * their message.
     */
    "CREATE TABLE message_recipient ("
    "  message_id TEXT NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES user(id),"
    "  address TEXT NOT NULL,"
    "  PRIMARY KEY (message_id, user_id)"
    ");"
    "CREATE INDEX message_recipient_user ON message_recipient(user_id);",
    /*
     * 4: failed console logins (U6), counted per key ("user:NAME",
     * "admin", "address:IP") within a window. They live in the store, not in
     * memory, because popgatectl and the daemon both check them.
     */
    "CREATE TABLE login_failure ("
    "  key TEXT PRIMARY KEY,"
    "  failures INTEGER NOT NULL,"
    "  window_start INTEGER NOT NULL"
    ");",
    /*
     * 5: the size the provider's LIST gave for each stored UIDL. A UIDL is
     * proof of "already stored" only with the same size (a provider may
     * reuse a UIDL for another message); 0 = not known, which proves nothing.
     */
    "ALTER TABLE provider_uidl ADD COLUMN provider_size INTEGER NOT NULL DEFAULT 0;",
    /*
     * 6: each change popgatectl made (store/audit.c). LOGGED is 0 until the
     * line is in popgate's log: popgatectl writes it there itself when it
     * can, else the daemon copies it (with log_file = -, only the daemon has
     * the log).
     */
    "CREATE TABLE admin_change ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  at INTEGER NOT NULL,"
    "  message_id TEXT,"
    "  text TEXT NOT NULL,"
    "  logged INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX admin_change_unlogged ON admin_change(logged, seq);",
    /*
     * 7: FETCH_UNFINISHED is 1 from the start of an account's fetch until a
     * fetch of it ends without failing: a fetch cut by a crash or a stop may
     * have stored messages whose DELE never reached the provider (G3), and
     * only those accounts are fetched at once after a restart. Accounts that
     * already have recorded UIDLs or a failed fetch may hold such messages
     * from before this column existed, so they start marked.
     */
    "ALTER TABLE account ADD COLUMN fetch_unfinished INTEGER NOT NULL DEFAULT 0;"
    "UPDATE account SET fetch_unfinished = 1 WHERE fetch_failures > 0"
    " OR id IN (SELECT account_id FROM provider_uidl);",
    /*
     * 8: one owner of a message's life (store/lifecycle.c). The states to
     * come, under a CHECK; an account only for fetched mail (mail submitted
     * over SMTP has none); where a message came from (every row so far was
     * fetched); the combined verdict; and the envelope of mail to relay, a
     * status per recipient. SQLite cannot add a CHECK to a column, so the
     * message table is built anew and its rows, its AUTOINCREMENT counter
     * and its indexes carried over; store_migrate turns foreign keys off
     * around the migrations, else dropping the old table would delete the
     * message_recipient rows with it (ON DELETE CASCADE), and checks them
     * before the step commits.
     */
    "CREATE TABLE message_v8 ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  id TEXT UNIQUE NOT NULL,"
    "  account_id INTEGER REFERENCES account(id),"
    "  state TEXT NOT NULL CHECK (state IN ('processing', 'delivery', 'delivered',"
    "   'suspect', 'quarantine', 'challenged', 'outbound', 'sent', 'bounced')),"
    "  source TEXT NOT NULL DEFAULT 'fetched'"
    "   CHECK (source IN ('fetched', 'submitted', 'imported')),"
    "  uidl TEXT,"
    "  body_size INTEGER NOT NULL,"
    "  sha256 TEXT,"
    "  prepend TEXT NOT NULL DEFAULT '',"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  received_at INTEGER NOT NULL,"
    "  state_changed_at INTEGER NOT NULL,"
    "  owner_user_id INTEGER REFERENCES user(id),"
    "  verdict_score REAL,"
    "  verdict_action TEXT,"
    "  verdict_reasons TEXT"
    ");"
    "INSERT INTO message_v8 (seq, id, account_id, state, source, uidl, body_size, sha256,"
    " prepend, attempts, received_at, state_changed_at, owner_user_id)"
    " SELECT seq, id, account_id, state, 'fetched', uidl, body_size, sha256, prepend,"
    " attempts, received_at, state_changed_at, owner_user_id FROM message;"
    /* Deleted rows' seq values are never given again. */
    "DELETE FROM sqlite_sequence WHERE name = 'message_v8';"
    "INSERT INTO sqlite_sequence (name, seq)"
    " SELECT 'message_v8', seq FROM sqlite_sequence WHERE name = 'message';"
    "DROP TABLE message;"
    "ALTER TABLE message_v8 RENAME TO message;"
    "CREATE INDEX message_account_state_seq ON message(account_id, state, seq);"
    "CREATE INDEX message_state_seq ON message(state, seq);"
    "CREATE INDEX message_owner ON message(owner_user_id);"
    "CREATE TABLE envelope ("
    "  message_id TEXT PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,"
    "  sender TEXT NOT NULL"
    ");"
    "CREATE TABLE envelope_recipient ("
    "  message_id TEXT NOT NULL REFERENCES envelope(message_id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL,"
    "  status TEXT NOT NULL DEFAULT 'pending'"
    "   CHECK (status IN ('pending', 'sent', 'failed')),"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  next_attempt_at INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (message_id, address)"
    ");"
    "CREATE INDEX envelope_recipient_due ON envelope_recipient(status, next_attempt_at);",
    /*
     * 9: the SMTP relay (S1-S3, U5). Local Networks, the clients that may
     * relay without authentication: loopback only until the administrator
     * adds more. Transport rules, in the order they are tried: a recipient
     * domain (wildcards allowed) or a sender matched sends through a relay
     * host, with its own TLS mode and optional credentials (encrypted with
     * the credential key, as provider passwords are). Per recipient of an
     * envelope, the last attempt and the remote server's last reply, for
     * `popgatectl queue` and the DSN; per envelope, whether the sender was
     * sent a DSN. The correspondents a user has written to (CISS trusts
     * them), and the DKIM keys outbound mail is signed with (encrypted).
     */
    "CREATE TABLE local_network ("
    "  name TEXT PRIMARY KEY,"
    "  cidr TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    "INSERT INTO local_network (name, cidr, created_at) VALUES"
    " ('loopback', '127.0.0.0/8', 0), ('loopback6', '::1/128', 0);"
    "CREATE TABLE transport_rule ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  position INTEGER NOT NULL UNIQUE,"
    "  match_kind TEXT NOT NULL CHECK (match_kind IN ('domain', 'sender')),"
    "  pattern TEXT NOT NULL,"
    "  host TEXT NOT NULL,"
    "  port INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),"
    "  tls_mode TEXT NOT NULL DEFAULT 'opportunistic'"
    "   CHECK (tls_mode IN ('none', 'opportunistic', 'required', 'verified')),"
    "  auth_user TEXT,"
    "  auth_secret BLOB,"
    "  created_at INTEGER NOT NULL"
    ");"
    "ALTER TABLE envelope ADD COLUMN dsn_sent INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE envelope_recipient ADD COLUMN last_attempt_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE envelope_recipient ADD COLUMN last_reply TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE correspondent ("
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL,"
    "  first_at INTEGER NOT NULL,"
    "  last_at INTEGER NOT NULL,"
    "  messages INTEGER NOT NULL DEFAULT 1,"
    "  PRIMARY KEY (user_id, address)"
    ");"
    "CREATE TABLE dkim_key ("
    "  domain TEXT PRIMARY KEY,"
    "  selector TEXT NOT NULL,"
    "  algorithm TEXT NOT NULL CHECK (algorithm IN ('ed25519', 'rsa')),"
    "  private_key BLOB NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");",
    /*
     * 10: MTA-STS (RFC 8461): the policy of each recipient domain the relay
     * fetched, with the id its TXT record named, as fetched (reparsed at
     * each use) and until when it may be used (fetched_at + max_age).
     */
    "CREATE TABLE mta_sts_policy ("
    "  domain TEXT PRIMARY KEY,"
    "  policy_id TEXT NOT NULL,"
    "  policy TEXT NOT NULL,"
    "  mode TEXT NOT NULL CHECK (mode IN ('enforce', 'testing', 'none')),"
    "  fetched_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL"
    ");",
    /*
     * 11: spam filtering (issue 10). Filter profiles: thresholds, hold
     * and challenge, and per profile the
     * filters it runs, in order, each with its weight; 'default' exists from
     * the start and serves every user without a profile of its own. The
     * sender allow and block lists (user_id NULL: global). The reports a
     * spam classifier learns from: a release from quarantine (ham) and
     * popgatectl report spam|ham, each kept until a trainer marks it learnt.
     */
    "CREATE TABLE filter_profile ("
    "  name TEXT PRIMARY KEY COLLATE NOCASE,"
    "  tag_at REAL NOT NULL,"
    "  quarantine_at REAL NOT NULL,"
    "  hold INTEGER NOT NULL DEFAULT 0,"
    "  challenge INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE filter_profile_filter ("
    "  profile TEXT NOT NULL REFERENCES filter_profile(name) ON DELETE CASCADE,"
    "  filter TEXT NOT NULL,"
    "  position INTEGER NOT NULL,"
    "  enabled INTEGER NOT NULL DEFAULT 1,"
    "  weight REAL NOT NULL DEFAULT 1,"
    "  PRIMARY KEY (profile, filter)"
    ");"
    "INSERT INTO filter_profile (name, tag_at, quarantine_at, created_at)"
    " VALUES ('default', 5, 10, 0);"
    "INSERT INTO filter_profile_filter (profile, filter, position) VALUES"
    " ('default', 'trace', 1), ('default', 'address', 2), ('default', 'senders', 3);"
    /* No REFERENCES: store/profile.c refuses to delete a profile in use. */
    "ALTER TABLE user ADD COLUMN profile TEXT;"
    "CREATE TABLE sender_list ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER REFERENCES user(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL CHECK (kind IN ('allow', 'block')),"
    "  pattern TEXT NOT NULL COLLATE NOCASE,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE UNIQUE INDEX sender_list_entry ON sender_list(coalesce(user_id, 0), pattern);"
    "CREATE TABLE spam_report ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  message_id TEXT NOT NULL,"
    "  class TEXT NOT NULL CHECK (class IN ('spam', 'ham')),"
    "  origin TEXT NOT NULL CHECK (origin IN ('release', 'report')),"
    "  reported_at INTEGER NOT NULL,"
    "  learnt_at INTEGER"
    ");"
    "CREATE INDEX spam_report_unlearnt ON spam_report(learnt_at, seq);",
    /*
     * 12: the fuzzy filter's fingerprints (store/fingerprint.h): each with
     * its MinHash values (64 big-endian uint32), first and last seen, its
     * messages and distinct senders and owners, and a ham mark from a
     * user's report; its band keys, to find near ones; its sightings (one
     * per message, the sender as a hash only), counted within the window.
     */
    "CREATE TABLE fuzzy_fingerprint ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  minhashes BLOB NOT NULL,"
    "  first_seen INTEGER NOT NULL,"
    "  last_seen INTEGER NOT NULL,"
    "  messages INTEGER NOT NULL DEFAULT 0,"
    "  senders INTEGER NOT NULL DEFAULT 0,"
    "  owners INTEGER NOT NULL DEFAULT 0,"
    "  ham INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE INDEX fuzzy_fingerprint_last_seen ON fuzzy_fingerprint(last_seen);"
    "CREATE TABLE fuzzy_band ("
    "  band_key INTEGER NOT NULL,"
    "  fingerprint_id INTEGER NOT NULL REFERENCES fuzzy_fingerprint(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (band_key, fingerprint_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX fuzzy_band_fingerprint ON fuzzy_band(fingerprint_id);"
    "CREATE TABLE fuzzy_sighting ("
    "  fingerprint_id INTEGER NOT NULL REFERENCES fuzzy_fingerprint(id) ON DELETE CASCADE,"
    "  message_id TEXT NOT NULL,"
    "  sender_hash INTEGER NOT NULL,"
    "  owner_id INTEGER NOT NULL,"
    "  seen_at INTEGER NOT NULL,"
    "  PRIMARY KEY (fingerprint_id, message_id)"
    ");"
    "CREATE INDEX fuzzy_sighting_message ON fuzzy_sighting(message_id);"
    "CREATE INDEX fuzzy_sighting_seen ON fuzzy_sighting(seen_at);",
    /*
     * 13: the subject tag (issue 10, the "tag" action). The body file is
     * never changed, so the POP3 server inserts SUBJECT_TAG at byte
     * SUBJECT_TAG_AT of the body while it serves it ('' = untagged); a
     * message without a Subject gets one among its prepended lines instead.
     * What became of a learnt spam report (store/spam_report.h): 'learnt',
     * 'reversed' (a later report of the other class undid it), or a
     * sentence on why it taught nothing.
     */
    "ALTER TABLE message ADD COLUMN subject_tag TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE message ADD COLUMN subject_tag_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE spam_report ADD COLUMN learn_result TEXT;",
    /*
     * 14: challenge-response, CISS (issue 12; store/ciss.h). The Local
     * Domains (the pseudo-domain is one by itself and never a row). The
     * senders each user trusts, and how (an answer or the administrator).
     * The challenges made: whom from and to, about which held message, the
     * single-use nonce of its link, until when it is valid and when it was
     * answered; kept after the message is gone, so the period and the caps
     * count them. For each held (challenged) message, the user and the
     * sender it waits for, so an answer or the expiry finds it.
     */
    "CREATE TABLE local_domain ("
    "  domain TEXT PRIMARY KEY COLLATE NOCASE,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE ciss_trusted ("
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  address TEXT NOT NULL,"
    "  via TEXT NOT NULL CHECK (via IN ('answer', 'admin')),"
    "  trusted_at INTEGER NOT NULL,"
    "  PRIMARY KEY (user_id, address)"
    ");"
    "CREATE TABLE ciss_challenge ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  sender TEXT NOT NULL,"
    "  recipient TEXT NOT NULL,"
    "  subject TEXT NOT NULL,"
    "  message_id TEXT REFERENCES message(id) ON DELETE SET NULL,"
    "  nonce TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  expires_at INTEGER NOT NULL,"
    "  answered_at INTEGER"
    ");"
    "CREATE INDEX ciss_challenge_sender ON ciss_challenge(user_id, sender, created_at);"
    "CREATE INDEX ciss_challenge_created ON ciss_challenge(created_at);"
    "CREATE INDEX ciss_challenge_message ON ciss_challenge(message_id);"
    "CREATE TABLE ciss_held ("
    "  message_id TEXT PRIMARY KEY REFERENCES message(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES user(id) ON DELETE CASCADE,"
    "  sender TEXT NOT NULL,"
    "  held_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX ciss_held_sender ON ciss_held(user_id, sender);"
    "CREATE INDEX ciss_held_at ON ciss_held(held_at);",
};

#define STORE_MIGRATION_COUNT ((int)(sizeof(store_migrations) / sizeof(store_migrations[0])))

/* Runs one statement that returns no rows, through the statement cache. */
static int store_exec(struct store *store, const char *sql)
{
	sqlite3_stmt *stmt = store_stmt_prepare(store, sql);

	if (stmt == NULL)
		return -1;
	/* Only an error counts: a row, should the statement give one, is not. */
	return store_stmt_exists(store, stmt, sql) < 0 ? -1 : 0;
}

/*
 * Waits for another connection's lock in steps of a millisecond, up to
 * STORE_BUSY_TIMEOUT_MS. SQLite's own busy timeout sleeps in growing steps
 * (up to 100 ms), so a lock held 30 ms could cost 53: the writer thread
 * (store/writer.c) commits beside the loop's connection, and the loop's few
 * writes of its own should wait no longer than the lock is held.
 */
static int store_busy_wait(void *ctx, int count)
{
	(void)ctx;
	if (count >= STORE_BUSY_TIMEOUT_MS)
		return 0;
	usleep(1000);
	return 1;
}

/* Reads PRAGMA user_version; -1 on error (ERR set). */
static int store_read_version(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int version = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &stmt, NULL) != SQLITE_OK ||
	    sqlite3_step(stmt) != SQLITE_ROW) {
		snprintf(err, errlen, "reading the schema version: %s", sqlite3_errmsg(db));
		goto done;
	}
	version = sqlite3_column_int(stmt, 0);
done:
	sqlite3_finalize(stmt);
	return version;
}

/* Sets a PRAGMA whose answer must be EXPECT (journal_mode answers with the mode it got). */
static int store_pragma(sqlite3 *db, const char *sql, const char *expect, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	if (expect != NULL) {
		const char *got =
		    rc == SQLITE_ROW ? (const char *)sqlite3_column_text(stmt, 0) : NULL;

		if (got == NULL || !util_strcaseeq(got, expect)) {
			snprintf(err, errlen, "%s: got %s", sql, got != NULL ? got : "nothing");
			sqlite3_finalize(stmt);
			return -1;
		}
	}
	sqlite3_finalize(stmt);
	return 0;
fail:
	snprintf(err, errlen, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return -1;
}

/* Fails (ERR set) when the database holds a reference to a row that is not
 * there: a migration that rebuilt a table must leave none. */
static int store_check_references(sqlite3 *db, int step, char *err, size_t errlen)
{
	sqlite3_stmt *stmt = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &stmt, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "migration %d: checking references: %s", step,
			 sqlite3_errmsg(db));
		return -1;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		snprintf(err, errlen, "migration %d: a row of %s refers to a missing row", step,
			 (const char *)sqlite3_column_text(stmt, 0));
	else if (rc != SQLITE_DONE)
		snprintf(err, errlen, "migration %d: checking references: %s", step,
			 sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Applies the missing migrations, each in its own BEGIN IMMEDIATE
 * transaction. The version is read again inside each transaction, so two
 * processes opening a new database at once cannot both apply a step.
 */
static int store_migrate_steps(struct store *store, char *err, size_t errlen)
{
	for (;;) {
		char *set_version;
		int version;

		if (sqlite3_exec(store->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "starting a migration: %s", store_errmsg(store));
			return -1;
		}
		version = store_read_version(store->db, err, errlen);
		if (version < 0)
			goto fail;
		if (version > STORE_MIGRATION_COUNT) {
			snprintf(err, errlen,
				 "the database is at schema version %d, newer than this "
				 "program's %d",
				 version, STORE_MIGRATION_COUNT);
			goto fail;
		}
		if (version == STORE_MIGRATION_COUNT)
			break;
		if (sqlite3_exec(store->db, store_migrations[version], NULL, NULL, NULL) !=
		    SQLITE_OK) {
			snprintf(err, errlen, "migration %d: %s", version + 1, store_errmsg(store));
			goto fail;
		}
		if (store_check_references(store->db, version + 1, err, errlen) < 0)
			goto fail;
		/* user_version lives in the database header, so it commits with the step. */
		set_version = xasprintf("PRAGMA user_version = %d", version + 1);
		if (sqlite3_exec(store->db, set_version, NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "recording migration %d: %s", version + 1,
				 store_errmsg(store));
			free(set_version);
			goto fail;
		}
		free(set_version);
		if (sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "committing migration %d: %s", version + 1,
				 store_errmsg(store));
			goto fail;
		}
		log_info("store: applied schema migration %d", version + 1);
	}
	if (sqlite3_exec(store->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "ending the migrations: %s", store_errmsg(store));
		goto fail;
	}
	return 0;
fail:
	if (!sqlite3_get_autocommit(store->db))
		sqlite3_exec(store->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/*
 * Runs the migrations with foreign keys off, as SQLite's procedure for
 * rebuilding a table asks (the pragma is a no-op inside a transaction, so it
 * is set around them): with them on, DROP TABLE deletes the rows first and
 * ON DELETE CASCADE takes the referring rows along. Each step checks the
 * references itself before it commits (store_check_references).
 */
static int store_migrate(struct store *store, char *err, size_t errlen)
{
	int rc;

	if (store_pragma(store->db, "PRAGMA foreign_keys = OFF", NULL, err, errlen) < 0)
		return -1;
	rc = store_migrate_steps(store, err, errlen);
	if (store_pragma(store->db, "PRAGMA foreign_keys = ON", NULL, err, errlen) < 0)
		rc = -1;
	return rc;
}

/*
 * The daemon opens the store as "./popgate.db": its working directory is the
 * data folder, whose parents its service user may not be allowed to search
 * (popgate.c). SQLite's own VFS turns every name into an absolute path and
 * looks at each parent folder, which then fails. This VFS is the default one
 * with a single change: a relative name stays as it is, so the database and
 * its -wal and -shm files are opened relative to the working directory
 * (which the daemon never changes once the store is open).
 */
static sqlite3_vfs store_relative_vfs;
static pthread_once_t store_relative_vfs_once = PTHREAD_ONCE_INIT;

static int store_relative_full_pathname(sqlite3_vfs *vfs, const char *name, int out_len,
					char *out)
{
	size_t len = strlen(name);

	(void)vfs;
	if (out_len < 0 || len >= (size_t)out_len)
		return SQLITE_CANTOPEN;
	memcpy(out, name, len + 1);
	return SQLITE_OK;
}

static void store_relative_vfs_register(void)
{
	sqlite3_vfs *base = sqlite3_vfs_find(NULL);

	if (base == NULL)
		return;
	store_relative_vfs = *base;
	store_relative_vfs.pNext = NULL;
	store_relative_vfs.zName = "popgate-relative";
	store_relative_vfs.xFullPathname = store_relative_full_pathname;
	sqlite3_vfs_register(&store_relative_vfs, 0);
}

/* The VFS for PATH: NULL (the default) for an absolute one. */
static const char *store_vfs_for(const char *path)
{
	if (path[0] == '/')
		return NULL;
	pthread_once(&store_relative_vfs_once, store_relative_vfs_register);
	return store_relative_vfs.zName;
}

struct store *store_open(const char *data_dir, char *err, size_t errlen)
{
	struct store *store = xcalloc(1, sizeof(*store));
	char *path = xasprintf("%s/popgate.db", data_dir);
	int fd;
	int rc;

	store->data_dir = xstrdup(data_dir);
	/*
	 * The database holds password hashes and sealed passwords. SQLite would
	 * create it with the umask's mode; making it first with 0600 fixes that,
	 * and SQLite gives the -wal and -shm files the database file's mode.
	 * Only a new file is opened (O_EXCL): closing a descriptor of a file
	 * drops every POSIX lock the process holds on it, so closing one of an
	 * existing database would drop the locks of a connection already open
	 * in this process (the loop's, when the writer thread opens its own),
	 * and another process could then checkpoint and reset the WAL under
	 * it, losing commits.
	 */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
	} else if (errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	rc = sqlite3_open_v2(path, &store->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			     store_vfs_for(path));
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
			 store->db != NULL ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_handler(store->db, store_busy_wait, NULL);
	/*
	 * WAL lets readers (popgatectl, the console) run beside the writer;
	 * synchronous=FULL makes every COMMIT durable, which G3 relies on: a
	 * message is deleted at the provider only after its row commits.
	 */
	if (store_pragma(store->db, "PRAGMA journal_mode = WAL", "wal", err, errlen) < 0 ||
	    store_pragma(store->db, "PRAGMA synchronous = FULL", NULL, err, errlen) < 0 ||
	    store_pragma(store->db, "PRAGMA foreign_keys = ON", NULL, err, errlen) < 0 ||
	    store_pragma(store->db, "PRAGMA temp_store = MEMORY", NULL, err, errlen) < 0)
		goto fail;
	if (store_migrate(store, err, errlen) < 0)
		goto fail;
	free(path);
	return store;
fail:
	free(path);
	store_close(&store);
	return NULL;
}

void store_close(struct store **store)
{
	struct store *s = *store;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->stmt_count; i++)
		sqlite3_finalize(s->stmts[i].stmt);
	free(s->stmts);
	/* Every statement is finalized above, so the close cannot be refused as busy. */
	if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK)
		log_error("store: closing the database: %s", sqlite3_errmsg(s->db));
	free(s->data_dir);
	free(s);
	*store = NULL;
}

int store_schema_version(struct store *store)
{
	char err[256];
	int version = store_read_version(store->db, err, sizeof(err));

	if (version < 0)
		log_error("store: %s", err);
	return version;
}

int store_begin(struct store *store)
{
	return store_exec(store, "BEGIN IMMEDIATE");
}

int store_commit(struct store *store)
{
	if (store_exec(store, "COMMIT") == 0)
		return 0;
	/* A COMMIT refused (say, busy) leaves the transaction open; end it so
	 * that -1 means "nothing written" to every caller. */
	store_rollback(store);
	return -1;
}

void store_rollback(struct store *store)
{
	/* SQLite may already have rolled back by itself after some errors. */
	if (sqlite3_get_autocommit(store->db))
		return;
	store_exec(store, "ROLLBACK");
}

const char *store_errmsg(struct store *store)
{
	return sqlite3_errmsg(store->db);
}

void store_log_error(struct store *store, const char *what)
{
	log_error("store: %s: %s", what, sqlite3_errmsg(store->db));
}

sqlite3_stmt *store_stmt_prepare(struct store *store, const char *sql)
{
	struct store_cached_stmt *entry = NULL;
	sqlite3_stmt *stmt = NULL;

	for (size_t i = 0; i < store->stmt_count; i++) {
		if (store->stmts[i].sql == sql) {
			entry = &store->stmts[i];
			break;
		}
	}
	/* The address is the key; the text check catches a caller that passed a
	 * buffer whose address was reused for different SQL. */
	if (entry != NULL && strcmp(sqlite3_sql(entry->stmt), sql) == 0) {
		/* Busy here means two users of one statement at once: a bug. */
		assert(!sqlite3_stmt_busy(entry->stmt));
		return entry->stmt;
	}
	if (sqlite3_prepare_v3(store->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL) !=
	    SQLITE_OK) {
		store_log_error(store, sql);
		return NULL;
	}
	if (entry != NULL) {
		sqlite3_finalize(entry->stmt);
	} else {
		store->stmts = xrealloc(store->stmts, (store->stmt_count + 1) * sizeof(*entry));
		entry = &store->stmts[store->stmt_count++];
	}
	entry->sql = sql;
	entry->stmt = stmt;
	return stmt;
}

void store_stmt_release(sqlite3_stmt *stmt)
{
	if (stmt == NULL)
		return;
	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
}

int store_stmt_step(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	int rc = sqlite3_step(stmt);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	store_log_error(store, what);
	return -1;
}

int store_stmt_exists(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	int result = store_stmt_step(store, stmt, what);

	store_stmt_release(stmt);
	return result;
}

int store_stmt_done(struct store *store, sqlite3_stmt *stmt, const char *what)
{
	int rc = sqlite3_step(stmt);

	if (rc != SQLITE_DONE)
		store_log_error(store, what);
	store_stmt_release(stmt);
	return rc == SQLITE_DONE ? 0 : -1;
}

int store_tx_begin(struct store *store, bool *outer_r)
{
	*outer_r = sqlite3_get_autocommit(store->db) != 0;
	/* IMMEDIATE takes the write lock now, so a read-then-write unit cannot
	 * fail half-way for a lock another writer took in between. */
	return store_exec(store, *outer_r ? "BEGIN IMMEDIATE" : "SAVEPOINT store_tx");
}

int store_tx_commit(struct store *store, bool outer)
{
	if (outer)
		return store_commit(store);
	if (store_exec(store, "RELEASE store_tx") == 0)
		return 0;
	store_tx_rollback(store, false);
	return -1;
}

void store_tx_rollback(struct store *store, bool outer)
{
	if (outer) {
		store_rollback(store);
		return;
	}
	if (sqlite3_get_autocommit(store->db))
		return;
	/* ROLLBACK TO undoes the savepoint's writes but keeps it open; RELEASE
	 * then removes it, leaving the caller's transaction as it was. */
	if (store_exec(store, "ROLLBACK TO store_tx") == 0)
		store_exec(store, "RELEASE store_tx");
}

void *store_list_grow(void *list, size_t count, size_t *capacity, size_t size)
{
	if (count < *capacity)
		return list;
	*capacity = *capacity == 0 ? 16 : *capacity * 2;
	return xrealloc(list, *capacity * size);
}
