"""
test_session_limits.py — what a mail client can do to a session, and the
limits that hold it (issue 7, "a logged-in or anonymous client"; SPEC G6):
pipelined commands, output a client does not read, the login deadline, a
client that hangs up during its login check, SIGTERM during a login check,
and the limits the README promises (idle timeout after login, command
timeout, max_sessions, max_bad_commands).

Clients here are raw sockets, so a test controls exactly what is sent and
what is read. A provider that accepts and never answers is a socket server
in silent_provider.py (the silent_provider fixture); everything else is a real
Dovecot.
"""

import os
import select
import socket
import threading

import pytest

import itutil

ACCOUNT = "alice@localhost"
PASSWORD = "limits-secret-1"
SMALL_MESSAGE = (b"From: Bob <bob@example.org>\r\nTo: alice@localhost\r\n"
                 b"Subject: pipelining\r\n\r\nfirst line\r\n.a line with a dot\r\n"
                 b"third line\r\n")


# ------------------------------------------------------------------ helpers

class RawClient:
    """A POP3 client on a plain socket: send bytes, read lines."""

    def __init__(self, port, rcvbuf=None, timeout=30.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so the window never grows past it.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((itutil.LOOPBACK, port))
        self.reader = self.sock.makefile("rb")

    def starttls(self, context):
        """STLS, then TLS on the same socket (popgate's certificate checked)."""
        reply = self.command("STLS")
        assert reply.startswith(b"+OK"), reply
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
        self.reader = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data)

    def line(self):
        """The next line (with its CRLF); b"" at EOF or after a reset."""
        try:
            return self.reader.readline(1 << 20)
        except ConnectionResetError:
            return b""

    def command(self, text):
        self.send(text.encode() + b"\r\n")
        return self.line()

    def reply(self, multiline):
        """One reply: its status line and, if MULTILINE and +OK, the lines up to
        and including the terminator."""
        out = [self.line()]
        if multiline and out[0].startswith(b"+OK"):
            for _ in range(1 << 20):
                line = self.line()
                assert line, f"connection ended inside a multi-line reply: {out[-3:]}"
                out.append(line)
                if line == b".\r\n":
                    break
        return b"".join(out)

    def read_to_eof(self, limit=1 << 30):
        """Everything until the server closes (bounded by LIMIT bytes)."""
        data = b""
        while len(data) < limit:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def login(gate, account=ACCOUNT, password=PASSWORD, timeout=30.0, mode="plain"):
    client = RawClient(gate.pop3_port, timeout=timeout)
    assert client.line().startswith(b"+OK")
    if mode == "stls":
        client.starttls(gate.client_context())
    assert client.command(f"USER {account}").startswith(b"+OK")
    reply = client.command(f"PASS {password}")
    assert reply.startswith(b"+OK"), reply
    return client


def queue_messages(gate, provider, messages):
    """Puts MESSAGES into alice's Delivery Queue the way mail gets there: at
    the provider, then a first pickup, whose QUIT starts the fetch."""
    provider.add_user("alice", PASSWORD)
    provider.deliver_many("alice", messages)
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": len(messages)}, account=ACCOUNT, timeout=120)


def vm_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def assert_serves(gate):
    """The daemon is alive and answers a new client."""
    assert gate.running
    client = RawClient(gate.pop3_port)
    try:
        assert client.line().startswith(b"+OK")
        assert client.command("NOOP").startswith(b"+OK")
        assert client.command("QUIT").startswith(b"+OK")
    finally:
        client.close()


def silent_gate(make_popgate, silent_provider, server=None):
    """A popgate whose provider never answers; nothing but the client's
    hang-up or a signal ends a login check within the test's deadlines."""
    overrides = {
        "provider localhost": silent_provider.section(),
        "fetch": {"timeout": 120},
        "server": dict({"login_check_timeout": 120, "login_timeout": 120,
                        "login_deadline": 300}, **(server or {})),
    }
    return make_popgate(overrides=overrides)


def start_pending_login(gate, silent_provider):
    """A client whose login check waits on the silent provider."""
    client = RawClient(gate.pop3_port)
    assert client.line().startswith(b"+OK")
    assert client.command(f"USER {ACCOUNT}").startswith(b"+OK")
    client.send(f"PASS {PASSWORD}\r\n".encode())
    itutil.wait_until(lambda: silent_provider.accepted >= 1, 20,
                      what="popgate to connect to the provider")
    return client


# ------------------------------------------------------------------ pipelining

PIPELINE = [("RETR 1", True), ("TOP 1 0", True), ("LIST", True), ("UIDL", True),
            ("LIST 1", False), ("UIDL 1", False), ("TOP 1 1", True), ("NOOP", False)]


