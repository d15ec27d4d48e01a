"""
test_depot_import.py — popgatectl depot import (issue 11, points 5 and 7)
on real SpamAssassin corpus messages: an mbox (mboxrd, with quoted >From
lines), a maildir (new/ and cur/), a folder of message files, and a tree
of folders (Maildir++ subfolders, an mbox deep down, a link back up).

Every message is archived once with its exact bytes (the From_ line, the
separating empty line and the quoting taken off); a rerun imports nothing
new and reads no finished input again; a maildir message that moved from
new/ to cur/ is the same message; an import SIGKILLed midway and run again
archives every message exactly once and leaves the archive intact (depot
verify, also after an expiry); a
terminal gets a progress bar, a pipe a summary line only. Also the
retention, hold and expire commands' round trip.
"""

import json
import os
import pty
import signal
import sqlite3
import subprocess
import time

import corpus as corpus_mod
from popgate import popgate_bin

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
ALICE = "zzzz@localhost.netnoteinc.com"


def ctl_bin():
    return os.path.join(os.path.dirname(popgate_bin()), "popgatectl")


def ctl(config, *args, stderr=None, timeout=300):
    argv = [ctl_bin(), "--config", config] + list(args)
    done = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=stderr if stderr is not None else subprocess.PIPE,
                          text=True, timeout=timeout)
    for mark in SANITIZER_MARKS:
        assert mark not in (done.stderr or ""), f"{argv}: {done.stderr}"
    return done


def ok(done):
    assert done.returncode == 0, done.stderr
    return done


def corpus_raw(groups, count):
    """COUNT corpus messages (bytes, the From_ line taken off), in a fixed order."""
    data = corpus_mod.install()
    out = []
    for group in groups:
        folder = os.path.join(data, group)
        for name in sorted(n for n in os.listdir(folder) if n.endswith(".txt")):
            with open(os.path.join(folder, name), "rb") as f:
                raw = corpus_mod.strip_from_line(f.read())
            if raw.endswith(b"\n"):
                out.append(raw)
            if len(out) == count:
                return out
    return out


def write_mbox(path, messages):
    """An mboxrd file: lines matching >*From  get one more '>'."""
    with open(path, "wb") as out:
        for raw in messages:
            lines = raw.split(b"\n")
            quoted = [b">" + line if line.lstrip(b">").startswith(b"From ") else line
                      for line in lines]
            out.write(b"From sender@example.org Thu Aug 22 13:17:22 2002\n")
            out.write(b"\n".join(quoted) + b"\n")


def make_gate(make_popgate):
    """A data folder with a store (the daemon's first start made it) and
    users alice (who owns ALICE) and bob."""
    gate = make_popgate()
    gate.stop()
    config = gate.config_path
    ok(ctl(config, "user", "add", "alice"))
    ok(ctl(config, "user", "add", "bob"))
    ok(ctl(config, "address", "add", ALICE, "alice"))
    return gate


def index(gate):
    db = sqlite3.connect(os.path.join(gate.data_dir, "depot", "index.db"), timeout=30)
    return db


def archived(gate):
    db = index(gate)
    try:
        return db.execute("SELECT source, size FROM message").fetchall()
    finally:
        db.close()


