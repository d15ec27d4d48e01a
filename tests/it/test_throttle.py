"""
test_throttle.py — what a client can do to popgate's logins (issue 7; SPEC G6):
AUTH PLAIN credentials that would smuggle commands to the provider, the
failed-login throttle (counted when a check starts, per client address and
per account, across restarts), failed checks counted like wrong passwords,
and the caps on concurrent live login checks at providers.

The provider is the scripted one (it records every session and command), or
a port that accepts and never answers, or one where nothing listens. Clients
come from different loopback addresses (127.0.0.2, 127.0.0.3 …) by binding
their socket before connecting.
"""

import base64
import poplib
import socket
import threading

import itutil
from popgate import error_text

PASSWORD = "throttle-pw-1"
MESSAGE = b"From: a@example.org\nTo: b@example.org\nSubject: keep me\n\nbody\n"


def auth_plain(client, authcid, password):
    """AUTH PLAIN with an initial response; returns the reply line (text)."""
    response = base64.b64encode(b"\0" + authcid.encode() + b"\0" + password).decode()
    try:
        return client._shortcmd(f"AUTH PLAIN {response}").decode()
    except poplib.error_proto as e:
        return error_text(e)


def test_auth_plain_line_break_never_reaches_provider(make_scripted, make_popgate):
    """A CR LF inside the decoded password would become a second command at
    the provider (and be stored and replayed at every fetch): refused as a
    bad command before anyone is asked; the session goes on."""
    scripted = make_scripted()
    scripted.add_user("victim", "pw")
    scripted.deliver("victim", MESSAGE)
    gate = make_popgate(scripted=scripted)

    client = gate.connect()
    for smuggled in (b"pw\r\nDELE 1", b"pw\nDELE 1", b"pw\rDELE 1"):
        reply = auth_plain(client, "victim@localhost", smuggled)
        assert reply == "-ERR malformed AUTH PLAIN response", reply
    # Also in the authcid, and in a continuation line.
    reply = auth_plain(client, "victim\r\nDELE 1@localhost", b"pw")
    assert reply.startswith("-ERR"), reply
    assert client._shortcmd("AUTH PLAIN").startswith(b"+")
    try:
        reply = client._shortcmd(base64.b64encode(b"\0victim@localhost\0pw\r\nDELE 1").decode())
    except poplib.error_proto as e:
        reply = e.args[0]
    assert reply.startswith(b"-ERR"), reply
    assert client.noop().startswith(b"+OK")
    client.quit()

    assert scripted.sessions == [], scripted.commands()
    assert not any(c.upper().startswith("DELE") for c in scripted.commands())
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]
    assert scripted.count("victim") == 1


# ---------------------------------------------------------------- helpers

class LineClient:
    """A bare POP3 client on a socket bound to loopback address SOURCE, so
    tests can log in from 127.0.0.2, 127.0.0.3 … (poplib cannot bind)."""

    def __init__(self, gate, source="127.0.0.1", timeout=60.0):
        self.sock = socket.create_connection((itutil.LOOPBACK, gate.pop3_port), timeout=timeout,
                                             source_address=(source, 0))
        self.reader = self.sock.makefile("rb")
        greeting = self.readline()
        assert greeting.startswith("+OK"), greeting

    def readline(self):
        line = self.reader.readline(4096)
        if not line:
            raise ConnectionError("popgate closed the connection")
        return line.rstrip(b"\r\n").decode("utf-8", "replace")

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def command(self, line):
        self.send(line)
        return self.readline()

    def login(self, account, password):
        """USER and PASS; returns the reply to PASS."""
        reply = self.command(f"USER {account}")
        assert reply.startswith("+OK"), reply
        return self.command(f"PASS {password}")

    def close(self):
        try:
            self.reader.close()
            self.sock.close()
        except OSError:
            pass


def login_once(gate, account, password, source="127.0.0.1"):
    """One login from SOURCE; returns the reply to PASS and closes."""
    client = LineClient(gate, source)
    try:
        reply = client.login(account, password)
        if reply.startswith("+OK"):
            client.command("QUIT")
        return reply
    finally:
        client.close()


def pass_count(scripted):
    """How many PASS commands the scripted provider received."""
    return sum(1 for c in scripted.commands() if c == "PASS ***")


