"""
clamdserver.py — clamd for the tests: Debian's real clamd (package
clamav-daemon) started as an ordinary process in a temp folder, with a
signature database made here (the EICAR test string, as a body signature
that matches it anywhere clamd looks, decoded attachments included), and a
silent fake that accepts connections and never answers (the timeout case).

Both listen on a unix socket in their folder, mode 0666 in a 0755 folder,
so popgate reaches it after dropping root. Every wait is bounded.
"""

import os
import socket
import subprocess
import threading

import itutil

CLAMD = "/usr/sbin/clamd"
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")
SIGNATURE = "Popgate-Test-EICAR"
# clamd names the signatures of a database it did not get from ClamAV so.
VIRUS_NAME = SIGNATURE + ".UNOFFICIAL"


class Clamd:
    """Debian's clamd in DIRECTORY, listening on SOCKET (DIRECTORY/clamd.sock
    unless given), taking streams up to STREAM_MAX_LENGTH (clamd's syntax)."""

    def __init__(self, directory, socket_path=None, stream_max_length="25M"):
        self.dir = directory
        self.socket = socket_path or os.path.join(directory, "clamd.sock")
        self.proc = None
        db = os.path.join(directory, "db")
        os.makedirs(db, exist_ok=True)
        with open(os.path.join(db, "test.ndb"), "w") as f:
            f.write(f"{SIGNATURE}:0:*:{EICAR.hex()}\n")
        self.config = os.path.join(directory, "clamd.conf")
        with open(self.config, "w") as f:
            f.write("Foreground yes\n"
                    f"LocalSocket {self.socket}\n"
                    "LocalSocketMode 666\n"
                    f"DatabaseDirectory {db}\n"
                    f"TemporaryDirectory {directory}\n"
                    f"LogFile {os.path.join(directory, 'clamd.log')}\n"
                    f"StreamMaxLength {stream_max_length}\n"
                    "Bytecode no\n")

    def start(self, timeout=30.0):
        self.proc = subprocess.Popen([CLAMD, "-c", self.config], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True,
                                     cwd=self.dir)
        itutil.register_group(self.proc.pid)

        def ready():
            assert self.proc.poll() is None, f"clamd exited {self.proc.returncode}: " \
                + itutil.tail(os.path.join(self.dir, "clamd.log"))
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(self.socket)
                s.sendall(b"zPING\0")
                return s.recv(16).startswith(b"PONG")

        itutil.wait_until(ready, timeout, interval=0.1, what="clamd to answer PING")
        return self

    def stop(self):
        if self.proc is not None:
            itutil.stop_server(self.proc)
            self.proc = None
        if os.path.exists(self.socket):
            os.unlink(self.socket)


class SilentClamd:
    """Accepts connections on SOCKET and reads them, never answering."""

    def __init__(self, socket_path):
        self.socket = socket_path
        self.accepted = 0
        self.open = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(socket_path)
        os.chmod(socket_path, 0o666)
        self._listener.listen(16)
        self._listener.settimeout(0.2)
        self._stopping = False
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except (socket.timeout, OSError):
                continue
            with self._lock:
                self.accepted += 1
                self.open += 1
            t = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _hold(self, conn):
        conn.settimeout(0.2)
        with conn:
            while not self._stopping:
                try:
                    if not conn.recv(65536):
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
        with self._lock:
            self.open -= 1

    def stop(self):
        self._stopping = True
        for t in self._threads:
            t.join(5)
        self._listener.close()
        if os.path.exists(self.socket):
            os.unlink(self.socket)
