"""
test_provider_faults.py — providers that break the rules or push the limits
(issue 7, SPEC G3 and G6), played by the scripted provider: listings of
hundreds of thousands of messages, the fetch back-off against pickups, one
UIDL for two messages, DELE acknowledged but never applied, bodies with bare
LF line ends, arguments that would smuggle commands, a provider that drips a
byte a second, and a DNS lookup still pending at SIGTERM.

No assertion is timed: each waits, with a deadline, for the state it checks.
"""

import base64
import poplib
import re
import socket
import threading

import pytest

import itutil
from mailutil import split_trace
from popgate import error_text as poplib_error

ACCOUNT = "alice@localhost"
PASSWORD = "provider-pw-1"


def wait_sessions(scripted, count, user="alice", timeout=30):
    """Waits until COUNT logged-in sessions of USER have ended."""
    itutil.wait_until(lambda: len([s for s in scripted.logged_in_sessions(user)
                                   if s.ended is not None]) >= count,
                      timeout, what=f"{count} finished provider sessions of {user}")


def wait_log(gate, pattern, count=1, timeout=30.0):
    """Waits for COUNT log lines matching PATTERN (a regular expression)."""
    regex = re.compile(pattern)
    try:
        return itutil.wait_until(
            lambda: (lambda found: len(found) >= count and found)(
                [line for line in gate.log_lines() if regex.search(line)]),
            timeout, what=f"{count} log line(s) matching /{pattern}/")
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n--- log ---\n{gate.log_tail()}") from None


