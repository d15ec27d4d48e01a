/*
 * fuzz_depot_extract.c — libFuzzer target for depot_extract
 * (depot/extract.c): what MailDepot indexes of a message, taken from hostile
 * bytes in the worker, office documents (zip) included.
 *
 * Owns: nothing. Must never: accept fields beyond depot.h's bounds. Beyond
 * the sanitizers it checks and aborts on a violation: every string valid
 * UTF-8 within its bound, one-line values without control characters, the
 * texts without controls but tab and newline, no empty address or name,
 * the counts within their limits, a date not negative; and a second
 * extraction of the same bytes gives the same fields (the depot relies on
 * it to remove what it indexed).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "depot/depot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts unless S (NULL when NULLABLE) is valid UTF-8 of at most MAX bytes
 * (at least one unless EMPTY_OK) without controls but, when MULTILINE, tab
 * and newline. */
static void fuzz_check(const char *s, size_t max, bool nullable, bool empty_ok, bool multiline)
{
	size_t len;

	if (s == NULL) {
		if (!nullable)
			abort();
		return;
	}
	len = strlen(s);
	if (len > max || (len == 0 && !empty_ok) || !g_utf8_validate(s, (gssize)len, NULL))
		abort();
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 || c == 0x7f) && !(multiline && (c == '\n' || c == '\t')))
			abort();
	}
}

static void fuzz_same(const char *a, const char *b)
{
	if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct depot_fields f;
	struct depot_fields again;
	char err[256];

	if (depot_extract((const char *)data, size, &f, err, sizeof(err)) < 0)
		abort();
	fuzz_check(f.sender, DEPOT_ADDRESS_MAX, true, false, false);
	fuzz_check(f.subject, DEPOT_LINE_MAX, true, true, false);
	fuzz_check(f.message_id, DEPOT_LINE_MAX, true, false, false);
	fuzz_check(f.headers, DEPOT_HEADERS_MAX, false, true, true);
	fuzz_check(f.body, DEPOT_TEXT_MAX, false, true, true);
	fuzz_check(f.attachment_text, DEPOT_TEXT_MAX, false, true, true);
	if (f.recipient_count > DEPOT_RECIPIENTS_MAX ||
	    f.attachment_count > DEPOT_ATTACHMENTS_MAX || f.date < 0)
		abort();
	for (size_t i = 0; i < f.recipient_count; i++)
		fuzz_check(f.recipients[i], DEPOT_ADDRESS_MAX, false, false, false);
	for (size_t i = 0; i < f.attachment_count; i++)
		fuzz_check(f.attachments[i], DEPOT_NAME_MAX, false, false, false);

	if (depot_extract((const char *)data, size, &again, err, sizeof(err)) < 0)
		abort();
	fuzz_same(f.sender, again.sender);
	fuzz_same(f.subject, again.subject);
	fuzz_same(f.message_id, again.message_id);
	fuzz_same(f.headers, again.headers);
	fuzz_same(f.body, again.body);
	fuzz_same(f.attachment_text, again.attachment_text);
	if (f.date != again.date || f.recipient_count != again.recipient_count ||
	    f.attachment_count != again.attachment_count)
		abort();
	for (size_t i = 0; i < f.recipient_count; i++)
		fuzz_same(f.recipients[i], again.recipients[i]);
	for (size_t i = 0; i < f.attachment_count; i++)
		fuzz_same(f.attachments[i], again.attachments[i]);
	depot_fields_free(&again);
	depot_fields_free(&f);
	return 0;
}
