/*
 * fuzz_clamd_reply.c — libFuzzer target for clamd's reply parser and the
 * clamd_socket address parser (filters/clamd.c): the reply comes from
 * another process over a socket, the way the daemon reads it — whole, and
 * as it arrives in pieces.
 *
 * Owns: nothing. Must never: read past the input (it is copied into a
 * buffer of exactly its size, so ASan sees any overread), keep text longer
 * than CLAMD_TEXT_MAX or outside printable ASCII, call a reply complete in
 * one reading and incomplete in another, or say "incomplete" past
 * CLAMD_REPLY_MAX bytes or once clamd has closed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/clamd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check_reply(const struct clamd_reply *reply, enum clamd_verdict verdict)
{
	size_t len = strnlen(reply->text, sizeof(reply->text));

	if (reply->verdict != verdict || len > CLAMD_TEXT_MAX)
		abort();
	for (size_t i = 0; i < len; i++) {
		if (reply->text[i] < 0x20 || reply->text[i] > 0x7e)
			abort();
	}
	if ((verdict == CLAMD_VIRUS || verdict == CLAMD_ERROR || verdict == CLAMD_TOO_LARGE) &&
	    len == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = malloc(size > 0 ? size : 1);
	struct clamd_reply whole, piece;
	struct clamd_address address;
	enum clamd_verdict verdict;
	char err[256];
	char *text;

	memcpy(input, data, size);
	verdict = clamd_reply_parse(input, size, false, &whole);
	fuzz_check_reply(&whole, verdict);
	if (verdict == CLAMD_INCOMPLETE && size > CLAMD_REPLY_MAX)
		abort();
	/* As it arrives: once complete, every longer prefix says the same. */
	for (size_t len = 0; len <= size; len++) {
		enum clamd_verdict seen = clamd_reply_parse(input, len, false, &piece);

		fuzz_check_reply(&piece, seen);
		if (seen != CLAMD_INCOMPLETE) {
			if (seen != verdict || strcmp(piece.text, whole.text) != 0)
				abort();
			break;
		}
	}
	verdict = clamd_reply_parse(input, size, true, &whole);
	fuzz_check_reply(&whole, verdict);
	if (verdict == CLAMD_INCOMPLETE)
		abort();

	text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = '\0';
	if (clamd_address_parse(text, &address, err, sizeof(err)) == 0 &&
	    (address.len == 0 || address.len > sizeof(address.addr)))
		abort();
	free(text);
	free(input);
	return 0;
}
