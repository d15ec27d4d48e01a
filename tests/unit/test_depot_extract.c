/*
 * test_depot_extract.c — what MailDepot indexes of a message
 * (depot/extract.c): addresses, encoded words, dates, message ids,
 * quoted-printable and base64 bodies, nested multiparts, HTML, attachment
 * names and text, office documents (.docx, .xlsx, .odt made here with
 * libarchive), the bounds, messages without headers and garbage; every
 * message of the SpamAssassin corpus (valid UTF-8, bounded, deterministic,
 * and its speed); and extraction inside the worker's confinement, which
 * must give the same fields as outside it.
 *
 * Owns: nothing outside this process (the confined extraction runs in a
 * child).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <glib.h>

#include "core/util.h"
#include "depot/depot.h"
#include "filters/mime.h"
#include "pipeline/confine.h"
#include "test_corpus.h"

/* ---- helpers ------------------------------------------------------------- */

static bool test_utf8_valid(const char *s)
{
	return s == NULL || g_utf8_validate(s, -1, NULL);
}

/* Whether S is valid UTF-8 without controls (but tab and newline when
 * MULTILINE), within MAX bytes. */
static bool test_text_valid(const char *s, size_t max, bool multiline)
{
	if (s == NULL)
		return true;
	if (strlen(s) > max || !test_utf8_valid(s))
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p < 0x20 || *p == 0x7f) && !(multiline && (*p == '\n' || *p == '\t')))
			return false;
	}
	return true;
}

/* Every field of F within depot.h's bounds, valid UTF-8. */
static bool test_fields_valid(const struct depot_fields *f)
{
	if (!test_text_valid(f->sender, DEPOT_ADDRESS_MAX, false) ||
	    !test_text_valid(f->subject, DEPOT_LINE_MAX, false) ||
	    !test_text_valid(f->message_id, DEPOT_LINE_MAX, false) ||
	    !test_text_valid(f->headers, DEPOT_HEADERS_MAX, true) ||
	    !test_text_valid(f->body, DEPOT_TEXT_MAX, true) ||
	    !test_text_valid(f->attachment_text, DEPOT_TEXT_MAX, true) || f->headers == NULL ||
	    f->body == NULL || f->attachment_text == NULL ||
	    f->recipient_count > DEPOT_RECIPIENTS_MAX ||
	    f->attachment_count > DEPOT_ATTACHMENTS_MAX || f->date < 0)
		return false;
	for (size_t i = 0; i < f->recipient_count; i++) {
		if (!test_text_valid(f->recipients[i], DEPOT_ADDRESS_MAX, false) ||
		    *f->recipients[i] == '\0')
			return false;
	}
	for (size_t i = 0; i < f->attachment_count; i++) {
		if (!test_text_valid(f->attachments[i], DEPOT_NAME_MAX, false) ||
		    *f->attachments[i] == '\0')
			return false;
	}
	return true;
}

static bool test_str_same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool test_fields_same(const struct depot_fields *a, const struct depot_fields *b)
{
	if (!test_str_same(a->sender, b->sender) || !test_str_same(a->subject, b->subject) ||
	    !test_str_same(a->message_id, b->message_id) ||
	    !test_str_same(a->headers, b->headers) || !test_str_same(a->body, b->body) ||
	    !test_str_same(a->attachment_text, b->attachment_text) || a->date != b->date ||
	    a->recipient_count != b->recipient_count || a->attachment_count != b->attachment_count)
		return false;
	for (size_t i = 0; i < a->recipient_count; i++) {
		if (strcmp(a->recipients[i], b->recipients[i]) != 0)
			return false;
	}
	for (size_t i = 0; i < a->attachment_count; i++) {
		if (strcmp(a->attachments[i], b->attachments[i]) != 0)
			return false;
	}
	return true;
}

static void test_extract(const char *raw, size_t len, struct depot_fields *f)
{
	char err[256];

	assert_int_equal(depot_extract(raw, len, f, err, sizeof(err)), 0);
	assert_true(test_fields_valid(f));
}

