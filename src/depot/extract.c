/*
 * extract.c — depot_extract (depot.h): what MailDepot indexes of a message
 * (sender, recipients, subject, date, message id, attachment names, and the
 * text full-text search reads), taken from the raw message with GMime 3.
 *
 * Owns: nothing between calls (each extraction builds and frees its own
 * state). Must never: read past MIME_INPUT_MAX bytes of the message or a
 * bound of depot.h, decompress from an archive without counting, hand out
 * text that is not valid UTF-8, or depend on anything but the message's
 * bytes: the same bytes always give the same fields (a worker extracts
 * when a message is archived, popgatectl again when it expires, to remove
 * exactly the full-text rows it added).
 *
 * SECURITY: the message is hostile. GMime does the MIME work (the
 * boundaries, transfer encodings, RFC 2231 file names, address lists), as
 * in filters/mime.c; this file walks the tree with bounded depth and part
 * count, decodes the encoded words (RFC 2047) of the header values it
 * keeps and converts charsets itself, with only the converters mime_init
 * loaded (so a confined worker and popgatectl convert alike: GMime would
 * convert with any converter it can load, which differs; any other
 * charset's bytes are kept where they are UTF-8 and replaced where not),
 * and reads office documents (zip) from memory with libarchive, within a
 * decompression budget per message and a ratio per attachment.
 */
#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <archive.h>
#include <archive_entry.h>
#include <gmime/gmime.h>

#include "core/util.h"
#include "depot/depot.h"
#include "filters/mime.h"
#include "filters/uri.h"

/* Bytes decompressed from office documents per message, and per
 * attachment at most this many times its own size (a zip bomb's ratio is
 * far beyond it, a document's well within). */
#define EXTRACT_ARCHIVE_BYTES_MAX (10UL * 1024 * 1024)
#define EXTRACT_ARCHIVE_RATIO_MAX 100
/* Zip entries looked at per document for the one holding its text. */
#define EXTRACT_ARCHIVE_ENTRIES_MAX 1000
/* Nesting of address groups followed. */
#define EXTRACT_GROUP_DEPTH_MAX 2
/* Latest date kept: 9999-12-31T23:59:59Z (as the worker protocol's). */
#define EXTRACT_DATE_MAX INT64_C(253402300799)

/* A bounded text being built: valid UTF-8, NUL-terminated. */
struct extract_text {
	char *buf;
	size_t len;
	size_t capacity; /* bytes allocated, the NUL's included */
	size_t max;
};

struct extract_state {
	struct depot_fields *fields;
	GHashTable *recipients_seen; /* the recipients' strings (owned by fields) */
	struct extract_text body;
	struct extract_text attachment_text;
	struct extract_text headers;
	size_t parts;
	size_t archive_bytes;
};

/* ---- text ----------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at S (LEN bytes left), or 0. */
static size_t extract_utf8_length(const unsigned char *s, size_t len)
{
	uint32_t cp;
	size_t n;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and beyond U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Appends DATA (LEN bytes, any bytes) to TEXT as valid UTF-8: an invalid
 * byte becomes U+FFFD, a control character a space (with MULTILINE, tab and
 * newline stay; a CR is dropped). What does not fit TEXT's bound is left
 * out, never half a character. False once TEXT is full.
 */
static bool extract_append(struct extract_text *text, const char *data, size_t len, bool multiline)
{
	const unsigned char *s = (const unsigned char *)data;
	size_t i = 0;

	if (text->buf == NULL) {
		text->capacity = 64;
		text->buf = xcalloc(1, text->capacity);
	}
	while (i < len) {
		size_t n = extract_utf8_length(s + i, len - i);
		const char *put = (const char *)s + i;
		size_t put_len = n;

		if (n == 0) {
			put = "\xef\xbf\xbd";
			put_len = 3;
			n = 1;
		} else if (n == 1 && (s[i] < 0x20 || s[i] == 0x7f)) {
			if (s[i] == '\r') {
				i++;
				continue;
			}
			put = multiline && (s[i] == '\n' || s[i] == '\t') ? put : " ";
		}
		if (put_len > text->max - text->len)
			return false;
		if (text->len + put_len + 1 > text->capacity) {
			text->capacity *= 2;
			if (text->capacity > text->max + 1)
				text->capacity = text->max + 1;
			text->buf = xrealloc(text->buf, text->capacity);
		}
		memcpy(text->buf + text->len, put, put_len);
		text->len += put_len;
		text->buf[text->len] = '\0';
		i += n;
	}
	return text->len < text->max;
}

/* Ends TEXT's last line, if it has one not ended yet. False once TEXT is
 * full. */
static bool extract_line_end(struct extract_text *text)
{
	if (text->len == 0 || text->buf[text->len - 1] == '\n')
		return text->len < text->max;
	return extract_append(text, "\n", 1, true);
}

/* A one-line value: DATA (LEN bytes) as valid UTF-8, controls as spaces,
 * outer spaces trimmed, at most MAX bytes; NULL when nothing is left. */
static char *extract_line(const char *data, size_t len, size_t max)
{
	struct extract_text text = {.max = max};
	size_t start = 0;

	extract_append(&text, data, len, false);
	while (start < text.len && text.buf[start] == ' ')
		start++;
	while (text.len > start && text.buf[text.len - 1] == ' ')
		text.buf[--text.len] = '\0';
	if (text.len == start) {
		free(text.buf);
		return NULL;
	}
	memmove(text.buf, text.buf + start, text.len - start + 1);
	return text.buf;
}

/*
 * Converts DATA (LEN bytes) in CHARSET (NULL: unknown) to UTF-8 and
 * appends it to TEXT. Only a charset whose converter mime_init loaded is
 * converted (see the top of the file); the bytes of any other, or of one
 * a converter refuses, are appended as they are (extract_append keeps the
 * valid UTF-8 among them).
 */
static void extract_append_charset(struct extract_text *text, const char *data, size_t len,
				   const char *charset, bool multiline)
{
	const char *loaded = charset != NULL ? mime_charset_loaded(charset) : NULL;
	char out[8192];
	iconv_t cd;
	char *in = (char *)data;
	size_t in_left = len;

	if (loaded == NULL || (cd = iconv_open("UTF-8", loaded)) == (iconv_t)-1) {
		extract_append(text, data, len, multiline);
		return;
	}
	while (in_left > 0) {
		char *o = out;
		size_t out_left = sizeof(out);
		size_t rc = iconv(cd, &in, &in_left, &o, &out_left);
		bool full = !extract_append(text, out, sizeof(out) - out_left, multiline);

		if (full)
			break;
		if (rc == (size_t)-1 && errno != E2BIG) {
			/* A byte the charset does not have, or one cut short at the end. */
			if (!extract_append(text, "\xef\xbf\xbd", 3, multiline))
				break;
			in++;
			in_left--;
			iconv(cd, NULL, NULL, NULL, NULL);
		}
	}
	iconv_close(cd);
}

/* ---- header values ---------------------------------------------------------- */

/* A header value's bytes looked at, at most. */
#define EXTRACT_HEADER_RAW_MAX 16384

/* The bytes of encoded words of one charset waiting to be converted
 * together (a character may be split between two words). */
struct extract_words {
	char charset[64];
	unsigned char *bytes;
	size_t len;
};

/* Converts and appends what WORDS holds to TEXT, and empties it. */
static void extract_words_flush(struct extract_text *text, struct extract_words *words)
{
	if (words->len > 0)
		extract_append_charset(text, (const char *)words->bytes, words->len, words->charset,
				       false);
	words->len = 0;
	words->charset[0] = '\0';
}

/* Appends unencoded header text S (LEN bytes): UTF-8 as it is, other 8-bit
 * bytes read as ISO-8859-1 (as GMime reads them). */
static void extract_header_raw(struct extract_text *text, const char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = extract_utf8_length((const unsigned char *)s + i, len - i);
		char latin1[2];

		if (n > 0) {
			extract_append(text, s + i, n, false);
			i += n;
			continue;
		}
		latin1[0] = (char)(0xc0 | (unsigned char)s[i] >> 6);
		latin1[1] = (char)(0x80 | ((unsigned char)s[i] & 0x3f));
		extract_append(text, latin1, 2, false);
		i++;
	}
}

