/*
 * test_dsn.c — RFC 3464 DSNs: the Status taken from a reply, and the
 * report's structure: multipart/report with its three parts, each failed
 * recipient's fields, a hostile reply kept to one line, CRLF only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/dsn.h"

static void test_status(void **state)
{
	char out[16];
	(void)state;

	dsn_status("550 5.1.1 no such user", out);
	assert_string_equal(out, "5.1.1");
	dsn_status("552-5.3.4 too big", out);
	assert_string_equal(out, "5.3.4");
	dsn_status("554 transaction failed", out);
	assert_string_equal(out, "5.0.0");
	dsn_status("550 5.1 odd", out);
	assert_string_equal(out, "5.0.0");
	dsn_status("451 4.3.0 later", out);
	assert_string_equal(out, "4.3.0");
	dsn_status("queue lifetime expired", out);
	assert_string_equal(out, "4.4.7");
	dsn_status("", out);
	assert_string_equal(out, "4.4.7");
}

static size_t count_of(const char *text, const char *needle)
{
	size_t n = 0;

	for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

static void test_structure(void **state)
{
	const struct dsn_recipient failed[] = {
	    {.address = "x@example.net",
	     .last_reply = "550 5.1.1 gone\r\nBcc: evil@x",
	     .last_attempt_at = 1000},
	    {.address = "y@example.org", .last_reply = "connection refused", .last_attempt_at = 0},
	};
	struct dsn_input in = {.reporting_mta = "gate.example",
			       .sender = "a@example.com",
			       .original_id = "0123456789abcdef01234567",
			       .arrival = 100,
			       .now = 2000,
			       .headers = "Subject: hi\r\nFrom: a@example.com\r\n",
			       .recipients = failed,
			       .count = 2};
	size_t len = 0;
	char *text = dsn_build(&in, &len);
	char *boundary, *end;
	(void)state;

	assert_int_equal(strlen(text), len);
	assert_non_null(
	    strstr(text, "Content-Type: multipart/report; report-type=delivery-status;"));
	assert_non_null(strstr(text, "To: <a@example.com>\r\n"));
	boundary = strstr(text, "boundary=\"");
	assert_non_null(boundary);
	boundary += strlen("boundary=\"");
	end = strchr(boundary, '"');
	*end = '\0';
	boundary = strdup(boundary);
	*end = '"';
	{
		char *delimiter = NULL, *close = NULL;

		assert_true(asprintf(&delimiter, "\r\n--%s\r\n", boundary) > 0);
		assert_true(asprintf(&close, "\r\n--%s--\r\n", boundary) > 0);
		assert_int_equal(count_of(text, delimiter), 3);
		assert_int_equal(count_of(text, close), 1);
		free(delimiter);
		free(close);
	}
	assert_non_null(strstr(text, "Content-Type: message/delivery-status\r\n\r\n"
				     "Reporting-MTA: dns; gate.example\r\n"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; x@example.net\r\nAction: failed\r\n"
				     "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 gone"));
	assert_non_null(strstr(text, "Final-Recipient: rfc822; y@example.org\r\nAction: failed\r\n"
				     "Status: 4.4.7\r\n\r\n"));
	assert_null(strstr(text, "\r\nBcc: evil"));
	assert_non_null(strstr(text, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hi\r\n"));
	/* Every LF has its CR. */
	for (size_t i = 0; i < len; i++)
		if (text[i] == '\n')
			assert_true(i > 0 && text[i - 1] == '\r');
	free(boundary);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_structure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
