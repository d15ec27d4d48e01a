/*
 * link.h — the host a link URL names (for the URI blocklist filter,
 * uribl.c): pure string work on hostile text, so the fuzz target reaches it
 * without the rest of the filter.
 */
#ifndef POPGATE_FILTERS_LINK_H
#define POPGATE_FILTERS_LINK_H

#include <stddef.h>

/*
 * Copies the host of URL ("http://", "https://", "ftp://" or a bare
 * "www." link) into HOST (SIZE bytes), lowercased, without user, port,
 * the brackets of an IPv6 literal or a trailing dot. 0, or -1 for a URL of
 * another scheme, without a host, or with one that does not fit. The host
 * is not checked further: the caller decides what a name or address is.
 */
int link_host(const char *url, char *host, size_t size);

#endif
