/*
 * fuzz_command.c — libFuzzer target for what a mail client sends popgate:
 * command lines (pop3_command_parse), account names from USER
 * (pop3_account_name_split) and AUTH PLAIN responses (pop3_auth_plain_decode).
 *
 * Besides the sanitizers it checks each parser's promises and aborts on a
 * broken one: arguments inside the line and free of CR, LF and NUL (they would
 * smuggle commands to the provider), numbers in range, host names valid and
 * lower-case, decoded AUTH PLAIN credentials non-empty, free of CR, LF and
 * NUL, and exactly what the response encoded (checked by decoding it again).
 *
 * Must never: allocate per run in a way that leaks, or touch the file system.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

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

/* True if S[0..LEN) holds a CR, an LF or a NUL. */
static bool has_line_break(const void *s, size_t len)
{
	return memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL ||
	       memchr(s, '\0', len) != NULL;
}

/*
 * The security property of AUTH PLAIN: an accepted response yields fields
 * without CR, LF or NUL, and nothing of the decoded response is dropped (a
 * NUL cutting the password short, say). Checked against an independent
 * decode: "authzid NUL authcid NUL passwd" is exactly the decoded bytes.
 */
static void check_auth_plain_fields(const char *b64, size_t len, const char *authcid,
				    const char *passwd)
{
	static unsigned char plain[4096];
	size_t plain_len = 0, authcid_len = strlen(authcid), passwd_len = strlen(passwd);

	check(!has_line_break(authcid, authcid_len) && !has_line_break(passwd, passwd_len));
	check(sodium_base642bin(plain, sizeof(plain), b64, len, NULL, &plain_len, NULL,
				sodium_base64_VARIANT_ORIGINAL) == 0);
	/* The password is the tail, the authcid before it, the authzid first. */
	check(plain_len >= authcid_len + passwd_len + 2);
	check(memcmp(plain + plain_len - passwd_len, passwd, passwd_len) == 0);
	check(plain[plain_len - passwd_len - 1] == '\0');
	check(memcmp(plain + plain_len - passwd_len - 1 - authcid_len, authcid, authcid_len) == 0);
	size_t authzid_len = plain_len - passwd_len - authcid_len - 2;
	check(plain[authzid_len] == '\0');
	check(!has_line_break(plain, authzid_len));
}

static void fuzz_auth_plain(const char *b64, size_t len)
{
	char authcid[256], passwd[256], small_authcid[3], small_passwd[3];

	if (pop3_auth_plain_decode(b64, len, authcid, sizeof(authcid), passwd, sizeof(passwd)) ==
	    0) {
		check(authcid[0] != '\0' && passwd[0] != '\0');
		check_auth_plain_fields(b64, len, authcid, passwd);
	} else {
		check(authcid[0] == '\0' && passwd[0] == '\0');
	}
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
		/* No argument may carry a line break or a NUL on to the provider. */
		check(!has_line_break(cmd.args[i], cmd.arg_len[i]));
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
