#!/usr/bin/python3
"""
smtp.py — the SMTP relay benchmark (issue 9, point 9): Postfix's smtp-source
sends N messages of 10 KB over S parallel sessions through a relay into
Postfix's smtp-sink, once through popgate and once through a Postfix
instance, same machine, same run, alternating; printed as messages/s from the
first connection to the last message the sink received, and the ratio.
Both relays keep their queue durable: popgate answers 250 after its group
commit, Postfix after its queue file's fsync. Before that, the memory of idle SMTP
sessions: the RSS and PSS growth per idle session after EHLO, summed over
every process of each relay (Postfix runs an smtpd process per session).

It owns only what it starts, in one temp folder (in $TMPDIR/popgate-bench, see
bench_parent), on free ports of 127.0.0.1:
smtp-sink, a Postfix master with its own configuration and queue (never the
system's Postfix, whose service is not even running), and popgate. All are
stopped at the end, also on an error or Ctrl-C.

Each relay first gets a warm-up run that is not counted (the first run of
either was the slowest: caches, a fresh store, Postfix's processes being
spawned), then --repeat counted runs, alternating. Printed per relay: the
median, the lowest and highest figures and their spread; per pair of runs
(Postfix then popgate, one right after the other): the ratio, whose lowest
value says whether the goal held in every pair, not just in the medians. Each
run's line carries the load average before it: other work on the machine
shows up there.

Run with `make bench`, or directly (as root: Postfix's master drops to the
postfix user itself):
    POPGATE_BIN=build/release/popgate bench/smtp.py [--messages N] [--sessions S]
"""

import argparse
import fcntl
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "it"))

import itutil  # noqa: E402
from popgate import Popgate, popgate_bin  # noqa: E402
from run import memory_kb  # noqa: E402  (bench/run.py: a process tree's RSS and PSS)

LOOPBACK = "127.0.0.1"
POSTFIX_MASTER = "/usr/lib/postfix/sbin/master"
POSTFIX_QUEUE_DIRS = ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                      "incoming", "private", "saved", "trace")


# ext4's "top of a directory hierarchy" flag (chattr +T) and its ioctls.
FS_IOC_GETFLAGS = 0x80086601
FS_IOC_SETFLAGS = 0x40086602
FS_TOPDIR_FL = 0x00020000


def bench_parent():
    """The folder each run's temp folder is made in: popgate-bench in the
    system's temp folder, marked as the top of a directory hierarchy where the
    file system has that (ext4: chattr +T). ext4 then places each run's folder,
    and with it both relays' queues, in block groups with many free inodes,
    away from the files other programs (and the previous run) deleted in the
    last minutes: ext4 without a journal looks at each of those on every file
    creation, which cost 160-270 us per file in /tmp on the machine of
    bench/README.md and 7 us in a fresh group. Both relays are measured in the
    same folder, so this is no help to either: it keeps the machine's recent
    history out of the figures."""
    parent = os.path.join(tempfile.gettempdir(), "popgate-bench")
    os.makedirs(parent, exist_ok=True)
    os.chmod(parent, 0o755)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, b"\0" * 8)[:4])[0]
        if not flags & FS_TOPDIR_FL:
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("i", flags | FS_TOPDIR_FL) + b"\0" * 4)
    except OSError:
        pass  # another file system: nothing to place
    finally:
        os.close(fd)
    return parent


def say(text):
    print(text, flush=True)


def wait_listening(port, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} does not listen on {LOOPBACK}:{port}")