THROTTLED = "-ERR [SYS/TEMP] too many failed logins; try again later"


def throttle_config(limit, **server):
    keys = {"login_fail_limit": limit, "login_fail_window": 3600,
            # High caps, so that only the throttle limits what reaches a provider.
            "max_login_checks": 100, "max_login_checks_per_ip": 100}
    keys.update(server)
    return {"server": keys}


# ---------------------------------------------------------------- the throttle

def test_parallel_wrong_passwords_reach_provider_at_most_limit(make_scripted, make_popgate):
    """15 clients send a wrong password at the same moment with
    login_fail_limit = 3: an attempt is counted when its check starts, so
    the provider sees at most 3 PASS; every client gets an -ERR."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides=throttle_config(3))
    count = 15
    clients = [LineClient(gate) for _ in range(count)]
    for client in clients:
        assert client.command("USER alice@localhost").startswith("+OK")
    barrier = threading.Barrier(count, timeout=60)
    replies = [None] * count

    def attempt(i):
        barrier.wait()
        try:
            replies[i] = clients[i].command("PASS wrong-password")
        except OSError as e:
            replies[i] = repr(e)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for client in clients:
        client.close()
    assert all(r is not None and (r.startswith("-ERR [AUTH]") or r.startswith("-ERR [SYS/TEMP]"))
               for r in replies), replies
    assert replies.count(THROTTLED) >= count - 3, replies
    assert pass_count(scripted) <= 3, scripted.commands()
    assert gate.db_query("SELECT count(*) FROM account") == [(0,)]


def test_failed_checks_are_throttled(make_popgate):
    """A check that cannot be made (a refused port, an address the policy
    blocks) counts like a wrong password: after login_fail_limit of them the
    account is refused without another attempt to connect."""
    closed_port = itutil.free_port()
    gate = make_popgate(overrides={
        **throttle_config(2),
        "provider localhost": {"port": closed_port, "tls": "none", "allow_private": "yes"},
    })
    # Each from an address of its own: the account key is what throttles.
    for source in ("127.0.0.2", "127.0.0.3"):
        reply = login_once(gate, "nobody@localhost", "pw", source)
        assert reply.startswith("-ERR [SYS/TEMP] cannot reach your provider"), reply
    assert login_once(gate, "nobody@localhost", "pw", "127.0.0.4") == THROTTLED
    # 127.0.0.1 is private and has no provider section: the policy blocks it.
    for source in ("127.0.0.5", "127.0.0.6"):
        reply = login_once(gate, "blocked@127.0.0.1", "pw", source)
        assert reply.startswith("-ERR [SYS/TEMP] cannot reach your provider"), reply
    assert login_once(gate, "blocked@127.0.0.1", "pw", "127.0.0.7") == THROTTLED
    checks = [e for e in gate.events("login_failed") if "cannot check at the provider" in e.detail]
    assert len(checks) == 4, [e.line for e in checks]
    throttled = [e for e in gate.events("login_failed") if "throttled" in e.detail]
    assert len(throttled) == 2, [e.line for e in throttled]


def test_throttle_survives_restart(make_scripted, make_popgate):
    """The counters live in the store: after login_fail_limit wrong
    passwords and a restart, the next attempt is still refused without
    reaching the provider."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides=throttle_config(3))
    for _ in range(3):
        reply = login_once(gate, "alice@localhost", "wrong-password")
        assert reply.startswith("-ERR [AUTH]"), reply
    assert pass_count(scripted) == 3
    gate.stop()
    gate.start()
    # The right password from the same address: still throttled.
    assert login_once(gate, "alice@localhost", PASSWORD) == THROTTLED
    assert pass_count(scripted) == 3
    rows = gate.db_query("SELECT key, failures FROM login_failure ORDER BY key")
    assert rows == [("pop3-account:alice@localhost", 3), ("pop3-address:127.0.0.1", 3)], rows


