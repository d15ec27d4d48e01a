/*
 * address.h — the one check of a mail address's shape (local@domain), used
 * for the addresses the administrator assigns to users (store/address.c) and
 * for those read from a message's headers (pipeline/headers.c).
 */
#ifndef POPGATE_CORE_ADDRESS_H
#define POPGATE_CORE_ADDRESS_H

#include <stdbool.h>

/* The longest address RFC 5321 allows, its longest local part, and the
 * longest DNS label. */
#define ADDRESS_MAX 254
#define ADDRESS_LOCAL_MAX 64
#define ADDRESS_LABEL_MAX 63

/*
 * True if ADDRESS is local@domain: one '@'; a dot-atom local part (RFC 5322
 * atext and single inner dots) of at most ADDRESS_LOCAL_MAX characters; a
 * domain of dot-separated labels of [A-Za-z0-9-], none empty, none starting
 * or ending with '-', each at most ADDRESS_LABEL_MAX; at most ADDRESS_MAX in
 * all. No quoted local parts and no address literals: popgate neither makes
 * nor needs them.
 */
bool address_valid(const char *address);

/* True if DOMAIN is such a domain: dot-separated labels of [A-Za-z0-9-], no
 * '-' at a label's ends, no empty label (so no leading, trailing or double
 * dot), at most ADDRESS_MAX in all. */
bool address_domain_valid(const char *domain);

#endif
