#!/usr/bin/python3
"""
bench/depot.py — MailDepot's speed (issue 11, point 6): ingest rate
(messages/s, MB/s, compression and dedup ratios) and search latency
(p50/p99 per kind of query) on the public SpamAssassin corpus replicated to
N messages (default 10^6), beside a plain baseline on the same data in the
same run.

Data: the corpus's 6,046 messages (tests/it/corpus.py, via npm), copied in
a fixed shuffled order until there are N; every copy gets headers of its
own so that no two are alike — a Received line on top, a Date (the N
messages spread evenly over ten years, 2016-2025, in order), a Message-ID,
and two made-up words in front of the Subject (one of 100, one of 10,000)
— while bodies stay as they are. They are written as mbox files of
--per-file messages (mboxrd quoting) in a temp folder, removed at the end
unless --keep.

popgate: `popgatectl depot import` of every mbox file into a fresh data
folder (wall and CPU time), then `popgatectl --json depot stats`.
Baseline: `zstd -3 -T0` over the mbox files (the bytes), and an SQLite FTS5
index built by bench/depot_fts.py with Python's email package (the fields
and text), worker processes as many as cores.

Searches: KINDS below, --queries per kind, values drawn from the corpus
(the sender or a recipient of a random message, so frequent ones come up
as often as they would, a rare and a common body word, …), newest first,
at most --limit results. Each query is timed on each side, the sides in
turn: popgate as an administrator sees it (`popgatectl --json depot search
…`, process start included) and in-process (bench/depot_query.c: the
library's depot_search on an open depot, as the daemon would call it), and
the baseline in-process (Python's sqlite3 on its index). Cold: before each
query the page cache is dropped (echo 3 > /proc/sys/vm/drop_caches, root
only; otherwise the script says so and skips the cold round) and the depot
or index is opened anew; --cold-queries per kind. Warm: both indexes read
into the page cache first, the depot and index kept open. Every search is
given up after --query-timeout seconds (depot_query interrupts SQLite,
popgatectl is killed, the baseline's SQLite is interrupted) and counted as
given up; then its p99 is a lower bound (printed ">=").

    bench/depot.py [--messages N] [--queries Q] [--keep] [--dir D]
    bench/depot.py --reuse FOLDER   # only the searches, on a folder kept by --keep
    make bench-depot
"""

import argparse
import email.utils
import json
import os
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "it"))
sys.path.insert(0, HERE)

import corpus as corpus_mod  # noqa: E402
import depot_fts  # noqa: E402
import itutil  # noqa: E402
from mailutil import to_lf  # noqa: E402
from popgate import Popgate  # noqa: E402

INGEST_GOAL = 2000.0   # messages/s (issue 11, point 6)
P99_GOAL = 0.050       # seconds, at 10^6 messages
FIRST_DATE = 1451606400  # 2016-01-01 00:00 UTC
LAST_DATE = 1767225600   # 2026-01-01 00:00 UTC
SEED = 11
USER = "benchuser"


def log(text=""):
    print(text, flush=True)


def show(argv):
    """ARGV as a shell command; a long list of files at its end shortened."""
    first = len(argv)
    while first > 1 and os.path.isfile(argv[first - 1]):
        first -= 1
    if len(argv) - first > 3:
        argv = argv[:first] + [argv[first], f"... ({len(argv) - first} files)"]
    return " ".join(shlex.quote(str(a)) for a in argv)


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv, quiet=False, timeout=7200, **kwargs):
    """Runs ARGV (printed first unless QUIET), failing loudly; its stdout."""
    if not quiet:
        log("$ " + show(argv))
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, **kwargs)
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return done.stdout


def timed(argv, **kwargs):
    """Runs ARGV; (stdout, wall seconds, CPU seconds of it and its children)."""
    cpu, start = children_cpu(), time.monotonic()
    out = run(argv, **kwargs)
    return out, time.monotonic() - start, children_cpu() - cpu


def folder_bytes(path):
    """The bytes of the files under PATH (or of the file PATH)."""
    if os.path.isfile(path):
        return os.path.getsize(path)
    total = 0
    for top, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(top, name)).st_size
            except OSError:
                pass
    return total


