/*
 * dkim.c — DKIM for outbound mail: signing with libopendkim, key pairs and
 * their DNS records with OpenSSL (see dkim.h for the choices).
 *
 * Owns: the key rings it loads (read-only once loaded). Each signature has
 * its own libopendkim handle, whose every allocation is wiped when freed (it
 * holds a copy of the private key), so signing may run on any thread.
 * Must never: canonicalise or hash by hand (libopendkim does), print or log a
 * private key, or keep one in memory it frees without wiping.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>
#include <sodium.h>

#include "core/util.h"
#include "pipeline/headers.h"
#include "smtp/dkim.h"

/* Bytes read from the body file at a time. */
#define DKIM_READ_CHUNK (64 * 1024)
/* The longest character-string a TXT record holds (RFC 1035 3.3). */
#define DKIM_TXT_STRING_MAX 255

/* ---- libopendkim's memory: wiped when freed, and none left behind ------ */

/*
 * Every block libopendkim allocates carries its size in front, so that its
 * free can wipe all of it (a handle holds a copy of the private key). Blocks
 * of one signature (allocated with its arena as closure) are also linked in
 * that arena, so that what libopendkim forgets to free is found and freed
 * when the signature is done.
 */
struct dkim_arena;

struct dkim_block {
	struct dkim_arena *arena; /* NULL for the library handle's own blocks */
	struct dkim_block *prev;
	struct dkim_block *next;
	size_t size;
};

struct dkim_arena {
	struct dkim_block *first;
};

/* The header in front of each block: room for struct dkim_block, keeping
 * malloc's 16-byte alignment. */
#define DKIM_BLOCK_HEADER 32
_Static_assert(sizeof(struct dkim_block) <= DKIM_BLOCK_HEADER, "block header too small");

static void *dkim_block_alloc(void *closure, size_t size)
{
	struct dkim_arena *arena = closure;
	struct dkim_block *block = malloc(DKIM_BLOCK_HEADER + size);

	if (block == NULL)
		return NULL;
	block->arena = arena;
	block->prev = NULL;
	block->next = NULL;
	block->size = size;
	if (arena != NULL) {
		block->next = arena->first;
		if (arena->first != NULL)
			arena->first->prev = block;
		arena->first = block;
	}
	return (unsigned char *)block + DKIM_BLOCK_HEADER;
}

static void dkim_block_free(void *closure, void *ptr)
{
	struct dkim_block *block;

	(void)closure;
	if (ptr == NULL)
		return;
	block = (struct dkim_block *)((unsigned char *)ptr - DKIM_BLOCK_HEADER);
	if (block->arena != NULL) {
		if (block->prev != NULL)
			block->prev->next = block->next;
		else
			block->arena->first = block->next;
		if (block->next != NULL)
			block->next->prev = block->prev;
	}
	sodium_memzero(block, DKIM_BLOCK_HEADER + block->size);
	free(block);
}

/*
 * libopendkim 2.11's struct dkim_crypto (OpenSSL build, dkim-types.h). Its
 * dkim_free releases the objects inside only for RSA signatures: after an
 * Ed25519 one, OpenSSL's copy of the private key (pkey, keydata) and the
 * output buffer stay behind, once per message. dkim_leftover_find notes
 * them before dkim_free, and dkim_leftover_release frees them after it if
 * the output buffer is still there, the sign that the library left them
 * (a library that frees them frees that buffer with them).
 */
struct dkim_crypto_2_11 {
	unsigned char pad;
	int keysize;
	size_t inlen;
	size_t outlen;
	EVP_PKEY *pkey;
	void *key; /* RSA only */
	BIO *keydata;
	unsigned char *in;
	unsigned char *out;
};

#define DKIM_LIB_VERSION_2_11 0x020B0000u

struct dkim_leftover {
	EVP_PKEY *pkey;
	BIO *keydata;
	const void *out;
};

/* True if PTR is the payload of a block still in ARENA. */
static bool dkim_arena_holds(const struct dkim_arena *arena, const void *ptr)
{
	for (const struct dkim_block *b = arena->first; b != NULL; b = b->next)
		if ((const unsigned char *)b + DKIM_BLOCK_HEADER == ptr)
			return true;
	return false;
}

/* Notes in *LEFTOVER the key objects of an Ed25519 signature's crypto
 * struct in ARENA, before dkim_free; nothing for another library version. */
