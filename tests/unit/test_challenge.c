/*
 * test_challenge.c — the challenge mail (ciss/challenge.c): its header
 * fields, the subject cleaned (header injection, controls, invalid UTF-8,
 * the length cut on a character), encoded words and quoted-printable for
 * non-ASCII, addresses refused, the link and the From under [web]; and the
 * subject of every spam message of the SpamAssassin corpus put through it
 * and read back by GMime (filters/mime.c): the same subject, one Subject
 * field, ASCII-only header lines within RFC 5322's 998.
 *
 * Owns: nothing.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "ciss/challenge.h"
#include "core/config.h"
#include "core/util.h"
#include "filters/mime.h"
#include "test_corpus.h"

#define LINK "https://gate.example:1443/c/TOKENTOKEN"
#define PREFIX "Please confirm your message: "

static char *compose(const char *subject, size_t *len)
{
	return ciss_challenge_compose(
	    &(struct ciss_challenge_mail){.from = "postmaster@gate.example",
					  .to = "sender@outside.example",
					  .recipient = "anna@gate.example",
					  .subject = subject,
					  .link = LINK,
					  .host = "gate.example",
					  .challenge_id = 31,
					  .now = 1764680000,
					  .expires_at = 1765280000},
	    len);
}

/* The header block of MAIL (up to the empty line), allocated. */
static char *header_of(const char *mail)
{
	const char *end = strstr(mail, "\r\n\r\n");

	assert_non_null(end);
	return xstrndup(mail, (size_t)(end - mail) + 2);
}

static size_t count_lines_starting(const char *header, const char *name)
{
	size_t count = 0, len = strlen(name);

	for (const char *line = header; line != NULL && *line != '\0';) {
		if (strncasecmp(line, name, len) == 0)
			count++;
		line = strstr(line, "\r\n");
		line = line != NULL ? line + 2 : NULL;
	}
	return count;
}

/* Every header line ASCII, at most 998 characters, ending in CR LF. */
static void assert_header_sane(const char *header)
{
	size_t column = 0;

	for (const char *p = header; *p != '\0'; p++) {
		assert_true((unsigned char)*p < 0x80);
		if (*p == '\r') {
			assert_int_equal(p[1], '\n');
			column = 0;
			p++;
			continue;
		}
		assert_true(*p != '\n');
		assert_true(++column <= 998);
	}
}

static void test_fields(void **state)
{
	size_t len;
	char *mail = compose("Quarterly report", &len);
	char *header;
	(void)state;

	assert_non_null(mail);
	assert_int_equal(strlen(mail), len);
	header = header_of(mail);
	assert_header_sane(header);
	assert_non_null(strstr(header, "From: Mail gateway <postmaster@gate.example>\r\n"));
	assert_non_null(strstr(header, "To: <sender@outside.example>\r\n"));
	assert_non_null(strstr(header, "Subject: " PREFIX "Quarterly report\r\n"));
	assert_non_null(strstr(header, "Auto-Submitted: auto-replied\r\n"));
	assert_non_null(strstr(header, "X-Popgate-Challenge: 31\r\n"));
	assert_non_null(strstr(header, "Message-ID: <challenge-31-"));
	assert_non_null(strstr(header, "Date: Tue, 02 Dec 2025 "));
	assert_non_null(strstr(header, "Content-Transfer-Encoding: 7bit\r\n"));
	assert_non_null(strstr(mail, "\r\n" LINK "\r\n"));
	assert_non_null(strstr(mail, "anna@gate.example"));
	assert_null(strstr(mail, "<html"));
	free(header);
	free(mail);
}

static void test_header_injection(void **state)
{
	size_t len;
	char *mail = compose("hi\r\nBcc: victim@example.com\r\n\r\nbody\nX-Evil: 1\rY: 2", &len);
	char *header = header_of(mail);
	(void)state;

	assert_header_sane(header);
	assert_int_equal(count_lines_starting(header, "Bcc:"), 0);
	assert_int_equal(count_lines_starting(header, "X-Evil:"), 0);
	assert_int_equal(count_lines_starting(header, "Subject:"), 1);
	assert_non_null(strstr(header, "Subject: " PREFIX
				       "hi Bcc: victim@example.com body X-Evil: 1 Y: 2\r\n"));
	free(header);
	free(mail);
}

static void test_clean_subject(void **state)
{
	char out[CISS_CHALLENGE_SUBJECT_MAX + 1];
	char longest[400];
	(void)state;

	ciss_challenge_clean_subject("  a\t\tb \x7f c  ", 13, out);
	assert_string_equal(out, "a b c");
	ciss_challenge_clean_subject("", 0, out);
	assert_string_equal(out, "(no subject)");
	ciss_challenge_clean_subject("\r\n\t", 3, out);
	assert_string_equal(out, "(no subject)");
	/* Invalid UTF-8: a lone continuation, an overlong, a surrogate, a cut. */
	ciss_challenge_clean_subject("a\x80"
				     "b\xc0\xaf"
				     "c\xed\xa0\x80"
				     "d\xe2\x82",
				     13, out);
	assert_string_equal(out, "a?b??c???d??");
	ciss_challenge_clean_subject("Gr\xc3\xbc\xc3\x9f"
				     "e",
				     7, out);
	assert_string_equal(out, "Gr\xc3\xbc\xc3\x9f"
				 "e");
	/* The cut falls before a character, never inside one. */
	for (size_t i = 0; i + 1 < sizeof(longest); i += 2)
		memcpy(longest + i, "\xc3\xa9", 2);
	ciss_challenge_clean_subject(longest, sizeof(longest), out);
	assert_int_equal(strlen(out), CISS_CHALLENGE_SUBJECT_MAX);
	ciss_challenge_clean_subject(longest + 1, sizeof(longest) - 1, out);
	assert_true(strlen(out) <= CISS_CHALLENGE_SUBJECT_MAX);
	assert_int_equal(out[0], '?');
}