@pytest.mark.parametrize("mode", ["plain", "stls"])
def test_pipelined_commands_answered_in_order(mode, make_popgate, provider):
    """10,000 commands in one write: every reply comes back, in order, the
    same as for the command sent alone, and the daemon lives on."""
    gate = make_popgate(provider=provider)
    queue_messages(gate, provider, [SMALL_MESSAGE])
    client = login(gate, mode=mode)
    expected = {}
    for command, multiline in PIPELINE:
        client.send(command.encode() + b"\r\n")
        expected[command] = client.reply(multiline)
        assert expected[command].startswith(b"+OK"), (command, expected[command])
    assert b"a line with a dot" in expected["RETR 1"]

    commands = [PIPELINE[i % len(PIPELINE)] for i in range(10000)]
    blob = b"".join(command.encode() + b"\r\n" for command, _ in commands)
    errors = []

    def send_all():
        try:
            client.send(blob)
        except OSError as e:
            errors.append(e)

    if mode == "plain":
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
    else:
        # One TLS object is not for two threads: send first (the blob fits
        # in the kernel's buffers), then read.
        sender = threading.Thread(target=lambda: None)
        sender.start()
        send_all()
    for i, (command, multiline) in enumerate(commands):
        got = client.reply(multiline)
        assert got == expected[command], f"reply {i} to {command}: {got[:200]!r}"
    sender.join(30)
    assert not sender.is_alive() and errors == []
    assert client.command("QUIT").startswith(b"+OK")
    assert client.read_to_eof() == b""
    client.close()

    assert_serves(gate)
    gate.wait_states({"delivered": 1}, account=ACCOUNT, timeout=10)


# ------------------------------------------------------------------ output a client does not read

