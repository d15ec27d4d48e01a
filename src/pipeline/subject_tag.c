/*
 * subject_tag.c — finds where the subject tag goes in a header block (see
 * subject_tag.h).
 *
 * Owns: nothing. Must never: read past the bytes it is given, or plan an
 * insertion outside the header block (it would change the body the client
 * sees beyond the Subject).
 *
 * SECURITY: the header block is the sender's, untrusted: every step is
 * bounded by LEN, lines may end in LF or CR LF, and any byte is accepted.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pipeline/subject_tag.h"

static bool subject_tag_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* The offset just past the line that starts at START (its LF included), or LEN. */
static size_t subject_tag_line_end(const char *header, size_t len, size_t start)
{
	const char *lf = memchr(header + start, '\n', len - start);

	return lf != NULL ? (size_t)(lf - header) + 1 : len;
}

/* True if the line at START is empty (the end of the header block). */
static bool subject_tag_line_empty(const char *header, size_t len, size_t start)
{
	return header[start] == '\n' ||
	       (header[start] == '\r' && start + 1 < len && header[start + 1] == '\n');
}

/* The colon's offset if the line at START is a Subject field (RFC 5322's
 * obsolete syntax allows blanks before the colon), else 0 (never a colon's
 * place: the name comes first). */
static size_t subject_tag_subject_colon(const char *header, size_t end, size_t start)
{
	static const char name[] = "Subject";
	size_t at = start + sizeof(name) - 1;

	if (end - start < sizeof(name) || strncasecmp(header + start, name, sizeof(name) - 1) != 0)
		return 0;
	while (at < end && subject_tag_is_wsp(header[at]))
		at++;
	return at < end && header[at] == ':' ? at : 0;
}

/* subject_tag_value_start's answer for a field without a value. */
#define SUBJECT_TAG_EMPTY SIZE_MAX

/*
 * The first byte of the field's value after the colon at COLON, skipping
 * blanks and folds; SUBJECT_TAG_EMPTY if the value is empty, LEN if the
 * bytes end before that is known. *SAME_LINE_R says whether it is on the
 * field's first line. The field ends at a line break not followed by a blank.
 */
static size_t subject_tag_value_start(const char *header, size_t len, size_t colon,
				      bool *same_line_r)
{
	size_t at = colon + 1;

	*same_line_r = true;
	for (;;) {
		while (at < len && subject_tag_is_wsp(header[at]))
			at++;
		if (at + 1 < len && header[at] == '\r' && header[at + 1] == '\n')
			at++;
		if (at >= len || (header[at] == '\r' && at + 1 >= len))
			return len;
		if (header[at] != '\n')
			return header[at] == '\r' ? SUBJECT_TAG_EMPTY : at;
		/* A line break: the value goes on only on a continuation line. */
		if (at + 1 >= len)
			return len;
		if (!subject_tag_is_wsp(header[at + 1]))
			return SUBJECT_TAG_EMPTY;
		*same_line_r = false;
		at++;
	}
}

void subject_tag_plan(const char *header, size_t len, bool whole, const char *prefix,
		      struct subject_tag_plan *plan)
{
	size_t prefix_len = strlen(prefix);
	size_t start = 0;

	memset(plan, 0, sizeof(*plan));
	while (start < len && !subject_tag_line_empty(header, len, start)) {
		size_t end = subject_tag_line_end(header, len, start);
		size_t colon = subject_tag_subject_colon(header, end, start);

		if (end == len && !whole) {
			plan->kind = SUBJECT_TAG_UNKNOWN; /* cut off: the block may go on */
			return;
		}
		if (colon > 0) {
			bool same_line;
			size_t value = subject_tag_value_start(header, len, colon, &same_line);

			/* Cut off before the value, or within the length of the
			 * prefix: whether it is tagged cannot be told yet. */
			if (!whole && (value == len ||
				       (value != SUBJECT_TAG_EMPTY && len - value < prefix_len))) {
				plan->kind = SUBJECT_TAG_UNKNOWN;
				return;
			}
			if (value < len && len - value >= prefix_len &&
			    strncasecmp(header + value, prefix, prefix_len) == 0) {
				plan->kind = SUBJECT_TAG_ALREADY;
			} else if (value < len && same_line) {
				plan->kind = SUBJECT_TAG_INSERT;
				plan->offset = (int64_t)value;
				snprintf(plan->text, sizeof(plan->text), "%s ", prefix);
			} else {
				/* Empty, or it starts on a continuation line. */
				plan->kind = SUBJECT_TAG_INSERT;
				plan->offset = (int64_t)colon + 1;
				snprintf(plan->text, sizeof(plan->text), " %s", prefix);
			}
			return;
		}
		start = end;
	}
	if (start >= len && !whole) {
		plan->kind = SUBJECT_TAG_UNKNOWN; /* the block may go on past what was read */
		return;
	}
	plan->kind = SUBJECT_TAG_ADD;
	snprintf(plan->text, sizeof(plan->text), "Subject: %s\r\n", prefix);
}