static void dkim_leftover_find(const struct dkim_arena *arena, struct dkim_leftover *leftover)
{
	memset(leftover, 0, sizeof(*leftover));
	if (dkim_libversion() != DKIM_LIB_VERSION_2_11)
		return;
	for (const struct dkim_block *b = arena->first; b != NULL; b = b->next) {
		const struct dkim_crypto_2_11 *crypto =
		    (const void *)((const unsigned char *)b + DKIM_BLOCK_HEADER);

		/* Its shape: no RSA key, a key object, and an output buffer that
		 * is another block of this signature. */
		if (b->size != sizeof(*crypto) || crypto->key != NULL || crypto->pkey == NULL ||
		    crypto->out == NULL || !dkim_arena_holds(arena, crypto->out))
			continue;
		leftover->pkey = crypto->pkey;
		leftover->keydata = crypto->keydata;
		leftover->out = crypto->out;
		return;
	}
}

/* After dkim_free and dkim_close: frees what LEFTOVER noted if the library
 * left it, then, wiped, every block of the finished signature's ARENA. */
static void dkim_arena_release(struct dkim_arena *arena, const struct dkim_leftover *leftover)
{
	if (leftover->out != NULL && dkim_arena_holds(arena, leftover->out)) {
		EVP_PKEY_free(leftover->pkey);
		BIO_free(leftover->keydata);
	}
	while (arena->first != NULL)
		dkim_block_free(arena, (unsigned char *)arena->first + DKIM_BLOCK_HEADER);
}

/* ---- keys -------------------------------------------------------------- */

void dkim_signing_key_free(struct dkim_signing_key **key)
{
	if (*key == NULL)
		return;
	free((*key)->domain);
	free((*key)->selector);
	dkim_pem_free(&(*key)->private_key);
	xfree(key);
}

void dkim_pem_free(char **pem)
{
	if (*pem == NULL)
		return;
	sodium_memzero(*pem, strlen(*pem));
	xfree(pem);
}

int dkim_key_for_message(struct store *store, const struct crypto_key *credential,
			 const char *from_domain, struct dkim_signing_key **key_r)
{
	struct store_dkim_key stored;
	struct dkim_signing_key *key;
	int found;

	*key_r = NULL;
	found = store_dkim_get(store, credential, from_domain, &stored);
	if (found != 1)
		return found;
	/* The stored strings move into the signing key: nothing is copied,
	 * so there is no second copy of the private key to wipe. */
	key = xcalloc(1, sizeof(*key));
	key->domain = stored.domain;
	key->selector = stored.selector;
	key->algorithm = stored.algorithm;
	key->private_key = stored.private_key;
	memset(&stored, 0, sizeof(stored));
	*key_r = key;
	return 1;
}

/* ---- the relay's key ring ----------------------------------------------- */

struct dkim_keyring {
	struct dkim_signing_key **keys;
	size_t count;
	char **broken; /* domains whose key would not open */
	size_t broken_count;
};

int dkim_keyring_load(struct store *store, const struct crypto_key *credential,
		      struct dkim_keyring **ring_r)
{
	struct dkim_keyring *ring = xcalloc(1, sizeof(*ring));
	struct store_dkim_key *listed = NULL;
	size_t count = 0;

	*ring_r = NULL;
	if (store_dkim_list(store, &listed, &count) < 0) {
		xfree(&ring);
		return -1;
	}
	ring->keys = xcalloc(count > 0 ? count : 1, sizeof(*ring->keys));
	ring->broken = xcalloc(count > 0 ? count : 1, sizeof(*ring->broken));
	for (size_t i = 0; i < count; i++) {
		int found = dkim_key_for_message(store, credential, listed[i].domain,
						 &ring->keys[ring->count]);

		/* A domain whose key does not open stays out of the ring but is
		 * remembered: its mail must not go out unsigned as if it had no
		 * key (DMARC would reject it), while the other domains sign on.
		 * A key deleted since the listing is simply not in the ring. */
		if (found < 0)
			ring->broken[ring->broken_count++] = xstrdup(listed[i].domain);
		else if (found == 1)
			ring->count++;
	}
	store_dkim_list_free(&listed, count);
	*ring_r = ring;
	return 0;
}

void dkim_keyring_free(struct dkim_keyring **ring)
{
	if (*ring == NULL)
		return;
	for (size_t i = 0; i < (*ring)->count; i++)
		dkim_signing_key_free(&(*ring)->keys[i]);
	for (size_t i = 0; i < (*ring)->broken_count; i++)
		free((*ring)->broken[i]);
	free((*ring)->keys);
	free((*ring)->broken);
	xfree(ring);
}

