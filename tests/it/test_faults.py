"""
test_faults.py — provider faults (issue 2 point 7; SPEC G3): connection
refused, a bad certificate, a stored password that no longer works, a stall
or a cut in the middle of RETR, -ERR on RETR, messages over the size limit,
and a worker process killed while it works.

Each fault must leave the provider's messages there (or delete them only once
stored), log one error line naming the account and the reason, retry later
with back-off, and leave the user's next pickup working. Faults a real
Dovecot cannot produce come from the scripted provider, which records every
command and checks at each DELE that popgate has committed the message.
"""

import os
import re
import signal
import time

import pytest

import corpus as corpus_mod
import itutil
from mailutil import sha256, split_trace

ACCOUNT = "alice@localhost"
PASSWORD = "fault-pw-1"
ERROR_EVENTS = ("error", "fetch_error")


def fault_lines(gate, account=ACCOUNT):
    return gate.events(ERROR_EVENTS, account)


def wait_fault(gate, reason, before=0, account=ACCOUNT, timeout=30.0):
    """Waits for a new error line for ACCOUNT whose text matches REASON (a
    regular expression, case-insensitive); BEFORE is the count seen earlier."""
    pattern = re.compile(reason, re.I)

    def found():
        lines = fault_lines(gate, account)[before:]
        return [e for e in lines if pattern.search(e.detail)]

    try:
        return itutil.wait_until(found, timeout, interval=0.1)
    except AssertionError:
        raise AssertionError(f"no event={'/'.join(ERROR_EVENTS)} line for {account} matching "
                             f"/{reason}/ within {timeout}s\n--- log ---\n{gate.log_tail()}") \
            from None


def nonzero(states):
    return {k: v for k, v in states.items() if v}


def served_bodies(served):
    return sorted(split_trace(s)[1] for s in served)


def wait_dovecot_fetch_done(provider, user, sessions):
    """Waits until USER had SESSIONS finished logins at Dovecot."""
    itutil.wait_until(lambda: provider.logouts(user) >= sessions, 30,
                      what=f"{sessions} finished provider sessions of {user}")


def assert_no_duplicates(gate):
    dups = gate.db_query("SELECT sha256, count(*) FROM message GROUP BY sha256 HAVING count(*) > 1")
    assert dups == [], f"messages stored twice: {dups}"


# ------------------------------------------------------------------ Dovecot

def test_connection_refused(popgate, provider, corpus):
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)
    wait_dovecot_fetch_done(provider, "alice", 2)
    provider.stop()
    wires = provider.deliver_many("alice", corpus.messages(3, seed=41))

    before = len(fault_lines(popgate))
    assert popgate.pickup(ACCOUNT, PASSWORD) == []   # the login needs no provider
    wait_fault(popgate, r"refused|connect", before)
    assert provider.count("alice") == 3
    assert popgate.pickup(ACCOUNT, PASSWORD) == []

    # Back-off retries pick the mail up once the provider is back.
    provider.start()
    popgate.wait_states({"delivery": 3}, timeout=30)
    assert served_bodies(popgate.pickup(ACCOUNT, PASSWORD)) == sorted(wires)
    assert provider.count("alice") == 0


def test_bad_certificate(popgate, provider, corpus, rogue_ca):
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)
    wait_dovecot_fetch_done(provider, "alice", 2)
    provider.restart(cert=rogue_ca.server_cert, key=rogue_ca.server_key)
    wires = provider.deliver_many("alice", corpus.messages(2, seed=42))

    before = len(fault_lines(popgate))
    assert popgate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(popgate, r"certif|verif|tls|ssl|handshake", before)
    assert provider.count("alice") == 2
    assert provider.logins("alice") == 2, "popgate logged in over an unverified connection"

    provider.restart(cert=provider.ca.server_cert, key=provider.ca.server_key)
    popgate.wait_states({"delivery": 2}, timeout=30)
    assert served_bodies(popgate.pickup(ACCOUNT, PASSWORD)) == sorted(wires)


def test_bad_certificate_at_first_login(popgate, provider, rogue_ca):
    provider.add_user("alice", PASSWORD)
    provider.restart(cert=rogue_ca.server_cert, key=rogue_ca.server_key)
    with pytest.raises(Exception) as refused:
        popgate.login(ACCOUNT, PASSWORD)
    assert "-ERR" in str(refused.value)
    assert popgate.db_query("SELECT count(*) FROM account") == [(0,)]
    assert provider.logins("alice") == 0


