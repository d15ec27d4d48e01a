/*
 * parse.h — POP3 on the wire, both directions: client command lines (RFC 1939,
 * 2449, 2595, 5034), provider reply lines, UIDL/LIST listing lines, and the
 * multi-line dot-stuffing codec.
 *
 * SECURITY: every byte here comes from the network (a mail client or a
 * provider) and is untrusted. These functions never allocate, never read past
 * LEN, and reject rather than guess. They are the fuzz targets in tests/fuzz/.
 */
#ifndef POPGATE_POP3_PARSE_H
#define POPGATE_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pop3_verb {
	POP3_VERB_UNKNOWN = 0,
	POP3_VERB_USER,
	POP3_VERB_PASS,
	POP3_VERB_STAT,
	POP3_VERB_LIST,
	POP3_VERB_UIDL,
	POP3_VERB_RETR,
	POP3_VERB_TOP,
	POP3_VERB_DELE,
	POP3_VERB_RSET,
	POP3_VERB_NOOP,
	POP3_VERB_QUIT,
	POP3_VERB_CAPA,
	POP3_VERB_STLS,
	POP3_VERB_AUTH,
	POP3_VERB_APOP,
	POP3_VERB_COUNT
};

/* Upper-case name of VERB ("RETR"); "" for UNKNOWN. */
const char *pop3_verb_name(enum pop3_verb verb);

#define POP3_ARG_MAX 2

/* Longest USER and PASS argument accepted (bytes); a buffer of _MAX + 1 holds one. */
#define POP3_USER_MAX 255
#define POP3_PASS_MAX 255

/*
 * A parsed command. ARGS point into the caller's LINE (not NUL-terminated;
 * use ARG_LEN). For USER, PASS and AUTH's initial response the argument is the
 * rest of the line after one space (passwords may contain spaces).
 * NUMBERS holds the numeric arguments of LIST/UIDL/RETR/TOP/DELE (1-based
 * message numbers; TOP's line count may be 0); HAS_NUMBER says if LIST/UIDL
 * had one.
 */
struct pop3_command {
	enum pop3_verb verb;
	size_t arg_count;
	const char *args[POP3_ARG_MAX];
	size_t arg_len[POP3_ARG_MAX];
	uint32_t numbers[POP3_ARG_MAX];
	bool has_number;
};

/*
 * Parses one command LINE of LEN bytes, without its CRLF. Returns 0, or -1
 * with *ERROR_R set to a static text for the -ERR reply ("unknown command",
 * "missing argument", "too many arguments", "invalid message number", …).
 * The verb is recognised case-insensitively. NUL, CR and LF are refused
 * anywhere, other control characters everywhere but in PASS's argument.
 * Message numbers are 1..2^31-1, TOP's line count 0..2^31-1.
 */
int pop3_command_parse(const char *line, size_t len, struct pop3_command *cmd,
		       const char **error_r);

/* A provider's status line: "+OK text", "-ERR [CODE] text". */
struct pop3_reply {
	bool ok;
	char code[32];	  /* RFC 2449 response code without brackets, "" if none */
	const char *text; /* points into the line */
	size_t text_len;
};

/* Parses a status LINE (without CRLF). 0, or -1 if it is neither +OK nor -ERR. */
int pop3_reply_parse(const char *line, size_t len, struct pop3_reply *reply);

/* True if LINE (without CRLF) is the terminating "." of a multi-line reply. */
bool pop3_is_terminator(const char *line, size_t len);

#define POP3_UIDL_MAX 70 /* RFC 1939: 1 to 70 characters 0x21..0x7E */

/* "N UIDL" from a UIDL listing. 0, or -1 if malformed. UIDL gets a NUL. */
int pop3_parse_uidl_line(const char *line, size_t len, uint32_t *number,
			 char uidl[POP3_UIDL_MAX + 1]);

/* "N SIZE" from a LIST listing. 0 or -1. */
int pop3_parse_list_line(const char *line, size_t len, uint32_t *number, uint64_t *size);

/*
 * Streaming decoder for a multi-line reply body (after the +OK line): removes
 * dot-stuffing and finds the terminating ".CRLF" (a bare-LF "." line too).
 * Line endings are passed through as received.
 */
struct pop3_dot_decoder {
	int state; /* private */
	bool done;
};

void pop3_dot_decoder_init(struct pop3_dot_decoder *decoder);

/*
 * Feeds IN[0..LEN). Decoded bytes go to OUT (may be called several times).
 * Returns how many input bytes were consumed: fewer than LEN only when the
 * terminator was found (decoder->done), and the rest belongs to the next reply.
 */
size_t pop3_dot_decode(struct pop3_dot_decoder *decoder, const char *in, size_t len,
		       void (*out)(void *ctx, const char *data, size_t len), void *ctx);

/*
 * Streaming encoder for serving a message: doubles a leading dot on each line,
 * and for TOP stops after the header and BODY_LINES body lines. The caller
 * writes the terminator with pop3_dot_encoder_finish.
 */
struct pop3_dot_encoder {
	bool at_line_start;
	bool in_body;	  /* past the empty line that ends the header */
	bool limit_lines; /* TOP */
	uint32_t body_lines_left;
	bool stopped; /* TOP reached its limit: ignore further input */
	bool last_was_cr;
	bool header_line_empty; /* private: the current header line has no bytes yet */
};

void pop3_dot_encoder_init(struct pop3_dot_encoder *encoder, bool limit_lines, uint32_t body_lines);

/* Encodes IN[0..LEN) through OUT. */
void pop3_dot_encode(struct pop3_dot_encoder *encoder, const char *in, size_t len,
		     void (*out)(void *ctx, const char *data, size_t len), void *ctx);

/* Emits a CRLF if the last line was not ended, then ".\r\n". */
void pop3_dot_encoder_finish(struct pop3_dot_encoder *encoder,
			     void (*out)(void *ctx, const char *data, size_t len), void *ctx);

/*
 * Splits an account name at its last '@' (P1) and checks it: LOGIN non-empty,
 * HOST a host name (RFC 1123 labels: letters, digits, hyphens, dots, at most
 * 253 characters). Writes NUL-terminated copies into LOGIN and HOST (sizes
 * LOGIN_SIZE, HOST_SIZE; HOST lowercased). 0, or -1 if malformed.
 */
int pop3_account_name_split(const char *name, size_t len, char *login, size_t login_size,
			    char *host, size_t host_size);

/* Decodes an AUTH PLAIN response (base64 "authzid\0authcid\0passwd").
 * AUTHCID and PASSWD NUL-terminated into the buffers. 0, or -1 when it is
 * malformed: not padded base64, an empty authcid or password, an authzid
 * other than the authcid, or a CR, LF or NUL inside any of the three fields
 * (they would smuggle commands into the PASS line sent to the provider). */
int pop3_auth_plain_decode(const char *b64, size_t len, char *authcid, size_t authcid_size,
			   char *passwd, size_t passwd_size);

#endif
