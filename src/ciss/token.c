/*
 * token.c — the signed link token of a challenge and its short code
 * (ciss/token.h).
 *
 * Owns: nothing beyond the caller's buffers; the key is the caller's.
 * Must never: decode more than CISS_TOKEN_TEXT_LEN characters, accept a
 * character outside base64url, compare a MAC or a code in variable time, or
 * log a key, a token or a code.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "ciss/token.h"
#include "core/crypto.h"

_Static_assert(CRYPTO_KEY_BYTES == crypto_auth_hmacsha256_KEYBYTES, "the key is an HMAC key");
_Static_assert(1 + 8 + CISS_TOKEN_NONCE_BYTES + 8 + crypto_auth_hmacsha256_BYTES ==
		   CISS_TOKEN_RAW_LEN,
	       "the token's layout adds up");
_Static_assert(CISS_TOKEN_TEXT_LEN + 1 ==
		   sodium_base64_ENCODED_LEN(CISS_TOKEN_RAW_LEN,
					     sodium_base64_VARIANT_URLSAFE_NO_PADDING),
	       "the token's text length");

/* The signed part: everything but the MAC. */
#define TOKEN_SIGNED_LEN (CISS_TOKEN_RAW_LEN - crypto_auth_hmacsha256_BYTES)

/* 32 letters and digits without 0, 1, I and O, easily misread: five bits each. */
static const char token_code_alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
_Static_assert(sizeof(token_code_alphabet) == 33, "five bits per character");

static void token_put_u64(unsigned char *out, uint64_t value)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (unsigned char)(value & 0xff);
		value >>= 8;
	}
}

static uint64_t token_get_u64(const unsigned char *in)
{
	uint64_t value = 0;

	for (int i = 0; i < 8; i++)
		value = (value << 8) | in[i];
	return value;
}

/* The signed bytes of TOKEN into OUT. */
static void token_signed_bytes(const struct ciss_token *token, unsigned char out[TOKEN_SIGNED_LEN])
{
	out[0] = CISS_TOKEN_VERSION;
	token_put_u64(out + 1, (uint64_t)token->challenge_id);
	memcpy(out + 9, token->nonce, CISS_TOKEN_NONCE_BYTES);
	token_put_u64(out + 9 + CISS_TOKEN_NONCE_BYTES, (uint64_t)token->expires_at);
}

static bool token_base64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int ciss_token_key_load(struct crypto_key *key, const char *data_dir, char *err, size_t errlen)
{
	char path[4096];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", data_dir, CISS_TOKEN_KEY_FILE) >=
	    sizeof(path)) {
		snprintf(err, errlen, "the data folder's path is too long");
		return -1;
	}
	return crypto_key_load_or_create(key, path, err, errlen);
}

void ciss_token_encode(const struct crypto_key *key, const struct ciss_token *token,
		       char out[CISS_TOKEN_TEXT_LEN + 1])
{
	unsigned char raw[CISS_TOKEN_RAW_LEN];

	token_signed_bytes(token, raw);
	crypto_auth_hmacsha256(raw + TOKEN_SIGNED_LEN, raw, TOKEN_SIGNED_LEN, key->bytes);
	sodium_bin2base64(out, CISS_TOKEN_TEXT_LEN + 1, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

enum ciss_token_check ciss_token_decode(const struct crypto_key *key, const char *text, size_t len,
					int64_t now, struct ciss_token *token)
{
	unsigned char raw[CISS_TOKEN_RAW_LEN];
	size_t raw_len = 0;

	memset(token, 0, sizeof(*token));
	if (len != CISS_TOKEN_TEXT_LEN)
		return CISS_TOKEN_MALFORMED;
	for (size_t i = 0; i < len; i++) {
		if (!token_base64url_char(text[i]))
			return CISS_TOKEN_MALFORMED;
	}
	/* The last character carries 2 bits of the 65th byte and 4 unused
	 * bits; sodium refuses those set, so one token has one spelling. */
	if (sodium_base642bin(raw, sizeof(raw), text, len, NULL, &raw_len, NULL,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    raw_len != sizeof(raw) || raw[0] != CISS_TOKEN_VERSION)
		return CISS_TOKEN_MALFORMED;
	/* Constant time: a forger learns nothing from how long a refusal takes. */
	if (crypto_auth_hmacsha256_verify(raw + TOKEN_SIGNED_LEN, raw, TOKEN_SIGNED_LEN,
					  key->bytes) != 0)
		return CISS_TOKEN_FORGED;
	token->challenge_id = (int64_t)token_get_u64(raw + 1);
	memcpy(token->nonce, raw + 9, CISS_TOKEN_NONCE_BYTES);
	token->expires_at = (int64_t)token_get_u64(raw + 9 + CISS_TOKEN_NONCE_BYTES);
	return now >= token->expires_at ? CISS_TOKEN_EXPIRED : CISS_TOKEN_VALID;
}

const char *ciss_token_check_name(enum ciss_token_check check)
{
	switch (check) {
	case CISS_TOKEN_VALID:
		return "valid";
	case CISS_TOKEN_MALFORMED:
		return "malformed";
	case CISS_TOKEN_FORGED:
		return "forged";
	case CISS_TOKEN_EXPIRED:
		return "expired";
	}
	return "unknown";
}

void ciss_token_code(const struct crypto_key *key, const struct ciss_token *token,
		     char out[CISS_TOKEN_CODE_LEN + 1])
{
	/* A separate MAC over a domain-separated input: the code tells nothing
	 * of the link's MAC, and a new nonce gives a new code. */
	unsigned char input[5 + TOKEN_SIGNED_LEN];
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	uint64_t bits = 0;

	memcpy(input, "code:", 5);
	token_signed_bytes(token, input + 5);
	/* The expiry is not part of the code: the same challenge, one code. */
	memset(input + 5 + 9 + CISS_TOKEN_NONCE_BYTES, 0, 8);
	crypto_auth_hmacsha256(mac, input, sizeof(input), key->bytes);
	for (int i = 0; i < 8; i++)
		bits = (bits << 8) | mac[i];
	for (int i = 0; i < CISS_TOKEN_CODE_LEN; i++) {
		out[i] = token_code_alphabet[bits & 31];
		bits >>= 5;
	}
	out[CISS_TOKEN_CODE_LEN] = '\0';
}

bool ciss_token_code_matches(const struct crypto_key *key, const struct ciss_token *token,
			     const char *typed, size_t len)
{
	char expected[CISS_TOKEN_CODE_LEN + 1];
	char normal[CISS_TOKEN_CODE_LEN] = {0};
	size_t used = 0;
	bool fits = true;

	ciss_token_code(key, token, expected);
	for (size_t i = 0; i < len; i++) {
		char c = typed[i];

		if (c == ' ' || c == '-' || c == '\t')
			continue;
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (used == CISS_TOKEN_CODE_LEN) {
			fits = false;
			break;
		}
		normal[used++] = c;
	}
	bool same = sodium_memcmp(normal, expected, CISS_TOKEN_CODE_LEN) == 0;
	sodium_memzero(expected, sizeof(expected));
	return fits && used == CISS_TOKEN_CODE_LEN && same;
}
