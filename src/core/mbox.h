/*
 * mbox.h — the messages of an mbox file (RFC 4155: mboxo and mboxrd): where
 * each one starts and ends, and its body lines unquoted (">From " back to
 * "From ").
 *
 * A message starts at a line beginning "From " (its From_ line, which is
 * not part of the message) at the start of the data or after an empty line,
 * and ends at the empty line before the next one (that separating line is
 * not part of it either). Requiring the empty line keeps an unquoted "From "
 * in a body (mboxo written by a careless program) inside its message.
 *
 * Knows nothing of what a message means; works on bytes in memory (an
 * mmap()ed file), never reads past LEN, never allocates.
 */
#ifndef POPGATE_CORE_MBOX_H
#define POPGATE_CORE_MBOX_H

#include <stdbool.h>
#include <stddef.h>

/* One message of an mbox, as offsets into its data. */
struct mbox_message {
	size_t start; /* its From_ line */
	size_t body;  /* the message's first byte, after the From_ line */
	size_t end;   /* just past its last byte (the separating empty line left out) */
	size_t next;  /* the next message's From_ line, or the data's length */
};

/* True if DATA (LEN bytes) starts with a From_ line, i.e. is an mbox. */
bool mbox_is(const char *data, size_t len);

/* True if OFFSET (< LEN) is where a message of the mbox DATA starts: a
 * From_ line at the start or after an empty line. */
bool mbox_starts_at(const char *data, size_t len, size_t offset);

/* The message whose From_ line is at OFFSET (mbox_starts_at) into *MESSAGE. */
void mbox_message_at(const char *data, size_t len, size_t offset, struct mbox_message *message);

/* True if a line of the message TEXT (LEN bytes) is a quoted From_ line
 * (">From ", ">>From " …), which mbox_unquote changes. */
bool mbox_quoted(const char *text, size_t len);

/* Copies TEXT (LEN bytes) to OUT (room for LEN bytes) with one '>' taken
 * from every line matching ">+From " (mboxrd; for mboxo, whose writers quote
 * only "From ", the same). The copy's length. */
size_t mbox_unquote(const char *text, size_t len, char *out);

#endif
