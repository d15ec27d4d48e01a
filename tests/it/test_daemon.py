"""
test_daemon.py — what the daemon promises beyond the POP3 dialogue (issue 2,
points 1, 3 and 4): it runs as its unprivileged user, keeps no password in
plain text anywhere, throttles failed logins, limits sessions and idle time,
enforces the provider policy (allow-list, no private addresses unless
allowed, STLS towards the provider), and traces a message by its id.
"""

import os
import poplib
import pwd
import socket
import time

import pytest

import itutil
from popgate import error_text

ACCOUNT = "alice@localhost"
PASSWORD = "pw-Zq8#unique-4711"


def proc_uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise AssertionError("no Uid line")


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_runs_as_its_service_user(popgate, provider):
    service = pwd.getpwnam("popgate")
    assert proc_uid(popgate.pid) == service.pw_uid
    # The workers run as a user of their own (test_worker_user.py).
    worker_user = pwd.getpwnam("popgate-worker")
    for worker in popgate.worker_pids():
        assert proc_uid(worker) == worker_user.pw_uid
    # The data folder was handed over to it, and the key is private.
    key = os.stat(os.path.join(popgate.data_dir, "secret.key"))
    assert key.st_uid == service.pw_uid
    assert key.st_mode & 0o077 == 0
    # It still works as that user: a first login creates the account.
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)


def test_no_password_in_plain_text_anywhere(popgate, provider, corpus):
    provider.add_user("alice", PASSWORD)
    with pytest.raises(poplib.error_proto):
        popgate.login(ACCOUNT, PASSWORD + "-wrong")
    provider.deliver_many("alice", corpus.messages(3, seed=3))
    popgate.first_login(ACCOUNT, PASSWORD)      # its QUIT starts the fetch
    popgate.wait_states({"delivery": 3}, timeout=30)
    popgate.pickup(ACCOUNT, PASSWORD, mode="pop3s")
    popgate.stop()

    needle = PASSWORD.encode()
    places = [popgate.log_file, popgate.stderr_path, popgate.config_path]
    for folder, _, files in os.walk(popgate.data_dir):
        places += [os.path.join(folder, name) for name in files]
    for path in places:
        with open(path, "rb") as f:
            assert needle not in f.read(), f"the password is readable in {path}"
    # The account row holds an argon2id hash and a sealed secret.
    (hash_text, secret), = popgate.db_query(
        "SELECT password_hash, password_secret FROM account")
    assert hash_text.startswith("$argon2id$")
    assert needle not in bytes(secret)


def test_failed_logins_are_throttled(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={
        "server": {"login_fail_limit": 3, "login_fail_window": 600}})
    provider.add_user("alice", PASSWORD)
    gate.first_login(ACCOUNT, PASSWORD)
    for _ in range(3):
        with pytest.raises(poplib.error_proto) as refused:
            gate.login(ACCOUNT, "wrong")
        assert error_text(refused.value).startswith("-ERR [AUTH]")
    # Dovecot logs a failed login when its connection ends: let the last one land.
    itutil.wait_until(lambda: provider.failed_logins("alice") == 3, 10,
                      what="Dovecot to log the three failed logins")
    # Past the limit even the right password is refused, without asking anyone.
    asked = provider.failed_logins("alice")
    with pytest.raises(poplib.error_proto) as throttled:
        gate.login(ACCOUNT, PASSWORD)
    assert error_text(throttled.value).startswith("-ERR [SYS/TEMP]")
    assert "too many failed logins" in error_text(throttled.value)
    assert provider.failed_logins("alice") == asked
    # Another account from the same address is throttled too (per address).
    provider.add_user("bob", PASSWORD)
    with pytest.raises(poplib.error_proto) as same_address:
        gate.login("bob@localhost", PASSWORD)
    assert "too many failed logins" in error_text(same_address.value)


def test_wrong_password_answer_is_delayed(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"server": {"login_fail_delay_ms": 800}})
    provider.add_user("alice", PASSWORD)
    gate.first_login(ACCOUNT, PASSWORD)
    started = time.monotonic()
    with pytest.raises(poplib.error_proto):
        gate.login(ACCOUNT, "wrong")
    assert time.monotonic() - started >= 0.8


