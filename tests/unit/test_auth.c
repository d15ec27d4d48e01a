/*
 * test_auth.c — the spf, dkim and dmarc filters (filters/spf.c,
 * dkim_verify.c, dmarc.c, auth.c, auth_header.c) over a table of DNS
 * records: SPF with ip4, ip6, a, mx, include, redirect, -all, ~all and a
 * null sender's HELO; a real corpus message signed by python3-dkim
 * (tests/unit/data/auth/make.py: d= its From domain, RSA, and d= a list
 * domain, Ed25519) verified, and broken; DMARC p=reject failing, relaxed
 * and strict alignment, a subdomain under its organizational domain's sp=;
 * forwarded mail (SPF fails, DKIM and DMARC pass); DNS timeouts as
 * temperrors scored 0; each result computed once per message; the one
 * Authentication-Results header.
 *
 * Owns: nothing but memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/auth.h"
#include "filters/auth_header.h"
#include "filters/dns.h"
#include "filters/filter.h"
#include "pipeline/headers.h"
#include "pipeline/pipeline.h"

#define DATA "tests/unit/data/auth"

/* ---- the DNS table ------------------------------------------------------- */

struct zone_entry {
	const char *name;
	enum filter_dns_type type;
	const char *records[3];
};

static const struct zone_entry zone[] = {
    /* The corpus message's Return-Path domain: its list server. */
    {"spamassassin.taint.org", FILTER_DNS_TXT, {"v=spf1 ip4:66.187.233.0/24 -all"}},
    {"soft.example", FILTER_DNS_TXT, {"v=spf1 ip4:192.0.2.0/24 ~all"}},
    {"inc.example", FILTER_DNS_TXT, {"v=spf1 include:_spf.inc.example -all"}},
    {"_spf.inc.example", FILTER_DNS_TXT, {"v=spf1 ip4:198.51.100.7 ?all"}},
    {"redir.example",
     FILTER_DNS_TXT,
     {"google-site-verification=x", "v=spf1 redirect=inc.example"}},
    {"v6.example", FILTER_DNS_TXT, {"v=spf1 ip6:2001:db8::/32 -all"}},
    {"a.example", FILTER_DNS_TXT, {"v=spf1 a -all"}},
    {"a.example", FILTER_DNS_A, {"192.0.2.20"}},
    {"mx.example", FILTER_DNS_TXT, {"v=spf1 mx -all"}},
    {"mx.example", FILTER_DNS_MX, {"10 mail.mx.example"}},
    {"mail.mx.example", FILTER_DNS_A, {"192.0.2.30"}},
    {"relay.helo.example", FILTER_DNS_TXT, {"v=spf1 a -all"}},
    {"relay.helo.example", FILTER_DNS_A, {"192.0.2.40"}},
    {"nospf.example", FILTER_DNS_TXT, {"just some text"}},
    {"two.example", FILTER_DNS_TXT, {"v=spf1 -all", "v=spf1 +all"}},
    {"bad.example", FILTER_DNS_TXT, {"v=spf1 ip4:999.0.2.1 -all"}},
    {"slowinc.example", FILTER_DNS_TXT, {"v=spf1 include:slow.example -all"}},
    {"exp.example", FILTER_DNS_TXT, {"v=spf1 -all exp=why.exp.example"}},
    {"why.exp.example", FILTER_DNS_TXT, {"%{i} is not one of %{d}'s %{l} %{o} %{h} %{r} %{p}"}},
    /* DMARC. */
    {"_dmarc.munnari.oz.au", FILTER_DNS_TXT, {"v=DMARC1; p=reject; rua=mailto:d@munnari.oz.au"}},
    {"relaxed.example", FILTER_DNS_TXT, {"v=spf1 ip4:192.0.2.50 -all"}},
    {"_dmarc.relaxed.example", FILTER_DNS_TXT, {"v=DMARC1; p=reject; aspf=r"}},
    {"strict.example", FILTER_DNS_TXT, {"v=spf1 ip4:192.0.2.60 -all"}},
    {"_dmarc.strict.example", FILTER_DNS_TXT, {"v=DMARC1; p=none; sp=quarantine; aspf=s"}},
};

