"""
test_ciss.py — challenge-response for unknown senders (CISS, issue 12, point
6; SPEC C1, C2, G4, G5) end to end, with real parts on loopback only:

  - popgate with its pseudo-domain chosen as a CISS domain (`popgatectl ciss
    set domains`) and the default profile challenging unknown senders;
  - a real Dovecot as the provider, holding the unknown sender's message as
    its MX stored it (Return-Path, a Received line from an address
    sender.test's SPF record names);
  - poplib as the mail client: its pickup's QUIT starts the fetch, and the
    challenge leaves then (C1);
  - a dnsmasq serving sender.test's MX, SPF record and DKIM key, so the relay
    delivers the challenge to a real SMTP server (aiosmtpd, the Sink of
    test_relay_delivery.py) standing in for the sender's MX;
  - curl (the page and its headers, the form posted without a browser) and
    a headless Chromium driven through Selenium's WebDriver (chromedriver),
    with JavaScript off at a phone's width (the page must not scroll
    sideways): it reads the code the page shows, types it and submits.

Every G4 case is a test of its own: the message goes to the quarantine with
its reason and no challenge reaches the sink. Learning (recipients of mail a
user sends through the relay become correspondents), `popgatectl ciss
trust|untrust|list`, and the expiry of held messages are tested here too.
Time passing (a link's expiry, a held message's age) is simulated by ageing
rows in the store, as test_quarantine.py does. Every wait is bounded.
"""

import email
import email.policy
import html
import json
import os
import re
import secrets
import smtplib
import subprocess
import tempfile
import time

import dkim
import pytest

import itutil
from dnsserver import Dnsmasq
from test_auth import rsa_key
from test_ctl import ctl, ok
from test_profiles import refused
from test_relay_delivery import MX_ADDRESS, Sink

# alice's login at the provider is her mail address (as at most providers):
# the challenge names it, the address the sender wrote to.
LOGIN = "alice@example.net"
ACCOUNT = LOGIN + "@localhost"
USER = "alice+example.net"
PASSWORD = "alice-secret-ciss-1"
PSEUDO_DOMAIN = "pop3proxy.reddoxx"
STRANGER = "stranger@sender.test"
SENDER_ADDRESS = "192.0.2.25"      # in sender.test's SPF record
FORGER_ADDRESS = "203.0.113.66"    # not in it
SELECTOR = "it2026"
LINK = re.compile(r"https://[^\s/]+/c/[A-Za-z0-9_-]+")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 60


# ---------------------------------------------------------------- messages

def message(subject, sender=STRANGER, extra="", from_header=None):
    """A message from SENDER to alice as its MX stored it: Return-Path (the
    envelope sender; "" for a null sender) and a Received line from
    SENDER_ADDRESS (SPF passes for sender.test)."""
    return delivered(SENDER_ADDRESS, sender, body(subject, from_header or sender, extra))


def body(subject, from_address=STRANGER, extra=""):
    return (f"From: Someone <{from_address}>\r\nTo: {LOGIN}\r\n"
            f"Subject: {subject}\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{secrets.token_hex(6)}@sender.test>\r\n{extra}\r\n"
            f"Hello Alice,\r\n\r\nthis is {subject}.\r\n").encode()


def delivered(address, envelope_sender, data):
    return (f"Return-Path: <{envelope_sender}>\r\n"
            f"Received: from mail.sender.test (mail.sender.test [{address}])\r\n"
            f"\tby mx.provider.test with ESMTPS id 4Zx1; Wed, 02 Dec 2026 10:00:01 +0000\r\n"
            ).encode() + data


def dkim_signed(pem, domain, data):
    return dkim.sign(data, SELECTOR.encode(), domain.encode(), pem,
                     include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
                     linesep=b"\r\n") + data


# ---------------------------------------------------------------- the set-up

class Env:
    pass


