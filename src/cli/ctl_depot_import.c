/*
 * ctl_depot_import.c — popgatectl depot import (existing mail into the
 * archive: mboxes, maildirs, message files and folders of them, in bulk,
 * resumable), depot retention set|list, depot hold add|del|list and depot
 * expire (depot/retention.h).
 *
 * An import never archives a message twice. Each message's source is
 * "import:<key>#<offset>": KEY names the input ("maildir:<unique name>" for
 * a maildir's message, whose name keeps its part before ':2,' when it moves
 * from new/ to cur/; "<absolute path>@<device>:<inode>" for any other file)
 * and OFFSET is where its From_ line starts in an mbox (0 for a file of one
 * message). depot_ingest archives a source once, and the table
 * import_source records per input how far the committed batches got, so a
 * rerun skips a finished input without reading it and continues an
 * interrupted mbox at its first message not committed.
 *
 * Owns: the import_source rows. Must never: drop a message (one that does
 * not parse is archived with empty fields and counted), change the bytes of
 * a message beyond the mbox framing (its From_ line, its separating empty
 * line and the >From quoting), or print a message's text.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/ctl.h"
#include "cli/output.h"
#include "core/mbox.h"
#include "core/util.h"
#include "depot/depot.h"
#include "depot/retention.h"
#include "store/account.h"
#include "store/address.h"

/* Messages per depot_ingest call: the default, and the bounds of --batch. */
#define IMPORT_BATCH_DEFAULT 1000
#define IMPORT_BATCH_MAX 100000
/* A batch is cut early when its messages reach this many bytes. */
#define IMPORT_BATCH_BYTES (64 * 1024 * 1024)
/* The paths the audit entry names, at most (bytes). */
#define IMPORT_AUDIT_PATHS_MAX 4096

/* The depot of the configured data folder, created when CREATE. */
static int ctl_depot_open(const struct ctl *ctl, bool create, struct depot **depot_r)
{
	char *dir = xasprintf("%s/depot", ctl->cfg.data_dir);
	char err[512];
	struct stat st;
	int rc = CTL_OK;

	*depot_r = NULL;
	if (!create && stat(dir, &st) < 0)
		rc = ctl_refuse("no archive at %s", dir);
	else if ((*depot_r = depot_open(dir, create, err, sizeof(err))) == NULL)
		rc = ctl_refuse("cannot open the archive: %s", err);
	free(dir);
	return rc;
}

/* ---- whom a message belongs to ------------------------------------------- */

/* The assigned addresses an import attributes messages by, sorted. */
struct import_owners {
	struct store_address *addresses;
	size_t count;
	const char *user;    /* --user, or NULL */
	const char *primary; /* --user's primary address */
};

static int import_address_compare(const void *a, const void *b)
{
	return strcmp(((const struct store_address *)a)->address,
		      ((const struct store_address *)b)->address);
}

/* Loads USER's addresses (NULL: everyone's), lowercased and sorted. */
static int import_owners_load(struct ctl *ctl, const char *user, struct import_owners *owners)
{
	char err[512];

	memset(owners, 0, sizeof(*owners));
	if (store_address_list(ctl->store, user, &owners->addresses, &owners->count, err,
			       sizeof(err)) < 0)
		return ctl_refuse("%s", err);
	for (size_t i = 0; i < owners->count; i++) {
		for (char *p = owners->addresses[i].address; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (owners->addresses[i].is_primary)
			owners->primary = owners->addresses[i].address;
	}
	if (owners->count > 0)
		qsort(owners->addresses, owners->count, sizeof(*owners->addresses),
		      import_address_compare);
	owners->user = user;
	if (user != NULL && owners->primary == NULL)
		return ctl_refuse("user has no primary address");
	return CTL_OK;
}

static const struct store_address *import_owner_find(const struct import_owners *owners,
						     const char *address)
{
	struct store_address key = {.address = (char *)address};

	if (owners->count == 0)
		return NULL;
	return bsearch(&key, owners->addresses, owners->count, sizeof(*owners->addresses),
		       import_address_compare);
}

/* Appends ADDRESS's owner to *LIST unless listed already. */
static void import_owner_add(struct depot_owner **list, size_t *count,
			     const struct store_address *owner)
{
	for (size_t i = 0; i < *count; i++)
		if (strcmp((*list)[i].address, owner->address) == 0)
			return;
	*list = xrealloc(*list, (*count + 1) * sizeof(**list));
	(*list)[*count].address = xstrdup(owner->address);
	(*list)[*count].user = xstrdup(owner->user_name);
	(*count)++;
}

/*
 * The owners of a message with FIELDS: the assigned addresses among its
 * sender and recipients (only --user's with --user, whose primary address
 * stands in when none is there).
 */
static void import_owners_of(const struct import_owners *owners, const struct depot_fields *fields,
			     struct depot_owner **list_r, size_t *count_r)
{
	const struct store_address *found;

	*list_r = NULL;
	*count_r = 0;
	if (fields->sender != NULL && (found = import_owner_find(owners, fields->sender)) != NULL)
		import_owner_add(list_r, count_r, found);
	for (size_t i = 0; i < fields->recipient_count; i++)
		if ((found = import_owner_find(owners, fields->recipients[i])) != NULL)
			import_owner_add(list_r, count_r, found);
	if (owners->user != NULL && *count_r == 0) {
		struct store_address primary = {.address = (char *)owners->primary,
						.user_name = (char *)owners->user};

		import_owner_add(list_r, count_r, &primary);
	}
}

static void import_owner_list_free(struct depot_owner *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		free(list[i].address);
		free(list[i].user);
	}
	free(list);
}

