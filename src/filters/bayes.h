/*
 * bayes.h — the Bayes classifier: a token database, the Robinson–Fisher
 * combination of the tokens of a message (tokenize.h) into a spam
 * probability, and the counting that trains the database.
 *
 * The database is one file, written only by training (popgatectl bayes
 * train) and read whole by the workers at start, before they confine
 * themselves, from a descriptor the main process opened for them (their
 * user cannot open the data folder); they never write it. Its layout, in the host's byte order:
 *   "PGBAYES1", u64 spam messages, u64 ham messages, u64 entry count,
 *   then the entries { u64 token hash, u32 spam count, u32 ham count },
 *   sorted by hash, each hash once.
 * A count is the number of trained messages that had the token.
 */
#ifndef POPGATE_FILTERS_BAYES_H
#define POPGATE_FILTERS_BAYES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "filters/mime.h"

/* The database's file name in the data folder. */
#define BAYES_DB_NAME "bayes.db"
/* The largest database file read, in bytes. */
#define BAYES_DB_MAX (256UL * 1024 * 1024)
/* Tokens named in an explanation. */
#define BAYES_EXPLAIN_TOKENS 6

struct bayes_entry {
	uint64_t hash;
	uint32_t spam;
	uint32_t ham;
};

/* A database in memory (loaded, or being trained). */
struct bayes_db {
	uint64_t spam_messages;
	uint64_t ham_messages;
	struct bayes_entry *entries; /* sorted by hash when loaded */
	size_t count;
	size_t capacity; /* training only: an open-addressing table */
	/* Loaded only: where the hashes of each value of their top
	 * DIRECTORY_BITS bits start in ENTRIES (2^bits + 1 indexes), so a
	 * lookup touches an index and a few neighbouring entries. */
	uint32_t *directory;
	unsigned directory_bits;
};

/*
 * The classifier's constants. robs and robx are Robinson's s and x (the
 * weight and value of the prior for a rare token), min_dev drops tokens
 * whose probability is that close to 0.5, and cutoff is the probability at
 * and above which the message is spam (chosen on the training data by
 * bench/accuracy.py's cross-validation, never on the test set).
 */
struct bayes_params {
	double robs;
	double robx;
	double min_dev;
	double cutoff;
};

const struct bayes_params *bayes_params_default(void);

struct bayes_verdict {
	double probability; /* 0 ham .. 1 spam */
	size_t tokens_used; /* tokens that counted */
	bool spam;	    /* probability >= cutoff */
	/* The tokens that pushed hardest (spammiest first when spam,
	 * hammiest first else), printable ASCII, comma separated. */
	char explanation[BAYES_EXPLAIN_TOKENS * (40 + 2) + 1];
};

/*
 * Loads the database at PATH into *DB (for bayes_db_free). 0; 1 when there
 * is no such file (*DB is then empty: it classifies everything 0.5); -1
 * with ERR for a file that is unreadable, too large or not a database.
 */
int bayes_db_load(const char *path, struct bayes_db *db, char *err, size_t errlen);

/* Loads the database open read-only on FD (NAME, for errors) into *DB, as
 * bayes_db_load does. 0, or -1 with ERR. FD stays open: the caller's. */
int bayes_db_load_fd(int fd, const char *name, struct bayes_db *db, char *err, size_t errlen);

/* Hands the "bayes" filter the database descriptor the worker was given by
 * the main process, or -1 for none (not trained yet): the filter's init
 * loads it and closes it. Call before filter_init_all. */
void bayes_filter_use_db(int fd);

void bayes_db_free(struct bayes_db *db);

/* The counts of the token hashed HASH in the loaded *DB, or NULL. */
const struct bayes_entry *bayes_db_find(const struct bayes_db *db, uint64_t hash);

/* Classifies MESSAGE against the loaded *DB with PARAMS (NULL: defaults). */
void bayes_classify(const struct bayes_db *db, const struct mime_message *message,
		    const struct bayes_params *params, struct bayes_verdict *verdict);

/* Makes *DB trainable (a loaded one too). Call before bayes_train. */
void bayes_train_begin(struct bayes_db *db);

/* Counts MESSAGE's tokens once each as SPAM or ham in the trainable *DB. */
void bayes_train(struct bayes_db *db, const struct mime_message *message, bool spam);

/* Undoes bayes_train(DB, MESSAGE, SPAM) on the trainable *DB: each of its
 * tokens and the message count go down by one, never below 0 (a token the
 * database does not hold is left alone). For a report that reverses an
 * earlier one (spam, then ham). */
void bayes_forget(struct bayes_db *db, const struct mime_message *message, bool spam);

/* The filter's score for PROBABILITY: 0 at 0.5, BAYES_POINTS_MAX at and
 * above CUTOFF (linear between), down to -BAYES_POINTS_MAX at 0. With the
 * default profile's quarantine_at of 10, a weight of 1 quarantines exactly
 * the messages the classifier calls spam. */
#define BAYES_POINTS_MAX 10.0
double bayes_points(double probability, double cutoff);

struct pipeline_result;

struct mime_message;

/* Classifies MESSAGE (parsed by filters/mime.h) against *DB and fills
 * RESULT's score and reason ("bayes: 0.9987, tokens: ..."). */
void bayes_judge(const struct bayes_db *db, const struct mime_message *message,
		 struct pipeline_result *result);

/* Writes the trainable *DB to PATH (a new file renamed over it, mode 0644:
 * the workers, another user, read it). 0 or -1 with ERR. */
int bayes_db_save(const struct bayes_db *db, const char *path, char *err, size_t errlen);

/*
 * Trains the database at PATH (created if missing) on the one message DATA
 * (LEN bytes) as SPAM or ham and saves it: what `queue release` (ham) and
 * `report spam` do. 0 or -1 with ERR. Not for bulk training: it rewrites
 * the whole file each time.
 */
int bayes_learn(const char *path, const char *data, size_t len, bool spam, char *err,
		size_t errlen);

#endif
