/*
 * bayes.c — the Bayes classifier and its database (see bayes.h), and the
 * "bayes" filter of the filter table.
 *
 * Owns: the worker's loaded database (read once in the filter's init,
 * before confinement, from the descriptor the main process sent; never
 * written by a worker). Must never: write the
 * database from a worker, trust a database file's counts to be sorted or
 * sized right before checking them, or count a token twice in one message.
 *
 * The combination is Robinson's: each token's spam probability p(w) from
 * its per-message frequencies in spam and ham, pulled towards robx by
 * robs (f(w) = (robs*robx + n*p(w)) / (robs + n)); the tokens far enough
 * from 0.5 are combined with Fisher's chi-square method into H and S, and
 * the message's probability is (1 + H - S) / 2. The chi-square tail is
 * computed in logarithms so that a long message cannot underflow it to 0.
 *
 * SECURITY: the message is hostile, the database is trusted only as far as
 * its checks go (it is written by the administrator's training).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"
#include "filters/bayes.h"
#include "filters/filter.h"
#include "filters/message.h"
#include "filters/tokenize.h"
#include "pipeline/pipeline.h"
#include "pipeline/proto.h"

#define BAYES_MAGIC "PGBAYES1"
#define BAYES_HEADER_SIZE 32

static const struct bayes_params bayes_defaults = {
    .robs = 0.0178,
    .robx = 0.52,
    .min_dev = 0.1,
    .cutoff = 0.97,
};

const struct bayes_params *bayes_params_default(void)
{
	return &bayes_defaults;
}

/* ---- the database -------------------------------------------------------- */

int bayes_db_load(const char *path, struct bayes_db *db, char *err, size_t errlen)
{
	int fd;
	int rc;

	memset(db, 0, sizeof(*db));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	rc = bayes_db_load_fd(fd, path, db, err, errlen);
	close(fd);
	return rc;
}

/* Huge pages for a large table (2 MiB on x86-64 and arm64). */
#define BAYES_HUGE_PAGE ((size_t)2 << 20)

/*
 * Memory for a loaded table of BYTES. Lookups land on random entries, so a
 * table of many megabytes in 4 KiB pages costs a TLB miss on nearly every
 * one; in huge pages (where the system gives them: transparent huge pages
 * "madvise" or "always") its page table entries stay cached. Freed with
 * free().
 */
static struct bayes_entry *bayes_entries_alloc(size_t bytes)
{
	void *entries = NULL;

	if (bytes < BAYES_HUGE_PAGE)
		return xmalloc(bytes > 0 ? bytes : 1);
	if (posix_memalign(&entries, BAYES_HUGE_PAGE, bytes) != 0)
		abort(); /* out of memory, as the x* allocators handle it */
	/* Advice only: without huge pages it is the same table. */
	(void)madvise(entries, bytes - bytes % BAYES_HUGE_PAGE, MADV_HUGEPAGE);
	return entries;
}

/*
 * Builds DB's directory (bayes.h): about four entries per slot, so its
 * 4-byte indexes take a quarter of the entries' memory. The hashes are
 * spread evenly over 64 bits, so the slots hold about as many each. Lookups
 * without it (a small database) search the whole table.
 */
static void bayes_db_index(struct bayes_db *db)
{
	unsigned bits = 0;
	size_t slot = 0;

	while (bits < 28 && ((size_t)4 << (bits + 1)) <= db->count)
		bits++;
	if (bits < 4)
		return;
	db->directory_bits = bits;
	db->directory = xmalloc((((size_t)1 << bits) + 1) * sizeof(*db->directory));
	for (size_t i = 0; i < db->count; i++) {
		size_t top = (size_t)(db->entries[i].hash >> (64 - bits));

		while (slot <= top)
			db->directory[slot++] = (uint32_t)i;
	}
	while (slot <= ((size_t)1 << bits))
		db->directory[slot++] = (uint32_t)db->count;
}

