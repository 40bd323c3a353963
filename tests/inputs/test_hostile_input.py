"""Hostile input and spoofing against the running bridge: floods, entity bombs, wildcard host
names, command topics that are switched off."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
from pathlib import Path

from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, UdpSender, bridge_env

BOMB = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{"&lol" + str(i - 1) + ";" if i > 1 else "&lol;"}' * 10 + '">'
        for i in range(1, 10)
    )
    + "]><log4j:event><log4j:message>&lol9;</log4j:message></log4j:event>"
).encode()


def rss_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_a_flood_of_junk_and_entity_bombs_is_survived(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = bridge_env(
        mosquitto.port, tmp_path, QLIK2MQTT_STATS_INTERVAL="0.5", QLIK2MQTT_LOGGING__FORMAT="json"
    )
    user_port = int(settings["QLIK2MQTT_UDP__USER_ACTIVITY_PORT"])
    env = {**os.environ, **settings}
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    log_path = tmp_path / "bridge.log"
    log_file = log_path.open("wb")  # a file, not a pipe: a full pipe would block the bridge
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=log_file,
    )
    sender = UdpSender(user_port)
    try:
        await sub.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
        generator = random.Random(7)
        for number in range(25_000):  # bounded: 25,000 datagrams, then stop
            size = generator.choice((0, 1, 16, 200, 1400, 8000))
            sender.send(generator.randbytes(size))
            if number % 1250 == 0:
                sender.send(BOMB)
            if number % 500 == 0:
                await asyncio.sleep(0)  # let the subscriber's loop breathe
        # While the flood still fills the socket's receive buffer, the kernel drops what comes
        # next, so the valid datagram is offered once a second (bounded) until it gets through:
        # the point is that the listener still works afterwards, not that UDP cannot overflow.
        event = None
        for _attempt in range(60):
            sender.send("QS1;Start session;CORP;survivor")
            with contextlib.suppress(AssertionError):
                event = await sub.wait_json(
                    "qlik2mqtt/qs1/event/user", lambda p: p["user_id"] == "survivor", timeout=1
                )
                break
        assert event is not None, "no valid datagram came through within 60 s after the flood"
        assert event["event_type"] == "session_start"
        stats = await sub.wait_json(
            "qlik2mqtt/bridge/stats", lambda p: p["rejected"]["bad_xml"] >= 1, timeout=30
        )
        assert stats["rejected_total"] > 10_000
        assert process.returncode is None  # still running
        assert rss_peak_mb(process.pid) < 200
    finally:
        sender.close()
        await sub.stop()
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
        log_file.close()
    assert process.returncode == 0
    log = log_path.read_text()
    assert log.count('"datagram refused"') < 100  # rate-limited, not one line per datagram
    assert "Traceback" not in log


async def test_host_names_never_make_wildcards_or_extra_levels(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start("#")
    try:
        for host in ("QS/+#EVIL", "qs\x00nul", "a/b/c", "+", "#", "bridge", "site", "\u00e9\u00e8"):
            bridge.users.send(f"{host};Start session;CORP;anna".encode())
        bridge.users.send("QS1;Start session;CORP;last")
        await sub.wait_json("qlik2mqtt/qs1/event/user", lambda p: p["user_id"] == "last")
        topics = {m.topic for m in sub.messages}
        assert not [t for t in topics if any(c in t for c in "+#\x00")]
        server_levels = {t.split("/")[1] for t in topics if t.startswith("qlik2mqtt/")}
        assert {"qs_evil", "a_b_c", "server_bridge", "server_site"} <= server_levels
        assert all(len(t.split("/")) <= 4 for t in topics if t.startswith("qlik2mqtt/"))
    finally:
        await sub.stop()


async def test_command_topics_can_be_switched_off(tmp_path: Path, mosquitto: Mosquitto) -> None:
    config = bridge_config(
        tmp_path, mosquitto.port, commands={"acknowledge": False, "forget": False}
    )
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#", "homeassistant/button/#")
    bridge = await RunningBridge(config).start()
    try:
        button = await sub.wait_for("homeassistant/button/qlik2mqtt/acknowledge/config")
        assert button.payload == b""  # no button for a command that is off
        bridge.tasks.send("QS1;Reload Sales;Sales;CORP\\svc")
        await sub.wait_json("qlik2mqtt/site", lambda p: p["reload_failure"] == "ON")
        sub.publish("qlik2mqtt/bridge/acknowledge", b"x")
        sub.publish("qlik2mqtt/bridge/forget", b"QS1")
        mark = sub.mark()
        bridge.users.send("QS1;Start session;CORP;anna")  # a later state publish to look at
        site = await sub.wait_json(
            "qlik2mqtt/site", lambda p: p["active_sessions"] == 1, since=mark
        )
        assert site["reload_failure"] == "ON"
        assert site["servers"] == 1
    finally:
        await sub.stop()
        await bridge.close()
