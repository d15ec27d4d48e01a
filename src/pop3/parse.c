/*
 * parse.c — POP3 on the wire: client command lines, provider status lines,
 * UIDL and LIST listing lines, the dot-stuffing codec for multi-line replies,
 * the P1 account name ("LOGIN@PROVIDERHOST") and AUTH PLAIN responses.
 *
 * Owns: nothing. Every function works on the caller's buffers.
 * Must never: allocate, log, keep global state, read outside [LINE, LINE+LEN),
 * or depend on anything but libc and libsodium (the fuzz targets link this
 * file almost alone).
 *
 * SECURITY: all input is untrusted network data from a mail client or a
 * provider. Anything unexpected is rejected, never repaired; numbers are
 * checked for overflow; the decoded AUTH PLAIN buffer is wiped after use.
 */
#include <string.h>

#include <sodium.h>

#include "pop3/parse.h"

/* RFC 2449 keywords are at most four characters. */
#define POP3_VERB_LEN_MAX 4
/* Message numbers and line counts stay in a signed 32-bit range so that no
 * caller converting them to int can be surprised. */
#define POP3_NUMBER_MAX 0x7fffffffu
#define POP3_HOST_MAX 253
#define POP3_LABEL_MAX 63
/* Room for "authzid\0authcid\0passwd" with generous buffer sizes. */
#define POP3_AUTH_PLAIN_MAX 2048

/* How a verb's arguments are read. */
enum pop3_arg_kind {
	POP3_ARGS_NONE,	   /* no arguments at all */
	POP3_ARGS_WORDS,   /* space separated words (AUTH, APOP) */
	POP3_ARGS_NUMBERS, /* space separated numbers (LIST, UIDL, RETR, DELE, TOP) */
	POP3_ARGS_REST,	   /* the rest of the line (USER, PASS) */
};

struct pop3_verb_info {
	const char *name;
	enum pop3_arg_kind kind;
	unsigned char min_args;
	unsigned char max_args;
};

static const struct pop3_verb_info pop3_verbs[] = {
    [POP3_VERB_UNKNOWN] = {"", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_USER] = {"USER", POP3_ARGS_REST, 1, 1},
    [POP3_VERB_PASS] = {"PASS", POP3_ARGS_REST, 1, 1},
    [POP3_VERB_STAT] = {"STAT", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_LIST] = {"LIST", POP3_ARGS_NUMBERS, 0, 1},
    [POP3_VERB_UIDL] = {"UIDL", POP3_ARGS_NUMBERS, 0, 1},
    [POP3_VERB_RETR] = {"RETR", POP3_ARGS_NUMBERS, 1, 1},
    [POP3_VERB_TOP] = {"TOP", POP3_ARGS_NUMBERS, 2, 2},
    [POP3_VERB_DELE] = {"DELE", POP3_ARGS_NUMBERS, 1, 1},
    [POP3_VERB_RSET] = {"RSET", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_NOOP] = {"NOOP", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_QUIT] = {"QUIT", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_CAPA] = {"CAPA", POP3_ARGS_NONE, 0, 0},
    [POP3_VERB_STLS] = {"STLS", POP3_ARGS_NONE, 0, 0},
    /* A bare AUTH asks for the mechanism list (RFC 1734 practice). */
    [POP3_VERB_AUTH] = {"AUTH", POP3_ARGS_WORDS, 0, 2},
    [POP3_VERB_APOP] = {"APOP", POP3_ARGS_WORDS, 2, 2},
};

_Static_assert(sizeof(pop3_verbs) / sizeof(pop3_verbs[0]) == POP3_VERB_COUNT,
	       "pop3_verbs must name every verb");

/* States of the dot decoder, kept in pop3_dot_decoder.state. */
enum pop3_dot_state {
	POP3_DOT_LINE_START = 0, /* the next byte begins a line */
	POP3_DOT_IN_LINE,	 /* inside a line: bytes pass until LF */
	POP3_DOT_DOT,		 /* a line began with '.', which was not passed on */
	POP3_DOT_DOT_CR,	 /* a line began with ".\r"; the CR is held back */
};

typedef void pop3_out_fn(void *ctx, const char *data, size_t len);

