/*
 * tls.h — OpenSSL contexts for both directions, and the self-signed
 * certificate made on first start.
 *
 * Both directions require TLS 1.2 or newer. Towards providers the certificate
 * is verified (system CAs or a policy's CA file) and the host name is checked
 * and sent by SNI, unless a policy turns verification off.
 */
#ifndef POPGATE_TLS_H
#define POPGATE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Makes a self-signed certificate for HOSTNAME (EC P-256, SAN = HOSTNAME and
 * localhost, ten years) at CERT_PATH and KEY_PATH (mode 0600) unless both exist.
 * 0, or -1 with a message in ERR.
 */
int tls_ensure_self_signed(const char *cert_path, const char *key_path, const char *hostname,
			   char *err, size_t errlen);

/* A server context with CERT_PATH and KEY_PATH. NULL with a message in ERR. */
SSL_CTX *tls_server_ctx_new(const char *cert_path, const char *key_path, char *err, size_t errlen);

/*
 * A client context: VERIFY on checks the peer against CA_FILE (NULL = system
 * store). NULL with a message in ERR.
 */
SSL_CTX *tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen);

/*
 * A new client SSL for HOST on CTX: SNI set to HOST and, when VERIFY, the
 * certificate's name checked against HOST. NULL on failure.
 */
SSL *tls_client_ssl_new(SSL_CTX *ctx, const char *host, bool verify);

/* The last OpenSSL error as text (static buffer), for one log line. */
const char *tls_last_error(void);

#endif