int bayes_db_load_fd(int fd, const char *name, struct bayes_db *db, char *err, size_t errlen)
{
	unsigned char header[BAYES_HEADER_SIZE];
	struct stat st;
	uint64_t count;
	size_t size;

	memset(db, 0, sizeof(*db));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < BAYES_HEADER_SIZE ||
	    (uint64_t)st.st_size > BAYES_DB_MAX) {
		snprintf(err, errlen, "%s: not a database (size)", name);
		goto fail;
	}
	size = (size_t)st.st_size;
	if (pread(fd, header, sizeof(header), 0) != (ssize_t)sizeof(header) ||
	    memcmp(header, BAYES_MAGIC, 8) != 0) {
		snprintf(err, errlen, "%s: not a database (magic)", name);
		goto fail;
	}
	memcpy(&db->spam_messages, header + 8, 8);
	memcpy(&db->ham_messages, header + 16, 8);
	memcpy(&count, header + 24, 8);
	if (count != (size - BAYES_HEADER_SIZE) / sizeof(struct bayes_entry) ||
	    (size - BAYES_HEADER_SIZE) % sizeof(struct bayes_entry) != 0) {
		snprintf(err, errlen, "%s: not a database (entry count)", name);
		goto fail;
	}
	db->count = (size_t)count;
	db->entries = bayes_entries_alloc(size - BAYES_HEADER_SIZE);
	for (size_t done = 0; done < size - BAYES_HEADER_SIZE;) {
		ssize_t n = pread(fd, (char *)db->entries + done, size - BAYES_HEADER_SIZE - done,
				  (off_t)(BAYES_HEADER_SIZE + done));

		if (n <= 0) {
			snprintf(err, errlen, "%s: %s", name, n < 0 ? strerror(errno) : "short");
			goto fail;
		}
		done += (size_t)n;
	}
	/* The lookup is a search: it must be sorted, each hash once. */
	for (size_t i = 1; i < db->count; i++) {
		if (db->entries[i - 1].hash >= db->entries[i].hash) {
			snprintf(err, errlen, "%s: not a database (order)", name);
			goto fail;
		}
	}
	bayes_db_index(db);
	return 0;
fail:
	bayes_db_free(db);
	return -1;
}

void bayes_db_free(struct bayes_db *db)
{
	free(db->entries);
	free(db->directory);
	memset(db, 0, sizeof(*db));
}

/*
 * The directory brackets the hash between two neighbouring indexes (a few
 * entries, one or two cache lines). Without one (a small database): the
 * hashes are spread evenly over 64 bits, so an entry sits close to where
 * its hash says in proportion; the search starts with a window around that
 * guess, widened until it brackets the hash. Either way it bisects what is
 * bracketed. The cache misses of the lookups are most of the time of
 * classifying a message (bench/README.md, "Speed of the filter chain").
 */
const struct bayes_entry *bayes_db_find(const struct bayes_db *db, uint64_t hash)
{
	size_t low = 0;
	size_t high = db->count;

	if (db->directory != NULL) {
		size_t top = (size_t)(hash >> (64 - db->directory_bits));

		low = db->directory[top];
		high = db->directory[top + 1];
	} else if (db->count > 0) {
		size_t guess = (size_t)(((unsigned __int128)hash * db->count) >> 64);

		for (size_t span = 16;; span *= 4) {
			size_t lo = guess > span ? guess - span : 0;
			size_t hi = db->count - guess > span ? guess + span : db->count;

			if ((lo == 0 || db->entries[lo].hash <= hash) &&
			    (hi == db->count || db->entries[hi - 1].hash >= hash)) {
				low = lo;
				high = hi;
				break;
			}
			if (lo == 0 && hi == db->count)
				break;
		}
	}
	while (low < high) {
		size_t mid = low + (high - low) / 2;

		if (db->entries[mid].hash == hash)
			return &db->entries[mid];
		if (db->entries[mid].hash < hash)
			low = mid + 1;
		else
			high = mid;
	}
	return NULL;
}

/* ---- a set of hashes, for "each token once per message" ----------------- */

struct bayes_set {
	uint64_t *slots; /* 0: empty (a hash of 0 is stored as 1) */
	size_t capacity; /* a power of two */
	size_t count;
};

/* Adds HASH to SET; false if it was there already. */
static bool bayes_set_add(struct bayes_set *set, uint64_t hash)
{
	if (hash == 0)
		hash = 1;
	if ((set->count + 1) * 2 > set->capacity) {
		struct bayes_set bigger = {.capacity =
					       set->capacity == 0 ? 1024 : set->capacity * 2};

		bigger.slots = xcalloc(bigger.capacity, sizeof(uint64_t));
		for (size_t i = 0; i < set->capacity; i++) {
			if (set->slots[i] != 0)
				bayes_set_add(&bigger, set->slots[i]);
		}
		free(set->slots);
		*set = bigger;
	}
	for (size_t i = hash & (set->capacity - 1);; i = (i + 1) & (set->capacity - 1)) {
		if (set->slots[i] == hash)
			return false;
		if (set->slots[i] == 0) {
			set->slots[i] = hash;
			set->count++;
			return true;
		}
	}
}

