"""
test_ops.py — operating popgate (issue 8, item 8): a restart after a crash
logs in again only where a fetch was cut (the other accounts are spread over
[fetch] restart_spread), SIGHUP reopens the log for logrotate and reloads the
configuration (a broken file changes nothing, restart-only keys are kept),
and `popgatectl account del` removes an account, its mail and its user, also
while the daemon is fetching it.

No assertion is timed: each waits, with a deadline, for the state it checks
(the spread test only bounds a gap from below, which a slow machine widens).
"""

import os
import pwd
import signal
import socket
import threading
import time

import itutil
from test_ctl import ctl, ok

PASSWORD = "ops-provider-pw-8"


def account(user):
    return f"{user}@localhost"


def wait_log(gate, text, count=1, timeout=30.0):
    """Waits until COUNT log lines contain TEXT; returns them."""
    try:
        return itutil.wait_until(
            lambda: (lambda found: len(found) >= count and found)(
                [line for line in gate.log_lines() if text in line]),
            timeout, what=f"{count} log line(s) with {text!r}")
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n--- log ---\n{gate.log_tail()}") from None


def make_accounts(make_scripted, make_popgate, users, overrides=None):
    """A scripted provider with USERS, and a popgate where each has had its
    first login and the (empty) fetch its QUIT started."""
    scripted = make_scripted()
    for user in users:
        scripted.add_user(user, PASSWORD)
    gate = make_popgate(scripted=scripted, overrides=overrides)
    for user in users:
        gate.first_login_fetched(account(user), PASSWORD)
    return scripted, gate


def logins_since(scripted, user, since):
    """USER's logged-in provider sessions that started after SINCE (monotonic)."""
    return [s for s in scripted.logged_in_sessions(user) if s.started > since]


# ---- restart ----------------------------------------------------------------


def test_restart_fetches_only_cut_accounts(make_scripted, make_popgate):
    """SIGKILL while u0's fetch has stored a message and sent its DELE (not
    yet committed by QUIT): the restart fetches u0 at once, which deletes
    that message at the provider without storing it twice (G3), and logs in
    to none of the other accounts (they are spread over an hour)."""
    users = [f"u{i}" for i in range(6)]
    scripted, gate = make_accounts(make_scripted, make_popgate, users,
                                   {"fetch": {"restart_spread": 3600}})
    scripted.deliver("u0", b"Subject: one\n\nfirst body\n")
    scripted.deliver("u0", b"Subject: two\n\nsecond body\n")
    at_dele = threading.Event()
    release = threading.Event()

    def hold_dele(session, uidl):
        if not at_dele.is_set():
            at_dele.set()
            release.wait(30)

    scripted.on_dele = hold_dele
    try:
        # The pickup's QUIT starts the fetch; its first DELE is held.
        assert gate.pickup(account("u0"), PASSWORD) == []
        itutil.wait_until(at_dele.is_set, 30, what="the first DELE of u0's fetch")
        gate.kill()
    finally:
        scripted.on_dele = None
        release.set()
    assert len(scripted.mailboxes["u0"]) == 2   # no QUIT: nothing deleted there

    before = len(gate.fetches_done(account("u0")))
    restarted = time.monotonic()
    gate.start()
    gate.wait_fetch_done(account("u0"), before + 1)
    assert scripted.mailboxes["u0"] == []
    stored = gate.db_query("SELECT count(*) FROM message m JOIN account a ON a.id ="
                           " m.account_id WHERE a.name = ?", (account("u0"),))[0][0]
    assert stored == 2, "each message stored once (the first one's UIDL was recorded)"
    for user in users[1:]:
        assert logins_since(scripted, user, restarted) == [], \
            f"{user} was fetched at the restart although its last fetch ended well"
    wait_log(gate, "recovery: 5 account(s) fetched over the next 3600 s")
    # A pickup still fetches at once.
    before = len(gate.fetches_done(account("u3")))
    gate.pickup(account("u3"), PASSWORD)
    gate.wait_fetch_done(account("u3"), before + 1)


