/*
 * spawner.c — the spawner (see spawner.h): its control messages, the
 * daemon's calls that start and stop it, and its own loop, which forks and
 * execs the workers, kills them on request and reports how they ended.
 *
 * Owns: in the daemon, nothing but the calls; in the spawner process, the
 * worker processes until they are reaped.
 * Must never: keep root or any capability (the child drops to the worker
 * user before exec, and checks that it cannot get root back), let the
 * spawner or a worker inherit a descriptor it was not meant to have, run
 * anything between fork and exec that is not async-signal-safe, or signal a
 * process that is not one of its own unreaped workers (a pid it has reaped
 * may already belong to someone else).
 *
 * Why a process of its own: the daemon starts replacements for dead workers
 * at any time, long after it dropped root, and a process that has dropped
 * root cannot make another process a different user. The spawner is made
 * that user once, while the daemon is still root, and it is exec'd afresh,
 * so it holds none of the daemon's memory (no key: that is loaded later).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "pipeline/spawner.h"

/* The worker's socket, as "--worker 3" tells it (workers.h says the same). */
#define SPAWNER_WORKER_FD 3
#define SPAWNER_WORKER_FD_ARG "3"
/* A child's exit statuses before its exec, for spawner_start's message. */
#define SPAWNER_CANNOT_BECOME 126
#define SPAWNER_CANNOT_EXEC 127

/* ---- messages ------------------------------------------------------------ */

static void spawner_put32(unsigned char *out, uint32_t value)
{
	for (int i = 0; i < 4; i++)
		out[i] = (unsigned char)(value >> (8 * i));
}

static uint32_t spawner_get32(const unsigned char *in)
{
	uint32_t value = 0;

	for (int i = 0; i < 4; i++)
		value |= (uint32_t)in[i] << (8 * i);
	return value;
}

void spawner_message_encode(const struct spawner_message *message,
			    unsigned char out[SPAWNER_MESSAGE_LEN])
{
	spawner_put32(out, (uint32_t)message->type);
	spawner_put32(out + 4, message->slot);
	spawner_put32(out + 8, (uint32_t)message->pid);
	spawner_put32(out + 12, (uint32_t)message->value);
}

int spawner_message_decode(const unsigned char *data, size_t len, struct spawner_message *message,
			   const char **err)
{
	uint32_t type;
	bool has_slot;
	bool has_pid;

	memset(message, 0, sizeof(*message));
	if (len != SPAWNER_MESSAGE_LEN) {
		*err = "wrong length";
		return -1;
	}
	type = spawner_get32(data);
	if (type < SPAWNER_READY || type > SPAWNER_MESSAGE_LAST) {
		*err = "unknown type";
		return -1;
	}
	message->type = (enum spawner_message_type)type;
	message->slot = spawner_get32(data + 4);
	message->pid = (int32_t)spawner_get32(data + 8);
	message->value = (int32_t)spawner_get32(data + 12);
	has_slot = type == SPAWNER_START || type == SPAWNER_STARTED || type == SPAWNER_START_FAILED;
	has_pid = type == SPAWNER_READY || type == SPAWNER_KILL || type == SPAWNER_STARTED ||
		  type == SPAWNER_ENDED;
	if (has_slot ? message->slot >= SPAWNER_SLOTS_MAX : message->slot != 0) {
		*err = has_slot ? "slot out of range" : "a slot where none belongs";
		return -1;
	}
	if (has_pid ? message->pid <= 0 : message->pid != 0) {
		*err = has_pid ? "no valid pid" : "a pid where none belongs";
		return -1;
	}
	if (type != SPAWNER_START_FAILED && type != SPAWNER_ENDED && message->value != 0) {
		*err = "a value where none belongs";
		return -1;
	}
	return 0;
}

