"""
test_bayes_cli.py — popgatectl bayes train|score (issue 10, point 2: Bayes),
on real SpamAssassin corpus messages, with no daemon: the commands work on
the token database in the data folder.

Training reads message files, mboxes, maildirs and folders of files; the
database lands in <data_dir>/bayes.db, readable by the workers' user; score
then calls held-out spam spam and held-out ham ham; a terminal gets a
progress bar, a pipe does not; usage errors exit 2, refusals 1.
"""

import json
import os
import pty
import stat
import subprocess

import corpus as corpus_mod
from popgate import popgate_bin

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
TRAIN = 150
HELD = 40


def ctl_bin():
    return os.path.join(os.path.dirname(popgate_bin()), "popgatectl")


def ctl(config, *args, stderr=None):
    argv = [ctl_bin(), "--config", config] + list(args)
    done = subprocess.run(argv, stdout=subprocess.PIPE,
                          stderr=stderr if stderr is not None else subprocess.PIPE,
                          text=True, timeout=300)
    for mark in SANITIZER_MARKS:
        assert mark not in (done.stderr or ""), f"{argv}: {done.stderr}"
    return done


def group(name):
    data = corpus_mod.install()
    folder = os.path.join(data, name)
    return sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".txt"))


def setup_dir(new_dir):
    data_dir = os.path.join(new_dir, "data")
    os.makedirs(data_dir)
    config = os.path.join(new_dir, "popgate.conf")
    with open(config, "w") as f:
        f.write(f"[server]\ndata_dir = {data_dir}\n")
    return config, data_dir


def test_train_then_score(new_dir):
    new_dir = new_dir("bayes")
    config, data_dir = setup_dir(new_dir)
    ham = group("easy-ham-1")
    spam = group("spam-1")

    # Ham as a maildir (cur/ and new/), spam as one mbox and as loose files.
    maildir = os.path.join(new_dir, "Maildir")
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub))
    for i, path in enumerate(ham[:TRAIN]):
        sub = "cur" if i % 2 else "new"
        os.symlink(path, os.path.join(maildir, sub, "%d.host:2,S" % i))
    mbox = os.path.join(new_dir, "spam.mbox")
    with open(mbox, "wb") as out:
        for path in spam[:TRAIN // 2]:
            raw = corpus_mod.strip_from_line(open(path, "rb").read())
            # mboxrd: a body line starting "From " is quoted.
            body = b"\n".join(b">" + line if line.startswith((b"From ", b">From ")) else line
                              for line in raw.rstrip(b"\n").split(b"\n"))
            out.write(b"From spammer@example.org Thu Aug 22 13:17:22 2002\n" + body + b"\n\n")
    loose = os.path.join(new_dir, "loose")
    os.makedirs(loose)
    for path in spam[TRAIN // 2:TRAIN]:
        os.symlink(path, os.path.join(loose, os.path.basename(path)))

    done = ctl(config, "bayes", "train", "--ham", maildir)
    assert done.returncode == 0, done.stderr
    assert f"trained {TRAIN} messages as ham" in done.stdout
    # The progress bar is for terminals only.
    assert "[#" not in done.stderr
    done = ctl(config, "--json", "bayes", "train", "--spam", mbox, loose)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["messages"] == TRAIN
    assert result["spam_messages"] == TRAIN and result["ham_messages"] == TRAIN
    db = os.path.join(data_dir, "bayes.db")
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o644

    held = ham[TRAIN:TRAIN + HELD] + spam[TRAIN:TRAIN + HELD]
    done = ctl(config, "--json", "bayes", "score", *held)
    assert done.returncode == 0, done.stderr
    verdicts = {r["path"]: r for r in json.loads(done.stdout)}
    assert len(verdicts) == 2 * HELD
    ham_right = sum(1 for p in held[:HELD] if verdicts[p]["probability"] < 0.5)
    spam_right = sum(1 for p in held[HELD:] if verdicts[p]["probability"] >= 0.5)
    assert ham_right >= HELD * 9 // 10 and spam_right >= HELD * 8 // 10
    assert not any(verdicts[p]["verdict"] == "spam" for p in held[:HELD])
    # The text form: probability, verdict, path, tokens; never the body.
    done = ctl(config, "bayes", "score", held[-1])
    fields = done.stdout.split(" ", 3)
    assert float(fields[0]) >= 0 and fields[1] in ("spam", "ham") and fields[2] == held[-1]
    assert fields[3].startswith("tokens: ")


def test_progress_bar_on_a_terminal(new_dir):
    config, _ = setup_dir(new_dir("bayes"))
    files = group("easy-ham-1")[:20]
    master, slave = pty.openpty()
    try:
        done = ctl(config, "bayes", "train", "--ham", *files, stderr=slave)
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
    assert b"[########################################] 20/20 files" in seen


def test_usage_and_refusals(new_dir):
    new_dir = new_dir("bayes")
    config, data_dir = setup_dir(new_dir)
    one = group("spam-1")[0]
    assert ctl(config, "bayes", "train", one).returncode == 2
    assert ctl(config, "bayes", "train", "--spam").returncode == 2
    assert ctl(config, "bayes", "train", "--spam", "--bogus", one).returncode == 2
    done = ctl(config, "bayes", "train", "--spam", os.path.join(new_dir, "missing"))
    assert done.returncode == 1 and "missing" in done.stderr
    done = ctl(config, "bayes", "score", one)
    assert done.returncode == 1 and "train it first" in done.stderr
    # A damaged database is refused, not trusted.
    with open(os.path.join(data_dir, "bayes.db"), "wb") as f:
        f.write(b"not a database at all, not at all....")
    done = ctl(config, "bayes", "score", one)
    assert done.returncode == 1 and "not a database" in done.stderr
    assert not os.path.exists(os.path.join(data_dir, "bayes.db.tmp"))
