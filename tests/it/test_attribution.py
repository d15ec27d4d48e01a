"""
test_attribution.py — collective mailboxes and sent mail (SPEC U4, U5; issue
3 points 3 and 4): one provider mailbox holds mail for three addresses that
belong to three other users. After the fetch each message is attributed to
the user owning its most trusted recipient addresses, a message from an
assigned address records that address's user as its owner, and POP3 delivery
still goes to the login that fetched.
"""

import sqlite3

PASSWORD = "attr-pw-1"


def assign_address(gate, address, user_name):
    """Assigns ADDRESS to USER_NAME beside the running daemon (as popgatectl does)."""
    con = sqlite3.connect(gate.db_path, timeout=10.0)
    try:
        con.execute("INSERT INTO address (address, user_id, is_primary) "
                    "SELECT ?, id, 0 FROM user WHERE name = ?", (address, user_name))
        assert con.total_changes == 1, f"no user {user_name}"
        con.commit()
    finally:
        con.close()


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
        popgate.first_login(f"{name}@localhost", PASSWORD)
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
