"""
test_smtp_bdat.py — CHUNKING (RFC 3030) in popgate's SMTP server (issue 9,
items 1 and 3): BDAT's counted octets read raw (no dot-unstuffing, no end
marker), with line ends made CR LF as DATA's are, also when a chunk boundary
falls between a CR and its LF; the last BDAT answered only once the body is
durable and its row committed; BDAT pipelined with the commands around it;
every refusal (503 out of sequence, 552 over the size limit) given only
after the chunk's octets were read, so the session stays in step; a client
that hangs up inside a chunk leaving nothing; and a message sent with BDAT
relayed to the MX exactly as it was sent.

smtplib has no BDAT: the client is a raw socket (smtputil.Raw). Traffic goes
only to 127.0.0.0/8.
"""

import os

import itutil
from smtputil import Raw, connect, queued_id, smtp_gate, spool_file, stored  # noqa: F401
from test_relay_delivery import BODY, relay_env  # noqa: F401 - relay_env is a fixture

ENVELOPE = "EHLO chunks.test\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"


def open_transaction(gate):
    """A raw client past EHLO, MAIL and RCPT."""
    raw = Raw(gate)
    assert raw.reply()[0] == 220
    raw.send(ENVELOPE)
    assert [code for code, _ in raw.replies(3)] == [250, 250, 250]
    return raw


def bdat(size, last=False):
    return f"BDAT {size}{' LAST' if last else ''}\r\n".encode()


def queued(reply):
    code, lines = reply
    assert code == 250 and lines[0].startswith("2.0.0 Ok: queued as "), reply
    return queued_id(lines[0])


def spool_tmp(gate):
    return os.listdir(os.path.join(gate.config["server"]["data_dir"], "spool", "tmp"))


def bodies_being_written(gate):
    """The bodies the daemon is writing: named files in spool/tmp, and the
    temp files of its pool (anonymous, O_TMPFILE: seen only as its open
    descriptors into spool/tmp) that hold bytes already; a ready file of
    the pool is empty."""
    tmp = os.path.join(gate.config["server"]["data_dir"], "spool", "tmp")
    found = list(spool_tmp(gate))
    fd_dir = f"/proc/{gate.pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
            if target.startswith(tmp + "/") and os.stat(os.path.join(fd_dir, fd)).st_size > 0:
                found.append(target)
        except FileNotFoundError:
            pass  # closed meanwhile
    return found


def message_count(gate):
    return gate.db_query("SELECT count(*) FROM message")[0][0]


def test_ehlo_offers_chunking_not_binarymime(smtp_gate):
    with connect(smtp_gate) as client:
        code, text = client.ehlo()
        assert code == 250
        keywords = [line.split(" ")[0] for line in text.decode().splitlines()[1:]]
        assert "CHUNKING" in keywords and "BINARYMIME" not in keywords


def test_one_chunk_last_is_durable_before_250(smtp_gate):
    body = b"Subject: one chunk\r\n\r\n..not unstuffed\r\n.\r\nthe line above is no end\r\n"
    raw = open_transaction(smtp_gate)
    raw.send(bdat(len(body), last=True) + body)
    message_id = queued(raw.reply())
    # 250 came after the commit: the row and the body are there at once.
    row = stored(smtp_gate, message_id)
    assert row is not None and row["source"] == "submitted"
    assert row["recipients"] == ["b@example.net"] and row["sender"] == "a@example.org"
    assert row["body_size"] == len(body)
    assert spool_file(smtp_gate, message_id) == body
    assert raw.command("QUIT") == (221, ["2.0.0 Bye"])
    raw.close()
    smtp_gate.wait_message_state(message_id, "outbound")


def test_several_chunks_then_bdat_0_last(smtp_gate):
    parts = [b"Subject: parts\r\n\r\nfirst ", b"second\r\n", b"third\r\n" * 1000]
    raw = open_transaction(smtp_gate)
    for part in parts:
        raw.send(bdat(len(part)) + part)
        assert raw.reply() == (250, [f"2.0.0 Ok: {len(part)} octets received"])
    raw.send(bdat(0, last=True))
    message_id = queued(raw.reply())
    assert spool_file(smtp_gate, message_id) == b"".join(parts)
    raw.close()


def test_bdat_0_last_alone_is_an_empty_message(smtp_gate):
    raw = open_transaction(smtp_gate)
    raw.send(bdat(0, last=True))
    message_id = queued(raw.reply())
    assert spool_file(smtp_gate, message_id) == b""
    raw.close()


