/*
 * fuzz_smtp_address.c — libFuzzer target for the addresses an SMTP client
 * names and the networks an administrator types: relay_policy's recipient
 * decision (the open-relay check) and cidr_parse.
 *
 * The first byte chooses: even, the rest is an RCPT TO path; odd, a CIDR
 * text. Besides the sanitizers it checks each promise and aborts on a
 * broken one:
 * - a client outside every Local Network is accepted only for "<ADDRESS>"
 *   with ADDRESS exactly what IS_LOCAL was asked and said yes to, a valid
 *   address with neither '%' nor '!' in its local part;
 * - the syntax verdict is the same inside and outside; whatever outside
 *   accepts, inside accepts too; relay_path_mailbox succeeds exactly for
 *   what inside accepts, with a mailbox free of CR, LF and NUL that is as
 *   long as the path's mailbox or shorter;
 * - the reason is one line of printable ASCII (none of the client's bytes
 *   could make it otherwise: it is a fixed sentence);
 * - a CIDR that parses is written canonically, reads back to the same
 *   network, and contains its own network address.
 *
 * Must never: allocate per run in a way that leaks, or touch the file system.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "core/address.h"
#include "core/cidr.h"
#include "smtp/relay_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

struct lookup {
	int calls;
	char last[RELAY_PATH_MAX + 1];
};

/* Local: any address in the domain local.test, or bob@example.org. */
static bool is_local(const char *address, void *ctx)
{
	struct lookup *lookup = ctx;
	size_t len = strlen(address);

	lookup->calls++;
	check(len <= RELAY_PATH_MAX);
	memcpy(lookup->last, address, len + 1);
	check(address_valid(address));
	return (len > 11 && strcmp(address + len - 11, "@local.test") == 0) ||
	       strcmp(address, "bob@example.org") == 0;
}

static void check_reason(const char *reason)
{
	for (const char *p = reason; *p != '\0'; p++)
		check(*p >= ' ' && *p <= '~');
}

static void fuzz_path(const char *path, size_t len)
{
	static const struct relay_client outside = {false, false};
	static const struct relay_client inside = {true, false};
	static const struct relay_client authed = {false, true};
	struct lookup lookup = {0}, unused = {0};
	char reason[160], mailbox[RELAY_PATH_MAX];
	enum relay_decision out, in, auth;

	out =
	    relay_policy_check_recipient(&outside, path, is_local, &lookup, reason, sizeof(reason));
	check_reason(reason);
	in = relay_policy_check_recipient(&inside, path, is_local, &unused, reason, sizeof(reason));
	check_reason(reason);
	auth = relay_policy_check_recipient(&authed, path, is_local, &unused, NULL, 0);
	check(unused.calls == 0);
	check(in == auth);
	check((out == RELAY_BAD_ADDRESS) == (in == RELAY_BAD_ADDRESS));
	if (out == RELAY_ACCEPT) {
		check(in == RELAY_ACCEPT);
		check(lookup.calls == 1);
		/* Exactly "<" + the address asked about + ">", modulo the
		 * domain's case. */
		size_t n = strlen(lookup.last);
		check(len == n + 2 && path[0] == '<' && path[len - 1] == '>');
		check(strncasecmp(path + 1, lookup.last, n) == 0);
		const char *at = strchr(lookup.last, '@');
		check(at != NULL && memchr(lookup.last, '%', (size_t)(at - lookup.last)) == NULL &&
		      memchr(lookup.last, '!', (size_t)(at - lookup.last)) == NULL);
		check(memcmp(path + 1, lookup.last, (size_t)(at - lookup.last)) == 0);
	}
	int rc = relay_path_mailbox(path, mailbox, sizeof(mailbox));
	check((rc == 0) == (in == RELAY_ACCEPT));
	if (rc == 0) {
		size_t n = strlen(mailbox);

		check(n > 0 && n + 2 <= len);
		check(strchr(mailbox, '\r') == NULL && strchr(mailbox, '\n') == NULL);
		check(strchr(mailbox, '@') != NULL);
	}
	/* A small buffer is refused, never overrun. */
	char small[6];
	if (relay_path_mailbox(path, small, sizeof(small)) == 0)
		check(strlen(small) < sizeof(small));
}

static void fuzz_cidr(const char *text)
{
	struct cidr net, again;
	char err[512], canonical[CIDR_TEXT_MAX], second[CIDR_TEXT_MAX];

	if (cidr_parse(text, &net, err, sizeof(err)) < 0) {
		check(net.family == 0);
		check(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
		return;
	}
	check(net.family == AF_INET || net.family == AF_INET6);
	check(net.prefix <= (net.family == AF_INET ? 32u : 128u));
	cidr_format(&net, canonical, sizeof(canonical));
	check(cidr_parse(canonical, &again, err, sizeof(err)) == 0);
	check(memcmp(&net, &again, sizeof(net)) == 0);
	cidr_format(&again, second, sizeof(second));
	check(strcmp(canonical, second) == 0);

	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (net.family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, net.address, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, net.address, 16);
	}
	check(cidr_contains(&net, (struct sockaddr *)&ss));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size == 0 || size > 4096)
		return 0;
	/* The path and the CIDR text are C strings: cut at a NUL, as the SMTP
	 * parser and the command line would. */
	text = malloc(size);
	if (text == NULL)
		return 0;
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if ((data[0] & 1) == 0)
		fuzz_path(text, strlen(text));
	else
		fuzz_cidr(text);
	free(text);
	return 0;
}
