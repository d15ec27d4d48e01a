"""
scripted_provider.py — a small POP3 server (RFC 1939 subset: CAPA, USER, PASS,
STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT; optional implicit TLS)
that misbehaves on demand, for the provider faults a real Dovecot will not
produce: a stall or a cut in the middle of RETR, -ERR on RETR, a LIST size
that lies, a password that is refused, a closed port, a reply dripped a byte
a second, DELE acknowledged but never applied, bodies with bare LF line ends,
one UIDL for two messages (deliver with the same uidl), and listings of
hundreds of thousands of messages made cheaply (deliver_bulk).

It records every command of every session (passwords masked) so tests can
assert that DELE came only after the message was stored, or never. Deletions
take effect at QUIT, as RFC 1939 says; a session that ends without QUIT
deletes nothing.
"""

import socket
import socketserver
import ssl
import threading
import time
from dataclasses import dataclass, field

import itutil
from mailutil import to_lf, wire_from_lf


@dataclass
class Message:
    uidl: str
    wire: bytes
    listed_size: int = None   # what LIST says, if not the wire's length


@dataclass
class Session:
    number: int
    user: str = None
    commands: list = field(default_factory=list)   # command lines, PASS masked
    retrieved: list = field(default_factory=list)  # uidls sent completely
    marked: list = field(default_factory=list)     # uidls DELE'd in the session
    deleted: list = field(default_factory=list)    # uidls removed at QUIT
    quit: bool = False
    started: float = 0.0
    ended: float = None


class _Handler(socketserver.StreamRequestHandler):
    timeout = 120   # a silent peer cannot keep a handler thread forever

    def setup(self):
        server = self.server.owner
        if server.tls_context is not None:
            self.request = server.tls_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self):
        self.server.owner._serve(self)


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass   # a peer that hangs up mid-reply is expected here