/*
 * The RFC 2047 encoded word at S (LEN bytes, starting with "=?"): its
 * length, with its decoded bytes appended to WORDS (which is flushed to
 * TEXT first when the word's charset, language suffix dropped, is another);
 * 0 when S is no encoded word.
 */
static size_t extract_word(const char *s, size_t len, struct extract_text *text,
			   struct extract_words *words)
{
	const char *charset = s + 2;
	const char *q1 = memchr(charset, '?', len - 2);
	const char *data;
	const char *end;
	size_t charset_len;
	char encoding;

	if (q1 == NULL || (size_t)(q1 - s) + 3 > len || q1[2] != '?')
		return 0;
	encoding = q1[1];
	data = q1 + 3;
	end = NULL;
	for (const char *p = data; p + 1 < s + len; p++) {
		if (*p == ' ' || *p == '\t')
			return 0;
		if (p[0] == '?' && p[1] == '=') {
			end = p;
			break;
		}
	}
	charset_len = (size_t)(q1 - charset);
	if (end == NULL || charset_len == 0 ||
	    !(encoding == 'B' || encoding == 'b' || encoding == 'Q' || encoding == 'q'))
		return 0;
	if (memchr(charset, '*', charset_len) != NULL)
		charset_len = (size_t)((const char *)memchr(charset, '*', charset_len) - charset);
	if (charset_len >= sizeof(words->charset))
		return 0;
	if (strlen(words->charset) != charset_len ||
	    strncasecmp(words->charset, charset, charset_len) != 0) {
		extract_words_flush(text, words);
		memcpy(words->charset, charset, charset_len);
		words->charset[charset_len] = '\0';
	}
	words->bytes = xrealloc(words->bytes, words->len + (size_t)(end - data) + 3);
	if (encoding == 'B' || encoding == 'b') {
		gint state = 0;
		guint save = 0;

		words->len += g_base64_decode_step(data, (gsize)(end - data),
						   words->bytes + words->len, &state, &save);
	} else {
		for (const char *p = data; p < end; p++) {
			if (*p == '_') {
				words->bytes[words->len++] = ' ';
			} else if (*p == '=' && end - p >= 3 && g_ascii_isxdigit(p[1]) &&
				   g_ascii_isxdigit(p[2])) {
				words->bytes[words->len++] =
				    (unsigned char)(g_ascii_xdigit_value(p[1]) << 4 |
						    g_ascii_xdigit_value(p[2]));
				p += 2;
			} else {
				words->bytes[words->len++] = (unsigned char)*p;
			}
		}
	}
	return (size_t)(end + 2 - s);
}

/*
 * Appends the header value RAW (as written: folded, encoded words and
 * all; its first EXTRACT_HEADER_RAW_MAX bytes) decoded to TEXT, on one
 * line, without the whitespace around it. Encoded words are decoded here,
 * not by GMime, so that their charsets are converted only with the
 * converters mime_init loaded (see the top of the file); whitespace
 * between two of them is dropped.
 */
