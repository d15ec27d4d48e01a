/*
 * test_fuzzy.c — the fuzzy fingerprint (filters/fuzzy.c) on real messages
 * of the SpamAssassin corpus: a spam sent again with other names, numbers,
 * links and a few words changed is near its original, through MIME (HTML
 * original, plain-text variant); different ham messages are not (the
 * false-match rate over every pair of 600 ham messages is printed and
 * bounded); the normalisation itself; too little text gives none.
 *
 * Owns: nothing outside this process.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/fuzzy.h"
#include "filters/mime.h"
#include "test_corpus.h"

/* The fingerprint of the raw message DATA (LEN bytes), parsed here. */
static void fuzzy_fingerprint_raw(const char *data, size_t len, struct filter_fingerprint *print)
{
	struct mime_message message;

	mime_parse(data, len, &message);
	fuzzy_fingerprint_message(&message, print);
	mime_message_free(&message);
}

static void fingerprint_of(const char *text, struct filter_fingerprint *fingerprint)
{
	fuzzy_fingerprint_text(text, strlen(text), fingerprint);
}

/* Names, numbers, links, addresses, case, punctuation and spacing do not
 * change a fingerprint; words do, a little each. */
static void test_normalisation(void **state)
{
	struct filter_fingerprint a, b, c, d;

	(void)state;
	fingerprint_of("Dear customer, your order 12345 of $99.95 has shipped! Track it at "
		       "http://track.example.com/a?id=1 or write to help@example.com today.",
		       &a);
	fingerprint_of("DEAR   Customer: your order 98-7654 of $12.00 has shipped. track it at\n"
		       "https://t.example.net/zz/9 or write to info@other.example today!!",
		       &b);
	assert_true(a.present);
	assert_true(b.present);
	assert_int_equal(fuzzy_similarity(&a, &b), FILTER_FINGERPRINT_HASHES);
	fingerprint_of("Dear customer, your parcel 12345 of $99.95 was lost! Track it at "
		       "http://track.example.com/a?id=1 or write to help@example.com today.",
		       &c);
	assert_true(fuzzy_similarity(&a, &c) < FILTER_FINGERPRINT_HASHES);
	fingerprint_of("The quick brown fox jumps over the lazy dog while the cat sleeps on "
		       "the warm windowsill all afternoon.",
		       &d);
	assert_false(fuzzy_near(&a, &d));
	/* Too little text: none; and none is near nothing. */
	fingerprint_of("Buy now, only $9.99! http://x.example/", &c);
	assert_false(c.present);
	assert_int_equal(fuzzy_similarity(&a, &c), 0);
	fingerprint_of("", &c);
	assert_false(c.present);
	/* Ten words make one; punctuation alone is no word. */
	fingerprint_of("one two three four five six seven eight nine -- !!", &c);
	assert_false(c.present);
	fingerprint_of("one two three four five six seven eight nine ten", &c);
	assert_true(c.present);
	/* The band keys follow the values. */
	for (unsigned band = 0; band < FUZZY_BANDS; band++)
		assert_true(fuzzy_band_key(&a, band) == fuzzy_band_key(&b, band));
	assert_true(fuzzy_band_key(&a, 0) != fuzzy_band_key(&a, 1));
	/* Sender hashes: any case is one sender, none is 0. */
	assert_true(fuzzy_sender_hash("Bob@Example.COM") == fuzzy_sender_hash("bob@example.com"));
	assert_true(fuzzy_sender_hash("bob@example.com") != fuzzy_sender_hash("eve@example.com"));
	assert_true(fuzzy_sender_hash(NULL) == 0);
	assert_true(fuzzy_sender_hash("a@b") > 0);
}

/*
 * A campaign's next copy, made from TEXT (a message's decoded text): a
 * greeting with another name in front, every run of digits replaced by
 * others, every link and address by others, and every WORD_STEPth word
 * changed. Allocated.
 */
static char *campaign_variant(const char *text, unsigned variant, size_t word_step)
{
	static const char *const names[] = {"Johnathan Smithers", "Maria Gonzales", "Wei Zhang",
					    "Olga Petrova",	  "Kwame Mensah",   "Aisha Rahman"};
	size_t len = strlen(text), cap = 2 * len + 256, out = 0, words = 0;
	char *s = xmalloc(cap);
	size_t pos = 0;

	out += (size_t)snprintf(s, cap, "Hello %s,\n", names[variant % 6]);
	while (pos < len) {
		size_t start = pos;

		while (pos < len && isspace((unsigned char)text[pos]))
			s[out++] = text[pos++];
		start = pos;
		while (pos < len && !isspace((unsigned char)text[pos]))
			pos++;
		if (pos == start)
			continue;
		const char *word = text + start;
		size_t word_len = pos - start;
		char replaced[128];
		const char *copy = NULL;

		words++;
		if (memmem(word, word_len, "://", 3) != NULL) {
			snprintf(replaced, sizeof(replaced), "http://trk%u.example.net/c/%zu?u=%u",
				 variant, words, variant * 7919);
			copy = replaced;
		} else if (memchr(word, '@', word_len) != NULL) {
			snprintf(replaced, sizeof(replaced), "offers%u@mailer%u.example", variant,
				 variant);
			copy = replaced;
		} else if (word_step > 0 && words % word_step == 0) {
			copy = "altered";
		}
		if (copy != NULL) {
			size_t n = strlen(copy);

			memcpy(s + out, copy, n);
			out += n;
			continue;
		}
		for (size_t i = 0; i < word_len; i++) {
			char c = word[i];

			s[out++] = isdigit((unsigned char)c)
				       ? (char)('0' + (c - '0' + variant + 3) % 10)
				       : c;
		}
	}
	s[out] = '\0';
	return s;
}

