"""
test_bayes_daemon.py — the Bayes filter in the running daemon (issue 10,
point 2: Bayes), with a real Dovecot as the provider and poplib as the
client, on SpamAssassin corpus messages.

The workers run as a user of their own (as root: popgate-worker) that cannot
open the data folder, so they do not open the token database by name: the
daemon opens DATA/bayes.db for each worker it starts and hands it over with
the worker's setup frame. Trained with `popgatectl bayes train` on a few
hundred messages of spam-1 and easy-ham-1 and with bayes on in the default
profile, a clear spam of spam-2 ends in quarantine with the bayes filter's
reason in `queue show`, and a clear ham of easy-ham-2 is delivered with
X-Popgate-Spam-Status: No. Training while popgate runs reaches the workers
started after it.
"""

import json
import os
import tempfile

import corpus as corpus_mod
import itutil
from mailutil import split_trace
from test_bayes_cli import ctl as bayes_ctl, group
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-bayes-1"
TRAIN = 200
CANDIDATES = 30


def train(gate):
    for side, name in (("--spam", "spam-1"), ("--ham", "easy-ham-1")):
        done = bayes_ctl(gate.config_path, "bayes", "train", side, *group(name)[:TRAIN])
        assert done.returncode == 0, done.stderr
    assert os.path.exists(os.path.join(gate.data_dir, "bayes.db"))


def clearest(gate, name, spam):
    """A message of the test split NAME that the trained database calls
    clearly spam (SPAM) or ham, as popgatectl bayes score says offline."""
    paths = group(name)[:CANDIDATES]
    done = bayes_ctl(gate.config_path, "--json", "bayes", "score", *paths)
    assert done.returncode == 0, done.stderr
    for verdict in json.loads(done.stdout):
        p = verdict["probability"]
        if (spam and p >= 0.999) or (not spam and p <= 0.001):
            with open(verdict["path"], "rb") as f:
                return corpus_mod.strip_from_line(f.read())
    raise AssertionError(f"no clear {'spam' if spam else 'ham'} among {CANDIDATES} of {name}")


def worker_uid_differs(gate):
    """As root the workers run as popgate-worker, not the daemon's user."""
    with open(f"/proc/{gate.worker_pids()[0]}/status") as f:
        worker = next(line for line in f if line.startswith("Uid:")).split()[1]
    with open(f"/proc/{gate.pid}/status") as f:
        daemon = next(line for line in f if line.startswith("Uid:")).split()[1]
    return worker != daemon


def judge_spam_and_ham(gate, provider):
    """With bayes on in the default profile, a clear spam of the test split
    is quarantined for the bayes filter's score and a clear ham delivered."""
    config = gate.config_path
    ok(ctl("profile", "set", "default", "bayes", "on", config=config))
    spam = clearest(gate, "spam-2", spam=True)
    ham = clearest(gate, "easy-ham-2", spam=False)
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", spam)
    provider.deliver("alice", ham)
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1, "quarantine": 1}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)

    mid, = [r[0] for r in gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")]
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
    assert shown["verdict"]["action"] == "quarantine"
    bayes, = [f for f in shown["verdict"]["filters"] if f["name"] == "bayes"]
    assert bayes["status"] == "ok", bayes
    assert bayes["reason"].startswith("bayes: "), bayes
    assert float(bayes["reason"].split()[1].rstrip(",")) >= 0.99, bayes
    assert bayes["points"] >= 10.0, bayes
    # filter check judges with the same database, offline.
    with tempfile.NamedTemporaryFile(suffix=".eml") as f:
        f.write(spam)
        f.flush()
        checked = json.loads(ok(ctl("--json", "filter", "check", f.name, config=config)))
    offline, = [f for f in checked["filters"] if f["name"] == "bayes"]
    assert offline["status"] == "ok", offline
    assert offline["points"] >= 10.0, offline
    assert checked["action"] == "quarantine", checked

    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1
    block = split_trace(served[0])[0].decode()
    assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in block, block
    assert gate.events("filter_failed") == []
    assert gate.running


def test_bayes_judges_in_the_workers(popgate, provider):
    """Trained, then started: the workers, another user, judge with the
    database the daemon handed them."""
    train(popgate)
    popgate.restart()
    itutil.wait_until(lambda: len(popgate.worker_pids()) == 2, 20, what="2 workers running")
    if os.geteuid() == 0:
        assert worker_uid_differs(popgate)
    judge_spam_and_ham(popgate, provider)


def test_training_reaches_running_workers(popgate, provider):
    """Trained while popgate runs: popgatectl's notice has the daemon
    replace the workers, which had no database, by ones handed the new
    one; no restart needed."""
    itutil.wait_until(lambda: len(popgate.worker_pids()) == 2, 20, what="2 workers running")
    started = set(popgate.worker_pids())
    train(popgate)
    popgate.wait_event("bayes_changed", count=2)
    itutil.wait_until(lambda: len(popgate.worker_pids()) == 2 and
                      not started & set(popgate.worker_pids()), 30,
                      what="the workers replaced after training")
    judge_spam_and_ham(popgate, provider)
    # Replaced once per training (spam, then ham), never again: the later
    # checks find the workers on the current file.
    assert len(popgate.events("bayes_changed")) == 2