/* ---- classifying --------------------------------------------------------- */

/* Tokens looked ahead of the one being found (see bayes_classify). */
#define BAYES_PREFETCH_AHEAD 16

/* A token that counted, for the explanation. */
struct bayes_used {
	double f;
	char text[40];
};

/* A distinct token of the message, waiting for its lookup; its text (for
 * the explanation) is in the state's TEXTS at TEXT_AT. */
struct bayes_pending {
	uint64_t hash;
	size_t text_at;
	size_t text_len;
};

struct bayes_classify_state {
	const struct bayes_db *db;
	const struct bayes_params *params;
	struct bayes_set seen;
	/* The message's distinct tokens in order, looked up after the
	 * tokenizer is done so the lookups can be prefetched. */
	struct bayes_pending *pending;
	size_t pending_count;
	size_t pending_capacity;
	char *texts;
	size_t texts_len;
	size_t texts_capacity;
	double sum_log_f;     /* sum of ln f(w) */
	double sum_log_not_f; /* sum of ln (1 - f(w)) */
	size_t used;
	struct bayes_used extremes[2][BAYES_EXPLAIN_TOKENS]; /* [0] hammiest, [1] spammiest */
	size_t extreme_count[2];
};

/* Keeps TOKEN among the most extreme of its side. */
static void bayes_note_extreme(struct bayes_classify_state *state, const char *token, size_t len,
			       double f)
{
	int side = f >= 0.5;
	double strength = side ? f : 1 - f;
	struct bayes_used *list = state->extremes[side];
	size_t *count = &state->extreme_count[side];
	size_t at = *count;

	while (at > 0 && (side ? list[at - 1].f : 1 - list[at - 1].f) < strength)
		at--;
	if (at >= BAYES_EXPLAIN_TOKENS)
		return;
	if (*count < BAYES_EXPLAIN_TOKENS)
		(*count)++;
	memmove(&list[at + 1], &list[at], (*count - 1 - at) * sizeof(*list));
	list[at].f = f;
	util_sanitize(list[at].text, sizeof(list[at].text), token, len);
}

/* The tokenizer's callback: keeps each distinct token for bayes_score. */
static void bayes_classify_token(const char *token, size_t len, uint64_t hash, void *arg)
{
	struct bayes_classify_state *state = arg;
	struct bayes_pending *pending;

	if (!bayes_set_add(&state->seen, hash))
		return;
	if (state->pending_count == state->pending_capacity) {
		state->pending_capacity = state->pending_capacity == 0 ? 1024 : 2 * state->pending_capacity;
		state->pending =
		    xrealloc(state->pending, state->pending_capacity * sizeof(*state->pending));
	}
	if (state->texts_len + len > state->texts_capacity) {
		state->texts_capacity = 2 * (state->texts_len + len) + 16384;
		state->texts = xrealloc(state->texts, state->texts_capacity);
	}
	pending = &state->pending[state->pending_count++];
	pending->hash = hash;
	pending->text_at = state->texts_len;
	pending->text_len = len;
	memcpy(state->texts + state->texts_len, token, len);
	state->texts_len += len;
}

/* Counts ENTRY (the database's row of PENDING's token, or NULL) into the
 * message's score. */
static void bayes_score(struct bayes_classify_state *state, const struct bayes_pending *pending,
			const struct bayes_entry *entry)
{
	const struct bayes_params *params = state->params;
	const char *token = state->texts + pending->text_at;
	size_t len = pending->text_len;
	double spam_rate;
	double ham_rate;
	double n;
	double f;

	if (entry == NULL || state->db->spam_messages == 0 || state->db->ham_messages == 0)
		return;
	spam_rate = (double)entry->spam / (double)state->db->spam_messages;
	ham_rate = (double)entry->ham / (double)state->db->ham_messages;
	n = (double)entry->spam + (double)entry->ham;
	f = (params->robs * params->robx + n * (spam_rate / (spam_rate + ham_rate))) /
	    (params->robs + n);
	if (fabs(f - 0.5) < params->min_dev)
		return;
	/* Never exactly 0 or 1: one token must not decide alone. */
	if (f < 1e-6)
		f = 1e-6;
	if (f > 1 - 1e-6)
		f = 1 - 1e-6;
	state->sum_log_f += log(f);
	state->sum_log_not_f += log(1 - f);
	state->used++;
	bayes_note_extreme(state, token, len, f);
}

