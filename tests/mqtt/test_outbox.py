"""The outbox on a real SQLite file: order, spills, restarts and the bound."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from bridge.mqtt.outbox import MEMORY_HIGH, SPOOL_BATCH, Outbox, OutMessage
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber


def msg(number: int) -> OutMessage:
    return OutMessage(f"t/{number}", str(number).encode(), qos=1)


def drain(outbox: Outbox) -> list[str]:
    sent = []
    while batch := outbox.take(7):
        for message in batch:
            outbox.acked([message])
            sent.append(message.payload.decode())
    return sent


def test_memory_while_online_disk_while_offline_in_order(tmp_path: Path) -> None:
    dropped: list[int] = []
    outbox = Outbox(tmp_path / "o.sqlite", 1000, dropped.append)
    outbox.set_online(True)
    outbox.put(msg(1))
    outbox.set_online(False)  # broker gone: message 1 was taken and not acknowledged
    first = outbox.take(10)
    outbox.spill(first)
    for number in range(2, 30):
        outbox.put(msg(number))
    assert len(outbox) == 29
    outbox.set_online(True)
    outbox.put(msg(30))  # older events wait on disk: this one goes behind them
    assert drain(outbox) == [str(n) for n in range(1, 31)]
    assert len(outbox) == 0
    assert dropped == []


def test_a_restart_keeps_what_was_not_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    outbox = Outbox(path, 1000, lambda n: None)
    for number in range(100):
        outbox.put(msg(number))  # offline from the start: all on disk
    sent = outbox.take(10)
    for message in sent[:4]:
        outbox.acked([message])
    outbox.close(sent[4:])  # six sent, never acknowledged

    again = Outbox(path, 1000, lambda n: None)
    again.set_online(True)
    assert len(again) == 96
    assert drain(again) == [str(n) for n in range(4, 100)]
    again.close([])
    assert len(Outbox(path, 1000, lambda n: None)) == 0


def test_memory_only_spill_puts_unacked_back_in_front() -> None:
    outbox = Outbox(None, 1000, lambda n: None)
    outbox.set_online(True)
    for number in range(5):
        outbox.put(msg(number))
    taken = outbox.take(3)
    outbox.spill(taken)
    assert drain(outbox) == ["0", "1", "2", "3", "4"]


def test_past_the_bound_the_oldest_is_dropped_and_counted(tmp_path: Path) -> None:
    dropped: list[int] = []
    outbox = Outbox(tmp_path / "o.sqlite", 100, dropped.append)
    for number in range(150):
        outbox.put(msg(number))
    assert len(outbox) == 100
    assert sum(dropped) == 50
    outbox.set_online(True)
    assert drain(outbox) == [str(n) for n in range(50, 150)]


async def test_qos_0_events_from_disk_are_not_sent_again_after_a_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """With mqtt.qos 0 nothing is acknowledged: sending must be what removes a disk row."""
    config = bridge_config(tmp_path, mosquitto.port, mqtt__qos=0, homeassistant__enabled=False)
    path = config.state_file.with_name("outbox.sqlite")
    path.parent.mkdir(parents=True, exist_ok=True)
    waiting = Outbox(path, 100, lambda n: None)
    waiting.put(OutMessage("qlik2mqtt/qs1/event/user", b'{"event_type": "session_start"}', 0))
    waiting.close([])
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/qs1/event/user")
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for("qlik2mqtt/qs1/event/user")
    finally:
        await bridge.close()
        await sub.stop()
    assert len(Outbox(path, 100, lambda n: None)) == 0


def test_a_burst_beyond_the_memory_mark_waits_on_disk_in_order(tmp_path: Path) -> None:
    """Online, a backlog past MEMORY_HIGH costs disk, not memory; order is kept across the
    three places an event can wait (memory, disk, the batch on its way to disk)."""
    outbox = Outbox(tmp_path / "o.sqlite", 100_000, lambda n: None)
    outbox.set_online(True)
    count = MEMORY_HIGH + 3 * SPOOL_BATCH + 123
    for number in range(count):
        outbox.put(msg(number))
    assert len(outbox) == count
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        on_disk = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert on_disk == 3 * SPOOL_BATCH  # full batches went to disk; 123 wait for the next
    assert drain(outbox) == [str(n) for n in range(count)]
    with sqlite3.connect(tmp_path / "o.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_a_lost_connection_mid_burst_puts_what_memory_held_before_what_disk_holds(
    tmp_path: Path,
) -> None:
    """Events past the memory mark wait on disk; when the connection drops, the older ones
    that were in memory or in flight must still come first (they had no rows yet)."""
    outbox = Outbox(tmp_path / "o.sqlite", 100_000, lambda n: None)
    outbox.set_online(True)
    count = MEMORY_HIGH + 2 * SPOOL_BATCH
    for number in range(count):
        outbox.put(msg(number))
    sent = outbox.take(3000)
    outbox.acked(sent[:1000])  # the broker took the first thousand
    outbox.set_online(False)
    outbox.spill(sent[1000:])  # the rest of those sent were never acknowledged
    outbox.put(msg(count))  # offline now: on disk, behind everything
    outbox.close([])
    again = Outbox(tmp_path / "o.sqlite", 100_000, lambda n: None)  # and across a restart
    again.set_online(True)
    assert drain(again) == [str(n) for n in range(1000, count + 1)]


def test_shutdown_right_after_a_disk_error_still_writes_to_the_disk(tmp_path: Path) -> None:
    """A disk that failed a moment ago (a full disk freed, a busy database) is tried once more
    at shutdown, not left for the retry interval: the events are kept, not lost."""
    path = tmp_path / "o.sqlite"
    errors: list[str] = []
    now = [1000.0]
    outbox = Outbox(
        path, 1000, lambda n: None, on_disk_error=lambda a, e: errors.append(a),
        clock=lambda: now[0],
    )  # fmt: skip
    outbox.set_online(True)
    for number in range(100):
        outbox.put(msg(number))  # online: in memory
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the database: a write fails
    outbox.set_online(False)
    outbox.spill([])
    assert errors  # the disk failed; the events wait in memory
    blocker.execute("ROLLBACK")
    blocker.close()
    now[0] += 1.0  # well within DISK_RETRY
    assert outbox.close([]) == 0
    again = Outbox(path, 1000, lambda n: None)
    again.set_online(True)
    assert drain(again) == [str(n) for n in range(100)]
