"""
test_subject_tag.py — the "tag the subject" action (issue 10, point 1) as a
real mail client sees it: a Dovecot provider, popgate's fetch and workers,
and poplib as the client.

Mail scored at or above tag_at (and under quarantine_at) is served with
"[spam] tag_subject_prefix" in front of its subject: a plain subject, a
folded one, an RFC 2047 encoded one, one already tagged (left as it is) and
a message without a Subject (which gets one). The body file is never
changed: the server inserts the tag while it serves. LIST, STAT and RETR's
"+OK n octets" equal the octets RETR sends (RFC 1939), TOP shows the tag
too, UIDL does not change, and untagged mail is served as before.
"""

import itutil
from smtputil import spool_file
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
USER = "alice+localhost"
PASSWORD = "alice-secret-tag-1"


def message(sender, subject_lines, body="Hello.\r\n"):
    return (f"From: {sender}\r\nTo: alice@localhost\r\n{subject_lines}"
            f"Message-ID: <{abs(hash(subject_lines))}@it.example>\r\n\r\n{body}").encode()


def headers_of(lines):
    """The header block of a message given as poplib's lines, unfolded not."""
    block = []
    for line in lines:
        if line == b"":
            break
        block.append(line)
    return b"\r\n".join(block).decode()


def served_octets(lines):
    """The octets RETR sent for LINES (poplib strips CR LF and dot-stuffing)."""
    return sum(len(line) + 2 for line in lines)


def test_tagged_subject_as_served(popgate, provider):
    config = popgate.config_path
    provider.add_user("alice", PASSWORD)
    ok(ctl("sender", "add", "block", "spam.example", config=config))
    # The block list scores 100: tagged, not quarantined.
    ok(ctl("profile", "set", "default", "tag_at", "50", "quarantine_at", "500", config=config))
    popgate.first_login_fetched(ACCOUNT, PASSWORD)
    sent = [
        message("a@spam.example", "Subject: cheap pills\r\n"),
        message("b@spam.example", "Subject:\r\n\tfolded offer\r\n"),
        message("c@spam.example", "Subject: =?utf-8?B?w6lsw6k=?=\r\n"),
        message("d@spam.example", "Subject: [SPAM] already\r\n"),
        message("e@spam.example", ""),
        message("friend@ok.example", "Subject: lunch\r\n"),
    ]
    for raw in sent:
        provider.deliver("alice", raw)
    assert popgate.pickup(ACCOUNT, PASSWORD) == []   # its QUIT fetches them
    popgate.wait_states({"delivery": len(sent)}, timeout=60)

    client = popgate.login(ACCOUNT, PASSWORD)
    try:
        count, total = client.stat()
        assert count == len(sent)
        listed = {int(n): int(size) for n, size in
                  (entry.split() for entry in client.list()[1])}
        uidls = client.uidl()[1]
        subjects = []
        retr_total = 0
        for number in range(1, count + 1):
            reply, lines, octets = client.retr(number)
            # RFC 1939: the size LIST gave, the "+OK n octets", and what came.
            assert served_octets(lines) == listed[number], number
            assert octets == listed[number], number
            assert reply.split()[1] == str(listed[number]).encode(), reply
            assert int(client.list(number).split()[2]) == listed[number]
            retr_total += octets
            block = headers_of(lines)
            subject = [line for line in block.split("\r\n") if line.lower().startswith("subject")]
            assert len(subject) == 1, block
            top = headers_of(client.top(number, 0)[1])
            assert top == block
            start = block.index(subject[0])
            subjects.append(block[start:].split("\r\nMessage-ID")[0].split("\r\nFrom")[0])
        assert retr_total == total
        assert client.uidl()[1] == uidls
    finally:
        client.quit()

    assert subjects[0] == "Subject: [SPAM] cheap pills"
    assert subjects[1].startswith("Subject: [SPAM]\r\n\tfolded offer")
    assert subjects[2] == "Subject: [SPAM] =?utf-8?B?w6lsw6k=?="
    assert subjects[3] == "Subject: [SPAM] already"
    assert subjects[4].startswith("Subject: [SPAM]")
    assert subjects[5] == "Subject: lunch"
    # The body files are as fetched: the tag is only in what is served.
    for mid, in popgate.db_query("SELECT id FROM message"):
        assert b"[SPAM] cheap" not in spool_file(popgate, mid)
    assert popgate.running


def test_empty_prefix_changes_no_subject(make_popgate, provider):
    popgate = make_popgate(provider=provider, overrides={"spam": {"tag_subject_prefix": ""}})
    config = popgate.config_path
    provider.add_user("alice", PASSWORD)
    ok(ctl("sender", "add", "block", "spam.example", config=config))
    ok(ctl("profile", "set", "default", "tag_at", "50", "quarantine_at", "500", config=config))
    popgate.first_login_fetched(ACCOUNT, PASSWORD)
    provider.deliver("alice", message("a@spam.example", "Subject: cheap pills\r\n"))
    provider.deliver("alice", message("e@spam.example", ""))
    assert popgate.pickup(ACCOUNT, PASSWORD) == []
    popgate.wait_states({"delivery": 2}, timeout=60)
    client = popgate.login(ACCOUNT, PASSWORD)
    try:
        for number in (1, 2):
            reply, lines, octets = client.retr(number)
            assert octets == int(client.list(number).split()[2])
            block = headers_of(lines)
            assert "X-Popgate-Spam-Status: Yes, action=tag" in block
            assert "[SPAM]" not in block
        assert "Subject: cheap pills" in headers_of(client.retr(1)[1])
        assert "Subject" not in headers_of(client.retr(2)[1])
    finally:
        client.quit()
    itutil.wait_until(lambda: popgate.running, 5, what="the daemon to keep running")
