"""
popgate.py — the daemon under test as a process: writes its INI config into a
temp folder, starts POPGATE_BIN --config FILE, waits until both ports accept,
stops it (SIGTERM), kills it (SIGKILL) and restarts it on the same ports and
data folder. Also the test's windows into it: the SQLite store (read-only),
the event log, its worker processes (the children of its spawner), and POP3 clients (poplib) connected to
it in plain, STLS or POP3S mode.

Sanitizer reports (ASan, UBSan, LSan) on the daemon's stderr fail the test at
teardown: a crash test that kills the daemon on purpose still must not show
one from the runs it stopped cleanly.
"""

import os
import poplib
import re
import signal
import socket
import sqlite3
import ssl
import subprocess
import time

import itutil
from mailutil import wire_from_lines

# poplib refuses lines over 2048 bytes by default; test messages carry lines
# of 10,000 characters and more, which a POP3 server may legitimately send.
poplib._MAXLINE = 1 << 22

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer")

LOG_LINE = re.compile(r"^(?P<ts>\S+) (?P<level>\w+) (?P<role>[\w-]+)\[(?P<pid>\d+)\] "
                      r"event=(?P<event>\S+) account=(?P<account>\S+) id=(?P<id>\S+) ?"
                      r"(?P<detail>.*)$")


def popgate_bin():
    path = os.environ.get("POPGATE_BIN")
    if not path:
        raise RuntimeError("POPGATE_BIN is not set (path of the popgate binary under test)")
    return os.path.abspath(path)


def render_config(sections):
    """SECTIONS: {section name: {key: value}} (dicts keep order) → INI text.

    A value of None drops the key; a section mapped to None is dropped.
    """
    out = []
    for name, keys in sections.items():
        if keys is None:
            continue
        out.append(f"[{name}]")
        for key, value in keys.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = "yes" if value else "no"
            out.append(f"{key} = {value}")
        out.append("")
    return "\n".join(out)


def merge_config(base, overrides):
    """A copy of BASE with OVERRIDES applied section by section."""
    merged = {name: (dict(keys) if keys is not None else None) for name, keys in base.items()}
    for name, keys in (overrides or {}).items():
        if keys is None:
            merged[name] = None
        elif merged.get(name) is None:
            merged[name] = dict(keys)
        else:
            merged[name].update(keys)
    return merged