def test_account_throttled_across_addresses_and_case(make_scripted, make_popgate):
    """The per-account key alone: wrong passwords from different client
    addresses, with the account name in different case, add up on one key;
    then the account is refused from a fresh address, even with the right
    password, while another account from that address still logs in."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    scripted.add_user("bob", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides=throttle_config(3))
    for source, name in (("127.0.0.2", "alice@localhost"), ("127.0.0.3", "ALICE@localhost"),
                         ("127.0.0.4", "Alice@LocalHost")):
        reply = login_once(gate, name, "wrong-password", source)
        assert reply.startswith("-ERR [AUTH]"), reply
    assert pass_count(scripted) == 3
    assert login_once(gate, "aLiCe@localhost", PASSWORD, "127.0.0.5") == THROTTLED
    assert pass_count(scripted) == 3
    reply = login_once(gate, "bob@localhost", PASSWORD, "127.0.0.5")
    assert reply.startswith("+OK"), reply
    throttled = [e for e in gate.events("login_failed") if "throttled" in e.detail]
    assert len(throttled) == 1 and "from 127.0.0.5" in throttled[0].detail, throttled


def test_success_releases_its_count(make_scripted, make_popgate):
    """A login that proves its password does not use up the address's
    allowance: many good logins, then still login_fail_limit - 1 wrong ones
    before the limit."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides=throttle_config(2))
    for _ in range(3):
        reply = login_once(gate, "alice@localhost", PASSWORD)
        assert reply.startswith("+OK"), reply
    assert login_once(gate, "alice@localhost", "wrong-password").startswith("-ERR [AUTH]")
    reply = login_once(gate, "alice@localhost", PASSWORD)
    assert reply.startswith("+OK"), reply
    assert gate.db_query("SELECT key, failures FROM login_failure WHERE failures > 0") == \
        [("pop3-address:127.0.0.1", 1)]


# ---------------------------------------------------------------- caps on live checks

def test_live_check_caps(make_scripted, make_popgate, silent_provider):
    """max_login_checks_per_ip live checks from one address hang at a
    provider that never answers; one more from that address is refused at
    once with -ERR [SYS/TEMP], without contacting the provider; another
    address may still start checks until max_login_checks in all. A login
    the stored password answers is no live check and is not capped."""
    scripted = make_scripted()
    scripted.add_user("alice", PASSWORD)
    gate = make_popgate(scripted=scripted, overrides={
        # No timeout or deadline may end the hanging checks during the test.
        "server": {"max_login_checks": 4, "max_login_checks_per_ip": 2,
                   "login_fail_limit": 100, "login_timeout": 600, "login_deadline": 600,
                   "login_check_timeout": 600},
        "fetch": {"timeout": 600},
        "provider 127.0.0.1": {"port": silent_provider.port, "tls": "none",
                               "allow_private": "yes"},
    })
    gate.first_login("alice@localhost", PASSWORD)   # stores alice's password
    busy = "-ERR [SYS/TEMP] too many logins are being checked right now; try again later"
    held = []
    try:
        def hang(source, n):
            """Starts a login from SOURCE whose check hangs; waits until the
            silent provider holds N connections."""
            client = LineClient(gate, source)
            held.append(client)
            assert client.command(f"USER hang{len(held)}@127.0.0.1").startswith("+OK")
            client.send("PASS pw")
            itutil.wait_until(lambda: silent_provider.count() >= n, 30,
                              what=f"{n} checks at the silent provider")

        hang("127.0.0.2", 1)
        hang("127.0.0.2", 2)
        # A third from 127.0.0.2 is over max_login_checks_per_ip.
        assert login_once(gate, "extra@127.0.0.1", "pw", "127.0.0.2") == busy
        # Another address may still start checks ...
        hang("127.0.0.3", 3)
        hang("127.0.0.3", 4)
        # ... until max_login_checks in all.
        assert login_once(gate, "extra@127.0.0.1", "pw", "127.0.0.4") == busy
        assert silent_provider.count() == 4
        # alice's stored password needs no live check: not capped.
        reply = login_once(gate, "alice@localhost", PASSWORD, "127.0.0.2")
        assert reply.startswith("+OK"), reply
        capped = [e for e in gate.events("login_failed") if "live login checks" in e.detail]
        assert [("max_login_checks_per_ip" in e.detail, "from 127.0.0.2" in e.detail)
                for e in capped] == [(True, True), (False, False)], [e.line for e in capped]
        # A capped login is not counted as a failure.
        assert gate.db_query("SELECT count(*) FROM login_failure"
                             " WHERE key LIKE '%extra%' AND failures > 0") == [(0,)]
    finally:
        for client in held:
            client.close()
    gate.stop()
