/*
 * test_blocklist.c — the DNS blocklist filters, dnsbl (the hand-off
 * address) and uribl (the link domains of real messages from the
 * SpamAssassin corpus), with a table answering their DNS questions; and
 * what they share (blocklist.h): reversed addresses, local addresses, the
 * zones setting, and how a blocklist's answer is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/blocklist.h"
#include "filters/dns.h"
#include "filters/filter.h"
#include "filters/uribl.h"
#include "pipeline/pipeline.h"

#include "test_corpus.h"

/* A table answerer: NAME -> one A record, or a status; the rest NXDOMAIN. */
struct table_row {
	const char *name;
	enum filter_dns_status status;
	const char *record;
};

struct table {
	const struct table_row *rows;
	size_t count;
	int asked;
};

static void table_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			int timeout_ms, struct filter_dns_answer *answer)
{
	struct table *table = dns->ctx;

	(void)timeout_ms;
	table->asked++;
	answer->status = FILTER_DNS_NOT_FOUND;
	if (type != FILTER_DNS_A)
		return;
	for (size_t i = 0; i < table->count; i++) {
		if (strcmp(table->rows[i].name, name) != 0)
			continue;
		answer->status = table->rows[i].status;
		if (table->rows[i].record != NULL)
			answer->records[answer->count++] = xstrdup(table->rows[i].record);
		return;
	}
}

/* Runs FILTER over MESSAGE; the result's score and reason. */
static double run_filter(const struct filter *filter, const struct filter_message *message,
			 char *reason, size_t size)
{
	struct pipeline_result result = {.status = PIPELINE_RESULT_OK};
	struct pipeline_verdict verdict = {0};

	assert_int_equal(filter->run(message, &result, &verdict), 0);
	assert_non_null(result.reason);
	snprintf(reason, size, "%s", result.reason);
	free(result.reason);
	assert_null(result.headers);
	return result.score;
}