int spawner_send(int fd, const struct spawner_message *message, int attached, int flags)
{
	unsigned char record[SPAWNER_MESSAGE_LEN];
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	spawner_message_encode(message, record);
	if (attached >= 0) {
		struct cmsghdr *c;

		memset(control.data, 0, sizeof(control.data));
		msg.msg_control = control.data;
		msg.msg_controllen = sizeof(control.data);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &attached, sizeof(int));
	}
	do
		n = sendmsg(fd, &msg, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	/* A packet goes whole or not at all. */
	return 0;
}

enum spawner_received spawner_receive(int fd, struct spawner_message *message, int *attached,
				      const char **err)
{
	unsigned char record[SPAWNER_MESSAGE_LEN];
	/* Room for two, so that a second descriptor is seen and refused
	 * rather than dropped unnoticed. */
	union {
		struct cmsghdr align;
		char data[CMSG_SPACE(2 * sizeof(int))];
	} control;
	struct iovec iov = {.iov_base = record, .iov_len = sizeof(record)};
	struct msghdr msg = {
	    .msg_iov = &iov,
	    .msg_iovlen = 1,
	    .msg_control = control.data,
	    .msg_controllen = sizeof(control.data),
	};
	int fds[2] = {-1, -1};
	size_t fd_count = 0;
	ssize_t n;

	*attached = -1;
	*err = NULL;
	do
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return SPAWNER_NOTHING;
	if (n < 0) {
		*err = strerror(errno);
		return SPAWNER_BROKEN;
	}
	if (n == 0 && msg.msg_controllen == 0)
		return SPAWNER_CLOSED;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
		size_t count;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int one;

			memcpy(&one, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (fd_count < 2)
				fds[fd_count] = one;
			else
				close(one);
			fd_count++;
		}
	}
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0)
		*err = "a record too long, or too many descriptors";
	else if (fd_count > 1)
		*err = "more than one descriptor";
	else if (spawner_message_decode(record, (size_t)n, message, err) == 0 &&
		 fd_count !=
		     (size_t)(message->type == SPAWNER_STARTED || message->type == SPAWNER_LOG))
		*err = fd_count == 1 ? "a descriptor with a message that takes none"
				     : "a message without its descriptor";
	if (*err != NULL) {
		for (size_t i = 0; i < fd_count && i < 2; i++)
			close(fds[i]);
		return SPAWNER_BROKEN;
	}
	*attached = fds[0];
	return SPAWNER_RECEIVED;
}

/* ---- fork and exec ------------------------------------------------------- */

/*
 * In a child between fork and exec: only async-signal-safe calls. Puts each
 * of the COUNT descriptors FDS[i] on TARGETS[i] without close-on-exec, marks
 * every descriptor above the highest target close-on-exec, and execs the
 * program open as EXE_FD (which may be one of the targets). The caller
 * blocked all signals before fork.
 */