def test_restart_spreads_clean_accounts(make_scripted, make_popgate):
    """After a clean stop every account is fetched, one every
    restart_spread / count seconds, not in one burst."""
    users = [f"s{i}" for i in range(4)]
    scripted, gate = make_accounts(make_scripted, make_popgate, users,
                                   {"fetch": {"restart_spread": 4}})
    gate.stop()
    restarted = time.monotonic()
    gate.start()

    def started():
        firsts = [logins_since(scripted, u, restarted) for u in users]
        return all(firsts) and [f[0].started for f in firsts]

    times = sorted(itutil.wait_until(started, 60, what="a fetch of every account"))
    # One a second: the last starts about 3 s after the first. Only a lower
    # bound is checked; a slow machine widens the gap, never narrows it.
    assert times[-1] - times[0] >= 2.0, f"fetches in a burst: {times}"
    assert times[0] - restarted >= 0.5, "the first spread fetch came with the start-up"


# ---- SIGHUP -----------------------------------------------------------------


def bad_commands_close(gate, count):
    """Sends COUNT unknown commands on a fresh session, then QUIT; True if
    popgate closed the session for too many bad commands, False if QUIT was
    answered."""
    lines = []
    with socket.create_connection((itutil.LOOPBACK, gate.pop3_port), timeout=30) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        for _ in range(count):
            sock.sendall(b"BOGUS\r\n")
            lines.append(reader.readline())
        try:
            sock.sendall(b"QUIT\r\n")
            for _ in range(3):
                line = reader.readline()
                if not line:
                    break
                lines.append(line)
        except (BrokenPipeError, ConnectionResetError):
            pass
    closed = any(b"too many bad commands" in line for line in lines)
    assert closed or lines[-1].startswith(b"+OK"), lines
    return closed


def sighup(gate, count):
    """Sends SIGHUP and waits for the COUNTth reload outcome in the log."""
    os.kill(gate.pid, signal.SIGHUP)
    itutil.wait_until(
        lambda: len([line for line in gate.log_lines()
                     if "SIGHUP: configuration" in line]) >= count,
        30, what=f"reload #{count} in the log")


def test_sighup_reopens_the_log(make_scripted, make_popgate):
    """logrotate: the log is renamed, a new one made, SIGHUP, and new lines
    go to the new file; the old one keeps what came before."""
    _, gate = make_accounts(make_scripted, make_popgate, ["r0"])
    pid = gate.pid
    rotated = gate.log_file + ".1"
    os.rename(gate.log_file, rotated)
    # As logrotate's "create": popgate runs as its service user by now and
    # may not create files in the log's folder.
    with open(gate.log_file, "w", encoding="utf-8"):
        pass
    if os.geteuid() == 0:
        service = pwd.getpwnam(gate.config["server"].get("user", "popgate"))
        os.chown(gate.log_file, service.pw_uid, service.pw_gid)
    os.kill(pid, signal.SIGHUP)
    wait_log(gate, "SIGHUP: log reopened")
    wait_log(gate, "SIGHUP: configuration reloaded")
    gate.pickup(account("r0"), PASSWORD)
    wait_log(gate, "event=fetch account=r0@localhost")
    assert gate.pid == pid and gate.running
    with open(rotated, encoding="utf-8") as old:
        text = old.read()
    assert "ready" in text and "SIGHUP" not in text


def test_sighup_reload(make_popgate, provider):
    """max_bad_commands changed and SIGHUP: the next session obeys the new
    limit, same process. A broken file is refused and the old settings
    stay; a changed port is kept until a restart, with a warning."""
    gate = make_popgate(provider=provider, overrides={"server": {"max_bad_commands": 5}})
    pid = gate.pid
    assert not bad_commands_close(gate, 3)

    gate.reconfigure({"server": {"max_bad_commands": 2}})
    sighup(gate, 1)
    wait_log(gate, "SIGHUP: configuration reloaded")
    assert bad_commands_close(gate, 3)
    assert gate.pid == pid

    # A broken file: refused, logged, the limit of 2 stays in force.
    with open(gate.config_path, "a", encoding="utf-8") as conf:
        conf.write("\n[server]\nno_such_key = 1\n")
    sighup(gate, 2)
    wait_log(gate, "SIGHUP: configuration refused")
    assert "no_such_key" in wait_log(gate, "SIGHUP: configuration refused")[0]
    assert gate.running and gate.pid == pid
    assert bad_commands_close(gate, 3)

    # A new port needs a restart: warned, the old port still serves.
    old_port = gate.pop3_port
    gate.reconfigure({"server": {"max_bad_commands": 4, "pop3_port": itutil.free_port()}})
    sighup(gate, 3)
    warning = wait_log(gate, "need a restart")[0]
    assert "[server] pop3_port" in warning and "max_bad_commands" not in warning
    gate.pop3_port = old_port
    assert not bad_commands_close(gate, 3)
    assert gate.running and gate.pid == pid


