"""
test_depot_search.py — searching the archive and getting mail out of it
(issue 11 points 4 and 7), with a real popgate data folder, a real Dovecot
as the provider and popgatectl.

Users alice and bob (made by their first POP3 login, U1) own the addresses
alice@example.org and bob@example.org. Real corpus messages addressed to
each, and a few made here (words, a sender and an attachment only bob's
mail has, a body line starting "From "), go into the archive with
`popgatectl depot import`, which gives each message the owners of its
addresses. Then:

- `depot search --user alice+localhost` never returns bob's mail, for every
  criterion, even those that match only bob's mail for the administrator;
- `depot show`, `export` and `restore` for alice refuse bob's messages with
  the same words as a missing one;
- an mbox export read back with Python's mailbox module gives each message's
  bytes exactly as archived, and so does an .eml export;
- `depot restore` puts a copy into alice's Delivery Queue, and her next
  POP3 pickup through popgate serves it;
- every search, export and restore is in the archive's audit log.
"""

import hashlib
import json
import mailbox
import os
import re
import sqlite3

from mailutil import to_lf
from test_ctl import ctl, ok

PASSWORD = "depot-search-pw-1"
ALICE = "alice+localhost"
BOB = "bob+localhost"


def made(subject, sender, to, body, attachment=None):
    """A message made here, LF form."""
    head = [f"From: {sender}", f"To: {to}", f"Subject: {subject}",
            "Date: Tue, 10 Mar 2020 10:00:00 +0000",
            f"Message-ID: <{subject.replace(' ', '.')}@test.invalid>", "MIME-Version: 1.0"]
    if attachment is None:
        return ("\n".join(head + ["Content-Type: text/plain; charset=us-ascii", "", body, ""])
                ).encode()
    name, data = attachment
    return ("\n".join(head + [
        'Content-Type: multipart/mixed; boundary="b0"', "", "--b0",
        "Content-Type: text/plain; charset=us-ascii", "", body, "--b0",
        f'Content-Type: application/octet-stream; name="{name}"',
        f'Content-Disposition: attachment; filename="{name}"',
        "Content-Transfer-Encoding: base64", "", data, "--b0--", ""])).encode()


def build_mail(corpus):
    """{owner user: [raw message, ...]}: real corpus messages delivered to
    each user's address (a Delivered-To line in front), and made ones."""
    real = corpus.messages(6, seed=1111, odd_share=0, max_size=60_000)
    mail = {ALICE: [], BOB: []}
    for i, raw in enumerate(real):
        user, address = (ALICE, "alice@example.org") if i % 2 == 0 else (BOB, "bob@example.org")
        mail[user].append(b"Delivered-To: " + address.encode() + b"\n" + raw)
    mail[ALICE].append(made("alpaca meeting notes", "dora@partner.example", "alice@example.org",
                            "Notes on the alpaca farm.\nFrom here on, the minutes.\n"
                            ">From quoted already.\n"))
    mail[BOB].append(made("zebracorn budget plan", "carl@secret.example", "bob@example.org",
                          "The zebracorn figures for 2020.\nFrom the desk of Carl.\n",
                          attachment=("zebracorn-plan.pdf", "JVBERi0xLjQKJcfsj6IK")))
    mail[BOB].append(made("quarterly zebracorn review", "carl@secret.example",
                          "Bob <BOB@Example.ORG>", "Quarterly review, zebracorn edition.\n"))
    return mail


