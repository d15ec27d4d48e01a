"""
test_networks.py — popgatectl network add|del|list, the Local Networks
(issue 9, point 2; SPEC S2), against a data folder a running popgate made.

A new store holds only loopback. Each network is stored in canonical form;
an invalid network (garbage, host bits set, prefix out of range, leading
zeros, an IPv4-mapped IPv6 network), an invalid or duplicate name, and a
network already there are refused with a clear message, exit 1 and nothing
stored; usage errors exit 2. Every change is an admin_change the running
daemon is told of and logs.
"""

import json
import os

import pytest

import itutil

from popgate import render_config
from test_ctl import ctl, ok, table_rows

LOOPBACK_ROWS = [("loopback", "127.0.0.0/8"), ("loopback6", "::1/128")]


@pytest.fixture
def gate(make_popgate):
    """A running popgate (no provider needed): its store exists, and it
    listens on its control socket for popgatectl's notices."""
    return make_popgate()


def networks(gate):
    return gate.db_query("SELECT name, cidr FROM local_network ORDER BY name")


def listed(gate):
    """(name, cidr) of each row `network list` prints, and of its JSON."""
    rows = table_rows(ok(ctl("network", "list", config=gate.config_path)))
    assert rows[0] == ["NAME", "CIDR", "CREATED", "NOTE"]
    table = [(row[0], row[1]) for row in rows[1:]]
    data = json.loads(ok(ctl("--json", "network", "list", config=gate.config_path)))
    assert table == [(entry["name"], entry["cidr"]) for entry in data]
    assert all(entry["valid"] for entry in data)
    return table


def test_default_is_loopback_only(gate):
    assert networks(gate) == LOOPBACK_ROWS
    assert listed(gate) == LOOPBACK_ROWS
    data = json.loads(ok(ctl("--json", "network", "list", config=gate.config_path)))
    # The seeded rows have no creation time.
    assert [entry["created"] for entry in data] == [None, None]


def test_add_list_del(gate):
    config = gate.config_path
    assert ok(ctl("network", "add", "office", "192.168.1.0/24", config=config)) == \
        "local network office added: 192.168.1.0/24\n"
    # A single host is a /32 or /128; IPv6 is stored as inet_ntop writes it.
    assert "10.0.0.7/32" in ok(ctl("network", "add", "printer", "10.0.0.7", config=config))
    added = json.loads(ok(ctl("--json", "network", "add", "v6-office", "2001:DB8:0::/48",
                              config=config)))
    assert added == {"name": "v6-office", "cidr": "2001:db8::/48"}
    ok(ctl("network", "add", "host6", "2001:db8:1::25", config=config))
    expected = sorted(LOOPBACK_ROWS + [("office", "192.168.1.0/24"), ("printer", "10.0.0.7/32"),
                                       ("v6-office", "2001:db8::/48"),
                                       ("host6", "2001:db8:1::25/128")])
    assert networks(gate) == expected
    assert sorted(listed(gate)) == expected
    created = gate.db_query("SELECT created_at FROM local_network WHERE name = 'office'")
    assert created[0][0] > 0

    assert ok(ctl("network", "del", "office", config=config)) == "local network office deleted\n"
    assert json.loads(ok(ctl("--json", "network", "del", "PRINTER", config=config))) == \
        {"name": "PRINTER", "deleted": True}
    assert networks(gate) == sorted(LOOPBACK_ROWS + [("v6-office", "2001:db8::/48"),
                                                     ("host6", "2001:db8:1::25/128")])
    # Deleting what is not there is refused.
    done = ctl("network", "del", "office", config=config)
    assert done.returncode == 1
    assert "no local network named office" in done.stderr
    # Even loopback may go; the name is then free again.
    ok(ctl("network", "del", "loopback", config=config))
    ok(ctl("network", "add", "loopback", "127.0.0.1/32", config=config))
    assert ("loopback", "127.0.0.1/32") in networks(gate)