/* A zip (in memory, for free) holding the entries NAMES with the texts
 * TEXTS; its length in *LEN_R. */
static unsigned char *test_zip(const char *const *names, const char *const *texts, size_t count,
			       size_t *len_r)
{
	size_t capacity = 1024 * 1024;
	unsigned char *buf = xmalloc(capacity);
	struct archive *a = archive_write_new();

	assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_memory(a, buf, capacity, len_r), ARCHIVE_OK);
	for (size_t i = 0; i < count; i++) {
		struct archive_entry *entry = archive_entry_new();

		archive_entry_set_pathname(entry, names[i]);
		archive_entry_set_filetype(entry, AE_IFREG);
		archive_entry_set_perm(entry, 0644);
		archive_entry_set_size(entry, (la_int64_t)strlen(texts[i]));
		assert_int_equal(archive_write_header(a, entry), ARCHIVE_OK);
		assert_int_equal(archive_write_data(a, texts[i], strlen(texts[i])),
				 (la_ssize_t)strlen(texts[i]));
		archive_entry_free(entry);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
	return buf;
}

/* A message with the attachment DATA (LEN bytes) called NAME of TYPE,
 * base64; for free. */
static char *test_with_attachment(const unsigned char *data, size_t len, const char *name,
				  const char *type)
{
	gchar *encoded = g_base64_encode(data, len);
	char *message = xasprintf("From: a@example.org\r\n"
				  "To: b@example.org\r\n"
				  "Subject: document\r\n"
				  "MIME-Version: 1.0\r\n"
				  "Content-Type: multipart/mixed; boundary=\"zz\"\r\n"
				  "\r\n"
				  "--zz\r\n"
				  "Content-Type: text/plain\r\n"
				  "\r\n"
				  "see the attachment\r\n"
				  "--zz\r\n"
				  "Content-Type: %s\r\n"
				  "Content-Disposition: attachment; filename=\"%s\"\r\n"
				  "Content-Transfer-Encoding: base64\r\n"
				  "\r\n"
				  "%s\r\n"
				  "--zz--\r\n",
				  type, name, encoded);

	g_free(encoded);
	return message;
}

/* ---- crafted messages ----------------------------------------------------- */

