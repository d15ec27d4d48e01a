"""
test_startup.py — starting popgate as root the way a newcomer does, and what
root must never do while it starts (issue 7, "Start-up and files").

  - A checkout under a mode-0700 parent (root's home): the service user can
    reach neither the data folder by its path nor the program; popgate opens
    both before it drops root and serves, workers included.
  - The data folder is handed to the service user without following a
    symlink, and the log file is not opened through one.
  - What a worker writes to its standard error reaches the log file.
  - Every popgatectl change is in popgate's log, once, also with
    log_file = - (the daemon copies it from the store).

The tests that start popgate as root with user = popgate are skipped when
run as another user.
"""

import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

import itutil
from conftest import base_config, dovecot_section
from popgate import LOG_LINE, LogEvent, Popgate, merge_config, popgate_bin

ACCOUNT = "alice@localhost"
PASSWORD = "alice-start-secret"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="starts popgate as root (user = popgate); run as root")


def service_user():
    try:
        return pwd.getpwnam("popgate")
    except KeyError:
        pytest.skip("no 'popgate' user on this machine (scripts/deps.sh creates it)")


@pytest.fixture
def private_gate(it_root, test_ca, provider, _gates, monkeypatch):
    """make(overrides=None, prepare=None): a popgate whose program, config and
    data folder lie in a fresh mode-0700 folder, as in a checkout under
    /root. PREPARE(gate) runs before the start."""
    service_user()

    def make(overrides=None, prepare=None, start=True):
        top = tempfile.mkdtemp(prefix="private-", dir=it_root)
        os.chmod(top, 0o700)
        directory = os.path.join(top, "checkout")
        os.mkdir(directory, 0o755)
        program = os.path.join(directory, "popgate")
        shutil.copy2(popgate_bin(), program)
        os.chmod(program, 0o755)
        monkeypatch.setenv("POPGATE_BIN", program)
        sections = {"provider localhost": dovecot_section(provider, test_ca)}
        config = merge_config(base_config(directory, sections),
                              merge_config({"server": {"user": "popgate"}}, overrides))
        gate = Popgate(directory, config)
        _gates.append(gate)
        if prepare is not None:
            prepare(gate)
        if start:
            gate.start()
        return gate

    return make


def deliver(provider, count, tag):
    provider.add_user("alice", PASSWORD)
    for i in range(count):
        provider.deliver("alice", f"From: a@example.org\nTo: alice@localhost\n"
                                  f"Subject: {tag} {i}\n\n{tag} body {i}\n".encode())


@needs_root
def test_start_under_private_parent(private_gate, provider):
    """Two pickups through a daemon whose program and data lie under 0700."""
    deliver(provider, 2, "private")
    gate = private_gate()
    assert os.stat(os.path.dirname(gate.dir)).st_mode & 0o777 == 0o700
    user = service_user()
    worker_user = pwd.getpwnam("popgate-worker")
    assert itutil.wait_until(lambda: gate.worker_pids(), 20, what="workers running")
    # The spawner and the workers (their own user) exec'd the program by
    # its descriptor too.
    for pid, uid in [(gate.pid, user.pw_uid), (gate.spawner_pid(), worker_user.pw_uid)] + \
            [(worker, worker_user.pw_uid) for worker in gate.worker_pids()]:
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert all(int(u) == uid for u in uids), f"pid {pid} runs as {uids}"

    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 2}, timeout=60)
    itutil.wait_until(lambda: provider.count("alice") == 0, 30, what="provider mailbox empty")
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 2
    assert all(b"private body" in m for m in served)
    # The workers judged them: one "processed" line per message.
    itutil.wait_until(lambda: len(gate.events("processed")) == 2, 20, what="2 processed lines")
    assert gate.stop() == 0


