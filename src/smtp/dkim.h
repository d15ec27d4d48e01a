/*
 * dkim.h — DKIM (RFC 6376) for outbound mail: signing a message with its
 * sender domain's key (libopendkim), making a key pair (OpenSSL) and the DNS
 * record that publishes its public half.
 *
 * Which domain signs: the domain of the message's From: address, never the
 * envelope sender's. DMARC (RFC 7489) passes on DKIM only when the signing
 * domain (d=) aligns with From:, which is also what a reader sees; a message
 * whose From: domain has no key (store/dkim.h) goes out unsigned.
 *
 * Signatures: relaxed/relaxed canonicalisation, rsa-sha256 or ed25519-sha256
 * (RFC 8463) by the key's algorithm, over the usual headers that are present
 * (DKIM_SIGNED_HEADERS), with From over-signed so that no From can be added
 * to a signed message. No body length limit (l=), no expiry (x=).
 *
 * Must never: print or log a private key; sign on the event loop (signing
 * reads the body file and does public-key arithmetic: call it from a thread).
 * SECURITY: the message is the office's own outbound mail, still content
 * from a client: it is handed to libopendkim as bytes, and only the From
 * domain is taken from it, through the header parser of pipeline/headers.h.
 */
#ifndef POPGATE_SMTP_DKIM_H
#define POPGATE_SMTP_DKIM_H

#include <stddef.h>

#include "core/crypto.h"
#include "store/db.h"
#include "store/dkim.h"

/* The headers a signature covers when the message has them. */
#define DKIM_SIGNED_HEADERS                                                                        \
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",           \
	    "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References"

/* RSA keys popgate makes: what every receiver verifies (RFC 8301 asks for at
 * least 1024, recommends 2048). */
#define DKIM_RSA_BITS 2048

/* The default selector's prefix: "popgate" and the year and month the key
 * was made (popgate202612), so a later key gets a new name in DNS. */
#define DKIM_SELECTOR_PREFIX "popgate"

/* A domain's signing key, opened, for one message or many. */
struct dkim_signing_key {
	char *domain;	/* d= */
	char *selector; /* s= */
	enum store_dkim_algorithm algorithm;
	char *private_key; /* PEM; wiped by dkim_signing_key_free */
};

/* Wipes the private key and frees *KEY; NULL is fine; sets *KEY to NULL. */
void dkim_signing_key_free(struct dkim_signing_key **key);

/*
 * The key the relay signs a message from FROM_DOMAIN with (see
 * dkim_message_from_domain), opened with CREDENTIAL: 1 with *KEY_R
 * (allocated; dkim_signing_key_free), 0 when the domain has no key (the
 * message goes unsigned), -1 on an error (logged: the store failed or the key
 * does not open). A short read of the store: callable on the loop.
 */
int dkim_key_for_message(struct store *store, const struct crypto_key *credential,
			 const char *from_domain, struct dkim_signing_key **key_r);

/*
 * The domain of the From: address of the message PREPEND (header lines,
 * CRLF; may be NULL) followed by the body file BODY_FD (read from offset 0
 * with pread, not closed), lowercased: 1 with *DOMAIN_R (allocated, the
 * caller frees), 0 when there is no usable From address, -1 when the file
 * cannot be read (ERR). Blocking: reads at most the header block.
 */
int dkim_message_from_domain(const char *prepend, int body_fd, char **domain_r, char *err,
			     size_t errlen);

/*
 * Every key of the store, opened, for the relay's signing jobs: loaded on the
 * loop (it reads the store), then read-only, so a job on another thread may
 * use it while the loop does not free it (hand each job its own ring, or
 * keep one until its jobs are done).
 */
struct dkim_keyring;

/* Loads every key with CREDENTIAL into *RING_R (allocated, maybe empty;
 * dkim_keyring_free). A key that does not open (logged) leaves its domain
 * marked in the ring: dkim_keyring_sign fails for that domain's mail rather
 * than send it unsigned. 0, or -1 when the store cannot be read (logged). */
int dkim_keyring_load(struct store *store, const struct crypto_key *credential,
		      struct dkim_keyring **ring_r);

/* Wipes the keys and frees *RING; NULL is fine; sets *RING to NULL. */
void dkim_keyring_free(struct dkim_keyring **ring);

/* The number of keys in RING. */
size_t dkim_keyring_count(const struct dkim_keyring *ring);

/*
 * The relay's one call, in a job off the loop: finds the From: domain of
 * PREPEND + BODY_FD (dkim_message_from_domain) and, when RING has its key,
 * signs the message (dkim_sign_message). 1 signed, with *HEADER_R as there;
 * 0 not signed (no From address, or no key for its domain: the message goes
 * out as it is); -1 error with ERR (the file cannot be read, the domain's
 * key did not open, or signing failed: retry later rather than send the
 * message unsigned). Blocking; RING is only read.
 */
int dkim_keyring_sign(const struct dkim_keyring *ring, const char *prepend, int body_fd,
		      char **header_r, char *err, size_t errlen);

/*
 * Signs the message that will be sent: PREPEND (header lines popgate adds,
 * CRLF; may be NULL) followed by the body read from BODY_FD (the immutable
 * spool file, read from offset 0 with pread, not closed), with KEY for the
 * sender's domain. *HEADER_R gets the complete "DKIM-Signature: ..." header
 * field, folded, ending in CRLF (allocated, the caller frees), to put in
 * front of PREPEND. The bytes sent must be exactly PREPEND and the file (line
 * ends CRLF, as the spool stores them; dot-stuffing is transport, not
 * content). 0, or -1 with ERR (a message without From cannot be signed).
 * Blocking (reads the file): call it off the event loop (writer thread or
 * offload). Thread-safe: each call has its own libopendkim handle.
 */
int dkim_sign_message(const struct dkim_signing_key *key, const char *prepend, int body_fd,
		      char **header_r, char *err, size_t errlen);

/*
 * Makes a new key pair of ALGORITHM (RSA of DKIM_RSA_BITS, or Ed25519) with
 * OpenSSL: *PEM_R is its private key as PKCS#8 PEM (allocated; wipe it with
 * dkim_pem_free). 0, or -1 with ERR.
 */
int dkim_key_generate(enum store_dkim_algorithm algorithm, char **pem_r, char *err, size_t errlen);

/* Wipes and frees a PEM from dkim_key_generate; NULL is fine. */
void dkim_pem_free(char **pem);

/*
 * The value of the DNS TXT record that publishes the public half of
 * PRIVATE_PEM, a key of ALGORITHM: "v=DKIM1; k=rsa; p=BASE64" with the
 * SubjectPublicKeyInfo for RSA (RFC 6376 3.6.1), "v=DKIM1; k=ed25519;
 * p=BASE64" with the raw 32-byte key for Ed25519 (RFC 8463 4.2). *VALUE_R is
 * allocated. 0, or -1 with ERR (the key does not parse or is of another
 * algorithm).
 */
int dkim_record_value(enum store_dkim_algorithm algorithm, const char *private_pem, char **value_r,
		      char *err, size_t errlen);

/*
 * The zone-file line for VALUE at SELECTOR._domainkey.DOMAIN.: the name, "IN
 * TXT" and VALUE as quoted character-strings of at most 255 bytes each (a
 * DNS limit; verifiers join them). Allocated.
 */
char *dkim_record_line(const char *domain, const char *selector, const char *value);

/* The default selector for a key made at time NOW: DKIM_SELECTOR_PREFIX and
 * YYYYMM (UTC), into OUT. */
void dkim_default_selector(char *out, size_t outlen, int64_t now);

#endif
