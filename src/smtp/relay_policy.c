/*
 * relay_policy.c — whether an SMTP recipient is accepted (see
 * smtp/relay_policy.h): an RFC 5321 path parser (with RFC 6531's UTF-8)
 * and the rules of who may send where.
 *
 * Owns: nothing. Must never: read past PATH's NUL, accept from outside
 * anything but a plain local address, or copy the client's bytes into
 * REASON (it goes into the log and the reply).
 * SECURITY: PATH comes from any SMTP client, inside or outside the Local
 * Networks. IS_LOCAL's answer is trusted.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/address.h"
#include "smtp/relay_policy.h"

/* RFC 5321 4.5.3.1: the longest local part, domain and DNS label. */
#define RELAY_LOCAL_MAX 64
#define RELAY_DOMAIN_MAX 255
#define RELAY_LABEL_MAX 63

/* A path taken apart; the pointers are into the caller's PATH. */
struct relay_path {
	bool postmaster; /* "<postmaster>", no domain: nothing else is set */
	bool route;	 /* a source route came before the mailbox */
	bool quoted;	 /* the local part is a quoted string */
	bool literal;	 /* the domain is an address literal */
	bool non_ascii;	 /* UTF-8 beyond ASCII somewhere in the mailbox */
	const char *local;
	size_t local_len;
	const char *domain;
	size_t domain_len;
};

/* The length (2 to 4) of the well-formed UTF-8 sequence at S (AVAIL bytes
 * there), or 0 if none (an ASCII byte, an overlong form, a surrogate, a
 * code point beyond U+10FFFF, a cut sequence). */
static size_t relay_utf8_length(const unsigned char *s, size_t avail)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (avail < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* True if C is RFC 5322 atext (ASCII). */
static bool relay_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static void relay_reason(char *reason, size_t reason_len, const char *text)
{
	if (reason != NULL && reason_len > 0)
		snprintf(reason, reason_len, "%s", text);
}

/*
 * Reads a domain of dot-separated labels (letters, digits, inner '-', and
 * UTF-8 U-labels) at S[0..LEN). *NON_ASCII is set for UTF-8. NULL if
 * valid, else the reason.
 */
static const char *relay_parse_domain(const char *s, size_t len, bool *non_ascii)
{
	size_t label = 0;

	if (len == 0)
		return "the domain is missing";
	if (len > RELAY_DOMAIN_MAX)
		return "the domain is longer than 255 characters";
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || i + 1 == len)
				return "the domain has an empty label or a trailing dot";
			if (s[i - 1] == '-')
				return "a domain label ends with '-'";
			label = 0;
			i++;
			continue;
		}
		if (c == '-' && label == 0)
			return "a domain label starts with '-'";
		if (c >= 0x80) {
			size_t n = relay_utf8_length((const unsigned char *)s + i, len - i);

			if (n == 0)
				return "the domain holds a byte that is not UTF-8";
			*non_ascii = true;
			i += n;
			label += n;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-') {
			i++;
			label++;
		} else if (c == '@') {
			return "an '@' in the local part must be quoted";
		} else {
			return "the domain holds a character a domain cannot have";
		}
		if (label > RELAY_LABEL_MAX)
			return "a domain label is longer than 63 characters";
	}
	if (s[len - 1] == '-')
		return "a domain label ends with '-'";
	return NULL;
}

/* Reads an address literal "[a.b.c.d]" or "[IPv6:...]" at S[0..LEN). NULL
 * if valid, else the reason. */
static const char *relay_parse_literal(const char *s, size_t len)
{
	char text[INET6_ADDRSTRLEN + 8];
	unsigned char bytes[16];

	if (len < 3 || s[len - 1] != ']' || len - 2 >= sizeof(text))
		return "the address literal is malformed";
	memcpy(text, s + 1, len - 2);
	text[len - 2] = '\0';
	if (strncasecmp(text, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, text + 5, bytes) != 1)
			return "the IPv6 address literal is malformed";
		return NULL;
	}
	if (inet_pton(AF_INET, text, bytes) != 1)
		return "the address literal is neither IPv4 nor IPv6";
	return NULL;
}

