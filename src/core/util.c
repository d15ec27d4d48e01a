/*
 * util.c — small helpers that know nothing of mail: allocation that aborts on
 * out-of-memory, durable file writes, random identifiers, clocks, sanitising.
 *
 * Owns: nothing beyond the memory it hands out (the caller frees it).
 * Must never: log (the logger itself uses these helpers), or return NULL from
 * an x* allocator — out of memory ends the process here, in one place.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "core/util.h"

static void util_die_oom(size_t size)
{
	/* Nothing else can run safely without memory; the message is all we can do. */
	fprintf(stderr, "popgate: out of memory (%zu bytes)\n", size);
	abort();
}

/* Returns the folder part of PATH as a new string ("." when there is none). */
static char *util_dirname(const char *path)
{
	char *copy = xstrdup(path);
	char *dir = xstrdup(dirname(copy));

	free(copy);
	return dir;
}

static int util_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		util_die_oom(size);
	return p;
}

void *xcalloc(size_t count, size_t size)
{
	void *p = calloc(count ? count : 1, size ? size : 1);

	if (p == NULL)
		util_die_oom(count * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (p == NULL)
		util_die_oom(size);
	return p;
}

char *xstrdup(const char *s)
{
	size_t len = strlen(s);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len + 1);
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	/* vasprintf fails only for lack of memory (or a broken format, which is a bug). */
	if (n < 0)
		util_die_oom(strlen(fmt));
	return s;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char *copy;
	char *p;
	struct stat st;
	int saved_errno;

	if (path == NULL || *path == '\0') {
		errno = EINVAL;
		return -1;
	}
	copy = xstrdup(path);
	/* Walk each prefix ending before a '/', then the whole path. */
	for (p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;

		*p = '\0';
		if (mkdir(copy, mode) < 0 && errno != EEXIST)
			goto fail;
		*p = saved;
		if (saved == '\0')
			break;
	}
	/* EEXIST also covers a file of that name; the caller wants a folder. */
	if (stat(path, &st) < 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		goto fail;
	}
	free(copy);
	return 0;
fail:
	saved_errno = errno;
	free(copy);
	errno = saved_errno;
	return -1;
}

int util_fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	if (rc < 0) {
		int saved_errno = errno;

		close(fd);
		errno = saved_errno;
		return -1;
	}
	close(fd);
	return 0;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char hex[17];
	char *tmp;
	char *dir = NULL;
	int fd;
	int saved_errno;

	util_random_hex(hex, 8);
	/* Same folder as PATH, so rename(2) stays on one file system and is atomic. */
	tmp = xasprintf("%s.tmp.%s", path, hex);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		goto fail;
	/* The umask may have narrowed MODE; the caller asked for exactly MODE. */
	if (fchmod(fd, mode) < 0)
		goto fail_unlink;
	if (util_write_all(fd, data, len) < 0)
		goto fail_unlink;
	/* The data must be on disk before the name points at it, or a crash could
	 * leave a complete-looking but empty file. */
	if (fsync(fd) < 0)
		goto fail_unlink;
	if (close(fd) < 0) {
		fd = -1;
		goto fail_unlink;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail_unlink;
	/* The rename itself lives in the folder; sync it so the new name survives. */
	dir = util_dirname(path);
	if (util_fsync_dir(dir) < 0)
		goto fail;
	free(dir);
	free(tmp);
	return 0;
fail_unlink:
	saved_errno = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved_errno;
fail:
	saved_errno = errno;
	free(dir);
	free(tmp);
	errno = saved_errno;
	return -1;
}

int util_read_file(const char *path, char **data_r, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t cap = 4096;
	size_t len = 0;
	char *buf;
	int saved_errno;

	if (fd < 0)
		return -1;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (cap - len < 2) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	*data_r = buf;
	if (len_r != NULL)
		*len_r = len;
	return 0;
fail:
	saved_errno = errno;
	close(fd);
	free(buf);
	errno = saved_errno;
	return -1;
}

void util_random_hex(char *out, size_t nbytes)
{
	static const char digits[] = "0123456789abcdef";
	unsigned char buf[64];
	size_t done = 0;

	/* sodium_init is idempotent and thread-safe; it fails only without a
	 * random source, and then no identifier we make would be unique. */
	if (sodium_init() < 0)
		abort();
	while (done < nbytes) {
		size_t chunk = nbytes - done < sizeof(buf) ? nbytes - done : sizeof(buf);

		randombytes_buf(buf, chunk);
		for (size_t i = 0; i < chunk; i++) {
			out[2 * (done + i)] = digits[buf[i] >> 4];
			out[2 * (done + i) + 1] = digits[buf[i] & 0x0f];
		}
		done += chunk;
	}
	out[2 * nbytes] = '\0';
}

int64_t util_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t util_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void util_sanitize(char *out, size_t outlen, const char *s, size_t len)
{
	size_t n;

	if (outlen == 0)
		return;
	n = len < outlen - 1 ? len : outlen - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	out[n] = '\0';
}

int util_strcaseeq(const char *a, const char *b)
{
	/* ASCII only, on purpose: strcasecmp follows the locale. */
	for (;; a++, b++) {
		unsigned char ca = (unsigned char)*a;
		unsigned char cb = (unsigned char)*b;

		if (ca >= 'A' && ca <= 'Z')
			ca = (unsigned char)(ca - 'A' + 'a');
		if (cb >= 'A' && cb <= 'Z')
			cb = (unsigned char)(cb - 'A' + 'a');
		if (ca != cb)
			return 0;
		if (ca == '\0')
			return 1;
	}
}
