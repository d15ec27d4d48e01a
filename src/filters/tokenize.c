/*
 * tokenize.c — a message's tokens for the Bayes classifier (see
 * tokenize.h).
 *
 * Owns: nothing between calls. Must never: hand out a token longer than
 * TOKENIZE_TOKEN_MAX, or look at more than TOKENIZE_WORDS_MAX body words
 * (a large message costs time in proportion to the bounds, not its size).
 *
 * What counts and what does not was measured on the SpamAssassin corpus
 * (bench/accuracy.py): header tokens by field, body words and bigrams, the
 * URL hosts. Numbers alone, and fields that say when and where the mail was
 * stored rather than what it is (Date, Message-ID's local part, the mbox
 * Status fields, any earlier filter's X-Spam-* verdict), are left out: they
 * tell about the time and the mailbox the training mail came from, not about
 * spam.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "filters/tokenize.h"
#include "filters/uri.h"

uint64_t tokenize_hash(const char *token, size_t len)
{
	uint64_t hash = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++) {
		hash ^= (unsigned char)token[i];
		hash *= 0x100000001b3ULL;
	}
	return hash;
}

static void tokenize_emit(const char *token, size_t len, tokenize_fn *fn, void *arg)
{
	if (len > TOKENIZE_TOKEN_MAX)
		len = TOKENIZE_TOKEN_MAX;
	fn(token, len, tokenize_hash(token, len), arg);
}

/* Whether byte C belongs to a word: letters, digits, UTF-8 and the marks
 * that spam puts inside words and prices ("$", "!", "'", "-", "."). */
static bool tokenize_word_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || c == '$' || c == '!' || c == '\'' || c == '-' ||
	       c == '.' || c == '_';
}

/*
 * Finds the next word of TEXT (LEN bytes) from *POS: its start and length
 * in *WORD, *WORD_LEN, lowercased into BUF (TOKENIZE_WORD_MAX + 1 bytes).
 * Edge punctuation is trimmed; words of digits and marks only, and words
 * of one or two bytes, are skipped. False at the end.
 */
static bool tokenize_next_word(const char *text, size_t len, size_t *pos, char *buf,
			       size_t *word_len)
{
	while (*pos < len) {
		size_t start;
		size_t end;
		bool letter = false;

		while (*pos < len && !tokenize_word_char((unsigned char)text[*pos]))
			(*pos)++;
		start = *pos;
		while (*pos < len && tokenize_word_char((unsigned char)text[*pos]))
			(*pos)++;
		end = *pos;
		while (start < end && strchr(".-'_", text[start]) != NULL)
			start++;
		while (end > start && strchr(".-'_", text[end - 1]) != NULL)
			end--;
		if (end - start < 3)
			continue;
		for (size_t i = start; i < end && !letter; i++)
			letter = isalpha((unsigned char)text[i]) || (unsigned char)text[i] >= 0x80;
		if (!letter)
			continue;
		if (end - start > TOKENIZE_WORD_MAX) {
			memcpy(buf, "w:long", 7);
			*word_len = 6;
			return true;
		}
		for (size_t i = start; i < end; i++)
			buf[i - start] = (char)tolower((unsigned char)text[i]);
		buf[end - start] = '\0';
		*word_len = end - start;
		return true;
	}
	return false;
}

/* Fields left out (see the top of the file). */
static bool tokenize_header_skipped(const char *name)
{
	static const char *const skipped[] = {"date",
					      "status",
					      "x-status",
					      "x-keywords",
					      "x-uid",
					      "lines",
					      "content-length",
					      "x-popgate-spam-status",
					      "x-popgate-spam-score"};

	if (strncasecmp(name, "x-spam-", 7) == 0)
		return true;
	for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++) {
		if (strcasecmp(name, skipped[i]) == 0)
			return true;
	}
	return false;
}