/* The signed message, from DATA/signed.eml. */
static char *signed_text;

/* DKIM keys, from DATA/keys.txt: "NAME RECORD" lines. */
static char *keys_text;
static struct {
	const char *name;
	const char *record;
} keys[4];
static size_t key_count;

struct table {
	bool timeout; /* every question times out */
	bool no_keys; /* the DKIM keys are not published */
	size_t asked;
	size_t asked_for_spf; /* TXT questions for spamassassin.taint.org */
};

static void table_query(struct filter_dns *dns, const char *name, enum filter_dns_type type,
			int timeout_ms, struct filter_dns_answer *answer)
{
	struct table *table = dns->ctx;
	bool exists = false;

	(void)timeout_ms;
	table->asked++;
	if (type == FILTER_DNS_TXT && strcasecmp(name, "spamassassin.taint.org") == 0)
		table->asked_for_spf++;
	if (table->timeout) {
		answer->status = FILTER_DNS_TIMEOUT;
		return;
	}
	if (strcasecmp(name, "slow.example") == 0) {
		answer->status = FILTER_DNS_TIMEOUT;
		return;
	}
	answer->status = FILTER_DNS_OK;
	for (size_t i = 0; i < sizeof(zone) / sizeof(zone[0]); i++) {
		if (strcasecmp(zone[i].name, name) != 0)
			continue;
		exists = true;
		for (size_t r = 0; zone[i].type == type && r < 3 && zone[i].records[r] != NULL; r++)
			answer->records[answer->count++] = xstrdup(zone[i].records[r]);
	}
	for (size_t i = 0; i < key_count && !table->no_keys; i++) {
		if (strcasecmp(keys[i].name, name) != 0)
			continue;
		exists = true;
		if (type == FILTER_DNS_TXT)
			answer->records[answer->count++] = xstrdup(keys[i].record);
	}
	if (!exists)
		answer->status = FILTER_DNS_NOT_FOUND;
}

