"""
test_attachments.py — the attachments filter (issue 10, point 2) in real,
confined workers, with a real Dovecot as the provider and poplib as the
client.

The default profile runs `attachments` at weight 2 (quarantine_at 10): an
.exe attachment (a PE image: 10 points for the name, 10 for the content) and
an encrypted zip made by Info-ZIP's zip -P (6 points) are quarantined, and
`popgatectl queue show` names the file and why (as `filter check` does
offline); an ordinary PDF and a zip of text files are delivered. That the encrypted zip is recognised proves
libarchive's memory reader works under the worker's seccomp filter. A
[spam] blocked_extensions of the administrator's reaches the workers in
their setup frame: with "pdf" blocked the PDF is held too.
"""

import io
import json
import os
import zipfile
from email.message import EmailMessage

from mailutil import split_trace
from test_ctl import ctl, ok

ACCOUNT = "alice@localhost"
PASSWORD = "alice-secret-attach-1"
HERE = os.path.dirname(os.path.abspath(__file__))
ENCRYPTED_ZIP = os.path.join(HERE, "..", "unit", "data", "encrypted.zip")

# The start of a Windows PE image: "MZ", the PE header's offset at 0x3c and
# the "PE\0\0" signature there.
PE_IMAGE = b"MZ\x90" + bytes(0x39) + b"\x80\x00\x00\x00" + bytes(0x40) + b"PE\x00\x00" + \
    bytes(64)
PDF = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
       b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
       b"trailer << /Root 1 0 R >>\n%%EOF\n")


def text_zip():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("minutes.txt", "Minutes of the meeting.\n" * 50)
        archive.writestr("agenda/next.txt", "Next time: the budget.\n")
    return out.getvalue()


def with_attachment(subject, filename, data, maintype="application", subtype="octet-stream"):
    mail = EmailMessage()
    mail["From"] = "colleague@partner.example"
    mail["To"] = ACCOUNT
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{subject.replace(' ', '.')}@it.example>"
    mail.set_content("The file you asked for is attached.\n")
    mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return mail.as_bytes()


def deliver_all(gate, provider):
    """Alice's first login fetches the four messages; their ids by subject."""
    provider.add_user("alice", PASSWORD)
    provider.deliver("alice", with_attachment("the tool", "invoice.exe", PE_IMAGE))
    with open(ENCRYPTED_ZIP, "rb") as f:
        provider.deliver("alice", with_attachment("the secret", "docs.zip", f.read(),
                                                  subtype="zip"))
    provider.deliver("alice", with_attachment("the report", "report.pdf", PDF, subtype="pdf"))
    provider.deliver("alice", with_attachment("the minutes", "minutes.zip", text_zip(),
                                              subtype="zip"))
    gate.first_login(ACCOUNT, PASSWORD)
    return gate


def ids_by_subject(gate):
    rows = gate.db_query("SELECT id, state FROM message ORDER BY seq")
    out = {}
    for mid, state in rows:
        shown = json.loads(ok(ctl("--json", "queue", "show", mid, config=gate.config_path)))
        attachments = [f for f in shown["verdict"]["filters"] if f["name"] == "attachments"]
        out[mid] = (state, attachments[0] if attachments else None)
    return out


def weigh_attachments(gate):
    ok(ctl("profile", "set", "default", "attachments", "on", "attachments.weight", "2",
           config=gate.config_path))


def test_dangerous_attachments_quarantined(popgate, provider, new_dir):
    config = popgate.config_path
    weigh_attachments(popgate)
    deliver_all(popgate, provider)
    popgate.wait_states({"delivery": 2, "quarantine": 2}, timeout=60)
    popgate.wait_fetch_done(ACCOUNT)

    results = ids_by_subject(popgate)
    held = {mid: f for mid, (state, f) in results.items() if state == "quarantine"}
    reasons = sorted(f["reason"] for f in held.values())
    assert reasons == [
        "attachments: blocked extension .exe: invoice.exe; executable (PE): invoice.exe",
        "attachments: encrypted zip: docs.zip",
    ], reasons
    assert sorted((f["score"], f["weight"], f["points"]) for f in held.values()) == [
        (6.0, 2.0, 12.0), (10.0, 2.0, 20.0)]
    for mid, f in held.items():
        out = ok(ctl("queue", "show", mid, config=config))
        assert "action         quarantine" in out, out
        assert f"attachments {f['score']:.3f} x2.000 = {f['points']:.3f}: {f['reason']}" \
            in out, out

    # The PDF and the zip of text files are served, judged and clean.
    served = popgate.pickup(ACCOUNT, PASSWORD)
    assert sorted(b"Subject: the report" in m for m in served) == [False, True]
    assert sorted(b"Subject: the minutes" in m for m in served) == [False, True]
    for message in served:
        block = split_trace(message)[0].decode()
        assert "X-Popgate-Spam-Status: No, action=deliver\r\n" in block, block
        assert "attachments=0.000 x2.000" in block, block
    clean = sorted(f["reason"] for state, f in results.values() if state != "quarantine")
    assert clean == [
        "attachments: nothing found (2 parts, 0 archive entries)",
        "attachments: nothing found (2 parts, 2 archive entries)",
    ], clean

    # filter check explains the same offline.
    path = os.path.join(new_dir("attachments"), "tool.eml")
    with open(path, "wb") as f:
        f.write(with_attachment("the tool", "invoice.pdf.exe", PE_IMAGE))
    checked = json.loads(ok(ctl("--json", "filter", "check", path, config=config)))
    assert checked["action"] == "quarantine"
    assert [(f["points"], f["reason"]) for f in checked["filters"]
            if f["name"] == "attachments"] == [
        (20.0, "attachments: double extension .pdf.exe: invoice.pdf.exe; executable (PE): "
               "invoice.pdf.exe")]
    assert popgate.running


def test_blocked_extensions_setting_reaches_workers(make_popgate, provider):
    gate = make_popgate(provider=provider,
                        overrides={"spam": {"blocked_extensions": ".pdf, zip"}})
    weigh_attachments(gate)
    deliver_all(gate, provider)
    # The .exe is not on this list, but its content is a program; the zip
    # of text files is now blocked by its name.
    gate.wait_states({"quarantine": 4}, timeout=60)
    reasons = sorted(f["reason"] for state, f in ids_by_subject(gate).values())
    assert reasons == [
        "attachments: blocked extension .pdf: report.pdf",
        "attachments: blocked extension .zip: docs.zip; encrypted zip: docs.zip",
        "attachments: blocked extension .zip: minutes.zip",
        "attachments: executable (PE): invoice.exe",
    ], reasons
