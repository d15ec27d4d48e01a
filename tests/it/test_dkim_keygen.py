"""
test_dkim_keygen.py — popgatectl's DKIM commands (issue 9, point 5) against
a started popgate's store, with an independent verifier: dkimpy (Debian's
python3-dkim), not libopendkim, which popgate signs with.

`dkim keygen` makes an RSA-2048 or Ed25519 key and prints the TXT record
to publish; the record is parsed back (name, 255-byte strings, tags) and,
served to dkimpy as the DNS answer, verifies the signatures `dkim sign`
makes on SpamAssassin corpus messages — the path the relay takes — and
rejects them once the body or a signed header changes. list, show and del
show and change what the store holds, never a private key; each change is
recorded for the log; bad input exits 1 or 2 and changes nothing.
"""

import json
import re
import subprocess

import dkim
import pytest

from test_ctl import SANITIZER_MARKS, ctl, ctl_bin, ok, table_rows

DOMAIN = "example.org"
FROM_LINE = b"From: Office PC <anna@example.org>"


@pytest.fixture
def gate(make_popgate):
    # A started popgate made the store and the credential key; no provider
    # is needed for these commands.
    return make_popgate()


def dkim_ctl(gate, *args):
    return ctl(*args, config=gate.config_path)


def record_from_output(text):
    """The zone line printed by keygen/show: (name, [strings])."""
    lines = [line for line in text.splitlines() if "._domainkey." in line]
    assert len(lines) == 1, text
    m = re.fullmatch(r'(\S+) IN TXT((?: "[^"]*")+)', lines[0])
    assert m, lines[0]
    return m.group(1), re.findall(r'"([^"]*)"', m.group(2))


def parse_tags(value):
    return dict(part.strip().split("=", 1) for part in value.split(";") if part.strip())


def from_example_org(message):
    """MESSAGE (LF form) with its From field replaced by one in DOMAIN, in
    CRLF form as the spool keeps it."""
    head, sep, body = message.partition(b"\n\n")
    lines, skipping = [], False
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.lower().startswith(b"from:")
        if not skipping:
            lines.append(line)
    return (FROM_LINE + b"\n" + b"\n".join(lines) + sep + body).replace(b"\n", b"\r\n")


def sign_file(gate, path):
    # Bytes, not text: the header's line ends are CRLF and must stay so.
    done = subprocess.run([ctl_bin(), "--config", gate.config_path, "dkim", "sign", path],
                          capture_output=True, timeout=60)
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    assert not any(mark in stderr for mark in SANITIZER_MARKS), stderr
    header = done.stdout
    assert header.startswith(b"DKIM-Signature: ") and header.endswith(b"\r\n")
    return header


def verifies(header, message, name, value):
    def dnsfunc(qname, timeout=5):
        qname = qname.decode() if isinstance(qname, bytes) else qname
        return value.encode() if qname.rstrip(".") == name.rstrip(".") else None

    return dkim.verify(header + message, dnsfunc=dnsfunc)


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
def test_keygen_record_verifies_signatures(gate, corpus, new_dir, algorithm):
    done = dkim_ctl(gate, "dkim", "keygen", DOMAIN, "--algorithm", algorithm)
    out = ok(done)
    assert out.startswith(f"dkim key for {DOMAIN} made ({algorithm}, selector popgate")
    assert "PRIVATE" not in out and "PRIVATE" not in done.stderr
    name, strings = record_from_output(out)
    selector = name.split("._domainkey.")[0]
    assert re.fullmatch(r"popgate\d{6}", selector)
    assert name == f"{selector}._domainkey.{DOMAIN}."
    assert all(0 < len(s) <= 255 for s in strings)
    if algorithm == "rsa":
        assert len(strings) >= 2  # a 2048-bit key's record is longer than 255
    value = "".join(strings)
    tags = parse_tags(value)
    assert tags["v"] == "DKIM1" and tags["k"] == algorithm
    # show prints the same record again.
    assert record_from_output(ok(dkim_ctl(gate, "dkim", "show", DOMAIN))) == (name, strings)

    folder = new_dir("dkim-messages")
    for i, message in enumerate(corpus.messages(6, seed=90)):
        message = from_example_org(message)
        path = f"{folder}/m{i}.eml"
        with open(path, "wb") as f:
            f.write(message)
        header = sign_file(gate, path)
        sig = parse_tags(header[len(b"DKIM-Signature: "):].decode().replace("\r\n", ""))
        assert sig["d"] == DOMAIN and sig["s"] == selector
        assert sig["c"] == "relaxed/relaxed"
        assert sig["a"] == ("rsa-sha256" if algorithm == "rsa" else "ed25519-sha256")
        assert verifies(header, message, name, value), f"message {i} does not verify"
        # The checks can fail: a changed body, a changed Subject, another key.
        head, sep, body = message.partition(b"\r\n\r\n")
        assert not verifies(header, head + sep + body + b"P.S. added\r\n", name, value)
        changed = re.sub(rb"(?im)^subject:", b"Subject: [changed]", head, count=1)
        if changed == head:
            changed = head.replace(FROM_LINE, b"From: Office PC <bob@example.org>")
        assert not verifies(header, changed + sep + body, name, value)

    # A new key for the domain (--replace) signs with a record the old one
    # does not match.
    assert dkim_ctl(gate, "dkim", "keygen", DOMAIN, "--algorithm", algorithm).returncode == 1
    out = ok(dkim_ctl(gate, "dkim", "keygen", DOMAIN, "--algorithm", algorithm,
                      "--selector", "Second", "--replace"))
    assert out.startswith(f"dkim key for {DOMAIN} replaced ({algorithm}, selector second)")
    new_name, new_strings = record_from_output(out)
    assert new_name == f"second._domainkey.{DOMAIN}."
    header = sign_file(gate, path)
    with open(path, "rb") as f:
        message = f.read()
    assert verifies(header, message, new_name, "".join(new_strings))
    assert not verifies(header, message, new_name, value)


