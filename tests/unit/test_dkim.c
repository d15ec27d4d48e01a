/*
 * test_dkim.c — store/dkim.c (keys sealed at rest, replace, list, delete)
 * and smtp/dkim.c: key pairs and their DNS records (parsed back and matched
 * with the private key), the From domain of a message, and signatures made
 * on real-shaped messages with RSA and Ed25519 keys, verified by
 * libopendkim's verifier fed the published record — and failing once the
 * body, a signed header or an added From changes the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>
#include <sodium.h>

#include "core/crypto.h"
#include "core/util.h"
#include "smtp/dkim.h"
#include "store/dkim.h"

#include "test_support.h"

struct fixture {
	struct test_store base; /* first: test_store_teardown frees it */
	struct crypto_key credential;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	assert_int_equal(crypto_init(), 0);
	assert_int_equal(test_dir_make(f->base.dir, sizeof(f->base.dir), "dkim"), 0);
	f->base.store = test_store_open(f->base.dir);
	randombytes_buf(f->credential.bytes, sizeof(f->credential.bytes));
	*state = f;
	return 0;
}

/* ---- messages ----------------------------------------------------------- */

/* What popgate prepends, as the relay hands it over. */
static const char prepend_text[] =
    "Received: from office-pc (office-pc [127.0.0.1])\r\n"
    "\tby popgate.example.org with ESMTP id 5f2c9a1b; Wed, 2 Dec 2026 06:10:00 +0000\r\n";

/* A plain message with folded headers, trailing spaces and blank lines at the
 * end: what relaxed canonicalisation is about. */
static const char message_plain[] = "From: Anna Example <anna@example.org>\r\n"
				    "To: bob@example.net,\r\n"
				    "    carol@example.net\r\n"
				    "Cc: dave@example.com\r\n"
				    "Subject: Quarterly   figures  \r\n"
				    "Date: Wed, 2 Dec 2026 07:09:58 +0100\r\n"
				    "Message-ID: <20261202060958.1234@example.org>\r\n"
				    "MIME-Version: 1.0\r\n"
				    "Content-Type: text/plain; charset=utf-8\r\n"
				    "Content-Transfer-Encoding: 8bit\r\n"
				    "\r\n"
				    "Hello Bob,  \r\n"
				    "\r\n"
				    "the figures are attached.\t\r\n"
				    ".leading dot\r\n"
				    "\r\n"
				    "\r\n";

/* A multipart reply in the shape the SpamAssassin ham has, with References
 * and In-Reply-To and an unsigned header among the signed ones. */
static const char message_multipart[] = "Return-Path: <anna@example.org>\r\n"
					"From: \"Anna Example\" <Anna@Example.ORG>\r\n"
					"To: \"Zzzz\" <zzzz@example.net>\r\n"
					"Subject: Re: [ILUG] Sun Solaris..\r\n"
					"In-Reply-To: <3D6E4C1A.3050502@example.net>\r\n"
					"References: <20020829103205.GA2373@example.net>\r\n"
					"\t<3D6E4C1A.3050502@example.net>\r\n"
					"X-Mailer: Mutt 1.4i\r\n"
					"Date: Thu, 29 Aug 2002 11:18:54 +0100\r\n"
					"Message-ID: <20020829111854.GB2373@example.org>\r\n"
					"MIME-Version: 1.0\r\n"
					"Content-Type: multipart/mixed; boundary=\"=-=-=\"\r\n"
					"\r\n"
					"--=-=-=\r\n"
					"Content-Type: text/plain\r\n"
					"\r\n"
					"> Does anybody know if Solaris 8 runs on an Ultra 5?\r\n"
					"It does, with 128 MB at least.\r\n"
					"--=-=-=\r\n"
					"Content-Type: application/octet-stream\r\n"
					"Content-Transfer-Encoding: base64\r\n"
					"\r\n"
					"U29sYXJpcyA4IG9uIGFuIFVsdHJhIDUK\r\n"
					"--=-=-=--\r\n";

/* Writes TEXT to a new file in F's folder and opens it for reading. */
static int body_open(struct fixture *f, const char *name, const char *text)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", f->base.dir, name);
	test_write_file(path, text);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* ---- verifying, with libopendkim's verifier ----------------------------- */

