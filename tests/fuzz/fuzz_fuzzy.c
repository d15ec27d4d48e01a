/*
 * fuzz_fuzzy.c — libFuzzer target for the fuzzy fingerprint's reading of a
 * message's text (filters/fuzzy_hash.c): words, quoted lines, a signature,
 * links, addresses and numbers in hostile bytes of any length.
 *
 * Owns: nothing. Must never: accept a crash or a read past the input.
 * Beyond the sanitizers it checks and aborts on a violation: the
 * fingerprint is the same twice, a present one is near itself and holds no
 * value left at its start, and an absent one is all zero.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/fuzzy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly SIZE bytes, so ASan sees a read past the end. */
	char *text = malloc(size > 0 ? size : 1);
	struct filter_fingerprint a, b;

	if (text == NULL)
		return 0;
	if (size > 0)
		memcpy(text, data, size);
	fuzzy_fingerprint_text(text, size, &a);
	fuzzy_fingerprint_text(text, size, &b);
	free(text);
	if (memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	if (a.present) {
		if (!fuzzy_near(&a, &b) || fuzzy_similarity(&a, &b) != FILTER_FINGERPRINT_HASHES)
			abort();
		for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++) {
			if (a.minhash[i] == UINT32_MAX)
				abort();
		}
	} else {
		static const struct filter_fingerprint none;

		if (memcmp(&a, &none, sizeof(a)) != 0)
			abort();
	}
	return 0;
}
