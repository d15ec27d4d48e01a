/*
 * token.h — the link in a challenge mail: which challenge it answers, the
 * challenge's random nonce and when the link expires, signed with a keyed
 * MAC (HMAC-SHA-256) so that nobody can make or alter one without the key;
 * and the short code the sender page asks a human to type.
 *
 * The text form is base64url without padding of
 *   version (1) | challenge id (8, big-endian) | nonce (16) | expiry (8,
 *   big-endian, Unix seconds) | HMAC-SHA-256 of the 33 bytes before (32)
 * so CISS_TOKEN_TEXT_LEN characters exactly, nothing else is accepted.
 *
 * The key is 32 random bytes in DATA/ciss.key (mode 0600, made on first use
 * by ciss_token_key_load); it lives only in the main process.
 *
 * SECURITY: the token comes from anyone on the internet. The parser checks
 * the length and the alphabet before decoding and compares the MAC in
 * constant time; a valid MAC only proves popgate made the link. That it is
 * still unanswered and not expired is the store's to decide (its ANSWER is
 * single-use and refuses an expired challenge): this module only refuses a
 * link whose own expiry has passed.
 *
 * Must never: log or print a key, a whole token or a code.
 */
#ifndef POPGATE_CISS_TOKEN_H
#define POPGATE_CISS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/crypto.h"

#define CISS_TOKEN_NONCE_BYTES 16
#define CISS_TOKEN_VERSION 1
/* The decoded token: 1 + 8 + 16 + 8 + 32 bytes. */
#define CISS_TOKEN_RAW_LEN 65
/* Its base64url text without padding: ceil(65 * 4 / 3). */
#define CISS_TOKEN_TEXT_LEN 87
/* The short code: letters and digits that cannot be mistaken for others. */
#define CISS_TOKEN_CODE_LEN 6

/* The file below the data folder that holds the key. */
#define CISS_TOKEN_KEY_FILE "ciss.key"

struct ciss_token {
	int64_t challenge_id;
	unsigned char nonce[CISS_TOKEN_NONCE_BYTES];
	int64_t expires_at; /* Unix seconds */
};

enum ciss_token_check {
	CISS_TOKEN_VALID,
	CISS_TOKEN_MALFORMED, /* wrong length, alphabet or version */
	CISS_TOKEN_FORGED,    /* the MAC does not match */
	CISS_TOKEN_EXPIRED,   /* genuine, but its expiry has passed */
};

/*
 * Loads the MAC key from DATA_DIR/ciss.key, making it (32 random bytes, mode
 * 0600, durably) when missing; refuses a file others can read. 0, or -1
 * with a message in ERR (never the key).
 */
int ciss_token_key_load(struct crypto_key *key, const char *data_dir, char *err, size_t errlen);

/* Writes TOKEN, signed with KEY, as text into OUT (NUL-terminated). */
void ciss_token_encode(const struct crypto_key *key, const struct ciss_token *token,
		       char out[CISS_TOKEN_TEXT_LEN + 1]);

/*
 * Checks TEXT (LEN bytes, need not be NUL-terminated) against KEY at NOW.
 * VALID and EXPIRED fill *TOKEN; the others leave it zeroed.
 */
enum ciss_token_check ciss_token_decode(const struct crypto_key *key, const char *text, size_t len,
					int64_t now, struct ciss_token *token);

/* A short text for a log line: "malformed", "forged", … */
const char *ciss_token_check_name(enum ciss_token_check check);

/*
 * The code the sender page shows for TOKEN's challenge (derived from the
 * challenge id and nonce under KEY, so nothing more is stored), into OUT.
 */
void ciss_token_code(const struct crypto_key *key, const struct ciss_token *token,
		     char out[CISS_TOKEN_CODE_LEN + 1]);

/*
 * True when TYPED (LEN bytes, as a human typed it: any case, blanks and
 * dashes ignored) is TOKEN's code. Compared in constant time.
 */
bool ciss_token_code_matches(const struct crypto_key *key, const struct ciss_token *token,
			     const char *typed, size_t len);

#endif
