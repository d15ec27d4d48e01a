"""
test_worker_user.py — the workers run as a user of their own (issue 8,
item 1; SPEC G7): started as root, popgate forks its spawner before it drops
to [server] user, the spawner becomes [server] worker_user (popgate-worker)
and starts every worker, so no worker shares the daemon's uid and no process
keeps root.

  - From /proc: the real, effective, saved and file-system uid (and gid) of
    the spawner and of every worker are popgate-worker's, not the daemon's,
    and mail still flows through them.
  - The spawner killed: the daemon notices (its socket closes), logs it and
    stops with an error status, since it cannot regain root to start another;
    the messages the workers held are not counted as failures, and a restart
    delivers them.
  - A worker user that does not exist, or one that may not run the program,
    stops the start with a clear message.
  - After logrotate and SIGHUP, a worker started later logs to the new file
    (the daemon hands the reopened log to the spawner).

A worker killed while it works is replaced and its message delivered:
test_faults.py::test_worker_killed_while_processing.

These tests start popgate as root and are skipped as another user.
"""

import os
import pwd
import shutil
import signal

import pytest

import itutil
from popgate import popgate_bin

ACCOUNT = "alice@localhost"
PASSWORD = "worker-user-secret-8"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="starts popgate as root (user = popgate); run as root")


def ids_of(pid):
    """The (real, effective, saved, file-system) uids and gids of PID."""
    uids = gids = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                uids = tuple(int(u) for u in line.split()[1:])
            elif line.startswith("Gid:"):
                gids = tuple(int(g) for g in line.split()[1:])
    return uids, gids