static void extract_header_decode(struct extract_text *text, const char *raw)
{
	size_t raw_len = strnlen(raw, EXTRACT_HEADER_RAW_MAX);
	char *value = xmalloc(raw_len + 1);
	struct extract_words words = {0};
	size_t len = 0;
	size_t plain = 0; /* where the text not yet appended starts */
	bool after_word = false;

	/* Unfolded: a line break and the whitespace after it is that
	 * whitespace. */
	for (size_t i = 0; i < raw_len; i++) {
		if (raw[i] != '\r' && raw[i] != '\n' &&
		    !(len == 0 && (raw[i] == ' ' || raw[i] == '\t')))
			value[len++] = raw[i];
	}
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	for (size_t i = 0; i < len;) {
		size_t used = 0;

		if (value[i] == '=' && i + 1 < len && value[i + 1] == '?') {
			bool gap_blank = true;

			for (size_t j = plain; j < i; j++)
				gap_blank = gap_blank && (value[j] == ' ' || value[j] == '\t');
			if (!(after_word && gap_blank) && i > plain) {
				extract_words_flush(text, &words);
				extract_header_raw(text, value + plain, i - plain);
				plain = i;
			}
			used = extract_word(value + i, len - i, text, &words);
		}
		if (used > 0) {
			i += used;
			plain = i;
			after_word = true;
			continue;
		}
		if (value[i] != ' ' && value[i] != '\t')
			after_word = false;
		i++;
	}
	extract_words_flush(text, &words);
	extract_header_raw(text, value + plain, len - plain);
	free(words.bytes);
	free(value);
}

/* ---- addresses ------------------------------------------------------------ */

/* ADDR as the index keeps an address: lowercased (ASCII), trimmed, within
 * DEPOT_ADDRESS_MAX, without spaces or controls; NULL when not usable. */
static char *extract_address(const char *addr)
{
	char *out;

	if (addr == NULL)
		return NULL;
	out = extract_line(addr, strnlen(addr, DEPOT_ADDRESS_MAX + 1), DEPOT_ADDRESS_MAX + 1);
	if (out == NULL)
		return NULL;
	if (strlen(out) > DEPOT_ADDRESS_MAX || strchr(out, ' ') != NULL ||
	    strchr(out, '\n') != NULL) {
		free(out);
		return NULL;
	}
	for (char *p = out; *p != '\0'; p++) {
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	}
	return out;
}

/* Adds ADDR to the recipients unless it is there already (a set, so that
 * a header of a million addresses costs no more than reading them) or they
 * are full. */
static void extract_recipient_add(struct extract_state *state, const char *addr)
{
	struct depot_fields *fields = state->fields;
	char *address;

	if (fields->recipient_count >= DEPOT_RECIPIENTS_MAX)
		return;
	address = extract_address(addr);
	if (address == NULL)
		return;
	if (g_hash_table_contains(state->recipients_seen, address)) {
		free(address);
		return;
	}
	fields->recipients = xrealloc(fields->recipients,
				      (fields->recipient_count + 1) * sizeof(*fields->recipients));
	fields->recipients[fields->recipient_count++] = address;
	g_hash_table_add(state->recipients_seen, address);
}

/* Adds the addresses of LIST (groups' members included, DEPTH deep) to the
 * recipients. */
static void extract_address_list(struct extract_state *state, InternetAddressList *list, int depth)
{
	int count = list != NULL ? internet_address_list_length(list) : 0;

	for (int i = 0; i < count; i++) {
		InternetAddress *address = internet_address_list_get_address(list, i);

		if (INTERNET_ADDRESS_IS_GROUP(address) && depth < EXTRACT_GROUP_DEPTH_MAX)
			extract_address_list(
			    state,
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address)),
			    depth + 1);
		else if (INTERNET_ADDRESS_IS_MAILBOX(address))
			extract_recipient_add(state, internet_address_mailbox_get_addr(
							 INTERNET_ADDRESS_MAILBOX(address)));
	}
}

/* The first mailbox of LIST (groups' members included), or NULL. */
static const char *extract_first_mailbox(InternetAddressList *list, int depth)
{
	int count = list != NULL ? internet_address_list_length(list) : 0;

	for (int i = 0; i < count; i++) {
		InternetAddress *address = internet_address_list_get_address(list, i);
		const char *found = NULL;

		if (INTERNET_ADDRESS_IS_MAILBOX(address))
			found =
			    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address));
		else if (INTERNET_ADDRESS_IS_GROUP(address) && depth < EXTRACT_GROUP_DEPTH_MAX)
			found = extract_first_mailbox(
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(address)),
			    depth + 1);
		if (found != NULL && *found != '\0')
			return found;
	}
	return NULL;
}

/* The addresses of every Delivered-To and X-Original-To field, as
 * recipients, parsed as written (GMime keeps them as plain header fields). */
static void extract_delivery_recipients(struct extract_state *state, GMimeMessage *message)
{
	static const char *const names[] = {"Delivered-To", "X-Original-To"};
	GMimeHeaderList *headers = g_mime_object_get_header_list(GMIME_OBJECT(message));
	int count = headers != NULL ? g_mime_header_list_get_count(headers) : 0;

	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		for (int i = 0; i < count; i++) {
			GMimeHeader *header = g_mime_header_list_get_header_at(headers, i);
			const char *name = g_mime_header_get_name(header);
			const char *value = g_mime_header_get_raw_value(header);
			InternetAddressList *list;

			if (name == NULL || value == NULL || strcasecmp(name, names[n]) != 0)
				continue;
			list = internet_address_list_parse(NULL, value);
			if (list == NULL)
				continue;
			for (int j = 0; j < internet_address_list_length(list); j++) {
				InternetAddress *address =
				    internet_address_list_get_address(list, j);

				if (INTERNET_ADDRESS_IS_MAILBOX(address))
					extract_recipient_add(
					    state, internet_address_mailbox_get_addr(
						       INTERNET_ADDRESS_MAILBOX(address)));
			}
			g_object_unref(list);
		}
	}
}

