/*
 * fuzzy.h — the fuzzy filter: a fingerprint of a message's normalised body
 * text, so that one campaign sent many times with varying names, numbers,
 * links and small edits is recognised as repeated.
 *
 * The scheme is MinHash over word shingles (Broder's resemblance, the idea
 * behind DCC's and pyzor's fuzzy checksums, but tolerant of edits anywhere):
 *
 *   - the text is the decoded text parts and HTML as text (filters/mime.h),
 *     without quoted lines (starting with '>': a reply's quote is someone
 *     else's text) and without a signature (after a "-- " line in the last
 *     ten lines); it is cut into words at white space, each lowercased with its leading
 *     and trailing punctuation removed; a word that is a link becomes "<u>",
 *     one with an '@' inside "<a>", one with a digit in it "<n>" (so tracking
 *     links, addresses, order numbers and prices do not matter);
 *   - a message of fewer than FUZZY_MIN_WORDS such words has no fingerprint;
 *   - every FUZZY_SHINGLE_WORDS consecutive words are one shingle, hashed;
 *   - for each of FILTER_FINGERPRINT_HASHES hash functions the smallest hash
 *     of all shingles is kept: two messages share a value with a chance equal
 *     to the share of shingles they have in common (Jaccard resemblance).
 *
 * Two fingerprints are near — the same campaign — when at least
 * FUZZY_MATCH_MIN of their values are equal (an estimated resemblance of at
 * least one half). To find near ones without comparing against all, the
 * store keeps the values in FUZZY_BANDS bands of FUZZY_BAND_ROWS (locality
 * sensitive hashing): a stored fingerprint is a candidate when one whole band
 * is equal, which for a resemblance of 0.7 happens with a chance of 0.99,
 * for 0.5 of 0.64 and for 0.3 of 0.12; candidates are then compared value by
 * value.
 *
 * The worker (confined, no store) computes the fingerprint (fuzzy_collect)
 * and sends it with its verdict; the main process judges it (fuzzy_judge)
 * against the fingerprints stored (store/fingerprint.h) and records it.
 */
#ifndef POPGATE_FILTERS_FUZZY_H
#define POPGATE_FILTERS_FUZZY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/filter.h"
#include "pipeline/pipeline.h"

#define FUZZY_FILTER_NAME "fuzzy"
/* Words a message needs for a fingerprint. */
#define FUZZY_MIN_WORDS 10
#define FUZZY_SHINGLE_WORDS 3
#define FUZZY_BANDS 16
#define FUZZY_BAND_ROWS (FILTER_FINGERPRINT_HASHES / FUZZY_BANDS)
/* Equal values that make two fingerprints near. */
#define FUZZY_MATCH_MIN (FILTER_FINGERPRINT_HASHES / 2)
/* The score at fuzzy_min_count senders is 1, growing in proportion up to this. */
#define FUZZY_SCORE_MAX 3.0
/* Defaults of [spam] fuzzy_min_count and fuzzy_window (seconds). */
#define FUZZY_MIN_COUNT_DEFAULT 5
#define FUZZY_WINDOW_DEFAULT 86400

/* The fingerprint of TEXT (LEN bytes of UTF-8, as mime_parse gives it) into
 * *FINGERPRINT (present false when the text has too few words). */
void fuzzy_fingerprint_text(const char *text, size_t len, struct filter_fingerprint *fingerprint);

/* The same for a whole MESSAGE (parsed by filters/mime.h): its text. */
struct mime_message;
void fuzzy_fingerprint_message(const struct mime_message *message,
			       struct filter_fingerprint *fingerprint);

/* How many of A's and B's values are equal (0 to FILTER_FINGERPRINT_HASHES). */
unsigned fuzzy_similarity(const struct filter_fingerprint *a, const struct filter_fingerprint *b);

/* Whether A and B are near (see above). */
bool fuzzy_near(const struct filter_fingerprint *a, const struct filter_fingerprint *b);

/* The key of band BAND (0 to FUZZY_BANDS-1) of FINGERPRINT, as the store
 * indexes it. */
int64_t fuzzy_band_key(const struct filter_fingerprint *fingerprint, unsigned band);

/* A 63-bit hash of a sender address, any case (NULL: none), which the store
 * keeps instead of the address to count distinct senders. */
int64_t fuzzy_sender_hash(const char *sender);

/*
 * In the main process: fills RESULT (its name set already) for VERDICT's
 * fingerprint of mail owned by user OWNER_ID (0: none), against the
 * fingerprints in STORE, with [spam] fuzzy_min_count and fuzzy_window as
 * filter_setting gives them (the defaults when unset), at time NOW:
 *
 *   - no fingerprint, or mail from one of the owner's allowed senders
 *     (filters/senders.h) or correspondents (store/correspondent.h): 0;
 *   - a near fingerprint marked ham (popgatectl report ham): 0;
 *   - otherwise, with this message counted, it was seen N times from M
 *     distinct senders within the window: M / fuzzy_min_count points when M
 *     reaches fuzzy_min_count (at most FUZZY_SCORE_MAX), else 0.
 *
 * 0, or -1 when the store cannot be read (RESULT failed, with a reason).
 */
struct store;
int fuzzy_judge(struct store *store, int64_t owner_id, const char *message_id,
		const struct pipeline_verdict *verdict, int64_t now,
		struct pipeline_result *result);

/* Whether mail from SENDER to user OWNER_ID is neither scored nor counted:
 * an allowed sender of the owner's (or a global one) or a correspondent.
 * 1, 0, or -1 when the store cannot be read. */
int fuzzy_sender_exempt(struct store *store, int64_t owner_id, const char *sender);

#endif
