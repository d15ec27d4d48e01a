"""
test_console.py — the user console's login (issue 3, point 5; SPEC U6) and the
administrator's password, through `popgatectl auth check|admin passwd|admin
check` against a running popgate with a real Dovecot as the provider.

A provider-created user logs in with the user name ('+' for '@') or the POP3
account name with '@' or '+', and the provider password: first against the
stored hash, then, when that differs, live at the provider. A local user has
the password 'user passwd' set. Failures are throttled like POP3 logins, and
the count is kept in the store, so it holds across popgatectl runs and
against the daemon.
"""

import json

import pytest

from itutil import wait_until
from test_ctl import ctl, ok

PASSWORD = "console-secret-4"
LIMIT = 3


@pytest.fixture
def gate(make_popgate, provider):
    gate = make_popgate(provider=provider,
                        overrides={"server": {"login_fail_limit": LIMIT, "login_fail_window": 600}})
    provider.add_user("alice", PASSWORD)
    gate.first_login("alice@localhost", PASSWORD)
    # The live check at the first login, then the fetch its QUIT started.
    wait_until(lambda: provider.logouts("alice") >= 2, timeout=30, what="the first fetch")
    return gate


def check(gate, name, password, *extra):
    return ctl("--json", "auth", "check", name, *extra, config=gate.config_path,
               stdin=password + "\n")


def outcome(done):
    result = json.loads(done.stdout)
    assert (done.returncode == 0) == result["ok"], done
    return result


@pytest.mark.parametrize("name", ["alice+localhost", "alice@localhost", "ALICE+Localhost"])
def test_provider_user_logs_in_by_user_or_account_name(gate, provider, name):
    logins_before = provider.logins("alice")
    result = outcome(check(gate, name, PASSWORD))
    assert result == {"user": "alice+localhost", "role": "user", "ok": True, "result": "ok",
                      "message": "logged in"}
    # The stored hash matched: the provider was not asked.
    assert provider.logins("alice") == logins_before
    # popgatectl records the login in the daemon's log.
    logged = gate.events("console_login")
    assert len(logged) == 1 and logged[0]["role"] == "ctl"
    assert "from the command line" in logged[0]["detail"]


def test_full_account_name_of_a_mail_address_login(make_popgate, provider):
    gate = make_popgate(provider=provider)
    provider.add_user("bob@example.org", PASSWORD)
    gate.first_login("bob@example.org@localhost", PASSWORD)
    for name in ["bob+example.org", "bob@example.org", "bob@example.org@localhost",
                 "bob+example.org+localhost"]:
        assert outcome(check(gate, name, PASSWORD))["user"] == "bob+example.org", name


def test_wrong_password_and_unknown_user_are_refused_alike(gate):
    wrong = check(gate, "alice+localhost", "not-it")
    unknown = check(gate, "nobody+localhost", PASSWORD)
    for done in (wrong, unknown):
        assert done.returncode == 1
        assert outcome(done) == {"user": None, "role": None, "ok": False,
                                 "result": "rejected",
                                 "message": "invalid user name or password"}
    assert PASSWORD not in wrong.stderr + unknown.stderr + gate.log_text()
    assert len(gate.events("console_login_failed")) == 2
    assert "not-it" not in wrong.stderr + gate.log_text()


def test_password_changed_at_the_provider_is_checked_live(gate, provider):
    provider.set_password("alice", "changed-at-provider-9")
    logins_before = provider.logins("alice")
    result = outcome(check(gate, "alice+localhost", "changed-at-provider-9"))
    assert result["ok"] and result["message"] == "logged in (checked at localhost)"
    wait_until(lambda: provider.logins("alice") == logins_before + 1, 30,
               what="Dovecot to log the live check's login")
    # The console never rewrites the provider credentials: the old password
    # still matches the stored hash, as it does for POP3 until a POP3 login
    # with the new one replaces it.
    stored = gate.db_query("SELECT password_hash FROM account")
    assert outcome(check(gate, "alice+localhost", PASSWORD))["ok"]
    assert gate.db_query("SELECT password_hash FROM account") == stored
    gate.pickup("alice@localhost", "changed-at-provider-9")
    assert gate.db_query("SELECT password_hash FROM account") != stored
    # Now the old password differs from the hash, and the provider says no.
    assert outcome(check(gate, "alice+localhost", PASSWORD))["result"] == "rejected"


