/*
 * test_rdata.c — reading names, MX, PTR and TXT RDATA (core/rdata.c): the
 * forms a name server sends, and every cut, overlong or compressed form
 * refused (each record also read from every shorter prefix of itself).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/rdata.h"

/* mx1.example.org as a name on the wire. */
static const uint8_t name_mx1[] = {3,	'm', 'x', '1', 7,   'e', 'x', 'a', 'm',
				   'p', 'l', 'e', 3,   'o', 'r', 'g', 0};

static void test_name_read(void **state)
{
	(void)state;
	char out[RDATA_NAME_TEXT_MAX];
	size_t offset = 0;

	assert_int_equal(rdata_name_read(name_mx1, sizeof(name_mx1), &offset, out, sizeof(out)), 0);
	assert_string_equal(out, "mx1.example.org");
	assert_int_equal(offset, sizeof(name_mx1));

	/* The root. */
	const uint8_t root[] = {0};
	offset = 0;
	assert_int_equal(rdata_name_read(root, 1, &offset, out, sizeof(out)), 0);
	assert_string_equal(out, ".");

	/* Every prefix is cut short. */
	for (size_t len = 0; len < sizeof(name_mx1); len++) {
		offset = 0;
		assert_int_equal(rdata_name_read(name_mx1, len, &offset, out, sizeof(out)), -1);
	}
	/* OUT one byte short, then just enough. */
	offset = 0;
	assert_int_equal(rdata_name_read(name_mx1, sizeof(name_mx1), &offset, out, 15), -1);
	offset = 0;
	assert_int_equal(rdata_name_read(name_mx1, sizeof(name_mx1), &offset, out, 16), 0);
}

static void test_name_bytes_escaped(void **state)
{
	(void)state;
	/* A dot inside a label, a space, a backslash, a NUL, a high byte:
	 * none may read as part of a host name. */
	const uint8_t odd[] = {5, 'a', '.', 'b', ' ', '\\', 3, 'x', 0, 0xff, 0};
	char out[RDATA_NAME_TEXT_MAX];
	size_t offset = 0;

	assert_int_equal(rdata_name_read(odd, sizeof(odd), &offset, out, sizeof(out)), 0);
	assert_string_equal(out, "a\\046b\\032\\092.x\\000\\255");
	/* Letters, digits, '-' and '_' stay as they are. */
	const uint8_t plain[] = {6, '_', 'd', 'm', 'a', 'r', 'c', 4, 'A', '-', 'z', '9', 0};
	offset = 0;
	assert_int_equal(rdata_name_read(plain, sizeof(plain), &offset, out, sizeof(out)), 0);
	assert_string_equal(out, "_dmarc.A-z9");
}

static void test_name_limits(void **state)
{
	(void)state;
	uint8_t wire[300];
	char out[RDATA_NAME_TEXT_MAX];
	size_t offset, at = 0;

	/* Four labels of 63 and the root: 257 octets, over 255. */
	for (int label = 0; label < 4; label++) {
		wire[at++] = 63;
		memset(wire + at, 0xfe, 63);
		at += 63;
	}
	wire[at++] = 0;
	offset = 0;
	assert_int_equal(rdata_name_read(wire, at, &offset, out, sizeof(out)), -1);
	/* 63+63+63+61 and the root: 255 octets, the most there is, escaped
	 * throughout; RDATA_NAME_TEXT_MAX holds it. */
	wire[3 * 64] = 61;
	wire[3 * 64 + 62] = 0;
	offset = 0;
	assert_int_equal(rdata_name_read(wire, 3 * 64 + 63, &offset, out, sizeof(out)), 0);
	assert_int_equal(offset, 255);
	assert_int_equal(strlen(out), 250 * 4 + 3);

	/* A compression pointer, and the reserved label types. */
	const uint8_t pointer[] = {3, 'm', 'x', '1', 0xc0, 0x0c};
	const uint8_t reserved[] = {0x41, 'a', 0};
	offset = 0;
	assert_int_equal(rdata_name_read(pointer, sizeof(pointer), &offset, out, sizeof(out)), -1);
	offset = 0;
	assert_int_equal(rdata_name_read(reserved, sizeof(reserved), &offset, out, sizeof(out)),
			 -1);
}

