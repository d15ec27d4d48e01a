/*
 * confine.h — what a worker process gives up before it reads any job: the
 * resource limits, new privileges, and every system call but the few it
 * needs to read a body from a descriptor it is handed and write a verdict
 * and log lines to the descriptors it already holds.
 *
 * The worker calls confine_apply right after exec (worker.c); the unit test
 * tests/unit/test_worker_confine.c calls the very same function in a child
 * and proves from there that the key, the store, the spool and the network
 * are out of reach.
 *
 * What a confined process meets (the outcomes the test asserts):
 *   - open, openat, openat2, creat, and stat, access and readlink by name:
 *     fail with EACCES (so library code that looks for a file, strftime's
 *     /etc/localtime or a sanitizer's report, gives up cleanly);
 *   - every other system call outside the allow-list (socket, connect,
 *     execve, ptrace, kill, ...): the kernel kills the process with SIGSYS,
 *     since only a compromised parser would make one;
 *   - address space at most CONFINE_ADDRESS_SPACE bytes (not under ASan,
 *     whose shadow memory alone reserves terabytes), no core dumps, at most
 *     CONFINE_FILES_MAX descriptors, no new processes.
 *
 * Under AddressSanitizer (CONFINE_SANITIZER) the allow-list is slightly
 * wider, so that a sanitizer's report from a worker is still written whole
 * (unsymbolized): signal set-up and alternate stacks are allowed; fork,
 * clone, wait4 and pipe fail with EPERM and ioctl with ENOTTY instead of
 * killing (the runtime starts its symbolizer with them, probes memory
 * through a pipe and asks whether stderr is a terminal); and the leak check
 * at exit is skipped in a confined process (it needs ptrace and /proc).
 * Checked by hand with an out-of-bounds read after confine_apply: the ASan
 * and UBSan reports come out and the process exits 1.
 */
#ifndef POPGATE_PIPELINE_CONFINE_H
#define POPGATE_PIPELINE_CONFINE_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define CONFINE_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CONFINE_SANITIZER 1
#endif
#endif
#ifndef CONFINE_SANITIZER
#define CONFINE_SANITIZER 0
#endif

#define CONFINE_ADDRESS_SPACE (512UL * 1024 * 1024)
/* Descriptors 0-3 (stdin, stdout, the log, the socket), the body of one
 * job, and room for a descriptor a bad peer may push along with it (which
 * the worker then refuses). */
#define CONFINE_FILES_MAX 16

/*
 * Confines the calling process, for good: limits, no_new_privs, the seccomp
 * filter. Call it single-threaded, before reading anything hostile. 0, or -1
 * with ERR set (the caller must then exit: a worker never runs unconfined).
 */
int confine_apply(char *err, size_t errlen);

#endif