__attribute__((noreturn)) static void
spawner_child_exec(const int *fds, const int *targets, size_t count, int exe_fd, char *const argv[])
{
	int moved[3];
	int highest = STDERR_FILENO;
	sigset_t none;

	/* The parent's handlers must not run here if a signal arrives before
	 * exec: back to the defaults while all signals are still blocked. */
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction action;

		if (sigaction(sig, NULL, &action) < 0 || action.sa_handler == SIG_IGN ||
		    action.sa_handler == SIG_DFL)
			continue;
		action.sa_handler = SIG_DFL;
		action.sa_flags = 0;
		sigemptyset(&action.sa_mask);
		sigaction(sig, &action, NULL);
	}
	/* The program starts with no signal blocked, whatever its parent blocks. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (count > 3)
		_exit(SPAWNER_CANNOT_EXEC);
	for (size_t i = 0; i < count; i++) {
		if (targets[i] > highest)
			highest = targets[i];
	}
	/* Every descriptor first goes above every target, so that placing one
	 * cannot overwrite another that is still to be placed. */
	int exec_fd = exe_fd;
	for (size_t i = 0; i < count; i++) {
		moved[i] = fcntl(fds[i], F_DUPFD, highest + 1);
		if (moved[i] < 0)
			_exit(SPAWNER_CANNOT_EXEC);
		if (fds[i] == exe_fd)
			exec_fd = targets[i];
	}
	/* dup2 leaves the new descriptors without FD_CLOEXEC. */
	for (size_t i = 0; i < count; i++) {
		if (dup2(moved[i], targets[i]) < 0)
			_exit(SPAWNER_CANNOT_EXEC);
	}
	/* CLOSE_RANGE_CLOEXEC rather than closing: EXE_FD must stay open until
	 * the exec, which then closes it with the rest. */
	if (close_range((unsigned)highest + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		_exit(SPAWNER_CANNOT_EXEC);
	fexecve(exec_fd, argv, environ);
	_exit(SPAWNER_CANNOT_EXEC);
}

/* ---- the daemon's side --------------------------------------------------- */

int spawner_identity_resolve(const char *worker_user, struct spawner_identity *identity, char *err,
			     size_t errlen)
{
	struct passwd *pw;

	memset(identity, 0, sizeof(*identity));
	if (geteuid() != 0) {
		log_info("workers run as this process's user (uid %ld): popgate was not started "
			 "as root, so there is no other user to give them",
			 (long)geteuid());
		return 0;
	}
	pw = getpwnam(worker_user);
	if (pw == NULL) {
		snprintf(err, errlen,
			 "user '%s' does not exist; create it or set [server] worker_user in the "
			 "config",
			 worker_user);
		return -1;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		snprintf(err, errlen, "[server] worker_user '%s' is root; workers must not be",
			 worker_user);
		return -1;
	}
	identity->change = true;
	identity->uid = pw->pw_uid;
	identity->gid = pw->pw_gid;
	snprintf(identity->name, sizeof(identity->name), "%s", worker_user);
	return 0;
}

/* Reaps PID, waiting at most MS; true once it is reaped (or gone). */
static bool spawner_reap_wait(pid_t pid, int64_t ms)
{
	int64_t deadline = util_monotonic_ms() + ms;

	for (;;) {
		struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};
		int status;
		pid_t rc = waitpid(pid, &status, WNOHANG);

		if (rc == pid || (rc < 0 && errno == ECHILD))
			return true;
		if (util_monotonic_ms() >= deadline)
			return false;
		nanosleep(&pause, NULL);
	}
}

/* Why the spawner PID that exited at start did: its status, reaped here. */
static void spawner_explain_exit(pid_t pid, const struct spawner_identity *identity, char *err,
				 size_t errlen)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		continue;
	if (WIFEXITED(status) && WEXITSTATUS(status) == SPAWNER_CANNOT_BECOME)
		snprintf(err, errlen, "the worker spawner could not become user '%s'",
			 identity->name);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == SPAWNER_CANNOT_EXEC &&
		 identity->change)
		snprintf(err, errlen,
			 "the worker spawner could not exec popgate (may user '%s' run the "
			 "program?)",
			 identity->name);
	else if (WIFEXITED(status) && WEXITSTATUS(status) == SPAWNER_CANNOT_EXEC)
		snprintf(err, errlen, "the worker spawner could not exec popgate");
	else if (WIFEXITED(status))
		snprintf(err, errlen,
			 "the worker spawner exited at start with status %d (see the log)",
			 WEXITSTATUS(status));
	else
		snprintf(err, errlen, "the worker spawner ended at start by signal %d",
			 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* Waits for the spawner's READY on FD: 0; 1 if it exited (reaped here, ERR
 * says why); -1 with ERR set. */
static int spawner_await_ready(int fd, pid_t pid, const struct spawner_identity *identity,
			       char *err, size_t errlen)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	struct spawner_message message;
	const char *why;
	int attached;
	int rc;

	do
		rc = poll(&pfd, 1, SPAWNER_READY_WAIT_MS);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0) {
		snprintf(err, errlen, "the worker spawner did not start within %d ms",
			 SPAWNER_READY_WAIT_MS);
		return -1;
	}
	switch (spawner_receive(fd, &message, &attached, &why)) {
	case SPAWNER_RECEIVED:
		if (message.type == SPAWNER_READY && message.pid == pid)
			return 0;
		snprintf(err, errlen, "the worker spawner's first message was not READY");
		return -1;
	case SPAWNER_CLOSED:
		spawner_explain_exit(pid, identity, err, errlen);
		return 1;
	case SPAWNER_NOTHING:
		snprintf(err, errlen, "the worker spawner said nothing");
		return -1;
	case SPAWNER_BROKEN:
		snprintf(err, errlen, "the worker spawner's first message: %s", why);
		return -1;
	}
	return -1;
}

