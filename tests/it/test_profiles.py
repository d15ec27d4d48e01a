"""
test_profiles.py — filter profiles, the sender lists and the verdict headers
(issue 10, points 1, 2 and 4), with a real Dovecot as the provider and poplib
as the client.

`popgatectl profile add|set|show|list|del` and `user set NAME profile P`
manage the profiles in the store, refusing bad names, unknown filters,
weights out of range and thresholds in the wrong order with a clear message
and no change. The daemon reads the owner's profile at each message, so a
change judges the next fetched message without a restart: its
X-Popgate-Spam-* headers say so. The sender block list (`popgatectl sender`)
is the filter that scores here. `popgatectl filter check` runs the same
chain offline on a message file and explains it.
"""

import json
import os

import itutil
from mailutil import split_trace
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
PASSWORD = "alice-secret-prof-1"


def message(sender, subject, body="Hello.\n"):
    return (f"From: {sender}\nTo: alice@localhost\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@it.example>\n\n{body}").encode()


def refused(done, text):
    assert done.returncode == 1, f"{done.args} exited {done.returncode}: {done.stderr}"
    assert text in done.stderr, done.stderr
    return done.stderr


def header_block(served):
    """The header lines popgate put in front of SERVED, as text."""
    return split_trace(served)[0].decode()


def show(gate, name):
    return json.loads(ok(ctl("--json", "profile", "show", name, config=gate.config_path)))


def test_profile_crud_and_validation(popgate):
    config = popgate.config_path
    # 'default' exists from the start and runs trace, address and senders.
    listed = json.loads(ok(ctl("--json", "profile", "list", config=config)))
    assert [p["name"] for p in listed] == ["default"]
    default = listed[0]
    assert (default["tag_at"], default["quarantine_at"]) == (5.0, 10.0)
    assert (default["hold"], default["challenge"]) == (False, False)
    assert [(f["name"], f["enabled"], f["weight"]) for f in default["filters"]] == [
        ("trace", True, 1.0), ("address", True, 1.0), ("senders", True, 1.0)]

    ok(ctl("profile", "add", "strict", config=config))
    refused(ctl("profile", "add", "STRICT", config=config), "already exists")
    refused(ctl("profile", "add", "bad name!", config=config), "not a valid profile name")
    ok(ctl("profile", "set", "strict", "tag_at", "3", "quarantine_at", "6.5",
           "senders.weight", "2", "challenge", "yes", config=config))
    strict = show(popgate, "strict")
    assert (strict["tag_at"], strict["quarantine_at"]) == (3.0, 6.5)
    assert strict["challenge"] is True
    assert ("senders", True, 2.0) in [(f["name"], f["enabled"], f["weight"])
                                      for f in strict["filters"]]
    text = ok(ctl("profile", "show", "strict", config=config))
    assert "senders on weight 2.000" in text

    # Each refusal names what is wrong and changes nothing, even beside a
    # pair that alone would be fine.
    refused(ctl("profile", "set", "strict", "tag_at", "1", "nosuch", "on", config=config),
            "unknown key or filter 'nosuch'")
    refused(ctl("profile", "set", "strict", "senders.weight", "101", config=config),
            "the weight of senders must be a number from 0 to 100")
    refused(ctl("profile", "set", "strict", "senders.weight", "-1", config=config),
            "the weight of senders must be a number from 0 to 100")
    refused(ctl("profile", "set", "strict", "tag_at", "7", config=config),
            "tag_at (7.000) must not be above quarantine_at (6.500)")
    refused(ctl("profile", "set", "strict", "quarantine_at", "lots", config=config),
            "quarantine_at must be a number")
    refused(ctl("profile", "set", "strict", "address", "off", config=config),
            "filter address cannot be off")
    refused(ctl("profile", "set", "strict", "hold", "maybe", config=config),
            "hold takes yes or no")
    refused(ctl("profile", "set", "nosuch", "tag_at", "1", config=config), "no profile nosuch")
    assert ctl("profile", "set", "strict", "tag_at", config=config).returncode == 2
    assert show(popgate, "strict") == strict

    # Thresholds move together in one command, checked as a whole.
    ok(ctl("profile", "set", "strict", "quarantine_at", "20", "tag_at", "15", config=config))
    assert (show(popgate, "strict")["tag_at"], show(popgate, "strict")["quarantine_at"]) == \
        (15.0, 20.0)

    # A profile in use cannot go; 'default' never.
    ok(ctl("user", "add", "bob", config=config))
    refused(ctl("user", "set", "bob", "profile", "nosuch", config=config), "no profile nosuch")
    refused(ctl("user", "set", "nobody", "profile", "strict", config=config), "no user nobody")
    assert ctl("user", "set", "bob", "colour", "red", config=config).returncode == 2
    ok(ctl("user", "set", "bob", "profile", "strict", config=config))
    assert popgate.db_query("SELECT profile FROM user WHERE name = 'bob'") == [("strict",)]
    assert json.loads(ok(ctl("--json", "user", "show", "bob", config=config)))["profile"] == \
        "strict"
    assert "profile         strict" in ok(ctl("user", "show", "bob", config=config))
    assert show(popgate, "strict")["users"] == 1
    refused(ctl("profile", "del", "strict", config=config), "used by 1 user")
    refused(ctl("profile", "del", "default", config=config), "cannot be deleted")
    ok(ctl("user", "set", "bob", "profile", "default", config=config))
    assert popgate.db_query("SELECT profile FROM user WHERE name = 'bob'") == [(None,)]
    ok(ctl("profile", "del", "strict", config=config))
    refused(ctl("profile", "show", "strict", config=config), "no profile")
    assert [p["name"] for p in json.loads(ok(ctl("--json", "profile", "list",
                                                   config=config)))] == ["default"]
    assert popgate.running


