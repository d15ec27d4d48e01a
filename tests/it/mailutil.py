"""
mailutil.py — the forms a test message takes and how tests compare them.

  LF form    what the tests store at the provider (Maildir holds LF lines)
  wire form  what a POP3 client receives by RETR after dot-unstuffing: the
             same lines ending in CRLF
  served     the wire form with popgate's trace header block in front

popgate must serve a message byte-identical to the provider's wire form
except for one added block at the top, whose first line starts with
TRACE_PREFIX (continuation lines begin with a space or a tab).
"""

import hashlib

TRACE_PREFIX = b"Received: from localhost by localhost (popgate)"
# The verdict lines after it (pipeline/verdict.h).
SPAM_PREFIX = b"X-Popgate-Spam-"


def to_lf(message):
    """MESSAGE with LF line ends only, ending in LF.

    A lone CR (there are a few in the corpus) is dropped: POP3 clients such
    as poplib treat it as a line end of their own, so it could never come
    back byte-identical through any server.
    """
    lf = message.replace(b"\r\n", b"\n").replace(b"\r", b"")
    if not lf.endswith(b"\n"):
        lf += b"\n"
    return lf


def wire_from_lf(lf):
    return lf.replace(b"\n", b"\r\n")


def wire_from_lines(lines):
    """Joins the lines poplib returns (CRLF stripped, unstuffed) into wire form."""
    if not lines:
        return b""
    return b"\r\n".join(lines) + b"\r\n"


def split_trace(served, prefix=TRACE_PREFIX):
    """Splits SERVED (CRLF or LF lines) into (trace block, the rest): the
    trace header and the X-Popgate-Spam-* verdict lines that follow it, the
    header lines popgate's filters put in front of every fetched message.

    Raises AssertionError unless the first line starts with PREFIX.
    """
    nl = b"\r\n" if b"\r\n" in served[:4096] else b"\n"
    first_end = served.find(nl)
    assert first_end > 0, "served message has no line end"
    first = served[:first_end]
    assert first.startswith(prefix), \
        f"served message does not start with the trace header: {first[:120]!r}"
    pos = first_end + len(nl)
    # Header continuation lines (RFC 5322 folding) belong to the same field.
    while pos < len(served) and (served[pos:pos + 1] in (b" ", b"\t")
                                 or served.startswith(SPAM_PREFIX, pos)):
        end = served.find(nl, pos)
        assert end >= 0, "unterminated trace header"
        pos = end + len(nl)
    return served[:pos], served[pos:]


def strip_trace(served, prefix=TRACE_PREFIX):
    return split_trace(served, prefix)[1]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def header_part(wire):
    """The header lines of WIRE including the blank line after them."""
    end = wire.find(b"\r\n\r\n")
    if end < 0:
        return wire
    return wire[:end + 4]


def first_body_lines(wire, n):
    """What TOP msg N returns after the headers: the first N body lines."""
    end = wire.find(b"\r\n\r\n")
    if end < 0:
        return b""
    body = wire[end + 4:]
    lines = body.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    return b"".join(line + b"\r\n" for line in lines[:n])
