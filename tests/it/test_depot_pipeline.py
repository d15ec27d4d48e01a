"""
test_depot_pipeline.py — the daemon archives every message passing popgate
in MailDepot (issue 11 point 1, SPEC A1), with a real Dovecot as the
provider, poplib as the client and an aiosmtpd sink as the relay's MX.

With [depot] enabled a judged message is archived in DATA/depot before it
leaves processing: fetched mail with direction "in", mail submitted through
the relay "out", each under the source "popgate:<spool id>" with its owners
(the users of its addresses). A depot that cannot be written holds the
message in processing (event archive_failed), never delivered unarchived;
repaired, the held message is archived and delivered. A SIGKILL while
batches are being archived loses nothing and archives nothing twice.
"""

import json
import os
import smtplib
import sqlite3

import itutil
from mailutil import split_trace
from test_ctl import ctl, ok
from test_relay_delivery import relay_env  # noqa: F401 (a fixture)

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
USER_ADDRESS = "alice+localhost@pop3proxy.reddoxx"  # U2: the user's primary address
PASSWORD = "alice-depot-secret-1"

DEPOT = {"enabled": "yes", "retry": 1, "checkpoint_interval": 1, "batch": 16}


def message(subject, body="Hello, archive.\n"):
    return (f"From: Stranger <stranger@elsewhere.example>\nTo: alice@localhost\n"
            f"Subject: {subject}\nDate: Wed, 02 Dec 2026 10:00:00 +0000\n"
            f"Message-ID: <{subject.replace(' ', '.')}@it.example>\n\n{body}").encode()


def depot_dir(gate):
    return os.path.join(gate.data_dir, "depot")


def depot_query(gate, sql, params=()):
    """Rows of SQL on the depot's index (read-only; [] before it exists)."""
    path = os.path.join(depot_dir(gate), "index.db")
    if not os.path.isfile(path):
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        db.close()


def archived(gate):
    """{source: direction} of every archived message."""
    return dict(depot_query(gate, "SELECT source, direction FROM message"))


def owners(gate, message_id):
    return sorted(depot_query(
        gate, "SELECT o.address, coalesce(o.user, '') FROM message_owner o JOIN message m"
        " ON m.seq = o.seq WHERE m.source = ?", (f"popgate:{message_id}",)))


def verify_intact(gate):
    """`popgatectl depot verify` finds the chain, the index and the blobs intact."""
    report = json.loads(ok(ctl("--json", "depot", "verify", config=gate.config_path)))
    assert report["intact"] is True and report["broken_seq"] is None, report
    return report


def search(gate, *args):
    """`popgatectl depot search ARGS` (JSON): the messages found."""
    return json.loads(ok(ctl("--json", "depot", "search", *args, config=gate.config_path)))


def depot_stats(gate):
    return json.loads(ok(ctl("--json", "depot", "stats", config=gate.config_path)))


def depot_gate(make_popgate, provider, start=True, **depot):
    return make_popgate(provider=provider, overrides={"depot": {**DEPOT, **depot}},
                        start=start)


def message_ids(gate, state=None):
    sql = "SELECT id FROM message" + (" WHERE state = ?" if state else "")
    return [r[0] for r in gate.db_query(sql, (state,) if state else ())]


