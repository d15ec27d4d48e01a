/*
 * fuzzy_hash.c — the fuzzy fingerprint itself (see filters/fuzzy.h): the
 * text normalised into words, the word shingles hashed, the MinHash values,
 * their comparison and band keys, and the sender hash.
 *
 * Owns: nothing. Must never: read more than FUZZY_WORDS_MAX words or LEN
 * bytes of a text (it is hostile), or need more than libc (the fuzz target
 * links it alone).
 */
#include <string.h>

#include "filters/fuzzy.h"
#include "pipeline/proto.h"

/* Words of a message looked at: a campaign shows in its first ones, and the
 * cost per message stays bounded whatever its size. */
#define FUZZY_WORDS_MAX 10000
/* Bytes of one word kept; a longer one is cut (it is hashed, not shown). */
#define FUZZY_WORD_MAX 64

/* splitmix64's finaliser: spreads every input bit over the output. */
static uint64_t fuzzy_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

/* FNV-1a over LEN bytes of S, mixed. */
static uint64_t fuzzy_hash_bytes(const unsigned char *s, size_t len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return fuzzy_mix(h);
}

static uint64_t fuzzy_rotl(uint64_t x, unsigned n)
{
	return x << n | x >> (64 - n);
}

static bool fuzzy_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* ASCII punctuation (what is trimmed from a word's ends); other bytes of
 * UTF-8 are letters as far as this is concerned. */
static bool fuzzy_is_punct(unsigned char c)
{
	return c < 0x80 && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
	       !(c >= '0' && c <= '9');
}

/*
 * The hash of the word WORD (LEN bytes, no white space) as normalised (see
 * fuzzy.h), or false when nothing of it is left (punctuation only).
 */
static bool fuzzy_word_hash(const unsigned char *word, size_t len, uint64_t *hash_r)
{
	unsigned char folded[FUZZY_WORD_MAX];
	size_t start = 0, end = len, n = 0;
	bool digit = false, at = false;

	if (len > FUZZY_WORD_MAX)
		len = end = FUZZY_WORD_MAX;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = word[i];

		folded[i] = c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
		digit = digit || (c >= '0' && c <= '9');
		at = at || (c == '@' && i > 0 && i + 1 < len);
	}
	if ((len >= 3 && memmem(folded, len, "://", 3) != NULL) ||
	    (len > 4 && memcmp(folded, "www.", 4) == 0)) {
		*hash_r = fuzzy_hash_bytes((const unsigned char *)"<u>", 3);
		return true;
	}
	while (start < end && fuzzy_is_punct(folded[start]))
		start++;
	while (end > start && fuzzy_is_punct(folded[end - 1]))
		end--;
	n = end - start;
	if (n == 0)
		return false;
	if (at && memchr(folded + start, '@', n) != NULL) {
		*hash_r = fuzzy_hash_bytes((const unsigned char *)"<a>", 3);
		return true;
	}
	if (digit) {
		*hash_r = fuzzy_hash_bytes((const unsigned char *)"<n>", 3);
		return true;
	}
	*hash_r = fuzzy_hash_bytes(folded + start, n);
	return true;
}

/* Lines after a signature separator ("-- ") that make it a signature. */
#define FUZZY_SIGNATURE_LINES_MAX 10

/*
 * The length of TEXT (LEN bytes) without its signature: the lines after the
 * last "-- " (or "--") line when there are at most FUZZY_SIGNATURE_LINES_MAX
 * of them. A separator further up is not believed: text hidden behind one
 * still counts.
 */
static size_t fuzzy_without_signature(const unsigned char *text, size_t len)
{
	size_t lines = 0, end = len;

	while (end > 0 && lines <= FUZZY_SIGNATURE_LINES_MAX) {
		size_t start = end, line_end = end;

		while (start > 0 && text[start - 1] != '\n')
			start--;
		if (line_end > start && text[line_end - 1] == '\r')
			line_end--;
		if ((line_end - start == 3 && memcmp(text + start, "-- ", 3) == 0) ||
		    (line_end - start == 2 && memcmp(text + start, "--", 2) == 0))
			return start;
		lines++;
		end = start > 0 ? start - 1 : 0;
	}
	return len;
}

