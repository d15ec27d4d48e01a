/*
 * spool.c — message bodies as files: DATA/spool/<first two hex digits>/<id>,
 * written once through a temp file in DATA/spool/tmp (named, or anonymous
 * and linked into place) and never changed afterwards.
 *
 * Owns: the files under DATA/spool, and the pool's thread and files.
 * Must never: build a path from an id it has not checked (ids come from the
 * database and from worker replies; "../x" must never become a path), let a
 * row be committed before its body's bytes and name are on disk (place, then
 * sync_bucket, come first), or touch a body that a row still names (the
 * caller decides that through is_known).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "store/spool.h"

/* Bodies and their folders are private to popgate's user. */
#define SPOOL_DIR_MODE 0700
#define SPOOL_FILE_MODE 0600

static bool spool_is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* True for a two-digit folder name such as "0f". */
static bool spool_bucket_valid(const char *name)
{
	return spool_is_hex(name[0]) && spool_is_hex(name[1]) && name[2] == '\0';
}

static bool spool_is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/*
 * Removes the files of the open folder DIR: with BUCKET NULL all of them (the
 * temp folder), else those that are not a body of BUCKET known to IS_KNOWN.
 * Sub-folders are left alone. Returns the number removed, or -1 with errno.
 */
static int spool_sweep_dir(DIR *dir, const char *bucket,
			   bool (*is_known)(const char *id, void *ctx), void *ctx)
{
	struct dirent *entry;
	int removed = 0;

	for (;;) {
		errno = 0;
		entry = readdir(dir);
		if (entry == NULL)
			break;
		if (spool_is_dot(entry->d_name))
			continue;
		if (bucket != NULL) {
			/* A body is kept only if its name is an id, it sits in its own
			 * bucket, and a row names it. */
			if (spool_id_valid(entry->d_name) &&
			    strncmp(entry->d_name, bucket, 2) == 0 && is_known(entry->d_name, ctx))
				continue;
		}
		if (unlinkat(dirfd(dir), entry->d_name, 0) < 0) {
			/* A folder where a file belongs is not ours to remove. */
			if (errno == EISDIR || errno == ENOENT)
				continue;
			return -1;
		}
		removed++;
	}
	return errno == 0 ? removed : -1;
}

/* Opens PATH and sweeps it; a missing folder has nothing to remove. */
static int spool_sweep_path(const char *path, const char *bucket,
			    bool (*is_known)(const char *id, void *ctx), void *ctx)
{
	DIR *dir = opendir(path);
	int removed;
	int saved_errno;

	if (dir == NULL)
		return errno == ENOENT ? 0 : -1;
	removed = spool_sweep_dir(dir, bucket, is_known, ctx);
	saved_errno = errno;
	closedir(dir);
	errno = saved_errno;
	if (removed < 0)
		log_error("spool: cleaning %s: %s", path, strerror(errno));
	return removed;
}

/*
 * The first byte names the bucket folder. It follows the clock (the next
 * bucket each second, all 256 in turn) rather than chance: bodies that arrive
 * together then share one folder, and the writer's group commit syncs that
 * folder once instead of one folder per body. The other 11 bytes stay random.
 */
void spool_new_id(char id[SPOOL_ID_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned bucket = (unsigned)(util_now() % 256);

	id[0] = digits[bucket >> 4];
	id[1] = digits[bucket & 0x0f];
	util_random_hex(id + 2, SPOOL_ID_LEN / 2 - 1);
}

bool spool_id_valid(const char *id)
{
	if (id == NULL)
		return false;
	for (size_t i = 0; i < SPOOL_ID_LEN; i++) {
		/* The NUL of a short id fails this test before anything past it is read. */
		if (!spool_is_hex(id[i]))
			return false;
	}
	return id[SPOOL_ID_LEN] == '\0';
}

char *spool_path(const char *data_dir, const char *id)
{
	return xasprintf("%s/spool/%.2s/%s", data_dir, id, id);
}

int spool_init(const char *data_dir)
{
	char *tmp = xasprintf("%s/spool/tmp", data_dir);
	int rc = util_mkdir_p(tmp, SPOOL_DIR_MODE);
	int saved_errno = errno;

	free(tmp);
	errno = saved_errno;
	return rc;
}

/* ---- the pool of temp files ------------------------------------------- */

/* A retry after a failed creation waits this long: a full disk or no fd
 * left must not make the thread spin (spool_writer_new reports the error). */
#define SPOOL_POOL_RETRY_SECONDS 1

/* An empty temp file, open for writing. */
struct spool_pool_file {
	int fd;
	char *path; /* NULL for an anonymous file (O_TMPFILE) */
};

struct spool_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	char *data_dir;
	struct spool_pool_file *files; /* a stack of COUNT ready files */
	unsigned count;
	unsigned size;
	bool waiting; /* the thread sleeps until a file is taken */
	bool stopping;
};

