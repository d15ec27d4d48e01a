"""
test_ciss_policy.py — challenge-response's policy (issue 12, points 1-3 and
5): a real Dovecot as the provider, dnsmasq serving sender.test's SPF
record, popgate fetching through its workers and deciding in its writer.

CISS applies once the pseudo-domain (a Local Domain by itself, G5) is chosen
in the CISS settings and the default profile challenges (C2). An unknown,
authenticated sender's message is not served and stays `challenged`, with a
challenge recorded and its mail queued; a correspondent's, a trusted
sender's and an allow-listed sender's are delivered. Each G4 case lands in
the quarantine, `queue show` giving the reason: a null sender, Auto-
Submitted, Precedence bulk, List-Id, our own challenge, SPF failing, no
authentication, a sender challenged within the period, the per-user cap.
Held messages expire after hold-days to the quarantine or away. The
popgatectl commands: domain, ciss show|set|trust|untrust|list|pending.
"""

import json
import os
import secrets

import pytest

import itutil
from dnsserver import Dnsmasq
from test_ctl import ctl, ok, table_rows
from test_profiles import refused

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
PASSWORD = "alice-secret-ciss-1"
PSEUDO = "pop3proxy.reddoxx"
SENDER_ADDRESS = "192.0.2.25"   # in sender.test's SPF record
FORGER_ADDRESS = "203.0.113.66"
DAY = 86400


def mail(sender, subject, return_path=None, extra="", via=SENDER_ADDRESS):
    """A message from SENDER as the provider's MX stores it: its Return-Path
    (SENDER's by default; "" for none at all), the Received line from VIA,
    EXTRA header lines."""
    path = f"<{sender}>" if return_path is None else return_path
    head = f"Return-Path: {path}\r\n" if path != "" else ""
    return (f"{head}Received: from mail.example.net (mail.example.net [{via}])\r\n"
            f"\tby mx.provider.test with ESMTPS id 4Zx1; Wed, 02 Dec 2026 10:00:01 +0000\r\n"
            f"From: <{sender}>\r\nTo: alice@localhost\r\nSubject: {subject}\r\n{extra}"
            f"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@it.example>\r\n\r\n"
            f"Hello Alice,\r\n\r\nthis is {subject}.\r\n").encode()


@pytest.fixture
def ciss_gate(it_root, make_popgate, provider):
    directory = os.path.join(it_root, "ciss-" + secrets.token_hex(4))
    os.makedirs(directory)
    dns = Dnsmasq(directory, {}, txt={
        "sender.test": [[f"v=spf1 ip4:{SENDER_ADDRESS} -all"]],
        "other.test": [[f"v=spf1 ip4:{SENDER_ADDRESS} -all"]],
    }).start()
    gate = make_popgate(provider=provider, overrides={"server": {"nameservers": dns.address}})
    config = gate.config_path
    ok(ctl("ciss", "set", "domains", PSEUDO, config=config))
    ok(ctl("profile", "set", "default", "challenge", "yes", config=config))
    provider.add_user("alice", PASSWORD)
    yield gate
    gate.stop()
    dns.stop()


def fetched(gate, provider, messages, states):
    """Delivers MESSAGES to alice at the provider, has popgate fetch them
    (alice's first login) and waits for alice's messages to reach STATES."""
    for data in messages:
        provider.deliver("alice", data)
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states(states, account=ACCOUNT, timeout=90)
    gate.wait_fetch_done(ACCOUNT)


def by_subject(gate):
    """{subject: (id, state)} of alice's fetched messages, read from the
    spool (the store keeps no subject)."""
    out = {}
    rows = gate.db_query("SELECT m.id, m.state FROM message m JOIN account a"
                         " ON a.id = m.account_id WHERE a.name = ?", (ACCOUNT,))
    for mid, state in rows:
        with open(os.path.join(gate.data_dir, "spool", mid[:2], mid), "rb") as f:
            head = f.read().split(b"\r\n\r\n", 1)[0].decode()
        subject = next(line for line in head.split("\r\n") if line.startswith("Subject: "))
        out[subject[len("Subject: "):]] = (mid, state)
    return out


def logged(gate, text):
    itutil.wait_until(lambda: any(text in line for line in gate.log_lines()), 30,
                      what=f"the log line {text!r}")


def ciss_reason(gate, mid):
    """The action and the last ciss line of the message's verdict, as queue
    show --json gives them (an expired hold adds a line to the first)."""
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=gate.config_path)))
    lines = [f for f in shown["verdict"]["filters"] if f["name"] == "ciss"]
    assert lines, shown
    return shown["verdict"]["action"], lines[-1]["reason"]