static bool pop3_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool pop3_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool pop3_is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static unsigned char pop3_to_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool pop3_has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (pop3_is_control((unsigned char)s[i]))
			return true;
	return false;
}

/* True if S[0..LEN) holds a CR, an LF or a NUL: bytes no argument popgate
 * passes on may carry. */
static bool pop3_has_line_break(const void *s, size_t len)
{
	return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL ||
	       memchr(s, '\0', len) != NULL;
}

/*
 * Reads the decimal number S[0..LEN) into *VALUE: digits only (no sign, no
 * spaces), at most MAX. 0 or -1.
 */
static int pop3_number_parse(const char *s, size_t len, uint64_t max, uint64_t *value)
{
	uint64_t v = 0;

	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!pop3_is_digit(c))
			return -1;
		if (v > (max - (uint64_t)(c - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(c - '0');
	}
	*value = v;
	return 0;
}

/* A message number 1..2^31-1. 0, or -1 with *ERROR_R. */
static int pop3_message_number_parse(const char *s, size_t len, uint32_t *number,
				     const char **error_r)
{
	uint64_t v;

	if (pop3_number_parse(s, len, POP3_NUMBER_MAX, &v) < 0) {
		*error_r = "invalid message number";
		return -1;
	}
	if (v == 0) {
		*error_r = "message number must be 1 or more";
		return -1;
	}
	*number = (uint32_t)v;
	return 0;
}

/* Looks VERB[0..LEN) up case-insensitively; POP3_VERB_UNKNOWN if none. */
static enum pop3_verb pop3_verb_lookup(const char *verb, size_t len)
{
	char upper[POP3_VERB_LEN_MAX];

	if (len == 0 || len > POP3_VERB_LEN_MAX)
		return POP3_VERB_UNKNOWN;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)verb[i];

		if (!pop3_is_alpha(c))
			return POP3_VERB_UNKNOWN;
		upper[i] = (char)(c & ~0x20);
	}
	for (int v = POP3_VERB_UNKNOWN + 1; v < POP3_VERB_COUNT; v++) {
		const char *name = pop3_verbs[v].name;

		if (strlen(name) == len && memcmp(name, upper, len) == 0)
			return (enum pop3_verb)v;
	}
	return POP3_VERB_UNKNOWN;
}

/*
 * PASS keeps its argument exactly as sent after the one separating space:
 * a password may begin or end with spaces, or hold a tab.
 */
static int pop3_command_parse_pass(const char *rest, size_t rest_len, struct pop3_command *cmd,
				   const char **error_r)
{
	if (rest_len <= 1) {
		*error_r = "missing argument";
		return -1;
	}
	rest++;
	rest_len--;
	if (memchr(rest, '\r', rest_len) != NULL || memchr(rest, '\n', rest_len) != NULL) {
		*error_r = "invalid character in command";
		return -1;
	}
	if (rest_len > POP3_PASS_MAX) {
		*error_r = "argument too long";
		return -1;
	}
	cmd->args[0] = rest;
	cmd->arg_len[0] = rest_len;
	cmd->arg_count = 1;
	return 0;
}

/*
 * USER takes the rest of the line; surrounding spaces are dropped since
 * clients pad, and no account name can begin or end with one.
 */
static int pop3_command_parse_user(const char *rest, size_t rest_len, struct pop3_command *cmd,
				   const char **error_r)
{
	while (rest_len > 0 && rest[0] == ' ') {
		rest++;
		rest_len--;
	}
	while (rest_len > 0 && rest[rest_len - 1] == ' ')
		rest_len--;
	if (rest_len == 0) {
		*error_r = "missing argument";
		return -1;
	}
	if (rest_len > POP3_USER_MAX) {
		*error_r = "argument too long";
		return -1;
	}
	cmd->args[0] = rest;
	cmd->arg_len[0] = rest_len;
	cmd->arg_count = 1;
	return 0;
}