def test_fetched_mail_archived_before_delivery(make_popgate, provider):
    gate = depot_gate(make_popgate, provider)
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    original = message("kept for years")
    provider.deliver("alice", original)
    gate.pickup(ACCOUNT, PASSWORD)  # QUIT fetches
    gate.wait_states({"delivery": 1}, timeout=60)
    mid, = message_ids(gate)

    assert archived(gate) == {f"popgate:{mid}": "in"}
    # The account's user, through the address a user's search looks by.
    assert owners(gate, mid) == [(USER_ADDRESS, USER)]
    # Archived before it became deliverable: the archive's event comes first.
    lines = [e.line for e in gate.events() if e.get("id") == mid]
    archived_at = next(i for i, line in enumerate(lines) if "event=archived" in line)
    moved_at = next(i for i, line in enumerate(lines) if "to=delivery" in line)
    assert archived_at < moved_at, lines
    seq, = depot_query(gate, "SELECT seq FROM message WHERE source = ?", (f"popgate:{mid}",))
    processed, = [e for e in gate.events("processed") if e.get("id") == mid]
    assert f"archived as depot entry {seq[0]}" in processed.line

    # The fields the worker extracted are indexed.
    assert depot_query(gate, "SELECT sender, subject, message_id FROM message") == [
        ("stranger@elsewhere.example", "kept for years", "kept.for.years@it.example")]
    # The user finds it by its subject; another user does not.
    found, = search(gate, "--user", USER, "--subject", "kept years")
    assert found["source"] == f"popgate:{mid}" and found["direction"] == "in"
    assert found["sender"] == "stranger@elsewhere.example"
    assert found["message_id"] == "kept.for.years@it.example"
    ok(ctl("user", "add", "mallory", config=gate.config_path))
    assert search(gate, "--user", "mallory", "--subject", "kept years") == []

    served, = gate.pickup(ACCOUNT, PASSWORD)
    assert split_trace(served)[1] == original.replace(b"\n", b"\r\n")
    gate.wait_event("depot_checkpoint", timeout=30)
    assert verify_intact(gate)["checkpoints"] >= 1


def test_archived_not_moved_is_not_archived_twice(make_popgate, provider):
    """A crash after the archive's commit and before the move: the message
    is still in processing at the start, judged again, finds its entry by
    its source and is delivered, archived once."""
    gate = depot_gate(make_popgate, provider)
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver("alice", message("between two steps"))
    gate.pickup(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)
    mid, = message_ids(gate)
    (seq,), = depot_query(gate, "SELECT seq FROM message")
    gate.kill()
    gate.db_write("UPDATE message SET state = 'processing' WHERE id = ?", (mid,))
    gate.start()
    gate.wait_message_state(mid, "delivery", timeout=60)
    assert depot_query(gate, "SELECT seq, source FROM message") == [(seq, f"popgate:{mid}")]
    processed = [e for e in gate.events("processed") if e.get("id") == mid]
    assert len(processed) == 2
    assert f"archived as depot entry {seq}" in processed[1].line
    served, = gate.pickup(ACCOUNT, PASSWORD)
    assert b"Subject: between two steps" in served
    verify_intact(gate)


def test_relayed_mail_archived_out(relay_env):  # noqa: F811
    gate = relay_env.gate
    gate.reconfigure({"depot": DEPOT})
    gate.restart()
    ok(ctl("user", "add", "alice", config=gate.config_path))
    ok(ctl("address", "add", "alice@office.test", "alice", config=gate.config_path))
    body = (b"From: Alice <alice@office.test>\r\nTo: dave@mail.test\r\n"
            b"Subject: the offer\r\nMessage-ID: <offer@office.test>\r\n\r\nSigned, Alice\r\n")
    with smtplib.SMTP(itutil.LOOPBACK, gate.config["smtp"]["port"], timeout=30) as client:
        client.sendmail("alice@office.test", ["dave@mail.test"], body)
    itutil.wait_until(lambda: relay_env.mx.received("dave@mail.test") == 1, timeout=60,
                      what="the relayed message at the MX")
    mid, = message_ids(gate)
    assert archived(gate) == {f"popgate:{mid}": "out"}
    assert owners(gate, mid) == [("alice@office.test", "alice")]
    assert depot_query(gate, "SELECT subject FROM message") == [("the offer",)]
    found, = search(gate, "--user", "alice", "--direction", "out")
    assert found["subject"] == "the offer" and found["recipients"] == ["dave@mail.test"]
    verify_intact(gate)


