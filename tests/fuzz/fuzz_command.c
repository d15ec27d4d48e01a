/*
 * fuzz_command.c — libFuzzer target for what a mail client sends popgate:
 * command lines (pop3_command_parse), account names from USER
 * (pop3_account_name_split) and AUTH PLAIN responses (pop3_auth_plain_decode).
 *
 * Besides the sanitizers it checks each parser's promises and aborts on a
 * broken one: arguments inside the line, numbers in range, host names valid
 * and lower-case, decoded credentials non-empty and NUL-free.
 *
 * Must never: allocate per run in a way that leaks, or touch the file system.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

static void fuzz_account(const char *name, size_t len)
{
	char login[256], host[256], small_login[4], small_host[8];

	if (pop3_account_name_split(name, len, login, sizeof(login), host, sizeof(host)) == 0) {
		size_t login_len = strlen(login), host_len = strlen(host);

		check(login_len > 0 && host_len > 0 && host_len <= 253);
		check(login_len + 1 + host_len <= len);
		/* The split is at the last '@': none in the host. */
		check(strchr(host, '@') == NULL);
		for (size_t i = 0; i < host_len; i++)
			check(!(host[i] >= 'A' && host[i] <= 'Z'));
		check(host[0] != '.' && host[0] != '-');
	} else {
		check(login[0] == '\0' && host[0] == '\0');
	}
	/* Small buffers must be refused, never overrun. */
	if (pop3_account_name_split(name, len, small_login, sizeof(small_login), small_host,
				    sizeof(small_host)) == 0)
		check(strlen(small_login) < sizeof(small_login) &&
		      strlen(small_host) < sizeof(small_host));
}

static void fuzz_auth_plain(const char *b64, size_t len)
{
	char authcid[256], passwd[256], small_authcid[3], small_passwd[3];

	if (pop3_auth_plain_decode(b64, len, authcid, sizeof(authcid), passwd, sizeof(passwd)) == 0)
		check(authcid[0] != '\0' && passwd[0] != '\0');
	else
		check(authcid[0] == '\0' && passwd[0] == '\0');
	if (pop3_auth_plain_decode(b64, len, small_authcid, sizeof(small_authcid), small_passwd,
				   sizeof(small_passwd)) == 0)
		check(strlen(small_authcid) < sizeof(small_authcid) &&
		      strlen(small_passwd) < sizeof(small_passwd));
}

static void fuzz_command(const char *line, size_t len)
{
	struct pop3_command cmd;
	const char *error = NULL;

	if (pop3_command_parse(line, len, &cmd, &error) < 0) {
		check(error != NULL && error[0] != '\0');
		return;
	}
	check(error == NULL);
	check(cmd.verb > POP3_VERB_UNKNOWN && cmd.verb < POP3_VERB_COUNT);
	check(pop3_verb_name(cmd.verb)[0] != '\0');
	check(cmd.arg_count <= POP3_ARG_MAX);
	for (size_t i = 0; i < cmd.arg_count; i++) {
		check(cmd.args[i] > line && cmd.args[i] + cmd.arg_len[i] <= line + len);
		check(memchr(cmd.args[i], '\0', cmd.arg_len[i]) == NULL);
	}
	switch (cmd.verb) {
	case POP3_VERB_RETR:
	case POP3_VERB_DELE:
	case POP3_VERB_TOP:
		check(cmd.has_number);
		/* fall through */
	case POP3_VERB_LIST:
	case POP3_VERB_UIDL:
		if (cmd.has_number)
			check(cmd.numbers[0] >= 1 && cmd.numbers[0] <= 0x7fffffffu);
		break;
	case POP3_VERB_USER:
		check(cmd.arg_count == 1 && cmd.arg_len[0] > 0 && cmd.arg_len[0] <= POP3_USER_MAX);
		fuzz_account(cmd.args[0], cmd.arg_len[0]);
		break;
	case POP3_VERB_PASS:
		check(cmd.arg_count == 1 && cmd.arg_len[0] > 0 && cmd.arg_len[0] <= POP3_PASS_MAX);
		break;
	case POP3_VERB_AUTH:
		/* A bare AUTH (no mechanism) asks for the mechanism list. */
		if (cmd.arg_count == 2)
			fuzz_auth_plain(cmd.args[1], cmd.arg_len[1]);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past LEN. */
	char *line = malloc(size > 0 ? size : 1);

	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	fuzz_command(line, size);
	fuzz_account(line, size);
	fuzz_auth_plain(line, size);
	free(line);
	return 0;
}