def setup_archive(gate, provider, corpus, tmp_path):
    """Users, their addresses and the imported mail; returns (mail, seqs):
    SEQS maps each user to the seqs of their messages."""
    for name in ("alice", "bob"):
        provider.add_user(name, PASSWORD)
        gate.first_login_fetched(f"{name}@localhost", PASSWORD)
    for address, user in (("alice@example.org", ALICE), ("bob@example.org", BOB)):
        ok(ctl("address", "add", address, user, config=gate.config_path))
    mail = build_mail(corpus)
    folder = tmp_path / "import"
    folder.mkdir()
    for user, messages in mail.items():
        for i, raw in enumerate(messages):
            (folder / f"{user}-{i}.eml").write_bytes(raw)
    ok(ctl("depot", "import", str(folder), config=gate.config_path))
    by_sha = {hashlib.sha256(raw).hexdigest(): user for user, ms in mail.items() for raw in ms}
    seqs = {ALICE: set(), BOB: set()}
    for hit in search(gate, "--limit", "1000"):
        seqs[by_sha[hit["sha256"]]].add(hit["seq"])
    assert [len(seqs[u]) for u in (ALICE, BOB)] == [len(mail[ALICE]), len(mail[BOB])], seqs
    return mail, seqs


def search(gate, *args):
    return json.loads(ok(ctl("--json", "depot", "search", *args, config=gate.config_path)))


def audit_rows(gate):
    db = sqlite3.connect(f"file:{os.path.join(gate.data_dir, 'depot', 'index.db')}?mode=ro",
                         uri=True)
    try:
        return db.execute("SELECT actor, action, detail FROM audit ORDER BY seq").fetchall()
    finally:
        db.close()


def mboxrd_unquote(data):
    """A message read from an mboxrd file with its >From quoting undone."""
    return re.sub(rb"(?m)^>(>*From )", rb"\1", data)


def test_user_search_never_returns_another_users_mail(popgate, provider, corpus, tmp_path):
    mail, seqs = setup_archive(popgate, provider, corpus, tmp_path)
    criteria = [
        [],
        ["--text", "zebracorn"],           # words only in bob's mail
        ["--text", "zebra*"],
        ["--subject", "zebracorn"],
        ["--sender", "carl@secret.example"],
        ["--recipient", "bob@example.org"],
        ["--owner", BOB],
        ["--attachment", "zebracorn"],
        ["--attachment", "*.pdf"],
        ["--direction", "import"],
        ["--since", "2020-03-10", "--until", "2020-03-10"],
        ["--text", "alpaca"],
        ["--text", "\"zebracorn\" OR \"alpaca\""],  # one word list, not an FTS5 OR
        ["--text", "zebracorn*", "--limit", "1"],
    ]
    for args in criteria:
        admin = {h["seq"] for h in search(popgate, *args)}
        alice = search(popgate, "--user", ALICE, *args)
        assert {h["seq"] for h in alice} <= seqs[ALICE], (args, alice)
        assert {h["seq"] for h in alice} == admin & seqs[ALICE] or "--limit" in args, args
        for hit in alice:
            assert all(o["user"] == ALICE for o in hit["owners"]), hit
        bob = {h["seq"] for h in search(popgate, "--user", BOB, *args)}
        assert bob <= seqs[BOB], args
    # The criteria that match only bob's mail do find it for the administrator.
    for args in (["--text", "zebracorn"], ["--sender", "carl@secret.example"],
                 ["--attachment", "zebracorn-plan"], ["--owner", BOB]):
        assert {h["seq"] for h in search(popgate, *args)} & seqs[BOB], args
        assert search(popgate, "--user", ALICE, *args) == [], args
    assert len(search(popgate, "--user", ALICE)) == len(mail[ALICE])

    # Syntax in the words: searched literally (real mail has "or" and
    # "near"), still only alice's, or refused clearly.
    for words in ("NEAR(", "OR", "near OR zebracorn", "'; DROP TABLE message; --"):
        assert {h["seq"] for h in search(popgate, "--user", ALICE, "--text", words)} <= \
            seqs[ALICE], words
    assert search(popgate, "--text", "'; DROP TABLE message; --") == []
    for words in ('"', "*", "--", "'"):
        done = ctl("depot", "search", "--text", words, config=popgate.config_path)
        assert done.returncode == 1, done
        assert "no word" in done.stderr and "fts5" not in done.stderr.lower(), done.stderr

    # Every search is audited, a user's under the user's name.
    rows = audit_rows(popgate)
    assert any(a == f"user:{ALICE}" and act == "search" and "zebracorn" in d
               for a, act, d in rows)
    assert any(a == "admin" and act == "search" for a, act, d in rows)


