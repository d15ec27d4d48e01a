"""
test_smtp_server.py — popgate's SMTP server (issue 9, items 1 to 3 and 6)
against real clients: Python's smtplib, swaks and a raw socket for
pipelining and malformed input. EHLO's keywords, a pipelined transaction,
every refusal with its reply code and enhanced status code, the limits
(size, recipients, bad commands, silence, the session deadline), STARTTLS
with the command-injection case, AUTH on the submission port with a user's
console credentials, and durability: after 250 the message row (source
submitted, no account, its owner), its envelope and its Received header are
in the store, and it moves on to outbound; when the store refuses, no 250.
"""

import base64
import os
import smtplib
import ssl
import time

import pytest

import itutil
from smtputil import (OUTSIDE, PASSWORD, Raw, add_user, client_context, connect, message_text, queued_id,
                      outside_gate, send, smtp_gate, spool_file, stored,
                      swaks)  # noqa: F401 - smtp_gate and outside_gate are fixtures



def ehlo_keywords(client):
    code, text = client.ehlo()
    assert code == 250
    return [line.split(" ")[0] for line in text.decode().splitlines()[1:]], text.decode()


def test_ehlo_keywords(smtp_gate):
    with connect(smtp_gate) as client:
        keywords, text = ehlo_keywords(client)
        for keyword in ["PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8",
                        "CHUNKING", "STARTTLS"]:
            assert keyword in keywords, text
        assert "SIZE 52428800" in text
        # AUTH only on the submission port.
        assert "AUTH" not in keywords
        client.starttls(context=client_context())
        keywords, text = ehlo_keywords(client)
        assert "STARTTLS" not in keywords and "AUTH" not in keywords
    with connect(smtp_gate, submission=True) as client:
        keywords, text = ehlo_keywords(client)
        assert "AUTH" not in keywords  # not before TLS
        client.starttls(context=client_context())
        keywords, text = ehlo_keywords(client)
        assert "AUTH PLAIN LOGIN" in text


def test_message_is_stored_before_250_and_goes_outbound(smtp_gate):
    add_user(smtp_gate, "carol", addresses=["carol@example.org"])
    carol = smtp_gate.db_query("SELECT id FROM user WHERE name = 'carol'")[0][0]
    text = message_text(sender="carol@example.org", to="bob@example.net")
    message_id = send(smtp_gate, "carol@example.org", ["bob@example.net", "Eve@Example.COM"],
                      text)
    # 250 came after the commit: the row is there at once.
    row = stored(smtp_gate, message_id)
    assert row is not None
    assert row["source"] == "submitted" and row["account_id"] is None
    assert row["owner_user_id"] == carol
    assert row["sender"] == "carol@example.org"
    assert row["recipients"] == ["Eve@example.com", "bob@example.net"]
    assert row["body_size"] == len(text.encode())
    assert row["prepend"].startswith("Received: from client.test ([127.0.0.1])")
    assert f"with ESMTP id {message_id}" in row["prepend"]
    assert spool_file(smtp_gate, message_id) == text.encode()
    # The pipeline judges it and route.c moves it to the outbound queue,
    # with the Received header it was stored with and no filter headers.
    smtp_gate.wait_message_state(message_id, "outbound")
    assert stored(smtp_gate, message_id)["prepend"] == row["prepend"]


def test_sender_of_no_user_has_no_owner_and_null_sender_is_taken(smtp_gate):
    message_id = send(smtp_gate, "", ["bob@example.net"], message_text())
    row = stored(smtp_gate, message_id)
    assert row["owner_user_id"] is None and row["sender"] == ""


def test_swaks_sends_a_message(smtp_gate):
    done = swaks(smtp_gate, "--from", "office@example.org", "--to", "bob@example.net",
                 "--body", "sent by swaks")
    assert done.returncode == 0, done.stdout + done.stderr
    queued = [line for line in done.stdout.splitlines() if "queued as" in line]
    assert len(queued) == 1
    message_id = queued_id(queued[0].strip())
    assert stored(smtp_gate, message_id)["recipients"] == ["bob@example.net"]


