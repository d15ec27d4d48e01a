"""
itutil.py — small helpers shared by the integration tests: free loopback ports,
bounded waits, process-group handling.

Every wait here has a deadline; nothing in the tests may block forever.
"""

import atexit
import os
import random
import signal
import socket
import subprocess
import time

LOOPBACK = "127.0.0.1"

# Process groups of the servers the tests started (daemons run in sessions of
# their own): whatever happens to a test, they are killed at exit.
_groups = set()


def register_group(pgid):
    _groups.add(pgid)


def unregister_group(pgid):
    _groups.discard(pgid)


def kill_registered_groups():
    """SIGKILLs every server process group still registered."""
    for pgid in list(_groups):
        kill_group(pgid)
    _groups.clear()


atexit.register(kill_registered_groups)


# Ports are handed out from a block of this process's own below the kernel's
# ephemeral range (where neither bind(0) nor an outgoing connection takes
# one), each once, from a random start: the pytest-xdist workers running side
# by side then never pick the same port between the probe and the server's
# bind, and no test's server or client takes one of them meanwhile.
_PORT_LOW = 10000


def _port_block():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), index + 1)
    size = (ephemeral - _PORT_LOW) // count
    if size < 100:
        return None
    return _PORT_LOW + index * size, size


_block = _port_block()
_next = random.randrange(_block[1]) if _block else 0


def _probe(port):
    """True if PORT is free on 127.0.0.1 for TCP and UDP."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (and UDP too), not
    handed out before by this process nor by another pytest-xdist worker."""
    global _next
    if _block is not None:
        first, size = _block
        for _ in range(size):
            port = first + _next % size
            _next += 1
            if _probe(port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, interval=0.05, what=None):
    """Calls PREDICATE until it returns a true value, which is returned.

    Raises AssertionError naming WHAT (or the predicate) after TIMEOUT seconds;
    an exception raised by the predicate counts as "not yet" until then.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as e:  # noqa: BLE001 - "not yet", reported at the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {name}{extra}")
        time.sleep(interval)


def wait_value(getter, expected, timeout=30.0, interval=0.05, what=None):
    """Waits until GETTER() == EXPECTED; the assertion at the deadline names
    WHAT and the last value seen (an exception counts as "not yet")."""
    last = []

    def check():
        last[:] = [getter()]
        return last[0] == expected

    name = what or getattr(getter, "__name__", repr(getter))
    try:
        wait_until(check, timeout, interval, what=name)
    except AssertionError as e:
        seen = f"{last[0]!r}" if last else "nothing"
        raise AssertionError(f"{e}: expected {expected!r}, last saw {seen}") from None
    return expected


def port_open(port, host=LOOPBACK):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(port, timeout=10.0, host=LOOPBACK, proc=None, what=None):
    """Waits until PORT accepts connections; fails early if PROC has exited."""

    def ready():
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        return port_open(port, host)

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what or 'process'} exited with {proc.returncode} "
                         f"before port {port} opened")
        if port_open(port, host):
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what or 'port'} {port} not open after {timeout:.1f}s")
        time.sleep(0.05)


def wait_port_closed(port, timeout=10.0, host=LOOPBACK):
    wait_until(lambda: not port_open(port, host), timeout, what=f"port {port} to close")


def proc_stats():
    """(pid, fields) of every live process, FIELDS being /proc/PID/stat after
    the command name (state, ppid, pgrp, ...); zombies excluded."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) >= 3 and fields[0] != b"Z":
            yield int(name), fields


def group_pids(pgid):
    """The pids of the live processes in process group PGID (zombies excluded)."""
    return [pid for pid, fields in proc_stats() if int(fields[2]) == pgid]


def children(pid):
    """The pids of the direct children of PID (all its threads' children)."""
    kids = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    if kids:
        return sorted(set(kids))
    # Some kernels (gVisor) lack the children file: fall back to the ppid field.
    kids = [child for child, fields in proc_stats() if int(fields[1]) == pid]
    return sorted(set(kids))


def kill_group(pgid, sig=signal.SIGKILL):
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_server(proc):
    """Ends PROC, a test server started as the leader of its own registered
    process group: SIGTERM, then SIGKILL to the group if it lingers past 5 s."""
    pgid = proc.pid
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            kill_group(pgid)
            proc.wait(5)
    unregister_group(pgid)


def reap_group(pgid, timeout=5.0):
    """Waits for every process of group PGID to end; SIGKILLs what is left.

    Returns the pids that had to be killed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group_pids(pgid):
            return []
        time.sleep(0.05)
    left = group_pids(pgid)
    kill_group(pgid)
    wait_until(lambda: not group_pids(pgid), 5.0, what=f"process group {pgid} to die")
    return left


def tail(path, limit=4000):
    """The last LIMIT characters of a text file, or '' if it does not exist."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
