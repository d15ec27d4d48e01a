/*
 * test_rules.c — the content rules (filters/rules.c): the default set
 * parses and judges real corpus messages (spam hit, ham mostly not);
 * header rules (absent fields, encoded words), body rules through base64,
 * quoted-printable and charsets, raw and link targets, negation; word
 * lists (weights counted once, on word boundaries, capped); a pattern that
 * backtracks without end stops at the match limit (neutral, quickly); bad
 * rules files refused with their line; overrides of the default set; the
 * reason cut to fit; the setup frame's RULES field; and the filter as a
 * worker runs it: the text handed over in a sealed memory file, compiled
 * before confinement, matching after.
 *
 * Owns: a temporary folder, removed at the end.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/filter.h"
#include "filters/mime.h"
#include "filters/rules.h"
#include "pipeline/confine.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "test_corpus.h"

static char test_dir[] = "/tmp/popgate-test-rules-XXXXXX";

static int test_setup(void **state)
{
	(void)state;
	mime_init();
	return mkdtemp(test_dir) != NULL ? 0 : -1;
}

static int test_teardown(void **state)
{
	char *cmd = xasprintf("rm -rf '%s'", test_dir);
	int rc = system(cmd);

	(void)state;
	free(cmd);
	return rc == 0 ? 0 : -1;
}

/* The set of the default rules with TEXT over them; fails the test if refused. */
static struct rules_set *test_load(const char *text)
{
	struct rules_set *set;
	char err[512] = "";

	if (rules_set_load(text, text != NULL ? strlen(text) : 0, "test.rules", &set, err,
			   sizeof(err)) < 0)
		fail_msg("refused: %s", err);
	return set;
}

/* Whether rule NAME of SET hits MESSAGE; the verdict in *VERDICT if not NULL. */
static bool test_hits(const struct rules_set *set, const char *name, const char *message,
		      struct rules_verdict *out)
{
	size_t count = rules_set_count(set);
	bool *hit = xcalloc(count, sizeof(bool));
	struct rules_verdict verdict = {.hit = hit};
	bool found = false;
	bool result = false;

	rules_judge(set, message, strlen(message), NULL, &verdict);
	for (size_t i = 0; i < count; i++) {
		struct rules_info info;

		rules_set_info(set, i, &info);
		if (strcmp(info.name, name) == 0) {
			found = true;
			result = hit[i];
		}
	}
	free(hit);
	assert_true(found);
	assert_true(proto_reason_valid(verdict.reason, strlen(verdict.reason)));
	if (out != NULL) {
		*out = verdict;
		out->hit = NULL;
	}
	return result;
}

static void test_default_set(void **state)
{
	struct rules_set *set = test_load(NULL);
	size_t rules = 0, lists = 0;

	(void)state;
	for (size_t i = 0; i < rules_set_count(set); i++) {
		struct rules_info info;

		rules_set_info(set, i, &info);
		assert_string_equal(info.origin, "default");
		assert_true(info.score > 0);
		assert_true(strlen(info.description) > 0);
		if (info.kind == RULES_KIND_RULE) {
			rules++;
			assert_non_null(info.pattern);
		} else {
			lists++;
			assert_true(info.words > 0);
			assert_string_equal(info.target, "subject+body");
		}
	}
	assert_in_range(rules, 15, 30);
	assert_true(lists >= 2);
	rules_set_free(set);
}

