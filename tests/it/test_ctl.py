"""
test_ctl.py — popgatectl, the administrator's command line (issue 3, point 1:
the read-only commands), against a running popgate with a real Dovecot.

popgatectl opens the daemon's store beside it. After one account's first
login and the fetch its QUIT starts, `account list|show`, `queue list|show`
and `config show` must show what the store holds, in tables and as JSON,
never the password or its hash; unknown names exit 1, usage errors exit 2.
"""

import json
import os
import re
import subprocess

import pytest

from popgate import popgate_bin

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
PASSWORD = "alice-secret-ctl-7"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def ctl_bin():
    return os.path.join(os.path.dirname(popgate_bin()), "popgatectl")


def ctl(*args, config=None):
    """Runs popgatectl [--config CONFIG] ARGS; the CompletedProcess (text)."""
    argv = [ctl_bin()] + (["--config", config] if config else []) + list(args)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    for mark in SANITIZER_MARKS:
        assert mark not in done.stderr, f"{argv}: {done.stderr}"
    return done


def ok(done):
    assert done.returncode == 0, f"{done.args} exited {done.returncode}: {done.stderr}"
    return done.stdout


def table_rows(text):
    """The rows of a table as lists of cells (cells are split at 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]


@pytest.fixture
def fetched(popgate, provider, corpus):
    """popgate after alice's first login and the fetch of three messages."""
    provider.add_user("alice", PASSWORD)
    provider.deliver_many("alice", corpus.messages(3, seed=31))
    popgate.first_login(ACCOUNT, PASSWORD)
    popgate.wait_states({"delivery": 3}, timeout=60)
    return popgate


def assert_no_secret(gate, text):
    (hash_,), = gate.db_query("SELECT password_hash FROM account")
    assert PASSWORD not in text
    assert hash_ not in text and "$argon2" not in text


def test_account_list_and_show(fetched):
    gate = fetched
    config = gate.config_path

    out = ok(ctl("account", "list", config=config))
    rows = table_rows(out)
    assert rows[0][:4] == ["ACCOUNT", "USER", "HOST", "LAST FETCH"]
    assert len(rows) == 2, out
    row = dict(zip(rows[0], rows[1]))
    assert row["ACCOUNT"] == ACCOUNT and row["USER"] == USER and row["HOST"] == "localhost"
    assert row["DELIVERY"] == "3" and row["PROCESSING"] == "0"
    assert row["LAST FETCH"] != "-"
    # Aligned: each value starts where its column's header does.
    header, line = out.splitlines()[:2]
    assert line.index(USER) == header.index("USER") and line.index(" 3 ") + 1 == \
        header.index("DELIVERY")
    assert_no_secret(gate, out)

    out = ok(ctl("--json", "account", "list", config=config))
    accounts = json.loads(out)
    assert len(accounts) == 1
    a = accounts[0]
    assert (a["name"], a["user"], a["host"], a["login"]) == (ACCOUNT, USER, "localhost", "alice")
    assert a["messages"] == {"processing": 0, "delivery": 3, "delivered": 0, "suspect": 0}
    assert a["last_fetch"] is not None and a["last_error"] is None
    assert a["fetch_failures"] == 0
    assert set(a) == {"name", "user", "host", "login", "last_fetch", "last_error",
                      "fetch_failures", "next_retry", "messages"}
    assert_no_secret(gate, out)

    out = ok(ctl("account", "show", ACCOUNT, config=config))
    fields = {r[0]: r[1] for r in table_rows(out)}
    assert fields["provider host"] == "localhost"
    assert fields["login"] == "alice" and fields["user"] == USER
    assert fields["fetch failures"] == "0" and fields["last error"] == "-"
    assert fields["messages delivery"] == "3"
    assert_no_secret(gate, out)
    # --json after the command works as well; the name is compared without case.
    shown = json.loads(ok(ctl("account", "show", ACCOUNT.upper(), "--json", config=config)))
    assert shown == a

    missing = ctl("account", "show", "nobody@localhost", config=config)
    assert missing.returncode == 1
    assert "no account 'nobody@localhost'" in missing.stderr and missing.stdout == ""


