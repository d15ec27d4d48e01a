/*
 * client.h — popgate as an SMTP client (RFC 5321): one connection to an MX
 * or a relay host, in the event loop, on a connected bufferevent that
 * core/connector handed back (connector_connect with CONNECTOR_TLS_UPGRADE,
 * or CONNECTOR_TLS_IMPLICIT for port 465). The delivery scheduler
 * (smtp/relay_connection.c) drives it: it connects, makes a client, sends one message
 * after the other on it, and quits.
 *
 * The conversation: greeting; EHLO (HELO when EHLO gets a 5yz), its
 * capabilities; STARTTLS by the TLS mode, then EHLO again; AUTH PLAIN (or
 * LOGIN) when credentials are given, only over TLS; then, per message, MAIL
 * FROM (with SIZE= and BODY=8BITMIME when offered, SMTPUTF8 when an address
 * needs it), RCPT TO for each recipient, DATA and the body — MAIL, the
 * RCPTs and DATA in one write with PIPELINING (RFC 2920). A transaction
 * that did not end with the body accepted is closed with RSET, so the
 * connection can carry the next message; one that did needs no RSET.
 *
 * The body is the spool file: the prepended header lines, then the file,
 * dot-stuffed, line ends made CRLF, ended with CRLF "." CRLF; read in chunks
 * under a high-water mark of the output (never the whole body in memory),
 * with preadv2(RWF_NOWAIT) and, when the data is not in the page cache, by
 * an offload thread (core/offload.h): the loop never waits on the disk.
 *
 * Owns: the connection (the bufferevent given to smtp_client_new, and the
 * TLS one that wraps it after STARTTLS), a dup of the body's descriptor
 * while a message is sent, copies of everything it is given.
 * Must never: call a callback before the call that started its step
 * returns; send credentials without TLS; send a command with a CR or LF in
 * an argument; log a password or body bytes.
 *
 * SECURITY: the server is a remote peer. Its replies go through
 * smtp/reply.c, bounded; a malformed or over-long reply ends the
 * connection with an error. After STARTTLS everything read before the
 * handshake is dropped (the connector does), so a reply injected into the
 * plain stream is never read as protected.
 */
#ifndef POPGATE_SMTP_CLIENT_H
#define POPGATE_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "smtp/reply.h"

struct connector;
struct offload;
struct resolver_tlsa;
struct smtp_client;

enum smtp_tls_mode {
	/* Never STARTTLS (nor AUTH: credentials are an error). */
	SMTP_TLS_NONE,
	/* STARTTLS when offered, the certificate not checked; plain when not
	 * offered or refused (a 4yz/5yz to STARTTLS). A handshake that fails
	 * ends the session (the connection is gone): the caller may connect
	 * again with SMTP_TLS_NONE, as RFC 7435 allows. */
	SMTP_TLS_OPPORTUNISTIC,
	/* STARTTLS must be offered and succeed; the certificate not checked. */
	SMTP_TLS_REQUIRED,
	/* STARTTLS must be offered and succeed, the chain verified (CA_FILE or
	 * the system store) and the certificate's name checked against
	 * SERVER_NAME. */
	SMTP_TLS_VERIFIED,
	/* DANE (RFC 7672): STARTTLS must be offered and succeed, the
	 * certificate authenticated by the TLSA records given (DANE-TA or
	 * DANE-EE), SERVER_NAME being their base domain (the MX host). */
	SMTP_TLS_DANE,
};

/* The session's settings; strings are copied by smtp_client_new. */
struct smtp_client_config {
	const char *helo_name;	 /* our host name for EHLO/HELO */
	const char *server_name; /* the server's name: SNI, the VERIFIED check, log lines */
	enum smtp_tls_mode tls_mode;
	const char *ca_file; /* VERIFIED: NULL for the system's CA store */
	/* DANE: the server's usable TLSA records (core/resolver.h), copied. */
	const struct resolver_tlsa *tlsa;
	size_t tlsa_count;
	/* NULL: no AUTH. Else AUTH PLAIN (or LOGIN if PLAIN is not offered)
	 * after STARTTLS; without TLS the session fails rather than send them. */
	const char *auth_user;
	const char *auth_password;
	/* Seconds each reply may take, the connection's read and write
	 * timeouts (RFC 5321 4.5.3.2 suggests 2 to 10 minutes by command; one
	 * value here). Also the silence allowed while the body is written. */
	int timeout_seconds;
	/* Reads of a body not in the page cache; must outlive the client. */
	struct offload *offload;
};

