/*
 * test_bayes.c — the Bayes classifier (filters/bayes.c) and its tokenizer
 * (filters/tokenize.c): the tokens of encoded words, HTML and base64;
 * training on real corpus messages then classifying others; the database
 * file (round trip, refusals of damaged files, loaded read-only, loaded
 * from a descriptor); and the filter's init and run in a confined child, as
 * a worker does them, from the descriptor the main process hands it.
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
#include <unistd.h>

#include <cmocka.h>

#include "core/util.h"
#include "filters/bayes.h"
#include "filters/filter.h"
#include "filters/mime.h"
#include "filters/tokenize.h"
#include "pipeline/confine.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"
#include "test_corpus.h"

/* Trained messages per side, and held-out messages classified per side. */
#define TEST_TRAIN 300
#define TEST_HELD 100

static char test_dir[] = "/tmp/popgate-test-bayes-XXXXXX";
static char *test_db_path;

struct test_tokens {
	char **items;
	size_t count;
};

static void test_collect(const char *token, size_t len, uint64_t hash, void *arg)
{
	struct test_tokens *tokens = arg;

	assert_true(len <= TOKENIZE_TOKEN_MAX);
	assert_true(hash == tokenize_hash(token, len));
	tokens->items = xrealloc(tokens->items, (tokens->count + 1) * sizeof(char *));
	tokens->items[tokens->count++] = xstrndup(token, len);
}

static bool test_has(const struct test_tokens *tokens, const char *token)
{
	for (size_t i = 0; i < tokens->count; i++) {
		if (strcmp(tokens->items[i], token) == 0)
			return true;
	}
	return false;
}

static bool test_has_prefix(const struct test_tokens *tokens, const char *prefix)
{
	for (size_t i = 0; i < tokens->count; i++) {
		if (strncmp(tokens->items[i], prefix, strlen(prefix)) == 0)
			return true;
	}
	return false;
}

static void test_tokens_of(const char *text, struct test_tokens *tokens)
{
	struct mime_message m;

	memset(tokens, 0, sizeof(*tokens));
	mime_parse(text, strlen(text), &m);
	tokenize_message(&m, test_collect, tokens);
	mime_message_free(&m);
}

static void test_tokens_free(struct test_tokens *tokens)
{
	for (size_t i = 0; i < tokens->count; i++)
		free(tokens->items[i]);
	free(tokens->items);
}

static void test_tokenize(void **state)
{
	static const char text[] =
	    "From: Shop <offers@shop.example.com>\n"
	    "Return-Path: <bounce@mailer.example.net>\n"
	    "Subject: =?utf-8?B?R3LDvMOfZQ==?= 2002\n"
	    "X-Spam-Status: Yes, hits=12\n"
	    "Date: Thu, 22 Aug 2002 13:17:22 +0100\n"
	    "Content-Type: multipart/alternative; boundary=b\n"
	    "\n"
	    "--b\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "RnJlZSBtb25leSAxMjM0NSBub3ch\n"
	    "--b\n"
	    "Content-Type: text/html\n"
	    "\n"
	    "<p>Cheap v<b></b>iagra</p><a href=\"http://www.pills.example.org/x\">go</a>\n"
	    "--b--\n";
	struct test_tokens tokens;

	(void)state;
	test_tokens_of(text, &tokens);
	/* The encoded word, decoded and lowercased, under its field's name. */
	assert_true(test_has(&tokens, "h:subject:grüße"));
	/* Numbers alone are not tokens; nor are an earlier filter's verdict
	 * and the date. */
	assert_false(test_has(&tokens, "h:subject:2002"));
	assert_false(test_has(&tokens, "n:x-spam-status"));
	assert_false(test_has(&tokens, "h:date:aug"));
	/* The base64 text's words and bigrams. */
	assert_true(test_has(&tokens, "free"));
	assert_true(test_has(&tokens, "b1:free money"));
	assert_true(test_has(&tokens, "b2:free now!"));
	assert_false(test_has(&tokens, "12345"));
	/* HTML: the word a tag split, the link's host and its parent domain. */
	assert_true(test_has(&tokens, "viagra"));
	assert_true(test_has(&tokens, "b1:cheap viagra"));
	assert_true(test_has(&tokens, "u:www.pills.example.org"));
	assert_true(test_has(&tokens, "u:example.org"));
	assert_true(test_has(&tokens, "t:text/html"));
	/* The author's domain against the Return-Path's. */
	assert_true(test_has(&tokens, "c:return-path-other"));
	assert_true(test_has(&tokens, "h:from:shop.example.com"));
	test_tokens_free(&tokens);
}