def test_line_ends_made_crlf_across_chunk_boundaries(smtp_gate):
    """A CR at the end of one chunk and its LF at the start of the next are one
    line end; bare LFs and lone CRs become CR LF; a last line without a line
    end gets one."""
    chunks = [b"Subject: ends\r", b"\n\r", b"\nbare LF\nlone CR\rsplit CR",
              b"\r", b"\r\n", b"last line"]
    raw = open_transaction(smtp_gate)
    for chunk in chunks[:-1]:
        raw.send(bdat(len(chunk)) + chunk)
        assert raw.reply()[0] == 250
    raw.send(bdat(len(chunks[-1]), last=True) + chunks[-1])
    message_id = queued(raw.reply())
    assert spool_file(smtp_gate, message_id) == (
        b"Subject: ends\r\n\r\nbare LF\r\nlone CR\r\nsplit CR\r\n\r\nlast line\r\n")
    raw.close()


def test_bdat_and_the_next_transaction_in_one_write(smtp_gate):
    """BDAT is pipelined by design: two transactions, their chunks thousands of
    octets long and ending in what looks like commands, in one write; the
    replies come in order, one for each command."""
    first = b"Subject: first\r\n\r\n" + b"x" * 5000 + b"\r\nRSET\r\nQUIT\r\n"
    second = b"Subject: second\r\n\r\n" + b"y" * 7000 + b"\r\nMAIL FROM:<evil@example.org>\r\n"
    raw = Raw(smtp_gate)
    assert raw.reply()[0] == 220
    raw.send(ENVELOPE.encode() + bdat(len(first), last=True) + first
             + b"MAIL FROM:<c@example.org>\r\nRCPT TO:<d@example.net>\r\n"
             + bdat(3000) + second[:3000] + bdat(len(second) - 3000, last=True) + second[3000:]
             + b"NOOP\r\nQUIT\r\n")
    replies = raw.replies(10)
    assert [code for code, _ in replies] == [250] * 9 + [221], replies
    first_id, second_id = queued(replies[3]), queued(replies[7])
    assert replies[6] == (250, ["2.0.0 Ok: 3000 octets received"])
    assert spool_file(smtp_gate, first_id) == first
    assert spool_file(smtp_gate, second_id) == second
    assert stored(smtp_gate, second_id)["sender"] == "c@example.org"
    assert message_count(smtp_gate) == 2
    raw.close()


