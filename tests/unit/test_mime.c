/*
 * test_mime.c — the message parser (filters/mime.c, GMime 3): encoded
 * words, charsets, quoted-printable and base64, HTML to text with its URLs,
 * nested multiparts and attached messages, attachment names, the bounds;
 * real corpus messages; and parsing inside a confined process, where the
 * charset converters must already be loaded.
 *
 * Owns: nothing outside this process (the confined parse runs in a child).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/mime.h"
#include "pipeline/confine.h"
#include "test_corpus.h"

static bool test_has_url(const struct mime_message *m, const char *url)
{
	for (size_t i = 0; i < m->urls.count; i++) {
		if (strcmp(m->urls.items[i], url) == 0)
			return true;
	}
	return false;
}

static void test_encoded_words(void **state)
{
	static const char text[] = "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jm@example.org>\r\n"
				   "To: you@example.net\r\n"
				   "Subject: =?utf-8?B?R3LDvMOfZQ==?= und =?koi8-r?B?8NLJ18XU?=\r\n"
				   "\r\n"
				   "hello\r\n";
	struct mime_message m;

	(void)state;
	mime_parse(text, sizeof(text) - 1, &m);
	assert_string_equal(mime_header_find(&m, "subject"), "Grüße und Привет");
	assert_non_null(strstr(mime_header_find(&m, "From"), "Jörg Müller"));
	assert_string_equal(m.text, "hello\r\n\n");
	mime_message_free(&m);
}

static void test_transfer_encodings(void **state)
{
	static const char text[] =
	    "From: a@example.org\n"
	    "Subject: parts\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: multipart/mixed; boundary=\"b1\"\n"
	    "\n"
	    "--b1\n"
	    "Content-Type: text/plain; charset=iso-8859-1\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "Sch=F6ne Gr=FC=DFe, soft=\n"
	    "break\n"
	    "--b1\n"
	    "Content-Type: text/plain; charset=windows-1252\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "k2Z1bmt5lCBwcmljZSCAMTA=\n"
	    "--b1\n"
	    "Content-Type: application/octet-stream; name=\"invoice.pdf.exe\"\n"
	    "Content-Disposition: attachment; filename=\"invoice.pdf.exe\"\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "TVqQAAMAAAAEAAAA\n"
	    "--b1--\n";
	struct mime_message m;

	(void)state;
	mime_parse(text, sizeof(text) - 1, &m);
	assert_non_null(strstr(m.text, "Schöne Grüße, softbreak"));
	/* windows-1252: curly quotes and the euro sign. */
	assert_non_null(strstr(m.text, "\u201c"
				       "funky"
				       "\u201d"
				       " price \u20ac"
				       "10"));
	assert_int_equal(m.names.count, 1);
	assert_string_equal(m.names.items[0], "invoice.pdf.exe");
	assert_int_equal(m.part_count, 4);
	assert_false(m.truncated);
	mime_message_free(&m);
}

static void test_html(void **state)
{
	static const char text[] = "From: a@example.org\n"
				   "Content-Type: text/html; charset=utf-8\n"
				   "\n"
				   "<html><head><style>p { color: red }</style>"
				   "<script>var hidden = 'scriptword';</script></head>"
				   "<body><p>Cheap&nbsp;v<b></b>iagra &amp; more&#33;</p>"
				   "<a href=\"http://spam.example.com/buy?id=1\">click</a>"
				   "<img src='https://img.example.net/x.gif'>"
				   "<!-- commentword --> see www.visit.example.org/now. "
				   "<form action=http://post.example.com/f></form></body></html>\n";
	struct mime_message m;

	(void)state;
	mime_parse(text, sizeof(text) - 1, &m);
	assert_non_null(strstr(m.text, "Cheap viagra & more!"));
	assert_null(strstr(m.text, "scriptword"));
	assert_null(strstr(m.text, "color"));
	assert_null(strstr(m.text, "commentword"));
	assert_null(strstr(m.text, "<"));
	assert_true(test_has_url(&m, "http://spam.example.com/buy?id=1"));
	assert_true(test_has_url(&m, "https://img.example.net/x.gif"));
	assert_true(test_has_url(&m, "http://post.example.com/f"));
	assert_true(test_has_url(&m, "www.visit.example.org/now"));
	mime_message_free(&m);
}

