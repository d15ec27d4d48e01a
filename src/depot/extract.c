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
 * boundaries, transfer encodings, RFC 2047 and 2231, address lists), as in
 * filters/mime.c; this file walks the tree with bounded depth and part
 * count, converts charsets itself with only the converters mime_init
 * loaded (so a confined worker and popgatectl convert alike; any other
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

/* Adds ADDR to the recipients unless it is there already or they are full. */
static void extract_recipient_add(struct depot_fields *fields, const char *addr)
{
	char *address = extract_address(addr);

	if (address == NULL)
		return;
	for (size_t i = 0; i < fields->recipient_count; i++) {
		if (strcmp(fields->recipients[i], address) == 0) {
			free(address);
			return;
		}
	}
	if (fields->recipient_count >= DEPOT_RECIPIENTS_MAX) {
		free(address);
		return;
	}
	fields->recipients = xrealloc(fields->recipients,
				      (fields->recipient_count + 1) * sizeof(*fields->recipients));
	fields->recipients[fields->recipient_count++] = address;
}

/* Adds the names and addresses of LIST (groups' members included, DEPTH
 * deep) to the header text (with TEXT) and its addresses to the recipients
 * (with RECIPIENTS). */
static void extract_address_list(struct extract_state *state, InternetAddressList *list, bool text,
				 bool recipients, int depth)
{
	int count = list != NULL ? internet_address_list_length(list) : 0;

	for (int i = 0; i < count; i++) {
		InternetAddress *address = internet_address_list_get_address(list, i);
		const char *name = internet_address_get_name(address);

		if (text && name != NULL && *name != '\0') {
			extract_append(&state->headers, " ", 1, false);
			extract_append(&state->headers, name, strlen(name), false);
		}
		if (INTERNET_ADDRESS_IS_GROUP(address)) {
			if (depth < EXTRACT_GROUP_DEPTH_MAX)
				extract_address_list(state,
						     internet_address_group_get_members(
							 INTERNET_ADDRESS_GROUP(address)),
						     text, recipients, depth + 1);
		} else if (INTERNET_ADDRESS_IS_MAILBOX(address)) {
			const char *addr =
			    internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(address));

			if (addr != NULL && text) {
				extract_append(&state->headers, " ", 1, false);
				extract_append(&state->headers, addr, strlen(addr), false);
			}
			if (addr != NULL && recipients)
				extract_recipient_add(state->fields, addr);
		}
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

/* Appends the line "LABEL:" with the names and addresses of LIST to the
 * header text; RECIPIENTS: they are recipients too. */
static void extract_address_header(struct extract_state *state, const char *label,
				   InternetAddressList *list, bool recipients)
{
	if (list == NULL || internet_address_list_length(list) == 0)
		return;
	extract_append(&state->headers, label, strlen(label), false);
	extract_address_list(state, list, true, recipients, 0);
	extract_append(&state->headers, "\n", 1, true);
}

/* The addresses of every Delivered-To and X-Original-To field, as
 * recipients (GMime keeps them as plain header fields). */
static void extract_delivery_recipients(struct extract_state *state, GMimeMessage *message)
{
	static const char *const names[] = {"Delivered-To", "X-Original-To"};
	GMimeHeaderList *headers = g_mime_object_get_header_list(GMIME_OBJECT(message));
	int count = headers != NULL ? g_mime_header_list_get_count(headers) : 0;

	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++) {
		for (int i = 0; i < count; i++) {
			GMimeHeader *header = g_mime_header_list_get_header_at(headers, i);
			const char *name = g_mime_header_get_name(header);
			const char *value = g_mime_header_get_value(header);
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
					    state->fields, internet_address_mailbox_get_addr(
							       INTERNET_ADDRESS_MAILBOX(address)));
			}
			g_object_unref(list);
		}
	}
}

/* ---- the header fields ------------------------------------------------------ */

static void extract_envelope(struct extract_state *state, GMimeMessage *message)
{
	struct depot_fields *fields = state->fields;
	InternetAddressList *from = g_mime_message_get_from(message);
	const char *subject = g_mime_message_get_subject(message);
	const char *id = g_mime_message_get_message_id(message);
	GDateTime *date = g_mime_message_get_date(message);

	fields->sender = extract_address(extract_first_mailbox(from, 0));
	if (subject != NULL) {
		fields->subject = extract_line(subject, strlen(subject), DEPOT_LINE_MAX);
		if (fields->subject == NULL)
			fields->subject = xstrdup("");
	}
	if (id != NULL)
		fields->message_id = extract_line(id, strlen(id), DEPOT_LINE_MAX);
	if (date != NULL) {
		int64_t seconds = g_date_time_to_unix(date);

		fields->date = seconds > 0 && seconds <= EXTRACT_DATE_MAX ? seconds : 0;
	}
	extract_address_header(state, "From:", from, false);
	extract_address_header(state, "To:", g_mime_message_get_to(message), true);
	extract_address_header(state, "Cc:", g_mime_message_get_cc(message), true);
	if (subject != NULL) {
		extract_append(&state->headers, "Subject: ", 9, false);
		extract_append(&state->headers, subject, strlen(subject), false);
		extract_append(&state->headers, "\n", 1, true);
	}
	extract_address_header(state, "Reply-To:", g_mime_message_get_reply_to(message), false);
	/* Bcc is no header text anyone saw, but its addresses received it. */
	extract_address_list(state, g_mime_message_get_bcc(message), false, true, 0);
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

/* Ends TEXT's last line, if it has one not ended yet. False once TEXT is
 * full. */
static bool extract_line_end(struct extract_text *text)
{
	if (text->len == 0 || text->buf[text->len - 1] == '\n')
		return text->len < text->max;
	return extract_append(text, "\n", 1, true);
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
	const char *filename = g_mime_part_get_filename(part);
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
		extract_envelope(&state, message);
		extract_walk(&state, g_mime_message_get_mime_part(message), 0);
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
