/*
 * test_ciss_token.c — the challenge link's token and code (ciss/token.c):
 * round trips, every single-character change refused, wrong lengths and
 * alphabets, a non-canonical last character, another key, expiry, the key
 * file (made 0600, read back the same, refused when others can read it),
 * and the code as humans type it.
 *
 * Owns: its temp folders.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "ciss/token.h"
#include "core/crypto.h"
#include "test_support.h"

static void make_key(struct crypto_key *key, unsigned char fill)
{
	memset(key->bytes, fill, sizeof(key->bytes));
}

static struct ciss_token sample(void)
{
	struct ciss_token token = {.challenge_id = 4242, .expires_at = 2000000000};

	for (size_t i = 0; i < sizeof(token.nonce); i++)
		token.nonce[i] = (unsigned char)(i * 17 + 3);
	return token;
}

static void test_round_trip(void **state)
{
	struct crypto_key key;
	struct ciss_token token = sample(), back;
	char text[CISS_TOKEN_TEXT_LEN + 1];
	(void)state;

	make_key(&key, 7);
	ciss_token_encode(&key, &token, text);
	assert_int_equal(strlen(text), CISS_TOKEN_TEXT_LEN);
	assert_null(strchr(text, '='));
	assert_int_equal(ciss_token_decode(&key, text, strlen(text), 1000, &back),
			 CISS_TOKEN_VALID);
	assert_int_equal(back.challenge_id, 4242);
	assert_int_equal(back.expires_at, 2000000000);
	assert_memory_equal(back.nonce, token.nonce, sizeof(token.nonce));
	/* A large id and a negative one survive as they are. */
	token.challenge_id = INT64_MAX;
	ciss_token_encode(&key, &token, text);
	assert_int_equal(ciss_token_decode(&key, text, strlen(text), 1000, &back),
			 CISS_TOKEN_VALID);
	assert_true(back.challenge_id == INT64_MAX);
}

static void test_every_change_refused(void **state)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	struct crypto_key key;
	struct ciss_token token = sample(), back;
	char text[CISS_TOKEN_TEXT_LEN + 1];
	(void)state;

	make_key(&key, 9);
	ciss_token_encode(&key, &token, text);
	for (size_t i = 0; i < CISS_TOKEN_TEXT_LEN; i++) {
		for (size_t a = 0; a < sizeof(alphabet) - 1; a++) {
			char changed[CISS_TOKEN_TEXT_LEN + 1];

			if (alphabet[a] == text[i])
				continue;
			memcpy(changed, text, sizeof(changed));
			changed[i] = alphabet[a];
			enum ciss_token_check check =
			    ciss_token_decode(&key, changed, CISS_TOKEN_TEXT_LEN, 1000, &back);
			assert_true(check == CISS_TOKEN_FORGED || check == CISS_TOKEN_MALFORMED);
			assert_int_equal(back.challenge_id, 0);
		}
	}
}

static void test_malformed(void **state)
{
	struct crypto_key key, other;
	struct ciss_token token = sample(), back;
	char text[CISS_TOKEN_TEXT_LEN + 1], longer[CISS_TOKEN_TEXT_LEN + 2];
	(void)state;

	make_key(&key, 1);
	make_key(&other, 2);
	ciss_token_encode(&key, &token, text);
	assert_int_equal(ciss_token_decode(&key, text, CISS_TOKEN_TEXT_LEN - 1, 0, &back),
			 CISS_TOKEN_MALFORMED);
	snprintf(longer, sizeof(longer), "%sA", text);
	assert_int_equal(ciss_token_decode(&key, longer, strlen(longer), 0, &back),
			 CISS_TOKEN_MALFORMED);
	assert_int_equal(ciss_token_decode(&key, "", 0, 0, &back), CISS_TOKEN_MALFORMED);
	static const char bad[] = {'+', '/', '=', '.', '%', '\n', ' ', '\0'};
	for (size_t i = 0; i < sizeof(bad); i++) {
		char changed[CISS_TOKEN_TEXT_LEN + 1];

		memcpy(changed, text, sizeof(changed));
		changed[10] = bad[i];
		assert_int_equal(ciss_token_decode(&key, changed, CISS_TOKEN_TEXT_LEN, 0, &back),
				 CISS_TOKEN_MALFORMED);
	}
	/* Another key: forged. */
	assert_int_equal(ciss_token_decode(&other, text, CISS_TOKEN_TEXT_LEN, 0, &back),
			 CISS_TOKEN_FORGED);
}

