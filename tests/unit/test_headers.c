/*
 * test_headers.c — the sender and recipient extractor (pipeline/headers.c):
 * address list shapes, the order of trust, folding, the limits, and the end
 * of the header block; every message is fed whole, byte by byte and in
 * pieces of several sizes, and must give the same answer each time.
 *
 * Owns: nothing outside this process. Must never: depend on anything but
 * headers.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pipeline/headers.h"

/* Parses TEXT (LEN bytes) fed in pieces of PIECE and checks the sender
 * (NULL for none) and the COUNT recipients. */
static void test_parse_pieces(const char *text, size_t len, size_t piece, const char *sender,
			      const char *const *recipients, size_t count)
{
	struct headers_parser *parser = calloc(1, sizeof(*parser));
	const char *got_sender;
	const char *const *got;
	size_t got_count;

	assert_non_null(parser);
	headers_init(parser);
	for (size_t pos = 0; pos < len; pos += piece)
		headers_feed(parser, text + pos, len - pos < piece ? len - pos : piece);
	got_count = headers_finish(parser, &got_sender, &got);
	if (sender == NULL)
		assert_null(got_sender);
	else
		assert_string_equal(got_sender, sender);
	assert_int_equal(got_count, count);
	for (size_t i = 0; i < count; i++)
		assert_string_equal(got[i], recipients[i]);
	free(parser);
}

static void test_parse_len(const char *text, size_t len, const char *sender,
			   const char *const *recipients, size_t count)
{
	static const size_t pieces[] = {1, 2, 3, 7, 64, 4096};

	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		test_parse_pieces(text, len, pieces[i], sender, recipients, count);
	test_parse_pieces(text, len, len > 0 ? len : 1, sender, recipients, count);
}

static void test_parse(const char *text, const char *sender, const char *const *recipients,
		       size_t count)
{
	test_parse_len(text, strlen(text), sender, recipients, count);
}

#define N(list) (sizeof(list) / sizeof((list)[0]))

static void test_simple_message(void **state)
{
	static const char *const want[] = {"bob@example.org"};

	(void)state;
	test_parse("From: Alice <ALICE@Example.ORG>\r\n"
		   "Subject: hi\r\n"
		   "To: bob@example.org\r\n"
		   "\r\n"
		   "To: body@example.org\r\n"
		   "From: body@example.org\r\n",
		   "alice@example.org", want, N(want));
	/* No From, no recipients. */
	test_parse("Subject: nothing\r\n\r\n", NULL, NULL, 0);
	test_parse("", NULL, NULL, 0);
}

static void test_order_of_trust(void **state)
{
	static const char *const want[] = {"d@x.org", "o@x.org", "e@x.org",
					   "t@x.org", "c@x.org", "t2@x.org"};

	(void)state;
	/* Whatever the order of the fields, the more trusted come first, and
	 * an address named twice counts once, where it is most trusted. */
	test_parse("To: T@x.org, o@x.org\r\n"
		   "Cc: c@x.org, D@X.org\r\n"
		   "Envelope-To: e@x.org\r\n"
		   "X-Original-To: o@x.org\r\n"
		   "Delivered-To: d@x.org\r\n"
		   "to: t2@x.org, t@x.org\r\n"
		   "\r\n",
		   NULL, want, N(want));
}

static void test_folding(void **state)
{
	static const char *const want[] = {"a@x.org", "b@x.org", "c@x.org", "john@x.org"};

	(void)state;
	test_parse("To: a@x.org,\r\n"
		   "\tb@x.org,\r\n"
		   "   c@x.org, \"Doe,\r\n"
		   " John\" <john@\r\n"
		   " x.org>\r\n"
		   "\r\n",
		   NULL, want, N(want));
	/* Bare LF line ends fold the same way. */
	test_parse("To: a@x.org,\n b@x.org,\n\tc@x.org,\n john@x.org\n\nCc: z@x.org\n", NULL, want,
		   N(want));
	/* A continuation before any field belongs to nothing. */
	test_parse(" To: z@x.org\r\nTo: a@x.org,b@x.org,c@x.org,john@x.org\r\n\r\n", NULL, want,
		   N(want));
}

