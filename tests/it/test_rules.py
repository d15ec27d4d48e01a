"""
test_rules.py — the content rules filter in the running daemon (issue 10,
point 2: content rules), with a real Dovecot as the provider and poplib as
the client.

[spam] rules_file names an administrator's rules over the default set. The
daemon reads and checks it (its workers, another user, cannot read it and
open nothing once confined) and hands the text to each worker with its
setup frame. With `rules` on in the default profile: a plain message is
delivered untagged, one that the file's rule and a default rule hit is
tagged, one that a heavy file rule hits is quarantined, and `queue show`
names the rules; workers handed a Bayes database too get both descriptors. `popgatectl filter rules` lists both sets; `filter check`
judges with the file too. A rules file with a bad line stops the start
with the line named; on SIGHUP it is refused and the rules in force stay;
a good new text reaches the workers without a restart.
"""

import json
import os
import signal

import itutil
from mailutil import split_trace
from test_bayes_cli import ctl as bayes_ctl, group
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-rules-1"

RULES = """\
# test rules over the default set
rule IT_WIDGET 4 body /purple\\s+widgets?/i sells widgets
rule IT_HEAVY 12 header Subject /^heavy rule$/ quarantines at once
words IT_WORDS 2 test words
word IT_WORDS 1 gizmo
"""


def message(subject, body, date=True):
    head = f"From: Seller <seller@example.net>\nTo: alice@localhost\nSubject: {subject}\n"
    if date:
        head += "Date: Mon, 2 Sep 2002 10:00:00 +0000\n"
    return (head + f"Message-ID: <{abs(hash(subject))}@it.example>\n\n{body}").encode()


def write_rules(gate, text, name="local.rules"):
    path = os.path.join(gate.dir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


def rules_gate(make_popgate, provider, text):
    gate = make_popgate(provider=provider, start=False)
    path = write_rules(gate, text)
    gate.reconfigure({"spam": {"rules_file": path}})
    gate.start()
    ok(ctl("profile", "set", "default", "rules", "on", config=gate.config_path))
    return gate, path


def sighup(gate, count):
    os.kill(gate.pid, signal.SIGHUP)
    itutil.wait_until(
        lambda: len([line for line in gate.log_lines()
                     if "SIGHUP: configuration" in line]) >= count,
        30, what=f"reload #{count} in the log")


def test_rules_judge_in_the_workers(make_popgate, provider):
    gate, path = rules_gate(make_popgate, provider, RULES)
    config = gate.config_path
    # With a Bayes database too, each worker's setup frame carries two
    # descriptors: the database, then the rules text.
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")
    started = set(gate.worker_pids())
    for side, name in (("--spam", "spam-1"), ("--ham", "easy-ham-1")):
        done = bayes_ctl(config, "bayes", "train", side, *group(name)[:20])
        assert done.returncode == 0, done.stderr
    gate.wait_event("bayes_changed", count=2)
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2 and
                      not started & set(gate.worker_pids()), 30,
                      what="the workers replaced after training")

    # Listed: the default set with the file's rules after it, named by origin.
    listed = json.loads(ok(ctl("--json", "filter", "rules", config=config)))
    by_name = {r["name"]: r for r in listed}
    assert by_name["SUBJ_ALL_CAPS"]["origin"] == "default"
    assert by_name["IT_WIDGET"]["origin"] == path
    assert (by_name["IT_WIDGET"]["score"], by_name["IT_WIDGET"]["target"]) == (4.0, "body")
    assert (by_name["IT_WORDS"]["kind"], by_name["IT_WORDS"]["words"]) == ("words", 1)
    assert "IT_HEAVY" in ok(ctl("filter", "rules", config=config))

    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", message("minutes of the meeting", "See you on Monday.\n"))
    # IT_WIDGET 4 + SUBJ_ALL_CAPS 1.5 + BASE64_TEXT 1.5 + IT_WORDS 1: the
    # body is base64, decoded for the body rules and the word list.
    provider.deliver("alice", (
        "From: Seller <seller@example.net>\nTo: alice@localhost\n"
        "Subject: BUY OUR WIDGETS TODAY\nDate: Mon, 2 Sep 2002 10:00:00 +0000\n"
        "Message-ID: <widget@it.example>\nMIME-Version: 1.0\n"
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
        "T3VyIFB1cnBsZSBXaWRnZXRzIGFuZCBldmVyeSBnaXptbyB5b3UgbmVlZC4K\n").encode())
    provider.deliver("alice", message("heavy rule", "Nothing else.\n"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 2, "quarantine": 1}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)

    mid, = [r[0] for r in gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")]
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=config)))
    rules, = [f for f in shown["verdict"]["filters"] if f["name"] == "rules"]
    assert rules["status"] == "ok" and rules["points"] == 12.0, rules
    assert rules["reason"] == "rules: IT_HEAVY", rules

    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 2
    blocks = {b"minutes" in s: split_trace(s)[0].decode() for s in served}
    plain, widget = blocks[True], blocks[False]
    assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in plain, plain
    assert "rules=0.000 x1.000 (rules: none)" in plain, plain
    assert "X-Popgate-Spam-Status: Yes, action=tag\r\n" in widget, widget
    assert "X-Popgate-Spam-Score: 8.000 " in widget, widget
    assert ("rules=8.000 x1.000 (rules: SUBJ_ALL_CAPS, BASE64_TEXT, IT_WIDGET,\r\n"
            "\tIT_WORDS(1.0))" in widget or
            "rules=8.000 x1.000 (rules: SUBJ_ALL_CAPS, BASE64_TEXT, IT_WIDGET, IT_WORDS(1.0))"
            in widget), widget
    assert gate.events("filter_failed") == [] and gate.events("worker_failed") == []
    assert "setup frame" not in gate.log_text()

    # filter check judges with the file as the workers do.
    sample = os.path.join(gate.dir, "sample.eml")
    with open(sample, "wb") as f:
        f.write(message("sample", "a purple widget\n"))
    checked = json.loads(ok(ctl("--json", "filter", "check", sample, config=config)))
    rules, = [f for f in checked["filters"] if f["name"] == "rules"]
    assert rules["reason"] == "rules: IT_WIDGET", rules
    assert gate.running


