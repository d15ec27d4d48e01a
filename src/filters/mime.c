/*
 * mime.c — a message taken apart with GMime 3 (see mime.h).
 *
 * Owns: GMime's global state (initialised once, never shut down: workers
 * and popgatectl exit instead) and the charset converters opened in
 * mime_init. Must never: let GMime near the file system after mime_init,
 * follow a part past the bounds of mime.h, or hand a filter text that is
 * not NUL-terminated.
 *
 * SECURITY: the message is hostile. GMime's parser does the MIME work (the
 * boundaries, the encodings, RFC 2047 and 2231); this file only walks the
 * tree it builds, with bounded depth and part count, and copies bounded
 * amounts out of it.
 *
 * Confinement: glibc's iconv loads its converters (gconv modules) with
 * dlopen by name, which a confined worker cannot do — the open is refused,
 * and a converter that was never loaded would silently not convert. So
 * mime_init opens a converter from each charset common in mail to UTF-8
 * while files can still be opened, and keeps them open for the life of the
 * process, which keeps their modules loaded for GMime's own iconv_open
 * calls later. A charset outside that list is passed through unconverted.
 */
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>

#include "core/util.h"
#include "filters/mime.h"
#include "filters/uri.h"

/* Charsets whose converters are loaded before confinement: those of the
 * SpamAssassin corpus and of today's mail (Western, Central and Eastern
 * European, Cyrillic, Greek, Turkish, Hebrew, Arabic, Thai, CJK). */
static const char *const mime_charsets[] = {
    "ISO-8859-1",   "ISO-8859-2",   "ISO-8859-3",   "ISO-8859-4",   "ISO-8859-5",   "ISO-8859-6",
    "ISO-8859-7",   "ISO-8859-8",   "ISO-8859-9",   "ISO-8859-13",  "ISO-8859-15",  "WINDOWS-1250",
    "WINDOWS-1251", "WINDOWS-1252", "WINDOWS-1253", "WINDOWS-1254", "WINDOWS-1255", "WINDOWS-1256",
    "WINDOWS-1257", "KOI8-R",	    "KOI8-U",	    "GB2312",	    "GBK",	    "GB18030",
    "BIG5",	    "EUC-JP",	    "SHIFT_JIS",    "ISO-2022-JP",  "EUC-KR",	    "ISO-2022-KR",
    "TIS-620",	    "UTF-7",	    "UTF-16",	    "IBM850",	    "MACINTOSH",
};

#define MIME_CHARSET_COUNT (sizeof(mime_charsets) / sizeof(mime_charsets[0]))

/* The converters kept open (see the top of the file). */
static iconv_t mime_converters[MIME_CHARSET_COUNT];
static bool mime_ready;

void mime_init(void)
{
	if (mime_ready)
		return;
	g_mime_init();
	/* A charset this system's glibc lacks is simply not converted. */
	for (size_t i = 0; i < MIME_CHARSET_COUNT; i++)
		mime_converters[i] = iconv_open("UTF-8", mime_charsets[i]);
	mime_ready = true;
}

const char *mime_charset_loaded(const char *charset)
{
	const char *wanted;

	mime_init();
	wanted = g_mime_charset_iconv_name(charset);
	for (size_t i = 0; i < MIME_CHARSET_COUNT; i++) {
		if (mime_converters[i] != (iconv_t)-1 &&
		    (strcasecmp(charset, mime_charsets[i]) == 0 ||
		     (wanted != NULL &&
		      strcasecmp(wanted, g_mime_charset_iconv_name(mime_charsets[i])) == 0)))
			return mime_charsets[i];
	}
	return NULL;
}

bool mime_list_add(struct mime_list *list, const char *s, size_t len, size_t max)
{
	for (size_t i = 0; i < list->count; i++) {
		if (strlen(list->items[i]) == len && memcmp(list->items[i], s, len) == 0)
			return true;
	}
	if (list->count >= max)
		return false;
	if (list->count == list->capacity) {
		list->capacity = list->capacity == 0 ? 8 : list->capacity * 2;
		list->items = xrealloc(list->items, list->capacity * sizeof(*list->items));
	}
	list->items[list->count++] = xstrndup(s, len);
	return true;
}

void mime_list_free(struct mime_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	memset(list, 0, sizeof(*list));
}

void mime_message_free(struct mime_message *message)
{
	for (size_t i = 0; i < message->header_count; i++) {
		free(message->headers[i].name);
		free(message->headers[i].value);
	}
	free(message->headers);
	free(message->text);
	mime_list_free(&message->urls);
	mime_list_free(&message->names);
	mime_list_free(&message->types);
	memset(message, 0, sizeof(*message));
}

