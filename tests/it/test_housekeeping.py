"""
test_housekeeping.py — the daemon's own housekeeping removes delivered mail
older than [queue] delivered_keep_days (SPEC G3 keeps everything else): its
row and its spool file. A delivered message younger than that, and a message
still waiting for its client however old, stay.

Time passing is simulated by aging a row's state_changed_at in the store; the
removal itself is the daemon's, at its start (a restart) and on its timer
(every 60 s) while it runs.
"""

import os

import itutil

PASSWORD = "keep-secret-3"
ACCOUNT = "alice@localhost"
KEEP_DAYS = 2
DAY = 86400
HOUSEKEEPING_PERIOD = 60


def spool_file(gate, mid):
    return os.path.join(gate.data_dir, "spool", mid[:2], mid)


def age(gate, mid, days):
    """Moves MID's last state change DAYS days into the past."""
    gate.db_write("UPDATE message SET state_changed_at = state_changed_at - ? WHERE id = ?",
                  (days * DAY, mid))


def expired_lines(gate):
    return [line for line in gate.log_lines() if "delivered message(s) older than" in line]


def three_messages(gate, provider, corpus):
    """Three messages of alice's: two delivered (retrieved at a pickup whose
    QUIT completed) and one left waiting in the delivery queue; their ids
    as (delivered, delivered, waiting)."""
    provider.add_user("alice", PASSWORD)
    provider.deliver_many("alice", corpus.messages(3, seed=71))
    gate.first_login(ACCOUNT, PASSWORD)
    gate.wait_states({"delivery": 3}, timeout=60)
    client = gate.login(ACCOUNT, PASSWORD)
    assert client.stat()[0] == 3
    client.retr(1)
    client.retr(2)
    client.quit()
    gate.wait_states({"delivery": 1, "delivered": 2}, timeout=30)
    delivered = [r[0] for r in gate.db_query(
        "SELECT id FROM message WHERE state = 'delivered' ORDER BY seq")]
    (waiting,), = gate.db_query("SELECT id FROM message WHERE state = 'delivery'")
    for mid in delivered + [waiting]:
        assert os.path.exists(spool_file(gate, mid)), mid
    return delivered[0], delivered[1], waiting


def assert_only_old_delivered_removed(gate, old, young, waiting):
    gate.wait_message_state(old, None, timeout=30)
    itutil.wait_until(lambda: not os.path.exists(spool_file(gate, old)), 30,
                      what=f"the spool file of {old} to go")
    assert gate.message_state(young) == "delivered"
    assert gate.message_state(waiting) == "delivery"
    assert os.path.exists(spool_file(gate, young))
    assert os.path.exists(spool_file(gate, waiting))
    # The client still gets the message that waits for it.
    served = gate.pickup(ACCOUNT, PASSWORD)
    assert len(served) == 1


def test_restart_removes_delivered_mail_past_its_keep_time(make_popgate, provider, corpus):
    gate = make_popgate(provider=provider,
                        overrides={"queue": {"delivered_keep_days": KEEP_DAYS}})
    old, young, waiting = three_messages(gate, provider, corpus)
    age(gate, old, KEEP_DAYS + 1)
    age(gate, young, KEEP_DAYS - 1)
    age(gate, waiting, KEEP_DAYS + 5)        # waits for its client: never expires
    assert expired_lines(gate) == []

    gate.restart()
    assert_only_old_delivered_removed(gate, old, young, waiting)
    itutil.wait_until(lambda: any("removed 1 delivered message(s) older than 2 days" in line
                                  for line in expired_lines(gate)), 30,
                      what="the log line of the expiry")

    # The young one goes too once it is old enough, at the next start.
    age(gate, young, 2)
    gate.restart()
    gate.wait_message_state(young, None, timeout=30)
    itutil.wait_until(lambda: not os.path.exists(spool_file(gate, young)), 30,
                      what=f"the spool file of {young} to go")


def test_running_daemon_removes_delivered_mail_on_its_timer(make_popgate, provider, corpus):
    gate = make_popgate(provider=provider,
                        overrides={"queue": {"delivered_keep_days": KEEP_DAYS}})
    old, young, waiting = three_messages(gate, provider, corpus)
    pid = gate.pid
    age(gate, old, KEEP_DAYS + 1)
    age(gate, young, KEEP_DAYS - 1)
    age(gate, waiting, KEEP_DAYS + 5)
    # No restart: the next pass of the housekeeping timer removes it.
    gate.wait_message_state(old, None, timeout=HOUSEKEEPING_PERIOD + 60)
    assert gate.pid == pid and gate.running
    assert_only_old_delivered_removed(gate, old, young, waiting)
