/*
 * resolver.c — making popgate's evdns resolver from the configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/resolver.h"
#include "core/util.h"

struct evdns_base *resolver_new(struct event_base *base, const char *nameservers, char *err,
				size_t errlen)
{
	struct evdns_base *dns;
	char *copy, *save = NULL;

	if (nameservers == NULL || *nameservers == '\0') {
		dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if (dns == NULL)
			snprintf(err, errlen, "cannot set up the resolver from /etc/resolv.conf");
		return dns;
	}
	dns = evdns_base_new(base, 0);
	if (dns == NULL) {
		snprintf(err, errlen, "cannot set up the resolver");
		return NULL;
	}
	copy = xstrdup(nameservers);
	for (char *item = strtok_r(copy, " ,", &save); item != NULL;
	     item = strtok_r(NULL, " ,", &save)) {
		if (evdns_base_nameserver_ip_add(dns, item) != 0) {
			snprintf(err, errlen, "cannot use the name server %s", item);
			free(copy);
			evdns_base_free(dns, 0);
			return NULL;
		}
	}
	free(copy);
	/* Names such as localhost still come from the hosts file. */
	evdns_base_load_hosts(dns, NULL);
	return dns;
}
