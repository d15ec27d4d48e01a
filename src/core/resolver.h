/*
 * resolver.h — the evdns resolver popgate looks provider hosts up with: the
 * system's name servers (resolv.conf), or those of [server] nameservers,
 * with /etc/hosts either way.
 */
#ifndef POPGATE_RESOLVER_H
#define POPGATE_RESOLVER_H

#include <stddef.h>

#include <event2/dns.h>
#include <event2/event.h>

/* A resolver on BASE for NAMESERVERS ("IP[:PORT]" items separated by spaces
 * or commas; NULL or "" for the system's). NULL with a message in ERR. */
struct evdns_base *resolver_new(struct event_base *base, const char *nameservers, char *err,
				size_t errlen);

#endif
