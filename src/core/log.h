/*
 * log.h — the event log: one line per event, with a timestamp, the event's
 * name, the account and the message id, so that a message's path can be
 * traced with grep.
 *
 * Never pass a password or a message body to these functions; anything that
 * came from the network must be sanitised by the caller (util_sanitize).
 *
 * Field values never contain a space: in the event=, account= and id= values
 * (and in any value a caller passes through log_escape) every byte that is a
 * control byte, a space, '=', '%' or not ASCII is written as %XX (two upper
 * case hex digits, as in URLs), so a login such as "bob event=x" is logged as
 * account=bob%20event%3Dx and cannot forge a field. An empty or missing value
 * is written as "-".
 */
#ifndef POPGATE_LOG_H
#define POPGATE_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Opens PATH for appending (NULL or "-" logs to stderr), creating it, never
 * through a symlink (O_NOFOLLOW). Called again it reopens (log rotation, at
 * SIGHUP): the new file replaces the old one only once it is open, so on -1
 * the lines keep going where they went. 0 or -1 with errno. */
int log_open(const char *path, enum log_level min_level);
void log_close(void);

/*
 * Also writes every line of MIN_LEVEL or above to PATH, an existing file
 * (never created here; NULL or "-" means no copy). Replaces an earlier copy;
 * log_close ends it. 0, or -1 with errno (then there is no copy).
 */
int log_copy_open(const char *path, enum log_level min_level);

/* True when a line of LEVEL is also written to the copy (log_copy_open). */
bool log_copy_active(enum log_level level);

/* The descriptor lines are written to (for a child process to inherit as its
 * stderr, so that workers log to the same file). */
int log_get_fd(void);

/* Sets *LEVEL_R from its name ("debug", "info", "warn", "error"). 0, or -1
 * for an unknown name. */
int log_level_parse(const char *name, enum log_level *level_r);

/* Sets the short process role written in each line ("main", "worker", "ctl";
 * at most 15 bytes kept). */
void log_set_role(const char *role);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Writes one event line:
 *   2026-11-28T02:14:13.123Z info main[123] event=fetch account=a@h id=0f3a… <detail>
 * ACCOUNT and MESSAGE_ID may be NULL (written as "-").
 */
void log_event(enum log_level level, const char *event, const char *account,
	       const char *message_id, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Writes VALUE percent-escaped as above into OUT (size OUTLEN, NUL-ended;
 * cut before an escape that does not fit). Returns the length written. For a
 * value from the network placed in a detail as name=value. */
size_t log_escape(char *out, size_t outlen, const char *value);

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