/* The TXT record the verifier's key lookup answers with. */
static const char *published_record;

static DKIM_CBSTAT lookup_published(DKIM *dkim, DKIM_SIGINFO *sig, unsigned char *buf,
				    size_t buflen)
{
	(void)dkim;
	(void)sig;
	if (published_record == NULL || strlen(published_record) >= buflen)
		return DKIM_CBSTAT_NOTFOUND;
	strcpy((char *)buf, published_record);
	return DKIM_CBSTAT_CONTINUE;
}

/* libopendkim's verdict on the message HEADER PREPEND BODY, with RECORD
 * published for the signer: DKIM_STAT_OK when the signature verifies. */
static DKIM_STAT verify_message(const char *record, const char *header, const char *prepend,
				const char *body)
{
	DKIM_LIB *lib = dkim_init(NULL, NULL);
	DKIM_STAT status;
	DKIM *dkim;

	assert_non_null(lib);
	published_record = record;
	assert_int_equal(dkim_set_key_lookup(lib, lookup_published), DKIM_STAT_OK);
	dkim = dkim_verify(lib, (const unsigned char *)"test", NULL, &status);
	assert_non_null(dkim);
	status = dkim_chunk(dkim, (unsigned char *)header, strlen(header));
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, (unsigned char *)prepend, strlen(prepend));
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, (unsigned char *)body, strlen(body));
	if (status == DKIM_STAT_OK)
		status = dkim_chunk(dkim, NULL, 0);
	if (status == DKIM_STAT_OK)
		status = dkim_eom(dkim, NULL);
	dkim_free(dkim);
	dkim_close(lib);
	published_record = NULL;
	return status;
}

/* A signing key of ALGORITHM for DOMAIN, made fresh, and its record value. */
static struct dkim_signing_key *key_make(enum store_dkim_algorithm algorithm, const char *domain,
					 char **record_r)
{
	struct dkim_signing_key *key = xcalloc(1, sizeof(*key));
	char err[256];

	key->domain = xstrdup(domain);
	key->selector = xstrdup("popgate202612");
	key->algorithm = algorithm;
	assert_int_equal(dkim_key_generate(algorithm, &key->private_key, err, sizeof(err)), 0);
	assert_int_equal(dkim_record_value(algorithm, key->private_key, record_r, err, sizeof(err)),
			 0);
	return key;
}

/* Signs MESSAGE (with prepend_text) with a new key of ALGORITHM and checks
 * that it verifies, and no longer does once the message is changed. */
static void sign_and_verify(struct fixture *f, enum store_dkim_algorithm algorithm,
			    const char *message, const char *domain)
{
	char *record = NULL, *header = NULL, *changed;
	struct dkim_signing_key *key = key_make(algorithm, domain, &record);
	int fd = body_open(f, "body", message);
	char err[256] = "";
	char *from_domain = NULL;

	assert_int_equal(dkim_message_from_domain(prepend_text, fd, &from_domain, err, sizeof(err)),
			 1);
	assert_string_equal(from_domain, domain);
	free(from_domain);

	if (dkim_sign_message(key, prepend_text, fd, &header, err, sizeof(err)) < 0)
		fail_msg("signing: %s", err);
	assert_true(strncmp(header, "DKIM-Signature: v=1; a=", 23) == 0);
	assert_non_null(
	    strstr(header, algorithm == STORE_DKIM_ED25519 ? "a=ed25519-sha256" : "a=rsa-sha256"));
	assert_non_null(strstr(header, "c=relaxed/relaxed"));
	assert_non_null(strstr(header, "s=popgate202612"));
	assert_int_equal(strcmp(header + strlen(header) - 2, "\r\n"), 0);
	/* Every line of the folded field ends in CRLF, no bare LF. */
	for (const char *p = strchr(header, '\n'); p != NULL; p = strchr(p + 1, '\n'))
		assert_int_equal(p[-1], '\r');

	assert_int_equal(verify_message(record, header, prepend_text, message), DKIM_STAT_OK);

	/* A changed body fails. */
	changed = xstrdup(message);
	changed[strlen(changed) - 5] = 'X';
	assert_int_not_equal(verify_message(record, header, prepend_text, changed), DKIM_STAT_OK);
	free(changed);
	/* A changed signed header fails. */
	changed = xstrdup(message);
	memcpy(strstr(changed, "Subject: ") + 9, "RE", 2);
	assert_int_not_equal(verify_message(record, header, prepend_text, changed), DKIM_STAT_OK);
	free(changed);
	/* A From added on top fails: From is over-signed. */
	changed = xasprintf("From: mallory@example.com\r\n%s", message);
	assert_int_not_equal(verify_message(record, header, prepend_text, changed), DKIM_STAT_OK);
	free(changed);
	/* Another key published for the selector fails. */
	{
		char *other_record = NULL;
		struct dkim_signing_key *other = key_make(algorithm, domain, &other_record);

		assert_int_not_equal(verify_message(other_record, header, prepend_text, message),
				     DKIM_STAT_OK);
		free(other_record);
		dkim_signing_key_free(&other);
	}
	/* And the untouched message still verifies (the checks above could not
	 * fail for an unrelated reason). */
	assert_int_equal(verify_message(record, header, prepend_text, message), DKIM_STAT_OK);

	close(fd);
	free(header);
	free(record);
	dkim_signing_key_free(&key);
}