int spawner_start(int exe_fd, const struct spawner_identity *identity, const char *hostname,
		  struct spawner_process *process, char *err, size_t errlen)
{
	/* argv[0] only names the process for ps: the program is exec'd through
	 * its descriptor. */
	char name[] = "popgate";
	char flag[] = "--spawner";
	char control_arg[16];
	char exe_arg[16];
	char *argv[] = {name, flag, control_arg, exe_arg, (char *)hostname, NULL};
	sigset_t all_signals;
	sigset_t saved_signals;
	int sv[2] = {-1, -1};
	pid_t pid = -1;
	int fork_errno;

	process->fd = -1;
	process->pid = -1;
	snprintf(control_arg, sizeof(control_arg), "%d", SPAWNER_CONTROL_FD);
	snprintf(exe_arg, sizeof(exe_arg), "%d", SPAWNER_EXE_FD);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		goto fail;
	}
	sigfillset(&all_signals);
	sigprocmask(SIG_SETMASK, &all_signals, &saved_signals);
	pid = fork();
	if (pid == 0) {
		int fds[] = {sv[1], exe_fd, log_get_fd()};
		int targets[] = {SPAWNER_CONTROL_FD, SPAWNER_EXE_FD, STDERR_FILENO};
		/* A log on stderr stays where it is (even if there is none). */
		size_t count = fds[2] != STDERR_FILENO ? 3 : 2;

		if (identity->change &&
		    (setgroups(0, NULL) < 0 || setgid(identity->gid) < 0 ||
		     setuid(identity->uid) < 0 || setuid(0) == 0 || getegid() != identity->gid))
			_exit(SPAWNER_CANNOT_BECOME);
		spawner_child_exec(fds, targets, count, exe_fd, argv);
	}
	fork_errno = errno;
	sigprocmask(SIG_SETMASK, &saved_signals, NULL);
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(fork_errno));
		goto fail;
	}
	close(sv[1]);
	sv[1] = -1;
	int ready = spawner_await_ready(sv[0], pid, identity, err, errlen);
	if (ready > 0)
		pid = -1; /* reaped */
	if (ready != 0)
		goto fail;
	process->fd = sv[0];
	process->pid = pid;
	if (identity->change)
		log_info("workers run as user %s (uid %ld)", identity->name, (long)identity->uid);
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (pid > 0) {
		int status;

		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			continue;
	}
	return -1;
}

void spawner_stop(struct spawner_process *process)
{
	if (process->fd >= 0)
		close(process->fd);
	process->fd = -1;
	if (process->pid <= 0)
		return;
	if (!spawner_reap_wait(process->pid, SPAWNER_END_WAIT_MS)) {
		int status;

		/* It runs as another user: this only works when it does not. */
		if (kill(process->pid, SIGKILL) == 0) {
			while (waitpid(process->pid, &status, 0) < 0 && errno == EINTR)
				continue;
		} else {
			log_warn("pipeline: the worker spawner %ld did not exit",
				 (long)process->pid);
		}
	}
	process->pid = -1;
}

/* ---- the spawner process ------------------------------------------------- */

struct spawner {
	int control_fd;
	int exe_fd;
	char *hostname;
	pid_t children[SPAWNER_CHILDREN_MAX];
	size_t child_count;
	bool daemon_gone;
};

static bool spawner_child_known(const struct spawner *spawner, pid_t pid)
{
	for (size_t i = 0; i < spawner->child_count; i++) {
		if (spawner->children[i] == pid)
			return true;
	}
	return false;
}

