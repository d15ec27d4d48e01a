/*
 * depot.h — MailDepot (SPEC A1, issue 11): the archive that can prove nothing
 * was changed. Every message passing popgate (fetched: direction "in"; sent
 * through the relay: "out"; brought in by `popgatectl depot import`:
 * "import") is kept unaltered, findable and verifiable for years (GoBD).
 *
 * The folder DATA/depot/:
 *   index.db       SQLite (WAL): the index, the hash chain, checkpoints, the
 *                  audit log, retention, holds and import progress (schema
 *                  below); never the message bytes
 *   packs/NNNNNN.pack
 *                  append-only pack files, each at most DEPOT_PACK_MAX bytes,
 *                  of records: "PGD1" | SHA-256 of the raw message (32) |
 *                  raw length (u64 BE) | stored length (u64 BE) | dictionary
 *                  id (u32 BE, 0 = none) | the zstd frame (stored length)
 *   dict/N.dict    zstd dictionaries, trained from archived messages once
 *                  they pay (a dictionary is never changed once written)
 *   signing.key    the Ed25519 key (libsodium) that signs checkpoints, 0600
 *   write.lock     flock()ed by every writer (the daemon's archiver thread,
 *                  popgatectl depot import|expire|hold|retention), so packs
 *                  are appended by one process at a time
 *
 * Blobs are content-addressed by the SHA-256 of the raw message and stored
 * once (deduplicated); an entry refers to a blob by that hash.
 *
 * Durability order (G3): a batch's records are appended to the pack and the
 * pack fsynced BEFORE the index transaction that refers to them commits. A
 * crash leaves at most unreferenced bytes at a pack's tail (dead; the next
 * append starts at the file's end); a committed entry always has its blob.
 * Ingest is idempotent by SOURCE (see depot_item): archiving a source again
 * returns the entry it already has, so a retried or resumed run never
 * archives one message twice.
 *
 * The hash chain. Every entry (kind "archive", "expire", "hold", "unhold",
 * "retention") has seq 1, 2, 3 … and
 *     hash = SHA-256( prev_hash(32; zeros for seq 1) || canonical(entry) )
 * where canonical(entry) is the bytes of the lines
 *     "seq:<n>\nkind:<kind>\nat:<unix s>\nblob:<sha256 hex or ->\n"
 *     "record:<SHA-256 hex of the canonical index record, or ->\n"
 *     "detail:<detail text, or ->\n"
 * and the canonical index record of an archived message is the lines
 *     "direction:<in|out|import>\nsource:<source>\nsender:<s>\n"
 *     "recipient:<r>\n" (one per recipient, in stored order)
 *     "subject:<s>\ndate:<unix s>\nsize:<raw bytes>\nmessage-id:<id>\n"
 *     "owner:<address> <user>\n" (one per owner, in stored order)
 *     "attachment:<name>\n" (one per name, in stored order)
 * with every value's CR, LF and NUL replaced by a space. So a changed blob,
 * index row or chain entry is found by depot_verify, and a chain rewritten
 * from some entry on is found against an exported checkpoint.
 *
 * An "expire" entry's detail lists the seqs it expired as words "seq:<n>"
 * separated by spaces (other words may follow). An expired message keeps its
 * message row with expired = that entry's seq (its other index rows and its
 * FTS row may go; its blob's removed is set, not NULL, when no unexpired
 * message uses it); depot_verify skips its record and blob, and reports a
 * message whose expired names no expire entry listing it.
 *
 * The audit log is a second chain of the same construction (table audit)
 * over every search, read, export, restore, import, expiry and deletion:
 * who (the actor: "admin", "user:NAME", "daemon"), what, and its detail
 * (the query, the seq numbers read). Its canonical text is the lines
 *     "seq:<n>\nat:<unix s>\nactor:<actor>\naction:<action>\n"
 *     "detail:<detail text, or ->\n"
 * (values' CR, LF and NUL as spaces, as in the entry chain).
 *
 * Schema of index.db (depot_open creates and migrates it; PRAGMA user_version):
 *   entry(seq INTEGER PRIMARY KEY, kind TEXT, at INTEGER, blob BLOB,
 *         record BLOB, detail TEXT, hash BLOB)         -- the chain
 *   blob(sha256 BLOB PRIMARY KEY, pack INTEGER, offset INTEGER,
 *        stored INTEGER, raw INTEGER, dict INTEGER, removed INTEGER)
 *                           -- offset: where the record's "PGD1" starts
 *   message(seq INTEGER PRIMARY KEY REFERENCES entry, source TEXT UNIQUE,
 *           direction TEXT, sender TEXT, subject TEXT, date INTEGER,
 *           size INTEGER, message_id TEXT, blob BLOB, archived INTEGER,
 *           expired INTEGER, extracted INTEGER) -- expired: the seq of the
 *                           expire entry; extracted 0: archived without
 *                           fields (an empty full-text row);
 *                           indexes on sender and date (depot/search.c), blob
 *   message_recipient(seq, position, address)   -- index on address
 *   message_owner(seq, position, address, user) -- index on address, user
 *   message_attachment(seq, position, name)     -- index on name
 *   message_text USING fts5(subject, headers, body, attachments, keys,
 *                           content='', tokenize='unicode61 remove_diacritics 2')
 *                           -- contentless, rowid = seq; keys: a token per
 *                           role and value, "k" + role + the first 16 bytes
 *                           of SHA-256(value) in hex, for the sender ("s"),
 *                           each recipient ("r"), each owner address ("o";
 *                           addresses lowercased) and owner user ("u"), and
 *                           "kd" + YYYYMM of the Date (UTC), so a search by
 *                           them and words is one FTS5 expression
 *                           (depot/search.c; migration 2 made these rows
 *                           again from the blobs)
 *   checkpoint(seq PRIMARY KEY, hash BLOB, at INTEGER, signature BLOB)
 *   audit(seq INTEGER PRIMARY KEY, at, actor, action, detail, hash BLOB)
 *   retention(scope TEXT PRIMARY KEY, days INTEGER) -- "domain:example.org",
 *                           "user:NAME"; no row: [depot] retention_days
 *   hold(scope TEXT PRIMARY KEY, reason TEXT, at INTEGER) -- "domain:D",
 *                           "user:NAME", "message:SEQ", "all"
 *   import_source(key TEXT PRIMARY KEY, done INTEGER, position INTEGER)
 *
 * Threads: a struct depot is used by one thread at a time (the daemon keeps
 * one in its archiver thread; popgatectl one in its only thread). Several
 * processes may open one depot: readers never wait, writers take write.lock.
 *
 * Must never: rewrite or remove an entry of the chain; remove a blob or index
 * row other than through depot_expire (recorded in the chain) and never one
 * under hold; log or print a message body or its text.
 */
