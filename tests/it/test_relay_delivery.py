"""
test_relay_delivery.py — the SMTP relay's delivery in the running daemon
(issue 9, point 4): a real dnsmasq answering MX and A records, aiosmtpd
servers as the MX and as a relay host that wants STARTTLS and AUTH, and
popgatectl's transport and queue commands.

Outbound mail gets into the queue two ways. Submitted over SMTP with smtplib
(test_smtp_submission_delivered, test_submitted_mail_is_dkim_signed), through
the filters and the DKIM signature. And, for everything else, as the SMTP server's
writer job leaves it — a spool body, a message row in state outbound and its
envelope — written beside the daemon into its store, after which
`popgatectl queue flush` tells the daemon.
"""

import email
import email.policy
import json
import os
import secrets
import smtplib
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

import itutil
from dnsserver import Dnsmasq
from test_ctl import ctl, ok
from test_dkim_keygen import record_from_output, verifies

MX_ADDRESS = "127.0.0.21"
RELAY_ADDRESS = "127.0.0.22"
BROKEN_TLS_ADDRESS = "127.0.0.23"
RELAY_USER = "relayuser"
RELAY_PASSWORD = "relay-secret-91x"
BODY = (b"From: Alice <alice@office.test>\r\nTo: bob@mail.test\r\n"
        b"Subject: quarterly figures\r\nMessage-ID: <q1@office.test>\r\n\r\n"
        b"the body, never in a DSN\r\n")