/* What the server offered in its EHLO reply (all false after HELO). */
struct smtp_client_capabilities {
	bool pipelining;
	bool size;	   /* SIZE offered */
	uint64_t size_max; /* its limit, 0 for none given */
	bool eight_bit_mime;
	bool starttls;
	bool smtputf8;
	bool enhanced_status_codes;
	bool auth_plain;
	bool auth_login;
};

/*
 * Called once: the session is ready for messages (REPLY and ERROR NULL:
 * greeting, EHLO, STARTTLS and AUTH done), or it failed: REPLY the
 * server's reply that ended it (a 554 greeting, a refused STARTTLS in
 * REQUIRED mode, a 535 to AUTH), or REPLY NULL and ERROR saying why (the
 * connection closed, a timeout, TLS, a malformed reply, STARTTLS not
 * offered, credentials without TLS). After a failure the caller frees the
 * client (smtp_client_free; smtp_client_quit also fits a refused reply).
 * REPLY and ERROR are valid only during the call.
 */
typedef void smtp_client_ready_cb(struct smtp_client *client, const struct smtp_reply *reply,
				  const char *error, void *ctx);

/*
 * A client for the connection BEV, which CONNECTOR handed back (the client
 * owns BEV from now on, and replaces its callbacks). CONNECTOR upgrades it
 * for STARTTLS and must outlive the client. READY follows, later, from the
 * loop, never from inside this call. NULL, with BEV freed and READY never
 * called, if CONFIG is unusable (no helo_name or server_name, a CR or LF in
 * one, no offload, DANE without TLSA records).
 */
struct smtp_client *smtp_client_new(struct connector *connector, struct bufferevent *bev,
				    const struct smtp_client_config *config,
				    smtp_client_ready_cb *ready, void *ctx);

/* One message to send. The strings and the descriptor need to stay valid
 * only during smtp_client_send: it copies the strings and dups BODY_FD. */
struct smtp_client_message {
	const char *sender; /* "" for the null sender (a DSN) */
	const char *const *recipients;
	size_t recipient_count; /* at least 1 */
	const char *prepend;	/* header lines sent before the body (CRLF-ended); NULL for none */
	int body_fd;		/* the immutable spool body; read from offset 0, never closed */
	uint64_t body_size;	/* its size: exactly this many bytes are sent */
};

/*
 * The outcome of one message, valid only during the SENT call.
 *
 * A recipient was delivered when MAIL's, its RCPT's and DATA's replies are
 * all 2yz. Else its outcome is the first of those that is not 2yz: its
 * class (4yz transient, 5yz permanent) says whether to retry or bounce; a
 * code 0 there (not answered) with ERROR set means the connection failed
 * first: transient, try again. After a refused MAIL the RCPT and DATA
 * replies are not recorded (code 0): a pipelining server answers them with
 * 503s that say nothing about the recipients.
 *
 * A reply made here, not by the server, says so with "(popgate)" at the
 * start of its text: 552 5.3.4 when the message is over the server's SIZE,
 * 553 5.6.7 when an address needs SMTPUTF8 and the server lacks it.
 */
struct smtp_client_result {
	struct smtp_reply mail;	       /* MAIL FROM's reply */
	struct smtp_reply *recipients; /* one per recipient, in order; code 0: not answered */
	size_t recipient_count;
	/* The reply that ended the data phase: to the final dot, or the
	 * refusal of the DATA command itself; code 0 if DATA was not sent (no
	 * recipient accepted) or not answered. */
	struct smtp_reply data;
	/* A connection-level error (closed, timeout, TLS, a malformed reply, the
	 * body could not be read), or NULL. With an error the connection is
	 * dead: smtp_client_reusable is false, and what was not answered may or
	 * may not have reached the server (a body cut before its final dot is
	 * dropped by the server: RFC 5321 4.1.1.4). */
	const char *error;
};