# ---- account del ------------------------------------------------------------


def spool_files(gate):
    found = []
    for folder, _, files in os.walk(os.path.join(gate.data_dir, "spool")):
        found += [os.path.join(folder, f) for f in files]
    return found


def test_account_del(make_scripted, make_popgate):
    """A provider-made user can be removed: its account, messages (rows and
    bodies), UIDLs, user and addresses go; mail not picked up needs --force;
    the change is an admin_change; a later login makes the account anew."""
    scripted, gate = make_accounts(make_scripted, make_popgate, ["d0", "d1"])
    scripted.deliver("d0", b"Subject: keep me\n\nbody\n")
    gate.pickup(account("d0"), PASSWORD)
    gate.wait_states({"delivery": 1}, account=account("d0"))
    assert spool_files(gate)

    refused = ctl("account", "del", account("d0"), config=gate.config_path)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert gate.db_states(account("d0")) == {"delivery": 1}

    assert ctl("account", "del", "nobody@localhost", config=gate.config_path).returncode == 1
    assert ctl("account", "del", config=gate.config_path).returncode == 2

    out = ok(ctl("account", "del", account("d0"), "--force", config=gate.config_path))
    assert "deleted" in out and "d0+localhost deleted" in out
    assert gate.db_query("SELECT count(*) FROM account WHERE name = ?",
                         (account("d0"),))[0][0] == 0
    assert gate.db_query("SELECT count(*) FROM user WHERE name = 'd0+localhost'")[0][0] == 0
    assert gate.db_query("SELECT count(*) FROM address WHERE address LIKE 'd0+%'")[0][0] == 0
    assert gate.db_query("SELECT count(*) FROM message")[0][0] == 0
    assert gate.db_query("SELECT count(*) FROM provider_uidl")[0][0] == 0
    assert spool_files(gate) == []
    wait_log(gate, f"account {account('d0')} deleted")
    # The other account is untouched and the daemon serves on.
    assert gate.db_query("SELECT count(*) FROM account WHERE name = ?",
                         (account("d1"),))[0][0] == 1
    gate.pickup(account("d1"), PASSWORD)
    # A login makes the account again, as a first login.
    gate.first_login_fetched(account("d0"), PASSWORD)
    assert gate.db_query("SELECT count(*) FROM account WHERE name = ?",
                         (account("d0"),))[0][0] == 1


def test_account_del_while_fetching(make_scripted, make_popgate):
    """The account is deleted while its fetch waits for a DELE's answer: the
    fetch stops — at its next message (the store refuses a message of an
    account that is gone) or before its QUIT (the account is checked) — so
    nothing is deleted at the provider."""
    scripted, gate = make_accounts(make_scripted, make_popgate, ["f0"])
    for n in range(3):
        scripted.deliver("f0", f"Subject: m{n}\n\nbody {n}\n".encode())
    deleted = []

    def delete_at_first_dele(session, uidl):
        if not deleted:
            deleted.append(ctl("account", "del", account("f0"), "--force",
                               config=gate.config_path))

    scripted.on_dele = delete_at_first_dele
    try:
        fetches = len(gate.events("fetch_error", account("f0")))
        gate.pickup(account("f0"), PASSWORD)
        gate.wait_event("fetch_error", account("f0"), fetches + 1)
    finally:
        scripted.on_dele = None
    ok(deleted[0])
    sessions = scripted.logged_in_sessions("f0")
    # DELEs of messages committed before the delete may have gone out (the
    # fetch stores while it deletes), but no QUIT applied them: the
    # provider keeps every message popgate no longer has.
    assert sum(len(s.deleted) for s in sessions) == 0, "a deletion applied at the provider"
    assert scripted.count("f0") == 3
    assert gate.db_query("SELECT count(*) FROM message")[0][0] == 0
    assert gate.db_query("SELECT count(*) FROM account")[0][0] == 0
    assert gate.running
    itutil.wait_until(lambda: spool_files(gate) == [], 30, what="no body left behind")
