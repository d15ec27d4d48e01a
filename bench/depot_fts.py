#!/usr/bin/python3
"""
bench/depot_fts.py — the plain baseline bench/depot.py sets beside MailDepot:
an SQLite FTS5 index over mbox files, built by a script with Python's email
package (the message bytes themselves are kept by `zstd` over the mbox
files; see bench/depot.py).

    bench/depot_fts.py build --index FILE [--jobs J] MBOX...

prints one JSON line: messages, seconds, CPU seconds (with its worker
processes), the index's bytes. The index (schema below) keeps, per message,
where its bytes are (mbox file number, offset, length), sender, subject,
date, size, Message-ID, its recipients and attachment names in tables of
their own with an index on each, and a contentless FTS5 table over subject,
the sender and recipients, and the text of the text parts (HTML as text, at
most TEXT_MAX characters, as popgate's DEPOT_TEXT_MAX), tokenized as
popgate's (unicode61 remove_diacritics 2).

bench/depot.py imports this module for `query()`, which turns one of its
query dicts into SQL against that index, and for `extract()`, which it uses
to choose query values from the corpus.

Owns: the index file it builds. Must never: print a message or its text.
"""

import argparse
import email
import email.header
import email.utils
import html
import json
import multiprocessing
import os
import re
import resource
import sqlite3
import sys
import time

TEXT_MAX = 256 * 1024
BATCH = 200          # messages per task handed to a worker process
COMMIT_EVERY = 10000  # messages per transaction

SCHEMA = """
CREATE TABLE msg(id INTEGER PRIMARY KEY, file INTEGER, offset INTEGER, length INTEGER,
                 sender TEXT, subject TEXT, date INTEGER, size INTEGER, message_id TEXT);
CREATE TABLE rcpt(id INTEGER, address TEXT);
CREATE TABLE att(id INTEGER, name TEXT);
CREATE VIRTUAL TABLE fts USING fts5(subject, people, body, content='',
                                    tokenize='unicode61 remove_diacritics 2');
"""
# Made after the load: one sort each instead of a b-tree kept up per row.
INDEXES = """
CREATE INDEX msg_sender ON msg(sender, date);
CREATE INDEX msg_date ON msg(date);
CREATE INDEX rcpt_address ON rcpt(address, id);
CREATE INDEX att_name ON att(name, id);
"""

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")


def split_mbox(data):
    """(offset, length) of each message of the mbox DATA: a message starts
    with a "From " line at the file's start or after an empty line."""
    starts = [0] if data.startswith(b"From ") else []
    pos = 0
    while True:
        pos = data.find(b"\n\nFrom ", pos)
        if pos < 0:
            break
        starts.append(pos + 2)
        pos += 2
    ends = starts[1:] + [len(data)]
    return [(s, e - s) for s, e in zip(starts, ends)]


def unmbox(chunk):
    """The message of one mbox chunk: its "From " line dropped, mboxrd
    quoting (">From ", ">>From " …) undone."""
    nl = chunk.find(b"\n")
    raw = chunk[nl + 1:] if chunk.startswith(b"From ") and nl >= 0 else chunk
    if b"\n>" in raw or raw.startswith(b">"):
        raw = re.sub(rb"(?m)^>(>*From )", rb"\1", raw)
    return raw


def _decoded(value):
    if value is None:
        return ""
    try:
        return str(email.header.make_header(email.header.decode_header(str(value))))
    except Exception:
        return str(value)


def _addresses(msg, names):
    out = []
    for name in names:
        for _, addr in email.utils.getaddresses([str(v) for v in msg.get_all(name, [])]):
            addr = addr.strip().lower()
            if addr and addr not in out:
                out.append(addr)
    return out


def _part_text(part):
    payload = part.get_payload(decode=True)
    if not payload:
        return ""
    charset = part.get_content_charset() or "us-ascii"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:
        text = payload.decode("latin-1")
    if part.get_content_type() == "text/html":
        text = html.unescape(_TAG.sub(" ", text))
    return text


def extract(raw):
    """The fields of the raw message RAW (bytes) the index keeps."""
    msg = email.message_from_bytes(raw)
    senders = _addresses(msg, ["From"])
    try:
        date = email.utils.parsedate_to_datetime(str(msg.get("Date", "")))
        date = int(date.timestamp())
    except Exception:
        date = 0
    texts, attachments, size = [], [], 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        name = part.get_filename()
        if name:
            attachments.append(_decoded(name))
            continue
        if part.get_content_maintype() == "text" and size < TEXT_MAX:
            text = _part_text(part)
            texts.append(text[:TEXT_MAX - size])
            size += len(texts[-1])
    return {
        "sender": senders[0] if senders else None,
        "recipients": _addresses(msg, ["To", "Cc", "Bcc", "Delivered-To"]),
        "subject": _SPACE.sub(" ", _decoded(msg.get("Subject"))).strip(),
        "date": date,
        "message_id": str(msg.get("Message-ID", "")).strip().strip("<>") or None,
        "attachments": attachments,
        "body": "\n".join(texts),
        "size": len(raw),
    }