typedef void smtp_client_sent_cb(struct smtp_client *client,
				 const struct smtp_client_result *result, void *ctx);

/*
 * Sends MESSAGE; SENT follows once, later, from the loop. The SENT callback
 * may send the next message on the same client at once (when
 * smtp_client_reusable), or quit or free it. -1, with nothing sent and
 * SENT never called, when the client is not ready (not yet, or not
 * reusable: failed, closed by the server while idle, busy with a message)
 * or MESSAGE is malformed (no recipient, an address with a CR, LF or other
 * control byte, or longer than 1000 bytes).
 */
int smtp_client_send(struct smtp_client *client, const struct smtp_client_message *message,
		     smtp_client_sent_cb *sent, void *ctx);

/* Whether CLIENT is ready and idle: a message may be sent now. */
bool smtp_client_reusable(const struct smtp_client *client);

/* The server's capabilities (once READY said ready), and whether TLS and
 * AUTH are in use, for the log and the tests. */
const struct smtp_client_capabilities *smtp_client_capabilities(const struct smtp_client *client);
bool smtp_client_tls_active(const struct smtp_client *client);
bool smtp_client_authenticated(const struct smtp_client *client);

/* Whether the session failed in the STARTTLS handshake (the certificate,
 * the protocol, the connection dropped during it): an OPPORTUNISTIC caller
 * may then connect again with SMTP_TLS_NONE, as RFC 7435 allows. */
bool smtp_client_tls_failed(const struct smtp_client *client);

/* Why that handshake refused the server's certificate, as OpenSSL's
 * verify result (X509_V_ERR_DANE_NO_MATCH: no TLSA record matched it,
 * X509_V_ERR_HOSTNAME_MISMATCH, ...); X509_V_OK when it did not fail on
 * the certificate (the connection or the protocol failed). */
long smtp_client_tls_verify_result(const struct smtp_client *client);

/*
 * Called once the session QUIT began has ended: the server answered QUIT,
 * closed, or did not answer within timeout_seconds. CLIENT is freed right
 * after this returns.
 */
typedef void smtp_client_closed_cb(struct smtp_client *client, void *ctx);

/*
 * Ends the session politely: QUIT when the connection is idle and alive,
 * its reply awaited (at most timeout_seconds), then CLOSED (may be NULL)
 * from the loop, and the client frees itself. A client that is not idle
 * (failed, closed, busy with a message) is closed at once, CLOSED still
 * following from the loop. No ready or sent callback runs any more. Until
 * CLOSED the caller still holds CLIENT and may smtp_client_free it (at
 * shutdown: then CLOSED is never called); with CLOSED NULL it must not use
 * CLIENT any more, and the loop must go on until the client is gone. Safe
 * inside the client's own callbacks. NULL is fine.
 */
void smtp_client_quit(struct smtp_client *client, smtp_client_closed_cb *closed, void *ctx);

/* Frees the client and closes its connection at once; no callback runs
 * any more. NULL is fine; sets *CLIENT_P to NULL. Safe inside the
 * client's own callbacks. */
void smtp_client_free(struct smtp_client **client_p);

/*
 * The body's encoding, exposed for the tests: dot-stuffing (RFC 5321
 * 4.5.2), and line ends made CRLF (a bare LF and a lone CR both end a
 * line), carried across chunks.
 */
struct smtp_dot_encoder {
	bool line_start; /* the next byte begins a line */
	bool after_cr;	 /* the last byte was a CR */
};

void smtp_dot_encoder_init(struct smtp_dot_encoder *encoder);

/* Encodes IN[0..LEN) into OUT, which has room for 2 * LEN + 1 bytes; returns the
 * bytes written. */
size_t smtp_dot_encode(struct smtp_dot_encoder *encoder, const char *in, size_t len, char *out);

/* Ends the body: a CRLF if the last line lacks one, then ".\r\n". OUT has
 * room for 5 bytes; returns the bytes written. */
size_t smtp_dot_encoder_finish(struct smtp_dot_encoder *encoder, char *out);

#endif
