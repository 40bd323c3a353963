"""A login storm on uvloop, the loop the bridge runs on (`bridge.cli` runs it with uvloop
where it is installed), and on asyncio's: uvloop differs where it counts: a timer for a time
already due is a plain `Handle`, without `when()` (the coalescer used it, and a login storm from
quiet failed the state topics' hook). The suite runs on uvloop unless TEST_EVENT_LOOP says
otherwise; tests where the loops differ in what they test are marked `event_loops("both")`
(the coalescer, the byte budget, the user list's churn: uvloop keeps time in whole ms)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber

STORM = 2_000


@pytest.mark.event_loops("both")
async def test_a_login_storm_fails_no_hook(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Logins sent at once from quiet: the loop reads them in bursts, each marking the state
    topics while the flush scheduled by the first is due: no hook may fail."""
    config = bridge_config(tmp_path, mosquitto.port)
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        bridge.users.send("QS1;Start session;CORP;first")
        await sub.wait_json("qlik2mqtt/qs1", lambda p: p["active_users"] == 1)
        await asyncio.sleep(4 * config.mqtt.state_interval)  # the storm must come from quiet
        for number in range(STORM):  # bounded; a burst, as a Qlik node's storm
            bridge.users.send(f"QS1;Start session;CORP;user{number:05}")
        await sub.wait_json("qlik2mqtt/qs1", lambda p: p["active_users"] == STORM + 1, timeout=30)
        stats = await sub.wait_json(
            "qlik2mqtt/bridge/stats", lambda p: p["events_published"] >= STORM, timeout=30
        )
        assert stats["extension_errors"] == {}
    finally:
        await sub.stop()
        await bridge.close()