/* A whole message, plain text, of TEXT, from another sender. */
static char *campaign_message(const char *text, unsigned variant)
{
	return xasprintf("From: Offers %u <offers%u@sender%u.example>\r\n"
			 "To: user%u@example.org\r\n"
			 "Subject: Your offer %u\r\n"
			 "MIME-Version: 1.0\r\n"
			 "Content-Type: text/plain; charset=utf-8\r\n"
			 "Content-Transfer-Encoding: 8bit\r\n\r\n%s",
			 variant, variant, variant, variant, variant * 31, text);
}

/*
 * Every spam of spam-2 with a fingerprint (the first 200 files), sent again
 * as six variants through MIME: each is near its original. Almost all must
 * match; the rate is printed.
 */
static void test_corpus_variants_match(void **state)
{
	glob_t files;
	size_t tried = 0, matched = 0, variants = 0;
	unsigned similarity_min = FILTER_FINGERPRINT_HASHES;

	(void)state;
	assert_int_equal(test_corpus_glob("spam-2", "", &files), 0);
	for (size_t i = 0; i < files.gl_pathc && i < 200; i++) {
		struct filter_fingerprint original;
		struct mime_message message;
		char *data;
		size_t len;

		assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
		mime_parse(data, len, &message);
		fuzzy_fingerprint_message(&message, &original);
		free(data);
		if (!original.present) {
			mime_message_free(&message);
			continue;
		}
		tried++;
		for (unsigned v = 0; v < 6; v++) {
			char *text = campaign_variant(message.text, v, 40);
			char *raw = campaign_message(text, v);
			struct filter_fingerprint copy;
			unsigned similarity;

			fuzzy_fingerprint_raw(raw, strlen(raw), &copy);
			similarity = fuzzy_similarity(&original, &copy);
			if (similarity < similarity_min)
				similarity_min = similarity;
			variants++;
			matched += fuzzy_near(&original, &copy);
			free(raw);
			free(text);
		}
		mime_message_free(&message);
	}
	globfree(&files);
	print_message("fuzzy: %zu of %zu variants of %zu corpus spams near their original "
		      "(%.2f %%; lowest similarity %u/%d)\n",
		      matched, variants, tried, 100.0 * (double)matched / (double)variants,
		      similarity_min, FILTER_FINGERPRINT_HASHES);
	assert_true(tried >= 150);
	assert_true(matched * 100 >= variants * 97);
}

/* Fingerprints of the first COUNT files of GROUP that have one, into
 * PRINTS (at *N). */
static void corpus_prints(const char *group, size_t count, struct filter_fingerprint *prints,
			  size_t *n)
{
	glob_t files;

	assert_int_equal(test_corpus_glob(group, "", &files), 0);
	for (size_t i = 0; i < files.gl_pathc && count > 0; i++) {
		char *data;
		size_t len;

		assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
		fuzzy_fingerprint_raw(data, len, &prints[*n]);
		free(data);
		if (prints[*n].present) {
			(*n)++;
			count--;
		}
	}
	globfree(&files);
}

/*
 * Different ham messages are not near: every pair of 400 easy-ham-2 and 200
 * hard-ham-1 messages (179,700 pairs). The corpus holds the same post sent
 * to two lists and replies that quote much of what they answer, which are
 * near in truth; the rate printed counts them as false matches all the
 * same. Different spam messages are compared too, for the record (spam-2
 * holds copies of campaigns, so near pairs are expected there).
 */
static void test_corpus_ham_pairs_differ(void **state)
{
	struct filter_fingerprint *prints = xcalloc(600, sizeof(*prints));
	size_t n = 0, pairs = 0, near = 0;

	(void)state;
	int64_t started = util_monotonic_ms();
	corpus_prints("easy-ham-2", 400, prints, &n);
	corpus_prints("hard-ham-1", 200, prints, &n);
	int64_t took = util_monotonic_ms() - started;
	assert_int_equal(n, 600);
	print_message("fuzzy: 600 ham messages read and fingerprinted in %lld ms (MIME included)\n",
		      (long long)took);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			pairs++;
			near += fuzzy_near(&prints[i], &prints[j]);
		}
	}
	print_message("fuzzy: %zu of %zu pairs of different ham messages near (%.3f %%)\n", near,
		      pairs, 100.0 * (double)near / (double)pairs);
	assert_true(near * 1000 <= pairs); /* at most 0.1 % */

	n = pairs = near = 0;
	corpus_prints("spam-2", 600, prints, &n);
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			pairs++;
			near += fuzzy_near(&prints[i], &prints[j]);
		}
	}
	print_message("fuzzy: %zu of %zu pairs of different spam messages near (%.3f %%)\n", near,
		      pairs, 100.0 * (double)near / (double)pairs);
	free(prints);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalisation),
	    cmocka_unit_test(test_corpus_variants_match),
	    cmocka_unit_test(test_corpus_ham_pairs_differ),
	};

	mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
