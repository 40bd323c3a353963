"""Filtered lamps judge the reload, not one node's line of it, and keep their verdict through
the joins and an upgrade (a second cold review, sequences on a real mosquitto)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import FIXTURES, Mosquitto, Subscriber
from tests.reload_lines import Reload, engine, tagged

SITE = "qlik2mqtt/site"


async def test_a_filtered_server_lamp_on_a_two_node_site_stays_on_while_flagged(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The engine's line (first, from the rim node that ran the reload) names the app id only;
    the scheduler's (from the central node) names the app. The lamp remembered the line's
    per-server key, which the join then renamed: it went ON and OFF while the failure was
    still flagged (by app name it never lit)."""
    outputs = [
        {"topic": "lamp/rim", "on": "ON", "off": "OFF", "when": "server:QSRIM01"},
        {
            "topic": "lamp/rimsales",
            "on": "ON",
            "off": "OFF",
            "when": "server:QSRIM01",
            "filter": {"apps": ["Sales"]},
        },
    ]
    config = bridge_config(tmp_path, mosquitto.port, alerts={"outputs": outputs})
    sub = await Subscriber(mosquitto.port).start("lamp/#", SITE)  # before: lamps not retained
    bridge = await RunningBridge(config).start()
    central = Reload(host="QSCENTRAL", app_name="Sales")
    rim = replace(central, host="QSRIM01")
    try:
        await sub.wait_for("lamp/rimsales", lambda m: m.payload == b"OFF")
        mark = sub.mark()
        bridge.tasks.send(engine(rim))
        await sub.wait_json(SITE, lambda p: p["reload_failure"] == "ON", since=mark)
        bridge.tasks.send(tagged(central))
        bridge.users.send("QSRIM01;Start session;CORP;anna")  # after both task lines
        site = await sub.wait_json(SITE, lambda p: p["active_sessions"] == 1, since=mark)
        assert (site["reload_failure"], site["failing_tasks"]) == ("ON", 1)
        assert sub.payloads("lamp/rim", mark) == [b"ON"]
        assert sub.payloads("lamp/rimsales", mark) == [b"ON"]  # lit by the reload, kept lit
        bridge.tasks.send(tagged(replace(central, execution="e2"), "succeeded"))
        await sub.wait_for("lamp/rimsales", lambda m: m.payload == b"OFF", since=mark)
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_filtered_lamp_comes_back_on_after_an_upgrade_from_format_1(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A format-1 state file keeps its failure under a `v1:` key; the filtered lamp looked for
    the task's key and stayed OFF while the unfiltered one was ON."""
    state_file = tmp_path / "state.json"
    shutil.copy(FIXTURES / "state" / "format-1.json", state_file)
    outputs = [
        {"topic": "lamp/all", "on": "ON", "off": "OFF"},
        {
            "topic": "lamp/sales",
            "on": "ON",
            "off": "OFF",
            "filter": {"apps": ["Sales € dashboard"]},
        },
    ]
    config = bridge_config(tmp_path, mosquitto.port, alerts={"outputs": outputs})
    assert config.state_file == state_file
    sub = await Subscriber(mosquitto.port).start("lamp/#")
    bridge = await RunningBridge(config).start()
    try:
        await sub.wait_for("lamp/all", lambda m: m.payload == b"ON")
        sales = await sub.wait_for("lamp/sales", lambda m: True)
        assert sales.payload == b"ON"
    finally:
        await sub.stop()
        await bridge.close()
