/*
 * address.c — the shape of a mail address (see core/address.h).
 *
 * Owns: nothing. Must never: read past ADDRESS's NUL or accept a string that
 * a header, a path or an SQL LIKE could misread (spaces, controls, quotes,
 * brackets).
 * SECURITY: ADDRESS comes from the administrator or from a message.
 */
#include <stdbool.h>
#include <string.h>

#include "core/address.h"

/* Checks the address part before the '@' (LEN bytes): a dot-atom. */
static bool address_local_valid(const char *local, size_t len)
{
	if (len == 0 || len > ADDRESS_LOCAL_MAX || local[0] == '.' || local[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)local[i];

		/* Printable ASCII without space, and none of the specials that would
		 * need quoting (RFC 5322 atext plus the dot). */
		if (c <= ' ' || c >= 0x7f || strchr("()<>[]\\,;:\"@", c) != NULL)
			return false;
		if (c == '.' && local[i + 1] == '.')
			return false;
	}
	return true;
}

bool address_domain_valid(const char *domain)
{
	const char *label = domain;

	if (*domain == '\0' || strnlen(domain, ADDRESS_MAX + 1) > ADDRESS_MAX)
		return false;
	for (;;) {
		size_t len = strspn(label, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
					   "0123456789-");

		if (len == 0 || len > ADDRESS_LABEL_MAX || label[0] == '-' || label[len - 1] == '-')
			return false;
		if (label[len] == '\0')
			return true;
		if (label[len] != '.')
			return false;
		label += len + 1;
	}
}

bool address_valid(const char *address)
{
	const char *at = strchr(address, '@');

	if (at == NULL || strchr(at + 1, '@') != NULL ||
	    strnlen(address, ADDRESS_MAX + 1) > ADDRESS_MAX)
		return false;
	return address_local_valid(address, (size_t)(at - address)) && address_domain_valid(at + 1);
}