/* Splits REST into space separated words, tolerating runs of spaces. */
static int pop3_command_split_words(const char *rest, size_t rest_len, struct pop3_command *cmd,
				    const char **error_r)
{
	size_t i = 0;

	for (;;) {
		size_t start;

		while (i < rest_len && rest[i] == ' ')
			i++;
		if (i == rest_len)
			return 0;
		if (cmd->arg_count == POP3_ARG_MAX) {
			*error_r = "too many arguments";
			return -1;
		}
		start = i;
		while (i < rest_len && rest[i] != ' ')
			i++;
		cmd->args[cmd->arg_count] = rest + start;
		cmd->arg_len[cmd->arg_count] = i - start;
		cmd->arg_count++;
	}
}

/* The numeric arguments of LIST, UIDL, RETR, DELE and TOP. */
static int pop3_command_parse_numbers(struct pop3_command *cmd, const char **error_r)
{
	if (cmd->arg_count == 0)
		return 0;
	if (pop3_message_number_parse(cmd->args[0], cmd->arg_len[0], &cmd->numbers[0], error_r) < 0)
		return -1;
	cmd->has_number = true;
	if (cmd->verb == POP3_VERB_TOP) {
		uint64_t lines;

		if (pop3_number_parse(cmd->args[1], cmd->arg_len[1], POP3_NUMBER_MAX, &lines) < 0) {
			*error_r = "invalid line count";
			return -1;
		}
		cmd->numbers[1] = (uint32_t)lines;
	}
	return 0;
}

/* Parses "N rest" at the start of a listing line: N, then one or more spaces.
 * Returns the offset of REST, or 0 if malformed. */
static size_t pop3_listing_number_parse(const char *line, size_t len, uint32_t *number)
{
	const char *error;
	size_t i = 0, digits;

	while (i < len && pop3_is_digit((unsigned char)line[i]))
		i++;
	digits = i;
	if (pop3_message_number_parse(line, digits, number, &error) < 0)
		return 0;
	while (i < len && line[i] == ' ')
		i++;
	if (i == digits)
		return 0;
	return i;
}

static bool pop3_host_char(unsigned char c)
{
	return pop3_is_alpha(c) || pop3_is_digit(c) || c == '-';
}

/* True if HOST[0..LEN) is a host name: RFC 1123 labels joined by dots. */
static bool pop3_host_valid(const char *host, size_t len)
{
	size_t label_start = 0;

	if (len == 0 || len > POP3_HOST_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		size_t label_len;

		if (i < len && host[i] != '.') {
			if (!pop3_host_char((unsigned char)host[i]))
				return false;
			continue;
		}
		label_len = i - label_start;
		if (label_len == 0 || label_len > POP3_LABEL_MAX)
			return false;
		if (host[label_start] == '-' || host[i - 1] == '-')
			return false;
		label_start = i + 1;
	}
	return true;
}

/* True if the response code S[0..LEN) (without brackets) is well-formed. */
static bool pop3_response_code_valid(const char *s, size_t len)
{
	if (len == 0 || len >= sizeof(((struct pop3_reply *)0)->code))
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!pop3_is_alpha(c) && !pop3_is_digit(c) && c != '/' && c != '-')
			return false;
	}
	return true;
}

/* Takes "[CODE] text" apart if the reply's text starts with a valid code. */
static void pop3_reply_parse_code(struct pop3_reply *reply)
{
	const char *text = reply->text, *close;
	size_t len = reply->text_len, code_len, after;

	if (len == 0 || text[0] != '[')
		return;
	close = memchr(text, ']', len);
	if (close == NULL)
		return;
	code_len = (size_t)(close - text) - 1;
	if (!pop3_response_code_valid(text + 1, code_len))
		return;
	after = code_len + 2;
	if (after < len && text[after] != ' ')
		return;
	memcpy(reply->code, text + 1, code_len);
	reply->code[code_len] = '\0';
	while (after < len && text[after] == ' ')
		after++;
	reply->text = text + after;
	reply->text_len = len - after;
}

const char *pop3_verb_name(enum pop3_verb verb)
{
	if ((int)verb < 0 || verb >= POP3_VERB_COUNT)
		return "";
	return pop3_verbs[verb].name;
}

