/*
 * test_attachments.c — the attachments filter (filters/attachments.c):
 * blocked and double extensions and disguised names (RFC 2231 and encoded
 * word names, which GMime decodes), executables by content (PE, ELF,
 * Mach-O; not scripts), zip and 7z archives made here with libarchive's
 * writer (names and content inside, one level of nesting, encrypted entries),
 * an encrypted zip made by Info-ZIP's zip -P and encrypted 7z archives made
 * by 7-Zip (checked in under tests/unit/data/: neither tool is needed to test),
 * the bounds against archive bombs, the reason's length, the filter inside a
 * confined process, and the ham of the SpamAssassin corpus, none of which
 * may be flagged.
 *
 * Owns: nothing outside this process (the confined run is a child).
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

#include <archive.h>
#include <archive_entry.h>
#include <cmocka.h>
#include <glib.h>

#include "core/util.h"
#include "filters/attachments.h"
#include "filters/mime.h"
#include "pipeline/confine.h"
#include "pipeline/pipeline.h"
#include "test_corpus.h"

/* ---- making messages and archives ---------------------------------------- */

/* A message whose second part has the header lines PART_HEADERS (CRLF
 * terminated) and the body DATA (LEN bytes) in base64; for free. */
static char *test_mail(const char *part_headers, const void *data, size_t len)
{
	gchar *encoded = g_base64_encode(data, len);
	char *mail = xasprintf("From: sender@example.org\r\n"
			       "To: rcpt@example.net\r\n"
			       "Subject: the files\r\n"
			       "MIME-Version: 1.0\r\n"
			       "Content-Type: multipart/mixed; boundary=\"sep\"\r\n"
			       "\r\n"
			       "--sep\r\n"
			       "Content-Type: text/plain; charset=utf-8\r\n"
			       "\r\n"
			       "Please find the files attached.\r\n"
			       "--sep\r\n"
			       "%s"
			       "Content-Transfer-Encoding: base64\r\n"
			       "\r\n"
			       "%s\r\n"
			       "--sep--\r\n",
			       part_headers, encoded);

	g_free(encoded);
	return mail;
}

/* The same with an attachment called NAME (plain ASCII) of type TYPE. */
static char *test_named(const char *name, const char *type, const void *data, size_t len)
{
	char *headers = xasprintf("Content-Type: %s; name=\"%s\"\r\n"
				  "Content-Disposition: attachment; filename=\"%s\"\r\n",
				  type, name, name);
	char *mail = test_mail(headers, data, len);

	free(headers);
	return mail;
}

/* Runs the filter on MAIL (frees it) with BLOCKED; the score, and the
 * reason in *REASON (for free). */
static double test_judge(char *mail, const char *blocked, char **reason)
{
	struct pipeline_result result = {.status = PIPELINE_RESULT_OK};

	attachments_judge(mail, strlen(mail), blocked, &result);
	free(mail);
	assert_non_null(result.reason);
	assert_true(strlen(result.reason) <= 200);
	for (const char *c = result.reason; *c != '\0'; c++)
		assert_true(*c >= 0x20 && *c < 0x7f);
	*reason = result.reason;
	return result.score;
}

/* Asserts that MAIL (freed) scores POINTS with a reason containing WANT. */
static void test_expect(char *mail, const char *blocked, double points, const char *want)
{
	char *reason;
	double score = test_judge(mail, blocked, &reason);

	if (strstr(reason, want) == NULL || score != points)
		fail_msg("score %.1f, reason \"%s\"; wanted %.1f and \"%s\"", score, reason, points,
			 want);
	free(reason);
}

/* A Windows PE image's first bytes: "MZ", the PE header's offset at 0x3c,
 * and the "PE\0\0" signature there. */
static void test_pe(unsigned char *out, size_t len)
{
	memset(out, 0, len);
	memcpy(out, "MZ\x90", 3);
	out[0x3c] = 0x80;
	memcpy(out + 0x80, "PE\0\0\x4c\x01", 6);
}

