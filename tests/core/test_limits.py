"""`limits:`: past a cap only the new name is not tracked (its events are still published and
counted as untracked); known servers, users and tasks keep working, and nothing a datagram can
create grows without end."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from bridge import PROJECT_URL, __version__
from bridge.commands.builtin import command_buttons
from bridge.config import Config, LimitsConfig
from bridge.core.events import TaskEventType, UserEventType
from bridge.core.persistence import restore, snapshot
from bridge.core.state import (
    BridgeState,
    Cap,
    StateSettings,
    acknowledge,
    apply_event,
    expire,
    slug_of,
)
from discovery import DiscoverySettings, bridge_configs, server_configs
from tests.core.test_state import task, user
from tests.helpers import Mosquitto, Subscriber, UdpSender, bridge_env

MAX_SERVERS = LimitsConfig().max_servers
DISCOVERY = DiscoverySettings(
    "homeassistant", "qlik2mqtt", __version__, PROJECT_URL, command_buttons(Config())
)

CAPPED = StateSettings(
    stale_after=None,
    dedup_window=60.0,
    auto_clear_after=None,
    max_servers=2,
    max_sessions_per_server=2,
    max_tasks_per_server=2,
)


def test_a_new_server_past_the_cap_is_published_not_tracked() -> None:
    state = BridgeState()
    for host in ("QS1", "QS2"):
        assert apply_event(state, user(UserEventType.SESSION_START, "a", host), 1.0, CAPPED).any
    past = apply_event(state, user(UserEventType.SESSION_START, "a", "QS3"), 2.0, CAPPED)
    assert (past.publish_event, past.untracked) == (True, Cap.SERVERS)
    assert not past.servers  # no server state to publish
    assert sorted(state.servers) == ["qs1", "qs2"]
    assert "qs3" not in state.slugs.values()
    assert slug_of(state, "QS3") == "qs3"  # its event topic's slug, without state
    known = apply_event(state, user(UserEventType.SESSION_START, "b", "qs1"), 3.0, CAPPED)
    assert known.untracked is None
    assert known.publish_event
    assert len(state.servers["qs1"].sessions) == 2


def test_an_untracked_host_never_takes_a_tracked_servers_slug() -> None:
    state = BridgeState()
    for host in ("qs_1", "QS2"):
        apply_event(state, user(UserEventType.SESSION_START, "a", host), 1.0, CAPPED)
    apply_event(state, user(UserEventType.SESSION_START, "a", "QS.1"), 2.0, CAPPED)
    assert slug_of(state, "QS.1").startswith("qs_1_")  # not qs_1's topics


def test_a_task_event_of_an_untracked_server_is_still_published_once() -> None:
    state = BridgeState()
    for host in ("QS1", "QS2"):
        apply_event(state, user(UserEventType.SESSION_START, "a", host), 1.0, CAPPED)
    failed = task(TaskEventType.TASK_FAILED, "t1", server="QS3")
    assert apply_event(state, failed, 2.0, CAPPED).publish_event
    assert not apply_event(state, failed, 3.0, CAPPED).publish_event  # Qlik's repeat
    assert not state.failing  # not tracked: no server to hold it


def test_a_new_user_past_the_cap_is_published_not_tracked_until_one_leaves() -> None:
    state = BridgeState()
    for who in ("a", "b"):
        apply_event(state, user(UserEventType.SESSION_START, who), 1.0, CAPPED)
    past = apply_event(state, user(UserEventType.SESSION_START, "c"), 2.0, CAPPED)
    assert (past.publish_event, past.untracked) == (True, Cap.SESSIONS)
    assert set(state.servers["qs1"].sessions) == {("CORP", "a"), ("CORP", "b")}
    assert state.servers["qs1"].last_event_at == 2.0  # the server is tracked: it was seen
    assert apply_event(state, user(UserEventType.SESSION_START, "a"), 3.0, CAPPED).publish_event
    apply_event(state, user(UserEventType.SESSION_STOP, "a"), 4.0, CAPPED)
    after = apply_event(state, user(UserEventType.SESSION_START, "c"), 5.0, CAPPED)
    assert after.untracked is None
    assert set(state.servers["qs1"].sessions) == {("CORP", "b"), ("CORP", "c")}


def test_connections_without_a_session_are_capped_too() -> None:
    state = BridgeState()
    for who in ("x", "y"):
        apply_event(state, user(UserEventType.CONNECTION_OPEN, who), 1.0, CAPPED)
    past = apply_event(state, user(UserEventType.CONNECTION_OPEN, "z"), 1.0, CAPPED)
    assert (past.publish_event, past.untracked) == (True, Cap.SESSIONS)
    assert apply_event(state, user(UserEventType.CONNECTION_OPEN, "x"), 2.0, CAPPED).any
    assert len(state.servers["qs1"].connections) == 2
    assert state.servers["qs1"].active_connections == 3


def test_tracked_tasks_are_capped_and_freed_by_success_acknowledge_and_auto_clear() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED, "t1"), 1.0, CAPPED)
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t2"), 1.0, CAPPED)
    past = apply_event(state, task(TaskEventType.TASK_FAILED, "t3"), 2.0, CAPPED)
    assert (past.publish_event, past.untracked) == (True, Cap.TASKS)
    assert "qs1|task:t3" not in state.failing
    assert state.servers["qs1"].failed_tasks == 2  # counted as a failure all the same
    again = apply_event(state, task(TaskEventType.TASK_FAILED, "t1", "e2"), 3.0, CAPPED)
    assert again.publish_event  # a known task fails again: not a new name
    assert again.untracked is None
    # The cap counts tasks, not events: a success of anything is tracked.
    assert apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t9"), 3.0, CAPPED).any
    apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t1", "e3"), 4.0, CAPPED)
    assert apply_event(state, task(TaskEventType.TASK_FAILED, "t3", "e4"), 5.0, CAPPED).any
    assert "qs1|task:t3" in state.failing
    acknowledge(state)
    assert state.servers["qs1"].tracked_tasks == 0
    for number in range(2):
        apply_event(state, task(TaskEventType.TASK_FAILED, f"u{number}"), 100.0, CAPPED)
    clearing = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=10.0, max_tasks_per_server=2
    )
    expire(state, 200.0, clearing)
    after = apply_event(state, task(TaskEventType.TASK_FAILED, "u2"), 201.0, CAPPED)
    assert after.untracked is None


def test_the_task_count_is_rebuilt_from_a_restored_state() -> None:
    state = BridgeState()
    apply_event(state, task(TaskEventType.TASK_FAILED, "t1"), 1.0, CAPPED)
    apply_event(state, task(TaskEventType.TASK_ABORTED, "t2"), 1.0, CAPPED)
    restored = restore(snapshot(state))
    assert restored.servers["qs1"].tracked_tasks == 2
    past = apply_event(restored, task(TaskEventType.TASK_FAILED, "t3"), 2.0, CAPPED)
    assert past.untracked is Cap.TASKS


def test_the_dedup_memory_is_bounded_within_its_window() -> None:
    settings = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=None, dedup_memory=100
    )
    state = BridgeState()
    for number in range(1_000):  # a flood of distinct task events within one second
        event = task(TaskEventType.TASK_SUCCEEDED, f"t{number}")
        apply_event(state, event, 1.0 + number / 1000, settings)
    assert len(state.recent_task_events) == 100
    # The newest are still remembered: their repeats are duplicates.
    repeat = apply_event(state, task(TaskEventType.TASK_SUCCEEDED, "t999"), 2.0, settings)
    assert not repeat.publish_event


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


FLOOD_HOSTS = 3_000
CHUNK = 200  # datagrams between two round trips: far below what the receive buffer holds


async def flood(sender: UdpSender, sub: Subscriber, prefix: str, probe: str) -> None:
    """FLOOD_HOSTS session starts, each from a new host name, paced in chunks: after each, a
    session event of the legitimate server QS1 must come through (bounded by its timeout)."""
    for start in range(0, FLOOD_HOSTS, CHUNK):
        for number in range(start, start + CHUNK):
            sender.send(f"{prefix}-{number:05};Start session;CORP;spoof")
        who = f"{probe}{start}"

        def is_probe(payload: dict[str, str], who: str = who) -> bool:
            return payload["user_id"] == who

        mark = sub.mark()
        sender.send(f"QS1;Start session;CORP;{who}")
        await sub.wait_json("qlik2mqtt/qs1/event/user", is_probe, since=mark)


async def retained_under(port: int, prefix: str) -> set[str]:
    """The topics with a retained message under `prefix`/: a fresh subscriber gets them all
    first, then a message it publishes itself after subscribing (a barrier, not a sleep)."""
    reader = await Subscriber(port).start(f"{prefix}/#")
    try:
        reader.publish(f"{prefix}/zz-barrier", b"x")
        await reader.wait_for(f"{prefix}/zz-barrier")
        return {m.topic for m in reader.messages if m.retain and m.payload}
    finally:
        await reader.stop()


async def test_a_flood_of_host_names_stays_within_the_caps(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = bridge_env(
        mosquitto.port, tmp_path, QLIK2MQTT_STATS_INTERVAL="0.2", QLIK2MQTT_LOGGING__FORMAT="json"
    )
    sender = UdpSender(int(settings["QLIK2MQTT_UDP__USER_ACTIVITY_PORT"]))
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log_file:  # a file, not a pipe, which could fill and block
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            "run",
            env={**os.environ, **settings},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log_file,
        )
        try:
            await sub.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
            sender.send("QS1;Start session;CORP;anna")  # the legitimate server, there first
            await sub.wait_json("qlik2mqtt/qs1", lambda p: p["users_preview"] == ["CORP\\anna"])
            before = rss_mb(process.pid)
            await flood(sender, sub, "SPOOF", "probe")
            after_first = rss_mb(process.pid)
            await flood(sender, sub, "OTHER", "again")  # 3,000 more: nothing more is kept
            after_second = rss_mb(process.pid)
            untracked = FLOOD_HOSTS * 2 - (MAX_SERVERS - 1)
            stats = await sub.wait_json(
                "qlik2mqtt/bridge/stats",
                lambda p: p["untracked_servers"] >= untracked,
                timeout=10,
            )
            assert stats["untracked_servers"] == untracked  # every datagram counted
            assert "limits.max_servers reached" in " ".join(stats["problems"])
            # The second flood's hosts are all past the cap: each published all the same.
            spoofed = {m.topic for m in sub.messages if m.topic.startswith("qlik2mqtt/other-")}
            assert len(spoofed) == FLOOD_HOSTS
            site = await sub.wait_json("qlik2mqtt/site", lambda p: p["servers"] == MAX_SERVERS)
            assert site["servers"] == MAX_SERVERS
            qs1 = await sub.wait_json("qlik2mqtt/qs1", lambda p: len(p["users_preview"]) == 31)
            assert "CORP\\anna" in qs1["users_preview"]  # the known server kept every session
            configs = await retained_under(mosquitto.port, "homeassistant")
            per_server = len(server_configs(DISCOVERY, "x", "x"))
            announced = [
                config for config in bridge_configs(DISCOVERY) if config[1]
            ]  # not removals
            assert len(configs) == len(announced) + MAX_SERVERS * per_server
            servers = await retained_under(mosquitto.port, "qlik2mqtt")
            assert len({topic.split("/")[1] for topic in servers}) <= MAX_SERVERS + 2
            print(
                f"\nRSS {before:.1f} MB before, {after_first:.1f} MB after {FLOOD_HOSTS} host "
                f"names, {after_second:.1f} MB after {FLOOD_HOSTS} more; "
                f"{len(configs)} discovery configs, {len(servers)} retained qlik2mqtt topics"
            )
            assert after_second - after_first < 5.0  # untracked names cost no memory
            assert after_first - before < 40.0
        finally:
            sender.close()
            await sub.stop()
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0
    log = log_path.read_text()
    assert 1 <= log.count("limits.max_servers reached") < 10  # warned, then rate-limited
    assert "Traceback" not in log