static int group_setup(void **state)
{
	size_t len;
	char *line;

	(void)state;
	if (util_read_file(DATA "/keys.txt", &keys_text, &len) < 0 ||
	    util_read_file(DATA "/signed.eml", &signed_text, &len) < 0)
		return -1;
	for (line = strtok(keys_text, "\n"); line != NULL && key_count < 4;
	     line = strtok(NULL, "\n")) {
		char *space = strchr(line, ' ');

		if (space == NULL)
			return -1;
		*space = '\0';
		keys[key_count].name = line;
		keys[key_count++].record = space + 1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	free(keys_text);
	free(signed_text);
	return 0;
}

/* ---- one message --------------------------------------------------------- */

struct check {
	struct table table;
	struct filter_dns dns;
	struct pipeline_job job;
	struct filter_auth auth;
	struct filter_message message;
	char *body;
	struct pipeline_result results[3]; /* spf, dkim, dmarc */
	struct pipeline_verdict verdict;
};

/* Makes CHECK the message BODY (taken over), handed off by ADDRESS (NULL:
 * not found) with HELO. */
static void check_init(struct check *check, char *body, const char *address, const char *helo)
{
	memset(check, 0, sizeof(*check));
	check->dns.query = table_query;
	check->dns.ctx = &check->table;
	filter_dns_begin(&check->dns, 5000);
	snprintf(check->job.id, sizeof(check->job.id), "0123456789abcdef");
	check->body = body;
	check->message.job = &check->job;
	check->message.hostname = "gate.example.net";
	check->message.size = strlen(body);
	check->message.body = body;
	check->message.body_len = strlen(body);
	check->message.dns = &check->dns;
	check->message.auth = &check->auth;
	check->message.headers = xmalloc(sizeof(*check->message.headers));
	headers_init(check->message.headers);
	headers_feed(check->message.headers, body, strlen(body));
	if (address != NULL) {
		check->message.handoff.found = true;
		snprintf(check->message.handoff.address, sizeof(check->message.handoff.address),
			 "%s", address);
		snprintf(check->message.handoff.helo, sizeof(check->message.handoff.helo), "%s",
			 helo != NULL ? helo : "");
	}
}

/* Runs the filter called NAME into its slot; returns the result. */
static struct pipeline_result *check_run(struct check *check, const char *name)
{
	const char *names[] = {"spf", "dkim", "dmarc"};
	size_t slot = 0;
	const struct filter *filter = filter_find(name);
	struct pipeline_result *result;

	while (strcmp(names[slot], name) != 0)
		slot++;
	result = &check->results[slot];
	assert_non_null(filter);
	snprintf(result->name, sizeof(result->name), "%s", name);
	assert_int_equal(filter->run(&check->message, result, &check->verdict), 0);
	assert_non_null(result->reason);
	return result;
}

static void check_free(struct check *check)
{
	for (size_t i = 0; i < 3; i++) {
		free(check->results[i].reason);
		free(check->results[i].headers);
	}
	free(check->message.headers);
	free(check->body);
}

static char *synthetic(const char *return_path, const char *from)
{
	return xasprintf("Return-Path: %s\r\nFrom: Someone <%s>\r\nTo: you@example.net\r\n"
			 "Subject: hello\r\n\r\nHello.\r\n",
			 return_path, from);
}

static char *signed_message(void)
{
	return xstrdup(signed_text);
}

/* The signed message with one body byte changed. */
static char *broken_message(void)
{
	char *body = signed_message();
	const char *word = strstr(body, "repeatable");
	size_t at;

	assert_non_null(word);
	at = (size_t)(word - body);
	body[at] = 'R';
	return body;
}

/* ---- SPF ------------------------------------------------------------------ */

struct spf_case {
	const char *return_path;
	const char *address;
	enum auth_result result;
};

static void test_spf_mechanisms(void **state)
{
	static const struct spf_case cases[] = {
	    {"<a@soft.example>", "192.0.2.9", AUTH_PASS},
	    {"<a@soft.example>", "203.0.113.5", AUTH_SOFTFAIL},
	    {"<a@inc.example>", "198.51.100.7", AUTH_PASS},
	    {"<a@inc.example>", "198.51.100.8", AUTH_FAIL},
	    {"<a@redir.example>", "198.51.100.7", AUTH_PASS},
	    {"<a@redir.example>", "203.0.113.5", AUTH_FAIL},
	    {"<a@v6.example>", "2001:db8::25", AUTH_PASS},
	    {"<a@v6.example>", "2001:db9::25", AUTH_FAIL},
	    {"<a@v6.example>", "192.0.2.1", AUTH_FAIL},
	    {"<a@a.example>", "192.0.2.20", AUTH_PASS},
	    {"<a@a.example>", "192.0.2.21", AUTH_FAIL},
	    {"<a@MX.example>", "192.0.2.30", AUTH_PASS},
	    {"<a@mx.example>", "192.0.2.31", AUTH_FAIL},
	    {"<a@nospf.example>", "192.0.2.1", AUTH_NONE},
	    {"<a@unknown.example>", "192.0.2.1", AUTH_NONE},
	    {"<a@two.example>", "192.0.2.1", AUTH_PERMERROR},
	    {"<a@bad.example>", "192.0.2.1", AUTH_PERMERROR},
	    {"<a@slowinc.example>", "192.0.2.1", AUTH_TEMPERROR},
	    {"<a@exp.example>", "192.0.2.1", AUTH_FAIL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct check check;
		const struct auth_spf *spf;

		check_init(&check, synthetic(cases[i].return_path, "x@example.net"),
			   cases[i].address, "mta.example.net");
		spf = auth_spf(&check.message);
		assert_non_null(spf);
		if (spf->result != cases[i].result)
			fail_msg("case %zu: %s from %s: %s", i, cases[i].return_path,
				 cases[i].address, auth_result_name(spf->result));
		assert_false(spf->helo);
		check_free(&check);
	}
}

static void test_spf_scores_and_reasons(void **state)
{
	struct check check;
	struct pipeline_result *result;

	(void)state;
	check_init(&check, synthetic("<a@inc.example>", "a@inc.example"), "203.0.113.5",
		   "x.example");
	result = check_run(&check, "spf");
	assert_true(result->score > 1.0);
	assert_string_equal(result->reason, "spf=fail for 203.0.113.5 (envelope from inc.example)");
	check_free(&check);

	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "203.0.113.5", "");
	result = check_run(&check, "spf");
	assert_true(result->score > 0 && result->score < 3.0);
	check_free(&check);

	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "192.0.2.1", "");
	result = check_run(&check, "spf");
	assert_true(result->score <= 0 && result->score > -1.0);
	check_free(&check);

	/* No hand-off address: nothing to check. */
	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), NULL, NULL);
	result = check_run(&check, "spf");
	assert_true(result->score == 0);
	assert_string_equal(result->reason, "spf=none (no hand-off address)");
	check_free(&check);
}

