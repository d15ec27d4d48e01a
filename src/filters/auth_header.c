/*
 * auth_header.c — a header field's value and a reverse path's address, for
 * the authentication filters (see auth_header.h).
 *
 * Owns: nothing. Must never: read past the lengths it is given, write past
 * OUT, or accept an address whose domain is not a DNS name (it becomes an
 * SPF question and an Authentication-Results property).
 */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "filters/auth_header.h"
#include "filters/dns.h"

/* The end of the line starting at START (the index of its '\n', or LEN). */
static size_t auth_line_end(const char *message, size_t len, size_t start)
{
	const char *nl = memchr(message + start, '\n', len - start);

	return nl != NULL ? (size_t)(nl - message) : len;
}

/* The line from START to END (its '\n' excluded) without a trailing '\r'. */
static size_t auth_line_trim_cr(const char *message, size_t start, size_t end)
{
	return end > start && message[end - 1] == '\r' ? end - 1 : end;
}

int auth_header_field(const char *message, size_t len, const char *name, char *out, size_t outlen)
{
	size_t name_len = strlen(name);
	size_t pos = 0;

	if (outlen == 0)
		return -1;
	out[0] = '\0';
	if (len > AUTH_HEADER_SCAN_MAX)
		len = AUTH_HEADER_SCAN_MAX;
	while (pos < len) {
		size_t end = auth_line_end(message, len, pos);
		size_t stop = auth_line_trim_cr(message, pos, end);
		size_t used = 0;

		if (stop == pos)
			return 0; /* the empty line: the header block is over */
		if (stop - pos <= name_len || message[pos + name_len] != ':' ||
		    strncasecmp(message + pos, name, name_len) != 0) {
			pos = end + 1;
			continue;
		}
		/* The field's first line after the colon, then each
		 * continuation line (one starting with white space). */
		pos += name_len + 1;
		for (;;) {
			for (size_t i = pos; i < stop; i++) {
				if (used == 0 && (message[i] == ' ' || message[i] == '\t'))
					continue;
				if (used + 1 >= outlen) {
					out[0] = '\0';
					return -1;
				}
				out[used++] = message[i];
			}
			pos = end + 1;
			if (pos >= len || (message[pos] != ' ' && message[pos] != '\t'))
				break;
			end = auth_line_end(message, len, pos);
			stop = auth_line_trim_cr(message, pos, end);
		}
		while (used > 0 && (out[used - 1] == ' ' || out[used - 1] == '\t'))
			used--;
		out[used] = '\0';
		return 1;
	}
	return 0;
}

int auth_path_address(const char *value, char *out, size_t outlen)
{
	const char *start = value;
	const char *end;
	const char *at = NULL;
	size_t len;

	while (*start == ' ' || *start == '\t')
		start++;
	end = start + strlen(start);
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end > start && *start == '<') {
		if (end[-1] != '>')
			return -1;
		start++;
		end--;
	}
	if (start == end)
		return 0;
	/* A source route (RFC 5321 4.1.2) names relays, not the sender. */
	if (*start == '@') {
		const char *colon = memchr(start, ':', (size_t)(end - start));

		if (colon == NULL)
			return -1;
		start = colon + 1;
	}
	for (const char *p = start; p < end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c <= 0x20 || c >= 0x7f || c == '<' || c == '>')
			return -1;
		if (c == '@')
			at = p;
	}
	if (at == NULL || at == start)
		return -1;
	len = (size_t)(end - start);
	if (len + 1 > outlen || (size_t)(end - at - 1) > FILTER_DNS_NAME_MAX)
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	for (char *p = out + (at - start) + 1; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (!filter_dns_name_valid(out + (at - start) + 1)) {
		out[0] = '\0';
		return -1;
	}
	return 1;
}
