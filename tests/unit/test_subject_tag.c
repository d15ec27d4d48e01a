/*
 * test_subject_tag.c — where the subject tag goes (pipeline/subject_tag.c):
 * plain, folded, encoded-word, missing and already tagged subjects, LF and
 * CR LF lines, header blocks cut short, and every message of the corpus
 * (tagged once: its first Subject starts with the prefix and nothing else
 * changed; planned again: already tagged).
 *
 * Owns: nothing.
 */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "core/util.h"
#include "pipeline/subject_tag.h"
#include "test_corpus.h"

/* HEADER with its plan applied (allocated). */
static char *apply(const char *header, size_t len, const struct subject_tag_plan *plan)
{
	size_t text_len = strlen(plan->text);
	char *out = xmalloc(len + text_len + 1);

	if (plan->kind == SUBJECT_TAG_INSERT) {
		memcpy(out, header, (size_t)plan->offset);
		memcpy(out + plan->offset, plan->text, text_len);
		memcpy(out + plan->offset + text_len, header + plan->offset,
		       len - (size_t)plan->offset);
		out[len + text_len] = '\0';
	} else if (plan->kind == SUBJECT_TAG_ADD) {
		memcpy(out, plan->text, text_len);
		memcpy(out + text_len, header, len);
		out[len + text_len] = '\0';
	} else {
		memcpy(out, header, len);
		out[len] = '\0';
	}
	return out;
}

static void assert_tagged(const char *header, const char *prefix, const char *expected)
{
	struct subject_tag_plan plan;
	char *out;

	subject_tag_plan(header, strlen(header), true, prefix, &plan);
	out = apply(header, strlen(header), &plan);
	assert_string_equal(out, expected);
	free(out);
}

static void test_plain_subject(void **state)
{
	(void)state;
	assert_tagged("From: a@example.org\r\nSubject: hello\r\n\r\nbody\r\n", "[SPAM]",
		      "From: a@example.org\r\nSubject: [SPAM] hello\r\n\r\nbody\r\n");
	assert_tagged("subject:hello\n\nbody\n", "[SPAM]", "subject:[SPAM] hello\n\nbody\n");
	/* Obsolete syntax: blanks before the colon. */
	assert_tagged("Subject : hi\r\n\r\n", "***", "Subject : *** hi\r\n\r\n");
	/* Only the first Subject counts; a look-alike field does not. */
	assert_tagged("Subjects: no\r\nSubject: a\r\nSubject: b\r\n\r\n", "[SPAM]",
		      "Subjects: no\r\nSubject: [SPAM] a\r\nSubject: b\r\n\r\n");
}

static void test_folded_and_empty_subject(void **state)
{
	(void)state;
	assert_tagged("Subject:\r\n\tfolded text\r\n\r\nbody", "[SPAM]",
		      "Subject: [SPAM]\r\n\tfolded text\r\n\r\nbody");
	assert_tagged("Subject: first\r\n second\r\n\r\n", "[SPAM]",
		      "Subject: [SPAM] first\r\n second\r\n\r\n");
	assert_tagged("Subject:\r\nTo: b@example.org\r\n\r\n", "[SPAM]",
		      "Subject: [SPAM]\r\nTo: b@example.org\r\n\r\n");
	assert_tagged("Subject:   \n\n", "[SPAM]", "Subject: [SPAM]   \n\n");
}

static void test_encoded_word_subject(void **state)
{
	(void)state;
	/* RFC 2047: an encoded word must be separated from text by blanks,
	 * which the prefix's space is. */
	assert_tagged("Subject: =?utf-8?B?w6lsw6k=?=\r\n\r\n", "[SPAM]",
		      "Subject: [SPAM] =?utf-8?B?w6lsw6k=?=\r\n\r\n");
}

static void test_already_tagged(void **state)
{
	struct subject_tag_plan plan;
	const char *header = "Subject: [spam] again\r\n\r\n";

	(void)state;
	subject_tag_plan(header, strlen(header), true, "[SPAM]", &plan);
	assert_int_equal(plan.kind, SUBJECT_TAG_ALREADY);
	header = "Subject:\r\n [SPAM] folded\r\n\r\n";
	subject_tag_plan(header, strlen(header), true, "[SPAM]", &plan);
	assert_int_equal(plan.kind, SUBJECT_TAG_ALREADY);
}

