"""
test_disk_wait.py — the event loop does not wait on the store or the disk
(issue 8, item 6): commits go to the writer thread (store/writer.c) and
bodies that are not in the page cache are read by a thread.

- While another process holds the store's write lock, a pickup's QUIT waits
  for its commit in the writer thread: another client is served meanwhile,
  and the waiting client gets its +OK only once the lock is gone and the
  moves are committed.
- While it holds the lock, a fetch's start waits for its mark (the
  account's fetch_unfinished) in the writer: another client is served
  meanwhile, and the provider is not asked anything before the mark is
  committed (G3: a restart must know of every fetch that may delete).
- While it holds the lock, a login that must be counted (a wrong password)
  waits for its count in the writer: another client is served meanwhile,
  and the password is not checked before the count is committed (G6: so
  parallel wrong passwords stay within the limit).
- Bodies dropped from the page cache (POSIX_FADV_DONTNEED) are served
  byte-identical, a large one across many reads.
"""

import os
import select
import sqlite3
import threading

import corpus as corpus_mod
from mailutil import split_trace, wire_from_lines

ALICE, ALICE_PW = "alice@localhost", "alice-secret-6"
BOB, BOB_PW = "bob@localhost", "bob-secret-6"


def spool_files(gate):
    root = os.path.join(gate.data_dir, "spool")
    return [os.path.join(root, bucket, name)
            for bucket in os.listdir(root) if bucket != "tmp"
            for name in os.listdir(os.path.join(root, bucket))]


def test_quit_commit_waits_in_the_writer_not_in_the_loop(popgate, provider, corpus):
    provider.add_user("alice", ALICE_PW)
    provider.add_user("bob", BOB_PW)
    provider.deliver_many("alice", corpus.messages(2, seed=61))
    popgate.first_login_fetched(ALICE, ALICE_PW)
    popgate.first_login_fetched(BOB, BOB_PW)
    popgate.wait_states({"delivery": 2}, account=ALICE, timeout=60)

    alice = popgate.login(ALICE, ALICE_PW)
    assert alice.stat()[0] == 2
    alice.retr(1)
    alice.retr(2)

    # Another process takes the store's write lock and keeps it.
    lock = sqlite3.connect(popgate.db_path, isolation_level=None, timeout=10.0)
    replies = {}
    try:
        lock.execute("BEGIN IMMEDIATE")
        alice.sock.sendall(b"QUIT\r\n")
        # A whole session of another client, begun after alice's QUIT was
        # sent: served while the QUIT's commit waits for the lock.
        bob = popgate.login(BOB, BOB_PW)
        assert bob.stat()[0] == 0
        assert bob.noop().startswith(b"+OK")
        bob.close()  # no QUIT: it would start a fetch, and this test is about alice's
        # Nothing acknowledged before the commit: alice has no answer yet.
        readable, _, _ = select.select([alice.sock], [], [], 0)
        assert readable == [], "QUIT was answered while the store was locked"
        assert popgate.db_states(ALICE) == {"delivery": 2}

        def read_reply():
            replies["quit"] = alice.file.readline()

        reader = threading.Thread(target=read_reply, daemon=True)
        reader.start()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    reader.join(30)
    assert replies.get("quit", b"").startswith(b"+OK"), replies
    assert popgate.db_states(ALICE) == {"delivered": 2}
    alice.close()
    assert popgate.sanitizer_reports() == []


def fetch_logins(gate, account):
    """The fetches of ACCOUNT that reached the provider (logged in there)."""
    return [e for e in gate.events("fetch", account) if e.detail.startswith("logged in at")]


