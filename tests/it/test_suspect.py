"""
test_suspect.py — "retried once, then suspect" (SPEC G3, the README's queue
states) driven by real worker failures, not by setting the state in SQL.

Every worker process of the daemon is stopped (SIGSTOP), including each one
the daemon starts in place of a worker it killed, so the worker holding the
message hangs. With worker_timeout = 1 the daemon kills it, retries the
message once on a fresh worker, which hangs too, and then holds the message
as suspect: its row says so, its log shows `error` twice and then `suspect`.
Once the workers run again other messages flow, and `popgatectl queue
release ID` sends the suspect one back to processing and on to delivery.
"""

import os
import signal
import subprocess
import sys
import threading

import itutil
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "suspect-secret-5"
FREEZE_LIMIT = 120          # seconds the freezer may run at most


def message(subject):
    return (f"From: sender@elsewhere.example\nTo: alice@example.org\n"
            f"Subject: {subject}\nMessage-ID: <{subject}@suspect.test>\n"
            f"Date: Sat, 28 Nov 2026 04:00:00 +0000\n\nBody of {subject}.\n").encode()


# The freezer runs as a process of its own at real-time priority, so that
# neither the test's other threads (the GIL) nor a busy machine delay it: a
# worker the daemon starts in place of a killed one must be stopped before it
# has read and judged its job, which takes it a few milliseconds.
FREEZER = r"""
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
import itutil
spawner, limit = int(sys.argv[2]), float(sys.argv[3])
try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
except (AttributeError, OSError):
    try:
        os.nice(-20)
    except OSError:
        pass
done = []
signal.signal(signal.SIGTERM, lambda *_: done.append(True))
seen = []
deadline = time.monotonic() + limit
while not done and time.monotonic() < deadline:
    for pid in itutil.children(spawner):
        if pid in seen:
            continue
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        seen.append(pid)
        print(pid, flush=True)
    time.sleep(0.001)
for pid in seen:
    try:
        os.kill(pid, signal.SIGCONT)
    except ProcessLookupError:
        pass
"""


class WorkerFreezer:
    """Stops every worker process of GATE (the children of its spawner), and
    each new one as soon as it appears, until the block ends or FREEZE_LIMIT
    passes; then lets those still alive go on (SIGCONT)."""

    def __init__(self, gate):
        self.gate = gate
        self.stopped = []          # pids, in the order they were stopped
        self.returncode = None     # the freezer's exit status, after the block
        self._proc = None
        self._reader = None

    def __enter__(self):
        self._proc = subprocess.Popen(
            [sys.executable, "-c", FREEZER, os.path.dirname(os.path.abspath(__file__)),
             str(self.gate.spawner_pid()), str(FREEZE_LIMIT)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        # Only once the idle workers are stopped may a job reach one.
        itutil.wait_until(lambda: self.stopped, 30, interval=0.01,
                          what="the first worker to be stopped")
        return self

    def __exit__(self, *exc):
        self._proc.terminate()
        try:
            self._proc.wait(30)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait(10)
            self._reader.join(10)
            self.returncode = self._proc.returncode
            if self.returncode != 0:
                # It did not let them go itself.
                for pid in self.stopped:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
        return False

    def _read(self):
        for line in self._proc.stdout:
            self.stopped.append(int(line))


def message_ids(gate):
    return [r[0] for r in gate.db_query("SELECT id FROM message ORDER BY seq")]


def events_of(gate, mid, names):
    return [e for e in gate.events(names) if e.id == mid]


def test_hung_workers_retry_once_then_suspect_then_release(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={
        "pipeline": {"workers": 1, "worker_timeout": 1},
        "queue": {"release_check_seconds": 1}})
    config = gate.config_path
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)

    with WorkerFreezer(gate) as freezer:
        provider.deliver("alice", message("hangs"))
        gate.pickup(ACCOUNT, PASSWORD)                # QUIT fetches
        mid, = itutil.wait_until(lambda: message_ids(gate), 60, what="the message stored")
        gate.wait_message_state(mid, "suspect", timeout=60)
    assert freezer.returncode == 0
    # The line is written just after the row changes.
    itutil.wait_until(lambda: events_of(gate, mid, "suspect"), 30,
                      what=f"the suspect line of {mid}")
    # The worker of the first attempt and the one of the retry were killed.
    failed = events_of(gate, mid, "worker_failed")
    assert len(failed) == 2, [e.line for e in failed]
    assert all("reason=timed out after 1 s" in e.detail for e in failed)
    assert [e.event for e in events_of(gate, mid, ("error", "suspect"))] == \
        ["error", "error", "suspect"]
    assert "held as suspect after 2 failed attempts" in events_of(gate, mid, "suspect")[0].detail
    assert gate.db_query("SELECT attempts FROM message WHERE id = ?", (mid,)) == [(2,)]
    assert events_of(gate, mid, "processed") == []
    # Each failure was a worker the freezer had stopped.
    assert set(failed_pid(e) for e in failed) <= set(freezer.stopped)

    # Workers run again: another message flows, the suspect one stays held.
    provider.deliver("alice", message("flows"))
    gate.pickup(ACCOUNT, PASSWORD)
    other, = itutil.wait_until(lambda: [m for m in message_ids(gate) if m != mid], 60,
                               what="the second message stored")
    gate.wait_message_state(other, "delivery", timeout=60)
    assert gate.message_state(mid) == "suspect"
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: flows" in served[0]

    # Released, it is filtered again and delivered.
    assert "released to processing" in ok(ctl("queue", "release", mid, config=config))
    gate.wait_message_state(mid, "delivery", timeout=60)
    itutil.wait_until(lambda: len(events_of(gate, mid, "processed")) == 1, 30,
                      what=f"the processed line of {mid}")
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: hangs" in served[0]
    gate.wait_message_state(mid, "delivered", timeout=30)



def failed_pid(event):
    """The worker pid a worker_failed line names."""
    return int(event.detail.split("pid=", 1)[1].split()[0])