static void test_header_rules(void **state)
{
	static const char shouting[] = "From: Deals <deals@example.biz>\n"
				       "To: you@example.org\n"
				       "Subject: MAKE MONEY FAST!!!\n"
				       "Message-Id: <1@example.biz>\n"
				       "\n"
				       "Hello.\n";
	static const char calm[] = "From: Ann <ann@example.org>\n"
				   "To: you@example.org\n"
				   "Date: Mon, 2 Sep 2002 10:00:00 +0000\n"
				   "Subject: Minutes of Monday's meeting\n"
				   "Message-Id: <2@example.org>\n"
				   "\n"
				   "Attached.\n";
	/* The subject as an encoded word: decoded before the rules see it. */
	static const char encoded[] = "From: a@example.org\n"
				      "Date: Mon, 2 Sep 2002 10:00:00 +0000\n"
				      "Subject: =?utf-8?B?V0lOIEEgRlJFRSBDUlVJU0UgTk9X?=\n"
				      "\n"
				      "x\n";
	static const char other_domain[] =
	    "From: \"paypal@paypal.com\" <security@phish.example>\nSubject: x\n\nx\n";
	struct rules_set *set = test_load(NULL);
	struct rules_verdict verdict;

	(void)state;
	assert_true(test_hits(set, "SUBJ_ALL_CAPS", shouting, &verdict));
	assert_true(test_hits(set, "SUBJ_EXCLAIM", shouting, NULL));
	assert_true(test_hits(set, "MISSING_DATE", shouting, NULL));
	assert_true(verdict.score >= 3.5);
	assert_non_null(strstr(verdict.reason, "SUBJ_ALL_CAPS"));
	assert_non_null(strstr(verdict.reason, "MISSING_DATE"));
	assert_false(test_hits(set, "SUBJ_ALL_CAPS", calm, &verdict));
	assert_false(test_hits(set, "MISSING_DATE", calm, NULL));
	assert_true(verdict.score == 0);
	assert_string_equal(verdict.reason, "rules: none");
	assert_true(test_hits(set, "SUBJ_ALL_CAPS", encoded, NULL));
	assert_true(test_hits(set, "SUBJ_FREE", encoded, NULL));
	assert_true(test_hits(set, "FROM_NAME_OTHER_ADDRESS", other_domain, NULL));
	assert_false(test_hits(set, "FROM_NAME_OTHER_ADDRESS", calm, NULL));

	/* A subject of capitals, a long run of dots, then small letters (as a
	 * spam of spam-2 has): no hit, and no match limit either (an earlier
	 * pattern backtracked over the dots to it). */
	char dots[3001];
	char *long_caps;

	memset(dots, '.', sizeof(dots) - 1);
	dots[sizeof(dots) - 1] = '\0';
	long_caps = xasprintf("From: a@example.org\nSubject: NEW STOCK PICK: OUR LAST "
			      "ONE--PICK UP 300%%%s aufd iuju\n\nx\n",
			      dots);
	assert_false(test_hits(set, "SUBJ_ALL_CAPS", long_caps, &verdict));
	assert_int_equal(verdict.limited, 0);
	free(long_caps);
	rules_set_free(set);
}

static void test_body_encodings(void **state)
{
	static const char rules[] =
	    "rule T_CAFE 2 body /caf\xc3\xa9 au lait/i the text, decoded\n"
	    "rule T_RAW_B64 1 raw /Content-Transfer-Encoding: base64/i the source, undecoded\n"
	    "rule T_LINK 1 uri /^https?:\\/\\/evil\\.example\\// a link\n"
	    "rule T_NO_CAFE 1 body !/caf/ no cafe at all\n";
	/* "Un café au lait" in ISO-8859-1, base64 */
	static const char base64[] = "From: a@example.org\n"
				     "Subject: x\n"
				     "MIME-Version: 1.0\n"
				     "Content-Type: text/plain; charset=iso-8859-1\n"
				     "Content-Transfer-Encoding: base64\n"
				     "\n"
				     "VW4gY2Fm6SBhdSBsYWl0Cg==\n";
	static const char quoted[] = "From: a@example.org\n"
				     "Subject: x\n"
				     "MIME-Version: 1.0\n"
				     "Content-Type: multipart/alternative; boundary=b\n"
				     "\n"
				     "--b\n"
				     "Content-Type: text/html; charset=windows-1252\n"
				     "Content-Transfer-Encoding: quoted-printable\n"
				     "\n"
				     "<p>Un <b>caf=E9</b> au =\n"
				     "lait <a href=3D\"http://evil.example/x\">here</a></p>\n"
				     "--b--\n";
	static const char plain[] = "From: a@example.org\nSubject: x\n\nTea.\n";
	struct rules_set *set = test_load(rules);

	(void)state;
	assert_true(test_hits(set, "T_CAFE", base64, NULL));
	assert_true(test_hits(set, "T_RAW_B64", base64, NULL));
	assert_false(test_hits(set, "T_NO_CAFE", base64, NULL));
	assert_true(test_hits(set, "T_CAFE", quoted, NULL));
	assert_true(test_hits(set, "T_LINK", quoted, NULL));
	assert_false(test_hits(set, "T_RAW_B64", quoted, NULL));
	assert_false(test_hits(set, "T_CAFE", plain, NULL));
	assert_true(test_hits(set, "T_NO_CAFE", plain, NULL));
	rules_set_free(set);
}

