"""
test_dnsbl.py — the DNS blocklist filters (issue 10, point 2) through the
daemon: its workers have no network, so their questions travel to the main
process, whose resolver asks a real name server (dnsmasq, popgate's [server]
nameservers) serving test blocklist zones; mail comes from a real Dovecot.

bl.test is a DNS blocklist listing the conventional test point 127.0.0.2
and the hand-off address of the listed message, 203.0.113.7; uribl.test a
URI blocklist listing listed-example.com. A profile that runs dnsbl and
uribl with weight 10 (the default quarantine_at) quarantines a listed
message, and `popgatectl queue show` names the zone and its answer; clean
mail is delivered. `popgatectl filter check` asks the same name server. A
name server that never answers costs each message [spam] dns_time_limit at
most: the message is delivered, its result neutral and saying why.
"""

import json
import socket
import threading
import time

import pytest

import itutil
from dnsserver import Dnsmasq
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-dnsbl-1"
HANDOFF = "203.0.113.7"


def message(subject, body, received=()):
    """A message with RECEIVED lines on top (the newest first)."""
    lines = [f"Received: {r}" for r in received]
    lines += ["From: seller@shop.example", "To: alice@localhost", f"Subject: {subject}",
              f"Message-ID: <{subject.replace(' ', '.')}@it.example>", "", body]
    return ("\n".join(lines) + "\n").encode()


def handed_off(address):
    """The Received chain of a message the provider's MX took from ADDRESS."""
    return ["from mx1.localhost (mx1.localhost [127.0.0.1]) by pop.localhost (Dovecot) "
            "with LMTP id 7HqG; Wed, 02 Dec 2026 10:00:02 +0000",
            f"from mail.shop.example (mail.shop.example [{address}]) by mx1.localhost "
            "(Postfix) with ESMTP id 4AB3C; Wed, 02 Dec 2026 10:00:01 +0000"]


@pytest.fixture
def dns(new_dir):
    reversed_handoff = ".".join(reversed(HANDOFF.split(".")))
    server = Dnsmasq(new_dir("dns"), {"2.0.0.127.bl.test": ["127.0.0.2"],
                                      f"{reversed_handoff}.bl.test": ["127.0.0.2"],
                                      "listed-example.com.uribl.test": ["127.0.0.2"]}).start()
    yield server
    server.stop()


def blocklist_profile(gate):
    ok(ctl("profile", "set", "default", "dnsbl", "on", "dnsbl.weight", "10", "uribl", "on",
           "uribl.weight", "10", config=gate.config_path))


def filters_of(gate, mid):
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=gate.config_path)))
    return {f["name"]: f for f in shown["verdict"]["filters"]}


def test_uribl_quarantines_a_listed_link(make_popgate, provider, dns, new_dir):
    gate = make_popgate(provider=provider, overrides={
        "server": {"nameservers": dns.address},
        "spam": {"dnsbl_zones": "bl.test", "uribl_zones": "uribl.test"}})
    blocklist_profile(gate)
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", message("offer", "Buy at http://www.listed-example.com/now !"))
    provider.deliver("alice", message("notes", "See https://docs.clean-example.org/a"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)
    assert dns.queries("listed-example.com.uribl.test") >= 1
    assert dns.queries("clean-example.org.uribl.test") >= 1

    (spam,), = gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")
    out = ok(ctl("queue", "show", spam, config=gate.config_path))
    assert ("uribl 1.000 x10.000 = 10.000: listed: listed-example.com "
            "(uribl.test 127.0.0.2)") in out, out
    (ham,), = gate.db_query("SELECT id FROM message WHERE state = 'delivery'")
    assert filters_of(gate, ham)["uribl"]["reason"] == "1 link domain, none listed"
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: notes" in served[0]

    # filter check asks the configured name server too.
    path = f"{new_dir('check')}/offer.eml"
    with open(path, "wb") as f:
        f.write(message("offer", "Buy at http://listed-example.com/"))
    checked = json.loads(ok(ctl("--json", "filter", "check", path, config=gate.config_path)))
    assert checked["action"] == "quarantine", checked["filters"]
    uribl = [f for f in checked["filters"] if f["name"] == "uribl"]
    assert uribl[0]["reason"] == "listed: listed-example.com (uribl.test 127.0.0.2)"
    assert gate.running


def test_dnsbl_quarantines_a_listed_handoff(make_popgate, provider, dns):
    gate = make_popgate(provider=provider, overrides={
        "server": {"nameservers": dns.address}, "spam": {"dnsbl_zones": "bl.test"}})
    blocklist_profile(gate)
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", message("listed", "Hello.", handed_off(HANDOFF)))
    provider.deliver("alice", message("clean", "Hello.", handed_off("198.51.100.20")))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)
    (spam,), = gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")
    out = ok(ctl("queue", "show", spam, config=gate.config_path))
    assert "dnsbl 1.000 x10.000 = 10.000: listed in bl.test (127.0.0.2)" in out, out
    (ham,), = gate.db_query("SELECT id FROM message WHERE state = 'delivery'")
    assert filters_of(gate, ham)["dnsbl"]["reason"] == "198.51.100.20 not listed"


class SilentNameServer:
    """A UDP socket on loopback that reads every question and answers none."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((itutil.LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.questions = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return f"{itutil.LOOPBACK}:{self.sock.getsockname()[1]}"

    def _run(self):
        while not self.stopping:
            try:
                self.sock.recvfrom(4096)
                self.questions += 1
            except socket.timeout:
                continue

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


def test_a_silent_name_server_costs_the_time_limit(make_popgate, provider):
    silent = SilentNameServer()
    try:
        gate = make_popgate(provider=provider, overrides={
            "server": {"nameservers": silent.address},
            "spam": {"dnsbl_zones": "bl.test", "uribl_zones": "uribl.test",
                     "dns_time_limit": 2}})
        blocklist_profile(gate)
        provider.add_user("alice", PASSWORD)
        for n in range(2):
            provider.deliver("alice", message(f"links {n}",
                                              f"See http://www.listed-example.com/{n} and "
                                              f"http://other{n}-example.net/",
                                              handed_off(HANDOFF)))
        started = time.monotonic()
        gate.first_login(ACCOUNT, PASSWORD)
        gate.wait_states({"delivery": 2}, timeout=60)
        # Two messages, one worker each or one after the other: at most
        # twice the limit and the fetch, never the resolver's own 15 s each.
        assert time.monotonic() - started < 2 * 2 + 10
        assert silent.questions >= 1
        for (mid,) in gate.db_query("SELECT id FROM message"):
            uribl = filters_of(gate, mid)["uribl"]
            assert (uribl["status"], uribl["points"]) == ("ok", 0.0)
            assert uribl["reason"].endswith("none listed; no answer: uribl.test timeout"), uribl
        served = gate.pickup(ACCOUNT, PASSWORD)
        assert len(served) == 2
        assert gate.running
    finally:
        silent.stop()