def test_import_mbox_maildir_files_then_rerun(make_popgate, new_dir):
    gate = make_gate(make_popgate)
    config = gate.config_path
    work = new_dir("import")
    messages = corpus_raw(("easy-ham-1", "spam-1"), 260)
    # Quoted >From lines must come back unquoted: a message of its own.
    messages.append(b"From: a@example.org\nSubject: quoting\n\nFrom here on\n>From there\n"
                    b">>From everywhere\n")
    mbox_part, maildir_part, loose_part = messages[:161], messages[161:221], messages[221:]
    mbox = os.path.join(work, "old.mbox")
    write_mbox(mbox, mbox_part)
    maildir = os.path.join(work, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    for i, raw in enumerate(maildir_part):
        sub = "cur" if i % 2 else "new"
        name = "%d.M%dP1.host" % (1000 + i, i) + (":2,S" if sub == "cur" else "")
        with open(os.path.join(maildir, sub, name), "wb") as f:
            f.write(raw)
    loose = os.path.join(work, "loose")
    os.makedirs(loose)
    for i, raw in enumerate(loose_part):
        with open(os.path.join(loose, "%03d.eml" % i), "wb") as f:
            f.write(raw)

    done = ok(ctl(config, "depot", "import", mbox, maildir, loose))
    assert f"imported {len(messages)}, already archived 0, failed 0" in done.stdout
    # A pipe gets the summary, never the bar.
    assert "[#" not in done.stderr
    rows = archived(gate)
    assert len(rows) == len(messages)
    assert len({source for source, _ in rows}) == len(messages)
    # The exact bytes: every message's size is there, as often as it is.
    assert sorted(size for _, size in rows) == sorted(len(raw) for raw in messages)
    assert all(source.startswith("import:") for source, _ in rows)

    db = index(gate)
    try:
        owned = db.execute("SELECT DISTINCT address, user FROM message_owner").fetchall()
        assert (ALICE, "alice") in owned
        assert not any(user == "bob" for _, user in owned)
        assert db.execute("SELECT count(*) FROM message WHERE direction = 'import'"
                          ).fetchone()[0] == len(messages)
        audit = db.execute("SELECT actor, detail FROM audit WHERE action = 'import'").fetchall()
        assert len(audit) == 1 and audit[0][0] == "admin"
        assert f"imported:{len(messages)}" in audit[0][1] and mbox in audit[0][1]
    finally:
        db.close()

    # A rerun archives nothing and reads no finished input; a maildir
    # message seen in new/ is the same message once moved to cur/.
    new_dir_path = os.path.join(maildir, "new")
    moved = sorted(os.listdir(new_dir_path))[0]
    os.rename(os.path.join(new_dir_path, moved), os.path.join(maildir, "cur", moved + ":2,S"))
    done = ok(ctl(config, "--json", "depot", "import", mbox, maildir, loose))
    result = json.loads(done.stdout)
    assert result["imported"] == 0 and result["failed"] == 0
    assert result["already_archived"] == 0
    assert result["inputs_done_before"] == 1 + len(maildir_part) + len(loose_part)
    assert len(archived(gate)) == len(messages)

    # An mbox that grew goes on after its last message.
    extra = corpus_raw(("hard-ham-1",), 5)
    with open(mbox, "ab") as out:
        for raw in extra:
            out.write(b"From x@example.org Thu Aug 22 13:17:22 2002\n" + raw + b"\n")
    done = ok(ctl(config, "--json", "depot", "import", mbox))
    result = json.loads(done.stdout)
    assert result["imported"] == len(extra) and result["already_archived"] == 0
    assert len(archived(gate)) == len(messages) + len(extra)

    # --user: the user's addresses, else its primary address.
    bob_file = os.path.join(work, "bob.eml")
    with open(bob_file, "wb") as f:
        f.write(b"From: someone@example.net\nTo: other@example.net\nSubject: for bob\n\nhi\n")
    ok(ctl(config, "depot", "import", "--user", "bob", "--direction", "in", bob_file))
    db = index(gate)
    try:
        row = db.execute("SELECT m.direction, o.address, o.user FROM message m JOIN "
                         "message_owner o ON o.seq = m.seq WHERE m.subject = 'for bob'"
                         ).fetchall()
    finally:
        db.close()
    assert len(row) == 1 and row[0][0] == "in" and row[0][2] == "bob"
    assert row[0][1].startswith("bob@")
    # With --user, the user's own addresses in the message when there are.
    alice_file = os.path.join(work, "alice.eml")
    with open(alice_file, "wb") as f:
        f.write(b"From: someone@example.net\nTo: " + ALICE.encode() +
                b"\nCc: bob@example.net\nSubject: for alice\n\nhi\n")
    ok(ctl(config, "depot", "import", "--user", "alice", alice_file))
    db = index(gate)
    try:
        row = db.execute("SELECT o.address, o.user FROM message m JOIN message_owner o "
                         "ON o.seq = m.seq WHERE m.subject = 'for alice'").fetchall()
    finally:
        db.close()
    assert row == [(ALICE, "alice")]


def test_import_a_tree_of_folders(make_popgate, new_dir):
    """A mail folder tree as people keep one: a maildir with a Maildir++
    subfolder (.Sent) and a plain one (Archive), an mbox two folders down,
    a message file at the top. Everything in it is archived once; a
    maildir's tmp/, dot folders that are not maildirs and dot files are
    not; a link back up does not loop; a rerun archives nothing; a tree
    deeper than 16 folders is refused."""
    gate = make_gate(make_popgate)
    config = gate.config_path
    tree = new_dir("tree")
    messages = corpus_raw(("easy-ham-1",), 12)
    wanted, skipped = [], []

    def put(folder, name, raw, archive=True):
        os.makedirs(os.path.join(tree, folder), exist_ok=True)
        with open(os.path.join(tree, folder, name), "wb") as f:
            f.write(raw)
        (wanted if archive else skipped).append(raw)

    for sub in ("Maildir/cur", "Maildir/new", "Maildir/tmp", "Maildir/.Sent/cur",
                "Maildir/.Sent/new", "Maildir/Archive/cur"):
        os.makedirs(os.path.join(tree, sub), exist_ok=True)
    put("Maildir/cur", "1001.M1P1.host:2,S", messages[0])
    put("Maildir/new", "1002.M2P1.host", messages[1])
    put("Maildir/.Sent/cur", "1003.M3P1.host:2,S", messages[2])
    put("Maildir/.Sent/new", "1004.M4P1.host", messages[3])
    put("Maildir/Archive/cur", "1005.M5P1.host:2,S", messages[4])
    put(".", "top.eml", messages[5])
    os.makedirs(os.path.join(tree, "old", "2002"))
    write_mbox(os.path.join(tree, "old", "2002", "saved.mbox"), messages[6:9])
    wanted += messages[6:9]
    put("Maildir/tmp", "1006.M6P1.host", messages[9], archive=False)
    put(".hidden", "x.eml", messages[10], archive=False)
    put("Maildir/.Trash-not-a-maildir", "y.eml", messages[11], archive=False)
    put("old", ".dotfile.eml", messages[11], archive=False)
    os.symlink("..", os.path.join(tree, "old", "2002", "up"))

    done = ok(ctl(config, "depot", "import", tree))
    assert f"imported {len(wanted)}, already archived 0, failed 0" in done.stdout
    # Exactly the wanted messages: none of the skipped ones came in.
    assert sorted(size for _, size in archived(gate)) == sorted(len(raw) for raw in wanted)
    assert len(skipped) == 4
    done = ok(ctl(config, "--json", "depot", "import", tree))
    result = json.loads(done.stdout)
    assert result["imported"] == 0 and result["failed"] == 0
    assert len(archived(gate)) == len(wanted)

    # Mail deeper than 16 folders is refused, the folder named, never
    # skipped unsaid; given on its own, it is imported.
    deep = os.path.join(new_dir("deep"), *["f%d" % i for i in range(18)])
    os.makedirs(deep)
    with open(os.path.join(deep, "deep.eml"), "wb") as f:
        f.write(messages[11])
    top = deep.split(os.sep + "f0")[0]
    done = ctl(config, "depot", "import", top)
    assert done.returncode != 0
    assert "more than 16 folders deep" in done.stderr and "f16" in done.stderr
    assert len(archived(gate)) == len(wanted)
    done = ok(ctl(config, "depot", "import", deep))
    assert "imported 1," in done.stdout


def test_retention_hold_expire_commands(make_popgate, new_dir):
    gate = make_gate(make_popgate)
    config = gate.config_path
    work = new_dir("expire")
    # Some of them (easy-ham-1's) are addressed to alice.
    messages = corpus_raw(("easy-ham-1",), 10) + corpus_raw(("easy-ham-2",), 10)
    mbox = os.path.join(work, "a.mbox")
    write_mbox(mbox, messages)
    ok(ctl(config, "depot", "import", mbox))

    ok(ctl(config, "depot", "retention", "set", "--domain", "JMason.org", "30"))
    ok(ctl(config, "depot", "retention", "set", "--default", "60"))
    listed = json.loads(ok(ctl(config, "--json", "depot", "retention", "list")).stdout)
    assert {"scope": "domain:jmason.org", "days": 30} in listed
    assert ctl(config, "depot", "retention", "set", "--domain", "x..y", "5").returncode == 2
    assert ctl(config, "depot", "retention", "set", "--user", "alice", "0").returncode == 2

    ok(ctl(config, "depot", "hold", "add", "--user", "alice", "--reason", "audit 2026"))
    holds = json.loads(ok(ctl(config, "--json", "depot", "hold", "list")).stdout)
    assert [h["scope"] for h in holds] == ["user:alice"] and holds[0]["reason"] == "audit 2026"

    # Far in the future everything is due; alice's mail is held.
    db = index(gate)
    try:
        total = db.execute("SELECT count(*) FROM message").fetchone()[0]
        alices = db.execute("SELECT count(DISTINCT seq) FROM message_owner WHERE user = 'alice'"
                            ).fetchone()[0]
    finally:
        db.close()
    assert 0 < alices < total
    dry = json.loads(ok(ctl(config, "--json", "depot", "expire", "--dry-run",
                            "--now", "2100-01-01")).stdout)
    assert len(dry["expired"]) == total - alices and dry["held"] == alices
    assert dry["entry"] == 0
    assert len(archived(gate)) == total

    done = json.loads(ok(ctl(config, "--json", "depot", "expire", "--now",
                             "2100-01-01T00:00:00Z")).stdout)
    assert done["expired"] == dry["expired"] and done["entry"] > 0
    db = index(gate)
    try:
        kind, detail = db.execute("SELECT kind, detail FROM entry WHERE seq = ?",
                                  (done["entry"],)).fetchone()
        assert kind == "expire"
        assert detail == " ".join("seq:%d" % s for s in done["expired"])
        assert db.execute("SELECT count(*) FROM message WHERE expired = ?",
                          (done["entry"],)).fetchone()[0] == len(done["expired"])
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'delete'").fetchone()[0] == 1
    finally:
        db.close()
    assert "intact" in ok(ctl(config, "depot", "verify")).stdout

    ok(ctl(config, "depot", "hold", "del", "--user", "alice"))
    assert ctl(config, "depot", "hold", "del", "--user", "alice").returncode == 1
    assert ctl(config, "depot", "hold", "add", "--message", "999999").returncode == 1
    assert ctl(config, "depot", "hold", "add").returncode == 2


def test_sigkill_midway_then_rerun(make_popgate, new_dir):
    gate = make_popgate()
    gate.stop()
    config = gate.config_path
    work = new_dir("kill")
    base = corpus_raw(("easy-ham-1", "easy-ham-2", "spam-1"), 1500)
    messages = base * 3  # more copies: other sources, the same blobs
    mbox = os.path.join(work, "big.mbox")
    write_mbox(mbox, messages)
    index_path = os.path.join(gate.data_dir, "depot", "index.db")

    proc = subprocess.Popen([ctl_bin(), "--config", config, "depot", "import", "--batch", "256",
                             mbox], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Killed once some batches are committed, long before the end.
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(index_path):
                db = sqlite3.connect(index_path, timeout=30)
                try:
                    committed = db.execute("SELECT count(*) FROM message").fetchone()[0]
                except sqlite3.OperationalError:
                    committed = 0
                finally:
                    db.close()
            if committed >= 512:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the import ended before it could be killed"
        assert committed >= 512
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    before = len(archived(gate))
    assert 0 < before < len(messages)

    done = ok(ctl(config, "--json", "depot", "import", "--batch", "256", mbox))
    result = json.loads(done.stdout)
    rows = archived(gate)
    assert len(rows) == len(messages)
    assert len({source for source, _ in rows}) == len(messages)
    assert result["imported"] == len(messages) - before
    # It went on exactly after the last batch committed (the batch and the
    # progress commit together), reading nothing archived again.
    assert result["already_archived"] == 0
    db = index(gate)
    try:
        assert db.execute("SELECT count(*) FROM blob").fetchone()[0] == len(set(base))
        assert db.execute("SELECT done FROM import_source").fetchall() == [(1,)]
    finally:
        db.close()
    assert "intact" in ok(ctl(config, "depot", "verify")).stdout


def test_progress_bar_on_a_terminal(make_popgate, new_dir):
    gate = make_popgate()
    gate.stop()
    work = new_dir("tty")
    mbox = os.path.join(work, "a.mbox")
    write_mbox(mbox, corpus_raw(("spam-2",), 30))
    master, slave = pty.openpty()
    try:
        done = ctl(gate.config_path, "depot", "import", mbox, stderr=slave)
        os.close(slave)
        slave = -1
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert done.returncode == 0
    assert b"[########################################] 30 messages" in seen
    assert "imported 30, already archived 0, failed 0" in done.stdout


def test_usage_and_refusals(make_popgate, new_dir):
    gate = make_popgate()
    gate.stop()
    config = gate.config_path
    work = new_dir("usage")
    one = os.path.join(work, "one.eml")
    with open(one, "wb") as f:
        f.write(b"Subject: x\n\nbody\n")
    assert ctl(config, "depot", "import").returncode == 2
    assert ctl(config, "depot", "import", "--batch", "0", one).returncode == 2
    assert ctl(config, "depot", "import", "--direction", "sideways", one).returncode == 2
    assert ctl(config, "depot", "import", "--bogus", one).returncode == 2
    done = ctl(config, "depot", "import", os.path.join(work, "missing"))
    assert done.returncode == 1 and "missing" in done.stderr
    done = ctl(config, "depot", "import", "--user", "nobody", one)
    assert done.returncode == 1 and "nobody" in done.stderr
    # Bytes that are no message at all are archived all the same.
    junk = os.path.join(work, "junk")
    with open(junk, "wb") as f:
        f.write(b"\x00\xff\x00 not a message \x01\x02")
    # A file named twice is archived once.
    done = ok(ctl(config, "--json", "depot", "import", junk, one, one))
    result = json.loads(done.stdout)
    assert result["imported"] == 2 and result["already_archived"] == 1
