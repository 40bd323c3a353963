"""privacy.user_ids: hashed or omitted user ids never leave the bridge in any payload."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.core.events import LogEvent, LogLevel, LogSource, SourceFormat
from bridge.core.log_payloads import log_event_payload, server_log_events, site_log_events
from bridge.core.privacy import Mode, Privacy
from bridge.core.state import BridgeState, StateSettings, apply_event
from bridge.slack.messages import log_message
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber

NAMES = (b"anna", b"mia", "Jöran".encode())


def test_hashing_is_stable_keyed_and_keeps_the_directory() -> None:
    salted = Privacy("hashed", "secret")
    assert salted.user_id("anna") == salted.user_id("anna")
    assert salted.user_id("anna") != Privacy("hashed", "other").user_id("anna")
    assert salted.user_id("anna") != salted.user_id("bob")
    account = salted.account("CORP\\anna")
    assert account is not None
    assert account.startswith("CORP\\user-")
    assert "anna" not in account
    assert Privacy("omitted").account("CORP\\anna") is None
    assert Privacy("plain").account("CORP\\anna") == "CORP\\anna"
    said = salted.redact("Start session for user 'CORP\\Anna'", "anna")
    assert said == f"Start session for user 'CORP\\{salted.user_id('anna')}'"
    assert Privacy("omitted").redact("for CORP\\anna", "anna") == "for CORP\\[user]"


@pytest.mark.parametrize("mode", ["hashed", "omitted"])
async def test_no_user_name_in_any_message(tmp_path: Path, mosquitto: Mosquitto, mode: str) -> None:
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        privacy={"user_ids": mode, "salt": "s"},
        butler_compat__enabled=True,
    )
    sub = await Subscriber(mosquitto.port).start("#")
    bridge = await RunningBridge(config).start()
    try:
        bridge.users.send(
            "/proxy-session/;QS1;Start session;CORP;anna;AppAccess;/hub/;"
            "Start session for user 'CORP\\anna'"
        )
        bridge.users.send("QS1;Start session;CORP;Jöran".encode("cp1252"))
        bridge.tasks.send(
            "/scheduler-task-failed/;QS1;Reload;App;CORP\\mia;t;a;"
            "2026-05-06 14:23:45,123;ERROR;e;Max retries reached for CORP\\mia"
        )
        server = await sub.wait_json("qlik2mqtt/qs1", lambda p: p["active_sessions"] == 2)
        listed = await sub.wait_json("qlik2mqtt/qs1/users", lambda p: p["active_users"] == 2)
        event = await sub.wait_json("qlik2mqtt/qs1/event/task", lambda p: True)
        await sub.wait_for("qliksense/users/active/usernames")
        await sub.wait_for("qliksense/task_failure_full")
        if mode == "hashed":
            assert len(server["users_preview"]) == 2
            assert all(name.startswith("CORP\\user-") for name in server["users_preview"])
            assert listed["users"] == server["users_preview"]
            assert event["user"].startswith("CORP\\user-")
        else:
            assert server["users_preview"] == listed["users"] == []
            assert server["users_truncated"] is False
            assert event["user"] is None
        leaked = [m.topic for m in sub.messages for name in NAMES if name in m.payload]
        assert leaked == []
    finally:
        await bridge.close()
        await sub.stop()


@pytest.mark.parametrize("mode", ["hashed", "omitted"])
def test_redaction_replaces_the_user_id_only_where_it_stands_alone(mode: Mode) -> None:
    privacy = Privacy(mode, "s")
    token = privacy.user_id("ad") or "[user]"
    text = "User CORP\\ad loaded Admin's app for ad-hoc use by x.ad, then AD logged off (ad)."
    expected = (
        f"User CORP\\{token} loaded Admin's app for ad-hoc use by x.ad, "
        f"then {token} logged off ({token})."
    )
    assert privacy.redact(text, "ad") == expected
    assert (
        privacy.redact("Reloaded 'Sales' for j.doe.", "j.doe")
        == f"Reloaded 'Sales' for {privacy.user_id('j.doe') or '[user]'}."
    )


@pytest.mark.parametrize("mode", ["hashed", "omitted"])
def test_a_log_event_names_no_user_in_its_payload_last_error_or_slack_message(mode: Mode) -> None:
    """The user id, the scheduler's user and the Windows account, all three at once."""
    privacy = Privacy(mode, "salt")
    text = "Task for anna by CORP\\bob failed; service account qlikservice could not log on"
    event = LogEvent(
        source=LogSource.SCHEDULER,
        level=LogLevel.ERROR,
        server="QS1",
        source_format=SourceFormat.XML,
        windows_user="CORP\\qlikservice",
        user_id="anna",
        user="CORP\\bob",
        message=text,
        exception_message=text,
    )
    state = BridgeState()
    apply_event(state, event, 1.0, StateSettings(None, 60.0, None))
    payload = log_event_payload(event, 1.0, privacy)
    slack = log_message(event, None, privacy=privacy)
    said = [
        payload["message"],
        payload["exception_message"],
        server_log_events(state.servers["qs1"], privacy)["last_error"]["message"],
        site_log_events(state, privacy)["last_error"]["message"],
        slack.text,
        str(slack.blocks),
    ]
    for shown in said:
        for name in ("anna", "bob", "qlikservice"):
            assert name not in shown, (name, shown)
    assert payload["message"].startswith("Task for ")