static void test_reverse(void **state)
{
	char out[80];

	(void)state;
	assert_int_equal(blocklist_reverse("192.0.2.99", out, sizeof(out)), 0);
	assert_string_equal(out, "99.2.0.192");
	assert_int_equal(blocklist_reverse("2001:db8::1", out, sizeof(out)), 0);
	assert_string_equal(out, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2");
	assert_int_equal(blocklist_reverse("192.0.2", out, sizeof(out)), -1);
	assert_int_equal(blocklist_reverse("example.org", out, sizeof(out)), -1);
	assert_int_equal(blocklist_reverse("192.0.2.99", out, 8), -1);
	assert_int_equal(blocklist_reverse("2001:db8::1", out, 40), -1);
}

static void test_local_addresses(void **state)
{
	static const char *const local[] = {"10.1.2.3",
					    "127.0.0.1",
					    "172.16.0.1",
					    "172.31.255.255",
					    "192.168.1.1",
					    "169.254.0.1",
					    "100.64.0.1",
					    "0.0.0.0",
					    "::1",
					    "::",
					    "fd00::1",
					    "fe80::1",
					    "::ffff:10.0.0.1"};
	static const char *const public[] = {"192.0.2.99",    "172.32.0.1",  "100.128.0.1",
					     "8.8.8.8",	      "2001:db8::1", "::ffff:8.8.8.8",
					     "not an address"};

	(void)state;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (!blocklist_address_local(local[i]))
			fail_msg("%s is local", local[i]);
	for (size_t i = 0; i < sizeof(public) / sizeof(public[0]); i++)
		if (blocklist_address_local(public[i]))
			fail_msg("%s is not local", public[i]);
}

/* Zones are split on blanks and commas, lowercased, a trailing dot
 * dropped, bad names left out, at most BLOCKLIST_ZONES_MAX. */
static void test_zones(void **state)
{
	struct blocklist_zones zones;

	(void)state;
	filter_settings_set("dnsbl_zones Zen.Example., bl.test  bad..zone,x\n");
	blocklist_zones_read("dnsbl_zones", &zones);
	assert_int_equal(zones.count, 3);
	assert_string_equal(zones.names[0], "zen.example");
	assert_string_equal(zones.names[1], "bl.test");
	assert_string_equal(zones.names[2], "x");
	filter_settings_set("dnsbl_zones a b c d e f g h i j\n");
	blocklist_zones_read("dnsbl_zones", &zones);
	assert_int_equal(zones.count, BLOCKLIST_ZONES_MAX);
	filter_settings_set(NULL);
	blocklist_zones_read("dnsbl_zones", &zones);
	assert_int_equal(zones.count, 0);
}

/*
 * The hand-off address on four zones: one lists it (a point, named with
 * its code), one does not, one refuses (Spamhaus's 127.255.255.x) and one
 * does not answer in time: both named as no answer, neither counted.
 */
static void test_dnsbl(void **state)
{
	static const struct table_row rows[] = {
	    {"99.2.0.192.bl.test", FILTER_DNS_OK, "127.0.0.2"},
	    {"99.2.0.192.refused.test", FILTER_DNS_OK, "127.255.255.254"},
	    {"99.2.0.192.slow.test", FILTER_DNS_TIMEOUT, NULL},
	    {"99.2.0.192.isp.test", FILTER_DNS_OK, "198.51.100.1"},
	    {"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test",
	     FILTER_DNS_OK, "127.0.0.4"},
	};
	struct table table = {rows, sizeof(rows) / sizeof(rows[0]), 0};
	struct filter_dns dns = {.query = table_query, .ctx = &table};
	struct filter_message message = {.dns = &dns};
	char reason[256];

	(void)state;
	filter_settings_set("dnsbl_zones bl.test other.test refused.test slow.test\n");
	message.handoff.found = true;
	strcpy(message.handoff.address, "192.0.2.99");
	filter_dns_begin(&dns, 5000);
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 1.0);
	assert_string_equal(reason, "listed in bl.test (127.0.0.2); no answer: refused.test "
				    "refused (127.255.255.254), slow.test timeout");
	assert_int_equal(table.asked, 4);

	/* Listed twice: two points. */
	filter_settings_set("dnsbl_zones bl.test bl.test\n");
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 2.0);

	/* An answer outside 127/8 (a resolver's own page) is no listing. */
	filter_settings_set("dnsbl_zones isp.test other.test\n");
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "192.0.2.99 not listed; no answer: isp.test refused "
				    "(198.51.100.1)");

	/* IPv6: the nibbles. */
	filter_settings_set("dnsbl_zones bl.test\n");
	strcpy(message.handoff.address, "2001:db8::1");
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 1.0);
	assert_string_equal(reason, "listed in bl.test (127.0.0.4)");

	/* A spent budget: neutral, and said so. */
	strcpy(message.handoff.address, "192.0.2.99");
	filter_dns_begin(&dns, 0);
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "192.0.2.99 not listed; no answer: bl.test timeout");
	filter_dns_begin(&dns, 5000);

	/* Not asked: a local hand-off, none found, no zones. */
	table.asked = 0;
	strcpy(message.handoff.address, "10.0.0.7");
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "hand-off 10.0.0.7 is a local address: not asked");
	message.handoff.found = false;
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "no hand-off address found");
	message.handoff.found = true;
	filter_settings_set("dnsbl_zones \n");
	assert_true(run_filter(&filter_dnsbl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "no zones ([spam] dnsbl_zones)");
	assert_int_equal(table.asked, 0);
	filter_settings_set(NULL);
}

