"""
test_web.py — the CISS sender page over HTTPS against a real popgate, with
curl as the client: the security headers on every answer, escaping of a
hostile subject, bad, forged, expired and used links, the right and wrong
code (the store's ANSWER trusts the sender), the lock after too many wrong
codes, the rate limit per address, the limit of connections per address,
a slow client (a byte every few seconds) that neither stalls another
request nor outlives the connection deadline, and thousands of pipelined
requests in one write. And the whole path through this part: the policy
(test_ciss_policy.py's set-up) challenges an unknown sender, the challenge
mail is queued from <> with its headers and one link, whose code releases
the held message.

The challenge rows in the other tests are written into the store as the policy writes them
(store/ciss.h); the links and codes are made here with the daemon's key
(DATA/ciss.key), as ciss/token.c makes them.
"""

import base64
import email
import email.policy
import hashlib
import hmac
import os
import re
import secrets
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

import itutil
from smtputil import add_user
from test_ciss_policy import ACCOUNT, PASSWORD, ciss_gate, mail  # noqa: F401 - a fixture

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def web_port(gate):
    return int(gate.config["web"]["port"])


def ciss_key(gate):
    path = os.path.join(gate.config["server"]["data_dir"], "ciss.key")
    itutil.wait_until(lambda: os.path.exists(path), what="ciss.key")
    with open(path, "rb") as f:
        return f.read()


def signed(gate, challenge_id, nonce_hex, expires_at):
    """The link token for a challenge, as ciss/token.c makes it."""
    nonce = bytes.fromhex(nonce_hex)
    raw = bytes([1]) + struct.pack(">q", challenge_id) + nonce + struct.pack(">q", expires_at)
    raw += hmac.new(ciss_key(gate), raw, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def code_for(gate, challenge_id, nonce_hex):
    """The code the page shows for a challenge (ciss_token_code)."""
    data = (b"code:" + bytes([1]) + struct.pack(">q", challenge_id) + bytes.fromhex(nonce_hex)
            + bytes(8))
    mac = hmac.new(ciss_key(gate), data, hashlib.sha256).digest()
    bits = int.from_bytes(mac[:8], "big")
    out = ""
    for _ in range(6):
        out += CODE_ALPHABET[bits & 31]
        bits >>= 5
    return out


def add_challenge(gate, user_id, sender="mallory@outside.example",
                  subject="Quarterly report", expires_in=3600):
    """A challenge row as the policy makes it; (token, code, id)."""
    nonce = secrets.token_hex(16)
    now = int(time.time())
    gate.db_write("INSERT INTO ciss_challenge (user_id, sender, recipient, subject, nonce,"
                  " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (user_id, sender, "anna@pop3proxy.reddoxx", subject, nonce, now,
                   now + expires_in))
    challenge_id = gate.db_query("SELECT max(id) FROM ciss_challenge")[0][0]
    return signed(gate, challenge_id, nonce, now + expires_in), \
        code_for(gate, challenge_id, nonce), challenge_id


def curl(gate, path, method="GET", data=None, content_type="application/x-www-form-urlencoded",
         extra=()):
    """One request with curl; (status, {header: value}, body)."""
    argv = ["curl", "-sk", "--max-time", "20", "-i", "-X", method, *extra]
    if data is not None:
        argv += ["-H", f"Content-Type: {content_type}", "--data-binary", data]
    argv.append(f"https://{itutil.LOOPBACK}:{web_port(gate)}{path}")
    done = subprocess.run(argv, capture_output=True, timeout=30)
    assert done.returncode == 0, f"curl exited {done.returncode}: {done.stderr!r}"
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body.decode("utf-8", "replace")


def assert_secure(headers):
    for name, part in SECURITY_HEADERS.items():
        assert part in headers.get(name, ""), f"{name}: {headers.get(name)!r}"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]


def tls_socket(gate, timeout=20):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((itutil.LOOPBACK, web_port(gate)), timeout=timeout)
    return context.wrap_socket(raw)


@pytest.fixture
def web_gate(make_popgate):
    def make(web=None):
        gate = make_popgate(overrides={"web": web} if web else None)
        add_user(gate, "anna")
        user_id = gate.db_query("SELECT id FROM user WHERE name = 'anna'")[0][0]
        return gate, user_id
    return make