static const unsigned char test_elf[] = "\x7f"
					"ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0";
static const unsigned char test_macho[] = "\xcf\xfa\xed\xfe\x07\0\0\x01\x03\0\0\0";

struct test_entry {
	const char *name;
	const void *data;
	size_t len;
};

struct test_buffer {
	unsigned char *data;
	size_t len;
};

/* An archive (zip, or 7z when SEVEN_ZIP) of ENTRIES, encrypted with
 * PASSPHRASE unless it is NULL; its bytes in *OUT (data for free). */
static void test_archive(bool seven_zip, const char *passphrase, const struct test_entry *entries,
			 size_t count, struct test_buffer *out)
{
	struct archive *archive = archive_write_new();
	size_t capacity = 8 * 1024 * 1024;

	out->data = xmalloc(capacity);
	out->len = 0;
	assert_int_equal(seven_zip ? archive_write_set_format_7zip(archive)
				   : archive_write_set_format_zip(archive),
			 ARCHIVE_OK);
	if (passphrase != NULL) {
		assert_int_equal(archive_write_set_options(archive, "zip:encryption=zipcrypt"),
				 ARCHIVE_OK);
		assert_int_equal(archive_write_set_passphrase(archive, passphrase), ARCHIVE_OK);
	}
	assert_int_equal(archive_write_open_memory(archive, out->data, capacity, &out->len),
			 ARCHIVE_OK);
	for (size_t i = 0; i < count; i++) {
		struct archive_entry *entry = archive_entry_new();

		archive_entry_set_pathname_utf8(entry, entries[i].name);
		archive_entry_set_filetype(entry, AE_IFREG);
		archive_entry_set_perm(entry, 0644);
		archive_entry_set_size(entry, (la_int64_t)entries[i].len);
		assert_int_equal(archive_write_header(archive, entry), ARCHIVE_OK);
		if (entries[i].len > 0)
			assert_int_equal(
			    archive_write_data(archive, entries[i].data, entries[i].len),
			    (la_ssize_t)entries[i].len);
		archive_entry_free(entry);
	}
	assert_int_equal(archive_write_close(archive), ARCHIVE_OK);
	archive_write_free(archive);
}

static const char test_text[] = "Minutes of the meeting: nothing to report.\n";

/* ---- names ------------------------------------------------------------------ */

static void test_blocked_extension(void **state)
{
	(void)state;
	test_expect(
	    test_named("invoice.exe", "application/octet-stream", test_text, sizeof(test_text) - 1),
	    NULL, 10.0, "attachments: blocked extension .exe: invoice.exe");
	test_expect(
	    test_named("SETUP.SCR", "application/octet-stream", test_text, sizeof(test_text) - 1),
	    NULL, 10.0, "blocked extension .SCR: SETUP.SCR");
	/* Windows drops trailing dots and spaces. */
	test_expect(
	    test_named("run.bat. . ", "application/octet-stream", test_text, sizeof(test_text) - 1),
	    NULL, 10.0, "blocked extension .bat: run.bat. . ");
	test_expect(test_named("notes.txt", "text/plain", test_text, sizeof(test_text) - 1), NULL,
		    0.0, "attachments: nothing found (2 parts, 0 archive entries)");
	test_expect(test_named("exe", "application/octet-stream", test_text, sizeof(test_text) - 1),
		    NULL, 0.0, "nothing found");
}

static void test_double_extension(void **state)
{
	(void)state;
	test_expect(
	    test_named("invoice.pdf.exe", "application/pdf", test_text, sizeof(test_text) - 1),
	    NULL, 10.0, "double extension .pdf.exe: invoice.pdf.exe");
	test_expect(
	    test_named("photo.jpg          .scr", "image/jpeg", test_text, sizeof(test_text) - 1),
	    NULL, 10.0, "double extension .jpg.scr: photo.jpg          .scr");
	/* A version number is no decoy. */
	test_expect(test_named("tool-1.2.exe", "application/octet-stream", test_text,
			       sizeof(test_text) - 1),
		    NULL, 10.0, "blocked extension .exe: tool-1.2.exe");
	/* The other way round is a document. */
	test_expect(
	    test_named("setup.exe.pdf", "application/pdf", test_text, sizeof(test_text) - 1), NULL,
	    0.0, "nothing found");
}

