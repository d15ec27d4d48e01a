/*
 * data.h — a message body as SMTP's DATA brings it (RFC 5321 4.1.1.4,
 * 4.5.2): line by line, a leading dot removed (dot-unstuffing), "." alone
 * ending it, each line stored with CR LF whatever end it came with (a bare
 * LF is taken, as mail clients send them), into a spool body
 * (store/spool.h) that the writer thread makes durable later.
 *
 * Limits: the message size (counted as stored), the text line length (the
 * line framer's) and the Received header fields in the header (RFC 5321
 * 6.3: a message that went through SMTP_DATA_MAX_RECEIVED hops is in a
 * loop). Over any, the rest of the body is read and dropped so the session
 * stays in step, and the end says why it is refused.
 *
 * Owns: the spool writer until it is taken (smtp_data_take_body) and a
 * buffer for line-end normalising. Never parses the content.
 */
#ifndef POPGATE_SMTP_DATA_H
#define POPGATE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool_writer;

/* Received header fields that make a message a loop (RFC 5321 6.3 names
 * 100 as a simple and safe count). */
#define SMTP_DATA_MAX_RECEIVED 100

/* How the body ended, once "." came. */
enum smtp_data_outcome {
	SMTP_DATA_OK,		 /* complete: take the body */
	SMTP_DATA_TOO_BIG,	 /* over the size limit: 552 5.3.4 */
	SMTP_DATA_LINE_TOO_LONG, /* a line over the limit: 550 5.6.0 */
	SMTP_DATA_LOOP,		 /* too many Received fields: 554 5.4.6 */
	SMTP_DATA_WRITE_FAILED,	 /* the spool file could not be written: 451 4.3.0 */
};

struct smtp_data {
	struct spool_writer *body;
	uint64_t size;	/* bytes stored so far */
	uint64_t limit; /* most bytes stored */
	bool too_big;
	bool line_too_long;
	bool past_header;	 /* the empty line that ends the header came */
	unsigned received_count; /* Received fields in the header */
	char *buffer;		 /* for spool_crlf_normalise */
	size_t buffer_size;
};

/* Starts a body in DATA_DIR's spool, of at most LIMIT bytes. 0, or -1 with
 * errno (no spool file could be made). */
int smtp_data_begin(struct smtp_data *data, const char *data_dir, uint64_t limit);

/* One line of the body, without its line end. True when it was the "."
 * that ends the body. */
bool smtp_data_line(struct smtp_data *data, const char *line, size_t len);

/* A line over the framer's limit went by (its bytes were dropped). */
void smtp_data_line_too_long(struct smtp_data *data);

/* After the end: what came of it. */
enum smtp_data_outcome smtp_data_outcome(const struct smtp_data *data);

/* Hands over the spool body (the caller commits or frees it). */
struct spool_writer *smtp_data_take_body(struct smtp_data *data);

/* Frees what is left (a body not taken is removed); the struct is zeroed. */
void smtp_data_clear(struct smtp_data *data);

#endif
