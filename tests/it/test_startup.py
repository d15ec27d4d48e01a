"""
test_startup.py — starting popgate as root the way a newcomer does, and what
root must never do while it starts (issue 7, "Start-up and files").

  - A checkout under a mode-0700 parent (root's home): the service user can
    reach neither the data folder by its path nor the program; popgate opens
    both before it drops root and serves, workers included.
  - The data folder is handed to the service user without following a
    symlink, and the log file is not opened through one.
  - What a worker writes to its standard error reaches the log file.

The tests that start popgate as root with user = popgate are skipped when
run as another user.
"""

import os
import pwd

import pytest

ACCOUNT = "alice@localhost"
PASSWORD = "alice-start-secret"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="starts popgate as root (user = popgate); run as root")


def service_user():
    try:
        return pwd.getpwnam("popgate")
    except KeyError:
        pytest.skip("no 'popgate' user on this machine (scripts/deps.sh creates it)")


def deliver(provider, count, tag):
    provider.add_user("alice", PASSWORD)
    for i in range(count):
        provider.deliver("alice", f"From: a@example.org\nTo: alice@localhost\n"
                                  f"Subject: {tag} {i}\n\n{tag} body {i}\n".encode())


def test_worker_stderr_reaches_log_file(make_popgate, provider):
    """A worker's error line lands in the log file (the log is descriptor 3
    in the daemon, the descriptor workers get their socket on)."""
    deliver(provider, 1, "stderr")
    gate = make_popgate(provider=provider)
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)
    assert gate.stop() == 0

    # The message's body vanishes while it is back in processing: the worker
    # that gets it at the next start cannot read it and says so on stderr.
    (message_id,) = gate.db_query("SELECT id FROM message")[0]
    gate.db_write("UPDATE message SET state = 'processing'")
    os.unlink(os.path.join(gate.data_dir, "spool", message_id[:2], message_id))
    gate.start()
    lines = gate.wait_event("worker_read_failed", timeout=30)
    assert lines[0]["role"] == "worker"
    assert lines[0]["id"] == message_id
    assert "worker_read_failed" not in gate.stderr_text()
