"""
test_fetch_pipeline.py — the fetch retrieves the next messages while the
writer thread commits the earlier ones (issue 8, item 6: pop3/ingest.c keeps
up to INGEST_IN_FLIGHT_MAX messages of a connection in the writer), and G3
still holds: the provider is asked to DELE a message only once its row is
committed, and a connection cut with commits under way loses nothing and
stores nothing twice.

The scripted provider records each session's commands, and its on_dele hook
reads the store (read-only, beside the daemon) while popgate waits for the
DELE's answer. No assertion is timed: each waits, with a deadline, for the
state it checks.
"""

import sqlite3
import threading

import itutil
from mailutil import split_trace

ACCOUNT = "alice@localhost"
PASSWORD = "provider-pw-8"
COUNT = 50
IN_FLIGHT_MAX = 32      # pop3/client.h INGEST_IN_FLIGHT_MAX


def make_gate(make_scripted, make_popgate):
    """A scripted provider as "localhost", alice on it, and a popgate whose
    account for alice has had its first (empty) fetch."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides={"queue": {"max_message_size": 100000}})
    gate.first_login(ACCOUNT, PASSWORD)
    wait_sessions(scripted, 2)
    return scripted, gate


def wait_sessions(scripted, count, timeout=60):
    """Waits until COUNT logged-in sessions of alice have ended."""
    itutil.wait_until(lambda: len([s for s in scripted.logged_in_sessions("alice")
                                   if s.ended is not None]) >= count,
                      timeout, what=f"{count} finished provider sessions of alice")


def numbered(commands, verb):
    """The message numbers of VERB's commands, with their positions:
    {number: position}."""
    return {int(c.split(" ")[1]): i for i, c in enumerate(commands)
            if c.split(" ")[0] == verb}


def test_fetch_retrieves_while_committing_and_deletes_only_committed(
        make_scripted, make_popgate, corpus):
    """A 50-message fetch: some RETR goes out before the DELE of an earlier
    message (the fetch does not wait for each commit), and at every DELE the
    message's row and UIDL are already committed in the store (G3)."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    wires = [scripted.deliver("alice", m) for m in corpus.messages(COUNT, seed=81,
                                                                   max_size=20000)]
    uidls = scripted.uidls("alice")
    seen = []               # (uidl, its row committed, its UIDL recorded) at DELE
    lock = threading.Lock()

    def on_dele(session, uidl):
        row = gate.db_query("SELECT count(*) FROM message WHERE uidl = ?", (uidl,))[0][0]
        recorded = gate.db_query("SELECT count(*) FROM provider_uidl WHERE uidl = ?", (uidl,))[0][0]
        with lock:
            seen.append((uidl, row, recorded))

    scripted.on_dele = on_dele
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []     # its QUIT starts the fetch
    wait_sessions(scripted, start + 1)
    gate.wait_states({"delivery": COUNT}, timeout=60)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")

    session = scripted.logged_in_sessions("alice")[start]
    assert session.quit
    with lock:
        assert sorted(u for u, _, _ in seen) == sorted(uidls)
        early = [(u, row, recorded) for u, row, recorded in seen if row != 1 or recorded != 1]
    assert early == [], "DELE before the message's row and UIDL were committed"

    retr, dele = numbered(session.commands, "RETR"), numbered(session.commands, "DELE")
    assert sorted(retr) == sorted(dele) == list(range(1, COUNT + 1))
    assert all(retr[n] < dele[n] for n in dele), "DELE of a message not retrieved"
    # Pipelined: the RETR of a later message is sent before the DELE of an
    # earlier one (one message at a time sends RETR n, DELE n, RETR n+1 ...).
    assert any(retr[n + 1] < dele[n] for n in range(1, COUNT)), session.commands
    # One command, one reply: QUIT comes last, after every DELE.
    assert session.commands[-1] == "QUIT"

    stored = gate.events("stored", ACCOUNT)
    assert sorted(e.detail.split(",")[0].split(" ")[1] for e in stored) == sorted(uidls)
    summary = f"done: {COUNT} stored, {COUNT} deleted at the provider (0 stored before)"
    itutil.wait_until(lambda: any(e.detail.startswith(summary)
                                  for e in gate.fetches_done(ACCOUNT)),
                      30, what=f"the fetch summary '{summary}'")
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(split_trace(s)[1] for s in served) == sorted(wires)