/* ---- the import ---------------------------------------------------------- */

/* How far one input got: written to import_source in the transaction that
 * archives the batch. */
struct import_progress {
	char *key;
	int64_t position; /* the next message's offset; the file's size when done */
	bool done;
};

/* An input file mapped while messages of it wait in the batch. */
struct import_mapping {
	void *data;
	size_t len;
};

/* The messages waiting for one depot_ingest, and what they hold on to. */
struct import_batch {
	size_t capacity;
	size_t count;
	size_t bytes;
	struct depot_item *items;
	struct depot_fields *fields;
	struct depot_owner **owners;
	char **sources;
	char **copies; /* an unquoted copy of the message, or NULL */
	struct import_mapping *mappings;
	size_t mapping_count;
	struct import_progress *progress;
	size_t progress_count;
};

/* What the import did, for the summary and the audit entry. */
struct import_counts {
	int64_t imported;
	int64_t already;
	int64_t failed;
	int64_t unparsed;
	int64_t inputs_done_before;
	uint64_t bytes_done;
	uint64_t bytes_total;
};

struct import_run {
	struct depot *depot;
	const struct import_owners *owners;
	enum depot_direction direction;
	struct import_batch batch;
	struct import_counts counts;
	sqlite3_stmt *source_known;
	sqlite3_stmt *progress_get;
	bool tty;
	int64_t last_shown_ms;
};

static void import_batch_init(struct import_batch *batch, size_t capacity)
{
	memset(batch, 0, sizeof(*batch));
	batch->capacity = capacity;
	batch->items = xcalloc(capacity, sizeof(*batch->items));
	batch->fields = xcalloc(capacity, sizeof(*batch->fields));
	batch->owners = xcalloc(capacity, sizeof(*batch->owners));
	batch->sources = xcalloc(capacity, sizeof(*batch->sources));
	batch->copies = xcalloc(capacity, sizeof(*batch->copies));
}

/* Lets go of the batch's messages, mappings and progress (after it was
 * archived, or when the import stops). */
static void import_batch_clear(struct import_batch *batch)
{
	for (size_t i = 0; i < batch->count; i++) {
		depot_fields_free(&batch->fields[i]);
		import_owner_list_free(batch->owners[i], batch->items[i].owner_count);
		free(batch->sources[i]);
		free(batch->copies[i]);
		batch->owners[i] = NULL;
		batch->sources[i] = NULL;
		batch->copies[i] = NULL;
	}
	for (size_t i = 0; i < batch->mapping_count; i++)
		munmap(batch->mappings[i].data, batch->mappings[i].len);
	for (size_t i = 0; i < batch->progress_count; i++)
		free(batch->progress[i].key);
	batch->count = 0;
	batch->bytes = 0;
	batch->mapping_count = 0;
	batch->progress_count = 0;
}

static void import_batch_free(struct import_batch *batch)
{
	import_batch_clear(batch);
	free(batch->items);
	free(batch->fields);
	free(batch->owners);
	free(batch->sources);
	free(batch->copies);
	free(batch->mappings);
	free(batch->progress);
}

/* Notes that input KEY got to POSITION (DONE: all of it); one note per input
 * and batch, the latest. */
static void import_progress_note(struct import_batch *batch, const char *key, int64_t position,
				 bool done)
{
	if (batch->progress_count > 0 &&
	    strcmp(batch->progress[batch->progress_count - 1].key, key) == 0) {
		batch->progress[batch->progress_count - 1].position = position;
		batch->progress[batch->progress_count - 1].done = done;
		return;
	}
	batch->progress =
	    xrealloc(batch->progress, (batch->progress_count + 1) * sizeof(*batch->progress));
	batch->progress[batch->progress_count++] =
	    (struct import_progress){.key = xstrdup(key), .position = position, .done = done};
}

static int64_t import_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The bar on a terminal's stderr (nothing otherwise), at most ten times a
 * second unless FINAL. */
