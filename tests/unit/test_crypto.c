/*
 * test_crypto.c — crypto.c: the key file (creation, mode, size, reuse),
 * sealing and opening passwords (tampering, wrong key), argon2id hashes and
 * the login digest.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/crypto.h"
#include "core/util.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	char path[128];
	char err[256];
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_dir_make(f->dir, sizeof(f->dir), "crypto") < 0 || crypto_init() < 0)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/secret.key", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	free(f);
	return rc;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

static void test_key_created_then_reused(void **state)
{
	struct fixture *f = *state;
	struct crypto_key first;
	struct crypto_key second;
	struct stat st;
	char *data;
	size_t len;

	if (crypto_key_load_or_create(&first, f->path, f->err, sizeof(f->err)) != 0)
		fail_msg("%s", f->err);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, CRYPTO_KEY_BYTES);
	assert_false(all_zero(first.bytes, sizeof(first.bytes)));
	assert_int_equal(util_read_file(f->path, &data, &len), 0);
	assert_int_equal(len, CRYPTO_KEY_BYTES);
	assert_memory_equal(data, first.bytes, CRYPTO_KEY_BYTES);
	free(data);

	memset(&second, 0, sizeof(second));
	if (crypto_key_load_or_create(&second, f->path, f->err, sizeof(f->err)) != 0)
		fail_msg("%s", f->err);
	assert_memory_equal(first.bytes, second.bytes, CRYPTO_KEY_BYTES);

	crypto_key_wipe(&first);
	assert_true(all_zero(first.bytes, sizeof(first.bytes)));
	crypto_key_wipe(&second);
}

static void test_key_refused(void **state)
{
	struct fixture *f = *state;
	struct crypto_key key;
	unsigned char bytes[CRYPTO_KEY_BYTES + 1] = {1};
	char *link_path = xasprintf("%s/link.key", f->dir);
	char *missing = xasprintf("%s/no/such/folder/secret.key", f->dir);

	/* Readable by the group: refused, and the message says what to do. */
	assert_int_equal(util_write_file_atomic(f->path, bytes, CRYPTO_KEY_BYTES, 0640), 0);
	assert_int_equal(crypto_key_load_or_create(&key, f->path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "mode 0640"));
	assert_non_null(strstr(f->err, "chmod 600"));
	assert_int_equal(chmod(f->path, 0604), 0);
	assert_int_equal(crypto_key_load_or_create(&key, f->path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "mode 0604"));

	/* Private but of the wrong size, either way. */
	assert_int_equal(util_write_file_atomic(f->path, bytes, CRYPTO_KEY_BYTES - 1, 0600), 0);
	assert_int_equal(crypto_key_load_or_create(&key, f->path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "31 bytes, not 32"));
	assert_int_equal(util_write_file_atomic(f->path, bytes, CRYPTO_KEY_BYTES + 1, 0600), 0);
	assert_int_equal(crypto_key_load_or_create(&key, f->path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "33 bytes, not 32"));
	/* The damaged key is left for the administrator, never replaced. */
	assert_int_equal(access(f->path, F_OK), 0);

	/* A symbolic link is not followed. */
	assert_int_equal(util_write_file_atomic(f->path, bytes, CRYPTO_KEY_BYTES, 0600), 0);
	assert_int_equal(symlink(f->path, link_path), 0);
	assert_int_equal(crypto_key_load_or_create(&key, link_path, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "cannot open the key"));

	/* A folder is not a key. */
	assert_int_equal(crypto_key_load_or_create(&key, f->dir, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "not a regular file"));

	assert_int_equal(crypto_key_load_or_create(&key, missing, f->err, sizeof(f->err)), -1);
	assert_non_null(strstr(f->err, "cannot create the key"));
	free(missing);
	free(link_path);
}