int pop3_command_parse(const char *line, size_t len, struct pop3_command *cmd, const char **error_r)
{
	const struct pop3_verb_info *info;
	const char *space, *rest;
	size_t verb_len, rest_len;

	memset(cmd, 0, sizeof(*cmd));
	*error_r = NULL;
	if (len == 0) {
		*error_r = "empty command";
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		*error_r = "invalid character in command";
		return -1;
	}
	space = memchr(line, ' ', len);
	verb_len = space != NULL ? (size_t)(space - line) : len;
	cmd->verb = pop3_verb_lookup(line, verb_len);
	if (cmd->verb == POP3_VERB_UNKNOWN) {
		*error_r = "unknown command";
		return -1;
	}
	info = &pop3_verbs[cmd->verb];
	rest = line + verb_len;
	rest_len = len - verb_len;
	if (cmd->verb == POP3_VERB_PASS)
		return pop3_command_parse_pass(rest, rest_len, cmd, error_r);

	if (pop3_has_control(rest, rest_len)) {
		*error_r = "invalid character in command";
		return -1;
	}
	if (cmd->verb == POP3_VERB_USER)
		return pop3_command_parse_user(rest, rest_len, cmd, error_r);
	if (pop3_command_split_words(rest, rest_len, cmd, error_r) < 0)
		return -1;
	if (cmd->arg_count > info->max_args) {
		*error_r = "too many arguments";
		return -1;
	}
	if (cmd->arg_count < info->min_args) {
		*error_r = "missing argument";
		return -1;
	}
	if (info->kind == POP3_ARGS_NUMBERS)
		return pop3_command_parse_numbers(cmd, error_r);
	return 0;
}

int pop3_reply_parse(const char *line, size_t len, struct pop3_reply *reply)
{
	size_t status_len;

	memset(reply, 0, sizeof(*reply));
	if (len >= 3 && line[0] == '+' && pop3_to_lower((unsigned char)line[1]) == 'o' &&
	    pop3_to_lower((unsigned char)line[2]) == 'k') {
		reply->ok = true;
		status_len = 3;
	} else if (len >= 4 && line[0] == '-' && pop3_to_lower((unsigned char)line[1]) == 'e' &&
		   pop3_to_lower((unsigned char)line[2]) == 'r' &&
		   pop3_to_lower((unsigned char)line[3]) == 'r') {
		status_len = 4;
	} else {
		return -1;
	}
	/* "+OKAY" is not "+OK": the status must end the line or be followed by a space. */
	if (len > status_len && line[status_len] != ' ') {
		reply->ok = false;
		return -1;
	}
	reply->text = len > status_len ? line + status_len + 1 : line + len;
	reply->text_len = len > status_len ? len - status_len - 1 : 0;
	pop3_reply_parse_code(reply);
	return 0;
}

bool pop3_is_terminator(const char *line, size_t len)
{
	return len == 1 && line[0] == '.';
}

int pop3_parse_uidl_line(const char *line, size_t len, uint32_t *number,
			 char uidl[POP3_UIDL_MAX + 1])
{
	size_t start = pop3_listing_number_parse(line, len, number);
	size_t uidl_len;

	uidl[0] = '\0';
	if (start == 0)
		return -1;
	uidl_len = len - start;
	if (uidl_len == 0 || uidl_len > POP3_UIDL_MAX)
		return -1;
	for (size_t i = start; i < len; i++)
		if ((unsigned char)line[i] < 0x21 || (unsigned char)line[i] > 0x7e)
			return -1;
	memcpy(uidl, line + start, uidl_len);
	uidl[uidl_len] = '\0';
	return 0;
}

int pop3_parse_list_line(const char *line, size_t len, uint32_t *number, uint64_t *size)
{
	size_t start = pop3_listing_number_parse(line, len, number);
	size_t end;

	if (start == 0)
		return -1;
	end = start;
	while (end < len && pop3_is_digit((unsigned char)line[end]))
		end++;
	/* RFC 1939 lets a server add information after the size, after a space. */
	if (end < len && line[end] != ' ')
		return -1;
	return pop3_number_parse(line + start, end - start, UINT64_MAX, size);
}

void pop3_dot_decoder_init(struct pop3_dot_decoder *decoder)
{
	decoder->state = POP3_DOT_LINE_START;
	decoder->done = false;
}

