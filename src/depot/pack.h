/*
 * pack.h — MailDepot's pack records (depot.h, "packs/NNNNNN.pack"): the
 * fixed header of a record, its parser and the decoding of its zstd frame
 * back into the raw message, checked against its SHA-256.
 *
 * Owns: nothing; pure functions over bytes (so a fuzzer can reach them).
 * Must never: trust a length from a pack (a pack on disk may be damaged or
 * forged): every length is checked against the bytes at hand and the limits
 * below before anything is allocated or read.
 */
#ifndef POPGATE_DEPOT_PACK_H
#define POPGATE_DEPOT_PACK_H

#include <stddef.h>
#include <stdint.h>

#include <zstd.h>

#include "depot/depot.h"

#define DEPOT_PACK_MAGIC "PGD1"
/* "PGD1" | SHA-256 (32) | raw length (u64 BE) | stored length (u64 BE) |
 * dictionary id (u32 BE). */
#define DEPOT_PACK_HEADER_SIZE (4 + 32 + 8 + 8 + 4)
/* The largest message one record holds (raw and stored): a record must fit
 * in one pack. */
#define DEPOT_PACK_RECORD_MAX (DEPOT_PACK_MAX - DEPOT_PACK_HEADER_SIZE)

struct depot_pack_record {
	uint8_t sha256[32];
	uint64_t raw;	 /* the message's length */
	uint64_t stored; /* the zstd frame's length */
	uint32_t dict;	 /* the dictionary id, 0 = none */
};

/* Writes the header of a record into OUT. */
void depot_pack_header_encode(uint8_t out[DEPOT_PACK_HEADER_SIZE],
			      const struct depot_pack_record *record);

/* Parses the header at the start of DATA (LEN bytes). 0, or -1 with ERR for
 * too few bytes, a wrong magic or a length beyond DEPOT_PACK_RECORD_MAX. */
int depot_pack_header_parse(const uint8_t *data, size_t len, struct depot_pack_record *record,
			    char *err, size_t errlen);

/*
 * Decompresses FRAME (RECORD->stored bytes) with DCTX and DDICT (NULL for a
 * record without dictionary) into a new buffer of RECORD->raw bytes (+ a NUL,
 * not counted) in *RAW_R (free()), refusing a frame whose declared size is
 * not RECORD->raw or above RAW_MAX, and checks the SHA-256. 0, or -1 with
 * ERR ("corrupt: ...").
 */
int depot_pack_frame_decode(ZSTD_DCtx *dctx, const ZSTD_DDict *ddict,
			    const struct depot_pack_record *record, const uint8_t *frame,
			    uint64_t raw_max, char **raw_r, char *err, size_t errlen);

#endif