static void import_show(struct import_run *run, bool final)
{
	enum { WIDTH = 40 };
	const struct import_counts *c = &run->counts;
	char bar[WIDTH + 1];
	size_t filled;
	int64_t now;

	if (!run->tty)
		return;
	now = import_now_ms();
	if (!final && now - run->last_shown_ms < 100)
		return;
	run->last_shown_ms = now;
	filled = c->bytes_total > 0 ? (size_t)(c->bytes_done * WIDTH / c->bytes_total) : WIDTH;
	if (filled > WIDTH)
		filled = WIDTH;
	for (size_t i = 0; i < WIDTH; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %" PRId64 " messages, %.1f/%.1f MB", bar, c->imported + c->already,
		(double)c->bytes_done / 1e6, (double)c->bytes_total / 1e6);
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

/* Writes the batch's progress notes into import_source, inside the
 * caller's transaction. 0 / -1 ERR. */
static int import_progress_save(struct import_run *run, char *err, size_t errlen)
{
	sqlite3 *db = depot_db(run->depot);
	sqlite3_stmt *stmt = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(db,
			       "INSERT INTO import_source(key, done, position) VALUES(?, ?, ?) "
			       "ON CONFLICT(key) DO UPDATE SET done = excluded.done, "
			       "position = excluded.position",
			       -1, &stmt, NULL) != SQLITE_OK)
		rc = -1;
	for (size_t i = 0; i < run->batch.progress_count && rc == 0; i++) {
		const struct import_progress *p = &run->batch.progress[i];

		sqlite3_bind_text(stmt, 1, p->key, -1, SQLITE_STATIC);
		sqlite3_bind_int(stmt, 2, p->done);
		sqlite3_bind_int64(stmt, 3, p->position);
		if (sqlite3_step(stmt) != SQLITE_DONE)
			rc = -1;
		sqlite3_reset(stmt);
	}
	if (rc < 0)
		snprintf(err, errlen, "depot: recording the import's progress: %s",
			 sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return rc;
}

/* The chain head's seq (0 for an empty chain), inside the transaction. */
static int64_t import_chain_head(sqlite3 *db)
{
	sqlite3_stmt *stmt;
	int64_t seq = 0;

	if (sqlite3_prepare_v2(db, "SELECT max(seq) FROM entry", -1, &stmt, NULL) != SQLITE_OK)
		return 0;
	if (sqlite3_step(stmt) == SQLITE_ROW)
		seq = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return seq;
}

/*
 * Archives the batch and records how far its inputs got in ONE transaction
 * (depot_ingest joins it), so a run killed at any moment resumes exactly
 * after the last message committed. 0 / -1 ERR (nothing of the batch
 * archived).
 */
static int import_flush(struct import_run *run, char *err, size_t errlen)
{
	struct import_batch *batch = &run->batch;
	sqlite3 *db = depot_db(run->depot);
	int64_t *seqs = xcalloc(batch->count + 1, sizeof(*seqs));
	int64_t newest = 0;
	int rc = -1;

	if (batch->count == 0 && batch->progress_count == 0) {
		free(seqs);
		return 0;
	}
	if (depot_write_lock(run->depot, err, errlen) < 0) {
		free(seqs);
		return -1;
	}
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(db));
		goto done;
	}
	newest = import_chain_head(db);
	if ((batch->count == 0 ||
	     depot_ingest(run->depot, batch->items, batch->count, seqs, err, errlen) == 0) &&
	    import_progress_save(run, err, errlen) == 0) {
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
			rc = 0;
		else
			snprintf(err, errlen, "depot: %s", sqlite3_errmsg(db));
	}
	if (rc < 0)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
done:
	depot_write_unlock(run->depot);
	if (rc == 0) {
		/* New entries come in item order after the chain's head; any other
		 * seq is a source archived before (the same file named twice, or
		 * another import of it meanwhile). */
		for (size_t i = 0; i < batch->count; i++) {
			if (seqs[i] > newest) {
				run->counts.imported++;
				newest = seqs[i];
			} else {
				run->counts.already++;
			}
		}
		import_batch_clear(batch);
		import_show(run, false);
	}
	free(seqs);
	return rc;
}

/* Flushes the batch when it is full. */
static int import_flush_full(struct import_run *run, char *err, size_t errlen)
{
	if (run->batch.count < run->batch.capacity && run->batch.bytes < IMPORT_BATCH_BYTES)
		return 0;
	return import_flush(run, err, errlen);
}

/* 1 if SOURCE is archived already, 0 if not, -1 ERR. */
static int import_source_known(struct import_run *run, const char *source, char *err, size_t errlen)
{
	int step;

	sqlite3_reset(run->source_known);
	sqlite3_bind_text(run->source_known, 1, source, -1, SQLITE_TRANSIENT);
	step = sqlite3_step(run->source_known);
	sqlite3_reset(run->source_known);
	if (step != SQLITE_ROW && step != SQLITE_DONE) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(depot_db(run->depot)));
		return -1;
	}
	return step == SQLITE_ROW;
}

/*
 * Adds the message TEXT (LEN bytes, inside a mapping the batch will hold;
 * its >From lines still quoted when QUOTED) of input KEY at OFFSET to the
 * batch, unless its source is archived already. The batch has room (the
 * caller flushes a full one). 0 / -1 ERR.
 */