/* Sends MESSAGE to the daemon; a failure means it is gone. */
static void spawner_tell(struct spawner *spawner, const struct spawner_message *message,
			 int attached)
{
	if (spawner->daemon_gone)
		return;
	if (spawner_send(spawner->control_fd, message, attached, 0) < 0)
		spawner->daemon_gone = true;
}

/* Reaps every worker that has ended, and tells the daemon unless it is gone. */
static void spawner_reap(struct spawner *spawner)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		for (size_t i = 0; i < spawner->child_count; i++) {
			if (spawner->children[i] == pid) {
				spawner->children[i] = spawner->children[--spawner->child_count];
				break;
			}
		}
		struct spawner_message ended = {.type = SPAWNER_ENDED, .pid = pid, .value = status};
		spawner_tell(spawner, &ended, -1);
	}
}

/* Starts a worker for SLOT and answers the daemon. */
static void spawner_start_worker(struct spawner *spawner, uint32_t slot)
{
	char name[] = "popgate";
	char worker_flag[] = "--worker";
	char fd_arg[] = SPAWNER_WORKER_FD_ARG;
	char *argv[] = {name, worker_flag, fd_arg, spawner->hostname, NULL};
	struct spawner_message reply = {.type = SPAWNER_START_FAILED, .slot = slot};
	sigset_t all_signals;
	sigset_t saved_signals;
	int sv[2] = {-1, -1};
	pid_t pid;

	if (spawner->child_count == SPAWNER_CHILDREN_MAX) {
		reply.value = EAGAIN;
		spawner_tell(spawner, &reply, -1);
		return;
	}
	/* CLOEXEC on both ends: workers started later must not inherit this
	 * one's socket, or its EOF would never be seen. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		reply.value = errno;
		spawner_tell(spawner, &reply, -1);
		return;
	}
	sigfillset(&all_signals);
	sigprocmask(SIG_SETMASK, &all_signals, &saved_signals);
	pid = fork();
	if (pid == 0) {
		/* Its stderr is the spawner's: the log. */
		int fds[] = {sv[1]};
		int targets[] = {SPAWNER_WORKER_FD};

		spawner_child_exec(fds, targets, 1, spawner->exe_fd, argv);
	}
	reply.value = errno;
	sigprocmask(SIG_SETMASK, &saved_signals, NULL);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		spawner_tell(spawner, &reply, -1);
		return;
	}
	spawner->children[spawner->child_count++] = pid;
	reply.type = SPAWNER_STARTED;
	reply.pid = pid;
	reply.value = 0;
	spawner_tell(spawner, &reply, sv[0]);
	close(sv[0]);
}

/* Handles one message from the daemon; false when the daemon is gone. */
static bool spawner_on_control(struct spawner *spawner)
{
	struct spawner_message message;
	const char *err;
	int attached;

	switch (spawner_receive(spawner->control_fd, &message, &attached, &err)) {
	case SPAWNER_NOTHING:
		return true;
	case SPAWNER_CLOSED:
		return false;
	case SPAWNER_BROKEN:
		log_error("spawner: bad message from the daemon: %s", err);
		return false;
	case SPAWNER_RECEIVED:
		break;
	}
	if (message.type == SPAWNER_START) {
		spawner_start_worker(spawner, message.slot);
	} else if (message.type == SPAWNER_KILL) {
		/* Only a worker not yet reaped: its pid is still its own. A
		 * worker that died by itself may be reaped before the daemon's
		 * request comes, so a refusal is routine. */
		if (spawner_child_known(spawner, message.pid))
			kill(message.pid, SIGKILL);
		else
			log_debug("spawner: not killing %ld: not a worker it runs",
				  (long)message.pid);
	} else if (message.type == SPAWNER_LOG) {
		/* The workers started from now on write their log lines here. */
		if (dup2(attached, STDERR_FILENO) < 0)
			log_error("spawner: cannot take the reopened log: %s", strerror(errno));
		close(attached);
	} else {
		log_error("spawner: the daemon sent a message of type %d", (int)message.type);
		if (attached >= 0)
			close(attached);
		return false;
	}
	return true;
}

