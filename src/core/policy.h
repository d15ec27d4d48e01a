/*
 * policy.h — the address policy: which remote addresses popgate may connect
 * to (core/connector applies it to every address a lookup returns), and which
 * host names are refused before any lookup.
 *
 * A provider host comes from the user's account name (and a relay's next hop
 * from a message's recipient), so without this a user could make popgate
 * connect into the office network (or to itself).
 */
#ifndef POPGATE_CORE_POLICY_H
#define POPGATE_CORE_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * True when ADDR is a public unicast address. IPv4: none of the IANA
 * special-purpose blocks that are not globally reachable (0/8, 10/8,
 * 100.64/10, 127/8, 169.254/16, 172.16/12, 192.0.0/24, 192.0.2/24,
 * 192.88.99/24, 192.168/16, 198.18/15, 198.51.100/24, 203.0.113/24), nor
 * multicast, reserved or broadcast (224/4, 240/4). IPv6: only inside
 * 2000::/3, and not 2001::/23 (IETF assignments, Teredo included),
 * 2001:db8::/32 or 3fff::/20 (documentation); addresses that carry an IPv4
 * address (::ffff:0:0/96 mapped, ::ffff:0:0:0/96 translated, 64:ff9b::/96 and
 * 64:ff9b:1::/48 NAT64, 2002::/16 6to4) are judged by that IPv4 address.
 * Other families are not public. Only public addresses are reached unless a
 * host's policy says allow_private = yes.
 */
bool policy_address_public(const struct sockaddr *addr);

/* The same verdict for an IPv4 address in host byte order. */
bool policy_ipv4_public(uint32_t address);

/* The same verdict for an IPv6 address given as its 16 bytes. */
bool policy_ipv6_public(const uint8_t bytes[16]);

/*
 * NULL when HOST may be looked up, else why it is refused: a host whose last
 * label is a number (decimal, octal or 0x hex) is an IPv4 literal and must be
 * a canonical dotted quad, because other software reads 0177.0.0.1, 0x7f.1,
 * 127.1 or 2130706433 as 127.0.0.1 while a resolver may read them otherwise.
 */
const char *policy_host_refusal(const char *host);

#endif
