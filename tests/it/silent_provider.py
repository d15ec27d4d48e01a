"""
silent_provider.py — a provider that accepts TCP connections on 127.0.0.1 and
never answers, for the tests of what popgate does while a live login check or
a fetch hangs (caps, deadlines, a client that hangs up, a stop meanwhile).
"""

import socket
import threading

import itutil


class SilentProvider:
    """A provider on 127.0.0.1 that accepts connections and never says a
    word: a login check or fetch sent there stays in flight until popgate
    gives up or the test ends. It counts the connections it accepted and
    those popgate closed."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((itutil.LOOPBACK, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.closed = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            thread = threading.Thread(target=self._hold, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _hold(self, conn):
        conn.settimeout(0.2)
        try:
            while not self.stopping.is_set():
                try:
                    data = conn.recv(4096)
                except socket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    with self.lock:
                        self.closed += 1
                    return
        finally:
            conn.close()

    def count(self):
        with self.lock:
            return self.accepted

    def section(self):
        return {"port": self.port, "tls": "none", "allow_private": "yes"}

    def stop(self):
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(5)
