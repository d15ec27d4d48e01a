"""
test_quarantine.py — the quarantine (issue 10, point 5), with a real Dovecot
as the provider and poplib as the client.

Mail whose score reaches the owner's profile's quarantine_at goes to state
quarantine, attributed to its users (U4) like delivered mail, and is not
served by POP3. `popgatectl queue show ID` explains why (action, score, each
filter's result and reason); `queue release ID` has the next pickup serve it
and records it as ham for the classifier (a spam_report row); `report
spam|ham ID` records a report; `queue delete ID` deletes it; after [spam]
quarantine_days the housekeeping deletes it. The sender block list is the
filter that scores it. Time passing is simulated by ageing the row's
state_changed_at in the store, as test_housekeeping.py does.
"""

import json
import os

import itutil
from mailutil import split_trace
from test_ctl import ctl, ok
from test_profiles import message, refused

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
PASSWORD = "alice-secret-quar-1"
DAY = 86400


def spool_file(gate, mid):
    return os.path.join(gate.data_dir, "spool", mid[:2], mid)


def quarantined(gate):
    return [r[0] for r in gate.db_query(
        "SELECT id FROM message WHERE state = 'quarantine' ORDER BY seq")]


def fetch_mixed(gate, provider, spam_count=1):
    """Alice's first login fetches one clean message and SPAM_COUNT from a
    blocked sender; the ids of the quarantined ones."""
    provider.add_user("alice", PASSWORD)
    ok(ctl("sender", "add", "block", "*@*.spam.example", config=gate.config_path))
    provider.deliver("alice", message("friend@ok.example", "clean"))
    for n in range(spam_count):
        provider.deliver("alice", message(f"seller{n}@shop.spam.example", f"offer {n}"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1, "quarantine": spam_count}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)
    return quarantined(gate)


def test_quarantine_show_release_report(popgate, provider):
    config = popgate.config_path
    mid, = fetch_mixed(popgate, provider)
    # Attributed to alice (U4): her listing has it.
    listed = json.loads(ok(ctl("--json", "queue", "list", "--state", "quarantine", "--user",
                               USER, config=config)))
    assert [m["id"] for m in listed] == [mid]

    # Not served: the pickup gets the clean message alone.
    fetches = len(popgate.fetches_done(ACCOUNT))
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: clean" in served[0]
    popgate.wait_fetch_done(ACCOUNT, fetches + 1)
    assert popgate.message_state(mid) == "quarantine"

    # queue show explains it.
    out = ok(ctl("queue", "show", mid, config=config))
    assert "action         quarantine" in out, out
    assert "score          100.000" in out, out
    assert "trace 0.000 x1.000 = 0.000" in out, out
    assert ("senders 100.000 x1.000 = 100.000: sender blocked by the global list entry "
            "*@*.spam.example") in out, out
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
    assert shown["state"] == "quarantine"
    assert (shown["verdict"]["action"], shown["verdict"]["score"]) == ("quarantine", 100.0)
    assert [(f["name"], f["status"], f["points"]) for f in shown["verdict"]["filters"]] == [
        ("trace", "ok", 0.0), ("address", "ok", 0.0), ("senders", "ok", 100.0)]

    # Reports are recorded; they move nothing.
    ok(ctl("report", "spam", mid, config=config))
    refused(ctl("report", "ham", "ffffffffffffffffffffffff", config=config), "no message")
    assert popgate.message_state(mid) == "quarantine"

    # Release: the next pickup serves it, with the verdict that held it,
    # and the classifier learns it as ham, forgetting the spam report's
    # learning (test_bayes_learn.py).
    ok(ctl("queue", "release", mid, config=config))
    assert popgate.message_state(mid) == "delivery"
    assert popgate.db_query("SELECT message_id, class, origin, learn_result FROM spam_report"
                            " ORDER BY seq") == [(mid, "spam", "report", "reversed"),
                                                 (mid, "ham", "release", "learnt")]
    refused(ctl("queue", "release", mid, config=config), "is not suspect, challenged or quarantined")
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: offer 0" in served[0]
    block = split_trace(served[0])[0].decode()
    assert "X-Popgate-Spam-Status: Yes, action=quarantine\r\n" in block
    popgate.wait_message_state(mid, "delivered", timeout=30)
    assert popgate.running


def test_quarantine_delete_and_user_scope(popgate, provider):
    config = popgate.config_path
    first, second = fetch_mixed(popgate, provider, spam_count=2)
    ok(ctl("user", "add", "bob", config=config))
    refused(ctl("queue", "release", first, "--user", "bob", config=config),
            "is not one of user bob's")
    refused(ctl("queue", "delete", first, "--user", "bob", config=config),
            "is not one of user bob's")
    ok(ctl("queue", "delete", first, "--user", USER, config=config))
    popgate.wait_message_state(first, None, timeout=10)
    assert not os.path.exists(spool_file(popgate, first))
    ok(ctl("queue", "release", second, "--user", USER, config=config))
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert sorted(b"Subject: offer 1" in m for m in served) == [False, True]


def test_quarantine_expires_after_quarantine_days(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"spam": {"quarantine_days": 2}})
    old, young = fetch_mixed(gate, provider, spam_count=2)
    gate.db_write("UPDATE message SET state_changed_at = state_changed_at - ? WHERE id = ?",
                  (3 * DAY, old))
    gate.db_write("UPDATE message SET state_changed_at = state_changed_at - ? WHERE id = ?",
                  (1 * DAY, young))
    gate.restart()
    gate.wait_message_state(old, None, timeout=30)
    itutil.wait_until(lambda: not os.path.exists(spool_file(gate, old)), 30,
                      what=f"the spool file of {old} to go")
    itutil.wait_until(lambda: any("removed 1 quarantined message(s) older than 2 days" in line
                                  for line in gate.log_lines()), 30,
                      what="the log line of the expiry")
    assert gate.message_state(young) == "quarantine"
    assert os.path.exists(spool_file(gate, young))


def test_user_without_a_seat_is_not_quarantined(popgate, provider):
    """U3: a user without a seat gets mail unfiltered: a blocked sender's mail
    is delivered, marked unfiltered, without a spam verdict header."""
    config = popgate.config_path
    ok(ctl("seat", "set", "1", config=config))
    provider.add_user("alice", PASSWORD)
    provider.add_user("bob", PASSWORD)
    popgate.first_login_fetched(ACCOUNT, PASSWORD)                  # takes the one seat
    popgate.first_login_fetched("bob@localhost", PASSWORD)          # waits for one
    ok(ctl("sender", "add", "block", "spam.example", config=config))
    provider.deliver("bob", message("seller@spam.example", "for bob"))
    provider.deliver("alice", message("seller@spam.example", "for alice"))
    assert popgate.pickup("bob@localhost", PASSWORD) == []         # its QUIT fetches
    assert popgate.pickup(ACCOUNT, PASSWORD) == []
    popgate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)
    served = popgate.pickup("bob@localhost", PASSWORD)
    assert len(served) == 1
    block, rest = split_trace(served[0])
    assert b"X-Popgate-Spam-" not in block
    assert rest.startswith(b"X-Popgate-Unfiltered:")
    (action,), = popgate.db_query("SELECT verdict_action FROM message WHERE state = 'quarantine'")
    assert action == "quarantine"
