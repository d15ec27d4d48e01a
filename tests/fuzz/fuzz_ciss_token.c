/*
 * fuzz_ciss_token.c — libFuzzer target for the challenge link's token
 * parser and the typed code's check (ciss/token.c), which read text from
 * anyone on the internet.
 *
 * Owns: nothing. Must never: accept a token it did not make. Beyond the
 * sanitizers it checks and aborts on a violation: a token that decodes
 * (valid or expired) encodes back to exactly the input (one spelling per
 * token), and under another key the same text never decodes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ciss/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crypto_key key, other;
	struct ciss_token token;
	char again[CISS_TOKEN_TEXT_LEN + 1];
	const char *text = (const char *)data;

	memset(key.bytes, 0x42, sizeof(key.bytes));
	memset(other.bytes, 0x43, sizeof(other.bytes));
	enum ciss_token_check check = ciss_token_decode(&key, text, size, 1700000000, &token);
	if (check == CISS_TOKEN_VALID || check == CISS_TOKEN_EXPIRED) {
		ciss_token_encode(&key, &token, again);
		if (size != CISS_TOKEN_TEXT_LEN || memcmp(again, text, size) != 0)
			abort();
	}
	check = ciss_token_decode(&other, text, size, 1700000000, &token);
	if (check == CISS_TOKEN_VALID || check == CISS_TOKEN_EXPIRED)
		abort();
	/* The same bytes as a typed code, against a fixed token. */
	struct ciss_token fixed = {.challenge_id = 1, .expires_at = 2000000000};
	(void)ciss_token_code_matches(&key, &fixed, text, size);
	return 0;
}