def test_broken_rules_file_refuses_to_start(make_popgate, provider):
    gate = make_popgate(provider=provider, start=False)
    path = write_rules(gate, "rule OK 1 body /fine/ fine\nrule BROKEN 1 body /(open/ bad\n")
    gate.reconfigure({"spam": {"rules_file": path}})
    gate.start(wait=False)
    proc = gate.proc
    itutil.wait_until(lambda: proc.poll() is not None, 20, what="popgate refusing to start")
    assert proc.returncode != 0
    gate._reap()
    said = gate.stderr_text() + gate.log_text()
    assert f"rules file refused: {path} line 2: bad pattern" in said, said

    # popgatectl says the same, and still lists (and judges with) the defaults.
    done = ctl("filter", "rules", config=gate.config_path)
    assert done.returncode == 1
    assert f"{path} line 2: bad pattern" in done.stderr, done.stderr
    assert "SUBJ_ALL_CAPS" in done.stdout and "BROKEN" not in done.stdout


def test_sighup_keeps_or_replaces_the_rules(make_popgate, provider):
    gate, path = rules_gate(make_popgate, provider, RULES)
    pid = gate.pid
    itutil.wait_until(lambda: len(gate.worker_pids()) == 2, 20, what="2 workers running")

    # A bad line: the reload is refused, the workers keep the old rules.
    write_rules(gate, "rule IT_NEW 12 body /new/ new\nword NOLIST 1 x\n")
    sighup(gate, 1)
    refused = [line for line in gate.log_lines() if "SIGHUP: configuration refused" in line]
    assert refused and f"{path} line 2: word needs a list" in refused[0], refused
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", message("first", "a purple widget, new\n"))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 1}, timeout=60)
    gate.wait_fetch_done(ACCOUNT)

    # A good new text under the same name: the workers are replaced, and
    # the next message is judged by it without a restart.
    write_rules(gate, "rule IT_NEW 12 body /new/ new\n")
    fetches = len(gate.fetches_done(ACCOUNT))
    sighup(gate, 2)
    assert any("SIGHUP: configuration reloaded" in line for line in gate.log_lines())
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1
    assert "rules: IT_WIDGET" in split_trace(served[0])[0].decode()
    gate.wait_fetch_done(ACCOUNT, fetches + 1)
    provider.deliver("alice", message("second", "a purple widget, new\n"))
    fetches = len(gate.fetches_done(ACCOUNT))
    gate.pickup(ACCOUNT, PASSWORD)      # its QUIT fetches the new message
    gate.wait_fetch_done(ACCOUNT, fetches + 1)
    gate.wait_states({"delivered": 1, "quarantine": 1}, timeout=60)
    mid, = [r[0] for r in gate.db_query("SELECT id FROM message WHERE state = 'quarantine'")]
    shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=gate.config_path)))
    rules, = [f for f in shown["verdict"]["filters"] if f["name"] == "rules"]
    assert rules["reason"] == "rules: IT_NEW", rules
    assert gate.pid == pid and gate.running
