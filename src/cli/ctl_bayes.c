/*
 * ctl_bayes.c — popgatectl bayes train|score: trains the Bayes filter's
 * token database (filters/bayes.h) from messages the administrator says are
 * spam or ham, and shows what the filter would say about messages.
 *
 * A PATH is a message file, an mbox (a file that starts with a "From "
 * line: every message in it), a maildir (a folder with cur/ or new/: the
 * files in both, and its subfolders: Maildir++ ".Sent" and the like, or
 * plain ones) or a folder of any of these, to CTL_MAIL_DEPTH_MAX folders
 * deep (each folder read once, so a link back up ends). The database is
 * <data_dir>/bayes.db unless --database names another file; training
 * writes it whole (a new file renamed over the old one), so workers that
 * loaded the old one go on with it until the running daemon, told of the
 * change, replaces them with workers handed the new one.
 *
 * Owns: the database file while it trains. Must never: print a message
 * body (score prints the probability and the token names only), or leave a
 * half-written database behind.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/mbox.h"
#include "core/util.h"
#include "filters/bayes.h"
#include "filters/filter.h"
#include "filters/mime.h"

/* Message files one command looks at, all paths together. */
#define CTL_BAYES_FILES_MAX 1000000
/* Folders below a PATH that are read, at most this deep (deeper ones are
 * refused, named: never skipped unsaid). */
#define CTL_MAIL_DEPTH_MAX 16

static void ctl_bayes_files_add(struct ctl_bayes_files *files, char *path, bool in_maildir)
{
	if (files->count == files->capacity) {
		files->capacity = files->capacity == 0 ? 64 : files->capacity * 2;
		files->paths = xrealloc(files->paths, files->capacity * sizeof(*files->paths));
		files->in_maildir =
		    xrealloc(files->in_maildir, files->capacity * sizeof(*files->in_maildir));
	}
	files->in_maildir[files->count] = in_maildir;
	files->paths[files->count++] = path;
}

void ctl_bayes_files_free(struct ctl_bayes_files *files)
{
	for (size_t i = 0; i < files->count; i++)
		free(files->paths[i]);
	free(files->paths);
	free(files->in_maildir);
}

/* One expansion of a folder: the folders read (by device and inode, so
 * that none is read twice, through a link or otherwise), and where it
 * failed. */
struct ctl_mail_walk {
	struct ctl_bayes_files *files;
	struct stat *seen;
	size_t seen_count;
	size_t seen_capacity;
	char *failed; /* the folder that stopped the walk */
	int error;    /* why: its errno, or */
	char *reason; /* why, when not an errno */
};

/* True the first time folder ST is met. */
static bool ctl_mail_walk_first(struct ctl_mail_walk *walk, const struct stat *st)
{
	for (size_t i = 0; i < walk->seen_count; i++)
		if (walk->seen[i].st_dev == st->st_dev && walk->seen[i].st_ino == st->st_ino)
			return false;
	if (walk->seen_count == walk->seen_capacity) {
		walk->seen_capacity = walk->seen_capacity == 0 ? 16 : walk->seen_capacity * 2;
		walk->seen = xrealloc(walk->seen, walk->seen_capacity * sizeof(*walk->seen));
	}
	walk->seen[walk->seen_count++] = *st;
	return true;
}

/* DIR has a cur/ or new/ folder. */
static bool ctl_mail_is_maildir(const char *dir)
{
	struct stat st;
	char *cur = xasprintf("%s/cur", dir);
	char *new_dir = xasprintf("%s/new", dir);
	bool maildir = (stat(cur, &st) == 0 && S_ISDIR(st.st_mode)) ||
		       (stat(new_dir, &st) == 0 && S_ISDIR(st.st_mode));

	free(cur);
	free(new_dir);
	return maildir;
}

/* Records FOLDER as the one that stopped the walk, for REASON (taken;
 * NULL: the errno). -1. */
static int ctl_mail_walk_fail(struct ctl_mail_walk *walk, const char *folder, char *reason)
{
	walk->error = errno;
	walk->reason = reason;
	walk->failed = xstrdup(folder);
	return -1;
}

/* Adds the regular files of FOLDER (not its dot files) in name order, as
 * maildir files when IN_MAILDIR. 0, or -1 (ctl_mail_walk_fail). */