/* An attachment whose extension is longer than a token: cut, never
 * written past the token buffer (found by fuzz_mime). */
static void test_tokenize_long_extension(void **state)
{
	char *text = xmalloc(600);
	struct test_tokens tokens;
	int n = snprintf(text, 600,
			 "From: a@example.org\n"
			 "Content-Type: multipart/mixed; boundary=b\n\n"
			 "--b\n"
			 "Content-Type: application/zip; name=\"a.");

	(void)state;
	memset(text + n, 'X', 300);
	snprintf(text + n + 300, 600 - (size_t)n - 300, "\"\n\nzip\n--b--\n");
	test_tokens_of(text, &tokens);
	for (size_t i = 0; i < tokens.count; i++) {
		if (strncmp(tokens.items[i], "a:", 2) == 0) {
			assert_int_equal(strlen(tokens.items[i]), TOKENIZE_TOKEN_MAX);
			/* Lowercased as far as it goes. */
			assert_int_equal(tokens.items[i][TOKENIZE_TOKEN_MAX - 1], 'x');
		}
	}
	assert_true(test_has_prefix(&tokens, "a:"));
	test_tokens_free(&tokens);
	free(text);
}

/* Trains on the first TEST_TRAIN messages of easy-ham-1 and spam-1 into a
 * database at test_db_path. */
static void test_train_corpus(void)
{
	static const char *const groups[] = {"easy-ham-1", "spam-1"};
	struct bayes_db db;
	char err[256];

	memset(&db, 0, sizeof(db));
	bayes_train_begin(&db);
	for (size_t g = 0; g < 2; g++) {
		glob_t files;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		assert_true(files.gl_pathc >= TEST_TRAIN + TEST_HELD);
		for (size_t i = 0; i < TEST_TRAIN; i++) {
			struct mime_message m;
			char *data;
			size_t len;

			assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
			mime_parse(data, len, &m);
			bayes_train(&db, &m, g == 1);
			mime_message_free(&m);
			free(data);
		}
		globfree(&files);
	}
	assert_int_equal(db.ham_messages, TEST_TRAIN);
	assert_int_equal(db.spam_messages, TEST_TRAIN);
	assert_int_equal(bayes_db_save(&db, test_db_path, err, sizeof(err)), 0);
	bayes_db_free(&db);
}

static int test_setup(void **state)
{
	(void)state;
	if (mkdtemp(test_dir) == NULL)
		return -1;
	test_db_path = xasprintf("%s/%s", test_dir, BAYES_DB_NAME);
	mime_init();
	test_train_corpus();
	return 0;
}

static int test_teardown(void **state)
{
	char *command = xasprintf("rm -rf '%s'", test_dir);

	(void)state;
	assert_int_equal(system(command), 0);
	free(command);
	free(test_db_path);
	return 0;
}