def test_sender_list_commands(popgate):
    config = popgate.config_path
    ok(ctl("user", "add", "bob", config=config))
    ok(ctl("sender", "add", "block", "@Spam.Example", config=config))
    ok(ctl("sender", "add", "allow", "*@*.friends.example", "--user", "bob", config=config))
    refused(ctl("sender", "add", "allow", "spam.example", config=config), "already")
    refused(ctl("sender", "add", "block", "a b@example.com", config=config),
            "has a character")
    refused(ctl("sender", "add", "block", "x@", config=config), "not an address pattern")
    refused(ctl("sender", "add", "block", "x.example", "--user", "nobody", config=config),
            "no user nobody")
    assert ctl("sender", "add", "maybe", "x.example", config=config).returncode == 2
    listed = json.loads(ok(ctl("--json", "sender", "list", config=config)))
    assert [(e["user"], e["list"], e["pattern"]) for e in listed] == [
        (None, "block", "spam.example"), ("bob", "allow", "*@*.friends.example")]
    assert [e["pattern"] for e in json.loads(ok(ctl("--json", "sender", "list", "--user", "bob",
                                                    config=config)))] == ["*@*.friends.example"]
    refused(ctl("sender", "del", "spam.example", "--user", "bob", config=config), "not on")
    ok(ctl("sender", "del", "spam.example", config=config))
    assert popgate.db_query("SELECT count(*) FROM sender_list") == [(1,)]