/* ---- the header fields ------------------------------------------------------ */

/* The header text: the fields worth searching, each a line "Name: value"
 * with the value decoded, in the message's order. */
static void extract_header_text(struct extract_state *state, GMimeMessage *message)
{
	static const char *const names[] = {"From", "To", "Cc", "Subject", "Reply-To"};
	GMimeHeaderList *headers = g_mime_object_get_header_list(GMIME_OBJECT(message));
	int count = headers != NULL ? g_mime_header_list_get_count(headers) : 0;

	if (count > MIME_HEADERS_MAX)
		count = MIME_HEADERS_MAX;
	for (int i = 0; i < count; i++) {
		GMimeHeader *header = g_mime_header_list_get_header_at(headers, i);
		const char *name = g_mime_header_get_name(header);
		const char *raw = g_mime_header_get_raw_value(header);

		for (size_t n = 0;
		     name != NULL && raw != NULL && n < sizeof(names) / sizeof(names[0]); n++) {
			if (strcasecmp(name, names[n]) != 0)
				continue;
			extract_append(&state->headers, names[n], strlen(names[n]), false);
			extract_append(&state->headers, ": ", 2, false);
			extract_header_decode(&state->headers, raw);
			extract_line_end(&state->headers);
		}
	}
}

char *depot_header_text(const char *raw, size_t max)
{
	struct extract_text text = {.max = max * 4};
	char *line;

	extract_header_decode(&text, raw);
	line = extract_line(text.buf != NULL ? text.buf : "", text.len, max);
	free(text.buf);
	return line;
}

static void extract_envelope(struct extract_state *state, GMimeMessage *message)
{
	struct depot_fields *fields = state->fields;
	GMimeHeaderList *headers = g_mime_object_get_header_list(GMIME_OBJECT(message));
	GMimeHeader *subject =
	    headers != NULL ? g_mime_header_list_get_header(headers, "Subject") : NULL;
	const char *id = g_mime_message_get_message_id(message);
	GDateTime *date = g_mime_message_get_date(message);

	fields->sender =
	    extract_address(extract_first_mailbox(g_mime_message_get_from(message), 0));
	if (subject != NULL && g_mime_header_get_raw_value(subject) != NULL) {
		fields->subject =
		    depot_header_text(g_mime_header_get_raw_value(subject), DEPOT_LINE_MAX);
		if (fields->subject == NULL)
			fields->subject = xstrdup("");
	}
	if (id != NULL)
		fields->message_id = extract_line(id, strlen(id), DEPOT_LINE_MAX);
	if (date != NULL) {
		int64_t seconds = g_date_time_to_unix(date);

		fields->date = seconds > 0 && seconds <= EXTRACT_DATE_MAX ? seconds : 0;
	}
	extract_header_text(state, message);
	extract_address_list(state, g_mime_message_get_to(message), 0);
	extract_address_list(state, g_mime_message_get_cc(message), 0);
	extract_address_list(state, g_mime_message_get_bcc(message), 0);
	extract_delivery_recipients(state, message);
}

/* ---- office documents ----------------------------------------------------------- */

/* The zip entry holding the text of a document called NAME of TYPE, or
 * NULL when it is no document read here. */
static const char *extract_document_entry(const char *name, const char *type)
{
	static const struct {
		const char *extension;
		const char *type;
		const char *entry;
	} documents[] = {
	    {".docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
	     "word/document.xml"},
	    {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	     "xl/sharedStrings.xml"},
	    {".odt", "application/vnd.oasis.opendocument.text", "content.xml"},
	    {".ods", "application/vnd.oasis.opendocument.spreadsheet", "content.xml"},
	};
	size_t name_len = name != NULL ? strlen(name) : 0;

	for (size_t i = 0; i < sizeof(documents) / sizeof(documents[0]); i++) {
		size_t ext_len = strlen(documents[i].extension);

		if ((name_len >= ext_len &&
		     strcasecmp(name + name_len - ext_len, documents[i].extension) == 0) ||
		    strcasecmp(type, documents[i].type) == 0)
			return documents[i].entry;
	}
	return NULL;
}

/* Whether the tag named NAME (LEN bytes, a namespace prefix included)
 * separates words: paragraphs, headings, line breaks, tabs, cells and
 * shared strings. */
static bool extract_tag_breaks(const char *name, size_t len)
{
	static const char *const breaks[] = {"p",  "h", "br",	      "tab", "si",
					     "tc", "s", "line-break", "row", "table-cell"};
	const char *colon = memchr(name, ':', len);

	if (colon != NULL) {
		len -= (size_t)(colon + 1 - name);
		name = colon + 1;
	}
	for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
		if (strlen(breaks[i]) == len && memcmp(breaks[i], name, len) == 0)
			return true;
	}
	return false;
}

