"""
test_naming.py — "No silent sharing" (issue 3 point 6; SPEC U2): the same
login at two providers never becomes one user.

Two real Dovecots play two providers, both on loopback: provider A is
reached by the host name "localhost", provider B by the address "127.0.0.1"
(the test certificate names both). Each has a mailbox of the same login with
its own password and its own mail.

The rule (src/store/login.c, store_login_user_name_new): a login without '@' gets '+'
and the provider host appended (alice at localhost → alice+localhost); a
login that is a mail address becomes the user name with '@' → '+'
(bob@example.org → bob+example.org). A name already taken gets the host
appended (bob+example.org+127.0.0.1), then a number (carol+localhost+2).
Names are compared without case, as the addresses made from them are.
Checked in the store and through popgatectl, and by what each login picks
up: only its own provider's mail.
"""

import json
import os
import poplib
import subprocess

import pytest

import itutil

from mailutil import strip_trace
from popgate import error_text, popgate_bin
from provider import Dovecot

HOST_A = "localhost"
HOST_B = "127.0.0.1"
PASSWORD_A = "naming-secret-at-a-1"
PASSWORD_B = "naming-secret-at-b-22"
PSEUDO_DOMAIN = "pop3proxy.reddoxx"


@pytest.fixture
def provider_b(new_dir, test_ca, _gates, provider):
    """A second Dovecot, the provider reached as HOST_B (`provider` is A)."""
    dovecot = Dovecot(new_dir("dovecot-b"), test_ca)
    dovecot.start()
    yield dovecot
    # As conftest does for `provider`: popgate stops before its providers.
    for gate in _gates:
        gate.close()
    dovecot.stop()


@pytest.fixture
def gate(make_popgate, provider, provider_b, test_ca):
    """popgate with [provider localhost] → provider A, [provider 127.0.0.1] → B."""
    section_b = {"port": provider_b.pop3s_port, "tls": "implicit", "ca_file": test_ca.ca_cert,
                 "allow_private": "yes"}
    return make_popgate(provider=provider, overrides={f"provider {HOST_B}": section_b})


def ctl_json(gate, *args):
    """The JSON popgatectl --json ARGS prints for GATE's store (exit 0 required)."""
    argv = [os.path.join(os.path.dirname(popgate_bin()), "popgatectl"),
            "--config", gate.config_path, "--json", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, input="")
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr}"
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in done.stderr, done.stderr
    return json.loads(done.stdout)


def message(subject):
    return (f"From: sender@elsewhere.example\nTo: someone@elsewhere.example\n"
            f"Subject: {subject}\nMessage-ID: <{subject}@naming.test>\n"
            f"Date: Sat, 28 Nov 2026 04:00:00 +0000\n\nBody of {subject}.\n").encode()


def users_and_addresses(gate):
    return gate.db_query(
        "SELECT u.name, a.address, a.is_primary FROM user u"
        " LEFT JOIN address a ON a.user_id = u.id ORDER BY u.name, a.address")


def accounts(gate):
    return gate.db_query("SELECT a.name, a.login, a.host, u.name FROM account a"
                         " JOIN user u ON u.id = a.user_id ORDER BY a.name")


def assert_refused(gate, account, password):
    with pytest.raises(poplib.error_proto) as refused:
        gate.login(account, password)
    assert error_text(refused.value).startswith("-ERR [AUTH]"), error_text(refused.value)


def assert_picks_up(gate, account, password, wires):
    """ACCOUNT's pickup serves exactly WIRES (in any order), each under a trace
    header naming ACCOUNT's provider host."""
    host = account.rsplit("@", 1)[1]
    trace = f"Received: from {host} by localhost (popgate)".encode()
    served = [strip_trace(m, trace) for m in gate.pickup(account, password)]
    assert sorted(served) == sorted(wires), f"{account} got other mail than its provider's"


