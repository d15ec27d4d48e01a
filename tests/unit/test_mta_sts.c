/*
 * test_mta_sts.c — unit tests for src/smtp/mta_sts.c: the _mta-sts TXT
 * record (valid, other records, malformed), the policy body (the RFC 8461
 * example, CRLF and LF, extensions, every required field missing or
 * doubled, bad values, the limits), the MX pattern match (exact, "*." of
 * exactly one label, case and trailing dots), and the HTTP response
 * framing (status, redirects, Content-Type, Content-Length, a cut body);
 * and src/store/mta_sts.c, the policy cache (put, replace, get, list).
 *
 * Must never: touch the network, or files outside its temp folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/mta_sts.h"
#include "store/mta_sts.h"
#include "test_support.h"

/* ---- the TXT record ---------------------------------------------------- */

static int record(const char *text, char *id)
{
	return mta_sts_record_parse(text, strlen(text), id);
}

static void test_record(void **state)
{
	char id[MTA_STS_ID_MAX + 1];
	(void)state;

	assert_int_equal(record("v=STSv1; id=20160831085700Z", id), 1);
	assert_string_equal(id, "20160831085700Z");
	assert_int_equal(record("v=STSv1;id=abc;", id), 1);
	assert_string_equal(id, "abc");
	assert_int_equal(record("v=STSv1 ; id=x1 ; ext-1=yes", id), 1);
	assert_string_equal(id, "x1");
	assert_int_equal(record("v=STSv1; id=12345678901234567890123456789012", id), 1);
	/* Other records are not ours. */
	assert_int_equal(record("v=spf1 -all", id), 0);
	assert_int_equal(record("v=STSv10; id=1", id), 0);
	assert_int_equal(record("", id), 0);
	/* Ours, but malformed. */
	assert_int_equal(record("v=STSv1", id), -1);
	assert_int_equal(record("v=STSv1;", id), -1);
	assert_int_equal(record("v=STSv1; id=", id), -1);
	assert_int_equal(record("v=STSv1; id=a-b", id), -1);
	assert_int_equal(record("v=STSv1; id=123456789012345678901234567890123", id), -1);
	assert_int_equal(record("v=STSv1; id=1; id=2", id), -1);
	assert_int_equal(record("v=STSv1; id=1 x", id), -1);
	assert_int_equal(record("v=STSv1; =1", id), -1);
	assert_int_equal(mta_sts_record_parse("v=STSv1; id=1\0", 14, id), -1);
	/* Case matters (%s in the grammar). */
	assert_int_equal(record("v=STSv1; ID=1", id), -1);
}

/* ---- the policy ---------------------------------------------------------- */

static int policy(const char *text, struct mta_sts_policy *p, char *err, size_t errlen)
{
	return mta_sts_policy_parse(text, strlen(text), p, err, errlen);
}

static void test_policy_example(void **state)
{
	struct mta_sts_policy p;
	char err[160];
	(void)state;

	/* RFC 8461 3.2's example. */
	assert_int_equal(policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
				"mx: *.example.net\r\nmx: backupmx.example.com\r\n"
				"max_age: 604800\r\n",
				&p, err, sizeof(err)),
			 0);
	assert_int_equal(p.mode, MTA_STS_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.mx_count, 3);
	assert_string_equal(p.mx[1], "*.example.net");
	mta_sts_policy_clear(&p);
	assert_null(p.mx);

	/* LF, no final line end, blanks around values, an extension, case. */
	assert_int_equal(policy("version:STSv1\nmode:\ttesting  \nfoo_bar: anything at all\n"
				"mx: MX.Example.ORG.\nmax_age: 31557600",
				&p, err, sizeof(err)),
			 0);
	assert_int_equal(p.mode, MTA_STS_TESTING);
	assert_int_equal(p.max_age, 31557600);
	assert_string_equal(p.mx[0], "mx.example.org");
	mta_sts_policy_clear(&p);

	/* Mode none needs no mx. */
	assert_int_equal(policy("version: STSv1\nmode: none\nmax_age: 0\n\n", &p, err, sizeof(err)),
			 0);
	assert_int_equal(p.mode, MTA_STS_NONE);
	assert_int_equal(p.mx_count, 0);
	mta_sts_policy_clear(&p);
}

