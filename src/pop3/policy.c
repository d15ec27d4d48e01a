/*
 * policy.c — classifying provider addresses as public or not (policy.h).
 *
 * SECURITY: this is the check that keeps user-chosen provider hosts from
 * reaching loopback, private or link-local networks. It must err on the side
 * of "not public".
 *
 * The socket address is copied into a typed struct with memcpy, never read
 * through a pointer cast to another sockaddr type: such a cast breaks C's
 * aliasing rules, and at -O2 the compiler judged ::ffff:212.227.17.1 by bytes
 * it had not yet written.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>

#include "pop3/policy.h"

static bool policy_ipv4_public(uint32_t a)
{
	if ((a >> 24) == 0 || (a >> 24) == 10 || (a >> 24) == 127)
		return false;
	if ((a >> 20) == (172u << 4 | 1))	/* 172.16.0.0/12 */
		return false;
	if ((a >> 16) == (192u << 8 | 168))	/* 192.168.0.0/16 */
		return false;
	if ((a >> 16) == (169u << 8 | 254))	/* 169.254.0.0/16 */
		return false;
	if ((a >> 22) == (100u << 2 | 1))	/* 100.64.0.0/10 */
		return false;
	if ((a >> 28) >= 14)			/* multicast, reserved */
		return false;
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

		memcpy(&v6, addr, sizeof(v6));
		const struct in6_addr *a6 = &v6.sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6) || IN6_IS_ADDR_V4COMPAT(a6)) {
			uint32_t a;
			memcpy(&a, &a6->s6_addr[12], 4);
			return policy_ipv4_public(ntohl(a));
		}
		if (IN6_IS_ADDR_UNSPECIFIED(a6) || IN6_IS_ADDR_LOOPBACK(a6) ||
		    IN6_IS_ADDR_LINKLOCAL(a6) || IN6_IS_ADDR_SITELOCAL(a6) ||
		    IN6_IS_ADDR_MULTICAST(a6))
			return false;
		if ((a6->s6_addr[0] & 0xfe) == 0xfc) /* fc00::/7 unique local */
			return false;
		return true;
	}
	return false;
}

