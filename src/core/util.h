/*
 * util.h — small helpers that know nothing of mail: allocation that aborts on
 * out-of-memory, durable file writes, random identifiers, clocks.
 *
 * Out of memory is handled in exactly one place (the x* wrappers abort), so
 * callers never check for NULL from them.
 */
#ifndef POPGATE_UTIL_H
#define POPGATE_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Returns a newly allocated formatted string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Frees *p and sets it to NULL; accepts a NULL *p. */
#define xfree(p) do { free(*(p)); *(p) = NULL; } while (0)

/* Creates PATH and its parents with MODE. 0 on success, -1 with errno. */
int util_mkdir_p(const char *path, mode_t mode);

/* fsyncs the directory PATH so a rename or unlink inside it is durable.
 * 0 on success, -1 with errno. */
int util_fsync_dir(const char *path);

/* Writes LEN bytes of DATA to PATH durably and atomically: a temporary file
 * beside it, fsync, rename, fsync of the folder. 0 or -1 with errno. */
int util_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file; *data_r is allocated (NUL-terminated, caller frees).
 * 0 or -1 with errno. */
int util_read_file(const char *path, char **data_r, size_t *len_r);

/* Fills OUT with 2*NBYTES random hex digits and a NUL (OUT holds 2*NBYTES+1). */
void util_random_hex(char *out, size_t nbytes);

/* Wall-clock seconds and monotonic milliseconds. */
int64_t util_now(void);
int64_t util_monotonic_ms(void);

/* Copies S into OUT (size OUTLEN), replacing control and non-ASCII bytes by
 * '?', cut at OUTLEN-1: for anything from the network that is logged or echoed. */
void util_sanitize(char *out, size_t outlen, const char *s, size_t len);

/* Case-insensitive ASCII compare of NUL-terminated strings. */
int util_strcaseeq(const char *a, const char *b);

#endif