@pytest.fixture
def ciss_env(it_root, make_popgate, provider):
    """popgate with CISS on for its pseudo-domain and the default profile,
    alice's first login done; sender.test's MX is the sink."""
    directory = os.path.join(it_root, "ciss-" + secrets.token_hex(4))
    os.makedirs(directory)
    pem, key_strings = rsa_key(directory)
    port = itutil.free_port()
    dns = Dnsmasq(directory, {"mx.sender.test": [MX_ADDRESS], "mx.mail.test": [MX_ADDRESS]},
                  mx={"sender.test": [(10, "mx.sender.test")],
                      "other.test": [(10, "mx.sender.test")],
                      "mail.test": [(10, "mx.mail.test")]},
                  txt={"sender.test": [[f"v=spf1 ip4:{SENDER_ADDRESS} -all"]],
                       "mail.test": [[f"v=spf1 ip4:{SENDER_ADDRESS} -all"]],
                       f"{SELECTOR}._domainkey.sender.test": [key_strings],
                       f"{SELECTOR}._domainkey.other.test": [key_strings]}).start()
    sink = Sink(MX_ADDRESS, port).start()
    web_port = itutil.free_port()
    gate = make_popgate(provider=provider, overrides={
        "server": {"nameservers": dns.address},
        "relay": {"mx_port": port, "allow_private": "yes", "retry_min": 3600,
                  "retry_max": 3600},
        "web": {"port": web_port, "base_url": f"https://localhost:{web_port}"},
    })
    config = gate.config_path
    ok(ctl("ciss", "set", "domains", PSEUDO_DOMAIN, config=config))
    ok(ctl("profile", "set", "default", "challenge", "yes", "spf", "on", "dkim", "on",
           config=config))
    provider.add_user(LOGIN, PASSWORD)
    gate.first_login_fetched(ACCOUNT, PASSWORD)
    env = Env()
    env.gate, env.provider, env.sink, env.dns, env.dir = gate, provider, sink, dns, directory
    env.pem, env.web_port, env.config = pem, web_port, config
    yield env
    gate.stop()
    sink.stop()
    dns.stop()


def fetch(env):
    """A pickup like alice's mail client: returns what it served; its QUIT
    starts a fetch, which this waits for."""
    before = len(env.gate.fetches_done(ACCOUNT))
    served = env.gate.pickup(ACCOUNT, PASSWORD)
    env.gate.wait_fetch_done(ACCOUNT, before + 1, timeout=WAIT)
    return served


def newest_message(gate):
    """(id, state) of the message fetched last (challenges are messages too)."""
    return gate.db_query("SELECT id, state FROM message WHERE account_id IS NOT NULL"
                         " ORDER BY seq DESC LIMIT 1")[0]


def judged(gate, message_id):
    """The state of MESSAGE_ID once the pipeline has judged it."""
    return itutil.wait_until(
        lambda: (state := gate.message_state(message_id)) not in (None, "processing") and state,
        WAIT, what=f"message {message_id} judged")


def deliver_and_fetch(env, data):
    """DATA put at the provider and fetched (the pickup that starts the fetch
    takes what was delivered before): (id, state) once judged."""
    env.provider.deliver(LOGIN, data)
    fetch(env)
    message_id, _ = newest_message(env.gate)
    return message_id, judged(env.gate, message_id)


def challenges_to(env, address):
    """The challenges (from the null sender) the sink accepted for ADDRESS;
    a user's own mail to ADDRESS is not one."""
    with env.sink.lock:
        return [m for m in env.sink.messages if address in m["rcpts"] and m["from"] == "<>"]


def wait_challenge(env, address=STRANGER, count=1):
    got = itutil.wait_until(lambda: len(challenges_to(env, address)) >= count
                            and challenges_to(env, address), WAIT,
                            what=f"{count} challenge(s) to {address} at the sink")
    return got[count - 1]


