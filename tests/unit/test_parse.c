/*
 * test_parse.c — unit tests for src/pop3/parse.c: command lines, provider
 * replies, listing lines, the dot codec fed at every split point, account
 * names (P1) and AUTH PLAIN responses.
 *
 * Must never: touch the network or the file system.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "pop3/parse.h"

/* ---- helpers ---------------------------------------------------------- */

/* Collects what a codec writes, and how many times it was called. */
struct sink {
	char data[8192];
	size_t len;
	size_t calls;
};

static void sink_out(void *ctx, const char *data, size_t len)
{
	struct sink *sink = ctx;

	assert_true(len > 0);
	assert_true(sink->len + len <= sizeof(sink->data));
	memcpy(sink->data + sink->len, data, len);
	sink->len += len;
	sink->calls++;
}

static void sink_assert(const struct sink *sink, const char *expected, size_t expected_len)
{
	assert_int_equal(sink->len, expected_len);
	assert_memory_equal(sink->data, expected, expected_len);
}

static int parse_cmd(const char *line, struct pop3_command *cmd, const char **error)
{
	return pop3_command_parse(line, strlen(line), cmd, error);
}

/* Asserts LINE is refused with exactly ERROR. */
static void assert_cmd_error(const char *line, size_t len, const char *error)
{
	struct pop3_command cmd;
	const char *got = NULL;

	assert_int_equal(pop3_command_parse(line, len, &cmd, &got), -1);
	assert_non_null(got);
	assert_string_equal(got, error);
}

static void assert_cmd_error_str(const char *line, const char *error)
{
	assert_cmd_error(line, strlen(line), error);
}

static void assert_arg(const struct pop3_command *cmd, size_t i, const char *expected)
{
	assert_true(i < cmd->arg_count);
	assert_int_equal(cmd->arg_len[i], strlen(expected));
	assert_memory_equal(cmd->args[i], expected, strlen(expected));
}

/* Feeds IN to a fresh decoder in chunks of CHUNK bytes; returns bytes consumed. */
static size_t decode_chunked(const char *in, size_t len, size_t chunk, struct sink *sink,
			     struct pop3_dot_decoder *decoder)
{
	size_t consumed = 0;

	pop3_dot_decoder_init(decoder);
	memset(sink, 0, sizeof(*sink));
	for (size_t pos = 0; pos < len && !decoder->done; pos += chunk) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		size_t used = pop3_dot_decode(decoder, in + pos, n, sink_out, sink);

		assert_true(used <= n);
		if (!decoder->done)
			assert_int_equal(used, n);
		consumed += used;
	}
	return consumed;
}

static void encode_chunked(const char *in, size_t len, size_t chunk, bool limit, uint32_t lines,
			   struct sink *sink, struct pop3_dot_encoder *encoder)
{
	pop3_dot_encoder_init(encoder, limit, lines);
	memset(sink, 0, sizeof(*sink));
	for (size_t pos = 0; pos < len; pos += chunk) {
		size_t n = len - pos < chunk ? len - pos : chunk;

		pop3_dot_encode(encoder, in + pos, n, sink_out, sink);
	}
	pop3_dot_encoder_finish(encoder, sink_out, sink);
}

static char *b64(const void *bin, size_t len)
{
	size_t size = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	char *out = malloc(size);

	assert_non_null(out);
	sodium_bin2base64(out, size, bin, len, sodium_base64_VARIANT_ORIGINAL);
	return out;
}

/* ---- commands --------------------------------------------------------- */

static void test_verb_names(void **state)
{
	static const char *const names[] = {"USER", "PASS", "STAT", "LIST", "UIDL",
					    "RETR", "TOP",  "DELE", "RSET", "NOOP",
					    "QUIT", "CAPA", "STLS", "AUTH", "APOP"};
	(void)state;
	assert_int_equal(sizeof(names) / sizeof(names[0]), POP3_VERB_COUNT - 1);
	for (int v = POP3_VERB_USER; v < POP3_VERB_COUNT; v++)
		assert_string_equal(pop3_verb_name((enum pop3_verb)v), names[v - 1]);
	assert_string_equal(pop3_verb_name(POP3_VERB_UNKNOWN), "");
	assert_string_equal(pop3_verb_name(POP3_VERB_COUNT), "");
}

static void test_command_verbs_case_insensitive(void **state)
{
	static const struct {
		const char *line;
		enum pop3_verb verb;
	} cases[] = {
	    {"STAT", POP3_VERB_STAT},	  {"stat", POP3_VERB_STAT},
	    {"StAt", POP3_VERB_STAT},	  {"rset", POP3_VERB_RSET},
	    {"NOOP", POP3_VERB_NOOP},	  {"quit", POP3_VERB_QUIT},
	    {"Capa", POP3_VERB_CAPA},	  {"STLS", POP3_VERB_STLS},
	    {"list", POP3_VERB_LIST},	  {"uidl", POP3_VERB_UIDL},
	    {"top 1 0", POP3_VERB_TOP},	  {"dele 1", POP3_VERB_DELE},
	    {"retr 9", POP3_VERB_RETR},	  {"user x", POP3_VERB_USER},
	    {"pass y", POP3_VERB_PASS},	  {"auth PLAIN", POP3_VERB_AUTH},
	    {"apop a b", POP3_VERB_APOP},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct pop3_command cmd;
		const char *error = "unset";

		assert_int_equal(parse_cmd(cases[i].line, &cmd, &error), 0);
		assert_null(error);
		assert_int_equal(cmd.verb, cases[i].verb);
	}
}

static void test_command_unknown(void **state)
{
	(void)state;
	assert_cmd_error_str("FOO", "unknown command");
	assert_cmd_error_str("XTND XMIT", "unknown command");
	assert_cmd_error_str("USERS bob", "unknown command");
	assert_cmd_error_str("RETR1", "unknown command");
	assert_cmd_error_str(" USER bob", "unknown command");
	assert_cmd_error_str("US3R bob", "unknown command");
	assert_cmd_error_str("STAT\t", "unknown command");
	assert_cmd_error_str("\xc3\x9cSER x", "unknown command");
	assert_cmd_error_str("", "empty command");
}

