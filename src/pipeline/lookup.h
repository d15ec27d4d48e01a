/*
 * lookup.h — the filters' DNS questions answered by popgate's resolver
 * (core/resolver.h): the records of a resolver answer turned into the text
 * filters read (filters/dns.h), for the main process, which answers its
 * workers' query frames (pipeline.c); and an answerer of its own for
 * popgatectl filter check, which drives a resolver on a private event loop
 * until each answer comes.
 */
#ifndef POPGATE_PIPELINE_LOOKUP_H
#define POPGATE_PIPELINE_LOOKUP_H

#include <stddef.h>

#include "core/resolver.h"
#include "filters/dns.h"

/*
 * Fills ANSWER (zeroed first; free with filter_dns_answer_clear) from the
 * resolver's FROM: its status, and for OK the records as text (A and AAAA
 * as the address, TXT its strings joined, MX "PREFERENCE EXCHANGE", PTR
 * the name). A record longer than FILTER_DNS_RECORD_MAX or not printable
 * ASCII, and those past FILTER_DNS_RECORDS_MAX, are left out.
 */
void lookup_answer_fill(const struct resolver_answer *from, struct filter_dns_answer *answer);

/* The filter status of a resolver status. */
enum filter_dns_status lookup_status(enum resolver_status status);

/*
 * An answerer (struct filter_dns) with a resolver of its own for
 * NAMESERVERS (as [server] nameservers; NULL or "" for /etc/resolv.conf),
 * which waits for each answer on a private event loop, at most the
 * question's time. NULL with ERR set.
 */
struct filter_dns *lookup_local_new(const char *nameservers, char *err, size_t errlen);

/* Frees *DNS (NULL is fine) and sets it to NULL. */
void lookup_local_free(struct filter_dns **dns);

#endif