/* Reads a source route "@d1,@d2:" at S[*I...], moving *I past the ':'. NULL
 * if valid, else the reason. */
static const char *relay_parse_route(const char *s, size_t len, size_t *i)
{
	for (;;) {
		bool non_ascii = false;

		if (*i >= len || s[*i] != '@')
			return "the source route is malformed";
		size_t start = ++*i;
		while (*i < len && s[*i] != ',' && s[*i] != ':')
			++*i;
		if (*i >= len)
			return "the source route does not end with ':'";
		const char *why = relay_parse_domain(s + start, *i - start, &non_ascii);
		if (why != NULL)
			return "a domain of the source route is malformed";
		if (s[(*i)++] == ':')
			return NULL;
	}
}

/* Reads a quoted local part at S[*I] (the opening quote), moving *I past
 * the closing one. NULL if valid, else the reason. */
static const char *relay_parse_quoted(const char *s, size_t len, size_t *i, bool *non_ascii)
{
	for (++*i; *i < len;) {
		unsigned char c = (unsigned char)s[*i];

		if (c == '"') {
			++*i;
			return NULL;
		}
		if (c == '\\') {
			if (*i + 1 >= len || s[*i + 1] < 32 || s[*i + 1] > 126)
				return "the quoted local part has a bad escape";
			*i += 2;
		} else if (c >= 0x80) {
			size_t n = relay_utf8_length((const unsigned char *)s + *i, len - *i);

			if (n == 0)
				return "the local part holds a byte that is not UTF-8";
			*non_ascii = true;
			*i += n;
		} else if (c < 32 || c > 126) {
			return "the quoted local part holds a control character";
		} else {
			++*i;
		}
	}
	return "the quoted local part is not closed";
}

/* Reads a dot-string local part at S[*I...], up to the '@'. NULL if valid,
 * else the reason. */
static const char *relay_parse_dot_string(const char *s, size_t len, size_t *i, bool *non_ascii)
{
	size_t start = *i;

	while (*i < len && s[*i] != '@') {
		unsigned char c = (unsigned char)s[*i];

		if (c == '.') {
			if (*i == start || s[*i - 1] == '.')
				return "the local part has an empty part between dots";
			++*i;
		} else if (c >= 0x80) {
			size_t n = relay_utf8_length((const unsigned char *)s + *i, len - *i);

			if (n == 0)
				return "the local part holds a byte that is not UTF-8";
			*non_ascii = true;
			*i += n;
		} else if (relay_atext(c)) {
			++*i;
		} else {
			return "the local part holds a character that must be quoted";
		}
	}
	if (*i == start)
		return "the local part is empty";
	if (s[*i - 1] == '.')
		return "the local part ends with a dot";
	return NULL;
}

/* Takes PATH apart into *P. NULL if it is a valid RFC 5321 path (UTF-8 as
 * RFC 6531 allows), else the reason. */
static const char *relay_path_parse(const char *path, struct relay_path *p)
{
	size_t len = strnlen(path, RELAY_PATH_MAX + 1), i = 0;
	const char *why;

	memset(p, 0, sizeof(*p));
	if (len > RELAY_PATH_MAX)
		return "the path is longer than 256 characters";
	if (len < 2 || path[0] != '<' || path[len - 1] != '>')
		return "the recipient must be written in angle brackets: <user@domain>";
	const char *s = path + 1;
	len -= 2;
	if (len == 0)
		return "the null path <> is no recipient";
	if (len == strlen("postmaster") && strncasecmp(s, "postmaster", len) == 0) {
		p->postmaster = true;
		return NULL;
	}
	if (s[0] == '@') {
		why = relay_parse_route(s, len, &i);
		if (why != NULL)
			return why;
		p->route = true;
	}
	p->local = s + i;
	if (i < len && s[i] == '"') {
		p->quoted = true;
		why = relay_parse_quoted(s, len, &i, &p->non_ascii);
	} else {
		why = relay_parse_dot_string(s, len, &i, &p->non_ascii);
	}
	if (why != NULL)
		return why;
	p->local_len = (size_t)(s + i - p->local);
	if (p->local_len > RELAY_LOCAL_MAX)
		return "the local part is longer than 64 characters";
	if (i >= len || s[i] != '@')
		return "the recipient has no domain";
	i++;
	p->domain = s + i;
	p->domain_len = len - i;
	if (p->domain_len > 0 && p->domain[0] == '[') {
		p->literal = true;
		return relay_parse_literal(p->domain, p->domain_len);
	}
	return relay_parse_domain(p->domain, p->domain_len, &p->non_ascii);
}

