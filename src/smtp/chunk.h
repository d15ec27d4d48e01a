/*
 * chunk.h — a message body as CHUNKING's BDAT commands bring it (RFC 3030):
 * counted runs of octets, taken as they are (no dot-unstuffing, no end
 * marker), except that line ends are made CR LF as DATA's are (spool.h:
 * stored bodies have only CR LF line ends; a bare LF or a lone CR becomes
 * CR LF), whatever chunk or piece boundary falls between a CR and its LF.
 * A last line without a line end gets CR LF at the end of the body.
 *
 * Two layers. smtp_chunk_normalise/_finish are pure (the fuzz target
 * tests/fuzz/fuzz_smtp_chunk.c runs them on any bytes split anywhere): they
 * make the line ends and watch the lines go by, for the limits DATA has
 * too: the text line length and the header's Received fields (a loop).
 * smtp_chunk_store/_end put the result into DATA's smtp_data (its spool
 * body, size limit and outcome), so the end of a BDAT body is judged and
 * stored exactly as DATA's is.
 *
 * Owns: a buffer for the normalised bytes. BINARYMIME is not offered: the
 * octets are text, and their line ends are made CR LF.
 */
#ifndef POPGATE_SMTP_CHUNK_H
#define POPGATE_SMTP_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/spool.h"

struct smtp_data;

/* The first bytes of a line that tell a Received field. */
#define SMTP_CHUNK_HEAD 9

struct smtp_chunk {
	struct spool_crlf crlf;	    /* a CR passed on, its LF not yet seen */
	uint64_t line_len;	    /* bytes of the current line, without its end */
	uint64_t longest_line;	    /* longest line so far, with its CR LF */
	char head[SMTP_CHUNK_HEAD]; /* the current line's first bytes */
	bool past_header;	    /* the empty line that ends the header came */
	unsigned received_count;    /* Received fields in the header */
	char *buffer;		    /* for smtp_chunk_store */
	size_t buffer_size;
};

/* Room smtp_chunk_normalise needs in OUT for LEN bytes, and
 * smtp_chunk_finish always. */
#define SMTP_CHUNK_OUT_SIZE(len) (2 * (len) + 1)
#define SMTP_CHUNK_FINISH_SIZE 2

void smtp_chunk_init(struct smtp_chunk *chunk);

/* Normalises IN[0..LEN) into OUT (SMTP_CHUNK_OUT_SIZE(LEN) bytes) and
 * watches its lines; returns the bytes written. */
size_t smtp_chunk_normalise(struct smtp_chunk *chunk, const char *in, size_t len, char *out);

/* Ends the body: a CR left last gets its LF, a last line without a line
 * end its CR LF. Returns the bytes (0 to 2) written to OUT. */
size_t smtp_chunk_finish(struct smtp_chunk *chunk, char *out);

/* A chunk of SIZE octets comes next. Stored, it is at least that long: if
 * that passes DATA's size limit the body is marked too big at once, and the
 * octets are dropped as they come instead of written. */
void smtp_chunk_expect(struct smtp_data *data, uint64_t size);

/*
 * Stores IN[0..LEN) into DATA's body (smtp_data_begin made it), within its
 * size limit; lines over MAX_LINE bytes with their CR LF, or too many
 * Received fields, are marked in DATA as DATA's lines would be, so
 * smtp_data_outcome says what came of the body. Past a limit nothing more
 * is stored: the rest is read and dropped.
 */
void smtp_chunk_store(struct smtp_chunk *chunk, struct smtp_data *data, const char *in, size_t len,
		      size_t max_line);

/* The last chunk came: finishes the body in DATA (see smtp_chunk_finish). */
void smtp_chunk_end(struct smtp_chunk *chunk, struct smtp_data *data, size_t max_line);

/* Frees the buffer; the struct is as smtp_chunk_init leaves it. */
void smtp_chunk_clear(struct smtp_chunk *chunk);

#endif
