#!/usr/bin/python3
"""
bench/filter.py — the filter chain's speed (issue 10, point 8): messages/s
and messages/s per core through popgate's whole local chain, beside
bogofilter and SpamAssassin on the same messages in the same run.

popgate is measured as a worker runs it: `popgatectl filter bench` judges
every message in one process with the workers' own code (pipeline_judge,
after every filter's init and the Bayes database as a worker gets them) and
the daemon's (sender lists, verdict), and prints its figures. Its profile
turns on every filter `popgatectl filter list` names (so filters added later
are measured without a change here); filters that look like the virus
scanner (a name with "clam" or "virus") are off in the run "clamd excluded"
and on in the run "clamd included", which starts a clamd of its own as the
integration tests do (tests/it/clamdserver.py; only when such a filter
exists) and points the [spam] key with "clam" and "socket" in its name at
it; clamd's CPU time is counted with popgate's. DNS questions go to a local dnsmasq
(tests/it/dnsserver.py) that answers every name at once, as a local
resolver with a warm cache does (NXDOMAIN for any name outside `test.`: the
corpus's domains of 2002 have no records here); every [spam] key ending in
`_zones` is pointed at a zone under `test.`.

Peers, on the same files: bogofilter in batch mode (`bogofilter -b`, one
process reading the file names), trained on the same training set as
popgate's Bayes; SpamAssassin as spamd with one child per core (`-L`, local
tests only, no network) and spamc clients, as many at once as spamd has
children ("the peer tuned for load").

Messages: the SpamAssassin corpus's test split (spam-2, easy-ham-2,
hard-ham-1; default 1000 messages, evenly taken), training on easy-ham-1 +
spam-1 (as bench/accuracy.py). The runs alternate, ROUNDS rounds; in the
first round every message file (and the databases) is evicted from the page
cache before each run (posix_fadvise DONTNEED: cold), later rounds run with
them cached (warm). Per core is messages per CPU second: popgate's from its
own report (its judging loop), bogofilter's its process's CPU time,
SpamAssassin's spamd's children and master plus the spamc processes.

    bench/filter.py [--messages N] [--rounds R] [--keep]
    make bench-filter
"""

import argparse
import concurrent.futures
import json
import os
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "it"))

import corpus as corpus_mod  # noqa: E402
import itutil  # noqa: E402
from clamdserver import CLAMD as CLAMD_BIN, Clamd  # noqa: E402
from dnsserver import Dnsmasq  # noqa: E402
from popgate import Popgate  # noqa: E402

GOAL = 1000.0  # messages/s per core without clamd (issue 10, point 8)


def log(text):
    print(text, flush=True)


def show(argv):
    """ARGV as a shell command; a long list of files at its end shortened to
    its first one and a count."""
    first = len(argv)
    while first > 1 and os.path.isfile(argv[first - 1]):
        first -= 1
    if len(argv) - first > 3:
        argv = argv[:first] + [argv[first], f"... ({len(argv) - first} files)"]
    return " ".join(shlex.quote(a) for a in argv)


def run(argv, **kwargs):
    """Runs ARGV (printed first), failing loudly on a non-zero exit."""
    log("$ " + show(argv))
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=kwargs.pop("timeout", 1800), **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def evict(paths):
    """Drops PATHS from the page cache (cold runs); no root needed."""
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def tree_cpu(pid):
    """CPU seconds of PID and its live descendants (utime + stime)."""
    tick = os.sysconf("SC_CLK_TCK")
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append((int(entry), fields))
    total, unvisited = 0.0, [pid]
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    except OSError:
        return 0.0
    while unvisited:
        parent = unvisited.pop()
        for child, fields in children.get(parent, []):
            total += (int(fields[11]) + int(fields[12])) / tick
            unvisited.append(child)
    return total


# ---- set-up -------------------------------------------------------------

