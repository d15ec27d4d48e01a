/*
 * uribl.h — the "uribl" filter's reading of a link (uribl.c), for its
 * tests and fuzz target.
 */
#ifndef POPGATE_FILTERS_URIBL_H
#define POPGATE_FILTERS_URIBL_H

#include <stddef.h>

/* Distinct link domains of one message asked on the zones. */
#define URIBL_DOMAINS_MAX 20

/*
 * Writes to OUT (SIZE bytes) the name URL's host is asked under: its
 * registrable domain ("example.co.uk" for "http://www.shop.example.co.uk/"),
 * or for a numeric host its address reversed (blocklist.h). 0 for a domain,
 * 1 for an address, -1 for a URL without a web host, a local address, a
 * host that is a public suffix itself or not a valid name. Needs the
 * filter's init (the Public Suffix List) for domains.
 */
int uribl_domain(const char *url, char *out, size_t size);

#endif