const char *mime_header_find(const struct mime_message *message, const char *name)
{
	for (size_t i = 0; i < message->header_count; i++) {
		if (strcasecmp(message->headers[i].name, name) == 0)
			return message->headers[i].value;
	}
	return NULL;
}

/* Appends TEXT (LEN bytes) and a newline to MESSAGE's text, within
 * MIME_TEXT_MAX. */
static void mime_text_append(struct mime_message *message, const char *text, size_t len)
{
	size_t room = MIME_TEXT_MAX - message->text_len;

	if (len + 1 > room) {
		message->truncated = true;
		if (room == 0)
			return;
		len = room - 1;
	}
	message->text = xrealloc(message->text, message->text_len + len + 2);
	memcpy(message->text + message->text_len, text, len);
	message->text_len += len;
	message->text[message->text_len++] = '\n';
	message->text[message->text_len] = '\0';
}

/* Copies the header fields of OBJECT (the top-level message) into MESSAGE. */
static void mime_headers_copy(GMimeObject *object, struct mime_message *message)
{
	GMimeHeaderList *list = g_mime_object_get_header_list(object);
	int count = list != NULL ? g_mime_header_list_get_count(list) : 0;

	if (count > MIME_HEADERS_MAX) {
		count = MIME_HEADERS_MAX;
		message->truncated = true;
	}
	message->headers = xcalloc(count > 0 ? (size_t)count : 1, sizeof(*message->headers));
	for (int i = 0; i < count; i++) {
		GMimeHeader *header = g_mime_header_list_get_header_at(list, i);
		const char *name = g_mime_header_get_name(header);
		const char *value = g_mime_header_get_value(header);
		struct mime_header *out = &message->headers[message->header_count];

		if (name == NULL)
			continue;
		if (value == NULL)
			value = "";
		out->name = xstrdup(name);
		out->value = xstrndup(value, strnlen(value, MIME_HEADER_VALUE_MAX));
		message->header_count++;
	}
}

/* Adds the decoded text of the leaf PART (of type TYPE) to MESSAGE. */
static void mime_leaf_text(GMimePart *part, GMimeContentType *type, struct mime_message *message)
{
	bool html = g_mime_content_type_is_type(type, "text", "html");
	char *text;
	size_t len;

	if (!GMIME_IS_TEXT_PART(part) ||
	    !(html || g_mime_content_type_is_type(type, "text", "plain") ||
	      g_mime_content_type_is_type(type, "text", "enriched")))
		return;
	text = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
	if (text == NULL)
		return;
	len = strlen(text);
	if (html) {
		if (!uri_scan_html(text, len, &message->text, &message->text_len, MIME_TEXT_MAX - 1,
				   &message->urls))
			message->truncated = true;
		mime_text_append(message, "", 0);
	} else {
		mime_text_append(message, text, len);
		uri_scan_text(text, len, &message->urls);
	}
	g_free(text);
}

/* Walks OBJECT at nesting DEPTH, within the part and depth bounds. */
static void mime_walk(GMimeObject *object, int depth, struct mime_message *message)
{
	GMimeContentType *type;
	char *mime_type;

	if (object == NULL)
		return;
	if (depth > MIME_DEPTH_MAX || message->part_count >= MIME_PARTS_MAX) {
		message->truncated = true;
		return;
	}
	message->part_count++;
	type = g_mime_object_get_content_type(object);
	mime_type = type != NULL ? g_mime_content_type_get_mime_type(type) : NULL;
	if (mime_type != NULL) {
		if (!mime_list_add(&message->types, mime_type, strlen(mime_type), MIME_PARTS_MAX))
			message->truncated = true;
		g_free(mime_type);
	}
	if (GMIME_IS_MESSAGE_PART(object)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));
		const char *subject = inner != NULL ? g_mime_message_get_subject(inner) : NULL;

		/* An attached message's subject is text its reader sees. */
		if (subject != NULL)
			mime_text_append(message, subject, strlen(subject));
		if (inner != NULL)
			mime_walk(g_mime_message_get_mime_part(inner), depth + 1, message);
	} else if (GMIME_IS_MULTIPART(object)) {
		GMimeMultipart *multipart = GMIME_MULTIPART(object);
		int count = g_mime_multipart_get_count(multipart);

		for (int i = 0; i < count; i++)
			mime_walk(g_mime_multipart_get_part(multipart, i), depth + 1, message);
	} else if (GMIME_IS_PART(object)) {
		GMimePart *part = GMIME_PART(object);
		const char *filename = g_mime_part_get_filename(part);

		if (filename != NULL && !mime_list_add(&message->names, filename,
						       strnlen(filename, 255), MIME_NAMES_MAX))
			message->truncated = true;
		if (type != NULL)
			mime_leaf_text(part, type, message);
	}
}