def _extract_task(task):
    """A worker's share: the fields of each (file, offset, length, chunk)."""
    out = []
    for file_no, offset, length, chunk in task:
        fields = extract(unmbox(chunk))
        out.append((file_no, offset, length, fields))
    return out


def _tasks(paths):
    for file_no, path in enumerate(paths):
        with open(path, "rb") as f:
            data = f.read()
        batch = []
        for offset, length in split_mbox(data):
            batch.append((file_no, offset, length, data[offset:offset + length]))
            if len(batch) == BATCH:
                yield batch
                batch = []
        if batch:
            yield batch


def build(index, paths, jobs):
    """Builds INDEX from the mbox files PATHS with JOBS worker processes."""
    start = time.monotonic()
    db = sqlite3.connect(index, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    count = 0
    db.execute("BEGIN")
    with multiprocessing.Pool(jobs) as pool:
        for done in pool.imap(_extract_task, _tasks(paths), chunksize=1):
            for file_no, offset, length, f in done:
                count += 1
                cur = db.execute(
                    "INSERT INTO msg(file, offset, length, sender, subject, date, size, "
                    "message_id) VALUES (?,?,?,?,?,?,?,?)",
                    (file_no, offset, length, f["sender"], f["subject"], f["date"], f["size"],
                     f["message_id"]))
                row = cur.lastrowid
                db.executemany("INSERT INTO rcpt(id, address) VALUES (?,?)",
                               [(row, a) for a in f["recipients"]])
                db.executemany("INSERT INTO att(id, name) VALUES (?,?)",
                               [(row, a) for a in f["attachments"]])
                people = " ".join(([f["sender"]] if f["sender"] else []) + f["recipients"])
                db.execute("INSERT INTO fts(rowid, subject, people, body) VALUES (?,?,?,?)",
                           (row, f["subject"], people, f["body"]))
                if count % COMMIT_EVERY == 0:
                    db.execute("COMMIT")
                    db.execute("BEGIN")
    db.execute("COMMIT")
    db.executescript(INDEXES)
    db.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    seconds = time.monotonic() - start
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    return {"messages": count, "seconds": seconds, "cpu_seconds": cpu,
            "index_bytes": os.path.getsize(index)}


def _fts_phrase(word):
    return '"' + word.replace('"', '""') + '"'


def query(q, limit):
    """(SQL, parameters) for the query dict Q (bench/depot.py's criteria,
    with depot_search's meaning: sender, recipient (addresses), subject
    (words all in the subject), text (words all anywhere), since and until
    (inclusive), attachment (a substring of a name, ASCII case ignored),
    user_addresses (sender or a recipient one of them)), newest (last
    indexed) first, at most LIMIT rows."""
    where, params = [], []
    if "sender" in q:
        where.append("m.sender = ?")
        params.append(q["sender"])
    if "recipient" in q:
        where.append("m.id IN (SELECT id FROM rcpt WHERE address = ?)")
        params.append(q["recipient"])
    matches = []
    if "subject" in q:
        matches.append("subject : (" + " AND ".join(_fts_phrase(w) for w in q["subject"]) + ")")
    if "text" in q:
        matches += [_fts_phrase(w) for w in q["text"]]
    if matches:
        where.append("m.id IN (SELECT rowid FROM fts WHERE fts MATCH ?)")
        params.append(" AND ".join(matches))
    if "since" in q:
        where.append("m.date >= ?")
        params.append(q["since"])
    if "until" in q:
        where.append("m.date <= ?")
        params.append(q["until"])
    if "attachment" in q:
        where.append("m.id IN (SELECT id FROM att WHERE name LIKE ? ESCAPE '\\')")
        params.append("%" + re.sub(r"([%_\\])", r"\\\1", q["attachment"]) + "%")
    if "user_addresses" in q:
        marks = ",".join("?" * len(q["user_addresses"]))
        where.append(f"(m.sender IN ({marks}) OR m.id IN (SELECT id FROM rcpt WHERE address "
                     f"IN ({marks})))")
        params += q["user_addresses"] * 2
    sql = ("SELECT m.id FROM msg m" + (" WHERE " + " AND ".join(where) if where else "") +
           " ORDER BY m.id DESC LIMIT ?")
    return sql, params + [limit]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="index mbox files")
    b.add_argument("--index", required=True)
    b.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    b.add_argument("mbox", nargs="+")
    args = parser.parse_args()
    if os.path.exists(args.index):
        sys.exit(f"{args.index} exists")
    print(json.dumps(build(args.index, args.mbox, args.jobs)), flush=True)


if __name__ == "__main__":
    main()
