"""
tlsca.py — a throw-away certificate authority for the integration tests, made
with the openssl command: a CA and a server certificate for "localhost"
(CN and SAN) signed by it.

The keys are test keys in a temp folder; nothing here is used outside tests.
"""

import os
import ssl
import subprocess
from dataclasses import dataclass


@dataclass
class TestCA:
    dir: str
    ca_cert: str       # PEM of the CA: what clients trust
    ca_key: str
    server_cert: str   # PEM of the "localhost" certificate, signed by the CA
    server_key: str

    def client_context(self):
        """An ssl context that trusts only this CA (host name checked)."""
        return ssl.create_default_context(cafile=self.ca_cert)

    def server_context(self):
        """An ssl server context presenting the "localhost" certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=60,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(directory, name="popgate test CA", host="localhost"):
    """Creates DIRECTORY/ca.pem, ca.key, server.pem, server.key; returns a TestCA."""
    os.makedirs(directory, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30",
             "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", f"/CN={host}", cwd=directory)
    ext = os.path.join(directory, "server.ext")
    with open(ext, "w") as f:
        f.write(f"basicConstraints=CA:FALSE\n"
                f"keyUsage=critical,digitalSignature,keyEncipherment\n"
                f"extendedKeyUsage=serverAuth\n"
                f"subjectAltName=DNS:{host},IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "30", "-extfile", ext,
             cwd=directory)
    for key in ("ca.key", "server.key"):
        os.chmod(os.path.join(directory, key), 0o600)
    return TestCA(dir=directory,
                  ca_cert=os.path.join(directory, "ca.pem"),
                  ca_key=os.path.join(directory, "ca.key"),
                  server_cert=os.path.join(directory, "server.pem"),
                  server_key=os.path.join(directory, "server.key"))
