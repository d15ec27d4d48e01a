/*
 * fuzz_auth_header.c — libFuzzer target for the authentication filters'
 * header reader (filters/auth_header.c): a field's unfolded value from a
 * hostile header block, and the address of a reverse path.
 *
 * Owns: nothing. Must never: read past the input (it is copied into a
 * buffer of exactly its size, so ASan sees any overread), write past the
 * output (its size comes from the first input byte), return a value longer
 * than fits, or accept an address whose domain is not a DNS name.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filters/auth_header.h"
#include "filters/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t outlen = size > 0 ? (size_t)data[0] + 1 : 1;
	char *input = malloc(size > 0 ? size : 1);
	char *value = malloc(outlen);
	char *address = malloc(outlen);
	int found;

	if (size > 0)
		memcpy(input, data, size);
	found = auth_header_field(input, size, "Return-Path", value, outlen);
	if (found < 0 && value[0] != '\0')
		abort();
	if (found == 1) {
		if (strlen(value) >= outlen)
			abort();
		if (auth_path_address(value, address, outlen) == 1) {
			const char *at = strrchr(address, '@');

			if (at == NULL || strlen(address) >= outlen ||
			    !filter_dns_name_valid(at + 1))
				abort();
		}
	}
	free(address);
	free(value);
	free(input);
	return 0;
}