static void test_display_names_and_comments(void **state)
{
	static const char *const want[] = {"john@x.org", "k@x.org", "good@x.org", "m@x.org",
					   "n@x.org"};

	(void)state;
	test_parse("To: \"Doe, John\" <john@x.org>, \"a@evil.org, \" <k@x.org>,\r\n"
		   " \"<evil@x.org>\" <good@x.org>, m@x.org (Mister M, <boss@x.org>),\r\n"
		   " (a (nested, comment) here) n@x.org, \"esc\\\" ,aped\" <good@x.org>\r\n"
		   "\r\n",
		   NULL, want, N(want));
	/* Display names in UTF-8 and encoded words do not disturb the address. */
	{
		static const char *const one[] = {"j@x.org"};

		test_parse("To: =?utf-8?q?J=C3=B6rg?= <j@x.org>\r\n"
			   "From: J\xc3\xb6rg M\xc3\xbcller <J@X.org>\r\n\r\n",
			   "j@x.org", one, N(one));
	}
}

static void test_groups_and_routes(void **state)
{
	static const char *const want[] = {"a@x.org", "b@x.org", "c@x.org", "r@x.org"};

	(void)state;
	test_parse("To: undisclosed-recipients:;\r\n"
		   "Cc: Team: a@x.org, B <b@x.org>; c@x.org, <@relay.org,@r2.org:r@x.org>\r\n"
		   "\r\n",
		   NULL, want, N(want));
}

static void test_bad_addresses_dropped(void **state)
{
	static const char *const want[] = {"ok@x.org"};

	(void)state;
	test_parse("To: nobody, @x.org, a@, a..b@x.org, .a@x.org, a.@x.org, \"q u\"@x.org,\r\n"
		   " a@x..org, a@.x.org, a@x.org., a@b_c.org, <>, a@[1.2.3.4], a@b@c.org,\r\n"
		   " <a@x.org> <b@x.org>, <a@x.org <b@x.org>>, ok@x.org\r\n"
		   "From: not an address\r\n"
		   "\r\n",
		   NULL, want, N(want));
}

static void test_names_matched_exactly(void **state)
{
	static const char *const want[] = {"a@x.org", "b@x.org"};

	(void)state;
	test_parse("Resent-To: r@x.org\r\n"
		   "Tox: t@x.org\r\n"
		   "X-To: x@x.org\r\n"
		   "Delivered-To-Me: d@x.org\r\n"
		   "TO : a@x.org\r\n"
		   "cC:b@x.org\r\n"
		   "To a@y.org\r\n"
		   "From: first@x.org, second@x.org\r\n"
		   "FROM: third@x.org\r\n"
		   "\r\n",
		   "first@x.org", want, N(want));
}

static void test_address_length_limits(void **state)
{
	char text[1024];
	char longest[HEADERS_ADDRESS_MAX + 1];
	char label[HEADERS_ADDRESS_MAX];
	const char *want[1] = {longest};

	(void)state;
	/* 64 + 1 + 63 + 1 + 63 + 1 + 61 = 254 characters. */
	memset(longest, 'l', 64);
	longest[64] = '@';
	memset(longest + 65, 'a', 63);
	longest[128] = '.';
	memset(longest + 129, 'b', 63);
	longest[192] = '.';
	memset(longest + 193, 'c', 61);
	longest[254] = '\0';
	assert_true(headers_address_valid(longest));
	snprintf(text, sizeof(text), "To: <%s>\r\n\r\n", longest);
	test_parse(text, NULL, want, 1);
	/* One more character is one too many. */
	snprintf(text, sizeof(text), "To: <%sc>, %sc\r\n\r\n", longest, longest);
	test_parse(text, NULL, NULL, 0);
	/* A local part of 65, a label of 64. */
	memset(label, 'l', 65);
	strcpy(label + 65, "@x.org");
	assert_false(headers_address_valid(label));
	memset(label, 'a', 66);
	memcpy(label, "a@", 2);
	strcpy(label + 66, ".org");
	assert_false(headers_address_valid(label));
	strcpy(label + 65, ".org");
	assert_true(headers_address_valid(label));
}