static void test_mx(void **state)
{
	(void)state;
	uint8_t rdata[2 + sizeof(name_mx1) + 1];
	char exchange[RDATA_NAME_TEXT_MAX];
	uint16_t preference = 0;

	rdata[0] = 0x01; /* 260 */
	rdata[1] = 0x04;
	memcpy(rdata + 2, name_mx1, sizeof(name_mx1));
	size_t len = 2 + sizeof(name_mx1);
	assert_int_equal(rdata_mx(rdata, len, &preference, exchange, sizeof(exchange)), 0);
	assert_int_equal(preference, 260);
	assert_string_equal(exchange, "mx1.example.org");
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(rdata_mx(rdata, cut, &preference, exchange, sizeof(exchange)), -1);
	/* A byte after the name. */
	rdata[len] = 0;
	assert_int_equal(rdata_mx(rdata, len + 1, &preference, exchange, sizeof(exchange)), -1);

	/* The null MX. */
	const uint8_t null_mx[] = {0, 0, 0};
	assert_int_equal(rdata_mx(null_mx, 3, &preference, exchange, sizeof(exchange)), 0);
	assert_int_equal(preference, 0);
	assert_string_equal(exchange, ".");
}

static void test_ptr(void **state)
{
	(void)state;
	uint8_t rdata[sizeof(name_mx1) + 1];
	char name[RDATA_NAME_TEXT_MAX];

	memcpy(rdata, name_mx1, sizeof(name_mx1));
	assert_int_equal(rdata_ptr(rdata, sizeof(name_mx1), name, sizeof(name)), 0);
	assert_string_equal(name, "mx1.example.org");
	rdata[sizeof(name_mx1)] = 0;
	assert_int_equal(rdata_ptr(rdata, sizeof(rdata), name, sizeof(name)), -1);
	assert_int_equal(rdata_ptr(rdata, 0, name, sizeof(name)), -1);
}

static void test_txt(void **state)
{
	(void)state;
	const uint8_t rdata[] = {7, 'v', '=', 's', 'p', 'f', '1', ' ', 0, 4, '-', 'a', 0, 'l'};
	const uint8_t *string;
	size_t offset = 0, length;

	assert_int_equal(rdata_txt_count(rdata, sizeof(rdata)), 3);
	assert_int_equal(rdata_txt_next(rdata, sizeof(rdata), &offset, &string, &length), 1);
	assert_int_equal(length, 7);
	assert_memory_equal(string, "v=spf1 ", 7);
	/* An empty string is a string. */
	assert_int_equal(rdata_txt_next(rdata, sizeof(rdata), &offset, &string, &length), 1);
	assert_int_equal(length, 0);
	/* Any byte, a NUL too. */
	assert_int_equal(rdata_txt_next(rdata, sizeof(rdata), &offset, &string, &length), 1);
	assert_int_equal(length, 4);
	assert_memory_equal(string, "-a\0l", 4);
	assert_int_equal(rdata_txt_next(rdata, sizeof(rdata), &offset, &string, &length), 0);

	/* A prefix either ends on a string's end or cuts one; none is empty. */
	assert_int_equal(rdata_txt_count(rdata, 0), -1);
	for (size_t len = 1; len < sizeof(rdata); len++) {
		int expected = len == 8 ? 1 : len == 9 ? 2 : -1;
		assert_int_equal(rdata_txt_count(rdata, len), expected);
	}
}

static void test_tlsa(void **state)
{
	/* 3 1 1 and a SHA-256 digest (32 bytes): the fields as they stand. */
	uint8_t rdata[3 + 32];
	struct rdata_tlsa tlsa;

	(void)state;
	rdata[0] = 3;
	rdata[1] = 1;
	rdata[2] = 1;
	for (size_t i = 0; i < 32; i++)
		rdata[3 + i] = (uint8_t)i;
	assert_int_equal(rdata_tlsa(rdata, sizeof(rdata), &tlsa), 0);
	assert_int_equal(tlsa.usage, 3);
	assert_int_equal(tlsa.selector, 1);
	assert_int_equal(tlsa.matching, 1);
	assert_ptr_equal(tlsa.data, rdata + 3);
	assert_int_equal(tlsa.length, 32);
	/* Unknown values are read, not judged: the relay decides what is usable. */
	rdata[0] = 255;
	assert_int_equal(rdata_tlsa(rdata, 4, &tlsa), 0);
	assert_int_equal(tlsa.usage, 255);
	assert_int_equal(tlsa.length, 1);
	/* Without association data, or shorter still: malformed. */
	for (size_t len = 0; len < 4; len++)
		assert_int_equal(rdata_tlsa(rdata, len, &tlsa), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_read),	cmocka_unit_test(test_name_bytes_escaped),
	    cmocka_unit_test(test_name_limits), cmocka_unit_test(test_mx),
	    cmocka_unit_test(test_ptr),		cmocka_unit_test(test_txt),
	    cmocka_unit_test(test_tlsa),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