/* Appends the code point CP as UTF-8 to OUT (room for 4); its length. */
static size_t extract_utf8_put(uint32_t cp, char *out)
{
	if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		cp = 0xfffd;
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the XML entity at S (LEN bytes, starting with '&') into OUT
 * (room for 4): the bytes it used, 0 when it is none. */
static size_t extract_entity(const char *s, size_t len, char *out, size_t *out_len)
{
	static const struct {
		const char *name;
		char c;
	} named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	const char *semi = memchr(s, ';', len < 12 ? len : 12);

	if (semi == NULL)
		return 0;
	if (len > 2 && s[1] == '#') {
		bool hex = s[2] == 'x' || s[2] == 'X';
		const char *p = s + (hex ? 3 : 2);
		uint32_t cp = 0;

		if (p == semi)
			return 0;
		for (; p < semi; p++) {
			int digit;

			if (*p >= '0' && *p <= '9')
				digit = *p - '0';
			else if (hex && *p >= 'a' && *p <= 'f')
				digit = *p - 'a' + 10;
			else if (hex && *p >= 'A' && *p <= 'F')
				digit = *p - 'A' + 10;
			else
				return 0;
			cp = cp * (hex ? 16 : 10) + (uint32_t)digit;
			if (cp > 0x10ffff)
				cp = 0x110000;
		}
		*out_len = extract_utf8_put(cp, out);
		return (size_t)(semi + 1 - s);
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		size_t n = strlen(named[i].name);

		if ((size_t)(semi + 1 - s) == n + 1 && memcmp(s + 1, named[i].name, n) == 0) {
			out[0] = named[i].c;
			*out_len = 1;
			return n + 1;
		}
	}
	return 0;
}

/* Appends the text of the XML document XML (LEN bytes): tags dropped (those
 * that separate words as a space or a line break), entities decoded. */
static void extract_xml_text(struct extract_text *text, const char *xml, size_t len)
{
	size_t i = 0;

	while (i < len) {
		if (xml[i] == '<') {
			const char *end = memchr(xml + i, '>', len - i);
			const char *name = xml + i + 1;
			size_t name_len = 0;

			if (end == NULL)
				return;
			if (name < end && *name == '/')
				name++;
			while (name + name_len < end && name[name_len] != ' ' &&
			       name[name_len] != '/' && name[name_len] != '\t' &&
			       name[name_len] != '\n' && name[name_len] != '\r')
				name_len++;
			if (extract_tag_breaks(name, name_len) && !extract_line_end(text))
				return;
			i = (size_t)(end - xml) + 1;
		} else if (xml[i] == '&') {
			char buf[4];
			size_t n = 0;
			size_t used = extract_entity(xml + i, len - i, buf, &n);

			if (used == 0) {
				buf[0] = '&';
				n = 1;
				used = 1;
			}
			if (!extract_append(text, buf, n, true))
				return;
			i += used;
		} else {
			size_t run = i;

			while (run < len && xml[run] != '<' && xml[run] != '&')
				run++;
			if (!extract_append(text, xml + i, run - i, true))
				return;
			i = run;
		}
	}
}

/* A zip reader of DATA (LEN bytes) from memory: by its central directory,
 * or when STREAM entry by entry. NULL when it cannot be opened so. */
static struct archive *extract_zip_open(const unsigned char *data, size_t len, bool stream)
{
	struct archive *archive = archive_read_new();
	int rc;

	if (archive == NULL)
		return NULL;
	rc = stream ? archive_read_support_format_zip_streamable(archive)
		    : archive_read_support_format_zip_seekable(archive);
	if (rc != ARCHIVE_OK || archive_read_open_memory(archive, data, len) != ARCHIVE_OK) {
		archive_read_free(archive);
		return NULL;
	}
	return archive;
}

/*
 * Reads the entry WANTED of the zip DATA (LEN bytes) whole, within BUDGET
 * bytes: the allocated bytes (for free) and their count in *LEN_R, or NULL
 * when it is not there, cannot be read or is larger than the budget (then
 * nothing of it is kept: a document cut short is no document).
 */
static char *extract_zip_entry(const unsigned char *data, size_t len, const char *wanted,
			       size_t budget, size_t *len_r, size_t *used_r)
{
	struct archive *archive = extract_zip_open(data, len, false);
	struct archive_entry *entry;
	char *out = NULL;

	*used_r = 0;
	if (archive == NULL)
		archive = extract_zip_open(data, len, true);
	if (archive == NULL)
		return NULL;
	for (size_t entries = 0; entries < EXTRACT_ARCHIVE_ENTRIES_MAX; entries++) {
		const char *name;
		size_t got = 0;
		size_t capacity = 0;

		if (archive_read_next_header(archive, &entry) != ARCHIVE_OK)
			break;
		name = archive_entry_pathname(entry);
		if (name == NULL || strcmp(name, wanted) != 0 ||
		    archive_entry_filetype(entry) != AE_IFREG || archive_entry_is_encrypted(entry))
			continue;
		for (;;) {
			la_ssize_t n;

			if (got == capacity) {
				if (capacity >= budget)
					break;
				capacity = capacity == 0 ? 65536 : 2 * capacity;
				if (capacity > budget)
					capacity = budget;
				out = xrealloc(out, capacity);
			}
			n = archive_read_data(archive, out + got, capacity - got);
			if (n < 0) {
				got = 0;
				xfree(&out);
				break;
			}
			if (n == 0)
				break;
			got += (size_t)n;
		}
		*used_r = got;
		/* The budget ran out before the entry's end: not kept. */
		if (out != NULL && got == budget) {
			char probe;

			if (archive_read_data(archive, &probe, 1) != 0)
				xfree(&out);
		}
		*len_r = got;
		break;
	}
	archive_read_free(archive);
	return out;
}

/* Appends the text of the office document DATA (LEN bytes; its text in
 * the zip entry WANTED) to the attachment text. */
static void extract_document(struct extract_state *state, const unsigned char *data, size_t len,
			     const char *wanted)
{
	size_t budget = EXTRACT_ARCHIVE_BYTES_MAX - state->archive_bytes;
	size_t xml_len = 0;
	size_t used;
	char *xml;

	if (len < 4 || memcmp(data, "PK\3\4", 4) != 0)
		return;
	if (len < budget / EXTRACT_ARCHIVE_RATIO_MAX)
		budget = len * EXTRACT_ARCHIVE_RATIO_MAX;
	if (budget == 0)
		return;
	xml = extract_zip_entry(data, len, wanted, budget, &xml_len, &used);
	state->archive_bytes += used;
	if (xml == NULL)
		return;
	extract_xml_text(&state->attachment_text, xml, xml_len);
	extract_line_end(&state->attachment_text);
	free(xml);
}

/* ---- file names ------------------------------------------------------------ */

/* Pieces of an RFC 2231 parameter value put together, at most. */
#define EXTRACT_PARAM_PIECES_MAX 64

/* One piece of a parameter value: its bytes, and whether they are
 * percent-encoded (RFC 2231 "name*N*="). */
struct extract_piece {
	char *value;
	bool encoded;
};

static bool extract_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Reads the parameter at RAW + *POS (LEN bytes in all; *POS just past its
 * ';'): its attribute (*ATTR_R, *ATTR_LEN_R, pointing into RAW) and its
 * value, unquoted (allocated, for free), and leaves *POS at the next ';'
 * or the end. NULL when it has no value.
 */
static char *extract_param_next(const char *raw, size_t len, size_t *pos, const char **attr_r,
				size_t *attr_len_r)
{
	size_t i = *pos;
	size_t attr_start;
	size_t attr_end;
	char *value;
	size_t value_len = 0;

	while (i < len && extract_is_space(raw[i]))
		i++;
	attr_start = i;
	while (i < len && raw[i] != '=' && raw[i] != ';')
		i++;
	attr_end = i;
	while (attr_end > attr_start && extract_is_space(raw[attr_end - 1]))
		attr_end--;
	*attr_r = raw + attr_start;
	*attr_len_r = attr_end - attr_start;
	if (i >= len || raw[i] == ';') {
		*pos = i;
		return NULL;
	}
	for (i++; i < len && extract_is_space(raw[i]);)
		i++;
	value = xmalloc(len - i + 1);
	if (i < len && raw[i] == '"') {
		for (i++; i < len && raw[i] != '"'; i++) {
			if (raw[i] == '\\' && i + 1 < len)
				i++;
			if (raw[i] != '\r' && raw[i] != '\n')
				value[value_len++] = raw[i];
		}
		while (i < len && raw[i] != ';')
			i++;
	} else {
		for (; i < len && raw[i] != ';'; i++) {
			if (raw[i] != '\r' && raw[i] != '\n')
				value[value_len++] = raw[i];
		}
		while (value_len > 0 && extract_is_space(value[value_len - 1]))
			value_len--;
	}
	value[value_len] = '\0';
	*pos = i;
	return value;
}

/* Appends DATA (LEN bytes) percent-decoded to OUT (*OUT_LEN bytes so far,
 * room for LEN more). */
static void extract_percent_decode(const char *data, size_t len, unsigned char *out,
				   size_t *out_len)
{
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '%' && i + 2 < len && g_ascii_isxdigit(data[i + 1]) &&
		    g_ascii_isxdigit(data[i + 2])) {
			out[(*out_len)++] = (unsigned char)(g_ascii_xdigit_value(data[i + 1]) << 4 |
							    g_ascii_xdigit_value(data[i + 2]));
			i += 2;
		} else {
			out[(*out_len)++] = (unsigned char)data[i];
		}
	}
}

