"""
test_harness.py — the test servers themselves, without popgate: Dovecot and
the scripted provider must hand out exactly the bytes the other tests expect
(the wire form deliver() returns), so that a mismatch in a popgate test is
popgate's and not the harness's.
"""

import poplib
import socket

import pytest

import corpus as corpus_mod
import itutil
from mailutil import wire_from_lines


def dovecot_client(provider, ca, mode):
    if mode == "plain":
        return poplib.POP3("127.0.0.1", provider.pop3_port, timeout=30)
    if mode == "stls":
        client = poplib.POP3("localhost", provider.pop3_port, timeout=30)
        client.stls(ca.client_context())
        return client
    return poplib.POP3_SSL("localhost", provider.pop3s_port, timeout=30,
                           context=ca.client_context())


@pytest.mark.parametrize("mode", ["plain", "stls", "pop3s"])
def test_dovecot_serves_what_was_delivered(mode, provider, corpus, test_ca):
    provider.add_user("alice", "pw-1")
    provider.add_user("bob@example.org", "pw-2")
    wires = provider.deliver_many("alice", corpus.odd_messages()
                                  + [corpus_mod.long_line_message(tag="harness")])
    client = dovecot_client(provider, test_ca, mode)
    client.user("alice")
    client.pass_("pw-1")
    count, size = client.stat()
    assert count == len(wires) and size == sum(map(len, wires))
    assert sorted(wire_from_lines(client.retr(n)[1]) for n in range(1, count + 1)) == sorted(wires)
    uidls = client.uidl()[1]
    client.dele(1)
    client.quit()
    assert provider.count("alice") == len(wires) - 1

    # UIDLs are stable across sessions.
    client = dovecot_client(provider, test_ca, mode)
    client.user("alice")
    client.pass_("pw-1")
    assert [u.split()[1] for u in client.uidl()[1]] == [u.split()[1] for u in uidls[1:]]
    client.quit()

    client = dovecot_client(provider, test_ca, mode)
    client.user("bob@example.org")
    client.pass_("pw-2")
    assert client.stat() == (0, 0)
    client.quit()


def test_dovecot_password_change_and_restart(provider, test_ca, rogue_ca):
    provider.add_user("alice", "pw-1")
    provider.set_password("alice", "pw-2")
    client = dovecot_client(provider, test_ca, "plain")
    client.user("alice")
    with pytest.raises(poplib.error_proto):
        client.pass_("pw-1")
    client = dovecot_client(provider, test_ca, "plain")
    client.user("alice")
    client.pass_("pw-2")
    client.quit()
    itutil.wait_until(lambda: provider.logins("alice") == 1 and provider.logouts("alice") == 1,
                      10, what="Dovecot's log of the session")

    provider.restart(cert=rogue_ca.server_cert, key=rogue_ca.server_key)
    with pytest.raises(Exception):
        dovecot_client(provider, test_ca, "pop3s")
    provider.restart(cert=test_ca.server_cert, key=test_ca.server_key)
    dovecot_client(provider, test_ca, "pop3s").quit()


def test_big_message_round_trip(provider):
    provider.add_user("alice", "pw-1")
    wire = provider.deliver("alice", corpus_mod.big_message(size=2_000_000))
    client = dovecot_client(provider, None, "plain")
    client.user("alice")
    client.pass_("pw-1")
    assert wire_from_lines(client.retr(1)[1]) == wire
    client.quit()


def test_scripted_provider(make_scripted, corpus, test_ca):
    scripted = make_scripted()
    scripted.add_user("alice", "pw")
    wires = [scripted.deliver("alice", m)
             for m in corpus.odd_messages() + [corpus_mod.long_line_message()]]
    client = poplib.POP3("127.0.0.1", scripted.port, timeout=10)
    client.user("alice")
    client.pass_("pw")
    assert client.stat() == (len(wires), sum(map(len, wires)))
    assert [wire_from_lines(client.retr(n)[1]) for n in range(1, len(wires) + 1)] == wires
    client.dele(1)
    client.quit()
    assert scripted.count("alice") == len(wires) - 1
    assert scripted.commands("alice")[:2] == ["USER alice", "PASS ***"]

    uidls = scripted.uidls("alice")
    scripted.fault, scripted.fault_uidls = "cut_retr", {uidls[0]}
    client = poplib.POP3("127.0.0.1", scripted.port, timeout=10)
    client.user("alice")
    client.pass_("pw")
    with pytest.raises((poplib.error_proto, OSError)):
        client.retr(1)
    scripted.fault = "err_retr"
    client = poplib.POP3("127.0.0.1", scripted.port, timeout=10)
    client.user("alice")
    client.pass_("pw")
    with pytest.raises(poplib.error_proto):
        client.retr(1)
    assert client.retr(2)
    client.dele(2)
    client.sock.close()   # no QUIT: nothing deleted
    scripted.fault = "stall_retr"
    client = poplib.POP3("127.0.0.1", scripted.port, timeout=1)
    client.user("alice")
    client.pass_("pw")
    with pytest.raises(OSError):
        client.retr(1)
    client.close()
    scripted.fault = None
    scripted.list_sizes[uidls[1]] = 99999999
    client = poplib.POP3("127.0.0.1", scripted.port, timeout=10)
    client.user("alice")
    client.pass_("pw")
    assert client.list(2).split()[2] == b"99999999"
    client.quit()
    assert scripted.count("alice") == len(wires) - 1

    scripted.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", scripted.port), timeout=2)
    scripted.start()
    poplib.POP3("127.0.0.1", scripted.port, timeout=10).quit()

    tls = make_scripted(tls_context=test_ca.server_context())
    tls.add_user("bob", "pw")
    client = poplib.POP3_SSL("localhost", tls.port, timeout=10, context=test_ca.client_context())
    client.user("bob")
    client.pass_("pw")
    assert client.stat() == (0, 0)
    client.quit()
