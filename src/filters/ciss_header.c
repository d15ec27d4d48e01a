/*
 * ciss_header.c — what a message's header block says to challenge-response
 * (see filters/ciss.h): the Return-Path, Auto-Submitted, Precedence,
 * List-Id, our own challenge's field and the Subject.
 *
 * Owns: nothing. Must never: read past the LEN bytes it is given, or hand
 * out a subject the protocol's decoder would refuse (it is cut to
 * PIPELINE_CISS_SUBJECT_MAX bytes of one line of UTF-8, encoded words
 * decoded: depot_header_text).
 * SECURITY: the header is hostile. Every field is read through
 * auth_header_field, bounded by its buffer, and only compared; it needs
 * only libc, auth_header.c, util.c and depot/extract.c's header decoder,
 * so it is fuzzed on its own (tests/fuzz/fuzz_ciss_header.c).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util.h"
#include "depot/depot.h"
#include "filters/auth_header.h"
#include "filters/ciss.h"

/* Room for the fields read here; a longer one counts as present, unread. */
#define CISS_FIELD_MAX 1024

/* The first word of VALUE (up to white space, ';' or a comment), into WORD
 * of WORDLEN bytes, cut to fit. */
static void ciss_first_word(const char *value, char *word, size_t wordlen)
{
	size_t len = strcspn(value, " \t;(");

	if (len >= wordlen)
		len = wordlen - 1;
	memcpy(word, value, len);
	word[len] = '\0';
}

/* 1 when MESSAGE (LEN bytes) has field NAME (its value, if it fits, in
 * VALUE, else ""), 0 when not. */
static int ciss_field(const char *message, size_t len, const char *name, char value[CISS_FIELD_MAX])
{
	return auth_header_field(message, len, name, value, CISS_FIELD_MAX) != 0 ? 1 : 0;
}

unsigned ciss_header_facts(const char *message, size_t len,
			   char subject[PIPELINE_CISS_SUBJECT_MAX + 1])
{
	char value[CISS_FIELD_MAX], word[16];
	char path[CISS_FIELD_MAX];
	unsigned flags = 0;
	int found;

	subject[0] = '\0';
	/* Fetched mail has no envelope of its own: the Return-Path the
	 * provider's MX wrote is its envelope sender. */
	found = auth_header_field(message, len, "Return-Path", value, sizeof(value));
	found = found == 1 ? auth_path_address(value, path, sizeof(path)) : -1;
	if (found == 0)
		flags |= PIPELINE_CISS_NULL_SENDER;
	else if (found < 0)
		flags |= PIPELINE_CISS_NO_SENDER;
	if (ciss_field(message, len, "Auto-Submitted", value)) {
		ciss_first_word(value, word, sizeof(word));
		/* RFC 3834: "no" is the one value that means a person sent it. */
		if (strcasecmp(word, "no") != 0)
			flags |= PIPELINE_CISS_AUTO_SUBMITTED;
	}
	if (ciss_field(message, len, "Precedence", value)) {
		ciss_first_word(value, word, sizeof(word));
		if (strcasecmp(word, "bulk") == 0 || strcasecmp(word, "list") == 0 ||
		    strcasecmp(word, "junk") == 0)
			flags |= PIPELINE_CISS_BULK;
	}
	if (ciss_field(message, len, "List-Id", value))
		flags |= PIPELINE_CISS_LIST;
	if (ciss_field(message, len, CISS_CHALLENGE_HEADER, value))
		flags |= PIPELINE_CISS_OUR_CHALLENGE;
	if (auth_header_field(message, len, "Subject", value, sizeof(value)) == 1) {
		char *decoded = depot_header_text(value, PIPELINE_CISS_SUBJECT_MAX);

		if (decoded != NULL) {
			memcpy(subject, decoded, strlen(decoded) + 1);
			free(decoded);
		}
	}
	return flags;
}
