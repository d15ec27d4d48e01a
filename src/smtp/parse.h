/*
 * parse.h — SMTP command lines as a client sends them to popgate (RFC 5321
 * 4.1, with the parameters of SIZE (RFC 1870), 8BITMIME (RFC 6152),
 * SMTPUTF8 (RFC 6531), AUTH (RFC 4954) and CHUNKING's BDAT (RFC 3030)):
 * the verb, its argument, and for MAIL and RCPT the path and parameters.
 *
 * Pure functions: no allocation, no loop, no store; the fuzz target
 * tests/fuzz/fuzz_smtp_command.c runs them on any bytes.
 *
 * SECURITY: every byte is untrusted. A path is only cut out of the line and
 * checked for the characters that could not be in one (controls, an
 * unquoted space or angle bracket); whether it may be relayed to is
 * smtp/relay_policy.c's question, asked on the path as it was sent, so the
 * policy sees every trick (source routes, percent hacks, quoting).
 */
#ifndef POPGATE_SMTP_PARSE_H
#define POPGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_QUIT,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};

/* Upper-case name of VERB ("MAIL"); "" for UNKNOWN. */
const char *smtp_verb_name(enum smtp_verb verb);

/*
 * Longest command line taken, without its CR LF. RFC 5321 4.5.3.1.4 allows
 * 512 octets with it, and each extension in use may add to that (RFC 1870:
 * SIZE; RFC 6531 SMTPUTF8 paths): 1024 leaves room for those and no more.
 * AUTH lines are longer (RFC 4954 4: 12288), and checked by the caller.
 */
#define SMTP_COMMAND_LINE_MAX 1024
/* RFC 5321 4.5.3.1.3: a path is 256 octets with its angle brackets. */
#define SMTP_PATH_MAX 254
/* AUTH's mechanism name (RFC 4422: at most 20 characters). */
#define SMTP_MECHANISM_MAX 20

enum smtp_body {
	SMTP_BODY_NONE = 0, /* no BODY parameter */
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

/* Why a line was refused: the reply code, the enhanced status code (RFC
 * 3463) and a text, all static. */
struct smtp_parse_error {
	int code;
	const char *status;
	const char *text;
};

/*
 * A parsed command. ARG points into the caller's LINE (not NUL-terminated):
 * the rest of the line after the verb and one space, for HELO, EHLO, VRFY,
 * EXPN, HELP and NOOP. PATH is MAIL's or RCPT's path without its angle
 * brackets, NUL-terminated ("" for MAIL's null sender <>).
 */
struct smtp_command {
	enum smtp_verb verb;
	const char *arg;
	size_t arg_len;
	/* MAIL, RCPT */
	char path[SMTP_PATH_MAX + 1];
	bool has_size;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	/* AUTH: the mechanism (upper-cased) and the initial response, if any
	 * (pointing into LINE). */
	char mechanism[SMTP_MECHANISM_MAX + 1];
	const char *initial;
	size_t initial_len;
	/* BDAT */
	uint64_t chunk_size;
	bool last;
};

/*
 * Parses one command LINE of LEN bytes, without its CR LF. 0, or -1 with
 * *ERROR_R (static): 500 5.5.2 for an unknown verb or a line that is no
 * command, 501 5.5.4 for missing or malformed arguments, 501 5.1.7 / 5.1.3
 * for a malformed sender / recipient path, 555 5.5.4 for a MAIL or RCPT
 * parameter not known. The verb and the parameter names are matched
 * case-insensitively. NUL, CR and LF are refused anywhere.
 */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
		       const struct smtp_parse_error **error_r);

/* True if PATH (NUL-terminated) holds a byte over 127 (it needs SMTPUTF8). */
bool smtp_path_is_utf8(const char *path);

#endif