static void test_nested_message(void **state)
{
	static const char text[] = "From: a@example.org\n"
				   "Content-Type: multipart/mixed; boundary=outer\n"
				   "\n"
				   "--outer\n"
				   "Content-Type: text/plain\n"
				   "\n"
				   "see the forwarded mail\n"
				   "--outer\n"
				   "Content-Type: message/rfc822\n"
				   "\n"
				   "From: b@example.net\n"
				   "Subject: =?utf-8?Q?inner_s=C3=BCbject?=\n"
				   "Content-Type: multipart/alternative; boundary=inner\n"
				   "\n"
				   "--inner\n"
				   "Content-Type: text/plain\n"
				   "\n"
				   "innertext http://inner.example.com/a\n"
				   "--inner--\n"
				   "--outer--\n";
	struct mime_message m;

	(void)state;
	mime_parse(text, sizeof(text) - 1, &m);
	assert_non_null(strstr(m.text, "see the forwarded mail"));
	assert_non_null(strstr(m.text, "inner sübject"));
	assert_non_null(strstr(m.text, "innertext"));
	assert_true(test_has_url(&m, "http://inner.example.com/a"));
	assert_int_equal(m.part_count, 5);
	mime_message_free(&m);
}

/* Multiparts nested deeper than MIME_DEPTH_MAX: the deep text is left out
 * and the message marked truncated. */
static void test_depth_bound(void **state)
{
	char *text = xstrdup("From: a@example.org\nContent-Type: multipart/mixed; boundary=b0\n\n");
	struct mime_message m;
	int depth = MIME_DEPTH_MAX + 4;

	(void)state;
	for (int i = 1; i <= depth; i++) {
		char *next = xasprintf("%s--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n",
				       text, i - 1, i);
		free(text);
		text = next;
	}
	char *last = xasprintf("%s--b%d\nContent-Type: text/plain\n\ndeepword\n", text, depth);
	free(text);
	mime_parse(last, strlen(last), &m);
	assert_true(m.truncated);
	assert_null(strstr(m.text, "deepword"));
	assert_true(m.part_count <= MIME_DEPTH_MAX + 1);
	mime_message_free(&m);
	free(last);
}

static void test_parts_bound(void **state)
{
	char *text = xstrdup("From: a@example.org\nContent-Type: multipart/mixed; boundary=b\n\n");
	struct mime_message m;

	(void)state;
	for (int i = 0; i < MIME_PARTS_MAX + 20; i++) {
		char *next = xasprintf("%s--b\nContent-Type: text/plain\n\npart%d\n", text, i);
		free(text);
		text = next;
	}
	mime_parse(text, strlen(text), &m);
	assert_true(m.truncated);
	assert_int_equal(m.part_count, MIME_PARTS_MAX);
	assert_non_null(strstr(m.text, "part0\n"));
	assert_null(strstr(m.text, "part80"));
	mime_message_free(&m);
	free(text);
}

/* Garbage and empty input: no crash, an empty but valid message. */
static void test_garbage(void **state)
{
	static const char text[] = "\x01\x02\xff not a message\n\n\n--";
	struct mime_message m;

	(void)state;
	mime_parse("", 0, &m);
	assert_non_null(m.text);
	mime_message_free(&m);
	mime_parse(text, sizeof(text) - 1, &m);
	assert_non_null(m.text);
	mime_message_free(&m);
}

/* Real spam from the corpus: a Big5 subject and HTML body, its links. */
static void test_corpus_big5(void **state)
{
	struct mime_message m;
	char *data;
	size_t len;

	(void)state;
	assert_int_equal(test_corpus_read("spam-1", "00252.", &data, &len), 0);
	mime_parse(data, len, &m);
	assert_string_equal(mime_header_find(&m, "Subject"), "不看會後悔");
	assert_non_null(strstr(m.text, "烏鴉與兔子"));
	assert_true(test_has_url(&m, "http://home.kimo.com.tw/kevin157kimo/nwlia.html"));
	assert_int_equal(m.types.count, 3);
	assert_string_equal(m.types.items[2], "text/html");
	mime_message_free(&m);
	free(data);
}