class Sink:
    """An aiosmtpd server on ADDRESS:PORT that records what it accepts; a
    recipient whose local part begins "tempfail" gets 451, "reject" 550."""

    def __init__(self, address, port, tls_context=None, auth=False, require_tls=True):
        self.messages = []
        self.ehlos = 0
        self.logins = []
        self.lock = threading.Lock()
        kwargs = {}
        if tls_context is not None:
            kwargs.update(tls_context=tls_context, require_starttls=require_tls)
        if auth:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=True)
        self.controller = Controller(self, hostname=address, port=port, **kwargs)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        good = (auth_data.login == RELAY_USER.encode()
                and auth_data.password == RELAY_PASSWORD.encode())
        if good:
            with self.lock:
                self.logins.append(auth_data.login.decode())
        return AuthResult(success=good)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with self.lock:
            self.ehlos += 1
        return responses

    async def handle_RCPT(self, server, session, envelope, address, options):
        local = address.split("@")[0]
        if local.startswith("tempfail"):
            return "451 4.3.0 try again later"
        if local.startswith("reject"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 ok"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append({"from": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                                  "data": envelope.content, "tls": session.ssl is not None})
        return "250 2.0.0 queued"

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def received(self, address):
        with self.lock:
            return sum(1 for m in self.messages if address in m["rcpts"])


@pytest.fixture
def relay_env(it_root, test_ca, make_popgate):
    """popgate delivering to mail.test's MX (a sink) through a dnsmasq; the
    relay host sink (STARTTLS and AUTH) for transport rules."""
    directory = os.path.join(it_root, "relay-" + secrets.token_hex(4))
    os.makedirs(directory)
    port = itutil.free_port()
    dns = Dnsmasq(directory, {"mx.mail.test": [MX_ADDRESS], "relay.test": [RELAY_ADDRESS],
                              "mx.tls.test": [BROKEN_TLS_ADDRESS]},
                  mx={"mail.test": [(10, "mx.mail.test")], "nullmx.test": [(0, ".")],
                      "tls.test": [(10, "mx.tls.test")]}).start()
    mx = Sink(MX_ADDRESS, port).start()
    relay = Sink(RELAY_ADDRESS, port, tls_context=test_ca.server_context(), auth=True).start()
    gate = make_popgate(overrides={
        "server": {"nameservers": dns.address, "hostname": "gate.test"},
        "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                  "retry_max": 3600},
    })
    env = type("Env", (), {})()
    env.gate, env.mx, env.relay, env.dns, env.port = gate, mx, relay, dns, port
    env.ca = test_ca
    yield env
    gate.stop()
    mx.stop()
    relay.stop()
    dns.stop()


def queue_outbound(gate, sender, recipients, body=BODY, owner=None):
    """Puts a message into outbound as the SMTP server's accept job leaves
    it: the body in the spool, its row and envelope. Its id."""
    message_id = secrets.token_hex(12)
    path = os.path.join(gate.data_dir, "spool", message_id[:2], message_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(body)
    gate.db_write("INSERT INTO message (id, account_id, state, source, body_size, received_at,"
                  " state_changed_at, owner_user_id) VALUES (?, NULL, 'outbound', 'submitted',"
                  " ?, strftime('%s', 'now'), strftime('%s', 'now'), ?)",
                  (message_id, len(body), owner))
    gate.db_write("INSERT INTO envelope (message_id, sender) VALUES (?, ?)",
                  (message_id, sender))
    for address in recipients:
        gate.db_write("INSERT INTO envelope_recipient (message_id, address) VALUES (?, ?)",
                      (message_id, address))
    return message_id


def recipient_rows(gate, message_id):
    return {address: (status, attempts, reply) for address, status, attempts, reply in
            gate.db_query("SELECT address, status, attempts, last_reply FROM"
                          " envelope_recipient WHERE message_id = ?", (message_id,))}


def test_transport_commands(relay_env):
    gate = relay_env.gate
    conf = gate.config_path
    out = ok(ctl("transport", "add", "--domain", "*.example.com", "relay.test:2525",
                 config=conf))
    assert "position 1" in out
    out = ok(ctl("--json", "transport", "add", "--sender", "@office.test", "relay.test",
                 "--tls", "required", "--auth", RELAY_USER, "--position", "1", config=conf,
                 stdin=RELAY_PASSWORD + "\n"))
    added = json.loads(out)
    assert added["position"] == 1 and added["port"] == 25 and added["auth"] == RELAY_USER
    rules = json.loads(ok(ctl("--json", "transport", "list", config=conf)))
    assert [(r["position"], r["pattern"], r["tls"]) for r in rules] == [
        (1, "@office.test", "required"), (2, "*.example.com", "opportunistic")]
    listing = ok(ctl("transport", "list", config=conf))
    assert RELAY_PASSWORD not in listing and RELAY_USER in listing
    # Stored sealed: not the password's bytes.
    (secret,), = gate.db_query("SELECT auth_secret FROM transport_rule WHERE auth_user = ?",
                               (RELAY_USER,))
    assert RELAY_PASSWORD.encode() not in secret
    assert RELAY_PASSWORD not in gate.log_text()
    # Refusals.
    assert ctl("transport", "add", "--domain", "a@b.test", "relay.test", config=conf
               ).returncode == 2
    assert ctl("transport", "add", "--sender", "office.test", "relay.test", config=conf
               ).returncode == 2
    assert ctl("transport", "add", "--domain", "x.test", "relay.test:0", config=conf
               ).returncode == 2
    assert ctl("transport", "add", "--domain", "x.test", "relay.test", "--tls", "maybe",
               config=conf).returncode == 2
    assert ctl("transport", "add", "--domain", "x.test", "[relay.test]:25", config=conf
               ).returncode == 2
    assert ctl("transport", "add", "--domain", "x.test", "::1", config=conf).returncode == 2
    v6 = json.loads(ok(ctl("--json", "transport", "add", "--domain", "v6.test", "[::1]:2525",
                           config=conf)))
    assert (v6["host"], v6["port"]) == ("::1", 2525)
    ok(ctl("transport", "del", str(v6["id"]), config=conf))
    assert ctl("transport", "del", "999", config=conf).returncode == 1
    ok(ctl("transport", "del", str(added["id"]), config=conf))
    rules = json.loads(ok(ctl("--json", "transport", "list", config=conf)))
    assert [r["pattern"] for r in rules] == ["*.example.com"]
    gate.wait_event("admin_change", count=5)


def test_delivery_and_queue_commands(relay_env):
    gate, mx = relay_env.gate, relay_env.mx
    conf = gate.config_path
    gate.db_write("INSERT INTO user (id, name, origin, created_at) VALUES (7, 'alice', 'local',"
                  " 1)")
    message_id = queue_outbound(gate, "alice@office.test",
                                ["bob@mail.test", "reject@mail.test", "tempfail@mail.test"],
                                owner=7)
    ok(ctl("queue", "flush", config=conf))
    itutil.wait_until(lambda: recipient_rows(gate, message_id)["tempfail@mail.test"][1] == 1,
                      timeout=30, what="the first attempt")
    rows = recipient_rows(gate, message_id)
    assert rows["bob@mail.test"][0] == "sent"
    assert rows["reject@mail.test"][0] == "failed"
    assert rows["reject@mail.test"][2].startswith("550 5.1.1")
    assert rows["tempfail@mail.test"][0] == "pending"
    assert gate.message_state(message_id) == "outbound"
    assert gate.db_query("SELECT address FROM correspondent WHERE user_id = 7") == [
        ("bob@mail.test",)]
    # The queue as the administrator sees it.
    listing = json.loads(ok(ctl("--json", "queue", "outbound", config=conf)))
    assert [m["id"] for m in listing] == [message_id]
    by_address = {r["address"]: r for r in listing[0]["recipients"]}
    assert by_address["tempfail@mail.test"]["status"] == "pending"
    assert by_address["tempfail@mail.test"]["next_attempt"] is not None
    assert by_address["tempfail@mail.test"]["last_reply"].startswith("451 4.3.0")
    table = ok(ctl("queue", "outbound", config=conf))
    assert "tempfail@mail.test" in table and "pending" in table
    assert ok(ctl("queue", config=conf)) == table
    # retry: due now, the daemon told, one attempt more; bob is not sent again.
    ok(ctl("queue", "retry", message_id, config=conf))
    itutil.wait_until(lambda: recipient_rows(gate, message_id)["tempfail@mail.test"][1] == 2,
                      timeout=30, what="the retried attempt")
    assert mx.received("bob@mail.test") == 1
    # bounce: the pending recipient fails; the daemon, told, bounces the
    # message and writes one DSN (into its own spool, as its own user).
    ok(ctl("queue", "bounce", message_id, config=conf))
    gate.wait_message_state(message_id, "bounced")
    assert ctl("queue", "bounce", message_id, config=conf).returncode == 1
    assert ctl("queue", "retry", "0" * 24, config=conf).returncode == 1
    (dsn_id, sender, rcpt), = gate.db_query(
        "SELECT e.message_id, e.sender, r.address FROM envelope e JOIN envelope_recipient r"
        " ON r.message_id = e.message_id WHERE e.message_id != ?", (message_id,))
    assert (sender, rcpt) == ("", "alice@office.test")
    with open(os.path.join(gate.data_dir, "spool", dsn_id[:2], dsn_id), "rb") as f:
        dsn = email.message_from_bytes(f.read(), policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    parts = list(dsn.iter_parts())
    assert [p.get_content_type() for p in parts] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = parts[1].as_string()
    assert "Reporting-MTA: dns; gate.test" in status
    assert "Final-Recipient: rfc822; reject@mail.test" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1" in status
    assert "Final-Recipient: rfc822; tempfail@mail.test" in status
    assert "Final-Recipient: rfc822; bob@mail.test" not in status
    headers = parts[2].get_payload() if isinstance(parts[2].get_payload(), str) else \
        parts[2].as_string()
    assert "Subject: quarterly figures" in headers
    assert "never in a DSN" not in dsn.as_string()
    # The daemon can read the DSN it wrote: the pipeline takes it on (a body
    # it cannot open would make it suspect).
    itutil.wait_until(lambda: gate.message_state(dsn_id) != "processing", timeout=30,
                      what="the DSN filtered")
    assert gate.message_state(dsn_id) != "suspect"


def test_null_mx_fails_at_once(relay_env):
    gate = relay_env.gate
    message_id = queue_outbound(gate, "alice@office.test", ["bob@nullmx.test"])
    ok(ctl("queue", "flush", config=gate.config_path))
    gate.wait_message_state(message_id, "bounced")
    status, attempts, reply = recipient_rows(gate, message_id)["bob@nullmx.test"]
    assert (status, attempts) == ("failed", 1)
    assert reply.startswith("556 5.1.10")
    assert relay_env.mx.ehlos == 0


def test_transport_rule_with_tls_and_auth(relay_env):
    """A rule sends mail.test's mail through the relay host, which takes it
    only after STARTTLS and AUTH; the MX sees nothing."""
    gate, relay = relay_env.gate, relay_env.relay
    conf = gate.config_path
    ok(ctl("transport", "add", "--domain", "mail.test", f"relay.test:{relay_env.port}",
           "--tls", "required", "--auth", RELAY_USER, config=conf,
           stdin=RELAY_PASSWORD + "\n"))
    message_id = queue_outbound(gate, "alice@office.test", ["bob@mail.test"])
    ok(ctl("queue", "flush", config=conf))
    gate.wait_message_state(message_id, "sent")
    assert relay.received("bob@mail.test") == 1
    assert relay.logins == [RELAY_USER]
    assert relay.messages[0]["tls"]
    assert relay_env.mx.ehlos == 0
    assert RELAY_PASSWORD not in gate.log_text()


def test_opportunistic_tls_falls_back_to_plain(relay_env):
    """An MX offers STARTTLS but its handshake fails (it wants a client
    certificate): the message goes again in plain text (RFC 7435), once."""
    gate = relay_env.gate
    context = relay_env.ca.server_context()
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(relay_env.ca.ca_cert)
    broken = Sink(BROKEN_TLS_ADDRESS, relay_env.port, tls_context=context,
                  require_tls=False).start()
    try:
        message_id = queue_outbound(gate, "alice@office.test", ["erin@tls.test"])
        ok(ctl("queue", "flush", config=gate.config_path))
        gate.wait_message_state(message_id, "sent")
        assert broken.received("erin@tls.test") == 1
        assert not broken.messages[0]["tls"]
        assert broken.ehlos == 2
        assert any("STARTTLS failed" in e.detail for e in gate.events("relay"))
    finally:
        broken.stop()


def test_restart_resumes(relay_env):
    """A recipient left pending by a stopped daemon is delivered by the next."""
    gate = relay_env.gate
    message_id = queue_outbound(gate, "alice@office.test", ["tempfail-then@mail.test",
                                                           "carol@mail.test"])
    ok(ctl("queue", "flush", config=gate.config_path))
    itutil.wait_until(lambda: recipient_rows(gate, message_id)["tempfail-then@mail.test"][1]
                      == 1, timeout=30, what="the first attempt")
    gate.stop()
    # The remote server has recovered: the same address is taken now.
    gate.db_write("UPDATE envelope_recipient SET address = 'then@mail.test',"
                  " next_attempt_at = 0 WHERE address = 'tempfail-then@mail.test'")
    gate.start()
    gate.wait_message_state(message_id, "sent")
    assert relay_env.mx.received("then@mail.test") == 1
    assert relay_env.mx.received("carol@mail.test") == 1


def test_smtp_submission_delivered(relay_env):
    """Submitted over SMTP from loopback (a Local Network), filtered, relayed
    to the MX."""
    gate = relay_env.gate
    port = gate.config["smtp"]["port"]
    with smtplib.SMTP(itutil.LOOPBACK, port, timeout=30) as client:
        client.sendmail("alice@office.test", ["dave@mail.test"], BODY)
    itutil.wait_until(lambda: relay_env.mx.received("dave@mail.test") == 1, timeout=60,
                      what="the relayed message at the MX")

    def state():
        (row,), = gate.db_query("SELECT state FROM message m JOIN envelope_recipient r ON"
                                " r.message_id = m.id WHERE r.address = 'dave@mail.test'")
        return row

    # The MX has the message once it said 250; the relay records "sent" in
    # the writer's next commit, a moment later.
    itutil.wait_until(lambda: state() == "sent", timeout=30, what="the message marked sent")


def test_submitted_mail_is_dkim_signed(relay_env):
    """A message submitted over SMTP whose From: domain has a key arrives at
    the MX signed, and the signature verifies with the record `dkim keygen`
    printed (dkimpy, not libopendkim, checks it); a message from a domain
    without a key arrives unsigned. Every delivery sends the same bytes."""
    gate = relay_env.gate
    port = gate.config["smtp"]["port"]
    made = ok(ctl("dkim", "keygen", "office.test", config=gate.config_path))
    name, strings = record_from_output(made)
    unsigned_body = BODY.replace(b"alice@office.test", b"carol@elsewhere.test")
    with smtplib.SMTP(itutil.LOOPBACK, port, timeout=30) as client:
        client.sendmail("alice@office.test", ["erin@mail.test"], BODY)
        client.sendmail("carol@elsewhere.test", ["frank@mail.test"], unsigned_body)
    itutil.wait_until(lambda: relay_env.mx.received("erin@mail.test") == 1
                      and relay_env.mx.received("frank@mail.test") == 1, timeout=60,
                      what="both messages at the MX")
    with relay_env.mx.lock:
        by_rcpt = {m["rcpts"][0]: m["data"] for m in relay_env.mx.messages}
    signed = by_rcpt["erin@mail.test"]
    assert signed.startswith(b"DKIM-Signature: "), signed[:200]
    assert b"d=office.test;" in signed.split(b"\r\n\r\n")[0]
    assert verifies(b"", signed, name, "".join(strings))
    # The signature covers what was sent: a changed body fails.
    assert not verifies(b"", signed.replace(b"the body", b"a body"), name, "".join(strings))
    assert b"DKIM-Signature" not in by_rcpt["frank@mail.test"]