@pytest.mark.parametrize("cidr, message", [
    ("192.168.1.5/24", "192.168.1.5/24 has host bits set; the network is 192.168.1.0/24"),
    ("2001:db8::1/32", "has host bits set; the network is 2001:db8::/32"),
    ("10.0.0.0/33", "bad prefix length: it must be a number from 0 to 32"),
    ("::/129", "from 0 to 128"),
    ("10.0.0.0/", "bad prefix length"),
    ("10.0.0.0/08", "bad prefix length"),
    ("010.0.0.0/8", "leading zero"),
    ("garbage", "'garbage' is not a network"),
    ("10.0.0", "is not a network"),
    ("256.1.1.1", "is not a network"),
    ("example.com", "is not a network"),
    ("fe80::1%lo", "is not a network"),
    ("", "no address"),
    ("::ffff:10.0.0.0/104", "write it as IPv4: 10.0.0.0/8"),
    # Everyone inside may relay: the whole Internet would be an open relay.
    ("0.0.0.0/0", "0.0.0.0/0 is too wide for a Local Network"),
    ("::/0", "::/0 is too wide for a Local Network"),
    ("0.0.0.0/1", "the widest allowed is /8"),
])
def test_invalid_network_refused(gate, cidr, message):
    done = ctl("network", "add", "lan", cidr, config=gate.config_path)
    assert done.returncode == 1, done
    assert done.stderr.startswith("popgatectl: ")
    assert message in done.stderr
    assert networks(gate) == LOOPBACK_ROWS
    assert gate.db_query("SELECT COUNT(*) FROM admin_change") == [(0,)]


def test_duplicates_and_names_refused(gate):
    config = gate.config_path
    ok(ctl("network", "add", "office", "192.168.1.0/24", config=config))
    for name, cidr, message in [
            ("office", "10.0.0.0/8", "there is a local network named office already"),
            ("Office", "10.0.0.0/8", "there is a local network named office already"),
            ("lan", "192.168.1.0/24", "network 192.168.1.0/24 is a local network already, "
                                      "named office"),
            ("lan", "127.0.0.0/8", "named loopback"),
            ("my lan", "10.0.0.0/8", "not a valid network name"),
            ("lan\x1b[31m", "10.0.0.0/8", "not a valid network name"),
            ("n" * 65, "10.0.0.0/8", "not a valid network name"),
    ]:
        done = ctl("network", "add", name, cidr, config=config)
        assert done.returncode == 1, (name, cidr, done)
        assert message in done.stderr, (name, done.stderr)
        # The name is shown made safe, never as raw control bytes.
        assert "\x1b" not in done.stderr
    assert networks(gate) == sorted(LOOPBACK_ROWS + [("office", "192.168.1.0/24")])


def test_list_marks_rows_the_daemon_ignores(gate):
    """A row written into the store by hand that popgatectl would refuse is
    shown, marked: the daemon skips it (and says so in its log)."""
    gate.db_write("INSERT INTO local_network (name, cidr, created_at)"
                  " VALUES ('by-hand', '0.0.0.0/0', 1)")
    rows = table_rows(ok(ctl("network", "list", config=gate.config_path)))
    marked = [row for row in rows if row[0] == "by-hand"]
    assert marked and marked[0][1] == "0.0.0.0/0"
    assert marked[0][-1] == "invalid: ignored (see the log)"
    data = json.loads(ok(ctl("--json", "network", "list", config=gate.config_path)))
    assert {entry["name"]: entry["valid"] for entry in data} == \
        {"by-hand": False, "loopback": True, "loopback6": True}


@pytest.mark.parametrize("args", [
    ("network", "add"),
    ("network", "add", "lan"),
    ("network", "add", "lan", "10.0.0.0/8", "extra"),
    ("network", "del"),
    ("network", "del", "a", "b"),
    ("network", "list", "extra"),
    ("network", "flush"),
])
def test_usage_errors(gate, args):
    done = ctl(*args, config=gate.config_path)
    assert done.returncode == 2, done
    assert networks(gate) == LOOPBACK_ROWS


def test_change_recorded_and_daemon_told(gate):
    config = gate.config_path
    done = ctl("network", "add", "office", "192.168.1.0/24", config=config)
    ok(done)
    # The daemon listened: no note that it could not be told.
    assert "could not be told" not in done.stderr
    ok(ctl("network", "del", "office", config=config))
    texts = [text for (text,) in gate.db_query("SELECT text FROM admin_change ORDER BY seq")]
    assert texts == ["popgatectl network add: local network office added: 192.168.1.0/24",
                     "popgatectl network del: local network office deleted"]
    itutil.wait_until(
        lambda: len([e for e in gate.events("admin_change")
                     if "popgatectl network" in e["detail"]]) == 2, 30,
        what="both changes in popgate's log")
    itutil.wait_until(lambda: gate.db_query("SELECT MIN(logged) FROM admin_change") == [(1,)],
                      30, what="the changes marked logged")


def test_without_store(new_dir):
    """popgatectl never creates a store: before popgate's first start it
    refuses."""
    directory = new_dir("nostore")
    path = os.path.join(directory, "popgate.conf")
    with open(path, "w") as f:
        f.write(render_config({"server": {"data_dir": os.path.join(directory, "data"),
                                          "log_file": "-"}}))
    done = ctl("network", "add", "office", "192.168.1.0/24", config=path)
    assert done.returncode == 1
    assert "no store at" in done.stderr
