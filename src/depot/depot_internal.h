/*
 * depot_internal.h — what MailDepot's own files (depot.c, verify.c,
 * checkpoint.c, dict.c) share beyond depot.h: the struct, the cached
 * statements, the canonical texts the chains hash, and pack access.
 *
 * Owns: nothing. Must never: be included outside src/depot/ (other modules
 * use depot.h and depot_db()).
 */
#ifndef POPGATE_DEPOT_INTERNAL_H
#define POPGATE_DEPOT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/types.h>

#include <sqlite3.h>
#include <zstd.h>

#include "depot/depot.h"
#include "depot/pack.h"

/* The statements the hot paths run, prepared once (depot_stmt). */
enum depot_stmt_id {
	DEPOT_STMT_SOURCE_SEQ,
	DEPOT_STMT_BLOB_FIND,
	DEPOT_STMT_BLOB_INSERT,
	DEPOT_STMT_BLOB_RESTORE,
	DEPOT_STMT_ENTRY_HEAD,
	DEPOT_STMT_ENTRY_INSERT,
	DEPOT_STMT_MESSAGE_INSERT,
	DEPOT_STMT_RECIPIENT_INSERT,
	DEPOT_STMT_OWNER_INSERT,
	DEPOT_STMT_ATTACHMENT_INSERT,
	DEPOT_STMT_TEXT_INSERT,
	DEPOT_STMT_MESSAGE_BLOB,
	DEPOT_STMT_AUDIT_HEAD,
	DEPOT_STMT_AUDIT_INSERT,
	DEPOT_STMT_COUNT
};

/* A dictionary read back for decompression. */
struct depot_ddict {
	uint32_t id;
	ZSTD_DDict *ddict;
};

struct depot {
	char *dir;
	/* popgatectl run as root on a data folder that belongs to the service
	 * user: the owner every file and folder it creates here is given, so
	 * the daemon can go on writing them (depot_give); give_away false
	 * otherwise. */
	bool give_away;
	uid_t owner_uid;
	gid_t owner_gid;
	sqlite3 *db;
	int lock_fd;
	int lock_depth;	  /* depot_write_lock nests: the flock is taken at 1 */
	int64_t pack_max; /* DEPOT_PACK_MAX (smaller in tests, to fill packs) */
	sqlite3_stmt *stmts[DEPOT_STMT_COUNT];
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	/* The dictionary new blobs are compressed with (id 0: none), picked by
	 * the dictionary module. */
	uint32_t dict_id;
	ZSTD_CDict *cdict;
	/* Blobs (by rowid) after which a dictionary is trained when there is
	 * none; raised when one did not pay (depot_dict_refresh). */
	int64_t dict_train_at;
	/* The last training's sample, compressed without and with the new
	 * dictionary (bytes; 0 before any): what the dictionary gained. */
	int64_t dict_plain_bytes;
	int64_t dict_trained_bytes;
	struct depot_ddict *ddicts;
	size_t ddict_count;
};

/* A growing byte string. */
struct depot_text {
	char *data;
	size_t len;
	size_t cap;
};

void depot_text_add(struct depot_text *text, const char *bytes, size_t len);

/* Gives PATH, which this process just created in the depot, to the data
 * folder's owner when DEPOT->give_away (never following a symlink). 0, or
 * -1 with ERR. */
int depot_give(struct depot *depot, const char *path, char *err, size_t errlen);

/*
 * Binds the values of message SEQ's full-text row (message_text: rowid,
 * subject, headers, body, attachments, keys) as parameters 1-6 of STMT, made
 * from FIELDS and the message's OWNERS: each text cut at DEPOT_TEXT_MAX; the
 * attachments column holds each name and a LF, then the attachments' text;
 * keys the tokens of depot.h. The one place these values are made: the
 * contentless FTS5 table's 'delete' (depot_expire) must bind the very values
 * its insert did, or the row's tokens stay behind.
 */
void depot_text_row_bind(sqlite3_stmt *stmt, int64_t seq, const struct depot_fields *fields,
			 const struct depot_owner *owners, size_t owner_count);

/* Message SEQ's owner rows, in order, into *OWNERS_R (free with
 * depot_owners_free: addresses and users never NULL). 0, or -1 with ERR. */
int depot_owners_read(struct depot *depot, int64_t seq, struct depot_owner **owners_r,
		      size_t *count_r, char *err, size_t errlen);
void depot_owners_free(struct depot_owner *owners, size_t count);

/*
 * The fields message SEQ's full-text row was made from, again: if
 * EXTRACTED, its blob (SHA256 at OFFSET of PACK, STORED bytes, RAW_LEN raw,
 * DICT) read and depot_extract'ed (deterministic); else — or if it does not
 * parse — no fields, as when it was archived (the blob is not read then).
 * Into *FIELDS (free with depot_fields_free). 0; 1 with ERR when the blob
 * cannot be read or is damaged (*FIELDS empty: the row's values are lost).
 */
int depot_text_fields(struct depot *depot, int64_t seq, const uint8_t sha256[32], int64_t pack,
		      int64_t offset, int64_t stored, int64_t raw_len, uint32_t dict,
		      bool extracted, struct depot_fields *fields, char *err, size_t errlen);

/*
 * Renames the full-text table to message_text_v1 and makes an empty one
 * in its place; depot_text_reindex then fills it. Migration 2, and
 * depot_expire when a row cannot be deleted (its blob is damaged: the
 * contentless table deletes a row only given the values it was made from).
 */
