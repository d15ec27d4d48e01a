"""
test_filter_bench.py — `popgatectl filter list` and `filter bench` (issue 10,
point 8; bench/filter.py drives them): the filters there are with where each
runs, and the chain judged over many corpus messages in one process, as a
worker and the daemon would, with its figures and the actions counted.
"""

import json
import os

from test_bayes_cli import ctl as bayes_ctl, group
from test_ctl import ctl, ok


def test_filter_list_and_bench(popgate, new_dir):
    config = popgate.config_path
    listed = json.loads(ok(ctl("--json", "filter", "list", config=config)))
    names = {f["name"]: f["runs_in"] for f in listed}
    assert names["senders"] == "daemon"
    assert names["bayes"] == "worker" and names["trace"] == "worker"
    assert "senders daemon\n" in ok(ctl("filter", "list", config=config))

    for side, name in (("--spam", "spam-1"), ("--ham", "easy-ham-1")):
        done = bayes_ctl(config, "bayes", "train", side, *group(name)[:100])
        assert done.returncode == 0, done.stderr
    ok(ctl("profile", "set", "default", "bayes", "on", config=config))
    folder = new_dir("bench-messages")
    for path in group("spam-2")[:10] + group("easy-ham-2")[:10]:
        with open(path, "rb") as f, open(os.path.join(folder, os.path.basename(path)), "wb") as o:
            o.write(f.read())

    result = json.loads(ok(ctl("--json", "filter", "bench", "--repeat", "2", folder,
                               config=config)))
    assert result["profile"] == "default"
    assert result["messages"] == 40
    assert sum(result["actions"].values()) == 40
    # The Bayes database was used (some spam is quarantined on it alone), and
    # both rounds judged alike.
    assert result["actions"]["quarantine"] > 0
    assert all(n % 2 == 0 for n in result["actions"].values())
    assert result["seconds"] > 0 and result["cpu_seconds"] > 0
    assert result["messages_per_cpu_second"] > 0
    text = ok(ctl("filter", "bench", folder, config=config))
    assert "profile default: 20 messages in " in text and "messages/s per core" in text, text

    assert ctl("filter", "bench", config=config).returncode == 2
    assert ctl("filter", "bench", "--repeat", "0", folder, config=config).returncode == 2
    done = ctl("filter", "bench", "--profile", "nosuch", folder, config=config)
    assert done.returncode == 1 and "no profile" in done.stderr
    done = ctl("filter", "bench", os.path.join(folder, "missing"), config=config)
    assert done.returncode == 1
    assert popgate.running