def test_password_changed_at_provider(popgate, provider, corpus):
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)
    wait_dovecot_fetch_done(provider, "alice", 2)
    provider.set_password("alice", "fault-pw-2")
    wires = provider.deliver_many("alice", corpus.messages(2, seed=43))

    # The stored password still opens the Delivery Queue; the fetch fails.
    before = len(fault_lines(popgate))
    assert popgate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(popgate, r"auth|password|login|-ERR|reject", before)
    assert provider.count("alice") == 2

    # The new password is checked live at the provider and replaces the old.
    assert popgate.pickup(ACCOUNT, "fault-pw-2") == []
    popgate.wait_states({"delivery": 2}, timeout=30)
    assert served_bodies(popgate.pickup(ACCOUNT, "fault-pw-2")) == sorted(wires)
    # ... and the old one is no longer good.
    with pytest.raises(Exception) as refused:
        popgate.login(ACCOUNT, PASSWORD)
    assert "-ERR [AUTH]" in str(refused.value)


def test_message_over_size_limit(make_popgate, provider, corpus):
    gate = make_popgate(provider=provider, overrides={"queue": {"max_message_size": 200000}})
    provider.add_user("alice", PASSWORD)
    small = provider.deliver_many("alice", corpus.messages(2, seed=44, max_size=50000))
    big = provider.deliver("alice", corpus_mod.big_message(size=400000, seed=3))

    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 2}, timeout=30)
    wait_fault(gate, r"size|large|limit|big")
    assert provider.messages("alice") == [big]
    assert served_bodies(gate.pickup(ACCOUNT, PASSWORD)) == sorted(small)
    # Later fetches (the pickup's: login check, first fetch, this one) leave it too.
    wait_dovecot_fetch_done(provider, "alice", 3)
    assert provider.messages("alice") == [big]
    assert gate.db_query("SELECT count(*) FROM message WHERE sha256 = ?", (sha256(big),)) == [(0,)]


def test_worker_killed_while_processing(popgate, provider, corpus):
    """Workers die holding a message: they are replaced, the message arrives.

    The workers are stopped (SIGSTOP) before the fetch, so each is sure to
    hold a job when it is killed; then the fetch stores the messages."""
    provider.add_user("alice", PASSWORD)
    wires = provider.deliver_many("alice", corpus.messages(60, seed=45, max_size=100000))
    workers = popgate.worker_pids()
    assert len(workers) == 2, f"expected 2 workers ([pipeline] workers = 2), found {workers}"
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    try:
        popgate.first_login(ACCOUNT, PASSWORD)
        itutil.wait_until(lambda: popgate.db_states().get("processing", 0) >= 10, 30,
                          what="messages waiting in processing")
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)

    popgate.wait_states({"delivery": len(wires)}, timeout=90)
    failed = [e for e in popgate.events("worker_failed") if e.id != "-"]
    assert failed, f"no worker was seen dying on a message\n{popgate.log_tail()}"
    replaced = popgate.worker_pids()
    assert len(replaced) == 2 and not set(replaced) & set(workers), \
        f"workers not replaced: {workers} -> {replaced}"
    assert served_bodies(popgate.pickup(ACCOUNT, PASSWORD)) == sorted(wires)
    assert_no_duplicates(popgate)


# ------------------------------------------------------------------ scripted