def test_queue_list_and_show(fetched):
    gate = fetched
    config = gate.config_path
    rows = gate.db_query("SELECT id, body_size FROM message WHERE state = 'delivery' ORDER BY seq")
    ids = [r[0] for r in rows]

    out = ok(ctl("queue", "list", "--state", "delivery", config=config))
    table = table_rows(out)
    assert table[0] == ["ID", "ACCOUNT", "USER", "STATE", "SIZE", "RECEIVED"]
    assert [r[0] for r in table[1:]] == ids
    for (mid, size), r in zip(rows, table[1:]):
        assert r[1:5] == [ACCOUNT, USER, "delivery", str(size)]

    listed = json.loads(ok(ctl("--json", "queue", "list", "--user", USER, config=config)))
    assert [m["id"] for m in listed] == ids
    assert {m["state"] for m in listed} == {"delivery"}
    assert [m["size"] for m in listed] == [r[1] for r in rows]
    assert json.loads(ok(ctl("--json", "queue", "list", "--state=processing",
                             config=config))) == []
    assert table_rows(ok(ctl("queue", "list", "--state", "suspect", config=config))) == [
        ["ID", "ACCOUNT", "USER", "STATE", "SIZE", "RECEIVED"]]

    nobody = ctl("queue", "list", "--user", "nobody+localhost", config=config)
    assert nobody.returncode == 1 and "no user 'nobody+localhost'" in nobody.stderr

    out = ok(ctl("queue", "show", ids[0], config=config))
    fields = {r[0]: (r[1] if len(r) > 1 else "") for r in table_rows(out)}
    assert fields["id"] == ids[0] and fields["state"] == "delivery"
    assert fields["account"] == ACCOUNT and fields["user"] == USER
    assert fields["size"] == str(rows[0][1])
    shown = json.loads(ok(ctl("--json", "queue", "show", ids[0], config=config)))
    (uidl, sha, prepend), = gate.db_query(
        "SELECT uidl, sha256, prepend FROM message WHERE id = ?", (ids[0],))
    assert shown["id"] == ids[0] and shown["size"] == rows[0][1]
    assert (shown["uidl"], shown["sha256"], shown["prepend"]) == (uidl, sha, prepend)
    assert shown["attempts"] == 0 and shown["received"] is not None

    for unknown in ("0" * 24, "../../etc/passwd"):
        gone = ctl("queue", "show", unknown, config=config)
        assert gone.returncode == 1 and "no message" in gone.stderr, gone.stderr


def test_config_show(popgate):
    out = ok(ctl("config", "show", config=popgate.config_path))
    assert "[server]" in out
    assert f"pop3_port = {popgate.pop3_port}" in out.splitlines()
    assert f"data_dir = {os.path.realpath(popgate.data_dir)}" in out.splitlines() or \
        f"data_dir = {popgate.data_dir}" in out.splitlines()
    conf = json.loads(ok(ctl("--json", "config", "show", config=popgate.config_path)))
    assert conf["server"]["pop3_port"] == str(popgate.pop3_port)
    assert "provider localhost" in conf


def test_help_and_usage_errors(popgate):
    config = popgate.config_path
    top = ok(ctl("--help"))
    for command in ("account list", "account show NAME", "queue list [--state S] [--user U]",
                    "queue show ID", "config show"):
        assert command in top
    assert "--state S" in ok(ctl("queue", "list", "--help"))
    assert "account show NAME" in ok(ctl("account", "--help"))
    # --help needs no configuration and no store.
    assert "queue show ID" in ok(ctl("queue", "show", "--help"))

    usage_errors = [
        (),                                          # no command
        ("--bogus", "account", "list"),              # unknown option
        ("nonsense",),                               # unknown command
        ("account",),                                # no subcommand
        ("account", "frobnicate"),                   # unknown subcommand
        ("account", "show"),                         # missing name
        ("account", "list", "extra"),                # stray argument
        ("queue", "list", "--state", "bogus"),       # unknown state
        ("queue", "list", "--user"),                 # option without its value
        ("queue", "show", "a", "b"),                 # two ids
        ("config", "show", "extra"),
    ]
    for args in usage_errors:
        done = ctl(*args, config=config)
        assert done.returncode == 2, f"{args}: exit {done.returncode}, {done.stderr}"
        assert done.stderr.strip() != "" and done.stdout == "", args
    missing_config = ctl("account", "list")
    assert missing_config.returncode == 2 and "--config" in missing_config.stderr

    # A configuration that cannot be read is refused (1), not a usage error.
    bad = ctl("config", "show", config=os.path.join(popgate.dir, "missing.conf"))
    assert bad.returncode == 1 and bad.stderr.strip() != ""
