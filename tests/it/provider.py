"""
provider.py — a real Dovecot as the users' mail provider: POP3 (with STLS) and
POP3S on free loopback ports, passwd-file users with plain passwords, Maildir
storage, everything (config, state, sockets, log, mail) in one temp folder.

Messages are written into Maildir/new as LF text; Dovecot sends them with CRLF.
deliver() returns the bytes a POP3 client will see for the message (the "wire
form": CRLF lines, before dot-stuffing), so tests compare against that.

It runs as an ordinary process started by the test, never as the system's
service, and is killed (with its whole process group) at teardown.
"""

import os
import pwd
import signal
import subprocess
import threading
import time

import itutil
from mailutil import to_lf, wire_from_lf

DOVECOT = "/usr/sbin/dovecot"


class Dovecot:
    def __init__(self, directory, ca, pop3_port=None, pop3s_port=None):
        self.dir = directory
        self.ca = ca                      # tlsca.TestCA: its server cert is served
        self.cert = ca.server_cert
        self.key = ca.server_key
        self.pop3_port = pop3_port or itutil.free_port()
        self.pop3s_port = pop3s_port or itutil.free_port()
        self.conf = os.path.join(directory, "dovecot.conf")
        self.passwd = os.path.join(directory, "passwd")
        self.log = os.path.join(directory, "dovecot.log")
        self.users = {}                   # name -> password
        self.proc = None
        # Dovecot never reads mail as root: as root the mail belongs to
        # "nobody" (DIRECTORY must be reachable for it and for Dovecot's
        # unprivileged auth process, which reads the passwd file).
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            self.mail_uid, self.mail_gid = pw.pw_uid, pw.pw_gid
        else:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
        self.mail_root = os.path.join(directory, "mail")
        self._seq = 0
        self._passwd_gen = 0
        self._lock = threading.Lock()
        for sub in ("run", "state", "mail"):
            os.makedirs(os.path.join(directory, sub), exist_ok=True)
            os.chmod(os.path.join(directory, sub), 0o755)
        self._write_passwd()

    # ---------------------------------------------------------------- config

    def _config(self):
        d = self.dir
        lines = [
            f"base_dir = {d}/run",
            f"state_dir = {d}/state",
            f"instance_name = it-{os.path.basename(d)}",
            "listen = 127.0.0.1",
            "protocols = pop3",
            f"log_path = {self.log}",
            f"info_log_path = {self.log}",
            "log_timestamp = \"%Y-%m-%d %H:%M:%S \"",
            "disable_plaintext_auth = no",
            # Tests log in wrongly on purpose; no penalty, no delay.
            "auth_failure_delay = 0",
            # No auth penalty (the growing delay after failed logins from one
            # address): without its anvil socket Dovecot disables it.
            "service anvil {",
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
            "auth_cache_size = 0",
            # %g is the message's GUID (the maildir base name): stable across
            # sessions and restarts, as popgate's UIDL bookkeeping expects.
            "pop3_uidl_format = %g",
            "mail_location = maildir:~/Maildir",
            "ssl = yes",
            f"ssl_cert = <{self.cert}",
            f"ssl_key = <{self.key}",
            "ssl_min_protocol = TLSv1.2",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN {self.passwd}",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = {self.passwd}",
            "}",
            "service pop3-login {",
            "  inet_listener pop3 {",
            "    address = 127.0.0.1",
            f"    port = {self.pop3_port}",
            "  }",
            "  inet_listener pop3s {",
            "    address = 127.0.0.1",
            f"    port = {self.pop3s_port}",
            "    ssl = yes",
            "  }",
        ]
        if os.geteuid() != 0:
            lines.append("  chroot =")
        lines.append("}")
        lines += [f"mail_uid = {self.mail_uid}", f"mail_gid = {self.mail_gid}",
                  f"first_valid_uid = {self.mail_uid}", f"first_valid_gid = {self.mail_gid}"]
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.getuid()).pw_name
            lines += [f"default_login_user = {me}", f"default_internal_user = {me}"]
        return "\n".join(lines) + "\n"

    def _home(self, user):
        return os.path.join(self.mail_root, user)

    def maildir(self, user):
        return os.path.join(self._home(user), "Maildir")

    def _write_passwd(self):
        # Written to a temp file and renamed: Dovecot re-reads a passwd-file
        # when it changes and must never see half of it.
        tmp = self.passwd + ".tmp"
        with open(tmp, "w") as f:
            for name, password in self.users.items():
                # user:password:uid:gid:gecos:home:shell:extra; uid/gid come from mail_uid.
                f.write(f"{name}:{{PLAIN}}{password}::::{self._home(name)}::\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.passwd)
        # Dovecot reloads the file only when its mtime (whole seconds) or size
        # changes; a password changed within the same second to one of the
        # same length would go unnoticed. Each version gets a later second.
        self._passwd_gen += 1
        now = time.time()
        os.utime(self.passwd, (now, now + self._passwd_gen))
        # It also looks at the file at most once per second of its clock: a
        # lookup in the second of the change could still use the old file.
        if self.running:
            time.sleep(1.02 - now % 1.0)

    # ---------------------------------------------------------------- users

    def add_user(self, name, password):
        """Adds (or replaces) a mailbox NAME with PASSWORD."""
        assert ":" not in name and ":" not in password and "\n" not in password
        for path in (self._home(name), self.maildir(name)):
            os.makedirs(path, exist_ok=True)
            os.chown(path, self.mail_uid, self.mail_gid)
        for sub in ("new", "cur", "tmp"):
            path = os.path.join(self.maildir(name), sub)
            os.makedirs(path, exist_ok=True)
            os.chown(path, self.mail_uid, self.mail_gid)
        self.users[name] = password
        self._write_passwd()

    def set_password(self, name, password):
        assert name in self.users
        self.add_user(name, password)

    # ---------------------------------------------------------------- mail

    def deliver(self, user, message):
        """Puts MESSAGE (bytes, LF or CRLF lines) into USER's Maildir/new.

        Returns the wire form: the exact bytes a POP3 client gets by RETR.
        """
        lf = to_lf(message)
        md = self.maildir(user)
        with self._lock:
            self._seq += 1
            seq = self._seq
        base = f"{int(time.time())}.M{seq:06d}P{os.getpid()}.popgate-it"
        tmp = os.path.join(md, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(lf)
            f.flush()
            os.fsync(f.fileno())
        os.chown(tmp, self.mail_uid, self.mail_gid)
        os.rename(tmp, os.path.join(md, "new", base))
        return wire_from_lf(lf)

    def deliver_many(self, user, messages):
        return [self.deliver(user, m) for m in messages]

    def _files(self, user):
        md = self.maildir(user)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(md, sub)
            try:
                out += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
            except FileNotFoundError:
                pass
        return out

    def count(self, user):
        """Messages now in USER's mailbox (files in new/ and cur/)."""
        return len(self._files(user))

    def messages(self, user):
        """The wire forms of the messages now in USER's mailbox."""
        out = []
        for path in self._files(user):
            try:
                with open(path, "rb") as f:
                    out.append(wire_from_lf(f.read()))
            except FileNotFoundError:
                pass   # expunged meanwhile
        return out

    # ---------------------------------------------------------------- process

    def start(self, timeout=20.0):
        assert self.proc is None, "already running"
        with open(self.conf, "w") as f:
            f.write(self._config())
        out = open(os.path.join(self.dir, "dovecot.out"), "ab")
        self.proc = subprocess.Popen([DOVECOT, "-F", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.dir)
        out.close()
        itutil.register_group(self.proc.pid)
        try:
            for port in (self.pop3_port, self.pop3s_port):
                itutil.wait_port(port, timeout, proc=self.proc, what="dovecot")
        except AssertionError as e:
            self.stop()
            raise AssertionError(f"{e}\n--- dovecot log ---\n{self.log_text()[-3000:]}"
                                 f"{itutil.tail(os.path.join(self.dir, 'dovecot.out'))}")
        return self

    def stop(self, timeout=2.0):
        """Stops Dovecot and every process it started; ports are closed after.

        Dovecot gets TIMEOUT seconds to end by SIGTERM; just after its start it
        may wait several seconds for children still starting up, and a test
        provider has nothing to lose, so then its process group is killed.
        """
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                itutil.kill_group(pgid)
                self.proc.wait(5)
        itutil.reap_group(pgid, 2.0)
        itutil.unregister_group(pgid)
        self.proc = None
        # Dovecot refuses to start while its pid file names a live process;
        # the master removes it on exit, but a SIGKILL leaves it behind.
        try:
            os.unlink(os.path.join(self.dir, "run", "master.pid"))
        except FileNotFoundError:
            pass

    def restart(self, cert=None, key=None):
        """Restarts on the same ports, optionally serving another certificate."""
        self.stop()
        if cert:
            self.cert, self.key = cert, key
        return self.start()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # ---------------------------------------------------------------- log

    def log_text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def logins(self, user):
        """Successful POP3 logins of USER so far (from Dovecot's log)."""
        return self.log_text().count(f"pop3-login: Info: Login: user=<{user}>")

    def logouts(self, user):
        """POP3 sessions of USER that have ended after a login."""
        needle = f"pop3({user})"
        return sum(1 for line in self.log_text().splitlines()
                   if needle in line and "Disconnected" in line)

    def failed_logins(self, user):
        return sum(1 for line in self.log_text().splitlines()
                   if f"user=<{user}>" in line and "auth failed" in line)