@pytest.fixture
def scripted_gate(make_scripted, make_popgate):
    """A scripted provider as "localhost" (plain POP3) and a popgate using it,
    with an account that exists and has had its first (empty) fetch."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides={"queue": {"max_message_size": 100000}})
    violations = []

    def check_dele(session, uidl):
        # G3: a DELE is sent only for a message popgate has committed.
        rows = gate.db_query("SELECT count(*) FROM message WHERE uidl = ?", (uidl,))
        if rows[0][0] == 0:
            violations.append((session.number, uidl))

    scripted.on_dele = check_dele
    scripted.dele_violations = violations
    gate.first_login(ACCOUNT, PASSWORD)
    wait_sessions(scripted, 2)
    return scripted, gate


def wait_sessions(scripted, count, timeout=30):
    """Waits until COUNT logged-in sessions of alice have ended."""
    itutil.wait_until(lambda: len([s for s in scripted.logged_in_sessions("alice")
                                   if s.ended is not None]) >= count,
                      timeout, what=f"{count} finished provider sessions")


def deles(scripted, since=0):
    return [u for s in scripted.logged_in_sessions("alice")[since:] for u in s.marked]


def run_retr_fault(scripted, gate, corpus, fault, reason, seed):
    """Three messages, FAULT on the second; then healed. Returns the wires."""
    wires = [scripted.deliver("alice", m) for m in corpus.messages(3, seed=seed, max_size=50000)]
    uidls = scripted.uidls("alice")
    scripted.fault, scripted.fault_uidls = fault, {uidls[1]}
    sessions = len(scripted.logged_in_sessions("alice"))

    before = len(fault_lines(gate))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(gate, reason, before)
    assert uidls[1] not in deles(scripted, sessions), "DELE for a message never stored"
    assert uidls[1] in scripted.uidls("alice")
    # The user's next pickup still works while the fault lasts; it gets what
    # was stored before the fault.
    got = served_bodies(gate.pickup(ACCOUNT, PASSWORD))
    assert set(got) <= set(wires)

    scripted.fault = None
    gate.wait_states(nonzero({"delivery": 3 - len(got), "delivered": len(got)}), timeout=30)
    got += served_bodies(gate.pickup(ACCOUNT, PASSWORD))
    assert sorted(got) == sorted(wires)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    assert scripted.dele_violations == []
    assert_no_duplicates(gate)
    assert gate.db_query("SELECT count(*) FROM message") == [(3,)]
    return wires


def test_stall_in_the_middle_of_retr(scripted_gate, corpus):
    scripted, gate = scripted_gate
    run_retr_fault(scripted, gate, corpus, "stall_retr", r"timeout|timed out|silen", seed=46)


def test_connection_cut_inside_a_message(scripted_gate, corpus):
    scripted, gate = scripted_gate
    run_retr_fault(scripted, gate, corpus, "cut_retr",
                   r"clos|eof|cut|reset|connection|end of|short", seed=47)


def test_err_on_retr_and_back_off(scripted_gate, corpus):
    scripted, gate = scripted_gate
    scripted.deliver("alice", corpus.messages(1, seed=48)[0])
    scripted.fault = "err_retr"
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(gate, r"RETR|-ERR|unavailable")
    # Retries follow without a pickup, spaced out (retry_min 1 s, retry_max 5 s).
    time.sleep(8)
    attempts = len(scripted.logged_in_sessions("alice")) - start
    assert 2 <= attempts <= 8, f"{attempts} fetch attempts in 8 s"
    assert deles(scripted, start) == []
    scripted.fault = None
    gate.wait_states({"delivery": 1}, timeout=30)
    assert len(gate.pickup(ACCOUNT, PASSWORD)) == 1
    assert scripted.dele_violations == []


def test_size_over_limit_announced_in_list(scripted_gate, corpus):
    scripted, gate = scripted_gate
    small = scripted.deliver("alice", corpus.messages(1, seed=49, max_size=50000)[0])
    scripted.deliver("alice", corpus.messages(1, seed=50, max_size=50000)[0])
    big_uidl = scripted.uidls("alice")[1]
    scripted.list_sizes[big_uidl] = 5_000_000
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(gate, r"size|large|limit|big")
    gate.wait_states({"delivery": 1}, timeout=30)
    assert big_uidl not in deles(scripted, start)
    assert big_uidl in scripted.uidls("alice")
    assert served_bodies(gate.pickup(ACCOUNT, PASSWORD)) == [small]
    assert scripted.dele_violations == []


def test_body_over_limit_whatever_list_says(scripted_gate, corpus):
    """A provider whose LIST understates a message must not get it past the
    size limit: popgate stops reading at the limit and stores nothing."""
    scripted, gate = scripted_gate
    scripted.deliver("alice", corpus_mod.big_message(size=400000, seed=4))
    big_uidl = scripted.uidls("alice")[0]
    scripted.list_sizes[big_uidl] = 2000
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_fault(gate, r"size|large|limit|big")
    assert big_uidl not in deles(scripted, start)
    assert gate.db_query("SELECT count(*) FROM message") == [(0,)]
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    assert scripted.dele_violations == []


def test_stored_message_still_at_provider_is_deleted_not_stored_again(scripted_gate, corpus):
    """G3: a fetch stores and DELEs, but the provider never reaches its UPDATE
    state (the connection ends at QUIT). The next fetch sees the same UIDLs,
    deletes them there and stores nothing twice."""
    scripted, gate = scripted_gate
    wires = [scripted.deliver("alice", m) for m in corpus.messages(3, seed=51, max_size=50000)]
    uidls = scripted.uidls("alice")
    scripted.fault = "cut_quit"
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_states({"delivery": 3}, timeout=30)
    wait_sessions(scripted, start + 1)
    assert scripted.uidls("alice") == uidls          # nothing was deleted there

    scripted.fault = None
    retrieved_before = sum(len(s.retrieved) for s in scripted.logged_in_sessions("alice"))
    got = served_bodies(gate.pickup(ACCOUNT, PASSWORD))     # its QUIT fetches again
    assert sorted(got) == sorted(wires)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    retrieved_after = sum(len(s.retrieved) for s in scripted.logged_in_sessions("alice"))
    assert retrieved_after == retrieved_before, "a stored message was fetched again"
    assert gate.db_query("SELECT count(*) FROM message") == [(3,)]
    assert_no_duplicates(gate)
    assert scripted.dele_violations == []
    # Their UIDLs are forgotten once the provider no longer lists them: at the
    # first fetch after its deletion (a provider's +OK to QUIT is no proof).
    sessions = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_sessions(scripted, sessions + 1)
    itutil.wait_until(lambda: gate.db_query("SELECT count(*) FROM provider_uidl") == [(0,)],
                      30, what="recorded UIDLs forgotten")