def test_page_headers_and_escaping(web_gate):
    gate, user = web_gate()
    token, code, _ = add_challenge(gate, user, subject="<script>alert('x')</script> & \"Hi\"")
    status, headers, body = curl(gate, f"/c/{token}")
    assert status == 200
    assert_secure(headers)
    assert headers["content-type"].startswith("text/html; charset=utf-8")
    assert "<script" not in body
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;Hi&quot;" in body
    assert code in body
    assert 'name="viewport"' in body and '<form method="post">' in body
    assert "a\u2026@pop3proxy.reddoxx" in body  # the recipient, masked
    # HEAD: the same headers, no body.
    status, headers, body = curl(gate, f"/c/{token}", method="HEAD", extra=("-I",))
    assert status == 200 and body == ""
    assert_secure(headers)
    # No token, a code, or a page content in the log.
    log = gate.log_text()
    assert token not in log and code not in log


@pytest.mark.parametrize("path,expected", [
    ("/", 404), ("/c/", 404), ("/c/abc", 404), ("/c/" + "A" * 87, 404),
    ("/c/" + "A" * 400, 404), ("/c/%41%42", 404), ("/c/../../etc/passwd", 404),
    ("/favicon.ico", 404),
])
def test_bad_links(web_gate, path, expected):
    gate, _ = web_gate()
    status, headers, body = curl(gate, path)
    assert status == expected
    assert_secure(headers)
    assert "not valid" in body


def test_forged_expired_and_other_methods(web_gate):
    gate, user = web_gate()
    token, _, challenge_id = add_challenge(gate, user)
    # One character changed: forged, 404.
    forged = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert curl(gate, f"/c/{forged}")[0] == 404
    # Signed with another key: 404.
    other = base64.urlsafe_b64encode(b"\x01" + b"\x00" * 64).rstrip(b"=").decode()
    assert curl(gate, f"/c/{other}")[0] == 404
    # The right id with another nonce (a token for a replaced challenge): 404.
    wrong_nonce = signed(gate, challenge_id, "00" * 16, int(time.time()) + 3600)
    assert curl(gate, f"/c/{wrong_nonce}")[0] == 404
    # A challenge that is no more: 404.
    gone = signed(gate, challenge_id + 1000, "00" * 16, int(time.time()) + 3600)
    assert curl(gate, f"/c/{gone}")[0] == 404
    # The link's own expiry passed: 410.
    old_token, _, _ = add_challenge(gate, user, expires_in=-5)
    status, headers, body = curl(gate, f"/c/{old_token}")
    assert status == 410 and "expired" in body
    assert_secure(headers)
    # The store's expiry passed while the link's did not (shortened later): 410.
    token2, code2, id2 = add_challenge(gate, user)
    gate.db_write("UPDATE ciss_challenge SET expires_at = ? WHERE id = ?",
                  (int(time.time()) - 1, id2))
    assert curl(gate, f"/c/{token2}")[0] == 410
    assert curl(gate, f"/c/{token2}", method="POST", data=f"code={code2}")[0] == 410
    # Other methods: 405 with the headers.
    status, headers, _ = curl(gate, f"/c/{token}", method="PUT", data="x")
    assert status == 405 and headers.get("allow") == "GET, HEAD, POST"
    assert_secure(headers)
    status, headers, _ = curl(gate, f"/c/{token}", method="DELETE")
    assert status == 405


def test_answer(web_gate):
    gate, user = web_gate()
    token, code, challenge_id = add_challenge(gate, user, sender="bob@outside.example")
    # Wrong code: the form again, with an error.
    status, headers, body = curl(gate, f"/c/{token}", method="POST", data="code=ZZZZZZ")
    assert status == 400 and "not the code" in body and code in body
    assert_secure(headers)
    # Not a form: refused.
    assert curl(gate, f"/c/{token}", method="POST", data="code=" + code,
                content_type="text/plain")[0] == 415
    assert curl(gate, f"/c/{token}", method="POST", data="code=1&code=2")[0] == 400
    assert curl(gate, f"/c/{token}", method="POST", data="x" * 5000)[0] in (400, 413)
    assert gate.db_query("SELECT answered_at FROM ciss_challenge WHERE id = ?",
                         (challenge_id,))[0][0] is None
    # The right code, as a human types it: lower case, a blank in it.
    typed = code[:3].lower() + "+" + code[3:]
    status, headers, body = curl(gate, f"/c/{token}", method="POST", data=f"code={typed}")
    assert status == 200 and "released" in body
    assert_secure(headers)
    assert gate.db_query("SELECT answered_at FROM ciss_challenge WHERE id = ?",
                         (challenge_id,))[0][0] is not None
    assert gate.db_query("SELECT via FROM ciss_trusted WHERE user_id = ? AND address = ?",
                         (user, "bob@outside.example")) == [("answer",)]
    # Single use: the page and a second answer say so.
    status, _, body = curl(gate, f"/c/{token}")
    assert status == 410 and "already used" in body
    assert curl(gate, f"/c/{token}", method="POST", data=f"code={code}")[0] == 410
    log = gate.log_text()
    assert f"challenge {challenge_id} answered" in log
    assert token not in log and code not in log