def make_gate(make_scripted, make_popgate, overrides=None):
    """A scripted provider as "localhost", alice on it, and a popgate whose
    account for alice has had its first (empty) fetch."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    config = {"queue": {"max_message_size": 100000}}
    for section, keys in (overrides or {}).items():
        config.setdefault(section, {}).update(keys)
    gate = make_popgate(scripted=scripted, overrides=config)
    gate.first_login(ACCOUNT, PASSWORD)
    wait_sessions(scripted, 2)
    return scripted, gate


# ------------------------------------------------------------------ listings

def test_huge_listing_one_summary_line(make_scripted, make_popgate):
    """200,000 listed messages, all announced over the size limit: the fetch
    reads the whole listing, finds each LIST size directly, leaves them all
    there, and says so in one line; another client is served meanwhile."""
    scripted, gate = make_gate(make_scripted, make_popgate,
                               {"fetch": {"max_listed": 200000, "retry_min": 120,
                                          "retry_max": 240}})
    scripted.deliver_bulk("alice", 200000, listed_size=5_000_000)
    lines_before = len(gate.log_lines())

    assert gate.pickup(ACCOUNT, PASSWORD) == []
    # While the fetch works through the listing, a new client is greeted.
    itutil.wait_until(lambda: len(scripted.logged_in_sessions("alice")) >= 3, 30,
                      what="the fetch logged in")
    client = gate.connect()
    assert client.getwelcome().startswith(b"+OK")
    client.quit()

    done = wait_log(gate, r"event=fetch_error account=alice@localhost .*200000 message\(s\) "
                          r"left at the provider", timeout=120)
    assert "and 199997 more" in done[0]
    new = gate.log_lines()[lines_before:]
    mentions = [line for line in new if re.search(r"bulk-|left at the provider", line)]
    assert len(mentions) == 1, f"{len(mentions)} lines about the skipped messages"
    assert len(new) < 50, f"{len(new)} log lines for one fetch"
    assert [c for c in scripted.commands("alice") if c.startswith(("RETR", "DELE"))] == []
    assert scripted.count("alice") == 200000


def test_listing_bounded_by_max_listed(make_scripted, make_popgate, corpus):
    """max_listed = 5 and 12 messages: each fetch takes the first five, says
    the rest waits, and the next fetch follows; all arrive, none twice."""
    scripted, gate = make_gate(make_scripted, make_popgate, {"fetch": {"max_listed": 5}})
    wires = [scripted.deliver("alice", m) for m in corpus.messages(12, seed=71, max_size=20000)]
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_states({"delivery": 12}, timeout=60)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    wait_log(gate, r"12 message\(s\) at the provider; this fetch takes the first 5")
    assert len(gate.db_query("SELECT DISTINCT sha256 FROM message")) == len(wires)


def test_pickups_do_not_bypass_back_off(make_scripted, make_popgate):
    """A provider that refuses the stored password: the pickup's fetch fails
    and backs off; two more pickups in a row cause no provider connection
    within retry_min."""
    scripted, gate = make_gate(make_scripted, make_popgate,
                               {"fetch": {"retry_min": 120, "retry_max": 240}})
    scripted.fault = "wrong_password"
    before = len(scripted.sessions)
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_log(gate, r"event=fetch_error account=alice@localhost .*login refused")
    itutil.wait_until(lambda: len(scripted.sessions) == before + 1
                      and scripted.sessions[-1].ended is not None, 30,
                      what="the failed fetch's session ended")

    for pickups in (1, 2):
        assert gate.pickup(ACCOUNT, PASSWORD) == []
        wait_log(gate, r"event=fetch .*waits \d+ s for its fetch back-off", count=pickups)
    assert len(scripted.sessions) == before + 1, "a pickup hammered the failing provider"


def test_new_password_ends_the_back_off(make_scripted, make_popgate, corpus):
    """The password changed at the provider: fetches with the old one fail and
    back off for retry_min. When the user logs in with the new one (checked
    live, then stored), the fetch that pickup's QUIT asks for starts at once
    instead of waiting out the back-off the old password earned."""
    scripted, gate = make_gate(make_scripted, make_popgate,
                               {"fetch": {"retry_min": 600, "retry_max": 1200}})
    scripted.add_user("alice", "provider-pw-2")     # changed at the provider
    before = len(scripted.sessions)
    assert gate.pickup(ACCOUNT, PASSWORD) == []     # the stored hash still matches
    wait_log(gate, r"event=fetch_error account=alice@localhost .*login refused")
    itutil.wait_until(lambda: len(scripted.sessions) == before + 1
                      and scripted.sessions[-1].ended is not None, 30,
                      what="the failed fetch's session ended")

    scripted.deliver("alice", corpus.messages(1, seed=91, max_size=20000)[0])
    assert gate.pickup(ACCOUNT, "provider-pw-2") == []   # live check, then stored
    wait_log(gate, r"event=credentials_updated account=alice@localhost")
    gate.wait_states({"delivery": 1}, timeout=30)
    assert len(gate.pickup(ACCOUNT, "provider-pw-2")) == 1


# ------------------------------------------------------------------ DELE

def test_provider_ignoring_dele_costs_deles_not_duplicates(make_scripted, make_popgate, corpus):
    """A provider that answers +OK to DELE and QUIT but deletes nothing: three
    fetches store each message exactly once, and DELE is sent again each time."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    wires = [scripted.deliver("alice", m) for m in corpus.messages(3, seed=72, max_size=20000)]
    uidls = scripted.uidls("alice")
    scripted.fault = "ignore_dele"
    start = len(scripted.logged_in_sessions("alice"))
    got = []
    for fetch in range(1, 4):
        got += gate.pickup(ACCOUNT, PASSWORD)       # its QUIT starts the next fetch
        wait_sessions(scripted, start + fetch)
        gate.wait_states({"delivery": 3} if fetch == 1 else {"delivered": 3}, timeout=30)
    sessions = scripted.logged_in_sessions("alice")[start:]
    assert len(sessions) == 3
    for session in sessions:
        assert sorted(session.marked) == sorted(uidls), "DELE not sent again"
    assert sum(len(s.retrieved) for s in sessions) == 3, "a stored message was fetched again"
    assert gate.db_query("SELECT count(*) FROM message") == [(3,)]
    assert scripted.uidls("alice") == uidls
    assert len(got) == 3 and len(wires) == 3


