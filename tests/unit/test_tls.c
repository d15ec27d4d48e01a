/*
 * test_tls.c — tls.c: the self-signed certificate (files, modes, fields) and
 * real handshakes over a socketpair between popgate's server and client
 * contexts: a good name passes, a wrong name, an unknown CA and TLS 1.1 fail.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/tls.h"
#include "core/util.h"

#include "test_support.h"

struct fixture {
	char dir[TEST_DIR_SIZE];
	char *cert;
	char *key;
	char err[512];
	SSL_CTX *server;
};

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));

	if (test_dir_make(f->dir, sizeof(f->dir), "tls") < 0)
		return -1;
	/* A folder that does not exist yet: tls_ensure_self_signed makes it. */
	f->cert = xasprintf("%s/data/tls/cert.pem", f->dir);
	f->key = xasprintf("%s/data/tls/key.pem", f->dir);
	if (tls_ensure_self_signed(f->cert, f->key, "gate.example", f->err, sizeof(f->err)) != 0) {
		fprintf(stderr, "%s\n", f->err);
		return -1;
	}
	f->server = tls_server_ctx_new(f->cert, f->key, f->err, sizeof(f->err));
	if (f->server == NULL) {
		fprintf(stderr, "%s\n", f->err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = test_dir_remove(f->dir);

	SSL_CTX_free(f->server);
	free(f->cert);
	free(f->key);
	free(f);
	return rc;
}

static X509 *read_cert(const char *path)
{
	FILE *in = fopen(path, "r");
	X509 *cert;

	assert_non_null(in);
	cert = PEM_read_X509(in, NULL, NULL, NULL);
	fclose(in);
	assert_non_null(cert);
	return cert;
}

/* One step of a non-blocking handshake: 1 done, 0 again, -1 failed. */
static int handshake_step(SSL *ssl)
{
	int rc = SSL_do_handshake(ssl);
	int e;

	if (rc == 1)
		return 1;
	e = SSL_get_error(ssl, rc);
	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/*
 * Runs a handshake between SERVER_CTX and the client SSL CLIENT over a
 * non-blocking socketpair, both ends stepped in turn a bounded number of
 * times, then sends one line through. True when both ends succeeded;
 * *VERIFY_R gets the client's verification result.
 */
static bool handshake(SSL_CTX *server_ctx, SSL *client, long *verify_r)
{
	int fds[2];
	SSL *server;
	int client_state = 0;
	int server_state = 0;
	char buf[16] = "";
	bool ok = false;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
	server = SSL_new(server_ctx);
	assert_non_null(server);
	assert_int_equal(SSL_set_fd(server, fds[0]), 1);
	assert_int_equal(SSL_set_fd(client, fds[1]), 1);
	SSL_set_accept_state(server);
	SSL_set_connect_state(client);
	for (int i = 0; i < 100 && (client_state == 0 || server_state == 0); i++) {
		if (client_state == 0)
			client_state = handshake_step(client);
		if (server_state == 0)
			server_state = handshake_step(server);
		if (client_state < 0 || server_state < 0)
			break;
	}
	if (client_state == 1 && server_state == 1) {
		/* The channel carries data, not only a finished handshake. */
		assert_int_equal(SSL_write(client, "+OK hi\r\n", 8), 8);
		for (int i = 0; i < 100; i++) {
			int n = SSL_read(server, buf, sizeof(buf) - 1);

			if (n > 0) {
				buf[n] = '\0';
				break;
			}
		}
		assert_string_equal(buf, "+OK hi\r\n");
		ok = true;
	}
	*verify_r = SSL_get_verify_result(client);
	SSL_free(server);
	close(fds[0]);
	close(fds[1]);
	ERR_clear_error();
	return ok;
}

/* A handshake from a client context made by tls_client_ctx_new. */
static bool connect_as(struct fixture *f, const char *ca_file, bool verify, const char *host,
		       long *verify_r)
{
	SSL_CTX *ctx = tls_client_ctx_new(ca_file, verify, f->err, sizeof(f->err));
	SSL *ssl;
	bool ok;

	assert_non_null(ctx);
	ssl = tls_client_ssl_new(ctx, host, verify);
	assert_non_null(ssl);
	ok = handshake(f->server, ssl, verify_r);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return ok;
}

static void test_self_signed_files(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	char *before;
	char *after;
	size_t len;

	assert_int_equal(stat(f->key, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(stat(f->cert, &st), 0);
	assert_true(S_ISREG(st.st_mode));

	/* Both exist: left alone. */
	assert_int_equal(util_read_file(f->cert, &before, &len), 0);
	assert_int_equal(tls_ensure_self_signed(f->cert, f->key, "other.example", f->err,
						sizeof(f->err)),
			 0);
	assert_int_equal(util_read_file(f->cert, &after, &len), 0);
	assert_string_equal(before, after);
	free(after);

	/* The key gone: both are made anew. */
	assert_int_equal(unlink(f->key), 0);
	assert_int_equal(tls_ensure_self_signed(f->cert, f->key, "gate.example", f->err,
						sizeof(f->err)),
			 0);
	assert_int_equal(access(f->key, R_OK), 0);
	assert_int_equal(util_read_file(f->cert, &after, &len), 0);
	assert_string_not_equal(before, after);
	free(after);
	free(before);
}

static void test_self_signed_fields(void **state)
{
	struct fixture *f = *state;
	X509 *cert = read_cert(f->cert);
	EVP_PKEY *pkey = X509_get0_pubkey(cert);
	char cn[128] = "";
	char group[64] = "";
	size_t group_len = 0;
	int days = 0;
	int seconds = 0;
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);

	assert_int_equal(X509_get_version(cert), X509_VERSION_3);
	X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "gate.example");
	assert_int_equal(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)),
			 0);
	assert_int_equal(X509_check_host(cert, "gate.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(cert, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(cert, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(cert, "other.example", 0, 0, NULL), 0);
	assert_int_equal(EVP_PKEY_get_base_id(pkey), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_utf8_string_param(pkey, "group", group, sizeof(group),
							 &group_len),
			 1);
	assert_string_equal(group, "prime256v1");
	assert_int_equal(X509_get_signature_nid(cert), NID_ecdsa_with_SHA256);
	assert_int_equal(ASN1_TIME_diff(&days, &seconds, X509_get0_notBefore(cert),
					X509_get0_notAfter(cert)),
			 1);
	assert_in_range(days, 3650, 3651);
	assert_int_equal(X509_cmp_current_time(X509_get0_notBefore(cert)), -1);
	assert_true(ASN1_STRING_length(serial) >= 8);
	assert_int_equal(X509_verify(cert, pkey), 1);
	X509_free(cert);
}

static void test_handshake_verified(void **state)
{
	struct fixture *f = *state;
	long verify = -1;

	assert_true(connect_as(f, f->cert, true, "localhost", &verify));
	assert_int_equal(verify, X509_V_OK);
	assert_true(connect_as(f, f->cert, true, "gate.example", &verify));
	assert_int_equal(verify, X509_V_OK);
	assert_true(connect_as(f, f->cert, true, "127.0.0.1", &verify));
	assert_int_equal(verify, X509_V_OK);
}

static void test_handshake_wrong_name(void **state)
{
	struct fixture *f = *state;
	long verify = -1;

	assert_false(connect_as(f, f->cert, true, "wrong.example", &verify));
	assert_int_equal(verify, X509_V_ERR_HOSTNAME_MISMATCH);
	assert_false(connect_as(f, f->cert, true, "10.0.0.1", &verify));
	assert_int_equal(verify, X509_V_ERR_IP_ADDRESS_MISMATCH);
}

static void test_handshake_system_store(void **state)
{
	struct fixture *f = *state;
	long verify = -1;

	/* No public CA signed our certificate. */
	assert_false(connect_as(f, NULL, true, "localhost", &verify));
	assert_int_equal(verify, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
	/* Verification turned off by policy: any certificate, any name. */
	assert_true(connect_as(f, NULL, false, "wrong.example", &verify));
}

/* A context limited to exactly VERSION, at security level 0 so that OpenSSL
 * itself permits the old protocol on this side. */
static SSL_CTX *old_ctx(const SSL_METHOD *method, int version)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	assert_int_equal(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, version), 1);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, version), 1);
	return ctx;
}

