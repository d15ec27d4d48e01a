"""
test_attribution.py — collective mailboxes and sent mail (SPEC U4, U5; issue
3 points 3 and 4): one provider mailbox holds mail for three addresses that
belong to three other users. After the fetch each message is attributed to
the user owning its most trusted recipient addresses, a message from an
assigned address records that address's user as its owner, and POP3 delivery
still goes to the login that fetched.
"""

import json
import os

from test_ctl import ctl, ok, refused, set_state

PASSWORD = "attr-pw-1"


def assign_address(gate, address, user_name):
    """Assigns ADDRESS to USER_NAME with `popgatectl address add`, beside the
    running daemon, as an administrator does."""
    assert json.loads(ok(ctl("--json", "address", "add", address, user_name,
                             config=gate.config_path))) == {"address": address,
                                                            "user": user_name}


def message(subject, headers):
    return ("\n".join(headers + [f"Subject: {subject}",
                                 "Date: Sat, 28 Nov 2026 04:00:00 +0000",
                                 f"Message-ID: <{subject}@test.invalid>",
                                 "",
                                 f"Body of {subject}.",
                                 "To: not-a-header@example.org",
                                 ""])).encode()


MESSAGES = [
    # Delivered-To is trusted first; the team address belongs to no one.
    message("m1", ["Delivered-To: alice@example.org",
                   "From: Stranger <stranger@elsewhere.org>",
                   'To: "Team, All" <team@example.org>']),
    # Only To and Cc, mixed case, with a display name and a comment.
    message("m2", ["From: someone@elsewhere.org",
                   "To: Bob (the builder) <BOB@Example.ORG>",
                   "Cc: other@elsewhere.org"]),
    # X-Original-To, with an empty group in To.
    message("m3", ["X-Original-To: carol@example.org",
                   "From: someone@elsewhere.org",
                   "To: undisclosed-recipients:;"]),
    # Sent by alice from her real address, to bob and carol (folded).
    message("m4", ["From: Alice <Alice@GMX.net>",
                   "To: bob@example.org,",
                   "  \"Carol, C.\" <carol@example.org>"]),
]


def test_collective_mailbox_attributes_mail_to_owners(popgate, provider):
    for name in ("collective", "alice", "bob", "carol"):
        provider.add_user(name, PASSWORD)
        popgate.first_login_fetched(f"{name}@localhost", PASSWORD)
    users = dict(popgate.db_query("SELECT name, id FROM user"))
    alice, bob, carol = (users[f"{n}+localhost"] for n in ("alice", "bob", "carol"))
    for address, user in (("alice@example.org", "alice"), ("bob@example.org", "bob"),
                          ("carol@example.org", "carol"), ("alice@gmx.net", "alice")):
        assign_address(popgate, address, f"{user}+localhost")

    provider.deliver_many("collective", MESSAGES)
    popgate.pickup("collective@localhost", PASSWORD)      # QUIT fetches
    popgate.wait_states({"delivery": 4}, timeout=30)

    rows = popgate.db_query("SELECT m.uidl, m.owner_user_id, r.user_id, r.address "
                            "FROM message m LEFT JOIN message_recipient r ON r.message_id = m.id")
    seen = {}
    for uidl, owner, user_id, address in rows:
        entry = seen.setdefault(uidl, (owner, {}))
        if user_id is not None:
            entry[1][user_id] = address
    attributed = sorted((owner or 0, sorted(recipients.items())) for owner, recipients in
                        seen.values())
    assert attributed == sorted([
        (0, [(alice, "alice@example.org")]),
        (0, [(bob, "bob@example.org")]),
        (0, [(carol, "carol@example.org")]),
        (alice, sorted([(bob, "bob@example.org"), (carol, "carol@example.org")])),
    ]), rows

    # POP3 delivery is unchanged: everything goes to the login that fetched.
    served = popgate.pickup("collective@localhost", PASSWORD)
    assert len(served) == 4
    for name in ("alice", "bob", "carol"):
        assert popgate.pickup(f"{name}@localhost", PASSWORD) == []


def subject_of(gate, mid):
    """The Subject of message MID, read from its spool file."""
    for directory, _, files in os.walk(gate.data_dir):
        if mid in files:
            with open(os.path.join(directory, mid), "rb") as f:
                for line in f.read().split(b"\n"):
                    if line.startswith(b"Subject: "):
                        return line[9:].strip().decode()
    raise AssertionError(f"no spool file for {mid}")