/* Sends SIGNAL_NUMBER to every worker not yet reaped. */
static void spawner_signal_all(struct spawner *spawner, int signal_number)
{
	for (size_t i = 0; i < spawner->child_count; i++)
		kill(spawner->children[i], signal_number);
}

/* Reaps until no worker is left or MS have passed. */
static void spawner_reap_all_wait(struct spawner *spawner, int64_t ms)
{
	int64_t deadline = util_monotonic_ms() + ms;

	for (;;) {
		struct timespec pause = {.tv_nsec = 5 * 1000 * 1000};

		spawner_reap(spawner);
		if (spawner->child_count == 0 || util_monotonic_ms() >= deadline)
			return;
		nanosleep(&pause, NULL);
	}
}

/* The daemon is gone: idle workers exit by themselves (their sockets closed
 * with it), SIGTERM ends a busy one, SIGKILL one that ignores SIGTERM. */
static void spawner_end_workers(struct spawner *spawner)
{
	spawner->daemon_gone = true;
	spawner_reap_all_wait(spawner, SPAWNER_EXIT_WAIT_MS);
	spawner_signal_all(spawner, SIGTERM);
	spawner_reap_all_wait(spawner, SPAWNER_STOP_WAIT_MS);
	spawner_signal_all(spawner, SIGKILL);
	while (spawner->child_count > 0) {
		int status;
		pid_t pid = spawner->children[0];

		if (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			continue;
		spawner->children[0] = spawner->children[--spawner->child_count];
	}
}

int spawner_main(int control_fd, int exe_fd, const char *hostname)
{
	struct spawner *spawner = xcalloc(1, sizeof(*spawner));
	struct spawner_message ready = {.type = SPAWNER_READY, .pid = getpid()};
	sigset_t child_signal;
	int signal_fd = -1;
	int status = 1;

	log_set_role("spawner");
	spawner->control_fd = control_fd;
	spawner->exe_fd = exe_fd;
	spawner->hostname = xstrdup(hostname);
	/* Neither is for the workers (spawner_child_exec sees to it as well). */
	if (fcntl(control_fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(exe_fd, F_SETFD, FD_CLOEXEC) < 0) {
		log_error("spawner: bad descriptors: %s", strerror(errno));
		goto done;
	}
	/* A Ctrl-C at a terminal reaches the whole process group: the daemon
	 * stops, and it ends the workers through this process. Ignored here,
	 * and so in the workers, which inherit it across exec. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	/* SIGCHLD arrives as a readable descriptor, never as a handler. */
	sigemptyset(&child_signal);
	sigaddset(&child_signal, SIGCHLD);
	sigprocmask(SIG_BLOCK, &child_signal, NULL);
	signal_fd = signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);
	if (signal_fd < 0) {
		log_error("spawner: signalfd: %s", strerror(errno));
		goto done;
	}
	spawner_tell(spawner, &ready, -1);
	log_info("spawner: running as uid %ld", (long)getuid());
	while (!spawner->daemon_gone) {
		struct pollfd pfds[2] = {
		    {.fd = control_fd, .events = POLLIN},
		    {.fd = signal_fd, .events = POLLIN},
		};

		if (poll(pfds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("spawner: poll: %s", strerror(errno));
			break;
		}
		if (pfds[1].revents != 0) {
			struct signalfd_siginfo info;

			while (read(signal_fd, &info, sizeof(info)) == (ssize_t)sizeof(info))
				continue;
			spawner_reap(spawner);
		}
		if (pfds[0].revents != 0 && !spawner_on_control(spawner))
			break;
	}
	status = 0;
done:
	spawner_end_workers(spawner);
	if (signal_fd >= 0)
		close(signal_fd);
	free(spawner->hostname);
	free(spawner);
	return status;
}
