#!/usr/bin/python3
"""
bench/ciss.py — challenge-response's numbers (issue 12, point 7): the spam of
the public SpamAssassin corpus (spam-1 + spam-2, tests/it/corpus.py)
replayed as mail from unknown senders through the real daemon, counting how
many challenges would go out, how many the G4 rules suppress, and why.

The run is popgate's own path, nothing simulated: the messages lie at a real
Dovecot (the provider) in one user's mailbox; a POP3 pickup's QUIT starts
the fetch; the workers find the header facts, the main process decides
(ciss/policy.c) and records the decision in the verdict (a "ciss" line of
message.verdict_reasons); a challenge leaves through the relay (a transport
rule for every domain) to an SMTP sink (aiosmtpd) and is counted there.
The user's profile is the default one (trace, address, senders) plus spf,
dkim and challenge; CISS applies to the pseudo-domain. The caps per hour
are lifted (100000): they limit a rate, not a kind of mail, and would only
cut this replay at the first 20 challenges. The period is the default one
(7 days).

A corpus message without a Return-Path gets one from its mbox "From "
line, the envelope sender its MDA saw (as a provider's MDA writes it).

Two runs, because the G4 rule on authentication (a challenge goes only to a
sender whose From domain SPF or DKIM positively vouches for) depends on DNS
the corpus's domains of 2002 no longer have:
  no-dns   a resolver that knows no name (every name NXDOMAIN): what
           popgate does today with these messages;
  spf-pass every envelope sender's domain publishes "v=spf1 +all": the
           most the rules can let through, so the header rules and the
           alignment of the envelope domain with From are what decides.

    bench/ciss.py [--limit N] [--keep]
    make bench-ciss
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "it"))

import corpus as corpus_mod  # noqa: E402
import itutil  # noqa: E402
import tlsca  # noqa: E402
from conftest import base_config, dovecot_section  # noqa: E402
from dnsserver import Dnsmasq  # noqa: E402
from mailutil import to_lf  # noqa: E402
from popgate import Popgate, merge_config  # noqa: E402
from provider import Dovecot  # noqa: E402
from test_relay_delivery import Sink  # noqa: E402

LOGIN = "alice@example.net"
ACCOUNT = LOGIN + "@localhost"
PASSWORD = "bench-ciss-secret-1"
PSEUDO_DOMAIN = "pop3proxy.reddoxx"
GROUPS = ("spam-1", "spam-2")
DOMAIN = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")
WAIT = 1800


def log(text):
    print(text, flush=True)


def ctl(gate, *args, stdin=""):
    popgatectl = os.path.join(os.path.dirname(os.environ["POPGATE_BIN"]), "popgatectl")
    done = subprocess.run([popgatectl, "--config", gate.config_path, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"popgatectl {' '.join(args)}: {done.stderr}")
    return done.stdout


def replayed(raw):
    """A corpus file as its provider's MDA stored it (LF form): a Return-Path
    from the mbox From_ line when the message has none."""
    first, _, rest = raw.partition(b"\n")
    message = rest if first.startswith(b"From ") else raw
    head = message.split(b"\n\n", 1)[0]
    if first.startswith(b"From ") and not re.search(rb"(?im)^return-path:", head):
        envelope = first.split()[1].decode("latin-1")
        message = f"Return-Path: <{envelope}>\n".encode() + message
    return to_lf(message)


def envelope_domain(message):
    found = re.search(rb"(?im)^return-path:[ \t]*<?([^>\s]*)>?", message)
    if not found or b"@" not in found.group(1):
        return None
    domain = found.group(1).rsplit(b"@", 1)[1].decode("latin-1").lower().rstrip(".")
    return domain if DOMAIN.match(domain) and len(domain) < 200 else None


def reason_kind(line):
    """The decision of a "ciss" verdict line, without its addresses and numbers."""
    if line.startswith("challenged:"):
        return "challenged (a challenge sent)"
    if line.startswith("held with the open challenge"):
        return "held with the sender's open challenge (no second challenge)"
    if "was challenged within the last" in line:
        return "no challenge: the sender was challenged within the period"
    return re.sub(r"\d+", "N", line)


def run(mode, messages, root, keep):
    directory = tempfile.mkdtemp(prefix=f"{mode}-", dir=root)
    os.chmod(directory, 0o755)
    for sub in ("ca", "dovecot"):
        os.makedirs(os.path.join(directory, sub), mode=0o755)
        os.chmod(os.path.join(directory, sub), 0o755)
    ca = tlsca.make_ca(os.path.join(directory, "ca"))
    txt = {}
    if mode == "spf-pass":
        txt = {d: [["v=spf1 +all"]] for d in {envelope_domain(m) for m in messages} if d}
    dns = Dnsmasq(directory, {}, txt=txt, every_name=True).start()
    sink_port = itutil.free_port()
    sink = Sink(itutil.LOOPBACK, sink_port).start()
    provider = Dovecot(os.path.join(directory, "dovecot"), ca)
    provider.start()
    config = merge_config(base_config(directory, {
        "provider localhost": dovecot_section(provider, ca)}), {
        "server": {"nameservers": dns.address, "log_level": "info"},
        "relay": {"allow_private": "yes", "retry_min": 3600, "retry_max": 3600},
        "web": {"port": itutil.free_port(), "base_url": "https://localhost:8443"},
    })
    gate = Popgate(directory, config)
    try:
        gate.start()
        ctl(gate, "ciss", "set", "domains", PSEUDO_DOMAIN)
        ctl(gate, "ciss", "set", "cap-hour", "100000")
        ctl(gate, "ciss", "set", "cap-user-hour", "100000")
        ctl(gate, "profile", "set", "default", "challenge", "yes", "spf", "on", "dkim", "on")
        ctl(gate, "transport", "add", "--domain", "*", f"127.0.0.1:{sink_port}")
        provider.add_user(LOGIN, PASSWORD)
        gate.first_login_fetched(ACCOUNT, PASSWORD)
        provider.deliver_many(LOGIN, messages)
        started = time.monotonic()
        fetches = len(gate.fetches_done(ACCOUNT))
        # Each pickup's QUIT starts a fetch; a fetch may leave messages for
        # the next one.
        deadline = time.monotonic() + WAIT
        while provider.count(LOGIN) > 0 and time.monotonic() < deadline:
            gate.pickup(ACCOUNT, PASSWORD, timeout=120)
            fetches += 1
            gate.wait_fetch_done(ACCOUNT, fetches, timeout=WAIT)
        itutil.wait_until(lambda: gate.db_query(
            "SELECT count(*) FROM message WHERE account_id IS NOT NULL"
            " AND state != 'processing'")[0][0] >= len(messages), WAIT,
            interval=1.0, what="every message judged")
        seconds = time.monotonic() - started
        challenges = gate.db_query("SELECT count(*) FROM ciss_challenge")[0][0]
        itutil.wait_until(lambda: len(sink.messages) >= challenges, 300, interval=0.5,
                          what=f"{challenges} challenges at the sink")
        states = collections.Counter(state for state, in gate.db_query(
            "SELECT state FROM message WHERE account_id IS NOT NULL"))
        kinds = collections.Counter()
        for reasons, in gate.db_query("SELECT verdict_reasons FROM message"
                                      " WHERE account_id IS NOT NULL"):
            lines = [line.split("\t", 3)[3] for line in (reasons or "").splitlines()
                     if line.startswith("ciss\t")]
            kinds[reason_kind(lines[-1]) if lines else "no CISS decision"] += 1
        null_senders = sum(1 for m in sink.messages if m["from"] == "<>")
        return {"mode": mode, "messages": len(messages), "seconds": seconds,
                "challenges": challenges, "at_sink": len(sink.messages),
                "null_sender": null_senders, "states": dict(states), "kinds": kinds,
                "domains_with_spf": len(txt)}
    finally:
        gate.close()
        provider.stop()
        sink.stop()
        dns.stop()
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)


def report(result):
    n = result["messages"]
    log(f"\n== {result['mode']}: {n} spam messages"
        + (f", {result['domains_with_spf']} envelope domains given 'v=spf1 +all'"
           if result["mode"] == "spf-pass" else "") + f" ({result['seconds']:.1f} s)")
    log(f"challenges sent: {result['challenges']} ({100.0 * result['challenges'] / n:.1f} %),"
        f" {result['at_sink']} arrived at the sink, {result['null_sender']} from the null"
        " sender")
    log(f"states: {', '.join(f'{k} {v}' for k, v in sorted(result['states'].items()))}")
    for kind, count in result["kinds"].most_common():
        log(f"  {count:5d}  {100.0 * count / n:5.1f} %  {kind}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0,
                        help="replay only the first N messages (0: all)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders")
    args = parser.parse_args()
    if "POPGATE_BIN" not in os.environ:
        sys.exit("POPGATE_BIN must name the popgate binary (make bench-ciss sets it)")
    corpus = corpus_mod.Corpus(corpus_mod.install())
    paths = [p for g in GROUPS for p in corpus.files(g)]
    if args.limit:
        paths = paths[:args.limit]
    messages = []
    for path in paths:
        with open(path, "rb") as f:
            messages.append(replayed(f.read()))
    root = tempfile.mkdtemp(prefix="popgate-bench-ciss-")
    os.chmod(root, 0o755)
    log(f"bench/ciss.py: {len(messages)} messages of {' + '.join(GROUPS)}; popgate "
        f"{os.environ['POPGATE_BIN']}")
    log("reproduce: make bench-ciss   (or: POPGATE_BIN=build/release/popgate "
        "bench/ciss.py" + (f" --limit {args.limit}" if args.limit else "") + ")")
    try:
        for mode in ("no-dns", "spf-pass"):
            report(run(mode, messages, root, args.keep))
    finally:
        if args.keep:
            log(f"kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
        itutil.kill_registered_groups()


if __name__ == "__main__":
    main()