static void test_command_control_characters(void **state)
{
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_cmd_error("USER a\0b", 8, "invalid character in command");
	assert_cmd_error("PASS a\0b", 8, "invalid character in command");
	assert_cmd_error("\0", 1, "invalid character in command");
	assert_cmd_error_str("USER a\tb", "invalid character in command");
	assert_cmd_error_str("USER a\rb", "invalid character in command");
	assert_cmd_error_str("RETR 1\x7f", "invalid character in command");
	assert_cmd_error_str("AUTH PLAIN\x1b", "invalid character in command");
	assert_cmd_error_str("PASS a\rb", "invalid character in command");
	assert_cmd_error_str("PASS a\nb", "invalid character in command");
	/* A password may hold a tab or another control character but CR, LF, NUL. */
	assert_int_equal(parse_cmd("PASS a\tb\x01", &cmd, &error), 0);
	assert_arg(&cmd, 0, "a\tb\x01");
	/* UTF-8 in arguments is not a control character. */
	assert_int_equal(parse_cmd("USER j\xc3\xbcrgen@example.org", &cmd, &error), 0);
	assert_arg(&cmd, 0, "j\xc3\xbcrgen@example.org");
}

static void test_command_user(void **state)
{
	struct pop3_command cmd;
	const char *error;
	char line[300];

	(void)state;
	assert_int_equal(parse_cmd("USER myaccount@gmx.de@pop3.gmx.de", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_USER);
	assert_int_equal(cmd.arg_count, 1);
	assert_arg(&cmd, 0, "myaccount@gmx.de@pop3.gmx.de");

	/* Padding spaces go, inner ones stay. */
	assert_int_equal(parse_cmd("USER   john doe@host  ", &cmd, &error), 0);
	assert_arg(&cmd, 0, "john doe@host");

	assert_cmd_error_str("USER", "missing argument");
	assert_cmd_error_str("USER ", "missing argument");
	assert_cmd_error_str("USER    ", "missing argument");

	memcpy(line, "USER ", 5);
	memset(line + 5, 'u', POP3_USER_MAX);
	line[5 + POP3_USER_MAX] = '\0';
	assert_int_equal(parse_cmd(line, &cmd, &error), 0);
	assert_int_equal(cmd.arg_len[0], POP3_USER_MAX);
	assert_ptr_equal(cmd.args[0], line + 5);
	line[5 + POP3_USER_MAX] = 'u';
	line[6 + POP3_USER_MAX] = '\0';
	assert_cmd_error_str(line, "argument too long");
}

static void test_command_pass(void **state)
{
	struct pop3_command cmd;
	const char *error;
	char line[300];

	(void)state;
	assert_int_equal(parse_cmd("PASS secret", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_PASS);
	assert_int_equal(cmd.arg_count, 1);
	assert_arg(&cmd, 0, "secret");

	/* Exactly one separating space: the rest is the password, spaces and all. */
	assert_int_equal(parse_cmd("PASS  two words ", &cmd, &error), 0);
	assert_arg(&cmd, 0, " two words ");
	assert_int_equal(parse_cmd("pass  ", &cmd, &error), 0);
	assert_arg(&cmd, 0, " ");

	assert_cmd_error_str("PASS", "missing argument");
	assert_cmd_error_str("PASS ", "missing argument");

	memcpy(line, "PASS ", 5);
	memset(line + 5, 'p', POP3_PASS_MAX);
	line[5 + POP3_PASS_MAX] = '\0';
	assert_int_equal(parse_cmd(line, &cmd, &error), 0);
	assert_int_equal(cmd.arg_len[0], POP3_PASS_MAX);
	line[5 + POP3_PASS_MAX] = 'p';
	line[6 + POP3_PASS_MAX] = '\0';
	assert_cmd_error_str(line, "argument too long");
}

static void test_command_no_arguments(void **state)
{
	static const char *const verbs[] = {"STAT", "RSET", "NOOP", "QUIT", "CAPA", "STLS"};
	(void)state;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		struct pop3_command cmd;
		const char *error;
		char line[32];

		assert_int_equal(parse_cmd(verbs[i], &cmd, &error), 0);
		assert_int_equal(cmd.arg_count, 0);
		assert_false(cmd.has_number);
		/* Trailing spaces are tolerated. */
		snprintf(line, sizeof(line), "%s  ", verbs[i]);
		assert_int_equal(parse_cmd(line, &cmd, &error), 0);
		assert_int_equal(cmd.arg_count, 0);
		snprintf(line, sizeof(line), "%s 1", verbs[i]);
		assert_cmd_error_str(line, "too many arguments");
		snprintf(line, sizeof(line), "%s a b c", verbs[i]);
		assert_cmd_error_str(line, "too many arguments");
	}
}

static void test_command_list_uidl(void **state)
{
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_cmd("LIST", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_LIST);
	assert_int_equal(cmd.arg_count, 0);
	assert_false(cmd.has_number);

	assert_int_equal(parse_cmd("LIST 3", &cmd, &error), 0);
	assert_true(cmd.has_number);
	assert_int_equal(cmd.numbers[0], 3);
	assert_arg(&cmd, 0, "3");

	assert_int_equal(parse_cmd("uidl   42  ", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_UIDL);
	assert_true(cmd.has_number);
	assert_int_equal(cmd.numbers[0], 42);

	assert_int_equal(parse_cmd("LIST 007", &cmd, &error), 0);
	assert_int_equal(cmd.numbers[0], 7);

	assert_int_equal(parse_cmd("LIST 2147483647", &cmd, &error), 0);
	assert_int_equal(cmd.numbers[0], 2147483647u);

	assert_cmd_error_str("LIST 1 2", "too many arguments");
	assert_cmd_error_str("UIDL 0", "message number must be 1 or more");
	assert_cmd_error_str("LIST 000", "message number must be 1 or more");
	assert_cmd_error_str("LIST 2147483648", "invalid message number");
	assert_cmd_error_str("LIST 4294967297", "invalid message number");
	assert_cmd_error_str("LIST 99999999999999999999999", "invalid message number");
	assert_cmd_error_str("LIST +1", "invalid message number");
	assert_cmd_error_str("LIST -1", "invalid message number");
	assert_cmd_error_str("LIST 1x", "invalid message number");
	assert_cmd_error_str("UIDL abc", "invalid message number");
}

static void test_command_retr_dele(void **state)
{
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_cmd("RETR 1", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_RETR);
	assert_int_equal(cmd.numbers[0], 1);
	assert_true(cmd.has_number);
	assert_int_equal(parse_cmd("dele 12345", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_DELE);
	assert_int_equal(cmd.numbers[0], 12345);

	assert_cmd_error_str("RETR", "missing argument");
	assert_cmd_error_str("RETR ", "missing argument");
	assert_cmd_error_str("DELE", "missing argument");
	assert_cmd_error_str("RETR 1 2", "too many arguments");
	assert_cmd_error_str("RETR 0", "message number must be 1 or more");
	assert_cmd_error_str("DELE x", "invalid message number");
}

static void test_command_top(void **state)
{
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_cmd("TOP 1 0", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_TOP);
	assert_int_equal(cmd.arg_count, 2);
	assert_int_equal(cmd.numbers[0], 1);
	assert_int_equal(cmd.numbers[1], 0);

	assert_int_equal(parse_cmd("top  5   20", &cmd, &error), 0);
	assert_int_equal(cmd.numbers[0], 5);
	assert_int_equal(cmd.numbers[1], 20);
	assert_arg(&cmd, 1, "20");

	assert_int_equal(parse_cmd("TOP 1 2147483647", &cmd, &error), 0);
	assert_int_equal(cmd.numbers[1], 2147483647u);

	assert_cmd_error_str("TOP", "missing argument");
	assert_cmd_error_str("TOP 1", "missing argument");
	assert_cmd_error_str("TOP 1 2 3", "too many arguments");
	assert_cmd_error_str("TOP 0 1", "message number must be 1 or more");
	assert_cmd_error_str("TOP x 1", "invalid message number");
	assert_cmd_error_str("TOP 1 x", "invalid line count");
	assert_cmd_error_str("TOP 1 -1", "invalid line count");
	assert_cmd_error_str("TOP 1 2147483648", "invalid line count");
}

static void test_command_auth_apop(void **state)
{
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(parse_cmd("AUTH PLAIN", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_AUTH);
	assert_int_equal(cmd.arg_count, 1);
	assert_arg(&cmd, 0, "PLAIN");

	assert_int_equal(parse_cmd("AUTH PLAIN AHVzZXIAcGFzcw==", &cmd, &error), 0);
	assert_int_equal(cmd.arg_count, 2);
	assert_arg(&cmd, 1, "AHVzZXIAcGFzcw==");

	assert_int_equal(parse_cmd("AUTH PLAIN =", &cmd, &error), 0);
	assert_arg(&cmd, 1, "=");

	/* A bare AUTH asks for the mechanism list. */
	assert_int_equal(parse_cmd("AUTH", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_AUTH);
	assert_int_equal(cmd.arg_count, 0);
	assert_cmd_error_str("AUTH PLAIN abc def", "too many arguments");

	assert_int_equal(parse_cmd("APOP mrose c4c9334bac560ecc979e58001b3e22fb", &cmd, &error), 0);
	assert_int_equal(cmd.verb, POP3_VERB_APOP);
	assert_arg(&cmd, 0, "mrose");
	assert_arg(&cmd, 1, "c4c9334bac560ecc979e58001b3e22fb");
	assert_false(cmd.has_number);
	assert_cmd_error_str("APOP mrose", "missing argument");
	assert_cmd_error_str("APOP a b c", "too many arguments");
}

static void test_command_not_nul_terminated(void **state)
{
	/* The parser must honour LEN, not look for a NUL. */
	const char line[] = {'R', 'E', 'T', 'R', ' ', '4', '2', '9', '9'};
	struct pop3_command cmd;
	const char *error;

	(void)state;
	assert_int_equal(pop3_command_parse(line, 7, &cmd, &error), 0);
	assert_int_equal(cmd.numbers[0], 42);
	assert_int_equal(pop3_command_parse(line, 4, &cmd, &error), -1);
	assert_string_equal(error, "missing argument");
}

/* ---- replies and listings --------------------------------------------- */

static void assert_reply(const char *line, int ok, const char *code, const char *text)
{
	struct pop3_reply reply;

	assert_int_equal(pop3_reply_parse(line, strlen(line), &reply), 0);
	assert_int_equal(reply.ok, ok);
	assert_string_equal(reply.code, code);
	assert_int_equal(reply.text_len, strlen(text));
	assert_memory_equal(reply.text, text, strlen(text));
}

static void test_reply(void **state)
{
	struct pop3_reply reply;
	char line[64];

	(void)state;
	assert_reply("+OK", 1, "", "");
	assert_reply("+OK ", 1, "", "");
	assert_reply("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>", 1, "",
		     "POP3 server ready <1896.697170952@dbc.mtview.ca.us>");
	assert_reply("-ERR", 0, "", "");
	assert_reply("-ERR no such message", 0, "", "no such message");
	assert_reply("-ERR [AUTH] invalid password", 0, "AUTH", "invalid password");
	assert_reply("-ERR [SYS/TEMP] try again later", 0, "SYS/TEMP", "try again later");
	assert_reply("-ERR [LOGIN-DELAY]", 0, "LOGIN-DELAY", "");
	assert_reply("-ERR [IN-USE]   mailbox locked", 0, "IN-USE", "mailbox locked");
	assert_reply("+ok lower case", 1, "", "lower case");
	assert_reply("-err lower case", 0, "", "lower case");
	assert_reply("+OK  two spaces", 1, "", " two spaces");

	/* Malformed codes stay in the text. */
	assert_reply("-ERR [bad code] x", 0, "", "[bad code] x");
	assert_reply("-ERR [] x", 0, "", "[] x");
	assert_reply("-ERR [AUTH", 0, "", "[AUTH");
	assert_reply("-ERR [AUTH]x", 0, "", "[AUTH]x");
	assert_reply("-ERR [A_B] x", 0, "", "[A_B] x");

	/* 31 characters fit, 32 do not. */
	snprintf(line, sizeof(line), "-ERR [%s] t", "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234");
	assert_reply(line, 0, "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "t");
	snprintf(line, sizeof(line), "-ERR [%s] t", "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345");
	assert_reply(line, 0, "", "[ABCDEFGHIJKLMNOPQRSTUVWXYZ012345] t");

	assert_int_equal(pop3_reply_parse("+OKAY", 5, &reply), -1);
	assert_int_equal(pop3_reply_parse("-ERROR", 6, &reply), -1);
	assert_int_equal(pop3_reply_parse("+OK\tx", 5, &reply), -1);
	assert_int_equal(pop3_reply_parse("OK", 2, &reply), -1);
	assert_int_equal(pop3_reply_parse("", 0, &reply), -1);
	assert_int_equal(pop3_reply_parse("+O", 2, &reply), -1);
	assert_int_equal(pop3_reply_parse("-ER", 3, &reply), -1);
	assert_int_equal(pop3_reply_parse(" +OK", 4, &reply), -1);
	assert_int_equal(pop3_reply_parse("* OK", 4, &reply), -1);
	/* LEN is honoured: "+OK" cut to "+O". */
	assert_int_equal(pop3_reply_parse("+OK", 2, &reply), -1);
	assert_int_equal(pop3_reply_parse("+OKAY", 3, &reply), 0);
	assert_true(reply.ok);
}

static void test_terminator(void **state)
{
	(void)state;
	assert_true(pop3_is_terminator(".", 1));
	assert_false(pop3_is_terminator("..", 2));
	assert_false(pop3_is_terminator("", 0));
	assert_false(pop3_is_terminator(". ", 2));
	assert_false(pop3_is_terminator("x", 1));
	assert_true(pop3_is_terminator(".x", 1));
}

static int uidl_line(const char *line, uint32_t *number, char *uidl)
{
	return pop3_parse_uidl_line(line, strlen(line), number, uidl);
}

static void test_uidl_line(void **state)
{
	uint32_t number = 0;
	char uidl[POP3_UIDL_MAX + 1];
	char line[128];

	(void)state;
	assert_int_equal(uidl_line("1 whqtswO00WBw418f9t5JxYwZ", &number, uidl), 0);
	assert_int_equal(number, 1);
	assert_string_equal(uidl, "whqtswO00WBw418f9t5JxYwZ");
	assert_int_equal(uidl_line("12    QhdPYR:00WBw1Ph7x7", &number, uidl), 0);
	assert_int_equal(number, 12);
	assert_string_equal(uidl, "QhdPYR:00WBw1Ph7x7");
	assert_int_equal(uidl_line("3 !~", &number, uidl), 0);
	assert_string_equal(uidl, "!~");

	snprintf(line, sizeof(line), "2 %.*s", POP3_UIDL_MAX,
		 "0123456789012345678901234567890123456789012345678901234567890123456789XYZ");
	assert_int_equal(uidl_line(line, &number, uidl), 0);
	assert_int_equal(strlen(uidl), POP3_UIDL_MAX);
	snprintf(line, sizeof(line), "2 %.*s", POP3_UIDL_MAX + 1,
		 "0123456789012345678901234567890123456789012345678901234567890123456789XYZ");
	assert_int_equal(uidl_line(line, &number, uidl), -1);

	assert_int_equal(uidl_line("1", &number, uidl), -1);
	assert_int_equal(uidl_line("1 ", &number, uidl), -1);
	assert_int_equal(uidl_line("1abc", &number, uidl), -1);
	assert_int_equal(uidl_line("0 abc", &number, uidl), -1);
	assert_int_equal(uidl_line("x abc", &number, uidl), -1);
	assert_int_equal(uidl_line(" 1 abc", &number, uidl), -1);
	assert_int_equal(uidl_line("1\tabc", &number, uidl), -1);
	assert_int_equal(uidl_line("1 a b", &number, uidl), -1);
	assert_int_equal(uidl_line("1 abc ", &number, uidl), -1);
	assert_int_equal(uidl_line("1 ab\x7f", &number, uidl), -1);
	assert_int_equal(uidl_line("1 \xc3\xa4", &number, uidl), -1);
	assert_int_equal(uidl_line("2147483648 abc", &number, uidl), -1);
	assert_int_equal(uidl_line("", &number, uidl), -1);
	assert_int_equal(pop3_parse_uidl_line("1 a\0b", 5, &number, uidl), -1);
}

static int list_line(const char *line, uint32_t *number, uint64_t *size)
{
	return pop3_parse_list_line(line, strlen(line), number, size);
}

static void test_list_line(void **state)
{
	uint32_t number = 0;
	uint64_t size = 0;

	(void)state;
	assert_int_equal(list_line("1 120", &number, &size), 0);
	assert_int_equal(number, 1);
	assert_int_equal(size, 120);
	assert_int_equal(list_line("2   200 extra information", &number, &size), 0);
	assert_int_equal(number, 2);
	assert_int_equal(size, 200);
	assert_int_equal(list_line("3 0", &number, &size), 0);
	assert_int_equal(size, 0);
	assert_int_equal(list_line("4 18446744073709551615", &number, &size), 0);
	assert_true(size == UINT64_MAX);

	assert_int_equal(list_line("4 18446744073709551616", &number, &size), -1);
	assert_int_equal(list_line("4 99999999999999999999", &number, &size), -1);
	assert_int_equal(list_line("3 12x", &number, &size), -1);
	assert_int_equal(list_line("3", &number, &size), -1);
	assert_int_equal(list_line("3 ", &number, &size), -1);
	assert_int_equal(list_line("3 -5", &number, &size), -1);
	assert_int_equal(list_line("3 +5", &number, &size), -1);
	assert_int_equal(list_line("0 5", &number, &size), -1);
	assert_int_equal(list_line("35", &number, &size), -1);
	assert_int_equal(list_line("", &number, &size), -1);
}

/* ---- dot decoder ------------------------------------------------------ */

/* A reply body with every kind of line, then the start of the next reply. */
static const char decode_in[] = "Subject: dots\r\n"
				"\r\n"
				"..leading dot\r\n"
				"a . inside\r\n"
				"...\r\n"
				"..\r\n"
				".unstuffed\r\n"
				"bare LF line\n"
				"..LF stuffed\n"
				".\rheld CR\r\n"
				"cr\rin line\r\n"
				"last\r\n"
				".\r\n"
				"+OK next";
static const char decode_out[] = "Subject: dots\r\n"
				 "\r\n"
				 ".leading dot\r\n"
				 "a . inside\r\n"
				 "..\r\n"
				 ".\r\n"
				 "unstuffed\r\n"
				 "bare LF line\n"
				 ".LF stuffed\n"
				 "\rheld CR\r\n"
				 "cr\rin line\r\n"
				 "last\r\n";

static void test_decode_every_chunk_size(void **state)
{
	size_t in_len = sizeof(decode_in) - 1, body_len = in_len - strlen("+OK next");

	(void)state;
	for (size_t chunk = 1; chunk <= in_len; chunk++) {
		struct pop3_dot_decoder decoder;
		struct sink sink;
		size_t used = decode_chunked(decode_in, in_len, chunk, &sink, &decoder);

		assert_true(decoder.done);
		assert_int_equal(used, body_len);
		sink_assert(&sink, decode_out, sizeof(decode_out) - 1);
	}
}

static void test_decode_every_split_point(void **state)
{
	size_t in_len = sizeof(decode_in) - 1, body_len = in_len - strlen("+OK next");

	(void)state;
	for (size_t split = 0; split <= in_len; split++) {
		struct pop3_dot_decoder decoder;
		struct sink sink = {0};
		size_t used;

		pop3_dot_decoder_init(&decoder);
		used = pop3_dot_decode(&decoder, decode_in, split, sink_out, &sink);
		if (!decoder.done)
			used += pop3_dot_decode(&decoder, decode_in + split, in_len - split,
						sink_out, &sink);
		assert_true(decoder.done);
		assert_int_equal(used, body_len);
		sink_assert(&sink, decode_out, sizeof(decode_out) - 1);
	}
}

static void test_decode_batches_output(void **state)
{
	static const char in[] = "line one\r\nline two\r\n..three\r\nfour\r\n.\r\n";
	struct pop3_dot_decoder decoder;
	struct sink sink = {0};

	(void)state;
	pop3_dot_decoder_init(&decoder);
	assert_int_equal(pop3_dot_decode(&decoder, in, sizeof(in) - 1, sink_out, &sink),
			 sizeof(in) - 1);
	assert_true(decoder.done);
	sink_assert(&sink, "line one\r\nline two\r\n.three\r\nfour\r\n", 34);
	/* One run before the removed dot, one after it. */
	assert_int_equal(sink.calls, 2);
}

static void test_decode_terminators(void **state)
{
	struct pop3_dot_decoder decoder;
	struct sink sink = {0};

	(void)state;
	/* An empty body. */
	pop3_dot_decoder_init(&decoder);
	assert_int_equal(pop3_dot_decode(&decoder, ".\r\nX", 4, sink_out, &sink), 3);
	assert_true(decoder.done);
	assert_int_equal(sink.len, 0);
	/* Once done, nothing more is taken. */
	assert_int_equal(pop3_dot_decode(&decoder, "X", 1, sink_out, &sink), 0);
	assert_int_equal(sink.calls, 0);

	/* A bare-LF terminator. */
	pop3_dot_decoder_init(&decoder);
	assert_int_equal(pop3_dot_decode(&decoder, "a\n.\nb", 5, sink_out, &sink), 4);
	assert_true(decoder.done);
	sink_assert(&sink, "a\n", 2);

	/* Without the terminator everything is consumed and passed on. */
	memset(&sink, 0, sizeof(sink));
	pop3_dot_decoder_init(&decoder);
	assert_int_equal(pop3_dot_decode(&decoder, "abc\r\n. \r\n", 9, sink_out, &sink), 9);
	assert_false(decoder.done);
	sink_assert(&sink, "abc\r\n \r\n", 8);
	/* A "." not at a line start is data. */
	assert_int_equal(pop3_dot_decode(&decoder, "x.\r\n", 4, sink_out, &sink), 4);
	assert_false(decoder.done);
	/* An empty call changes nothing. */
	assert_int_equal(pop3_dot_decode(&decoder, "", 0, sink_out, &sink), 0);
	assert_int_equal(pop3_dot_decode(&decoder, ".\r\n", 3, sink_out, &sink), 3);
	assert_true(decoder.done);
	sink_assert(&sink, "abc\r\n \r\nx.\r\n", 12);
}

/* ---- dot encoder ------------------------------------------------------ */

static void assert_encoded(const char *in, bool limit, uint32_t lines, const char *expected,
			   bool stopped)
{
	size_t in_len = strlen(in);

	/* Every chunk size must give the same bytes. */
	for (size_t chunk = 1; chunk <= (in_len > 0 ? in_len : 1); chunk++) {
		struct pop3_dot_encoder encoder;
		struct sink sink;

		encode_chunked(in, in_len, chunk, limit, lines, &sink, &encoder);
		sink_assert(&sink, expected, strlen(expected));
		assert_int_equal(encoder.stopped, stopped);
	}
}

static void test_encode_stuffing(void **state)
{
	(void)state;
	assert_encoded("a\r\n.b\r\n..\r\n.\r\nend.\r\n", false, 0,
		       "a\r\n..b\r\n...\r\n..\r\nend.\r\n.\r\n", false);
	assert_encoded(".first\r\n", false, 0, "..first\r\n.\r\n", false);
	assert_encoded("", false, 0, ".\r\n", false);
	/* Bare-LF messages are served as stored. */
	assert_encoded("a\n.b\nc\n", false, 0, "a\n..b\nc\n.\r\n", false);
	/* An unended last line is ended before the terminator. */
	assert_encoded("abc", false, 0, "abc\r\n.\r\n", false);
	assert_encoded("abc\r\n.", false, 0, "abc\r\n..\r\n.\r\n", false);
	assert_encoded("abc\r", false, 0, "abc\r\n.\r\n", false);
	assert_encoded("a\rb", false, 0, "a\rb\r\n.\r\n", false);
}

static void test_encode_batches_output(void **state)
{
	static const char in[] = "From: a\r\nTo: b\r\n\r\nbody\r\n.dot\r\nmore\r\n";
	static const char expected[] = "From: a\r\nTo: b\r\n\r\nbody\r\n..dot\r\nmore\r\n";
	struct pop3_dot_encoder encoder;
	struct sink sink = {0};

	(void)state;
	pop3_dot_encoder_init(&encoder, false, 0);
	pop3_dot_encode(&encoder, in, sizeof(in) - 1, sink_out, &sink);
	/* The run before the dot, the extra dot, the run from the dot on. */
	assert_int_equal(sink.calls, 3);
	sink_assert(&sink, expected, sizeof(expected) - 1);
}

static const char top_in[] = "From: a@example.org\r\n"
			     "Subject: hi\r\n"
			     "\r\n"
			     "line 1\r\n"
			     ".line 2\r\n"
			     "line 3\r\n";

static void test_encode_top(void **state)
{
	(void)state;
	assert_encoded(top_in, true, 0, "From: a@example.org\r\nSubject: hi\r\n\r\n.\r\n", true);
	assert_encoded(top_in, true, 1, "From: a@example.org\r\nSubject: hi\r\n\r\nline 1\r\n.\r\n",
		       true);
	assert_encoded(top_in, true, 2,
		       "From: a@example.org\r\nSubject: hi\r\n\r\nline 1\r\n..line 2\r\n.\r\n",
		       true);
	/* More lines asked for than there are: the whole message. */
	assert_encoded(top_in, true, 10,
		       "From: a@example.org\r\nSubject: hi\r\n\r\nline 1\r\n..line 2\r\n"
		       "line 3\r\n.\r\n",
		       false);
	/* Bare LF endings count the same. */
	assert_encoded("H: 1\n\nb1\nb2\nb3\n", true, 2, "H: 1\n\nb1\nb2\n.\r\n", true);
	assert_encoded("H: 1\n\nb1\n", true, 0, "H: 1\n\n.\r\n", true);
	/* A header without its end is sent whole. */
	assert_encoded("H: 1\r\nH: 2\r\n", true, 0, "H: 1\r\nH: 2\r\n.\r\n", false);
	/* A line holding only a CR before the CRLF is not the empty line. */
	assert_encoded("H: 1\r\n\r\r\nH: 2\r\n\r\nb\r\n", true, 0,
		       "H: 1\r\n\r\r\nH: 2\r\n\r\n.\r\n", true);
	/* A message that starts with the empty line has no header. */
	assert_encoded("\r\nb1\r\nb2\r\n", true, 1, "\r\nb1\r\n.\r\n", true);
	/* The stopped encoder ignores further input. */
	{
		struct pop3_dot_encoder encoder;
		struct sink sink = {0};

		pop3_dot_encoder_init(&encoder, true, 0);
		pop3_dot_encode(&encoder, "H: 1\r\n\r\n", 8, sink_out, &sink);
		assert_true(encoder.stopped);
		pop3_dot_encode(&encoder, "body\r\n", 6, sink_out, &sink);
		pop3_dot_encoder_finish(&encoder, sink_out, &sink);
		sink_assert(&sink, "H: 1\r\n\r\n.\r\n", 11);
	}
}

/* A small deterministic generator, so a failure reproduces. */
static uint32_t test_random(uint32_t *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return *seed >> 16;
}

static void test_encode_decode_round_trip(void **state)
{
	static const char alphabet[] = ".\r\n.a ";
	uint32_t seed = 42;

	(void)state;
	for (int round = 0; round < 300; round++) {
		char msg[200];
		size_t len = test_random(&seed) % (sizeof(msg) - 2);
		struct pop3_dot_encoder encoder;
		struct pop3_dot_decoder decoder;
		struct sink encoded, decoded;
		size_t chunk = 1 + test_random(&seed) % 17;

		for (size_t i = 0; i < len; i++)
			msg[i] = alphabet[test_random(&seed) % (sizeof(alphabet) - 1)];
		msg[len++] = '\r';
		msg[len++] = '\n';
		encode_chunked(msg, len, chunk, false, 0, &encoded, &encoder);
		assert_int_equal(
		    decode_chunked(encoded.data, encoded.len, chunk, &decoded, &decoder),
		    encoded.len);
		assert_true(decoder.done);
		sink_assert(&decoded, msg, len);
	}
}

/* ---- account names (P1) ----------------------------------------------- */

static int split(const char *name, char *login, size_t login_size, char *host, size_t host_size)
{
	return pop3_account_name_split(name, strlen(name), login, login_size, host, host_size);
}

static void assert_split(const char *name, const char *login, const char *host)
{
	char l[256], h[256];

	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), 0);
	assert_string_equal(l, login);
	assert_string_equal(h, host);
}

static void assert_split_fails(const char *name)
{
	char l[256] = "x", h[256] = "x";

	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), -1);
	assert_string_equal(l, "");
	assert_string_equal(h, "");
}

static void test_account_split(void **state)
{
	char name[400], l[256], h[256];

	(void)state;
	assert_split("myaccount@pop3.web.de", "myaccount", "pop3.web.de");
	assert_split("myaccount@gmx.de@pop3.gmx.de", "myaccount@gmx.de", "pop3.gmx.de");
	assert_split("User.Name@POP3.GMX.Net", "User.Name", "pop3.gmx.net");
	assert_split("a@pop3.gmx.net.", "a", "pop3.gmx.net");
	assert_split("a@127.0.0.1", "a", "127.0.0.1");
	assert_split("a@localhost", "a", "localhost");
	assert_split("a@x-y.de", "a", "x-y.de");
	assert_split("john doe@host", "john doe", "host");

	assert_split_fails("no-at-sign");
	assert_split_fails("a@");
	assert_split_fails("@host");
	assert_split_fails("@");
	assert_split_fails("");
	assert_split_fails("a@b c");
	assert_split_fails("a@-x.de");
	assert_split_fails("a@x-.de");
	assert_split_fails("a@x.-de");
	assert_split_fails("a@.");
	assert_split_fails("a@.de");
	assert_split_fails("a@x..de");
	assert_split_fails("a@x.de..");
	assert_split_fails("a@b_c.de");
	assert_split_fails("a@b:110");
	assert_split_fails("a@b/c");
	assert_split_fails("a\tb@host");
	assert_split_fails("a\x7f@host");
	assert_int_equal(pop3_account_name_split("a@b\0c", 5, l, sizeof(l), h, sizeof(h)), -1);
	assert_int_equal(pop3_account_name_split("a\0@b", 4, l, sizeof(l), h, sizeof(h)), -1);

	/* LEN is honoured. */
	assert_int_equal(pop3_account_name_split("a@host.dex", 6, l, sizeof(l), h, sizeof(h)), 0);
	assert_string_equal(h, "host");

	/* Labels of 63, not 64; hosts of 253, not 254. */
	snprintf(name, sizeof(name), "a@%.63s.de",
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), 0);
	snprintf(name, sizeof(name), "a@%.64s.de",
		 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), -1);
	strcpy(name, "a@");
	for (int i = 0; i < 63; i++)
		strcat(name, "abc.");
	strcat(name, "a"); /* 63*4 + 1 = 253 */
	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), 0);
	assert_int_equal(strlen(h), 253);
	strcat(name, "."); /* the trailing dot does not count */
	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), 0);
	assert_int_equal(strlen(h), 253);
	name[strlen(name) - 1] = 'b'; /* 254 */
	assert_int_equal(split(name, l, sizeof(l), h, sizeof(h)), -1);
}