def test_unknown_challenged_known_delivered(ciss_gate, provider):
    gate, config = ciss_gate, ciss_gate.config_path
    # Known: a correspondent (learnt from relayed mail), a sender alice
    # trusts, an allow-listed one.
    user_id = gate.db_query("SELECT id FROM user WHERE name = ?", (USER,))
    assert user_id == [], "alice is made at her first login"
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    (user_id,), = gate.db_query("SELECT id FROM user WHERE name = ?", (USER,))
    gate.db_write("INSERT INTO correspondent (user_id, address, first_at, last_at)"
                  " VALUES (?, 'pen@sender.test', 1, 1)", (user_id,))
    ok(ctl("ciss", "trust", USER, "Tim@Sender.test", config=config))
    ok(ctl("sender", "add", "allow", "amy@sender.test", config=config))
    for name in ("pen", "tim", "amy", "kim"):
        provider.deliver("alice", mail(f"{name}@sender.test", f"from {name}"))
    fetches = len(gate.fetches_done(ACCOUNT))
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert served == []
    gate.wait_fetch_done(ACCOUNT, fetches + 1)
    gate.wait_states({"delivery": 3, "challenged": 1}, account=ACCOUNT, timeout=90)
    messages = by_subject(gate)
    assert {s: state for s, (_, state) in messages.items()} == {
        "from pen": "delivery", "from tim": "delivery", "from amy": "delivery",
        "from kim": "challenged"}
    held = messages["from kim"][0]

    # The unknown sender's message is not served; the others are.
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(b"Subject: from kim" in m for m in served) == [False, False, False]
    assert gate.message_state(held) == "challenged"

    # Its challenge: recorded for alice, naming her provider address and the
    # subject, and its mail queued for the relay from the null sender.
    assert gate.db_query("SELECT user_id, sender, recipient, subject, message_id,"
                         " answered_at FROM ciss_challenge") == [
        (user_id, "kim@sender.test", ACCOUNT, "from kim", held, None)]
    assert ciss_reason(gate, held) == ("challenge",
                                       "challenged: a challenge goes to kim@sender.test")
    gate.wait_event("challenge", timeout=30)
    (submitted,), = gate.db_query("SELECT count(*) FROM message WHERE source = 'submitted'")
    assert submitted == 1
    pending = json.loads(ok(ctl("--json", "ciss", "pending", config=config)))
    assert [(p["id"], p["user"], p["sender"]) for p in pending] == [
        (held, USER, "kim@sender.test")]
    listing = json.loads(ok(ctl("--json", "queue", "list", "--state", "challenged",
                                config=config)))
    assert [m["id"] for m in listing] == [held]

    # A second message from kim joins the open challenge: none is sent twice.
    provider.deliver("alice", mail("kim@sender.test", "again from kim"))
    fetches = len(gate.fetches_done(ACCOUNT))
    gate.pickup(ACCOUNT, PASSWORD)
    gate.wait_fetch_done(ACCOUNT, fetches + 1)
    gate.wait_states({"delivered": 3, "challenged": 2}, account=ACCOUNT, timeout=90)
    again = by_subject(gate)["again from kim"][0]
    (challenge_id,), = gate.db_query("SELECT id FROM ciss_challenge")
    assert ciss_reason(gate, again) == (
        "challenge", f"held with the open challenge {challenge_id} to kim@sender.test")
    assert gate.db_query("SELECT count(*) FROM ciss_challenge") == [(1,)]

    # ciss list: the trusted sender and the correspondent.
    known = json.loads(ok(ctl("--json", "ciss", "list", USER, config=config)))
    assert sorted((k["sender"], k["known_by"]) for k in known) == [
        ("pen@sender.test", "correspondent"), ("tim@sender.test", "admin")]
    # The administrator releases one held message by hand, then trusts kim
    # for alice: what still waits for kim's answer goes to delivery.
    ok(ctl("queue", "release", again, config=config))
    assert gate.message_state(again) == "delivery"
    trusted = json.loads(ok(ctl("--json", "ciss", "trust", USER, "kim@sender.test",
                                config=config)))
    assert (trusted["trusted"], trusted["released"]) == (True, 1)
    assert gate.message_state(held) == "delivery"
    assert json.loads(ok(ctl("--json", "ciss", "pending", config=config))) == []
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(b"Subject: from kim\r\n" in m for m in served) == [False, True]
    assert gate.running