def test_refused_deles_summed_up_and_retried(make_scripted, make_popgate, corpus):
    """A provider that answers -ERR to every DELE: one log line for the fetch,
    not one per message; the next fetch deletes them without retrieving."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    for message in corpus.messages(5, seed=77, max_size=20000):
        scripted.deliver("alice", message)
    scripted.fault = "err_dele"
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_sessions(scripted, start + 1)
    gate.wait_states({"delivery": 5}, timeout=30)
    refused = wait_log(gate, r"event=error account=alice@localhost .*refused 5 DELE")
    assert len([line for line in gate.log_lines() if "DELE" in line]) == len(refused) == 1
    scripted.fault = None
    assert len(gate.pickup(ACCOUNT, PASSWORD)) == 5
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    assert sum(len(s.retrieved) for s in scripted.logged_in_sessions("alice")) == 5
    assert gate.db_query("SELECT count(*) FROM message") == [(5,)]


# ------------------------------------------------------------------ UIDLs

def deles_unretrieved(scripted, user="alice"):
    """DELE commands for a message number the same session never RETRieved."""
    bad = []
    for session in scripted.logged_in_sessions(user):
        retrieved = set()
        for command in session.commands:
            verb, _, arg = command.partition(" ")
            if verb == "RETR":
                retrieved.add(arg)
            elif verb == "DELE" and arg not in retrieved:
                bad.append((session.number, command))
    return bad


def test_duplicated_uidl_loses_no_mail(make_scripted, make_popgate, corpus):
    """Two different messages listed under one UIDL: both are stored, none is
    deleted unretrieved, and the anomaly is logged and shown as the account's
    last error."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    first, second = corpus.messages(2, seed=73, max_size=20000)
    wires = [scripted.deliver("alice", first, uidl="same-uidl"),
             scripted.deliver("alice", second, uidl="same-uidl")]
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_states({"delivery": 2}, timeout=30)
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    assert deles_unretrieved(scripted) == []
    stored = gate.db_query("SELECT sha256 FROM message WHERE uidl = 'same-uidl'")
    assert len(stored) == 2 and stored[0] != stored[1]
    wait_log(gate, r"event=error account=alice@localhost .*provider lists uidl same-uidl twice")
    assert gate.db_query("SELECT last_error FROM account WHERE name = ?", (ACCOUNT,)) == \
        [("provider lists uidl same-uidl twice",)]
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(split_trace(s)[1] for s in served) == sorted(wires)


def test_duplicated_uidl_at_provider_ignoring_dele(make_scripted, make_popgate, corpus):
    """The same two messages stay listed under one UIDL (DELE ignored): later
    fetches retrieve and compare them, store neither twice, delete only what
    is stored."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    scripted.fault = "ignore_dele"
    for message in corpus.messages(2, seed=74, max_size=20000):
        scripted.deliver("alice", message, uidl="same-uidl")
    start = len(scripted.logged_in_sessions("alice"))
    for fetch in range(1, 4):
        gate.pickup(ACCOUNT, PASSWORD)          # its QUIT starts the next fetch
        wait_sessions(scripted, start + fetch)
    assert gate.db_query("SELECT count(*) FROM message") == [(2,)]
    assert deles_unretrieved(scripted) == []
    assert all(len(s.marked) == 2 for s in scripted.logged_in_sessions("alice")[start:])


def test_reused_uidl_with_another_size_is_stored(make_scripted, make_popgate, corpus):
    """A provider that keeps a deleted message's UIDL for a new message (its
    LIST size differs): the new one is retrieved and stored, not deleted as
    if it were the old one."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    scripted.fault = "ignore_dele"
    old, new = corpus.messages(2, seed=75, max_size=20000)
    scripted.deliver("alice", old, uidl="reused")
    start = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_sessions(scripted, start + 1)
    gate.wait_states({"delivery": 1}, timeout=30)
    wire = scripted.replace("alice", "reused", new + b"\nA longer body than before.\n")
    assert len(gate.pickup(ACCOUNT, PASSWORD)) == 1
    wait_sessions(scripted, start + 2)
    gate.wait_states({"delivered": 1, "delivery": 1}, timeout=30)
    assert deles_unretrieved(scripted) == []
    assert [split_trace(s)[1] for s in gate.pickup(ACCOUNT, PASSWORD)] == [wire]


# ------------------------------------------------------------------ line ends

def retr_raw(client, number, max_lines=100000):
    """RETR NUMBER on a logged-in poplib CLIENT, read as bytes: (the +OK
    octet count, the un-stuffed message with its line ends as sent)."""
    client._putcmd(f"RETR {number}")
    status = client.file.readline()
    match = re.match(rb"\+OK (\d+) octets\r\n$", status)
    assert match, f"RETR answered {status!r}"
    raw = b""
    for _ in range(max_lines):
        line = client.file.readline(1 << 22)
        assert line, "connection closed inside RETR"
        if line == b".\r\n":
            return int(match.group(1)), raw
        raw += line[1:] if line.startswith(b".") else line
    raise AssertionError("RETR did not end")


