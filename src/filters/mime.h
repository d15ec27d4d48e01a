/*
 * mime.h — a message taken apart with GMime 3 into what content filters
 * read: the header values decoded to UTF-8 (encoded words, charsets), the
 * text of the text parts (transfer encodings undone, charsets converted to
 * UTF-8, HTML turned into text), the link URLs of the text and HTML, the
 * attachment names and the content types of the parts; or, for the
 * attachments filter, each leaf part with its decoded body
 * (mime_parse_leaves).
 *
 * Every dimension is bounded (parts, depth, text, URLs, names): what goes
 * beyond is left out and the message is marked truncated, never refused.
 *
 * Call mime_init once before parsing (in a worker: in the filter's init,
 * before it confines itself, because GMime and iconv load what they need by
 * name then; see mime.c).
 */
#ifndef POPGATE_FILTERS_MIME_H
#define POPGATE_FILTERS_MIME_H

#include <stdbool.h>
#include <stddef.h>

/* MIME parts looked at (leaves and containers together). */
#define MIME_PARTS_MAX 64
/* Nesting of multiparts and attached messages. */
#define MIME_DEPTH_MAX 8
/* Bytes of the message given to the parser; the rest is not looked at. */
#define MIME_INPUT_MAX (4UL * 1024 * 1024)
/* Bytes of decoded text kept, all parts together. */
#define MIME_TEXT_MAX (1UL * 1024 * 1024)
/* Top-level header fields kept, and bytes of one decoded value. */
#define MIME_HEADERS_MAX 128
#define MIME_HEADER_VALUE_MAX 4096
/* Link URLs kept (distinct), and attachment names. */
#define MIME_URLS_MAX 256
#define MIME_NAMES_MAX 32

/* A growable list of strings (each NUL-terminated, owned by the list). */
struct mime_list {
	char **items;
	size_t count;
	size_t capacity;
};

struct mime_header {
	char *name;  /* as written ("Subject") */
	char *value; /* unfolded, encoded words decoded, UTF-8 */
};

struct mime_message {
	/* The top-level header fields, in order. */
	struct mime_header *headers;
	size_t header_count;
	/* The text of every text part (HTML as text), UTF-8, parts separated
	 * by a newline; NUL-terminated. */
	char *text;
	size_t text_len;
	/* Link URLs from the text and from HTML attributes, distinct. */
	struct mime_list urls;
	/* File names of the parts that have one (attachments mostly). */
	struct mime_list names;
	/* The content type ("text/html") of every part, in order. */
	struct mime_list types;
	size_t part_count;
	bool truncated; /* a limit left something out */
};

/* Initialises GMime and the charset converters. Idempotent. */
void mime_init(void);

/* The name to give iconv_open for CHARSET (any spelling GMime knows) when
 * it is one whose converter mime_init loaded, so that converting from it
 * works alike in a confined worker and elsewhere; else NULL. */
const char *mime_charset_loaded(const char *charset);

/*
 * Parses the message DATA (LEN bytes, CRLF or LF lines, an mbox "From "
 * line first or not) into *MESSAGE, which the caller frees with
 * mime_message_free. Never fails: what cannot be parsed is left empty.
 */
void mime_parse(const char *data, size_t len, struct mime_message *message);

/* One leaf part of a message (not a multipart, not an attached message),
 * as mime_parse_leaves hands it over; valid during the call only. */
struct mime_leaf {
	const char *filename;	   /* decoded (RFC 2231, encoded words), UTF-8, or NULL */
	const char *type;	   /* "application/pdf"; a part without one is octet-stream */
	const unsigned char *data; /* the body, transfer encoding undone */
	size_t len;
};

typedef void mime_leaf_fn(const struct mime_leaf *leaf, void *arg);

/*
 * Parses DATA (LEN bytes) as mime_parse does and calls FN with ARG for each
 * leaf part, attached messages' parts included, in order, within the part
 * and depth bounds. True, or false when a bound left something out.
 */
bool mime_parse_leaves(const char *data, size_t len, mime_leaf_fn *fn, void *arg);

/* Frees what *MESSAGE holds and zeroes it; a zeroed message is fine. */
void mime_message_free(struct mime_message *message);

/* The decoded value of MESSAGE's first header field NAME (any case), or NULL. */
const char *mime_header_find(const struct mime_message *message, const char *name);

/* Appends a copy of S (LEN bytes) to LIST unless it holds it already or has
 * MAX items (then false). */
bool mime_list_add(struct mime_list *list, const char *s, size_t len, size_t max);

void mime_list_free(struct mime_list *list);

#endif
