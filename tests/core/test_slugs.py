"""Distinct hosts stay distinct: host names that only punctuation tells apart are two servers,
two topic trees and two Home Assistant devices, the same after a restart; no other host's
slug moves, and host names that differ only in case are one Windows host."""

from __future__ import annotations

from pathlib import Path

from bridge.core.events import UserEventType
from bridge.core.persistence import restore, snapshot
from bridge.core.state import (
    BridgeState,
    apply_event,
    find_server,
    forget_server,
    slug_of,
)
from bridge.core.topics import distinct_slug
from tests.bridge_runner import RunningBridge, bridge_config
from tests.core.test_state import SETTINGS, user
from tests.helpers import Mosquitto, Subscriber


def start(state: BridgeState, host: str, who: str = "anna") -> None:
    apply_event(state, user(UserEventType.SESSION_START, who, host), 1.0, SETTINGS)


def test_hosts_without_a_collision_keep_their_slug() -> None:
    state = BridgeState()
    for host in ("QSWIN01", "qs01.corp.local", "QS/+#\0EVIL", "Site", ""):
        start(state, host)
    assert sorted(state.servers) == sorted(
        ["qswin01", "qs01_corp_local", "qs_evil", "server_site", "unknown"]
    )


def test_hosts_that_differ_only_in_punctuation_are_two_servers() -> None:
    state = BridgeState()
    start(state, "QS.01", "anna")
    start(state, "qs_01", "bob")
    start(state, "qs.01", "carl")  # QS.01 in other case: the same Windows host
    assert len(state.servers) == 2
    first, second = slug_of(state, "QS.01"), slug_of(state, "qs_01")
    assert first == "qs_01"  # the first seen keeps the plain slug
    assert second == distinct_slug("qs_01", {"qs_01"})
    assert second.startswith("qs_01_")
    assert len(second) == len("qs_01_") + 6
    assert set(state.servers[first].sessions) == {("CORP", "anna"), ("CORP", "carl")}
    assert set(state.servers[second].sessions) == {("CORP", "bob")}
    assert state.servers[second].host == "qs_01"


def test_long_host_names_that_share_the_first_64_characters_stay_apart() -> None:
    state = BridgeState()
    start(state, "a" * 70 + "1")
    start(state, "a" * 70 + "2")
    assert len(state.servers) == 2
    assert all(len(slug) <= 64 for slug in state.servers)


def test_slugs_survive_a_restore_and_forget_finds_either_host() -> None:
    state = BridgeState()
    start(state, "QS.01")
    start(state, "qs_01")
    restored = restore(snapshot(state))
    assert restored.slugs == state.slugs
    start(restored, "qs_01", "bob")
    assert set(restored.servers[slug_of(state, "qs_01")].sessions) == {
        ("CORP", "anna"),
        ("CORP", "bob"),
    }
    hashed = slug_of(state, "qs_01")
    assert find_server(restored, "QS.01") == "qs_01"
    assert find_server(restored, "QS_01") == hashed  # a host name wins over a slug
    assert find_server(restored, hashed.upper()) == hashed
    assert find_server(restored, "nope") is None
    forget_server(restored, hashed)
    assert list(restored.servers) == ["qs_01"]
    # Unknown again: the slug it would be given, as QS.01 still holds qs_01 (its events are
    # never published under QS.01's topics).
    assert slug_of(restored, "qs_01") == hashed
    assert "qs_01" not in restored.slugs
    start(restored, "qs_01")  # back again: the same hashed slug
    assert slug_of(restored, "qs_01") == hashed


async def test_two_colliding_hosts_are_two_devices_across_a_restart(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = bridge_config(tmp_path, mosquitto.port)
    hashed = distinct_slug("qs_01", {"qs_01"})
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#", "homeassistant/#")
    bridge = await RunningBridge(config).start()
    try:
        bridge.users.send("QS.01;Start session;CORP;anna")
        await sub.wait_json("qlik2mqtt/qs_01", lambda p: p["users_preview"] == ["CORP\\anna"])
        bridge.users.send("qs_01;Start session;CORP;bob")
        await sub.wait_json(f"qlik2mqtt/{hashed}", lambda p: p["users_preview"] == ["CORP\\bob"])
        devices = {}
        for host, slug in (("QS.01", "qs_01"), ("qs_01", hashed)):
            topic = f"homeassistant/sensor/qlik2mqtt/{slug}_active_sessions/config"
            config_message = await sub.wait_json(topic, lambda p: True)
            devices[host] = config_message["device"]
            assert config_message["state_topic"] == f"qlik2mqtt/{slug}"
        assert devices["QS.01"]["identifiers"] != devices["qs_01"]["identifiers"]
        assert devices["qs_01"]["name"] == "Qlik Sense qs_01"
        await bridge.stop()

        bridge = await RunningBridge(config).start()  # the same state file
        mark = sub.mark()
        bridge.users.send("qs_01;Start session;CORP;carl")
        bridge.users.send("Qs.01;Start session;CORP;dora")
        after = await sub.wait_json(
            f"qlik2mqtt/{hashed}/event/user", lambda p: p["user_id"] == "carl", since=mark
        )
        assert after["server"] == "qs_01"
        await sub.wait_json(
            f"qlik2mqtt/{hashed}",
            lambda p: p["users_preview"] == ["CORP\\bob", "CORP\\carl"],
            since=mark,
        )
        await sub.wait_json(
            "qlik2mqtt/qs_01",
            lambda p: p["users_preview"] == ["CORP\\anna", "CORP\\dora"],
            since=mark,
        )
        site = await sub.wait_json("qlik2mqtt/site", lambda p: p["active_sessions"] == 4)
        assert site["servers"] == 2
    finally:
        await sub.stop()
        await bridge.close()
