"""
test_relay_mta_sts.py — MTA-STS (RFC 8461) in the relay's delivery by MX
(issue 9, point 4), with real parts: dnsmasq answering the _mta-sts TXT,
MX and A records; a Python HTTPS server (http.server + ssl) serving the
policies as https://mta-sts.DOMAIN/.well-known/mta-sts.txt with a
certificate from the test CA; aiosmtpd sinks as the MX hosts (two with
STARTTLS and a certificate for their MX names from the test CA, one
without STARTTLS). popgate trusts the test CA through [relay] ca_file.

The domains:
  enforce.test   enforce, mx.enforce.test; its MX are mx.rogue.test (10,
                 not in the policy) and mx.enforce.test (20)
  mismatch.test  enforce, mx.mismatch.test; its only MX is mx.rogue.test
  plain.test     enforce, mx.plain.test; that MX offers no STARTTLS
  testing.test   testing, mx.testing.test; its only MX is mx.rogue.test
  cached.test    a TXT record, but mta-sts.cached.test does not answer; a
                 cached enforce policy (written into the store) names its
                 MX, which offers no STARTTLS
  nosts.test     no TXT record; its MX offers no STARTTLS
  badcert.test   enforce, mx.badcert.test; that MX's certificate is for
                 mx.rogue.test
  redirect.test  a TXT record, but the policy host answers with a redirect
  gone.test      no TXT record (any more), a cached enforce policy; its MX
                 offers no STARTTLS
"""

import http.server
import json
import os
import secrets
import ssl
import subprocess
import threading
import time

import pytest

import itutil
from dnsserver import Dnsmasq
from test_ctl import ctl, ok
from test_relay_delivery import Sink, queue_outbound, recipient_rows

GOOD_MX = "127.0.0.41"    # mx.enforce.test, mx.cached.test: STARTTLS, CA-signed
ROGUE_MX = "127.0.0.42"   # mx.rogue.test: STARTTLS, CA-signed for its own name
PLAIN_MX = "127.0.0.43"   # mx.plain.test, mx.cached.test, mx.nosts.test: no STARTTLS
POLICY_HOST = "127.0.0.44"  # every mta-sts.DOMAIN that answers
DEAD_HOST = "127.0.0.45"  # mta-sts.cached.test: nothing listens

POLICIES = {
    "enforce.test": "version: STSv1\nmode: enforce\nmx: mx.enforce.test\nmax_age: 86400\n",
    "mismatch.test": "version: STSv1\nmode: enforce\nmx: mx.mismatch.test\nmax_age: 86400\n",
    "plain.test": "version: STSv1\r\nmode: enforce\r\nmx: *.plain.test\r\nmax_age: 86400\r\n",
    "testing.test": "version: STSv1\nmode: testing\nmx: mx.testing.test\nmax_age: 86400\n",
    "badcert.test": "version: STSv1\nmode: enforce\nmx: mx.badcert.test\nmax_age: 86400\n",
    # Served only as a redirect (to itself, were it followed).
    "redirect.test": "version: STSv1\nmode: enforce\nmx: mx.redirect.test\nmax_age: 86400\n",
}


def issue_cert(ca, directory, stem, names):
    """A server certificate for NAMES (SAN), signed by CA; (cert, key) paths."""
    key, csr, cert = (os.path.join(directory, stem + ext) for ext in (".key", ".csr", ".pem"))
    ext = os.path.join(directory, stem + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n")
    run = dict(check=True, timeout=60, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=" + names[0]], **run)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca.ca_cert, "-CAkey",
                    ca.ca_key, "-CAserial", os.path.join(directory, stem + ".srl"),
                    "-CAcreateserial", "-out", cert, "-days", "30", "-extfile", ext], **run)
    return cert, key