/* Names GMime decodes: RFC 2231 (with continuations) and encoded words,
 * and the right-to-left override that makes "gpj.exe" read "exe.jpg". */
static void test_encoded_names(void **state)
{
	(void)state;
	test_expect(test_mail("Content-Type: application/octet-stream\r\n"
			      "Content-Disposition: attachment;\r\n"
			      " filename*0*=UTF-8''Rechnung%20M%C3%A4rz;\r\n"
			      " filename*1*=.pdf%20%20%20.js\r\n",
			      test_text, sizeof(test_text) - 1),
		    NULL, 10.0, "double extension .pdf.js: Rechnung M??rz.pdf   .js");
	test_expect(test_mail("Content-Type: application/octet-stream;\r\n"
			      " name=\"=?UTF-8?B?cGhvdG/igK5ncGouZXhl?=\"\r\n",
			      test_text, sizeof(test_text) - 1),
		    NULL, 10.0, "disguised name (bidi control): photo???gpj.exe");
	test_expect(test_mail("Content-Type: application/octet-stream\r\n"
			      "Content-Disposition: attachment;\r\n"
			      " filename=\"=?ISO-8859-1?Q?K=FCndigung=2Evbs?=\"\r\n",
			      test_text, sizeof(test_text) - 1),
		    NULL, 10.0, "blocked extension .vbs: K??ndigung.vbs");
}

/* [spam] blocked_extensions replaces the list: dots, commas, any case. */
static void test_blocked_setting(void **state)
{
	(void)state;
	test_expect(test_named("invoice.pdf", "application/pdf", test_text, sizeof(test_text) - 1),
		    ".PDF, txt", 10.0, "blocked extension .pdf: invoice.pdf");
	test_expect(
	    test_named("invoice.exe", "application/octet-stream", test_text, sizeof(test_text) - 1),
	    ".PDF, txt", 0.0, "nothing found");
}

/* ---- content ------------------------------------------------------------------- */

static void test_executable_content(void **state)
{
	unsigned char pe[512];
	static const char script[] = "#!/bin/sh\necho hello\n";
	static const char mz_text[] = "MZ is how the note starts, and it is only text.\n"
				      "Nothing here points at a PE header anywhere.\n";

	(void)state;
	test_pe(pe, sizeof(pe));
	test_expect(test_named("report.pdf", "application/pdf", pe, sizeof(pe)), NULL, 10.0,
		    "executable (PE): report.pdf");
	test_expect(test_named("notes.txt", "text/plain", test_elf, sizeof(test_elf) - 1), NULL,
		    10.0, "executable (ELF): notes.txt");
	test_expect(test_named("movie.mov", "video/quicktime", test_macho, sizeof(test_macho) - 1),
		    NULL, 10.0, "executable (Mach-O): movie.mov");
	/* No name at all: shown by its type. */
	test_expect(test_mail("Content-Type: application/x-msdownload\r\n", pe, sizeof(pe)), NULL,
		    10.0, "executable (PE): application/x-msdownload");
	/* A PE named .exe is one finding for the name and one for the content. */
	test_expect(test_named("tool.exe", "application/octet-stream", pe, sizeof(pe)), NULL, 10.0,
		    "blocked extension .exe: tool.exe; executable (PE): tool.exe");
	test_expect(test_named("install.sh", "application/x-sh", script, sizeof(script) - 1), NULL,
		    0.0, "nothing found");
	test_expect(
	    test_named("note.bin", "application/octet-stream", mz_text, sizeof(mz_text) - 1), NULL,
	    0.0, "nothing found");
}