# ---- the data -------------------------------------------------------------

def made_up_words(count, rng):
    """COUNT distinct pronounceable words no corpus message has (they carry
    an "x" and a "q" where English has none)."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    words = set()
    while len(words) < count:
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(3))
        words.add(word[:2] + "x" + word[2:] + "q")
    return sorted(words)


class Source:
    """One corpus message split where its copies differ: its header fields
    without Message-ID and Date, the Subject field's place, the body."""

    def __init__(self, raw):
        head, sep, body = raw.partition(b"\n\n")
        self.body = sep + body if sep else b"\n"
        fields = []
        for line in head.split(b"\n"):
            if fields and line[:1] in (b" ", b"\t"):
                fields[-1] += b"\n" + line
            else:
                fields.append(line)
        keep = [f for f in fields if not re.match(rb"(?i)(message-id|date):", f)]
        self.subject_at = next((i for i, f in enumerate(keep)
                                if re.match(rb"(?i)subject:", f)), None)
        self.fields = keep
        self.raw = raw

    def copy(self, number, copy_no, date, words):
        """The message NUMBER (the COPY_NO-th copy of this one), dated DATE,
        WORDS put in front of its subject."""
        fields = list(self.fields)
        tag = b" ".join(w.encode() for w in words)
        if self.subject_at is None:
            fields.append(b"Subject: " + tag)
        else:
            name, _, value = fields[self.subject_at].partition(b":")
            fields[self.subject_at] = name + b": " + tag + b" " + value.lstrip(b" ")
        stamp = email.utils.formatdate(date, usegmt=True).encode()
        received = (b"Received: from relay%d.bench.example (relay%d.bench.example "
                    b"[10.0.%d.%d])\n\tby mx.popgate-bench.example with ESMTP id %08X;\n\t%s"
                    % (number % 7, number % 7, number % 251, number % 241,
                       (number * 2654435761) & 0xFFFFFFFF, stamp))
        ident = b"Message-ID: <%d.%d.%08x@popgate-bench.example>" % (
            number, copy_no, (number * 40503) & 0xFFFFFFFF)
        return b"\n".join([received] + fields + [b"Date: " + stamp, ident]) + self.body


def mbox_quote(raw):
    """mboxrd: a line of the message starting with ">*From " gets one more ">"."""
    return re.sub(rb"(?m)^(>*From )", rb">\1", raw)


def copy_plan(source_count):
    """The order the corpus messages are copied in, and the 100 common and
    10,000 rare words put in front of the subjects (the same every run)."""
    rng = random.Random(SEED)
    order = list(range(source_count))
    rng.shuffle(order)
    return order, made_up_words(100, rng), made_up_words(10000, rng)


