/*
 * policy.c — classifying provider addresses as public or not (policy.h).
 *
 * SECURITY: this is the check that keeps user-chosen provider hosts from
 * reaching loopback, private or link-local networks. It must err on the side
 * of "not public".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "pop3/policy.h"

bool policy_address_public(const struct sockaddr *addr)
{
	if (addr->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
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
	if (addr->sa_family == AF_INET6) {
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *)addr)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6) || IN6_IS_ADDR_V4COMPAT(a6)) {
			struct sockaddr_in v4 = {.sin_family = AF_INET};
			memcpy(&v4.sin_addr, &a6->s6_addr[12], 4);
			return policy_address_public((const struct sockaddr *)&v4);
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

