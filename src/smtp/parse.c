/*
 * parse.c — SMTP command lines (see parse.h): the verb table, MAIL and
 * RCPT paths and parameters, AUTH's mechanism and initial response, BDAT's
 * chunk size.
 *
 * Owns nothing; never allocates. SECURITY: the input is a client's line;
 * every read is bounded by LEN, and what is copied out (the path, the
 * mechanism) is bounded by its buffer.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp/parse.h"

static const char *const verb_names[] = {
    [SMTP_VERB_UNKNOWN] = "",  [SMTP_VERB_HELO] = "HELO",	  [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_MAIL] = "MAIL", [SMTP_VERB_RCPT] = "RCPT",	  [SMTP_VERB_DATA] = "DATA",
    [SMTP_VERB_BDAT] = "BDAT", [SMTP_VERB_RSET] = "RSET",	  [SMTP_VERB_NOOP] = "NOOP",
    [SMTP_VERB_QUIT] = "QUIT", [SMTP_VERB_VRFY] = "VRFY",	  [SMTP_VERB_EXPN] = "EXPN",
    [SMTP_VERB_HELP] = "HELP", [SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH",
};
_Static_assert(sizeof(verb_names) / sizeof(verb_names[0]) == SMTP_VERB_COUNT,
	       "every verb has a name");

/* What each verb takes after it. */
enum verb_argument {
	ARGUMENT_NONE,	   /* nothing: DATA, RSET, QUIT, STARTTLS */
	ARGUMENT_ANY,	   /* anything or nothing: NOOP, HELP */
	ARGUMENT_REQUIRED, /* some text: HELO, EHLO, VRFY, EXPN */
	ARGUMENT_SPECIAL,  /* its own syntax: MAIL, RCPT, AUTH, BDAT */
};

static const enum verb_argument verb_arguments[] = {
    [SMTP_VERB_UNKNOWN] = ARGUMENT_NONE,  [SMTP_VERB_HELO] = ARGUMENT_REQUIRED,
    [SMTP_VERB_EHLO] = ARGUMENT_REQUIRED, [SMTP_VERB_MAIL] = ARGUMENT_SPECIAL,
    [SMTP_VERB_RCPT] = ARGUMENT_SPECIAL,  [SMTP_VERB_DATA] = ARGUMENT_NONE,
    [SMTP_VERB_BDAT] = ARGUMENT_SPECIAL,  [SMTP_VERB_RSET] = ARGUMENT_NONE,
    [SMTP_VERB_NOOP] = ARGUMENT_ANY,	  [SMTP_VERB_QUIT] = ARGUMENT_NONE,
    [SMTP_VERB_VRFY] = ARGUMENT_REQUIRED, [SMTP_VERB_EXPN] = ARGUMENT_REQUIRED,
    [SMTP_VERB_HELP] = ARGUMENT_ANY,	  [SMTP_VERB_STARTTLS] = ARGUMENT_NONE,
    [SMTP_VERB_AUTH] = ARGUMENT_SPECIAL,
};
_Static_assert(sizeof(verb_arguments) / sizeof(verb_arguments[0]) == SMTP_VERB_COUNT,
	       "every verb has an argument rule");

static const struct smtp_parse_error error_unknown = {500, "5.5.2", "command not recognized"};
static const struct smtp_parse_error error_syntax = {500, "5.5.2", "syntax error"};
static const struct smtp_parse_error error_too_long = {500, "5.5.2", "line too long"};
static const struct smtp_parse_error error_argument = {501, "5.5.4",
						       "syntax error in parameters or arguments"};
static const struct smtp_parse_error error_no_argument = {501, "5.5.4", "argument required"};
static const struct smtp_parse_error error_extra = {501, "5.5.4", "no argument allowed"};
static const struct smtp_parse_error error_mail_syntax = {501, "5.5.4",
							  "syntax: MAIL FROM:<address>"};
static const struct smtp_parse_error error_rcpt_syntax = {501, "5.5.4",
							  "syntax: RCPT TO:<address>"};
static const struct smtp_parse_error error_sender = {501, "5.1.7", "bad sender address syntax"};
static const struct smtp_parse_error error_recipient = {501, "5.1.3",
							"bad recipient address syntax"};
static const struct smtp_parse_error error_null_recipient = {501, "5.1.3",
							     "a recipient cannot be empty"};
static const struct smtp_parse_error error_parameter = {555, "5.5.4", "parameter not recognized"};
static const struct smtp_parse_error error_size = {501, "5.5.4", "bad SIZE value"};
static const struct smtp_parse_error error_body = {501, "5.5.4", "BODY must be 7BIT or 8BITMIME"};
static const struct smtp_parse_error error_twice = {501, "5.5.4", "parameter given twice"};
static const struct smtp_parse_error error_auth_syntax = {
    501, "5.5.4", "syntax: AUTH mechanism [initial-response]"};
