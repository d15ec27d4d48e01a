/*
 * fuzzy.c — the fuzzy filter (see filters/fuzzy.h): the fingerprint of a
 * message's normalised text, made in the worker, and its judgement against
 * the fingerprints seen before, in the main process.
 *
 * Owns: nothing. Must never: keep or send any of the text itself (only the
 * MinHash values leave the worker), put a sender's address into a reason,
 * or read more than FUZZY_WORDS_MAX words of a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/util.h"
#include "filters/fuzzy.h"
#include "filters/mime.h"
#include "filters/senders.h"
#include "pipeline/proto.h"
#include "store/correspondent.h"
#include "store/fingerprint.h"
#include "store/sender_list.h"

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

void fuzzy_fingerprint_message(const char *data, size_t len, struct filter_fingerprint *fingerprint)
{
	struct mime_message message;

	mime_parse(data, len, &message);
	fuzzy_fingerprint_text(message.text != NULL ? message.text : "", message.text_len,
			       fingerprint);
	mime_message_free(&message);
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

/* The integer setting KEY within [MIN, MAX], or FALLBACK. */
static int64_t fuzzy_setting_int(const char *key, int64_t min, int64_t max, int64_t fallback)
{
	const char *text = filter_setting(key);
	char *end;
	long long value;

	if (text == NULL || *text == '\0')
		return fallback;
	value = strtoll(text, &end, 10);
	if (*end != '\0' || value < min || value > max)
		return fallback;
	return value;
}

int64_t fuzzy_window(void)
{
	return fuzzy_setting_int("fuzzy_window", 60, 31 * 86400, FUZZY_WINDOW_DEFAULT);
}

int fuzzy_sender_exempt(struct store *store, int64_t owner_id, const char *sender)
{
	struct sender_list_entry *entries = NULL;
	const struct sender_list_entry *match;
	size_t count = 0;
	int exempt;

	if (sender == NULL)
		return 0;
	if (store_sender_list_for_user(store, owner_id, &entries, &count) < 0)
		return -1;
	match = senders_match(entries, count, owner_id, sender);
	exempt = match != NULL && match->kind == SENDER_LIST_ALLOW;
	store_sender_list_free(&entries, count);
	if (exempt || owner_id == 0)
		return exempt;
	return store_correspondent_known(store, owner_id, sender);
}

int fuzzy_judge(struct store *store, int64_t owner_id, const char *message_id,
		const struct pipeline_verdict *verdict, int64_t now, struct pipeline_result *result)
{
	int64_t min_count =
	    fuzzy_setting_int("fuzzy_min_count", 2, 1000000, FUZZY_MIN_COUNT_DEFAULT);
	int64_t window = fuzzy_window();
	int64_t sender_hash = fuzzy_sender_hash(verdict->sender);
	struct fingerprint_stats stats;
	int64_t messages, senders, owners, since;
	char when[32];
	struct tm tm;
	time_t first;
	int exempt;

	result->status = PIPELINE_RESULT_OK;
	result->score = 0;
	if (!verdict->fingerprint.present) {
		result->reason = xasprintf("fuzzy: fewer than %d words of text, no fingerprint",
					   FUZZY_MIN_WORDS);
		return 0;
	}
	exempt = fuzzy_sender_exempt(store, owner_id, verdict->sender);
	if (exempt == 1) {
		result->reason =
		    xstrdup("fuzzy: from an allowed sender or a correspondent, not counted");
		return 0;
	}
	if (exempt < 0 || store_fingerprint_stats(store, &verdict->fingerprint, now - window,
						  message_id, sender_hash, owner_id, &stats) < 0) {
		result->status = PIPELINE_RESULT_FAILED;
		result->reason = xstrdup("fuzzy: cannot read the fingerprints");
		return -1;
	}
	/* This message counts too (it is recorded once the verdict is). */
	messages = stats.messages + 1;
	senders = stats.senders + (stats.sender_seen ? 0 : 1);
	owners = stats.owners + (stats.owner_seen ? 0 : 1);
	since = stats.messages > 0 ? stats.first_seen : now;
	first = (time_t)since;
	if (gmtime_r(&first, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%MZ", &tm) == 0)
		snprintf(when, sizeof(when), "?");
	if (stats.ham) {
		result->reason = xasprintf("fuzzy: seen %lld times from %lld senders since %s, "
					   "reported as ham",
					   (long long)messages, (long long)senders, when);
		return 0;
	}
	if (senders >= min_count) {
		double score = (double)senders / (double)min_count;

		result->score = score > FUZZY_SCORE_MAX ? FUZZY_SCORE_MAX : score;
	}
	result->reason = xasprintf("fuzzy: seen %lld times from %lld senders to %lld users since "
				   "%s (scores from %lld senders)",
				   (long long)messages, (long long)senders, (long long)owners, when,
				   (long long)min_count);
	return 0;
}

/* In the worker, before it confines itself: GMime's converters. */
static int fuzzy_filter_init(char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	mime_init();
	return 0;
}

/* In the worker: the fingerprint, sent with the verdict. */
static void fuzzy_filter_collect(const struct filter_message *message,
				 struct pipeline_verdict *verdict)
{
	fuzzy_fingerprint_message(message->body, message->body_len, &verdict->fingerprint);
}

/* Judged by the main process, which holds the fingerprints seen. */
const struct filter filter_fuzzy = {
    .name = FUZZY_FILTER_NAME,
    .init = fuzzy_filter_init,
    .run = NULL,
    .collect = fuzzy_filter_collect,
};
