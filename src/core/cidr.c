/*
 * cidr.c — parsing, matching and writing IP networks (see core/cidr.h).
 *
 * Owns: nothing. Must never: read past TEXT's NUL, accept a text that two
 * programs could read as different networks, or match an address of a
 * family it does not know.
 * SECURITY: TEXT comes from the administrator (popgatectl) or from the
 * store; ADDR from the kernel (accept's peer address). A wrong answer here
 * opens the relay, so every doubt is a refusal.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/cidr.h"
#include "core/util.h"

/* The longest address text inet_pton could take, with its NUL. */
#define CIDR_ADDRESS_MAX INET6_ADDRSTRLEN

static const uint8_t cidr_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* True if the first PREFIX bits of A and B are equal. */
static bool cidr_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

/* Clears the bits of ADDRESS (LEN bytes) below PREFIX. */
static void cidr_mask(uint8_t *address, size_t len, unsigned prefix)
{
	for (size_t i = 0; i < len; i++) {
		unsigned keep = prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;

		if (keep >= 8)
			continue;
		address[i] &= (uint8_t)(0xff << (8 - keep));
	}
}

/* Reads PREFIX text: plain decimal, no sign, no leading zero, at most MAX.
 * 0 or -1. */
static int cidr_parse_prefix(const char *text, unsigned max, unsigned *prefix_r)
{
	unsigned value = 0;
	size_t len = strlen(text);

	if (len == 0 || len > 3 || (len > 1 && text[0] == '0'))
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return -1;
		value = value * 10 + (unsigned)(text[i] - '0');
	}
	if (value > max)
		return -1;
	*prefix_r = value;
	return 0;
}

/* True if the IPv4 text TEXT has an octet with a leading zero ("010"). */
static bool cidr_ipv4_leading_zero(const char *text)
{
	for (const char *p = text; *p != '\0'; p++) {
		bool octet_start = p == text || p[-1] == '.';

		if (octet_start && p[0] == '0' && p[1] >= '0' && p[1] <= '9')
			return true;
	}
	return false;
}

int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
	char address[CIDR_ADDRESS_MAX], clean[80], canonical[CIDR_TEXT_MAX];
	const char *slash = strchr(text, '/');
	size_t address_len = slash != NULL ? (size_t)(slash - text) : strlen(text);
	struct cidr net;

	memset(out, 0, sizeof(*out));
	memset(&net, 0, sizeof(net));
	util_sanitize(clean, sizeof(clean), text, strlen(text));
	if (address_len == 0) {
		snprintf(err, errlen,
			 "'%s' is not a network: no address (write it as "
			 "192.168.1.0/24 or 2001:db8::/32)",
			 clean);
		return -1;
	}
	if (address_len >= sizeof(address))
		goto not_an_address;
	memcpy(address, text, address_len);
	address[address_len] = '\0';
	if (inet_pton(AF_INET, address, net.address) == 1) {
		net.family = AF_INET;
	} else if (inet_pton(AF_INET6, address, net.address) == 1) {
		net.family = AF_INET6;
	} else if (strchr(address, ':') == NULL && strspn(address, "0123456789.") == address_len &&
		   cidr_ipv4_leading_zero(address)) {
		snprintf(err, errlen,
			 "'%s' has an IPv4 number with a leading zero, which "
			 "some programs read as octal; write it without",
			 clean);
		return -1;
	} else {
		goto not_an_address;
	}
	unsigned max = net.family == AF_INET ? 32 : 128;
	net.prefix = max;
	if (slash != NULL && cidr_parse_prefix(slash + 1, max, &net.prefix) < 0) {
		snprintf(err, errlen,
			 "'%s' has a bad prefix length: it must be a number from 0 to %u", clean,
			 max);
		return -1;
	}
	if (net.family == AF_INET6 && net.prefix >= 96 &&
	    memcmp(net.address, cidr_mapped_prefix, sizeof(cidr_mapped_prefix)) == 0) {
		struct cidr v4 = {.family = AF_INET, .prefix = net.prefix - 96};

		memcpy(v4.address, net.address + 12, 4);
		cidr_mask(v4.address, 4, v4.prefix);
		cidr_format(&v4, canonical, sizeof(canonical));
		snprintf(err, errlen, "'%s' is an IPv4-mapped IPv6 network; write it as IPv4: %s",
			 clean, canonical);
		return -1;
	}
	struct cidr masked = net;
	cidr_mask(masked.address, sizeof(masked.address), masked.prefix);
	if (memcmp(masked.address, net.address, sizeof(net.address)) != 0) {
		cidr_format(&masked, canonical, sizeof(canonical));
		snprintf(err, errlen, "%s has host bits set; the network is %s", clean, canonical);
		return -1;
	}
	*out = net;
	return 0;

not_an_address:
	snprintf(err, errlen,
		 "'%s' is not a network: write an IPv4 or IPv6 address, optionally "
		 "with a prefix length (192.168.1.0/24, 192.168.1.7, 2001:db8::/32)",
		 clean);
	return -1;
}

bool cidr_contains(const struct cidr *net, const struct sockaddr *addr)
{
	const uint8_t *bytes;
	int family;

	if (addr == NULL)
		return false;
	if (addr->sa_family == AF_INET) {
		family = AF_INET;
		bytes =
		    (const uint8_t *)&((const struct sockaddr_in *)(const void *)addr)->sin_addr;
	} else if (addr->sa_family == AF_INET6) {
		bytes = ((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr.s6_addr;
		family = AF_INET6;
		/* A dual-stack listener's IPv4 client: its IPv4 address decides. */
		if (memcmp(bytes, cidr_mapped_prefix, sizeof(cidr_mapped_prefix)) == 0) {
			family = AF_INET;
			bytes += sizeof(cidr_mapped_prefix);
		}
	} else {
		return false;
	}
	if (family != net->family || net->prefix > (family == AF_INET ? 32u : 128u))
		return false;
	return cidr_prefix_equal(bytes, net->address, net->prefix);
}

void cidr_format(const struct cidr *net, char *out, size_t size)
{
	char address[CIDR_ADDRESS_MAX];

	if (size == 0)
		return;
	if ((net->family != AF_INET && net->family != AF_INET6) ||
	    inet_ntop(net->family, net->address, address, sizeof(address)) == NULL) {
		snprintf(out, size, "?");
		return;
	}
	snprintf(out, size, "%s/%u", address, net->prefix);
}
