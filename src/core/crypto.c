/*
 * crypto.c — the credential key file, password sealing (libsodium secretbox),
 * password hashes (argon2id) and the login-cache digest (keyed BLAKE2b).
 *
 * Owns: the per-process key of the login digest. The credential key belongs to
 * the caller (struct crypto_key), which wipes it with crypto_key_wipe.
 * Must never: log or keep a password, leave a plain password or key in freed
 * memory (everything is wiped with sodium_memzero), or accept a key file that
 * another user can read.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/crypto.h"
#include "core/util.h"

/* argon2id at the cost RFC 9106 and OWASP name for interactive logins:
 * two passes over 19 MiB, about 30 ms here; the login cache hides it. */
#define CRYPTO_PWHASH_OPSLIMIT 2
#define CRYPTO_PWHASH_MEMLIMIT (19 * 1024 * 1024)

_Static_assert(CRYPTO_HASH_MAX >= crypto_pwhash_STRBYTES, "a hash string fits CRYPTO_HASH_MAX");
_Static_assert(CRYPTO_KEY_BYTES == crypto_secretbox_KEYBYTES, "the key is a secretbox key");

/* Reads exactly LEN bytes. 0, or -1 with errno (EIO for a short file). */
static int crypto_read_exact(int fd, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Loads an existing key file. 0, -1 with a message, or -2 (errno ENOENT)
 * when there is no such file. */
static int crypto_key_load(struct crypto_key *key, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 && errno == ENOENT)
		return -2;
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot open the key: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: the key is not a regular file", path);
		goto fail;
	}
	/* Whoever can read the key can read every stored provider password. */
	if ((st.st_mode & 077) != 0) {
		snprintf(err, errlen,
			 "%s: mode %04o lets other users read the key; run chmod 600 on it",
			 path, (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size != CRYPTO_KEY_BYTES) {
		snprintf(err, errlen, "%s: the key file has %lld bytes, not %d: damaged?", path,
			 (long long)st.st_size, CRYPTO_KEY_BYTES);
		goto fail;
	}
	if (crypto_read_exact(fd, key->bytes, sizeof(key->bytes)) < 0) {
		snprintf(err, errlen, "%s: cannot read the key: %s", path, strerror(errno));
		crypto_key_wipe(key);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

/*
 * Makes a new key file. The key is written to a temporary file (mode 0600,
 * fsync) which is then link(2)ed to PATH: unlike rename, link never replaces
 * a key another process made in the meantime, whose sealed passwords would
 * otherwise become unreadable. 0, -1 with a message, or -2 (errno EEXIST)
 * when PATH appeared meanwhile.
 */
static int crypto_key_create(struct crypto_key *key, const char *path, char *err, size_t errlen)
{
	char hex[17];
	char *tmp;
	char *copy = NULL;
	int fd;
	int rc = -1;

	randombytes_buf(key->bytes, sizeof(key->bytes));
	util_random_hex(hex, 8);
	tmp = xasprintf("%s.tmp.%s", path, hex);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "%s: cannot create the key: %s", path, strerror(errno));
		goto fail;
	}
	if (write(fd, key->bytes, sizeof(key->bytes)) != (ssize_t)sizeof(key->bytes) ||
	    fsync(fd) < 0) {
		snprintf(err, errlen, "%s: cannot write the key: %s", path, strerror(errno));
		close(fd);
		goto fail_unlink;
	}
	close(fd);
	if (link(tmp, path) < 0) {
		if (errno == EEXIST)
			rc = -2;
		else
			snprintf(err, errlen, "%s: cannot create the key: %s", path,
				 strerror(errno));
		goto fail_unlink;
	}
	unlink(tmp);
	/* The new name must survive a crash before any password is sealed. */
	copy = xstrdup(path);
	if (util_fsync_dir(dirname(copy)) < 0) {
		snprintf(err, errlen, "%s: cannot sync its folder: %s", path, strerror(errno));
		goto fail;
	}
	free(copy);
	free(tmp);
	return 0;
fail_unlink:
	unlink(tmp);
fail:
	crypto_key_wipe(key);
	free(copy);
	free(tmp);
	return rc;
}

int crypto_init(void)
{
	/* Safe to call again: sodium_init returns 1 once it is initialised. */
	return sodium_init() < 0 ? -1 : 0;
}

int crypto_key_load_or_create(struct crypto_key *key, const char *path, char *err, size_t errlen)
{
	int rc;

	if (crypto_init() < 0) {
		snprintf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	/* Two rounds at most: a key made by another process between our open and
	 * our link is loaded on the second. */
	for (int round = 0; round < 2; round++) {
		rc = crypto_key_load(key, path, err, errlen);
		if (rc != -2)
			return rc;
		rc = crypto_key_create(key, path, err, errlen);
		if (rc != -2)
			return rc;
	}
	snprintf(err, errlen, "%s: the key file keeps appearing and vanishing", path);
	return -1;
}

void crypto_key_wipe(struct crypto_key *key)
{
	sodium_memzero(key->bytes, sizeof(key->bytes));
}

int crypto_secret_seal(const struct crypto_key *key, const char *password,
		       unsigned char **blob_r, size_t *blob_len_r)
{
	size_t len = strlen(password);
	size_t blob_len = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + len;
	unsigned char *blob;

	if (crypto_init() < 0)
		return -1;
	blob = xmalloc(blob_len);
	/* A random 24-byte nonce never repeats in practice, so no counter has
	 * to be kept durable across restarts. */
	randombytes_buf(blob, crypto_secretbox_NONCEBYTES);
	if (crypto_secretbox_easy(blob + crypto_secretbox_NONCEBYTES,
				  (const unsigned char *)password, len, blob, key->bytes) != 0) {
		free(blob);
		return -1;
	}
	*blob_r = blob;
	*blob_len_r = blob_len;
	return 0;
}

int crypto_secret_open(const struct crypto_key *key, const unsigned char *blob, size_t blob_len,
		       char **password_r)
{
	size_t len;
	char *password;

	if (blob_len < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES)
		return -1;
	len = blob_len - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES;
	password = xmalloc(len + 1);
	if (crypto_secretbox_open_easy((unsigned char *)password,
				       blob + crypto_secretbox_NONCEBYTES,
				       blob_len - crypto_secretbox_NONCEBYTES, blob,
				       key->bytes) != 0) {
		sodium_memzero(password, len + 1);
		free(password);
		return -1;
	}
	password[len] = '\0';
	*password_r = password;
	return 0;
}

void crypto_password_free(char **password)
{
	if (*password == NULL)
		return;
	sodium_memzero(*password, strlen(*password));
	xfree(password);
}

int crypto_password_hash(char out[CRYPTO_HASH_MAX], const char *password)
{
	if (crypto_init() < 0)
		return -1;
	/* Fails only when the 19 MiB cannot be had. */
	if (crypto_pwhash_str_alg(out, password, strlen(password), CRYPTO_PWHASH_OPSLIMIT,
				  CRYPTO_PWHASH_MEMLIMIT, crypto_pwhash_ALG_ARGON2ID13) != 0)
		return -1;
	return 0;
}

int crypto_password_verify(const char *hash, const char *password)
{
	if (crypto_init() < 0)
		return -1;
	/* crypto_pwhash_str_verify answers -1 both for a wrong password and for a
	 * damaged hash; the rehash check tells the two apart first. */
	if (strnlen(hash, CRYPTO_HASH_MAX) >= CRYPTO_HASH_MAX ||
	    strncmp(hash, crypto_pwhash_argon2id_STRPREFIX,
		    strlen(crypto_pwhash_argon2id_STRPREFIX)) != 0 ||
	    crypto_pwhash_argon2id_str_needs_rehash(hash, CRYPTO_PWHASH_OPSLIMIT,
						    CRYPTO_PWHASH_MEMLIMIT) < 0)
		return -1;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 ? 1 : 0;
}

void crypto_login_digest(unsigned char out[32], const char *account, const char *password)
{
	/* Made on first use and never stored: a digest means nothing outside
	 * this process, so the login cache cannot be attacked offline. */
	static unsigned char digest_key[crypto_generichash_KEYBYTES];
	static bool have_key;
	static const unsigned char separator = 0;
	crypto_generichash_state state;

	if (crypto_init() < 0)
		abort(); /* no random source: nothing in this process could be secret */
	if (!have_key) {
		randombytes_buf(digest_key, sizeof(digest_key));
		have_key = true;
	}
	crypto_generichash_init(&state, digest_key, sizeof(digest_key), 32);
	crypto_generichash_update(&state, (const unsigned char *)account, strlen(account));
	/* The NUL cannot occur in either string, so no two pairs hash alike. */
	crypto_generichash_update(&state, &separator, 1);
	crypto_generichash_update(&state, (const unsigned char *)password, strlen(password));
	crypto_generichash_final(&state, out, 32);
	sodium_memzero(&state, sizeof(state));
}
