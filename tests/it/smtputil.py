"""
smtputil.py — helpers for tests of popgate's SMTP server (issue 9): a popgate
with its SMTP and submission ports, smtplib clients bound to a chosen source
address (127.0.0.2 is "outside" once the Local Networks say so), a raw line
client for pipelining and malformed input, swaks, and reads of the stored
message, envelope and owner.

Traffic goes only to 127.0.0.0/8.
"""

import os
import shutil
import smtplib
import socket
import ssl
import subprocess

import pytest

import itutil
from test_ctl import ctl, ok

OUTSIDE = "127.0.0.2"


def smtp_port(gate, submission=False):
    return int(gate.config["smtp"]["submission_port" if submission else "port"])


def client_context():
    """TLS for tests: popgate's certificate is self-signed."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(gate, submission=False, source=itutil.LOOPBACK, timeout=30):
    """An smtplib client connected from SOURCE (greeting read)."""
    client = smtplib.SMTP(itutil.LOOPBACK, smtp_port(gate, submission), timeout=timeout,
                          source_address=(source, 0), local_hostname="client.test")
    return client


def message_text(subject="hello", body="Hello there.\r\n", sender="office@example.org",
                 to="bob@example.net"):
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@client.test>\r\n\r\n{body}")


def queued_id(reply_text):
    """The id in "Ok: queued as ID"."""
    text = reply_text.decode() if isinstance(reply_text, bytes) else reply_text
    return text.rsplit(" ", 1)[-1]


def send(gate, sender, recipients, text, submission=False, source=itutil.LOOPBACK):
    """Sends one message; returns the queued id (asserts 250)."""
    with connect(gate, submission, source) as client:
        client.ehlo()
        code, reply = client.mail(sender)
        assert code == 250, reply
        for rcpt in recipients:
            code, reply = client.rcpt(rcpt)
            assert code == 250, (rcpt, reply)
        code, reply = client.data(text.encode())
        assert code == 250, reply
        return queued_id(reply)


class Raw:
    """A line client on a plain socket: send bytes as they are, read replies."""

    def __init__(self, gate, submission=False, source=itutil.LOOPBACK, timeout=30):
        self.sock = socket.create_connection((itutil.LOOPBACK, smtp_port(gate, submission)),
                                             timeout=timeout, source_address=(source, 0))
        self.file = self.sock.makefile("rb")

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def reply(self):
        """One reply: (code, [lines]); (None, []) at EOF."""
        lines = []
        while True:
            line = self.file.readline(4096)
            if not line:
                return (None, lines)
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line[4:])
            if len(line) < 4 or line[3] != "-":
                return (int(line[:3]), lines)

    def replies(self, count):
        return [self.reply() for _ in range(count)]

    def command(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def rest(self):
        """Everything the server sends until it closes the connection (a
        socket timeout fails the test if it never does)."""
        return self.file.read()

    def close(self):
        self.file.close()
        self.sock.close()


def add_user(gate, name, password=None, addresses=()):
    ok(ctl("user", "add", name, config=gate.config_path))
    if password is not None:
        ok(ctl("user", "passwd", name, config=gate.config_path, stdin=password + "\n"))
    for address in addresses:
        ok(ctl("address", "add", address, name, config=gate.config_path))


def spool_file(gate, message_id):
    """The body of MESSAGE_ID as stored."""
    path = os.path.join(gate.config["server"]["data_dir"], "spool", message_id[:2], message_id)
    with open(path, "rb") as f:
        return f.read()


def stored(gate, message_id):
    """The message row (dict) with its envelope, or None."""
    rows = gate.db_query("SELECT id, account_id, state, source, body_size, owner_user_id, prepend"
                         " FROM message WHERE id = ?", (message_id,))
    if not rows:
        return None
    keys = ["id", "account_id", "state", "source", "body_size", "owner_user_id", "prepend"]
    row = dict(zip(keys, rows[0]))
    sender = gate.db_query("SELECT sender FROM envelope WHERE message_id = ?", (message_id,))
    row["sender"] = sender[0][0] if sender else None
    row["recipients"] = sorted(r[0] for r in gate.db_query(
        "SELECT address FROM envelope_recipient WHERE message_id = ?", (message_id,)))
    return row


def swaks(gate, *args, submission=False, timeout=60):
    """Runs swaks against GATE's SMTP (or submission) port."""
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    argv = ["swaks", "--server", itutil.LOOPBACK, "--port", str(smtp_port(gate, submission)),
            "--helo", "swaks.test", "--timeout", "30"] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def smtp_gate(make_popgate):
    """A popgate with no provider, its SMTP ports on free ports."""
    return make_popgate()


# The user of outside_gate: carol, owning carol@example.org, with a console
# password (the submission port's credentials, U6).
PASSWORD = "carol-submission-7"


def relays_from(gate, source):
    """True if a client at SOURCE may send to a foreign recipient."""
    with connect(gate, source=source) as client:
        client.ehlo()
        client.mail("a@example.org")
        code, _ = client.rcpt("bob@example.net")
        client.rset()
        return code == 250


@pytest.fixture
def outside_gate(smtp_gate):
    """SMTP_GATE with 127.0.0.1 the only Local Network: 127.0.0.2 is outside.
    The running daemon takes the change when popgatectl tells it."""
    ok(ctl("network", "add", "office", "127.0.0.1/32", config=smtp_gate.config_path))
    ok(ctl("network", "del", "loopback", config=smtp_gate.config_path))
    add_user(smtp_gate, "carol", PASSWORD, addresses=["carol@example.org"])
    itutil.wait_until(lambda: not relays_from(smtp_gate, OUTSIDE), timeout=30,
                      what="the Local Networks reloaded")
    return smtp_gate