def test_wrong_codes_lock(web_gate):
    gate, user = web_gate({"max_wrong_codes": 3})
    token, code, challenge_id = add_challenge(gate, user)
    for _ in range(3):
        assert curl(gate, f"/c/{token}", method="POST", data="code=WRONG2")[0] == 400
    status, headers, body = curl(gate, f"/c/{token}", method="POST", data=f"code={code}")
    assert status == 429 and "Too many wrong codes" in body
    assert_secure(headers)
    assert curl(gate, f"/c/{token}")[0] == 429
    assert gate.db_query("SELECT answered_at FROM ciss_challenge WHERE id = ?",
                         (challenge_id,))[0][0] is None
    # Another challenge is not locked by it.
    token2, code2, _ = add_challenge(gate, user, sender="carol@outside.example")
    assert curl(gate, f"/c/{token2}", method="POST", data=f"code={code2}")[0] == 200


def test_rate_limit_per_address(web_gate):
    gate, _ = web_gate({"requests_per_minute": 5})
    statuses = [curl(gate, "/c/x")[0] for _ in range(7)]
    assert statuses[:5] == [404] * 5
    assert statuses[5:] == [429, 429]
    status, headers, _ = curl(gate, "/c/x")
    assert status == 429 and headers.get("retry-after") == "60"
    assert_secure(headers)


def test_connections_per_address(web_gate):
    gate, _ = web_gate({"max_connections_per_address": 2})
    held = [tls_socket(gate) for _ in range(2)]
    # The third is cut at once: in its handshake, or at its first read.
    cut = False
    try:
        extra = tls_socket(gate, timeout=10)
        extra.sendall(b"GET /c/x HTTP/1.1\r\nHost: a\r\n\r\n")
        cut = extra.recv(100) == b""
        extra.close()
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        cut = True
    assert cut
    for sock in held:
        sock.close()
    # With those gone, requests pass again.
    itutil.wait_until(lambda: curl(gate, "/c/x")[0] == 404, timeout=10, what="a new request")


def test_max_connections_pauses_accepting(web_gate):
    gate, _ = web_gate({"max_connections": 3})
    held = [tls_socket(gate) for _ in range(3)]
    # A fourth waits in the kernel's backlog: no handshake while three live.
    waiting = subprocess.run(["curl", "-sk", "--max-time", "2", "-o", "/dev/null",
                              f"https://{itutil.LOOPBACK}:{web_port(gate)}/c/x"],
                             capture_output=True, timeout=30)
    assert waiting.returncode == 28  # curl's "operation timed out"
    held.pop().close()
    itutil.wait_until(lambda: curl(gate, "/c/x")[0] == 404, timeout=10, what="a free place")
    for sock in held:
        sock.close()
    assert gate.running


