/*
 * test_web.c — the sender page's pure parts: the request target and form
 * parsers (web/request.c, also fed byte by byte at every cut), HTML
 * escaping, the pages (hostile recipient and subject escaped, the CSP's
 * style hash matching the page's style sheet) and the rate tables
 * (web/limit.c: buckets refill, counts, a flood of new keys stays bounded).
 *
 * Owns: nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <sodium.h>

#include "core/util.h"
#include "web/limit.h"
#include "web/page.h"
#include "web/request.h"

/* BUF's contents as a string (allocated). */
static char *drain(struct evbuffer *buf)
{
	size_t len = evbuffer_get_length(buf);
	char *text = xmalloc(len + 1);

	evbuffer_remove(buf, text, len);
	text[len] = '\0';
	return text;
}

static void test_token_path(void **state)
{
	const char *token;
	size_t len;
	char longest[300];
	(void)state;

	assert_int_equal(web_request_token_path("/c/abc-_9", 9, 87, &token, &len), 1);
	assert_int_equal(len, 6);
	assert_memory_equal(token, "abc-_9", 6);
	assert_int_equal(web_request_token_path("/c/abc?x=1", 10, 87, &token, &len), 1);
	assert_int_equal(len, 3);
	static const char *const refused[] = {
	    "/",     "/c/",	"/c",	  "/c/a/b", "/c/a%41", "/c/a b",  "/d/abc",
	    "c/abc", "/c/../x", "/C/abc", "/c/a.b", "/c/a\n",  "//c/abc", "/c/a#b",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(
		    web_request_token_path(refused[i], strlen(refused[i]), 87, &token, &len), 0);
		assert_null(token);
	}
	memset(longest, 'A', sizeof(longest));
	memcpy(longest, "/c/", 3);
	assert_int_equal(web_request_token_path(longest, 3 + 87, 87, &token, &len), 1);
	assert_int_equal(web_request_token_path(longest, 3 + 88, 87, &token, &len), 0);
	/* Shorter lengths than the text: never a read past LEN. */
	for (size_t cut = 0; cut < 9; cut++) {
		char *copy = xstrndup("/c/abcdef", cut);
		int rc = web_request_token_path(copy, cut, 87, &token, &len);

		assert_int_equal(rc, cut >= 4 ? 1 : 0);
		free(copy);
	}
}

static void test_form(void **state)
{
	char value[WEB_FORM_VALUE_MAX + 1];
	char big[WEB_FORM_BODY_MAX + 2];
	(void)state;

	assert_int_equal(web_form_field("code=ABC123", 11, "code", value), 1);
	assert_string_equal(value, "ABC123");
	assert_int_equal(web_form_field("x=1&code=a+b%2Dc&y=", 19, "code", value), 1);
	assert_string_equal(value, "a b-c");
	assert_int_equal(web_form_field("co%64e=Z", 8, "code", value), 1);
	assert_string_equal(value, "Z");
	assert_int_equal(web_form_field("code", 4, "code", value), 1);
	assert_string_equal(value, "");
	assert_int_equal(web_form_field("", 0, "code", value), 0);
	assert_int_equal(web_form_field("other=1&&", 9, "code", value), 0);
	/* Refusals: duplicated, bad escapes, a NUL, too long, too many fields. */
	assert_int_equal(web_form_field("code=1&code=2", 13, "code", value), -1);
	assert_int_equal(web_form_field("code=%4", 7, "code", value), -1);
	assert_int_equal(web_form_field("code=%zz", 8, "code", value), -1);
	assert_int_equal(web_form_field("code=%00", 8, "code", value), -1);
	assert_int_equal(web_form_field("code=a%", 7, "code", value), -1);
	assert_int_equal(web_form_field("a&b&c&d&e&f&g&h&code=1", 22, "code", value), -1);
	memset(big, 'a', sizeof(big));
	memcpy(big, "code=", 5);
	assert_int_equal(web_form_field(big, 5 + WEB_FORM_VALUE_MAX, "code", value), 1);
	assert_int_equal(strlen(value), WEB_FORM_VALUE_MAX);
	assert_int_equal(web_form_field(big, 5 + WEB_FORM_VALUE_MAX + 1, "code", value), -1);
	assert_int_equal(web_form_field(big, WEB_FORM_BODY_MAX + 1, "code", value), -1);
	/* Every cut of a form: an answer, never a read past the cut. */
	static const char form[] = "a=%41&code=X%2BY&z=9";
	for (size_t cut = 0; cut <= sizeof(form) - 1; cut++) {
		char *copy = xstrndup(form, cut);
		int rc = web_form_field(copy, cut, "code", value);

		assert_true(rc >= -1 && rc <= 1);
		free(copy);
	}
}