/* The words of header field NAME's VALUE, each as "h:NAME:WORD". */
static void tokenize_header(const char *name, const char *value, tokenize_fn *fn, void *arg)
{
	char prefix[40];
	char word[TOKENIZE_WORD_MAX + 1];
	char token[TOKENIZE_TOKEN_MAX + 1];
	size_t word_len;
	size_t pos = 0;
	size_t len = strlen(value);
	size_t prefix_len = 0;
	int words = 0;

	for (size_t i = 0; name[i] != '\0' && prefix_len < 24; i++)
		prefix[prefix_len++] = (char)tolower((unsigned char)name[i]);
	prefix[prefix_len] = '\0';
	/* The field's presence is a token too (X-Mailer, List-Id, ...). */
	int n = snprintf(token, sizeof(token), "n:%s", prefix);
	tokenize_emit(token, (size_t)n, fn, arg);
	/* Message-ID: only what follows the '@' (the generating host). */
	if (strcmp(prefix, "message-id") == 0) {
		const char *at = strrchr(value, '@');

		if (at == NULL)
			return;
		pos = (size_t)(at - value);
	}
	while (words++ < 64 && tokenize_next_word(value, len, &pos, word, &word_len)) {
		n = snprintf(token, sizeof(token), "h:%s:%s", prefix, word);
		tokenize_emit(token, (size_t)n, fn, arg);
	}
}

/* The host of URL (after its scheme) and its parent domains, as "u:HOST". */
static void tokenize_url(const char *url, tokenize_fn *fn, void *arg)
{
	char host[URI_LENGTH_MAX + 1];
	char token[TOKENIZE_TOKEN_MAX + 1];
	const char *start = strstr(url, "://");
	size_t len = 0;
	int dots = 0;

	start = start != NULL ? start + 3 : url;
	while (start[len] != '\0' && strchr("/?#:", start[len]) == NULL && len < URI_LENGTH_MAX) {
		host[len] = (char)tolower((unsigned char)start[len]);
		len++;
	}
	host[len] = '\0';
	/* user@host: the host is after the '@'. */
	char *at = strrchr(host, '@');
	char *h = at != NULL ? at + 1 : host;

	for (char *p = h + strlen(h); p > h && dots < 4; p--) {
		if (p[-1] != '.')
			continue;
		if (++dots >= 2) {
			int n = snprintf(token, sizeof(token), "u:%s", p);
			tokenize_emit(token, (size_t)n, fn, arg);
		}
	}
	if (*h != '\0') {
		int n = snprintf(token, sizeof(token), "u:%s", h);
		tokenize_emit(token, (size_t)n, fn, arg);
	}
}

/* A distance of one digit in the bigram tokens below. */
_Static_assert(TOKENIZE_OSB_WINDOW <= 9, "OSB distance is one digit");
/* Two words, the distance and three marks fit a token. */
_Static_assert(2 * TOKENIZE_WORD_MAX + 4 <= TOKENIZE_TOKEN_MAX, "an OSB token fits");

/* The words of the body text and their sparse bigrams. */
static void tokenize_body(const char *text, size_t len, tokenize_fn *fn, void *arg)
{
	char window[TOKENIZE_OSB_WINDOW + 1][TOKENIZE_WORD_MAX + 1];
	size_t window_len[TOKENIZE_OSB_WINDOW + 1];
	char token[TOKENIZE_TOKEN_MAX + 1];
	size_t pos = 0;
	size_t count = 0;

	while (count < TOKENIZE_WORDS_MAX) {
		size_t slot = count % (TOKENIZE_OSB_WINDOW + 1);

		if (!tokenize_next_word(text, len, &pos, window[slot], &window_len[slot]))
			break;
		tokenize_emit(window[slot], window_len[slot], fn, arg);
		/* "bD:EARLIER LATER", built by hand: the hottest loop of
		 * the tokenizer (snprintf was a tenth of a filter chain). */
		for (size_t d = 1; d <= TOKENIZE_OSB_WINDOW && d <= count; d++) {
			size_t other = (count - d) % (TOKENIZE_OSB_WINDOW + 1);
			size_t n = 0;

			token[n++] = 'b';
			token[n++] = (char)('0' + d);
			token[n++] = ':';
			memcpy(token + n, window[other], window_len[other]);
			n += window_len[other];
			token[n++] = ' ';
			memcpy(token + n, window[slot], window_len[slot]);
			n += window_len[slot];
			tokenize_emit(token, n, fn, arg);
		}
		count++;
	}
}

/*
 * The registered-looking domain (the last two labels) of the address or
 * host in VALUE after its last '@' (or of VALUE itself when AT_ONLY is
 * false and it has none) into BUF; false when there is none.
 */
