/*
 * subject_tag.h — where the "tag the subject" action puts its prefix in a
 * message's header block: "Subject: [SPAM] original" for the client, while
 * the stored body stays as it came (bodies are immutable files).
 *
 * Pure: no store, no I/O, so the unit and fuzz tests drive it directly. The
 * route (pipeline/route.c) plans the tag once, in the writer thread; the POP3
 * server inserts the planned bytes while it streams the body.
 */
#ifndef POPGATE_PIPELINE_SUBJECT_TAG_H
#define POPGATE_PIPELINE_SUBJECT_TAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest prefix planned; [spam] tag_subject_prefix is checked against
 * CONFIG_TAG_SUBJECT_PREFIX_MAX, the same (route.c asserts it). */
#define SUBJECT_TAG_PREFIX_MAX 64

/* How much of a body the plan reads: a header block longer than this is not
 * tagged (SUBJECT_TAG_UNKNOWN). */
#define SUBJECT_TAG_SCAN_MAX 65536

enum subject_tag_kind {
	SUBJECT_TAG_INSERT,  /* insert TEXT at byte OFFSET of the body */
	SUBJECT_TAG_ADD,     /* no Subject: add the line TEXT in front of the body */
	SUBJECT_TAG_ALREADY, /* the subject starts with the prefix: nothing to do */
	SUBJECT_TAG_UNKNOWN, /* no end of the header block in what was read */
};

struct subject_tag_plan {
	enum subject_tag_kind kind;
	int64_t offset; /* SUBJECT_TAG_INSERT: where, in bytes from the body's start */
	char text[SUBJECT_TAG_PREFIX_MAX + 16]; /* the bytes to insert or the line to add */
};

/*
 * Plans the tag PREFIX (printable ASCII, not empty, at most
 * SUBJECT_TAG_PREFIX_MAX) for the message whose first LEN bytes are HEADER;
 * WHOLE says HEADER is the whole message (a message without a blank line
 * then has only headers). The first Subject field counts:
 *
 *   "Subject: hello"          -> insert "PREFIX " before "hello"
 *   "Subject:\r\n\tfolded"    -> insert " PREFIX" after the colon
 *   "Subject: PREFIX hello"   -> already tagged (case-insensitive)
 *   no Subject field          -> add "Subject: PREFIX\r\n"
 *
 * A prefix in front of an RFC 2047 encoded word is plain text beside it, as
 * the RFC allows. Never reads past LEN; any bytes are accepted.
 */
void subject_tag_plan(const char *header, size_t len, bool whole, const char *prefix,
		      struct subject_tag_plan *plan);

#endif