def parsed(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def link_of(challenge):
    text = parsed(challenge["data"]).get_body(("plain",)).get_content()
    links = LINK.findall(text)
    assert len(set(links)) == 1, text
    return links[0]


def quarantine_reason(env, message_id):
    """The last CISS decision `queue show` gives for MESSAGE_ID (an expiry
    follows the challenge)."""
    shown = json.loads(ok(ctl("--json", "queue", "show", message_id, config=env.config)))
    reasons = [f["reason"] for f in shown["verdict"]["filters"] if f["name"] == "ciss"]
    assert reasons, shown
    return reasons[-1]


def assert_quarantined_unchallenged(env, data, reason):
    """DATA fetched goes to the quarantine with REASON (a regular
    expression over `queue show`'s verdict) and no challenge leaves."""
    message_id, state = deliver_and_fetch(env, data)
    assert state == "quarantine", (state, env.gate.log_tail())
    why = quarantine_reason(env, message_id)
    assert re.search(reason, why, re.I), why
    # A challenge is recorded with the decision; the relay had time to send
    # one, had one been made.
    time.sleep(1)
    assert env.sink.messages == []
    assert env.gate.db_query("SELECT count(*) FROM ciss_challenge") == [(0,)]
    return message_id


# ---------------------------------------------------------------- clients

def curl(*args, gate):
    """curl trusting exactly popgate's certificate; (status, headers, body)."""
    argv = ["curl", "-sS", "--max-time", "30", "--cacert", gate.cert_path,
            "-D", "-", *args]
    done = subprocess.run(argv, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    head, _, page = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, page.decode("utf-8", "replace")


def page_code(page):
    found = re.search(r'<p class="code">([^<]+)</p>', page)
    assert found, page
    return html.unescape(found.group(1))


class Browser:
    """Headless Chromium through chromedriver: JavaScript off (the page must
    work without it), a profile of its own in a temp folder. popgate's certificate is self-signed; curl checks it, the
    browser is told to accept it."""

    def __init__(self, directory):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=directory)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        # No name but localhost resolves: the browser's own background
        # requests never leave the machine.
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                    "--no-first-run", "--disable-extensions",
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost"):
            options.add_argument(arg)
        options.accept_insecure_certs = True
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
        self.log = os.path.join(directory, "chromedriver.log")
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=self.log),
                                       options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.implicitly_wait(0)

    def close(self):
        self.driver.quit()


@pytest.fixture
def browser(new_dir):
    # scripts/deps.sh test installs all three: a missing one is a failure,
    # never a skipped test.
    for path in (CHROMIUM, CHROMEDRIVER):
        assert os.path.exists(path), f"{path} is not installed (scripts/deps.sh test)"
    b = Browser(new_dir("browser"))
    yield b
    b.close()


# ---------------------------------------------------------------- C1: the challenge

