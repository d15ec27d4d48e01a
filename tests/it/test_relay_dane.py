"""
test_relay_dane.py — DANE for the SMTP relay (RFC 7672, issue 9 point 4) in
the running daemon: a DNSSEC-signed zone dane.test served by NSD
(dnssec_zone.SignedZone), popgate's validating resolver anchored at that
zone ([server] dns_trust_anchor), and an aiosmtpd sink as the zone's MX
with a certificate for mx.dane.test from a CA of this test.

  TLSA 3 1 1 of the MX's key      delivered, over TLS
  TLSA 2 0 1 of the CA            delivered, over TLS
  a TLSA that matches nothing     not delivered (nor in plain text): pending,
                                  a DANE reason in `popgatectl queue`
  only unusable TLSA (PKIX-EE)    TLS required, not authenticated
  bogus signatures                not delivered: pending (bad trust anchor,
                                  expired signatures, a spoiled TLSA record)
  an unsigned zone                opportunistic TLS as before, also to an MX
                                  without STARTTLS
"""

import hashlib
import json
import os
import secrets
import ssl
import subprocess

import pytest

import itutil
import test_relay_mta_sts
import tlsca
from dnssec_zone import SignedZone
from test_ctl import ctl, ok
from test_relay_delivery import Sink, queue_outbound, recipient_rows

MX_ADDRESS = "127.0.0.31"
MX_HOST = "mx.dane.test"
MX2_ADDRESS = "127.0.0.32"
MX2_HOST = "mx2.dane.test"
RECIPIENT = "bob@dane.test"
STS_POLICY_ADDRESS = "127.0.0.33"  # mta-sts.dane.test


@pytest.fixture(scope="module")
def mx_ca(it_root):
    """A CA of this test and its certificate for mx.dane.test."""
    return tlsca.make_ca(os.path.join(it_root, "dane-ca-" + secrets.token_hex(4)),
                         name="DANE test CA", host=MX_HOST)


def chain_context(ca):
    """A server context presenting the MX certificate and the CA after it
    (RFC 7671 5.2.2: a DANE-TA server sends its trust anchor)."""
    chain = os.path.join(ca.dir, "chain.pem")
    with open(chain, "w") as out:
        for path in (ca.server_cert, ca.ca_cert):
            with open(path) as f:
                out.write(f.read())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(chain, ca.server_key)
    return context


def spki_sha256(cert_path):
    """SHA-256 of the certificate's SubjectPublicKeyInfo (selector 1, matching 1)."""
    pem = subprocess.run(["openssl", "x509", "-in", cert_path, "-pubkey", "-noout"],
                         check=True, timeout=30, capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pem,
                         check=True, timeout=30, capture_output=True).stdout
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert_path):
    """SHA-256 of the whole certificate (selector 0, matching 1)."""
    with open(cert_path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


@pytest.fixture
def dane_env(it_root, make_popgate):
    """make(tlsa=None, signed=True, broken=None, starttls=True, ca=...):
    the zone, the MX sink and popgate; the environment."""
    made = []

    def make(ca, tlsa=None, signed=True, broken=None, starttls=True, extra=(), relay=None):
        directory = os.path.join(it_root, "dane-" + secrets.token_hex(4))
        port = itutil.free_port()
        records = ["@ IN MX 10 mx", f"mx IN A {MX_ADDRESS}", *extra]
        for record in tlsa or []:
            records.append(f"_{port}._tcp.mx IN TLSA {record}")
        zone = SignedZone(directory, "dane.test", records, signed=signed,
                          broken=broken).start()
        made.append(zone)
        sink = Sink(MX_ADDRESS, port, tls_context=chain_context(ca) if starttls else None,
                    require_tls=False).start()
        made.append(sink)
        server = {"nameservers": zone.address, "hostname": "gate.test",
                  "dns_trust_anchor": zone.trust_anchor_path() if signed else ""}
        gate = make_popgate(overrides={
            "server": server,
            "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                      "retry_max": 3600, **(relay or {})},
        })
        env = type("Env", (), {})()
        env.gate, env.mx, env.zone, env.port = gate, sink, zone, port
        return env

    yield make
    for thing in made:
        thing.stop()


def send(env):
    """Queues one message for bob@dane.test and flushes; its id."""
    message_id = queue_outbound(env.gate, "alice@office.test", [RECIPIENT])
    ok(ctl("queue", "flush", config=env.gate.config_path))
    return message_id


def wait_first_attempt(env, message_id):
    itutil.wait_until(lambda: recipient_rows(env.gate, message_id)[RECIPIENT][1] >= 1,
                      timeout=40, what="the first delivery attempt")
    return recipient_rows(env.gate, message_id)[RECIPIENT]


def queue_reply(env, message_id):
    """The recipient's last reply as `popgatectl --json queue outbound` shows it."""
    listing = json.loads(ok(ctl("--json", "queue", "outbound", config=env.gate.config_path)))
    message, = [m for m in listing if m["id"] == message_id]
    recipient, = message["recipients"]
    return recipient["status"], recipient["last_reply"]


def authenticated(env):
    """Whether the relay logged a DANE policy that authenticates the MX."""
    return any("usable TLSA records" in e.detail and "(authenticate)" in e.detail
               for e in env.gate.events("relay"))


def test_dane_ee_record_matches(dane_env, mx_ca):
    env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(mx_ca.server_cert)}"])
    message_id = send(env)
    env.gate.wait_message_state(message_id, "sent", timeout=40)
    assert env.mx.received(RECIPIENT) == 1
    assert env.mx.messages[0]["tls"]
    assert authenticated(env)