static int import_message(struct import_run *run, const char *key, size_t offset, const char *text,
			  size_t len, bool quoted, char *err, size_t errlen)
{
	struct import_batch *batch = &run->batch;
	char *source = xasprintf("import:%s#%zu", key, offset);
	size_t i = batch->count;
	struct depot_item *item = &batch->items[i];
	char extract_err[256];
	int known = import_source_known(run, source, err, errlen);

	if (known != 0) {
		free(source);
		if (known < 0)
			return -1;
		run->counts.already++;
		return 0;
	}
	batch->sources[i] = source;
	if (quoted && mbox_quoted(text, len)) {
		batch->copies[i] = xmalloc(len > 0 ? len : 1);
		len = mbox_unquote(text, len, batch->copies[i]);
		text = batch->copies[i];
	}
	/* A message that does not parse is archived all the same: the
	 * archive keeps every message; only its fields stay empty. */
	if (depot_extract(text, len, &batch->fields[i], extract_err, sizeof(extract_err)) < 0) {
		memset(&batch->fields[i], 0, sizeof(batch->fields[i]));
		run->counts.unparsed++;
	}
	*item = (struct depot_item){.raw = text,
				    .len = len,
				    .direction = run->direction,
				    .source = source,
				    .fields = &batch->fields[i]};
	import_owners_of(run->owners, &batch->fields[i], &batch->owners[i], &item->owner_count);
	item->owners = batch->owners[i];
	batch->count++;
	batch->bytes += len;
	return 0;
}

/* The input key of the file PATH (see the top of this file), or NULL with
 * errno. */
static char *import_key(const char *path, bool in_maildir, const struct stat *st)
{
	char *absolute;
	char *key;

	if (in_maildir) {
		const char *name = strrchr(path, '/');
		const char *info;

		name = name != NULL ? name + 1 : path;
		info = strchr(name, ':');
		return xasprintf("maildir:%.*s",
				 (int)(info != NULL ? info - name : (long)strlen(name)), name);
	}
	absolute = realpath(path, NULL);
	if (absolute == NULL)
		return NULL;
	key = xasprintf("%s@%ju:%ju", absolute, (uintmax_t)st->st_dev, (uintmax_t)st->st_ino);
	free(absolute);
	return key;
}

/* Where input KEY of SIZE bytes stands: -1 finished (skip it), or the offset
 * to go on from. */
static int64_t import_resume_at(struct import_run *run, const char *key, int64_t size)
{
	int64_t at = 0;

	sqlite3_reset(run->progress_get);
	sqlite3_bind_text(run->progress_get, 1, key, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(run->progress_get) == SQLITE_ROW) {
		bool done = sqlite3_column_int(run->progress_get, 0) != 0;

		at = sqlite3_column_int64(run->progress_get, 1);
		/* A finished mbox that grew since goes on where it ended. */
		if (done && at >= size)
			at = -1;
	}
	sqlite3_reset(run->progress_get);
	return at;
}

/*
 * Imports one input file: its one message, or each message of an mbox from
 * where an earlier run stopped. A file that cannot be read is counted as
 * failed (the import goes on with the others). 0 / -1 ERR (the archive
 * failed: the import stops).
 */
static int import_file(struct import_run *run, const char *path, bool in_maildir, char *err,
		       size_t errlen)
{
	struct stat st;
	char *key = NULL;
	void *map = NULL;
	int64_t resume;
	char buf[256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0 || fstat(fd, &st) < 0 || (key = import_key(path, in_maildir, &st)) == NULL) {
		fprintf(stderr, "popgatectl: %s: %s\n", ctl_clean(path, buf, sizeof(buf)),
			strerror(errno));
		run->counts.failed++;
		goto done;
	}
	resume = import_resume_at(run, key, (int64_t)st.st_size);
	if (resume < 0 || st.st_size == 0) {
		run->counts.inputs_done_before += resume < 0;
		run->counts.bytes_done += (uint64_t)st.st_size;
		goto done;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "popgatectl: %s: %s\n", ctl_clean(path, buf, sizeof(buf)),
			strerror(errno));
		run->counts.failed++;
		map = NULL;
		goto done;
	}
	madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	const char *data = map;
	size_t len = (size_t)st.st_size;
	uint64_t bytes_before = run->counts.bytes_done;

	if (!mbox_is(data, len)) {
		rc = import_message(run, key, 0, data, len, false, err, errlen);
		if (rc == 0)
			import_progress_note(&run->batch, key, (int64_t)len, true);
	} else {
		struct mbox_message message;
		size_t offset = (size_t)resume;

		if (!mbox_starts_at(data, len, offset))
			offset = 0;
		for (; offset < len && rc == 0; offset = message.next) {
			mbox_message_at(data, len, offset, &message);
			rc = import_message(run, key, offset, data + message.body,
					    message.end - message.body, true, err, errlen);
			/* Saved with the batch that archives the message. */
			if (rc == 0)
				import_progress_note(&run->batch, key, (int64_t)message.next,
						     message.next >= len);
			if (rc == 0 && message.next < len)
				rc = import_flush_full(run, err, errlen);
			run->counts.bytes_done = bytes_before + message.next;
			import_show(run, false);
		}
	}
	run->counts.bytes_done = bytes_before + len;
	/* Messages of this file may wait in the batch, pointing into the map:
	 * the batch unmaps it once they are archived. */
	run->batch.mappings = xrealloc(run->batch.mappings, (run->batch.mapping_count + 1) *
								sizeof(*run->batch.mappings));
	run->batch.mappings[run->batch.mapping_count++] =
	    (struct import_mapping){.data = map, .len = len};
	if (rc == 0)
		rc = import_flush_full(run, err, errlen);