/* The value of an RFC 2231 parameter from its PIECES (0, 1, ... as long as
 * they follow each other), its charset named on the first encoded one,
 * appended to TEXT. */
static void extract_pieces_decode(struct extract_text *text, struct extract_piece *pieces)
{
	size_t total = 0;
	unsigned char *bytes;
	size_t len = 0;
	char charset[64] = "";

	for (size_t n = 0; n < EXTRACT_PARAM_PIECES_MAX && pieces[n].value != NULL; n++)
		total += strlen(pieces[n].value);
	bytes = xmalloc(total + 1);
	for (size_t n = 0; n < EXTRACT_PARAM_PIECES_MAX && pieces[n].value != NULL; n++) {
		const char *value = pieces[n].value;

		if (n == 0 && pieces[0].encoded) {
			const char *quote = strchr(value, '\'');
			const char *lang_end = quote != NULL ? strchr(quote + 1, '\'') : NULL;

			if (lang_end != NULL) {
				size_t charset_len = (size_t)(quote - value);

				if (charset_len < sizeof(charset)) {
					memcpy(charset, value, charset_len);
					charset[charset_len] = '\0';
				}
				value = lang_end + 1;
			}
		}
		if (pieces[n].encoded)
			extract_percent_decode(value, strlen(value), bytes, &len);
		else
			for (const char *p = value; *p != '\0'; p++)
				bytes[len++] = (unsigned char)*p;
	}
	extract_append_charset(text, (const char *)bytes, len, charset[0] != '\0' ? charset : NULL,
			       false);
	free(bytes);
}

/*
 * The parameter NAME of the raw header value RAW (a Content-Disposition
 * or Content-Type, as written; its first EXTRACT_HEADER_RAW_MAX bytes)
 * decoded to UTF-8 on one line: from its RFC 2231 pieces when it has them,
 * else its plain value with encoded words decoded. Decoded here rather than
 * by GMime for the reason the header values are (see the top of the file).
 * Allocated, or NULL when there is none or it is empty.
 */
