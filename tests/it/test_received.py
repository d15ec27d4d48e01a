"""
test_received.py — the hand-off (issue 10, point 2): the host that delivered
a message to the provider, found by walking its Received chain down from
the provider's own hops, with a real Dovecot as the provider and poplib as
the client.

A message with a four-hop chain is fetched by the daemon, whose [spam]
trusted_relays names the provider's relays for "localhost" (the provider
host of the test account) by domain and by network; the trace filter's
reason in X-Popgate-Spam-Reasons and in `queue show` names the hand-off,
not the relays and not the forged hop below it. `popgatectl filter check
--provider localhost --json` explains the same message the same way;
without --provider only internal addresses are trusted, so the provider's
first relay is the hand-off. A bad trusted_relays stops popgatectl with the
key named.
"""

import json
import os

from mailutil import split_trace
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-recv-1"
RELAYS = "localhost:relays.example.net, localhost:198.51.100.0/24"
CHAIN = (
    # The provider's relays: by reverse name, then by network.
    "Received: from mx-in.relays.example.net (mx2.relays.example.net [203.0.113.9])\n"
    "\tby store.localhost (Postfix) with ESMTP id 4F1; Wed, 2 Dec 2026 12:00:03 +0000\n"
    "Received: from mx.provider.example ([198.51.100.20]) by mx-in.relays.example.net\n"
    "\t(8.17/8.17) with ESMTPS id 4F0; Wed, 2 Dec 2026 12:00:02 +0000\n"
    # The hand-off: the sender's server, as the provider's MX saw it.
    "Received: from helo.sender.example (mail.sender.example [192.0.2.77])\n"
    "\tby mx.provider.example with ESMTPS id 4E9; Wed, 2 Dec 2026 12:00:01 +0000\n"
    # Written by the sender: never read.
    "Received: from forged.example (forged.example [10.9.9.9]) by helo.sender.example\n"
    "\twith SMTP; Wed, 2 Dec 2026 12:00:00 +0000\n")
REASON = "hand-off 192.0.2.77 (helo helo.sender.example, reverse mail.sender.example)"


def chained_message(subject):
    return (CHAIN + f"From: sender@sender.example\nTo: alice@localhost\nSubject: {subject}\n"
            f"Message-ID: <{subject.replace(' ', '.')}@it.example>\n\nHello.\n").encode()


def test_handoff_in_verdict_and_filter_check(provider, make_popgate, new_dir):
    gate = make_popgate(provider=provider, overrides={"spam": {"trusted_relays": RELAYS}})
    config = gate.config_path
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", chained_message("chained"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)

    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1
    block = split_trace(served[0])[0].decode()
    assert f"X-Popgate-Spam-Reasons: trace=0.000 x1.000 ({REASON});\r\n" in block, block
    (mid,), = gate.db_query("SELECT id FROM message")
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
    trace = [f for f in shown["verdict"]["filters"] if f["name"] == "trace"]
    assert trace[0]["reason"] == REASON

    # The same message offline, as fetched from the same provider.
    path = os.path.join(new_dir("received"), "chained.eml")
    with open(path, "wb") as f:
        f.write(chained_message("offline").replace(b"\n", b"\r\n"))
    checked = json.loads(ok(ctl("--json", "filter", "check", "--provider", "localhost", path,
                                config=config)))
    assert checked["handoff"] == {"address": "192.0.2.77", "helo": "helo.sender.example",
                                  "reverse": "mail.sender.example"}
    assert checked["filters"][0] == {"name": "trace", "status": "ok", "score": 0.0,
                                     "weight": 1.0, "points": 0.0, "reason": REASON}
    out = ok(ctl("filter", "check", "--provider", "localhost", path, config=config))
    assert "handoff  192.0.2.77 (helo helo.sender.example, reverse mail.sender.example)" \
        in out, out
    # Without a provider, the items for "localhost" do not hold: the
    # provider's first relay is all that can be said.
    with open(path, "rb") as f:
        checked = json.loads(ok(ctl("--json", "filter", "check", "-", config=config,
                                    stdin=f.read().decode())))
    assert checked["handoff"] == {"address": "203.0.113.9", "helo": "mx-in.relays.example.net",
                                  "reverse": "mx2.relays.example.net"}
    # A message without Received fields has none.
    plain = os.path.join(os.path.dirname(path), "plain.eml")
    with open(plain, "wb") as f:
        f.write(b"From: a@b.example\r\nSubject: x\r\n\r\nHi.\r\n")
    checked = json.loads(ok(ctl("--json", "filter", "check", "--provider", "localhost", plain,
                                config=config)))
    assert checked["handoff"] is None
    assert "reason" in checked["filters"][0] and checked["filters"][0]["reason"] == ""
    done = ctl("filter", "check", "--provider", "bad host", plain, config=config)
    assert done.returncode == 2 and "--provider" in done.stderr, done.stderr

    # A trusted_relays value that cannot be read stops popgatectl, naming it.
    with open(config) as f:
        text = f.read()
    bad = os.path.join(os.path.dirname(path), "bad.conf")
    with open(bad, "w") as f:
        f.write(text.replace(RELAYS, "localhost:198.51.100.0/33"))
    done = ctl("filter", "check", plain, config=bad)
    assert done.returncode != 0
    assert "trusted_relays" in done.stderr and "198.51.100.0/33" in done.stderr, done.stderr
