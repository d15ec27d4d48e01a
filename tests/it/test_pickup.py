"""
test_pickup.py — the POP3 proxy flow with Python's poplib against a real
Dovecot (issue 2, points 2, 3, 5 and 9; SPEC P1, P3–P7, G2).

A message reaches the client at its second pickup: the first login creates
the account and serves nothing, its QUIT starts a fetch that stores the
provider's messages and deletes them there; the next pickup serves them
byte-identical apart from popgate's trace header.
"""

import base64
import poplib
import socket

import pytest

import corpus as corpus_mod
import itutil
from mailutil import TRACE_PREFIX, first_body_lines, header_part, split_trace, wire_from_lines
from popgate import error_text

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-1"
EXPECTED_FORM = "login@pop3.provider.example"


def sample_messages(corpus):
    """Real messages with 8-bit text, odd charsets, long lines, dots."""
    return (corpus.messages(10, seed=11) + corpus.odd_messages()
            + [corpus_mod.long_line_message(tag="pickup")])


def parse_listing(lines):
    """{number: value} from the lines of a LIST or UIDL reply."""
    out = {}
    for line in lines:
        number, value = line.decode().split(" ", 1)
        out[int(number)] = value
    return out


def account_rows(gate):
    return gate.db_query("SELECT name FROM account")


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_two_pickups(mode, popgate, provider, corpus):
    provider.add_user("alice", PASSWORD)
    wires = provider.deliver_many("alice", sample_messages(corpus))

    # G2: a first login with a wrong password is refused after asking the
    # provider, and leaves nothing behind.
    with pytest.raises(poplib.error_proto) as refused:
        popgate.login(ACCOUNT, "not-the-password", mode)
    assert error_text(refused.value).startswith("-ERR [AUTH]"), error_text(refused.value)
    assert account_rows(popgate) == []
    assert popgate.db_query("SELECT name FROM user") == []
    assert popgate.db_states() == {}
    assert provider.count("alice") == len(wires)

    # P3/P4: the first pickup serves nothing; its QUIT starts the fetch.
    popgate.first_login(ACCOUNT, PASSWORD, mode)
    popgate.wait_states({"delivery": len(wires)}, timeout=60)
    # P7, G3: deleted at the provider once stored.
    popgate.wait_fetch_done(ACCOUNT)
    itutil.wait_value(lambda: provider.count("alice"), 0, 30, what="alice's provider mailbox")

    # P6: the second pickup gets every message.
    client = popgate.login(ACCOUNT, PASSWORD, mode)
    count, total = client.stat()
    assert count == len(wires)
    sizes = {n: int(v) for n, v in parse_listing(client.list()[1]).items()}
    uidls = parse_listing(client.uidl()[1])
    assert sorted(sizes) == sorted(uidls) == list(range(1, count + 1))
    assert len(set(uidls.values())) == count, "UIDLs must be unique"
    served = {}
    for n in range(1, count + 1):
        served[n] = wire_from_lines(client.retr(n)[1])
        assert len(served[n]) == sizes[n], f"LIST size of message {n} is not its exact size"
        assert client.list(n).split()[2] == str(sizes[n]).encode()
        assert client.uidl(n).split()[2] == uidls[n].encode()
    assert total == sum(sizes.values())

    # TOP gives the headers (trace header included) and N body lines.
    assert wire_from_lines(client.top(1, 0)[1]) == header_part(served[1])
    assert wire_from_lines(client.top(1, 3)[1]) == header_part(served[1]) + \
        first_body_lines(served[1], 3)
    # UIDLs do not change within a session or after RETR.
    assert parse_listing(client.uidl()[1]) == uidls
    client.quit()

    bodies = []
    for n, message in served.items():
        trace, body = split_trace(message)
        assert trace.startswith(TRACE_PREFIX)
        bodies.append(body)
    assert sorted(bodies) == sorted(wires), "served messages differ from the provider's"

    # P5: what was retrieved leaves the Delivery Queue at QUIT.
    popgate.wait_states({"delivered": len(wires)}, timeout=30)
    assert popgate.pickup(ACCOUNT, PASSWORD, mode) == []
    itutil.wait_value(lambda: provider.count("alice"), 0, 30, what="alice's provider mailbox")