static void test_word_lists(void **state)
{
	static const char rules[] = "words T_PILLS 3 test list\n"
				    "word T_PILLS 1.5 viagra\n"
				    "word T_PILLS 1 online pharmacy\n"
				    "word T_PILLS 1 cheap\n"
				    "word T_PILLS 0.5 pills\n"
				    "words T_GOOD 2 ham words\n"
				    "word T_GOOD -1 minutes\n";
	/* Each once however often; across a line end; any case. */
	static const char two[] = "From: a@example.org\nSubject: VIAGRA viagra\n\n"
				  "Our Online\n   Pharmacy sells viagra.\n";
	/* Not inside other words. */
	static const char none[] = "From: a@example.org\nSubject: x\n\n"
				   "Viagrafalls onlinepharmacy cheaply pillsbury\n";
	/* 1.5 + 1 + 1 + 0.5 = 4, capped at 3; a negative list. */
	static const char all[] = "From: a@example.org\nSubject: cheap pills\n\n"
				  "viagra from our online pharmacy; minutes\n";
	struct rules_set *set = test_load(rules);
	struct rules_verdict verdict;

	(void)state;
	assert_true(test_hits(set, "T_PILLS", two, &verdict));
	assert_non_null(strstr(verdict.reason, "T_PILLS(2.5)"));
	assert_false(test_hits(set, "T_PILLS", none, &verdict));
	assert_null(strstr(verdict.reason, "T_PILLS"));
	assert_true(test_hits(set, "T_PILLS", all, &verdict));
	assert_non_null(strstr(verdict.reason, "T_PILLS(3.0)"));
	assert_true(test_hits(set, "T_GOOD", all, NULL));
	assert_non_null(strstr(verdict.reason, "T_GOOD(-1.0)"));
	rules_set_free(set);
}

/* (a|aa)+$ over a long run of a's that ends in b backtracks exponentially:
 * the limits stop it at once, the rule does not hit, the reason says so. */
static void test_match_limit(void **state)
{
	static const char rules[] = "rule T_SLOW 5 body /^(a|aa)+$/ catastrophic\n"
				    "rule T_SLOW_RAW 5 raw /(?:\\w+\\s*)+=$/ catastrophic too\n"
				    "rule T_FAST 1 body /aaab/ fine\n";
	size_t run = 20000;
	char *message = xmalloc(run + 64);
	struct rules_set *set = test_load(rules);
	struct rules_verdict verdict;
	struct timespec start, end;
	double seconds;
	int n = snprintf(message, 64, "From: a@example.org\nSubject: x\n\n");

	(void)state;
	memset(message + n, 'a', run);
	strcpy(message + n + run, "b\n");
	clock_gettime(CLOCK_MONOTONIC, &start);
	assert_false(test_hits(set, "T_SLOW", message, &verdict));
	clock_gettime(CLOCK_MONOTONIC, &end);
	seconds = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;
	assert_true(seconds < 2.0);
	assert_true(verdict.limited >= 1);
	assert_non_null(strstr(verdict.reason, "match limit: "));
	assert_non_null(strstr(verdict.reason, "T_SLOW"));
	/* The others still judged: T_FAST hits. */
	assert_non_null(strstr(verdict.reason, "T_FAST"));
	assert_true(verdict.score >= 1);
	free(message);
	rules_set_free(set);
}

/* TEXT is refused with a message holding EXPECTED. */
static void test_refused(const char *text, size_t len, const char *expected)
{
	struct rules_set *set = NULL;
	char err[512] = "";

	assert_int_equal(rules_set_load(text, len, "bad.rules", &set, err, sizeof(err)), -1);
	assert_null(set);
	if (strstr(err, expected) == NULL)
		fail_msg("expected '%s' in '%s'", expected, err);
}