size_t dkim_keyring_count(const struct dkim_keyring *ring)
{
	return ring->count;
}

int dkim_keyring_sign(const struct dkim_keyring *ring, const char *prepend, int body_fd,
		      char **header_r, char *err, size_t errlen)
{
	const struct dkim_signing_key *key = NULL;
	char *domain = NULL;
	int found, result = 0;

	*header_r = NULL;
	if (ring->count == 0 && ring->broken_count == 0)
		return 0;
	found = dkim_message_from_domain(prepend, body_fd, &domain, err, errlen);
	if (found <= 0)
		return found;
	/* Both are lowercase: the parser lowercases, the store keeps them so. */
	for (size_t i = 0; i < ring->count && key == NULL; i++)
		if (strcmp(ring->keys[i]->domain, domain) == 0)
			key = ring->keys[i];
	for (size_t i = 0; i < ring->broken_count; i++)
		if (strcmp(ring->broken[i], domain) == 0) {
			snprintf(err, errlen, "the DKIM key of %s does not open", domain);
			result = -1;
		}
	if (key != NULL)
		result =
		    dkim_sign_message(key, prepend, body_fd, header_r, err, errlen) < 0 ? -1 : 1;
	free(domain);
	return result;
}

/* ---- reading the message ------------------------------------------------ */

/* Reads up to LEN bytes at OFFSET of FD, retrying on EINTR. The count, 0 at
 * the end, or -1 with errno. */
static ssize_t dkim_pread(int fd, void *buf, size_t len, off_t offset)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, offset);
	while (n < 0 && errno == EINTR);
	return n;
}

int dkim_message_from_domain(const char *prepend, int body_fd, char **domain_r, char *err,
			     size_t errlen)
{
	/* The parser is large (it keeps a whole field): never on the stack. */
	struct headers_parser *parser = xmalloc(sizeof(*parser));
	char *buf = xmalloc(DKIM_READ_CHUNK);
	const char *const *recipients;
	const char *sender = NULL, *at;
	bool done = false;
	off_t offset = 0;
	int result = -1;

	*domain_r = NULL;
	headers_init(parser);
	if (prepend != NULL)
		done = headers_feed(parser, prepend, strlen(prepend));
	while (!done) {
		ssize_t n = dkim_pread(body_fd, buf, DKIM_READ_CHUNK, offset);

		if (n < 0) {
			snprintf(err, errlen, "cannot read the message: %s", strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		offset += n;
		done = headers_feed(parser, buf, (size_t)n);
	}
	headers_finish(parser, &sender, &recipients);
	at = sender != NULL ? strrchr(sender, '@') : NULL;
	if (at == NULL || at[1] == '\0') {
		result = 0;
		goto done;
	}
	*domain_r = xstrdup(at + 1);
	result = 1;
done:
	free(buf);
	free(parser);
	return result;
}

/* ---- signing ------------------------------------------------------------ */

static const char *const dkim_signed_headers[] = {DKIM_SIGNED_HEADERS, NULL};
/* Listed once more in h= than present, so a From added later breaks the
 * signature instead of being shown to the reader as signed. */
static const char *const dkim_oversigned_headers[] = {"From", NULL};

/* Writes what went wrong with STATUS into ERR, with libopendkim's detail
 * when DKIM has one. Returns -1. */
static int dkim_fail(DKIM *dkim, DKIM_STAT status, const char *what, char *err, size_t errlen)
{
	const char *detail = dkim != NULL ? dkim_geterror(dkim) : NULL;

	snprintf(err, errlen, "%s: %s%s%s", what, dkim_getresultstr(status),
		 detail != NULL && *detail != '\0' ? ": " : "", detail != NULL ? detail : "");
	return -1;
}

/* A library handle set up for popgate's signatures, or NULL. */
static DKIM_LIB *dkim_library_new(char *err, size_t errlen)
{
	DKIM_LIB *lib = dkim_init(dkim_block_alloc, dkim_block_free);
	unsigned int flags = 0;

	if (lib == NULL) {
		snprintf(err, errlen, "cannot start libopendkim");
		return NULL;
	}
	/* The option calls copy the lists; they take them as char **. */
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)dkim_signed_headers,
			 sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS,
			 (void *)dkim_oversigned_headers, sizeof(char **)) != DKIM_STAT_OK ||
	    dkim_options(lib, DKIM_OP_GETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
		DKIM_STAT_OK) {
		snprintf(err, errlen, "cannot set libopendkim's options");
		dkim_close(lib);
		return NULL;
	}
	/* The spool stores CRLF; a bare LF would go out as CRLF, so it is
	 * signed as one. */
	flags |= DKIM_LIBFLAGS_FIXCRLF;
	if (dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof(flags)) !=
	    DKIM_STAT_OK) {
		snprintf(err, errlen, "cannot set libopendkim's flags");
		dkim_close(lib);
		return NULL;
	}
	return lib;
}