/* The upper tail of the chi-square distribution with 2*HALF_DF degrees of
 * freedom at CHI, summed in logarithms (the terms underflow otherwise). */
static double bayes_chi2_q(double chi, size_t half_df)
{
	double m = chi / 2;
	double log_term = -m;
	double log_sum = log_term;

	if (m <= 0)
		return 1;
	for (size_t i = 1; i < half_df; i++) {
		log_term += log(m / (double)i);
		/* log(exp(a) + exp(b)) without overflow. */
		if (log_term > log_sum)
			log_sum = log_term + log1p(exp(log_sum - log_term));
		else
			log_sum = log_sum + log1p(exp(log_term - log_sum));
	}
	return log_sum >= 0 ? 1 : exp(log_sum);
}

void bayes_classify(const struct bayes_db *db, const struct mime_message *message,
		    const struct bayes_params *params, struct bayes_verdict *verdict)
{
	struct bayes_classify_state *state = xcalloc(1, sizeof(*state));
	size_t pos = 0;

	state->db = db;
	state->params = params != NULL ? params : &bayes_defaults;
	tokenize_message(message, bayes_classify_token, state);
	/* The lookups miss the cache (a large table, hashes at random): the
	 * directory slot of a token BAYES_PREFETCH_AHEAD further on, and the
	 * entries of the one half as far, are fetched while this one is found. */
	for (size_t i = 0; i < state->pending_count; i++) {
		if (db->directory != NULL) {
			unsigned shift = 64 - db->directory_bits;

			if (i + BAYES_PREFETCH_AHEAD < state->pending_count)
				__builtin_prefetch(
				    &db->directory[state->pending[i + BAYES_PREFETCH_AHEAD].hash >>
						   shift]);
			if (i + BAYES_PREFETCH_AHEAD / 2 < state->pending_count)
				__builtin_prefetch(
				    &db->entries[db->directory
						     [state->pending[i + BAYES_PREFETCH_AHEAD / 2].hash >>
						      shift]]);
		}
		bayes_score(state, &state->pending[i], bayes_db_find(db, state->pending[i].hash));
	}
	memset(verdict, 0, sizeof(*verdict));
	verdict->tokens_used = state->used;
	if (state->used == 0) {
		verdict->probability = 0.5;
	} else {
		double hammy = bayes_chi2_q(-2 * state->sum_log_f, state->used);
		double spammy = bayes_chi2_q(-2 * state->sum_log_not_f, state->used);

		verdict->probability = (1 + hammy - spammy) / 2;
	}
	verdict->spam = verdict->probability >= state->params->cutoff;
	int side = verdict->probability >= 0.5;

	for (size_t i = 0; i < state->extreme_count[side]; i++) {
		int n = snprintf(verdict->explanation + pos, sizeof(verdict->explanation) - pos,
				 "%s%s", i > 0 ? ", " : "", state->extremes[side][i].text);

		if (n < 0 || (size_t)n >= sizeof(verdict->explanation) - pos)
			break;
		pos += (size_t)n;
	}
	free(state->seen.slots);
	free(state->pending);
	free(state->texts);
	free(state);
}

/* ---- training ------------------------------------------------------------ */

/* The slot of HASH (never 0 here) in the trainable DB's table. */
static struct bayes_entry *bayes_train_slot(struct bayes_db *db, uint64_t hash)
{
	if ((db->count + 1) * 2 > db->capacity) {
		struct bayes_db bigger = {.capacity = db->capacity == 0 ? 65536 : db->capacity * 2};

		bigger.entries = xcalloc(bigger.capacity, sizeof(*bigger.entries));
		for (size_t i = 0; i < db->capacity; i++) {
			if (db->entries[i].hash != 0)
				*bayes_train_slot(&bigger, db->entries[i].hash) = db->entries[i];
		}
		free(db->entries);
		db->entries = bigger.entries;
		db->capacity = bigger.capacity;
	}
	for (size_t i = hash & (db->capacity - 1);; i = (i + 1) & (db->capacity - 1)) {
		if (db->entries[i].hash == hash)
			return &db->entries[i];
		if (db->entries[i].hash == 0) {
			db->entries[i].hash = hash;
			db->count++;
			return &db->entries[i];
		}
	}
}