static char *extract_param(const char *raw, const char *name)
{
	size_t len = strnlen(raw, EXTRACT_HEADER_RAW_MAX);
	size_t name_len = strlen(name);
	struct extract_piece pieces[EXTRACT_PARAM_PIECES_MAX] = {{0}};
	struct extract_text text = {.max = DEPOT_NAME_MAX * 4};
	char *plain = NULL;
	bool quoted = false;
	size_t i = 0;
	char *out;

	/* Past the type or the disposition: the first ';' outside quotes. */
	for (; i < len && (quoted || raw[i] != ';'); i++) {
		if (raw[i] == '"')
			quoted = !quoted;
	}
	while (i < len) {
		const char *attr;
		size_t attr_len;
		char *value;
		const char *rest;
		size_t rest_len;
		size_t index = 0;
		bool encoded = false;

		i++; /* the ';' */
		value = extract_param_next(raw, len, &i, &attr, &attr_len);
		if (value == NULL)
			continue;
		rest = attr + name_len;
		rest_len = attr_len >= name_len ? attr_len - name_len : 0;
		if (attr_len < name_len || strncasecmp(attr, name, name_len) != 0) {
			free(value);
			continue;
		}
		if (rest_len == 0) {
			if (plain == NULL)
				plain = value;
			else
				free(value);
			continue;
		}
		/* "name*", "name*N" or "name*N*" */
		if (rest[0] == '*' && rest_len == 1) {
			encoded = true;
		} else if (rest[0] == '*') {
			size_t digits = 0;

			while (1 + digits < rest_len && g_ascii_isdigit(rest[1 + digits]) &&
			       index < EXTRACT_PARAM_PIECES_MAX)
				index = index * 10 + (size_t)(rest[1 + digits++] - '0');
			encoded = 1 + digits + 1 == rest_len && rest[rest_len - 1] == '*';
			if (digits == 0 || index >= EXTRACT_PARAM_PIECES_MAX ||
			    (1 + digits != rest_len && !encoded))
				index = EXTRACT_PARAM_PIECES_MAX;
		} else {
			index = EXTRACT_PARAM_PIECES_MAX;
		}
		if (index >= EXTRACT_PARAM_PIECES_MAX || pieces[index].value != NULL) {
			free(value);
			continue;
		}
		pieces[index].value = value;
		pieces[index].encoded = encoded;
	}
	if (pieces[0].value != NULL)
		extract_pieces_decode(&text, pieces);
	else if (plain != NULL)
		extract_header_decode(&text, plain);
	for (size_t n = 0; n < EXTRACT_PARAM_PIECES_MAX; n++)
		free(pieces[n].value);
	free(plain);
	out = text.buf != NULL ? extract_line(text.buf, text.len, DEPOT_NAME_MAX) : NULL;
	free(text.buf);
	return out;
}

/* The file name of PART (Content-Disposition's filename, else
 * Content-Type's name), decoded; allocated, or NULL. */
static char *extract_filename(GMimeObject *part)
{
	static const char *const where[][2] = {{"Content-Disposition", "filename"},
					       {"Content-Type", "name"}};
	GMimeHeaderList *headers = g_mime_object_get_header_list(part);

	for (size_t i = 0; headers != NULL && i < 2; i++) {
		GMimeHeader *header = g_mime_header_list_get_header(headers, where[i][0]);
		const char *raw = header != NULL ? g_mime_header_get_raw_value(header) : NULL;
		char *name = raw != NULL ? extract_param(raw, where[i][1]) : NULL;

		if (name != NULL)
			return name;
	}
	return NULL;
}

/* ---- the parts -------------------------------------------------------------------- */

/* The body of PART, its transfer encoding undone: a memory stream (for
 * g_object_unref) whose bytes are *DATA_R, *LEN_R; NULL when it has none. */
static GMimeStream *extract_part_bytes(GMimePart *part, const unsigned char **data_r, size_t *len_r)
{
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeStream *decoded;
	GByteArray *bytes;

	if (content == NULL)
		return NULL;
	/* Never larger than the encoded part, which is within MIME_INPUT_MAX. */
	decoded = g_mime_stream_mem_new();
	if (g_mime_data_wrapper_write_to_stream(content, decoded) < 0) {
		g_object_unref(decoded);
		return NULL;
	}
	bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded));
	*data_r = bytes != NULL && bytes->data != NULL ? bytes->data : (const unsigned char *)"";
	*len_r = bytes != NULL ? bytes->len : 0;
	return decoded;
}

/* Appends the text of a text part (DATA, LEN bytes, in CHARSET; HTML as
 * text) to TEXT, on a line of its own. */
static void extract_part_text(struct extract_text *text, const unsigned char *data, size_t len,
			      const char *charset, bool html)
{
	if (html) {
		struct extract_text converted = {.max = DEPOT_TEXT_MAX * 4};
		struct mime_list urls = {0};
		char *visible = NULL;
		size_t visible_len = 0;

		extract_append_charset(&converted, (const char *)data, len, charset, true);
		if (converted.buf != NULL)
			uri_scan_html(converted.buf, converted.len, &visible, &visible_len,
				      DEPOT_TEXT_MAX, &urls);
		if (visible != NULL)
			extract_append(text, visible, visible_len, true);
		free(visible);
		free(converted.buf);
		mime_list_free(&urls);
	} else {
		extract_append_charset(text, (const char *)data, len, charset, true);
	}
	extract_line_end(text);
}

/* Adds the file name of PART, if it has one, to the attachment names. */
static void extract_attachment_name(struct depot_fields *fields, const char *filename)
{
	char *name;

	if (filename == NULL || fields->attachment_count >= DEPOT_ATTACHMENTS_MAX)
		return;
	name = extract_line(filename, strnlen(filename, DEPOT_NAME_MAX * 4), DEPOT_NAME_MAX);
	if (name == NULL)
		return;
	for (size_t i = 0; i < fields->attachment_count; i++) {
		if (strcmp(fields->attachments[i], name) == 0) {
			free(name);
			return;
		}
	}
	fields->attachments = xrealloc(fields->attachments, (fields->attachment_count + 1) *
								sizeof(*fields->attachments));
	fields->attachments[fields->attachment_count++] = name;
}

/* A leaf part: its name; its text to the body (a text part that is no
 * attachment) or to the attachment text (a named text part, an office
 * document). */