/* ---- archives -------------------------------------------------------------------- */

/* Cuts ZIP's central directory off: what a zip cut short, or written as a
 * stream, looks like. */
static void test_zip_without_directory(struct test_buffer *zip)
{
	const unsigned char *directory = memmem(zip->data, zip->len, "PK\1\2", 4);

	assert_non_null(directory);
	zip->len = (size_t)(directory - zip->data);
}

static char *test_zip_mail(const char *name, const struct test_entry *entries, size_t count)
{
	struct test_buffer zip;
	char *mail;

	test_archive(false, NULL, entries, count, &zip);
	mail = test_named(name, "application/zip", zip.data, zip.len);
	free(zip.data);
	return mail;
}

static void test_zip(void **state)
{
	unsigned char pe[512];
	const struct test_entry texts[] = {
	    {"minutes.txt", test_text, sizeof(test_text) - 1},
	    {"agenda.txt", test_text, sizeof(test_text) - 1},
	};
	const struct test_entry double_ext[] = {
	    {"readme.txt", test_text, sizeof(test_text) - 1},
	    {"docs/invoice.pdf.exe", test_text, sizeof(test_text) - 1},
	};
	const struct test_entry renamed[] = {{"image.png", pe, sizeof(pe)}};
	struct test_buffer zip;

	(void)state;
	test_pe(pe, sizeof(pe));
	test_expect(test_zip_mail("minutes.zip", texts, 2), NULL, 0.0,
		    "attachments: nothing found (2 parts, 2 archive entries)");
	test_expect(test_zip_mail("files.zip", double_ext, 2), NULL, 10.0,
		    "double extension .pdf.exe: files.zip/docs/invoice.pdf.exe");
	/* Found by content, whatever the attachment's name. */
	test_expect(test_zip_mail("data.bin", renamed, 1), NULL, 10.0,
		    "executable (PE): data.bin/image.png");
	/* Without its central directory, read entry by entry. */
	test_archive(false, NULL, double_ext, 2, &zip);
	test_zip_without_directory(&zip);
	test_expect(test_named("cut.zip", "application/zip", zip.data, zip.len), NULL, 10.0,
		    "double extension .pdf.exe: cut.zip/docs/invoice.pdf.exe");
	free(zip.data);
}

/* A zip in a zip is opened; a zip in that one is not (one level). */
static void test_nested(void **state)
{
	unsigned char pe[512];
	struct test_buffer inner;
	struct test_buffer middle;
	struct test_entry entries[2];

	(void)state;
	test_pe(pe, sizeof(pe));
	entries[0] = (struct test_entry){"tool.dat", pe, sizeof(pe)};
	test_archive(false, NULL, entries, 1, &inner);
	entries[0] = (struct test_entry){"readme.txt", test_text, sizeof(test_text) - 1};
	entries[1] = (struct test_entry){"inner.zip", inner.data, inner.len};
	test_expect(test_zip_mail("outer.zip", entries, 2), NULL, 10.0,
		    "executable (PE): outer.zip/inner.zip/tool.dat");

	entries[0] = (struct test_entry){"deeper.zip", inner.data, inner.len};
	test_archive(false, NULL, entries, 1, &middle);
	entries[0] = (struct test_entry){"middle.zip", middle.data, middle.len};
	test_expect(test_zip_mail("outer.zip", entries, 1), NULL, 0.0,
		    "nothing found (2 parts, 2 archive entries, limits reached)");
	free(inner.data);
	free(middle.data);
}