/* A null sender is checked by its HELO name; the job's sender goes before
 * the Return-Path. */
static void test_spf_identities(void **state)
{
	struct check check;
	const struct auth_spf *spf;

	(void)state;
	check_init(&check, synthetic("<>", "mailer-daemon@helo.example"), "192.0.2.40",
		   "relay.helo.example");
	spf = auth_spf(&check.message);
	assert_int_equal(spf->result, AUTH_PASS);
	assert_true(spf->helo);
	assert_string_equal(spf->domain, "relay.helo.example");
	check_free(&check);

	check_init(&check, synthetic("<>", "mailer-daemon@helo.example"), "192.0.2.40", "");
	spf = auth_spf(&check.message);
	assert_int_equal(spf->result, AUTH_NONE);
	assert_string_equal(spf->why, "null sender and no HELO name");
	check_free(&check);

	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "198.51.100.7", "");
	check.job.envelope.sender = "b@inc.example";
	spf = auth_spf(&check.message);
	assert_int_equal(spf->result, AUTH_PASS);
	assert_string_equal(spf->domain, "inc.example");
	check_free(&check);
}

/* ---- DKIM ----------------------------------------------------------------- */

static void test_dkim_real_signed_message(void **state)
{
	struct check check;
	const struct auth_dkim *dkim;
	struct pipeline_result *result;

	(void)state;
	check_init(&check, signed_message(), "66.187.233.211", "listman.spamassassin.taint.org");
	dkim = auth_dkim(&check.message);
	assert_int_equal(dkim->result, AUTH_PASS);
	assert_int_equal(dkim->count, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct auth_dkim_signature *signature = &dkim->signatures[i];

		assert_int_equal(signature->result, AUTH_PASS);
		if (strcmp(signature->domain, "munnari.oz.au") == 0) {
			assert_true(signature->aligned);
			assert_string_equal(signature->selector, "kre2026");
		} else {
			assert_string_equal(signature->domain, "lists.example.net");
			assert_false(signature->aligned);
		}
	}
	result = check_run(&check, "dkim");
	assert_true(result->score < 0);
	assert_non_null(strstr(result->reason, "pass d=munnari.oz.au aligned"));
	assert_non_null(strstr(result->reason, "pass d=lists.example.net"));
	check_free(&check);
}