def pick_messages(data, count, folder):
    """COUNT messages of the test split, evenly taken, written (without an
    mbox From line) into FOLDER; their paths."""
    groups = ["spam-2", "easy-ham-2", "hard-ham-1"]
    files = []
    for group in groups:
        d = os.path.join(data, group)
        files.append(sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".txt")))
    total = sum(len(f) for f in files)
    paths = []
    for group, names in zip(groups, files):
        take = max(1, round(count * len(names) / total))
        step = len(names) / take
        for i in range(take):
            src = names[int(i * step)]
            with open(src, "rb") as f:
                raw = corpus_mod.strip_from_line(f.read())
            dst = os.path.join(folder, f"{group}-{os.path.basename(src)}")
            with open(dst, "wb") as f:
                f.write(raw)
            paths.append(dst)
    return paths[:count] if len(paths) > count else paths


def training_files(data):
    out = {}
    for side, group in (("spam", "spam-1"), ("ham", "easy-ham-1")):
        d = os.path.join(data, group)
        out[side] = sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".txt"))
    return out


class Gate:
    """popgate's configuration, store and popgatectl, in DIRECTORY."""

    def __init__(self, directory, popgate_bin, nameserver):
        self.dir = directory
        os.makedirs(directory)
        self.ctl_bin = os.path.join(os.path.dirname(popgate_bin), "popgatectl")
        config = {
            "server": {
                "data_dir": os.path.join(directory, "data"),
                "log_file": os.path.join(directory, "popgate.log"),
                "log_level": "warn",
                "hostname": "localhost",
                "listen_address": itutil.LOOPBACK,
                "pop3_port": itutil.free_port(),
                "pop3s_port": itutil.free_port(),
                "nameservers": nameserver,
                "dns_trust_anchor": "",
            },
            "pipeline": {"workers": 1},
            "smtp": {"port": 0, "submission_port": 0},
            "web": {"port": 0},
            "spam": {},
        }
        os.environ.setdefault("POPGATE_BIN", popgate_bin)
        self.popgate = Popgate(directory, config)
        self.popgate.write_config()

    @property
    def config_path(self):
        return self.popgate.config_path

    def ctl(self, *args, **kwargs):
        return run([self.ctl_bin, "--config", self.config_path, *args], **kwargs)

    def spam_keys(self):
        """The [spam] keys this popgate knows (config show)."""
        keys, section = [], None
        for line in self.ctl("config", "show").splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "spam" and "=" in line:
                keys.append(line.split("=", 1)[0].strip())
        return keys

    def set_spam(self, values):
        self.popgate.config["spam"].update(values)
        self.popgate.write_config()

    def create_store(self):
        """The daemon's first start makes the store; popgatectl never does."""
        self.popgate.start()
        self.popgate.stop()


def start_spamd(directory, children, site_config=None):
    """spamd on a free loopback port, local tests only, CHILDREN children
    started up front and kept (no restart after N connections); with
    SITE_CONFIG, that folder's files in place of /etc/spamassassin."""
    port = itutil.free_port()
    home = os.path.join(directory, "spamd-home")
    os.makedirs(home, exist_ok=True)
    os.chmod(home, 0o777)
    argv = ["/usr/sbin/spamd", "--listen", f"{itutil.LOOPBACK}:{port}", "--local",
            f"--max-children={children}", f"--min-children={children}",
            f"--min-spare={children}", f"--max-spare={children}",
            "--max-conn-per-child=1000000", "--nouser-config", "--syslog=stderr",
            f"--pidfile={os.path.join(directory, 'spamd.pid')}", f"--helper-home-dir={home}"]
    if site_config is not None:
        argv += [f"--siteconfigpath={site_config}"]
    if os.geteuid() == 0:
        argv += ["--username=nobody"]
    log("$ " + " ".join(argv))
    err = open(os.path.join(directory, "spamd.log"), "wb")
    proc = subprocess.Popen(argv, stdout=err, stderr=err, start_new_session=True)

    def ready():
        if proc.poll() is not None:
            return True
        try:
            socket.create_connection((itutil.LOOPBACK, port), timeout=1).close()
        except OSError:
            return False
        return len(os.listdir("/proc")) > 0 and count_children(proc.pid) >= children

    itutil.wait_until(ready, 180, what="spamd and its children")
    if proc.poll() is not None:
        raise SystemExit("spamd did not start; see " + os.path.join(directory, "spamd.log"))
    return proc, port


def count_children(pid):
    n = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        n += 1
            except OSError:
                pass
    return n


def stop(proc):
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