def test_list_show_del_and_refusals(gate):
    ok(dkim_ctl(gate, "dkim", "keygen", "Example.ORG"))
    ok(dkim_ctl(gate, "dkim", "keygen", "mail.example.net", "--algorithm", "ed25519",
                "--selector", "s2026"))

    rows = table_rows(ok(dkim_ctl(gate, "dkim", "list")))
    assert rows[0] == ["DOMAIN", "SELECTOR", "ALGORITHM", "CREATED"]
    assert [r[:3] for r in rows[1:]] == [["example.org", rows[1][1], "rsa"],
                                          ["mail.example.net", "s2026", "ed25519"]]
    listed = json.loads(ok(dkim_ctl(gate, "--json", "dkim", "list")))
    assert [k["domain"] for k in listed] == ["example.org", "mail.example.net"]
    assert all("private" not in json.dumps(k).lower() for k in listed)
    shown = json.loads(ok(dkim_ctl(gate, "--json", "dkim", "show", "MAIL.example.net")))
    assert shown["selector"] == "s2026" and shown["algorithm"] == "ed25519"
    assert shown["record"]["name"] == "s2026._domainkey.mail.example.net."
    assert shown["record"]["type"] == "TXT"
    assert shown["record"]["value"].startswith("v=DKIM1; k=ed25519; p=")

    # At rest the private keys are sealed: no PEM in the database.
    for (blob,) in gate.db_query("SELECT private_key FROM dkim_key"):
        assert b"PRIVATE KEY" not in bytes(blob) and b"-----" not in bytes(blob)

    # Bad input: exit 2 for usage, 1 for a refusal; nothing changes.
    assert dkim_ctl(gate, "dkim", "keygen", DOMAIN, "--algorithm", "dsa").returncode == 2
    assert dkim_ctl(gate, "dkim", "keygen", DOMAIN, "--selector", "a_b").returncode == 2
    assert dkim_ctl(gate, "dkim", "keygen").returncode == 2
    for bad in ("localhost", "example.org.", "x-.example.org", "exa mple.org", "a..example.org"):
        done = dkim_ctl(gate, "dkim", "keygen", bad)
        assert done.returncode == 1, bad
        assert "is not a domain name" in done.stderr
    assert dkim_ctl(gate, "dkim", "show", "example.com").returncode == 1
    assert dkim_ctl(gate, "dkim", "del", "example.com").returncode == 1
    assert len(gate.db_query("SELECT domain FROM dkim_key")) == 2

    out = ok(dkim_ctl(gate, "dkim", "del", "mail.example.net"))
    assert out.startswith("dkim key for mail.example.net deleted")
    assert dkim_ctl(gate, "dkim", "show", "mail.example.net").returncode == 1
    assert [r[0] for r in table_rows(ok(dkim_ctl(gate, "dkim", "list")))[1:]] == ["example.org"]

    # Each change is recorded for popgate's log.
    texts = [t for (t,) in gate.db_query("SELECT text FROM admin_change ORDER BY seq")]
    assert [t.split(":")[0] for t in texts] == ["popgatectl dkim keygen"] * 2 + \
        ["popgatectl dkim del"]
    assert all("PRIVATE" not in t for t in texts)
    assert gate.running


def test_sign_refusals(gate, new_dir):
    folder = new_dir("dkim-refusals")
    path = f"{folder}/m.eml"
    with open(path, "wb") as f:
        f.write(b"From: someone@example.com\r\nSubject: hi\r\n\r\nhello\r\n")
    done = dkim_ctl(gate, "dkim", "sign", path)
    assert done.returncode == 1 and "no DKIM key for example.com" in done.stderr
    with open(path, "wb") as f:
        f.write(b"Subject: no sender\r\n\r\nhello\r\n")
    done = dkim_ctl(gate, "dkim", "sign", path)
    assert done.returncode == 1 and "no From address" in done.stderr
    assert dkim_ctl(gate, "dkim", "sign", f"{folder}/missing.eml").returncode == 1