size_t pop3_dot_decode(struct pop3_dot_decoder *decoder, const char *in, size_t len,
		       pop3_out_fn *out, void *ctx)
{
	const char *p = in, *end = in + len, *run = in;
	int state = decoder->state;

	if (decoder->done)
		return 0;
	while (p < end) {
		const char *nl;

		switch (state) {
		case POP3_DOT_IN_LINE:
			/* The hot path: whole lines pass in one run. */
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL) {
				p = end;
			} else {
				p = nl + 1;
				state = POP3_DOT_LINE_START;
			}
			break;
		case POP3_DOT_LINE_START:
			if (*p == '.') {
				if (p > run)
					out(ctx, run, (size_t)(p - run));
				p++;
				run = p;
				state = POP3_DOT_DOT;
			} else {
				state = POP3_DOT_IN_LINE;
			}
			break;
		case POP3_DOT_DOT:
			if (*p == '\n') {
				decoder->done = true;
				decoder->state = POP3_DOT_LINE_START;
				return (size_t)(p + 1 - in);
			}
			if (*p == '\r') {
				/* Hold the CR back: ".\r\n" ends the reply, and the CR may be
				 * the last byte of this chunk. */
				p++;
				run = p;
				state = POP3_DOT_DOT_CR;
			} else {
				state = POP3_DOT_IN_LINE;
			}
			break;
		case POP3_DOT_DOT_CR:
			if (*p == '\n') {
				decoder->done = true;
				decoder->state = POP3_DOT_LINE_START;
				return (size_t)(p + 1 - in);
			}
			/* A stuffed line that starts with CR: pass the held CR on. */
			out(ctx, "\r", 1);
			state = POP3_DOT_IN_LINE;
			break;
		}
	}
	if (p > run)
		out(ctx, run, (size_t)(p - run));
	decoder->state = state;
	return len;
}

void pop3_dot_encoder_init(struct pop3_dot_encoder *encoder, bool limit_lines, uint32_t body_lines)
{
	memset(encoder, 0, sizeof(*encoder));
	encoder->at_line_start = true;
	encoder->limit_lines = limit_lines;
	encoder->body_lines_left = body_lines;
	encoder->header_line_empty = true;
}

/*
 * TOP bookkeeping for the line bytes SEG[0..LEN) (no LF) and, if ENDS_LINE,
 * the LF after them. A header line is empty when it holds nothing or a lone
 * CR; HEADER_LINE_EMPTY with LAST_WAS_CR tells which of the two so far.
 */
static void pop3_dot_encoder_count(struct pop3_dot_encoder *encoder, const char *seg, size_t len,
				   bool ends_line)
{
	if (!encoder->in_body && len > 0 && encoder->header_line_empty)
		encoder->header_line_empty = len == 1 && seg[0] == '\r' && !encoder->last_was_cr;
	if (!ends_line)
		return;
	if (!encoder->in_body) {
		if (encoder->header_line_empty) {
			encoder->in_body = true;
			encoder->stopped = encoder->body_lines_left == 0;
		}
		encoder->header_line_empty = true;
	} else {
		encoder->body_lines_left--;
		encoder->stopped = encoder->body_lines_left == 0;
	}
}

void pop3_dot_encode(struct pop3_dot_encoder *encoder, const char *in, size_t len, pop3_out_fn *out,
		     void *ctx)
{
	const char *p = in, *end = in + len, *run = in;

	while (p < end && !encoder->stopped) {
		const char *nl, *stop;

		if (encoder->at_line_start) {
			if (*p == '.') {
				/* Stuff: flush up to here, send the extra dot, and let the
				 * line's own dot start the next run. */
				if (p > run)
					out(ctx, run, (size_t)(p - run));
				out(ctx, ".", 1);
				run = p;
			}
			encoder->at_line_start = false;
		}
		nl = memchr(p, '\n', (size_t)(end - p));
		stop = nl != NULL ? nl + 1 : end;
		if (encoder->limit_lines)
			pop3_dot_encoder_count(encoder, p, (size_t)((nl != NULL ? nl : end) - p),
					       nl != NULL);
		encoder->last_was_cr = nl == NULL && stop[-1] == '\r';
		encoder->at_line_start = nl != NULL;
		p = stop;
	}
	if (p > run)
		out(ctx, run, (size_t)(p - run));
}