/* Held-out corpus messages (after the trained ones): nearly all right. */
static void test_classify_corpus(void **state)
{
	static const char *const groups[] = {"easy-ham-1", "spam-1"};
	struct bayes_db db;
	char err[256];

	(void)state;
	assert_int_equal(bayes_db_load(test_db_path, &db, err, sizeof(err)), 0);
	for (size_t g = 0; g < 2; g++) {
		glob_t files;
		size_t right = 0;

		assert_int_equal(test_corpus_glob(groups[g], "", &files), 0);
		for (size_t i = TEST_TRAIN; i < TEST_TRAIN + TEST_HELD; i++) {
			struct mime_message m;
			struct bayes_verdict verdict;
			char *data;
			size_t len;

			assert_int_equal(util_read_file(files.gl_pathv[i], &data, &len), 0);
			mime_parse(data, len, &m);
			bayes_classify(&db, &m, NULL, &verdict);
			if ((g == 1) == (verdict.probability >= 0.5))
				right++;
			/* Ham is never called spam here. */
			if (g == 0)
				assert_false(verdict.spam);
			mime_message_free(&m);
			free(data);
		}
		globfree(&files);
		assert_true(right >= TEST_HELD * 9 / 10);
	}
	bayes_db_free(&db);
}

/* A clear spam: high probability, the spam verdict, a reason naming tokens. */
static void test_classify_clear_spam(void **state)
{
	static const char text[] =
	    "From: Deals <deals@cheap-offers.example.biz>\n"
	    "Subject: FREE!!! Make money fast - limited time offer\n"
	    "Content-Type: text/html\n"
	    "\n"
	    "<html><body><font size=5>Make MONEY fast!</font> Click here to be removed. "
	    "Limited time offer, order now, 100% guaranteed, no risk. "
	    "<a href=\"http://www.cheap-offers.example.biz/\">CLICK HERE</a> "
	    "to unsubscribe from this mailing list.</body></html>\n";
	struct bayes_db db;
	struct mime_message m;
	struct bayes_verdict verdict;
	char err[256];

	(void)state;
	assert_int_equal(bayes_db_load(test_db_path, &db, err, sizeof(err)), 0);
	mime_parse(text, sizeof(text) - 1, &m);
	bayes_classify(&db, &m, NULL, &verdict);
	assert_true(verdict.spam);
	assert_true(verdict.probability >= bayes_params_default()->cutoff);
	assert_true(verdict.tokens_used > 10);
	assert_true(strlen(verdict.explanation) > 0);
	for (const char *p = verdict.explanation; *p != '\0'; p++)
		assert_true(*p >= 0x20 && *p < 0x7f);
	mime_message_free(&m);
	bayes_db_free(&db);
}