static void test_non_ascii(void **state)
{
	size_t len;
	const char *subject = "Gr\xc3\xbc\xc3\x9f"
			      "e aus K\xc3\xb6ln \xe2\x80\x94 "
			      "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xf0\x9f\x98\x80 "
			      "and a rather long tail to need more than one encoded word";
	char *mail = compose(subject, &len);
	char *header = header_of(mail);
	struct mime_message parsed;
	(void)state;

	assert_header_sane(header);
	assert_non_null(strstr(header, "Subject: " PREFIX "=?UTF-8?Q?"));
	assert_non_null(strstr(header, "Content-Transfer-Encoding: quoted-printable\r\n"));
	/* No encoded word over 75 characters. */
	for (const char *word = strstr(header, "=?UTF-8?Q?"); word != NULL;
	     word = strstr(word + 1, "=?UTF-8?Q?"))
		assert_true(strstr(word, "?=") - word + 2 <= 75);
	mime_parse(mail, len, &parsed);
	char *expected = xasprintf(PREFIX "%s", subject);
	assert_string_equal(mime_header_find(&parsed, "Subject"), expected);
	assert_non_null(strstr(parsed.text, LINK));
	assert_non_null(strstr(parsed.text, subject));
	free(expected);
	mime_message_free(&parsed);
	free(header);
	free(mail);
}

static void test_refused(void **state)
{
	size_t len = 1;
	(void)state;

	assert_null(
	    ciss_challenge_compose(&(struct ciss_challenge_mail){.from = "postmaster@gate.example",
								 .to = "",
								 .recipient = "anna@gate.example",
								 .subject = "x",
								 .link = LINK,
								 .host = "gate.example"},
				   &len));
	assert_int_equal(len, 0);
	assert_null(ciss_challenge_compose(
	    &(struct ciss_challenge_mail){.from = "postmaster@gate.example",
					  .to = "a@b.example>\r\nRCPT TO:<c@d.example",
					  .recipient = "anna@gate.example",
					  .subject = "x",
					  .link = LINK,
					  .host = "gate.example"},
	    &len));
}

static void test_link_and_from(void **state)
{
	struct popgate_config cfg;
	char *text;
	(void)state;

	config_defaults(&cfg);
	free(cfg.hostname);
	cfg.hostname = xstrdup("gate.example");
	text = ciss_challenge_link(&cfg, "TOK");
	assert_string_equal(text, "https://gate.example:1443/c/TOK");
	free(text);
	free(cfg.web_base_url);
	cfg.web_base_url = xstrdup("https://mail.example.org/ciss//");
	text = ciss_challenge_link(&cfg, "TOK");
	assert_string_equal(text, "https://mail.example.org/ciss/c/TOK");
	free(text);
	text = ciss_challenge_from(&cfg);
	assert_string_equal(text, "postmaster@pop3proxy.reddoxx");
	free(text);
	free(cfg.web_challenge_from);
	cfg.web_challenge_from = xstrdup("ciss@gate.example");
	text = ciss_challenge_from(&cfg);
	assert_string_equal(text, "ciss@gate.example");
	free(text);
	config_free(&cfg);
}

static void test_corpus_subjects(void **state)
{
	glob_t files;
	size_t checked = 0, non_ascii = 0;
	(void)state;

	if (test_corpus_glob("spam-2", "", &files) < 0)
		fail_msg("the SpamAssassin corpus is not installed");
	for (size_t i = 0; i < files.gl_pathc; i++) {
		char *data = NULL, *mail, *header;
		size_t len = 0, mail_len = 0;
		struct mime_message original, challenge;
		char cleaned[CISS_CHALLENGE_SUBJECT_MAX + 1];

		if (util_read_file(files.gl_pathv[i], &data, &len) < 0)
			continue;
		mime_parse(data, len, &original);
		const char *subject = mime_header_find(&original, "Subject");
		if (subject == NULL)
			subject = "";
		ciss_challenge_clean_subject(subject, strlen(subject), cleaned);
		mail = compose(subject, &mail_len);
		assert_non_null(mail);
		header = header_of(mail);
		assert_header_sane(header);
		assert_int_equal(count_lines_starting(header, "Subject:"), 1);
		mime_parse(mail, mail_len, &challenge);
		char *expected = xasprintf(PREFIX "%s", cleaned);
		assert_string_equal(mime_header_find(&challenge, "Subject"), expected);
		assert_non_null(strstr(challenge.text, LINK));
		for (const char *p = cleaned; *p != '\0'; p++) {
			if ((unsigned char)*p >= 0x80) {
				non_ascii++;
				break;
			}
		}
		free(expected);
		mime_message_free(&challenge);
		free(header);
		free(mail);
		mime_message_free(&original);
		free(data);
		checked++;
	}
	globfree(&files);
	print_message("%zu corpus subjects, %zu of them not ASCII\n", checked, non_ascii);
	assert_true(checked > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields),	    cmocka_unit_test(test_header_injection),
	    cmocka_unit_test(test_clean_subject),   cmocka_unit_test(test_non_ascii),
	    cmocka_unit_test(test_refused),	    cmocka_unit_test(test_link_and_from),
	    cmocka_unit_test(test_corpus_subjects),
	};

	mime_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