def generate(sources, count, per_file, folder):
    """Writes COUNT messages made from SOURCES into mbox files of PER_FILE in
    FOLDER; their paths and the messages' raw bytes (without mbox framing)."""
    order, common, rare = copy_plan(len(sources))
    paths, raw_bytes, out = [], 0, None
    for number in range(count):
        if number % per_file == 0:
            if out is not None:
                out.close()
            paths.append(os.path.join(folder, "%04d.mbox" % (number // per_file)))
            out = open(paths[-1], "wb")
        copy_no, slot = divmod(number, len(sources))
        source = sources[order[slot]]
        date = FIRST_DATE + (LAST_DATE - FIRST_DATE) * number // count
        words = (common[(number * 7919) % 100], rare[(number * 104729 + 17) % 10000])
        message = source.copy(number, copy_no, date, words)
        raw_bytes += len(message)
        out.write(b"From bench@popgate-bench.example " +
                  time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(date)).encode() + b"\n")
        out.write(mbox_quote(message))
        out.write(b"\n")
    if out is not None:
        out.close()
    return paths, raw_bytes


# ---- the queries ----------------------------------------------------------

WORD = re.compile(r"[^\W\d_]{4,20}")

KINDS = ["sender", "recipient", "subject", "text-rare", "text-common", "date-range",
         "attachment", "user", "combined"]


class Picker:
    """Query values drawn from the corpus as the copies carry them."""

    def __init__(self, fields, common_tags):
        self.fields = fields
        self.common_tags = common_tags
        df = {}
        for f in fields:
            for w in set(WORD.findall(f["body"].lower())):
                df[w] = df.get(w, 0) + 1
        n = len(fields)
        self.rare_words = sorted(w for w, c in df.items() if c == 1 and w.isascii())
        self.common_words = sorted(w for w, c in df.items() if 0.2 * n <= c <= 0.6 * n
                                   and w.isascii())
        self.attachments = sorted({a for f in fields for a in f["attachments"]
                                   if a and a.isascii() and len(a) < 100})
        counts = {}
        for f in fields:
            for r in f["recipients"]:
                counts[r] = counts.get(r, 0) + 1
        # The user owns three addresses of middling frequency (1-3 % of the
        # corpus each): a user's mail is a small part of the archive.
        middling = sorted(a for a, c in counts.items() if 0.005 * n <= c <= 0.03 * n)
        self.user_addresses = middling[:3]

    def one(self, kind, rng):
        f = self.fields[rng.randrange(len(self.fields))]
        if kind == "sender":
            return {"sender": f["sender"] or "nobody@example.org"}
        if kind == "recipient":
            return {"recipient": rng.choice(f["recipients"] or ["nobody@example.org"])}
        if kind == "subject":
            words = WORD.findall(f["subject"].lower())
            return {"subject": [rng.choice(words)] if words else [rng.choice(self.common_tags)]}
        if kind == "text-rare":
            return {"text": [rng.choice(self.rare_words)]}
        if kind == "text-common":
            return {"text": [rng.choice(self.common_words)]}
        if kind == "date-range":
            start = rng.randrange(FIRST_DATE, LAST_DATE - 7 * 86400)
            return {"since": start, "until": start + 7 * 86400 - 1}
        if kind == "attachment":
            return {"attachment": rng.choice(self.attachments)}
        if kind == "user":
            return {"user": USER, "text": [rng.choice(self.common_words)]}
        if kind == "combined":
            start = rng.randrange(FIRST_DATE, LAST_DATE - 2 * 365 * 86400)
            words = WORD.findall(f["body"].lower()) or self.common_words
            return {"sender": f["sender"] or "nobody@example.org", "text": [rng.choice(words)],
                    "since": start, "until": start + 2 * 365 * 86400 - 1}
        raise ValueError(kind)

    def queries(self, kind, count):
        rng = random.Random(f"{SEED}-{kind}")
        return [self.one(kind, rng) for _ in range(count)]


def describe(q):
    parts = []
    for key, value in q.items():
        parts.append(f"{key}={','.join(value) if isinstance(value, list) else value}")
    return " ".join(parts)


# ---- the baseline ---------------------------------------------------------

class Baseline:
    """zstd over the mbox files and bench/depot_fts.py's index."""

    def __init__(self, folder):
        self.folder = folder
        self.index = os.path.join(folder, "index.db")
        self.db = None

    def ingest(self, paths, jobs):
        zst = os.path.join(self.folder, "zst")
        os.makedirs(zst)
        _, zstd_wall, zstd_cpu = timed(["zstd", "-3", "-T0", "-q", "-k", "--output-dir-flat",
                                        zst] + paths)
        zstd_bytes = folder_bytes(zst)
        out, wall, cpu = timed([sys.executable, os.path.join(HERE, "depot_fts.py"), "build",
                                "--index", self.index, "--jobs", str(jobs)] + paths)
        report = json.loads(out)
        return {"zstd_seconds": zstd_wall, "zstd_cpu": zstd_cpu, "zstd_bytes": zstd_bytes,
                "fts_seconds": wall, "fts_cpu": cpu, "index_bytes": report["index_bytes"],
                "messages": report["messages"]}

    def open(self, user_addresses):
        self.close()
        self.db = depot_fts.sqlite3.connect(f"file:{self.index}?mode=ro", uri=True)
        self.user_addresses = user_addresses

    def close(self):
        if self.db is not None:
            self.db.close()
            self.db = None

    def search(self, q, limit, timeout):
        """(seconds, results) of Q, or (seconds, -1) when it was given up
        after TIMEOUT seconds."""
        q = dict(q)
        if "user" in q:
            q.pop("user")
            q["user_addresses"] = self.user_addresses
        sql, params = depot_fts.query(q, limit)
        start = time.perf_counter()
        deadline = start + timeout
        self.db.set_progress_handler(lambda: time.perf_counter() > deadline, 1000)
        try:
            rows = self.db.execute(sql, params).fetchall()
        except depot_fts.sqlite3.OperationalError:
            if time.perf_counter() <= deadline:
                raise
            return time.perf_counter() - start, -1
        finally:
            self.db.set_progress_handler(None, 0)
        return time.perf_counter() - start, len(rows)


# ---- popgate ----------------------------------------------------------------

class Gate:
    """popgate's configuration, store and depot in FOLDER; popgatectl and the
    in-process probe (bench/depot_query.c) on them."""

    def __init__(self, folder, popgate_bin):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        build = os.path.dirname(popgate_bin)
        self.ctl_bin = os.path.join(build, "popgatectl")
        self.query_bin = os.path.join(build, "bench", "depot_query")
        self.data = os.path.join(folder, "data")
        self.depot = os.path.join(self.data, "depot")
        config = {
            "server": {"data_dir": self.data, "log_file": os.path.join(folder, "popgate.log"),
                       "log_level": "warn", "hostname": "localhost",
                       "listen_address": itutil.LOOPBACK, "pop3_port": itutil.free_port(),
                       "pop3s_port": itutil.free_port(), "dns_trust_anchor": ""},
            "smtp": {"port": 0, "submission_port": 0},
        }
        os.environ.setdefault("POPGATE_BIN", popgate_bin)
        self.popgate = Popgate(folder, config)
        self.popgate.write_config()
        self.probe = None

    def ctl_argv(self, *args):
        return [self.ctl_bin, "--config", self.popgate.config_path, *args]

    def ctl(self, *args, quiet=False):
        return run(self.ctl_argv(*args), quiet=quiet)

    def create(self, user, addresses):
        """The daemon's first start makes the store (popgatectl never does);
        then the bench's user and its addresses."""
        self.popgate.start()
        self.popgate.stop()
        self.ctl("user", "add", user)
        for address in addresses:
            self.ctl("address", "add", address, user)

    def ingest(self, paths):
        _, wall, cpu = timed(self.ctl_argv("depot", "import", *paths))
        stats = json.loads(self.ctl("--json", "depot", "stats"))
        return {"seconds": wall, "cpu": cpu, "stats": stats,
                "index_bytes": sum(folder_bytes(os.path.join(self.depot, n)) for n in
                                   ("index.db", "index.db-wal")),
                "packs_bytes": folder_bytes(os.path.join(self.depot, "packs"))}

    @staticmethod
    def search_args(q, limit):
        argv = []
        for key in ("sender", "recipient", "attachment", "user"):
            if key in q:
                argv += ["--" + key, q[key]]
        for key in ("subject", "text"):
            if key in q:
                argv += ["--" + key, " ".join(q[key])]
        for key in ("since", "until"):
            if key in q:
                argv += ["--" + key, str(q[key])]
        return argv + ["--limit", str(limit)]

    def search_cli(self, q, limit, timeout):
        """popgatectl's search as an administrator runs it: (seconds, hits),
        or (seconds, -1) when it was killed after TIMEOUT seconds."""
        argv = self.ctl_argv("--json", "depot", "search", *self.search_args(q, limit))
        start = time.perf_counter()
        try:
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return time.perf_counter() - start, -1
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"$ {show(argv)}\nexited {done.returncode}: {done.stderr[-1000:]}")
        return seconds, len(json.loads(done.stdout))

    def probe_start(self):
        argv = [self.query_bin, self.depot]
        log("$ " + show(argv) + "   (one JSON request a line on stdin)")
        self.probe = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True)

    def probe_request(self, request):
        start = time.perf_counter()
        self.probe.stdin.write(json.dumps(request) + "\n")
        self.probe.stdin.flush()
        line = self.probe.stdout.readline()
        if not line and request.get("timeout") and \
                time.perf_counter() - start >= request["timeout"]:
            # Died while given up at its timeout: say so, count it as given
            # up, and go on with a new probe.
            log(f"    depot_query died (exit {self.probe.wait(60)}) when its search was "
                f"interrupted at the timeout: {json.dumps(request)}; started anew")
            self.probe_start()
            return {"seconds": time.perf_counter() - start, "timed_out": True}
        answer = json.loads(line or '{"error": "probe ended"}')
        if "error" in answer:
            raise SystemExit(f"depot_query {json.dumps(request)}: {answer['error']}")
        return answer

    def search_probe(self, q, limit, user_addresses, cold, timeout):
        if cold:
            self.probe_request({"op": "open"})
        request = {"op": "search", "limit": limit, "timeout": timeout}
        for key in ("sender", "recipient", "attachment", "since", "until"):
            if key in q:
                request[key] = q[key]
        for key in ("subject", "text"):
            if key in q:
                request[key] = " ".join(q[key])
        if "user" in q:
            request["addresses"] = user_addresses
        answer = self.probe_request(request)
        return answer["seconds"], -1 if answer.get("timed_out") else answer["count"]

    def close(self):
        if self.probe is not None:
            self.probe.stdin.close()
            self.probe.wait(60)
            self.probe = None
        self.popgate.close()