static void test_bad_files(void **state)
{
	char *path = xasprintf("%s/broken.rules", test_dir);
	char *long_text;
	char *text;
	size_t len;
	char err[512];

	(void)state;
	test_refused("rule OK 1 body /x/ fine\nrule BAD 1 body /(unclosed/ broken\n", 54,
		     "bad.rules line 2: bad pattern at offset");
	test_refused("# c\nrules X 1 body /x/ y\n", 24, "bad.rules line 2: unknown line");
	test_refused("rule X 1 body /x/\n", 18, "line 1: a rule needs a description");
	test_refused("rule X 1 body /x/q y\n", 21, "line 1: unknown pattern flag 'q'");
	test_refused("rule X 1 body x y\n", 18, "line 1: the pattern must be written");
	test_refused("rule X 1 body /x y\n", 19, "line 1: the pattern has no closing /");
	test_refused("rule X 1 subject /x/ y\n", 23, "line 1: unknown target");
	test_refused("rule X 1 header /x/ y\n", 22, "line 1: header needs a field name");
	test_refused("rule X-Y 1 body /x/ y\n", 22, "line 1: bad rule name");
	test_refused("rule X 101 body /x/ y\n", 22, "line 1: bad score");
	test_refused("word NOLIST 1 viagra\n", 21, "line 1: word needs a list");
	test_refused("words L 1 d\nword L x viagra\n", 28, "line 2: bad weight");
	test_refused("rule X 1 body /x/ y\0\n", 21, "holds a NUL byte");
	long_text = xmalloc(RULES_FILE_MAX + 2);
	memset(long_text, '#', RULES_FILE_MAX + 1);
	long_text[RULES_FILE_MAX + 1] = '\0';
	test_refused(long_text, RULES_FILE_MAX + 1, "longer than");
	free(long_text);
	/* The file as the daemon and popgatectl read it: its name and line. */
	assert_int_equal(
	    util_write_file_atomic(path, "rule A 1 body /a/ a\n\nrule B 1 body /[/ b\n", 41, 0644),
	    0);
	assert_int_equal(rules_file_read(path, &text, &len, err, sizeof(err)), -1);
	assert_null(text);
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "line 3: bad pattern"));
	assert_int_equal(util_write_file_atomic(path, "rule A 1 body /a/ a\n", 20, 0644), 0);
	assert_int_equal(rules_file_read(path, &text, &len, err, sizeof(err)), 0);
	assert_int_equal(len, 20);
	free(text);
	assert_int_equal(rules_file_read("/nonexistent/x.rules", &text, &len, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "/nonexistent/x.rules"));
	free(path);
}

static void test_overrides(void **state)
{
	static const char rules[] = "# SUBJ_ALL_CAPS off, SUBJ_EXCLAIM heavier\n"
				    "rule SUBJ_ALL_CAPS 0 header Subject /./ off\n"
				    "rule SUBJ_EXCLAIM 7 header Subject /!!/ louder\n"
				    "word PHARMACY 2.5 wonderpill\n"
				    "words CASINO 1 emptied\n"
				    "word CASINO 1 slots\n";
	static const char message[] = "From: a@example.org\nSubject: BUY WONDERPILL NOW!!\n\n"
				      "casino casino\n";
	struct rules_set *defaults = test_load(NULL);
	struct rules_set *set = test_load(rules);
	struct rules_verdict verdict;
	struct rules_info info;

	(void)state;
	/* Same names, same count: replaced, not added. */
	assert_int_equal(rules_set_count(set), rules_set_count(defaults));
	assert_true(test_hits(defaults, "SUBJ_ALL_CAPS", message, NULL));
	assert_false(test_hits(set, "SUBJ_ALL_CAPS", message, &verdict));
	assert_true(test_hits(set, "SUBJ_EXCLAIM", message, NULL));
	assert_true(test_hits(set, "PHARMACY", message, NULL));
	assert_false(test_hits(set, "CASINO", message, &verdict));
	assert_non_null(strstr(verdict.reason, "PHARMACY(2.5)"));
	for (size_t i = 0; i < rules_set_count(set); i++) {
		rules_set_info(set, i, &info);
		if (strcmp(info.name, "SUBJ_EXCLAIM") == 0) {
			assert_true(info.score == 7);
			assert_string_equal(info.origin, "test.rules");
			assert_string_equal(info.description, "louder");
		}
		if (strcmp(info.name, "CASINO") == 0)
			assert_int_equal(info.words, 1);
	}
	rules_set_free(set);
	rules_set_free(defaults);
}

/* Many rules hitting: the reason is cut after a whole name, marked. */
static void test_reason_cut(void **state)
{
	char *rules = xstrdup("");
	struct rules_set *set;
	struct rules_verdict verdict;

	(void)state;
	for (int i = 0; i < 40; i++) {
		char *next =
		    xasprintf("%srule A_RATHER_LONG_RULE_NAME_%02d 0.5 body /x/ x\n", rules, i);

		free(rules);
		rules = next;
	}
	set = test_load(rules);
	assert_false(test_hits(set, "SUBJ_ALL_CAPS", "Subject: x\n\nx\n", &verdict));
	assert_true(verdict.score >= 20);
	assert_true(strlen(verdict.reason) <= PROTO_REASON_MAX);
	assert_non_null(strstr(verdict.reason, ", ..."));
	assert_string_equal(verdict.reason + strlen(verdict.reason) - 5, ", ...");
	rules_set_free(set);
	free(rules);
}