void bayes_train_begin(struct bayes_db *db)
{
	struct bayes_entry *loaded = db->entries;
	size_t count = db->count;

	if (db->capacity != 0)
		return;
	xfree(&db->directory); /* the table needs none */
	db->directory_bits = 0;
	db->capacity = 65536;
	db->entries = xcalloc(db->capacity, sizeof(*db->entries));
	db->count = 0;
	for (size_t i = 0; i < count; i++) {
		if (loaded[i].hash != 0)
			*bayes_train_slot(db, loaded[i].hash) = loaded[i];
	}
	free(loaded);
}

/* The slot of HASH in the trainable DB's table, or NULL: unlike
 * bayes_train_slot it adds nothing. */
static struct bayes_entry *bayes_train_find(const struct bayes_db *db, uint64_t hash)
{
	for (size_t i = hash & (db->capacity - 1);; i = (i + 1) & (db->capacity - 1)) {
		if (db->entries[i].hash == hash)
			return &db->entries[i];
		if (db->entries[i].hash == 0)
			return NULL;
	}
}

struct bayes_train_state {
	struct bayes_db *db;
	struct bayes_set seen;
	bool spam;
	bool forget; /* count down instead of up */
};

static void bayes_train_token(const char *token, size_t len, uint64_t hash, void *arg)
{
	struct bayes_train_state *state = arg;
	struct bayes_entry *entry;

	(void)token;
	(void)len;
	if (hash == 0)
		hash = 1;
	if (!bayes_set_add(&state->seen, hash))
		return;
	if (state->forget) {
		/* Never below 0: a database trained again from scratch since
		 * may not hold what this message once added. */
		entry = bayes_train_find(state->db, hash);
		if (entry != NULL && state->spam && entry->spam > 0)
			entry->spam--;
		else if (entry != NULL && !state->spam && entry->ham > 0)
			entry->ham--;
		return;
	}
	entry = bayes_train_slot(state->db, hash);
	if (state->spam) {
		if (entry->spam < UINT32_MAX)
			entry->spam++;
	} else if (entry->ham < UINT32_MAX) {
		entry->ham++;
	}
}

void bayes_train(struct bayes_db *db, const struct mime_message *message, bool spam)
{
	struct bayes_train_state state = {.db = db, .spam = spam};

	tokenize_message(message, bayes_train_token, &state);
	free(state.seen.slots);
	if (spam)
		db->spam_messages++;
	else
		db->ham_messages++;
}

void bayes_forget(struct bayes_db *db, const struct mime_message *message, bool spam)
{
	struct bayes_train_state state = {.db = db, .spam = spam, .forget = true};

	tokenize_message(message, bayes_train_token, &state);
	free(state.seen.slots);
	if (spam && db->spam_messages > 0)
		db->spam_messages--;
	else if (!spam && db->ham_messages > 0)
		db->ham_messages--;
}

static int bayes_entry_compare(const void *a, const void *b)
{
	uint64_t x = ((const struct bayes_entry *)a)->hash;
	uint64_t y = ((const struct bayes_entry *)b)->hash;

	return x < y ? -1 : x > y;
}

int bayes_db_save(const struct bayes_db *db, const char *path, char *err, size_t errlen)
{
	size_t size = BAYES_HEADER_SIZE + db->count * sizeof(struct bayes_entry);
	unsigned char *data = xmalloc(size);
	struct bayes_entry *out = (struct bayes_entry *)(data + BAYES_HEADER_SIZE);
	uint64_t count = 0;
	int rc;

	/* A token forgotten by every message that had it is left out. */
	for (size_t i = 0; i < db->capacity; i++) {
		if (db->entries[i].hash != 0 && (db->entries[i].spam > 0 || db->entries[i].ham > 0))
			out[count++] = db->entries[i];
	}
	qsort(out, (size_t)count, sizeof(*out), bayes_entry_compare);
	memcpy(data, BAYES_MAGIC, 8);
	memcpy(data + 8, &db->spam_messages, 8);
	memcpy(data + 16, &db->ham_messages, 8);
	memcpy(data + 24, &count, 8);
	rc = util_write_file_atomic(path, data, BAYES_HEADER_SIZE + count * sizeof(*out), 0644);
	if (rc < 0)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	free(data);
	return rc;
}

