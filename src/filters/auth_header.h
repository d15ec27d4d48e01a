/*
 * auth_header.h — the two things the authentication filters read from a
 * message's header block by hand: a field's unfolded value (Return-Path)
 * and the address inside a path ("<user@example.org>", "<>").
 *
 * Everything else in the header (From, DKIM-Signature) is read by the
 * libraries or by pipeline/headers.c.
 *
 * SECURITY: the input is hostile. Both functions are bounded by their
 * arguments' lengths, allocate nothing, and need only libc and
 * filters/dns.c, so they are fuzzed alone (tests/fuzz/fuzz_auth_header.c).
 */
#ifndef POPGATE_FILTERS_AUTH_HEADER_H
#define POPGATE_FILTERS_AUTH_HEADER_H

#include <stddef.h>

/* Header bytes looked at: a field past them is not found. */
#define AUTH_HEADER_SCAN_MAX (256 * 1024)

/*
 * Finds the first field called NAME (any case) in the header block of
 * MESSAGE (LEN bytes, CRLF or LF lines; the block ends at the first empty
 * line) and copies its value into OUT (OUTLEN bytes): unfolded (line breaks
 * dropped), without the leading and trailing white space. 1 when found, 0
 * when not, -1 when its value does not fit OUT (OUT is then "").
 */
int auth_header_field(const char *message, size_t len, const char *name, char *out, size_t outlen);

/*
 * The address of a reverse path VALUE ("<user@example.org>", or without
 * the brackets; a source route "<@a,@b:user@example.org>" is dropped) into
 * OUT (OUTLEN bytes), lowercased in its domain. 1 with an address, 0 for
 * the null path "<>", -1 when VALUE is not one: no '@', a local part with
 * space or control characters, a domain filter_dns_name_valid refuses, or
 * too long for OUT.
 */
int auth_path_address(const char *value, char *out, size_t outlen);

#endif