/* Writes P's mailbox, domain lower-cased, into OUT. 0, or -1 if it does
 * not fit. */
static int relay_path_write(const struct relay_path *p, char *out, size_t size)
{
	size_t len = p->local_len + 1 + p->domain_len;

	if (size == 0 || len >= size)
		return -1;
	memcpy(out, p->local, p->local_len);
	out[p->local_len] = '@';
	for (size_t i = 0; i < p->domain_len; i++) {
		char c = p->domain[i];

		out[p->local_len + 1 + i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[len] = '\0';
	return 0;
}

/* The decision for a client outside every Local Network, not
 * authenticated: only a plain local address. */
static enum relay_decision relay_check_outside(const struct relay_path *p,
					       relay_is_local_fn *is_local, void *ctx, char *reason,
					       size_t reason_len)
{
	char mailbox[RELAY_PATH_MAX];
	const char *why = NULL;

	if (p->route)
		why = "relaying denied: source routes are accepted only from Local Networks";
	else if (p->quoted)
		why = "relaying denied: quoted local parts are accepted only from Local Networks";
	else if (p->literal)
		why = "relaying denied: address literals are accepted only from Local Networks";
	else if (p->non_ascii)
		why = "relaying denied: not a local address";
	else if (memchr(p->local, '%', p->local_len) != NULL)
		why = "relaying denied: '%' in the local part routes elsewhere";
	else if (memchr(p->local, '!', p->local_len) != NULL)
		why = "relaying denied: '!' in the local part routes elsewhere";
	else if (relay_path_write(p, mailbox, sizeof(mailbox)) < 0 || !address_valid(mailbox) ||
		 !is_local(mailbox, ctx))
		why = "relaying denied: not a local address";
	if (why != NULL) {
		relay_reason(reason, reason_len, why);
		return RELAY_DENIED;
	}
	relay_reason(reason, reason_len, "recipient ok: a local address");
	return RELAY_ACCEPT;
}

enum relay_decision relay_policy_check_recipient(const struct relay_client *client,
						 const char *path, relay_is_local_fn *is_local,
						 void *ctx, char *reason, size_t reason_len)
{
	struct relay_path p;
	const char *why = relay_path_parse(path, &p);

	if (why != NULL) {
		relay_reason(reason, reason_len, why);
		return RELAY_BAD_ADDRESS;
	}
	if (p.postmaster) {
		relay_reason(reason, reason_len,
			     "popgate keeps no postmaster mailbox of its own: write "
			     "postmaster@DOMAIN");
		return RELAY_DENIED;
	}
	if (client->in_local_network || client->authenticated) {
		relay_reason(reason, reason_len,
			     client->in_local_network ? "recipient ok: client in a Local Network"
						      : "recipient ok: client authenticated");
		return RELAY_ACCEPT;
	}
	return relay_check_outside(&p, is_local, ctx, reason, reason_len);
}

int relay_path_mailbox(const char *path, char *out, size_t size)
{
	struct relay_path p;

	if (relay_path_parse(path, &p) != NULL || p.postmaster)
		return -1;
	return relay_path_write(&p, out, size);
}