def test_challenge_answer_release_and_trust(ciss_env, browser):
    env, gate = ciss_env, ciss_env.gate
    message_id, state = deliver_and_fetch(env, message("first contact"))
    # Not served, held, challenged.
    assert state == "challenged"
    assert gate.pickup(ACCOUNT, PASSWORD) == []

    # The challenge: from the null sender, through the relay to the sender's
    # MX (the sink), naming the recipient and the subject, with the link.
    challenge = wait_challenge(env)
    # "<>": aiosmtpd's spelling of the null sender.
    assert [m["from"] for m in env.sink.messages] == ["<>"]
    assert challenge["rcpts"] == [STRANGER]
    mail = parsed(challenge["data"])
    text = mail.get_body(("plain",)).get_content()
    assert LOGIN in text and '"first contact"' in text, text
    assert mail["Auto-Submitted"] is not None and mail["Auto-Submitted"] != "no"
    link = link_of(challenge)
    assert link.startswith(f"https://localhost:{env.web_port}/c/")
    # More from the same sender while the challenge is open: held with it,
    # no second challenge.
    follow_up, state = deliver_and_fetch(env, message("follow-up"))
    assert state == "challenged"

    # curl: the page, its security headers, no script.
    status, headers, page = curl(link, gate=gate)
    assert status == 200, page
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp or "'none'" in csp
    assert headers["x-frame-options"].upper() == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert "<script" not in page.lower()
    assert '<meta name="viewport"' in page
    assert "first contact" in page
    assert 'method="post"' in page
    code = page_code(page)
    # A GET never answers (link scanners fetch links on their own).
    assert gate.message_state(message_id) == "challenged"

    # Headless Chromium, JavaScript off, a phone's width: read the code,
    # type it, submit.
    from selenium.webdriver.common.by import By

    driver = browser.driver
    # A phone's screen (Chrome's DevTools metrics; chromedriver's touch
    # emulation would turn the click into a tap that submits nothing).
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 360, "height": 740, "deviceScaleFactor": 3,
                            "mobile": True})
    driver.get(link)
    assert driver.find_element(By.CSS_SELECTOR, ".code").text.strip() == code
    widths = driver.execute_script("return [document.documentElement.scrollWidth,"
                                   " window.innerWidth]")
    assert widths[0] <= widths[1] == 360, f"the page scrolls sideways on a phone: {widths}"
    driver.save_screenshot(os.path.join(env.dir, "phone.png"))
    driver.find_element(By.ID, "code").send_keys(code)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    itutil.wait_until(lambda: "thank" in driver.page_source.lower(), 30,
                      what="the thank-you page")
    driver.save_screenshot(os.path.join(env.dir, "answered.png"))

    # Trusted; both held messages arrive at the next pickup.
    gate.wait_message_state(message_id, "delivery", timeout=WAIT)
    gate.wait_message_state(follow_up, "delivery", timeout=WAIT)
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert sorted(re.search(rb"Subject: ([^\r]+)", m).group(1) for m in served) == [
        b"first contact", b"follow-up"]
    assert len(challenges_to(env, STRANGER)) == 1
    listed = json.loads(ok(ctl("--json", "ciss", "list", config=env.config)))
    assert [(t["user"], t["sender"], t["known_by"]) for t in listed] == [
        (USER, STRANGER, "answer")]

    # Single use: the link answers once.
    status, _, page = curl("--data-urlencode", f"code={code}", link, gate=gate)
    assert status == 410, page
    status, _, _ = curl(link, gate=gate)
    assert status == 410

    # A second message from the same sender: delivered at once, unchallenged.
    second_id, state = deliver_and_fetch(env, message("second note"))
    assert state == "delivery"
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1 and b"Subject: second note" in served[0]
    time.sleep(1)
    assert len(challenges_to(env, STRANGER)) == 1


def test_expired_and_forged_links_are_refused(ciss_env):
    env, gate = ciss_env, ciss_env.gate
    message_id, state = deliver_and_fetch(env, message("late answer"))
    assert state == "challenged"
    link = link_of(wait_challenge(env))
    status, _, page = curl(link, gate=gate)
    assert status == 200
    code = page_code(page)

    # A forged link (one character changed) and a malformed one.
    token = link.rsplit("/", 1)[1]
    flipped = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    assert curl(link.replace(token, flipped), gate=gate)[0] == 404
    assert curl(link.replace(token, "x" * 5), gate=gate)[0] == 404

    # A wrong code: the form again, with an error; the message stays held.
    status, _, page = curl("--data-urlencode", "code=WRONG1", link, gate=gate)
    assert status in (200, 400, 403), status
    assert "code" in page.lower()
    assert gate.message_state(message_id) == "challenged"

    # The challenge's time is up: the store refuses it even with the link's
    # own expiry still ahead (the token carries one, the store another).
    gate.db_write("UPDATE ciss_challenge SET expires_at = strftime('%s', 'now') - 1")
    status, _, page = curl("--data-urlencode", f"code={code}", link, gate=gate)
    assert status == 410, page
    assert gate.message_state(message_id) == "challenged"
    assert json.loads(ok(ctl("--json", "ciss", "list", config=env.config))) == []


# ---------------------------------------------------------------- G4: no backscatter