/* Real mail: the default rules hit most of a sample of spam and score
 * little of a sample of ham (figures in README from the whole corpus). */
static void test_corpus(void **state)
{
	static const char *const groups[] = {"spam-2", "easy-ham-2"};
	size_t scored[2] = {0}, strong[2] = {0}, total[2] = {0};
	struct rules_set *set = test_load(NULL);

	(void)state;
	for (size_t g = 0; g < 2; g++) {
		glob_t files;

		if (test_corpus_glob(groups[g], "", &files) < 0) {
			rules_set_free(set);
			skip();
		}
		for (size_t i = 0; i < files.gl_pathc && total[g] < 300; i++) {
			struct rules_verdict verdict = {0};
			char *data;
			size_t len;

			assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
			rules_judge(set, data, len, NULL, &verdict);
			assert_true(strlen(verdict.reason) <= PROTO_REASON_MAX);
			assert_int_equal(verdict.limited, 0);
			scored[g] += verdict.score > 0;
			strong[g] += verdict.score >= 3;
			total[g]++;
			free(data);
		}
		globfree(&files);
	}
	assert_int_equal(total[0], 300);
	assert_int_equal(total[1], 300);
	/* Measured: of the first 300 of spam-2, 238 score, 94 at 3 or more; of
	 * easy-ham-2, 4 score, none at 3. */
	assert_true(scored[0] * 100 >= total[0] * 50);
	assert_true(strong[0] * 100 >= total[0] * 20);
	assert_true(scored[1] * 100 <= total[1] * 10);
	assert_true(strong[1] * 100 <= total[1] * 1);
	rules_set_free(set);
}

static void test_setup_frame(void **state)
{
	struct proto_setup setup = {.bayes_db = true, .rules = true};
	struct proto_setup decoded;
	unsigned char *frame;
	size_t len, consumed;
	const char *err;

	(void)state;
	proto_setup_encode(&setup, &frame, &len);
	assert_int_equal(proto_setup_decode(frame, len, &consumed, &decoded, &err), 0);
	assert_int_equal(consumed, len);
	assert_true(decoded.bayes_db);
	assert_true(decoded.rules);
	assert_null(decoded.settings);
	free(frame);
	setup.bayes_db = false;
	proto_setup_encode(&setup, &frame, &len);
	assert_int_equal(proto_setup_decode(frame, len, &consumed, &decoded, &err), 0);
	assert_false(decoded.bayes_db);
	assert_true(decoded.rules);
	free(frame);
}

/*
 * The filter as a worker runs it: the file's text in a sealed memory file
 * (which refuses writes), read and compiled by the init, then confined,
 * judging a message with a rule of that text and a default one.
 */
static void test_filter_confined(void **state)
{
	static const char text[] = "rule T_WORKER 4 body /handed over/ from the file\n";
	static const char message_text[] = "From: a@example.org\nSubject: FREE MONEY FOR YOU\n\n"
					   "These rules were handed over.\n";
	int fd = rules_text_fd(text, strlen(text));
	pid_t pid;
	int status;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), -1);
	assert_ptr_equal(filter_find("rules"), &filter_rules);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pipeline_result result = {.name = "rules"};
		struct filter_message message = {.body = message_text,
						 .body_len = sizeof(message_text) - 1};
		char err[256];
		int ok;

		if (chdir("/") < 0)
			_exit(10);
		rules_filter_use_fd(fd);
		if (filter_rules.init(err, sizeof(err)) < 0)
			_exit(10);
		if (fcntl(fd, F_GETFD) != -1)
			_exit(14);
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(11);
		if (filter_rules.run(&message, &result, NULL) < 0)
			_exit(12);
		ok = result.score >= 5.5 && strstr(result.reason, "T_WORKER") != NULL &&
		     strstr(result.reason, "SUBJ_ALL_CAPS") != NULL &&
		     proto_reason_valid(result.reason, strlen(result.reason));
		free(result.reason);
		_exit(ok ? 0 : 13);
	}
	close(fd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_set),	    cmocka_unit_test(test_header_rules),
	    cmocka_unit_test(test_body_encodings),  cmocka_unit_test(test_word_lists),
	    cmocka_unit_test(test_match_limit),	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_overrides),	    cmocka_unit_test(test_reason_cut),
	    cmocka_unit_test(test_corpus),	    cmocka_unit_test(test_setup_frame),
	    cmocka_unit_test(test_filter_confined),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