class Sink:
    """Postfix's smtp-sink: accepts everything, counts messages (-c)."""

    def __init__(self, directory):
        self.port = itutil.free_port()
        self.out_path = os.path.join(directory, "sink.out")
        self.proc = None

    def start(self):
        out = open(self.out_path, "wb")
        # 1000: the listen backlog; -u: the user it runs as when started as root.
        cmd = ["smtp-sink", "-c", f"{LOOPBACK}:{self.port}", "1000"]
        if os.geteuid() == 0:
            cmd[1:1] = ["-u", "postfix"]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        out.close()
        wait_listening(self.port, 10, "smtp-sink")

    def delivered(self):
        """Messages received so far (the counter smtp-sink -c prints)."""
        with open(self.out_path, "rb") as f:
            counts = re.findall(rb"mesg=(\d+)", f.read())
        return int(counts[-1]) if counts else 0

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class PostfixRelay:
    """A Postfix instance of its own: configuration, queue and log in DIRECTORY,
    smtpd on a free port, every message relayed to the sink. Tuned for load as
    an administrator would: enough processes and sessions for the run."""

    def __init__(self, directory, sink_port, sessions):
        self.dir = directory
        self.port = itutil.free_port()
        self.conf = os.path.join(directory, "conf")
        self.queue = os.path.join(directory, "queue")
        self.data = os.path.join(directory, "data")
        self.log = os.path.join(directory, "maillog")
        self.proc = None
        os.makedirs(self.conf)
        master = open("/etc/postfix/master.cf").read()
        master = re.sub(r"(?m)^smtp\s+inet\s.*$",
                        f"{LOOPBACK}:{self.port} inet n - n - - smtpd", master)
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(master)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("\n".join([
                "compatibility_level = 3.6",
                f"queue_directory = {self.queue}",
                f"data_directory = {self.data}",
                "command_directory = /usr/sbin",
                "daemon_directory = /usr/lib/postfix/sbin",
                "meta_directory = /etc/postfix",
                "shlib_directory = /usr/lib/postfix",
                "mail_owner = postfix",
                "setgid_group = postdrop",
                "myhostname = bench.localhost",
                f"inet_interfaces = {LOOPBACK}",
                "inet_protocols = ipv4",
                "mynetworks = 127.0.0.0/8",
                "mydestination =",
                "alias_maps =",
                "alias_database =",
                "local_recipient_maps =",
                f"relayhost = [{LOOPBACK}]:{sink_port}",
                f"maillog_file = {self.log}",
                f"maillog_file_prefixes = {directory}",
                "smtp_tls_security_level = none",
                "smtpd_recipient_restrictions = permit_mynetworks, reject",
                f"default_process_limit = {max(100, sessions * 2)}",
                "smtpd_client_connection_count_limit = 0",
                "smtpd_client_connection_rate_limit = 0",
                f"default_destination_concurrency_limit = {sessions}",
                f"smtp_destination_concurrency_limit = {sessions}",
                "",
            ]))
        # The queue as `postfix set-permissions` makes it (that command only
        # works on the system's configuration folder).
        os.makedirs(os.path.join(self.queue, "pid"))
        os.makedirs(self.data)
        pw = _postfix_ids()
        for name in POSTFIX_QUEUE_DIRS:
            path = os.path.join(self.queue, name)
            os.makedirs(path)
            os.chown(path, pw["postfix"], -1)
            os.chmod(path, 0o700)
        for name, mode in (("maildrop", 0o730), ("public", 0o710)):
            path = os.path.join(self.queue, name)
            os.makedirs(path)
            os.chown(path, pw["postfix"], pw["postdrop"])
            os.chmod(path, mode)
        os.chown(self.data, pw["postfix"], -1)
        os.chmod(self.data, 0o700)

    def start(self):
        # -d: stay in the foreground, a child this script can stop.
        self.proc = subprocess.Popen([POSTFIX_MASTER, "-c", self.conf, "-d"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_listening(self.port, 20, "postfix")
        except RuntimeError:
            tail = open(self.log).read()[-2000:] if os.path.exists(self.log) else "(no log)"
            raise RuntimeError(f"postfix did not start; its log:\n{tail}") from None

    @property
    def root_pid(self):
        """The master: smtpd, qmgr, smtp … are the processes below it."""
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _postfix_ids():
    import grp
    import pwd
    return {"postfix": pwd.getpwnam("postfix").pw_uid, "postdrop": grp.getgrnam("postdrop").gr_gid}


class PopgateRelay:
    """popgate with its SMTP server on a free port, the default Local Networks
    (loopback) and one transport rule sending every domain to the sink."""

    def __init__(self, directory, sink_port, sessions):
        self.dir = directory
        self.port = itutil.free_port()
        config = {
            "server": {
                "data_dir": os.path.join(directory, "data"),
                "log_file": os.path.join(directory, "popgate.log"),
                "log_level": "info",
                "hostname": "localhost",
                "user": "root" if os.geteuid() == 0 else None,
                "listen_address": LOOPBACK,
                # DNS on loopback only: nothing here needs an answer
                # (providers in /etc/hosts, the relay's host an IP literal).
                "nameservers": f"{LOOPBACK}:{itutil.free_port()}",
                "pop3_port": itutil.free_port(),
                "pop3s_port": itutil.free_port(),
            },
            "smtp": {"port": self.port, "submission_port": itutil.free_port(),
                     # One load generator on one address: the per-client
                     # limit meant for single PCs is raised, as for a gateway.
                     "max_sessions": 10000, "max_sessions_per_client": 10000},
            "web": {"port": 0},
            # Tuned for load like the Postfix peer: as many connections to the
            # one destination as Postfix may open to it.
            "relay": {"max_connections": sessions, "max_per_destination": sessions,
                      "messages_per_connection": 1000},
        }
        self.pg = Popgate(directory, config, name="popgate")
        self.sink_port = sink_port

    def start(self):
        self.pg.start()
        ctl = os.path.join(os.path.dirname(popgate_bin()), "popgatectl")
        subprocess.run([ctl, "--config", self.pg.config_path, "transport", "add", "--domain",
                        "*", f"{LOOPBACK}:{self.sink_port}", "--tls", "none"],
                       check=True, capture_output=True)
        wait_listening(self.port, 20, "popgate's SMTP server")

    @property
    def root_pid(self):
        """The daemon: its spawner and workers are the processes below it."""
        return self.pg.pid

    def stop(self):
        self.pg.close()


def run_load(relay, sink, messages, sessions, size, timeout):
    """smtp-source through RELAY; seconds until SINK counted every message."""
    before = sink.delivered()
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", "bench@sender.example", "-t", "rcpt@dest.example",
           f"{LOOPBACK}:{relay.port}"]
    start = time.monotonic()
    subprocess.run(cmd, check=True, timeout=timeout, stdin=subprocess.DEVNULL)
    accepted = time.monotonic() - start
    deadline = start + timeout
    while sink.delivered() - before < messages:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sink.delivered() - before} of {messages} messages "
                               f"reached the sink in {timeout} s")
        time.sleep(0.02)
    return accepted, time.monotonic() - start, " ".join(cmd)