def test_g4_null_sender(ciss_env):
    assert_quarantined_unchallenged(
        ciss_env, message("bounce", sender="", from_header="mailer-daemon@sender.test"),
        r"null sender")


def test_g4_auto_submitted(ciss_env):
    assert_quarantined_unchallenged(
        ciss_env, message("out of office", extra="Auto-Submitted: auto-replied\r\n"),
        r"auto-submitted")


@pytest.mark.parametrize("precedence", ["bulk", "list", "junk"])
def test_g4_precedence(ciss_env, precedence):
    assert_quarantined_unchallenged(
        ciss_env, message(f"precedence {precedence}",
                          extra=f"Precedence: {precedence}\r\n"),
        r"bulk mail \(Precedence")


def test_g4_list_id(ciss_env):
    assert_quarantined_unchallenged(
        ciss_env, message("newsletter", extra="List-Id: Offers <offers.sender.test>\r\n"),
        r"list-id")


def test_g4_spf_fail(ciss_env):
    """The envelope sender's domain does not list the host that handed the
    message over: a forged sender, never challenged."""
    forged = delivered(FORGER_ADDRESS, STRANGER, body("forged"))
    assert_quarantined_unchallenged(ciss_env, forged, r"spf")


def test_g4_dkim_not_aligned(ciss_env):
    """Signed, validly, by other.test while From says sender.test, sent from
    an envelope domain without an SPF record (a list or a forwarder's
    bounce address): nothing vouches for the From domain."""
    data = delivered(SENDER_ADDRESS, "bounces@other.test",
                     dkim_signed(ciss_env.pem, "other.test", body("not aligned")))
    assert_quarantined_unchallenged(ciss_env, data, r"DKIM does not align")


def test_g4_our_own_challenge(ciss_env):
    """A challenge popgate sent, arriving in a user's mailbox (one of our
    users wrote to another): never challenged back."""
    env = ciss_env
    _, state = deliver_and_fetch(env, message("first contact"))
    assert state == "challenged"
    ours = wait_challenge(env)["data"]
    env.sink.messages.clear()
    env.gate.db_write("DELETE FROM ciss_challenge")
    # As delivered with an envelope sender (a relay rewrote it), and without
    # its Auto-Submitted line: only the challenge's own header marks it.
    ours = re.sub(rb"(?im)^Auto-Submitted:[^\r]*\r\n", b"", ours)
    assert b"X-Popgate-Challenge" in ours
    data = f"Return-Path: <{STRANGER}>\r\n".encode() + ours
    assert_quarantined_unchallenged(env, data, r"a challenge itself")


def test_g4_same_sender_within_the_period(ciss_env):
    """While a sender's challenge is open, more of its mail is held with it,
    unchallenged; once the challenge is closed (its link expired) but the
    period is not over, its mail goes to the quarantine; past the period the
    sender is challenged again."""
    env = ciss_env
    first, state = deliver_and_fetch(env, message("one"))
    assert state == "challenged"
    wait_challenge(env)
    second, state = deliver_and_fetch(env, message("two"))
    assert state == "challenged"
    assert env.gate.db_query("SELECT count(*) FROM ciss_challenge") == [(1,)]
    env.gate.db_write("UPDATE ciss_challenge SET expires_at = strftime('%s', 'now') - 1")
    third, state = deliver_and_fetch(env, message("three"))
    assert state == "quarantine"
    assert re.search(r"period|already|within", quarantine_reason(env, third), re.I)
    time.sleep(1)
    assert len(challenges_to(env, STRANGER)) == 1
    assert env.gate.db_query("SELECT count(*) FROM ciss_challenge") == [(1,)]
    # Past the period the sender may be challenged again.
    ok(ctl("ciss", "set", "period", "1", config=env.config))
    env.gate.db_write("UPDATE ciss_challenge SET created_at = created_at - 2 * 86400")
    fourth, state = deliver_and_fetch(env, message("four"))
    assert state == "challenged"
    wait_challenge(env, count=2)


