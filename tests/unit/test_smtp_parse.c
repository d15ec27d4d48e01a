/*
 * test_smtp_parse.c — unit tests for src/smtp/parse.c: verbs, MAIL and RCPT
 * paths (quoted, source routes, null sender) and parameters (SIZE, BODY,
 * SMTPUTF8, AUTH), AUTH and BDAT arguments, and every refusal's reply code
 * and enhanced status code.
 *
 * Must never: touch the network or the file system.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/parse.h"

static struct smtp_command cmd;

/* Parses LINE; asserts it is taken. */
static void parse_ok(const char *line)
{
	const struct smtp_parse_error *error = NULL;

	if (smtp_command_parse(line, strlen(line), &cmd, &error) < 0)
		fail_msg("refused %s: %d %s %s", line, error->code, error->status, error->text);
}

/* Parses LINE; asserts it is refused with CODE and STATUS. */
static void parse_refused(const char *line, int code, const char *status)
{
	const struct smtp_parse_error *error = NULL;

	assert_int_equal(smtp_command_parse(line, strlen(line), &cmd, &error), -1);
	assert_non_null(error);
	assert_int_equal(error->code, code);
	assert_string_equal(error->status, status);
}

static void test_verbs(void **state)
{
	(void)state;
	parse_ok("EHLO client.example.org");
	assert_int_equal(cmd.verb, SMTP_VERB_EHLO);
	assert_int_equal(cmd.arg_len, strlen("client.example.org"));
	assert_memory_equal(cmd.arg, "client.example.org", cmd.arg_len);
	parse_ok("helo x");
	assert_int_equal(cmd.verb, SMTP_VERB_HELO);
	parse_ok("DATA");
	parse_ok("quit");
	parse_ok("StartTLS");
	assert_int_equal(cmd.verb, SMTP_VERB_STARTTLS);
	parse_ok("NOOP");
	parse_ok("NOOP with text");
	parse_ok("HELP");
	assert_string_equal(smtp_verb_name(SMTP_VERB_RCPT), "RCPT");
	assert_string_equal(smtp_verb_name(SMTP_VERB_UNKNOWN), "");
}

static void test_verb_refusals(void **state)
{
	(void)state;
	parse_refused("", 500, "5.5.2");
	parse_refused("FOO", 500, "5.5.2");
	parse_refused("EHLOX", 500, "5.5.2");
	parse_refused("MAILFROM:<a@b.c>", 500, "5.5.2");
	parse_refused("EHLO", 501, "5.5.4");
	parse_refused("EHLO ", 501, "5.5.4");
	parse_refused("DATA now", 501, "5.5.4");
	parse_refused("STARTTLS x", 501, "5.5.4");
	parse_refused("VRFY", 501, "5.5.4");
	/* A NUL, a CR or an LF inside a line is no command. */
	const struct smtp_parse_error *error = NULL;
	assert_int_equal(smtp_command_parse("NOOP\0x", 6, &cmd, &error), -1);
	assert_int_equal(error->code, 500);
	parse_refused("NOOP a\rb", 500, "5.5.2");
}

static void test_line_length(void **state)
{
	char *line = malloc(SMTP_COMMAND_LINE_MAX + 20);
	(void)state;

	memset(line, 'x', SMTP_COMMAND_LINE_MAX + 10);
	memcpy(line, "NOOP ", 5);
	line[SMTP_COMMAND_LINE_MAX] = '\0';
	parse_ok(line);
	line[SMTP_COMMAND_LINE_MAX] = 'x';
	line[SMTP_COMMAND_LINE_MAX + 1] = '\0';
	parse_refused(line, 500, "5.5.2");
	/* AUTH's initial response may be longer (RFC 4954 4). */
	memcpy(line, "AUTH PLAIN ", 11);
	parse_ok(line);
	assert_int_equal(cmd.initial_len, SMTP_COMMAND_LINE_MAX + 1 - 11);
	free(line);
}

static void test_mail(void **state)
{
	(void)state;
	parse_ok("MAIL FROM:<alice@example.org>");
	assert_int_equal(cmd.verb, SMTP_VERB_MAIL);
	assert_string_equal(cmd.path, "alice@example.org");
	assert_false(cmd.has_size);
	assert_int_equal(cmd.body, SMTP_BODY_NONE);
	parse_ok("mail from:<>");
	assert_string_equal(cmd.path, "");
	/* A space after the colon is taken, as many clients send one. */
	parse_ok("MAIL FROM: <a@b.c>");
	assert_string_equal(cmd.path, "a@b.c");
	parse_ok("MAIL FROM:<a@b.c> SIZE=12345 BODY=8BITMIME SMTPUTF8 AUTH=<>");
	assert_true(cmd.has_size);
	assert_int_equal(cmd.size, 12345);
	assert_int_equal(cmd.body, SMTP_BODY_8BITMIME);
	assert_true(cmd.smtputf8);
	parse_ok("MAIL FROM:<a@b.c>  body=7bit");
	assert_int_equal(cmd.body, SMTP_BODY_7BIT);
}