def idle_memory(relay, count):
    """(RSS, PSS) growth per idle SMTP session (connected, EHLO answered), in
    kB, over every process of the relay."""
    time.sleep(1)
    _, *before = memory_kb(relay.root_pid)
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((LOOPBACK, relay.port), timeout=10)
            s.recv(512)
            s.sendall(b"EHLO bench.example\r\n")
            socks.append(s)
        for s in socks:
            data = b""
            for _ in range(20):
                data += s.recv(4096)
                if re.search(rb"(?m)^250 ", data):
                    break
        time.sleep(1)
        _, *after = memory_kb(relay.root_pid)
    finally:
        for s in socks:
            s.close()
    return (after[0] - before[0]) / count, (after[1] - before[1]) / count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=5000, help="messages per run (5000)")
    p.add_argument("--sessions", type=int, default=50, help="parallel SMTP sessions (50)")
    p.add_argument("--size", type=int, default=10240, help="message size in bytes (10240)")
    p.add_argument("--repeat", type=int, default=5, help="counted alternating runs per relay (5)")
    p.add_argument("--warmup", type=int, default=1,
                   help="uncounted runs per relay before them (1)")
    p.add_argument("--idle", type=int, default=200, help="idle sessions for memory (200)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    p.add_argument("--keep", action="store_true", help="keep the temp folder")
    a = p.parse_args(argv)
    if shutil.which("smtp-source") is None or not os.path.exists(POSTFIX_MASTER):
        sys.exit("smtp.py needs Postfix (smtp-source, smtp-sink, master): make deps-test")
    if os.geteuid() != 0:
        sys.exit("smtp.py runs Postfix's master, which must start as root")
    top = tempfile.mkdtemp(prefix="popgate-bench-smtp-", dir=bench_parent())
    # Postfix's processes run as the postfix user and must reach their queue.
    os.chmod(top, 0o755)
    started = []
    try:
        sink = Sink(top)
        sink.start()
        started.append(sink)
        postfix = PostfixRelay(os.path.join(top, "postfix"), sink.port, a.sessions)
        postfix.start()
        started.append(postfix)
        os.makedirs(os.path.join(top, "popgate"))
        popgate = PopgateRelay(os.path.join(top, "popgate"), sink.port, a.sessions)
        popgate.start()
        started.append(popgate)
        # Memory first, on fresh servers: a heap that has served a load keeps
        # freed memory that idle sessions would reuse unseen. Postfix runs a
        # process per session, within its process limit of twice the sessions.
        pg_rss, pg_pss = idle_memory(popgate, a.idle)
        pf_rss, pf_pss = idle_memory(postfix, min(a.idle, a.sessions))
        say(f"idle SMTP session (growth per session after EHLO): popgate {pg_rss:.1f} kB RSS "
            f"({pg_pss:.1f} kB PSS), postfix {pf_rss:.1f} kB RSS ({pf_pss:.1f} kB PSS)")
        say(f"relay: {a.messages} messages of {a.size} bytes, {a.sessions} sessions, "
            f"{a.warmup} warm-up and {a.repeat} counted alternating runs each")
        rates = {"popgate": [], "postfix": []}
        for i in range(a.warmup + a.repeat):
            counted = i >= a.warmup
            label = f"run {i - a.warmup + 1}" if counted else "warm-up"
            for name, relay in (("postfix", postfix), ("popgate", popgate)):
                load = os.getloadavg()[0]
                accepted, total, cmd = run_load(relay, sink, a.messages, a.sessions, a.size,
                                                a.timeout)
                if counted:
                    rates[name].append(a.messages / total)
                say(f"  {label:7s} {name:8s} {a.messages / total:8.0f} msg/s end to end "
                    f"({a.messages / accepted:.0f} msg/s accepted), load {load:.1f}   $ {cmd}")
        for name in ("postfix", "popgate"):
            r = rates[name]
            med = statistics.median(r)
            say(f"relay {name:8s} median {med:.0f} msg/s, lowest {min(r):.0f}, highest "
                f"{max(r):.0f}, spread {(max(r) - min(r)) / med:.0%} of the median")
        pairs = [pg / pf for pg, pf in zip(rates["popgate"], rates["postfix"])]
        say("relay ratio per pair: " + " ".join(f"x{x:.2f}" for x in pairs) +
            f" (lowest x{min(pairs):.2f})")
        pg = statistics.median(rates["popgate"])
        pf = statistics.median(rates["postfix"])
        say(f"relay median: popgate {pg:.0f} msg/s, postfix {pf:.0f} msg/s, "
            f"ratio x{pg / pf:.2f}")
    finally:
        for thing in reversed(started):
            try:
                thing.stop()
            except Exception as e:  # keep stopping the others
                say(f"stopping {type(thing).__name__}: {e}")
        if a.keep:
            say(f"kept {top}")
        else:
            shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