def server_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class PolicyServer:
    """HTTPS on ADDRESS:PORT serving POLICIES by the Host asked for; the
    requests it got, by host."""

    def __init__(self, address, port, context):
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                host = (self.headers.get("Host") or "").split(":")[0]
                requests.append((host, self.path))
                domain = host[len("mta-sts."):] if host.startswith("mta-sts.") else ""
                body = POLICIES.get(domain)
                if domain == "redirect.test":
                    self.send_response(301)
                    self.send_header("Location", f"https://{host}/.well-known/mta-sts.txt")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path != "/.well-known/mta-sts.txt" or body is None:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def asked(self, domain):
        return sum(1 for host, _ in self.requests if host == "mta-sts." + domain)


@pytest.fixture
def sts_env(it_root, test_ca, make_popgate):
    directory = os.path.join(it_root, "mta-sts-" + secrets.token_hex(4))
    os.makedirs(directory)
    port, https_port = itutil.free_port(), itutil.free_port()
    good_cert = issue_cert(test_ca, directory, "good", ["mx.enforce.test", "mx.cached.test"])
    rogue_cert = issue_cert(test_ca, directory, "rogue", ["mx.rogue.test"])
    policy_cert = issue_cert(test_ca, directory, "policy",
                             ["mta-sts." + d for d in POLICIES] + ["mta-sts.cached.test"])
    txt = {f"_mta-sts.{d}": [["v=STSv1; id=20261202"]] for d in POLICIES}
    txt["_mta-sts.cached.test"] = [["v=STSv1; id=new1"]]
    # Another TXT record beside the STS one is ignored (RFC 8461 3.1).
    txt["_mta-sts.enforce.test"].append(["v=spf1 -all"])
    hosts = {"mx.enforce.test": [GOOD_MX], "mx.rogue.test": [ROGUE_MX],
             "mx.plain.test": [PLAIN_MX], "mx.cached.test": [PLAIN_MX],
             "mx.nosts.test": [PLAIN_MX], "mta-sts.cached.test": [DEAD_HOST],
             "mx.badcert.test": [ROGUE_MX], "mx.redirect.test": [PLAIN_MX],
             "mx.gone.test": [PLAIN_MX]}
    hosts.update({"mta-sts." + d: [POLICY_HOST] for d in POLICIES})
    dns = Dnsmasq(directory, hosts, txt=txt,
                  mx={"enforce.test": [(10, "mx.rogue.test"), (20, "mx.enforce.test")],
                      "mismatch.test": [(10, "mx.rogue.test")],
                      "plain.test": [(10, "mx.plain.test")],
                      "testing.test": [(10, "mx.rogue.test")],
                      "cached.test": [(10, "mx.cached.test")],
                      "nosts.test": [(10, "mx.nosts.test")],
                      "badcert.test": [(10, "mx.badcert.test")],
                      "redirect.test": [(10, "mx.redirect.test")],
                      "gone.test": [(10, "mx.gone.test")]}).start()
    good = Sink(GOOD_MX, port, tls_context=server_context(*good_cert), require_tls=False).start()
    rogue = Sink(ROGUE_MX, port, tls_context=server_context(*rogue_cert),
                 require_tls=False).start()
    plain = Sink(PLAIN_MX, port).start()
    policies = PolicyServer(POLICY_HOST, https_port, server_context(*policy_cert)).start()
    gate = make_popgate(overrides={
        "server": {"nameservers": dns.address, "hostname": "gate.test"},
        "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                  "retry_max": 3600, "mta_sts_port": https_port, "ca_file": test_ca.ca_cert,
                  "connect_timeout": 5},
    })
    env = type("Env", (), {})()
    env.gate, env.dns, env.good, env.rogue, env.plain = gate, dns, good, rogue, plain
    env.policies = policies
    yield env
    gate.stop()
    policies.stop()
    for sink in (good, rogue, plain):
        sink.stop()
    dns.stop()


def send(gate, address):
    """Queues a message to ADDRESS, tells the daemon, and waits for its
    first attempt; the recipient's (status, attempts, last reply)."""
    message_id = queue_outbound(gate, "alice@office.test", [address])
    ok(ctl("queue", "flush", config=gate.config_path))
    itutil.wait_until(lambda: recipient_rows(gate, message_id)[address][1] >= 1, timeout=60,
                      what=f"the first attempt to {address}")
    return message_id, recipient_rows(gate, message_id)[address]