/* ---- tests: signing ----------------------------------------------------- */

static void test_sign_rsa(void **state)
{
	sign_and_verify(*state, STORE_DKIM_RSA, message_plain, "example.org");
	sign_and_verify(*state, STORE_DKIM_RSA, message_multipart, "example.org");
}

static void test_sign_ed25519(void **state)
{
	sign_and_verify(*state, STORE_DKIM_ED25519, message_plain, "example.org");
	sign_and_verify(*state, STORE_DKIM_ED25519, message_multipart, "example.org");
}

/* The signature names the headers present that popgate signs, From one more
 * time than present, and none it does not sign. */
static void test_signed_header_list(void **state)
{
	struct fixture *f = *state;
	char *record = NULL, *header = NULL, *h, *end, *list;
	struct dkim_signing_key *key = key_make(STORE_DKIM_RSA, "example.org", &record);
	int fd = body_open(f, "body", message_multipart);
	char err[256];

	assert_int_equal(dkim_sign_message(key, prepend_text, fd, &header, err, sizeof(err)), 0);
	/* Unfolded, without blanks, lowercased: then the tag is ";h=...;". */
	list = xstrdup(header);
	{
		char *out = list;

		for (const char *p = header; *p != '\0'; p++)
			if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ')
				*out++ = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
		*out = '\0';
	}
	h = strstr(list, ";h=");
	assert_non_null(h);
	h += 3;
	end = strchr(h, ';');
	assert_non_null(end);
	*end = '\0';
	memmove(list, h, strlen(h) + 1);
	assert_string_equal(list, "from:to:subject:in-reply-to:references:date:message-id:"
				  "mime-version:content-type:from");
	free(list);
	close(fd);
	free(header);
	free(record);
	dkim_signing_key_free(&key);
}

/* A message without From cannot be signed, and says so. */
static void test_sign_without_from(void **state)
{
	struct fixture *f = *state;
	char *record = NULL, *header = NULL, *domain = NULL;
	struct dkim_signing_key *key = key_make(STORE_DKIM_RSA, "example.org", &record);
	int fd = body_open(f, "body", "To: bob@example.net\r\nSubject: x\r\n\r\nbody\r\n");
	char err[256] = "";

	assert_int_equal(dkim_message_from_domain(NULL, fd, &domain, err, sizeof(err)), 0);
	assert_null(domain);
	assert_int_equal(dkim_sign_message(key, NULL, fd, &header, err, sizeof(err)), -1);
	assert_null(header);
	assert_true(err[0] != '\0');
	close(fd);
	free(record);
	dkim_signing_key_free(&key);
}

/* The From domain: lowercased, from the first From, with an empty prepend,
 * and none from a From without an address. */
static void test_from_domain(void **state)
{
	struct fixture *f = *state;
	char err[256];
	char *domain = NULL;
	int fd;

	fd = body_open(f, "a", message_multipart);
	assert_int_equal(dkim_message_from_domain("", fd, &domain, err, sizeof(err)), 1);
	assert_string_equal(domain, "example.org");
	free(domain);
	close(fd);

	fd = body_open(f, "b", "From: undisclosed\r\nTo: x@example.net\r\n\r\nhi\r\n");
	assert_int_equal(dkim_message_from_domain(NULL, fd, &domain, err, sizeof(err)), 0);
	close(fd);

	assert_int_equal(dkim_message_from_domain(NULL, -1, &domain, err, sizeof(err)), -1);
	assert_null(domain);
}

