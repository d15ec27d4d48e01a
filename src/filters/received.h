/*
 * received.h — the Received chain of a message (RFC 5321 4.4, RFC 5322
 * 3.6.7) and the hand-off found in it: the host that delivered the message
 * to the provider, which the DNS blocklists and SPF judge
 * (struct filter_handoff in filters/filter.h).
 *
 * The walk starts at the top field (the newest hop, written by the
 * provider's last host) and goes down while the client of a hop is one of
 * the provider's own hosts: an internal address (loopback, private,
 * link-local, shared), a reverse name under the provider's registrable
 * domain (pop.gmx.net: gmx.net; gmx.de is not implied), or a trusted relay
 * of [spam] trusted_relays. The client of the first hop that is not the
 * provider's own is the hand-off. Everything below it was written by the
 * sender or by hosts the provider does not vouch for, so it is never read.
 *
 * trusted_relays is a list of items separated by blanks or commas; an item
 * is ENTRY (trusted for every provider) or PROVIDERHOST:ENTRY (only for mail
 * fetched from PROVIDERHOST, compared without case), where ENTRY is a
 * network in CIDR ("203.0.113.0/24", "2001:db8::/32", a bare address is
 * one host) or a domain ("example-relays.com": that host and every host
 * below it, matched against the reverse name the provider recorded). An
 * item that as a whole is a network ("2001:db8::/32") is one; otherwise the
 * text before its first ':' is the provider host.
 *
 * HELO names are never trusted: the client chooses them. GMX and web.de
 * record no reverse name for their own relays, so their networks must be
 * listed as CIDR entries.
 *
 * SECURITY: a message's header block is hostile. Parsing is bounded (at
 * most RECEIVED_FIELD_MAX fields, each cut at RECEIVED_FIELD_LEN bytes),
 * never reads past the block, and keeps only printable name characters.
 */
#ifndef POPGATE_FILTERS_RECEIVED_H
#define POPGATE_FILTERS_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>

#include "filters/filter.h"

/* Received fields read from the top; hops below are not looked at. */
#define RECEIVED_FIELD_MAX 64
/* Bytes of one unfolded Received field kept; the rest is not parsed. */
#define RECEIVED_FIELD_LEN 2048

/* What one Received field says of its hop. */
struct received_hop {
	bool has_from;	   /* the field has a from clause */
	char address[64];  /* the client's address (inet_ntop's text), or "" */
	char helo[256];	   /* the name the client gave, or "" */
	char reverse[256]; /* the client's reverse name the receiver found, or "" */
	char by[256];	   /* the receiving host, or "" */
};

/* Reads the Received fields of a message's header block, top first. */
struct received_reader {
	const char *next; /* the start of the next line */
	const char *end;  /* the end of the message (the block ends earlier) */
	size_t count;	  /* Received fields returned so far */
};

/* Starts reading MESSAGE (LEN bytes; CRLF or LF line ends). */
void received_reader_init(struct received_reader *reader, const char *message, size_t len);

/* The next Received field into *HOP: 1, or 0 at the end of the header block
 * or after RECEIVED_FIELD_MAX fields. */
int received_reader_next(struct received_reader *reader, struct received_hop *hop);

/* Parses VALUE (LEN bytes, an unfolded Received field after its colon) into
 * *HOP. Anything it does not understand leaves the parts empty. */
void received_hop_parse(const char *value, size_t len, struct received_hop *hop);

/* Checks TEXT as a trusted_relays value: 0, or -1 with a sentence in ERR
 * naming the item it cannot read. */
int received_relays_check(const char *text, char *err, size_t errlen);

/*
 * Finds the hand-off of MESSAGE (LEN bytes) fetched from PROVIDER_HOST ("-"
 * or NULL: none; then only internal addresses and the trusted relays
 * without a provider prefix are trusted), with TRUSTED_RELAYS (NULL: none)
 * as above, into *HANDOFF. found is false when there is no Received field,
 * when every hop is the provider's own, or when the first hop that is not
 * has no address to read.
 */
void received_handoff_find(const char *message, size_t len, const char *provider_host,
			   const char *trusted_relays, struct filter_handoff *handoff);

#endif
