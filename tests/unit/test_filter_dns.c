/*
 * test_filter_dns.c — the filters' settings (filter_setting, fed by
 * config_section_text as a worker gets them) and a filter's DNS question
 * (filters/dns.h): names checked before they are sent, the message's time
 * budget spent and then refused, records only with an answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/util.h"
#include "filters/dns.h"
#include "filters/filter.h"

/* The [spam] section of the defaults reaches the filters key by key. */
static void test_settings_from_config(void **state)
{
	struct popgate_config cfg;
	char *text;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	config_defaults(&cfg);
	text = config_section_text(&cfg, "spam");
	filter_settings_set(text);
	free(text);
	assert_non_null(filter_setting("quarantine_days"));
	assert_string_equal(filter_setting("quarantine_days"), "30");
	assert_null(filter_setting("quarantine"));
	assert_null(filter_setting("no_such_key"));
	filter_settings_set("a 1\nab two words\nempty \n");
	assert_string_equal(filter_setting("a"), "1");
	assert_string_equal(filter_setting("ab"), "two words");
	assert_string_equal(filter_setting("empty"), "");
	filter_settings_set(NULL);
	assert_null(filter_setting("a"));
	config_free(&cfg);
}

static void test_name_valid(void **state)
{
	char long_label[70];
	char long_name[300];

	(void)state;
	assert_true(filter_dns_name_valid("2.0.0.127.zen.example"));
	assert_true(filter_dns_name_valid("_dmarc.example.org"));
	assert_true(filter_dns_name_valid("sel._domainkey.Example.ORG"));
	assert_false(filter_dns_name_valid(""));
	assert_false(filter_dns_name_valid("a..b"));
	assert_false(filter_dns_name_valid(".a"));
	assert_false(filter_dns_name_valid("a.b."));
	assert_false(filter_dns_name_valid("a b.example"));
	assert_false(filter_dns_name_valid("a\\.example"));
	memset(long_label, 'a', 64);
	long_label[64] = '\0';
	assert_false(filter_dns_name_valid(long_label));
	for (size_t i = 0; i < 254; i++)
		long_name[i] = i % 2 == 0 ? 'a' : '.';
	long_name[254] = '\0';
	assert_false(filter_dns_name_valid(long_name));
}

/* A table answerer: "a.example" has one A record; asking takes 30 ms. */
struct table {
	int asked;
	char last[FILTER_DNS_NAME_MAX + 1];
};

static void table_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			int timeout_ms, struct filter_dns_answer *answer)
{
	struct table *table = dns->ctx;

	(void)timeout_ms;
	table->asked++;
	snprintf(table->last, sizeof(table->last), "%s", name);
	usleep(30000);
	if (strcmp(name, "a.example") == 0 && type == FILTER_DNS_A) {
		answer->status = FILTER_DNS_OK;
		answer->records[answer->count++] = xstrdup("192.0.2.1");
	} else if (strcmp(name, "a.example") == 0) {
		answer->status = FILTER_DNS_OK;
	} else {
		answer->status = FILTER_DNS_NOT_FOUND;
		/* Records with a failure are dropped by filter_dns_query. */
		answer->records[answer->count++] = xstrdup("junk");
	}
}

static void test_query_budget(void **state)
{
	struct table table = {0};
	struct filter_dns dns = {.query = table_query, .ctx = &table};
	struct filter_message message = {.dns = &dns};
	struct filter_dns_answer answer;

	(void)state;
	filter_dns_begin(&dns, 80);
	filter_dns_query(&message, "a.example.", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_OK);
	assert_int_equal(answer.count, 1);
	assert_string_equal(answer.records[0], "192.0.2.1");
	assert_string_equal(table.last, "a.example");
	filter_dns_answer_clear(&answer);
	filter_dns_query(&message, "b.example", FILTER_DNS_TXT, &answer);
	assert_int_equal(answer.status, FILTER_DNS_NOT_FOUND);
	assert_int_equal(answer.count, 0);
	filter_dns_answer_clear(&answer);
	/* A hostile name is never sent. */
	filter_dns_query(&message, "evil name.example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_FAILED);
	assert_int_equal(table.asked, 2);
	/* 80 ms at 30 ms a question: the fourth is not asked. */
	filter_dns_query(&message, "a.example", FILTER_DNS_MX, &answer);
	assert_int_equal(answer.status, FILTER_DNS_OK);
	filter_dns_query(&message, "a.example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_TIMEOUT);
	assert_int_equal(answer.count, 0);
	assert_int_equal(table.asked, 3);
	/* The next message has its own budget. */
	filter_dns_begin(&dns, 80);
	filter_dns_query(&message, "a.example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_OK);
	filter_dns_answer_clear(&answer);
	/* No answerer: nothing is known. */
	message.dns = NULL;
	filter_dns_query(&message, "a.example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_FAILED);
}

/* With a cache, an answer (records or none) is given again without asking,
 * and without spending the budget; a failure is asked again. */
static void test_cache(void **state)
{
	struct table table = {0};
	struct filter_dns dns = {.query = table_query, .ctx = &table};
	struct filter_message message = {.dns = &dns};
	struct filter_dns_answer answer;

	(void)state;
	dns.cache = filter_dns_cache_new();
	filter_dns_begin(&dns, 1000);
	filter_dns_query(&message, "a.example", FILTER_DNS_A, &answer);
	filter_dns_answer_clear(&answer);
	filter_dns_query(&message, "b.example", FILTER_DNS_A, &answer);
	filter_dns_answer_clear(&answer);
	assert_int_equal(table.asked, 2);
	/* The next message, with no budget at all: both from the cache. */
	filter_dns_begin(&dns, 0);
	filter_dns_query(&message, "A.Example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_OK);
	assert_int_equal(answer.count, 1);
	assert_string_equal(answer.records[0], "192.0.2.1");
	filter_dns_answer_clear(&answer);
	filter_dns_query(&message, "b.example", FILTER_DNS_A, &answer);
	assert_int_equal(answer.status, FILTER_DNS_NOT_FOUND);
	assert_int_equal(table.asked, 2);
	/* Another type is another question; a timeout is not kept. */
	filter_dns_query(&message, "a.example", FILTER_DNS_TXT, &answer);
	assert_int_equal(answer.status, FILTER_DNS_TIMEOUT);
	filter_dns_begin(&dns, 1000);
	filter_dns_query(&message, "a.example", FILTER_DNS_TXT, &answer);
	assert_int_equal(answer.status, FILTER_DNS_OK);
	assert_int_equal(table.asked, 3);
	filter_dns_cache_free(&dns.cache);
	assert_null(dns.cache);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_settings_from_config),
	    cmocka_unit_test(test_name_valid),
	    cmocka_unit_test(test_query_budget),
	    cmocka_unit_test(test_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
