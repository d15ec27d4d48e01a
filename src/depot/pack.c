/*
 * pack.c — MailDepot's pack records: the header's encoding and parsing and
 * the checked decoding of a record's zstd frame (pack.h).
 *
 * Owns: nothing but the buffer it returns.
 * Must never: allocate or decompress on a length it has not checked, or hand
 * back bytes whose SHA-256 is not the record's.
 * SECURITY: a pack's bytes are untrusted (damaged or forged on disk).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>

#include "core/util.h"
#include "depot/depot.h"
#include "depot/pack.h"

static void pack_put_u64(uint8_t *out, uint64_t value)
{
	for (int i = 7; i >= 0; i--) {
		out[i] = (uint8_t)(value & 0xff);
		value >>= 8;
	}
}

static void pack_put_u32(uint8_t *out, uint32_t value)
{
	for (int i = 3; i >= 0; i--) {
		out[i] = (uint8_t)(value & 0xff);
		value >>= 8;
	}
}

static uint64_t pack_get_u64(const uint8_t *in)
{
	uint64_t value = 0;

	for (int i = 0; i < 8; i++)
		value = value << 8 | in[i];
	return value;
}

static uint32_t pack_get_u32(const uint8_t *in)
{
	uint32_t value = 0;

	for (int i = 0; i < 4; i++)
		value = value << 8 | in[i];
	return value;
}

void depot_pack_header_encode(uint8_t out[DEPOT_PACK_HEADER_SIZE],
			      const struct depot_pack_record *record)
{
	memcpy(out, DEPOT_PACK_MAGIC, 4);
	memcpy(out + 4, record->sha256, 32);
	pack_put_u64(out + 36, record->raw);
	pack_put_u64(out + 44, record->stored);
	pack_put_u32(out + 52, record->dict);
}

int depot_pack_header_parse(const uint8_t *data, size_t len, struct depot_pack_record *record,
			    char *err, size_t errlen)
{
	if (len < DEPOT_PACK_HEADER_SIZE) {
		snprintf(err, errlen, "record header cut short (%zu bytes)", len);
		return -1;
	}
	if (memcmp(data, DEPOT_PACK_MAGIC, 4) != 0) {
		snprintf(err, errlen, "no record here (bad magic)");
		return -1;
	}
	memcpy(record->sha256, data + 4, 32);
	record->raw = pack_get_u64(data + 36);
	record->stored = pack_get_u64(data + 44);
	record->dict = pack_get_u32(data + 52);
	if (record->raw > (uint64_t)DEPOT_PACK_RECORD_MAX ||
	    record->stored > (uint64_t)DEPOT_PACK_RECORD_MAX) {
		snprintf(err, errlen, "record length out of range");
		return -1;
	}
	return 0;
}

int depot_pack_frame_decode(ZSTD_DCtx *dctx, const ZSTD_DDict *ddict,
			    const struct depot_pack_record *record, const uint8_t *frame,
			    uint64_t raw_max, char **raw_r, char *err, size_t errlen)
{
	unsigned long long declared = ZSTD_getFrameContentSize(frame, record->stored);
	uint8_t digest[crypto_hash_sha256_BYTES];
	char *raw;
	size_t got;

	*raw_r = NULL;
	/* The frame states its size (we always compress with it known); a frame
	 * that does not, or disagrees with the header, is not ours. */
	if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
	    declared != record->raw) {
		snprintf(err, errlen, "corrupt: frame size does not match the record");
		return -1;
	}
	if (record->raw > raw_max) {
		snprintf(err, errlen, "corrupt: record larger than allowed");
		return -1;
	}
	raw = xmalloc((size_t)record->raw + 1);
	if (ddict != NULL)
		got = ZSTD_decompress_usingDDict(dctx, raw, (size_t)record->raw, frame,
						 (size_t)record->stored, ddict);
	else
		got = ZSTD_decompressDCtx(dctx, raw, (size_t)record->raw, frame,
					  (size_t)record->stored);
	if (ZSTD_isError(got) || got != record->raw) {
		snprintf(err, errlen, "corrupt: %s",
			 ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
		free(raw);
		return -1;
	}
	raw[got] = '\0';
	crypto_hash_sha256(digest, (const unsigned char *)raw, got);
	if (memcmp(digest, record->sha256, sizeof(digest)) != 0) {
		snprintf(err, errlen, "corrupt: SHA-256 mismatch");
		free(raw);
		return -1;
	}
	*raw_r = raw;
	return 0;
}
