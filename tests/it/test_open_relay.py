"""
test_open_relay.py — popgate is never an open relay (issue 9, item 2; SPEC
S1, S2), over real SMTP: a client on 127.0.0.2, outside every Local Network
once the administrator keeps only 127.0.0.1/32 (popgatectl network), is
refused every foreign recipient and each trick of the open-relay battery
(percent hack, bang path, source routes, quoted local parts, '@' in the
local part, upper case, IP literals, trailing dots, the null sender, local
and foreign recipients mixed), with 554 5.7.1 (or 501 5.1.3 where the path
is no address at all); a local recipient is accepted from there; the client
inside may relay. The running daemon takes a change of the Local Networks
when popgatectl announces it, without a restart.
"""

import pytest

from smtputil import (OUTSIDE, add_user, connect, message_text, outside_gate,  # noqa: F401
                      queued_id, relays_from, smtp_gate, stored, swaks)
from test_ctl import ctl, ok
from itutil import LOOPBACK, wait_until

DENIED = (554, b"5.7.1")
BAD = (501, b"5.1.3")

BATTERY = [
    ("<victim@foreign.example>", DENIED),
    ("<carol@example.org.foreign.example>", DENIED),
    ("<victim%foreign.example@example.org>", DENIED),
    ("<carol%example.org@example.org>", DENIED),
    ("<foreign.example!victim@example.org>", DENIED),
    ("<@example.org:victim@foreign.example>", DENIED),
    ("<@foreign.example:carol@example.org>", DENIED),
    ("<@example.org,@foreign.example:carol@example.org>", DENIED),
    ('<"victim@foreign.example"@example.org>', DENIED),
    ('<"victim%foreign.example"@example.org>', DENIED),
    ('<"carol"@example.org>', DENIED),
    ("<victim@foreign.example@example.org>", BAD),
    ("<VICTIM@FOREIGN.EXAMPLE>", DENIED),
    ("<carol@[127.0.0.1]>", DENIED),
    ("<victim@[192.0.2.1]>", DENIED),
    ("<carol@[IPv6:::1]>", DENIED),
    ("<carol@example.org.>", BAD),
    ("<victim@foreign.example.>", BAD),
    ("<postmaster>", DENIED),
]


@pytest.mark.parametrize("sender", ["a@example.org", ""], ids=["sender", "null-sender"])
@pytest.mark.parametrize("path,expected", BATTERY, ids=[path for path, _ in BATTERY])
def test_open_relay_battery_is_refused_from_outside(outside_gate, sender, path, expected):
    with connect(outside_gate, source=OUTSIDE) as client:
        client.ehlo()
        assert client.mail(sender)[0] == 250
        client.putcmd("rcpt", "TO:" + path)
        code, text = client.getreply()
        assert (code, text[:5]) == expected
        # Nothing was taken: DATA has no recipient.
        assert client.docmd("DATA")[0] == 503


def test_relay_attempts_count_as_bad_commands(outside_gate):
    with connect(outside_gate, source=OUTSIDE) as client:
        client.ehlo()
        client.mail("a@example.org")
        for i in range(9):
            assert client.rcpt(f"victim{i}@foreign.example")[0] == 554
        client.putcmd("rcpt", "TO:<victim@foreign.example>")
        assert client.getreply()[0] == 554
        assert client.getreply() == (421, b"4.7.0 Too many errors; closing")


def test_local_recipient_is_accepted_from_outside(outside_gate):
    with connect(outside_gate, source=OUTSIDE) as client:
        client.ehlo()
        client.mail("")
        assert client.rcpt("carol@example.org")[0] == 250
        assert client.rcpt("CAROL@EXAMPLE.ORG")[0] == 250  # upper case: still local
        code, reply = client.data(message_text(to="carol@example.org").encode())
        assert code == 250
    row = stored(outside_gate, queued_id(reply))
    assert row["recipients"] == ["CAROL@example.org", "carol@example.org"]


def test_mixed_recipients_keep_only_the_local_ones(outside_gate):
    with connect(outside_gate, source=OUTSIDE) as client:
        client.ehlo()
        client.mail("a@example.org")
        assert client.rcpt("carol@example.org")[0] == 250
        assert client.rcpt("victim@foreign.example")[0] == 554
        assert client.rcpt("victim%foreign.example@example.org")[0] == 554
        code, reply = client.data(message_text(to="carol@example.org").encode())
        assert code == 250
    assert stored(outside_gate, queued_id(reply))["recipients"] == ["carol@example.org"]


def test_inside_client_may_relay(outside_gate):
    assert relays_from(outside_gate, LOOPBACK)
    with connect(outside_gate) as client:
        client.ehlo()
        client.mail("a@example.org")
        for path in ["victim@foreign.example", "x@[192.0.2.1]"]:
            assert client.rcpt(path)[0] == 250, path
        code, reply = client.data(message_text().encode())
        assert code == 250
    assert stored(outside_gate, queued_id(reply))["recipients"] == [
        "victim@foreign.example", "x@[192.0.2.1]"]


def test_swaks_from_outside_is_refused(outside_gate):
    done = swaks(outside_gate, "--local-interface", OUTSIDE, "--from", "a@example.org",
                 "--to", "victim@foreign.example")
    assert done.returncode != 0
    assert "554 5.7.1" in done.stdout
    assert outside_gate.db_query("SELECT count(*) FROM message") == [(0,)]


def test_network_change_takes_effect_without_a_restart(smtp_gate):
    # 127.0.0.0/8 is a Local Network by default: 127.0.0.2 is inside.
    assert relays_from(smtp_gate, OUTSIDE)
    ok(ctl("network", "add", "office", "127.0.0.1/32", config=smtp_gate.config_path))
    ok(ctl("network", "del", "loopback", config=smtp_gate.config_path))
    wait_until(lambda: not relays_from(smtp_gate, OUTSIDE), timeout=30,
               what="127.0.0.2 refused after the change")
    assert relays_from(smtp_gate, LOOPBACK)
    ok(ctl("network", "add", "second", "127.0.0.2/32", config=smtp_gate.config_path))
    wait_until(lambda: relays_from(smtp_gate, OUTSIDE), timeout=30,
               what="127.0.0.2 inside again")