static void test_header_fields(void **state)
{
	static const char text[] =
	    "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <Joerg.Mueller@Example.ORG>\r\n"
	    "To: You <You@Example.net>, other@example.net\r\n"
	    "Cc: team: Ann <ann@example.com>, bob@example.com;\r\n"
	    "Bcc: hidden@example.com\r\n"
	    "Delivered-To: you@example.net\r\n"
	    "X-Original-To: Alias@Example.net\r\n"
	    "Reply-To: Replies <replies@example.org>\r\n"
	    "Subject: =?utf-8?B?R3LDvMOfZQ==?= aus =?iso-8859-1?q?K=F6ln?=\r\n"
	    "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
	    "Message-ID: <abc.123@example.org>\r\n"
	    "\r\n"
	    "hello\r\n";
	static const char *const recipients[] = {"you@example.net",    "other@example.net",
						 "ann@example.com",    "bob@example.com",
						 "hidden@example.com", "alias@example.net"};
	struct depot_fields f;

	(void)state;
	test_extract(text, sizeof(text) - 1, &f);
	assert_string_equal(f.sender, "joerg.mueller@example.org");
	assert_int_equal(f.recipient_count, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(f.recipients[i], recipients[i]);
	assert_string_equal(f.subject, "Grüße aus Köln");
	assert_int_equal(f.date, 1796115600);
	assert_string_equal(f.message_id, "abc.123@example.org");
	assert_non_null(strstr(f.headers, "From: Jörg Müller <Joerg.Mueller@Example.ORG>\n"));
	assert_non_null(strstr(f.headers, "Subject: Grüße aus Köln\n"));
	assert_non_null(strstr(f.headers, "Reply-To: Replies <replies@example.org>\n"));
	assert_non_null(strstr(f.headers, "Cc: team: Ann <ann@example.com>, bob@example.com;\n"));
	/* Bcc is nobody's header text. */
	assert_null(strstr(f.headers, "hidden"));
	assert_string_equal(f.body, "hello\n");
	assert_string_equal(f.attachment_text, "");
	assert_int_equal(f.attachment_count, 0);
	depot_fields_free(&f);
	depot_fields_free(&f);
	depot_fields_free(NULL);
}

/* Encoded words are decoded here, with only the converters mime_init
 * loaded: a character split between two words, whitespace between words
 * dropped (not between a word and text), a charset without a loaded
 * converter (CP437) kept where its bytes are UTF-8 and replaced where not,
 * broken words left as they are, raw 8-bit text read as Latin-1. */
static void test_encoded_words(void **state)
{
	static const struct {
		const char *subject;
		const char *expect;
	} cases[] = {
	    {"=?utf-8?Q?=C3?= =?UTF-8?Q?=A4?=", "ä"},
	    {"=?utf-8?B?w6Q=?=\r\n =?iso-8859-1?q?=F6?= x =?utf-8*de?q?=C3=BC_y?=", "äö x ü y"},
	    {"=?CP437?Q?=81ber?= ok", "\xef\xbf\xbd"
				      "ber ok"},
	    {"=?utf-8?Q?no end", "=?utf-8?Q?no end"},
	    {"=?utf-8?X?abc?= =??Q?a?=", "=?utf-8?X?abc?= =??Q?a?="},
	    {"=?koi8-r?B?8NLJ18XU?=,\tfolded\r\n line", "Привет, folded line"},
	    {"caf\xe9 \xc3\xa9", "café é"},
	    {"   ", ""},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *message =
		    xasprintf("From: a@example.org\r\nSubject: %s\r\n\r\nx\r\n", cases[i].subject);
		struct depot_fields f;

		test_extract(message, strlen(message), &f);
		if (strcmp(f.subject, cases[i].expect) != 0)
			fail_msg("case %zu: \"%s\" != \"%s\"", i, f.subject, cases[i].expect);
		depot_fields_free(&f);
		free(message);
	}
}

static void test_bad_date_and_missing(void **state)
{
	static const char text[] = "From: Nobody\r\n"
				   "Date: the day after tomorrow\r\n"
				   "Message-ID: <>\r\n"
				   "\r\n"
				   "x\r\n";
	struct depot_fields f;

	(void)state;
	test_extract(text, sizeof(text) - 1, &f);
	/* A local name is an address too, as written. */
	assert_string_equal(f.sender, "nobody");
	assert_null(f.subject);
	assert_int_equal(f.date, 0);
	assert_null(f.message_id);
	assert_int_equal(f.recipient_count, 0);
	depot_fields_free(&f);
}

static void test_transfer_encodings_nested(void **state)
{
	static const char text[] = "From: a@example.org\n"
				   "Subject: parts\n"
				   "MIME-Version: 1.0\n"
				   "Content-Type: multipart/mixed; boundary=\"outer\"\n"
				   "\n"
				   "--outer\n"
				   "Content-Type: multipart/alternative; boundary=\"inner\"\n"
				   "\n"
				   "--inner\n"
				   "Content-Type: text/plain; charset=iso-8859-1\n"
				   "Content-Transfer-Encoding: quoted-printable\n"
				   "\n"
				   "Sch=F6ne Gr=FC=DFe, a long line that is =\n"
				   "folded\n"
				   "--inner\n"
				   "Content-Type: text/html; charset=utf-8\n"
				   "\n"
				   "<p>the same as HTML</p>\n"
				   "--inner--\n"
				   "--outer\n"
				   "Content-Type: text/plain; charset=utf-8\n"
				   "Content-Transfer-Encoding: base64\n"
				   "\n"
				   "0J/RgNC40LLQtdGCLCDQvNC40YAh\n"
				   "--outer\n"
				   "Content-Type: message/rfc822\n"
				   "\n"
				   "From: inner@example.org\n"
				   "Subject: inside\n"
				   "Content-Type: text/plain; charset=windows-1252\n"
				   "\n"
				   "\x93quoted\x94 inner text\n"
				   "--outer--\n";
	struct depot_fields f;

	(void)state;
	test_extract(text, sizeof(text) - 1, &f);
	assert_non_null(strstr(f.body, "Schöne Grüße, a long line that is folded\n"));
	/* multipart/alternative: the plain text, not the HTML beside it. */
	assert_null(strstr(f.body, "as HTML"));
	assert_non_null(strstr(f.body, "Привет, мир!\n"));
	assert_non_null(strstr(f.body, "\u201cquoted\u201d inner text\n"));
	assert_string_equal(f.sender, "a@example.org");
	depot_fields_free(&f);
}

static void test_html_only(void **state)
{
	static const char text[] =
	    "From: news@example.org\r\n"
	    "Subject: news\r\n"
	    "Content-Type: text/html; charset=iso-8859-1\r\n"
	    "\r\n"
	    "<html><head><style>p {color: red}</style></head><body>"
	    "<p>Caf\xe9 &amp; <b>Bar</b></p><script>var x = 1;</script>"
	    "<a href=\"http://example.org/\">link text</a></body></html>\r\n";
	struct depot_fields f;

	(void)state;
	test_extract(text, sizeof(text) - 1, &f);
	assert_non_null(strstr(f.body, "Café & Bar"));
	assert_non_null(strstr(f.body, "link text"));
	assert_null(strstr(f.body, "<"));
	assert_null(strstr(f.body, "color"));
	assert_null(strstr(f.body, "var x"));
	depot_fields_free(&f);
}

static void test_attachments(void **state)
{
	static const char text[] =
	    "From: a@example.org\n"
	    "Subject: files\n"
	    "Content-Type: multipart/mixed; boundary=\"b\"\n"
	    "\n"
	    "--b\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "the body\n"
	    "--b\n"
	    "Content-Type: text/csv; name=\"table.csv\"\n"
	    "Content-Disposition: attachment\n"
	    "\n"
	    "name;amount\n"
	    "Invoice;42\n"
	    "--b\n"
	    "Content-Type: application/pdf\n"
	    "Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "JVBERi0xLjQK\n"
	    "--b\n"
	    "Content-Type: application/octet-stream; name=\"=?utf-8?B?w6TDtsO8LmJpbg==?=\"\n"
	    "\n"
	    "binary\n"
	    "--b--\n";
	struct depot_fields f;

	(void)state;
	test_extract(text, sizeof(text) - 1, &f);
	assert_int_equal(f.attachment_count, 3);
	assert_string_equal(f.attachments[0], "table.csv");
	assert_string_equal(f.attachments[1], "Rechnung März.pdf");
	assert_string_equal(f.attachments[2], "äöü.bin");
	assert_string_equal(f.body, "the body\n");
	assert_string_equal(f.attachment_text, "name;amount\nInvoice;42\n");
	depot_fields_free(&f);
}

/* File names decoded here: RFC 2231 pieces put together (encoded or not,
 * in their order), quoted names with escapes and ';', a charset without
 * a loaded converter replaced, a name in Content-Type when the disposition
 * has none; parameters that only look alike ignored. */
static void test_file_names(void **state)
{
	static const struct {
		const char *headers;
		const char *expect;
	} cases[] = {
	    {"Content-Disposition: attachment;\r\n filename*1=\"sse.txt\";\r\n"
	     " filename*0*=utf-8'de'Gr%C3%BC",
	     "Grüsse.txt"},
	    {"Content-Disposition: attachment; filename=\"a \\\"b\\\"; c.txt\"", "a \"b\"; c.txt"},
	    {"Content-Disposition: attachment; filename*=cp437''%81ber.txt", "\xef\xbf\xbd"
									     "ber.txt"},
	    {"Content-Disposition: inline\r\nContent-Type: text/plain; name=plain.txt",
	     "plain.txt"},
	    {"Content-Disposition: attachment; xfilename=no.txt; filenames=no.txt;"
	     " filename*9=no.txt; filename*x*=no.txt\r\nContent-Type: text/plain; name=\"yes.txt\"",
	     "yes.txt"},
	    {"Content-Disposition: attachment; filename=\"=?iso-8859-1?Q?K=F6ln.txt?=\"",
	     "Köln.txt"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *message = xasprintf("From: a@example.org\r\n"
					  "Content-Type: multipart/mixed; boundary=\"b\"\r\n"
					  "\r\n"
					  "--b\r\n"
					  "%s\r\n"
					  "\r\n"
					  "content\r\n"
					  "--b--\r\n",
					  cases[i].headers);
		struct depot_fields f;

		test_extract(message, strlen(message), &f);
		if (f.attachment_count != 1 || strcmp(f.attachments[0], cases[i].expect) != 0)
			fail_msg("case %zu: %zu names, \"%s\"", i, f.attachment_count,
				 f.attachment_count > 0 ? f.attachments[0] : "");
		depot_fields_free(&f);
		free(message);
	}
}

static void test_documents(void **state)
{
	static const char *const docx_names[] = {"[Content_Types].xml", "word/document.xml"};
	static const char *const docx_texts[] = {
	    "<?xml version=\"1.0\"?><Types/>",
	    "<?xml version=\"1.0\"?><w:document><w:body><w:p><w:r><w:t>Quarterly</w:t></w:r>"
	    "<w:r><w:t xml:space=\"preserve\"> rep</w:t></w:r><w:r><w:t>ort</w:t></w:r></w:p>"
	    "<w:p><w:r><w:t>Umsatz &amp; Gewinn &#8364;</w:t></w:r></w:p></w:body></w:document>"};
	static const char *const odt_names[] = {"mimetype", "content.xml"};
	static const char *const odt_texts[] = {
	    "application/vnd.oasis.opendocument.text",
	    "<office:document-content><office:body><office:text><text:h>Protokoll</text:h>"
	    "<text:p>Sitzung<text:tab/>vom Montag</text:p></office:text></office:body>"
	    "</office:document-content>"};
	static const char *const xlsx_names[] = {"xl/sharedStrings.xml"};
	static const char *const xlsx_texts[] = {
	    "<sst><si><t>Kunde</t></si><si><t>Betrag &lt;netto&gt;</t></si></sst>"};
	struct {
		const char *const *names;
		const char *const *texts;
		size_t count;
		const char *file;
		const char *type;
		const char *expect;
	} cases[] = {
	    {docx_names, docx_texts, 2, "report.docx", "application/octet-stream",
	     "Quarterly report\nUmsatz & Gewinn €\n"},
	    {odt_names, odt_texts, 2, "protokoll.ODT", "application/octet-stream",
	     "Protokoll\nSitzung\nvom Montag\n"},
	    {xlsx_names, xlsx_texts, 1, "sheet",
	     "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
	     "Kunde\nBetrag <netto>\n"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct depot_fields f;
		size_t zip_len;
		unsigned char *zip =
		    test_zip(cases[i].names, cases[i].texts, cases[i].count, &zip_len);
		char *message = test_with_attachment(zip, zip_len, cases[i].file, cases[i].type);

		test_extract(message, strlen(message), &f);
		assert_string_equal(f.attachment_text, cases[i].expect);
		assert_string_equal(f.body, "see the attachment\n");
		assert_int_equal(f.attachment_count, 1);
		assert_string_equal(f.attachments[0], cases[i].file);
		depot_fields_free(&f);
		free(message);
		free(zip);
	}
}

/* A document whose text decompresses to far more than a document's ratio
 * allows (a zip bomb) is not read; a zip that is not one, neither. */
static void test_document_bounds(void **state)
{
	static const char *const names[] = {"word/document.xml"};
	size_t big_len = 4 * 1024 * 1024;
	char *big = xmalloc(big_len + 1);
	const char *texts[1] = {big};
	static const unsigned char not_zip[] = "PK\3\4 this is no zip at all";
	struct depot_fields f;
	unsigned char *zip;
	char *message;
	size_t zip_len;

	(void)state;
	memset(big, 'a', big_len);
	big[big_len] = '\0';
	zip = test_zip(names, texts, 1, &zip_len);
	assert_true(zip_len * 100 < big_len);
	message = test_with_attachment(zip, zip_len, "bomb.docx", "application/octet-stream");
	test_extract(message, strlen(message), &f);
	assert_string_equal(f.attachment_text, "");
	assert_string_equal(f.attachments[0], "bomb.docx");
	depot_fields_free(&f);
	free(message);
	free(zip);
	free(big);

	message = test_with_attachment(not_zip, sizeof(not_zip) - 1, "broken.docx",
				       "application/octet-stream");
	test_extract(message, strlen(message), &f);
	assert_string_equal(f.attachment_text, "");
	depot_fields_free(&f);
	free(message);
}

/* Text beyond DEPOT_TEXT_MAX is cut at a character's boundary; recipients
 * beyond DEPOT_RECIPIENTS_MAX are left out. */
static void test_bounds(void **state)
{
	size_t body_len = DEPOT_TEXT_MAX + 1000;
	size_t header_room = 40 * (DEPOT_RECIPIENTS_MAX + 500);
	char *message = xmalloc(header_room + body_len + 256);
	struct depot_fields f;
	size_t len = 0;

	(void)state;
	len += (size_t)sprintf(message + len, "From: a@example.org\nTo: r0@example.org");
	for (size_t i = 1; i < DEPOT_RECIPIENTS_MAX + 500; i++)
		len += (size_t)sprintf(message + len, ",\n r%zu@example.org", i);
	len += (size_t)sprintf(message + len, "\nContent-Type: text/plain; charset=utf-8\n\nx");
	/* "é" is two bytes: after "x" the cut falls inside one unless the
	 * text is cut at a boundary. */
	for (size_t i = 0; i < body_len / 2; i++, len += 2)
		memcpy(message + len, "\xc3\xa9", 2);
	test_extract(message, len, &f);
	assert_int_equal(f.recipient_count, DEPOT_RECIPIENTS_MAX);
	assert_string_equal(f.recipients[DEPOT_RECIPIENTS_MAX - 1], "r999@example.org");
	assert_true(strlen(f.body) <= DEPOT_TEXT_MAX);
	assert_true(strlen(f.body) > DEPOT_TEXT_MAX - 4);
	assert_true(strlen(f.headers) <= DEPOT_HEADERS_MAX);
	depot_fields_free(&f);
	free(message);
}

static void test_no_headers_and_garbage(void **state)
{
	static const char bodyless[] = "just some words\nand no header at all\n";
	static const char invalid[] = "From: a@example.org\n"
				      "Subject: bad \xff\xfe bytes \x01 here\n"
				      "Content-Type: text/plain; charset=x-unknown\n"
				      "\n"
				      "caf\xe9 \xc3\xa9 \x00 nul\n";
	unsigned char *garbage = xmalloc(65536);
	struct depot_fields f;
	struct depot_fields again;
	uint32_t seed = 12345;
	char err[64];

	(void)state;
	test_extract(bodyless, sizeof(bodyless) - 1, &f);
	assert_null(f.sender);
	assert_null(f.subject);
	assert_int_equal(f.date, 0);
	depot_fields_free(&f);

	test_extract("", 0, &f);
	assert_string_equal(f.body, "");
	depot_fields_free(&f);
	assert_int_equal(depot_extract(NULL, 0, &f, err, sizeof(err)), -1);
	assert_null(f.body);

	test_extract(invalid, sizeof(invalid) - 1, &f);
	/* GMime reads raw 8-bit header bytes that are not UTF-8 as Latin-1. */
	assert_string_equal(f.subject, "bad ÿþ bytes   here");
	assert_string_equal(f.body, "caf\xef\xbf\xbd \xc3\xa9   nul\n");
	depot_fields_free(&f);

	for (int round = 0; round < 20; round++) {
		for (size_t i = 0; i < 65536; i++) {
			seed = seed * 1103515245u + 12345u;
			garbage[i] = (unsigned char)(seed >> 16);
			/* Now and then a structure character, so the parser
			 * gets somewhere. */
			if ((seed & 0x3f) == 0)
				garbage[i] = "\n:-=<>@\"?"[seed % 9];
		}
		test_extract((const char *)garbage, 65536, &f);
		test_extract((const char *)garbage, 65536, &again);
		assert_true(test_fields_same(&f, &again));
		depot_fields_free(&f);
		depot_fields_free(&again);
	}
	free(garbage);
}

/* ---- the corpus ------------------------------------------------------------- */

/* Real spam: a Big5 subject and HTML body. Real ham: a forwarded message. */
static void test_corpus_messages(void **state)
{
	struct depot_fields f;
	char *data;
	size_t len;

	(void)state;
	assert_int_equal(test_corpus_read("spam-1", "00252.", &data, &len), 0);
	test_extract(data, len, &f);
	assert_string_equal(f.subject, "不看會後悔");
	assert_non_null(strstr(f.body, "烏鴉與兔子"));
	assert_null(strstr(f.body, "<"));
	assert_true(f.date > 1000000000);
	depot_fields_free(&f);
	free(data);

	assert_int_equal(test_corpus_read("easy-ham-1", "01294.", &data, &len), 0);
	test_extract(data, len, &f);
	assert_string_equal(f.subject, "Fw: some (null) eyecandy packages");
	assert_non_null(strstr(f.body, "http://www.dudex.net/rpms/gtk2-engines-compat-1.0.spec"));
	assert_non_null(f.sender);
	assert_non_null(f.message_id);
	depot_fields_free(&f);
	free(data);
}

/* The corpus messages of GROUPS, read into *DATA and *LENS; their count. */
static size_t test_corpus_load(const char *const *groups, size_t group_count, char ***data,
			       size_t **lens)
{
	size_t count = 0;

	*data = NULL;
	*lens = NULL;
	for (size_t g = 0; g < group_count; g++) {
		glob_t files;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		*data = xrealloc(*data, (count + files.gl_pathc) * sizeof(**data));
		*lens = xrealloc(*lens, (count + files.gl_pathc) * sizeof(**lens));
		for (size_t i = 0; i < files.gl_pathc; i++, count++)
			assert_int_equal(
			    util_read_file(files.gl_pathv[i], &(*data)[count], &(*lens)[count]), 0);
		globfree(&files);
	}
	return count;
}

static void test_corpus_free(char **data, size_t *lens, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(data[i]);
	free(data);
	free(lens);
}

/*
 * Every message of the corpus: valid, bounded fields, the same on a second
 * extraction; most have a sender, a subject, a date and a body. Prints the
 * speed (messages per second, this one thread).
 */
static void test_corpus_all(void **state)
{
	static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1",
					     "spam-2"};
	size_t with_sender = 0, with_subject = 0, with_date = 0, with_body = 0;
	struct timespec start, end;
	uint64_t bytes = 0;
	char **data;
	size_t *lens;
	size_t count = test_corpus_load(groups, 5, &data, &lens);
	double seconds;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (size_t i = 0; i < count; i++) {
		struct depot_fields f;

		test_extract(data[i], lens[i], &f);
		with_sender += f.sender != NULL;
		with_subject += f.subject != NULL;
		with_date += f.date > 0;
		with_body += f.body[0] != '\0';
		bytes += lens[i];
		depot_fields_free(&f);
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
	printf("depot_extract: %zu corpus messages (%.1f MB) in %.2f s: %.0f messages/s, "
	       "%.1f MB/s\n",
	       count, (double)bytes / 1e6, seconds, (double)count / seconds,
	       (double)bytes / 1e6 / seconds);
	assert_true(count > 5000);
	assert_true(with_sender >= count * 95 / 100);
	assert_true(with_subject >= count * 95 / 100);
	assert_true(with_date >= count * 95 / 100);
	assert_true(with_body >= count * 95 / 100);
	for (size_t i = 0; i < count; i += 7) {
		struct depot_fields f, again;

		test_extract(data[i], lens[i], &f);
		test_extract(data[i], lens[i], &again);
		assert_true(test_fields_same(&f, &again));
		depot_fields_free(&f);
		depot_fields_free(&again);
	}
	test_corpus_free(data, lens, count);
}

/* ---- confinement ------------------------------------------------------------- */

/*
 * In a confined process (the worker's seccomp filter), after mime_init:
 * every message of spam-2 and hard-ham-1 (odd charsets, HTML, broken MIME),
 * a KOI8-R and Windows-1252 message (with words and a file name in
 * charsets whose converters are not loaded: replaced alike) and an .odt
 * give exactly the
 * fields they give unconfined, and nothing kills the process.
 */
static void test_confined(void **state)
{
	static const char *const groups[] = {"spam-2", "hard-ham-1"};
	static const char *const odt_names[] = {"content.xml"};
	static const char *const odt_texts[] = {"<text:p>Vertrag</text:p>"};
	static const char charsets[] = "From: =?CP437?Q?=81ber?= <a@example.org>\n"
				       "Subject: =?koi8-r?B?8NLJ18XU?= =?ISO-8859-10?Q?=E6?=\n"
				       "Content-Type: text/plain; charset=windows-1252\n"
				       "Content-Disposition: inline; filename*=cp437''%81ber.txt\n"
				       "\n"
				       "\x93quoted\x94\n";
	struct depot_fields *expected;
	size_t zip_len;
	unsigned char *zip = test_zip(odt_names, odt_texts, 1, &zip_len);
	char **data;
	size_t *lens;
	size_t count = test_corpus_load(groups, 2, &data, &lens);
	pid_t pid;
	int status;

	(void)state;
	data = xrealloc(data, (count + 2) * sizeof(*data));
	lens = xrealloc(lens, (count + 2) * sizeof(*lens));
	data[count] = xstrdup(charsets);
	lens[count] = strlen(charsets);
	count++;
	data[count] = test_with_attachment(zip, zip_len, "vertrag.odt", "application/octet-stream");
	lens[count] = strlen(data[count]);
	count++;
	expected = xcalloc(count, sizeof(*expected));
	for (size_t i = 0; i < count; i++)
		test_extract(data[i], lens[i], &expected[i]);
	assert_string_equal(expected[count - 2].subject, "Привет\xef\xbf\xbd");
	assert_string_equal(expected[count - 2].attachment_text, "\u201cquoted\u201d\n");
	assert_string_equal(expected[count - 2].attachments[0], "\ufffdber.txt");
	assert_string_equal(expected[count - 1].attachment_text, "Vertrag\n");
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		size_t differ = 0;

		mime_init();
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(10);
		for (size_t i = 0; i < count; i++) {
			struct depot_fields f;

			if (depot_extract(data[i], lens[i], &f, err, sizeof(err)) < 0)
				_exit(11);
			if (!test_fields_same(&f, &expected[i])) {
				fprintf(stderr, "confined extraction differs: message %zu\n", i);
				differ++;
			}
			depot_fields_free(&f);
		}
		_exit(differ == 0 ? 0 : 12);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < count; i++)
		depot_fields_free(&expected[i]);
	free(expected);
	test_corpus_free(data, lens, count);
	free(zip);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_fields),
	    cmocka_unit_test(test_encoded_words),
	    cmocka_unit_test(test_bad_date_and_missing),
	    cmocka_unit_test(test_transfer_encodings_nested),
	    cmocka_unit_test(test_html_only),
	    cmocka_unit_test(test_attachments),
	    cmocka_unit_test(test_file_names),
	    cmocka_unit_test(test_documents),
	    cmocka_unit_test(test_document_bounds),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_no_headers_and_garbage),
	    cmocka_unit_test(test_corpus_messages),
	    cmocka_unit_test(test_corpus_all),
	    cmocka_unit_test(test_confined),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