class ScriptedProvider:
    """A POP3 provider on 127.0.0.1.

    Faults (set the attributes any time; they apply to the next command):
      fault = None            behave
              "wrong_password" every PASS gets -ERR [AUTH]
              "stall_retr"    RETR sends +OK and half the message, then nothing
              "cut_retr"      RETR sends +OK and half the message, then closes
              "err_retr"      RETR answers -ERR
              "cut_quit"      QUIT after login closes the connection without
                              deleting anything (a crash between popgate's
                              commit and the provider's UPDATE state)
              "ignore_dele"   DELE and QUIT answer +OK but nothing is deleted
              "err_dele"      DELE answers -ERR
              "bare_lf"       RETR sends the message with bare LF line ends
              "drip"          USER is answered one byte a second, never ending
                              the line (a slow-loris provider)
              "drip_retr"     RETR sends its reply one byte a second, never
                              reaching the terminator
      fault_uidls = None      the RETR faults hit every message, else only these
      fault_users = None      the faults hit every user, else only these
      list_sizes = {uidl: n}  LIST (and STAT) announce N octets for UIDL
      on_dele = fn(session, uidl)  called at each DELE before it is answered
    """

    def __init__(self, tls_context=None, port=None):
        self.tls_context = tls_context
        self.port = port or itutil.free_port()
        self.users = {}
        self.mailboxes = {}
        self.fault = None
        self.fault_uidls = None
        self.fault_users = None
        self.list_sizes = {}
        self.on_dele = None
        self.sessions = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._server = None
        self._thread = None
        self._uidl_seq = 0

    # ------------------------------------------------------------ control

    def start(self):
        assert self._server is None
        self._stop.clear()
        self._server = _TCPServer((itutil.LOOPBACK, self.port), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Closes the port (connections are then refused) and wakes stalled replies."""
        if self._server is None:
            return
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._server = None

    close = stop

    # ------------------------------------------------------------ content

    def add_user(self, name, password):
        with self.lock:
            self.users[name] = password
            self.mailboxes.setdefault(name, [])

    def deliver(self, user, message, uidl=None):
        """Adds MESSAGE (LF or CRLF) to USER's mailbox; returns its wire form."""
        wire = wire_from_lf(to_lf(message))
        with self.lock:
            self._uidl_seq += 1
            uidl = uidl or f"scripted-{self._uidl_seq:06d}"
            self.mailboxes[user].append(Message(uidl, wire))
        return wire

    def replace(self, user, uidl, message):
        """Puts MESSAGE in place of USER's message UIDL, under the same UIDL
        (a provider that reuses UIDLs); returns its wire form."""
        wire = wire_from_lf(to_lf(message))
        with self.lock:
            box = self.mailboxes[user]
            index = next(i for i, m in enumerate(box) if m.uidl == uidl)
            box[index] = Message(uidl, wire)
        return wire

    def deliver_bulk(self, user, count, listed_size=None, prefix="bulk"):
        """Adds COUNT small messages at once (one shared body), listed as
        LISTED_SIZE octets if given: a huge listing costs little here."""
        wire = wire_from_lf(b"Subject: bulk\n\nbulk\n")
        with self.lock:
            self.mailboxes[user].extend(Message(f"{prefix}-{i:07d}", wire, listed_size)
                                        for i in range(count))

    def fault_for(self, user):
        """The fault that applies to USER's session now."""
        if self.fault_users is not None and user not in self.fault_users:
            return None
        return self.fault

    def uidls(self, user):
        with self.lock:
            return [m.uidl for m in self.mailboxes[user]]

    def count(self, user):
        with self.lock:
            return len(self.mailboxes[user])

    def commands(self, user=None):
        """All recorded command lines (of USER's sessions), in order."""
        with self.lock:
            return [c for s in self.sessions if user is None or s.user == user
                    for c in s.commands]

    def logged_in_sessions(self, user):
        with self.lock:
            return [s for s in self.sessions if s.user == user and "PASS ***" in s.commands]

    # ------------------------------------------------------------ protocol

    def _serve(self, handler):
        with self.lock:
            session = Session(number=len(self.sessions) + 1, started=time.monotonic())
            self.sessions.append(session)
        try:
            self._dialogue(handler, session)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            session.ended = time.monotonic()

    def _dialogue(self, h, s):
        def send(text):
            h.wfile.write(text if isinstance(text, bytes) else text.encode())
            h.wfile.flush()

        send("+OK scripted POP3 provider ready\r\n")
        user = None
        listing = None     # the messages of this session, fixed at login
        marked = set()     # their indexes (0-based) marked deleted: two
                           # messages may share a UIDL
        while not self._stop.is_set():
            raw = h.rfile.readline(2048)
            if not raw:
                return
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            with self.lock:
                s.commands.append("PASS ***" if verb == "PASS" else line)
            fault_now = self.fault_for(user)
            if verb == "CAPA":
                send("+OK\r\nUSER\r\nUIDL\r\nTOP\r\n.\r\n")
            elif verb == "NOOP":
                send("+OK\r\n")
            elif verb == "QUIT":
                if fault_now == "cut_quit" and listing is not None:
                    return   # gone before the UPDATE state: nothing is deleted
                with self.lock:
                    if listing is not None and fault_now != "ignore_dele":
                        box = self.mailboxes[user]
                        gone = [listing[i] for i in sorted(marked)]
                        gone_ids = {id(m) for m in gone}
                        self.mailboxes[user] = [m for m in box if id(m) not in gone_ids]
                        s.deleted = [m.uidl for m in gone]
                    s.quit = True
                send("+OK bye\r\n")
                return
            elif listing is None:
                if verb == "USER":
                    user = arg
                    if self.fault_for(user) == "drip":
                        self._drip(h)
                        return
                    send("+OK\r\n")
                elif verb == "PASS":
                    with self.lock:
                        good = (user in self.users and self.users[user] == arg
                                and fault_now != "wrong_password")
                        if good:
                            s.user = user
                            listing = list(self.mailboxes[user])
                    send("+OK logged in\r\n" if good else "-ERR [AUTH] invalid login\r\n")
                else:
                    send("-ERR log in first\r\n")
            elif verb == "STAT":
                live = [m for i, m in enumerate(listing) if i not in marked]
                send(f"+OK {len(live)} {sum(self._size(m) for m in live)}\r\n")
            elif verb in ("LIST", "UIDL"):
                def item(i, m):
                    return f"{i} {self._size(m) if verb == 'LIST' else m.uidl}"
                if arg:
                    m = self._pick(listing, marked, arg)
                    send(f"+OK {item(int(arg), m)}\r\n" if m else "-ERR no such message\r\n")
                else:
                    rows = [item(i, m) for i, m in enumerate(listing, 1) if i - 1 not in marked]
                    send("+OK\r\n" + "".join(r + "\r\n" for r in rows) + ".\r\n")
            elif verb in ("RETR", "TOP"):
                num = arg.split(" ")[0] if arg else ""
                m = self._pick(listing, marked, num)
                if m is None:
                    send("-ERR no such message\r\n")
                    continue
                fault = fault_now if (self.fault_uidls is None
                                      or m.uidl in self.fault_uidls) else None
                if verb == "RETR" and fault == "err_retr":
                    send("-ERR message temporarily unavailable\r\n")
                    continue
                body = _dot_stuff(m.wire)
                if verb == "RETR" and fault == "drip_retr":
                    self._drip(h, b"+OK\r\n" + body)
                    return
                if verb == "RETR" and fault == "bare_lf":
                    body = body.replace(b"\r\n", b"\n")
                if verb == "RETR" and fault in ("stall_retr", "cut_retr"):
                    send(b"+OK\r\n" + body[:len(body) // 2])
                    if fault == "cut_retr":
                        h.request.shutdown(socket.SHUT_RDWR)
                        return
                    self._stall(h)
                    return
                if verb == "TOP":
                    parts = arg.split(" ")
                    body = _dot_stuff(_top(m.wire, int(parts[1]) if len(parts) > 1 else 0))
                send(b"+OK\r\n" + body + b".\r\n")
                if verb == "RETR":
                    with self.lock:
                        s.retrieved.append(m.uidl)
            elif verb == "DELE":
                m = self._pick(listing, marked, arg)
                if m is None:
                    send("-ERR no such message\r\n")
                    continue
                if fault_now == "err_dele":
                    send("-ERR cannot delete now\r\n")
                    continue
                if self.on_dele is not None:
                    self.on_dele(s, m.uidl)
                marked.add(int(arg) - 1)
                with self.lock:
                    s.marked.append(m.uidl)
                send("+OK deleted\r\n")
            elif verb == "RSET":
                marked.clear()
                send("+OK\r\n")
            else:
                send("-ERR unknown command\r\n")

    def _size(self, m):
        if m.listed_size is not None:
            return m.listed_size
        return self.list_sizes.get(m.uidl, len(m.wire))

    @staticmethod
    def _pick(listing, marked, arg):
        try:
            i = int(arg)
        except ValueError:
            return None
        if 1 <= i <= len(listing) and i - 1 not in marked:
            return listing[i - 1]
        return None

    def _drip(self, h, data=b"+OK ", interval=1.0):
        """Sends DATA and then dots, a byte every INTERVAL seconds, never a
        line end after DATA, until the peer hangs up or the provider stops
        (at most 120 s)."""
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            h.wfile.write(data[:1])
            h.wfile.flush()
            data = data[1:] or b"."
            if self._stop.wait(interval):
                return

    def _stall(self, h):
        """Sends nothing more until the peer gives up or the provider stops."""
        h.request.settimeout(0.1)
        deadline = time.monotonic() + 120
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                if not h.request.recv(4096):
                    return
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                return


def _dot_stuff(wire):
    out = b"." + wire if wire.startswith(b".") else wire
    return out.replace(b"\r\n.", b"\r\n..")


def _top(wire, n):
    end = wire.find(b"\r\n\r\n")
    if end < 0:
        return wire
    head, body = wire[:end + 4], wire[end + 4:]
    lines = body.split(b"\r\n")[:-1]
    return head + b"".join(line + b"\r\n" for line in lines[:n])
