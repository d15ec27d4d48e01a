/*
 * headers.h — the sender and recipient addresses of a message, read from its
 * header block (U4 collective mailboxes, U5 sent mail): the first From, and
 * the recipients in the order of trust Delivered-To, X-Original-To,
 * Envelope-To, then To and Cc.
 *
 * The parser is fed the message in pieces of any size and stops at the
 * first empty line or after HEADERS_MAX_BYTES. It allocates nothing: the
 * caller provides the (large) struct, and the results point into it.
 * Addresses come out lowercased, deduplicated, at most HEADERS_RECIPIENTS_MAX,
 * each at most HEADERS_ADDRESS_MAX characters and shaped local@domain
 * (dot-atom local part, domain of letters, digits, '-' and '.'); anything
 * else is dropped, never guessed at.
 *
 * SECURITY: the input is hostile message content. It needs nothing but libc,
 * so it can be fuzzed on its own.
 */
#ifndef POPGATE_PIPELINE_HEADERS_H
#define POPGATE_PIPELINE_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

#define HEADERS_MAX_BYTES (256 * 1024)
#define HEADERS_RECIPIENTS_MAX 64
#define HEADERS_ADDRESS_MAX 254
/* The longest unfolded field that is parsed; a longer one is ignored whole,
 * since a cut address could name someone else. */
#define HEADERS_FIELD_MAX 65536

/* The recipient fields, most trusted first. */
enum headers_class {
	HEADERS_DELIVERED_TO,
	HEADERS_X_ORIGINAL_TO,
	HEADERS_ENVELOPE_TO,
	HEADERS_TO_CC,
	HEADERS_CLASS_COUNT,
};

struct headers_list {
	size_t count;
	char address[HEADERS_RECIPIENTS_MAX][HEADERS_ADDRESS_MAX + 1];
};

/* Opaque in spirit: only the headers_ functions look inside. */
struct headers_parser {
	size_t seen;	     /* header bytes consumed so far */
	bool done;	     /* the header block is over */
	bool at_line_start;  /* the next byte starts a physical line */
	bool field_overflow; /* the current field outgrew FIELD */
	bool have_from;
	size_t field_len;
	char sender[HEADERS_ADDRESS_MAX + 1];
	struct headers_list lists[HEADERS_CLASS_COUNT];
	const char *recipients[HEADERS_RECIPIENTS_MAX];
	size_t recipient_count;
	char field[HEADERS_FIELD_MAX];
};

/* Makes *PARSER ready for a new message. */
void headers_init(struct headers_parser *parser);

/* Feeds the next LEN bytes of the message. Returns true once the header
 * block is over (the bytes after it, and any later calls, are ignored). */
bool headers_feed(struct headers_parser *parser, const char *data, size_t len);

/* Ends the input (the end of the message also ends its header) and fills in
 * the results: *SENDER_R is the sender or NULL, *RECIPIENTS_R the recipients
 * in the order of trust; both point into PARSER. Returns the recipient count. */
size_t headers_finish(struct headers_parser *parser, const char **sender_r,
		      const char *const **recipients_r);

/* True if ADDRESS (NUL-terminated) is an address the parser could return. */
bool headers_address_valid(const char *address);

#endif