#ifndef POPGATE_DEPOT_H
#define POPGATE_DEPOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#define DEPOT_PACK_MAX (1024LL * 1024 * 1024)
/* The text the index keeps of one message for full-text search, at most. */
#define DEPOT_TEXT_MAX (256 * 1024)
/* Bounds of struct depot_fields (depot_extract keeps within them; the
 * worker protocol refuses more): recipients and attachment names kept, the
 * bytes of an address, of a one-line value (subject, message id), of an
 * attachment name and of the header text. */
#define DEPOT_RECIPIENTS_MAX 1000
#define DEPOT_ATTACHMENTS_MAX 100
#define DEPOT_ADDRESS_MAX 254
#define DEPOT_LINE_MAX 998
#define DEPOT_NAME_MAX 255
#define DEPOT_HEADERS_MAX (64 * 1024)
/* Ten years, the default [depot] retention_days. */
#define DEPOT_RETENTION_DAYS_DEFAULT 3653

struct depot;

enum depot_direction { DEPOT_IN, DEPOT_OUT, DEPOT_IMPORT };

/* "in", "out", "import"; and back (-1 unknown). */
const char *depot_direction_name(enum depot_direction direction);
int depot_direction_parse(const char *name);

/* An address the message belongs through, and the user it was assigned to
 * when archived (U4/U5; user NULL or "" for an address of no user). */
struct depot_owner {
	char *address;
	char *user;
};

/*
 * What the index keeps of a message besides its bytes: filled from the raw
 * message by depot_extract (GMime; in the daemon a worker runs it, since the
 * message is hostile, and sends the fields back with its verdict). Strings
 * are UTF-8, NUL-terminated, owned by the struct.
 */
struct depot_fields {
	char *sender;       /* the first From address, lowercased, or NULL */
	char **recipients;  /* To, Cc, Bcc, Delivered-To, X-Original-To addresses, lowercased, distinct */
	size_t recipient_count;
	char *subject;      /* decoded, or NULL */
	int64_t date;       /* the Date header, unix seconds; 0 when missing or bad */
	char *message_id;   /* without <>, or NULL */
	char **attachments; /* file names of the parts with one */
	size_t attachment_count;
	char *headers;      /* the decoded header text worth searching (From, To, Cc, Subject, …) */
	char *body;         /* the text of the text parts (HTML as text), at most DEPOT_TEXT_MAX */
	char *attachment_text; /* the text of text-like attachments (text parts, .docx, .odt, .xlsx …), bounded likewise */
};

/*
 * Fills *FIELDS from the raw message RAW (LEN bytes; any bytes at all: bounded
 * and safe on hostile input). 0, or -1 with ERR (then *FIELDS is empty).
 * depot/extract.c.
 */
int depot_extract(const char *raw, size_t len, struct depot_fields *fields, char *err,
		  size_t errlen);
void depot_fields_free(struct depot_fields *fields);

/*
 * A header value RAW as written (folded, RFC 2047 encoded words) as one
 * line of valid UTF-8, controls as spaces, at most MAX bytes, converted
 * only with the charset converters mime_init loaded, as depot_extract
 * does (so a confined worker and popgatectl agree). NULL when nothing is
 * left; else free(). depot/extract.c.
 */
