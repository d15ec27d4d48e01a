/*
 * fuzz_mime.c — libFuzzer target for the MIME entry point (filters/mime.c,
 * GMime 3) and the Bayes tokenizer that reads what it gives
 * (filters/tokenize.c): both take hostile messages in the worker.
 *
 * Owns: nothing. Must never: accept a result beyond the bounds of mime.h.
 * Beyond the sanitizers it checks and aborts on a violation: the text is
 * NUL-terminated at text_len and at most MIME_TEXT_MAX; parts, URLs, names
 * and headers within their limits; every URL at most URI_LENGTH_MAX; every
 * token at most TOKENIZE_TOKEN_MAX and hashed as tokenize_hash says.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/mime.h"
#include "filters/tokenize.h"
#include "filters/uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_token(const char *token, size_t len, uint64_t hash, void *arg)
{
	(void)arg;
	if (len == 0 || len > TOKENIZE_TOKEN_MAX || hash != tokenize_hash(token, len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_message message;

	mime_parse((const char *)data, size, &message);
	if (message.text == NULL || message.text_len > MIME_TEXT_MAX ||
	    message.text[message.text_len] != '\0' || message.part_count > MIME_PARTS_MAX ||
	    message.urls.count > MIME_URLS_MAX || message.names.count > MIME_NAMES_MAX ||
	    message.header_count > MIME_HEADERS_MAX)
		abort();
	for (size_t i = 0; i < message.urls.count; i++) {
		if (strlen(message.urls.items[i]) > URI_LENGTH_MAX)
			abort();
	}
	for (size_t i = 0; i < message.header_count; i++) {
		if (strlen(message.headers[i].value) > MIME_HEADER_VALUE_MAX)
			abort();
	}
	tokenize_message(&message, fuzz_token, NULL);
	mime_message_free(&message);
	return 0;
}
