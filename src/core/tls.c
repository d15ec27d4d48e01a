/*
 * tls.c — OpenSSL contexts for both directions (clients to popgate, popgate
 * to providers) and the self-signed certificate made on first start.
 *
 * Owns: nothing beyond the objects it returns (the caller frees them with
 * SSL_CTX_free / SSL_free).
 * Must never: allow a protocol older than TLS 1.2, or let a client context
 * that was asked to verify accept a certificate without checking both its
 * chain and its name.
 * SECURITY: the peer's certificate is untrusted input; only OpenSSL's verifier
 * judges it, against the system store or the CA file a policy names.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/tls.h"
#include "core/util.h"

/* Ten years: a self-signed certificate is pinned by hand in each client, so
 * renewing it is costly; the key itself never leaves the machine. */
#define TLS_SELF_SIGNED_DAYS 3650

/* Adds one X509v3 extension written in OpenSSL's configuration syntax. */
static int tls_add_extension(X509 *cert, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -1;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* A random positive 127-bit serial number, as RFC 5280 asks (at most 20 octets). */
static int tls_set_random_serial(X509 *cert)
{
	BIGNUM *bn = BN_new();
	int rc = -1;

	if (bn == NULL)
		return -1;
	if (BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL)
		rc = 0;
	BN_free(bn);
	return rc;
}

/* Builds and signs the certificate for HOSTNAME with PKEY. NULL on failure. */
static X509 *tls_make_certificate(EVP_PKEY *pkey, const char *hostname)
{
	X509 *cert = X509_new();
	X509_NAME *name;
	char *san = NULL;

	if (cert == NULL)
		return NULL;
	name = X509_get_subject_name(cert);
	san = xasprintf("DNS:%s,DNS:localhost,IP:127.0.0.1", hostname);
	/* Valid from an hour ago, so a client whose clock runs a little behind
	 * does not reject a certificate made a moment before. */
	if (!X509_set_version(cert, X509_VERSION_3) || tls_set_random_serial(cert) < 0 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(cert), TLS_SELF_SIGNED_DAYS, 0, NULL) == NULL ||
	    !X509_set_pubkey(cert, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)hostname,
					-1, -1, 0) ||
	    !X509_set_issuer_name(cert, name) ||
	    tls_add_extension(cert, NID_subject_alt_name, san) < 0 ||
	    tls_add_extension(cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    tls_add_extension(cert, NID_ext_key_usage, "serverAuth") < 0 ||
	    tls_add_extension(cert, NID_subject_key_identifier, "hash") < 0 ||
	    !X509_sign(cert, pkey, EVP_sha256()))
		goto fail;
	free(san);
	return cert;
fail:
	free(san);
	X509_free(cert);
	return NULL;
}

/* Writes what BIO holds to PATH atomically with MODE, then wipes the BIO's
 * memory (it may hold a private key). 0 or -1 with errno. */
static int tls_write_bio(BIO *bio, const char *path, mode_t mode)
{
	BUF_MEM *mem = NULL;
	int rc;

	BIO_get_mem_ptr(bio, &mem);
	rc = util_write_file_atomic(path, mem->data, mem->length, mode);
	OPENSSL_cleanse(mem->data, mem->length);
	return rc;
}

/* Creates the folder that will hold PATH. 0 or -1 with errno. */
static int tls_make_parent(const char *path)
{
	char *copy = xstrdup(path);
	int rc = util_mkdir_p(dirname(copy), 0700);

	free(copy);
	return rc;
}