def test_dane_wins_over_mta_sts(dane_env, mx_ca, test_ca, it_root, monkeypatch):
    """A domain that publishes both: the MX host has usable TLSA records, so
    DANE governs it and the MTA-STS policy in enforce mode, which names
    another host, is not applied to it (RFC 8461 2)."""
    directory = os.path.join(it_root, "dane-sts-" + secrets.token_hex(4))
    os.makedirs(directory)
    https_port = itutil.free_port()
    monkeypatch.setitem(test_relay_mta_sts.POLICIES, "dane.test",
                        "version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n")
    cert = test_relay_mta_sts.issue_cert(test_ca, directory, "policy", ["mta-sts.dane.test"])
    policies = test_relay_mta_sts.PolicyServer(
        STS_POLICY_ADDRESS, https_port, test_relay_mta_sts.server_context(*cert)).start()
    try:
        env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(mx_ca.server_cert)}"],
                       extra=['_mta-sts IN TXT "v=STSv1; id=1"',
                              f"mta-sts IN A {STS_POLICY_ADDRESS}"],
                       relay={"mta_sts_port": https_port, "ca_file": test_ca.ca_cert})
        message_id = send(env)
        env.gate.wait_message_state(message_id, "sent", timeout=40)
        assert policies.asked("dane.test") >= 1
        assert env.mx.received(RECIPIENT) == 1
        assert env.mx.messages[0]["tls"]
        assert authenticated(env)
    finally:
        policies.stop()


def test_dane_ta_record_matches(dane_env, mx_ca):
    env = dane_env(mx_ca, tlsa=[f"2 0 1 {cert_sha256(mx_ca.ca_cert)}"])
    message_id = send(env)
    env.gate.wait_message_state(message_id, "sent", timeout=40)
    assert env.mx.received(RECIPIENT) == 1
    assert env.mx.messages[0]["tls"]
    assert authenticated(env)


def test_dane_ta_checks_the_mx_name(dane_env, test_ca):
    """A DANE-TA record matches the chain's CA, but the certificate names
    localhost, not the MX (RFC 7672 3.2.2): not authenticated, not sent."""
    env = dane_env(test_ca, tlsa=[f"2 0 1 {cert_sha256(test_ca.ca_cert)}"])
    message_id = send(env)
    status, attempts, reply = wait_first_attempt(env, message_id)
    assert status == "pending"
    assert f"DANE: the certificate of {MX_HOST} is not authenticated: hostname mismatch" \
        in reply
    assert env.mx.messages == []


def test_dane_mismatch_is_deferred_never_plain(dane_env, mx_ca, rogue_ca):
    """The TLSA record names another key: the MX offers STARTTLS and would
    take plain mail too, but nothing is sent; the queue says DANE."""
    env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(rogue_ca.server_cert)}"])
    message_id = send(env)
    status, attempts, reply = wait_first_attempt(env, message_id)
    assert status == "pending"
    assert f"DANE: no TLSA record matched the certificate of {MX_HOST}" in reply
    assert env.mx.messages == []
    # One handshake, no plain-text retry (which would show as a second EHLO
    # session without TLS).
    assert env.mx.ehlos == 1
    status, last_reply = queue_reply(env, message_id)
    assert status == "pending" and "DANE" in last_reply
    assert env.gate.message_state(message_id) == "outbound"


def test_next_mx_after_a_dane_failure(it_root, make_popgate, mx_ca, rogue_ca):
    """The first MX's certificate matches none of its TLSA records: that MX
    is passed over (a temporary failure for it alone) and the second,
    whose record matches, takes the mail over TLS."""
    directory = os.path.join(it_root, "dane-" + secrets.token_hex(4))
    port = itutil.free_port()
    # A DANE-TA chain must carry the MX's name: mx2's certificate names mx2.
    ca2 = tlsca.make_ca(os.path.join(directory, "ca2"), name="DANE test CA 2", host=MX2_HOST)
    zone = SignedZone(os.path.join(directory, "zone"), "dane.test", [
        "@ IN MX 10 mx", "@ IN MX 20 mx2", f"mx IN A {MX_ADDRESS}", f"mx2 IN A {MX2_ADDRESS}",
        f"_{port}._tcp.mx IN TLSA 3 1 1 {spki_sha256(rogue_ca.server_cert)}",
        f"_{port}._tcp.mx2 IN TLSA 2 0 1 {cert_sha256(ca2.ca_cert)}"]).start()
    first = Sink(MX_ADDRESS, port, tls_context=chain_context(mx_ca), require_tls=False).start()
    second = Sink(MX2_ADDRESS, port, tls_context=chain_context(ca2), require_tls=False).start()
    try:
        gate = make_popgate(overrides={
            "server": {"nameservers": zone.address, "hostname": "gate.test",
                       "dns_trust_anchor": zone.trust_anchor_path()},
            "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                      "retry_max": 3600},
        })
        env = type("Env", (), {"gate": gate})()
        message_id = send(env)
        gate.wait_message_state(message_id, "sent", timeout=40)
        assert first.messages == [] and first.ehlos == 1
        assert second.received(RECIPIENT) == 1 and second.messages[0]["tls"]
        assert any(f"DANE: no TLSA record matched the certificate of {MX_HOST}" in e.detail
                   for e in gate.events("relay"))
    finally:
        first.stop()
        second.stop()
        zone.stop()