def test_g4_cap_per_hour_for_all_users(ciss_env):
    env = ciss_env
    ok(ctl("ciss", "set", "cap-hour", "1", config=env.config))
    _, state = deliver_and_fetch(env, message("first", sender="one@sender.test"))
    assert state == "challenged"
    wait_challenge(env, "one@sender.test")
    second, state = deliver_and_fetch(env, message("second", sender="two@sender.test"))
    assert state == "quarantine"
    assert re.search(r"cap|per hour|limit", quarantine_reason(env, second), re.I)
    time.sleep(1)
    assert challenges_to(env, "two@sender.test") == []


def test_g4_cap_per_hour_for_one_user(ciss_env):
    """alice's cap is reached; bob, another user, is still challenged for."""
    env, gate = ciss_env, ciss_env.gate
    ok(ctl("ciss", "set", "cap-user-hour", "1", config=env.config))
    env.provider.add_user("bob", PASSWORD)
    gate.first_login_fetched("bob@localhost", PASSWORD)
    _, state = deliver_and_fetch(env, message("first", sender="one@sender.test"))
    assert state == "challenged"
    wait_challenge(env, "one@sender.test")
    second, state = deliver_and_fetch(env, message("second", sender="two@sender.test"))
    assert state == "quarantine"
    assert re.search(r"cap|per hour|limit", quarantine_reason(env, second), re.I)
    # bob's own first unknown sender.
    env.provider.deliver("bob", message("for bob", sender="three@sender.test"))
    before = len(gate.fetches_done("bob@localhost"))
    assert gate.pickup("bob@localhost", PASSWORD) == []
    gate.wait_fetch_done("bob@localhost", before + 1, timeout=WAIT)
    bobs, _ = newest_message(gate)
    assert judged(gate, bobs) == "challenged"
    wait_challenge(env, "three@sender.test")
    assert challenges_to(env, "two@sender.test") == []


# ---------------------------------------------------------------- C2: where CISS applies

def test_no_challenge_outside_the_ciss_domains_or_profile(ciss_env):
    env = ciss_env
    ok(ctl("ciss", "set", "domains", config=env.config))
    _, state = deliver_and_fetch(env, message("no ciss domain"))
    assert state == "delivery"
    ok(ctl("ciss", "set", "domains", PSEUDO_DOMAIN, config=env.config))
    ok(ctl("profile", "set", "default", "challenge", "no", config=env.config))
    _, state = deliver_and_fetch(env, message("no ciss profile"))
    assert state == "delivery"
    time.sleep(1)
    assert env.sink.messages == []


def test_domain_commands(ciss_env):
    config = ciss_env.config
    listed = json.loads(ok(ctl("--json", "domain", "list", config=config)))
    assert [(d["domain"], d["builtin"]) for d in listed] == [(PSEUDO_DOMAIN, True)]
    ok(ctl("domain", "add", "Example.ORG", config=config))
    refused(ctl("domain", "add", "example.org", config=config), "already")
    refused(ctl("domain", "add", PSEUDO_DOMAIN, config=config), "")
    refused(ctl("domain", "del", PSEUDO_DOMAIN, config=config), "")
    listed = json.loads(ok(ctl("--json", "domain", "list", config=config)))
    assert [d["domain"] for d in listed] == [PSEUDO_DOMAIN, "example.org"]
    ok(ctl("ciss", "set", "domains", PSEUDO_DOMAIN, "example.org", config=config))
    refused(ctl("domain", "del", "example.org", config=config), "")
    ok(ctl("ciss", "set", "domains", PSEUDO_DOMAIN, config=config))
    ok(ctl("domain", "del", "example.org", config=config))
    refused(ctl("ciss", "set", "domains", "nowhere.example", config=config), "")


# ---------------------------------------------------------------- learning

