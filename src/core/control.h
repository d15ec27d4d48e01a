/*
 * control.h — popgatectl tells the running daemon about a change: a unix
 * socket in the data folder, CONTROL_SOCKET_NAME (mode 0600, owned by the
 * daemon's user), on which popgatectl writes one line, "changed", after each
 * change it commits. The daemon then at once resubmits the messages in
 * processing that its pipeline does not have (those popgatectl released)
 * and logs popgatectl's changes that are not in the log yet.
 *
 * A slow fallback timer ([queue] release_check_seconds) does the same, for
 * what no notice announces: a message whose move after its verdict failed
 * (it is filtered again), and a notice lost because no daemon listened at
 * that moment (a restart) or the socket refused popgatectl.
 *
 * SECURITY: what arrives on the socket is trusted for nothing: a notice only
 * makes the daemon look at the store, which it would do anyway. Lines are
 * bounded; anything but "changed" is logged, and the connection closed.
 */
#ifndef POPGATE_CORE_CONTROL_H
#define POPGATE_CORE_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include "popgate.h"

#define CONTROL_SOCKET_NAME "control.sock"

struct control;

/*
 * The daemon's side: binds CONTROL_SOCKET_NAME in the working directory
 * (the data folder, after the privilege drop, so it is the service user's),
 * replacing a stale socket a crash left, and arms the fallback timer. Call
 * before any thread starts: the socket's mode is set through the umask.
 * NULL with a message in ERR.
 */
struct control *control_new(struct popgate *pg, char *err, size_t errlen);

/* Closes the socket and its connections, removes the socket file (if it is
 * still this one's) and frees *CONTROL; NULL is fine. */
void control_free(struct control **control);

/* Runs the check a notice runs (released messages, popgatectl's changes),
 * now. For the start, after recovery. */
void control_check(struct control *control);

/*
 * Submits every message in processing to the pipeline, which ignores those it
 * has already: at start-up the ones a stop interrupted, later the ones an
 * administrator released (popgatectl queue release). A message judged whose
 * archive is pending or held (pipeline/archiver.h) is left to the archiver.
 * The number of messages in processing, or -1.
 */
ssize_t control_resume_processing(struct popgate *pg);

/*
 * popgatectl's side: tells the daemon whose data folder is DATA_DIR that the
 * store changed. Never blocks and never fails the caller's command: 1 told,
 * 0 no daemon listens (it sees the change at its start), -1 the socket
 * refused (errno set; the fallback timer sees the change).
 */
int control_notify(const char *data_dir);

#endif
