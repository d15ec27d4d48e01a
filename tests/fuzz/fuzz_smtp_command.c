/*
 * fuzz_smtp_command.c — libFuzzer target for what an SMTP client sends
 * popgate: command lines (smtp_command_parse, smtp/parse.c).
 *
 * Besides the sanitizers it checks the parser's promises and aborts on a
 * broken one: a refusal has a reply code, an enhanced status code of the
 * same class and a text; an accepted line has a known verb; what points into
 * the line stays inside it; a path is NUL-terminated, within its limit, free
 * of control bytes, non-empty for RCPT, and taken from the line unchanged
 * (its bytes appear there between '<' and '>'); a mechanism is upper-case
 * letters, digits, '-' and '_'; an accepted line holds no CR, LF or NUL;
 * BDAT's chunk size is the decimal number on the line, written back the
 * same (no overflow, no sign, no leading junk), and LAST is set only when
 * the line ends in it.
 *
 * Must never: allocate per run in a way that leaks, or touch the file system.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "smtp/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

/* True if P[0..N) lies inside LINE[0..LEN). */
static bool inside(const char *p, size_t n, const char *line, size_t len)
{
	return p >= line && p + n <= line + len;
}

/* BDAT: "BDAT " SIZE [" LAST"], SIZE read back exactly. */
static void check_bdat(const struct smtp_command *cmd, const char *line, size_t len)
{
	char digits[32];
	int n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)cmd->chunk_size);
	size_t tail = cmd->last ? 5 : 0;

	check(n > 0 && len >= 5 + tail);
	check(memchr(line + 5, ' ', len - 5 - tail) == NULL);
	/* Leading zeros are taken; the value is what the digits say. */
	size_t start = 5;
	while (start + 1 < len - tail && line[start] == '0')
		start++;
	check(len - tail - start == (size_t)n && memcmp(line + start, digits, (size_t)n) == 0);
	if (cmd->last)
		check(strncasecmp(line + len - 5, " LAST", 5) == 0);
}

static void check_path(const struct smtp_command *cmd, const char *line, size_t len)
{
	size_t path_len = strnlen(cmd->path, sizeof(cmd->path));

	check(path_len <= SMTP_PATH_MAX);
	for (size_t i = 0; i < path_len; i++) {
		unsigned char c = (unsigned char)cmd->path[i];
		check(c >= 0x20);
	}
	if (cmd->verb == SMTP_VERB_RCPT)
		check(path_len > 0);
	/* The path as it stood between the angle brackets. */
	bool found = false;
	for (size_t i = 0; i + path_len + 2 <= len && !found; i++)
		found = line[i] == '<' && line[i + 1 + path_len] == '>' &&
			memcmp(line + i + 1, cmd->path, path_len) == 0;
	check(found);
	bool high = false;
	for (size_t i = 0; i < path_len; i++)
		high = high || (unsigned char)cmd->path[i] > 127;
	check(smtp_path_is_utf8(cmd->path) == high);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	struct smtp_command cmd;
	const struct smtp_parse_error *error = NULL;

	if (smtp_command_parse(line, size, &cmd, &error) < 0) {
		check(error != NULL && error->text[0] != '\0');
		check(error->code >= 500 && error->code <= 555);
		check(error->status[0] == '5' && error->status[1] == '.');
		return 0;
	}
	check(cmd.verb > SMTP_VERB_UNKNOWN && cmd.verb < SMTP_VERB_COUNT);
	check(smtp_verb_name(cmd.verb)[0] != '\0');
	check(memchr(line, '\r', size) == NULL && memchr(line, '\n', size) == NULL &&
	      memchr(line, '\0', size) == NULL);
	if (cmd.arg != NULL)
		check(cmd.arg_len > 0 && inside(cmd.arg, cmd.arg_len, line, size));
	if (cmd.verb == SMTP_VERB_MAIL || cmd.verb == SMTP_VERB_RCPT)
		check_path(&cmd, line, size);
	if (cmd.verb == SMTP_VERB_BDAT)
		check_bdat(&cmd, line, size);
	else
		check(cmd.chunk_size == 0 && !cmd.last);
	if (cmd.verb == SMTP_VERB_AUTH) {
		size_t n = strnlen(cmd.mechanism, sizeof(cmd.mechanism));
		check(n > 0 && n <= SMTP_MECHANISM_MAX);
		for (size_t i = 0; i < n; i++) {
			char c = cmd.mechanism[i];
			check((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
			      c == '_');
		}
		if (cmd.initial != NULL)
			check(cmd.initial_len > 0 &&
			      inside(cmd.initial, cmd.initial_len, line, size) &&
			      memchr(cmd.initial, ' ', cmd.initial_len) == NULL);
	} else {
		check(size <= SMTP_COMMAND_LINE_MAX);
	}
	return 0;
}