static void test_uribl_domain(void **state)
{
	static const struct {
		const char *url;
		int kind;
		const char *name;
	} cases[] = {
	    {"http://www.shop.example.co.uk/x?y", 0, "example.co.uk"},
	    {"https://user:pw@Sub.Example.COM:8080/p", 0, "example.com"},
	    {"www.Example.org.", 0, "example.org"},
	    {"HTTP://example.net#frag", 0, "example.net"},
	    {"http://192.0.2.7/x", 1, "7.2.0.192"},
	    {"http://[2001:db8::1]:80/", 1,
	     "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"},
	    {"http://10.0.0.1/", -1, NULL},
	    {"mailto:a@example.com", -1, NULL},
	    {"http://co.uk/", -1, NULL},
	    {"http://bad_host!.example/", -1, NULL},
	    {"http:///nothing", -1, NULL},
	    {"http://[2001:db8::1/", -1, NULL},
	};
	char err[256];
	char name[FILTER_DNS_NAME_MAX + 1];

	(void)state;
	assert_int_equal(filter_uribl.init(err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int kind = uribl_domain(cases[i].url, name, sizeof(name));

		if (kind != cases[i].kind)
			fail_msg("%s: %d, not %d", cases[i].url, kind, cases[i].kind);
		if (kind >= 0)
			assert_string_equal(name, cases[i].name);
	}
}

/*
 * A real spam from the corpus, whose links point at reliaquote.com and
 * theadmanager.com: one listed domain is one point, named with its zone;
 * a real ham with links on the same zone scores nothing.
 */
static void test_uribl_corpus(void **state)
{
	static const struct table_row rows[] = {
	    {"reliaquote.com.uribl.test", FILTER_DNS_OK, "127.0.0.2"},
	    {"theadmanager.com.slow.test", FILTER_DNS_TIMEOUT, NULL},
	};
	struct table table = {rows, sizeof(rows) / sizeof(rows[0]), 0};
	struct filter_dns dns = {.query = table_query, .ctx = &table};
	struct filter_message message = {.dns = &dns};
	char reason[256];
	char err[256];
	char *data;
	size_t len;

	(void)state;
	assert_int_equal(filter_uribl.init(err, sizeof(err)), 0);
	assert_int_equal(test_corpus_read("spam-1", "00008.", &data, &len), 0);
	message.body = data;
	message.body_len = len;
	filter_settings_set("uribl_zones uribl.test\n");
	filter_dns_begin(&dns, 5000);
	assert_true(run_filter(&filter_uribl, &message, reason, sizeof(reason)) == 1.0);
	assert_string_equal(reason, "listed: reliaquote.com (uribl.test 127.0.0.2)");
	assert_true(table.asked >= 2 && table.asked <= URIBL_DOMAINS_MAX);

	/* A zone that does not answer is named once, and counts nothing. */
	filter_settings_set("uribl_zones slow.test\n");
	assert_true(run_filter(&filter_uribl, &message, reason, sizeof(reason)) == 0.0);
	assert_non_null(strstr(reason, " none listed; no answer: slow.test timeout"));
	free(data);

	assert_int_equal(test_corpus_read("easy-ham-1", "0001", &data, &len), 0);
	message.body = data;
	message.body_len = len;
	filter_settings_set("uribl_zones uribl.test\n");
	assert_true(run_filter(&filter_uribl, &message, reason, sizeof(reason)) == 0.0);
	assert_non_null(strstr(reason, "none listed"));
	free(data);

	/* No zones: nothing parsed, nothing asked. */
	table.asked = 0;
	filter_settings_set(NULL);
	assert_true(run_filter(&filter_uribl, &message, reason, sizeof(reason)) == 0.0);
	assert_string_equal(reason, "no zones ([spam] uribl_zones)");
	assert_int_equal(table.asked, 0);
}

/* At most URIBL_DOMAINS_MAX distinct domains of a message are asked. */
static void test_uribl_bounded(void **state)
{
	struct table table = {NULL, 0, 0};
	struct filter_dns dns = {.query = table_query, .ctx = &table};
	struct filter_message message = {.dns = &dns};
	char *body = xstrdup("From: a@example.org\nSubject: links\n\n");
	char reason[256];
	char err[256];

	(void)state;
	assert_int_equal(filter_uribl.init(err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++) {
		char *more = xasprintf("%shttp://www.d%d-example.com/ http://x.d%d-example.com/\n",
				       body, i, i);

		free(body);
		body = more;
	}
	message.body = body;
	message.body_len = strlen(body);
	filter_settings_set("uribl_zones uribl.test\n");
	filter_dns_begin(&dns, 5000);
	assert_true(run_filter(&filter_uribl, &message, reason, sizeof(reason)) == 0.0);
	assert_int_equal(table.asked, URIBL_DOMAINS_MAX);
	assert_string_equal(reason, "20 link domains, none listed");
	filter_settings_set(NULL);
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reverse),	  cmocka_unit_test(test_local_addresses),
	    cmocka_unit_test(test_zones),	  cmocka_unit_test(test_dnsbl),
	    cmocka_unit_test(test_uribl_domain),  cmocka_unit_test(test_uribl_corpus),
	    cmocka_unit_test(test_uribl_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
