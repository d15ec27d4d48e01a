"""
test_dns.py — provider host names through a real DNS server (dnsmasq, set as
popgate's [server] nameservers), and a host with several addresses: a
connection tries the next address when one refuses (issue 2's "provider
connect tries only the first address", mended).

multi.test has two addresses, 127.0.0.2 (nothing listens there) and
127.0.0.1 (Dovecot); dnsmasq hands them out in turn, so of two lookups one
puts the dead address first. loopback.test has only loopback addresses
(IPv4 and IPv6), which the address policy refuses one by one unless the
provider's policy allows private addresses. maildomain.test is a mail
domain without an address of its own: only MX and TXT records.
"""

import poplib

import pytest

import itutil

from dnsserver import Dnsmasq
from popgate import error_text

PASSWORD = "dns-secret-5"


@pytest.fixture
def dns(new_dir):
    server = Dnsmasq(new_dir("dns"), {"multi.test": ["127.0.0.2", "127.0.0.1"],
                                      "dead.test": ["127.0.0.2"],
                                      "loopback.test": ["127.0.0.1", "::1"]},
                     mx={"maildomain.test": [(10, "mx1.maildomain.test"),
                                             (20, "mx2.maildomain.test")]},
                     txt={"maildomain.test": [["v=spf1 -all"]]}).start()
    yield server
    server.stop()


def provider_keys(provider, test_ca):
    # The test certificate names localhost, not these names: this test is
    # about addresses, so the provider's name is not verified.
    return {"port": provider.pop3s_port, "tls": "implicit", "ca_file": test_ca.ca_cert,
            "verify": "no", "allow_private": "yes"}


@pytest.fixture
def gate(make_popgate, provider, test_ca, dns):
    return make_popgate(overrides={"server": {"nameservers": dns.address},
                                   "provider multi.test": provider_keys(provider, test_ca),
                                   "provider dead.test": provider_keys(provider, test_ca),
                                   "provider maildomain.test": provider_keys(provider, test_ca),
                                   "provider loopback.test": {
                                       **provider_keys(provider, test_ca),
                                       "allow_private": "no"}})


def test_a_refusing_address_is_skipped_for_the_next(gate, provider, dns):
    for i in range(4):
        provider.add_user(f"user{i}", PASSWORD)
        gate.first_login(f"user{i}@multi.test", PASSWORD)
    # Every login was checked live through the name server ...
    itutil.wait_until(lambda: dns.queries("multi.test") >= 4, 30,
                      what="dnsmasq to log four queries for multi.test")
    itutil.wait_until(lambda: provider.logins("user0") >= 1, 30,
                      what="Dovecot to log user0's login")
    # ... and at least one met the dead address first and went on.
    # The fetches the QUITs start connect too, and may log theirs only after
    # the last login: wait for the line.
    skipped = itutil.wait_until(
        lambda: [e for e in gate.events("fetch") if "trying its next address" in e["detail"]],
        30, what="a connection that tried the next address")
    assert all("at 127.0.0.2:" in e["detail"] for e in skipped)
    assert not gate.events("login_failed")


def test_no_address_answers(gate, provider, dns):
    provider.add_user("dora", PASSWORD)
    with pytest.raises(poplib.error_proto) as refused:
        gate.login("dora@dead.test", PASSWORD)
    text = error_text(refused.value)
    assert "[SYS/TEMP]" in text and "dead.test" in text
    failed, = gate.events("login_failed")
    assert "(127.0.0.2)" in failed["detail"]
    itutil.wait_until(lambda: dns.queries("dead.test") >= 1, 30,
                      what="dnsmasq to log a query for dead.test")


def test_unknown_name(gate, dns):
    with pytest.raises(poplib.error_proto) as refused:
        gate.login("erin@unknown.test", PASSWORD)
    assert "[SYS/TEMP]" in error_text(refused.value)
    failed, = gate.events("login_failed")
    assert "cannot resolve unknown.test: no such name" in failed["detail"]


def test_every_address_meets_the_policy(gate, provider, dns):
    """Both of loopback.test's addresses (A and AAAA) are refused by the
    address policy, so no connection is tried."""
    provider.add_user("lena", PASSWORD)
    with pytest.raises(poplib.error_proto) as refused:
        gate.login("lena@loopback.test", PASSWORD)
    assert "[SYS/TEMP]" in error_text(refused.value)
    failed, = gate.events("login_failed")
    assert "loopback.test resolves to a loopback, private or link-local address" \
        in failed["detail"]
    assert dns.queries("loopback.test", "a") >= 1
    assert dns.queries("loopback.test", "aaaa") >= 1
    assert provider.logins("lena") == 0


def test_a_mail_domain_without_an_address(gate, dns):
    """A name with records (MX, TXT) but no address is answered, with no
    address: the login fails at once, saying so, instead of waiting."""
    with pytest.raises(poplib.error_proto) as refused:
        gate.login("mia@maildomain.test", PASSWORD)
    assert "[SYS/TEMP]" in error_text(refused.value)
    failed, = gate.events("login_failed")
    assert "maildomain.test has no address" in failed["detail"]
    assert dns.queries("maildomain.test", "a") >= 1