@pytest.mark.parametrize("mode", ["plain", "stls"])
def test_unread_output_before_login_is_bounded(mode, make_popgate, monkeypatch):
    """20 MB of CAPA from a client that reads nothing: the daemon stops
    reading it instead of buffering the replies, and command_timeout ends the
    session; the daemon serves the next client. Over STLS the backlog below
    the TLS filter counts too."""
    # Under AddressSanitizer freed memory waits in a quarantine (256 MB by
    # default) and counts in the RSS: keep it small, so that the RSS shows
    # what the daemon holds, not how much it allocated and freed.
    options = os.environ.get("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    monkeypatch.setenv("ASAN_OPTIONS", options + ":quarantine_size_mb=1")
    gate = make_popgate(overrides={"server": {"command_timeout": 3, "login_timeout": 120,
                                              "login_deadline": 300}})
    # A first session of the same kind, so that one-time costs (TLS set-up
    # inside the daemon) are in the starting size.
    warm = RawClient(gate.pop3_port)
    assert warm.line().startswith(b"+OK")
    if mode == "stls":
        warm.starttls(gate.client_context())
    warm.send(b"CAPA\r\n")
    assert warm.reply(multiline=True).endswith(b"\r\n.\r\n")
    assert warm.command("QUIT").startswith(b"+OK")
    warm.close()
    start_rss = vm_rss_kb(gate.pid)

    client = RawClient(gate.pop3_port, rcvbuf=4096)
    assert client.line().startswith(b"+OK")
    if mode == "stls":
        client.starttls(gate.client_context())
    flood = b"CAPA\r\n" * (20 * 1024 * 1024 // 6)
    outcome = []

    def send_flood():
        try:
            client.sock.sendall(flood)
            outcome.append("sent")
        except OSError as e:
            outcome.append(e)

    sender = threading.Thread(target=send_flood, daemon=True)
    sender.start()
    peak = start_rss

    def session_ended():
        nonlocal peak
        peak = max(peak, vm_rss_kb(gate.pid))
        return not sender.is_alive()

    itutil.wait_until(session_ended, 90, interval=0.05,
                      what="command_timeout to end the flooding session")
    assert isinstance(outcome[0], OSError), \
        f"the whole flood was taken in ({outcome[0]}); the session was never held back"
    grown_mb = (peak - start_rss) / 1024
    assert grown_mb < 8, f"the daemon grew by {grown_mb:.1f} MB under the flood"
    assert gate.events("timeout"), gate.log_tail()
    client.close()
    assert_serves(gate)


def test_unread_retr_hits_command_timeout(make_popgate, provider):
    """A client that asks for a large message and never reads it is closed
    after command_timeout; nothing changes in its mailbox and the daemon
    serves the next pickup."""
    body = b"".join(b"line %07d of a large message, padded to be long enough\r\n" % i
                    for i in range(180000))
    large = b"From: bob@example.org\r\nTo: alice@localhost\r\nSubject: large\r\n\r\n" + body
    gate = make_popgate(provider=provider,
                        overrides={"server": {"command_timeout": 3, "idle_timeout": 120}})
    queue_messages(gate, provider, [large])

    client = RawClient(gate.pop3_port, rcvbuf=4096)
    assert client.line().startswith(b"+OK")
    assert client.command(f"USER {ACCOUNT}").startswith(b"+OK")
    assert client.command(f"PASS {PASSWORD}").startswith(b"+OK")
    logouts = len(gate.events("logout", account=ACCOUNT))
    client.send(b"RETR 1\r\n")
    gate.wait_event("logout", account=ACCOUNT, count=logouts + 1, timeout=60,
                    what="the session that does not read to be closed")
    assert "no QUIT" in gate.events("logout", account=ACCOUNT)[-1].detail
    received = client.read_to_eof(limit=len(large) * 2)
    assert len(received) < len(large), "the whole message was sent"
    client.close()

    gate.wait_states({"delivery": 1}, account=ACCOUNT, timeout=5)
    again = login(gate)
    assert again.command("STAT").startswith(b"+OK 1 ")
    assert again.command("QUIT").startswith(b"+OK")
    again.close()


# ------------------------------------------------------------------ login deadline

def test_login_deadline_ends_a_dripping_session(make_popgate):
    """A byte every second keeps login_timeout (silence) from firing, but not
    login_deadline, counted from accept."""
    gate = make_popgate(overrides={"server": {"login_deadline": 3, "login_timeout": 2}})
    client = RawClient(gate.pop3_port)
    assert client.line().startswith(b"+OK")
    reply = b""
    for _ in range(20):
        try:
            client.send(b"N")
        except OSError:
            pass
        ready, _, _ = select.select([client.sock], [], [], 1.0)
        if ready:
            reply = client.line()
            break
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert client.read_to_eof() == b""
    client.close()
    assert gate.events("timeout")
    assert_serves(gate)


# ------------------------------------------------------------------ login checks

def test_hangup_during_login_check_cancels_it(make_popgate, silent_provider):
    """A client that hangs up while its login is checked: popgate notices,
    closes the provider connection and frees the session."""
    gate = silent_gate(make_popgate, silent_provider)
    client = start_pending_login(gate, silent_provider)
    client.close()
    itutil.wait_until(lambda: silent_provider.closed >= 1, 15,
                      what="popgate to close its provider connection")
    gate.wait_event("login_cancelled", timeout=10)
    assert_serves(gate)


def test_sigterm_answers_a_pending_login(make_popgate, silent_provider):
    """SIGTERM while a login check waits: the client gets -ERR [SYS/TEMP]
    and the daemon exits 0 (the fixture checks for sanitizer reports)."""
    gate = silent_gate(make_popgate, silent_provider)
    client = start_pending_login(gate, silent_provider)
    assert gate.stop() == 0
    reply = client.line()
    assert reply == b"-ERR [SYS/TEMP] popgate is stopping; try again later\r\n", reply
    assert client.read_to_eof() == b""
    client.close()


# ------------------------------------------------------------------ README limits

def test_idle_timeout_after_login(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"server": {"idle_timeout": 2}})
    provider.add_user("alice", PASSWORD)
    gate.first_login(ACCOUNT, PASSWORD)
    client = login(gate)
    reply = client.line()
    assert reply.startswith(b"-ERR [SYS/TEMP] idle"), reply
    assert client.read_to_eof() == b""
    client.close()
    assert gate.events("timeout", account=ACCOUNT)
    assert_serves(gate)


def test_max_sessions(make_popgate):
    gate = make_popgate(overrides={"server": {"max_sessions": 2}})
    held = []

    def hold_one():
        # The start-up probes' sessions may still be closing.
        client = RawClient(gate.pop3_port)
        if client.line().startswith(b"+OK"):
            held.append(client)
            return True
        client.close()
        return False

    for _ in range(2):
        itutil.wait_until(hold_one, 10, interval=0.1, what="a session")
    extra = RawClient(gate.pop3_port)
    assert extra.line().startswith(b"-ERR [SYS/TEMP] too many sessions")
    assert extra.read_to_eof() == b""
    extra.close()
    assert gate.events("refused")
    assert held[0].command("QUIT").startswith(b"+OK")
    assert held[0].read_to_eof() == b""
    held[0].close()

    def new_session_served():
        client = RawClient(gate.pop3_port)
        try:
            return client.line().startswith(b"+OK")
        finally:
            client.close()

    itutil.wait_until(new_session_served, 10, interval=0.2, what="a free session")
    held[1].close()


def test_max_bad_commands_closes(make_popgate):
    gate = make_popgate(overrides={"server": {"max_bad_commands": 3}})
    client = RawClient(gate.pop3_port)
    assert client.line().startswith(b"+OK")
    for _ in range(3):
        assert client.command("XYZZY").startswith(b"-ERR")
    assert client.command("XYZZY").startswith(b"-ERR")
    assert client.line().startswith(b"-ERR too many bad commands")
    assert client.read_to_eof() == b""
    client.close()
    assert_serves(gate)