def test_unwritable_depot_holds_then_delivers(make_popgate, provider):
    gate = depot_gate(make_popgate, provider, start=False)
    # A file where the depot folder belongs: nothing can be archived (this
    # holds for root too, unlike a chmod).
    os.makedirs(gate.data_dir, exist_ok=True)
    with open(depot_dir(gate), "w") as f:
        f.write("not a folder\n")
    gate.start()
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver("alice", message("held back"))
    assert gate.pickup(ACCOUNT, PASSWORD) == []
    gate.wait_event("archive_failed", count=2, timeout=60)
    mid, = message_ids(gate)
    failed = gate.events("archive_failed")
    assert all(e.get("id") == mid for e in failed)
    assert "held in processing" in failed[0].line
    assert gate.db_states() == {"processing": 1}
    listed = ok(ctl("queue", "list", "--state", "processing", config=gate.config_path))
    assert mid in listed
    assert gate.pickup(ACCOUNT, PASSWORD) == []  # never delivered unarchived

    # A crash while held: still held after the start, never delivered.
    gate.restart(crash=True)
    before = len(gate.events("archive_failed"))
    gate.wait_event("archive_failed", count=before + 1, timeout=60)
    assert gate.message_state(mid) == "processing"

    # Repaired: the next retry archives it, once, and it is delivered.
    os.unlink(depot_dir(gate))
    gate.wait_message_state(mid, "delivery", timeout=60)
    assert archived(gate) == {f"popgate:{mid}": "in"}
    served, = gate.pickup(ACCOUNT, PASSWORD)
    assert b"Subject: held back" in served
    verify_intact(gate)


def test_sigkill_while_archiving_loses_nothing(make_popgate, provider):
    count = 300
    gate = depot_gate(make_popgate, provider, batch=8)
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver_many("alice", [message(f"batch {i}", body=f"Number {i}.\n" * 40)
                                    for i in range(count)])
    gate.pickup(ACCOUNT, PASSWORD)
    # Killed once archiving is under way and before it is done.
    itutil.wait_until(lambda: len(archived(gate)) >= 8, timeout=120,
                      what="the first batches archived")
    assert len(archived(gate)) < count
    gate.kill()
    gate.start()
    served = gate.pickup(ACCOUNT, PASSWORD)  # fetches what the first run left

    def handed_out():
        states = gate.db_states(ACCOUNT)
        return states.get("delivery", 0) + states.get("delivered", 0)
    itutil.wait_until(lambda: handed_out() >= count, timeout=180,
                      what="every message deliverable")
    assert sum(gate.db_states(ACCOUNT).values()) == count

    ids = message_ids(gate)
    sources = depot_query(gate, "SELECT source FROM message")
    assert len(sources) == count  # each message archived exactly once
    assert sorted(s for s, in sources) == sorted(f"popgate:{i}" for i in ids)
    assert depot_stats(gate)["messages"] == count
    assert verify_intact(gate)["entries"] == count
    served += gate.pickup(ACCOUNT, PASSWORD)
    subjects = sorted(line for m in served for line in m.split(b"\r\n")
                      if line.startswith(b"Subject: batch "))
    assert subjects == sorted(f"Subject: batch {i}".encode() for i in range(count))


def test_user_without_a_seat_is_not_archived(make_popgate, provider):
    """U3: a user without a seat gets mail unfiltered and unarchived, as its
    X-Popgate-Unfiltered header says; a user with one has it archived."""
    gate = depot_gate(make_popgate, provider)
    ok(ctl("seat", "set", "1", config=gate.config_path))
    provider.add_user("alice", PASSWORD)
    provider.add_user("bob", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)  # takes the one seat
    gate.first_login_fetched("bob@localhost", PASSWORD)
    provider.deliver("alice", message("for alice"))
    provider.deliver("bob", message("for bob"))
    gate.pickup(ACCOUNT, PASSWORD)
    gate.pickup("bob@localhost", PASSWORD)
    gate.wait_states({"delivery": 2}, timeout=60)
    alice_id, = [i for i, in gate.db_query(
        "SELECT m.id FROM message m JOIN account a ON a.id = m.account_id"
        " WHERE a.name = ?", (ACCOUNT,))]
    assert archived(gate) == {f"popgate:{alice_id}": "in"}
    served, = gate.pickup("bob@localhost", PASSWORD)
    assert b"X-Popgate-Unfiltered:" in served


def test_depot_off_archives_nothing(make_popgate, provider):
    gate = make_popgate(provider=provider)
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver("alice", message("not archived"))
    gate.pickup(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)
    assert not os.path.exists(depot_dir(gate))
    assert not gate.events("archived")
