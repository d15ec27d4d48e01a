/*
 * address.c — the address filter (U4, U5): the sender and recipient
 * addresses the message's header names, so the main process can attribute
 * the message to the users who own them. Parsed here, in the worker,
 * because the header is hostile; the main process only looks the results
 * up. It never scores.
 *
 * Owns: nothing (the addresses it hands out belong to the verdict).
 */
#include <stdlib.h>

#include "core/util.h"
#include "filters/filter.h"
#include "pipeline/headers.h"
#include "pipeline/pipeline.h"

static int address_run(const struct filter_message *message, struct pipeline_result *result,
		       struct pipeline_verdict *verdict)
{
	const char *sender;
	const char *const *recipients;
	size_t count = headers_finish(message->headers, &sender, &recipients);

	(void)result;
	if (sender != NULL && verdict->sender == NULL)
		verdict->sender = xstrdup(sender);
	if (count > 0 && verdict->recipient_count == 0) {
		verdict->recipients = xcalloc(count, sizeof(*verdict->recipients));
		for (size_t i = 0; i < count; i++)
			verdict->recipients[i] = xstrdup(recipients[i]);
		verdict->recipient_count = count;
	}
	return 0;
}

const struct filter filter_address = {
    .name = "address",
    .init = NULL,
    .run = address_run,
};
