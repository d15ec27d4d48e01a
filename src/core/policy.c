/*
 * policy.c — classifying remote addresses as public or not, and refusing
 * host names that are ambiguous IPv4 literals (policy.h).
 *
 * SECURITY: this is the check that keeps user-chosen hosts (providers) from
 * reaching loopback, private, link-local or otherwise special networks. It
 * must err on the side of "not public": IPv6 is public only inside the global
 * unicast block 2000::/3, and every form that carries an IPv4 address
 * (mapped, translated, NAT64, 6to4) is judged by that IPv4 address.
 *
 * The socket address is copied into a typed struct with memcpy, never read
 * through a pointer cast to another sockaddr type: such a cast breaks C's
 * aliasing rules, and at -O2 the compiler once judged ::ffff:212.227.17.1 by
 * bytes it had not yet written.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/policy.h"

/* A block of addresses: the first PREFIX_LEN bits of PREFIX. */
struct policy_v4_block {
	uint32_t prefix;
	unsigned prefix_len;
};

#define V4(a, b, c, d)                                                                             \
	((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

/* The IANA IPv4 special-purpose registry, the blocks not globally reachable
 * (and multicast, reserved and broadcast). */
static const struct policy_v4_block policy_v4_blocked[] = {
    {V4(0, 0, 0, 0), 8},       /* "this network" */
    {V4(10, 0, 0, 0), 8},      /* private */
    {V4(100, 64, 0, 0), 10},   /* shared address space (CGN) */
    {V4(127, 0, 0, 0), 8},     /* loopback */
    {V4(169, 254, 0, 0), 16},  /* link-local */
    {V4(172, 16, 0, 0), 12},   /* private */
    {V4(192, 0, 0, 0), 24},    /* IETF protocol assignments */
    {V4(192, 0, 2, 0), 24},    /* documentation TEST-NET-1 */
    {V4(192, 88, 99, 0), 24},  /* 6to4 relay anycast (deprecated) */
    {V4(192, 168, 0, 0), 16},  /* private */
    {V4(198, 18, 0, 0), 15},   /* benchmarking */
    {V4(198, 51, 100, 0), 24}, /* documentation TEST-NET-2 */
    {V4(203, 0, 113, 0), 24},  /* documentation TEST-NET-3 */
    {V4(224, 0, 0, 0), 4},     /* multicast */
    {V4(240, 0, 0, 0), 4},     /* reserved, and 255.255.255.255 broadcast */
};

/* An IPv6 block: the first PREFIX_LEN bits of PREFIX. */
struct policy_v6_block {
	uint8_t prefix[16];
	unsigned prefix_len;
};

/* The IANA IPv6 special-purpose blocks inside 2000::/3 (everything outside
 * it is refused anyway) that are not globally reachable. */
static const struct policy_v6_block policy_v6_blocked[] = {
    {{0x20, 0x01, 0x00, 0x00}, 23}, /* IETF protocol assignments, Teredo too */
    {{0x20, 0x01, 0x0d, 0xb8}, 32}, /* documentation */
    {{0x3f, 0xff, 0x00, 0x00}, 20}, /* documentation */
};

bool policy_ipv4_public(uint32_t address)
{
	for (size_t i = 0; i < sizeof(policy_v4_blocked) / sizeof(policy_v4_blocked[0]); i++) {
		const struct policy_v4_block *block = &policy_v4_blocked[i];
		uint32_t mask = ~(uint32_t)0 << (32 - block->prefix_len);

		if ((address & mask) == block->prefix)
			return false;
	}
	return true;
}

/* True when the first PREFIX_LEN bits of BYTES equal those of PREFIX. */
static bool policy_v6_in_block(const uint8_t bytes[16], const uint8_t prefix[16],
			       unsigned prefix_len)
{
	unsigned whole = prefix_len / 8;
	unsigned rest = prefix_len % 8;

	if (memcmp(bytes, prefix, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (bytes[whole] & mask) == (prefix[whole] & mask);
}

/* The IPv4 address in BYTES[AT..AT+3], in host order. */
static uint32_t policy_v4_at(const uint8_t bytes[16], size_t at)
{
	return (uint32_t)bytes[at] << 24 | (uint32_t)bytes[at + 1] << 16 |
	       (uint32_t)bytes[at + 2] << 8 | (uint32_t)bytes[at + 3];
}

/* True when BYTES[FROM..TO-1] are all zero. */
static bool policy_v6_zero(const uint8_t bytes[16], size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		if (bytes[i] != 0)
			return false;
	}
	return true;
}

bool policy_ipv6_public(const uint8_t bytes[16])
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t nat64_local[6] = {0, 0x64, 0xff, 0x9b, 0, 0x01};

	/* ::ffff:0:0/96 mapped, ::ffff:0:0:0/96 translated, 64:ff9b::/96 NAT64:
	 * the packet goes to the IPv4 address in the last 32 bits. */
	if (memcmp(bytes, mapped, 12) == 0 || memcmp(bytes, translated, 12) == 0 ||
	    memcmp(bytes, nat64, 12) == 0)
		return policy_ipv4_public(policy_v4_at(bytes, 12));
	/* 64:ff9b:1::/48, local-use NAT64 (RFC 8215): judged by the last 32 bits
	 * when laid out as a /96 (bits 48-95 zero); any other layout hides the
	 * IPv4 address elsewhere, so it is not public. */
	if (memcmp(bytes, nat64_local, 6) == 0)
		return policy_v6_zero(bytes, 6, 12) && policy_ipv4_public(policy_v4_at(bytes, 12));
	/* 2002::/16, 6to4: the relay delivers to the IPv4 address in bits 16-47. */
	if (bytes[0] == 0x20 && bytes[1] == 0x02)
		return policy_ipv4_public(policy_v4_at(bytes, 2));
	/* Outside 2000::/3 nothing is global unicast: ::/128, ::1, the rest of
	 * ::/8, 100::/64 discard, 5f00::/16 SRv6, fc00::/7 unique local,
	 * fe80::/10 link-local, fec0::/10 site-local, ff00::/8 multicast. */
	if ((bytes[0] & 0xe0) != 0x20)
		return false;
	/* Teredo (2001::/32) falls in 2001::/23 and is refused outright: it is a
	 * client-side tunnel, never a mail provider's address, and its embedded
	 * server and client addresses could point anywhere. */
	for (size_t i = 0; i < sizeof(policy_v6_blocked) / sizeof(policy_v6_blocked[0]); i++) {
		if (policy_v6_in_block(bytes, policy_v6_blocked[i].prefix,
				       policy_v6_blocked[i].prefix_len))
			return false;
	}
	return true;
}

bool policy_address_public(const struct sockaddr *addr)
{
	sa_family_t family;

	memcpy(&family, (const char *)addr + offsetof(struct sockaddr, sa_family), sizeof(family));
	if (family == AF_INET) {
		struct sockaddr_in v4;

		memcpy(&v4, addr, sizeof(v4));
		return policy_ipv4_public(ntohl(v4.sin_addr.s_addr));
	}
	if (family == AF_INET6) {
		struct sockaddr_in6 v6;
		uint8_t bytes[16];

		memcpy(&v6, addr, sizeof(v6));
		memcpy(bytes, &v6.sin6_addr, sizeof(bytes));
		return policy_ipv6_public(bytes);
	}
	return false;
}

/* True when LABEL[0..LEN-1] reads as a number to inet_aton or a URL parser:
 * decimal (octal with a leading 0) or 0x-prefixed hex, "0x" alone included. */
static bool policy_label_numeric(const char *label, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return false;
	if (len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
		for (i = 2; i < len; i++) {
			if (!isxdigit((unsigned char)label[i]))
				return false;
		}
		return true;
	}
	for (; i < len; i++) {
		if (!isdigit((unsigned char)label[i]))
			return false;
	}
	return true;
}

/* True when HOST is a.b.c.d, each part 0-255 in decimal without leading
 * zeros. */
static bool policy_dotted_quad(const char *host)
{
	const char *p = host;

	for (int part = 0; part < 4; part++) {
		unsigned value = 0;
		size_t digits = 0;

		while (isdigit((unsigned char)p[digits])) {
			value = value * 10 + (unsigned)(p[digits] - '0');
			if (++digits > 3)
				return false;
		}
		if (digits == 0 || value > 255 || (digits > 1 && p[0] == '0'))
			return false;
		p += digits;
		if (part < 3) {
			if (*p != '.')
				return false;
			p++;
		}
	}
	return *p == '\0';
}

const char *policy_host_refusal(const char *host)
{
	size_t len = strlen(host);
	const char *last;

	if (memchr(host, ':', len) != NULL)
		return NULL; /* an IPv6 literal: inet_pton has one reading only */
	/* The last label decides, as in the URL standard: a name whose last
	 * label is a number is an IPv4 literal (no top-level domain is
	 * numeric). One trailing dot is looked through. */
	if (len > 0 && host[len - 1] == '.')
		len--;
	last = host + len;
	while (last > host && last[-1] != '.')
		last--;
	if (!policy_label_numeric(last, (size_t)(host + len - last)))
		return NULL;
	if (policy_dotted_quad(host))
		return NULL;
	return "an IPv4 address must be written as a canonical dotted quad a.b.c.d (no octal, "
	       "hex, leading zeros, short forms or trailing dot)";
}