char *depot_header_text(const char *raw, size_t max);

/* One message to archive. */
struct depot_item {
	const char *raw; /* the message as received, unaltered */
	size_t len;
	enum depot_direction direction;
	/* Unique per message archived: "popgate:<spool id>" for the daemon's,
	 * "import:<key>#<position>" for an import; archived again, the first
	 * entry is returned instead. */
	const char *source;
	const struct depot_fields *fields;
	const struct depot_owner *owners;
	size_t owner_count;
	int64_t at; /* when, unix seconds (0: now) */
};

/*
 * Opens DIR (DATA/depot), creating it (0700) and its database when CREATE.
 * NULL with ERR. depot_close(NULL-safe) sets *DEPOT to NULL.
 */
struct depot *depot_open(const char *dir, bool create, char *err, size_t errlen);
void depot_close(struct depot **depot);

/*
 * Archives N items as one batch: compresses each new blob (zstd, with the
 * current dictionary when there is one), appends them to the pack, fsyncs,
 * then in ONE transaction writes the index rows, the FTS row and one chain
 * entry per message and commits. SEQ_R[i] (may be NULL) gets each item's
 * entry (an existing one for a source already archived). 0, or -1 with ERR
 * and nothing archived. Called inside the caller's open transaction (e.g. an
 * import recording its progress), the batch joins it (a savepoint) and the
 * caller's COMMIT makes it durable; the packs are fsynced before this returns.
 */
int depot_ingest(struct depot *depot, const struct depot_item *items, size_t n, int64_t *seq_r,
		 char *err, size_t errlen);

/* The raw bytes of the message of entry SEQ, checked against its SHA-256
 * (a mismatch is an error: "blob of entry N is corrupt"). *RAW_R: free().
 * Audited as "read" by ACTOR (NULL: "admin") with detail "seq:<n>"; no read
 * without its audit entry. 1, 0 no such message (or expired), -1 ERR. */
int depot_read(struct depot *depot, int64_t seq, const char *actor, char **raw_r,
	       size_t *len_r, char *err, size_t errlen);

/* Appends one entry to the audit chain (takes write.lock). Inside the
 * caller's open transaction it joins it, committed with it: so many reads
 * (an export's depot_read calls) cost one commit, not one each. 0 / -1 ERR. */
int depot_audit(struct depot *depot, const char *actor, const char *action, const char *detail,
		char *err, size_t errlen);

/* depot_verify's findings. */
struct depot_verify_report {
	int64_t entries;        /* chain entries checked */
	int64_t blobs;          /* blobs read and hashed */
	int64_t audit_entries;  /* audit entries checked */
	int64_t checkpoints;    /* checkpoints whose signature and hash matched */
	int64_t broken_seq;     /* the first broken entry, 0 for none */
	char problem[256];      /* what is wrong with it, "" for nothing */
};

/*
 * Checks the whole depot: each entry's hash from its predecessor, each
 * archived message's index record against its entry, each blob's bytes
 * against its SHA-256, each stored checkpoint's signature, the audit chain,
 * and (CHECKPOINTS not NULL) every checkpoint in that exported file. Stops at
 * the first problem. 0 intact, 1 broken (REPORT says where), -1 ERR.
 */
int depot_verify(struct depot *depot, const char *checkpoints, struct depot_verify_report *report,
		 char *err, size_t errlen);

/* Signs the chain's head now (Ed25519 over "popgate-depot-checkpoint
 * seq:<n> hash:<hex> at:<t>\n"), stored in table checkpoint; writes the
 * signing key on first use. 0 / -1 ERR. The head's seq into *SEQ_R. */
int depot_checkpoint(struct depot *depot, int64_t *seq_r, char *err, size_t errlen);

/* Writes every checkpoint as lines "seq hash_hex at signature_hex pubkey_hex"
 * to PATH ("-" stdout), to keep elsewhere. 0 / -1 ERR. */
int depot_checkpoint_export(struct depot *depot, const char *path, char *err, size_t errlen);

/*
 * For the depot's own modules (search.c, retention.c) and popgatectl's depot
 * commands, which build on the same database.
 */
/* The index database's connection (owned by DEPOT). */
sqlite3 *depot_db(struct depot *depot);

/* Takes / releases write.lock (flock, waiting). 0 / -1 ERR. Every change to
 * packs or index.db happens between them, in one transaction. */
int depot_write_lock(struct depot *depot, char *err, size_t errlen);
void depot_write_unlock(struct depot *depot);

/* Inside the caller's transaction (under write.lock): appends the chain entry
 * KIND with BLOB (32 bytes or NULL), RECORD (the canonical record's SHA-256,
 * 32 bytes or NULL) and DETAIL (or NULL), AT unix seconds. Its seq into
 * *SEQ_R. 0 / -1 ERR. */
int depot_chain_append(struct depot *depot, const char *kind, const uint8_t *blob,
		       const uint8_t *record, const char *detail, int64_t at, int64_t *seq_r,
		       char *err, size_t errlen);

#endif
