"""
dnssec_zone.py — a DNSSEC-signed zone for the integration tests: a zone file
made from the records a test gives, signed with ldns-signzone (fresh keys
from ldns-keygen, ECDSA P-256), served authoritatively by NSD on a free
loopback port, in a temp folder. popgate's [server] nameservers points at
it and [server] dns_trust_anchor at trust_anchor_path(), the zone's DS
record: the zone is then the top of the validated tree, as the root is on
the Internet.

The signatures can be spoiled on purpose: broken="anchor" writes a DS that
matches no key of the zone (every answer is bogus); broken="expired" signs
with signatures that expired yesterday; broken="tlsa" changes the TLSA
records' data after signing (only their answer is bogus). signed=False serves the zone
unsigned (no DNSSEC at all; give popgate no trust anchor then).
"""

import os
import subprocess
import time

import itutil

NSD = "/usr/sbin/nsd"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"
ALGORITHM = "ECDSAP256SHA256"


def _run(args, cwd):
    """Runs ARGS in CWD (bounded); its standard output, stripped."""
    done = subprocess.run(args, cwd=cwd, check=True, timeout=60, capture_output=True,
                          text=True)
    return done.stdout.strip()


class SignedZone:
    def __init__(self, directory, origin, records, signed=True, broken=None):
        """ORIGIN ("dane.test"); RECORDS a list of zone file lines relative
        to it ("mx IN A 127.0.0.21"); BROKEN None, "anchor", "expired" or "tlsa"."""
        assert broken in (None, "anchor", "expired", "tlsa")
        self.dir = directory
        self.origin = origin.rstrip(".")
        self.records = records
        self.signed = signed
        self.broken = broken
        self.port = itutil.free_port()
        self.proc = None
        self.ds = None
        os.makedirs(directory, exist_ok=True)
        # popgate drops to its own user: it must read the trust anchor.
        os.chmod(directory, 0o755)

    @property
    def address(self):
        """The IP:PORT for popgate's [server] nameservers."""
        return f"{itutil.LOOPBACK}:{self.port}"

    def trust_anchor_path(self):
        """A file with the zone's DS record, for [server] dns_trust_anchor."""
        assert self.signed
        path = os.path.join(self.dir, "anchor.ds")
        ds = self.ds
        if self.broken == "anchor":
            # The same key tag and algorithm, another digest: no key matches.
            fields = ds.split()
            digest = fields[-1]
            fields[-1] = ("0" if digest[0] != "0" else "1") + digest[1:]
            ds = " ".join(fields)
        with open(path, "w") as f:
            f.write(ds + "\n")
        os.chmod(path, 0o644)
        return path

    def _zone_text(self):
        lines = [f"$ORIGIN {self.origin}.", "$TTL 60",
                 f"@ IN SOA ns.{self.origin}. admin.{self.origin}. 1 3600 600 86400 60",
                 f"@ IN NS ns.{self.origin}.", f"ns IN A {itutil.LOOPBACK}"]
        return "\n".join(lines + list(self.records)) + "\n"

    def _sign(self, zone):
        ksk = _run([LDNS_KEYGEN, "-a", ALGORITHM, "-k", self.origin], self.dir)
        zsk = _run([LDNS_KEYGEN, "-a", ALGORITHM, self.origin], self.dir)
        with open(os.path.join(self.dir, ksk + ".ds")) as f:
            self.ds = f.read().strip()
        args = [LDNS_SIGNZONE]
        if self.broken == "expired":
            # Signatures valid from ten days ago until yesterday.
            now = time.time()
            args += ["-i", time.strftime("%Y%m%d%H%M%S", time.gmtime(now - 10 * 86400)),
                     "-e", time.strftime("%Y%m%d%H%M%S", time.gmtime(now - 86400))]
        _run(args + ["-f", zone + ".signed", zone, ksk, zsk], self.dir)
        if self.broken == "tlsa":
            self._spoil_tlsa(zone + ".signed")
        return zone + ".signed"

    @staticmethod
    def _spoil_tlsa(path):
        """Flips the last digit of each TLSA record's data: its signature no
        longer fits."""
        with open(path) as f:
            lines = f.read().splitlines()
        spoiled = 0
        for i, line in enumerate(lines):
            fields = line.split()
            if len(fields) > 4 and fields[3] == "TLSA":
                last = fields[-1]
                fields[-1] = last[:-1] + ("0" if last[-1] != "0" else "1")
                lines[i] = "\t".join(fields[:4]) + "\t" + " ".join(fields[4:])
                spoiled += 1
        assert spoiled > 0
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _config(self, zone_file):
        d = self.dir
        return "\n".join([
            "server:", f"  ip-address: {itutil.LOOPBACK}", f"  port: {self.port}",
            # Stay the user that started it; no chroot, no database file.
            '  username: ""', '  chroot: ""', f'  zonesdir: "{d}"', '  database: ""',
            f'  pidfile: "{d}/nsd.pid"', f'  xfrdfile: "{d}/xfrd.state"',
            f'  zonelistfile: "{d}/zone.list"', f'  xfrdir: "{d}"',
            f'  logfile: "{d}/nsd.log"', "  server-count: 1", "  verbosity: 1",
            "remote-control:", "  control-enable: no",
            "zone:", f"  name: {self.origin}", f"  zonefile: {zone_file}", ""])

    def start(self, timeout=10.0):
        zone = os.path.join(self.dir, self.origin + ".zone")
        with open(zone, "w") as f:
            f.write(self._zone_text())
        zone_file = self._sign(zone) if self.signed else zone
        conf = os.path.join(self.dir, "nsd.conf")
        with open(conf, "w") as f:
            f.write(self._config(zone_file))
        out = open(os.path.join(self.dir, "nsd.out"), "ab")
        self.proc = subprocess.Popen([NSD, "-d", "-c", conf], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.dir)
        out.close()
        itutil.register_group(self.proc.pid)
        # NSD answers TCP as well as UDP; the TCP port shows it is up.
        itutil.wait_port(self.port, timeout, proc=self.proc, what="nsd")
        return self

    def stop(self):
        if self.proc is None:
            return
        itutil.stop_server(self.proc)
        self.proc = None
