/*
 * dsn.h — delivery status notifications (RFC 3464): the report a sender gets
 * when the relay gives up on one or more recipients of a message.
 *
 * A DSN is multipart/report; report-type=delivery-status: a text part for
 * people, a message/delivery-status part (Reporting-MTA, per recipient
 * Final-Recipient, Action: failed, Status, Diagnostic-Code from the remote
 * server's last reply) and the original message's header as
 * text/rfc822-headers (never its body). It goes to the envelope sender —
 * never to the null sender <>, and its own envelope sender is <> (RFC 5321
 * 4.5.5), so DSNs cannot loop.
 */
#ifndef POPGATE_SMTP_DSN_H
#define POPGATE_SMTP_DSN_H

#include <stddef.h>
#include <stdint.h>

/* The header of the original a DSN carries, at most (the rest is cut). */
#define DSN_HEADERS_MAX 65536

struct dsn_recipient {
	const char *address;
	const char *last_reply; /* "550 5.1.1 no such user", or why no reply ("" if none) */
	int64_t last_attempt_at;
};

struct dsn_input {
	const char *reporting_mta; /* our host name */
	const char *sender;	   /* the original's envelope sender: the DSN's To */
	const char *original_id;   /* the original's message id (ours) */
	int64_t arrival;	   /* when the original arrived */
	int64_t now;
	const char *headers; /* the original's header, CRLF lines; may be "" */
	const struct dsn_recipient *recipients;
	size_t count;
};

/* The DSN's whole text (CRLF lines; allocated, the caller frees) and its
 * length in *LEN_R. */
char *dsn_build(const struct dsn_input *in, size_t *len_r);

/*
 * The Status field for a recipient whose last reply was LAST_REPLY: its
 * enhanced code when it has one ("5.1.1"), else 5.0.0 for a 5xx reply and
 * 4.4.7 (delivery time expired) otherwise. Into OUT (16 bytes).
 */
void dsn_status(const char *last_reply, char out[16]);

/*
 * The header of message ID in DATA_DIR's spool, PREPEND (the header lines
 * popgate prepends) first, up to the empty line, at most DSN_HEADERS_MAX
 * bytes: *HEADERS_R (allocated). 0, or -1 when the body cannot be read.
 */
int dsn_read_headers(const char *data_dir, const char *id, const char *prepend, char **headers_r);

#endif