static const struct smtp_parse_error error_bdat_syntax = {501, "5.5.4", "syntax: BDAT size [LAST]"};

const char *smtp_verb_name(enum smtp_verb verb)
{
	if (verb < 0 || verb >= SMTP_VERB_COUNT)
		return "";
	return verb_names[verb];
}

bool smtp_path_is_utf8(const char *path)
{
	for (; *path != '\0'; path++) {
		if ((unsigned char)*path > 127)
			return true;
	}
	return false;
}

/* True if the N bytes at S are PREFIX, in any case. */
static bool has_prefix(const char *s, size_t n, const char *prefix)
{
	size_t plen = strlen(prefix);

	return n >= plen && strncasecmp(s, prefix, plen) == 0;
}

/* Parses decimal digits S[0..N) into *VALUE: 0 or -1 (none, not all
 * digits, or over 20 digits). */
static int parse_number(const char *s, size_t n, uint64_t *value)
{
	uint64_t v = 0;

	if (n == 0 || n > 19)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*value = v;
	return 0;
}

/*
 * Cuts the path out of S[0..N), which starts at its '<': its content into
 * PATH (NUL-terminated), and *END_R the bytes used with the '>'. A quoted
 * local part may hold spaces and '>' (RFC 5321 4.1.2); outside quotes a
 * space or '<' ends the syntax. 0 or -1.
 */
static int parse_path(const char *s, size_t n, char path[SMTP_PATH_MAX + 1], size_t *end_r)
{
	bool quoted = false;
	size_t out = 0;

	if (n == 0 || s[0] != '<')
		return -1;
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return -1;
		if (!quoted && c == '>') {
			path[out] = '\0';
			*end_r = i + 1;
			return 0;
		}
		if (!quoted && (c == ' ' || c == '<'))
			return -1;
		if (out == SMTP_PATH_MAX)
			return -1;
		path[out++] = (char)c;
		if (c == '"') {
			quoted = !quoted;
		} else if (quoted && c == '\\') {
			if (++i >= n || (unsigned char)s[i] < 0x20 || out == SMTP_PATH_MAX)
				return -1;
			path[out++] = s[i];
		}
	}
	return -1;
}

/* One MAIL parameter KEYWORD[=VALUE] of S[0..N) into CMD. */
static const struct smtp_parse_error *parse_mail_parameter(const char *s, size_t n,
							   struct smtp_command *cmd)
{
	const char *eq = memchr(s, '=', n);
	size_t key_len = eq != NULL ? (size_t)(eq - s) : n;
	const char *value = eq != NULL ? eq + 1 : NULL;
	size_t value_len = eq != NULL ? n - key_len - 1 : 0;

	if (key_len == 4 && strncasecmp(s, "SIZE", 4) == 0) {
		if (cmd->has_size)
			return &error_twice;
		if (value == NULL || parse_number(value, value_len, &cmd->size) < 0)
			return &error_size;
		cmd->has_size = true;
		return NULL;
	}
	if (key_len == 4 && strncasecmp(s, "BODY", 4) == 0) {
		if (cmd->body != SMTP_BODY_NONE)
			return &error_twice;
		if (value_len == 4 && strncasecmp(value, "7BIT", 4) == 0)
			cmd->body = SMTP_BODY_7BIT;
		else if (value_len == 8 && strncasecmp(value, "8BITMIME", 8) == 0)
			cmd->body = SMTP_BODY_8BITMIME;
		else
			return &error_body;
		return NULL;
	}
	if (key_len == 8 && strncasecmp(s, "SMTPUTF8", 8) == 0) {
		if (value != NULL)
			return &error_argument;
		if (cmd->smtputf8)
			return &error_twice;
		cmd->smtputf8 = true;
		return NULL;
	}
	/* RFC 4954 5: the submitter's identity; taken and not used (we know
	 * who logged in). */
	if (key_len == 4 && strncasecmp(s, "AUTH", 4) == 0 && value != NULL)
		return NULL;
	return &error_parameter;
}

/* MAIL FROM:<path> [params] or RCPT TO:<path> [params], from S[0..N), the
 * line after the verb. */
static const struct smtp_parse_error *parse_mail_rcpt(const char *s, size_t n,
						      struct smtp_command *cmd)
{
	bool mail = cmd->verb == SMTP_VERB_MAIL;
	const char *keyword = mail ? " FROM:" : " TO:";
	size_t used;