static void test_encrypted(void **state)
{
	const struct test_entry texts[] = {{"salaries.xlsx", test_text, sizeof(test_text) - 1}};
	const struct test_entry program[] = {{"update.exe", test_text, sizeof(test_text) - 1}};
	struct test_buffer zip;
	char *fixture;
	size_t fixture_len;

	(void)state;
	test_archive(false, "infected", texts, 1, &zip);
	test_expect(test_named("docs.zip", "application/zip", zip.data, zip.len), NULL, 6.0,
		    "attachments: encrypted zip: docs.zip");
	free(zip.data);
	/* The name is still read: the larger finding is the score. */
	test_archive(false, "infected", program, 1, &zip);
	test_expect(test_named("docs.zip", "application/zip", zip.data, zip.len), NULL, 10.0,
		    "blocked extension .exe: docs.zip/update.exe; encrypted zip: docs.zip");
	free(zip.data);
	/* Made by Info-ZIP's zip -P (traditional PKWARE encryption). */
	assert_int_equal(util_read_file("tests/unit/data/encrypted.zip", &fixture, &fixture_len),
			 0);
	test_expect(test_named("report.zip", "application/octet-stream", fixture, fixture_len),
		    NULL, 6.0, "encrypted zip: report.zip");
	free(fixture);
	/* Made by 7-Zip's 7z a -p (AES-256), the second with -mhe=on: its list
	 * of names is encrypted too, and libarchive stops at it. */
	assert_int_equal(util_read_file("tests/unit/data/encrypted.7z", &fixture, &fixture_len), 0);
	test_expect(test_named("report.7z", "application/x-7z-compressed", fixture, fixture_len),
		    NULL, 6.0, "attachments: encrypted 7z: report.7z");
	free(fixture);
	assert_int_equal(
	    util_read_file("tests/unit/data/encrypted-headers.7z", &fixture, &fixture_len), 0);
	test_expect(test_named("hidden.7z", "application/octet-stream", fixture, fixture_len), NULL,
		    6.0, "attachments: encrypted 7z: hidden.7z");
	free(fixture);
}

static void test_seven_zip(void **state)
{
	unsigned char pe[512];
	const struct test_entry entries[] = {
	    {"readme.txt", test_text, sizeof(test_text) - 1},
	    {"photo.jpg", pe, sizeof(pe)},
	};
	struct test_buffer archive;

	(void)state;
	test_pe(pe, sizeof(pe));
	test_archive(true, NULL, entries, 2, &archive);
	test_expect(
	    test_named("photos.7z", "application/x-7z-compressed", archive.data, archive.len), NULL,
	    10.0, "executable (PE): photos.7z/photo.jpg");
	free(archive.data);
}

/* ---- bounds ------------------------------------------------------------------------ */

static double test_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Many entries: ATTACHMENTS_ENTRIES_MAX are looked at, no more. */
static void test_many_entries(void **state)
{
	enum { COUNT = 1500 };
	struct test_entry *entries = xcalloc(COUNT, sizeof(*entries));
	char(*names)[16] = xcalloc(COUNT, sizeof(*names));

	(void)state;
	for (size_t i = 0; i < COUNT; i++) {
		snprintf(names[i], sizeof(names[i]), "f%zu.%s", i, i == COUNT - 1 ? "exe" : "txt");
		entries[i] = (struct test_entry){names[i], "x", 1};
	}
	test_expect(test_zip_mail("many.zip", entries, COUNT), NULL, 0.0,
		    "nothing found (2 parts, 1000 archive entries, limits reached)");
	/* The limit counts entries, not files: the first ones are still judged. */
	entries[3].name = "f3.exe";
	test_expect(test_zip_mail("many.zip", entries, COUNT), NULL, 10.0,
		    "blocked extension .exe: many.zip/f3.exe");
	free(entries);
	free(names);
}

/*
 * High ratios: a zip's large entries are jumped over (only their first bytes
 * are read), so what follows them is still judged; a 7z's (or a zip's
 * without a central directory) must be
 * decompressed to be passed, and the budget stops that (and the reading of
 * that archive: what follows is not judged). Both quickly.
 */
