"""
test_auth.py — the spf, dkim and dmarc filters (issue 10, points 2 and 6)
with real parts: dnsmasq serving sender.test's SPF record, its DKIM key and
its DMARC policy (p=reject); messages DKIM-signed by python3-dkim, put at a
real Dovecot with the Received line and Return-Path its MX would write;
popgate fetching them, its workers asking their DNS questions through the
daemon's resolver.

Three messages from kim@sender.test: one sent directly (SPF, DKIM and DMARC
pass), one forwarded by a host outside sender.test's SPF record (SPF fails,
the signature survives, DMARC passes through it) and one forged, unsigned,
from another host (SPF and DMARC fail: p=reject scores it to a tag). The
Authentication-Results header and the X-Popgate-Spam-* headers say so, and
`popgatectl filter check` explains the forged one offline through the same
DNS server.
"""

import base64
import json
import os
import secrets
import subprocess

import dkim
import pytest

from dnsserver import Dnsmasq
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-auth-1"
SENDER_ADDRESS = "192.0.2.25"     # in sender.test's SPF record
FORWARDER_ADDRESS = "198.51.100.9"  # a forwarder: not in it
FORGER_ADDRESS = "203.0.113.66"
SELECTOR = "it2026"


def rsa_key(directory):
    """A new RSA key: (private PEM, the DKIM TXT record's strings)."""
    path = os.path.join(directory, "dkim.pem")
    subprocess.run(["openssl", "genrsa", "-out", path, "2048"], check=True,
                   capture_output=True)
    with open(path, "rb") as f:
        pem = f.read()
    der = subprocess.run(["openssl", "rsa", "-in", path, "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    # A TXT string holds 255 bytes at most: the key spans several.
    return pem, [record[i:i + 200] for i in range(0, len(record), 200)]


def message(subject):
    return (f"From: Kim <kim@sender.test>\r\nTo: alice@localhost\r\nSubject: {subject}\r\n"
            f"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@sender.test>\r\n\r\n"
            f"Hello Alice,\r\n\r\nthis is {subject}.\r\n").encode()


def signed(pem, subject):
    body = message(subject)
    return dkim.sign(body, SELECTOR.encode(), b"sender.test", pem,
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                     linesep=b"\r\n") + body


def delivered_by(address, data):
    """DATA as the provider's MX stores it, received from ADDRESS."""
    return (f"Return-Path: <kim@sender.test>\r\n"
            f"Received: from mail.example.net (mail.example.net [{address}])\r\n"
            f"\tby mx.provider.test with ESMTPS id 4Zx1; Wed, 02 Dec 2026 10:00:01 +0000\r\n"
            ).encode() + data


@pytest.fixture
def auth_env(it_root, make_popgate, provider):
    directory = os.path.join(it_root, "auth-" + secrets.token_hex(4))
    os.makedirs(directory)
    pem, key_strings = rsa_key(directory)
    dns = Dnsmasq(directory, {}, txt={
        "sender.test": [[f"v=spf1 ip4:{SENDER_ADDRESS} -all"]],
        f"{SELECTOR}._domainkey.sender.test": [key_strings],
        "_dmarc.sender.test": [["v=DMARC1; p=reject"]],
    }).start()
    gate = make_popgate(provider=provider, overrides={"server": {"nameservers": dns.address}})
    env = type("Env", (), {})()
    env.gate, env.dns, env.pem, env.dir, env.provider = gate, dns, pem, directory, provider
    yield env
    gate.stop()
    dns.stop()


def header_of(served):
    return served.split(b"\r\n\r\n", 1)[0].decode()


def test_spf_dkim_dmarc_fetched(auth_env):
    gate, provider, config = auth_env.gate, auth_env.provider, auth_env.gate.config_path
    ok(ctl("profile", "set", "default", "spf", "on", "dkim", "on", "dmarc", "on",
           config=config))
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", delivered_by(SENDER_ADDRESS, signed(auth_env.pem, "direct")))
    provider.deliver("alice", delivered_by(FORWARDER_ADDRESS,
                                           signed(auth_env.pem, "forwarded")))
    provider.deliver("alice", delivered_by(FORGER_ADDRESS, message("forged")))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 3}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)
    served = {}
    subjects = {}
    for data in gate.pickup(ACCOUNT, PASSWORD):
        block = header_of(data)
        subject = next(line for line in block.split("\r\n") if line.startswith("Subject: "))
        subject = subject[len("Subject: "):]
        key = subject.removeprefix("[SPAM] ")
        served[key] = block
        subjects[key] = subject
    assert sorted(served) == ["direct", "forged", "forwarded"]
    # Only the tagged one is served with the subject prefix.
    assert subjects == {"direct": "direct", "forwarded": "forwarded",
                        "forged": "[SPAM] forged"}, subjects

    direct = served["direct"]
    assert ("Authentication-Results: localhost;\r\n"
            "\tspf=pass smtp.mailfrom=sender.test;\r\n"
            f"\tdkim=pass header.d=sender.test header.s={SELECTOR};\r\n"
            "\tdmarc=pass (p=reject) header.from=sender.test\r\n") in direct, direct
    assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in direct, direct

    # Forwarded: SPF breaks, DKIM does not, DMARC passes through DKIM.
    forwarded = served["forwarded"]
    assert ("\tspf=fail smtp.mailfrom=sender.test;\r\n"
            f"\tdkim=pass header.d=sender.test header.s={SELECTOR};\r\n"
            "\tdmarc=pass (p=reject) header.from=sender.test\r\n") in forwarded, forwarded
    assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in forwarded, forwarded
    assert (f"\tspf=3.000 x1.000 (spf=fail for {FORWARDER_ADDRESS} (envelope from "
            "sender.test))") in forwarded, forwarded

    # Forged: nothing vouches for it and its domain says reject.
    forged = served["forged"]
    assert ("\tspf=fail smtp.mailfrom=sender.test;\r\n\tdkim=none;\r\n"
            "\tdmarc=fail (p=reject) header.from=sender.test\r\n") in forged, forged
    assert "X-Popgate-Spam-Status: Yes, action=tag\r\n" in forged, forged
    assert ("\tdmarc=6.000 x1.000 (dmarc=fail p=reject for From sender.test (policy of "
            "sender.test; spf not aligned, dkim not aligned))") in forged, forged
    # Each message asked for the SPF record and the policy at most once (the
    # daemon's resolver caches, so dnsmasq may see fewer).
    assert 1 <= auth_env.dns.queries("sender.test", "txt") <= 3
    assert 1 <= auth_env.dns.queries("_dmarc.sender.test", "txt") <= 3
    assert gate.events("filter_failed") == []
    assert gate.running


def test_filter_check_explains(auth_env):
    config = auth_env.gate.config_path
    path = os.path.join(auth_env.dir, "forged.eml")
    with open(path, "wb") as f:
        f.write(delivered_by(FORGER_ADDRESS, message("forged")))
    # The default profile has none of the three: a profile of their own.
    ok(ctl("profile", "add", "auth", config=config))
    ok(ctl("profile", "set", "auth", "spf", "on", "dkim", "on", "dmarc", "on",
           config=config))
    checked = json.loads(ok(ctl("--json", "filter", "check", "--profile", "auth", path,
                                config=config)))
    assert (checked["action"], checked["score"]) == ("tag", 9.0), checked
    reasons = {f["name"]: (f["points"], f["reason"]) for f in checked["filters"]}
    assert reasons["spf"] == (3.0, f"spf=fail for {FORGER_ADDRESS} (envelope from sender.test)")
    assert reasons["dkim"] == (0.0, "dkim=none (no signature)")
    assert reasons["dmarc"][0] == 6.0
    out = ok(ctl("filter", "check", "--profile", "auth", path, config=config))
    assert "dmarc 6.000 x1.000 = 6.000: dmarc=fail p=reject for From sender.test" in out, out