static void test_form_type(void **state)
{
	(void)state;
	assert_true(web_request_form_type("application/x-www-form-urlencoded"));
	assert_true(web_request_form_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
	assert_false(web_request_form_type("application/x-www-form-urlencodedX"));
	assert_false(web_request_form_type("multipart/form-data; boundary=x"));
	assert_false(web_request_form_type(NULL));
}

static void test_escape(void **state)
{
	struct evbuffer *buf = evbuffer_new();
	static const char hostile[] = "<script>alert('x')</script>&\"\r\n\x01ok\tend";
	char *text;
	(void)state;

	web_html_escape(buf, hostile, sizeof(hostile) - 1);
	text = drain(buf);
	assert_string_equal(text,
			    "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;ok\tend");
	free(text);
	evbuffer_free(buf);
}

static void test_pages(void **state)
{
	struct evbuffer *buf = evbuffer_new();
	char masked[64], *page;
	(void)state;

	web_page_mask_address(masked, sizeof(masked), "john@example.com");
	assert_string_equal(masked, "j\xe2\x80\xa6@example.com");
	web_page_mask_address(masked, sizeof(masked), "nodomain");
	assert_string_equal(masked, "(hidden)");

	web_page_form(buf, "<b>x@evil.example", "<img src=x onerror=alert(1)> \"Hi\"", "ABC234",
		      "<error>");
	page = drain(buf);
	assert_null(strstr(page, "<img"));
	assert_null(strstr(page, "<b>"));
	assert_null(strstr(page, "<error>"));
	assert_non_null(strstr(page, "&lt;img src=x onerror=alert(1)&gt; &quot;Hi&quot;"));
	assert_non_null(strstr(page, "ABC234"));
	assert_non_null(strstr(page, "name=\"viewport\""));
	assert_non_null(strstr(page, "<form method=\"post\">"));
	assert_null(strstr(page, "<script"));

	/* The CSP names the SHA-256 of exactly the style element's text. */
	char *open = strstr(page, "<style>"), *close = strstr(page, "</style>");
	assert_non_null(open);
	assert_non_null(close);
	open += strlen("<style>");
	unsigned char digest[crypto_hash_sha256_BYTES];
	char base64[64], expected[128];
	crypto_hash_sha256(digest, (const unsigned char *)open, (size_t)(close - open));
	sodium_bin2base64(base64, sizeof(base64), digest, sizeof(digest),
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(expected, sizeof(expected), "style-src 'sha256-%s'", base64);
	assert_non_null(strstr(web_page_csp(), expected));
	assert_non_null(strstr(web_page_csp(), "default-src 'none'"));
	assert_non_null(strstr(web_page_csp(), "frame-ancestors 'none'"));
	free(page);

	web_page_message(buf, "T<i>", "a&b");
	page = drain(buf);
	assert_non_null(strstr(page, "<h1>T&lt;i&gt;</h1>"));
	assert_non_null(strstr(page, "<p>a&amp;b</p>"));
	free(page);
	evbuffer_free(buf);
}

static void test_limit_bucket(void **state)
{
	struct web_limit *limit = web_limit_new(64);
	const char a[] = "client-a", b[] = "client-b";
	(void)state;

	for (int i = 0; i < 5; i++)
		assert_true(web_limit_take(limit, a, sizeof(a), 1000, 5));
	assert_false(web_limit_take(limit, a, sizeof(a), 1000, 5));
	assert_true(web_limit_take(limit, b, sizeof(b), 1000, 5)); /* its own bucket */
	/* 5 a minute: one more after 12 seconds, not before. */
	assert_false(web_limit_take(limit, a, sizeof(a), 1000 + 11000, 5));
	assert_true(web_limit_take(limit, a, sizeof(a), 1000 + 24000, 5));
	/* Keys too long or empty are refused, not cut. */
	char longest[WEB_LIMIT_KEY_MAX + 1] = {0};
	assert_false(web_limit_take(limit, longest, sizeof(longest), 0, 5));
	assert_false(web_limit_take(limit, longest, 0, 0, 5));
	web_limit_free(&limit);
	assert_null(limit);
}

static void test_limit_count(void **state)
{
	struct web_limit *limit = web_limit_new(16);
	int64_t id = 77;
	(void)state;

	assert_int_equal(web_limit_count(limit, &id, sizeof(id)), 0);
	for (unsigned i = 1; i <= 5; i++)
		assert_int_equal(web_limit_count_add(limit, &id, sizeof(id), i), i);
	assert_int_equal(web_limit_count(limit, &id, sizeof(id)), 5);
	/* A flood of new keys in a small table: bounded, and no crash. */
	for (int64_t other = 1000; other < 101000; other++)
		web_limit_count_add(limit, &other, sizeof(other), 10 + other);
	assert_true(web_limit_count(limit, &id, sizeof(id)) <= 5);
	web_limit_free(&limit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_path),	cmocka_unit_test(test_form),
	    cmocka_unit_test(test_form_type),	cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_pages),	cmocka_unit_test(test_limit_bucket),
	    cmocka_unit_test(test_limit_count),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
