"""
test_clamd.py — viruses through clamd (issue 10, points 2 and 6), with
Debian's real clamd started here with a signature database made here (the
EICAR string: clamdserver.py), a real Dovecot as the provider and poplib
as the client.

A profile that runs `clamav` has each message streamed to clamd (INSTREAM)
by the daemon before a worker sees it. A virus is quarantined whatever the
score, "virus: NAME" in its verdict (`queue show`); clean mail is delivered
with clamav's result in its X-Popgate-Spam-Reasons. A clamd that is down, or
that accepts and never answers (past [spam] clamd_timeout), holds the
message in processing — not delivered, not lost — and it is scanned again
after [spam] clamd_retry, also after popgate was killed in the middle of a
scan, until clamd answers. `popgatectl filter check` asks clamd too.
"""

import base64
import json
import os

import itutil
from clamdserver import EICAR, VIRUS_NAME, Clamd, SilentClamd
from test_ctl import ctl, ok
from test_profiles import header_block, message

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-clamd-1"


def eicar_message(subject):
    """A MIME message with the EICAR file as a base64 attachment."""
    attachment = base64.b64encode(EICAR).decode()
    return (f"From: stranger@virus.example\nTo: alice@localhost\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@it.example>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=BB\n\n--BB\nContent-Type: text/plain\n\n"
            "Please open the attachment.\n--BB\n"
            "Content-Type: application/octet-stream; name=invoice.com\n"
            "Content-Transfer-Encoding: base64\n\n"
            f"{attachment}\n--BB--\n").encode()


def gate_with_clamav(make_popgate, provider, socket_path, timeout=5):
    """A popgate whose default profile runs clamav through SOCKET_PATH, with
    short waits: a scan may take TIMEOUT s, a failed one is retried after
    1 s (doubling, up to 16 s)."""
    gate = make_popgate(provider=provider, overrides={"spam": {
        "clamd_socket": socket_path, "clamd_timeout": timeout, "clamd_retry": 1}})
    ok(ctl("profile", "set", "default", "clamav", "on", config=gate.config_path))
    return gate


def processing_ids(gate):
    return [r[0] for r in gate.db_query("SELECT id FROM message WHERE state = 'processing'")]


def test_virus_quarantined_clean_delivered(make_popgate, provider, new_dir):
    clamd = Clamd(new_dir("clamd")).start()
    try:
        gate = gate_with_clamav(make_popgate, provider, clamd.socket)
        config = gate.config_path
        provider.add_user("alice", PASSWORD)
        provider.deliver("alice", message("friend@ok.example", "clean"))
        provider.deliver("alice", eicar_message("invoice"))
        gate.first_login(ACCOUNT, PASSWORD)
        gate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)

        (mid,), = gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")
        out = ok(ctl("queue", "show", mid, config=config))
        assert "action         quarantine" in out, out
        assert f"clamav 100.000 x1.000 = 100.000: virus: {VIRUS_NAME}" in out, out
        shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
        clamav = [f for f in shown["verdict"]["filters"] if f["name"] == "clamav"]
        assert clamav == [{"name": "clamav", "status": "ok", "score": 100.0, "weight": 1.0,
                           "points": 100.0, "reason": f"virus: {VIRUS_NAME}"}]
        assert any(mid in e.line for e in gate.events("scanned"))

        # The clean one is served, clamav's word in its headers.
        served = gate.pickup(ACCOUNT, PASSWORD)
        assert len(served) == 1 and b"Subject: clean" in served[0]
        block = header_block(served[0])
        assert "clamav=0.000 x1.000 (no virus found)" in block, block

        # filter check asks clamd too.
        directory = new_dir("check")
        infected = os.path.join(directory, "infected.eml")
        with open(infected, "wb") as f:
            f.write(eicar_message("again"))
        checked = json.loads(ok(ctl("--json", "filter", "check", infected, config=config)))
        assert checked["action"] == "quarantine"
        assert [f["reason"] for f in checked["filters"] if f["name"] == "clamav"] == [
            f"virus: {VIRUS_NAME}"]
        # ... from standard input as well.
        with open(infected) as f:
            done = ctl("--json", "filter", "check", "-", config=config, stdin=f.read())
        assert json.loads(ok(done))["action"] == "quarantine"
    finally:
        clamd.stop()
    # Without clamd, filter check says it could not scan.
    out = ok(ctl("filter", "check", infected, config=config))
    assert "clamav failed: clamd (" in out and "cannot connect to clamd" in out, out