def test_pipelined_transaction_in_one_write(smtp_gate):
    raw = Raw(smtp_gate)
    assert raw.reply()[0] == 220
    raw.send("EHLO pipe.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
             "RCPT TO:<c@example.net>\r\nDATA\r\n")
    codes = [code for code, _ in raw.replies(5)]
    assert codes == [250, 250, 250, 250, 354]
    raw.send("Subject: pipelined\r\n\r\n..a dot-stuffed line\r\nbare LF line\n.\r\nQUIT\r\n")
    code, lines = raw.reply()
    assert code == 250 and lines[0].startswith("2.0.0 Ok: queued as ")
    assert raw.reply() == (221, ["2.0.0 Bye"])
    raw.close()
    message_id = queued_id(lines[0])
    assert spool_file(smtp_gate, message_id) == (
        b"Subject: pipelined\r\n\r\n.a dot-stuffed line\r\nbare LF line\r\n")


REFUSALS = [
    ("MAIL FROM:<a@example.org>", 503, "5.5.1"),  # before EHLO
    ("EHLO", 501, "5.5.4"),
    ("EHLO refusals.test", 250, None),
    ("FOO bar", 500, "5.5.2"),
    ("RCPT TO:<b@example.net>", 503, "5.5.1"),  # before MAIL
    ("DATA", 503, "5.5.1"),
    ("MAIL FROM:a@example.org", 501, "5.1.7"),
    ("MAIL TO:<a@example.org>", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> SIZE=99999999999", 552, "5.3.4"),
    ("MAIL FROM:<a@example.org> SIZE=big", 501, "5.5.4"),
    ("MAIL FROM:<a@example.org> FOO=BAR", 555, "5.5.4"),
    ("MAIL FROM:<jörg@example.org>", 553, "5.6.7"),
    ("AUTH PLAIN", 502, "5.5.1"),  # not on the relay port
    ("BDAT 0 LAST", 503, "5.5.1"),  # no transaction
    ("QUIT now", 501, "5.5.4"),
    ("X" * 1100, 500, "5.5.2"),
    ("MAIL FROM:<a@example.org> BODY=8BITMIME SMTPUTF8", 250, "2.1.0"),
    ("MAIL FROM:<b@example.org>", 503, "5.5.1"),  # nested MAIL
    ("RCPT TO:<>", 501, "5.1.3"),
    ("RCPT TO:<b@example.net> NOTIFY=NEVER", 555, "5.5.4"),
    ("DATA", 503, "5.5.1"),  # no recipient yet
    ("STARTTLS", 503, "5.5.1"),  # inside a transaction
    ("VRFY bob", 252, "2.5.0"),
    ("EXPN list", 502, "5.5.1"),
    ("RSET", 250, "2.0.0"),
    ("NOOP", 250, "2.0.0"),
]


def test_every_refusal_has_its_codes(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_bad_commands": 100}})
    raw = Raw(gate)
    assert raw.reply()[0] == 220
    for line, code, status in REFUSALS:
        got, lines = raw.command(line)
        assert got == code, (line, lines)
        if status is not None:
            assert lines[-1].startswith(status + " "), (line, lines)
    # Nothing refused was stored.
    assert gate.db_query("SELECT count(*) FROM message") == [(0,)]
    raw.close()


def test_too_many_recipients(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_recipients": 100}})
    raw = Raw(gate)
    raw.reply()
    rcpts = "".join(f"RCPT TO:<r{i}@example.net>\r\n" for i in range(101))
    raw.send("EHLO many.test\r\nMAIL FROM:<a@example.org>\r\n" + rcpts)
    replies = raw.replies(103)
    assert [code for code, _ in replies[:102]] == [250] * 102
    assert replies[102] == (452, ["4.5.3 Too many recipients"])
    # The hundred taken are sent to.
    raw.send("DATA\r\n")
    assert raw.reply()[0] == 354
    raw.send("Subject: many\r\n\r\nhi\r\n.\r\n")
    code, lines = raw.reply()
    assert code == 250
    assert len(stored(gate, queued_id(lines[0]))["recipients"]) == 100
    raw.close()


def test_message_over_the_size_limit_is_refused_and_not_stored(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_message_size": 2048}})
    with connect(gate) as client:
        client.ehlo()
        assert "SIZE 2048" in client.ehlo_resp.decode()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        code, reply = client.data(message_text(body="x" * 70 + "\r\n") * 40)
        assert (code, reply.decode()[:5]) == (552, "5.3.4")
        # The session goes on.
        assert client.noop()[0] == 250
    assert gate.db_query("SELECT count(*) FROM message") == [(0,)]


def test_bad_commands_end_the_session(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_bad_commands": 3}})
    raw = Raw(gate)
    raw.reply()
    raw.send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n")
    assert [code for code, _ in raw.replies(2)] == [500, 500]
    code, lines = raw.reply()
    assert code == 500
    assert raw.reply() == (421, ["4.7.0 Too many errors; closing"])
    assert raw.rest() == b""  # closed; the NOOP behind was not answered
    raw.close()


def test_silence_timeout(make_popgate):
    gate = make_popgate(overrides={"smtp": {"timeout": 1}})
    raw = Raw(gate)
    raw.reply()
    code, lines = raw.reply()  # nothing sent: the server gives up
    assert code == 421 and lines[0].startswith("4.4.2 ")
    assert raw.rest() == b""
    raw.close()


def test_session_deadline_holds_against_a_busy_client(make_popgate):
    gate = make_popgate(overrides={"smtp": {"timeout": 60, "session_deadline": 2}})
    raw = Raw(gate)
    raw.reply()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        code, lines = raw.command("NOOP")
        if code != 250:
            break
        time.sleep(0.2)
    assert code == 421 and lines[0].startswith("4.4.2 ")
    raw.close()


def test_starttls_discards_commands_pipelined_in_the_clear(smtp_gate):
    raw = Raw(smtp_gate)
    raw.reply()
    assert raw.command("EHLO inject.test")[0] == 250
    # The injection: a command sent in the clear behind STARTTLS.
    raw.send("STARTTLS\r\nMAIL FROM:<injected@example.org>\r\n")
    assert raw.reply() == (220, ["2.0.0 Ready to start TLS"])
    tls = client_context().wrap_socket(raw.sock, server_hostname="localhost")
    tls_file = tls.makefile("rb")

    def command(line):
        tls.sendall(line.encode() + b"\r\n")
        lines = []
        while True:
            text = tls_file.readline().decode().rstrip("\r\n")
            lines.append(text)
            if text[3] != "-":
                return int(text[:3]), lines

    # Only EHLO's reply comes: nothing answers the injected MAIL ...
    code, lines = command("EHLO inject.test")
    assert code == 250 and " greets " in lines[0]
    assert not any("STARTTLS" in line for line in lines)
    # ... and it was not taken: there is no transaction.
    assert command("RCPT TO:<b@example.net>")[0] == 503
    # RFC 3207: the session starts anew after TLS (EHLO again).
    tls.close()


def test_starttls_resets_the_session(smtp_gate):
    raw = Raw(smtp_gate)
    raw.reply()
    raw.command("EHLO reset.test")
    raw.command("STARTTLS")
    tls = client_context().wrap_socket(raw.sock, server_hostname="localhost")
    tls.sendall(b"MAIL FROM:<a@example.org>\r\n")
    assert tls.makefile("rb").readline().startswith(b"503 5.5.1")
    tls.close()


def test_submission_needs_tls_then_auth_with_console_credentials(outside_gate):
    gate = outside_gate
    raw = Raw(gate, submission=True, source=OUTSIDE)
    raw.reply()
    raw.command("EHLO roaming.test")
    # Before TLS: no AUTH, and no mail without it.
    assert raw.command("AUTH PLAIN AGNhcm9sAHg=")[0] == 538
    code, lines = raw.command("MAIL FROM:<carol@example.org>")
    assert (code, lines[0][:5]) == (530, "5.7.0")
    raw.close()

    with connect(gate, submission=True, source=OUTSIDE) as client:
        client.starttls(context=client_context())
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login("carol", "wrong-password")
        assert refused.value.smtp_code == 535 and refused.value.smtp_error[:5] == b"5.7.8"
        code, _ = client.mail("carol@example.org")
        assert code == 530
    for mechanism in ["PLAIN", "LOGIN"]:
        with connect(gate, submission=True, source=OUTSIDE) as client:
            client.starttls(context=client_context())
            client.ehlo()
            client.user, client.password = "carol", PASSWORD
            code, reply = client.auth(mechanism, getattr(client, "auth_" + mechanism.lower()),
                                      initial_response_ok=mechanism == "PLAIN")
            assert (code, reply[:5]) == (235, b"2.7.0")
            assert client.mail("carol@example.org")[0] == 250
            assert client.rcpt("bob@example.net")[0] == 250  # relaying, logged in
            code, reply = client.data(message_text(sender="carol@example.org").encode())
            assert code == 250
            row = stored(gate, queued_id(reply))
            assert "with ESMTPSA id" in row["prepend"]
    # The password is never in the log.
    assert PASSWORD not in gate.log_text()


def test_no_250_when_the_store_refuses(smtp_gate):
    smtp_gate.db_write("CREATE TRIGGER refuse_envelope BEFORE INSERT ON envelope"
                       " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
    with connect(smtp_gate) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        code, reply = client.data(message_text().encode())
        assert (code, reply[:5]) == (451, b"4.3.0")
        assert client.noop()[0] == 250
    # Nothing half there: no row, no body in the spool.
    assert smtp_gate.db_query("SELECT count(*) FROM message") == [(0,)]
    smtp_gate.db_write("DROP TRIGGER refuse_envelope")
    message_id = send(smtp_gate, "a@example.org", ["b@example.net"], message_text())
    assert stored(smtp_gate, message_id) is not None


def test_sessions_per_client_are_limited(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_sessions_per_client": 2}})
    first, second = Raw(gate), Raw(gate)
    assert first.reply()[0] == 220 and second.reply()[0] == 220
    third = Raw(gate)
    assert third.reply() == (421, ["4.7.0 Too many sessions; try again later"])
    assert third.rest() == b""
    # Another client address has its own count.
    other = Raw(gate, source=OUTSIDE)
    assert other.reply()[0] == 220
    for raw in (first, second, third, other):
        raw.close()


def test_body_line_over_the_limit_is_refused_and_not_stored(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_text_line": 12300}})
    with connect(gate) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        code, reply = client.data(message_text(body="y" * 13000 + "\r\n").encode())
        assert (code, reply[:5]) == (550, b"5.6.0")
        # The session stayed in step: the next message goes through.
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        assert client.data(message_text(body="y" * 990 + "\r\n").encode())[0] == 250
    assert gate.db_query("SELECT count(*) FROM message") == [(1,)]


def test_submission_logins_are_throttled(make_popgate):
    gate = make_popgate(overrides={"server": {"login_fail_limit": 2, "login_fail_window": 600}})
    add_user(gate, "carol", PASSWORD, addresses=["carol@example.org"])

    def login(password):
        with connect(gate, submission=True) as client:
            client.starttls(context=client_context())
            client.ehlo()
            # One mechanism: smtplib's login() would try PLAIN, then LOGIN.
            client.user, client.password = "carol", password
            try:
                return client.auth("PLAIN", client.auth_plain)[0]
            except smtplib.SMTPAuthenticationError as e:
                return e.smtp_code

    assert login("wrong-1") == 535
    assert login("wrong-2") == 535
    # Over the limit: even the right password is refused for now, with a
    # temporary failure, as POP3 and console logins are (pop3/auth.h).
    assert login(PASSWORD) == 454
    assert PASSWORD not in gate.log_text()


def test_swaks_submits_with_starttls_and_auth(outside_gate):
    for mechanism in ["PLAIN", "LOGIN"]:
        done = swaks(outside_gate, "--local-interface", OUTSIDE, "-tls", "--auth", mechanism,
                     "--auth-user", "carol", "--auth-password", PASSWORD,
                     "--from", "carol@example.org", "--to", "bob@example.net",
                     submission=True)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "235 2.7.0" in done.stdout
        queued = [line for line in done.stdout.splitlines() if "queued as" in line]
        assert len(queued) == 1
        row = stored(outside_gate, queued_id(queued[0].strip()))
        assert row["recipients"] == ["bob@example.net"] and "ESMTPSA" in row["prepend"]


def test_auth_login_cut_short_leaves_no_user_name_behind(smtp_gate):
    add_user(smtp_gate, "carol", PASSWORD)
    user = base64.b64encode(b"carol").decode()
    with connect(smtp_gate, submission=True) as client:
        client.starttls(context=client_context())
        client.ehlo()
        assert client.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert client.docmd(user) == (334, b"UGFzc3dvcmQ6")
        # The exchange is cut by a line over the limit ...
        client.send(b"p" * 13000 + b"\r\n")
        assert client.getreply()[0] == 500
        # ... and the next AUTH LOGIN starts with the user name again.
        assert client.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert client.docmd(user) == (334, b"UGFzc3dvcmQ6")
        assert client.docmd(base64.b64encode(PASSWORD.encode()).decode())[0] == 235


def test_8bit_body_and_smtputf8_addresses_are_kept_as_sent(smtp_gate):
    body = "Subject: Grüße\r\n\r\nÄpfel und Öl.\r\n".encode()
    with connect(smtp_gate) as client:
        client.ehlo()
        assert client.mail("jörg@exämple.org", ["BODY=8BITMIME", "SMTPUTF8"])[0] == 250
        assert client.rcpt("zoë@example.net")[0] == 250
        code, reply = client.data(body)
        assert code == 250
        # Without SMTPUTF8 in MAIL, a non-ASCII recipient is refused.
        client.mail("a@example.org", ["BODY=8BITMIME"])
        assert client.rcpt("zoë@example.net") == (553, b"5.6.7 A non-ASCII address needs SMTPUTF8")
    message_id = queued_id(reply)
    row = stored(smtp_gate, message_id)
    assert row["sender"] == "jörg@exämple.org" and row["recipients"] == ["zoë@example.net"]
    assert spool_file(smtp_gate, message_id) == body


def test_a_mail_loop_is_refused(smtp_gate):
    hops = "".join(f"Received: from hop{i} by hop{i + 1}; Wed, 2 Dec 2026 06:00:00 +0000\r\n"
                   for i in range(100))
    with connect(smtp_gate) as client:
        client.ehlo()
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        code, reply = client.data((hops + message_text()).encode())
        assert (code, reply[:5]) == (554, b"5.4.6")
        # 99 hops are no loop yet.
        client.mail("a@example.org")
        client.rcpt("b@example.net")
        hops = hops.split("\r\n", 1)[1]
        assert client.data((hops + message_text()).encode())[0] == 250
    assert smtp_gate.db_query("SELECT count(*) FROM message") == [(1,)]


def test_stop_says_421_to_open_sessions(make_popgate):
    gate = make_popgate()
    idle, in_data = Raw(gate), Raw(gate)
    idle.reply()
    in_data.reply()
    in_data.send("EHLO stop.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
                 "DATA\r\n")
    assert [code for code, _ in in_data.replies(4)] == [250, 250, 250, 354]
    in_data.send("Subject: cut\r\n\r\nhalf a message\r\n")
    assert gate.stop() == 0
    for raw in (idle, in_data):
        code, lines = raw.reply()
        assert code == 421 and lines[0].startswith("4.3.2 ")
        raw.close()
    # The message cut by the stop left nothing behind.
    assert os.listdir(os.path.join(gate.config["server"]["data_dir"], "spool", "tmp")) == []
    gate.start()
    assert gate.db_query("SELECT count(*) FROM message") == [(0,)]
