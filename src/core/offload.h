/*
 * offload.h — a few threads for CPU-heavy work the event loop must not wait
 * for (argon2id runs for tens of milliseconds; every session would stall).
 *
 * WORK runs in a pool thread and may touch only what its argument owns; DONE
 * runs afterwards in the loop's thread, where all other state lives. Nothing
 * else in popgate is shared between threads.
 */
#ifndef POPGATE_OFFLOAD_H
#define POPGATE_OFFLOAD_H

#include <stddef.h>

#include <event2/event.h>

struct offload;

typedef void offload_fn(void *arg);

/* Starts THREADS threads (0 = one per core). NULL with a message in ERR. */
struct offload *offload_new(struct event_base *base, unsigned threads, char *err, size_t errlen);

/* Queues WORK(ARG) for a pool thread; DONE(ARG) follows in the loop. */
void offload_run(struct offload *offload, offload_fn *work, offload_fn *done, void *arg);

/*
 * Waits for the jobs running now, then stops the threads. Queued jobs and
 * results not yet delivered are dropped without their DONE: their owners free
 * ARG themselves. NULL is fine; sets *OFFLOAD to NULL.
 */
void offload_free(struct offload **offload);

#endif