static void test_dkim_broken_and_missing(void **state)
{
	struct check check;
	const struct auth_dkim *dkim;
	struct pipeline_result *result;
	(void)state;
	/* One changed body byte breaks both signatures. */
	check_init(&check, broken_message(), "66.187.233.211", "");
	dkim = auth_dkim(&check.message);
	assert_int_equal(dkim->result, AUTH_FAIL);
	assert_int_equal(dkim->count, 2);
	assert_int_equal(dkim->signatures[0].result, AUTH_FAIL);
	assert_int_equal(dkim->signatures[1].result, AUTH_FAIL);
	result = check_run(&check, "dkim");
	assert_true(result->score > 0);
	check_free(&check);

	/* Keys not published: no usable key is a permerror. */
	check_init(&check, signed_message(), "66.187.233.211", "");
	check.table.no_keys = true;
	dkim = auth_dkim(&check.message);
	assert_int_equal(dkim->result, AUTH_PERMERROR);
	assert_int_equal(dkim->signatures[0].result, AUTH_PERMERROR);
	assert_int_equal(dkim->signatures[1].result, AUTH_PERMERROR);
	check_free(&check);

	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "192.0.2.1", "");
	dkim = auth_dkim(&check.message);
	assert_int_equal(dkim->result, AUTH_NONE);
	assert_int_equal(dkim->count, 0);
	result = check_run(&check, "dkim");
	assert_true(result->score == 0);
	assert_string_equal(result->reason, "dkim=none (no signature)");
	check_free(&check);
}

/* ---- DMARC ---------------------------------------------------------------- */

/* Forwarded mail: delivered by a host outside the sender's SPF record. SPF
 * fails, both signatures survive, DMARC passes through the aligned one. */
static void test_forwarded_mail(void **state)
{
	struct check check;
	struct pipeline_result *spf, *dkim, *dmarc;

	(void)state;
	check_init(&check, signed_message(), "203.0.113.5", "forwarder.example.com");
	spf = check_run(&check, "spf");
	dkim = check_run(&check, "dkim");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.spf.result, AUTH_FAIL);
	assert_int_equal(check.auth.dkim.result, AUTH_PASS);
	assert_int_equal(check.auth.dmarc.result, AUTH_PASS);
	assert_true(check.auth.dmarc.dkim_aligned);
	assert_false(check.auth.dmarc.spf_aligned);
	assert_int_equal(check.auth.dmarc.policy, AUTH_POLICY_REJECT);
	assert_true(spf->score > 0);
	assert_true(dkim->score < 0);
	assert_true(dmarc->score <= 0);
	assert_string_equal(dmarc->reason, "dmarc=pass p=reject for From munnari.oz.au (policy of "
					   "munnari.oz.au; spf not aligned, dkim aligned)");
	/* Each result was computed once: SPF's record was asked for once. */
	assert_int_equal(check.table.asked_for_spf, 1);
	/* The one Authentication-Results header, from the dmarc filter. */
	assert_null(spf->headers);
	assert_null(dkim->headers);
	assert_non_null(dmarc->headers);
	assert_non_null(strstr(dmarc->headers,
			       "Authentication-Results: gate.example.net;\r\n"
			       "\tspf=fail smtp.mailfrom=spamassassin.taint.org;\r\n"));
	assert_non_null(
	    strstr(dmarc->headers, "\tdkim=pass header.d=munnari.oz.au header.s=kre2026"));
	assert_non_null(
	    strstr(dmarc->headers, "\tdkim=pass header.d=lists.example.net header.s=list"));
	assert_non_null(
	    strstr(dmarc->headers, "\tdmarc=pass (p=reject) header.from=munnari.oz.au\r\n"));
	check_free(&check);
}

/* The same message broken on the way and sent from outside the SPF
 * record: nothing aligned passes, and p=reject scores high. */
static void test_dmarc_reject(void **state)
{
	struct check check;
	struct pipeline_result *dmarc;

	(void)state;
	check_init(&check, broken_message(), "203.0.113.5", "");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.dmarc.result, AUTH_FAIL);
	assert_int_equal(check.auth.dmarc.policy, AUTH_POLICY_REJECT);
	assert_true(dmarc->score >= 5.0);
	assert_non_null(
	    strstr(dmarc->headers, "\tdmarc=fail (p=reject) header.from=munnari.oz.au"));
	check_free(&check);
}