static void test_old_protocols_refused(void **state)
{
	struct fixture *f = *state;
	SSL_CTX *ctx;
	SSL_CTX *old_server;
	SSL *ssl;
	long verify;

	/* The control: a client limited to TLS 1.2 gets through... */
	ctx = old_ctx(TLS_client_method(), TLS1_2_VERSION);
	ssl = SSL_new(ctx);
	assert_true(handshake(f->server, ssl, &verify));
	assert_string_equal(SSL_get_version(ssl), "TLSv1.2");
	SSL_free(ssl);
	SSL_CTX_free(ctx);

	/* ...one limited to TLS 1.1 does not. */
	ctx = old_ctx(TLS_client_method(), TLS1_1_VERSION);
	ssl = SSL_new(ctx);
	assert_false(handshake(f->server, ssl, &verify));
	SSL_free(ssl);
	SSL_CTX_free(ctx);

	/* A provider that offers no more than TLS 1.1 works with a client that
	 * allows it: this OpenSSL can still speak TLS 1.1, so the refusals come
	 * from popgate's contexts. */
	old_server = old_ctx(TLS_server_method(), TLS1_1_VERSION);
	assert_int_equal(SSL_CTX_use_certificate_chain_file(old_server, f->cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey_file(old_server, f->key, SSL_FILETYPE_PEM), 1);
	ctx = old_ctx(TLS_client_method(), TLS1_1_VERSION);
	ssl = SSL_new(ctx);
	assert_true(handshake(old_server, ssl, &verify));
	assert_string_equal(SSL_get_version(ssl), "TLSv1.1");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	/* Our client refuses it. */
	ctx = tls_client_ctx_new(NULL, false, f->err, sizeof(f->err));
	assert_non_null(ctx);
	ssl = tls_client_ssl_new(ctx, "localhost", false);
	assert_false(handshake(old_server, ssl, &verify));
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	SSL_CTX_free(old_server);
}

static void test_ctx_errors(void **state)
{
	struct fixture *f = *state;
	char *missing = xasprintf("%s/missing.pem", f->dir);
	char *cert2 = xasprintf("%s/two/cert.pem", f->dir);
	char *key2 = xasprintf("%s/two/key.pem", f->dir);
	SSL_CTX *ctx;

	ctx = tls_server_ctx_new(missing, f->key, f->err, sizeof(f->err));
	assert_null(ctx);
	assert_non_null(strstr(f->err, missing));

	ctx = tls_server_ctx_new(f->cert, missing, f->err, sizeof(f->err));
	assert_null(ctx);
	assert_non_null(strstr(f->err, missing));

	/* Another pair's key does not fit this certificate. */
	assert_int_equal(tls_ensure_self_signed(cert2, key2, "gate.example", f->err,
						sizeof(f->err)),
			 0);
	ctx = tls_server_ctx_new(f->cert, key2, f->err, sizeof(f->err));
	assert_null(ctx);
	assert_non_null(strstr(f->err, key2));

	ctx = tls_client_ctx_new(missing, true, f->err, sizeof(f->err));
	assert_null(ctx);
	assert_non_null(strstr(f->err, missing));

	/* A name too long for a certificate is refused with a message. */
	assert_int_equal(tls_ensure_self_signed(missing, key2 /* exists */,
						"a123456789b123456789c123456789d123456789e123456789"
						"f123456789g12345.example",
						f->err, sizeof(f->err)),
			 -1);
	assert_non_null(strstr(f->err, "cannot be a certificate's name"));

	/* The error queue was drained by each message. */
	assert_int_equal(ERR_peek_error(), 0);
	assert_string_equal(tls_last_error(), "no OpenSSL error recorded");
	free(key2);
	free(cert2);
	free(missing);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_self_signed_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_signed_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_wrong_name, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_system_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_old_protocols_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctx_errors, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