def test_too_large_goes_on_with_a_note(make_popgate, provider, new_dir):
    """Mail over clamd's StreamMaxLength (1 MiB here), which clamd refuses,
    and mail over [spam] clamd_max_size, which is not sent, are delivered
    with "not scanned" as clamav's reason: never held for good."""
    clamd = Clamd(new_dir("clamd"), stream_max_length="1M").start()
    try:
        gate = make_popgate(provider=provider, overrides={"spam": {
            "clamd_socket": clamd.socket, "clamd_timeout": 10, "clamd_retry": 1,
            "clamd_max_size": 3000000}})
        ok(ctl("profile", "set", "default", "clamav", "on", config=gate.config_path))
        provider.add_user("alice", PASSWORD)
        line = "x" * 76 + "\n"
        provider.deliver("alice", message("a@ok.example", "two megabytes",
                                          line * (2 * 1024 * 1024 // len(line))))
        provider.deliver("alice", message("b@ok.example", "four megabytes",
                                          line * (4 * 1024 * 1024 // len(line))))
        gate.first_login(ACCOUNT, PASSWORD)
        gate.wait_states({"delivery": 2}, timeout=60)
        reasons = set()
        for (mid,) in gate.db_query("SELECT id FROM message"):
            shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=gate.config_path)))
            reasons |= {f["reason"] for f in shown["verdict"]["filters"]
                        if f["name"] == "clamav"}
        assert "not scanned: larger than clamd's StreamMaxLength" in reasons, reasons
        assert any(r.startswith("not scanned: ") and r.endswith("over clamd_max_size 3000000")
                   for r in reasons), reasons
        assert not gate.events("scan_failed")
    finally:
        clamd.stop()


def test_clamd_down_holds_then_delivers(make_popgate, provider, new_dir):
    directory = new_dir("clamd")
    clamd = Clamd(directory)
    gate = gate_with_clamav(make_popgate, provider, clamd.socket)
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", message("friend@ok.example", "waiting"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_event("scan_failed", count=2, timeout=30)
    # Held: in processing, never delivered unscanned, never dropped.
    mid, = processing_ids(gate)
    failed = gate.events("scan_failed")
    assert "cannot connect" in failed[0].line and "held in processing" in failed[0].line
    assert gate.db_states() == {"processing": 1}

    # A crash while it is held: still in processing, held again after the start.
    gate.restart(crash=True)
    before = len(gate.events("scan_failed"))
    gate.wait_event("scan_failed", count=before + 1, timeout=30)
    assert gate.message_state(mid) == "processing"

    # clamd comes back: the next retry scans it, and it is delivered.
    clamd.start()
    try:
        gate.wait_message_state(mid, "delivery", timeout=40)
        served = gate.pickup(ACCOUNT, PASSWORD)
        assert len(served) == 1 and b"Subject: waiting" in served[0]
        assert "clamav=0.000 x1.000 (no virus found)" in header_block(served[0])
    finally:
        clamd.stop()


def test_silent_clamd_times_out_then_retried(make_popgate, provider, new_dir):
    directory = new_dir("clamd")
    socket_path = os.path.join(directory, "clamd.sock")
    silent = SilentClamd(socket_path)
    clamd = Clamd(directory, socket_path)
    try:
        gate = gate_with_clamav(make_popgate, provider, socket_path, timeout=1)
        provider.add_user("alice", PASSWORD)
        provider.deliver("alice", eicar_message("slow scan"))
        gate.first_login(ACCOUNT, PASSWORD)
        gate.wait_event("scan_failed", timeout=30)
        assert "no answer within 1 s (clamd_timeout)" in gate.events("scan_failed")[0].line
        mid, = processing_ids(gate)

        # Killed in the middle of a scan (a connection open): the message
        # is still in processing, and scanned again after the start.
        itutil.wait_until(lambda: silent.open > 0 and silent.accepted >= 2, 30,
                          what="a retried scan to be under way")
        gate.kill()
        assert gate.message_state(mid) == "processing"
        silent.stop()
        clamd.start()
        gate.start()
        gate.wait_message_state(mid, "quarantine", timeout=40)
        assert f"virus: {VIRUS_NAME}" in ok(ctl("queue", "show", mid, config=gate.config_path))
    finally:
        silent.stop()
        clamd.stop()
