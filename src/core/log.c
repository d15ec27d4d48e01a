/*
 * log.c — the event log: one line per event, written with a single write(2)
 * to a file opened for appending (or to stderr).
 *
 * Owns: the log file descriptor, the minimum level and the process role, and
 * an optional copy: a second file that gets the lines of its own minimum
 * level (popgatectl writes to stderr and records its events in the daemon's
 * log).
 * Must never: write a line with more than one write(2) — the main process and
 * the workers share the file, and O_APPEND makes each single write land whole,
 * so lines never interleave; or let a caller's text break the one-line rule
 * (control bytes become '?'); or let a field value forge another field (the
 * event, account and id values are percent-escaped, log.h); or close the
 * descriptor other threads write to (the writer thread logs while SIGHUP
 * reopens the file): a reopen points the same descriptor number at the new
 * file with dup3(2), which the kernel does atomically, so a line goes to the
 * old file or the new one, never to a file that happens to get the number.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

/* Longest line written, newline included; longer details are cut. */
#define LOG_LINE_MAX 2000

/* Read by every thread that logs, changed only by log_open and log_close. */
static _Atomic int log_fd = STDERR_FILENO;
static _Atomic enum log_level log_min_level = LOG_INFO;
static int log_copy_fd = -1;
static enum log_level log_copy_min_level = LOG_INFO;
static char log_role[16] = "main";

static const char *const log_level_names[] = {
    [LOG_DEBUG] = "debug",
    [LOG_INFO] = "info",
    [LOG_WARN] = "warn",
    [LOG_ERROR] = "error",
};
_Static_assert(sizeof(log_level_names) / sizeof(log_level_names[0]) == LOG_ERROR + 1,
	       "every log level has a name");

/* Appends to LINE at *LEN what vsnprintf makes of FMT, cut at the line limit
 * (one byte is always kept free for the newline). */
static void log_append_v(char *line, size_t *len, const char *fmt, va_list ap)
{
	size_t room = LOG_LINE_MAX - 1 - *len;
	int n;

	if (room == 0)
		return;
	/* vsnprintf wants room for its NUL; the newline slot lends that byte. */
	n = vsnprintf(line + *len, room + 1, fmt, ap);
	if (n < 0)
		return;
	*len += (size_t)n < room ? (size_t)n : room;
}

static void log_append(char *line, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_append(char *line, size_t *len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_append_v(line, len, fmt, ap);
	va_end(ap);
}

/* True when C must be escaped in a field value (log.h). */
static bool log_byte_escaped(unsigned char c)
{
	return c <= 0x20 || c >= 0x7f || c == '=' || c == '%';
}

size_t log_escape(char *out, size_t outlen, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	if (outlen == 0)
		return 0;
	for (const char *p = value; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (!log_byte_escaped(c)) {
			if (n + 1 >= outlen)
				break;
			out[n++] = (char)c;
			continue;
		}
		/* An escape is never cut in half. */
		if (n + 3 >= outlen)
			break;
		out[n++] = '%';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 0x0f];
	}
	out[n] = '\0';
	return n;
}

/* Appends " NAME=VALUE" (or "NAME=-" for NULL or empty), VALUE escaped. */
static void log_append_field(char *line, size_t *len, const char *name, const char *value)
{
	char escaped[3 * 256 + 1];

	if (value == NULL || *value == '\0')
		value = "-";
	log_escape(escaped, sizeof(escaped), value);
	log_append(line, len, "%s%s=%s", *len > 0 && line[*len - 1] != ' ' ? " " : "", name,
		   escaped);
}

/* Writes the timestamp, level and role that open every line. */
static void log_append_prefix(char *line, size_t *len, enum log_level level)
{
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* getpid() on every line: workers are forked after the log is opened. */
	log_append(line, len, "%s.%03ldZ %s %s[%ld] ", stamp, ts.tv_nsec / 1000000L,
		   log_level_names[level], log_role, (long)getpid());
}