G4_CASES = [
    # (subject, message, the reason queue show gives)
    ("null sender", dict(return_path="<>"), "no challenge: null sender (Return-Path <>)"),
    ("no return path", dict(return_path=""),
     "no challenge: no usable envelope sender (Return-Path)"),
    ("vacation", dict(extra="Auto-Submitted: auto-replied\r\n"),
     "no challenge: automatic mail (Auto-Submitted)"),
    ("newsletter", dict(extra="Precedence: bulk\r\n"),
     "no challenge: bulk mail (Precedence bulk, list or junk)"),
    ("list post", dict(extra="List-Id: <team.lists.sender.test>\r\n"),
     "no challenge: mailing-list mail (List-Id)"),
    ("a challenge", dict(extra="X-Popgate-Challenge: 12\r\n"),
     "no challenge: the message is a challenge itself (X-Popgate-Challenge)"),
    ("forged", dict(via=FORGER_ADDRESS), "no challenge: SPF fails for the sender's domain"),
]


def test_g4_cases_quarantined_with_reason(ciss_gate, provider):
    gate, config = ciss_gate, ciss_gate.config_path
    messages = [mail(f"s{n}@sender.test", subject, **kwargs)
                for n, (subject, kwargs, _) in enumerate(G4_CASES)]
    # No SPF record at all: nothing authenticates the From domain.
    messages.append(mail("nobody@unknown.test", "unauthenticated"))
    fetched(gate, provider, messages, {"quarantine": len(messages)})
    found = by_subject(gate)
    for subject, _, reason in G4_CASES:
        mid, state = found[subject]
        assert state == "quarantine"
        assert ciss_reason(gate, mid) == ("quarantine", reason), subject
    assert ciss_reason(gate, found["unauthenticated"][0]) == (
        "quarantine", "no challenge: the From domain is not authenticated (no SPF pass aligned "
        "with it, no aligned DKIM pass)")
    out = ok(ctl("queue", "show", found["forged"][0], config=config))
    assert "no challenge: SPF fails for the sender's domain" in out, out
    # Not one challenge was made.
    assert gate.db_query("SELECT count(*) FROM ciss_challenge") == [(0,)]
    # Released, it is served with the action it got, not the challenge.
    ok(ctl("queue", "release", found["list post"][0], config=config))
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: list post\r\n" in served[0]
    assert b"X-Popgate-Spam-Status: No, action=quarantine\r\n" in served[0]
    # filter check explains the same offline, as alice's mail.
    path = os.path.join(gate.dir, "list-post.eml")
    with open(path, "wb") as f:
        f.write(messages[4])
    checked = json.loads(ok(ctl("--json", "filter", "check", "--user", USER, "--provider",
                                "localhost", path, config=config)))
    assert checked["action"] == "quarantine", checked
    assert [f["reason"] for f in checked["filters"] if f["name"] == "ciss"] == [
        "no challenge: mailing-list mail (List-Id)"]
    with open(path, "wb") as f:
        f.write(mail("new@sender.test", "a new sender"))
    checked = json.loads(ok(ctl("--json", "filter", "check", "--user", USER, "--provider",
                                "localhost", path, config=config)))
    assert checked["action"] == "challenge", checked
    assert gate.db_query("SELECT count(*) FROM message WHERE source = 'submitted'") == [(0,)]


def test_period_and_user_cap(ciss_gate, provider):
    gate, config = ciss_gate, ciss_gate.config_path
    ok(ctl("ciss", "set", "cap-user-hour", "2", config=config))
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    (user_id,), = gate.db_query("SELECT id FROM user WHERE name = ?", (USER,))
    # Kim was challenged two days ago; that challenge's link has expired.
    gate.db_write("INSERT INTO ciss_challenge (user_id, sender, recipient, subject, nonce,"
                  " created_at, expires_at) VALUES (?, 'kim@sender.test', ?, 'old', 'x',"
                  " strftime('%s','now') - 2 * 86400, strftime('%s','now') - 86400)",
                  (user_id, ACCOUNT))
    provider.deliver("alice", mail("kim@sender.test", "kim within the period"))
    for name in ("ann", "bea", "cid"):
        provider.deliver("alice", mail(f"{name}@sender.test", f"from {name}"))
    fetches = len(gate.fetches_done(ACCOUNT))
    gate.pickup(ACCOUNT, PASSWORD)
    gate.wait_fetch_done(ACCOUNT, fetches + 1)
    gate.wait_states({"challenged": 2, "quarantine": 2}, account=ACCOUNT, timeout=90)
    found = by_subject(gate)
    assert ciss_reason(gate, found["kim within the period"][0]) == (
        "quarantine", "no challenge: kim@sender.test was challenged within the last 7 days")
    capped = [s for s in ("from ann", "from bea", "from cid") if found[s][1] == "quarantine"]
    assert len(capped) == 1
    assert ciss_reason(gate, found[capped[0]][0]) == (
        "quarantine", "no challenge: the cap of 2 challenges per hour for this user is reached")