static int ctl_mail_add_files(struct ctl_mail_walk *walk, const char *folder, bool in_maildir)
{
	struct dirent **names;
	int count = scandir(folder, &names, NULL, alphasort);

	int rc = 0;

	if (count < 0)
		return ctl_mail_walk_fail(walk, folder, NULL);
	for (int i = 0; i < count; i++) {
		char *path = xasprintf("%s/%s", folder, names[i]->d_name);
		struct stat st;

		if (rc == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			if (walk->files->count < CTL_BAYES_FILES_MAX) {
				ctl_bayes_files_add(walk->files, path, in_maildir);
				path = NULL;
			} else {
				rc = ctl_mail_walk_fail(
				    walk, folder,
				    xasprintf("more than %d message files in one command: give "
					      "fewer folders at a time",
					      CTL_BAYES_FILES_MAX));
			}
		}
		free(path);
		free(names[i]);
	}
	free(names);
	return rc;
}

/* Whether DIR's entry NAME (at PATH, a folder) is walked into: not . or
 * .., nor a maildir's own cur/, new/ and tmp/; a dot folder only when it is
 * a maildir's Maildir++ subfolder (".Sent"). */
static bool ctl_mail_walk_into(const char *name, const char *path, bool in_maildir)
{
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	if (in_maildir &&
	    (strcmp(name, "cur") == 0 || strcmp(name, "new") == 0 || strcmp(name, "tmp") == 0))
		return false;
	return name[0] != '.' || (in_maildir && ctl_mail_is_maildir(path));
}

/*
 * Adds folder DIR's message files (a maildir's in cur/ then new/, else its
 * own), then walks its subfolders in name order, to CTL_MAIL_DEPTH_MAX
 * below the first. 0, or -1 (ctl_mail_walk_fail).
 */
static int ctl_mail_walk_folder(struct ctl_mail_walk *walk, const char *dir, int depth)
{
	bool maildir = ctl_mail_is_maildir(dir);
	struct dirent **entries;
	struct stat st;
	int count, rc = 0;

	if (stat(dir, &st) < 0)
		return ctl_mail_walk_fail(walk, dir, NULL);
	if (!ctl_mail_walk_first(walk, &st))
		return 0;
	if (maildir) {
		char *cur = xasprintf("%s/cur", dir);
		char *new_dir = xasprintf("%s/new", dir);

		if (stat(cur, &st) == 0)
			rc = ctl_mail_add_files(walk, cur, true);
		if (rc == 0 && stat(new_dir, &st) == 0)
			rc = ctl_mail_add_files(walk, new_dir, true);
		free(cur);
		free(new_dir);
	} else {
		rc = ctl_mail_add_files(walk, dir, false);
	}
	if (rc < 0)
		return -1;
	if ((count = scandir(dir, &entries, NULL, alphasort)) < 0)
		return ctl_mail_walk_fail(walk, dir, NULL);
	for (int i = 0; i < count; i++) {
		char *path = xasprintf("%s/%s", dir, entries[i]->d_name);

		if (rc == 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
		    ctl_mail_walk_into(entries[i]->d_name, path, maildir))
			rc = depth < CTL_MAIL_DEPTH_MAX
				 ? ctl_mail_walk_folder(walk, path, depth + 1)
				 : ctl_mail_walk_fail(walk, path,
						      xasprintf("more than %d folders deep: give "
								"this folder on its own",
								CTL_MAIL_DEPTH_MAX));
		free(path);
		free(entries[i]);
	}
	free(entries);
	return rc;
}

