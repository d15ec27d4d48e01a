/*
 * dnsbl.c — the "dnsbl" filter: the hand-off address (the host that gave
 * the message to the provider, filter.h) asked on the DNS blocklists of
 * [spam] dnsbl_zones (blocklist.h). One point for each zone that lists it;
 * the reason names each zone and its code ("listed in zen.example
 * (127.0.0.2)"). A zone that does not answer in time, or refuses to
 * (127.255.255.x), counts nothing and is named in the reason.
 *
 * Owns: nothing. Must never: ask about a private or loopback address (no
 * blocklist lists one, and the question would tell a public server about
 * the local network), or hold a message because a zone does not answer.
 */
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "filters/blocklist.h"
#include "filters/filter.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

static int dnsbl_run(const struct filter_message *message, struct pipeline_result *result,
		     struct pipeline_verdict *verdict)
{
	const struct filter_handoff *handoff = &message->handoff;
	struct blocklist_zones zones;
	char reason[PROTO_REASON_MAX + 1] = "";
	char unanswered[PROTO_REASON_MAX + 1] = "";
	char reversed[80];
	size_t used = 0;
	size_t unanswered_used = 0;
	unsigned listed = 0;

	(void)verdict;
	result->score = 0;
	blocklist_zones_read("dnsbl_zones", &zones);
	if (zones.count == 0) {
		result->reason = xstrdup("no zones ([spam] dnsbl_zones)");
		return 0;
	}
	if (!handoff->found) {
		result->reason = xstrdup("no hand-off address found");
		return 0;
	}
	if (blocklist_address_local(handoff->address)) {
		result->reason =
		    xasprintf("hand-off %s is a local address: not asked", handoff->address);
		return 0;
	}
	if (blocklist_reverse(handoff->address, reversed, sizeof(reversed)) < 0) {
		result->reason = xstrdup("the hand-off address is not an address");
		return -1;
	}
	for (size_t i = 0; i < zones.count; i++) {
		char code[16];

		switch (blocklist_ask(message, reversed, zones.names[i], code)) {
		case BLOCKLIST_CLEAN:
			break;
		case BLOCKLIST_LISTED:
			blocklist_reason_append(reason, &used, "%s%s (%s)", listed == 0 ? "listed in " : ", ",
				     zones.names[i], code);
			listed++;
			break;
		case BLOCKLIST_REFUSED:
			blocklist_reason_append(unanswered, &unanswered_used, "%s%s refused (%s)",
				     unanswered_used == 0 ? "" : ", ", zones.names[i], code);
			break;
		case BLOCKLIST_UNANSWERED:
			blocklist_reason_append(unanswered, &unanswered_used, "%s%s %s",
				     unanswered_used == 0 ? "" : ", ", zones.names[i], code);
			break;
		}
	}
	if (listed == 0)
		blocklist_reason_append(reason, &used, "%s not listed", handoff->address);
	if (unanswered_used > 0)
		blocklist_reason_append(reason, &used, "; no answer: %s", unanswered);
	result->score = (double)listed;
	result->reason = xstrdup(reason);
	return 0;
}

const struct filter filter_dnsbl = {
    .name = "dnsbl",
    .init = NULL,
    .run = dnsbl_run,
};