def test_show_export_restore_only_ones_own(popgate, provider, corpus, tmp_path):
    mail, seqs = setup_archive(popgate, provider, corpus, tmp_path)
    bob_seq = max(seqs[BOB])
    missing = max(seqs[ALICE] | seqs[BOB]) + 1000
    cfg = popgate.config_path

    # show: bob's message is "no message N" for alice, as a missing one is.
    shown = json.loads(ok(ctl("--json", "depot", "show", str(bob_seq), config=cfg)))
    assert shown["seq"] == bob_seq and len(shown["entry"]["hash"]) == 64
    for seq in (bob_seq, missing):
        done = ctl("depot", "show", str(seq), "--user", ALICE, config=cfg)
        assert (done.returncode, done.stderr.strip()) == (1, f"popgatectl: no message {seq}")
        out = tmp_path / f"bob-{seq}.mbox"
        done = ctl("depot", "export", "--user", ALICE, "--mbox", str(out), str(seq), config=cfg)
        assert (done.returncode, done.stderr.strip()) == (1, f"popgatectl: no message {seq}")
        assert not out.exists()
        done = ctl("depot", "restore", str(seq), "--user", ALICE, config=cfg)
        assert (done.returncode, done.stderr.strip()) == (1, f"popgatectl: no message {seq}")

    # Export alice's whole archive (a query) to mbox: byte-identical.
    box_path = tmp_path / "alice.mbox"
    exported = json.loads(ok(ctl("--json", "depot", "export", "--user", ALICE, "--mbox",
                                 str(box_path), "--direction", "import", config=cfg)))
    assert sorted(exported["seqs"]) == sorted(seqs[ALICE])
    box = mailbox.mbox(str(box_path), create=False)
    read_back = sorted(mboxrd_unquote(box.get_bytes(key)) for key in box.keys())
    box.close()
    assert read_back == sorted(mail[ALICE])
    # Named seqs to .eml files: byte-identical too.
    eml_dir = tmp_path / "eml"
    ok(ctl("depot", "export", "--eml", str(eml_dir), *map(str, sorted(seqs[BOB])), config=cfg))
    assert sorted(p.read_bytes() for p in eml_dir.iterdir()) == sorted(mail[BOB])
    assert sorted(p.name for p in eml_dir.iterdir()) == sorted(f"{s}.eml" for s in seqs[BOB])
    # Never over an existing file.
    done = ctl("depot", "export", "--mbox", str(box_path), str(bob_seq), config=cfg)
    assert done.returncode == 1 and "File exists" in done.stderr, done

    # Restore alice's made message into her Delivery Queue; POP3 serves it.
    made_alpaca = next(raw for raw in mail[ALICE] if b"alpaca meeting" in raw)
    sha = hashlib.sha256(made_alpaca).hexdigest()
    seq = next(h["seq"] for h in search(popgate, "--user", ALICE, "--text", "alpaca")
               if h["sha256"] == sha)
    restored = json.loads(ok(ctl("--json", "depot", "restore", str(seq), "--user", ALICE,
                                 config=cfg)))
    assert restored["state"] == "delivery" and restored["account"] == "alice@localhost"
    served = popgate.pickup("alice@localhost", PASSWORD)
    assert len(served) == 1
    assert to_lf(served[0]).endswith(made_alpaca), served[0][:300]
    assert popgate.pickup("bob@localhost", PASSWORD) == []

    rows = audit_rows(popgate)
    actions = {(a, act) for a, act, _ in rows}
    assert {(f"user:{ALICE}", "export"), (f"user:{ALICE}", "restore"), ("admin", "export"),
            (f"user:{ALICE}", "read"), ("admin", "show")} <= actions, actions
    detail = next(d for a, act, d in rows if a == f"user:{ALICE}" and act == "export")
    assert sorted(json.loads(detail)["seqs"]) == sorted(seqs[ALICE])
