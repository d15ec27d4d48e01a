/*
 * rdata.c — reading names, MX, TXT and TLSA RDATA from the wire form (rdata.h
 * says what is refused and how names are written).
 */
#include <stdbool.h>
#include <stdio.h>

#include "core/rdata.h"

/* RFC 1035 3.1: a name is at most 255 octets, a label at most 63. */
#define RDATA_NAME_WIRE_MAX 255
#define RDATA_LABEL_MAX 63

/* A byte a host name may hold as it is; any other is escaped. */
static bool rdata_byte_plain(uint8_t byte)
{
	return (byte >= 'a' && byte <= 'z') || (byte >= 'A' && byte <= 'Z') ||
	       (byte >= '0' && byte <= '9') || byte == '-' || byte == '_';
}

/* Appends BYTE to OUT at *USED, escaped if need be; -1 when OUT is full
 * (room is always kept for the NUL). */
static int rdata_put_byte(char *out, size_t size, size_t *used, uint8_t byte)
{
	if (rdata_byte_plain(byte)) {
		if (*used + 2 > size)
			return -1;
		out[(*used)++] = (char)byte;
		return 0;
	}
	if (*used + 5 > size)
		return -1;
	snprintf(out + *used, 5, "\\%03u", (unsigned)byte);
	*used += 4;
	return 0;
}

int rdata_name_read(const uint8_t *data, size_t len, size_t *offset, char *out, size_t size)
{
	size_t at = *offset, wire = 0, used = 0;

	if (size < 2)
		return -1;
	for (;;) {
		if (at >= len)
			return -1;
		uint8_t label = data[at++];
		wire += 1u + label;
		/* 0xC0 is a compression pointer, 0x40 and 0x80 are reserved:
		 * none belongs in RDATA handed over uncompressed. */
		if (label > RDATA_LABEL_MAX || wire > RDATA_NAME_WIRE_MAX)
			return -1;
		if (label == 0)
			break;
		if (label > len - at)
			return -1;
		if (used > 0) {
			if (used + 2 > size)
				return -1;
			out[used++] = '.';
		}
		for (size_t i = 0; i < label; i++)
			if (rdata_put_byte(out, size, &used, data[at + i]) < 0)
				return -1;
		at += label;
	}
	if (used == 0)
		out[used++] = '.'; /* the root */
	out[used] = '\0';
	*offset = at;
	return 0;
}

int rdata_ptr(const uint8_t *data, size_t len, char *out, size_t size)
{
	size_t offset = 0;

	if (rdata_name_read(data, len, &offset, out, size) < 0 || offset != len)
		return -1;
	return 0;
}

int rdata_mx(const uint8_t *data, size_t len, uint16_t *preference, char *exchange, size_t size)
{
	size_t offset = 2;

	if (len < 3)
		return -1;
	if (rdata_name_read(data, len, &offset, exchange, size) < 0 || offset != len)
		return -1;
	*preference = (uint16_t)((unsigned)data[0] << 8 | data[1]);
	return 0;
}

int rdata_txt_next(const uint8_t *data, size_t len, size_t *offset, const uint8_t **string,
		   size_t *length)
{
	size_t at = *offset;

	if (at >= len)
		return 0;
	size_t count = data[at++];
	if (count > len - at)
		return -1;
	*string = data + at;
	*length = count;
	*offset = at + count;
	return 1;
}

int rdata_txt_count(const uint8_t *data, size_t len)
{
	size_t offset = 0, length;
	const uint8_t *string;
	int count = 0, step;

	/* RDATA is at most 65535 bytes, so at most that many strings (each
	 * takes its length octet): COUNT fits. */
	if (len > UINT16_MAX)
		return -1;
	while ((step = rdata_txt_next(data, len, &offset, &string, &length)) == 1)
		count++;
	if (step < 0 || count == 0)
		return -1;
	return count;
}

int rdata_tlsa(const uint8_t *data, size_t len, struct rdata_tlsa *tlsa)
{
	/* RFC 6698 2.1: usage, selector, matching type, then the data. */
	if (len < 4 || len > UINT16_MAX)
		return -1;
	tlsa->usage = data[0];
	tlsa->selector = data[1];
	tlsa->matching = data[2];
	tlsa->data = data + 3;
	tlsa->length = len - 3;
	return 0;
}
