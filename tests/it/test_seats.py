"""
test_seats.py — licence seats in the mail flow (SPEC U3, issue 3 point 2): a
new user takes a seat while one is free; a user without one still gets mail,
unfiltered and marked so in a header.
"""

import json

from mailutil import split_trace
from test_ctl import ctl, ok

PASSWORD = "seat-pw-1"
UNFILTERED = b"X-Popgate-Unfiltered:"


def set_seat_limit(gate, limit):
    """Sets the seat limit with `popgatectl seat set`, beside the running daemon."""
    out = json.loads(ok(ctl("--json", "seat", "set", str(limit), config=gate.config_path)))
    assert out["limit"] == limit, out


def test_user_without_a_seat_gets_mail_unfiltered_and_marked(popgate, provider, corpus):
    set_seat_limit(popgate, 1)
    provider.add_user("alice", PASSWORD)
    provider.add_user("bob", PASSWORD)
    popgate.first_login_fetched("alice@localhost", PASSWORD)      # takes the one seat
    popgate.first_login_fetched("bob@localhost", PASSWORD)        # waits for one
    seats = dict(popgate.db_query("SELECT name, has_seat FROM user"))
    assert seats == {"alice+localhost": 1, "bob+localhost": 0}

    for user in ("alice", "bob"):
        provider.deliver_many(user, corpus.messages(2, seed=61))
    for account in ("alice@localhost", "bob@localhost"):
        popgate.pickup(account, PASSWORD)                  # QUIT fetches
    popgate.wait_states({"delivery": 4}, timeout=30)

    for account, marked in (("alice@localhost", False), ("bob@localhost", True)):
        served = popgate.pickup(account, PASSWORD)
        assert len(served) == 2
        for message in served:
            _, rest = split_trace(message)      # after popgate's Received: header
            assert rest.startswith(UNFILTERED) == marked, (account, rest[:200])