int bayes_learn(const char *path, const char *data, size_t len, bool spam, char *err, size_t errlen)
{
	struct bayes_db db;
	struct mime_message message;
	int rc;

	if (bayes_db_load(path, &db, err, errlen) < 0)
		return -1;
	bayes_train_begin(&db);
	mime_parse(data, len, &message);
	bayes_train(&db, &message, spam);
	mime_message_free(&message);
	rc = bayes_db_save(&db, path, err, errlen);
	bayes_db_free(&db);
	return rc;
}

/* ---- the filter ---------------------------------------------------------- */

/* The worker's database, loaded once by the init (before confinement), and
 * why it could not be, for every result while it cannot. */
static struct bayes_db bayes_worker_db;
static bool bayes_worker_trained;
static char bayes_worker_error[256];
/* The descriptor the main process sent for the init, or -1: none. */
static int bayes_worker_fd = -1;

void bayes_filter_use_db(int fd)
{
	if (bayes_worker_fd >= 0)
		close(bayes_worker_fd);
	bayes_worker_fd = fd;
}

/*
 * Never fails the worker: a database that is missing, unreadable or damaged
 * makes this filter's results say so (failed, with the reason), while the
 * other filters, and the mail, go on.
 */
static int bayes_filter_init(char *err, size_t errlen)
{
	int rc;

	(void)err;
	(void)errlen;
	mime_init();
	bayes_db_free(&bayes_worker_db);
	/* Not opened by name: the worker's user cannot read the data folder.
	 * No descriptor means the main process found no database. */
	rc = 1;
	if (bayes_worker_fd >= 0) {
		rc = bayes_db_load_fd(bayes_worker_fd, BAYES_DB_NAME, &bayes_worker_db,
				      bayes_worker_error, sizeof(bayes_worker_error));
		close(bayes_worker_fd);
		bayes_worker_fd = -1;
	}
	if (rc == 1)
		snprintf(bayes_worker_error, sizeof(bayes_worker_error),
			 "not trained (popgatectl bayes train)");
	bayes_worker_trained =
	    rc == 0 && bayes_worker_db.spam_messages > 0 && bayes_worker_db.ham_messages > 0;
	if (rc == 0 && !bayes_worker_trained)
		snprintf(bayes_worker_error, sizeof(bayes_worker_error),
			 "trained on one side only (needs spam and ham)");
	return 0;
}

double bayes_points(double probability, double cutoff)
{
	double points;

	if (probability >= cutoff)
		points = BAYES_POINTS_MAX;
	else if (probability >= 0.5)
		points = BAYES_POINTS_MAX * (probability - 0.5) / (cutoff - 0.5);
	else
		points = BAYES_POINTS_MAX * (probability - 0.5) / 0.5;
	if (points > BAYES_POINTS_MAX)
		points = BAYES_POINTS_MAX;
	if (points < -BAYES_POINTS_MAX)
		points = -BAYES_POINTS_MAX;
	return points;
}

void bayes_judge(const struct bayes_db *db, const struct mime_message *message,
		 struct pipeline_result *result)
{
	struct bayes_verdict verdict;
	char reason[PROTO_REASON_MAX + 1];
	int used;

	bayes_classify(db, message, NULL, &verdict);
	result->score = bayes_points(verdict.probability, bayes_defaults.cutoff);
	used = snprintf(reason, sizeof(reason), "bayes: %.4f, tokens: %s", verdict.probability,
			verdict.explanation[0] != '\0' ? verdict.explanation : "none");
	/* A reason longer than a frame allows would fail the whole job: the
	 * token list is cut after the last token that fits whole. */
	if (used > PROTO_REASON_MAX) {
		char *comma = strrchr(reason, ',');

		if (comma != NULL && comma > strstr(reason, "tokens: "))
			*comma = '\0';
	}
	result->reason = xstrdup(reason);
}

static int bayes_filter_run(const struct filter_message *message, struct pipeline_result *result,
			    struct pipeline_verdict *verdict)
{
	char clean[sizeof(bayes_worker_error)];

	(void)verdict;
	if (!bayes_worker_trained) {
		util_sanitize(clean, sizeof(clean), bayes_worker_error, strlen(bayes_worker_error));
		result->reason = xasprintf("bayes: %s", clean);
		return -1;
	}
	bayes_judge(&bayes_worker_db, filter_message_mime(message), result);
	return 0;
}

const struct filter filter_bayes = {
    .name = "bayes",
    .init = bayes_filter_init,
    .run = bayes_filter_run,
};
