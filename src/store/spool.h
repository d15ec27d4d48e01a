/*
 * spool.h — message bodies: DATA/spool/ab/<id>, written once and never
 * changed.
 *
 * A body is written to a temp file in DATA/spool/tmp while it arrives; then
 * a named temp file is fsync'd and renamed into its folder, an anonymous one
 * (O_TMPFILE, from the pool below) linked into its folder and fsync'd; then
 * the folder is fsync'd — all before its row is committed. So a crash leaves
 * at worst a file without a row, which start-up removes
 * (spool_remove_orphans), and an anonymous file leaves nothing.
 */
#ifndef POPGATE_SPOOL_H
#define POPGATE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SPOOL_ID_LEN 24 /* 12 bytes as hex: the bucket (from the clock), 11 random */

/* Makes a new message id (SPOOL_ID_LEN hex digits and a NUL); ids made in
 * the same second share their bucket folder. */
void spool_new_id(char id[SPOOL_ID_LEN + 1]);

/* True if ID is SPOOL_ID_LEN lowercase hex digits (ids come from the db and
 * from workers; check before building a path). */
bool spool_id_valid(const char *id);

/* DATA_DIR/spool/<first two>/<ID>; allocated, caller frees. */
char *spool_path(const char *data_dir, const char *id);

/* Creates DATA_DIR/spool and DATA_DIR/spool/tmp. 0 or -1 with errno. */
int spool_init(const char *data_dir);

/*
 * Line ends made CRLF (RFC 1939) as a body is stored, once: a LF without a
 * CR before it becomes CRLF, and so does a CR without a LF after it. The
 * state carries a CR across chunks.
 */
struct spool_crlf {
	bool after_cr; /* the last byte passed on was a CR */
};

/* Normalises IN[0..LEN) into OUT, which has room for 2 * LEN + 1 bytes;
 * returns the bytes written. */
size_t spool_crlf_normalise(struct spool_crlf *state, const char *in, size_t len, char *out);

/* Ends a body: a CR left last gets its LF. Returns the bytes (0 or 1)
 * written to OUT. */
size_t spool_crlf_finish(struct spool_crlf *state, char *out);

/* A body being written. */
struct spool_writer {
	FILE *file;
	char *tmp_path;
	char *final_path;
	char id[SPOOL_ID_LEN + 1];
	uint64_t size;
	bool failed;
	bool placed;	/* renamed into place, its folder perhaps not yet synced */
	bool anonymous; /* an O_TMPFILE file: no name until linked into place */
};

/* Starts a new body with a new id, in a file of the pool if one is ready
 * (see spool_pool_start). NULL on failure (errno). */
struct spool_writer *spool_writer_new(const char *data_dir);
/* Appends bytes; errors are remembered and reported by spool_writer_commit. */
void spool_writer_write(struct spool_writer *writer, const void *data, size_t len);
/* fsync, rename (or link) into place, fsync the folder. 0 or -1 with errno
 * (the temp file is removed; a write error remembered earlier reports EIO).
 * Once only. */
int spool_writer_commit(struct spool_writer *writer);

/*
 * spool_writer_commit in two steps, so that one folder fsync serves many
 * bodies (store/writer.c): spool_writer_place fsyncs the file and renames it
 * into place, or links an anonymous file into place and then fsyncs it (0,
 * or -1 with errno and nothing left behind); spool_writer_sync_bucket fsyncs
 * its bucket folder (0 or -1 with errno). The name is durable only after
 * the second.
 */
int spool_writer_place(struct spool_writer *writer);
/*
 * Starts writing the body's bytes to disk without waiting for them (a hint:
 * durability still comes from spool_writer_place's fsync). Called for every
 * body of a group first, the data of all of them goes out together, and each
 * fsync after that mostly waits for bytes already written.
 */
void spool_writer_start_writeback(struct spool_writer *writer);
int spool_writer_sync_bucket(const struct spool_writer *writer);

/* Removes a placed body whose row will not be committed. */
void spool_writer_discard(struct spool_writer *writer);
/* Frees the writer; removes the temp file if not committed. NULL is fine. */
void spool_writer_free(struct spool_writer **writer);

/*
 * The pool: empty temp files made ahead by a thread of its own, so that
 * spool_writer_new in the event loop creates no file there. Creating a file
 * is the dearest step of taking a message in (ext4 without a journal looks at
 * every inode deleted in the last minutes on each creation: a third of the
 * loop's time under SMTP load, bench/README.md). The files are anonymous
 * (O_TMPFILE) where the system has them: made without locking spool/tmp,
 * so the writer thread's renames out of it never wait on a creation, and
 * gone with their fd after a stop or a crash. Elsewhere they are named temp
 * files, which the start-up sweep removes after a crash; it must therefore
 * run before the pool starts. A pooled file holds a body only once
 * spool_writer_new hands it out and becomes one only through
 * spool_writer_place. One pool per process, for one data folder;
 * spool_writer_new for another folder, or when the pool is empty, creates a
 * named temp file itself as before.
 */
/* Starts the pool for DATA_DIR with SIZE files at most. 0 or -1 with errno. */
int spool_pool_start(const char *data_dir, unsigned size);
/* Stops the thread and removes the files not handed out. Harmless if the
 * pool was not started. */
void spool_pool_stop(void);
/* Files ready now (0 without a pool). */
unsigned spool_pool_ready(void);

/* Removes the body of ID (after its row is gone). 0 (also when it was
 * already gone) or -1 with errno (EINVAL for an invalid id). */
int spool_remove(const char *data_dir, const char *id);

/*
 * Removes every temp file and every body for which IS_KNOWN(id, ctx) returns
 * false (and any file in a bucket whose name is not an id of that bucket).
 * IS_KNOWN should answer true when it cannot tell, so an error never costs a
 * body. Returns the number removed, or -1.
 */
int spool_remove_orphans(const char *data_dir, bool (*is_known)(const char *id, void *ctx),
			 void *ctx);

#endif