static void test_missing_subject(void **state)
{
	(void)state;
	assert_tagged("From: a@example.org\r\n\r\nSubject: in the body\r\n", "[SPAM]",
		      "Subject: [SPAM]\r\nFrom: a@example.org\r\n\r\nSubject: in the body\r\n");
	/* Only headers, no blank line: the whole message is the header block. */
	assert_tagged("From: a@example.org\r\n", "[SPAM]",
		      "Subject: [SPAM]\r\nFrom: a@example.org\r\n");
	assert_tagged("", "[SPAM]", "Subject: [SPAM]\r\n");
}

static void test_cut_short(void **state)
{
	struct subject_tag_plan plan;
	const char *header = "From: a@example.org\r\nTo: b@example.org\r\n";

	(void)state;
	/* Not the whole message and no end of the header block: unknown. */
	subject_tag_plan(header, strlen(header), false, "[SPAM]", &plan);
	assert_int_equal(plan.kind, SUBJECT_TAG_UNKNOWN);
	subject_tag_plan(header, 10, false, "[SPAM]", &plan);
	assert_int_equal(plan.kind, SUBJECT_TAG_UNKNOWN);
	/* A Subject found before the cut is planned as in the whole message. */
	header = "Subject: x\r\nTo: b@exa";
	subject_tag_plan(header, strlen(header), false, "[SPAM]", &plan);
	assert_int_equal(plan.kind, SUBJECT_TAG_INSERT);
	assert_int_equal(plan.offset, 9);
}

/* The first Subject field's value of the header block of TEXT, unfolded
 * enough to compare its start, or NULL. */
static const char *first_subject(const char *text)
{
	const char *line = text;

	while (*line != '\0' && *line != '\n' && !(line[0] == '\r' && line[1] == '\n')) {
		if (strncasecmp(line, "Subject:", 8) == 0) {
			const char *value = line + 8;

			while (*value == ' ' || *value == '\t' || *value == '\r' || *value == '\n')
				value++;
			return value;
		}
		line = strchr(line, '\n');
		if (line == NULL)
			return NULL;
		line++;
	}
	return NULL;
}

/* Every message of GROUP: tagged once, its subject starts with the prefix,
 * the text grew by the tag only, and a second plan finds it tagged. */
static void check_corpus_group(const char *group)
{
	glob_t files;

	assert_int_equal(test_corpus_glob(group, "", &files), 0);
	for (size_t i = 0; i < files.gl_pathc; i++) {
		struct subject_tag_plan plan, again;
		char *data, *out;
		size_t len;

		assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
		subject_tag_plan(data, len, true, "[SPAM]", &plan);
		assert_true(plan.kind == SUBJECT_TAG_INSERT || plan.kind == SUBJECT_TAG_ADD ||
			    plan.kind == SUBJECT_TAG_ALREADY);
		out = apply(data, len, &plan);
		assert_int_equal(strlen(out),
				 strlen(data) +
				     (plan.kind == SUBJECT_TAG_ALREADY ? 0 : strlen(plan.text)));
		assert_non_null(first_subject(out));
		assert_int_equal(strncasecmp(first_subject(out), "[SPAM]", 6), 0);
		subject_tag_plan(out, strlen(out), true, "[SPAM]", &again);
		assert_int_equal(again.kind, SUBJECT_TAG_ALREADY);
		free(out);
		free(data);
	}
	globfree(&files);
}

static void test_corpus(void **state)
{
	(void)state;
	check_corpus_group("spam-1");
	check_corpus_group("easy-ham-2");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_subject),
	    cmocka_unit_test(test_folded_and_empty_subject),
	    cmocka_unit_test(test_encoded_word_subject),
	    cmocka_unit_test(test_already_tagged),
	    cmocka_unit_test(test_missing_subject),
	    cmocka_unit_test(test_cut_short),
	    cmocka_unit_test(test_corpus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