def test_recipients_of_sent_mail_become_correspondents(ciss_env):
    """alice sends through the relay to friend@mail.test; friend's answer
    is delivered without a challenge. A stranger's is still challenged."""
    env, gate = ciss_env, ciss_env.gate
    ok(ctl("address", "add", LOGIN, USER, config=env.config))
    with smtplib.SMTP(itutil.LOOPBACK, gate.config["smtp"]["port"], timeout=30) as client:
        client.sendmail(LOGIN, ["friend@mail.test"], body("lunch?", from_address=LOGIN))
    itutil.wait_until(lambda: env.sink.received("friend@mail.test") == 1, WAIT,
                      what="alice's mail at friend's MX")
    itutil.wait_until(lambda: gate.db_query(
        "SELECT c.address FROM correspondent c JOIN user u ON u.id = c.user_id"
        " WHERE u.name = ?", (USER,)) == [("friend@mail.test",)], WAIT,
        what="friend@mail.test learnt as alice's correspondent")
    _, state = deliver_and_fetch(env, message("re: lunch?", sender="friend@mail.test"))
    assert state == "delivery"
    _, state = deliver_and_fetch(env, message("hello", sender="stranger@mail.test"))
    assert state == "challenged"
    wait_challenge(env, "stranger@mail.test")
    assert challenges_to(env, "friend@mail.test") == []


def test_trust_untrust_list(ciss_env):
    env, config = ciss_env, ciss_env.config
    ok(ctl("ciss", "trust", USER, "Pal@Sender.Test", config=config))
    refused(ctl("ciss", "trust", "nobody", "pal@sender.test", config=config), "no user")
    refused(ctl("ciss", "trust", USER, "not an address", config=config), "")
    listed = json.loads(ok(ctl("--json", "ciss", "list", config=config)))
    assert [(t["user"], t["sender"], t["known_by"]) for t in listed] == [
        (USER, "pal@sender.test", "admin")]
    assert "pal@sender.test" in ok(ctl("ciss", "list", USER, config=config))
    _, state = deliver_and_fetch(env, message("from a pal", sender="pal@sender.test"))
    assert state == "delivery"
    ok(ctl("ciss", "untrust", USER, "pal@sender.test", config=config))
    refused(ctl("ciss", "untrust", USER, "pal@sender.test", config=config), "")
    assert json.loads(ok(ctl("--json", "ciss", "list", config=config))) == []
    _, state = deliver_and_fetch(env, message("pal again", sender="pal@sender.test"))
    assert state == "challenged"
    wait_challenge(env, "pal@sender.test")


# ---------------------------------------------------------------- held messages expire

@pytest.mark.parametrize("expiry", ["quarantine", "delete"])
def test_held_messages_expire(ciss_env, expiry):
    env, gate = ciss_env, ciss_env.gate
    ok(ctl("ciss", "set", "hold-days", "2", config=env.config))
    ok(ctl("ciss", "set", "hold-expiry", expiry, config=env.config))
    old, state = deliver_and_fetch(env, message("old", sender="old@sender.test"))
    assert state == "challenged"
    young, state = deliver_and_fetch(env, message("young", sender="young@sender.test"))
    assert state == "challenged"
    for message_id, days in ((old, 3), (young, 1)):
        for sql in ("UPDATE message SET state_changed_at = state_changed_at - ? WHERE id = ?",
                    "UPDATE ciss_held SET held_at = held_at - ? WHERE message_id = ?"):
            gate.db_write(sql, (days * 86400, message_id))
    gate.restart()            # the housekeeping runs at the start
    if expiry == "quarantine":
        gate.wait_message_state(old, "quarantine", timeout=WAIT)
        assert re.search(r"no answer to the challenge within 2 days",
                         quarantine_reason(env, old))
    else:
        gate.wait_message_state(old, None, timeout=WAIT)
        itutil.wait_until(lambda: not os.path.exists(
            os.path.join(gate.data_dir, "spool", old[:2], old)), WAIT,
            what=f"the spool file of {old} to go")
    assert gate.message_state(young) == "challenged"
