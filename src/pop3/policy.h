/*
 * policy.h — which provider addresses popgate may connect to.
 *
 * The provider host comes from the user's account name, so without this a
 * user could make popgate connect into the office network (or to itself).
 */
#ifndef POPGATE_POP3_POLICY_H
#define POPGATE_POP3_POLICY_H

#include <stdbool.h>
#include <sys/socket.h>

/*
 * True when ADDR is a public unicast address: not loopback, private (RFC 1918,
 * 100.64/10 shared, fc00::/7 unique local, fec0::/10 site-local), link-local,
 * unspecified, multicast or reserved; IPv4-mapped IPv6 addresses are judged by
 * their IPv4 part. Only such addresses are reached unless a host's policy says
 * allow_private = yes.
 */
bool policy_address_public(const struct sockaddr *addr);

#endif
