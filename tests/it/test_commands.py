"""
test_commands.py — the POP3 command table (src/pop3/commands.c) against the
running daemon: each command is refused in the state it is not allowed in,
with the -ERR that names it, and counts as a bad command; NOOP, CAPA and
QUIT work in both states; a message number must name a message that is not
deleted, for every command that takes one.

Clients are raw sockets (RawClient from test_session_limits.py); the
provider is a real Dovecot.
"""

import pytest

from test_session_limits import SMALL_MESSAGE, RawClient, login, queue_messages

BEFORE_LOGIN_ONLY = ["USER x@localhost", "PASS x", "AUTH PLAIN", "STLS", "APOP a b"]
AFTER_LOGIN_ONLY = ["STAT", "LIST", "LIST 1", "UIDL", "UIDL 1", "RETR 1", "TOP 1 0",
                    "DELE 1", "RSET"]


def anonymous(gate):
    client = RawClient(gate.pop3_port)
    assert client.line().startswith(b"+OK")
    return client


@pytest.mark.parametrize("command", AFTER_LOGIN_ONLY)
def test_transaction_commands_refused_before_login(make_popgate, command):
    gate = make_popgate()
    client = anonymous(gate)
    verb = command.split()[0]
    assert client.command(command) == f"-ERR {verb} is only valid after login\r\n".encode()
    assert client.command("NOOP") == b"+OK\r\n"
    client.close()


def test_authorization_commands_refused_after_login(make_popgate, provider):
    gate = make_popgate(provider=provider, overrides={"server": {"max_bad_commands": 10}})
    queue_messages(gate, provider, [SMALL_MESSAGE])
    client = login(gate)
    for command in BEFORE_LOGIN_ONLY:
        verb = command.split()[0]
        assert client.command(command) == f"-ERR {verb} is not valid after login\r\n".encode()
    assert client.command("NOOP") == b"+OK\r\n"
    client.send(b"CAPA\r\n")
    capa = client.reply(True)
    assert capa.startswith(b"+OK") and b"\r\nUSER\r\n" not in capa, capa
    assert client.command("STAT").startswith(b"+OK 1 ")
    client.close()


def test_wrong_state_counts_as_bad(make_popgate):
    gate = make_popgate(overrides={"server": {"max_bad_commands": 2}})
    client = anonymous(gate)
    for _ in range(2):
        assert client.command("STAT").startswith(b"-ERR STAT is only valid after login")
    assert client.command("RETR 1").startswith(b"-ERR")
    assert client.line().startswith(b"-ERR too many bad commands")
    assert client.read_to_eof() == b""
    client.close()


def test_capa_and_quit_before_login(make_popgate):
    gate = make_popgate()
    client = anonymous(gate)
    client.send(b"CAPA\r\n")
    capa = client.reply(True)
    assert capa.startswith(b"+OK") and b"\r\nUSER\r\n" in capa and capa.endswith(b".\r\n")
    assert client.command("QUIT") == b"+OK bye\r\n"
    assert client.read_to_eof() == b""
    client.close()


def test_message_numbers_checked(make_popgate, provider):
    gate = make_popgate(provider=provider)
    queue_messages(gate, provider, [SMALL_MESSAGE])
    client = login(gate)
    for command in ["RETR 2", "TOP 2 0", "DELE 2", "LIST 2", "UIDL 2"]:
        assert client.command(command) == b"-ERR no such message, only 1 in the mailbox\r\n"
    assert client.command("DELE 1") == b"+OK message 1 deleted\r\n"
    for command in ["RETR 1", "TOP 1 0", "DELE 1", "LIST 1", "UIDL 1"]:
        assert client.command(command) == b"-ERR message 1 is deleted\r\n"
    assert client.command("RSET") == b"+OK\r\n"
    assert client.command("LIST 1").startswith(b"+OK 1 ")
    assert client.command("STAT").startswith(b"+OK 1 ")
    client.close()