static void test_account_split_buffer_sizes(void **state)
{
	char l[4], h[8];

	(void)state;
	assert_int_equal(split("abc@abcdefg", l, sizeof(l), h, sizeof(h)), 0);
	assert_string_equal(l, "abc");
	assert_string_equal(h, "abcdefg");
	assert_int_equal(split("abcd@abc", l, sizeof(l), h, sizeof(h)), -1);
	assert_int_equal(split("abc@abcdefgh", l, sizeof(l), h, sizeof(h)), -1);
	assert_int_equal(split("abc@abcdefg.", l, sizeof(l), h, sizeof(h)), 0);
	assert_int_equal(split("a@b", l, 0, h, sizeof(h)), -1);
}

/* ---- AUTH PLAIN ------------------------------------------------------- */

static int plain(const void *bin, size_t len, char *authcid, size_t authcid_size, char *passwd,
		 size_t passwd_size)
{
	char *encoded = b64(bin, len);
	int ret = pop3_auth_plain_decode(encoded, strlen(encoded), authcid, authcid_size, passwd,
					 passwd_size);

	free(encoded);
	return ret;
}

static void assert_plain_fails(const void *bin, size_t len)
{
	char authcid[64] = "x", passwd[64] = "x";

	assert_int_equal(plain(bin, len, authcid, sizeof(authcid), passwd, sizeof(passwd)), -1);
	assert_string_equal(authcid, "");
	assert_string_equal(passwd, "");
}