def test_fetch_cut_with_commits_under_way_loses_nothing(make_scripted, make_popgate, corpus):
    """The provider closes the connection in the middle of message 30's RETR
    while earlier messages are still being committed or wait for their DELE:
    those commits finish and nothing is deleted in that session (no QUIT);
    once healed, the next fetch deletes the stored ones without retrieving
    them again and fetches the rest: every message exactly once."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    wires = [scripted.deliver("alice", m) for m in corpus.messages(COUNT, seed=82,
                                                                   max_size=20000)]
    uidls = scripted.uidls("alice")
    scripted.fault, scripted.fault_uidls = "cut_retr", {uidls[29]}
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_event("fetch_error", ACCOUNT, timeout=60)
    cut = scripted.logged_in_sessions("alice")[start]
    itutil.wait_until(lambda: cut.ended is not None, 30, what="the cut session to end")
    assert not cut.quit and scripted.uidls("alice") == uidls, "deleted without QUIT"
    # Each message before the cut is stored (its commit went on after the
    # connection ended), once.
    itutil.wait_until(
        lambda: gate.db_query("SELECT count(*) FROM message")[0][0] >= 29, 30,
        what="the 29 messages retrieved before the cut to be committed")
    assert gate.db_query("SELECT count(*), count(DISTINCT uidl) FROM message") == [(29, 29)]

    scripted.fault = None
    gate.wait_states({"delivery": COUNT}, timeout=60)          # the back-off retry
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    sessions = scripted.logged_in_sessions("alice")[start:]
    retrieved = [u for s in sessions for u in s.retrieved]
    assert sorted(retrieved) == sorted(uidls), "a message retrieved twice or never"
    assert gate.db_query("SELECT count(*), count(DISTINCT uidl) FROM message") == \
        [(COUNT, COUNT)]
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(split_trace(s)[1] for s in served) == sorted(wires)


def test_same_message_listed_twice_in_one_fetch_stored_once(make_scripted, make_popgate, corpus):
    """A provider that lists one message twice under one UIDL, among others:
    the second copy is retrieved and compared only once the first one's
    commit is done (it may still be in the writer thread), so it is found
    stored and only deleted — stored once, nothing deleted unretrieved."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    messages = corpus.messages(6, seed=83, max_size=20000)
    wires = [scripted.deliver("alice", m) for m in messages[:3]]
    twin = scripted.deliver("alice", messages[3], uidl="twin")
    scripted.deliver("alice", messages[3], uidl="twin")
    wires += [twin] + [scripted.deliver("alice", m) for m in messages[4:]]
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_sessions(scripted, start + 1)
    gate.wait_states({"delivery": len(wires)}, timeout=60)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    session = scripted.logged_in_sessions("alice")[start]
    retr, dele = numbered(session.commands, "RETR"), numbered(session.commands, "DELE")
    assert sorted(retr) == sorted(dele) == list(range(1, len(wires) + 2))
    assert all(retr[n] < dele[n] for n in dele)
    assert gate.db_query("SELECT count(*) FROM message WHERE uidl = 'twin'") == [(1,)]
    assert gate.db_query("SELECT count(*) FROM message") == [(len(wires),)]
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(split_trace(s)[1] for s in served) == sorted(wires)


def test_messages_in_flight_are_bounded(make_scripted, make_popgate):
    """Another process takes the store's write lock at the first DELE, so no
    commit happens: popgate retrieves up to INGEST_IN_FLIGHT_MAX messages not
    yet deleted and then waits for the commits; once the lock is gone the
    fetch goes on and ends with every message stored once. At no point of the
    session are more than that many retrieved and not deleted."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    count = 100
    scripted.deliver_bulk("alice", count)
    uidls = scripted.uidls("alice")
    locked = threading.Event()
    held = {}

    def on_dele(session, uidl):
        if locked.is_set():
            return
        lock = sqlite3.connect(gate.db_path, isolation_level=None, timeout=10.0,
                               check_same_thread=False)
        lock.execute("BEGIN IMMEDIATE")
        held["lock"] = lock
        held["committed"] = lock.execute("SELECT count(*) FROM message").fetchone()[0]
        locked.set()

    scripted.on_dele = on_dele
    start = len(scripted.logged_in_sessions("alice"))
    try:
        assert gate.pickup(ACCOUNT, PASSWORD) == []
        assert locked.wait(60), "no DELE"
        session = itutil.wait_until(lambda: scripted.logged_in_sessions("alice")[start:], 30,
                                    what="the fetch's session")[0]
        # None commits while the lock is held: at least IN_FLIGHT_MAX of
        # the 100 remain to be retrieved, and popgate stops at the bound.
        want = held["committed"] + IN_FLIGHT_MAX
        assert want < count, held
        itutil.wait_until(lambda: len(numbered(session.commands, "RETR")) >= want, 30,
                          what=f"{want} RETRs while the store is locked")
    finally:
        if "lock" in held:
            held["lock"].execute("ROLLBACK")
            held["lock"].close()
    wait_sessions(scripted, start + 1)
    gate.wait_states({"delivery": count}, timeout=60)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    assert session.quit and sorted(session.retrieved) == sorted(uidls)
    assert gate.db_query("SELECT count(*), count(DISTINCT uidl) FROM message") == \
        [(count, count)]
    outstanding, most = 0, 0
    for command in session.commands:
        verb = command.split(" ")[0]
        outstanding += (verb == "RETR") - (verb == "DELE")
        most = max(most, outstanding)
    assert most == IN_FLIGHT_MAX, (most, held["committed"], session.commands)
