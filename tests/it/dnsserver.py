"""
dnsserver.py — a real DNS server for the integration tests: dnsmasq on a free
loopback port, in a temp folder, answering only for the records a test gives
it (no upstream, no /etc/hosts): addresses, and MX and TXT records, which
mail domains have (the SMTP relay delivers by MX; SPF, DKIM and DMARC are
TXT). dnsmasq hands out a name's addresses in turn (round robin), as many
real providers' name servers do.
"""

import getpass
import os
import subprocess

import itutil

DNSMASQ = "/usr/sbin/dnsmasq"


class Dnsmasq:
    def __init__(self, directory, records, mx=None, txt=None, every_name=False):
        """RECORDS maps a host name to its IPv4/IPv6 addresses; MX maps a
        domain to its (preference, exchange) pairs; TXT maps a name to its
        TXT records, each a list of strings (one record may hold several).
        EVERY_NAME: answer for every name, not only test. (a name it does not
        know does not exist), as a local resolver answers at once."""
        self.dir = directory
        self.every_name = every_name
        self.port = itutil.free_port()
        self.records = records
        self.mx = mx or {}
        self.txt = txt or {}
        self.proc = None

    @property
    def address(self):
        """The IP:PORT for popgate's [server] nameservers."""
        return f"{itutil.LOOPBACK}:{self.port}"

    def _config(self):
        lines = ["no-resolv", "no-hosts", "bind-interfaces",
                 f"listen-address={itutil.LOOPBACK}", f"port={self.port}",
                 # Stay the user that started it (root in CI, a developer
                 # elsewhere): dnsmasq would switch to nobody otherwise.
                 f"user={getpass.getuser()}", "log-queries",
                 f"log-facility={os.path.join(self.dir, 'dnsmasq.log')}",
                 # Answer for test. as its own name server would: a name it
                 # does not know does not exist (NXDOMAIN), a name without
                 # the type asked has none (NODATA). Without it dnsmasq
                 # refuses both (it has no upstream).
                 "local=/test/"] + (["local=/#/"] if self.every_name else [])
        for name, addresses in self.records.items():
            lines += [f"host-record={name},{address}" for address in addresses]
        for domain, exchanges in self.mx.items():
            lines += [f"mx-host={domain},{exchange},{preference}"
                      for preference, exchange in exchanges]
        for name, records in self.txt.items():
            for strings in records:
                # Quoted, each a string of the record; the tests' strings
                # hold no quote or backslash.
                assert all('"' not in s and "\\" not in s for s in strings)
                lines.append(f"txt-record={name}," + ",".join(f'"{s}"' for s in strings))
        return "\n".join(lines) + "\n"

    def start(self, timeout=10.0):
        conf = os.path.join(self.dir, "dnsmasq.conf")
        with open(conf, "w") as f:
            f.write(self._config())
        out = open(os.path.join(self.dir, "dnsmasq.out"), "ab")
        self.proc = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--pid-file=",
                                      f"--conf-file={conf}"], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.dir)
        out.close()
        itutil.register_group(self.proc.pid)
        # dnsmasq answers TCP as well as UDP; the TCP port shows it is up.
        itutil.wait_port(self.port, timeout, proc=self.proc, what="dnsmasq")
        return self

    def queries(self, name, qtype="a"):
        """How many queries for NAME's records of QTYPE ("a", "aaaa", "mx",
        "txt") dnsmasq has logged."""
        try:
            with open(os.path.join(self.dir, "dnsmasq.log")) as f:
                # The resolver may vary the name's case (DNS 0x20).
                wanted = f"query[{qtype.lower()}] {name.lower()} "
                return sum(1 for line in f if wanted in line.lower())
        except FileNotFoundError:
            return 0

    def stop(self):
        if self.proc is None:
            return
        itutil.stop_server(self.proc)
        self.proc = None

