/*
 * fuzz_mbox.c — libFuzzer target for the mbox splitter (core/mbox.c), which
 * depot import runs over any file an administrator names.
 *
 * Owns: nothing. Must never: accept a split outside mbox.h's promises.
 * Beyond the sanitizers it aborts when the messages do not tile the data
 * (each starts where the previous one's next is, start <= body <= end <=
 * next <= size, every start a From_ line mbox_starts_at accepts, each
 * message at least one byte long so the walk ends), or when mbox_unquote
 * does not shorten a message by exactly one byte per quoted line.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The number of lines of TEXT matching ">+From ". */
static size_t fuzz_quoted_lines(const char *text, size_t len)
{
	size_t count = 0;

	for (size_t line = 0; line < len;) {
		const char *newline = memchr(text + line, '\n', len - line);
		size_t end = newline != NULL ? (size_t)(newline - text) + 1 : len;

		if (mbox_quoted(text + line, end - line))
			count++;
		line = end;
	}
	return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct mbox_message message;
	char *copy;

	if (!mbox_is(text, size))
		return 0;
	for (size_t offset = 0; offset < size; offset = message.next) {
		size_t quoted;
		size_t len;

		if (!mbox_starts_at(text, size, offset))
			abort();
		mbox_message_at(text, size, offset, &message);
		if (message.start != offset || message.body < message.start ||
		    message.end < message.body || message.next < message.end ||
		    message.next > size || message.next <= offset)
			abort();
		len = message.end - message.body;
		quoted = fuzz_quoted_lines(text + message.body, len);
		copy = malloc(len + 1);
		if (copy == NULL)
			abort();
		if (mbox_unquote(text + message.body, len, copy) != len - quoted)
			abort();
		free(copy);
	}
	return 0;
}