/* ---- tests: keys and records -------------------------------------------- */

/* The base64 after "p=" in VALUE, decoded into *DER_R (allocated). */
static size_t record_public_key(const char *value, unsigned char **der_r)
{
	const char *p = strstr(value, "; p=");
	size_t len, out_len = 0;
	unsigned char *der;

	assert_non_null(p);
	p += 4;
	len = strlen(p);
	der = xmalloc(len);
	assert_int_equal(sodium_base642bin(der, len, p, len, NULL, &out_len, NULL,
					   sodium_base64_VARIANT_ORIGINAL),
			 0);
	*der_r = der;
	return out_len;
}

static EVP_PKEY *pem_private(const char *pem)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);

	BIO_free(bio);
	assert_non_null(pkey);
	return pkey;
}

/* The record of each algorithm parses back to the private key's public key. */
static void test_record_matches_key(void **state)
{
	char err[256], *pem = NULL, *value = NULL;
	unsigned char *der;
	const unsigned char *cursor;
	EVP_PKEY *private, *public;
	size_t len;

	(void)state;
	assert_int_equal(dkim_key_generate(STORE_DKIM_RSA, &pem, err, sizeof(err)), 0);
	assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----"));
	assert_int_equal(dkim_record_value(STORE_DKIM_RSA, pem, &value, err, sizeof(err)), 0);
	assert_true(strncmp(value, "v=DKIM1; k=rsa; p=", 18) == 0);
	len = record_public_key(value, &der);
	cursor = der;
	public = d2i_PUBKEY(NULL, &cursor, (long)len);
	assert_non_null(public);
	private = pem_private(pem);
	assert_int_equal(EVP_PKEY_get_bits(public), DKIM_RSA_BITS);
	assert_int_equal(EVP_PKEY_eq(public, private), 1);
	/* An RSA key is not an Ed25519 one. */
	free(value);
	assert_int_equal(dkim_record_value(STORE_DKIM_ED25519, pem, &value, err, sizeof(err)), -1);
	assert_null(value);
	EVP_PKEY_free(public);
	EVP_PKEY_free(private);
	free(der);
	dkim_pem_free(&pem);

	assert_int_equal(dkim_key_generate(STORE_DKIM_ED25519, &pem, err, sizeof(err)), 0);
	assert_int_equal(dkim_record_value(STORE_DKIM_ED25519, pem, &value, err, sizeof(err)), 0);
	assert_true(strncmp(value, "v=DKIM1; k=ed25519; p=", 22) == 0);
	len = record_public_key(value, &der);
	assert_int_equal(len, 32);
	public = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, len);
	assert_non_null(public);
	private = pem_private(pem);
	assert_int_equal(EVP_PKEY_eq(public, private), 1);
	EVP_PKEY_free(public);
	EVP_PKEY_free(private);
	free(der);
	free(value);
	dkim_pem_free(&pem);
	assert_null(pem);

	assert_int_equal(dkim_record_value(STORE_DKIM_RSA, "not a key", &value, err, sizeof(err)),
			 -1);
	assert_null(value);
}

/* The zone line: the name, then strings of at most 255 bytes that join to
 * the value. */
