"""
test_users.py — users and their addresses are made by the first successful
login (issue 2 point 8; SPEC U1, U2, P1).

The account name LOGIN@HOST is split at the last '@'. The user is named after
the login with '@' replaced by '+'; a login without '@' gets the provider host
appended ("alice" at "localhost" → "alice+localhost"). Its primary address is
USER@PSEUDO_DOMAIN (default pop3proxy.reddoxx).
"""

import poplib

import pytest

import itutil

PASSWORD = "users-secret-1"


def users_and_addresses(gate):
    return gate.db_query(
        "SELECT u.name, a.address, a.is_primary FROM user u"
        " LEFT JOIN address a ON a.user_id = u.id ORDER BY u.name, a.address")


def test_first_login_creates_user_and_primary_address(popgate, provider):
    provider.add_user("alice", PASSWORD)
    assert users_and_addresses(popgate) == []
    popgate.first_login("alice@localhost", PASSWORD)
    assert users_and_addresses(popgate) == [
        ("alice+localhost", "alice+localhost@pop3proxy.reddoxx", 1)]
    rows = popgate.db_query("SELECT a.name, a.login, a.host, u.name FROM account a"
                            " JOIN user u ON u.id = a.user_id")
    assert rows == [("alice@localhost", "alice", "localhost", "alice+localhost")]
    # A second login changes nothing.
    popgate.pickup("alice@localhost", PASSWORD)
    assert users_and_addresses(popgate) == [
        ("alice+localhost", "alice+localhost@pop3proxy.reddoxx", 1)]


def test_login_containing_at_is_split_at_the_last_at(popgate, provider):
    provider.add_user("bob@example.org", PASSWORD)
    popgate.first_login("bob@example.org@localhost", PASSWORD)
    # The provider was asked for the login "bob@example.org".
    itutil.wait_until(lambda: provider.logins("bob@example.org") >= 1, 30,
                      what="Dovecot to log bob's login")
    assert users_and_addresses(popgate) == [
        ("bob+example.org", "bob+example.org@pop3proxy.reddoxx", 1)]
    rows = popgate.db_query("SELECT login, host FROM account")
    assert rows == [("bob@example.org", "localhost")]


def test_custom_pseudo_domain(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"users": {"pseudo_domain": "gw.example.net"}})
    provider.add_user("carol", PASSWORD)
    gate.first_login("carol@localhost", PASSWORD)
    assert users_and_addresses(gate) == [("carol+localhost", "carol+localhost@gw.example.net", 1)]


def test_failed_first_login_creates_no_user(popgate, provider):
    provider.add_user("dave", PASSWORD)
    with pytest.raises(poplib.error_proto):
        popgate.login("dave@localhost", "wrong")
    with pytest.raises(poplib.error_proto):
        popgate.login("nobody-here@localhost", PASSWORD)
    assert users_and_addresses(popgate) == []
    assert popgate.db_query("SELECT count(*) FROM account") == [(0,)]
