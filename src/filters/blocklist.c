/*
 * blocklist.c — the zones, names and answers of DNS blocklists
 * (blocklist.h), shared by the dnsbl and uribl filters.
 *
 * Owns: nothing. Must never: ask a name it has not built and checked, or
 * read an answer other than as blocklist.h says (a listing is only an A
 * record in 127/8 outside 127.255.255/24).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/blocklist.h"
#include "pipeline/proto.h"

void blocklist_zones_read(const char *key, struct blocklist_zones *zones)
{
	const char *value = filter_setting(key);
	char *copy;
	char *save = NULL;

	memset(zones, 0, sizeof(*zones));
	if (value == NULL)
		return;
	copy = xstrdup(value);
	for (char *item = strtok_r(copy, " ,", &save);
	     item != NULL && zones->count < BLOCKLIST_ZONES_MAX;
	     item = strtok_r(NULL, " ,", &save)) {
		size_t len = strlen(item);

		if (len > 0 && item[len - 1] == '.')
			item[--len] = '\0';
		if (!filter_dns_name_valid(item))
			continue;
		for (size_t i = 0; i < len; i++)
			item[i] = (char)tolower((unsigned char)item[i]);
		memcpy(zones->names[zones->count++], item, len + 1);
	}
	free(copy);
}

int blocklist_reverse(const char *address, char *out, size_t size)
{
	unsigned char bytes[16];
	size_t used = 0;

	if (inet_pton(AF_INET, address, bytes) == 1) {
		int n = snprintf(out, size, "%u.%u.%u.%u", bytes[3], bytes[2], bytes[1], bytes[0]);

		return n > 0 && (size_t)n < size ? 0 : -1;
	}
	if (inet_pton(AF_INET6, address, bytes) != 1 || size < 64)
		return -1;
	for (int i = 15; i >= 0; i--) {
		static const char hex[] = "0123456789abcdef";

		out[used++] = hex[bytes[i] & 0x0f];
		out[used++] = '.';
		out[used++] = hex[bytes[i] >> 4];
		out[used++] = i > 0 ? '.' : '\0';
	}
	return 0;
}

bool blocklist_address_local(const char *address)
{
	unsigned char b[16];
	static const unsigned char zero[16] = {0};

	if (inet_pton(AF_INET, address, b) == 1)
		return b[0] == 0 || b[0] == 10 || b[0] == 127 ||
		       (b[0] == 100 && (b[1] & 0xc0) == 64) || (b[0] == 169 && b[1] == 254) ||
		       (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168);
	if (inet_pton(AF_INET6, address, b) != 1)
		return false;
	/* An IPv4-mapped address is judged by its IPv4 address. */
	if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff) {
		char v4[INET_ADDRSTRLEN];

		snprintf(v4, sizeof(v4), "%u.%u.%u.%u", b[12], b[13], b[14], b[15]);
		return blocklist_address_local(v4);
	}
	return memcmp(b, zero, 15) == 0 ||		/* :: and ::1 */
	       (b[0] & 0xfe) == 0xfc ||			/* fc00::/7 */
	       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80); /* fe80::/10 */
}

enum blocklist_verdict blocklist_ask(const struct filter_message *message, const char *name,
				     const char *zone, char code[16])
{
	struct filter_dns_answer answer;
	enum blocklist_verdict verdict = BLOCKLIST_CLEAN;
	char query[FILTER_DNS_NAME_MAX + 2];
	int n = snprintf(query, sizeof(query), "%s.%s", name, zone);

	code[0] = '\0';
	if (n < 0 || (size_t)n >= sizeof(query)) {
		snprintf(code, 16, "name too long");
		return BLOCKLIST_UNANSWERED;
	}
	filter_dns_query(message, query, FILTER_DNS_A, &answer);
	switch (answer.status) {
	case FILTER_DNS_OK:
		break;
	case FILTER_DNS_NOT_FOUND:
		filter_dns_answer_clear(&answer);
		return BLOCKLIST_CLEAN;
	case FILTER_DNS_TIMEOUT:
		snprintf(code, 16, "timeout");
		filter_dns_answer_clear(&answer);
		return BLOCKLIST_UNANSWERED;
	case FILTER_DNS_FAILED:
		snprintf(code, 16, "failed");
		filter_dns_answer_clear(&answer);
		return BLOCKLIST_UNANSWERED;
	}
	for (size_t i = 0; i < answer.count; i++) {
		unsigned char b[4];

		if (inet_pton(AF_INET, answer.records[i], b) != 1)
			continue;
		if (b[0] != 127 || (b[1] == 255 && b[2] == 255)) {
			if (verdict == BLOCKLIST_CLEAN) {
				verdict = BLOCKLIST_REFUSED;
				snprintf(code, 16, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
			}
			continue;
		}
		verdict = BLOCKLIST_LISTED;
		snprintf(code, 16, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
		break;
	}
	filter_dns_answer_clear(&answer);
	return verdict;
}

void blocklist_reason_append(char *reason, size_t *used, const char *format, ...)
{
	size_t room = PROTO_REASON_MAX + 1;
	va_list args;
	int n;

	if (*used + 1 >= room)
		return;
	va_start(args, format);
	n = vsnprintf(reason + *used, room - *used, format, args);
	va_end(args);
	if (n > 0)
		*used += (size_t)n < room - *used ? (size_t)n : room - *used - 1;
}