@pytest.mark.parametrize("broken", ["anchor", "expired"])
def test_bogus_zone_is_deferred(dane_env, mx_ca, broken):
    """Signatures that do not validate: the MX answer is bogus, the mail
    waits; no connection is made at all."""
    env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(mx_ca.server_cert)}"], broken=broken)
    message_id = send(env)
    status, attempts, reply = wait_first_attempt(env, message_id)
    assert status == "pending"
    assert "DNSSEC validation failed" in reply
    assert env.mx.ehlos == 0 and env.mx.messages == []
    assert env.gate.message_state(message_id) == "outbound"


@pytest.mark.parametrize("starttls", [True, False])
def test_unusable_records_still_require_tls(dane_env, mx_ca, rogue_ca, starttls):
    """Secure TLSA records, none usable (PKIX-EE is not for SMTP): TLS is
    still required, unauthenticated (RFC 7672 2.2); an MX without STARTTLS
    gets nothing."""
    env = dane_env(mx_ca, tlsa=[f"1 1 1 {spki_sha256(rogue_ca.server_cert)}"],
                   starttls=starttls)
    message_id = send(env)
    if starttls:
        env.gate.wait_message_state(message_id, "sent", timeout=40)
        assert env.mx.messages[0]["tls"]
        return
    status, attempts, reply = wait_first_attempt(env, message_id)
    assert status == "pending"
    assert "DANE (encrypt)" in reply and "STARTTLS" in reply
    assert env.mx.messages == []


def test_bogus_tlsa_is_deferred_never_plain(dane_env, mx_ca):
    """The MX answer validates, the TLSA answer does not: that host is not
    used (no plain text either), the mail waits with a DANE reason."""
    env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(mx_ca.server_cert)}"], broken="tlsa")
    message_id = send(env)
    status, attempts, reply = wait_first_attempt(env, message_id)
    assert status == "pending"
    assert "DANE: the DNSSEC validation of the TLSA records" in reply
    assert env.mx.ehlos == 0 and env.mx.messages == []


@pytest.mark.parametrize("starttls", [True, False])
def test_unsigned_zone_is_opportunistic(dane_env, mx_ca, rogue_ca, starttls):
    """No DNSSEC: a TLSA record that matches nothing is not believed; TLS
    when offered (unverified), plain text when not."""
    env = dane_env(mx_ca, tlsa=[f"3 1 1 {spki_sha256(rogue_ca.server_cert)}"], signed=False,
                   starttls=starttls)
    message_id = send(env)
    env.gate.wait_message_state(message_id, "sent", timeout=40)
    assert env.mx.received(RECIPIENT) == 1
    assert env.mx.messages[0]["tls"] == starttls
    assert not authenticated(env)


def test_bogus_answers_fail_the_relay_never_a_login(it_root, make_popgate, provider, test_ca,
                                                   mx_ca):
    """Name servers that break DNSSEC (here: a trust anchor no key of the
    zone matches, as a forwarder that strips signatures would look) make
    only the relay's lookups fail: the relay has a validating resolver of
    its own, and a login to a provider under the same zone still resolves
    and works."""
    directory = os.path.join(it_root, "dane-" + secrets.token_hex(4))
    port = itutil.free_port()
    zone = SignedZone(directory, "dane.test",
                      ["@ IN MX 10 mx", f"mx IN A {MX_ADDRESS}", "pop IN A 127.0.0.1"],
                      broken="anchor").start()
    try:
        provider_keys = {"port": provider.pop3s_port, "tls": "implicit",
                         "ca_file": test_ca.ca_cert, "verify": "no", "allow_private": "yes"}
        gate = make_popgate(overrides={
            "server": {"nameservers": zone.address, "hostname": "gate.test",
                       "dns_trust_anchor": zone.trust_anchor_path()},
            "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                      "retry_max": 3600},
            "provider pop.dane.test": provider_keys,
        })
        provider.add_user("dana", "dane-secret-7")
        gate.first_login("dana@pop.dane.test", "dane-secret-7")
        env = type("Env", (), {})()
        env.gate = gate
        message_id = send(env)
        status, attempts, reply = wait_first_attempt(env, message_id)
        assert status == "pending"
        assert "DNSSEC validation failed" in reply
    finally:
        zone.stop()