static void test_auth_plain(void **state)
{
	char authcid[64], passwd[64];

	(void)state;
	assert_int_equal(
	    plain("\0a@b@pop.host\0se cret", 21, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    0);
	assert_string_equal(authcid, "a@b@pop.host");
	assert_string_equal(passwd, "se cret");

	assert_int_equal(
	    plain("user\0user\0pw", 12, authcid, sizeof(authcid), passwd, sizeof(passwd)), 0);
	assert_string_equal(authcid, "user");
	assert_string_equal(passwd, "pw");

	/* RFC 4616's own example. */
	assert_int_equal(pop3_auth_plain_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm", 28, authcid,
						sizeof(authcid), passwd, sizeof(passwd)),
			 0);
	assert_string_equal(authcid, "tim");
	assert_string_equal(passwd, "tanstaaftanstaaf");

	assert_plain_fails("other\0user\0pw", 13);
	assert_plain_fails("use\0user\0pw", 11);
	assert_plain_fails("user\0use\0pw", 11);
	assert_plain_fails("\0\0pw", 4);
	assert_plain_fails("\0user\0", 6);
	assert_plain_fails("\0user\0p\0w", 9);
	assert_plain_fails("userpw", 6);
	assert_plain_fails("\0userpw", 7);
	assert_plain_fails("", 0);
}