@pytest.mark.parametrize("expiry", ["quarantine", "delete"])
def test_held_messages_expire(ciss_gate, provider, expiry):
    gate, config = ciss_gate, ciss_gate.config_path
    ok(ctl("ciss", "set", "hold-days", "3", config=config))
    ok(ctl("ciss", "set", "hold-expiry", expiry, config=config))
    fetched(gate, provider, [mail("kim@sender.test", "old"), mail("tom@sender.test", "young")],
            {"challenged": 2})
    found = by_subject(gate)
    old, young = found["old"][0], found["young"][0]
    gate.db_write("UPDATE message SET state_changed_at = state_changed_at - ? WHERE id = ?",
                  (4 * DAY, old))
    gate.restart()
    if expiry == "quarantine":
        gate.wait_message_state(old, "quarantine", timeout=30)
        assert ciss_reason(gate, old)[1] == ("no answer to the challenge within 3 days: to the "
                                             "quarantine")
        logged(gate, "quarantined 1 message(s) held for a challenge's answer for 3 days")
    else:
        gate.wait_message_state(old, None, timeout=30)
        logged(gate, "removed 1 message(s) held for a challenge's answer for 3 days")
        itutil.wait_until(
            lambda: not os.path.exists(os.path.join(gate.data_dir, "spool", old[:2], old)), 30,
            what=f"the spool file of {old} to go")
    assert gate.message_state(young) == "challenged"


def test_domains_and_settings_cli(ciss_gate):
    config = ciss_gate.config_path
    # The pseudo-domain is a Local Domain by itself (G5): built in, CISS on.
    listed = json.loads(ok(ctl("--json", "domain", "list", config=config)))
    assert listed == [{"domain": PSEUDO, "builtin": True, "added": None, "ciss": True}]
    refused(ctl("domain", "del", PSEUDO, config=config), "cannot be deleted")
    refused(ctl("domain", "add", PSEUDO, config=config), "a Local Domain by itself")
    ok(ctl("domain", "add", "Example.ORG", config=config))
    refused(ctl("domain", "add", "example.org", config=config), "already")
    refused(ctl("domain", "add", "not a domain", config=config), "not a valid domain")
    rows = table_rows(ok(ctl("domain", "list", config=config)))
    assert rows[0] == ["DOMAIN", "ADDED", "NOTE"]
    assert rows[1] == [PSEUDO, "-", "built in: the pseudo-domain; CISS applies"]
    assert rows[2][0] == "example.org"

    refused(ctl("ciss", "set", "domains", "elsewhere.net", config=config), "not a Local Domain")
    ok(ctl("ciss", "set", "domains", PSEUDO, "example.org", config=config))
    refused(ctl("domain", "del", "example.org", config=config), "ciss set domains")
    for args in (("period", "3"), ("cap-hour", "50"), ("cap-user-hour", "5"),
                 ("hold-days", "10"), ("hold-expiry", "delete"), ("link-days", "2")):
        ok(ctl("ciss", "set", *args, config=config))
    assert ctl("ciss", "set", "cap-hour", "0", config=config).returncode == 1
    assert ctl("ciss", "set", "hold-expiry", "keep", config=config).returncode == 2
    assert ctl("ciss", "set", "speed", "1", config=config).returncode == 2
    shown = json.loads(ok(ctl("--json", "ciss", "show", config=config)))
    assert shown == {"domains": [PSEUDO, "example.org"], "period": 3, "cap-hour": 50,
                     "cap-user-hour": 5, "hold-days": 10, "hold-expiry": "delete",
                     "link-days": 2}
    assert "hold-expiry    delete" in ok(ctl("ciss", "show", config=config))
    ok(ctl("ciss", "set", "domains", config=config))
    assert "(none: CISS is off)" in ok(ctl("ciss", "show", config=config))
    ok(ctl("domain", "del", "example.org", config=config))

    # Trust and untrust, for a user that exists.
    ok(ctl("user", "add", "bob", config=config))
    refused(ctl("ciss", "trust", "nobody", "joe@example.net", config=config), "no user nobody")
    refused(ctl("ciss", "trust", "bob", "not-an-address", config=config), "not a valid address")
    ok(ctl("ciss", "trust", "bob", "Joe@Example.net", config=config))
    known = json.loads(ok(ctl("--json", "ciss", "list", "bob", config=config)))
    assert [(k["user"], k["sender"], k["known_by"]) for k in known] == [
        ("bob", "joe@example.net", "admin")]
    ok(ctl("ciss", "untrust", "bob", "joe@example.net", config=config))
    refused(ctl("ciss", "untrust", "bob", "joe@example.net", config=config), "does not trust")
    assert json.loads(ok(ctl("--json", "ciss", "list", config=config))) == []