/* SPF alignment of a subdomain's From with its organizational domain's
 * envelope: relaxed passes; strict fails, under sp=quarantine. */
static void test_dmarc_alignment(void **state)
{
	struct check check;
	struct pipeline_result *dmarc;

	(void)state;
	check_init(&check, synthetic("<b@relaxed.example>", "a@mail.relaxed.example"), "192.0.2.50",
		   "");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.spf.result, AUTH_PASS);
	assert_int_equal(check.auth.dmarc.result, AUTH_PASS);
	assert_true(check.auth.dmarc.spf_aligned);
	assert_string_equal(check.auth.dmarc.policy_domain, "relaxed.example");
	assert_true(dmarc->score <= 0);
	check_free(&check);

	check_init(&check, synthetic("<b@strict.example>", "a@mail.strict.example"), "192.0.2.60",
		   "");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.spf.result, AUTH_PASS);
	assert_int_equal(check.auth.dmarc.result, AUTH_FAIL);
	assert_false(check.auth.dmarc.spf_aligned);
	assert_int_equal(check.auth.dmarc.policy, AUTH_POLICY_QUARANTINE);
	assert_true(dmarc->score >= 3.0);
	check_free(&check);

	/* The organisational domain's own mail under p=none: a failure that
	 * costs nothing. */
	check_init(&check, synthetic("<b@strict.example>", "a@strict.example"), "203.0.113.5", "");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.dmarc.result, AUTH_FAIL);
	assert_int_equal(check.auth.dmarc.policy, AUTH_POLICY_NONE);
	assert_true(dmarc->score == 0);
	check_free(&check);

	assert_true(dmarc_aligned("mail.example.org", "example.org", false));
	assert_true(dmarc_aligned("example.org", "news.example.org", false));
	assert_false(dmarc_aligned("mail.example.org", "example.org", true));
	assert_true(dmarc_aligned("example.org", "EXAMPLE.org", true));
	assert_false(dmarc_aligned("example.net", "example.org", false));
	/* Siblings share the organisational domain (the public suffix list). */
	assert_true(dmarc_aligned("a.example.co.uk", "b.example.co.uk", false));
	assert_false(dmarc_aligned("a.co.uk", "b.co.uk", false));
}

static void test_dmarc_none(void **state)
{
	struct check check;
	struct pipeline_result *dmarc;

	(void)state;
	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "203.0.113.5", "");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.dmarc.result, AUTH_NONE);
	assert_true(dmarc->score == 0);
	assert_string_equal(dmarc->reason, "dmarc=none (no DMARC record of soft.example)");
	check_free(&check);
}

/* Every question times out: temperrors, all scored 0, and no question
 * asked twice for one identity. */
static void test_timeouts_are_neutral(void **state)
{
	struct check check;
	struct pipeline_result *spf, *dkim, *dmarc;

	(void)state;
	check_init(&check, signed_message(), "203.0.113.5", "");
	check.table.timeout = true;
	spf = check_run(&check, "spf");
	dkim = check_run(&check, "dkim");
	dmarc = check_run(&check, "dmarc");
	assert_int_equal(check.auth.spf.result, AUTH_TEMPERROR);
	assert_int_equal(check.auth.dkim.result, AUTH_TEMPERROR);
	assert_string_equal(check.auth.dkim.why, "no key in time");
	assert_int_equal(check.auth.dmarc.result, AUTH_TEMPERROR);
	assert_true(spf->score == 0 && dkim->score == 0 && dmarc->score == 0);
	assert_string_equal(dmarc->reason,
			    "dmarc=temperror (no answer for the DMARC record of munnari.oz.au)");
	check_free(&check);

	/* A spent budget is the same: no question is sent. */
	check_init(&check, signed_message(), "203.0.113.5", "");
	filter_dns_begin(&check.dns, 0);
	check_run(&check, "dmarc");
	assert_int_equal(check.table.asked, 0);
	assert_int_equal(check.auth.spf.result, AUTH_TEMPERROR);
	assert_int_equal(check.auth.dkim.result, AUTH_TEMPERROR);
	assert_int_equal(check.auth.dmarc.result, AUTH_TEMPERROR);
	check_free(&check);
}