done:
	if (fd >= 0)
		close(fd);
	free(key);
	import_show(run, false);
	return rc;
}

/* "paths:A B … imported:N already:M failed:K unparsed:U", the paths cut at
 * IMPORT_AUDIT_PATHS_MAX. */
static char *import_audit_detail(const struct ctl_bayes_files *files, const struct import_counts *c)
{
	size_t size = IMPORT_AUDIT_PATHS_MAX + 256;
	char *detail = xmalloc(size);
	size_t used = (size_t)snprintf(detail, size, "paths:");
	size_t shown = 0;

	for (; shown < files->count; shown++) {
		size_t need = strlen(files->paths[shown]) + 1;

		if (used + need > IMPORT_AUDIT_PATHS_MAX)
			break;
		used += (size_t)snprintf(detail + used, size - used, "%s%s", shown > 0 ? " " : "",
					 files->paths[shown]);
	}
	if (shown < files->count)
		used += (size_t)snprintf(detail + used, size - used, " (+%zu more)",
					 files->count - shown);
	snprintf(detail + used, size - used,
		 " imported:%" PRId64 " already:%" PRId64 " failed:%" PRId64 " unparsed:%" PRId64,
		 c->imported, c->already, c->failed, c->unparsed);
	return detail;
}

static int import_statements(struct import_run *run, char *err, size_t errlen)
{
	sqlite3 *db = depot_db(run->depot);

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM message WHERE source = ?", -1, &run->source_known,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT done, position FROM import_source WHERE key = ?", -1,
			       &run->progress_get, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "depot: %s", sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

int ctl_depot_import(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct ctl_bayes_files files = {0};
	struct import_owners owners = {0};
	struct import_run run = {.direction = DEPOT_IMPORT, .tty = isatty(STDERR_FILENO)};
	const char *user = NULL;
	long batch_size = IMPORT_BATCH_DEFAULT;
	char **paths = xcalloc((size_t)argc + 1, sizeof(*paths));
	size_t path_count = 0;
	char *detail = NULL;
	char err[512];
	char buf[256];
	int rc = CTL_OK;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if ((value = ctl_option("--user", argc, argv, &i, &missing)) != NULL) {
			user = value;
		} else if ((value = ctl_option("--direction", argc, argv, &i, &missing)) != NULL) {
			int direction = depot_direction_parse(value);

			if (direction < 0) {
				rc = ctl_usage_error(cmd, "--direction is in, out or import");
				goto done;
			}
			run.direction = (enum depot_direction)direction;
		} else if ((value = ctl_option("--batch", argc, argv, &i, &missing)) != NULL) {
			char *end;

			errno = 0;
			batch_size = strtol(value, &end, 10);
			if (errno != 0 || end == value || *end != '\0' || batch_size < 1 ||
			    batch_size > IMPORT_BATCH_MAX) {
				rc = ctl_usage_error(cmd, "--batch is 1 to %d", IMPORT_BATCH_MAX);
				goto done;
			}
		} else if (missing) {
			rc = ctl_usage_error(cmd, "%s needs a value", argv[i]);
			goto done;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			rc = ctl_usage_error(cmd, "unknown option '%s'",
					     ctl_clean(argv[i], buf, sizeof(buf)));
			goto done;
		} else {
			paths[path_count++] = argv[i];
		}
	}
	if (path_count == 0) {
		rc = ctl_usage_error(cmd, "no PATH given");
		goto done;
	}
	for (size_t i = 0; i < path_count && rc == CTL_OK; i++)
		rc = ctl_bayes_expand(paths[i], &files);
	if (rc != CTL_OK || (rc = ctl_open_store(ctl)) != CTL_OK)
		goto done;
	if (user != NULL) {
		int exists = store_user_exists(ctl->store, user, NULL);

		if (exists <= 0) {
			rc = exists < 0
				 ? ctl_refuse("cannot read the users")
				 : ctl_refuse("no user '%s'", ctl_clean(user, buf, sizeof(buf)));
			goto done;
		}
	}
	if ((rc = import_owners_load(ctl, user, &owners)) != CTL_OK ||
	    (rc = ctl_depot_open(ctl, true, &run.depot)) != CTL_OK)
		goto done;
	if (import_statements(&run, err, sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	run.owners = &owners;
	import_batch_init(&run.batch, (size_t)batch_size);
	for (size_t i = 0; i < files.count; i++) {
		struct stat st;

		if (stat(files.paths[i], &st) == 0)
			run.counts.bytes_total += (uint64_t)st.st_size;
	}
	for (size_t i = 0; i < files.count && rc == CTL_OK; i++)
		if (import_file(&run, files.paths[i], files.in_maildir[i], err, sizeof(err)) < 0)
			rc = ctl_refuse("import stopped: %s", err);
	if (rc == CTL_OK && import_flush(&run, err, sizeof(err)) < 0)
		rc = ctl_refuse("import stopped: %s", err);
	import_show(&run, true);
	detail = import_audit_detail(&files, &run.counts);
	if (depot_audit(run.depot, "admin", "import", detail, err, sizeof(err)) < 0 && rc == CTL_OK)
		rc = ctl_refuse("%s", err);
	if (rc != CTL_OK)
		goto done;
	{
		const struct import_counts *c = &run.counts;

		rc = ctl_changed(
		    ctl, NULL,
		    json_pack("{s:I, s:I, s:I, s:I, s:I}", "imported", (json_int_t)c->imported,
			      "already_archived", (json_int_t)c->already, "failed",
			      (json_int_t)c->failed, "unparsed", (json_int_t)c->unparsed,
			      "inputs_done_before", (json_int_t)c->inputs_done_before),
		    "depot: imported %" PRId64 ", already archived %" PRId64 ", failed %" PRId64
		    " (%" PRId64 " archived unparsed, %" PRId64 " inputs finished before)",
		    c->imported, c->already, c->failed, c->unparsed, c->inputs_done_before);
		if (rc == CTL_OK && c->failed > 0)
			rc = CTL_REFUSED;
	}
done:
	if (run.depot != NULL)
		import_batch_free(&run.batch);
	sqlite3_finalize(run.source_known);
	sqlite3_finalize(run.progress_get);
	depot_close(&run.depot);
	store_address_list_free(&owners.addresses, owners.count);
	ctl_bayes_files_free(&files);
	free(detail);
	free(paths);
	return rc;
}

/* ---- retention and holds ------------------------------------------------- */

/*
 * Reads the scope options of a retention or hold command (--domain D,
 * --user U, and --default, --message SEQ, --all where allowed) into
 * *SCOPE_R (free()), the other operands into REST. CTL_OK or a usage error.
 */
static int ctl_depot_scope_args(const struct ctl_command *cmd, int argc, char **argv,
				const char *const *kinds, char **scope_r, const char **reason_r,
				char **rest, size_t *rest_count)
{
	char err[256];
	char buf[128];

	*scope_r = NULL;
	*rest_count = 0;
	for (int i = 0; i < argc; i++) {
		const char *kind = NULL;
		const char *value = NULL;
		bool missing = false;

		for (size_t k = 0; kinds[k] != NULL && kind == NULL; k++) {
			char option[32];

			snprintf(option, sizeof(option), "--%s", kinds[k]);
			if (strcmp(kinds[k], "default") == 0 || strcmp(kinds[k], "all") == 0) {
				if (strcmp(argv[i], option) == 0)
					kind = kinds[k];
			} else if ((value = ctl_option(option, argc, argv, &i, &missing)) != NULL) {
				kind = kinds[k];
			} else if (missing) {
				free(*scope_r);
				return ctl_usage_error(cmd, "%s needs a value", option);
			}
		}
		if (kind == NULL && reason_r != NULL &&
		    (value = ctl_option("--reason", argc, argv, &i, &missing)) != NULL) {
			*reason_r = value;
			continue;
		}
		if (kind == NULL && missing) {
			free(*scope_r);
			return ctl_usage_error(cmd, "--reason needs a text");
		}
		if (kind == NULL) {
			if (argv[i][0] == '-' && argv[i][1] != '\0') {
				free(*scope_r);
				return ctl_usage_error(cmd, "unknown option '%s'",
						       ctl_clean(argv[i], buf, sizeof(buf)));
			}
			rest[(*rest_count)++] = argv[i];
			continue;
		}
		if (*scope_r != NULL) {
			free(*scope_r);
			return ctl_usage_error(cmd, "name one scope");
		}
		*scope_r = depot_scope(kind, value, err, sizeof(err));
		if (*scope_r == NULL)
			return ctl_usage_error(cmd, "--%s: %s", kind, err);
	}
	if (*scope_r == NULL)
		return ctl_usage_error(cmd, "name a scope");
	return CTL_OK;
}

static int ctl_depot_retention_set(struct ctl *ctl, const struct ctl_command *cmd, int argc,
				   char **argv)
{
	static const char *const kinds[] = {"domain", "user", "default", NULL};
	char **rest = xcalloc((size_t)argc + 1, sizeof(*rest));
	struct depot *depot = NULL;
	size_t rest_count;
	char *scope = NULL;
	char err[512];
	long long days = 0;
	char *end = NULL;
	int rc = ctl_depot_scope_args(cmd, argc, argv, kinds, &scope, NULL, rest, &rest_count);

	if (rc == CTL_OK && rest_count != 1)
		rc = ctl_usage_error(cmd, "give the retention in DAYS");
	if (rc == CTL_OK) {
		errno = 0;
		days = strtoll(rest[0], &end, 10);
		if (errno != 0 || end == rest[0] || *end != '\0' || days < 1 ||
		    days > DEPOT_RETENTION_DAYS_MAX)
			rc = ctl_usage_error(cmd, "DAYS is 1 to %d", DEPOT_RETENTION_DAYS_MAX);
	}
	if (rc == CTL_OK && (rc = ctl_depot_open(ctl, false, &depot)) == CTL_OK) {
		if (depot_retention_set(depot, scope, days, err, sizeof(err)) < 0)
			rc = ctl_refuse("%s", err);
		else
			rc = ctl_changed(
			    ctl, NULL,
			    json_pack("{s:s, s:I}", "scope", scope, "days", (json_int_t)days),
			    "depot: retention of %s set to %lld days", scope, days);
	}
	depot_close(&depot);
	free(scope);
	free(rest);
	return rc;
}

/* Prints retention (HOLDS false) or hold rows. */
static int ctl_depot_rows_print(const struct ctl *ctl, const struct depot_scope_row *rows,
				size_t count, bool holds)
{
	static const char *const retention_headers[] = {"SCOPE", "DAYS"};
	static const char *const hold_headers[] = {"SCOPE", "SINCE", "REASON"};
	struct cli_table *table;
	int rc;

	if (ctl->json) {
		json_t *array = json_array();

		for (size_t i = 0; i < count; i++)
			json_array_append_new(
			    array,
			    holds ? json_pack("{s:o, s:o, s:o}", "scope",
					      cli_json_string(rows[i].scope), "since",
					      cli_json_time(rows[i].at), "reason",
					      cli_json_string(rows[i].reason))
				  : json_pack("{s:o, s:I}", "scope", cli_json_string(rows[i].scope),
					      "days", (json_int_t)rows[i].days));
		return ctl_printed(cli_json_print(array, stdout));
	}
	table = cli_table_new(holds ? 3 : 2, holds ? hold_headers : retention_headers);
	for (size_t i = 0; i < count; i++) {
		char days[24];
		char since[CLI_TIME_LEN];

		snprintf(days, sizeof(days), "%" PRId64, rows[i].days);
		cli_format_time(rows[i].at, since);
		if (holds)
			cli_table_add(table,
				      (const char *const[]){rows[i].scope, since, rows[i].reason});
		else
			cli_table_add(table, (const char *const[]){rows[i].scope, days});
	}
	rc = ctl_printed(cli_table_print(table, stdout));
	cli_table_free(&table);
	return rc;
}

static int ctl_depot_retention_list(struct ctl *ctl, const struct ctl_command *cmd, int argc,
				    char **argv)
{
	struct depot_scope_row *rows = NULL;
	struct depot *depot = NULL;
	size_t count = 0;
	char err[512];
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'depot retention list' takes no arguments");
	if ((rc = ctl_depot_open(ctl, false, &depot)) != CTL_OK)
		return rc;
	if (depot_retention_list(depot, &rows, &count, err, sizeof(err)) < 0)
		rc = ctl_refuse("%s", err);
	else
		rc = ctl_depot_rows_print(ctl, rows, count, false);
	if (rc == CTL_OK && !ctl->json &&
	    printf("(without a row: %d days, [depot] retention_days)\n",
		   ctl->cfg.depot_retention_days) < 0)
		rc = CTL_REFUSED;
	depot_scope_rows_free(&rows, count);
	depot_close(&depot);
	return rc;
}

/* depot hold add and del: ADDING or not. */
static int ctl_depot_hold_change(struct ctl *ctl, const struct ctl_command *cmd, int argc,
				 char **argv, bool adding)
{
	static const char *const kinds[] = {"domain", "user", "message", "all", NULL};
	char **rest = xcalloc((size_t)argc + 1, sizeof(*rest));
	struct depot *depot = NULL;
	const char *reason = NULL;
	size_t rest_count;
	char *scope = NULL;
	char err[512];
	int rc = ctl_depot_scope_args(cmd, argc, argv, kinds, &scope, adding ? &reason : NULL, rest,
				      &rest_count);
	int changed;

	if (rc == CTL_OK && rest_count > 0)
		rc = ctl_usage_error(cmd, "unexpected argument '%s'",
				     ctl_clean(rest[0], err, sizeof(err)));
	if (rc != CTL_OK || (rc = ctl_depot_open(ctl, false, &depot)) != CTL_OK)
		goto done;
	changed = adding ? depot_hold_add(depot, scope, reason, err, sizeof(err))
			 : depot_hold_del(depot, scope, err, sizeof(err));
	if (changed < 0)
		rc = ctl_refuse("%s", err);
	else if (changed == 0 && !adding)
		rc = ctl_refuse("no hold on %s", scope);
	else
		rc = ctl_changed(
		    ctl, NULL,
		    json_pack("{s:s, s:b}", "scope", scope, adding ? "held" : "lifted", 1),
		    changed == 0 ? "depot: %s is held already"
		    : adding	 ? "depot: %s held"
				 : "depot: hold on %s lifted",
		    scope);
done:
	depot_close(&depot);
	free(scope);
	free(rest);
	return rc;
}

static int ctl_depot_hold_list(struct ctl *ctl, const struct ctl_command *cmd, int argc,
			       char **argv)
{
	struct depot_scope_row *rows = NULL;
	struct depot *depot = NULL;
	size_t count = 0;
	char err[512];
	int rc;

	(void)argv;
	if (argc > 0)
		return ctl_usage_error(cmd, "'depot hold list' takes no arguments");
	if ((rc = ctl_depot_open(ctl, false, &depot)) != CTL_OK)
		return rc;
	if (depot_hold_list(depot, &rows, &count, err, sizeof(err)) < 0)
		rc = ctl_refuse("%s", err);
	else
		rc = ctl_depot_rows_print(ctl, rows, count, true);
	depot_scope_rows_free(&rows, count);
	depot_close(&depot);
	return rc;
}

int ctl_depot_retention(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "set") == 0)
		return ctl_depot_retention_set(ctl, cmd, argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "list") == 0)
		return ctl_depot_retention_list(ctl, cmd, argc - 1, argv + 1);
	return ctl_usage_error(cmd, "say set or list");
}