#define DEPOT_TEXT_RENEW_SQL                                                                       \
	"ALTER TABLE message_text RENAME TO message_text_v1;"                                      \
	"CREATE VIRTUAL TABLE message_text USING fts5(subject, headers, body, attachments, keys,"  \
	"  content='', tokenize='unicode61 remove_diacritics 2');"

/*
 * Inside a transaction, after DEPOT_TEXT_RENEW_SQL: every kept message's
 * full-text row made again from its blob and owner rows (as depot_expire
 * remakes a row to delete it); a message whose blob is damaged gets a row
 * without fields and is marked extracted = 0, so that its own expiry can
 * delete that row. Then message_text_v1 is dropped. 0, or -1 with ERR.
 */
int depot_text_reindex(struct depot *depot, char *err, size_t errlen);

/* The roles of the key tokens (depot.h: the keys column). */
#define DEPOT_KEY_SENDER 's'
#define DEPOT_KEY_RECIPIENT 'r'
#define DEPOT_KEY_OWNER 'o'
#define DEPOT_KEY_USER 'u'
#define DEPOT_KEY_MONTH 'd'
/* The bytes of SHA-256 a token keeps, and a token's size with its NUL. */
#define DEPOT_KEY_HASH_BYTES 16
#define DEPOT_KEY_TOKEN_SIZE (2 + 2 * DEPOT_KEY_HASH_BYTES + 1)

/* The key token of VALUE in ROLE: "k", the role, then the first
 * DEPOT_KEY_HASH_BYTES of SHA-256(VALUE) in hex (an address lowercased
 * first, a user name as it is). */
void depot_key_token(char role, const char *value, char out[DEPOT_KEY_TOKEN_SIZE]);
/* The month token of DATE (unix seconds, UTC): "kd" and YYYYMM; false for
 * no date (0 or less). */
bool depot_month_token(int64_t date, char out[DEPOT_KEY_TOKEN_SIZE]);
/* Appends "LABEL:VALUE\n", VALUE's CR, LF (and NUL) as spaces; NULL as "". */
void depot_text_line(struct depot_text *text, const char *label, const char *value);
void depot_text_free(struct depot_text *text);

/* What the canonical index record of an archived message is made of. */
struct depot_record {
	const char *direction;
	const char *source;
	const char *sender;
	char *const *recipients;
	size_t recipient_count;
	const char *subject;
	int64_t date;
	int64_t size;
	const char *message_id;
	const struct depot_owner *owners;
	size_t owner_count;
	char *const *attachments;
	size_t attachment_count;
};

/* SHA-256 of RECORD's canonical text (depot.h). */
void depot_record_hash(const struct depot_record *record, uint8_t out[32]);

/* An entry's hash from its predecessor's PREV (32 zeros for seq 1). */
void depot_entry_hash(const uint8_t prev[32], int64_t seq, const char *kind, int64_t at,
		      const uint8_t *blob, const uint8_t *record, const char *detail,
		      uint8_t out[32]);

/* An audit entry's hash: SHA-256(prev || "seq:<n>\nat:<t>\nactor:<a>\n"
 * "action:<x>\ndetail:<d or ->\n"). */
void depot_audit_hash(const uint8_t prev[32], int64_t seq, int64_t at, const char *actor,
		      const char *action, const char *detail, uint8_t out[32]);

/* LEN bytes as 2*LEN lowercase hex digits and a NUL. */
void depot_hex(const uint8_t *bytes, size_t len, char *out);
/* 2*LEN hex digits into LEN bytes; 0 or -1. */
int depot_unhex(const char *hex, uint8_t *out, size_t len);

/* The cached statement ID, reset and unbound; NULL with ERR. */
sqlite3_stmt *depot_stmt(struct depot *depot, enum depot_stmt_id id, char *err, size_t errlen);

/* Runs SQL (no rows); 0 or -1 with ERR. */
int depot_exec(struct depot *depot, const char *sql, char *err, size_t errlen);

/* The path of pack NUMBER (free()). */
char *depot_pack_path(const struct depot *depot, int64_t number);

/*
 * Reads the record at OFFSET of pack NUMBER and checks it against what the
 * index says (SHA256, STORED, DICT), then decodes it (depot_pack_frame_decode)
 * into *RAW_R (free()) and *LEN_R. 0, or -1 with ERR.
 */
int depot_blob_load(struct depot *depot, int64_t pack, int64_t offset, const uint8_t sha256[32],
		    int64_t stored, int64_t raw, uint32_t dict, char **raw_r, size_t *len_r,
		    char *err, size_t errlen);

/* The decompression dictionary ID, loaded from dict/ID.dict once; NULL with ERR. */
const ZSTD_DDict *depot_ddict(struct depot *depot, uint32_t id, char *err, size_t errlen);

/*
 * Before a batch, under write.lock: takes up the newest dictionary in dict/
 * (another process may have trained it), or, when there is none and
 * dict_train_at blobs exist, trains one from the first archived messages
 * and keeps it (dict/N.dict) if it compresses a held-out sample at least
 * DEPOT_DICT_GAIN_PERCENT better. 0, or -1 with ERR (only for a dictionary
 * file that cannot be read: a training that fails or does not pay is no
 * error, new blobs go without).
 */
int depot_dict_refresh(struct depot *depot, char *err, size_t errlen);

/* The public half of signing.key into PK: 1, 0 no key yet, -1 ERR. */
int depot_signing_public(struct depot *depot, uint8_t pk[32], char *err, size_t errlen);

/* Whether SIGNATURE is PK's Ed25519 signature of the checkpoint (SEQ, HASH, AT). */
bool depot_checkpoint_signed(int64_t seq, const uint8_t hash[32], int64_t at,
			     const uint8_t signature[64], const uint8_t pk[32]);

#endif
