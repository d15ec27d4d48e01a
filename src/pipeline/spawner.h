/*
 * spawner.h — the process that starts the workers, so that they run as a
 * user of their own ([server] worker_user) while no process keeps root.
 *
 * The daemon forks it while still root, before it drops to its own user and
 * before the key and the store are opened; the child becomes the worker
 * user and execs popgate afresh as "popgate --spawner 3 4 HOSTNAME", holding
 * only its control socket (3), the program (4, opened as root: exec'd by
 * descriptor, never by path) and the log (stderr). From then on the daemon
 * asks it over the control socket to start a worker for a slot (it answers
 * with the worker's socket attached, SCM_RIGHTS, and the pid), to kill one of
 * its workers, and to log to a reopened log file (SIGHUP, logrotate); it
 * reports each worker that ended. When the control socket closes it ends
 * its workers and exits.
 *
 * The messages are fixed-size binary records on a SOCK_SEQPACKET socket,
 * one record per packet; the daemon decodes each one and checks it against
 * what it asked for (workers.c), since the spawner shares its uid with the
 * workers, which parse hostile mail.
 */
#ifndef POPGATE_PIPELINE_SPAWNER_H
#define POPGATE_PIPELINE_SPAWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The spawner's descriptors, as "--spawner 3 4 HOSTNAME" tells it. */
#define SPAWNER_CONTROL_FD 3
#define SPAWNER_EXE_FD 4
#define SPAWNER_MESSAGE_LEN 16
/* Slots a start request may name (the pipeline's PIPELINE_WORKERS_MAX), and
 * the workers the spawner runs at once: each slot's, plus killed ones not yet
 * reaped. */
#define SPAWNER_SLOTS_MAX 256
#define SPAWNER_CHILDREN_MAX (2 * SPAWNER_SLOTS_MAX)
/* How long the daemon waits for the spawner's first message. */
#define SPAWNER_READY_WAIT_MS 10000
/* Once the daemon is gone: how long the spawner lets its workers exit by
 * themselves, then how long after SIGTERM before SIGKILL. */
#define SPAWNER_EXIT_WAIT_MS 100
#define SPAWNER_STOP_WAIT_MS 500
/* How long the daemon waits for the spawner to exit when it stops. */
#define SPAWNER_END_WAIT_MS 2000

enum spawner_message_type {
	SPAWNER_READY = 1,    /* spawner: running, pid = its own */
	SPAWNER_START,	      /* daemon: start a worker for slot */
	SPAWNER_KILL,	      /* daemon: SIGKILL worker pid */
	SPAWNER_STARTED,      /* spawner: slot's worker is pid; its socket attached */
	SPAWNER_START_FAILED, /* spawner: slot's worker not started; value = errno */
	SPAWNER_ENDED,	      /* spawner: worker pid ended; value = wait status */
	SPAWNER_LOG,	      /* daemon: the log reopened, attached; for new workers */
};
#define SPAWNER_MESSAGE_LAST SPAWNER_LOG

struct spawner_message {
	enum spawner_message_type type;
	uint32_t slot; /* START, STARTED, START_FAILED; else 0 */
	int32_t pid;   /* READY, KILL, STARTED, ENDED; else 0 */
	int32_t value; /* START_FAILED, ENDED; else 0 */
};

/* MESSAGE as SPAWNER_MESSAGE_LEN bytes (little-endian fields). */
void spawner_message_encode(const struct spawner_message *message,
			    unsigned char out[SPAWNER_MESSAGE_LEN]);

/* Decodes one record of LEN bytes: 0, or -1 with *ERR saying why (wrong
 * length, unknown type, a slot out of range, a pid missing where the type
 * needs one or present where it has none). */
int spawner_message_decode(const unsigned char *data, size_t len, struct spawner_message *message,
			   const char **err);

/* Sends MESSAGE on FD, with ATTACHED (unless -1) as SCM_RIGHTS. 0, or -1
 * with errno set (EAGAIN when FLAGS has MSG_DONTWAIT and the socket is
 * full). */
int spawner_send(int fd, const struct spawner_message *message, int attached, int flags);

enum spawner_received {
	SPAWNER_RECEIVED, /* one message, maybe with a descriptor */
	SPAWNER_NOTHING,  /* nothing to read now */
	SPAWNER_CLOSED,	  /* the other end is gone */
	SPAWNER_BROKEN,	  /* a malformed record, or a read error: *ERR says */
};

/*
 * Reads one record from FD without blocking. With RECEIVED, *MESSAGE is
 * decoded and *ATTACHED is the descriptor that came with it (close-on-exec;
 * only a STARTED and a LOG carry one, and they must) or -1. Any descriptor that came
 * with a broken record is closed.
 */
enum spawner_received spawner_receive(int fd, struct spawner_message *message, int *attached,
				      const char **err);

/* Who the spawner and the workers run as. */
struct spawner_identity {
	bool change; /* false: stay this process's user */
	uid_t uid;
	gid_t gid;
	char name[64];
};

/*
 * Not started as root: the workers run as this process's user (said once in
 * the log). As root: WORKER_USER's uid and gid; -1 with ERR set if the user
 * does not exist or is root.
 */
int spawner_identity_resolve(const char *worker_user, struct spawner_identity *identity, char *err,
			     size_t errlen);

/* The daemon's side of a running spawner. */
struct spawner_process {
	int fd; /* the control socket (blocking, close-on-exec), or -1 */
	pid_t pid;
};

/*
 * Forks the spawner, which takes IDENTITY and execs the program open as
 * EXE_FD with "--spawner"; its workers put HOSTNAME in their trace headers.
 * Waits (at most SPAWNER_READY_WAIT_MS) for its READY. 0 and *PROCESS set,
 * or -1 with ERR set. Call before any thread is started.
 */
int spawner_start(int exe_fd, const struct spawner_identity *identity, const char *hostname,
		  struct spawner_process *process, char *err, size_t errlen);

/* Closes the control socket (the spawner then ends its workers and exits)
 * and reaps the spawner, waiting at most SPAWNER_END_WAIT_MS; PROCESS is
 * left empty. An empty PROCESS is fine. */
void spawner_stop(struct spawner_process *process);

/* The spawner's loop, run by "popgate --spawner CONTROL_FD EXE_FD HOSTNAME".
 * Returns the process exit status. */
int spawner_main(int control_fd, int exe_fd, const char *hostname);

#endif