static void extract_leaf(struct extract_state *state, GMimePart *part)
{
	GMimeObject *object = GMIME_OBJECT(part);
	GMimeContentType *type = g_mime_object_get_content_type(object);
	char *filename = extract_filename(object);
	char *mime_type = type != NULL ? g_mime_content_type_get_mime_type(type) : NULL;
	const char *shown_type = mime_type != NULL ? mime_type : "application/octet-stream";
	bool attachment = filename != NULL || g_mime_part_is_attachment(part);
	bool text = type != NULL && g_mime_content_type_is_type(type, "text", "*");
	bool html = type != NULL && g_mime_content_type_is_type(type, "text", "html");
	const char *document = extract_document_entry(filename, shown_type);
	const unsigned char *data;
	GMimeStream *bytes = NULL;
	size_t len;

	extract_attachment_name(state->fields, filename);
	if ((text || document != NULL) && (bytes = extract_part_bytes(part, &data, &len)) != NULL) {
		const char *charset = g_mime_object_get_content_type_parameter(object, "charset");

		if (document != NULL)
			extract_document(state, data, len, document);
		else if (attachment)
			extract_part_text(&state->attachment_text, data, len, charset, html);
		else if (html || g_mime_content_type_is_type(type, "text", "plain") ||
			 g_mime_content_type_is_type(type, "text", "enriched"))
			extract_part_text(&state->body, data, len, charset, html);
		g_object_unref(bytes);
	}
	g_free(mime_type);
	free(filename);
}

static void extract_walk(struct extract_state *state, GMimeObject *object, int depth);

/* A multipart/alternative: its plain text when it has one (the HTML beside
 * it says the same), else every alternative. */
static void extract_alternative(struct extract_state *state, GMimeMultipart *multipart, int depth)
{
	int count = g_mime_multipart_get_count(multipart);

	for (int i = 0; i < count; i++) {
		GMimeObject *part = g_mime_multipart_get_part(multipart, i);
		GMimeContentType *type = g_mime_object_get_content_type(part);

		if (GMIME_IS_PART(part) && type != NULL &&
		    g_mime_content_type_is_type(type, "text", "plain") &&
		    !g_mime_part_is_attachment(GMIME_PART(part))) {
			extract_walk(state, part, depth + 1);
			return;
		}
	}
	for (int i = 0; i < count; i++)
		extract_walk(state, g_mime_multipart_get_part(multipart, i), depth + 1);
}

/* Walks OBJECT at nesting DEPTH, within mime.h's part and depth bounds. */
static void extract_walk(struct extract_state *state, GMimeObject *object, int depth)
{
	if (object == NULL || depth > MIME_DEPTH_MAX || state->parts >= MIME_PARTS_MAX)
		return;
	state->parts++;
	if (GMIME_IS_MESSAGE_PART(object)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));

		if (inner != NULL)
			extract_walk(state, g_mime_message_get_mime_part(inner), depth + 1);
	} else if (GMIME_IS_MULTIPART(object)) {
		GMimeMultipart *multipart = GMIME_MULTIPART(object);
		GMimeContentType *type = g_mime_object_get_content_type(object);

		if (type != NULL && g_mime_content_type_is_type(type, "multipart", "alternative")) {
			extract_alternative(state, multipart, depth);
		} else {
			for (int i = 0; i < g_mime_multipart_get_count(multipart); i++)
				extract_walk(state, g_mime_multipart_get_part(multipart, i),
					     depth + 1);
		}
	} else if (GMIME_IS_PART(object)) {
		extract_leaf(state, GMIME_PART(object));
	}
}

/* ---- the message -------------------------------------------------------------------- */

int depot_extract(const char *raw, size_t len, struct depot_fields *fields, char *err,
		  size_t errlen)
{
	struct extract_state state = {
	    .fields = fields,
	    .body = {.max = DEPOT_TEXT_MAX},
	    .attachment_text = {.max = DEPOT_TEXT_MAX},
	    .headers = {.max = DEPOT_HEADERS_MAX},
	};
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *message;

	memset(fields, 0, sizeof(*fields));
	if (raw == NULL) {
		snprintf(err, errlen, "no message");
		return -1;
	}
	mime_init();
	/* The worker reads no more of a body than this (FILTER_BODY_MAX), so
	 * neither does anyone else: the same fields everywhere. */
	if (len > MIME_INPUT_MAX)
		len = MIME_INPUT_MAX;
	/* An mbox separator line is not a header field. */
	if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
		const char *nl = memchr(raw, '\n', len);

		len = nl != NULL ? len - (size_t)(nl + 1 - raw) : 0;
		raw = nl != NULL ? nl + 1 : raw;
	}
	stream = g_mime_stream_mem_new_with_buffer(raw, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	message = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	if (message != NULL) {
		state.recipients_seen = g_hash_table_new(g_str_hash, g_str_equal);
		extract_envelope(&state, message);
		extract_walk(&state, g_mime_message_get_mime_part(message), 0);
		g_hash_table_destroy(state.recipients_seen);
		g_object_unref(message);
	}
	fields->headers = state.headers.buf != NULL ? state.headers.buf : xcalloc(1, 1);
	fields->body = state.body.buf != NULL ? state.body.buf : xcalloc(1, 1);
	fields->attachment_text =
	    state.attachment_text.buf != NULL ? state.attachment_text.buf : xcalloc(1, 1);
	return 0;
}

void depot_fields_free(struct depot_fields *fields)
{
	if (fields == NULL)
		return;
	free(fields->sender);
	for (size_t i = 0; i < fields->recipient_count; i++)
		free(fields->recipients[i]);
	free(fields->recipients);
	free(fields->subject);
	free(fields->message_id);
	for (size_t i = 0; i < fields->attachment_count; i++)
		free(fields->attachments[i]);
	free(fields->attachments);
	free(fields->headers);
	free(fields->body);
	free(fields->attachment_text);
	memset(fields, 0, sizeof(*fields));
}