def queue_of(gate, user):
    """The ids of USER's queue entries, through popgatectl."""
    entries = json.loads(ok(ctl("--json", "queue", "list", "--user", user,
                                config=gate.config_path)))
    return sorted(e["id"] for e in entries)


def test_each_user_manages_only_the_mail_of_their_addresses(popgate, provider):
    """Issue 3 point 3: each recipient user lists, releases and deletes the
    queue entries of their own addresses, and no one else's."""
    for name in ("collective", "alice", "bob", "carol"):
        provider.add_user(name, PASSWORD)
        popgate.first_login_fetched(f"{name}@localhost", PASSWORD)
    for address, user in (("alice@example.org", "alice"), ("bob@example.org", "bob"),
                          ("carol@example.org", "carol"), ("alice@gmx.net", "alice")):
        assign_address(popgate, address, f"{user}+localhost")
    unattributed = message("m5", ["From: someone@elsewhere.org",
                                  "To: nobody-local@elsewhere.org"])
    provider.deliver_many("collective", MESSAGES + [unattributed])
    popgate.pickup("collective@localhost", PASSWORD)
    popgate.wait_states({"delivery": 5}, timeout=30)
    ids = {}
    for mid, in popgate.db_query("SELECT id FROM message"):
        shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=popgate.config_path)))
        ids[subject_of(popgate, mid)] = mid
        assert shown["user"] == "collective+localhost"
    m1, m2, m3, m4, m5 = (ids[s] for s in ("m1", "m2", "m3", "m4", "m5"))
    alice, bob, carol = "alice+localhost", "bob+localhost", "carol+localhost"
    collective = "collective+localhost"

    assert queue_of(popgate, alice) == [m1]
    assert queue_of(popgate, bob) == sorted([m2, m4])
    assert queue_of(popgate, carol) == sorted([m3, m4])
    # The fetching login keeps what no local address names.
    assert queue_of(popgate, collective) == [m5]
    shown = json.loads(ok(ctl("--json", "queue", "show", m4, config=popgate.config_path)))
    assert shown["owner"] == alice
    assert shown["recipients"] == [{"user": bob, "address": "bob@example.org"},
                                   {"user": carol, "address": "carol@example.org"}]

    # Someone else's message: refused, nothing changes.
    for user, mid in ((bob, m1), (alice, m4), (collective, m1), (alice, m5)):
        refused(ctl("queue", "delete", mid, "--user", user, config=popgate.config_path),
                f"is not one of user {user}'s")
    set_state(popgate, m2, "suspect")
    refused(ctl("queue", "release", m2, "--user", carol, config=popgate.config_path),
            "is not one of user")
    assert len(popgate.db_query("SELECT id FROM message")) == 5

    # A message for two users: one deleting it takes only their own entry.
    out = ok(ctl("queue", "delete", m4, "--user", bob, config=popgate.config_path))
    assert out == f"message {m4} deleted for {bob} (other users' addresses keep it)\n"
    assert queue_of(popgate, bob) == [m2] and queue_of(popgate, carol) == sorted([m3, m4])
    out = ok(ctl("queue", "delete", m4, "--user", carol, config=popgate.config_path))
    assert out == f"message {m4} deleted\n"
    assert queue_of(popgate, carol) == [m3]
    assert m4 not in [r[0] for r in popgate.db_query("SELECT id FROM message")]
    # Both deletions are in the message's trace in popgate's log.
    changes = [e["detail"] for e in popgate.events("admin_change") if e["id"] == m4]
    assert changes == [
        f"popgatectl queue delete: message {m4} deleted for {bob} "
        "(other users' addresses keep it)",
        f"popgatectl queue delete: message {m4} deleted"]

    # Bob releases his own suspect message; the daemon filters it again.
    ok(ctl("queue", "release", m2, "--user", bob, config=popgate.config_path))
    popgate.wait_states({"delivery": 4}, timeout=30)
    refused(ctl("queue", "list", "--user", "nobody", config=popgate.config_path),
            "no user 'nobody'")
    assert ctl("queue", "delete", "--user", bob, config=popgate.config_path).returncode == 2
