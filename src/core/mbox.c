/*
 * mbox.c — splitting an mbox into its messages and unquoting their ">From "
 * lines (see mbox.h).
 *
 * SECURITY: the data is anything a mailbox file holds; every scan is bounded
 * by LEN and nothing is allocated, so a hostile file costs time linear in
 * its size and nothing else.
 */
#include <string.h>

#include "core/mbox.h"

#define MBOX_FROM "From "
#define MBOX_FROM_LEN 5

bool mbox_is(const char *data, size_t len)
{
	return len >= MBOX_FROM_LEN && memcmp(data, MBOX_FROM, MBOX_FROM_LEN) == 0;
}

/* True if the line that ends with the LF at NEWLINE is empty ("\n" or "\r\n"). */
static bool mbox_empty_line_ends_at(const char *data, size_t newline)
{
	if (newline == 0)
		return true;
	if (data[newline - 1] == '\n')
		return true;
	return newline >= 2 && data[newline - 1] == '\r' && data[newline - 2] == '\n';
}

bool mbox_starts_at(const char *data, size_t len, size_t offset)
{
	if (offset >= len || !mbox_is(data + offset, len - offset))
		return false;
	if (offset == 0)
		return true;
	return data[offset - 1] == '\n' && mbox_empty_line_ends_at(data, offset - 1);
}

/* The length of the empty line ending just before OFFSET (1 for "\n", 2 for
 * "\r\n"), or 0 if the line before OFFSET is not empty; the From_ line's LF
 * (just before BODY) may end the line before the empty one, nothing earlier. */
static size_t mbox_empty_line_before(const char *data, size_t body, size_t offset)
{
	if (body == 0 || offset < body + 1 || data[offset - 1] != '\n')
		return 0;
	if (data[offset - 2] == '\n')
		return 1;
	if (offset >= body + 2 && data[offset - 2] == '\r' && data[offset - 3] == '\n')
		return 2;
	return 0;
}

void mbox_message_at(const char *data, size_t len, size_t offset, struct mbox_message *message)
{
	const char *newline = memchr(data + offset, '\n', len - offset);
	size_t scan;

	message->start = offset;
	message->body = newline != NULL ? (size_t)(newline - data) + 1 : len;
	message->next = len;
	/* The first "\nFrom " in the body whose LF ends an empty line. */
	scan = message->body;
	while (scan < len) {
		const char *hit =
		    memmem(data + scan, len - scan, "\n" MBOX_FROM, MBOX_FROM_LEN + 1);
		size_t at;

		if (hit == NULL)
			break;
		at = (size_t)(hit - data);
		if (at >= message->body && mbox_empty_line_ends_at(data, at)) {
			message->next = at + 1;
			break;
		}
		scan = at + 1;
	}
	message->end = message->next - mbox_empty_line_before(data, message->body, message->next);
}

/* True if the line at LINE (up to END) is ">" one or more times, then "From ". */
static bool mbox_line_quoted(const char *line, const char *end)
{
	const char *p = line;

	while (p < end && *p == '>')
		p++;
	return p > line && (size_t)(end - p) >= MBOX_FROM_LEN &&
	       memcmp(p, MBOX_FROM, MBOX_FROM_LEN) == 0;
}

bool mbox_quoted(const char *text, size_t len)
{
	const char *end = text + len;

	for (const char *line = text; line < end;) {
		const char *newline = memchr(line, '\n', (size_t)(end - line));

		if (mbox_line_quoted(line, end))
			return true;
		if (newline == NULL)
			break;
		line = newline + 1;
	}
	return false;
}

size_t mbox_unquote(const char *text, size_t len, char *out)
{
	const char *end = text + len;
	size_t written = 0;

	for (const char *line = text; line < end;) {
		const char *newline = memchr(line, '\n', (size_t)(end - line));
		const char *next = newline != NULL ? newline + 1 : end;

		if (mbox_line_quoted(line, end))
			line++;
		memcpy(out + written, line, (size_t)(next - line));
		written += (size_t)(next - line);
		line = next;
	}
	return written;
}
