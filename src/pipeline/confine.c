/*
 * confine.c — the confinement a worker puts itself under right after exec
 * (what and why in confine.h): resource limits, no_new_privs and a seccomp
 * allow-list built with libseccomp.
 *
 * Owns: nothing once it returns; the filter lives in the kernel.
 * Must never: leave a process half confined and say it worked — any step
 * that fails is an error, and the worker exits rather than run unconfined;
 * allow a call that reaches a file by name, the network or another process.
 *
 * SECURITY: the allow-list is what a compromised parser could still do.
 * Each entry is there because glibc's malloc, the log (one write(2) per line
 * to the inherited stderr, getpid, the clock) or the job loop (recvmsg with a
 * descriptor, read of the body, send, poll while a DNS answer is awaited)
 * needs it; strace -f of workers, release
 * and ASan builds, showed nothing else after the filter was loaded (but the
 * open of /etc/localtime that strftime tries, refused by name below).
 */
#include <errno.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "pipeline/confine.h"

#if CONFINE_SANITIZER
/* Set once the filter is loaded: LeakSanitizer's exit check would stop the
 * world with ptrace and read /proc, which the filter refuses. */
static bool confine_active;

int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return confine_active;
}
#endif

/* System calls a worker may make whatever their arguments. */
static const int confine_allowed[] = {
    SCMP_SYS(read),	SCMP_SYS(readv),	 SCMP_SYS(write),	 SCMP_SYS(writev),
    SCMP_SYS(recvmsg),	SCMP_SYS(recvfrom),	 SCMP_SYS(sendmsg),	 SCMP_SYS(sendto),
    SCMP_SYS(close),	SCMP_SYS(fstat),	 SCMP_SYS(lseek),	 SCMP_SYS(brk),
    SCMP_SYS(munmap),	SCMP_SYS(mremap),	 SCMP_SYS(madvise),	 SCMP_SYS(exit),
    SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday), SCMP_SYS(getpid),	 SCMP_SYS(gettid),	 SCMP_SYS(futex),
    /* Waiting for a DNS answer on its socket, with the message's budget. */
    SCMP_SYS(poll),	SCMP_SYS(ppoll),
};

#if CONFINE_SANITIZER
/* What the sanitizer runtime does while it reports an error. */
static const int confine_sanitizer_allowed[] = {
    SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction), SCMP_SYS(sched_yield), SCMP_SYS(prctl),
    SCMP_SYS(getrusage),   SCMP_SYS(getppid),
};
/* Refused with EPERM rather than fatal: the runtime starts its symbolizer
 * and probes memory with them, and carries on without. */
static const int confine_sanitizer_refused[] = {
    SCMP_SYS(clone), SCMP_SYS(clone3), SCMP_SYS(fork),
    SCMP_SYS(vfork), SCMP_SYS(wait4),  SCMP_SYS(pipe),
    SCMP_SYS(pipe2),
};
#endif

/* Reaching a file by its name, refused with EACCES: glibc itself tries some
 * (strftime looks for /etc/localtime on every log line and falls back to
 * UTC, which the log uses anyway), so these must fail, not kill. fstat on a
 * descriptor is allowed above; stat by name is refused here too, so that not
 * even a file's size or owner can be learnt. */
static const int confine_by_name[] = {
    SCMP_SYS(open),	 SCMP_SYS(openat),	SCMP_SYS(openat2),    SCMP_SYS(creat),
    SCMP_SYS(stat),	 SCMP_SYS(lstat),	SCMP_SYS(newfstatat), SCMP_SYS(statx),
    SCMP_SYS(access),	 SCMP_SYS(faccessat),	SCMP_SYS(faccessat2), SCMP_SYS(readlink),
    SCMP_SYS(readlinkat),
};

/* Lowers RESOURCE's soft and hard limits to VALUE, or to the hard limit
 * already in force if that is lower (raising it would need privileges). */