def test_bare_lf_body_served_with_crlf(make_scripted, make_popgate):
    """A provider that sends bare LF line ends: the stored body has CRLF, the
    client gets CRLF lines, and the +OK octet count is the bytes it gets."""
    scripted, gate = make_gate(make_scripted, make_popgate)
    wire = scripted.deliver("alice", b"Subject: bare LF\nFrom: a@example.org\n\nline one\n"
                                     b".dot line\nlast line\n")
    scripted.fault = "bare_lf"
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_states({"delivery": 1}, timeout=30)
    client = gate.login(ACCOUNT, PASSWORD)
    try:
        octets, raw = retr_raw(client, 1)
    finally:
        client.close()
    assert re.search(rb"(?<!\r)\n|\r(?!\n)", raw) is None, "a line end that is not CRLF"
    assert octets == len(raw)
    assert split_trace(raw)[1] == wire
    size = gate.db_query("SELECT body_size FROM message")[0][0]
    assert size == len(wire)


# ------------------------------------------------------------------ commands

def test_password_with_crlf_never_reaches_the_provider(make_scripted, make_popgate):
    """AUTH PLAIN whose decoded password holds CR LF and a command: the client
    gets -ERR; the provider sees no PASS, no AUTH and no smuggled DELE."""
    scripted = make_scripted()
    scripted.add_user("bob", "pw")
    scripted.deliver("bob", b"Subject: keep me\n\nbody\n")
    gate = make_popgate(scripted=scripted)
    client = gate.connect()
    try:
        plain = base64.b64encode(b"\0bob@localhost\0pw\r\nDELE 1").decode()
        with pytest.raises(poplib.error_proto) as refused:
            client._shortcmd(f"AUTH PLAIN {plain}")
        assert poplib_error(refused.value).startswith("-ERR")
    finally:
        client.close()
    commands = scripted.commands()
    assert not [c for c in commands if c.split(" ")[0].upper() in ("PASS", "AUTH", "DELE")], \
        commands
    assert scripted.count("bob") == 1
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]


# ------------------------------------------------------------------ deadlines