def test_oversize_chunk_is_read_then_refused(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_message_size": 2048}})
    # NOOP lines inside the chunks: had their octets not been read, they
    # would be answered as commands.
    big = b"NOOP\r\n" * 500
    raw = open_transaction(gate)
    # One LAST chunk over the limit; then a BDAT already in the pipeline:
    # its octets are read and dropped (503); the session stays in step.
    raw.send(bdat(len(big), last=True) + big + bdat(12) + b"NOOP\r\nNOOP\r\n" + b"NOOP\r\n")
    code, lines = raw.reply()
    assert code == 552 and lines[0].startswith("5.3.4 "), lines
    code, lines = raw.reply()
    assert code == 503 and lines[0].startswith("5.5.1 "), lines
    assert raw.reply() == (250, ["2.0.0 Ok"])
    # A chunk that is not the last is refused as soon as it passes the limit.
    raw.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
    assert [code for code, _ in raw.replies(2)] == [250, 250]
    raw.send(bdat(1500) + b"a" * 1500)
    assert raw.reply()[0] == 250
    raw.send(bdat(1500) + b"b" * 1500)
    code, lines = raw.reply()
    assert code == 552 and lines[0].startswith("5.3.4 "), lines
    raw.send(bdat(3, last=True) + b"end")
    assert raw.reply()[0] == 503
    assert raw.command("NOOP") == (250, ["2.0.0 Ok"])
    raw.close()
    assert message_count(gate) == 0
    itutil.wait_until(lambda: spool_tmp(gate) == [], timeout=30, what="no body left in tmp")


def test_bdat_out_of_sequence_is_503_and_its_octets_are_read(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_bad_commands": 100}})
    raw = Raw(gate)
    assert raw.reply()[0] == 220
    # Before EHLO, before MAIL, before RCPT: 503 5.5.1 each, and the octets
    # (commands, to the eye) are never taken as commands.
    sequence = [(b"", "send EHLO or HELO first"), (b"EHLO seq.test\r\n", None),
                (b"", "need MAIL first"), (b"MAIL FROM:<a@example.org>\r\n", None),
                (b"", "need RCPT first")]
    for prefix, reason in sequence:
        if reason is None:
            raw.send(prefix)
            assert raw.reply()[0] == 250
            continue
        raw.send(bdat(12) + b"NOOP\r\nQUIT\r\n")
        code, lines = raw.reply()
        assert (code, lines[-1]) == (503, f"5.5.1 Bad sequence of commands: {reason}")
    assert raw.command("NOOP") == (250, ["2.0.0 Ok"])
    # BDAT syntax errors: 501 5.5.4.
    code, lines = raw.command("BDAT x")
    assert code == 501 and lines[0].startswith("5.5.4 ")
    raw.close()
    assert message_count(gate) == 0


def test_data_mail_rcpt_after_bdat_are_503_and_rset_drops_the_body(make_popgate):
    gate = make_popgate(overrides={"smtp": {"max_bad_commands": 100}})
    raw = open_transaction(gate)
    raw.send(bdat(10) + b"abandoned ")
    assert raw.reply()[0] == 250
    for line in ["DATA", "MAIL FROM:<x@example.org>", "RCPT TO:<y@example.net>", "STARTTLS"]:
        code, lines = raw.command(line)
        assert code == 503 and lines[0].startswith("5.5.1 "), (line, lines)
    # RSET forgets the partial body: a new transaction stores only its own.
    assert raw.command("RSET") == (250, ["2.0.0 Ok"])
    assert spool_tmp(gate) == []
    raw.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n")
    assert [code for code, _ in raw.replies(2)] == [250, 250]
    raw.send(bdat(7, last=True) + b"kept\r\n\r")
    message_id = queued(raw.reply())
    assert spool_file(gate, message_id) == b"kept\r\n\r\n"
    # After the last chunk, BDAT is out of sequence again.
    raw.send(bdat(3, last=True) + b"abc")
    assert raw.reply()[0] == 503
    raw.close()
    assert message_count(gate) == 1


def test_client_closing_inside_a_chunk_leaves_nothing(smtp_gate):
    raw = open_transaction(smtp_gate)
    raw.send(bdat(100000, last=True) + b"z" * 30000)
    itutil.wait_until(lambda: bodies_being_written(smtp_gate) != [], timeout=30,
                      what="the body begun")
    raw.close()
    itutil.wait_until(lambda: bodies_being_written(smtp_gate) == [], timeout=30,
                      what="the cut body removed")
    assert message_count(smtp_gate) == 0
    # The daemon goes on: a whole message next.
    raw = open_transaction(smtp_gate)
    raw.send(bdat(5, last=True) + b"fine\n")
    assert spool_file(smtp_gate, queued(raw.reply())) == b"fine\r\n"
    raw.close()


def test_message_sent_with_bdat_is_relayed_as_sent(relay_env):
    """A message sent in three chunks, a chunk boundary inside a CR LF and in
    a line that starts with a dot, arrives at the MX byte for byte as sent,
    after the Received header popgate stored it with."""
    gate = relay_env.gate
    raw = Raw(gate)
    assert raw.reply()[0] == 220
    raw.send("EHLO office.test\r\nMAIL FROM:<alice@office.test>\r\nRCPT TO:<gina@mail.test>\r\n")
    assert [code for code, _ in raw.replies(3)] == [250, 250, 250]
    body = BODY + b".a line with a leading dot\r\n"
    cut = body.index(b"\r\n") + 1
    chunks = [body[:cut], body[cut:-10], body[-10:]]
    raw.send(bdat(len(chunks[0])) + chunks[0] + bdat(len(chunks[1])) + chunks[1]
             + bdat(len(chunks[2]), last=True) + chunks[2])
    replies = raw.replies(3)
    assert [code for code, _ in replies] == [250, 250, 250]
    message_id = queued(replies[2])
    raw.close()
    itutil.wait_until(lambda: relay_env.mx.received("gina@mail.test") == 1, timeout=60,
                      what="the relayed message at the MX")
    prepend = stored(gate, message_id)["prepend"].encode()
    with relay_env.mx.lock:
        (message,) = [m for m in relay_env.mx.messages if "gina@mail.test" in m["rcpts"]]
    assert message["data"] == prepend + body