int ctl_depot_hold(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "add") == 0)
		return ctl_depot_hold_change(ctl, cmd, argc - 1, argv + 1, true);
	if (argc >= 1 && strcmp(argv[0], "del") == 0)
		return ctl_depot_hold_change(ctl, cmd, argc - 1, argv + 1, false);
	if (argc >= 1 && strcmp(argv[0], "list") == 0)
		return ctl_depot_hold_list(ctl, cmd, argc - 1, argv + 1);
	return ctl_usage_error(cmd, "say add, del or list");
}

/* ---- expire --------------------------------------------------------------- */

/* DATE as "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SSZ" (UTC), unix seconds; -1. */
static int64_t ctl_depot_date(const char *date)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	end = strptime(date, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0') {
		memset(&tm, 0, sizeof(tm));
		end = strptime(date, "%Y-%m-%d", &tm);
	}
	if (end == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm);
}

int ctl_depot_expire(struct ctl *ctl, const struct ctl_command *cmd, int argc, char **argv)
{
	struct depot_expiry expiry = {0};
	struct depot *depot = NULL;
	bool dry_run = false;
	int64_t now = util_now();
	char err[512];
	int rc;

	for (int i = 0; i < argc; i++) {
		bool missing = false;
		const char *value;

		if (strcmp(argv[i], "--dry-run") == 0) {
			dry_run = true;
		} else if ((value = ctl_option("--now", argc, argv, &i, &missing)) != NULL) {
			if ((now = ctl_depot_date(value)) < 0)
				return ctl_usage_error(cmd, "--now is YYYY-MM-DD or "
							    "YYYY-MM-DDTHH:MM:SSZ");
		} else if (missing) {
			return ctl_usage_error(cmd, "--now needs a date");
		} else {
			return ctl_usage_error(cmd, "unexpected argument '%s'",
					       ctl_clean(argv[i], err, sizeof(err)));
		}
	}
	if ((rc = ctl_depot_open(ctl, false, &depot)) != CTL_OK)
		return rc;
	if (depot_expire(depot, now, ctl->cfg.depot_retention_days, dry_run, "admin", &expiry, err,
			 sizeof(err)) < 0) {
		rc = ctl_refuse("%s", err);
		goto done;
	}
	json_t *seqs = json_array();

	for (size_t i = 0; i < expiry.count; i++)
		json_array_append_new(seqs, json_integer(expiry.seqs[i]));
	json_t *json = json_pack(
	    "{s:b, s:o, s:I, s:I, s:I, s:I}", "dry_run", dry_run, "expired", seqs, "held",
	    (json_int_t)expiry.held, "blobs_removed", (json_int_t)expiry.blobs_removed,
	    "bytes_freed", (json_int_t)expiry.bytes_freed, "entry", (json_int_t)expiry.entry_seq);

	if (dry_run && ctl->json) {
		rc = ctl_printed(cli_json_print(json, stdout));
	} else if (dry_run) {
		json_decref(json);
		rc = ctl_printed(printf("depot: would expire %zu message(s); %" PRId64
					" due but held\n",
					expiry.count, expiry.held) < 0
				     ? -1
				     : 0);
	} else {
		rc = ctl_changed(ctl, NULL, json,
				 "depot: expired %zu message(s) (chain entry %" PRId64 "), %" PRId64
				 " due but held, %" PRId64 " blob(s) removed (%" PRId64
				 " bytes freed)",
				 expiry.count, expiry.entry_seq, expiry.held, expiry.blobs_removed,
				 expiry.bytes_freed);
	}
done:
	depot_expiry_free(&expiry);
	depot_close(&depot);
	return rc;
}
