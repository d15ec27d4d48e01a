/*
 * uribl.c — the "uribl" filter: the domains of a message's links (the
 * text and HTML parts' URLs, filters/mime.h) reduced to the domain one
 * registers (libpsl and the Public Suffix List: "www.shop.example.co.uk"
 * is "example.co.uk"), asked on the URI blocklists of [spam] uribl_zones
 * (blocklist.h); a link to a numeric host is asked as its address,
 * reversed, as DNS blocklists list addresses. One point for each listed
 * domain; the reason names them with the zone and code. At most
 * URIBL_DOMAINS_MAX distinct domains of a message are asked.
 *
 * Owns: the Public Suffix List, loaded by the filter's init (before the
 * worker confines itself: libpsl reads it by name). Must never: ask a name
 * it has not checked, or hold a message because a zone does not answer.
 *
 * SECURITY: the URLs come from hostile mail: each host is cut out within
 * its bounds, lowercased, and asked only as a valid DNS name.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpsl.h>

#include "core/util.h"
#include "filters/blocklist.h"
#include "filters/filter.h"
#include "filters/message.h"
#include "filters/link.h"
#include "filters/mime.h"
#include "filters/uribl.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

/* The Public Suffix List, loaded once per process. */
static psl_ctx_t *uribl_psl;

/* Loads GMime and the Public Suffix List, once. 0, or -1 when there is no
 * list. */
static int uribl_load(void)
{
	mime_init();
	if (uribl_psl == NULL)
		uribl_psl = psl_latest(NULL);
	if (uribl_psl == NULL)
		uribl_psl = (psl_ctx_t *)psl_builtin();
	return uribl_psl != NULL ? 0 : -1;
}

/* In a worker, before it confines itself. popgatectl filter check runs no
 * inits: the run loads what it needs there, unconfined. */
static int uribl_init(char *err, size_t errlen)
{
	if (uribl_load() < 0) {
		snprintf(err, errlen, "uribl: cannot load the Public Suffix List");
		return -1;
	}
	return 0;
}

int uribl_domain(const char *url, char *out, size_t size)
{
	char host[FILTER_DNS_NAME_MAX + 2];
	const char *domain;
	unsigned char address[16];

	if (link_host(url, host, sizeof(host)) < 0)
		return -1;
	if (inet_pton(AF_INET, host, address) == 1 || inet_pton(AF_INET6, host, address) == 1) {
		if (blocklist_address_local(host))
			return -1;
		return blocklist_reverse(host, out, size) < 0 ? -1 : 1;
	}
	if (!filter_dns_name_valid(host) || uribl_psl == NULL)
		return -1;
	domain = psl_registrable_domain(uribl_psl, host);
	if (domain == NULL || strlen(domain) >= size)
		return -1;
	strcpy(out, domain);
	return 0;
}

static int uribl_run(const struct filter_message *message, struct pipeline_result *result,
		     struct pipeline_verdict *verdict)
{
	struct blocklist_zones zones;
	const struct mime_message *mime;
	/* Each distinct domain: the name asked (the reversed address for a
	 * numeric host) and what the reason calls it (the host as written). */
	struct {
		char name[FILTER_DNS_NAME_MAX + 1];
		char label[FILTER_DNS_NAME_MAX + 2];
	} asked[URIBL_DOMAINS_MAX];
	size_t asked_count = 0;
	char reason[PROTO_REASON_MAX + 1] = "";
	char unanswered[PROTO_REASON_MAX + 1] = "";
	size_t used = 0;
	size_t unanswered_used = 0;
	unsigned listed = 0;

	(void)verdict;
	blocklist_zones_read("uribl_zones", &zones);
	if (zones.count == 0) {
		result->reason = xstrdup("no zones ([spam] uribl_zones)");
		return 0;
	}
	if (uribl_load() < 0) {
		result->reason = xstrdup("no Public Suffix List");
		return -1;
	}
	mime = filter_message_mime(message);
	for (size_t i = 0; i < mime->urls.count && asked_count < URIBL_DOMAINS_MAX; i++) {
		char *name = asked[asked_count].name;
		char *label = asked[asked_count].label;
		int kind = uribl_domain(mime->urls.items[i], name, sizeof(asked[0].name));
		bool seen = false;

		if (kind < 0)
			continue;
		for (size_t j = 0; j < asked_count && !seen; j++)
			seen = strcmp(asked[j].name, name) == 0;
		if (seen)
			continue;
		if (kind == 0)
			strcpy(label, name);
		else if (link_host(mime->urls.items[i], label, sizeof(asked[0].label)) < 0)
			continue;
		asked_count++;
	}
	for (size_t d = 0; d < asked_count; d++) {
		bool domain_listed = false;

		for (size_t z = 0; z < zones.count && !domain_listed; z++) {
			char code[16];

			switch (blocklist_ask(message, asked[d].name, zones.names[z], code)) {
			case BLOCKLIST_CLEAN:
				break;
			case BLOCKLIST_LISTED:
				blocklist_reason_append(reason, &used, "%s%s (%s %s)",
					     listed == 0 ? "listed: " : ", ", asked[d].label,
					     zones.names[z], code);
				domain_listed = true;
				listed++;
				break;
			case BLOCKLIST_REFUSED:
			case BLOCKLIST_UNANSWERED:
				/* Named once per zone: a zone that does not answer
				 * one domain rarely answers the next. */
				if (strstr(unanswered, zones.names[z]) == NULL)
					blocklist_reason_append(unanswered, &unanswered_used, "%s%s %s",
						     unanswered_used == 0 ? "" : ", ",
						     zones.names[z], code);
				break;
			}
		}
	}
	if (listed == 0)
		blocklist_reason_append(reason, &used, "%zu link domain%s, none listed", asked_count,
			     asked_count == 1 ? "" : "s");
	if (unanswered_used > 0)
		blocklist_reason_append(reason, &used, "; no answer: %s", unanswered);
	result->score = (double)listed;
	result->reason = xstrdup(reason);
	return 0;
}

const struct filter filter_uribl = {
    .name = "uribl",
    .init = uribl_init,
    .run = uribl_run,
};