# ---- the runs ---------------------------------------------------------------

def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def drop_caches():
    """True when the page cache was dropped (root only)."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def read_through(paths):
    """Reads PATHS once so their pages are cached (the warm round)."""
    for path in paths:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                while f.read(1 << 22):
                    pass


def summary_line(name, times, counts):
    """A side's figures; a query given up at the timeout (count -1) counts
    with the time it had run, so p99 and max are then lower bounds (">=")."""
    if not times:
        return f"    {name:<26} (not run)"
    found = [c for c in counts if c >= 0]
    mean = sum(found) / len(found) if found else 0
    given_up = len(counts) - len(found)
    bound = ">=" if given_up else "  "
    return (f"    {name:<26} p50 {1000 * percentile(times, 50):8.2f} ms   "
            f"p99 {bound}{1000 * percentile(times, 99):8.2f} ms   "
            f"max {bound}{1000 * max(times):8.2f} ms   {mean:8.1f} results on average"
            + (f"   {given_up} of {len(counts)} GIVEN UP at the timeout" if given_up else ""))


def search_round(sides, queries, cold):
    """Times every query of QUERIES (kind: list) on each of SIDES (name: fn(q,
    cold) -> (seconds, results)), the sides in turn (their order rotating);
    {kind: {side: (times, counts)}}."""
    result = {}
    for kind, qs in queries.items():
        per = {name: ([], []) for name in sides}
        names = list(sides)
        for i, q in enumerate(qs):
            for name in names[i % len(names):] + names[:i % len(names)]:
                seconds, count = sides[name](q, cold)
                per[name][0].append(seconds)
                per[name][1].append(count)
        result[kind] = per
        log(f"  {kind} ({len(qs)} queries{', cold' if cold else ''}), e.g. {describe(qs[0])}")
        for name in names:
            log(summary_line(name, *per[name]))
    return result


def ingest_line(name, seconds, cpu, messages, raw_bytes, stored, what):
    log(f"  {name:<24} {seconds:8.1f} s  CPU {cpu:8.1f} s  {messages / seconds:9.0f} msg/s  "
        f"{raw_bytes / 1e6 / seconds:7.1f} MB/s  {stored / 1e6:9.1f} MB {what}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000000)
    parser.add_argument("--per-file", type=int, default=10000, help="messages per mbox file")
    parser.add_argument("--queries", type=int, default=200, help="warm queries per kind")
    parser.add_argument("--cold-queries", type=int, default=20, help="cold queries per kind")
    parser.add_argument("--limit", type=int, default=50, help="results per search at most")
    parser.add_argument("--query-timeout", type=float, default=10.0,
                        help="seconds after which a search is given up (and counted so)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="the baseline indexer's worker processes")
    parser.add_argument("--dir", default=None, help="where the temp folder goes ($TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    parser.add_argument("--reuse", metavar="FOLDER",
                        help="run only the searches, on a folder an earlier run kept (--keep)")
    args = parser.parse_args()
    popgate_bin = os.path.abspath(os.environ.get(
        "POPGATE_BIN", os.path.join(ROOT, "build", "release", "popgate")))
    log("command: " + " ".join(shlex.quote(a) for a in
                               [f"POPGATE_BIN={popgate_bin}", sys.executable] + sys.argv))
    log(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    top = args.reuse or tempfile.mkdtemp(prefix="popgate-bench-depot-", dir=args.dir)
    gate = None
    try:
        data = corpus_mod.install()
        corpus = corpus_mod.Corpus(data)
        sources = [Source(to_lf(corpus_mod.strip_from_line(open(p, "rb").read())))
                   for g in corpus_mod.GROUPS for p in corpus.files(g)]
        _, common_tags, _ = copy_plan(len(sources))
        gate = Gate(os.path.join(top, "popgate"), popgate_bin)
        baseline = Baseline(os.path.join(top, "baseline"))
        can_drop = drop_caches()
        if args.reuse:
            n = json.loads(gate.ctl("--json", "depot", "stats"))["messages"]
            log(f"reusing {top}: {n} messages archived, baseline index {baseline.index}")
        else:
            n = args.messages
        picker = Picker([depot_fts.extract(s.raw) for s in sources], common_tags)
        log(f"user {USER}: addresses {', '.join(picker.user_addresses)}")
        if not args.reuse:
            rate, both, raw_bytes = ingest(args, sources, top, gate, baseline, picker, can_drop)
        results = search(args, gate, baseline, picker, can_drop)

        log("\n== summary")
        if not args.reuse:
            log(f"  ingest: popgate {rate:.0f} msg/s "
                f"({raw_bytes / 1e6 * rate / n:.1f} MB/s), baseline zstd + FTS5 "
                f"{n / both:.0f} msg/s; goal >= {INGEST_GOAL:.0f} msg/s "
                f"{'met' if rate >= INGEST_GOAL else 'MISSED'}")
        for cache, per_kind in results.items():
            worst = max(percentile(per_kind[k]["popgate in-process"][0], 99) for k in KINDS)
            worst_cli = max(percentile(per_kind[k]["popgatectl depot search"][0], 99)
                            for k in KINDS)
            log(f"  search p99 ({cache}, worst kind): popgate in-process "
                f"{1000 * worst:.1f} ms, popgatectl {1000 * worst_cli:.1f} ms; goal < "
                f"{1000 * P99_GOAL:.0f} ms at 10^6 messages"
                + (f" (this run: {n})" if n != 1000000 else "") + ": "
                + ("met" if worst_cli < P99_GOAL else "in-process met, popgatectl MISSED"
                   if worst < P99_GOAL else "MISSED"))
    finally:
        if gate is not None:
            gate.close()
        if args.keep or args.reuse:
            log(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


def ingest(args, sources, top, gate, baseline, picker, can_drop):
    """Writes the data, archives it with popgate and indexes it with the
    baseline, printing the figures; popgate's messages/s, the baseline's
    seconds and the raw bytes."""
    mbox = os.path.join(top, "mbox")
    os.makedirs(mbox)
    start = time.monotonic()
    paths, raw_bytes = generate(sources, args.messages, args.per_file, mbox)
    n = args.messages
    log(f"data: {n} messages from {len(sources)} corpus messages, "
        f"{raw_bytes / 1e6:.1f} MB raw, {len(paths)} mbox files "
        f"({folder_bytes(mbox) / 1e6:.1f} MB) in {mbox}, written in "
        f"{time.monotonic() - start:.1f} s")
    log("\n== ingest (" + ("page cache dropped before each" if can_drop else
                           "page cache not dropped: not root") + ")")
    gate.create(USER, picker.user_addresses)
    drop_caches()
    p = gate.ingest(paths)
    stats = p["stats"]
    log("  popgatectl depot stats: " + json.dumps(stats, sort_keys=True))
    os.makedirs(baseline.folder)
    drop_caches()
    b = baseline.ingest(paths, args.jobs)
    ingest_line("popgate depot import", p["seconds"], p["cpu"], n, raw_bytes,
                p["packs_bytes"] + p["index_bytes"],
                f"on disk: packs {p['packs_bytes'] / 1e6:.1f} MB (raw/packs "
                f"{raw_bytes / max(1, p['packs_bytes']):.2f}; stats: compression "
                f"{stats['compression_ratio']:.2f}, dedup {stats['dedup_ratio']:.3f}, "
                f"dictionary {stats['dictionary']}), index.db {p['index_bytes'] / 1e6:.1f} MB")
    ingest_line("baseline zstd -3 -T0", b["zstd_seconds"], b["zstd_cpu"], n, raw_bytes,
                b["zstd_bytes"], f"stored, ratio {raw_bytes / b['zstd_bytes']:.2f}")
    ingest_line("baseline FTS5 index", b["fts_seconds"], b["fts_cpu"], n, raw_bytes,
                b["index_bytes"], f"index ({b['messages']} messages, {args.jobs} worker "
                f"processes)")
    both = b["zstd_seconds"] + b["fts_seconds"]
    ingest_line("baseline together", both, b["zstd_cpu"] + b["fts_cpu"], n, raw_bytes,
                b["zstd_bytes"] + b["index_bytes"], "on disk")
    rate = n / p["seconds"]
    log(f"  goal: ingest >= {INGEST_GOAL:.0f} msg/s: popgate {rate:.0f} msg/s "
        f"({n / p['cpu']:.0f} per CPU second), {'met' if rate >= INGEST_GOAL else 'MISSED'}"
        f"; load average now {os.getloadavg()[0]:.2f}")
    return rate, both, raw_bytes


def search(args, gate, baseline, picker, can_drop):
    """Times the queries of every kind on each side, cold and warm, printing
    the figures; {"cold"|"warm": search_round's result}."""
    log("\n== search (newest first, at most %d results; a search is given up after %g s)"
        % (args.limit, args.query_timeout))
    queries = {kind: picker.queries(kind, args.queries) for kind in KINDS}
    gate.probe_start()
    baseline.open(picker.user_addresses)
    log("baseline: Python sqlite3 on " + baseline.index + "; SQL from depot_fts.query, e.g. "
        + depot_fts.query(queries["combined"][0], args.limit)[0])
    log("popgatectl, e.g. $ " + show(gate.ctl_argv(
        "--json", "depot", "search", *Gate.search_args(queries["combined"][0], args.limit))))
    timeout = args.query_timeout

    def reopened(side, cold):
        if cold:
            drop_caches()
        return side()

    sides = {
        "popgatectl depot search": lambda q, cold: reopened(
            lambda: gate.search_cli(q, args.limit, timeout), cold),
        "popgate in-process": lambda q, cold: reopened(
            lambda: gate.search_probe(q, args.limit, picker.user_addresses, cold, timeout),
            cold),
        "baseline FTS5 in-process": lambda q, cold: reopened(
            lambda: (baseline.open(picker.user_addresses) if cold else None,
                     baseline.search(q, args.limit, timeout))[1], cold),
    }
    results = {}
    if can_drop:
        log(f"\ncold: page cache dropped before each query (sync; echo 3 > "
            f"/proc/sys/vm/drop_caches), depot and index opened anew, {args.cold_queries} "
            f"queries per kind")
        results["cold"] = search_round(sides, {k: v[:args.cold_queries]
                                               for k, v in queries.items()}, cold=True)
    else:
        log("\ncold: not measured (the page cache cannot be dropped: not root)")
    log(f"\nwarm: both indexes read into the page cache first (depot and index open), "
        f"{args.queries} queries per kind")
    read_through([os.path.join(gate.depot, "index.db"),
                  os.path.join(gate.depot, "index.db-wal"), baseline.index])
    results["warm"] = search_round(sides, queries, cold=False)
    return results


if __name__ == "__main__":
    main()
