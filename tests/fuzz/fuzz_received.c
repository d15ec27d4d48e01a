/*
 * fuzz_received.c — libFuzzer target for the Received-chain parser and the
 * hand-off walk (filters/received.c), which read a hostile header block in
 * the worker, and for the trusted_relays syntax.
 *
 * Owns: nothing. Must never: read past the input (it is copied into a
 * buffer of exactly its size, so ASan sees any overread), return more than
 * RECEIVED_FIELD_MAX hops, or give a hand-off whose address inet_pton does
 * not read or whose names hold a byte a host name or literal has not. The
 * first input byte chooses the provider and the trusted relays.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/received.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const fuzz_providers[] = {"-", "pop.gmx.net", "pop.example.net", "127.0.0.1",
					     "localhost"};
static const char *const fuzz_relays[] = {"", "pop.example.net:203.0.113.0/24 example-relays.com",
					  "10.0.0.0/8,2001:db8::/32", "pop.gmx.net:212.227.0.0/16"};

/* Aborts unless NAME (SIZE bytes of room) is NUL-terminated inside it and
 * holds only the characters the parser keeps. */
static void fuzz_check_name(const char *name, size_t size)
{
	size_t len = strnlen(name, size);

	if (len == size)
		abort();
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._[]:?", c) != NULL))
			abort();
	}
}

static void fuzz_check_address(const char *address, size_t size)
{
	unsigned char bytes[sizeof(struct in6_addr)];

	if (strnlen(address, size) == size)
		abort();
	if (address[0] != '\0' && inet_pton(AF_INET, address, bytes) != 1 &&
	    inet_pton(AF_INET6, address, bytes) != 1)
		abort();
}

static void fuzz_check_hop(const struct received_hop *hop)
{
	fuzz_check_address(hop->address, sizeof(hop->address));
	fuzz_check_name(hop->helo, sizeof(hop->helo));
	fuzz_check_name(hop->reverse, sizeof(hop->reverse));
	fuzz_check_name(hop->by, sizeof(hop->by));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = malloc(size > 0 ? size : 1);
	char *text = malloc(size + 1);
	struct received_reader reader;
	struct received_hop hop;
	struct filter_handoff handoff;
	size_t count = 0;
	char err[256];
	unsigned choice = size > 0 ? data[0] : 0;

	if (input == NULL || text == NULL) {
		free(input);
		free(text);
		return 0;
	}
	if (size > 0)
		memcpy(input, data, size);

	received_hop_parse(input, size, &hop);
	fuzz_check_hop(&hop);

	received_reader_init(&reader, input, size);
	while (received_reader_next(&reader, &hop) == 1) {
		fuzz_check_hop(&hop);
		if (++count > RECEIVED_FIELD_MAX)
			abort();
	}

	received_handoff_find(
	    input, size,
	    fuzz_providers[choice % (sizeof(fuzz_providers) / sizeof(fuzz_providers[0]))],
	    fuzz_relays[(choice / 8) % (sizeof(fuzz_relays) / sizeof(fuzz_relays[0]))], &handoff);
	fuzz_check_address(handoff.address, sizeof(handoff.address));
	fuzz_check_name(handoff.helo, sizeof(handoff.helo));
	fuzz_check_name(handoff.reverse, sizeof(handoff.reverse));
	if (handoff.found != (handoff.address[0] != '\0'))
		abort();

	/* The input as a trusted_relays value, and as one for the walk. */
	memcpy(text, data, size);
	text[size] = '\0';
	err[0] = '\0';
	if (received_relays_check(text, err, sizeof(err)) < 0 && err[0] == '\0')
		abort();
	received_handoff_find("Received: from a (b [198.51.100.1]) by c\r\n", 42, "pop.example.net",
			      text, &handoff);
	fuzz_check_address(handoff.address, sizeof(handoff.address));

	free(text);
	free(input);
	return 0;
}