static void test_auth_plain_line_breaks(void **state)
{
	char authcid[64], passwd[64];

	(void)state;
	/* A CR or LF would end the PASS line sent to the provider and smuggle
	 * the rest in as commands: refused in every field. */
	assert_plain_fails("\0a@pop.host\0pw\r\nDELE 1", 22);
	assert_plain_fails("\0a@pop.host\0pw\nDELE 1", 21);
	assert_plain_fails("\0a@pop.host\0pw\r", 15);
	assert_plain_fails("\0a@pop.host\0\r\n", 14);
	assert_plain_fails("\0a\r\nDELE 1@pop.host\0pw", 22);
	assert_plain_fails("\0a\n@pop.host\0pw", 15);
	assert_plain_fails("\0a@pop.host\r\0pw", 15);
	assert_plain_fails("a@pop.host\r\0a@pop.host\r\0pw", 26);
	assert_plain_fails("a\n\0a\n\0pw", 8);
	/* NUL: a fourth field, or one inside the password. */
	assert_plain_fails("\0a@pop.host\0p\0w", 15);
	assert_plain_fails("\0a@pop.host\0pw\0", 15);
	/* A NUL in the base64 text itself (a continuation line skips the
	 * command parser) is no base64. */
	assert_int_equal(pop3_auth_plain_decode("AHUA\0cA==", 9, authcid, sizeof(authcid), passwd,
						sizeof(passwd)),
			 -1);
	/* Other control characters stay allowed in a password (as in PASS). */
	assert_int_equal(
	    plain("\0a@pop.host\0p\tw\x01", 16, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    0);
	assert_string_equal(authcid, "a@pop.host");
	assert_string_equal(passwd, "p\tw\x01");
}

static void test_auth_plain_malformed_base64(void **state)
{
	char authcid[64] = "x", passwd[64] = "x";

	(void)state;
	assert_int_equal(
	    pop3_auth_plain_decode("=", 1, authcid, sizeof(authcid), passwd, sizeof(passwd)), -1);
	assert_string_equal(authcid, "");
	assert_string_equal(passwd, "");
	assert_int_equal(
	    pop3_auth_plain_decode("", 0, authcid, sizeof(authcid), passwd, sizeof(passwd)), -1);
	assert_int_equal(
	    pop3_auth_plain_decode("!!!!", 4, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    -1);
	/* "\0u\0p" must be padded, and nothing may follow. */
	assert_int_equal(
	    pop3_auth_plain_decode("AHUAcA==", 8, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    0);
	assert_int_equal(
	    pop3_auth_plain_decode("AHUAcA", 6, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    -1);
	assert_int_equal(pop3_auth_plain_decode("AHUAcA== ", 9, authcid, sizeof(authcid), passwd,
						sizeof(passwd)),
			 -1);
	assert_int_equal(pop3_auth_plain_decode("AHUA cA==", 9, authcid, sizeof(authcid), passwd,
						sizeof(passwd)),
			 -1);
	/* LEN is honoured: the padding cut off makes it malformed. */
	assert_int_equal(
	    pop3_auth_plain_decode("AHUAcA==", 7, authcid, sizeof(authcid), passwd, sizeof(passwd)),
	    -1);
}

static void test_auth_plain_limits(void **state)
{
	char authcid[5], passwd[4];
	char big[4000];

	(void)state;
	/* Exactly fitting buffers. */
	assert_int_equal(plain("\0abcd\0xyz", 9, authcid, sizeof(authcid), passwd, sizeof(passwd)),
			 0);
	assert_string_equal(authcid, "abcd");
	assert_string_equal(passwd, "xyz");
	assert_int_equal(
	    plain("\0abcde\0xyz", 10, authcid, sizeof(authcid), passwd, sizeof(passwd)), -1);
	assert_int_equal(
	    plain("\0abcd\0wxyz", 10, authcid, sizeof(authcid), passwd, sizeof(passwd)), -1);
	/* A response far larger than any buffer is refused, not truncated. */
	memset(big, 'a', sizeof(big));
	big[0] = '\0';
	big[10] = '\0';
	assert_int_equal(plain(big, sizeof(big), authcid, sizeof(authcid), passwd, sizeof(passwd)),
			 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verb_names),
	    cmocka_unit_test(test_command_verbs_case_insensitive),
	    cmocka_unit_test(test_command_unknown),
	    cmocka_unit_test(test_command_control_characters),
	    cmocka_unit_test(test_command_user),
	    cmocka_unit_test(test_command_pass),
	    cmocka_unit_test(test_command_no_arguments),
	    cmocka_unit_test(test_command_list_uidl),
	    cmocka_unit_test(test_command_retr_dele),
	    cmocka_unit_test(test_command_top),
	    cmocka_unit_test(test_command_auth_apop),
	    cmocka_unit_test(test_command_not_nul_terminated),
	    cmocka_unit_test(test_reply),
	    cmocka_unit_test(test_terminator),
	    cmocka_unit_test(test_uidl_line),
	    cmocka_unit_test(test_list_line),
	    cmocka_unit_test(test_decode_every_chunk_size),
	    cmocka_unit_test(test_decode_every_split_point),
	    cmocka_unit_test(test_decode_batches_output),
	    cmocka_unit_test(test_decode_terminators),
	    cmocka_unit_test(test_encode_stuffing),
	    cmocka_unit_test(test_encode_batches_output),
	    cmocka_unit_test(test_encode_top),
	    cmocka_unit_test(test_encode_decode_round_trip),
	    cmocka_unit_test(test_account_split),
	    cmocka_unit_test(test_account_split_buffer_sizes),
	    cmocka_unit_test(test_auth_plain),
	    cmocka_unit_test(test_auth_plain_line_breaks),
	    cmocka_unit_test(test_auth_plain_malformed_base64),
	    cmocka_unit_test(test_auth_plain_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
