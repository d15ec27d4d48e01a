/*
 * rdata.h — reading the RDATA of the DNS records popgate asks for beyond
 * addresses: a domain name (PTR, the exchange of an MX), an MX's preference
 * and exchange, a TXT record's character-strings, a TLSA record's fields
 * (RFC 6698, for DANE).
 *
 * The resolver (core/resolver.c) hands over each record's RDATA as its
 * library gives it: names uncompressed. A compression pointer, a label past
 * the end, a name over 255 octets or bytes left over are refused here, never
 * followed.
 *
 * Pure: no loop, no allocation, no I/O, so tests/fuzz/fuzz_dns.c drives it.
 *
 * SECURITY: RDATA comes from remote name servers and is untrusted. A name is
 * written in presentation form with every byte that is not a letter, digit,
 * '-' or '_' escaped as \DDD (a '.' inside a label too), so the text is
 * printable, unambiguous, and never a host name the wire did not spell.
 */
#ifndef POPGATE_CORE_RDATA_H
#define POPGATE_CORE_RDATA_H

#include <stddef.h>
#include <stdint.h>

/* Room for any name in presentation form, with its NUL: 255 octets on the
 * wire, each escaped byte four characters. */
#define RDATA_NAME_TEXT_MAX 1024

/*
 * Reads the uncompressed domain name at DATA[*OFFSET] (DATA is LEN bytes),
 * writes it to OUT (SIZE bytes, RDATA_NAME_TEXT_MAX is always enough) without
 * a trailing dot ("." for the root), and moves *OFFSET past it. 0, or -1 if
 * the name is malformed or OUT too small (*OFFSET and OUT then unspecified).
 */
int rdata_name_read(const uint8_t *data, size_t len, size_t *offset, char *out, size_t size);

/* A PTR record's RDATA: one name and nothing after it. 0 or -1. */
int rdata_ptr(const uint8_t *data, size_t len, char *out, size_t size);

/* An MX record's RDATA: the preference and the exchange's name, nothing
 * after it. The null MX (RFC 7505, "no mail here") reads as exchange ".".
 * 0 or -1. */
int rdata_mx(const uint8_t *data, size_t len, uint16_t *preference, char *exchange, size_t size);

/* How many character-strings a TXT record's RDATA holds (one or more, each
 * a length octet and that many bytes, filling it exactly); -1 if malformed. */
int rdata_txt_count(const uint8_t *data, size_t len);

/*
 * The character-string at DATA[*OFFSET]: its bytes in *STRING (pointing into
 * DATA, not NUL-terminated, any byte possible) and their number in *LENGTH;
 * moves *OFFSET past it. 1 for a string, 0 at the end of DATA, -1 if
 * malformed.
 */
int rdata_txt_next(const uint8_t *data, size_t len, size_t *offset, const uint8_t **string,
		   size_t *length);

/* A TLSA record's fields (RFC 6698 2.1). */
struct rdata_tlsa {
	uint8_t usage;	     /* 0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE */
	uint8_t selector;    /* 0 the whole certificate, 1 its public key */
	uint8_t matching;    /* 0 the data itself, 1 SHA-256, 2 SHA-512 */
	const uint8_t *data; /* the certificate association data, pointing into RDATA */
	size_t length;	     /* its bytes: at least one */
};

/* A TLSA record's RDATA: three octets and the association data after them
 * (at least one byte; its length is not checked against the matching type
 * here, OpenSSL refuses a digest of the wrong size). 0 or -1. */
int rdata_tlsa(const uint8_t *data, size_t len, struct rdata_tlsa *tlsa);

#endif
