"""The bridge on uvloop, the loop it runs on in production (`bridge.cli` runs it with uvloop
where it is installed; the rest of the suite runs on it too unless TEST_EVENT_LOOP says
`asyncio`: these run on it whatever that says). uvloop differs where it counts:
a timer for a time already due is a plain `Handle`, without `when()` (the coalescer used it,
and a login storm from quiet failed the state topics' hook: the storm test catches that), and
it keeps time in whole milliseconds (tests/runtime/test_coalesce.py runs the coalescer on
both). The byte budget and the user-list churn run here again as whole-bridge sequences."""

from __future__ import annotations

import asyncio
from pathlib import Path

import uvloop

from tests.bridge_runner import RunningBridge, bridge_config
from tests.extensions.test_state_budget import (
    test_a_big_state_waits_in_proportion_to_its_size_and_a_small_one_does_not as budget,
)
from tests.extensions.test_users_topic import (
    test_membership_churn_publishes_the_list_at_most_every_interval_and_only_on_change as churn,
)
from tests.helpers import Mosquitto, Subscriber

STORM = 2_000


def test_the_byte_budget_on_uvloop(tmp_path: Path, mosquitto: Mosquitto) -> None:
    uvloop.run(budget(tmp_path, mosquitto))


def test_the_user_list_churn_on_uvloop(tmp_path: Path, mosquitto: Mosquitto) -> None:
    uvloop.run(churn(tmp_path, mosquitto))


async def login_storm(tmp_path: Path, mosquitto: Mosquitto) -> None:
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


def test_a_login_storm_on_uvloop_fails_no_hook(tmp_path: Path, mosquitto: Mosquitto) -> None:
    uvloop.run(login_storm(tmp_path, mosquitto))