/*
 * Parses DATA (LEN bytes; an mbox "From " line first is skipped, bytes past
 * MIME_INPUT_MAX are left out and *TRUNCATED set) with GMime: the message,
 * for g_object_unref, or NULL when there is none.
 */
static GMimeMessage *mime_construct(const char *data, size_t len, bool *truncated)
{
	GMimeStream *stream;
	GMimeParser *parser;
	GMimeMessage *parsed;

	mime_init();
	/* An mbox separator line is not a header field. */
	if (len >= 5 && memcmp(data, "From ", 5) == 0) {
		const char *nl = memchr(data, '\n', len);

		len = nl != NULL ? len - (size_t)(nl + 1 - data) : 0;
		data = nl != NULL ? nl + 1 : data;
	}
	if (len > MIME_INPUT_MAX) {
		len = MIME_INPUT_MAX;
		*truncated = true;
	}
	stream = g_mime_stream_mem_new_with_buffer(data, len);
	parser = g_mime_parser_new_with_stream(stream);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	parsed = g_mime_parser_construct_message(parser, NULL);
	g_object_unref(parser);
	g_object_unref(stream);
	return parsed;
}

void mime_parse(const char *data, size_t len, struct mime_message *message)
{
	GMimeMessage *parsed;

	memset(message, 0, sizeof(*message));
	parsed = mime_construct(data, len, &message->truncated);
	if (parsed != NULL) {
		mime_headers_copy(GMIME_OBJECT(parsed), message);
		mime_walk(g_mime_message_get_mime_part(parsed), 0, message);
		g_object_unref(parsed);
	}
	if (message->text == NULL)
		message->text = xcalloc(1, 1);
}

/* The walk of mime_parse_leaves: where it is and what it calls. */
struct mime_leaf_walk {
	mime_leaf_fn *fn;
	void *arg;
	size_t part_count;
	bool truncated;
};

/* Hands the leaf PART, its transfer encoding undone, to WALK's function. */
static void mime_leaf_visit(GMimePart *part, struct mime_leaf_walk *walk)
{
	GMimeDataWrapper *content = g_mime_part_get_content(part);
	GMimeContentType *type = g_mime_object_get_content_type(GMIME_OBJECT(part));
	char *mime_type = type != NULL ? g_mime_content_type_get_mime_type(type) : NULL;
	struct mime_leaf leaf = {
	    .filename = g_mime_part_get_filename(part),
	    .type = mime_type != NULL ? mime_type : "application/octet-stream",
	    .data = (const unsigned char *)"",
	};
	GMimeStream *decoded = NULL;

	/* The decoded part is never larger than the encoded one, which is part
	 * of the MIME_INPUT_MAX bytes parsed. */
	if (content != NULL) {
		GByteArray *bytes;

		decoded = g_mime_stream_mem_new();
		if (g_mime_data_wrapper_write_to_stream(content, decoded) >= 0) {
			bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(decoded));
			if (bytes != NULL && bytes->len > 0) {
				leaf.data = bytes->data;
				leaf.len = bytes->len;
			}
		}
	}
	walk->fn(&leaf, walk->arg);
	if (decoded != NULL)
		g_object_unref(decoded);
	g_free(mime_type);
}

/* Walks OBJECT at nesting DEPTH for mime_parse_leaves, within the bounds. */
static void mime_leaf_walk(GMimeObject *object, int depth, struct mime_leaf_walk *walk)
{
	if (object == NULL)
		return;
	if (depth > MIME_DEPTH_MAX || walk->part_count >= MIME_PARTS_MAX) {
		walk->truncated = true;
		return;
	}
	walk->part_count++;
	if (GMIME_IS_MESSAGE_PART(object)) {
		GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(object));

		if (inner != NULL)
			mime_leaf_walk(g_mime_message_get_mime_part(inner), depth + 1, walk);
	} else if (GMIME_IS_MULTIPART(object)) {
		GMimeMultipart *multipart = GMIME_MULTIPART(object);
		int count = g_mime_multipart_get_count(multipart);

		for (int i = 0; i < count; i++)
			mime_leaf_walk(g_mime_multipart_get_part(multipart, i), depth + 1, walk);
	} else if (GMIME_IS_PART(object)) {
		mime_leaf_visit(GMIME_PART(object), walk);
	}
}

bool mime_parse_leaves(const char *data, size_t len, mime_leaf_fn *fn, void *arg)
{
	struct mime_leaf_walk walk = {.fn = fn, .arg = arg};
	GMimeMessage *parsed = mime_construct(data, len, &walk.truncated);

	if (parsed != NULL) {
		mime_leaf_walk(g_mime_message_get_mime_part(parsed), 0, &walk);
		g_object_unref(parsed);
	}
	return !walk.truncated;
}
