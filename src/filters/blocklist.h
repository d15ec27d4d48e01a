/*
 * blocklist.h — what the DNS blocklist filters share (dnsbl.c on the
 * hand-off address, uribl.c on the link domains): the zones of a [spam]
 * setting, the name an address is asked under, and one question to one
 * zone read the way blocklists answer.
 *
 * A blocklist answers a listed name with an A record in 127.0.0.0/8, the
 * last octets saying why (127.0.0.2 ...); a name it does not list does not
 * exist (NXDOMAIN). 127.255.255.0/24 is Spamhaus's "query refused" (a
 * public resolver, a quota): no evidence either way, as is an answer
 * outside 127/8 (a resolver that rewrites NXDOMAIN to an address of its
 * own) and no answer in time.
 */
#ifndef POPGATE_FILTERS_BLOCKLIST_H
#define POPGATE_FILTERS_BLOCKLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/dns.h"
#include "filters/filter.h"

/* Zones asked per filter; more in the setting are left out. */
#define BLOCKLIST_ZONES_MAX 8

/* The zones of a setting: host names, lowercased, without trailing dots. */
struct blocklist_zones {
	char names[BLOCKLIST_ZONES_MAX][FILTER_DNS_NAME_MAX + 1];
	size_t count;
};

/* Reads the [spam] setting KEY (zones separated by spaces or commas) into
 * ZONES; names that are not valid DNS names are left out. */
void blocklist_zones_read(const char *key, struct blocklist_zones *zones);

/*
 * Writes the name blocklists list ADDRESS (IPv4 or IPv6 text) under: the
 * IPv4 octets reversed ("2.0.0.127"), or the 32 IPv6 nibbles reversed
 * ("1.0.0...8.b.d.0.1.0.0.2"), without a zone. 0, or -1 when ADDRESS is
 * not an address or SIZE (73 is enough) too small.
 */
int blocklist_reverse(const char *address, char *out, size_t size);

/* True for an address no blocklist lists and whose question would only
 * tell a public server about the local network: private (RFC 1918, RFC
 * 6598, fc00::/7), loopback, link-local, unspecified. False for anything
 * that is not an address. */
bool blocklist_address_local(const char *address);

enum blocklist_verdict {
	BLOCKLIST_CLEAN,      /* not listed */
	BLOCKLIST_LISTED,     /* listed; the code says why */
	BLOCKLIST_REFUSED,    /* the zone refused to say (127.255.255.x), or
			       * answered outside 127/8 */
	BLOCKLIST_UNANSWERED, /* no answer in time, or a failure */
};

/*
 * Asks ZONE about NAME (the reversed address or a domain) for MESSAGE:
 * NAME.ZONE, type A. For LISTED, CODE (16 bytes) is the first 127.x
 * answer; for UNANSWERED, the words for why ("timeout", "failed").
 */
enum blocklist_verdict blocklist_ask(const struct filter_message *message, const char *name,
				     const char *zone, char code[16]);

/* Appends to REASON (PROTO_REASON_MAX + 1 bytes, *USED of them used) what
 * FORMAT says, cut at the end of the room. */
void blocklist_reason_append(char *reason, size_t *used, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

#endif
