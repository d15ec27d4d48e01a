/*
 * fuzz_policy.c — libFuzzer target for the address policy (core/policy.c)
 * and the provider host checks (config_pattern_match, policy_host_refusal).
 *
 * The first byte picks what the rest is:
 *   0  an IPv4 address (4 bytes) and filler: its verdict must be the same
 *      read as a sockaddr_in and in every IPv6 form that carries it
 *      (::ffff:0:0/96 mapped, ::ffff:0:0:0/96 translated, 64:ff9b::/96 and
 *      64:ff9b:1::/96 NAT64, 2002::/16 6to4 with any subnet and interface);
 *      Teredo is never public.
 *   1  an IPv6 address (16 bytes): the same verdict as bytes, as a
 *      sockaddr_in6, and after a round trip through its text form; public
 *      only inside 2000::/3 or in a form carrying an IPv4 address.
 *   2  a pattern and a host (split at the first NUL): matching never crashes,
 *      ignores case, and "*.suffix" matches neither "suffix" nor ".suffix"
 *      nor a host that does not end in ".suffix".
 *   3  a host name: policy_host_refusal never crashes, and a host it lets
 *      through that the C library reads as an IPv4 address (inet_aton: octal,
 *      hex, short forms) is exactly the canonical dotted quad of that address.
 *
 * Properties are checked with abort(). Must never: touch the file system or
 * keep state between runs.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

static bool v6_public_all_ways(const uint8_t bytes[16])
{
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct sockaddr_storage storage;
	bool verdict = policy_ipv6_public(bytes);

	memcpy(&sin6.sin6_addr, bytes, 16);
	memcpy(&storage, &sin6, sizeof(sin6));
	check(policy_address_public((const struct sockaddr *)&storage) == verdict);
	return verdict;
}

static void fuzz_ipv4_forms(const uint8_t *data, size_t size)
{
	uint8_t filler[16] = {0};
	uint8_t v6[16];
	uint32_t address;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_storage storage;
	bool verdict;

	if (size < 4)
		return;
	memcpy(&sin.sin_addr, data, 4);
	address = ntohl(sin.sin_addr.s_addr);
	verdict = policy_ipv4_public(address);
	memcpy(&storage, &sin, sizeof(sin));
	check(policy_address_public((const struct sockaddr *)&storage) == verdict);
	memcpy(filler, data + 4, size - 4 < sizeof(filler) ? size - 4 : sizeof(filler));

	static const uint8_t prefixes[][12] = {
	    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff},	      /* mapped */
	    {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0},	      /* translated */
	    {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0},    /* NAT64 */
	    {0, 0x64, 0xff, 0x9b, 0, 0x01, 0, 0, 0, 0, 0, 0}, /* local-use NAT64 */
	};
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		memcpy(v6, prefixes[i], 12);
		memcpy(v6 + 12, data, 4);
		check(v6_public_all_ways(v6) == verdict);
	}
	/* 6to4: the IPv4 address in bits 16-47, anything after it. */
	memcpy(v6, filler, 16);
	v6[0] = 0x20;
	v6[1] = 0x02;
	memcpy(v6 + 2, data, 4);
	check(v6_public_all_ways(v6) == verdict);
	/* Teredo: whatever it carries, refused. */
	memcpy(v6, filler, 16);
	v6[0] = 0x20;
	v6[1] = 0x01;
	v6[2] = 0;
	v6[3] = 0;
	memcpy(v6 + 4, data, 4);
	check(!v6_public_all_ways(v6));
}

static void fuzz_ipv6(const uint8_t *data, size_t size)
{
	uint8_t bytes[16] = {0};
	uint8_t back[16];
	char text[INET6_ADDRSTRLEN];
	bool verdict;

	memcpy(bytes, data, size < 16 ? size : 16);
	verdict = v6_public_all_ways(bytes);
	check(inet_ntop(AF_INET6, bytes, text, sizeof(text)) != NULL);
	check(inet_pton(AF_INET6, text, back) == 1);
	check(memcmp(bytes, back, 16) == 0);
	check(policy_ipv6_public(back) == verdict);
	if (verdict) {
		static const uint8_t nat64[4] = {0, 0x64, 0xff, 0x9b};
		bool carries_v4 = memcmp(bytes, nat64, 4) == 0 ||
				  (bytes[0] == 0 && bytes[1] == 0) /* mapped, translated */;

		check((bytes[0] & 0xe0) == 0x20 || carries_v4);
		check(!(bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] < 2)); /* 2001::/23 */
		check(!(bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0d &&
			bytes[3] == 0xb8));
		check(!(bytes[0] == 0x3f && bytes[1] == 0xff && bytes[2] < 0x10));
	}
}

/* A copy of TEXT[0..LEN-1] as a string, upper-cased if UPPER. */
static char *string_copy(const uint8_t *text, size_t len, bool upper)
{
	char *s = malloc(len + 1);

	check(s != NULL);
	for (size_t i = 0; i < len; i++)
		s[i] = upper ? (char)toupper(text[i]) : (char)text[i];
	s[len] = '\0';
	return s;
}

static void fuzz_pattern(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t pattern_len = nul != NULL ? (size_t)(nul - data) : size / 2;
	const uint8_t *host_data = nul != NULL ? nul + 1 : data + pattern_len;
	size_t host_len = size - (size_t)(host_data - data);
	char *pattern = string_copy(data, pattern_len, false);
	char *host = string_copy(host_data, host_len, false);
	char *host_upper = string_copy(host_data, host_len, true);
	size_t pattern_strlen = strlen(pattern);
	size_t host_strlen = strlen(host);
	bool matched = config_pattern_match(pattern, host);

	/* ASCII case does not matter (toupper in the C locale is ASCII only). */
	check(config_pattern_match(pattern, host_upper) == matched);
	if (strcmp(pattern, "*") == 0) {
		check(matched);
	} else if (pattern[0] == '*' && pattern[1] == '.') {
		const char *suffix = pattern + 1; /* ".web.de" */

		check(!config_pattern_match(pattern, suffix));
		check(!config_pattern_match(pattern, suffix + 1));
		if (matched) {
			check(host_strlen > pattern_strlen - 1);
			check(strcasecmp(host + host_strlen - strlen(suffix), suffix) == 0);
		}
	} else if (matched) {
		check(strcasecmp(pattern, host) == 0);
	}
	free(pattern);
	free(host);
	free(host_upper);
}

static void fuzz_host_literal(const uint8_t *data, size_t size)
{
	char *host = string_copy(data, size, false);
	const char *refusal = policy_host_refusal(host);
	struct in_addr read_as;
	bool has_space = false;

	for (const char *p = host; *p != '\0'; p++)
		has_space = has_space || isspace((unsigned char)*p);
	/* inet_aton stops at white space; resolvers do not accept it at all. */
	if (refusal == NULL && !has_space && inet_aton(host, &read_as) != 0) {
		char canonical[INET_ADDRSTRLEN];

		check(inet_ntop(AF_INET, &read_as, canonical, sizeof(canonical)) != NULL);
		check(strcmp(host, canonical) == 0);
	}
	if (refusal != NULL)
		check(strlen(refusal) > 0);
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_ipv4_forms(data + 1, size - 1);
		break;
	case 1:
		fuzz_ipv6(data + 1, size - 1);
		break;
	case 2:
		fuzz_pattern(data + 1, size - 1);
		break;
	default:
		fuzz_host_literal(data + 1, size - 1);
		break;
	}
	return 0;
}
