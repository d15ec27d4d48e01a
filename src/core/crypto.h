/*
 * crypto.h — the credential key, password encryption at rest (libsodium
 * secretbox) and password hashes (argon2id).
 *
 * The key lives in DATA/secret.key, 32 random bytes, mode 0600, made on first
 * start. It is loaded only in the main process, after the workers are forked,
 * so no process that parses hostile content ever holds it. Plain passwords
 * never leave memory: they are wiped (sodium_memzero) by their owners.
 */
#ifndef POPGATE_CRYPTO_H
#define POPGATE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define CRYPTO_KEY_BYTES 32

struct crypto_key {
	unsigned char bytes[CRYPTO_KEY_BYTES];
};

/* Initialises libsodium. 0 or -1. */
int crypto_init(void);

/*
 * Loads the key from PATH, creating it (mode 0600, durably) when missing.
 * Refuses a key file that others can read. 0, or -1 with a message in ERR.
 */
int crypto_key_load_or_create(struct crypto_key *key, const char *path, char *err, size_t errlen);

/* Wipes the key. */
void crypto_key_wipe(struct crypto_key *key);

/*
 * Encrypts the NUL-terminated PASSWORD: *blob_r (nonce + ciphertext, allocated,
 * caller frees) and *blob_len_r. 0 or -1.
 */
int crypto_secret_seal(const struct crypto_key *key, const char *password,
		       unsigned char **blob_r, size_t *blob_len_r);

/*
 * Decrypts BLOB into *password_r (allocated with sodium_malloc semantics not
 * required; caller wipes with crypto_password_free). 0, or -1 if the blob is
 * damaged or sealed with another key.
 */
int crypto_secret_open(const struct crypto_key *key, const unsigned char *blob, size_t blob_len,
		       char **password_r);

/* Wipes and frees a password returned by crypto_secret_open; NULL is fine. */
void crypto_password_free(char **password);

/* argon2id hash string of PASSWORD into OUT (CRYPTO_HASH_MAX bytes). 0 or -1. */
#define CRYPTO_HASH_MAX 128
int crypto_password_hash(char out[CRYPTO_HASH_MAX], const char *password);

/* 1 if PASSWORD matches HASH, 0 if not, -1 if HASH is malformed. */
int crypto_password_verify(const char *hash, const char *password);

/*
 * A fast keyed digest (BLAKE2b under a per-process random key) of an account
 * name and password, for the in-memory login cache: lets a repeated login skip
 * argon2id without keeping the password. OUT holds 32 bytes.
 */
void crypto_login_digest(unsigned char out[32], const char *account, const char *password);

#endif