/* Real ham from the corpus: a forwarded message (message/rfc822). */
static void test_corpus_forward(void **state)
{
	struct mime_message m;
	char *data;
	size_t len;

	(void)state;
	assert_int_equal(test_corpus_read("easy-ham-1", "01294.", &data, &len), 0);
	mime_parse(data, len, &m);
	assert_string_equal(mime_header_find(&m, "Subject"), "Fw: some (null) eyecandy packages");
	assert_true(test_has_url(&m, "http://www.dudex.net/rpms/gtk2-engines-compat-1.0.spec"));
	assert_int_equal(m.part_count, 4);
	mime_message_free(&m);
	free(data);
}

/*
 * In a confined process (the worker's seccomp filter), after mime_init:
 * charsets whose converters glibc loads by name (Big5, KOI8-R, Windows-1252)
 * must still be converted, and nothing may kill the process.
 */
static void test_confined(void **state)
{
	char *data;
	size_t len;
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(test_corpus_read("spam-1", "00252.", &data, &len), 0);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		static const char koi8[] = "From: a@example.org\n"
					   "Subject: =?koi8-r?B?8NLJ18XU?=\n"
					   "Content-Type: text/plain; charset=windows-1252\n"
					   "\n"
					   "\x93quoted\x94\n";
		struct mime_message m;
		char err[256];
		int ok;

		mime_init();
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(10);
		mime_parse(data, len, &m);
		ok = strcmp(mime_header_find(&m, "Subject"), "不看會後悔") == 0 &&
		     strstr(m.text, "烏鴉與兔子") != NULL;
		mime_message_free(&m);
		mime_parse(koi8, sizeof(koi8) - 1, &m);
		ok = ok && strcmp(mime_header_find(&m, "Subject"), "Привет") == 0 &&
		     strstr(m.text, "\u201cquoted\u201d") != NULL;
		mime_message_free(&m);
		_exit(ok ? 0 : 11);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(data);
}

/*
 * Every message of spam-2 and hard-ham-1 (the odd charsets, HTML, nested
 * parts, broken MIME of real mail), parsed and tokenized after confinement:
 * GMime and GLib must make no system call the worker's filter kills for.
 */
static void test_confined_corpus(void **state)
{
	static const char *const groups[] = {"spam-2", "hard-ham-1"};
	char **data = NULL;
	size_t *lens = NULL;
	size_t count = 0;
	pid_t pid;
	int status;

	(void)state;
	for (size_t g = 0; g < 2; g++) {
		glob_t files;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		data = xrealloc(data, (count + files.gl_pathc) * sizeof(*data));
		lens = xrealloc(lens, (count + files.gl_pathc) * sizeof(*lens));
		for (size_t i = 0; i < files.gl_pathc; i++, count++)
			assert_int_equal(
			    util_read_file(files.gl_pathv[i], &data[count], &lens[count]), 0);
		globfree(&files);
	}
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		size_t with_text = 0;

		mime_init();
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(10);
		for (size_t i = 0; i < count; i++) {
			struct mime_message m;

			mime_parse(data[i], lens[i], &m);
			if (m.text_len > 0)
				with_text++;
			mime_message_free(&m);
		}
		_exit(with_text >= count * 9 / 10 ? 0 : 11);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (size_t i = 0; i < count; i++)
		free(data[i]);
	free(data);
	free(lens);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_encoded_words),
	    cmocka_unit_test(test_transfer_encodings),
	    cmocka_unit_test(test_html),
	    cmocka_unit_test(test_nested_message),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_parts_bound),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_corpus_big5),
	    cmocka_unit_test(test_corpus_forward),
	    cmocka_unit_test(test_confined),
	    cmocka_unit_test(test_confined_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