def test_sessions_per_address_are_limited(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"server": {"max_sessions_per_ip": 2}})
    first, second = gate.connect(), gate.connect()
    with socket.create_connection((itutil.LOOPBACK, gate.pop3_port), timeout=10) as third:
        reply = third.makefile("rb").readline()
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    first.quit()
    # A freed place is given to the next client.
    itutil.wait_until(lambda: _greets(gate), 10, what="a new session after one ended")
    second.quit()


def _greets(gate):
    with socket.create_connection((itutil.LOOPBACK, gate.pop3_port), timeout=10) as s:
        return s.makefile("rb").readline().startswith(b"+OK")


def test_login_timeout_closes_the_session(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"server": {"login_timeout": 1}})
    with socket.create_connection((itutil.LOOPBACK, gate.pop3_port), timeout=10) as s:
        reader = s.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        started = time.monotonic()
        assert reader.readline().startswith(b"-ERR")
        assert reader.readline() == b""           # closed
        assert 0.5 <= time.monotonic() - started < 8


def test_allow_list_refuses_other_hosts(make_popgate, provider):
    gate = make_popgate(provider=provider,
                        overrides={"providers": {"allow": "*.provider.example pop.gmx.net"}})
    provider.add_user("alice", PASSWORD)
    with pytest.raises(poplib.error_proto) as refused:
        gate.login(ACCOUNT, PASSWORD)
    assert "not allowed" in error_text(refused.value)
    assert provider.logins("alice") == 0              # the provider was never asked
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]


def test_private_address_refused_without_policy(make_popgate, provider, test_ca):
    # The same Dovecot, but the policy for "localhost" does not allow loopback.
    gate = make_popgate(provider=provider, overrides={
        "provider localhost": {"allow_private": "no"}})
    provider.add_user("alice", PASSWORD)
    with pytest.raises(poplib.error_proto) as refused:
        gate.login(ACCOUNT, PASSWORD)
    assert error_text(refused.value).startswith("-ERR [SYS/TEMP]")
    assert provider.logins("alice") == 0
    itutil.wait_until(lambda: any("private" in e.detail for e in gate.events("login_failed")),
                      30, what="a login_failed line naming the private address")
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]


def test_provider_reached_with_stls(make_popgate, provider, corpus):
    gate = make_popgate(provider=provider, tls="starttls")
    provider.add_user("alice", PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver_many("alice", corpus.messages(2, seed=8))
    gate.pickup(ACCOUNT, PASSWORD)          # QUIT starts the fetch
    gate.wait_states({"delivery": 2}, timeout=30)
    itutil.wait_value(lambda: provider.count("alice"), 0, 30, what="alice's provider mailbox")
    itutil.wait_until(lambda: "TLS" in provider.log_text(), 30,
                      what="Dovecot to log the TLS session")


def test_plain_text_to_provider_only_where_allowed(make_popgate, provider):
    # Without a policy saying tls = none, popgate never speaks plain text to
    # the provider: here the policy asks for TLS on Dovecot's plain port.
    gate = make_popgate(provider=provider, overrides={
        "provider localhost": {"port": provider.pop3_port, "tls": "implicit"}})
    provider.add_user("alice", PASSWORD)
    with pytest.raises(poplib.error_proto) as refused:
        gate.login(ACCOUNT, PASSWORD)
    assert error_text(refused.value).startswith("-ERR [SYS/TEMP]")
    assert provider.logins("alice") == 0


def test_a_message_is_traced_by_its_id(popgate, provider, corpus):
    provider.add_user("alice", PASSWORD)
    popgate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver_many("alice", corpus.messages(1, seed=9))
    popgate.pickup(ACCOUNT, PASSWORD)
    popgate.wait_states({"delivery": 1}, timeout=30)
    popgate.pickup(ACCOUNT, PASSWORD)
    (message_id,), = popgate.db_query("SELECT id FROM message")
    # Each move between states is one "state" event of its own (store/lifecycle.h).
    popgate.wait_message_path(message_id, ["stored", "attributed", "state", "processed",
                                           "state", "delivered"])
    assert all(e.account == ACCOUNT for e in popgate.events() if e.id == message_id)