static void test_db_files(void **state)
{
	struct bayes_db db;
	struct stat st;
	char err[256];
	char *path = xasprintf("%s/damaged.db", test_dir);
	char *data;
	size_t len;

	(void)state;
	/* Missing: 1, an empty database that classifies everything 0.5. */
	assert_int_equal(bayes_db_load("/nonexistent/bayes.db", &db, err, sizeof(err)), 1);
	assert_int_equal(db.count, 0);
	/* Written for the workers (another user) to read. */
	assert_int_equal(stat(test_db_path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(util_read_file(test_db_path, &data, &len), 0);
	/* A bad magic, a cut file, an unsorted one: refused, never trusted. */
	data[0] = 'X';
	assert_int_equal(util_write_file_atomic(path, data, len, 0644), 0);
	assert_int_equal(bayes_db_load(path, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "magic"));
	data[0] = 'P';
	assert_int_equal(util_write_file_atomic(path, data, len - 3, 0644), 0);
	assert_int_equal(bayes_db_load(path, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "entry count"));
	memcpy(data + 32, data + 48, 8);
	assert_int_equal(util_write_file_atomic(path, data, len, 0644), 0);
	assert_int_equal(bayes_db_load(path, &db, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "order"));
	/* Loading and training a loaded copy leaves the file as it was until
	 * it is saved: the database the workers read changes only by rename. */
	free(data);
	assert_int_equal(bayes_db_load(test_db_path, &db, err, sizeof(err)), 0);
	uint64_t spam = db.spam_messages;
	size_t count = db.count;
	const struct bayes_entry *entry = bayes_db_find(&db, tokenize_hash("free", 4));
	assert_non_null(entry);
	bayes_train_begin(&db);
	assert_int_equal(db.count, count);
	bayes_db_free(&db);
	assert_int_equal(bayes_db_load(test_db_path, &db, err, sizeof(err)), 0);
	assert_int_equal(db.spam_messages, spam);
	bayes_db_free(&db);
	free(path);
}

/* The worker's way in: the same database from a descriptor as from its
 * path; a descriptor that is not a regular file is refused; the caller's
 * descriptor stays open. */
static void test_db_load_fd(void **state)
{
	struct bayes_db by_path;
	struct bayes_db by_fd;
	char err[256];
	int pipe_fds[2];
	int fd;

	(void)state;
	assert_int_equal(bayes_db_load(test_db_path, &by_path, err, sizeof(err)), 0);
	fd = open(test_db_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(bayes_db_load_fd(fd, BAYES_DB_NAME, &by_fd, err, sizeof(err)), 0);
	assert_int_not_equal(fcntl(fd, F_GETFD), -1);
	close(fd);
	assert_int_equal(by_fd.spam_messages, by_path.spam_messages);
	assert_int_equal(by_fd.ham_messages, by_path.ham_messages);
	assert_int_equal(by_fd.count, by_path.count);
	assert_memory_equal(by_fd.entries, by_path.entries,
			    by_path.count * sizeof(*by_path.entries));
	bayes_db_free(&by_fd);
	bayes_db_free(&by_path);

	assert_int_equal(pipe(pipe_fds), 0);
	assert_int_equal(bayes_db_load_fd(pipe_fds[0], BAYES_DB_NAME, &by_fd, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "bayes.db: not a database"));
	assert_int_equal(by_fd.count, 0);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

/* One message learnt at a time, as quarantine actions do: the counts of
 * its side and of its tokens go up by one, the file stays valid. */
static void test_learn_one(void **state)
{
	static const char text[] = "From: a@example.org\nSubject: zebrafish quokka\n\nhello\n";
	char *path = xasprintf("%s/learn.db", test_dir);
	struct bayes_db db;
	char err[256];
	uint64_t hash = tokenize_hash("h:subject:quokka", strlen("h:subject:quokka"));

	(void)state;
	assert_int_equal(bayes_learn(path, text, sizeof(text) - 1, true, err, sizeof(err)), 0);
	assert_int_equal(bayes_learn(path, text, sizeof(text) - 1, false, err, sizeof(err)), 0);
	assert_int_equal(bayes_learn(path, text, sizeof(text) - 1, true, err, sizeof(err)), 0);
	assert_int_equal(bayes_db_load(path, &db, err, sizeof(err)), 0);
	assert_int_equal(db.spam_messages, 2);
	assert_int_equal(db.ham_messages, 1);
	assert_non_null(bayes_db_find(&db, hash));
	assert_int_equal(bayes_db_find(&db, hash)->spam, 2);
	assert_int_equal(bayes_db_find(&db, hash)->ham, 1);
	bayes_db_free(&db);
	assert_int_equal(
	    bayes_learn("/nonexistent/dir/x.db", text, sizeof(text) - 1, true, err, sizeof(err)),
	    -1);
	free(path);
}

/* Forgetting undoes a training (a report reversed: spam, then ham): on a
 * real message, every token's count goes back to what it was, the message
 * counts too, nothing goes below 0 when forgotten once too often, and a
 * token no message holds any more is not saved. */
static void test_forget(void **state)
{
	char *path = xasprintf("%s/forget.db", test_dir);
	struct bayes_db db, saved;
	struct mime_message message;
	char err[256];
	char *data;
	size_t len;
	uint64_t hash = tokenize_hash("h:subject:quokka", strlen("h:subject:quokka"));
	static const char other[] = "From: a@example.org\nSubject: zebrafish quokka\n\nhello\n";

	(void)state;
	assert_int_equal(test_corpus_read("spam-1", "00001.", &data, &len), 0);
	memset(&db, 0, sizeof(db));
	bayes_train_begin(&db);
	mime_parse(other, sizeof(other) - 1, &message);
	bayes_train(&db, &message, false);
	mime_message_free(&message);
	mime_parse(data, len, &message);
	size_t tokens_before = db.count;

	bayes_train(&db, &message, true);
	assert_true(db.count > tokens_before);
	assert_int_equal(db.spam_messages, 1);
	bayes_forget(&db, &message, true);
	assert_int_equal(db.spam_messages, 0);
	assert_int_equal(db.ham_messages, 1);
	for (size_t i = 0; i < db.capacity; i++) {
		if (db.entries[i].hash != 0)
			assert_int_equal(db.entries[i].spam, 0);
	}
	/* Once too often: nothing below 0, the ham counts untouched. */
	bayes_forget(&db, &message, true);
	bayes_forget(&db, &message, false);
	assert_int_equal(db.spam_messages, 0);
	assert_int_equal(db.ham_messages, 0);
	mime_message_free(&message);
	mime_parse(other, sizeof(other) - 1, &message);
	bayes_train(&db, &message, false);
	mime_message_free(&message);
	assert_int_equal(bayes_db_save(&db, path, err, sizeof(err)), 0);
	assert_int_equal(bayes_db_load(path, &saved, err, sizeof(err)), 0);
	assert_int_equal(saved.ham_messages, 1);
	assert_non_null(bayes_db_find(&saved, hash));
	for (size_t i = 0; i < saved.count; i++)
		assert_true(saved.entries[i].spam > 0 || saved.entries[i].ham > 0);
	assert_true(saved.count < tokens_before + 50);
	bayes_db_free(&saved);
	bayes_db_free(&db);
	free(data);
	free(path);
}

/* The search finds every entry of the trained database and no hash it
 * lacks (the neighbours of each entry, and the ends of the range). */
static void test_find_all(void **state)
{
	struct bayes_db db;
	char err[256];

	(void)state;
	assert_int_equal(bayes_db_load(test_db_path, &db, err, sizeof(err)), 0);
	assert_true(db.count > 10000);
	for (size_t i = 0; i < db.count; i++) {
		uint64_t hash = db.entries[i].hash;

		assert_ptr_equal(bayes_db_find(&db, hash), &db.entries[i]);
		if (i + 1 == db.count || db.entries[i + 1].hash != hash + 1)
			assert_null(bayes_db_find(&db, hash + 1));
	}
	if (db.entries[0].hash > 0)
		assert_null(bayes_db_find(&db, 0));
	if (db.entries[db.count - 1].hash < UINT64_MAX)
		assert_null(bayes_db_find(&db, UINT64_MAX));
	bayes_db_free(&db);
}

static void test_points(void **state)
{
	(void)state;
	assert_true(bayes_points(0.5, 0.97) == 0);
	assert_true(bayes_points(0.97, 0.97) == BAYES_POINTS_MAX);
	assert_true(bayes_points(1.0, 0.97) == BAYES_POINTS_MAX);
	assert_true(bayes_points(0.0, 0.97) == -BAYES_POINTS_MAX);
	assert_true(bayes_points(0.735, 0.97) > 4.9 && bayes_points(0.735, 0.97) < 5.1);
}

/*
 * The filter as a worker runs it: init outside the data folder, from the
 * descriptor the main process opened (the database loaded before
 * confinement), then confined, judging a message. The child reports the
 * score's sign and the reason's start in its exit status.
 */
static void test_filter_confined(void **state)
{
	static const char spam[] = "From: Deals <deals@cheap-offers.example.biz>\n"
				   "Subject: FREE!!! Make money fast\n"
				   "\n"
				   "Click here to be removed from this mailing list. Order now!\n";
	pid_t pid;
	int status;

	(void)state;
	assert_string_equal(filter_bayes.name, "bayes");
	assert_ptr_equal(filter_find("bayes"), &filter_bayes);
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pipeline_result result = {.name = "bayes"};
		struct filter_message message = {.body = spam, .body_len = sizeof(spam) - 1};
		char err[256];
		int ok;

		int fd = open(test_db_path, O_RDONLY | O_CLOEXEC);

		/* Far from the data folder: nothing is opened by name. */
		if (fd < 0 || chdir("/") < 0)
			_exit(10);
		bayes_filter_use_db(fd);
		if (filter_bayes.init(err, sizeof(err)) < 0)
			_exit(10);
		/* The init closed the descriptor it was handed. */
		if (fcntl(fd, F_GETFD) != -1)
			_exit(14);
		if (confine_apply(err, sizeof(err)) < 0)
			_exit(11);
		if (filter_bayes.run(&message, &result, NULL) < 0)
			_exit(12);
		ok = result.score > 0 && strncmp(result.reason, "bayes: ", 7) == 0 &&
		     proto_reason_valid(result.reason, strlen(result.reason)) &&
		     strtod(result.reason + 7, NULL) >= 0.5 &&
		     strstr(result.reason, ", tokens: ") != NULL;
		free(result.reason);
		_exit(ok ? 0 : 13);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A database whose strongest tokens are long bigrams of 32-byte words: the
 * explanation of six of them would be longer than a frame's reason, so it
 * is cut after a whole token, and the result still encodes. */
static void test_reason_fits(void **state)
{
	struct mime_message parsed;
	char *spam = xstrdup("From: a@example.org\nSubject: offer\n\n");
	static const char ham[] = "From: b@example.org\nSubject: minutes\n\nmeeting notes\n";
	char *path = xasprintf("%s/long.db", test_dir);
	struct pipeline_result result = {.name = "bayes"};
	struct bayes_db db;
	char err[256];

	(void)state;
	for (int i = 0; i < 12; i++) {
		char *next = xasprintf("%s abcdefghijklmnopqrstuvwxyz%06d", spam, i);
		free(spam);
		spam = next;
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(bayes_learn(path, spam, strlen(spam), true, err, sizeof(err)), 0);
		assert_int_equal(bayes_learn(path, ham, strlen(ham), false, err, sizeof(err)), 0);
	}
	assert_int_equal(bayes_db_load(path, &db, err, sizeof(err)), 0);
	mime_parse(spam, strlen(spam), &parsed);
	bayes_judge(&db, &parsed, &result);
	mime_message_free(&parsed);
	assert_true(result.score > 0);
	assert_true(strlen(result.reason) <= PROTO_REASON_MAX);
	assert_true(proto_reason_valid(result.reason, strlen(result.reason)));
	assert_non_null(strstr(result.reason, ", tokens: "));
	assert_int_not_equal(result.reason[strlen(result.reason) - 1], ',');
	free(result.reason);
	bayes_db_free(&db);
	free(spam);
	free(path);
}

/* Without a database the filter fails its result, saying why, and never
 * the worker: its init succeeds. */
static void test_filter_untrained(void **state)
{
	static const char text[] = "From: a@example.org\n\nhello\n";
	pid_t pid;
	int status;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pipeline_result result = {.name = "bayes"};
		struct filter_message message = {.body = text, .body_len = sizeof(text) - 1};
		char err[256];
		int ok;

		if (chdir("/") < 0 || filter_bayes.init(err, sizeof(err)) < 0)
			_exit(10);
		ok = filter_bayes.run(&message, &result, NULL) < 0 && result.reason != NULL &&
		     strcmp(result.reason, "bayes: not trained (popgatectl bayes train)") == 0;
		free(result.reason);
		_exit(ok ? 0 : 11);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tokenize),
	    cmocka_unit_test(test_tokenize_long_extension),
	    cmocka_unit_test(test_classify_corpus),
	    cmocka_unit_test(test_classify_clear_spam),
	    cmocka_unit_test(test_db_files),
	    cmocka_unit_test(test_db_load_fd),
	    cmocka_unit_test(test_points),
	    cmocka_unit_test(test_filter_confined),
	    cmocka_unit_test(test_filter_untrained),
	    cmocka_unit_test(test_learn_one),
	    cmocka_unit_test(test_forget),
	    cmocka_unit_test(test_find_all),
	    cmocka_unit_test(test_reason_fits),
	};

	return cmocka_run_group_tests(tests, test_setup, test_teardown);
}
