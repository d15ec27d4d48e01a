/*
 * tokenize.h — the tokens the Bayes classifier counts in a message taken
 * apart by mime.c.
 *
 * Header tokens carry their field's name ("h:subject:free"); body tokens
 * are the words of the decoded text (lowercased ASCII, UTF-8 kept as it is)
 * and their orthogonal sparse bigrams ("b2:free money": two words up to
 * TOKENIZE_OSB_WINDOW apart, with the distance in the token, as CRM114 and
 * OSBF count them); the link URLs give their host and its parent domains
 * ("u:example.com"), the parts their content types ("t:text/html") and the
 * attachments their names and extensions ("a:.exe").
 *
 * Each token is handed to a callback as a string and a 64-bit hash (what the
 * database stores); the same token may be handed more than once.
 */
#ifndef POPGATE_FILTERS_TOKENIZE_H
#define POPGATE_FILTERS_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "filters/mime.h"

/* The longest word kept, in bytes; longer ones become "w:long". */
#define TOKENIZE_WORD_MAX 32
/* The longest token string handed to the callback (prefix and bigram). */
#define TOKENIZE_TOKEN_MAX 96
/* Body words looked at (bigrams included). */
#define TOKENIZE_WORDS_MAX 20000
/* The farthest apart two words of a bigram are. */
#define TOKENIZE_OSB_WINDOW 4

typedef void tokenize_fn(const char *token, size_t len, uint64_t hash, void *arg);

/* The hash the database keys a token by (64-bit FNV-1a). */
uint64_t tokenize_hash(const char *token, size_t len);

/* Hands every token of MESSAGE to FN with ARG. */
void tokenize_message(const struct mime_message *message, tokenize_fn *fn, void *arg);

#endif
