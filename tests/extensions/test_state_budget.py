"""Retained state keeps to `mqtt.state_bytes_per_second` per topic, on a real mosquitto: a big
server's state and user list are published less often, a small server beside it is not held
back, and the newest state always comes."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.extensions.test_users_topic import arrivals
from tests.helpers import Mosquitto, Subscriber

BASE = "qlik2mqtt"
BIG = f"{BASE}/qs1"
SMALL = f"{BASE}/qs2"
RATE = 4096
CHURN_SECONDS = 3.0


@pytest.mark.event_loops("both")  # uvloop keeps time in whole milliseconds
async def test_a_big_state_waits_in_proportion_to_its_size_and_a_small_one_does_not(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        mqtt__state_bytes_per_second=RATE,
        state={"users_interval": 0.05},
    )
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start(f"{BASE}/#")
    big_times: list[float] = []
    watcher = asyncio.create_task(arrivals(sub, BIG, big_times))
    loop = asyncio.get_running_loop()
    try:
        held = [f"a-rather-long-user-name-{n:04}" for n in range(400)]  # 8 KiB of preview
        for name in held:
            bridge.users.send(f"QS1;Start session;CORP;{name}")
        await sub.wait_json(BIG, lambda p: p["active_users"] == len(held), timeout=30)
        bridge.users.send("QS2;Start session;CORP;solo")
        await sub.wait_json(SMALL, lambda p: p["active_users"] == 1)

        churn = sub.mark()
        began = loop.time()
        number = 0
        while loop.time() - began < CHURN_SECONDS and number < 200:  # bounded twice
            bridge.users.send(f"QS1;Start session;CORP;churn{number:03}")
            bridge.users.send(f"QS2;{'Stop' if number % 2 == 0 else 'Start'} session;CORP;solo")
            number += 1
            await asyncio.sleep(0.05)  # pacing the load, not waiting for a result
        window = loop.time() - began
        final = await sub.wait_json(BIG, lambda p: p["active_users"] == len(held) + number)
        expected_small = 1 if number % 2 == 0 else 0
        await sub.wait_json(SMALL, lambda p: p["active_users"] == expected_small)

        big = sub.on(BIG, since=churn)
        small = sub.on(SMALL, since=churn)
        largest = max(len(m.payload) for m in big)
        assert largest > 8000, largest  # what makes it big: the preview
        assert final["users_truncated"] is True
        # Bytes within the window: the budget's, plus the one that went at once, plus jitter.
        in_window = sum(len(m.payload) for m in big[:-1])
        assert in_window <= RATE * window + largest * 1.5, (in_window, window, len(big))
        gaps = [later - earlier for earlier, later in itertools.pairwise(big_times)]
        assert gaps, big_times
        assert min(gaps) > 0.6 * largest / RATE, gaps  # (arrival times: some jitter)
        # The small server beside it keeps the coalescing interval: many more publishes.
        assert len(small) >= 8, len(small)
        assert len(small) > 2 * len(big), (len(small), len(big))
        # The list, 400+ names of 30 bytes (12 KB+), is spaced by the same budget.
        lists = sub.on(f"{BIG}/users", since=churn)
        assert 1 <= len(lists) <= window * RATE / 12_000 + 2, len(lists)
    finally:
        watcher.cancel()
        await sub.stop()
        await bridge.close()


async def test_a_broker_back_gets_the_newest_state_at_once_whatever_the_budget_waits(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A big state's budget wait (here about 9 s) does not outlast the broker: a broker that
    restarted (without persistence: it lost every retained message) gets the newest state as
    soon as the bridge is back, not when the wait would have ended."""
    config = bridge_config(tmp_path, mosquitto.port, mqtt__state_bytes_per_second=1024)
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start(BIG)
    try:
        held = [f"a-rather-long-user-name-{n:04}" for n in range(400)]  # 9 KB: waits 9 s
        for name in held:
            bridge.users.send(f"QS1;Start session;CORP;{name}")
        await sub.wait_json(BIG, lambda p: p["active_users"] == len(held), timeout=30)
        bridge.users.send("QS1;Start session;CORP;latest")  # held back by the budget
    finally:
        await sub.stop()
    mosquitto.stop()
    mosquitto.start()
    back = await Subscriber(mosquitto.port).start(BIG)
    try:
        # Within the budget's wait: the bridge reconnects in about a second.
        state = await back.wait_json(BIG, lambda p: p["active_users"] == len(held) + 1, timeout=6)
        assert "CORP\\latest" not in state["users_preview"]  # those held longest are shown
    finally:
        await back.stop()
        await bridge.close()
