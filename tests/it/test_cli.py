"""
test_cli.py — the command line (issue 2 point 1): --check-config validates a
file and names the bad line; --version.
"""

import os
import re
import subprocess

import pytest

from popgate import popgate_bin, render_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args, timeout=30):
    return subprocess.run([popgate_bin(), *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_check_config_accepts_the_test_config(make_popgate, test_ca):
    gate = make_popgate(start=False, overrides={
        "provider localhost": {"port": 995, "tls": "implicit", "ca_file": test_ca.ca_cert,
                               "allow_private": "yes"},
        "provider *.example.net": {"port": 110, "tls": "starttls"},
        "queue": {"max_message_size": 200000},
        "users": {"pseudo_domain": "gw.example.net"}})
    result = run("--check-config", gate.config_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_config_accepts_the_example():
    result = run("--check-config", os.path.join(REPO, "popgate.conf.example"))
    assert result.returncode == 0, result.stdout + result.stderr


def _config_with(new_dir, bad_line, section="server"):
    """A config file whose SECTION holds BAD_LINE; returns (path, line number)."""
    good = render_config({
        "server": {"data_dir": "data", "log_file": "-", "listen_address": "127.0.0.1"},
        "fetch": {"timeout": 30},
        "provider localhost": {"port": 995, "tls": "implicit"},
    }).splitlines()
    header = good.index(f"[{section}]")
    lines = good[:header + 2] + [bad_line] + good[header + 2:]
    path = os.path.join(new_dir("cli"), "bad.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, header + 3


@pytest.mark.parametrize("section, bad_line", [
    ("server", "no_such_key = 1"),
    ("server", "pop3_port = 70000"),
    ("server", "allow_plaintext_auth = perhaps"),
    ("fetch", "timeout = soon"),
    ("provider localhost", "tls = sometimes"),
])
def test_check_config_names_file_and_line(new_dir, section, bad_line):
    path, line = _config_with(new_dir, bad_line, section)
    result = run("--check-config", path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert path in out or os.path.basename(path) in out, out
    assert re.search(rf"(?<!\d){line}(?!\d)", out), f"line {line} not named: {out}"


def test_check_config_unknown_section(new_dir):
    path = os.path.join(new_dir("cli"), "bad.conf")
    with open(path, "w") as f:
        f.write("[server]\nlog_file = -\n\n[no such section]\nkey = 1\n")
    result = run("--check-config", path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert re.search(r"(?<!\d)[45](?!\d)", out), out


def test_check_config_missing_file(new_dir):
    path = os.path.join(new_dir("cli"), "missing.conf")
    result = run("--check-config", path)
    assert result.returncode != 0
    assert "missing.conf" in result.stdout + result.stderr


def test_version():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert re.search(r"popgate \S*\d", result.stdout + result.stderr), result.stdout


def test_unknown_option():
    result = run("--no-such-option")
    assert result.returncode != 0
