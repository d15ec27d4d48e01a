"""
test_control.py — popgatectl tells the running daemon about a change over
the control socket DATA/control.sock (core/control.h), instead of the daemon
polling the store every few seconds.

The daemons here look by themselves only once an hour (release_check_seconds
= 3600), so a released message that is filtered again was announced on the
socket. Garbage on the socket (unknown lines, a line without end, binary,
more connections than allowed, silent ones) is logged and its connection
closed; the daemon keeps serving and keeps acting on notices.
"""

import json
import os
import socket
import stat

import itutil
from test_ctl import ACCOUNT, PASSWORD, ctl, fetch_three, ok, set_state, still_serving

SLOW_FALLBACK = {"queue": {"release_check_seconds": 3600}}


def socket_path(gate):
    return os.path.join(gate.data_dir, "control.sock")


def release_and_wait(gate, mid):
    set_state(gate, mid, "suspect")
    assert json.loads(ok(ctl("--json", "queue", "release", mid, config=gate.config_path))) == {
        "id": mid, "state": "processing"}
    # Filtered again and delivered: only the notice can have started it.
    gate.wait_message_state(mid, "delivery", timeout=30)


def test_release_is_acted_on_at_once(make_popgate, provider, corpus):
    gate = fetch_three(make_popgate(provider=provider, overrides=SLOW_FALLBACK),
                       provider, corpus)
    path = socket_path(gate)
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    # Owned by the daemon's user, as the store is.
    assert st.st_uid == os.stat(gate.db_path).st_uid
    mid = gate.db_query("SELECT id FROM message ORDER BY seq")[0][0]
    pid = gate.pid
    release_and_wait(gate, mid)
    itutil.wait_value(lambda: len([e for e in gate.events("processed") if e["id"] == mid]), 2,
                      30, what=f"the second processed line of {mid}")
    # One "state" event per move, with the message id: the daemon's, and
    # popgatectl's release (the test set "suspect" by SQL, which logs none).
    moves = [(e["role"], e["detail"]) for e in gate.events("state") if e["id"] == mid]
    assert moves == [("main", "from=processing to=delivery"),
                     ("ctl", "from=suspect to=processing"),
                     ("main", "from=processing to=delivery")], moves
    assert gate.pid == pid
    still_serving(gate)
    # Stopped, the daemon removes its socket; popgatectl then still works.
    assert gate.stop() == 0
    assert not os.path.lexists(path)
    ok(ctl("user", "add", "carol", config=gate.config_path))


def test_admin_change_logged_at_once(make_popgate, provider):
    """With log_file = -, the daemon writes popgatectl's change to its log
    when told, not at its next look."""
    gate = make_popgate(provider=provider, overrides={
        "server": {"log_file": "-"}, **SLOW_FALLBACK})
    ok(ctl("user", "add", "dora", config=gate.config_path))
    itutil.wait_until(lambda: gate.db_query("SELECT logged FROM admin_change") == [(1,)], 30,
                      what="the change logged by the daemon")
    assert "popgatectl user add: " in gate.stderr_text()


def garbage_connections(path):
    """Writes bad input to the control socket in every way we know."""
    sent = []
    for payload in (b"hello\n", b"changed now\n", b"CHANGED\n", b"\x00\xff\xfe\n",
                    b"x" * 100000, b"changed" * 50, b"\n\n\n"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(path)
        try:
            s.sendall(payload)
        except OSError:
            pass                    # the daemon may close before all of it is read
        sent.append(s)
    # More connections than the daemon keeps, all silent.
    for _ in range(40):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(path)
        except OSError:
            s.close()
            continue
        sent.append(s)
    return sent


def test_garbage_on_the_socket_does_not_hurt(make_popgate, provider, corpus):
    gate = fetch_three(make_popgate(provider=provider, overrides=SLOW_FALLBACK),
                       provider, corpus)
    pid = gate.pid
    path = socket_path(gate)
    conns = garbage_connections(path)
    itutil.wait_until(lambda: [l for l in gate.log_lines() if "control:" in l], 30,
                      what="the bad input logged")
    for s in conns:
        s.close()
    # Half-written notices: a client that goes away mid-line is no notice. The
    # daemon may not have seen the silent connections above go yet and still
    # refuse this one as one too many: then the write fails, which is fine.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    try:
        s.sendall(b"chan")
    except OSError:
        pass
    s.close()
    assert gate.pid == pid
    still_serving(gate)
    # And it still acts on a notice.
    mid = gate.db_query("SELECT id FROM message ORDER BY seq")[1][0]
    release_and_wait(gate, mid)
    assert gate.stop() == 0


def test_stale_socket_is_replaced(make_popgate, provider, corpus):
    gate = fetch_three(make_popgate(provider=provider, overrides=SLOW_FALLBACK),
                       provider, corpus)
    path = socket_path(gate)
    # A crash leaves the socket file behind.
    gate.kill()
    assert os.path.lexists(path)
    # popgatectl does not fail without a daemon: the change waits for the start.
    mid = gate.db_query("SELECT id FROM message ORDER BY seq")[0][0]
    set_state(gate, mid, "suspect")
    done = ctl("queue", "release", mid, config=gate.config_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    gate.start()
    gate.wait_message_state(mid, "delivery", timeout=30)
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    release_and_wait(gate, gate.db_query("SELECT id FROM message ORDER BY seq")[1][0])
    still_serving(gate)
