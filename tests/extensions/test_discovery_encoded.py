"""A server's discovery configs are built and encoded once and kept (issue 25): a reconnect
sends the same bytes again without building them."""

from __future__ import annotations

import json

from discovery import (
    DiscoverySettings,
    bridge_configs,
    encoded_bridge_configs,
    encoded_server_configs,
    server_configs,
)

SETTINGS = DiscoverySettings(
    prefix="homeassistant", base_topic="qlik2mqtt", version="9.9", support_url="https://x"
)


def test_the_kept_configs_are_the_built_ones_encoded() -> None:
    encoded = encoded_server_configs(SETTINGS, "qs1", "QS1 Ö")
    built = server_configs(SETTINGS, "qs1", "QS1 Ö")
    assert [topic for topic, _ in encoded] == [topic for topic, _ in built]
    assert [json.loads(data) for _, data in encoded] == [payload for _, payload in built]
    assert "QS1 Ö".encode() in b"".join(data for _, data in encoded)  # as is, not \\u escaped
    assert [json.loads(d) for _, d in encoded_bridge_configs(SETTINGS)] == [
        p for _, p in bridge_configs(SETTINGS)
    ]


def test_a_reconnect_gets_the_kept_configs_and_a_new_host_its_own() -> None:
    first = encoded_server_configs(SETTINGS, "qs1", "QS1")
    assert encoded_server_configs(SETTINGS, "qs1", "QS1") is first
    renamed = encoded_server_configs(SETTINGS, "qs1", "qs1.corp")
    assert renamed != first
    other = DiscoverySettings(
        prefix="ha", base_topic="qlik2mqtt", version="9.9", support_url="https://x"
    )
    assert encoded_server_configs(other, "qs1", "QS1")[0][0].startswith("ha/")