int ctl_bayes_expand(const char *path, struct ctl_bayes_files *files)
{
	struct ctl_mail_walk walk = {.files = files};
	struct stat st;
	char buf[256];
	int rc = CTL_OK;

	if (stat(path, &st) < 0)
		return ctl_refuse("%s: %s", ctl_clean(path, buf, sizeof(buf)), strerror(errno));
	if (S_ISREG(st.st_mode)) {
		ctl_bayes_files_add(files, xstrdup(path), false);
		return CTL_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return ctl_refuse("%s: not a file or folder", ctl_clean(path, buf, sizeof(buf)));
	if (ctl_mail_walk_folder(&walk, path, 0) < 0)
		rc = ctl_refuse("%s: %s", ctl_clean(walk.failed, buf, sizeof(buf)),
				walk.reason != NULL ? walk.reason : strerror(walk.error));
	free(walk.failed);
	free(walk.reason);
	free(walk.seen);
	return rc;
}

void ctl_bayes_messages(const char *data, size_t len,
			void (*fn)(const char *message, size_t len, void *arg), void *arg)
{
	struct mbox_message message;

	if (!mbox_is(data, len)) {
		fn(data, len < FILTER_BODY_MAX ? len : FILTER_BODY_MAX, arg);
		return;
	}
	for (size_t offset = 0; offset < len; offset = message.next) {
		size_t n;

		mbox_message_at(data, len, offset, &message);
		n = message.next - message.start;
		fn(data + message.start, n < FILTER_BODY_MAX ? n : FILTER_BODY_MAX, arg);
	}
}

/* Shows DONE of TOTAL files on a terminal's stderr (nothing otherwise). */
static void ctl_bayes_progress(size_t done, size_t total, bool tty)
{
	enum { WIDTH = 40 };
	char bar[WIDTH + 1];
	size_t filled = total > 0 ? done * WIDTH / total : WIDTH;

	if (!tty)
		return;
	for (size_t i = 0; i < WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu files", bar, done, total);
	if (done == total)
		fputc('\n', stderr);
	fflush(stderr);
}

/* The database path: --database's, or the data folder's bayes.db. */
static char *ctl_bayes_path(const struct ctl *ctl, const char *option)
{
	if (option != NULL)
		return xstrdup(option);
	return xasprintf("%s/%s", ctl->cfg.data_dir, BAYES_DB_NAME);
}

/*
 * Reads the options (--spam, --ham when TRAINING, --database FILE) and the
 * paths of ARGV into FILES. CTL_OK, or the usage error or refusal.
 */
static int ctl_bayes_args(const struct ctl_command *cmd, int argc, char **argv, bool training,
			  int *spam_r, const char **database_r, struct ctl_bayes_files *files)
{
	char **paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	size_t path_count = 0;
	int rc = CTL_OK;

	*spam_r = -1;
	*database_r = NULL;
	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value = ctl_option("--database", argc, argv, &i, &missing);
		char buf[64];

		if (missing) {
			rc = ctl_usage_error(cmd, "--database needs a file");
			goto done;
		}
		if (value != NULL)
			*database_r = value;
		else if (training && strcmp(argv[i], "--spam") == 0)
			*spam_r = 1;
		else if (training && strcmp(argv[i], "--ham") == 0)
			*spam_r = 0;
		else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			rc = ctl_usage_error(cmd, "unknown option '%s'",
					     ctl_clean(argv[i], buf, sizeof(buf)));
			goto done;
		} else
			paths[path_count++] = argv[i];
	}
	if (training && *spam_r < 0) {
		rc = ctl_usage_error(cmd, "say --spam or --ham");
		goto done;
	}
	if (path_count == 0) {
		rc = ctl_usage_error(cmd, "no PATH given");
		goto done;
	}
	for (size_t i = 0; i < path_count && rc == CTL_OK; i++)
		rc = ctl_bayes_expand(paths[i], files);
done:
	free(paths);
	return rc;
}

struct ctl_bayes_train {
	struct bayes_db *db;
	bool spam;
	size_t messages;
};

static void ctl_bayes_train_one(const char *data, size_t len, void *arg)
{
	struct ctl_bayes_train *train = arg;
	struct mime_message message;

	mime_parse(data, len, &message);
	bayes_train(train->db, &message, train->spam);
	mime_message_free(&message);
	train->messages++;
}