class LogEvent(dict):
    """One parsed event line: ts, level, role, pid, event, account, id, detail, line."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Popgate:
    def __init__(self, directory, config, name="popgate"):
        self.dir = directory
        self.name = name
        self.config = config          # {section: {key: value}}, see render_config
        srv = config["server"]
        self.data_dir = srv["data_dir"]
        self.log_file = srv["log_file"]
        self.pop3_port = int(srv["pop3_port"])
        self.pop3s_port = int(srv["pop3s_port"])
        self.config_path = os.path.join(directory, "popgate.conf")
        self.stderr_path = os.path.join(directory, "popgate.stderr")
        self.proc = None
        self.starts = 0
        self.stray_pids = []          # processes left behind after a SIGKILL
        self.bad_exits = []           # exit codes other than 0 after SIGTERM
        self.write_config()

    # ------------------------------------------------------------ process

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(render_config(self.config))

    def reconfigure(self, overrides):
        """Applies OVERRIDES ({section: {key: value}}) to the config file; takes
        effect at the next start."""
        self.config = merge_config(self.config, overrides)
        self.write_config()

    @property
    def cert_path(self):
        """The certificate popgate serves (made in data_dir/tls on first start)."""
        cert = self.config["server"].get("tls_cert")
        return cert or os.path.join(self.data_dir, "tls", "cert.pem")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=30.0, wait=True):
        """Starts the daemon and, with WAIT, returns once it serves: its POP3
        port has sent a greeting (the ports accept connections earlier, while
        the daemon still opens its store and recovers) and its POP3S port
        accepts."""
        assert not self.running, "popgate is already running"
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        err = open(self.stderr_path, "ab")
        err.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        err.flush()
        # A session of its own: the daemon and its workers form one process
        # group that teardown can always reach, even after a SIGKILL.
        self.proc = subprocess.Popen([popgate_bin(), "--config", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                     cwd=self.dir, env=env, start_new_session=True)
        err.close()
        itutil.register_group(self.proc.pid)
        self.starts += 1
        if not wait:
            return self
        try:
            self._wait_greeting(timeout)
            itutil.wait_port(self.pop3s_port, timeout, proc=self.proc, what=self.name)
        except AssertionError as e:
            self._reap()
            raise AssertionError(f"{e}\n--- {self.name} stderr ---\n{self.stderr_tail()}\n"
                                 f"--- {self.name} log ---\n{self.log_tail()}") from None
        return self

    def _wait_greeting(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} "
                                     "while starting")
            try:
                with socket.create_connection((itutil.LOOPBACK, self.pop3_port),
                                              timeout=2.0) as sock:
                    reader = sock.makefile("rb")
                    line = reader.readline(512)
                    if line.startswith(b"+OK"):
                        # Ends the session and waits until the server has
                        # closed it, so it counts against no session limit.
                        sock.sendall(b"QUIT\r\n")
                        while reader.readline(512):
                            pass
                        return
                    last = line
            except OSError as e:
                last = e
            time.sleep(0.05)
        raise AssertionError(f"{self.name} sent no greeting on port {self.pop3_port} within "
                             f"{timeout}s (last: {last!r})")

    def stop(self, timeout=30.0):
        """SIGTERM and wait; returns the exit status (None if it was not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                self._reap()
                self.bad_exits.append(f"still running {timeout}s after SIGTERM")
                raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM")
        code = self._reap()
        if code != 0:
            self.bad_exits.append(code)
        return code

    def kill(self, group=False):
        """SIGKILL the main process (all of its group with GROUP=True), as a crash.

        Workers must notice their parent's death and exit on their own; any
        still alive after a few seconds are killed and noted in stray_pids.
        """
        if self.proc is None:
            return
        if group:
            itutil.kill_group(self.proc.pid)
        elif self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reap()

    def restart(self, crash=False, timeout=30.0):
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def _reap(self):
        code = self.proc.poll() if self.proc else None
        if self.proc is not None:
            left = itutil.reap_group(self.proc.pid, 5.0)
            self.stray_pids += left
            itutil.unregister_group(self.proc.pid)
        self.proc = None
        return code

    def close(self):
        """Teardown: stops the daemon (SIGKILL if it will not stop)."""
        try:
            self.stop(timeout=20.0)
        except AssertionError:
            pass
        finally:
            if self.proc is not None:
                itutil.kill_group(self.proc.pid)
                self.proc = None

    def spawner_pid(self):
        """The main process's child that starts the workers ("popgate
        --spawner"), or None."""
        if not self.running:
            return None
        for pid in itutil.children(self.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[1:2] == [b"--spawner"]:
                        return pid
            except OSError:
                continue
        return None

    def worker_pids(self):
        """The worker processes: the spawner's children."""
        spawner = self.spawner_pid()
        return itutil.children(spawner) if spawner else []

    def wait_exit(self, timeout=30.0):
        """Waits for the daemon to exit by itself; returns its exit status,
        which is the test's to judge (not counted as a bad exit)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still runs after {timeout}s") from None
        return self._reap()

    # ------------------------------------------------------------ files

    def stderr_text(self):
        try:
            with open(self.stderr_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr_tail(self, limit=4000):
        return itutil.tail(self.stderr_path, limit)

    def sanitizer_reports(self):
        text = self.stderr_text()
        return [m for m in SANITIZER_MARKERS if m in text]

    def log_text(self):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, limit=4000):
        return itutil.tail(self.log_file, limit)

    def log_lines(self):
        return self.log_text().splitlines()

    def events(self, event=None, account=None, level=None):
        """Parsed event lines, optionally only those with EVENT (a name or a
        tuple of names), ACCOUNT and LEVEL."""
        if isinstance(event, str):
            event = (event,)
        out = []
        for line in self.log_lines():
            m = LOG_LINE.match(line)
            if not m:
                continue
            e = LogEvent(m.groupdict(), line=line)
            if event and e["event"] not in event:
                continue
            if account and e["account"] != account:
                continue
            if level and e["level"] != level:
                continue
            out.append(e)
        return out

    def wait_event(self, event, account=None, count=1, timeout=20.0, what=None):
        """Waits until at least COUNT lines of EVENT (for ACCOUNT) were logged."""
        return itutil.wait_until(
            lambda: len(self.events(event, account)) >= count and self.events(event, account),
            timeout, what=what or f"{count} log line(s) event={event} account={account}")

    def fetches_done(self, account):
        """The "fetch ... done:" lines of ACCOUNT: fetches that ended with the
        provider's answer to QUIT (its deletions are committed by then)."""
        return [e for e in self.events("fetch", account) if e.detail.startswith("done:")]

    def wait_fetch_done(self, account, count=1, timeout=60.0):
        """Waits until COUNT fetches of ACCOUNT have ended (see fetches_done);
        returns their lines."""
        return itutil.wait_until(
            lambda: len(self.fetches_done(account)) >= count and self.fetches_done(account),
            timeout, interval=0.1,
            what=f"{count} finished fetch(es) of {account} in {self.log_file}")

    def message_path(self, message_id):
        """The events logged for MESSAGE_ID, in order (its trace through popgate)."""
        return [e.event for e in self.events() if e.id == message_id]

    def wait_message_path(self, message_id, path, timeout=30.0):
        """Waits until the trace of MESSAGE_ID is exactly PATH (a list of events)."""
        return itutil.wait_value(lambda: self.message_path(message_id), list(path), timeout,
                                 what=f"the logged trace of message {message_id}")

    # ------------------------------------------------------------ store

    @property
    def db_path(self):
        return os.path.join(self.data_dir, "popgate.db")

    def db_query(self, sql, params=()):
        """Rows of SQL against the store, opened read-only beside the daemon."""
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10.0)
        try:
            con.execute("PRAGMA busy_timeout = 10000")
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def db_write(self, sql, params=()):
        """Runs SQL that changes the store (to age a record, say), beside the
        daemon; popgate reads the store for every decision, so it sees it."""
        con = sqlite3.connect(self.db_path, timeout=10.0)
        try:
            con.execute("PRAGMA busy_timeout = 10000")
            with con:
                con.execute(sql, params)
        finally:
            con.close()

    def db_states(self, account=None):
        """{state: count} of the message rows (of ACCOUNT's messages if given)."""
        if not os.path.exists(self.db_path):
            return {}
        if account is None:
            rows = self.db_query("SELECT state, count(*) FROM message GROUP BY state")
        else:
            rows = self.db_query(
                "SELECT m.state, count(*) FROM message m JOIN account a ON a.id = m.account_id"
                " WHERE a.name = ? GROUP BY m.state", (account,))
        return {state: n for state, n in rows}

    def wait_states(self, expected, account=None, timeout=30.0):
        """Waits until db_states(ACCOUNT) equals EXPECTED ({state: count})."""
        last = {}

        def check():
            nonlocal last
            last = self.db_states(account)
            return last == expected

        try:
            itutil.wait_until(check, timeout, interval=0.1)
        except AssertionError:
            raise AssertionError(f"message states {last}, expected {expected} after {timeout}s"
                                 f"\n--- log ---\n{self.log_tail()}") from None

    def message_state(self, message_id):
        """The state of message MESSAGE_ID in the store, None if it has no row."""
        rows = self.db_query("SELECT state FROM message WHERE id = ?", (message_id,))
        return rows[0][0] if rows else None

    def wait_message_state(self, message_id, state, timeout=30.0):
        """Waits until message MESSAGE_ID is in STATE (None: until its row is gone)."""
        return itutil.wait_value(lambda: self.message_state(message_id), state, timeout,
                                 interval=0.1, what=f"the state of message {message_id}")

    # ------------------------------------------------------------ clients

    def client_context(self):
        """A TLS client context trusting exactly popgate's own certificate."""
        return ssl.create_default_context(cafile=self.cert_path)

    def connect(self, mode="plain", timeout=30.0):
        """A poplib client connected in MODE: 'plain', 'stls' or 'pop3s'.

        TLS modes connect to "localhost" so the host name is checked against
        the certificate (SAN localhost).
        """
        if mode == "plain":
            return poplib.POP3(itutil.LOOPBACK, self.pop3_port, timeout=timeout)
        if mode == "stls":
            client = poplib.POP3("localhost", self.pop3_port, timeout=timeout)
            client.stls(self.client_context())
            return client
        if mode == "pop3s":
            return poplib.POP3_SSL("localhost", self.pop3s_port, timeout=timeout,
                                   context=self.client_context())
        raise ValueError(f"unknown mode {mode}")

    def login(self, account, password, mode="plain", timeout=30.0):
        client = self.connect(mode, timeout)
        try:
            client.user(account)
            client.pass_(password)
        except Exception:
            _close(client)
            raise
        return client

    def pickup(self, account, password, mode="plain", timeout=60.0):
        """One pickup like a mail client: log in, RETR every message, QUIT.

        Returns the served messages (wire form, trace header included), in order.
        """
        client = self.login(account, password, mode, timeout)
        try:
            count, _ = client.stat()
            served = [wire_from_lines(client.retr(i)[1]) for i in range(1, count + 1)]
            client.quit()
        except Exception:
            _close(client)
            raise
        return served

    def first_login(self, account, password, mode="plain"):
        """The account's first pickup: must serve nothing. QUIT starts a fetch."""
        served = self.pickup(account, password, mode)
        assert served == [], f"first login of {account} served {len(served)} messages"

    def first_login_fetched(self, account, password, mode="plain", timeout=60.0):
        """first_login, then waits until the fetch its QUIT started has ended,
        so that mail delivered to the provider afterwards is left for the
        next fetch (and is not raced by this one)."""
        before = len(self.fetches_done(account))
        self.first_login(account, password, mode)
        self.wait_fetch_done(account, before + 1, timeout)


def _close(client):
    try:
        client.close()
    except Exception:  # noqa: BLE001 - best effort on an already broken session
        pass


def error_text(exc):
    """The server's reply line from a poplib error, as text."""
    arg = exc.args[0] if exc.args else b""
    if isinstance(arg, bytes):
        return arg.decode("utf-8", "replace")
    return str(arg)