/* Without the shared state the filters fail rather than guess. */
static void test_no_state(void **state)
{
	struct check check;
	struct pipeline_result result = {0};

	(void)state;
	check_init(&check, synthetic("<a@soft.example>", "a@soft.example"), "192.0.2.1", "");
	check.message.auth = NULL;
	assert_int_equal(filter_find("spf")->run(&check.message, &result, &check.verdict), -1);
	assert_string_equal(result.reason, "spf: no authentication state");
	free(result.reason);
	check_free(&check);
}

/* ---- the header reader ---------------------------------------------------- */

static void test_header_field(void **state)
{
	static const char message[] = "Received: from a\r\n\tby b\r\n"
				      "return-path:  <a@b.example> \r\n"
				      "Subject: x\r\n\r\nReturn-Path: <late@x.example>\r\n";
	char out[64];
	char tiny[8];

	(void)state;
	assert_int_equal(
	    auth_header_field(message, strlen(message), "Return-Path", out, sizeof(out)), 1);
	assert_string_equal(out, "<a@b.example>");
	assert_int_equal(auth_header_field(message, strlen(message), "Received", out, sizeof(out)),
			 1);
	assert_string_equal(out, "from a\tby b");
	assert_int_equal(auth_header_field(message, strlen(message), "From", out, sizeof(out)), 0);
	assert_int_equal(
	    auth_header_field(message, strlen(message), "Received", tiny, sizeof(tiny)), -1);
	assert_string_equal(tiny, "");
	/* Cut anywhere, it never reads past the end. */
	for (size_t len = 0; len < sizeof(message) - 1; len++) {
		char *copy = xmalloc(len + 1);

		memcpy(copy, message, len);
		auth_header_field(copy, len, "Return-Path", out, sizeof(out));
		free(copy);
	}
}

static void test_path_address(void **state)
{
	char out[64];

	(void)state;
	assert_int_equal(auth_path_address("<A@B.Example>", out, sizeof(out)), 1);
	assert_string_equal(out, "A@b.example");
	assert_int_equal(auth_path_address("a@b.example", out, sizeof(out)), 1);
	assert_int_equal(auth_path_address("<@relay.example:a@b.example>", out, sizeof(out)), 1);
	assert_string_equal(out, "a@b.example");
	assert_int_equal(auth_path_address("<>", out, sizeof(out)), 0);
	assert_int_equal(auth_path_address("  ", out, sizeof(out)), 0);
	assert_int_equal(auth_path_address("<a@b.example", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<a b@b.example>", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<a@b..example>", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<a@b.example;x>", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<@b.example>", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<nobody>", out, sizeof(out)), -1);
	assert_int_equal(auth_path_address("<averyveryverylonglocalpart@b.example>", out, 16), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spf_mechanisms),
	    cmocka_unit_test(test_spf_scores_and_reasons),
	    cmocka_unit_test(test_spf_identities),
	    cmocka_unit_test(test_dkim_real_signed_message),
	    cmocka_unit_test(test_dkim_broken_and_missing),
	    cmocka_unit_test(test_forwarded_mail),
	    cmocka_unit_test(test_dmarc_reject),
	    cmocka_unit_test(test_dmarc_alignment),
	    cmocka_unit_test(test_dmarc_none),
	    cmocka_unit_test(test_timeouts_are_neutral),
	    cmocka_unit_test(test_no_state),
	    cmocka_unit_test(test_header_field),
	    cmocka_unit_test(test_path_address),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
