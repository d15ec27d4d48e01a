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

import pytest

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