static void test_mail_refusals(void **state)
{
	(void)state;
	parse_refused("MAIL", 501, "5.5.4");
	parse_refused("MAIL TO:<a@b.c>", 501, "5.5.4");
	parse_refused("MAIL FROM:a@b.c", 501, "5.1.7");
	parse_refused("MAIL FROM:<a@b.c", 501, "5.1.7");
	parse_refused("MAIL FROM:<a b@c>", 501, "5.1.7");
	parse_refused("MAIL FROM:<a@b.c>x", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> SIZE=", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> SIZE=12a", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> SIZE=99999999999999999999", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> SIZE=1 SIZE=2", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> BODY=BINARYMIME", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> SMTPUTF8=yes", 501, "5.5.4");
	parse_refused("MAIL FROM:<a@b.c> RET=FULL", 555, "5.5.4");
}

static void test_paths(void **state)
{
	char long_path[SMTP_PATH_MAX + 32];
	(void)state;

	parse_ok("RCPT TO:<\"quoted > name\"@example.net>");
	assert_string_equal(cmd.path, "\"quoted > name\"@example.net");
	parse_ok("RCPT TO:<\"a\\\"b\"@example.net>");
	assert_string_equal(cmd.path, "\"a\\\"b\"@example.net");
	parse_ok("RCPT TO:<@hop1,@hop2:user@example.net>");
	assert_string_equal(cmd.path, "@hop1,@hop2:user@example.net");
	parse_ok("RCPT TO:<postmaster>");
	assert_string_equal(cmd.path, "postmaster");
	parse_ok("RCPT TO:<j\xc3\xb6rg@example.org>");
	assert_true(smtp_path_is_utf8(cmd.path));
	parse_ok("RCPT TO:<jorg@example.org>");
	assert_false(smtp_path_is_utf8(cmd.path));
	parse_refused("RCPT TO:<>", 501, "5.1.3");
	parse_refused("RCPT TO:<a<b@c>", 501, "5.1.3");
	parse_refused("RCPT TO:<\"open@c>", 501, "5.1.3");
	parse_refused("RCPT TO:<a\x01@c>", 501, "5.1.3");
	parse_refused("RCPT FROM:<a@c>", 501, "5.5.4");
	parse_refused("RCPT TO:<a@c> NOTIFY=NEVER", 555, "5.5.4");
	/* 254 octets fit, 255 do not. */
	strcpy(long_path, "RCPT TO:<");
	memset(long_path + 9, 'a', SMTP_PATH_MAX);
	strcpy(long_path + 9 + SMTP_PATH_MAX, ">");
	parse_ok(long_path);
	assert_int_equal(strlen(cmd.path), SMTP_PATH_MAX);
	memset(long_path + 9, 'a', SMTP_PATH_MAX + 1);
	strcpy(long_path + 10 + SMTP_PATH_MAX, ">");
	parse_refused(long_path, 501, "5.1.3");
}

static void test_auth(void **state)
{
	(void)state;
	parse_ok("AUTH plain");
	assert_string_equal(cmd.mechanism, "PLAIN");
	assert_null(cmd.initial);
	parse_ok("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
	assert_int_equal(cmd.initial_len, strlen("AGFsaWNlAHNlY3JldA=="));
	assert_memory_equal(cmd.initial, "AGFsaWNlAHNlY3JldA==", cmd.initial_len);
	parse_ok("AUTH LOGIN =");
	parse_refused("AUTH", 501, "5.5.4");
	parse_refused("AUTH ", 501, "5.5.4");
	parse_refused("AUTH PL@IN", 501, "5.5.4");
	parse_refused("AUTH PLAIN a b", 501, "5.5.4");
	parse_refused("AUTH PLAIN ", 501, "5.5.4");
	parse_refused("AUTH ABCDEFGHIJKLMNOPQRSTU", 501, "5.5.4"); /* 21 characters */
}

static void test_bdat(void **state)
{
	(void)state;
	parse_ok("BDAT 1000");
	assert_int_equal(cmd.chunk_size, 1000);
	assert_false(cmd.last);
	parse_ok("BDAT 0 last");
	assert_true(cmd.last);
	parse_refused("BDAT", 501, "5.5.4");
	parse_refused("BDAT x", 501, "5.5.4");
	parse_refused("BDAT 10 FIRST", 501, "5.5.4");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verbs),	  cmocka_unit_test(test_verb_refusals),
	    cmocka_unit_test(test_line_length),	  cmocka_unit_test(test_mail),
	    cmocka_unit_test(test_mail_refusals), cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_auth),	  cmocka_unit_test(test_bdat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