static int confine_limit(int resource, rlim_t value, const char *name, char *err, size_t errlen)
{
	struct rlimit limit;

	if (getrlimit(resource, &limit) < 0) {
		snprintf(err, errlen, "getrlimit(%s): %s", name, strerror(errno));
		return -1;
	}
	if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < value)
		value = limit.rlim_max;
	limit.rlim_cur = value;
	limit.rlim_max = value;
	if (setrlimit(resource, &limit) < 0) {
		snprintf(err, errlen, "setrlimit(%s): %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

static int confine_limits(char *err, size_t errlen)
{
	/* No RLIMIT_CPU: a worker lives for many jobs, and each job is bounded
	 * by the main process's worker_timeout already. No RLIMIT_FSIZE = 0
	 * either: the log a worker writes to is a regular file it inherited. */
#if !CONFINE_SANITIZER
	if (confine_limit(RLIMIT_AS, CONFINE_ADDRESS_SPACE, "RLIMIT_AS", err, errlen) < 0)
		return -1;
#endif
	if (confine_limit(RLIMIT_CORE, 0, "RLIMIT_CORE", err, errlen) < 0 ||
	    confine_limit(RLIMIT_NOFILE, CONFINE_FILES_MAX, "RLIMIT_NOFILE", err, errlen) < 0 ||
	    confine_limit(RLIMIT_NPROC, 0, "RLIMIT_NPROC", err, errlen) < 0 ||
	    confine_limit(RLIMIT_MEMLOCK, 0, "RLIMIT_MEMLOCK", err, errlen) < 0 ||
	    confine_limit(RLIMIT_MSGQUEUE, 0, "RLIMIT_MSGQUEUE", err, errlen) < 0)
		return -1;
	return 0;
}

/* Adds RULES (COUNT system calls, unconditional) with ACTION to CTX. */
static int confine_rules_add(scmp_filter_ctx ctx, uint32_t action, const int *rules, size_t count,
			     char *err, size_t errlen)
{
	for (size_t i = 0; i < count; i++) {
		int rc = seccomp_rule_add(ctx, action, rules[i], 0);

		if (rc < 0) {
			snprintf(err, errlen, "seccomp rule for system call %d: %s", rules[i],
				 strerror(-rc));
			return -1;
		}
	}
	return 0;
}

/* The rules that look at arguments. */
static int confine_rules_conditional(scmp_filter_ctx ctx, char *err, size_t errlen)
{
	int rc;

	/* Memory for malloc, never executable: no new code in a worker. */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
			      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
				      SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* abort(2) signals its own process, and nothing else. */
	if (rc == 0)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				      SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
	if (rc < 0) {
		snprintf(err, errlen, "seccomp rule: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

static int confine_filter(char *err, size_t errlen)
{
	/* Anything not listed kills the whole process (all threads). */
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int rc;

	if (ctx == NULL) {
		snprintf(err, errlen, "seccomp_init failed");
		return -1;
	}
	if (confine_rules_add(ctx, SCMP_ACT_ALLOW, confine_allowed,
			      sizeof(confine_allowed) / sizeof(confine_allowed[0]), err, errlen) < 0 ||
	    confine_rules_add(ctx, SCMP_ACT_ERRNO(EACCES), confine_by_name,
			      sizeof(confine_by_name) / sizeof(confine_by_name[0]), err, errlen) < 0 ||
	    confine_rules_conditional(ctx, err, errlen) < 0)
		goto fail;
#if CONFINE_SANITIZER
	if (confine_rules_add(ctx, SCMP_ACT_ALLOW, confine_sanitizer_allowed,
			      sizeof(confine_sanitizer_allowed) /
				  sizeof(confine_sanitizer_allowed[0]),
			      err, errlen) < 0 ||
	    confine_rules_add(ctx, SCMP_ACT_ERRNO(EPERM), confine_sanitizer_refused,
			      sizeof(confine_sanitizer_refused) /
				  sizeof(confine_sanitizer_refused[0]),
			      err, errlen) < 0)
		goto fail;
	/* isatty(2), to choose colours: "not a terminal". */
	rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 0);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp rule for ioctl: %s", strerror(-rc));
		goto fail;
	}
#endif
	/* seccomp_load sets no_new_privs itself too (SCMP_FLTATR_CTL_NNP). */
	rc = seccomp_load(ctx);
	if (rc < 0) {
		snprintf(err, errlen, "seccomp_load: %s", strerror(-rc));
		goto fail;
	}
	seccomp_release(ctx);
	return 0;
fail:
	seccomp_release(ctx);
	return -1;
}

int confine_apply(char *err, size_t errlen)
{
	if (confine_limits(err, errlen) < 0)
		return -1;
	/* Nothing exec'd from here could gain privileges (set-uid programs,
	 * file capabilities), and an unprivileged process may load a filter. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	/* No core and no ptrace by other processes of the same user. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		snprintf(err, errlen, "PR_SET_DUMPABLE: %s", strerror(errno));
		return -1;
	}
	if (confine_filter(err, errlen) < 0)
		return -1;
#if CONFINE_SANITIZER
	confine_active = true;
#endif
	return 0;
}