/* Writes LEN bytes of LINE to FD in one go. */
static void log_write_fd(int fd, const char *p, size_t len)
{
	/* One write(2) normally; the loop only continues after a signal or a
	 * full disk, where a torn line is the lesser evil. Errors are dropped:
	 * there is nowhere left to report them. */
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		p += n;
		len -= (size_t)n;
	}
}

/* Replaces control bytes so one event stays one line, ends the line and
 * writes it to the destinations whose level LEVEL meets. */
static void log_write_line(enum log_level level, char *line, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			line[i] = '?';
	}
	line[len++] = '\n';
	if (level >= log_min_level)
		log_write_fd(log_fd, line, len);
	if (log_copy_fd >= 0 && level >= log_copy_min_level)
		log_write_fd(log_copy_fd, line, len);
}

static bool log_level_enabled(enum log_level level)
{
	if (level > LOG_ERROR)
		return false;
	return level >= log_min_level || (log_copy_fd >= 0 && level >= log_copy_min_level);
}

int log_open(const char *path, enum log_level min_level)
{
	int fd = STDERR_FILENO;
	int current = atomic_load(&log_fd);

	if (path != NULL && strcmp(path, "-") != 0) {
		/* O_NOFOLLOW: the log's folder may be writable by the service
		 * user, who must not make root append to a file of its choice. */
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW,
			  0640);
		if (fd < 0)
			return -1;
	}
	if (current == STDERR_FILENO) {
		/* The first file: nothing to close, the number simply changes. */
		atomic_store(&log_fd, fd);
	} else {
		/* Reopening (after log rotation, say): the number the other
		 * threads hold now names the new file (or stderr). */
		if (dup3(fd, current, O_CLOEXEC) < 0) {
			int saved = errno;

			if (fd != STDERR_FILENO)
				close(fd);
			errno = saved;
			return -1;
		}
		if (fd != STDERR_FILENO)
			close(fd);
	}
	atomic_store(&log_min_level, min_level);
	return 0;
}

int log_level_parse(const char *name, enum log_level *level_r)
{
	for (size_t i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
		if (strcmp(name, log_level_names[i]) == 0) {
			*level_r = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_copy_open(const char *path, enum log_level min_level)
{
	int fd;

	if (log_copy_fd >= 0)
		close(log_copy_fd);
	log_copy_fd = -1;
	if (path == NULL || strcmp(path, "-") == 0)
		return 0;
	/* No O_CREAT: the file is the daemon's, made by its first start. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	log_copy_fd = fd;
	log_copy_min_level = min_level;
	return 0;
}

bool log_copy_active(enum log_level level)
{
	return log_copy_fd >= 0 && level >= log_copy_min_level && level <= LOG_ERROR;
}

int log_get_fd(void)
{
	return log_fd;
}

void log_close(void)
{
	int fd = atomic_exchange(&log_fd, STDERR_FILENO);

	if (fd != STDERR_FILENO)
		close(fd);
	if (log_copy_fd >= 0)
		close(log_copy_fd);
	log_copy_fd = -1;
}

void log_set_role(const char *role)
{
	snprintf(log_role, sizeof(log_role), "%s", role);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t len = 0;
	va_list ap;

	if (!log_level_enabled(level))
		return;
	log_append_prefix(line, &len, level);
	va_start(ap, fmt);
	log_append_v(line, &len, fmt, ap);
	va_end(ap);
	log_write_line(level, line, len);
}

void log_event(enum log_level level, const char *event, const char *account, const char *message_id,
	       const char *fmt, ...)
{
	char line[LOG_LINE_MAX];
	size_t len = 0;
	va_list ap;

	if (!log_level_enabled(level))
		return;
	log_append_prefix(line, &len, level);
	log_append_field(line, &len, "event", event);
	log_append_field(line, &len, "account", account);
	log_append_field(line, &len, "id", message_id);
	if (fmt != NULL) {
		size_t before = len;

		log_append(line, &len, " ");
		va_start(ap, fmt);
		log_append_v(line, &len, fmt, ap);
		va_end(ap);
		/* An empty detail leaves no trailing blank behind. */
		if (len == before + 1)
			len = before;
	}
	log_write_line(level, line, len);
}