static void test_record_line(void **state)
{
	char value[600], joined[600] = "";
	char *line, *p;
	size_t pieces = 0;

	(void)state;
	memset(value, 'A', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	memcpy(value, "v=DKIM1; k=rsa; p=", 18);
	line = dkim_record_line("example.org", "popgate202612", value);
	assert_true(strncmp(line, "popgate202612._domainkey.example.org. IN TXT \"", 46) == 0);
	p = strchr(line, '"');
	while (p != NULL) {
		char *close = strchr(p + 1, '"');

		assert_non_null(close);
		assert_true(close - p - 1 <= 255);
		strncat(joined, p + 1, (size_t)(close - p - 1));
		pieces++;
		p = strchr(close + 1, '"');
	}
	assert_int_equal(pieces, 3);
	assert_string_equal(joined, value);
	free(line);
}

static void test_default_selector(void **state)
{
	char selector[32];

	(void)state;
	dkim_default_selector(selector, sizeof(selector), 1796191200); /* 2026-12-02 */
	assert_string_equal(selector, "popgate202612");
	assert_true(store_dkim_selector_valid(selector));
}

static void test_names_valid(void **state)
{
	(void)state;
	assert_true(store_dkim_domain_valid("example.org"));
	assert_true(store_dkim_domain_valid("mail-1.example.co.uk"));
	assert_false(store_dkim_domain_valid("localhost"));
	assert_false(store_dkim_domain_valid("example.org."));
	assert_false(store_dkim_domain_valid("-bad.example.org"));
	assert_false(store_dkim_domain_valid("a..b"));
	assert_false(store_dkim_domain_valid("ex ample.org"));
	assert_false(store_dkim_domain_valid("example.org\n"));
	assert_false(store_dkim_domain_valid(""));
	assert_true(store_dkim_selector_valid("s1"));
	assert_true(store_dkim_selector_valid("2026.rotation"));
	assert_false(store_dkim_selector_valid("a_b"));
	assert_false(store_dkim_selector_valid("x;y"));
}

/* ---- tests: the store --------------------------------------------------- */

static void put_key(struct fixture *f, const char *domain, enum store_dkim_algorithm algorithm,
		    const char *pem, bool replace, int expect)
{
	struct store_dkim_key key = {0};

	key.domain = xstrdup(domain);
	key.selector = xstrdup("s1");
	key.algorithm = algorithm;
	key.private_key = xstrdup(pem);
	assert_int_equal(store_dkim_put(f->base.store, &f->credential, &key, replace), expect);
	store_dkim_key_clear(&key);
}

static void test_store_sealed_at_rest(void **state)
{
	struct fixture *f = *state;
	static const char pem[] = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n"
				  "-----END PRIVATE KEY-----\n";
	struct store_dkim_key key;
	struct crypto_key other;
	sqlite3_stmt *stmt;

	put_key(f, "example.org", STORE_DKIM_ED25519, pem, false, 0);
	/* The stored blob is not the key, nor holds it. */
	stmt = test_query_row(f->base.store, "SELECT private_key FROM dkim_key");
	assert_int_equal(sqlite3_column_type(stmt, 0), SQLITE_BLOB);
	assert_null(memmem(sqlite3_column_blob(stmt, 0), (size_t)sqlite3_column_bytes(stmt, 0),
			   "PRIVATE", 7));
	sqlite3_finalize(stmt);

	assert_int_equal(store_dkim_get(f->base.store, &f->credential, "EXAMPLE.org", &key), 1);
	assert_string_equal(key.domain, "example.org");
	assert_string_equal(key.selector, "s1");
	assert_int_equal(key.algorithm, STORE_DKIM_ED25519);
	assert_string_equal(key.private_key, pem);
	assert_true(key.created_at > 0);
	store_dkim_key_clear(&key);
	assert_null(key.private_key);

	/* Under another credential key it does not open: an error, no key. */
	randombytes_buf(other.bytes, sizeof(other.bytes));
	assert_int_equal(store_dkim_get(f->base.store, &other, "example.org", &key), -1);
	assert_null(key.private_key);
	assert_null(key.domain);

	assert_int_equal(store_dkim_get(f->base.store, &f->credential, "example.net", &key), 0);
}

static void test_store_replace_list_delete(void **state)
{
	struct fixture *f = *state;
	struct store_dkim_key *keys = NULL;
	struct store_dkim_key key;
	struct dkim_signing_key *signing = NULL;
	size_t count = 0;

	put_key(f, "example.org", STORE_DKIM_RSA, "first", false, 0);
	put_key(f, "example.net", STORE_DKIM_ED25519, "second", false, 0);
	/* A domain's key is replaced only when asked to. */
	put_key(f, "example.org", STORE_DKIM_ED25519, "third", false, -2);
	assert_int_equal(store_dkim_get(f->base.store, &f->credential, "example.org", &key), 1);
	assert_string_equal(key.private_key, "first");
	store_dkim_key_clear(&key);
	put_key(f, "example.org", STORE_DKIM_ED25519, "third", true, 1);
	assert_int_equal(store_dkim_get(f->base.store, &f->credential, "example.org", &key), 1);
	assert_string_equal(key.private_key, "third");
	assert_int_equal(key.algorithm, STORE_DKIM_ED25519);
	store_dkim_key_clear(&key);

	/* The listing: by domain, never a private key. */
	assert_int_equal(store_dkim_list(f->base.store, &keys, &count), 0);
	assert_int_equal(count, 2);
	assert_string_equal(keys[0].domain, "example.net");
	assert_string_equal(keys[1].domain, "example.org");
	assert_int_equal(keys[1].algorithm, STORE_DKIM_ED25519);
	assert_null(keys[0].private_key);
	assert_null(keys[1].private_key);
	store_dkim_list_free(&keys, count);
	assert_null(keys);

	/* The relay's lookup. */
	assert_int_equal(
	    dkim_key_for_message(f->base.store, &f->credential, "example.net", &signing), 1);
	assert_string_equal(signing->domain, "example.net");
	assert_string_equal(signing->selector, "s1");
	assert_string_equal(signing->private_key, "second");
	dkim_signing_key_free(&signing);
	assert_null(signing);
	assert_int_equal(
	    dkim_key_for_message(f->base.store, &f->credential, "example.com", &signing), 0);
	assert_null(signing);

	assert_int_equal(store_dkim_delete(f->base.store, "Example.NET"), 1);
	assert_int_equal(store_dkim_delete(f->base.store, "example.net"), 0);
	assert_int_equal(store_dkim_list(f->base.store, &keys, &count), 0);
	assert_int_equal(count, 1);
	store_dkim_list_free(&keys, count);
}

/* The relay's path: a ring of every key, loaded from the store, signs mail
 * from a domain with a key, passes other mail unsigned, and refuses mail
 * from a domain whose key does not open rather than send it unsigned. */
static void test_keyring_sign(void **state)
{
	struct fixture *f = *state;
	struct dkim_keyring *ring = NULL;
	struct store_dkim_key stored = {0};
	struct crypto_key other;
	char *record = NULL, *header = NULL;
	char err[256] = "";
	int fd;

	/* An empty store: an empty ring that signs nothing. */
	assert_int_equal(dkim_keyring_load(f->base.store, &f->credential, &ring), 0);
	assert_int_equal(dkim_keyring_count(ring), 0);
	fd = body_open(f, "plain", message_plain);
	assert_int_equal(dkim_keyring_sign(ring, prepend_text, fd, &header, err, sizeof(err)), 0);
	assert_null(header);
	dkim_keyring_free(&ring);
	assert_null(ring);

	stored.domain = xstrdup("example.org");
	stored.selector = xstrdup("popgate202612");
	stored.algorithm = STORE_DKIM_RSA;
	assert_int_equal(dkim_key_generate(STORE_DKIM_RSA, &stored.private_key, err, sizeof(err)),
			 0);
	assert_int_equal(
	    dkim_record_value(STORE_DKIM_RSA, stored.private_key, &record, err, sizeof(err)), 0);
	assert_int_equal(store_dkim_put(f->base.store, &f->credential, &stored, false), 0);
	store_dkim_key_clear(&stored);
	/* A key sealed under another credential key: it will not open. */
	randombytes_buf(other.bytes, sizeof(other.bytes));
	stored.domain = xstrdup("example.net");
	stored.selector = xstrdup("s1");
	stored.algorithm = STORE_DKIM_RSA;
	stored.private_key = xstrdup("-----BEGIN PRIVATE KEY-----\n");
	assert_int_equal(store_dkim_put(f->base.store, &other, &stored, false), 0);
	store_dkim_key_clear(&stored);

	assert_int_equal(dkim_keyring_load(f->base.store, &f->credential, &ring), 0);
	assert_int_equal(dkim_keyring_count(ring), 1);
	/* From example.org: signed, and the signature verifies. */
	assert_int_equal(dkim_keyring_sign(ring, prepend_text, fd, &header, err, sizeof(err)), 1);
	assert_int_equal(verify_message(record, header, prepend_text, message_plain), DKIM_STAT_OK);
	free(header);
	close(fd);
	/* From a domain without a key, or no From: not signed. */
	fd = body_open(f, "other", "From: x@example.com\r\nSubject: s\r\n\r\nhi\r\n");
	assert_int_equal(dkim_keyring_sign(ring, NULL, fd, &header, err, sizeof(err)), 0);
	assert_null(header);
	close(fd);
	fd = body_open(f, "nofrom", "Subject: s\r\n\r\nhi\r\n");
	assert_int_equal(dkim_keyring_sign(ring, NULL, fd, &header, err, sizeof(err)), 0);
	close(fd);
	/* From the domain whose key does not open: an error, not unsigned. */
	fd = body_open(f, "broken", "From: x@Example.NET\r\nSubject: s\r\n\r\nhi\r\n");
	err[0] = '\0';
	assert_int_equal(dkim_keyring_sign(ring, NULL, fd, &header, err, sizeof(err)), -1);
	assert_null(header);
	assert_non_null(strstr(err, "example.net"));
	close(fd);
	/* A file that cannot be read: an error. */
	assert_int_equal(dkim_keyring_sign(ring, NULL, -1, &header, err, sizeof(err)), -1);
	dkim_keyring_free(&ring);
	free(record);
}

/* One signing job of test_sign_threads. */
struct sign_job {
	const struct dkim_keyring *ring;
	int fd;
	char *header;
	int result;
};

static void *sign_job_run(void *arg)
{
	struct sign_job *job = arg;
	char err[256];

	for (int i = 0; i < 5; i++) {
		free(job->header);
		job->result = dkim_keyring_sign(job->ring, prepend_text, job->fd, &job->header, err,
						sizeof(err));
		if (job->result != 1)
			break;
	}
	return NULL;
}

/* The relay signs in pool threads: one ring shared read-only by several
 * threads at once, each signature verifying. */
static void test_sign_threads(void **state)
{
	struct fixture *f = *state;
	struct store_dkim_key stored = {0};
	struct dkim_keyring *ring = NULL;
	struct sign_job jobs[4];
	pthread_t threads[4];
	char *record = NULL;
	char err[256];

	stored.domain = xstrdup("example.org");
	stored.selector = xstrdup("popgate202612");
	stored.algorithm = STORE_DKIM_ED25519;
	assert_int_equal(
	    dkim_key_generate(STORE_DKIM_ED25519, &stored.private_key, err, sizeof(err)), 0);
	assert_int_equal(
	    dkim_record_value(STORE_DKIM_ED25519, stored.private_key, &record, err, sizeof(err)),
	    0);
	assert_int_equal(store_dkim_put(f->base.store, &f->credential, &stored, false), 0);
	store_dkim_key_clear(&stored);
	assert_int_equal(dkim_keyring_load(f->base.store, &f->credential, &ring), 0);
	for (int i = 0; i < 4; i++) {
		char name[16];

		/* A file of its own each: a rewrite would race with a reader. */
		snprintf(name, sizeof(name), "job%d", i);
		jobs[i] = (struct sign_job){
		    .ring = ring,
		    .fd = body_open(f, name, i % 2 ? message_multipart : message_plain)};
		assert_int_equal(pthread_create(&threads[i], NULL, sign_job_run, &jobs[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(threads[i], NULL), 0);
		assert_int_equal(jobs[i].result, 1);
		assert_int_equal(verify_message(record, jobs[i].header, prepend_text,
						i % 2 ? message_multipart : message_plain),
				 DKIM_STAT_OK);
		free(jobs[i].header);
		close(jobs[i].fd);
	}
	dkim_keyring_free(&ring);
	free(record);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_sign_rsa, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_sign_ed25519, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_signed_header_list, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_sign_without_from, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_from_domain, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_keyring_sign, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_sign_threads, setup, test_store_teardown),
	    cmocka_unit_test(test_record_matches_key),
	    cmocka_unit_test(test_record_line),
	    cmocka_unit_test(test_default_selector),
	    cmocka_unit_test(test_names_valid),
	    cmocka_unit_test_setup_teardown(test_store_sealed_at_rest, setup, test_store_teardown),
	    cmocka_unit_test_setup_teardown(test_store_replace_list_delete, setup,
					    test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
