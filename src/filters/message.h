/*
 * message.h — what the filters share of one message: its MIME, parsed once
 * (GMime is the larger part of a content filter's time) for every filter of
 * the chain that reads it: bayes, rules, fuzzy, uribl.
 *
 * The worker gives each job a zeroed struct filter_mime and clears it after
 * the verdict; filter_message_mime parses on the first call and hands the
 * same parse to the later ones.
 */
#ifndef POPGATE_FILTERS_MESSAGE_H
#define POPGATE_FILTERS_MESSAGE_H

#include <stdbool.h>

#include "filters/filter.h"
#include "filters/mime.h"

struct filter_mime {
	bool parsed;
	struct mime_message message;
};

/*
 * MESSAGE's body parsed by mime_parse, read-only, valid until its cache is
 * cleared. A message without a cache (a unit test's) gets a parse that lives
 * until the next such call.
 */
const struct mime_message *filter_message_mime(const struct filter_message *message);

/* Frees the parse MIME holds, if any, and zeroes it. */
void filter_mime_clear(struct filter_mime *mime);

#endif