# ---- the runs -----------------------------------------------------------

def run_popgate(gate, profile, folder, clamd=None):
    """popgate's figures from its own report; with CLAMD, clamd's CPU time
    during the run is added (the scans are work of the chain)."""
    server_cpu = tree_cpu(clamd.proc.pid) if clamd is not None else 0.0
    out = gate.ctl("--json", "filter", "bench", "--profile", profile, folder)
    result = json.loads(out)
    if clamd is not None:
        server_cpu = tree_cpu(clamd.proc.pid) - server_cpu
    return {"messages": result["messages"], "seconds": result["seconds"],
            "cpu": result["cpu_seconds"] + server_cpu, "actions": result["actions"]}


def run_bogofilter(bogo_dir, paths):
    argv = ["bogofilter", "-d", bogo_dir, "-b", "-T"]
    log("$ " + " ".join(argv) + f" < ({len(paths)} file names)")
    cpu, start = children_cpu(), time.monotonic()
    done = subprocess.run(argv, input="\n".join(paths) + "\n", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=1800)
    seconds, cpu = time.monotonic() - start, children_cpu() - cpu
    lines = done.stdout.splitlines()
    if done.returncode not in (0, 1, 2) or len(lines) != len(paths):
        raise SystemExit(f"bogofilter: exit {done.returncode}, {len(lines)} lines: "
                         f"{done.stderr.strip()[-500:]}")
    spam = sum(1 for line in lines if line.split()[-2:-1] == ["S"])
    return {"messages": len(paths), "seconds": seconds, "cpu": cpu,
            "actions": {"spam": spam, "other": len(paths) - spam}}


def run_spamassassin(spamd, port, children, paths):
    argv = ["spamc", "-d", itutil.LOOPBACK, "-p", str(port), "-c", "-x"]
    log("$ " + " ".join(argv) + f" < FILE, {children} at once, for {len(paths)} files")

    def one(path):
        with open(path, "rb") as f:
            done = subprocess.run(argv, stdin=f, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, timeout=300)
        if done.returncode not in (0, 1):
            raise RuntimeError(f"spamc on {path}: exit {done.returncode} {done.stderr[-300:]}")
        return done.returncode == 1

    server_cpu, cpu, start = tree_cpu(spamd.pid), children_cpu(), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(children) as pool:
        verdicts = list(pool.map(one, paths))
    seconds = time.monotonic() - start
    cpu = children_cpu() - cpu + tree_cpu(spamd.pid) - server_cpu
    spam = sum(verdicts)
    return {"messages": len(paths), "seconds": seconds, "cpu": cpu,
            "actions": {"spam": spam, "other": len(paths) - spam}}


