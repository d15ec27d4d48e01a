"""
test_fuzzy.py — the fuzzy filter (issue 10, point 2: repeated campaigns),
with a real Dovecot as the provider and poplib as the client.

Six copies of one campaign, each with another greeting name, amounts, code,
tracking link and sender, reach six users one after the other. The default
profile runs `fuzzy` with weight 10 (its quarantine_at) and [spam]
fuzzy_min_count is 3: the first two copies are delivered, the later ones
quarantined, and `queue show` explains how often the fingerprint was seen.
An unrelated message is delivered. `filter check` explains a copy offline
and records nothing. A copy from a sender its owner allows is neither scored
nor counted. After a user reports a copy as ham, the next copy is
delivered. Fingerprints not seen within [spam] fuzzy_window
expire with the housekeeping.
"""

import json

import itutil
from test_ctl import ctl, ok
from test_profiles import message

PASSWORD = "fuzzy-secret-1"
NAMES = ["Peter Miller", "Anna Kowalska", "Li Wei", "Omar Haddad", "Eve Martin", "Raj Patel",
         "Sofia Rossi", "Jan Novak"]

CAMPAIGN = """Dear {name},

Congratulations! Your email address was selected in our monthly customer
appreciation draw and you have won a brand new tablet computer worth ${amount}.
To receive your prize you only need to confirm your shipping details and pay
a small handling fee of ${fee} before the offer runs out. Your personal claim
code is {code}. Visit {link} today and enter the code on the first page.

This offer is valid for {hours} hours only, so do not wait. If you have any
questions our friendly support team is happy to help you at {support}.

Best regards,
The Rewards Team
"""

UNRELATED = """Hi,

the plumber comes on Tuesday morning to look at the heating in the cellar, so
somebody needs to be at home between eight and twelve. Could you take the
morning off, or should I ask my sister to come over with her keys? Also,
please remember to bring the receipts for the new windows to the tax advisor.

Thanks, see you tonight
"""


def campaign(n):
    body = CAMPAIGN.format(name=NAMES[n], amount=400 + 37 * n, fee=3 + n, code=f"XK{n}7{n}Q{n}9",
                           link=f"http://rewards{n}.example/c/{1000 + n}?u={n * 7919}",
                           hours=24 + n, support=f"help{n}@rewards{n}.example")
    return message(f"rewards{n}@mailer{n}.example", f"You won {n}", body)


def judged(gate, provider, user, mail):
    """USER's first login fetches MAIL; the state it ends in and its id."""
    account = f"{user}@localhost"
    provider.add_user(user, PASSWORD)
    provider.deliver(user, mail)
    gate.first_login(account, PASSWORD)
    gate.wait_fetch_done(account)
    rows = []

    def settled():
        rows[:] = gate.db_query(
            "SELECT m.id, m.state FROM message m JOIN account a ON a.id = m.account_id"
            " WHERE a.name = ? AND m.state <> 'processing'", (account,))
        return len(rows) == 1

    itutil.wait_until(settled, 60, interval=0.1, what=f"the message of {account} judged")
    return rows[0][1], rows[0][0]


def fuzzy_gate(make_popgate, provider, overrides=None):
    spam = {"fuzzy_min_count": 3}
    spam.update(overrides or {})
    gate = make_popgate(provider=provider, overrides={"spam": spam})
    ok(ctl("profile", "set", "default", "fuzzy", "on", "fuzzy.weight", "10",
           config=gate.config_path))
    return gate