def test_provider_unreachable_is_not_a_rejection(gate, provider):
    provider.set_password("alice", "changed-again-3")
    provider.stop()
    done = check(gate, "alice+localhost", "changed-again-3")
    assert done.returncode == 1
    result = outcome(done)
    assert result["result"] == "unavailable"
    assert "cannot reach the provider localhost" in result["message"]


def test_local_user_has_a_local_password(gate):
    ok(ctl("user", "add", "carol", config=gate.config_path))
    # No password yet: nothing logs in.
    assert outcome(check(gate, "carol", "anything"))["result"] == "rejected"
    ok(ctl("user", "passwd", "carol", config=gate.config_path, stdin="carol-local-pw\n"))
    assert outcome(check(gate, "carol", "carol-local-pw"))["user"] == "carol"
    assert outcome(check(gate, "carol", "carol-local-pw-x"))["result"] == "rejected"


def test_failures_are_throttled_across_runs(gate):
    for _ in range(LIMIT):
        assert outcome(check(gate, "alice@localhost", "guess"))["result"] == "rejected"
    # The right password is refused now, under every spelling of the name.
    for name in ["alice+localhost", "alice@localhost"]:
        result = outcome(check(gate, name, PASSWORD))
        assert result["result"] == "throttled", name
    assert gate.db_query("SELECT key, failures FROM login_failure") == [
        ("user:alice+localhost", LIMIT)]
    # Other users are not affected.
    ok(ctl("user", "add", "dave", config=gate.config_path))
    ok(ctl("user", "passwd", "dave", config=gate.config_path, stdin="dave-pw\n"))
    assert outcome(check(gate, "dave", "dave-pw"))["ok"]
    # The window passes: the user gets in again and the count is cleared.
    gate.db_write("UPDATE login_failure SET window_start = window_start - 600")
    assert outcome(check(gate, "alice+localhost", PASSWORD))["ok"]
    assert gate.db_query("SELECT count(*) FROM login_failure WHERE key LIKE 'user:alice%'") == [
        (0,)]


def test_table_output_and_usage(gate):
    done = ctl("auth", "check", "alice+localhost", config=gate.config_path,
               stdin=PASSWORD + "\n")
    assert ok(done) == "alice+localhost: logged in\n"
    done = ctl("auth", "check", "alice+localhost", config=gate.config_path, stdin="bad\n")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == \
        "popgatectl: rejected: invalid user name or password"
    assert ctl("auth", "check", config=gate.config_path).returncode == 2
    assert ctl("auth", "check", "a", "b", config=gate.config_path).returncode == 2
    done = ctl("auth", "check", "alice+localhost", config=gate.config_path, stdin="")
    assert done.returncode == 1 and "no password on standard input" in done.stderr
    assert "standard input" in ok(ctl("auth", "check", "--help"))


def test_admin_password(gate):
    config = gate.config_path
    done = ctl("--json", "admin", "check", config=config, stdin="x\n")
    assert done.returncode == 1
    assert "no administrator password is set" in json.loads(done.stdout)["message"]
    assert json.loads(ok(ctl("--json", "admin", "passwd", config=config,
                             stdin="admin-pw-1\n"))) == {"password_set": True}
    value, = gate.db_query("SELECT value FROM setting WHERE key = 'admin_password_hash'")
    assert value[0].startswith("$argon2id$") and "admin-pw-1" not in value[0]
    assert ok(ctl("admin", "check", config=config, stdin="admin-pw-1\n")) == \
        "admin: logged in\n"
    # The administrator logs in as a role, not as a user named "admin".
    assert json.loads(ok(ctl("--json", "admin", "check", config=config,
                             stdin="admin-pw-1\n"))) == {
        "user": None, "role": "administrator", "ok": True, "result": "ok",
        "message": "logged in"}
    assert ctl("admin", "check", config=config, stdin="admin-pw-2\n").returncode == 1
    # A new password replaces the old one.
    ok(ctl("admin", "passwd", config=config, stdin="admin-pw-2\n"))
    assert ctl("admin", "check", config=config, stdin="admin-pw-1\n").returncode == 1
    assert ok(ctl("admin", "check", config=config, stdin="admin-pw-2\n"))
    assert ctl("admin", "passwd", config=config, stdin="\n").returncode == 1
    assert ctl("admin", "passwd", "extra", config=config).returncode == 2