def line(name, cache, r):
    rate = r["messages"] / r["seconds"] if r["seconds"] > 0 else 0
    per_core = r["messages"] / r["cpu"] if r["cpu"] > 0 else 0
    log(f"  {name:<34} {cache:<5} {r['messages']:>5} msgs  {r['seconds']:8.3f} s  "
        f"CPU {r['cpu']:8.3f} s  {rate:9.1f} msg/s  {per_core:9.1f} msg/s per core  "
        f"{json.dumps(r['actions'], sort_keys=True)}")
    return rate, per_core


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-spamassassin", action="store_true",
                        help="leave SpamAssassin out (it is by far the slowest)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    popgate_bin = os.environ.get("POPGATE_BIN",
                                 os.path.join(ROOT, "build", "release", "popgate"))
    cores = os.cpu_count() or 1
    top = tempfile.mkdtemp(prefix="popgate-bench-filter-")
    started = []
    try:
        data = corpus_mod.install()
        folder = os.path.join(top, "messages")
        os.makedirs(folder)
        paths = pick_messages(data, args.messages, folder)
        training = training_files(data)
        log(f"{len(paths)} test messages in {folder}; training: {len(training['spam'])} spam, "
            f"{len(training['ham'])} ham; {cores} cores")

        dns = Dnsmasq(os.path.join(top, "dns"), {}, every_name=True)
        os.makedirs(dns.dir)
        dns.start()
        started.append(dns)
        gate = Gate(os.path.join(top, "popgate"), popgate_bin, dns.address)
        zones = {k: f"bl.bench.test" for k in gate.spam_keys() if k.endswith("_zones")}
        if zones:
            gate.set_spam(zones)
        log(f"DNS: dnsmasq at {dns.address} answering every name (test. and NXDOMAIN); "
            f"[spam] {', '.join(f'{k} = {v}' for k, v in zones.items()) or 'no *_zones keys'}")
        gate.create_store()
        gate.ctl("bayes", "train", "--spam", *training["spam"])
        gate.ctl("bayes", "train", "--ham", *training["ham"])
        filters = [f["name"] for f in json.loads(gate.ctl("--json", "filter", "list"))]
        virus = [f for f in filters if "clam" in f or "virus" in f]
        profiles = {"popgate, clamd excluded": ("bench", [f for f in filters if f not in virus],
                                                None)}
        if virus:
            clamd_keys = [k for k in gate.spam_keys() if "clam" in k and "socket" in k]
            clamd = Clamd(os.path.join(top, "clamd"))
            log(f"$ {CLAMD_BIN} -c {clamd.config}")
            clamd.start(timeout=120)
            started.append(clamd)
            if clamd_keys:
                gate.set_spam({clamd_keys[0]: clamd.socket})
            profiles["popgate, clamd included"] = ("bench-clamd", filters, clamd)
        for name, (profile, on, _) in profiles.items():
            gate.ctl("profile", "add", profile)
            pairs = []
            for f in filters:
                if f != "address":  # always on (profile set refuses to turn it off)
                    pairs += [f, "on" if f in on else "off"]
            # Thresholds out of reach: every message goes the whole way.
            gate.ctl("profile", "set", profile, "tag_at", "1000", "quarantine_at", "1000", *pairs)
        log(f"filters: {', '.join(filters)}" +
            ("" if virus else "; no virus filter on this build: clamd runs skipped"))

        bogo_dir = os.path.join(top, "bogofilter")
        os.makedirs(bogo_dir)
        run(["bogofilter", "-d", bogo_dir, "-s", "-B", *training["spam"]])
        run(["bogofilter", "-d", bogo_dir, "-n", "-B", *training["ham"]])

        spamd = None
        if not args.skip_spamassassin:
            spamd, port = start_spamd(os.path.join(top, "spamd"), cores)
            started.append(spamd)

        results = {}
        cache_files = paths + [os.path.join(gate.popgate.config["server"]["data_dir"],
                                            "bayes.db"),
                               os.path.join(bogo_dir, "wordlist.db")]
        for rnd in range(args.rounds):
            cache = "cold" if rnd == 0 else "warm"
            log(f"round {rnd + 1} of {args.rounds} ({cache} page cache)")
            runs = [(name, lambda p=profile, c=server: run_popgate(gate, p, folder, c))
                    for name, (profile, _, server) in profiles.items()]
            runs.append(("bogofilter -b", lambda: run_bogofilter(bogo_dir, paths)))
            if spamd is not None:
                runs.append((f"SpamAssassin spamd ({cores} children)",
                             lambda: run_spamassassin(spamd, port, cores, paths)))
            for name, fn in runs:
                if cache == "cold":
                    evict(cache_files)
                results.setdefault(name, []).append((cache,) + line(name, cache, fn()))

        log("\nsummary (best warm run, or the cold one if there is no warm)")
        for name, rows in results.items():
            warm = [r for r in rows if r[0] == "warm"] or rows
            rate = max(r[1] for r in warm)
            per_core = max(r[2] for r in warm)
            cold = [r for r in rows if r[0] == "cold"]
            cold_text = f", cold {cold[0][2]:.1f} msg/s per core" if cold else ""
            log(f"  {name:<34} {rate:9.1f} msg/s  {per_core:9.1f} msg/s per core{cold_text}")
        best = max(r[2] for r in results["popgate, clamd excluded"])
        log(f"goal: >= {GOAL:.0f} msg/s per core without clamd: "
            f"{'met' if best >= GOAL else 'not met'} ({best:.1f})")
    finally:
        for proc in reversed(started):
            if isinstance(proc, (Dnsmasq, Clamd)):
                proc.stop()
            else:
                stop(proc)
        if args.keep:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