def test_fetch_start_waits_for_its_mark_in_the_writer(popgate, provider, corpus):
    provider.add_user("alice", ALICE_PW)
    provider.add_user("bob", BOB_PW)
    popgate.first_login_fetched(ALICE, ALICE_PW)
    popgate.first_login_fetched(BOB, BOB_PW)
    provider.deliver_many("alice", corpus.messages(1, seed=64))
    logins_before = len(fetch_logins(popgate, ALICE))
    fetches_before = len(popgate.fetches_done(ALICE))

    alice = popgate.login(ALICE, ALICE_PW)
    assert alice.stat()[0] == 0
    lock = sqlite3.connect(popgate.db_path, isolation_level=None, timeout=10.0)
    try:
        lock.execute("BEGIN IMMEDIATE")
        # Nothing to move: +OK at once, and the QUIT asks for alice's fetch,
        # whose start mark now waits for the lock.
        assert alice.quit().startswith(b"+OK")
        # A whole session of another client, served meanwhile.
        bob = popgate.login(BOB, BOB_PW)
        assert bob.stat()[0] == 0
        assert bob.noop().startswith(b"+OK")
        bob.close()
        # The loop did not wait on the lock (it would have given up after the
        # busy timeout and gone on without the mark), and the fetch did not
        # reach the provider before its mark is committed.
        assert [line for line in popgate.log_lines() if "cannot mark the fetch" in line] == []
        assert len(fetch_logins(popgate, ALICE)) == logins_before
        unfinished = lock.execute(
            "SELECT fetch_unfinished FROM account WHERE name = ?", (ALICE,)).fetchall()
        assert unfinished == [(0,)], unfinished
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    popgate.wait_fetch_done(ALICE, fetches_before + 1)
    popgate.wait_states({"delivery": 1}, account=ALICE, timeout=60)
    assert popgate.db_query("SELECT fetch_unfinished, last_error FROM account WHERE name = ?",
                            (ALICE,)) == [(0, None)]
    assert popgate.sanitizer_reports() == []


def test_login_count_waits_in_the_writer(popgate, provider):
    provider.add_user("alice", ALICE_PW)
    provider.add_user("bob", BOB_PW)
    popgate.first_login_fetched(ALICE, ALICE_PW)
    popgate.first_login_fetched(BOB, BOB_PW)
    assert popgate.db_query("SELECT count(*) FROM login_failure") == [(0,)]

    alice = popgate.connect()
    alice.user(ALICE)
    lock = sqlite3.connect(popgate.db_path, isolation_level=None, timeout=10.0)
    replies = {}
    try:
        lock.execute("BEGIN IMMEDIATE")
        # A wrong password: counted as a pending failure before it is checked.
        alice.sock.sendall(b"PASS not-" + ALICE_PW.encode() + b"\r\n")
        # The password that last succeeded needs no count: bob is served.
        bob = popgate.login(BOB, BOB_PW)
        assert bob.stat()[0] == 0
        bob.close()
        # The loop did not wait on the lock (it would have given up after the
        # busy timeout and refused alice with an internal error), and alice's
        # check has not started: no answer, nothing counted yet.
        readable, _, _ = select.select([alice.sock], [], [], 0)
        assert readable == [], "PASS was answered while the store was locked"
        assert [e.detail for e in popgate.events("login_failed", ALICE)] == []
        assert lock.execute("SELECT count(*) FROM login_failure").fetchall() == [(0,)]

        def read_reply():
            replies["pass"] = alice.file.readline()

        reader = threading.Thread(target=read_reply, daemon=True)
        reader.start()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    reader.join(30)
    assert replies.get("pass", b"").startswith(b"-ERR [AUTH]"), replies
    assert popgate.db_query("SELECT key, failures FROM login_failure ORDER BY key") == [
        ("pop3-account:" + ALICE, 1), ("pop3-address:127.0.0.1", 1)]
    alice.close()
    assert popgate.sanitizer_reports() == []


def test_cold_bodies_are_served_whole(popgate, provider, corpus):
    messages = [corpus_mod.big_message(3 * 1024 * 1024, seed=62),
                corpus_mod.long_line_message(tag="cold")] + corpus.messages(3, seed=63)
    provider.add_user("alice", ALICE_PW)
    wires = provider.deliver_many("alice", messages)
    popgate.first_login_fetched(ALICE, ALICE_PW)
    popgate.wait_states({"delivery": len(wires)}, account=ALICE, timeout=60)

    for _ in range(2):
        # Every body out of the page cache (they are fsync'd, so clean): the
        # RETRs below must each wait on the disk, in a thread.
        for path in spool_files(popgate):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        client = popgate.login(ALICE, ALICE_PW)
        count, _ = client.stat()
        served = [split_trace(wire_from_lines(client.retr(n)[1]))[1]
                  for n in range(1, count + 1)]
        client.close()   # no QUIT: they stay for the second round
        assert sorted(served) == sorted(wires)
    assert popgate.sanitizer_reports() == []