/* Set and cleared by the thread that starts and stops the pool, while no
 * other thread makes bodies (popgate.c: after the start-up sweep, before the
 * listeners; after the writer thread has stopped). */
static struct spool_pool *spool_pool;

/*
 * Creates an empty anonymous file (O_TMPFILE) in DATA_DIR/spool/tmp: its fd,
 * or -1 with errno (EOPNOTSUPP or EISDIR where the file system or the kernel
 * has none). Unlike a named file it holds no lock on spool/tmp while it is
 * made, so it does not hold up the writer thread's renames out of that
 * folder, and it vanishes with its last fd: a stop or a crash leaves nothing.
 */
static int spool_anonymous_create(const char *data_dir)
{
	char *tmp = xasprintf("%s/spool/tmp", data_dir);
	int fd = open(tmp, O_TMPFILE | O_WRONLY | O_CLOEXEC, SPOOL_FILE_MODE);
	int saved_errno = errno;

	free(tmp);
	errno = saved_errno;
	return fd;
}

/* Creates an empty temp file DATA_DIR/spool/tmp/<new id>: its fd and
 * *PATH_R, or -1 with errno. */
static int spool_tmp_create(const char *data_dir, char **path_r)
{
	char id[SPOOL_ID_LEN + 1];
	char *path;
	int fd;

	spool_new_id(id);
	path = xasprintf("%s/spool/tmp/%s", data_dir, id);
	/* O_EXCL: a name that exists is a collision or an attack, never ours. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_FILE_MODE);
	if (fd < 0) {
		int saved_errno = errno;
		free(path);
		errno = saved_errno;
		return -1;
	}
	*path_r = path;
	return fd;
}

/*
 * Gives the anonymous file FD the name PATH. linkat with AT_EMPTY_PATH needs
 * no /proc, but older kernels allow it only with CAP_DAC_READ_SEARCH; the
 * /proc/self/fd link is open(2)'s documented way for O_TMPFILE files.
 */
static int spool_link_fd(int fd, const char *path)
{
	char proc_path[64];

	if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -1;
	snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
	return linkat(AT_FDCWD, proc_path, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

/*
 * Whether anonymous files can be made and linked into place here: O_TMPFILE
 * needs a file system and kernel that have it, and the link needs AT_EMPTY_PATH
 * to be allowed or /proc to be mounted. Tried once with a file of its own,
 * whose name is removed at once.
 */
static bool spool_anonymous_works(const char *data_dir)
{
	char id[SPOOL_ID_LEN + 1];
	char *path;
	int fd = spool_anonymous_create(data_dir);
	bool works;

	if (fd < 0) {
		log_info("spool: no anonymous temp files (%s): named ones", strerror(errno));
		return false;
	}
	spool_new_id(id);
	path = xasprintf("%s/spool/tmp/%s", data_dir, id);
	works = spool_link_fd(fd, path) == 0;
	if (works)
		unlink(path);
	else
		log_info("spool: anonymous temp files cannot be linked (%s): named ones",
			 strerror(errno));
	close(fd);
	free(path);
	return works;
}

/* The pool's thread: keeps the pool full, one file at a time, without the
 * lock while a file is made. Anonymous files where the system has them,
 * named ones otherwise. */
static void *spool_pool_main(void *arg)
{
	struct spool_pool *pool = arg;
	bool named = !spool_anonymous_works(pool->data_dir);

	pthread_mutex_lock(&pool->lock);
	while (!pool->stopping) {
		if (pool->count == pool->size) {
			pool->waiting = true;
			pthread_cond_wait(&pool->wake, &pool->lock);
			pool->waiting = false;
			continue;
		}
		pthread_mutex_unlock(&pool->lock);
		char *path = NULL;
		int fd = named ? spool_tmp_create(pool->data_dir, &path)
			       : spool_anonymous_create(pool->data_dir);
		int saved_errno = errno;
		pthread_mutex_lock(&pool->lock);
		if (fd >= 0) {
			pool->files[pool->count].fd = fd;
			pool->files[pool->count].path = path;
			pool->count++;
			continue;
		}
		log_warn("spool: cannot make a temp file ahead: %s", strerror(saved_errno));
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += SPOOL_POOL_RETRY_SECONDS;
		pthread_cond_timedwait(&pool->wake, &pool->lock, &until);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

int spool_pool_start(const char *data_dir, unsigned size)
{
	struct spool_pool *pool;
	int rc;

	if (spool_pool != NULL || size == 0) {
		errno = EINVAL;
		return -1;
	}
	pool = xcalloc(1, sizeof(*pool));
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	pool->data_dir = xstrdup(data_dir);
	pool->files = xcalloc(size, sizeof(*pool->files));
	pool->size = size;
	rc = pthread_create(&pool->thread, NULL, spool_pool_main, pool);
	if (rc != 0) {
		pthread_cond_destroy(&pool->wake);
		pthread_mutex_destroy(&pool->lock);
		free(pool->files);
		free(pool->data_dir);
		free(pool);
		errno = rc;
		return -1;
	}
	spool_pool = pool;
	return 0;
}

void spool_pool_stop(void)
{
	struct spool_pool *pool = spool_pool;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	pthread_join(pool->thread, NULL);
	spool_pool = NULL;
	/* Files never handed out held no body: nothing is lost with them. */
	for (unsigned i = 0; i < pool->count; i++) {
		close(pool->files[i].fd);
		if (pool->files[i].path != NULL)
			unlink(pool->files[i].path);
		free(pool->files[i].path);
	}
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool->files);
	free(pool->data_dir);
	free(pool);
}

unsigned spool_pool_ready(void)
{
	unsigned count;

	if (spool_pool == NULL)
		return 0;
	pthread_mutex_lock(&spool_pool->lock);
	count = spool_pool->count;
	pthread_mutex_unlock(&spool_pool->lock);
	return count;
}

/* A ready file of the pool for DATA_DIR and its name (NULL: anonymous), or
 * -1 (none: no pool, another folder, or all taken). Wakes the thread to make
 * the next. */
static int spool_pool_take(const char *data_dir, char **path_r)
{
	struct spool_pool *pool = spool_pool;
	int fd = -1;

	if (pool == NULL || strcmp(pool->data_dir, data_dir) != 0)
		return -1;
	pthread_mutex_lock(&pool->lock);
	if (pool->count > 0) {
		pool->count--;
		fd = pool->files[pool->count].fd;
		*path_r = pool->files[pool->count].path;
		if (pool->waiting)
			pthread_cond_signal(&pool->wake);
	}
	pthread_mutex_unlock(&pool->lock);
	return fd;
}

/* ---- a body being written ------------------------------------------------ */

struct spool_writer *spool_writer_new(const char *data_dir)
{
	struct spool_writer *writer = xcalloc(1, sizeof(*writer));
	int saved_errno;
	int fd;

	spool_new_id(writer->id);
	writer->final_path = spool_path(data_dir, writer->id);
	/* A temp file's name need not be the id: it only has to be in
	 * spool/tmp, which the start-up sweep empties. */
	fd = spool_pool_take(data_dir, &writer->tmp_path);
	if (fd >= 0)
		writer->anonymous = writer->tmp_path == NULL;
	else
		fd = spool_tmp_create(data_dir, &writer->tmp_path);
	if (fd < 0)
		goto fail;
	writer->file = fdopen(fd, "w");
	if (writer->file == NULL) {
		saved_errno = errno;
		close(fd);
		if (writer->tmp_path != NULL)
			unlink(writer->tmp_path);
		errno = saved_errno;
		goto fail;
	}
	return writer;
fail:
	saved_errno = errno;
	free(writer->tmp_path);
	free(writer->final_path);
	free(writer);
	errno = saved_errno;
	return NULL;
}

/* The length of the run at S that holds neither CR nor LF. */
static size_t spool_plain_run(const char *s, size_t len)
{
	const char *cr = memchr(s, '\r', len);
	const char *lf = memchr(s, '\n', cr != NULL ? (size_t)(cr - s) : len);

	if (lf != NULL)
		return (size_t)(lf - s);
	return cr != NULL ? (size_t)(cr - s) : len;
}

size_t spool_crlf_normalise(struct spool_crlf *state, const char *in, size_t len, char *out)
{
	size_t used = 0;
	size_t i = 0;

	while (i < len) {
		char c = in[i];

		/* Most of a body is bytes that pass unchanged: copied as runs
		 * (vectorised scans) rather than byte by byte. */
		if (!state->after_cr && c != '\r' && c != '\n') {
			size_t run = spool_plain_run(in + i, len - i);

			memcpy(out + used, in + i, run);
			used += run;
			i += run;
			continue;
		}
		i++;
		if (state->after_cr && c != '\n')
			out[used++] = '\n'; /* a lone CR: complete it */
		if (c == '\n' && !state->after_cr)
			out[used++] = '\r'; /* a bare LF */
		out[used++] = c;
		state->after_cr = c == '\r';
	}
	return used;
}

size_t spool_crlf_finish(struct spool_crlf *state, char *out)
{
	if (!state->after_cr)
		return 0;
	state->after_cr = false;
	out[0] = '\n';
	return 1;
}

void spool_writer_write(struct spool_writer *writer, const void *data, size_t len)
{
	if (writer->failed || writer->file == NULL || len == 0)
		return;
	if (fwrite(data, 1, len, writer->file) != len) {
		writer->failed = true;
		return;
	}
	writer->size += len;
}

int spool_writer_place(struct spool_writer *writer)
{
	char *bucket = NULL;
	char *spool_dir = NULL;
	bool named = false; /* the final name exists and is ours to remove */
	int saved_errno;
	int rc;

	if (writer->file == NULL || (writer->tmp_path == NULL && !writer->anonymous)) {
		errno = EINVAL;
		return -1;
	}
	if (writer->failed) {
		errno = EIO;
		goto fail;
	}
	if (fflush(writer->file) != 0)
		goto fail;
	/* A named temp file: the bytes must be on disk before the final name
	 * points at them, or a crash could leave a complete-looking, truncated
	 * body. */
	if (!writer->anonymous && fsync(fileno(writer->file)) < 0)
		goto fail;
	bucket = xstrndup(writer->final_path, strlen(writer->final_path) - SPOOL_ID_LEN - 1);
	if (mkdir(bucket, SPOOL_DIR_MODE) == 0) {
		/* A new bucket is itself an entry of spool/; without this sync the
		 * folder, and the body in it, could vanish in a crash. */
		spool_dir = xstrndup(bucket, strlen(bucket) - 3);
		if (util_fsync_dir(spool_dir) < 0)
			goto fail;
	} else if (errno != EEXIST) {
		goto fail;
	}
	if (writer->anonymous) {
		/* Linked first, synced after: the fsync must also carry the link
		 * count the link raised, or the name could point at an inode that
		 * is free on disk after a crash. Until the row is committed the
		 * name is an orphan that start-up would remove. */
		if (spool_link_fd(fileno(writer->file), writer->final_path) < 0)
			goto fail;
		named = true;
		if (fsync(fileno(writer->file)) < 0)
			goto fail;
	} else if (rename(writer->tmp_path, writer->final_path) < 0) {
		goto fail;
	}
	named = true;
	rc = fclose(writer->file);
	writer->file = NULL;
	if (rc != 0)
		goto fail;
	free(spool_dir);
	free(bucket);
	xfree(&writer->tmp_path);
	writer->anonymous = false;
	writer->placed = true;
	return 0;
fail:
	saved_errno = errno;
	if (writer->file != NULL) {
		fclose(writer->file);
		writer->file = NULL;
	}
	/* The caller will not commit a row for a failed body. */
	if (named)
		unlink(writer->final_path);
	else if (writer->tmp_path != NULL)
		unlink(writer->tmp_path);
	xfree(&writer->tmp_path);
	writer->anonymous = false;
	free(spool_dir);
	free(bucket);
	errno = saved_errno;
	return -1;
}

void spool_writer_start_writeback(struct spool_writer *writer)
{
	if (writer->failed || writer->file == NULL)
		return;
	if (fflush(writer->file) != 0) {
		writer->failed = true;
		return;
	}
	/* Errors here are not lost: the fsync of spool_writer_place reports them. */
	(void)sync_file_range(fileno(writer->file), 0, 0, SYNC_FILE_RANGE_WRITE);
}

int spool_writer_sync_bucket(const struct spool_writer *writer)
{
	char *bucket = xstrndup(writer->final_path, strlen(writer->final_path) - SPOOL_ID_LEN - 1);
	int rc = util_fsync_dir(bucket);
	int saved_errno = errno;

	free(bucket);
	errno = saved_errno;
	return rc;
}

void spool_writer_discard(struct spool_writer *writer)
{
	if (writer->placed)
		unlink(writer->final_path);
	writer->placed = false;
}

int spool_writer_commit(struct spool_writer *writer)
{
	int saved_errno;

	if (spool_writer_place(writer) < 0)
		return -1;
	/* The rename is durable only once the bucket folder is synced; the row
	 * that names the body is committed after this returns. */
	if (spool_writer_sync_bucket(writer) < 0) {
		saved_errno = errno;
		/* No copy of a body without its row may stay behind. */
		spool_writer_discard(writer);
		errno = saved_errno;
		return -1;
	}
	return 0;
}

void spool_writer_free(struct spool_writer **writer)
{
	struct spool_writer *w = *writer;

	if (w == NULL)
		return;
	if (w->file != NULL)
		fclose(w->file);
	/* tmp_path is cleared by a commit (successful or not), so a path still
	 * here is an abandoned body. */
	if (w->tmp_path != NULL)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->final_path);
	free(w);
	*writer = NULL;
}

int spool_remove(const char *data_dir, const char *id)
{
	char *path;
	int rc;
	int saved_errno;

	if (!spool_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	path = spool_path(data_dir, id);
	/*
	 * No folder sync: if the removal is lost in a crash, the body has no row
	 * any more and spool_remove_orphans deletes it at the next start. A body
	 * already gone is what the caller wants, so ENOENT is success.
	 */
	rc = unlink(path);
	saved_errno = errno;
	free(path);
	if (rc < 0 && saved_errno != ENOENT) {
		errno = saved_errno;
		return -1;
	}
	return 0;
}

int spool_remove_orphans(const char *data_dir, bool (*is_known)(const char *id, void *ctx),
			 void *ctx)
{
	char *spool_dir = xasprintf("%s/spool", data_dir);
	char *tmp_dir = xasprintf("%s/spool/tmp", data_dir);
	DIR *dir = NULL;
	struct dirent *entry;
	int total;
	int removed;
	int result = -1;

	/* Every temp file is a body whose commit never finished. */
	total = spool_sweep_path(tmp_dir, NULL, NULL, NULL);
	if (total < 0)
		goto out;
	dir = opendir(spool_dir);
	if (dir == NULL) {
		if (errno == ENOENT)
			result = total;
		else
			log_error("spool: %s: %s", spool_dir, strerror(errno));
		goto out;
	}
	for (;;) {
		char *bucket;

		errno = 0;
		entry = readdir(dir);
		if (entry == NULL)
			break;
		/* Only the two-digit buckets hold bodies; anything else is left. */
		if (!spool_bucket_valid(entry->d_name))
			continue;
		bucket = xasprintf("%s/%s", spool_dir, entry->d_name);
		removed = spool_sweep_path(bucket, entry->d_name, is_known, ctx);
		free(bucket);
		if (removed < 0)
			goto out;
		total += removed;
	}
	if (errno != 0) {
		log_error("spool: reading %s: %s", spool_dir, strerror(errno));
		goto out;
	}
	result = total;
out:
	if (dir != NULL)
		closedir(dir);
	free(tmp_dir);
	free(spool_dir);
	return result;
}