def test_slow_client_does_not_stall_others(web_gate):
    gate, _ = web_gate({"connection_deadline": 6, "timeout": 30})
    slow = tls_socket(gate, timeout=30)
    stop = threading.Event()
    request = b"GET /c/x HTTP/1.1\r\nHost: a\r\nX-Slow: " + b"s" * 100

    def dribble():
        for byte in request:
            if stop.is_set():
                return
            try:
                slow.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(2)

    thread = threading.Thread(target=dribble, daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        # Another client is served at once meanwhile.
        time.sleep(1)
        t0 = time.monotonic()
        assert curl(gate, "/c/x")[0] == 404
        assert time.monotonic() - t0 < 5
        # The slow one is cut at its deadline, though it never went silent
        # for as long as the timeout.
        data = b""
        try:
            while True:
                chunk = slow.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            pass
        elapsed = time.monotonic() - started
        assert elapsed < 15, f"the slow connection lived {elapsed:.1f}s"
        assert b"HTTP/1.1 200" not in data
    finally:
        stop.set()
        thread.join(timeout=10)
        slow.close()


def read_answers(sock, count, marker, limit=60):
    """Reads SOCK until COUNT MARKERs came, it closed, or LIMIT seconds."""
    received = b""
    seen = 0
    deadline = time.monotonic() + limit
    try:
        while seen < count and time.monotonic() < deadline:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            # Count across chunk borders without rescanning everything.
            tail = received[-len(marker):]
            seen += (tail + chunk).count(marker) - tail.count(marker)
            received += chunk
    except (ConnectionResetError, ssl.SSLError, socket.timeout):
        pass
    return seen


def test_pipelined_flood(web_gate):
    gate, user = web_gate({"requests_per_minute": 100000})
    token, _, _ = add_challenge(gate, user)
    count = 2000
    one = f"GET /c/{token} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
    sock = tls_socket(gate, timeout=30)
    started = time.monotonic()
    sock.sendall(one * count)
    answered = read_answers(sock, count, b"HTTP/1.1 200 OK")
    elapsed = time.monotonic() - started
    sock.close()
    print(f"pipelined: {answered} of {count} pages in {elapsed:.2f}s")
    assert answered == count
    # Far more than WEB_INPUT_MAX ahead: cut, and nothing else happens.
    sock = tls_socket(gate, timeout=30)
    flood = b"GET /c/x HTTP/1.1\r\nHost: a\r\n\r\n" * 100000
    try:
        sock.sendall(flood)
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
        pass
    read_answers(sock, 100000, b"HTTP/1.1 404")
    sock.close()
    assert "sent more than 262144 bytes ahead; cut" in gate.log_text()
    assert gate.running
    assert curl(gate, f"/c/{token}")[0] == 200


def test_garbage_and_oversized_requests(web_gate):
    gate, _ = web_gate()
    junk = [
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-A: b\r\n" * 2000 + b"\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
        b"POST /c/x HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
        b"POST /c/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFF\r\n",
        b"BREW /c/x HTTP/1.1\r\n\r\n",
        b"\r\n\r\n\r\n",
    ]
    for data in junk:
        sock = tls_socket(gate)
        try:
            sock.sendall(data)
            sock.recv(4096)
        except (ConnectionResetError, ssl.SSLError, socket.timeout, BrokenPipeError):
            pass
        sock.close()
    # Headers beyond WEB_HEADER_COUNT_MAX lines but within the size: 431.
    many = [f"-HX-{i}: v" for i in range(80)]
    status, headers, _ = curl(gate, "/c/x", extra=tuple(many))
    assert status == 431
    assert_secure(headers)
    assert gate.running
    assert curl(gate, "/c/x")[0] == 404


def test_challenge_mail_and_its_link(ciss_gate, provider):
    """The whole path through the parts this file owns: the policy challenges
    an unknown sender (test_ciss_policy.py's set-up), the challenge mail is
    queued from <> to that sender with its headers and one link; the link's
    page shows the code, the code releases the held message."""
    gate = ciss_gate
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver("alice", mail("kim@sender.test", "<b>Hi</b> & 'co'"))
    gate.pickup(ACCOUNT, PASSWORD)
    itutil.wait_until(lambda: gate.db_query("SELECT count(*) FROM message"
                                            " WHERE source = 'submitted'")[0][0] == 1,
                      timeout=60, what="the challenge mail")
    (challenge_mail, ), = gate.db_query("SELECT id FROM message WHERE source = 'submitted'")
    assert gate.db_query("SELECT sender FROM envelope WHERE message_id = ?",
                         (challenge_mail,)) == [("",)]
    assert gate.db_query("SELECT address FROM envelope_recipient WHERE message_id = ?",
                         (challenge_mail,)) == [("kim@sender.test",)]
    path = os.path.join(gate.config["server"]["data_dir"], "spool", challenge_mail[:2],
                        challenge_mail)
    with open(path, "rb") as f:
        raw = f.read()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(byte < 0x80 for byte in head)
    assert b"\r\nBcc:" not in head
    message = email.message_from_bytes(raw, policy=email.policy.default)
    (challenge_id, held), = gate.db_query("SELECT id, message_id FROM ciss_challenge")
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Popgate-Challenge"] == str(challenge_id)
    assert message["To"] == "kim@sender.test"
    assert message["From"].addresses[0].addr_spec == "postmaster@pop3proxy.reddoxx"
    assert message["Subject"] == "Please confirm your message: <b>Hi</b> & 'co'"
    body = message.get_content()
    assert ACCOUNT in body
    links = re.findall(r"https://\S+/c/[A-Za-z0-9_-]+", body)
    assert len(links) == 1
    token = links[0].rsplit("/c/", 1)[1]
    assert links[0].startswith(f"https://localhost:{web_port(gate)}/c/")

    status, headers, page = curl(gate, f"/c/{token}")
    assert status == 200
    assert_secure(headers)
    assert "&lt;b&gt;Hi&lt;/b&gt; &amp; &#39;co&#39;" in page
    code = re.search(r'<p class="code">([A-Z0-9]+)</p>', page).group(1)
    assert gate.message_state(held) == "challenged"
    status, _, page = curl(gate, f"/c/{token}", method="POST", data=f"code={code}")
    assert status == 200 and "released" in page
    assert gate.message_state(held) == "delivery"
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert any(b"kim@sender.test" in m for m in served)