def test_campaign_quarantined_after_min_count(make_popgate, provider):
    gate = fuzzy_gate(make_popgate, provider)
    config = gate.config_path
    outcomes = [judged(gate, provider, f"fz{n}", campaign(n)) for n in range(6)]
    assert [state for state, _ in outcomes] == ["delivery"] * 2 + ["quarantine"] * 4

    # Explained like any filter: the fingerprint was seen from 3 senders.
    third = outcomes[2][1]
    out = ok(ctl("queue", "show", third, config=config))
    assert "fuzzy 1.000 x10.000 = 10.000: fuzzy: seen 3 times from 3 senders to 3 users " \
        "since " in out, out
    assert "(scores from 3 senders)" in out, out
    shown = json.loads(ok(ctl("--json", "queue", "show", outcomes[5][1], config=config)))
    fuzzy, = [f for f in shown["verdict"]["filters"] if f["name"] == "fuzzy"]
    assert fuzzy["points"] == 20.0 and "seen 6 times from 6 senders" in fuzzy["reason"]
    first = ok(ctl("queue", "show", outcomes[0][1], config=config))
    assert "fuzzy 0.000 x10.000 = 0.000: fuzzy: seen 1 time from 1 sender" in first, first

    # One campaign, one fingerprint; the unrelated message starts its own and
    # is delivered.
    assert gate.db_query("SELECT messages, senders, owners, ham FROM fuzzy_fingerprint") == [
        (6, 6, 6, 0)]
    unrelated = message("neighbour@home.example", "heating", UNRELATED)
    state, _ = judged(gate, provider, "other", unrelated)
    assert state == "delivery"
    assert gate.db_query("SELECT messages, senders FROM fuzzy_fingerprint ORDER BY id") == [
        (6, 6), (1, 1)]

    # filter check explains a copy offline against the same fingerprints and
    # records nothing.
    checked = json.loads(ok(ctl("--json", "filter", "check", "-", config=config,
                                stdin=campaign(6).decode())))
    fuzzy, = [f for f in checked["filters"] if f["name"] == "fuzzy"]
    assert abs(fuzzy["points"] - 70 / 3) < 0.01
    assert "seen 7 times from 7 senders" in fuzzy["reason"]
    assert checked["action"] == "quarantine"
    assert gate.db_query("SELECT count(*) FROM fuzzy_sighting") == [(7,)]

    # A copy from a sender its owner allows is neither scored nor counted.
    provider.add_user("fz7", PASSWORD)
    gate.first_login_fetched("fz7@localhost", PASSWORD)
    ok(ctl("sender", "add", "allow", "mailer7.example", "--user", "fz7+localhost",
           config=config))
    provider.deliver("fz7", campaign(7))
    assert gate.pickup("fz7@localhost", PASSWORD) == []  # its QUIT fetches
    gate.wait_states({"delivery": 1}, account="fz7@localhost", timeout=60)
    (allowed,), = gate.db_query(
        "SELECT m.id FROM message m JOIN account a ON a.id = m.account_id WHERE a.name = ?",
        ("fz7@localhost",))
    assert "fuzzy 0.000 x10.000 = 0.000: fuzzy: from an allowed sender or a correspondent, " \
        "not counted" in ok(ctl("queue", "show", allowed, config=config))
    assert gate.db_query("SELECT count(*) FROM fuzzy_sighting") == [(7,)]

    # A user says it is ham (a newsletter they want): the next copy passes.
    ok(ctl("report", "ham", outcomes[3][1], config=config))
    assert gate.db_query("SELECT ham FROM fuzzy_fingerprint ORDER BY id") == [(1,), (0,)]
    state, mid = judged(gate, provider, "fz6", campaign(6))
    assert state == "delivery"
    assert "reported as ham" in ok(ctl("queue", "show", mid, config=config))
    assert gate.running


def test_fingerprints_expire(make_popgate, provider):
    gate = fuzzy_gate(make_popgate, provider, {"fuzzy_window": 600})
    judged(gate, provider, "fz0", campaign(0))
    assert len(gate.db_query("SELECT id FROM fuzzy_fingerprint")) == 1
    gate.db_write("UPDATE fuzzy_fingerprint SET first_seen = first_seen - 700,"
                  " last_seen = last_seen - 700")
    gate.db_write("UPDATE fuzzy_sighting SET seen_at = seen_at - 700")
    gate.restart()
    itutil.wait_until(lambda: gate.db_query("SELECT count(*) FROM fuzzy_fingerprint") == [(0,)],
                      30, what="the old fingerprint to expire")
    assert gate.db_query("SELECT count(*) FROM fuzzy_sighting") == [(0,)]
    itutil.wait_until(lambda: any("removed 1 fuzzy fingerprint(s) not seen for 600 seconds"
                                  in line for line in gate.log_lines()), 30,
                      what="the log line of the expiry")