/* Feeds PREPEND and the whole of BODY_FD to DKIM, then ends the message.
 * DKIM_STAT_OK, or another status (with *WHAT saying which step). */
static DKIM_STAT dkim_feed_message(DKIM *dkim, const char *prepend, int body_fd, const char **what)
{
	unsigned char *buf = xmalloc(DKIM_READ_CHUNK);
	DKIM_STAT status = DKIM_STAT_OK;
	off_t offset = 0;

	*what = "reading the message";
	if (prepend != NULL && *prepend != '\0')
		status = dkim_chunk(dkim, (unsigned char *)prepend, strlen(prepend));
	while (status == DKIM_STAT_OK) {
		ssize_t n = dkim_pread(body_fd, buf, DKIM_READ_CHUNK, offset);

		if (n < 0) {
			*what = strerror(errno);
			status = DKIM_STAT_INTERNAL;
			break;
		}
		if (n == 0)
			break;
		offset += n;
		status = dkim_chunk(dkim, buf, (size_t)n);
	}
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, NULL, 0); /* the end of the message */
	if (status == DKIM_STAT_OK) {
		*what = "signing";
		status = dkim_eom(dkim, NULL);
	}
	free(buf);
	return status;
}

int dkim_sign_message(const struct dkim_signing_key *key, const char *prepend, int body_fd,
		      char **header_r, char *err, size_t errlen)
{
	static const char name[] = "DKIM-Signature: ";
	struct dkim_arena arena = {NULL};
	struct dkim_leftover leftover = {0};
	DKIM_LIB *lib;
	DKIM *dkim = NULL;
	DKIM_STAT status;
	unsigned char *value;
	size_t value_len;
	const char *what;
	int result = -1;

	*header_r = NULL;
	lib = dkim_library_new(err, errlen);
	if (lib == NULL)
		return -1;
	dkim = dkim_sign(lib, (const unsigned char *)"popgate", &arena,
			 (dkim_sigkey_t)key->private_key, (const unsigned char *)key->selector,
			 (const unsigned char *)key->domain, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED,
			 key->algorithm == STORE_DKIM_ED25519 ? DKIM_SIGN_ED25519SHA256
							      : DKIM_SIGN_RSASHA256,
			 -1, &status);
	if (dkim == NULL) {
		dkim_fail(NULL, status, "cannot start a signature", err, errlen);
		goto done;
	}
	status = dkim_feed_message(dkim, prepend, body_fd, &what);
	if (status != DKIM_STAT_OK) {
		dkim_fail(dkim, status, what, err, errlen);
		goto done;
	}
	/* Folded by libopendkim with CRLF and a tab; the first line's width
	 * counts the field's name. */
	status = dkim_getsighdr_d(dkim, strlen(name), &value, &value_len);
	if (status != DKIM_STAT_OK) {
		dkim_fail(dkim, status, "cannot make the signature's header", err, errlen);
		goto done;
	}
	*header_r = xasprintf("%s%.*s\r\n", name, (int)value_len, (const char *)value);
	result = 0;
done:
	if (dkim != NULL) {
		if (key->algorithm == STORE_DKIM_ED25519)
			dkim_leftover_find(&arena, &leftover);
		dkim_free(dkim);
	}
	/* After the library is closed, so that nothing it still holds is
	 * freed under it: what is left then is what it forgot. */
	dkim_close(lib);
	dkim_arena_release(&arena, &leftover);
	return result;
}

/* ---- key pairs and DNS records ------------------------------------------ */

/* OpenSSL's first error as text into ERR, after WHAT. Returns -1. */
static int dkim_openssl_fail(const char *what, char *err, size_t errlen)
{
	unsigned long code = ERR_get_error();
	char detail[256] = "";

	if (code != 0)
		ERR_error_string_n(code, detail, sizeof(detail));
	ERR_clear_error();
	snprintf(err, errlen, "%s%s%s", what, *detail ? ": " : "", detail);
	return -1;
}

