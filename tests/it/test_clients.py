"""
test_clients.py — real mail clients through popgate (issue 2 point 9; SPEC
P8, P9): curl over pop3:// and pop3s://, and fetchmail as a central
collector for several accounts. Messages must arrive byte-identical apart
from popgate's trace header, a 20 MB one included.
"""

import glob
import os
import subprocess

import pytest

import corpus as corpus_mod
import itutil
from mailutil import sha256, split_trace, to_lf

PASSWORDS = {"alice": "alice-pw-7", "bob": "bob-pw-7", "carol": "carol-pw-7"}


# ------------------------------------------------------------------ curl

def curl(gate, scheme, account, password, numbers=(), out_dir=None, timeout=300):
    """One curl run: lists the maildrop without NUMBERS, else retrieves each
    of them into OUT_DIR/<n> — all in one POP3 session (curl reuses it)."""
    port = gate.pop3_port if scheme == "pop3" else gate.pop3s_port
    host = "127.0.0.1" if scheme == "pop3" else "localhost"
    args = ["curl", "-sS", "--max-time", str(timeout), "-u", f"{account}:{password}"]
    if scheme == "pop3s":
        args += ["--cacert", gate.cert_path, "--resolve", f"localhost:{port}:127.0.0.1"]
    if not numbers:
        args.append(f"{scheme}://{host}:{port}/")
    for n in numbers:
        args += [f"{scheme}://{host}:{port}/{n}", "-o", os.path.join(out_dir, str(n))]
    result = subprocess.run(args, capture_output=True, timeout=timeout + 30,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"curl failed: {result.stderr.decode(errors='replace')}"
    return result.stdout


def parse_list(output):
    return [line.split() for line in output.decode().splitlines() if line.strip()]


@pytest.mark.parametrize("scheme", ["pop3", "pop3s"])
def test_curl_two_pickups(scheme, popgate, provider, corpus, new_dir):
    provider.add_user("alice", PASSWORDS["alice"])
    messages = (corpus.odd_messages() + corpus.messages(4, seed=21)
                + [corpus_mod.long_line_message(tag="curl")])
    if scheme == "pop3s":
        messages.append(corpus_mod.big_message(seed=7))
    wires = provider.deliver_many("alice", messages)

    # First pickup: nothing listed; its QUIT starts the fetch.
    assert parse_list(curl(popgate, scheme, "alice@localhost", PASSWORDS["alice"])) == []
    popgate.wait_states({"delivery": len(wires)}, timeout=120)
    # Stored is not yet deleted: the fetch's DELEs and QUIT come after.
    popgate.wait_fetch_done("alice@localhost")
    itutil.wait_value(lambda: provider.count("alice"), 0, 30, what="alice's provider mailbox")

    listing = parse_list(curl(popgate, scheme, "alice@localhost", PASSWORDS["alice"]))
    assert [int(n) for n, _ in listing] == list(range(1, len(wires) + 1))
    out = new_dir("curl")
    curl(popgate, scheme, "alice@localhost", PASSWORDS["alice"],
         numbers=range(1, len(wires) + 1), out_dir=out)
    got = []
    for n, size in listing:
        with open(os.path.join(out, n), "rb") as f:
            served = f.read()
        assert len(served) == int(size), f"message {n}: LIST said {size}, got {len(served)}"
        got.append(sha256(split_trace(served)[1]))
    assert sorted(got) == sorted(sha256(w) for w in wires)
    popgate.wait_states({"delivered": len(wires)}, timeout=30)
    assert parse_list(curl(popgate, scheme, "alice@localhost", PASSWORDS["alice"])) == []


# ------------------------------------------------------------------ fetchmail

# fetchmail 6.4 corrupts lines longer than its 8 KiB buffer (it inserts bytes
# at the boundary, with any server), so its messages keep below that.
FETCHMAIL_MAX_LINE = 8000


def fetchmail_messages(corpus, seed):
    picked = [m for m in corpus.messages(8, seed=seed)
              if max(len(line) for line in m.split(b"\n")) < FETCHMAIL_MAX_LINE]
    return picked[:4]


def write_fetchmailrc(path, gate, variant, out_dirs):
    if variant == "plain":
        poll = f"poll 127.0.0.1 protocol pop3 port {gate.pop3_port} auth password timeout 120\n"
        # No opportunistic STLS: this variant is the plain one.
        tls = "sslproto ''"
    else:
        poll = (f"poll localhost via 127.0.0.1 protocol pop3 port {gate.pop3s_port}"
                f" auth password timeout 120\n")
        tls = f"ssl sslcertck sslcertfile {gate.cert_path} sslcommonname localhost"
    lines = ["set no bouncemail\n", poll]
    for user, password in PASSWORDS.items():
        mda = f"/bin/sh -c 'cat > $(mktemp {out_dirs[user]}/msg.XXXXXX)'"
        # "no rewrite": keep headers as they are; --invisible: no Received line.
        lines.append(f"  user '{user}@localhost' there with password '{password}' is 'x' here"
                     f" {tls} fetchall no rewrite mda \"{mda}\"\n")
    with open(path, "w") as f:
        f.writelines(lines)
    os.chmod(path, 0o600)


def run_fetchmail(rcfile, home):
    env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
    return subprocess.run(["fetchmail", "-N", "-d0", "--invisible", "-f", rcfile],
                          capture_output=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("variant", ["plain", "pop3s"])
def test_fetchmail_central_collector(variant, popgate, provider, corpus, new_dir):
    expected = {}
    for i, (user, password) in enumerate(PASSWORDS.items()):
        provider.add_user(user, password)
        messages = fetchmail_messages(corpus, seed=30 + i)
        provider.deliver_many(user, messages)
        expected[user] = sorted(sha256(to_lf(m)) for m in messages)
    total = sum(len(v) for v in expected.values())

    home = new_dir("fetchmail")
    out_dirs = {user: os.path.join(home, user) for user in PASSWORDS}
    for d in out_dirs.values():
        os.mkdir(d)
    rcfile = os.path.join(home, "fetchmailrc")
    write_fetchmailrc(rcfile, popgate, variant, out_dirs)

    first = run_fetchmail(rcfile, home)
    # 1 = no mail: the first pickup of each account serves nothing.
    assert first.returncode in (0, 1), first.stderr.decode(errors="replace")
    assert all(os.listdir(d) == [] for d in out_dirs.values())
    popgate.wait_states({"delivery": total}, timeout=90)

    second = run_fetchmail(rcfile, home)
    assert second.returncode == 0, second.stderr.decode(errors="replace")
    for user, d in out_dirs.items():
        got = []
        for path in glob.glob(os.path.join(d, "msg.*")):
            with open(path, "rb") as f:
                got.append(sha256(split_trace(f.read())[1]))
        assert sorted(got) == expected[user], f"messages of {user} differ"
    popgate.wait_states({"delivered": total}, timeout=30)
    for user in PASSWORDS:
        itutil.wait_value(lambda: provider.count(user), 0, 30,
                          what=f"{user}'s provider mailbox")