def test_same_login_at_two_providers_is_two_users(gate, provider, provider_b):
    account_a, account_b = f"alice@{HOST_A}", f"alice@{HOST_B}"
    user_a, user_b = f"alice+{HOST_A}", f"alice+{HOST_B}"
    provider.add_user("alice", PASSWORD_A)
    provider_b.add_user("alice", PASSWORD_B)
    wires_a = provider.deliver_many("alice", [message(f"a-{i}") for i in range(2)])
    wires_b = provider_b.deliver_many("alice", [message(f"b-{i}") for i in range(3)])

    # A's password is no login at B, before either account exists ...
    assert_refused(gate, account_b, PASSWORD_A)
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]
    gate.first_login(account_a, PASSWORD_A)
    # ... nor once A's account exists: B is asked, not A's stored hash.
    assert_refused(gate, account_b, PASSWORD_A)
    assert accounts(gate) == [(account_a, "alice", HOST_A, user_a)]
    gate.first_login(account_b, PASSWORD_B)
    # With both accounts stored, each password opens only its own.
    assert_refused(gate, account_a, PASSWORD_B)
    assert_refused(gate, account_b, PASSWORD_A)

    assert accounts(gate) == [(account_b, "alice", HOST_B, user_b),
                              (account_a, "alice", HOST_A, user_a)]
    assert users_and_addresses(gate) == [
        (user_b, f"{user_b}@{PSEUDO_DOMAIN}", 1),
        (user_a, f"{user_a}@{PSEUDO_DOMAIN}", 1)]

    gate.wait_states({"delivery": 2}, account=account_a, timeout=60)
    gate.wait_states({"delivery": 3}, account=account_b, timeout=60)
    gate.wait_fetch_done(account_a)
    gate.wait_fetch_done(account_b)
    for dovecot in (provider, provider_b):
        itutil.wait_value(lambda: dovecot.count("alice"), 0, 30, what="alice's provider mailbox")

    # What the administrator sees: two provider users, one account each,
    # each with its own provider's messages.
    listed = {u["name"]: u for u in ctl_json(gate, "user", "list")}
    assert sorted(listed) == [user_b, user_a]
    assert [(listed[u]["origin"], listed[u]["addresses"], listed[u]["accounts"],
             listed[u]["messages"]) for u in (user_a, user_b)] == [
        ("provider", 1, 1, 2), ("provider", 1, 1, 3)]
    for user, account in ((user_a, account_a), (user_b, account_b)):
        shown = ctl_json(gate, "user", "show", user)
        assert shown["accounts"] == [account]
        assert shown["addresses"] == [{"address": f"{user}@{PSEUDO_DOMAIN}", "primary": True}]
    by_account = {a["name"]: a for a in ctl_json(gate, "account", "list")}
    assert {name: (a["user"], a["host"], a["login"], a["messages"]["delivery"])
            for name, a in by_account.items()} == {
        account_a: (user_a, HOST_A, "alice", 2), account_b: (user_b, HOST_B, "alice", 3)}

    # Each login picks up only its own provider's mail.
    assert_picks_up(gate, account_a, PASSWORD_A, wires_a)
    assert_picks_up(gate, account_b, PASSWORD_B, wires_b)
    gate.wait_states({"delivered": 2}, account=account_a, timeout=30)
    gate.wait_states({"delivered": 3}, account=account_b, timeout=30)


def test_same_address_login_at_two_providers_gets_the_host_appended(gate, provider, provider_b):
    login = "bob@example.org"
    account_a, account_b = f"{login}@{HOST_A}", f"{login}@{HOST_B}"
    user_a, user_b = "bob+example.org", f"bob+example.org+{HOST_B}"
    provider.add_user(login, PASSWORD_A)
    provider_b.add_user(login, PASSWORD_B)
    wires_a = provider.deliver_many(login, [message("bob-a")])
    wires_b = provider_b.deliver_many(login, [message(f"bob-b-{i}") for i in range(2)])

    gate.first_login(account_a, PASSWORD_A)
    assert users_and_addresses(gate) == [(user_a, f"{user_a}@{PSEUDO_DOMAIN}", 1)]
    assert_refused(gate, account_b, PASSWORD_A)
    # The second login of the same address finds its name taken: the host
    # of its provider is appended, and it becomes a user of its own.
    gate.first_login(account_b, PASSWORD_B)
    assert accounts(gate) == [(account_b, login, HOST_B, user_b),
                              (account_a, login, HOST_A, user_a)]
    assert users_and_addresses(gate) == [
        (user_a, f"{user_a}@{PSEUDO_DOMAIN}", 1),
        (user_b, f"{user_b}@{PSEUDO_DOMAIN}", 1)]
    (distinct,), = gate.db_query("SELECT count(DISTINCT user_id) FROM account")
    assert distinct == 2

    gate.wait_states({"delivery": 1}, account=account_a, timeout=60)
    gate.wait_states({"delivery": 2}, account=account_b, timeout=60)
    for user, account in ((user_a, account_a), (user_b, account_b)):
        assert ctl_json(gate, "user", "show", user)["accounts"] == [account]
    assert_picks_up(gate, account_a, PASSWORD_A, wires_a)
    assert_picks_up(gate, account_b, PASSWORD_B, wires_b)
    # A later login keeps its user; nothing new is made.
    assert gate.pickup(account_b, PASSWORD_B) == []
    assert [name for name, _, _ in users_and_addresses(gate)] == [user_a, user_b]


def test_name_taken_by_a_local_user_gets_a_number(gate, provider):
    # An administrator made the local user "carol+localhost" before carol's
    # first login: her provider user must not silently become that one.
    taken = f"carol+{HOST_A}"
    assert ctl_json(gate, "user", "add", taken)["name"] == taken
    provider.add_user("carol", PASSWORD_A)
    gate.first_login(f"carol@{HOST_A}", PASSWORD_A)

    numbered = f"{taken}+2"
    assert accounts(gate) == [(f"carol@{HOST_A}", "carol", HOST_A, numbered)]
    assert gate.db_query("SELECT name, origin FROM user ORDER BY name") == [
        (taken, "local"), (numbered, "provider")]
    assert ctl_json(gate, "user", "show", taken)["accounts"] == []
    assert ctl_json(gate, "user", "show", numbered)["addresses"] == [
        {"address": f"{numbered}@{PSEUDO_DOMAIN}", "primary": True}]


def test_names_differing_only_in_case_are_one_name(gate, provider, provider_b):
    # Dovecot takes logins without case; the second login must not fail on
    # a primary address that collides with the first one's.
    provider.add_user("dora@example.org", PASSWORD_A)
    provider_b.add_user("dora@example.org", PASSWORD_B)
    gate.first_login(f"dora@example.org@{HOST_A}", PASSWORD_A)
    gate.first_login(f"Dora@Example.org@{HOST_B}", PASSWORD_B)
    assert gate.db_query("SELECT name FROM user ORDER BY id") == [
        ("dora+example.org",), (f"Dora+Example.org+{HOST_B}",)]
