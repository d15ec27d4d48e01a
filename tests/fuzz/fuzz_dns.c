/*
 * fuzz_dns.c — libFuzzer target for the DNS RDATA reader (core/rdata.c),
 * which reads what remote name servers send.
 *
 * The first byte picks what the rest is:
 *   0  a name: read into a buffer of the size the second byte gives (or
 *      RDATA_NAME_TEXT_MAX): the text holds only letters, digits, '-', '_',
 *      '.' and \DDD escapes, and reads back into exactly the wire bytes
 *      consumed (no label, byte or dot lost or made up).
 *   1  an MX record's RDATA: its exchange as a name above, the preference
 *      its first two bytes.
 *   2  a PTR record's RDATA: one name that fills it.
 *   3  a TXT record's RDATA: the strings, each in bounds, fill it exactly
 *      when it is read as valid.
 *   4  a TLSA record's RDATA: read when it has its three octets and data,
 *      the fields those octets, the data the rest, within the input.
 *
 * Properties are checked with abort(). Must never: touch the file system or
 * keep state between runs.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rdata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool condition)
{
	if (!condition)
		abort();
}

/* Reads TEXT (presentation form as rdata.c writes it) back into wire form
 * in WIRE; its length. */
static size_t name_to_wire(const char *text, uint8_t *wire)
{
	size_t at = 0, label_at = 0;

	if (strcmp(text, ".") == 0) {
		wire[0] = 0;
		return 1;
	}
	wire[at++] = 0; /* the first label's length, set when it ends */
	for (const char *p = text;; p++) {
		if (*p == '.' || *p == '\0') {
			size_t label = at - label_at - 1;

			check(label >= 1 && label <= 63);
			wire[label_at] = (uint8_t)label;
			label_at = at;
			wire[at++] = 0;
			if (*p == '\0')
				return at;
		} else if (*p == '\\') {
			check(isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
			      isdigit((unsigned char)p[3]));
			int value = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
			check(value <= 255);
			/* Only what may not stand as it is gets escaped. */
			check(!isalnum(value) && value != '-' && value != '_');
			wire[at++] = (uint8_t)value;
			p += 3;
		} else {
			check(isalnum((unsigned char)*p) || *p == '-' || *p == '_');
			wire[at++] = (uint8_t)*p;
		}
		check(at < 300);
	}
}

/* The name read from DATA[START..END) as TEXT is exactly those bytes. */
static void check_name(const uint8_t *data, size_t start, size_t end, const char *text, size_t size)
{
	uint8_t wire[300];
	size_t length = strlen(text);

	check(length > 0 && length < size && length < RDATA_NAME_TEXT_MAX);
	check(end > start && end - start <= 255);
	check(name_to_wire(text, wire) == end - start);
	check(memcmp(wire, data + start, end - start) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = malloc(RDATA_NAME_TEXT_MAX);
	size_t offset = 0;

	if (size < 2)
		goto done;
	uint8_t kind = data[0];
	data++;
	size--;
	switch (kind % 5) {
	case 0: {
		/* A small buffer must fail cleanly, never overflow. */
		size_t room = data[0] != 0 ? data[0] : RDATA_NAME_TEXT_MAX;
		if (rdata_name_read(data + 1, size - 1, &offset, out, room) == 0) {
			check(offset <= size - 1);
			check_name(data + 1, 0, offset, out, room);
		}
		break;
	}
	case 1: {
		uint16_t preference;
		if (rdata_mx(data, size, &preference, out, RDATA_NAME_TEXT_MAX) == 0) {
			check(preference == (data[0] << 8 | data[1]));
			check_name(data, 2, size, out, RDATA_NAME_TEXT_MAX);
		}
		break;
	}
	case 2:
		if (rdata_ptr(data, size, out, RDATA_NAME_TEXT_MAX) == 0)
			check_name(data, 0, size, out, RDATA_NAME_TEXT_MAX);
		break;
	case 3: {
		int count = rdata_txt_count(data, size);
		const uint8_t *string;
		size_t length, total = 0;
		int seen = 0, step;

		while ((step = rdata_txt_next(data, size, &offset, &string, &length)) == 1) {
			check(string > data && string + length <= data + size);
			total += 1 + length;
			seen++;
		}
		check(step == 0 || step == -1);
		if (count >= 0) {
			check(step == 0 && seen == count && total == size && count >= 1);
		} else {
			check(step == -1 || size == 0);
		}
		break;
	}
	case 4: {
		struct rdata_tlsa tlsa;

		if (rdata_tlsa(data, size, &tlsa) == 0) {
			check(size >= 4 && tlsa.usage == data[0] && tlsa.selector == data[1] &&
			      tlsa.matching == data[2]);
			check(tlsa.data == data + 3 && tlsa.length == size - 3);
		} else {
			check(size < 4);
		}
		break;
	}
	}
done:
	free(out);
	return 0;
}