int dkim_key_generate(enum store_dkim_algorithm algorithm, char **pem_r, char *err, size_t errlen)
{
	EVP_PKEY *pkey;
	BIO *bio = NULL;
	char *data;
	long len;
	int result = -1;

	*pem_r = NULL;
	if (algorithm == STORE_DKIM_ED25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)DKIM_RSA_BITS);
	if (pkey == NULL)
		return dkim_openssl_fail("cannot make the key", err, errlen);
	/* The secure-heap BIO wipes its buffer when it grows and when freed. */
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1) {
		dkim_openssl_fail("cannot write the key", err, errlen);
		goto done;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0) {
		dkim_openssl_fail("cannot write the key", err, errlen);
		goto done;
	}
	*pem_r = xstrndup(data, (size_t)len);
	result = 0;
done:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return result;
}

/* Base64 of DATA[0..LEN), without line breaks; allocated. */
static char *dkim_base64(const unsigned char *data, size_t len)
{
	char *out = xmalloc(4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, data, (int)len);
	return out;
}

int dkim_record_value(enum store_dkim_algorithm algorithm, const char *private_pem, char **value_r,
		      char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(private_pem, -1);
	EVP_PKEY *pkey = NULL;
	unsigned char *der = NULL;
	unsigned char raw[32];
	size_t raw_len = sizeof(raw);
	char *base64 = NULL;
	int der_len;

	*value_r = NULL;
	if (bio == NULL)
		return dkim_openssl_fail("cannot read the key", err, errlen);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		return dkim_openssl_fail("cannot read the key", err, errlen);
	if (algorithm == STORE_DKIM_ED25519) {
		if (!EVP_PKEY_is_a(pkey, "ED25519")) {
			snprintf(err, errlen, "the key is not an Ed25519 key");
			goto fail;
		}
		/* RFC 8463 4.2: p= is the bare 32-byte public key. */
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &raw_len) != 1) {
			dkim_openssl_fail("cannot read the public key", err, errlen);
			goto fail;
		}
		base64 = dkim_base64(raw, raw_len);
	} else {
		if (!EVP_PKEY_is_a(pkey, "RSA")) {
			snprintf(err, errlen, "the key is not an RSA key");
			goto fail;
		}
		/* SubjectPublicKeyInfo, as opendkim-genkey and every verifier
		 * use for k=rsa. */
		der_len = i2d_PUBKEY(pkey, &der);
		if (der_len <= 0) {
			dkim_openssl_fail("cannot write the public key", err, errlen);
			goto fail;
		}
		base64 = dkim_base64(der, (size_t)der_len);
		OPENSSL_free(der);
	}
	*value_r = xasprintf("v=DKIM1; k=%s; p=%s", store_dkim_algorithm_name(algorithm), base64);
	free(base64);
	EVP_PKEY_free(pkey);
	return 0;
fail:
	EVP_PKEY_free(pkey);
	return -1;
}

char *dkim_record_line(const char *domain, const char *selector, const char *value)
{
	size_t value_len = strlen(value);
	size_t pieces = value_len / DKIM_TXT_STRING_MAX + 1;
	/* Each piece: a space, two quotes and up to 255 bytes. */
	size_t cap = strlen(domain) + strlen(selector) + 64 + pieces * (DKIM_TXT_STRING_MAX + 3);
	char *line = xmalloc(cap);
	size_t used;

	used = (size_t)snprintf(line, cap, "%s._domainkey.%s. IN TXT", selector, domain);
	for (size_t at = 0; at < value_len || at == 0; at += DKIM_TXT_STRING_MAX) {
		size_t piece =
		    value_len - at < DKIM_TXT_STRING_MAX ? value_len - at : DKIM_TXT_STRING_MAX;

		used +=
		    (size_t)snprintf(line + used, cap - used, " \"%.*s\"", (int)piece, value + at);
		if (value_len == 0)
			break;
	}
	return line;
}

void dkim_default_selector(char *out, size_t outlen, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;
	char month[16];

	gmtime_r(&t, &tm);
	strftime(month, sizeof(month), "%Y%m", &tm);
	snprintf(out, outlen, "%s%s", DKIM_SELECTOR_PREFIX, month);
}