@needs_root
def test_symlinks_in_data_folder_not_followed(private_gate, it_root):
    """Root hands the data folder over without following a symlink in it, and
    does not open the log through a symlink."""
    outside = tempfile.mkdtemp(prefix="outside-", dir=it_root)
    victim_file = os.path.join(outside, "victim")
    victim_dir = os.path.join(outside, "victim-dir")
    victim_log = os.path.join(outside, "victim-log")
    with open(victim_file, "w") as f:
        f.write("root's\n")
    os.mkdir(victim_dir)
    with open(os.path.join(victim_dir, "inside"), "w") as f:
        f.write("root's too\n")
    with open(victim_log, "w") as f:
        f.write("not a log\n")

    def plant(gate):
        os.makedirs(os.path.join(gate.data_dir, "spool"), exist_ok=True)
        os.symlink(victim_file, os.path.join(gate.data_dir, "link-to-file"))
        os.symlink(victim_dir, os.path.join(gate.data_dir, "spool", "link-to-dir"))

    gate = private_gate(prepare=plant)
    user = service_user()
    # The data folder and what is really in it now belong to the service user...
    for path in (gate.data_dir, os.path.join(gate.data_dir, "spool"),
                 os.path.join(gate.data_dir, "popgate.db")):
        assert os.lstat(path).st_uid == user.pw_uid, path
    # ...the links themselves too, but never what they point at.
    assert os.lstat(os.path.join(gate.data_dir, "link-to-file")).st_uid == user.pw_uid
    for path in (victim_file, victim_dir, os.path.join(victim_dir, "inside")):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (0, 0), f"{path} was handed over"
    assert gate.stop() == 0

    # A log file swapped for a symlink: popgate refuses to start rather than
    # append to the file it points at.
    os.replace(gate.log_file, gate.log_file + ".old")
    os.symlink(victim_log, gate.log_file)
    gate.start(wait=False)
    proc = gate.proc
    itutil.wait_until(lambda: proc.poll() is not None, 20, what="popgate refusing to start")
    assert proc.returncode != 0
    gate._reap()
    with open(victim_log) as f:
        assert f.read() == "not a log\n"
    assert "cannot open log" in gate.stderr_text()


def test_worker_stderr_reaches_log_file(make_popgate, provider):
    """A worker's line lands in the log file (the log is descriptor 3 in the
    daemon, the descriptor workers get their socket on), written from under
    its seccomp filter: each worker says so once it is confined. A body that
    vanished is the main process's to report now: workers open nothing."""
    deliver(provider, 1, "stderr")
    gate = make_popgate(provider=provider)
    lines = gate.wait_event("worker_confined", timeout=30)
    assert lines[0]["role"] == "worker"
    assert "worker_confined" not in gate.stderr_text()
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)
    assert gate.stop() == 0

    # The message's body vanishes while it is back in processing: the main
    # process cannot open it for a worker at the next start, and says so.
    (message_id,) = gate.db_query("SELECT id FROM message")[0]
    gate.db_write("UPDATE message SET state = 'processing'")
    os.unlink(os.path.join(gate.data_dir, "spool", message_id[:2], message_id))
    gate.start()
    lines = gate.wait_event("body_open_failed", timeout=30)
    assert lines[0]["role"] == "main"
    assert lines[0]["id"] == message_id


def ctl(gate, *args):
    """Runs popgatectl --config GATE's config ARGS; its stdout (must succeed)."""
    program = os.path.join(os.path.dirname(popgate_bin()), "popgatectl")
    done = subprocess.run([program, "--config", gate.config_path] + list(args),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"popgatectl {args} exited {done.returncode}: {done.stderr}"
    return done.stdout


def stderr_events(gate, event):
    """The EVENT lines the daemon wrote to its stderr (log_file = -)."""
    out = []
    for line in gate.stderr_text().splitlines():
        m = LOG_LINE.match(line)
        if m and m["event"] == event:
            out.append(LogEvent(m.groupdict(), line=line))
    return out


def test_admin_change_logged_with_log_on_stderr(make_popgate, provider):
    """With log_file = -, only the daemon has the log: popgatectl's change
    reaches it through the store, once."""
    gate = make_popgate(provider=provider, overrides={
        "server": {"log_file": "-"}, "queue": {"release_check_seconds": 1}})
    out = ctl(gate, "user", "add", "carol")
    assert "carol" in out
    lines = itutil.wait_until(lambda: stderr_events(gate, "admin_change"), 30,
                              what="admin_change on the daemon's stderr")
    assert lines[0]["role"] == "main"
    assert lines[0]["detail"].startswith("popgatectl user add: ")
    assert "carol" in lines[0]["detail"]
    itutil.wait_until(lambda: gate.db_query("SELECT logged FROM admin_change") == [(1,)], 30,
                      what="the change marked logged")
    # A second change comes after the first, and the first is not repeated.
    ctl(gate, "user", "add", "dave")
    itutil.wait_until(lambda: len(stderr_events(gate, "admin_change")) >= 2, 30,
                      what="the second admin_change")
    details = [e["detail"] for e in stderr_events(gate, "admin_change")]
    assert len(details) == 2 and "carol" in details[0] and "dave" in details[1]
    assert gate.stop() == 0


def test_admin_change_logged_once_with_log_file(make_popgate, provider):
    """With a log file popgatectl writes the line itself and marks the row,
    so the daemon does not log it again."""
    gate = make_popgate(provider=provider, overrides={"queue": {"release_check_seconds": 1}})
    ctl(gate, "user", "add", "erin")
    assert len(gate.events("admin_change")) == 1
    assert gate.db_query("SELECT logged FROM admin_change") == [(1,)]
    assert gate.stop() == 0
    assert len(gate.events("admin_change")) == 1