int tls_ensure_self_signed(const char *cert_path, const char *key_path, const char *hostname,
			   char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	X509 *cert = NULL;
	BIO *key_bio = NULL;
	BIO *cert_bio = NULL;
	int rc = -1;

	if (access(cert_path, F_OK) == 0 && access(key_path, F_OK) == 0)
		return 0;
	/* The common name is limited to 64 characters (RFC 5280, ub-common-name). */
	if (strlen(hostname) == 0 || strlen(hostname) > 64) {
		snprintf(err, errlen, "host name '%s' cannot be a certificate's name", hostname);
		return -1;
	}
	if (tls_make_parent(cert_path) < 0 || tls_make_parent(key_path) < 0) {
		snprintf(err, errlen, "cannot create the folder for %s or %s: %s", cert_path,
			 key_path, strerror(errno));
		return -1;
	}
	pkey = EVP_EC_gen("P-256");
	if (pkey == NULL) {
		snprintf(err, errlen, "cannot make a P-256 key: %s", tls_last_error());
		goto fail;
	}
	cert = tls_make_certificate(pkey, hostname);
	if (cert == NULL) {
		snprintf(err, errlen, "cannot make a certificate for %s: %s", hostname,
			 tls_last_error());
		goto fail;
	}
	key_bio = BIO_new(BIO_s_mem());
	cert_bio = BIO_new(BIO_s_mem());
	if (key_bio == NULL || cert_bio == NULL ||
	    !PEM_write_bio_PrivateKey(key_bio, pkey, NULL, NULL, 0, NULL, NULL) ||
	    !PEM_write_bio_X509(cert_bio, cert)) {
		snprintf(err, errlen, "cannot encode the certificate: %s", tls_last_error());
		goto fail;
	}
	/* The key first: a certificate on disk then always has its key. */
	if (tls_write_bio(key_bio, key_path, 0600) < 0) {
		snprintf(err, errlen, "%s: %s", key_path, strerror(errno));
		goto fail;
	}
	if (tls_write_bio(cert_bio, cert_path, 0644) < 0) {
		snprintf(err, errlen, "%s: %s", cert_path, strerror(errno));
		goto fail;
	}
	rc = 0;
fail:
	BIO_free(cert_bio);
	BIO_free(key_bio);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return rc;
}

SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot make a TLS context: %s", tls_last_error());
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		snprintf(err, errlen, "cannot require TLS 1.2: %s", tls_last_error());
		goto fail;
	}
	/* Client-initiated renegotiation only costs the server CPU; no POP3
	 * client needs it. Our cipher order wins over a client's odd choice. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		snprintf(err, errlen, "%s: %s", cert_path, tls_last_error());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "%s: %s", key_path, tls_last_error());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "%s does not belong to %s: %s", key_path, cert_path,
			 tls_last_error());
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot make a TLS context: %s", tls_last_error());
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
		snprintf(err, errlen, "cannot require TLS 1.2: %s", tls_last_error());
		goto fail;
	}
	if (verify) {
		if (ca_file != NULL && SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			snprintf(err, errlen, "%s: %s", ca_file, tls_last_error());
			goto fail;
		}
		if (ca_file == NULL && SSL_CTX_set_default_verify_paths(ctx) != 1) {
			snprintf(err, errlen, "cannot load the system CA store: %s",
				 tls_last_error());
			goto fail;
		}
	}
	/* tls_client_ssl_new sets the mode per connection as well; the context's
	 * default errs on the safe side. */
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, bool verify)
{
	SSL *ssl = SSL_new(ctx);
	unsigned char addr[sizeof(struct in6_addr)];
	bool literal;

	if (ssl == NULL)
		return NULL;
	literal = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
	/* RFC 6066 forbids an address literal as SNI; a provider reached by
	 * address is checked against the certificate's IP entries instead. */
	if (!literal && !SSL_set_tlsext_host_name(ssl, host))
		goto fail;
	if (verify) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

		if (literal) {
			if (!X509_VERIFY_PARAM_set1_ip_asc(param, host))
				goto fail;
		} else {
			/* "*.example.net" may match; "w*.example.net" may not. */
			SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!SSL_set1_host(ssl, host))
				goto fail;
		}
		SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	}
	return ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

const char *tls_last_error(void)
{
	static char text[256];
	unsigned long code = ERR_peek_last_error();

	if (code == 0)
		snprintf(text, sizeof(text), "no OpenSSL error recorded");
	else
		ERR_error_string_n(code, text, sizeof(text));
	/* Drain the queue, so a stale error is never blamed for a later failure. */
	ERR_clear_error();
	return text;
}