static void test_recipient_limit(void **state)
{
	static char text[8192];
	static char names[HEADERS_RECIPIENTS_MAX][32];
	const char *want[HEADERS_RECIPIENTS_MAX];
	size_t len;

	(void)state;
	/* 70 distinct addresses across two classes: the first 64 in order of
	 * trust are kept. */
	len = (size_t)snprintf(text, sizeof(text), "To: ");
	for (int i = 10; i < 80; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "u%d@x.org,\r\n ", i);
	len +=
	    (size_t)snprintf(text + len, sizeof(text) - len, "\r\nDelivered-To: d@x.org\r\n\r\n");
	want[0] = "d@x.org";
	for (int i = 1; i < HEADERS_RECIPIENTS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "u%d@x.org", i + 9);
		want[i] = names[i];
	}
	test_parse_len(text, len, NULL, want, HEADERS_RECIPIENTS_MAX);
}

/* A field longer than HEADERS_FIELD_MAX is ignored whole; the header ends
 * after HEADERS_MAX_BYTES, and a field cut there is dropped. */
static void test_size_limits(void **state)
{
	size_t size = HEADERS_MAX_BYTES + 4096;
	char *text = malloc(size);
	static const char *const cc[] = {"cc@x.org"};
	static const char *const early[] = {"early@x.org"};
	size_t len = 0;

	(void)state;
	assert_non_null(text);
	len += (size_t)sprintf(text, "To: ");
	while (len < HEADERS_FIELD_MAX + 100)
		len += (size_t)sprintf(text + len, "a@x.org, ");
	len += (size_t)sprintf(text + len, "\r\n ");
	len += (size_t)sprintf(text + len, "b@x.org\r\nCc: cc@x.org\r\n\r\n");
	test_parse_len(text, len, NULL, cc, N(cc));

	/* Padding up to the limit: a To before it counts, one after does not. */
	len = (size_t)sprintf(text, "To: early@x.org\r\n");
	while (len < HEADERS_MAX_BYTES - 100)
		len += (size_t)sprintf(text + len, "X-Pad: 0123456789abcdef\r\n");
	len += (size_t)sprintf(text + len, "X-Pad: 0123456789abcdefghijkl\r\n");
	memset(text + len, 'p', HEADERS_MAX_BYTES - len);
	len = HEADERS_MAX_BYTES;
	len += (size_t)sprintf(text + len, "\r\nTo: late@x.org\r\n\r\n");
	test_parse_pieces(text, len, 1, NULL, early, N(early));
	test_parse_pieces(text, len, 4096, NULL, early, N(early));
	/* A To field still open at the limit is cut, so dropped. */
	len = HEADERS_MAX_BYTES - 30;
	memset(text, 'p', len);
	memcpy(text, "X-Pad: ", 7);
	len += (size_t)sprintf(text + len, "\r\nTo: cut@x.org, b");
	memset(text + len, 'b', 60);
	len += 60;
	len += (size_t)sprintf(text + len, "@x.org\r\n\r\n");
	test_parse_len(text, len, NULL, NULL, 0);
	free(text);
}

/* Without an empty line the whole message is header; a missing final line
 * end still ends the last field. */
static void test_header_without_end(void **state)
{
	static const char *const want[] = {"a@x.org", "b@x.org"};

	(void)state;
	test_parse("To: a@x.org\r\nCc: b@x.org", NULL, want, N(want));
	test_parse("To: a@x.org\r\nCc: b@x.org\r\n", NULL, want, N(want));
	/* A bare CR is not a line end. */
	test_parse("X-A: a\rTo: b@x.org\r\n\r\n", NULL, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simple_message),
	    cmocka_unit_test(test_order_of_trust),
	    cmocka_unit_test(test_folding),
	    cmocka_unit_test(test_display_names_and_comments),
	    cmocka_unit_test(test_groups_and_routes),
	    cmocka_unit_test(test_bad_addresses_dropped),
	    cmocka_unit_test(test_names_matched_exactly),
	    cmocka_unit_test(test_address_length_limits),
	    cmocka_unit_test(test_recipient_limit),
	    cmocka_unit_test(test_size_limits),
	    cmocka_unit_test(test_header_without_end),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
