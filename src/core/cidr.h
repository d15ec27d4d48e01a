/*
 * cidr.h — IP networks written as CIDR ("192.168.1.0/24", "2001:db8::/32"),
 * for the Local Networks (SPEC S2) whose clients may relay without
 * authentication.
 *
 * A network is stored and shown in one canonical text (cidr_format): the
 * address as inet_ntop writes it and always a prefix, so "10.0.0.1" is kept
 * as "10.0.0.1/32" and "2001:DB8:0::/32" as "2001:db8::/32". Parsing is
 * strict, because a Local Network opens the relay: anything that could be
 * read two ways is refused with a sentence saying why, never guessed at.
 */
#ifndef POPGATE_CORE_CIDR_H
#define POPGATE_CORE_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The longest canonical text cidr_format writes, with its NUL
 * (INET6_ADDRSTRLEN 46 + "/128"). */
#define CIDR_TEXT_MAX 51

struct cidr {
	int family;	     /* AF_INET or AF_INET6 */
	uint8_t address[16]; /* network byte order; 4 bytes used for AF_INET */
	unsigned prefix;     /* 0..32 or 0..128 */
};

/*
 * Parses TEXT, "ADDRESS/PREFIX" or a bare ADDRESS (a single host: /32 or
 * /128), into *OUT. Returns 0, or -1 with a sentence in ERR (*OUT zeroed).
 * Refused: anything inet_pton does not read as one address (names, zone ids
 * like "fe80::1%eth0", spaces, empty text); an IPv4 octet with a leading
 * zero ("010.0.0.1" is 8.0.0.1 to some programs and 10.0.0.1 to others); a
 * prefix that is not plain decimal ("+8", "08", " 8") or out of range; host
 * bits set below the prefix ("10.0.0.5/24 has host bits set; the network is
 * 10.0.0.0/24"); and an IPv4-mapped IPv6 network (::ffff:a.b.c.d/96 and
 * longer), which must be written as IPv4 so that it is one network, not two
 * spellings of it.
 */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);

/*
 * True if ADDR (AF_INET or AF_INET6; any other family never matches) lies in
 * NET. An IPv4-mapped IPv6 address (::ffff:10.1.2.3, what a dual-stack
 * listener reports for an IPv4 client) is taken as the IPv4 address it
 * carries: it matches IPv4 networks, and no IPv6 network (not even ::/0).
 */
bool cidr_contains(const struct cidr *net, const struct sockaddr *addr);

/* Writes NET's canonical text into OUT (SIZE bytes, CIDR_TEXT_MAX is always
 * enough; shorter output is cut and NUL-terminated). */
void cidr_format(const struct cidr *net, char *out, size_t size);

#endif