def alive(pid):
    """PID runs (a zombie, gone but not yet reaped by whoever adopted it,
    does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def users():
    try:
        return pwd.getpwnam("popgate"), pwd.getpwnam("popgate-worker")
    except KeyError:
        pytest.skip("no 'popgate' or 'popgate-worker' user (scripts/deps.sh creates them)")


def deliver(provider, count, tag):
    provider.add_user("alice", PASSWORD)
    bodies = []
    for i in range(count):
        body = f"{tag} body {i}"
        provider.deliver("alice", f"From: a@example.org\nTo: alice@localhost\n"
                                  f"Subject: {tag} {i}\n\n{body}\n".encode())
        bodies.append(body.encode())
    return bodies


@needs_root
def test_workers_run_as_their_own_user(make_popgate, provider):
    service, worker_user = users()
    bodies = deliver(provider, 2, "own-user")
    gate = make_popgate(provider=provider, overrides={"server": {"user": "popgate"}})
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")

    daemon_uids, daemon_gids = ids_of(gate.pid)
    assert daemon_uids == (service.pw_uid,) * 4
    assert daemon_gids == (service.pw_gid,) * 4
    for pid in [gate.spawner_pid()] + gate.worker_pids():
        uids, gids = ids_of(pid)
        assert uids == (worker_user.pw_uid,) * 4, f"pid {pid} runs as uids {uids}"
        assert gids == (worker_user.pw_gid,) * 4, f"pid {pid} runs as gids {gids}"
        assert worker_user.pw_uid != service.pw_uid
    assert f"workers run as user popgate-worker (uid {worker_user.pw_uid})" in gate.log_text()

    # Mail still flows through them: fetched, judged, delivered.
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 2}, timeout=60)
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(any(b in m for m in served) for b in bodies) == [True, True]
    processed = [e for e in gate.events("processed") if e.id != "-"]
    assert len(processed) == 2
    # Each worker said from under its seccomp filter which uid it has.
    confined = gate.events("worker_confined")
    assert confined and all(e.detail == f"uid={worker_user.pw_uid}" for e in confined)
    assert gate.stop() == 0


@needs_root
def test_workers_leave_root_also_with_user_root(make_popgate, provider):
    """[server] user = root keeps the daemon root; its workers still run as
    the worker user."""
    _, worker_user = users()
    gate = make_popgate(provider=provider, overrides={"server": {"user": "root"}})
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")
    assert ids_of(gate.pid)[0] == (0,) * 4
    for pid in [gate.spawner_pid()] + gate.worker_pids():
        assert ids_of(pid) == ((worker_user.pw_uid,) * 4, (worker_user.pw_gid,) * 4)
    assert gate.stop() == 0


@needs_root
def test_spawner_killed_stops_the_daemon(make_popgate, provider):
    _, worker_user = users()
    gate = make_popgate(provider=provider)
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")
    # Stopped only once both are confined, so past arming their parent-death
    # signal (a worker stopped before that would wait for a socket EOF it
    # never reads: on a loaded machine the SAN build's start takes seconds).
    itutil.wait_until(lambda: len(gate.events("worker_confined")) >= 2, 30,
                      what="both workers confined")
    workers = gate.worker_pids()
    # The workers hold their messages and do not answer, as if busy.
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    deliver(provider, 3, "spawner-gone")
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"processing": 3}, timeout=60)

    spawner = gate.spawner_pid()
    assert ids_of(spawner)[0][0] == worker_user.pw_uid
    os.kill(spawner, signal.SIGKILL)
    # The daemon stops by itself, with an error status for the service
    # manager, and leaves no worker behind.
    assert gate.wait_exit(timeout=30) == 1
    assert gate.stray_pids == []
    assert "pipeline: the worker spawner exited; stopping" in gate.log_text()
    for pid in workers:
        assert not alive(pid), f"worker {pid} outlived its spawner"
    # The workers that died with the spawner cost no message an attempt.
    assert [e for e in gate.events("worker_failed") if e.id != "-"] == []
    assert gate.db_states() == {"processing": 3}

    gate.start()
    gate.wait_states({"delivery": 3}, timeout=60)
    assert len(gate.pickup(ACCOUNT, PASSWORD)) == 3
    assert gate.events("suspect") == []


@needs_root
def test_missing_worker_user_stops_the_start(make_popgate):
    users()
    gate = make_popgate(overrides={"server": {"worker_user": "popgate-nosuch"}}, start=False)
    gate.start(wait=False)
    assert gate.wait_exit(timeout=30) == 1
    assert ("user 'popgate-nosuch' does not exist; create it or set [server] worker_user"
            in gate.log_text())


@needs_root
def test_program_the_worker_user_cannot_run_stops_the_start(make_popgate, new_dir,
                                                             monkeypatch):
    users()
    program = os.path.join(new_dir("private-program"), "popgate")
    shutil.copy2(popgate_bin(), program)
    os.chmod(program, 0o700)
    monkeypatch.setenv("POPGATE_BIN", program)
    gate = make_popgate(start=False)
    gate.start(wait=False)
    assert gate.wait_exit(timeout=30) == 1
    assert ("the worker spawner could not exec popgate (may user 'popgate-worker' run the "
            "program?)" in gate.log_text())


@needs_root
def test_new_workers_log_to_the_reopened_log(make_popgate, provider):
    service, _ = users()
    gate = make_popgate(provider=provider)
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")
    rotated = gate.log_file + ".1"
    os.rename(gate.log_file, rotated)
    # As logrotate's "create", for the daemon's user.
    with open(gate.log_file, "w", encoding="utf-8"):
        pass
    os.chown(gate.log_file, service.pw_uid, service.pw_gid)
    os.kill(gate.pid, signal.SIGHUP)
    itutil.wait_until(lambda: "SIGHUP: configuration reloaded" in gate.log_text(), 20,
                      what="the reload in the new log")

    killed = gate.worker_pids()[0]
    os.kill(killed, signal.SIGKILL)
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2 and killed not in gate.worker_pids(),
                      20, what="the killed worker replaced")
    new = [pid for pid in gate.worker_pids() if pid != killed]
    # The replacement says it is confined, in the new file.
    itutil.wait_until(lambda: any(e.role == "worker" and int(e.pid) in new
                                  for e in gate.events("worker_confined")), 20,
                      what="the new worker's line in the new log")
    with open(rotated, encoding="utf-8") as old:
        assert "SIGHUP" not in old.read()
    assert gate.stop() == 0


def test_ctrl_c_at_a_terminal_stops_cleanly(make_popgate):
    """Ctrl-C at a terminal (`make run`) sends SIGINT to the whole process
    group: the daemon stops cleanly and ends the workers itself, through the
    spawner; neither the spawner nor a worker dies of the signal first."""
    gate = make_popgate()
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")
    spawner, workers = gate.spawner_pid(), gate.worker_pids()
    os.killpg(gate.pid, signal.SIGINT)
    assert gate.wait_exit(timeout=30) == 0
    assert gate.events("worker_failed") == []
    assert "spawner exited" not in gate.log_text()
    for pid in [spawner] + workers:
        assert not alive(pid), f"process {pid} outlived the daemon"