static void refused(const char *text, const char *why)
{
	struct mta_sts_policy p;
	char err[160] = "";

	if (policy(text, &p, err, sizeof(err)) != -1) {
		print_error("accepted: %s\n", text);
		fail();
	}
	if (strstr(err, why) == NULL) {
		print_error("'%s' lacks '%s'\n", err, why);
		fail();
	}
	assert_null(p.mx);
}

static void test_policy_refused(void **state)
{
	(void)state;
	refused("mode: enforce\nmx: a.example\nmax_age: 1\n", "lacks version");
	refused("version: STSv1\nmx: a.example\nmax_age: 1\n", "lacks mode");
	refused("version: STSv1\nmode: enforce\nmx: a.example\n", "lacks max_age");
	refused("version: STSv1\nmode: enforce\nmax_age: 1\n", "names no mx");
	refused("version: STSv1\nmode: testing\nmax_age: 1\n", "names no mx");
	refused("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "not STSv1");
	refused("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "mode is not");
	refused("version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n",
		"mode given twice");
	refused("version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n", "version given twice");
	refused("version: STSv1\nmode: none\nmax_age: 1\nmax_age: 2\n", "max_age given twice");
	refused("version: STSv1\nmode: none\nmax_age: 31557601\n", "over 31557600");
	refused("version: STSv1\nmode: none\nmax_age: 12345678901\n", "1 to 10 digits");
	refused("version: STSv1\nmode: none\nmax_age: -1\n", "not a number");
	refused("version: STSv1\nmode: none\nmax_age:\n", "1 to 10 digits");
	refused("version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode: enforce\nmx: example\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n", "mx is not");
	refused("version: STSv1\nmode none\nmax_age: 1\n", "no \"key: value\"");
	refused("version: STSv1\r\rmode: none\nmax_age: 1\n", "bare CR");
	refused("version: STSv1\nmode: none\nmax_age: 1\nx: \x01\n", "control");
	refused("version: STSv1\nmode: none\nmax_age: 1\n: x\n", "malformed key");
	refused("<html>not a policy</html>", "no \"key: value\"");
}

static void test_policy_limits(void **state)
{
	struct mta_sts_policy p;
	char err[160];
	size_t size = MTA_STS_POLICY_MAX + 2;
	char *text = malloc(size);
	size_t len = 0;
	(void)state;

	len += (size_t)snprintf(text, size, "version: STSv1\nmode: enforce\nmax_age: 1\n");
	for (int i = 0; i < MTA_STS_MX_MAX; i++)
		len += (size_t)snprintf(text + len, size - len, "mx: mx%d.example\n", i);
	assert_int_equal(mta_sts_policy_parse(text, len, &p, err, sizeof(err)), 0);
	assert_int_equal(p.mx_count, MTA_STS_MX_MAX);
	mta_sts_policy_clear(&p);
	len += (size_t)snprintf(text + len, size - len, "mx: one-more.example\n");
	assert_int_equal(mta_sts_policy_parse(text, len, &p, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many mx"));
	/* Over the size limit, whatever it holds. */
	memset(text, '\n', size);
	assert_int_equal(mta_sts_policy_parse(text, MTA_STS_POLICY_MAX + 1, &p, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "over"));
	free(text);
}

/* ---- MX patterns ------------------------------------------------------- */

static void test_mx_match(void **state)
{
	struct mta_sts_policy p = {0};
	char *patterns[] = {"mx1.example.com", "*.example.net"};
	(void)state;

	assert_true(mta_sts_mx_match("mail.example.com", "mail.example.com"));
	assert_true(mta_sts_mx_match("mail.example.com", "MAIL.Example.COM."));
	assert_true(mta_sts_mx_match("mail.example.com.", "mail.example.com"));
	assert_false(mta_sts_mx_match("mail.example.com", "mail.example.co"));
	assert_false(mta_sts_mx_match("mail.example.com", "xmail.example.com"));
	assert_false(mta_sts_mx_match("mail.example.com", "example.com"));
	/* The star is exactly one label (RFC 8461 4.1). */
	assert_true(mta_sts_mx_match("*.example.net", "mx.example.net"));
	assert_true(mta_sts_mx_match("*.example.net", "MX.EXAMPLE.NET."));
	assert_false(mta_sts_mx_match("*.example.net", "a.b.example.net"));
	assert_false(mta_sts_mx_match("*.example.net", "example.net"));
	assert_false(mta_sts_mx_match("*.example.net", ".example.net"));
	assert_false(mta_sts_mx_match("*.example.net", "mx.example.network"));
	assert_false(mta_sts_mx_match("*.example.net", "mxexample.net"));
	assert_false(mta_sts_mx_match("", "mx.example.net"));
	assert_false(mta_sts_mx_match("mx.example.net", ""));

	p.mx = patterns;
	p.mx_count = 2;
	assert_true(mta_sts_policy_allows(&p, "mx1.example.com"));
	assert_true(mta_sts_policy_allows(&p, "relay.example.net"));
	assert_false(mta_sts_policy_allows(&p, "mx.other.test"));
}

/* ---- the HTTP response ------------------------------------------------- */

static int http(const char *text, bool closed, size_t *offset, size_t *len, char *err)
{
	return mta_sts_http_response(text, strlen(text), closed, offset, len, err, 160);
}

static void test_http(void **state)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
				 "Content-Length: 5\r\n\r\nhello";
	size_t offset = 0, len = 0;
	char err[160];
	(void)state;

	assert_int_equal(http(ok, false, &offset, &len, err), 1);
	assert_int_equal(len, 5);
	assert_memory_equal(ok + offset, "hello", 5);
	/* Every shorter prefix needs more; a prefix cut by the close fails. */
	for (size_t cut = 0; cut < sizeof(ok) - 1; cut++) {
		assert_int_equal(mta_sts_http_response(ok, cut, false, &offset, &len, err, 160), 0);
		assert_int_equal(mta_sts_http_response(ok, cut, true, &offset, &len, err, 160), -1);
	}
	/* Without a Content-Length only a clean close ends the body. */
	assert_int_equal(http("HTTP/1.0 200 OK\r\nContent-Type: TEXT/PLAIN\r\n\r\nab", false,
			      &offset, &len, err),
			 0);
	assert_int_equal(
	    http("HTTP/1.0 200 OK\r\nContent-Type: TEXT/PLAIN\r\n\r\nab", true, &offset, &len, err),
	    1);
	assert_int_equal(len, 2);
	assert_int_equal(
	    http("HTTP/1.1 301 Moved\r\nLocation: https://x/\r\n\r\n", false, &offset, &len, err),
	    -1);
	assert_non_null(strstr(err, "redirect"));
	assert_int_equal(http("HTTP/1.1 404 Not Found\r\n\r\n", false, &offset, &len, err), -1);
	assert_non_null(strstr(err, "404"));
	assert_int_equal(
	    http("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n", true, &offset, &len, err),
	    -1);
	assert_non_null(strstr(err, "text/plain"));
	assert_int_equal(http("HTTP/1.1 200 OK\r\n\r\nx", true, &offset, &len, err), -1);
	assert_int_equal(http("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			      "Transfer-Encoding: chunked\r\n\r\n",
			      false, &offset, &len, err),
			 -1);
	assert_int_equal(http("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			      "Content-Length: 70000\r\n\r\n",
			      false, &offset, &len, err),
			 -1);
	assert_int_equal(http("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			      "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
			      false, &offset, &len, err),
			 -1);
	assert_int_equal(
	    http("HTTP/1.1 200 OK\nContent-Type: text/plain\r\n\r\n", true, &offset, &len, err),
	    -1);
	assert_int_equal(http("SMTP 220 hello\r\n\r\n", true, &offset, &len, err), -1);
	assert_int_equal(http("HTTP/1.1 2000 OK\r\n\r\n", true, &offset, &len, err), -1);
}

static void test_http_limits(void **state)
{
	size_t size = MTA_STS_HEADER_MAX + MTA_STS_POLICY_MAX + 100, offset, len;
	char *text = malloc(size);
	char err[160];
	size_t head;
	(void)state;

	/* Headers that never end. */
	memset(text, 'a', size);
	memcpy(text, "HTTP/1.1 200 OK\r\nX: ", 20);
	assert_int_equal(
	    mta_sts_http_response(text, MTA_STS_HEADER_MAX, false, &offset, &len, err, sizeof(err)),
	    -1);
	/* A body over the limit without a Content-Length. */
	head = (size_t)snprintf(text, size, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
	memset(text + head, 'b', size - head);
	assert_int_equal(mta_sts_http_response(text, head + MTA_STS_POLICY_MAX + 1, false, &offset,
					       &len, err, sizeof(err)),
			 -1);
	assert_int_equal(mta_sts_http_response(text, head + MTA_STS_POLICY_MAX, true, &offset, &len,
					       err, sizeof(err)),
			 1);
	free(text);
}

/* ---- the cache ---------------------------------------------------------- */

static int store_setup(void **state)
{
	return test_store_setup(state, "mta-sts");
}

static void test_cache(void **state)
{
	struct test_store *f = *state;
	struct store_mta_sts entry = {.domain = "example.test",
				      .policy_id = "id1",
				      .policy = "version: STSv1\nmode: none\nmax_age: 5\n",
				      .mode = "none",
				      .fetched_at = 100,
				      .expires_at = 105};
	struct store_mta_sts got, *list;
	size_t count;

	assert_int_equal(store_mta_sts_get(f->store, "example.test", &got), 0);
	assert_int_equal(store_mta_sts_put(f->store, &entry), 0);
	entry.domain = "a.test";
	assert_int_equal(store_mta_sts_put(f->store, &entry), 0);
	/* A new fetch replaces the domain's row. */
	entry.domain = "example.test";
	entry.policy_id = "id2";
	entry.mode = "enforce";
	entry.expires_at = 200;
	assert_int_equal(store_mta_sts_put(f->store, &entry), 0);
	assert_int_equal(store_mta_sts_get(f->store, "example.test", &got), 1);
	assert_string_equal(got.policy_id, "id2");
	assert_string_equal(got.mode, "enforce");
	assert_string_equal(got.policy, entry.policy);
	assert_int_equal(got.fetched_at, 100);
	assert_int_equal(got.expires_at, 200);
	store_mta_sts_clear(&got);
	assert_null(got.domain);
	assert_int_equal(store_mta_sts_list(f->store, &list, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].domain, "a.test");
	assert_string_equal(list[1].domain, "example.test");
	store_mta_sts_list_free(&list, count);
	assert_null(list);
	/* The table refuses a mode it does not know. */
	entry.mode = "maybe";
	assert_int_equal(store_mta_sts_put(f->store, &entry), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record),
	    cmocka_unit_test(test_policy_example),
	    cmocka_unit_test(test_policy_refused),
	    cmocka_unit_test(test_policy_limits),
	    cmocka_unit_test(test_mx_match),
	    cmocka_unit_test(test_http),
	    cmocka_unit_test(test_http_limits),
	    cmocka_unit_test_setup_teardown(test_cache, store_setup, test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