def test_quit_takes_retrieved_and_deleted_only(popgate, provider, corpus):
    """At QUIT every message retrieved or deleted leaves the Delivery Queue,
    whatever DELE said; the others stay. A session cut before QUIT, and RSET,
    leave the queue as it was (RFC 1939)."""
    provider.add_user("alice", PASSWORD)
    wires = provider.deliver_many("alice", corpus.messages(6, seed=12))
    popgate.first_login(ACCOUNT, PASSWORD)
    popgate.wait_states({"delivery": 6}, timeout=60)

    # Cut without QUIT: nothing leaves.
    client = popgate.login(ACCOUNT, PASSWORD)
    client.retr(1)
    client.dele(2)
    client.sock.shutdown(socket.SHUT_RDWR)
    client.close()
    _wait_login_free(popgate)
    popgate.wait_states({"delivery": 6}, timeout=30)

    # RSET forgets the DELE, not the RETR.
    client = popgate.login(ACCOUNT, PASSWORD)
    retrieved = split_trace(wire_from_lines(client.retr(1)[1]))[1]
    client.dele(2)
    client.rset()
    client.dele(3)
    client.quit()
    popgate.wait_states({"delivery": 4, "delivered": 2}, timeout=30)

    client = popgate.login(ACCOUNT, PASSWORD)
    assert client.stat()[0] == 4
    rest = [split_trace(wire_from_lines(client.retr(n)[1]))[1] for n in range(1, 5)]
    client.quit()
    assert retrieved not in rest
    assert len(set(rest) | {retrieved}) == 5
    assert set(rest) | {retrieved} < set(wires)
    popgate.wait_states({"delivered": 6}, timeout=30)


def _wait_login_free(gate, timeout=30.0):
    """Logs in until the server has noticed a cut session (no more IN-USE)."""

    def attempt():
        try:
            gate.login(ACCOUNT, PASSWORD).quit()
            return True
        except poplib.error_proto as e:
            if "[IN-USE]" in error_text(e):
                return False
            raise

    itutil.wait_until(attempt, timeout, interval=0.2, what="the cut session to end")


def test_second_session_is_in_use(popgate, provider):
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)
    first = popgate.login(ACCOUNT, PASSWORD)
    with pytest.raises(poplib.error_proto) as busy:
        popgate.login(ACCOUNT, PASSWORD, mode="pop3s")
    assert error_text(busy.value).startswith("-ERR [IN-USE]"), error_text(busy.value)
    assert first.noop().startswith(b"+OK")
    first.quit()
    popgate.login(ACCOUNT, PASSWORD).quit()


@pytest.mark.parametrize("name", ["alice", "alice@", "@localhost", "alice@bad host",
                                  "alice@bad_host!", "alice@.localhost"])
def test_malformed_account_name(name, popgate, provider):
    provider.add_user("alice", PASSWORD)
    client = popgate.connect()
    with pytest.raises(poplib.error_proto) as bad:
        client.user(name)
        client.pass_(PASSWORD)
    assert EXPECTED_FORM in error_text(bad.value), error_text(bad.value)
    # The session goes on.
    assert "USER" in client.capa()
    client.quit()
    assert account_rows(popgate) == []


def test_capabilities_and_auth_plain(popgate, provider):
    provider.add_user("alice", PASSWORD)
    client = popgate.connect()
    caps = client.capa()
    for cap in ("USER", "UIDL", "TOP", "STLS"):
        assert cap in caps, caps
    assert "PLAIN" in caps.get("SASL", []), caps
    client.quit()

    # After TLS, STLS is no longer offered (RFC 2595).
    client = popgate.connect("pop3s")
    assert "STLS" not in client.capa()
    # RFC 5034 AUTH PLAIN with an initial response.
    token = base64.b64encode(f"\0{ACCOUNT}\0{PASSWORD}".encode()).decode()
    assert client._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
    assert client.stat() == (0, 0)
    client.quit()
    assert account_rows(popgate) == [(ACCOUNT,)]

    client = popgate.connect("pop3s")
    bad = base64.b64encode(f"\0{ACCOUNT}\0wrong".encode()).decode()
    with pytest.raises(poplib.error_proto) as refused:
        client._shortcmd(f"AUTH PLAIN {bad}")
    assert error_text(refused.value).startswith("-ERR [AUTH]")
    client.quit()


def test_bad_commands_get_err_and_the_session_goes_on(popgate, provider):
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)
    client = popgate.connect()
    for command in ("XYZZY", "STAT", "RETR 1", "PASS no-user-yet", "USER", "LIST"):
        with pytest.raises(poplib.error_proto) as bad:
            client._shortcmd(command)
        assert error_text(bad.value).startswith("-ERR"), command
    client.user(ACCOUNT)
    client.pass_(PASSWORD)
    for command in ("RETR 1", "RETR x", "DELE 0", "TOP 1", "LIST -1", "UIDL 99999999999999999999",
                    "STLS", "USER bob", "XYZZY extra args", "RETR"):
        with pytest.raises(poplib.error_proto) as bad:
            client._shortcmd(command)
        assert error_text(bad.value).startswith("-ERR"), command
    assert client.noop().startswith(b"+OK")
    assert client.stat() == (0, 0)
    client.quit()


def test_overlong_line(popgate, provider):
    client = popgate.connect()
    client._putcmd("NOOP " + "x" * 5000)
    try:
        reply = client._getline()[0]
        assert reply.startswith(b"-ERR"), reply
    except (poplib.error_proto, OSError):
        pass   # closing the session is an answer too
    client.close()
    # The daemon still serves.
    provider.add_user("alice", PASSWORD)
    popgate.first_login(ACCOUNT, PASSWORD)