def queue_reply(gate, message_id, address):
    listing = json.loads(ok(ctl("--json", "queue", "outbound", config=gate.config_path)))
    for message in listing:
        if message["id"] == message_id:
            return {r["address"]: r for r in message["recipients"]}[address]["last_reply"]
    return None


def test_enforce_delivers_to_the_matching_mx_over_tls(sts_env):
    """The preferred MX is not in the policy: skipped; the one named gets
    the message over verified TLS. The policy is cached and listed."""
    gate = sts_env.gate
    message_id, (status, _, _) = send(gate, "bob@enforce.test")
    assert status == "sent"
    assert sts_env.good.received("bob@enforce.test") == 1
    assert sts_env.good.messages[0]["tls"]
    assert sts_env.rogue.messages == []
    assert sts_env.policies.asked("enforce.test") == 1
    listed = json.loads(ok(ctl("--json", "mta-sts", "list", config=gate.config_path)))
    entry = {e["domain"]: e for e in listed}["enforce.test"]
    assert (entry["mode"], entry["mx"], entry["id"]) == ("enforce", ["mx.enforce.test"],
                                                         "20261202")
    assert "enforce.test" in ok(ctl("mta-sts", "list", config=gate.config_path))
    # The next message uses the cached policy: no second fetch.
    message_id, (status, _, _) = send(gate, "carol@enforce.test")
    assert status == "sent"
    assert sts_env.policies.asked("enforce.test") == 1


def test_enforce_refuses_an_mx_not_in_the_policy(sts_env):
    gate = sts_env.gate
    message_id, (status, attempts, reply) = send(gate, "bob@mismatch.test")
    assert (status, attempts) == ("pending", 1)
    why = "MTA-STS: mx.rogue.test does not match the policy of mismatch.test"
    assert why in reply
    assert why in queue_reply(gate, message_id, "bob@mismatch.test")
    assert sts_env.rogue.ehlos == 0 and sts_env.rogue.messages == []


def test_enforce_refuses_plain_text(sts_env):
    """The MX is in the policy ("*.plain.test") but offers no STARTTLS:
    nothing is sent in plain text."""
    gate = sts_env.gate
    message_id, (status, attempts, reply) = send(gate, "bob@plain.test")
    assert (status, attempts) == ("pending", 1)
    assert "MTA-STS: mx.plain.test of plain.test" in reply
    assert "STARTTLS" in reply
    assert sts_env.plain.messages == []


def test_testing_mode_delivers_and_logs(sts_env):
    gate = sts_env.gate
    message_id, (status, _, _) = send(gate, "bob@testing.test")
    assert status == "sent"
    assert sts_env.rogue.received("bob@testing.test") == 1
    assert any("MTA-STS (testing): mx.rogue.test does not match the policy of testing.test"
               in e.detail for e in gate.events("relay"))


def test_cached_policy_used_when_the_fetch_fails(sts_env):
    """The TXT id changed, the policy host does not answer: the cached
    policy, still unexpired, holds (RFC 8461 5.1), so its MX without
    STARTTLS is refused."""
    gate = sts_env.gate
    now = int(time.time())
    gate.db_write("INSERT INTO mta_sts_policy (domain, policy_id, policy, mode, fetched_at,"
                  " expires_at) VALUES ('cached.test', 'old1', ?, 'enforce', ?, ?)",
                  ("version: STSv1\nmode: enforce\nmx: mx.cached.test\nmax_age: 86400\n",
                   now, now + 86400))
    message_id, (status, attempts, reply) = send(gate, "bob@cached.test")
    assert (status, attempts) == ("pending", 1)
    assert "MTA-STS: mx.cached.test of cached.test" in reply
    assert sts_env.plain.messages == []
    assert any("the policy of cached.test cannot be fetched" in e.detail
               and "the cached one is used" in e.detail for e in gate.events("relay"))