static void test_bombs(void **state)
{
	size_t big = 24UL * 1024 * 1024;
	unsigned char *zeros = xcalloc(1, big);
	const struct test_entry entries[] = {
	    {"a.dat", zeros, big},
	    {"b.dat", zeros, big},
	    {"c.dat", zeros, big},
	    {"evil.exe", test_text, sizeof(test_text) - 1},
	};
	struct test_buffer archive;
	struct test_entry nested[2];
	double start;

	(void)state;
	test_archive(false, NULL, entries, 4, &archive);
	assert_true(archive.len < 1024 * 1024);
	start = test_seconds();
	test_expect(test_named("zeros.zip", "application/zip", archive.data, archive.len), NULL,
		    10.0, "blocked extension .exe: zeros.zip/evil.exe");
	/* A zip bomb inside a zip: the inner one is small and opened; its
	 * entries are jumped over in turn. */
	nested[0] = (struct test_entry){"bomb.zip", archive.data, archive.len};
	test_expect(test_zip_mail("outer.zip", nested, 1), NULL, 10.0,
		    "blocked extension .exe: outer.zip/bomb.zip/evil.exe");
	free(archive.data);

	/* Without its central directory a zip's entries are passed by reading
	 * them, within the budget. */
	test_archive(false, NULL, entries, 4, &archive);
	test_zip_without_directory(&archive);
	test_expect(test_named("cut.zip", "application/zip", archive.data, archive.len), NULL, 0.0,
		    "nothing found (2 parts, 1 archive entries, limits reached)");
	free(archive.data);

	test_archive(true, NULL, entries, 4, &archive);
	test_expect(
	    test_named("zeros.7z", "application/x-7z-compressed", archive.data, archive.len), NULL,
	    0.0, "nothing found (2 parts, 1 archive entries, limits reached)");
	free(archive.data);
	/* An entry that starts like a zip and goes on past the budget is not
	 * opened, and the 7z is read no further (passing the rest of it would
	 * decompress it uncounted). */
	memcpy(zeros, "PK\3\4", 4);
	test_archive(true, NULL, entries, 4, &archive);
	test_expect(test_named("fake.7z", "application/x-7z-compressed", archive.data, archive.len),
		    NULL, 0.0, "nothing found (2 parts, 1 archive entries, limits reached)");
	free(archive.data);
	assert_true(test_seconds() - start < 10.0);
	free(zeros);
}