static void test_seal_open(void **state)
{
	struct crypto_key key;
	struct crypto_key other;
	unsigned char *blob;
	unsigned char *blob2;
	size_t len;
	size_t len2;
	char *password = NULL;

	(void)state;
	randombytes_buf(key.bytes, sizeof(key.bytes));
	randombytes_buf(other.bytes, sizeof(other.bytes));
	assert_int_equal(crypto_secret_seal(&key, "s3cret pässword", &blob, &len), 0);
	assert_int_equal(len, crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES +
				      strlen("s3cret pässword"));
	assert_null(memmem(blob, len, "s3cret", 6));
	assert_int_equal(crypto_secret_open(&key, blob, len, &password), 0);
	assert_string_equal(password, "s3cret pässword");
	crypto_password_free(&password);
	assert_null(password);

	/* A fresh nonce each time: the same password never seals alike. */
	assert_int_equal(crypto_secret_seal(&key, "s3cret pässword", &blob2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_not_equal(blob, blob2, len);
	free(blob2);

	assert_int_equal(crypto_secret_open(&other, blob, len, &password), -1);
	assert_null(password);
	for (size_t i = 0; i < len; i++) {
		blob[i] ^= 0x01;
		assert_int_equal(crypto_secret_open(&key, blob, len, &password), -1);
		blob[i] ^= 0x01;
	}
	assert_int_equal(crypto_secret_open(&key, blob, len - 1, &password), -1);
	assert_int_equal(crypto_secret_open(&key, blob, 0, &password), -1);
	assert_int_equal(crypto_secret_open(&key, blob,
					     crypto_secretbox_NONCEBYTES +
						     crypto_secretbox_MACBYTES - 1,
					     &password),
			 -1);
	assert_null(password);
	free(blob);

	assert_int_equal(crypto_secret_seal(&key, "", &blob, &len), 0);
	assert_int_equal(crypto_secret_open(&key, blob, len, &password), 0);
	assert_string_equal(password, "");
	crypto_password_free(&password);
	crypto_password_free(&password);
	free(blob);
}

static void test_password_hash(void **state)
{
	char hash[CRYPTO_HASH_MAX];
	char hash2[CRYPTO_HASH_MAX];
	char broken[CRYPTO_HASH_MAX];

	(void)state;
	assert_int_equal(crypto_password_hash(hash, "correct horse"), 0);
	assert_true(strncmp(hash, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
	assert_int_equal(crypto_password_verify(hash, "correct horse"), 1);
	assert_int_equal(crypto_password_verify(hash, "correct horsE"), 0);
	assert_int_equal(crypto_password_verify(hash, ""), 0);
	/* Salted: the same password hashes differently each time. */
	assert_int_equal(crypto_password_hash(hash2, "correct horse"), 0);
	assert_string_not_equal(hash, hash2);
	assert_int_equal(crypto_password_verify(hash2, "correct horse"), 1);

	assert_int_equal(crypto_password_verify("", "x"), -1);
	assert_int_equal(crypto_password_verify("plaintext", "plaintext"), -1);
	assert_int_equal(crypto_password_verify("$2y$10$abcdefghijklmnopqrstuu5bfVv1Jm0sDq8wQ8s",
						"x"),
			 -1);
	snprintf(broken, sizeof(broken), "%.40s", hash);
	assert_int_equal(crypto_password_verify(broken, "correct horse"), -1);
	snprintf(broken, sizeof(broken), "%s", hash);
	broken[7] = 'X'; /* "$argon2X$..." */
	assert_int_equal(crypto_password_verify(broken, "correct horse"), -1);
}

static void test_login_digest(void **state)
{
	unsigned char a[32];
	unsigned char b[32];
	unsigned char plain[32];

	(void)state;
	crypto_login_digest(a, "user@pop.example", "pw");
	crypto_login_digest(b, "user@pop.example", "pw");
	assert_memory_equal(a, b, 32);
	crypto_login_digest(b, "user@pop.example", "pW");
	assert_memory_not_equal(a, b, 32);
	crypto_login_digest(b, "user@pop.examplf", "pw");
	assert_memory_not_equal(a, b, 32);
	/* The separator keeps the boundary: "ab"+"c" is not "a"+"bc". */
	crypto_login_digest(a, "ab", "c");
	crypto_login_digest(b, "a", "bc");
	assert_memory_not_equal(a, b, 32);
	/* Keyed: not the plain BLAKE2b of the same bytes. */
	crypto_generichash(plain, 32, (const unsigned char *)"ab\0c", 4, NULL, 0);
	assert_memory_not_equal(a, plain, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_created_then_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_refused, setup, teardown),
		cmocka_unit_test(test_seal_open),
		cmocka_unit_test(test_password_hash),
		cmocka_unit_test(test_login_digest),
	};

	if (crypto_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