def test_expired_cache_and_no_policy_deliver_as_before(sts_env):
    """An expired cached policy is not used; with the fetch failing there is
    no policy: delivery is opportunistic, as without MTA-STS."""
    gate = sts_env.gate
    now = int(time.time())
    gate.db_write("INSERT INTO mta_sts_policy (domain, policy_id, policy, mode, fetched_at,"
                  " expires_at) VALUES ('cached.test', 'old1', ?, 'enforce', ?, ?)",
                  ("version: STSv1\nmode: enforce\nmx: mx.cached.test\nmax_age: 60\n",
                   now - 120, now - 60))
    message_id, (status, _, _) = send(gate, "bob@cached.test")
    assert status == "sent"
    assert sts_env.plain.received("bob@cached.test") == 1


def test_no_txt_record_delivers_as_before(sts_env):
    """No _mta-sts record: opportunistic delivery, plain text allowed; the
    record was asked for."""
    gate = sts_env.gate
    message_id, (status, _, _) = send(gate, "bob@nosts.test")
    assert status == "sent"
    assert sts_env.plain.received("bob@nosts.test") == 1
    assert not sts_env.plain.messages[0]["tls"]
    assert sts_env.dns.queries("_mta-sts.nosts.test", "txt") >= 1
    assert sts_env.policies.asked("nosts.test") == 0


def test_enforce_refuses_a_certificate_for_another_name(sts_env):
    """The MX is in the policy and offers STARTTLS, but its certificate
    (from the trusted CA) names another host: refused, no plain retry."""
    gate = sts_env.gate
    message_id, (status, attempts, reply) = send(gate, "bob@badcert.test")
    assert (status, attempts) == ("pending", 1)
    assert "MTA-STS: mx.badcert.test of badcert.test" in reply
    assert sts_env.rogue.messages == []
    assert sts_env.rogue.ehlos == 1


def test_redirect_not_followed(sts_env):
    """The policy host answers 301: no policy (RFC 8461 3.3), nothing
    cached; delivery as without MTA-STS."""
    gate = sts_env.gate
    message_id, (status, _, _) = send(gate, "bob@redirect.test")
    assert status == "sent"
    assert sts_env.policies.asked("redirect.test") == 1
    assert any("the policy of redirect.test cannot be fetched" in e.detail
               and "redirect" in e.detail for e in gate.events("relay"))
    assert gate.db_query("SELECT domain FROM mta_sts_policy") == []


def test_cached_policy_kept_when_the_record_goes(sts_env):
    """No TXT record any more, an unexpired cached policy: it still holds
    until it expires (RFC 8461 5.1)."""
    gate = sts_env.gate
    now = int(time.time())
    gate.db_write("INSERT INTO mta_sts_policy (domain, policy_id, policy, mode, fetched_at,"
                  " expires_at) VALUES ('gone.test', 'old1', ?, 'enforce', ?, ?)",
                  ("version: STSv1\nmode: enforce\nmx: mx.gone.test\nmax_age: 86400\n",
                   now, now + 86400))
    message_id, (status, attempts, reply) = send(gate, "bob@gone.test")
    assert (status, attempts) == ("pending", 1)
    assert "MTA-STS: mx.gone.test of gone.test" in reply
    assert sts_env.plain.messages == []


def test_new_record_id_refreshes_the_cache(sts_env):
    """A cached policy whose id is not the record's any more is fetched
    again, and the cache takes the new one."""
    gate = sts_env.gate
    now = int(time.time())
    gate.db_write("INSERT INTO mta_sts_policy (domain, policy_id, policy, mode, fetched_at,"
                  " expires_at) VALUES ('enforce.test', 'old1', ?, 'none', ?, ?)",
                  ("version: STSv1\nmode: none\nmax_age: 86400\n", now, now + 86400))
    message_id, (status, _, _) = send(gate, "bob@enforce.test")
    assert status == "sent"
    assert sts_env.policies.asked("enforce.test") == 1
    assert sts_env.rogue.messages == []
    itutil.wait_until(lambda: gate.db_query(
        "SELECT policy_id, mode FROM mta_sts_policy WHERE domain = 'enforce.test'")
        == [("20261202", "enforce")], timeout=30, what="the cache refreshed")