/* Whether only spaces and tabs stand between POS and the start of its line. */
static bool fuzzy_line_start(const unsigned char *text, size_t pos)
{
	while (pos > 0 && (text[pos - 1] == ' ' || text[pos - 1] == '\t'))
		pos--;
	return pos == 0 || text[pos - 1] == '\n';
}

/* The seed of MinHash function I. */
static uint64_t fuzzy_seed(size_t i)
{
	return fuzzy_mix(UINT64_C(0x9e3779b97f4a7c15) * (i + 1));
}

void fuzzy_fingerprint_text(const char *text, size_t len, struct filter_fingerprint *fingerprint)
{
	const unsigned char *s = (const unsigned char *)text;
	uint64_t window[FUZZY_SHINGLE_WORDS] = {0};
	uint64_t seeds[FILTER_FINGERPRINT_HASHES];
	size_t words = 0, pos = 0;

	memset(fingerprint, 0, sizeof(*fingerprint));
	for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++) {
		seeds[i] = fuzzy_seed(i);
		fingerprint->minhash[i] = UINT32_MAX;
	}
	len = fuzzy_without_signature(s, len);
	while (pos < len && words < FUZZY_WORDS_MAX) {
		size_t start;
		uint64_t hash;

		while (pos < len && fuzzy_is_space(s[pos]))
			pos++;
		/* A quoted line is someone else's text (a reply's quote). */
		if (pos < len && s[pos] == '>' && fuzzy_line_start(s, pos)) {
			while (pos < len && s[pos] != '\n')
				pos++;
			continue;
		}
		start = pos;
		while (pos < len && !fuzzy_is_space(s[pos]))
			pos++;
		if (pos == start || !fuzzy_word_hash(s + start, pos - start, &hash))
			continue;
		memmove(window, window + 1, sizeof(window) - sizeof(window[0]));
		window[FUZZY_SHINGLE_WORDS - 1] = hash;
		if (++words < FUZZY_SHINGLE_WORDS)
			continue;
		uint64_t shingle =
		    fuzzy_mix(window[0] ^ fuzzy_rotl(window[1], 21) ^ fuzzy_rotl(window[2], 42));
		for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++) {
			uint32_t value = (uint32_t)(fuzzy_mix(shingle ^ seeds[i]) >> 32);

			if (value < fingerprint->minhash[i])
				fingerprint->minhash[i] = value;
		}
	}
	_Static_assert(FUZZY_SHINGLE_WORDS == 3, "the shingle hash above takes three words");
	if (words < FUZZY_MIN_WORDS) {
		memset(fingerprint, 0, sizeof(*fingerprint));
		return;
	}
	fingerprint->present = true;
}

unsigned fuzzy_similarity(const struct filter_fingerprint *a, const struct filter_fingerprint *b)
{
	unsigned equal = 0;

	if (!a->present || !b->present)
		return 0;
	for (size_t i = 0; i < FILTER_FINGERPRINT_HASHES; i++)
		equal += a->minhash[i] == b->minhash[i];
	return equal;
}

bool fuzzy_near(const struct filter_fingerprint *a, const struct filter_fingerprint *b)
{
	return fuzzy_similarity(a, b) >= FUZZY_MATCH_MIN;
}

int64_t fuzzy_band_key(const struct filter_fingerprint *fingerprint, unsigned band)
{
	uint64_t h = fuzzy_mix(band + 1);

	for (size_t i = 0; i < FUZZY_BAND_ROWS; i++)
		h = fuzzy_mix(h ^ fingerprint->minhash[band * FUZZY_BAND_ROWS + i]);
	return (int64_t)(h & INT64_MAX);
}

int64_t fuzzy_sender_hash(const char *sender)
{
	unsigned char folded[PROTO_ADDRESS_MAX];
	size_t len;

	if (sender == NULL)
		return 0;
	len = strnlen(sender, sizeof(folded));
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)sender[i];

		folded[i] = c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
	}
	/* Never 0, which stands for "no sender". */
	return (int64_t)(fuzzy_hash_bytes(folded, len) & INT64_MAX) | 1;
}