static void test_expired(void **state)
{
	struct crypto_key key;
	struct ciss_token token = sample(), back;
	char text[CISS_TOKEN_TEXT_LEN + 1];
	(void)state;

	make_key(&key, 3);
	ciss_token_encode(&key, &token, text);
	assert_int_equal(ciss_token_decode(&key, text, CISS_TOKEN_TEXT_LEN, 1999999999, &back),
			 CISS_TOKEN_VALID);
	assert_int_equal(ciss_token_decode(&key, text, CISS_TOKEN_TEXT_LEN, 2000000000, &back),
			 CISS_TOKEN_EXPIRED);
	assert_int_equal(back.challenge_id, 4242);
	assert_string_equal(ciss_token_check_name(CISS_TOKEN_EXPIRED), "expired");
}

static void test_code(void **state)
{
	struct crypto_key key;
	struct ciss_token token = sample(), later = sample(), other = sample();
	char code[CISS_TOKEN_CODE_LEN + 1], code_later[CISS_TOKEN_CODE_LEN + 1];
	char code_other[CISS_TOKEN_CODE_LEN + 1], typed[32];
	(void)state;

	make_key(&key, 5);
	ciss_token_code(&key, &token, code);
	assert_int_equal(strlen(code), CISS_TOKEN_CODE_LEN);
	assert_int_equal(strspn(code, "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"), CISS_TOKEN_CODE_LEN);
	later.expires_at += 100;
	ciss_token_code(&key, &later, code_later);
	assert_string_equal(code, code_later); /* one challenge, one code */
	other.nonce[0] ^= 1;
	ciss_token_code(&key, &other, code_other);
	assert_string_not_equal(code, code_other);

	assert_true(ciss_token_code_matches(&key, &token, code, strlen(code)));
	for (size_t i = 0; i < CISS_TOKEN_CODE_LEN; i++)
		typed[i] = (char)(code[i] >= 'A' ? code[i] - 'A' + 'a' : code[i]);
	assert_true(ciss_token_code_matches(&key, &token, typed, CISS_TOKEN_CODE_LEN));
	snprintf(typed, sizeof(typed), " %.3s-%s ", code, code + 3);
	assert_true(ciss_token_code_matches(&key, &token, typed, strlen(typed)));
	assert_false(ciss_token_code_matches(&key, &token, code, CISS_TOKEN_CODE_LEN - 1));
	snprintf(typed, sizeof(typed), "%sA", code);
	assert_false(ciss_token_code_matches(&key, &token, typed, strlen(typed)));
	assert_false(ciss_token_code_matches(&key, &token, code_other, strlen(code_other)));
	assert_false(ciss_token_code_matches(&key, &token, "", 0));
}

static void test_key_file(void **state)
{
	char dir[TEST_DIR_SIZE], path[TEST_DIR_SIZE + 32], err[256];
	struct crypto_key first, second;
	struct stat st;
	(void)state;

	assert_int_equal(test_dir_make(dir, sizeof(dir), "ciss-token"), 0);
	assert_int_equal(ciss_token_key_load(&first, dir, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, CISS_TOKEN_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, CRYPTO_KEY_BYTES);
	assert_int_equal(ciss_token_key_load(&second, dir, err, sizeof(err)), 0);
	assert_memory_equal(first.bytes, second.bytes, sizeof(first.bytes));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(ciss_token_key_load(&second, dir, err, sizeof(err)), -1);
	assert_int_equal(test_dir_remove(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_every_change_refused),
	    cmocka_unit_test(test_malformed),  cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_code),       cmocka_unit_test(test_key_file),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
