"""`<base>/<server>/users` on a real mosquitto: every name, published only when the users
changed and at most once per `state.users_interval`, while the state topic keeps up."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Received, Subscriber

BASE = "qlik2mqtt"
SERVER = f"{BASE}/qs1"
USERS = f"{SERVER}/users"
INTERVAL = 0.5
CHURN_SECONDS = 2.5


async def arrivals(sub: Subscriber, topic: str, times: list[float]) -> None:
    """Record when each message on `topic` arrives (until cancelled)."""
    loop = asyncio.get_running_loop()
    seen = sub.mark()
    while True:
        received: Received = await sub.wait_for(topic, since=seen, timeout=60)
        times.append(loop.time())
        seen = next(i for i in range(seen, len(sub.messages)) if sub.messages[i] is received) + 1


@pytest.mark.event_loops("both")  # uvloop keeps time in whole milliseconds
async def test_membership_churn_publishes_the_list_at_most_every_interval_and_only_on_change(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        state={"users_interval": INTERVAL, "users_max_bytes": 1024},
    )
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    times: list[float] = []
    watcher = asyncio.create_task(arrivals(sub, USERS, times))
    loop = asyncio.get_running_loop()
    try:
        bridge.users.send("QS1;Start session;CORP;anna")
        first = await sub.wait_json(USERS, lambda p: True)  # the first change: at once
        assert first == {
            "server": "QS1",
            "active_users": 1,
            "users": ["CORP\\anna"],
            "users_left_out": 0,
        }
        churn_start = sub.mark()
        active = {"anna"}
        began = loop.time()
        number = 0
        while loop.time() - began < CHURN_SECONDS and number < 1_000:  # bounded twice
            bridge.users.send(f"QS1;Start session;CORP;user{number:03}")
            active.add(f"user{number:03}")
            if number % 3 == 2:
                bridge.users.send(f"QS1;Stop session;CORP;user{number - 2:03}")
                active.discard(f"user{number - 2:03}")
            number += 1
            await asyncio.sleep(0.01)  # pacing the load, not waiting for a result
        expected = len(active)
        final = await sub.wait_json(SERVER, lambda p: p["active_users"] == expected)
        listed = await sub.wait_json(
            USERS, lambda p: p["active_users"] == expected, since=churn_start
        )
        churned = len(sub.on(USERS, since=churn_start))
        updates = len(sub.on(SERVER, since=churn_start))
        # The list: at most one per interval (and the last); the state: many more.
        assert 2 <= churned <= CHURN_SECONDS / INTERVAL + 2, churned
        assert updates > 2 * churned, (updates, churned)
        # Capped at 1 KiB of names: the first ones, sorted, and the rest counted.
        assert len(listed["users"]) + listed["users_left_out"] == expected
        assert listed["users_left_out"] > 0
        assert listed["users"] == sorted(f"CORP\\{who}" for who in active)[: len(listed["users"])]
        assert final["users_truncated"] is False  # the state's preview: 8 KiB, all of them
        assert len(final["users_preview"]) == expected

        # Right after a publish of the list (the next one is an interval away): a change of
        # connections only, and a login with its logout. The same users: nothing to publish.
        bridge.users.send("QS1;Start session;CORP;aaa-after")
        await sub.wait_json(USERS, lambda p: p["active_users"] == expected + 1)
        quiet = sub.mark()
        bridge.users.send("QS1;Open connection;CORP;anna")
        bridge.users.send("QS1;Start session;CORP;aab-brief")
        bridge.users.send("QS1;Stop session;CORP;aab-brief")
        await sub.wait_json(
            f"{SERVER}/event/user", lambda p: p["event_type"] == "session_stop", since=quiet
        )
        # Then a real change: the only list published since, without the brief one.
        bridge.users.send("QS1;Start session;CORP;aac-last")
        last = await sub.wait_json(USERS, lambda p: p["active_users"] == expected + 2)
        assert [m.json() for m in sub.on(USERS, since=quiet)] == [last]
        assert "CORP\\aac-last" in last["users"]
        assert "CORP\\aab-brief" not in last["users"]
        state = await sub.wait_json(SERVER, lambda p: p["active_users"] == expected + 2)
        assert state["active_connections"] == 1

        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert len(gaps) >= churned
        assert min(gaps) > INTERVAL * 0.6, gaps  # (arrival times: some jitter)
        oversized = [m.topic for m in sub.messages if m.topic != USERS and len(m.payload) > 16384]
        assert oversized == []
    finally:
        watcher.cancel()
        await sub.stop()
        await bridge.close()