def test_dripping_login_checks_do_not_hold_fetch_slots(make_scripted, make_popgate, corpus):
    """Two new users whose provider drips a byte a second after USER hold
    login checks; with max_fetches = 1 a real account's fetch still starts
    while they run, and each check ends at login_check_timeout with
    -ERR [SYS/TEMP] to its client."""
    scripted, gate = make_gate(make_scripted, make_popgate,
                               {"fetch": {"max_fetches": 1},
                                "server": {"login_check_timeout": 20}})
    wires = [scripted.deliver("alice", m) for m in corpus.messages(2, seed=76, max_size=20000)]
    drips = ["carol", "dave"]
    for user in drips:
        scripted.add_user(user, "drip-pw")
    scripted.fault, scripted.fault_users = "drip", set(drips)

    answers = {}

    def try_login(user):
        try:
            gate.login(f"{user}@localhost", "drip-pw", timeout=60).quit()
            answers[user] = "+OK"
        except poplib.error_proto as exc:
            answers[user] = poplib_error(exc)

    threads = [threading.Thread(target=try_login, args=(u,), daemon=True) for u in drips]
    for thread in threads:
        thread.start()

    def dripping():
        with scripted.lock:
            return [s for s in scripted.sessions
                    if any(c.split(" ")[:2] in (["USER", u] for u in drips) for c in s.commands)]

    itutil.wait_until(lambda: len(dripping()) == 2, 30, what="two dripping login checks")
    fetches = len(scripted.logged_in_sessions("alice"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []           # its QUIT asks for a fetch
    gate.wait_states({"delivery": 2}, timeout=60)
    fetch = scripted.logged_in_sessions("alice")[fetches]
    for thread in threads:
        thread.join(90)
    assert sorted(answers) == sorted(drips), answers
    for user in drips:
        assert answers[user].startswith("-ERR [SYS/TEMP]"), answers
    # The provider notices the closed connection at its next byte.
    itutil.wait_until(lambda: all(s.ended is not None for s in dripping()), 30,
                      what="the dripping sessions ended")
    checks = dripping()
    assert fetch.started < min(s.ended for s in checks), \
        "the fetch waited for the login checks to end"
    wait_log(gate, r"took longer than 20 s", count=2)
    assert len(wires) == 2


def test_dripping_provider_fetch_ends_at_deadline(make_scripted, make_popgate):
    """A fetch whose provider drips a byte a second ends at [fetch] deadline
    as a failure with back-off, though it is never silent for long."""
    scripted, gate = make_gate(make_scripted, make_popgate, {"fetch": {"deadline": 4}})
    scripted.deliver("alice", b"Subject: waits\n\nbody\n")
    scripted.fault = "drip"
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_log(gate, r"event=fetch_error account=alice@localhost .*passed its deadline of 4 s"
                   r".*retry in")
    assert scripted.count("alice") == 1


# ------------------------------------------------------------------ shutdown

def test_sigterm_while_resolving_exits_cleanly(make_popgate):
    """A login check waits on a name server that never answers; SIGTERM then
    answers the waiting client -ERR [SYS/TEMP] and ends popgate with status 0
    and no sanitizer report (the lookup is not leaked)."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind((itutil.LOOPBACK, 0))
    try:
        address = f"{itutil.LOOPBACK}:{silent.getsockname()[1]}"
        gate = make_popgate(overrides={
            "server": {"nameservers": address},
            "provider mail.silent.test": {"port": 110, "tls": "none"}})
        client = gate.connect()
        try:
            client._putcmd("USER frank@mail.silent.test")
            assert client._getresp().startswith(b"+OK")
            client._putcmd("PASS frank-pw")
            # The query reaching the silent server shows the lookup is pending.
            silent.settimeout(30)
            query, _ = silent.recvfrom(4096)
            assert b"silent" in query.lower()
            gate.stop()
            client.sock.settimeout(10)
            reply = client.file.readline()
            assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        finally:
            client.close()
        assert gate.bad_exits == [], gate.stderr_tail()
        assert gate.sanitizer_reports() == [], gate.stderr_tail()
    finally:
        silent.close()


def test_fetch_deadline_keeps_what_was_stored(make_scripted, make_popgate, corpus):
    """The second of three messages drips a byte a second: the fetch ends at
    its deadline with the first stored and kept, nothing deleted that was
    not stored; once healed, all three arrive exactly once."""
    scripted, gate = make_gate(make_scripted, make_popgate, {"fetch": {"deadline": 4}})
    wires = [scripted.deliver("alice", m) for m in corpus.messages(3, seed=78, max_size=20000)]
    uidls = scripted.uidls("alice")
    scripted.fault, scripted.fault_uidls = "drip_retr", {uidls[1]}
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    wait_log(gate, r"event=fetch_error account=alice@localhost .*passed its deadline of 4 s"
                   r" in state retr")
    assert gate.db_query("SELECT uidl FROM message") == [(uidls[0],)]
    assert scripted.uidls("alice") == uidls
    scripted.fault = None
    gate.wait_states({"delivery": 3}, timeout=60)      # the back-off retry
    itutil.wait_until(lambda: scripted.count("alice") == 0, 30, what="provider emptied")
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(split_trace(m)[1] for m in served) == sorted(wires)
    # Only the first message, stored by the fetch that hit its deadline, is
    # deleted by later fetches without being retrieved again.
    assert {command for _, command in deles_unretrieved(scripted)} <= {"DELE 1"}
    assert gate.db_query("SELECT count(*) FROM message") == [(3,)]


def memory_holds(pid, needle, region_max=1 << 28):
    """Whether the process PID's readable, writable memory holds NEEDLE."""
    found = False
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if not fields[1].startswith("rw") or end - start > region_max:
                continue
            try:
                mem.seek(start)
                found = needle in mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            if found:
                return True
    return False


def test_pass_line_to_provider_is_wiped(make_scripted, make_popgate):
    """The PASS line popgate sends the provider is wiped once written: after a
    login checked live (the client uses AUTH PLAIN, so no PASS line of its own
    is in popgate's memory) and the fetch that follows, the daemon's memory
    holds no "PASS <password>"."""
    password = "Wipe-Me-7f3a9c51"
    scripted = make_scripted()
    scripted.add_user("gina", password)
    gate = make_popgate(scripted=scripted)
    client = gate.connect()
    try:
        plain = base64.b64encode(f"\0gina@localhost\0{password}".encode()).decode()
        assert client._shortcmd(f"AUTH PLAIN {plain}").startswith(b"+OK")
        client.quit()
    finally:
        client.close()
    wait_sessions(scripted, 2, user="gina")       # the login check and the fetch
    assert scripted.commands("gina").count("PASS ***") == 2
    assert memory_holds(gate.pid, b"gina@localhost")
    assert not memory_holds(gate.pid, f"PASS {password}".encode()), \
        "the PASS line sent to the provider is still in popgate's memory"