int ctl_bayes_train(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_bayes_files files = {0};
	struct bayes_db db;
	struct ctl_bayes_train train = {.db = &db};
	const char *database;
	char *path = NULL;
	char err[512];
	int spam;
	int rc;
	bool tty = isatty(STDERR_FILENO);
	int lock = -1;

	memset(&db, 0, sizeof(db));
	rc = ctl_bayes_args(cmd, argc, argv, true, &spam, &database, &files);
	if (rc != CTL_OK)
		goto done;
	train.spam = spam == 1;
	path = ctl_bayes_path(ctl, database);
	/* Held until the save: a learning meanwhile would be overwritten. */
	lock = ctl_bayes_lock(path, err, sizeof(err));
	if (lock < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	if (bayes_db_load(path, &db, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	mime_init();
	bayes_train_begin(&db);
	for (size_t i = 0; i < files.count; i++) {
		char *data;
		size_t len;

		if (util_read_file(files.paths[i], &data, &len) < 0) {
			rc = ctl_refuse("%s: %s", ctl_clean(files.paths[i], err, sizeof(err)),
					strerror(errno));
			goto done;
		}
		ctl_bayes_messages(data, len, ctl_bayes_train_one, &train);
		free(data);
		ctl_bayes_progress(i + 1, files.count, tty);
	}
	if (bayes_db_save(&db, path, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	rc = ctl_changed(
	    ctl, NULL,
	    json_pack("{s:s, s:I, s:I, s:I, s:I}", "trained", train.spam ? "spam" : "ham",
		      "messages", (json_int_t)train.messages, "spam_messages",
		      (json_int_t)db.spam_messages, "ham_messages", (json_int_t)db.ham_messages,
		      "tokens", (json_int_t)db.count),
	    "bayes: trained %zu messages as %s (database: %llu spam, %llu ham, %zu tokens)",
	    train.messages, train.spam ? "spam" : "ham", (unsigned long long)db.spam_messages,
	    (unsigned long long)db.ham_messages, db.count);
done:
	if (lock >= 0)
		close(lock);
	free(path);
	bayes_db_free(&db);
	ctl_bayes_files_free(&files);
	return rc;
}

int ctl_bayes_learn(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_learnt learnt;
	char err[512];
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'bayes learn' takes no arguments");
	if ((rc = ctl_open_store(ctl)) != CTL_OK)
		return rc;
	if (ctl_learn_reports(ctl, &learnt, err, sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	return ctl_changed(
	    ctl, NULL,
	    json_pack("{s:I, s:I, s:I, s:I}", "learnt", (json_int_t)learnt.learnt, "reversed",
		      (json_int_t)learnt.reversed, "already", (json_int_t)learnt.already,
		      "not_learnable", (json_int_t)learnt.unlearnable),
	    "bayes: learnt %zu report(s) (%zu reversing an earlier one), %zu already counted, "
	    "%zu not learnable (body gone)",
	    learnt.learnt, learnt.reversed, learnt.already, learnt.unlearnable);
}

struct ctl_bayes_score {
	const struct bayes_db *db;
	const char *path;
	json_t *array; /* with --json */
	int failed;
};

static void ctl_bayes_score_one(const char *data, size_t len, void *arg)
{
	struct ctl_bayes_score *score = arg;
	struct mime_message message;
	struct bayes_verdict verdict;
	char path[512];

	mime_parse(data, len, &message);
	bayes_classify(score->db, &message, NULL, &verdict);
	mime_message_free(&message);
	ctl_clean(score->path, path, sizeof(path));
	if (score->array != NULL) {
		json_array_append_new(
		    score->array,
		    json_pack("{s:o, s:f, s:s, s:I, s:s}", "path", cli_json_string(path),
			      "probability", verdict.probability, "verdict",
			      verdict.spam ? "spam" : "ham", "tokens_used",
			      (json_int_t)verdict.tokens_used, "tokens", verdict.explanation));
	} else if (printf("%.10f %s %s tokens: %s\n", verdict.probability,
			  verdict.spam ? "spam" : "ham", path, verdict.explanation) < 0) {
		score->failed = 1;
	}
}

int ctl_bayes_score(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_bayes_files files = {0};
	struct bayes_db db;
	struct ctl_bayes_score score = {.db = &db};
	const char *database;
	char *path = NULL;
	char err[512];
	int spam;
	int rc;

	memset(&db, 0, sizeof(db));
	rc = ctl_bayes_args(cmd, argc, argv, false, &spam, &database, &files);
	if (rc != CTL_OK)
		goto done;
	path = ctl_bayes_path(ctl, database);
	rc = bayes_db_load(path, &db, err, sizeof(err));
	if (rc != 0) {
		rc = ctl_refuse("%s",
				rc > 0 ? "no Bayes database: train it first (bayes train)" : err);
		goto done;
	}
	mime_init();
	if (ctl->json)
		score.array = json_array();
	for (size_t i = 0; i < files.count; i++) {
		char *data;
		size_t len;

		if (util_read_file(files.paths[i], &data, &len) < 0) {
			rc = ctl_refuse("%s: %s", ctl_clean(files.paths[i], err, sizeof(err)),
					strerror(errno));
			goto done;
		}
		score.path = files.paths[i];
		ctl_bayes_messages(data, len, ctl_bayes_score_one, &score);
		free(data);
	}
	if (score.array != NULL) {
		rc = ctl_printed(cli_json_print(score.array, stdout));
		score.array = NULL;
	} else {
		rc = ctl_printed(score.failed || fflush(stdout) != 0 ? -1 : 0);
	}
done:
	json_decref(score.array);
	free(path);
	bayes_db_free(&db);
	ctl_bayes_files_free(&files);
	return rc;
}