def test_user_profile_changes_the_next_verdict(popgate, provider):
    config = popgate.config_path
    provider.add_user("alice", PASSWORD)
    ok(ctl("sender", "add", "block", "spam.example", config=config))
    provider.deliver("alice", message("friend@ok.example", "first"))
    provider.deliver("alice", message("seller@spam.example", "second"))
    popgate.first_login(ACCOUNT, PASSWORD)
    popgate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)
    pid = popgate.pid

    fetches = len(popgate.fetches_done(ACCOUNT))
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1
    popgate.wait_fetch_done(ACCOUNT, fetches + 1)    # its QUIT's fetch, of nothing
    block = header_block(served[0])
    assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in block
    assert "X-Popgate-Spam-Score: 0.000 (tag_at=5.000, quarantine_at=10.000)\r\n" in block
    assert ("X-Popgate-Spam-Reasons: trace=0.000 x1.000;\r\n\taddress=0.000 x1.000;\r\n"
            "\tsenders=0.000 x1.000\r\n") in block

    # A profile of alice's own, made while the daemon runs: the same sender
    # is only tagged now, with the score doubled.
    ok(ctl("profile", "add", "lenient", config=config))
    ok(ctl("profile", "set", "lenient", "tag_at", "50", "quarantine_at", "500",
           "senders.weight", "2", config=config))
    ok(ctl("user", "set", USER, "profile", "lenient", config=config))
    provider.deliver("alice", message("other@spam.example", "third"))
    assert popgate.pickup(ACCOUNT, PASSWORD) == []      # its QUIT fetches
    popgate.wait_states({"delivered": 1, "delivery": 1, "quarantine": 1}, timeout=60)
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1
    block = header_block(served[0])
    assert "X-Popgate-Spam-Status: Yes, action=tag\r\n" in block
    assert "X-Popgate-Spam-Score: 200.000 (tag_at=50.000, quarantine_at=500.000)\r\n" in block
    assert ("\tsenders=100.000 x2.000 (sender blocked by the global list entry "
            "spam.example)\r\n") in block
    assert popgate.pid == pid and popgate.running

    (mid, action, score), = popgate.db_query(
        "SELECT id, verdict_action, verdict_score FROM message WHERE state = 'delivered'"
        " AND verdict_action = 'tag'")
    assert (action, score) == ("tag", 200.0)
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
    assert shown["verdict"]["action"] == "tag"
    assert shown["verdict"]["score"] == 200.0
    senders = [f for f in shown["verdict"]["filters"] if f["name"] == "senders"]
    assert senders == [{"name": "senders", "status": "ok", "score": 100.0, "weight": 2.0,
                        "points": 200.0,
                        "reason": "sender blocked by the global list entry spam.example"}]


def test_filter_check_explains_offline(popgate, new_dir):
    config = popgate.config_path
    directory = new_dir("filter-check")
    spam = os.path.join(directory, "spam.eml")
    with open(spam, "wb") as f:
        f.write(message("Seller <seller@Spam.Example>", "buy now").replace(b"\n", b"\r\n"))
    ham = os.path.join(directory, "ham.eml")
    with open(ham, "wb") as f:
        f.write(message("friend@ok.example", "hello"))
    ok(ctl("sender", "add", "block", "*.example", config=config))
    ok(ctl("sender", "add", "allow", "ok.example", config=config))
    ok(ctl("profile", "add", "lenient", config=config))
    ok(ctl("profile", "set", "lenient", "tag_at", "50", "quarantine_at", "500", config=config))

    out = ok(ctl("filter", "check", spam, config=config))
    assert "action   quarantine" in out, out
    assert "score    100.000 (tag_at 5.000, quarantine_at 10.000)" in out, out
    assert ("senders 100.000 x1.000 = 100.000: sender blocked by the global list entry "
            "*.example") in out, out
    checked = json.loads(ok(ctl("--json", "filter", "check", "--profile", "lenient", spam,
                                config=config)))
    assert (checked["profile"], checked["action"], checked["score"]) == ("lenient", "tag", 100.0)
    assert [f["name"] for f in checked["filters"]] == ["trace", "address", "senders"]
    assert "X-Popgate-Spam-Status: Yes, action=tag\r\n" in checked["headers"]

    # A domain entry beats a wildcard one: the allowed domain scores -100.
    with open(ham, "rb") as f:
        done = ctl("--json", "filter", "check", "-", config=config, stdin=f.read().decode())
    checked = json.loads(ok(done))
    assert (checked["action"], checked["score"]) == ("deliver", -100.0)
    ok(ctl("user", "add", "bob", config=config))
    ok(ctl("sender", "add", "block", "friend@ok.example", "--user", "bob", config=config))
    checked = json.loads(ok(ctl("--json", "filter", "check", "--user", "bob", ham,
                                config=config)))
    assert (checked["action"], checked["score"]) == ("quarantine", 100.0)
    assert checked["filters"][2]["reason"] == \
        "sender blocked by the user's list entry friend@ok.example"

    refused(ctl("filter", "check", os.path.join(directory, "missing.eml"), config=config),
            "cannot open")
    refused(ctl("filter", "check", "--profile", "nosuch", ham, config=config), "no profile")
    assert ctl("filter", "check", config=config).returncode == 2
    itutil.wait_until(lambda: popgate.running, 5, what="the daemon to keep running")