static bool tokenize_domain(const char *value, bool at_only, char *buf, size_t buflen)
{
	const char *at = value != NULL ? strrchr(value, '@') : NULL;
	const char *start = at != NULL ? at + 1 : (at_only || value == NULL ? NULL : value);
	size_t len = 0;
	size_t cut = 0;
	int dots = 0;

	if (start == NULL)
		return false;
	while (start[len] != '\0' &&
	       (isalnum((unsigned char)start[len]) || start[len] == '.' || start[len] == '-'))
		len++;
	while (len > 0 && start[len - 1] == '.')
		len--;
	for (size_t i = len; i > 0; i--) {
		if (start[i - 1] == '.' && ++dots == 2) {
			cut = i;
			break;
		}
	}
	if (len - cut == 0 || len - cut >= buflen || dots == 0)
		return false;
	for (size_t i = cut; i < len; i++)
		buf[i - cut] = (char)tolower((unsigned char)start[i]);
	buf[len - cut] = '\0';
	return true;
}

/*
 * Whether the author's domain agrees with the other places a sender leaves
 * its name (Return-Path, Message-ID, the Received hosts): mail a domain sends
 * itself agrees, forged mail rarely does. One token per comparison.
 */
static void tokenize_consistency(const struct mime_message *message, tokenize_fn *fn, void *arg)
{
	static const char *const fields[] = {"return-path", "message-id", "reply-to", "sender"};
	char from[256];
	char other[256];
	char token[TOKENIZE_TOKEN_MAX + 1];
	bool received = false;

	if (!tokenize_domain(mime_header_find(message, "from"), true, from, sizeof(from))) {
		tokenize_emit("c:from-no-domain", strlen("c:from-no-domain"), fn, arg);
		return;
	}
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const char *value = mime_header_find(message, fields[i]);
		int n;

		if (value == NULL)
			n = snprintf(token, sizeof(token), "c:%s-none", fields[i]);
		else if (!tokenize_domain(value, true, other, sizeof(other)))
			n = snprintf(token, sizeof(token), "c:%s-bad", fields[i]);
		else
			n = snprintf(token, sizeof(token), "c:%s-%s", fields[i],
				     strcmp(from, other) == 0 ? "same" : "other");
		tokenize_emit(token, (size_t)n, fn, arg);
	}
	for (size_t i = 0; i < message->header_count && !received; i++) {
		if (strcasecmp(message->headers[i].name, "received") == 0 &&
		    strstr(message->headers[i].value, from) != NULL)
			received = true;
	}
	const char *agree = received ? "c:received-same" : "c:received-other";

	tokenize_emit(agree, strlen(agree), fn, arg);
}

void tokenize_message(const struct mime_message *message, tokenize_fn *fn, void *arg)
{
	char token[TOKENIZE_TOKEN_MAX + 1];

	for (size_t i = 0; i < message->header_count; i++) {
		if (!tokenize_header_skipped(message->headers[i].name))
			tokenize_header(message->headers[i].name, message->headers[i].value, fn,
					arg);
	}
	tokenize_consistency(message, fn, arg);
	tokenize_body(message->text, message->text_len, fn, arg);
	for (size_t i = 0; i < message->urls.count; i++)
		tokenize_url(message->urls.items[i], fn, arg);
	for (size_t i = 0; i < message->types.count; i++) {
		int n = snprintf(token, sizeof(token), "t:%s", message->types.items[i]);
		tokenize_emit(token, (size_t)n, fn, arg);
	}
	for (size_t i = 0; i < message->names.count; i++) {
		const char *name = message->names.items[i];
		const char *dot = strrchr(name, '.');
		int n = snprintf(token, sizeof(token), "a:%s", dot != NULL ? dot : "(none)");
		/* A longer extension was cut to the buffer. */
		size_t len = (size_t)n < sizeof(token) ? (size_t)n : sizeof(token) - 1;

		for (size_t j = 2; j < len; j++)
			token[j] = (char)tolower((unsigned char)token[j]);
		tokenize_emit(token, len, fn, arg);
	}
	if (message->truncated)
		tokenize_emit("x:truncated", strlen("x:truncated"), fn, arg);
}