/* The reason names what fits in a frame's 200 characters, and counts the rest. */
static void test_reason_bound(void **state)
{
	GString *mail = g_string_new("From: a@example.org\r\n"
				     "MIME-Version: 1.0\r\n"
				     "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
	char *reason;
	double score;

	(void)state;
	for (int i = 0; i < 30; i++)
		g_string_append_printf(mail,
				       "--b\r\nContent-Type: application/octet-stream; "
				       "name=\"a-very-long-file-name-that-goes-on-and-on-%02d-"
				       "and-on-and-on-and-on.pdf.exe\"\r\n\r\nhello\r\n",
				       i);
	g_string_append(mail, "--b--\r\n");
	score = test_judge(g_string_free(mail, false), NULL, &reason);
	assert_true(score == 10.0);
	assert_non_null(strstr(reason,
			       "attachments: double extension .pdf.exe: "
			       "a-very-long-file-nam...nd-on-00-and-on-and-on-and-on.pdf.exe "
			       "(+29 more)"));
	assert_non_null(strstr(reason, "more)"));
	free(reason);
}

/* ---- confinement and the corpus ------------------------------------------------------- */

/*
 * In a confined process (the worker's seccomp filter): GMime, libarchive's
 * memory reader, its zip and 7z readers, encryption (of entries, and of a
 * 7z's header) and names in UTF-8 must make no system call the filter kills
 * for.
 */
static void test_confined(void **state)
{
	unsigned char pe[512];
	struct test_buffer inner;
	struct test_buffer encrypted;
	struct test_buffer seven;
	struct test_entry entries[3];
	char *mails[4];
	char *hidden;
	size_t hidden_len;
	pid_t pid;
	int status;

	(void)state;
	test_pe(pe, sizeof(pe));
	entries[0] = (struct test_entry){"r\xc3\xa9sum\xc3\xa9.doc", pe, sizeof(pe)};
	entries[1] = (struct test_entry){"photo\xe2\x80\xaegpj.scr", test_text, 10};
	test_archive(false, NULL, entries, 2, &inner);
	entries[0] = (struct test_entry){"inner.zip", inner.data, inner.len};
	mails[0] = test_zip_mail("outer.zip", entries, 1);
	test_archive(false, "infected", entries, 1, &encrypted);
	mails[1] = test_named("secret.zip", "application/zip", encrypted.data, encrypted.len);
	test_archive(true, NULL, entries, 1, &seven);
	mails[2] = test_named("archive.7z", "application/x-7z-compressed", seven.data, seven.len);
	assert_int_equal(
	    util_read_file("tests/unit/data/encrypted-headers.7z", &hidden, &hidden_len), 0);
	mails[3] = test_named("hidden.7z", "application/octet-stream", hidden, hidden_len);
	free(hidden);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const char *const wanted[] = {
		    "executable (PE): outer.zip/inner.zip/r??sum??.doc; disguised name (bidi "
		    "control): outer.zip/inner.zip/photo???gpj.scr",
		    "encrypted zip: secret.zip",
		    "executable (PE): archive.7z/inner.zip/r??sum??.doc",
		    "encrypted 7z: hidden.7z",
		};
		char err[256];
		int ok = 1;

		mime_init();
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(10);
		for (size_t i = 0; i < 4; i++) {
			struct pipeline_result result = {.status = PIPELINE_RESULT_OK};

			attachments_judge(mails[i], strlen(mails[i]), NULL, &result);
			if (result.reason == NULL || strstr(result.reason, wanted[i]) == NULL) {
				fprintf(stderr, "confined: %s\n", result.reason);
				ok = 0;
			}
			free(result.reason);
		}
		_exit(ok ? 0 : 11);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < 4; i++)
		free(mails[i]);
	free(inner.data);
	free(encrypted.data);
	free(seven.data);
}

/* Every ham message of the corpus, attachments and all (PDFs, Word files,
 * patches, images, signatures, forwarded mail): none is flagged. */
static void test_corpus_ham(void **state)
{
	static const char *const groups[] = {"easy-ham-1", "easy-ham-2", "hard-ham-1"};
	size_t messages = 0;
	size_t named = 0;

	(void)state;
	for (size_t g = 0; g < 3; g++) {
		glob_t files;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		for (size_t i = 0; i < files.gl_pathc; i++) {
			struct pipeline_result result = {.status = PIPELINE_RESULT_OK};
			char *data;
			size_t len;

			assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
			attachments_judge(data, len, NULL, &result);
			if (result.score != 0.0)
				fail_msg("%s: %s", files.gl_pathv[i], result.reason);
			if (strcasestr(data, "filename=") != NULL)
				named++;
			messages++;
			free(result.reason);
			free(data);
		}
		globfree(&files);
	}
	print_message("ham: %zu messages, %zu with named parts, none flagged\n", messages, named);
	assert_true(messages > 4000 && named > 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_blocked_extension),
	    cmocka_unit_test(test_double_extension),
	    cmocka_unit_test(test_encoded_names),
	    cmocka_unit_test(test_blocked_setting),
	    cmocka_unit_test(test_executable_content),
	    cmocka_unit_test(test_zip),
	    cmocka_unit_test(test_nested),
	    cmocka_unit_test(test_encrypted),
	    cmocka_unit_test(test_seven_zip),
	    cmocka_unit_test(test_many_entries),
	    cmocka_unit_test(test_bombs),
	    cmocka_unit_test(test_reason_bound),
	    cmocka_unit_test(test_confined),
	    cmocka_unit_test(test_corpus_ham),
	};

	mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
