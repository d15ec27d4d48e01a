/*
 * message.c — a message's MIME parsed once for all the filters (message.h).
 *
 * Owns: the scratch parse of messages without a cache. Must never: hand out
 * a parse of another message than the one asked about.
 */
#include <string.h>

#include "filters/message.h"

const struct mime_message *filter_message_mime(const struct filter_message *message)
{
	static struct filter_mime scratch;

	if (message->mime == NULL) {
		filter_mime_clear(&scratch);
		mime_parse(message->body, message->body_len, &scratch.message);
		scratch.parsed = true;
		return &scratch.message;
	}
	if (!message->mime->parsed) {
		mime_parse(message->body, message->body_len, &message->mime->message);
		message->mime->parsed = true;
	}
	return &message->mime->message;
}

void filter_mime_clear(struct filter_mime *mime)
{
	if (mime->parsed)
		mime_message_free(&mime->message);
	memset(mime, 0, sizeof(*mime));
}