void pop3_dot_encoder_finish(struct pop3_dot_encoder *encoder, pop3_out_fn *out, void *ctx)
{
	/* A last line without its end gets one; a lone trailing CR only needs the LF. */
	if (!encoder->at_line_start) {
		if (encoder->last_was_cr)
			out(ctx, "\n", 1);
		else
			out(ctx, "\r\n", 2);
		encoder->at_line_start = true;
		encoder->last_was_cr = false;
	}
	out(ctx, ".\r\n", 3);
}

int pop3_account_name_split(const char *name, size_t len, char *login, size_t login_size,
			    char *host, size_t host_size)
{
	const char *at;
	size_t login_len, host_len;

	if (login_size > 0)
		login[0] = '\0';
	if (host_size > 0)
		host[0] = '\0';
	if (memchr(name, '\0', len) != NULL)
		return -1;
	at = memrchr(name, '@', len);
	if (at == NULL)
		return -1;
	login_len = (size_t)(at - name);
	host_len = len - login_len - 1;
	/* A fully qualified name may end in a dot; the host is the same without it. */
	if (host_len > 0 && at[host_len] == '.')
		host_len--;
	if (login_len == 0 || login_len >= login_size || pop3_has_control(name, login_len))
		return -1;
	if (!pop3_host_valid(at + 1, host_len) || host_len >= host_size)
		return -1;
	memcpy(login, name, login_len);
	login[login_len] = '\0';
	for (size_t i = 0; i < host_len; i++)
		host[i] = (char)pop3_to_lower((unsigned char)at[1 + i]);
	host[host_len] = '\0';
	return 0;
}

int pop3_auth_plain_decode(const char *b64, size_t len, char *authcid, size_t authcid_size,
			   char *passwd, size_t passwd_size)
{
	unsigned char plain[POP3_AUTH_PLAIN_MAX];
	const unsigned char *authzid_end, *authcid_start, *authcid_end, *passwd_start, *end;
	size_t plain_len = 0, authzid_len, authcid_len, passwd_len;
	int ret = -1;

	if (authcid_size > 0)
		authcid[0] = '\0';
	if (passwd_size > 0)
		passwd[0] = '\0';
	/* Without an ignore set or an end pointer, libsodium refuses anything that
	 * is not entirely padded base64 and anything that does not fit. */
	if (sodium_base642bin(plain, sizeof(plain), b64, len, NULL, &plain_len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		goto fail;
	end = plain + plain_len;
	authzid_end = memchr(plain, '\0', plain_len);
	if (authzid_end == NULL)
		goto fail;
	authcid_start = authzid_end + 1;
	authcid_end = memchr(authcid_start, '\0', (size_t)(end - authcid_start));
	if (authcid_end == NULL)
		goto fail;
	passwd_start = authcid_end + 1;
	if (memchr(passwd_start, '\0', (size_t)(end - passwd_start)) != NULL)
		goto fail;
	authzid_len = (size_t)(authzid_end - plain);
	authcid_len = (size_t)(authcid_end - authcid_start);
	passwd_len = (size_t)(end - passwd_start);
	if (authcid_len == 0 || passwd_len == 0)
		goto fail;
	/* A CR or LF in a decoded field would end the PASS line popgate sends to
	 * the provider and smuggle commands after it; NUL separates the fields
	 * and would cut a C string short. Refused in every field. */
	if (pop3_has_line_break(plain, authzid_len) ||
	    pop3_has_line_break(authcid_start, authcid_len) ||
	    pop3_has_line_break(passwd_start, passwd_len))
		goto fail;
	/* popgate cannot act for another identity: an authzid must name the user itself. */
	if (authzid_len > 0 &&
	    (authzid_len != authcid_len || memcmp(plain, authcid_start, authcid_len) != 0))
		goto fail;
	if (authcid_len >= authcid_size || passwd_len >= passwd_size)
		goto fail;
	memcpy(authcid, authcid_start, authcid_len);
	authcid[authcid_len] = '\0';
	memcpy(passwd, passwd_start, passwd_len);
	passwd[passwd_len] = '\0';
	ret = 0;
fail:
	sodium_memzero(plain, sizeof(plain));
	return ret;
}
