/*
 * dns.c — a filter's DNS question, checked and timed: the name's syntax,
 * the message's budget, then the answerer (filters/dns.h).
 *
 * Owns: nothing but the arithmetic of the budget. Must never: send a name it
 * has not checked, or wait past the budget.
 */
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "filters/dns.h"
#include "filters/filter.h"

void filter_dns_begin(struct filter_dns *dns, int64_t budget_ms)
{
	if (dns != NULL)
		dns->budget_ms = budget_ms;
}

int filter_dns_name_valid(const char *name)
{
	size_t len = strlen(name);
	size_t label = 0;

	if (len == 0 || len > FILTER_DNS_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0;
}

void filter_dns_query(const struct filter_message *message, const char *name,
		      enum filter_dns_type type, struct filter_dns_answer *answer)
{
	struct filter_dns *dns = message->dns;
	char bare[FILTER_DNS_NAME_MAX + 2];
	size_t len = strlen(name);
	int64_t started;
	int64_t spent;

	memset(answer, 0, sizeof(*answer));
	answer->status = FILTER_DNS_FAILED;
	if (len > 0 && len <= FILTER_DNS_NAME_MAX + 1 && name[len - 1] == '.')
		len--;
	if (len > FILTER_DNS_NAME_MAX)
		return;
	memcpy(bare, name, len);
	bare[len] = '\0';
	if (!filter_dns_name_valid(bare) || dns == NULL || dns->query == NULL)
		return;
	if (dns->budget_ms <= 0) {
		answer->status = FILTER_DNS_TIMEOUT;
		return;
	}
	started = util_monotonic_ms();
	dns->query(dns, bare, type, (int)dns->budget_ms, answer);
	spent = util_monotonic_ms() - started;
	dns->budget_ms -= spent > 0 ? spent : 0;
	if (answer->status != FILTER_DNS_OK) {
		/* Only an answer carries records. */
		for (size_t i = 0; i < answer->count; i++)
			xfree(&answer->records[i]);
		answer->count = 0;
	}
}

void filter_dns_answer_clear(struct filter_dns_answer *answer)
{
	for (size_t i = 0; i < answer->count && i < FILTER_DNS_RECORDS_MAX; i++)
		free(answer->records[i]);
	memset(answer, 0, sizeof(*answer));
}
