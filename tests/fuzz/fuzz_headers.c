/*
 * fuzz_headers.c — libFuzzer target for the sender and recipient extractor
 * (pipeline/headers.c), which reads hostile message headers in the worker.
 *
 * Owns: nothing. Must never: accept an address the verdict frame would
 * refuse. Beyond the sanitizers it checks and aborts on a violation: feeding
 * the input whole and in pieces (of a size taken from its first byte) gives
 * the same answer; every address is valid, lowercase and at most as long as
 * allowed; recipients are distinct and at most HEADERS_RECIPIENTS_MAX; and
 * the verdict carrying them encodes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/headers.h"
#include "pipeline/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct headers_parser fuzz_whole;
static struct headers_parser fuzz_pieces;

static void fuzz_check_address(const char *address)
{
	size_t len = strlen(address);

	if (len == 0 || len > HEADERS_ADDRESS_MAX || !headers_address_valid(address) ||
	    !proto_address_valid(address, len))
		abort();
	for (size_t i = 0; i < len; i++) {
		if (address[i] >= 'A' && address[i] <= 'Z')
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pipeline_verdict verdict = {.outcome = PIPELINE_JUDGED};
	const char *sender;
	const char *sender2;
	const char *const *recipients;
	const char *const *recipients2;
	size_t count;
	size_t count2;
	size_t piece = size > 0 ? (size_t)data[0] % 17 + 1 : 1;
	unsigned char *frame;
	size_t frame_len;
	const char *err;

	headers_init(&fuzz_whole);
	headers_feed(&fuzz_whole, (const char *)data, size);
	count = headers_finish(&fuzz_whole, &sender, &recipients);

	headers_init(&fuzz_pieces);
	for (size_t pos = 0; pos < size; pos += piece)
		headers_feed(&fuzz_pieces, (const char *)data + pos,
			     size - pos < piece ? size - pos : piece);
	count2 = headers_finish(&fuzz_pieces, &sender2, &recipients2);

	if (count != count2 || count > HEADERS_RECIPIENTS_MAX ||
	    (sender == NULL) != (sender2 == NULL))
		abort();
	if (sender != NULL) {
		fuzz_check_address(sender);
		if (strcmp(sender, sender2) != 0)
			abort();
	}
	for (size_t i = 0; i < count; i++) {
		fuzz_check_address(recipients[i]);
		if (strcmp(recipients[i], recipients2[i]) != 0)
			abort();
		for (size_t j = 0; j < i; j++) {
			if (strcmp(recipients[i], recipients[j]) == 0)
				abort();
		}
	}

	memcpy(verdict.id, "0123456789abcdef01234567", SPOOL_ID_LEN + 1);
	verdict.sender = (char *)sender;
	verdict.recipients = (char **)recipients;
	verdict.recipient_count = count;
	if (proto_verdict_encode(&verdict, &frame, &frame_len, &err) < 0)
		abort();
	free(frame);
	return 0;
}
