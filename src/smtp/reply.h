/*
 * reply.h — the replies of an SMTP server (RFC 5321 4.2), read incrementally:
 * the outbound client (smtp/client.c) feeds the bytes as they arrive, split
 * anywhere, and gets each complete reply: its three-digit code, its enhanced
 * status code (RFC 3463, announced by ENHANCEDSTATUSCODES, RFC 2034) and its
 * text lines.
 *
 * The grammar taken:
 *   reply = *( code "-" text EOL ) code [ " " text ] EOL
 *   code  = %x32-35 %x30-35 DIGIT   (2yz to 5yz; 1yz is not used by SMTP)
 *   EOL   = CRLF, or a bare LF: a server that ends lines with LF alone is
 *           understood (its meaning is plain, and refusing it would only
 *           stall mail); a CR not followed by LF is an error, as is a NUL.
 * Every line of a multi-line reply carries the same code: mixed codes are an
 * error. "250" alone on a line (no space, no text) is a final line.
 *
 * Limits: a line of at most SMTP_REPLY_LINE_MAX bytes before its EOL (RFC
 * 5321 4.5.3.1.5 says 512 with the CRLF; servers send longer ones, so the
 * limit is generous), at most SMTP_REPLY_LINES_MAX lines in one reply, at
 * most SMTP_REPLY_TEXT_MAX bytes of text in one reply.
 *
 * Pure code: no event loop, no store, no log. After an error the parser
 * stays failed (the connection's byte stream can no longer be trusted).
 *
 * SECURITY: the bytes come from a remote server. The text is kept as sent
 * (bytes 0x01-0xff but CR and LF); whoever logs or shows it sanitises it
 * first (smtp_reply_format does).
 */
#ifndef POPGATE_SMTP_REPLY_H
#define POPGATE_SMTP_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#define SMTP_REPLY_LINE_MAX 2048
#define SMTP_REPLY_LINES_MAX 200
#define SMTP_REPLY_TEXT_MAX 65536

/* One complete reply. */
struct smtp_reply {
	int code;	   /* 200..559; 0 for "no reply" (e.g. a command never sent) */
	char enhanced[16]; /* "5.1.1": the first line's enhanced status code, or "" */
	/*
	 * The lines' text after "NNN-" / "NNN ", joined with "\n" (no EOL after
	 * the last); on each line that begins with the reply's enhanced code,
	 * that code and the space after it are taken off. Allocated, never NULL
	 * for a parsed reply; freed by smtp_reply_clear.
	 */
	char *text;
	size_t line_count;
};

struct smtp_reply_parser {
	/* The reply being read. */
	int code;	    /* of its first line; 0 before the first digit */
	int line_code;	    /* the digits of the current line so far */
	size_t line_length; /* bytes of the current line so far, the code included */
	size_t line_count;  /* lines of the reply completed */
	size_t line_start;  /* offset of the current line's text in TEXT */
	bool last_line;	    /* the current line had "NNN " or "NNN" EOL: it ends the reply */
	bool after_cr;	    /* a CR was read: only a LF may follow */
	char enhanced[16];
	char *text; /* the reply's text so far, NUL-ended */
	size_t text_length;
	size_t text_capacity;
	/* Set once the input broke the grammar or a limit; sticky. */
	const char *error;
};

void smtp_reply_parser_init(struct smtp_reply_parser *parser);

/* Frees what PARSER holds (a reply in progress); it may be inited again. */
void smtp_reply_parser_clear(struct smtp_reply_parser *parser);

/*
 * Reads DATA[0..LEN) until the end of one reply.
 *   1: REPLY holds the reply (the caller clears it); *USED bytes were taken,
 *      the rest belongs to the next reply: feed it again.
 *   0: all LEN bytes were taken (*USED = LEN), the reply is not complete yet.
 *  -1: the bytes break the grammar or a limit: PARSER->error says how (a
 *      static string); every later call returns -1 too.
 * Feeding the same bytes in any split gives the same replies and the same
 * error at the same place.
 */
int smtp_reply_parser_feed(struct smtp_reply_parser *parser, const char *data, size_t len,
			   size_t *used, struct smtp_reply *reply);

/* Frees REPLY's text and zeroes it. */
void smtp_reply_clear(struct smtp_reply *reply);

/* Copies SOURCE into TARGET (its own text). TARGET is overwritten, not cleared. */
void smtp_reply_copy(struct smtp_reply *target, const struct smtp_reply *source);

/*
 * REPLY as one printable line for a log or a stored last reply:
 * "550 5.1.1 first line / second line", control and non-ASCII bytes as '?',
 * cut to fit OUTLEN. "" for code 0.
 */
void smtp_reply_format(const struct smtp_reply *reply, char *out, size_t outlen);

/* Class tests: 2yz, 3yz, 4yz, 5yz. */
static inline bool smtp_reply_positive(const struct smtp_reply *reply)
{
	return reply->code >= 200 && reply->code < 300;
}
static inline bool smtp_reply_intermediate(const struct smtp_reply *reply)
{
	return reply->code >= 300 && reply->code < 400;
}
static inline bool smtp_reply_transient(const struct smtp_reply *reply)
{
	return reply->code >= 400 && reply->code < 500;
}
static inline bool smtp_reply_permanent(const struct smtp_reply *reply)
{
	return reply->code >= 500 && reply->code < 600;
}

#endif
