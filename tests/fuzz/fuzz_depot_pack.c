/*
 * fuzz_depot_pack.c — libFuzzer target for MailDepot's pack record reader
 * (depot/pack.c): a damaged or forged pack file must give an error, never a
 * crash, an allocation beyond the record's checked size or bytes whose
 * SHA-256 is not the record's.
 *
 * Owns: nothing. Must never: accept a decoded message that does not hash to
 * its record's SHA-256. The first input byte chooses: even, the rest is a
 * pack file, walked record by record as verify would; odd, the rest is a
 * message, written as a record and read back, which must give it unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "depot/depot.h"
#include "depot/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoded messages stay small here, whatever a header claims. */
#define FUZZ_RAW_MAX (1024 * 1024)

static ZSTD_DCtx *fuzz_dctx;

static void fuzz_walk(const uint8_t *pack, size_t size)
{
	size_t offset = 0;

	while (offset < size) {
		struct depot_pack_record record;
		char err[200], *raw = NULL;
		uint8_t digest[32];

		if (depot_pack_header_parse(pack + offset, size - offset, &record, err,
					    sizeof(err)) < 0)
			return;
		offset += DEPOT_PACK_HEADER_SIZE;
		if (record.stored > size - offset)
			return;
		if (depot_pack_frame_decode(fuzz_dctx, NULL, &record, pack + offset, FUZZ_RAW_MAX,
					    &raw, err, sizeof(err)) == 0) {
			if (record.raw > FUZZ_RAW_MAX)
				abort();
			crypto_hash_sha256(digest, (const unsigned char *)raw, record.raw);
			if (memcmp(digest, record.sha256, 32) != 0)
				abort();
			free(raw);
		} else if (raw != NULL) {
			abort();
		}
		offset += record.stored;
	}
}

static void fuzz_round_trip(const uint8_t *message, size_t size)
{
	size_t bound = ZSTD_compressBound(size);
	uint8_t *pack = malloc(DEPOT_PACK_HEADER_SIZE + bound);
	struct depot_pack_record record, parsed;
	char err[200], *raw = NULL;
	size_t got;

	if (pack == NULL)
		abort();
	crypto_hash_sha256(record.sha256, message, size);
	got = ZSTD_compress(pack + DEPOT_PACK_HEADER_SIZE, bound, message, size, 3);
	if (ZSTD_isError(got))
		abort();
	record.raw = size;
	record.stored = got;
	record.dict = 0;
	depot_pack_header_encode(pack, &record);
	if (depot_pack_header_parse(pack, DEPOT_PACK_HEADER_SIZE + got, &parsed, err, sizeof(err)) <
		0 ||
	    parsed.raw != size || parsed.stored != got ||
	    depot_pack_frame_decode(fuzz_dctx, NULL, &parsed, pack + DEPOT_PACK_HEADER_SIZE,
				    FUZZ_RAW_MAX, &raw, err, sizeof(err)) < 0 ||
	    memcmp(raw, message, size) != 0)
		abort();
	free(raw);
	free(pack);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fuzz_dctx == NULL && ((fuzz_dctx = ZSTD_createDCtx()) == NULL || sodium_init() < 0))
		abort();
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_round_trip(data + 1, size - 1);
	else
		fuzz_walk(data + 1, size - 1);
	return 0;
}