	if (!has_prefix(s, n, keyword))
		return mail ? &error_mail_syntax : &error_rcpt_syntax;
	s += strlen(keyword);
	n -= strlen(keyword);
	/* RFC 5321 has no space here, but many clients send one: taken. */
	if (n > 0 && s[0] == ' ') {
		s++;
		n--;
	}
	if (parse_path(s, n, cmd->path, &used) < 0)
		return mail ? &error_sender : &error_recipient;
	if (!mail && cmd->path[0] == '\0')
		return &error_null_recipient;
	s += used;
	n -= used;
	while (n > 0) {
		size_t len;

		if (s[0] != ' ')
			return &error_argument;
		while (n > 0 && s[0] == ' ') {
			s++;
			n--;
		}
		if (n == 0)
			break;
		const char *space = memchr(s, ' ', n);
		len = space != NULL ? (size_t)(space - s) : n;
		/* RCPT takes none of the parameters we offer (no DSN). */
		if (!mail)
			return &error_parameter;
		const struct smtp_parse_error *error = parse_mail_parameter(s, len, cmd);
		if (error != NULL)
			return error;
		s += len;
		n -= len;
	}
	return NULL;
}

/* AUTH mechanism [initial-response], from S[0..N) after the verb. */
static const struct smtp_parse_error *parse_auth(const char *s, size_t n, struct smtp_command *cmd)
{
	size_t i = 0;

	if (n < 2 || s[0] != ' ')
		return &error_auth_syntax;
	s++;
	n--;
	while (i < n && s[i] != ' ') {
		char c = s[i];

		if (i == SMTP_MECHANISM_MAX || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
						 (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return &error_auth_syntax;
		cmd->mechanism[i] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
		i++;
	}
	cmd->mechanism[i] = '\0';
	if (i == 0)
		return &error_auth_syntax;
	if (i == n)
		return NULL;
	s += i + 1;
	n -= i + 1;
	if (n == 0 || memchr(s, ' ', n) != NULL)
		return &error_auth_syntax;
	cmd->initial = s;
	cmd->initial_len = n;
	return NULL;
}

/* BDAT size [LAST], from S[0..N) after the verb. */
static const struct smtp_parse_error *parse_bdat(const char *s, size_t n, struct smtp_command *cmd)
{
	const char *space;
	size_t len;

	if (n < 2 || s[0] != ' ')
		return &error_bdat_syntax;
	s++;
	n--;
	space = memchr(s, ' ', n);
	len = space != NULL ? (size_t)(space - s) : n;
	if (parse_number(s, len, &cmd->chunk_size) < 0)
		return &error_bdat_syntax;
	if (space == NULL)
		return NULL;
	if (n - len - 1 != 4 || strncasecmp(space + 1, "LAST", 4) != 0)
		return &error_bdat_syntax;
	cmd->last = true;
	return NULL;
}

int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
		       const struct smtp_parse_error **error_r)
{
	const struct smtp_parse_error *error = NULL;
	size_t verb_len = 0;

	memset(cmd, 0, sizeof(*cmd));
	if (len > SMTP_COMMAND_LINE_MAX && !has_prefix(line, len, "AUTH ")) {
		*error_r = &error_too_long;
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (line[i] == '\0' || line[i] == '\r' || line[i] == '\n') {
			*error_r = &error_syntax;
			return -1;
		}
	}
	while (verb_len < len && line[verb_len] != ' ')
		verb_len++;
	for (int v = SMTP_VERB_UNKNOWN + 1; v < SMTP_VERB_COUNT; v++) {
		if (strlen(verb_names[v]) == verb_len &&
		    strncasecmp(line, verb_names[v], verb_len) == 0) {
			cmd->verb = (enum smtp_verb)v;
			break;
		}
	}
	if (cmd->verb == SMTP_VERB_UNKNOWN) {
		*error_r = &error_unknown;
		return -1;
	}
	const char *rest = line + verb_len;
	size_t rest_len = len - verb_len;
	switch (verb_arguments[cmd->verb]) {
	case ARGUMENT_NONE:
		if (rest_len > 0)
			error = &error_extra;
		break;
	case ARGUMENT_REQUIRED:
	case ARGUMENT_ANY:
		if (rest_len > 1) {
			cmd->arg = rest + 1;
			cmd->arg_len = rest_len - 1;
		} else if (verb_arguments[cmd->verb] == ARGUMENT_REQUIRED) {
			error = &error_no_argument;
		}
		break;
	case ARGUMENT_SPECIAL:
		if (cmd->verb == SMTP_VERB_MAIL || cmd->verb == SMTP_VERB_RCPT)
			error = parse_mail_rcpt(rest, rest_len, cmd);
		else if (cmd->verb == SMTP_VERB_AUTH)
			error = parse_auth(rest, rest_len, cmd);
		else
			error = parse_bdat(rest, rest_len, cmd);
		break;
	}
	if (error != NULL) {
		*error_r = error;
		return -1;
	}
	return 0;
}
