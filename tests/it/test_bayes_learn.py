"""
test_bayes_learn.py — the Bayes database learns from actions (issue 10,
point 2): releasing a message from quarantine trains ham, `report spam ID`
trains spam, with a real Dovecot as the provider, SpamAssassin corpus
messages and the running daemon.

popgatectl learns each report as it records it, under the database's lock,
and marks the report row with what came of it; a report of the other class
than an earlier one of the same message forgets the earlier one first (the
message is never counted as both); a message whose body is gone is marked
as not learnable, and the command still succeeds. `popgatectl bayes score`
of the message moves towards ham after the release and back towards spam
after the report, and the daemon replaces its workers with ones handed the
new database each time.
"""

import json
import os

import itutil
from test_bayes_cli import ctl as bayes_ctl
from test_bayes_daemon import clearest, train
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-learn-1"


def probability(gate, path):
    done = bayes_ctl(gate.config_path, "--json", "bayes", "score", path)
    assert done.returncode == 0, done.stderr
    verdict, = json.loads(done.stdout)
    return verdict["probability"]


def reports(gate):
    return gate.db_query("SELECT class, origin, learn_result, learnt_at IS NOT NULL"
                         " FROM spam_report ORDER BY seq")


def test_release_and_report_are_learnt(popgate, provider, new_dir):
    config = popgate.config_path
    itutil.wait_until(lambda: len(popgate.worker_pids()) == 2, 20, what="2 workers running")
    train(popgate)
    popgate.wait_event("bayes_changed", count=2)
    ok(ctl("profile", "set", "default", "bayes", "on", config=config))
    spam = clearest(popgate, "spam-2", spam=True)
    path = os.path.join(new_dir("learn"), "spam.eml")
    with open(path, "wb") as f:
        f.write(spam)
    before = probability(popgate, path)

    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", spam)
    popgate.first_login(ACCOUNT, PASSWORD)
    popgate.wait_states({"quarantine": 1}, timeout=60)
    mid, = [r[0] for r in popgate.db_query("SELECT id FROM message WHERE state = 'quarantine'")]

    # Released: learnt as ham at once; the workers get the new database.
    workers = set(popgate.worker_pids())
    out = ok(ctl("queue", "release", mid, config=config))
    assert "reported as ham; Bayes: learnt" in out, out
    assert reports(popgate) == [("ham", "release", "learnt", 1)]
    released = probability(popgate, path)
    assert released < before, (before, released)
    popgate.wait_event("bayes_changed", count=3)
    itutil.wait_until(lambda: len(popgate.worker_pids()) == 2 and
                      not workers & set(popgate.worker_pids()), 30,
                      what="the workers replaced after the release was learnt")

    # Reported as spam: the ham it was learnt as is forgotten, then spam.
    done = ctl("--json", "report", "spam", mid, config=config)
    assert json.loads(ok(done)) == {"id": mid, "reported": "spam", "bayes": "learnt"}
    assert reports(popgate) == [("ham", "release", "reversed", 1),
                                ("spam", "report", "learnt", 1)]
    reported = probability(popgate, path)
    assert reported > released, (released, reported)
    assert reported >= before, (before, reported)
    popgate.wait_event("bayes_changed", count=4)

    # The same again: counted already, the database unchanged.
    out = ok(ctl("report", "spam", mid, config=config))
    assert "(Bayes: counted already)" in out, out
    assert probability(popgate, path) == reported
    assert reports(popgate)[-1][:3] == ("spam", "report",
                                        f"not learnt again: report 2 counts it as spam")

    # A body gone (expired, deleted by hand): not learnable, not a failure.
    data_dir = popgate.config["server"]["data_dir"]
    os.remove(os.path.join(data_dir, "spool", mid[:2], mid))
    out = ok(ctl("report", "ham", mid, config=config))
    assert "(Bayes: not learnable: its body is gone)" in out, out
    cls, origin, result, learnt = reports(popgate)[-1]
    assert (cls, learnt) == ("ham", 1)
    assert result.startswith("not learnable: the body cannot be read"), result
    assert probability(popgate, path) == reported
    # Nothing left to learn.
    assert json.loads(ok(ctl("--json", "bayes", "learn", config=config))) == {
        "learnt": 0, "reversed": 0, "already": 0, "not_learnable": 0}
    assert popgate.running
