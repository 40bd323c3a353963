"""Slack against a local server that answers as Slack does: webhook and Web API, 429, 5xx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture
from structlog.testing import capture_logs

import bridge.slack.sink as sink
from bridge.cli import main
from bridge.config import ConfigError, load_config
from bridge.slack.sink import SlackSink
from bridge.slack.templates import compile_template
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import Mosquitto, Subscriber, qlik2mqtt
from tests.slack_server import HangingServer, Reply, SlackServer

FAILURE = (
    "/scheduler-task-failed/;QSPROD02;Reload Sales;Sales;CORP\\svc;{task};aid-1;"
    "2026-05-06 14:23:45,123;ERROR;{execution};Max retries reached: script error"
)


@pytest.fixture
def hanging() -> Iterator[HangingServer]:
    server = HangingServer()
    yield server
    server.stop()


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sink's retry and shutdown bounds, shortened so a test waits seconds, not minutes."""
    monkeypatch.setattr(sink, "MAX_ATTEMPTS", 3)
    monkeypatch.setattr(sink, "BACKOFF_FIRST", 0.05)
    monkeypatch.setattr(sink, "STOP_GRACE", 1.0)
    monkeypatch.setattr(sink, "CHANNEL_GAP", 0.05)


def token_config(slack: SlackServer, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "token": "xoxb-test-token",
        "base_url": f"{slack.url}/api/",
        "task_events": {"channel": "#qlik-alerts"},
        **extra,
    }


def logged(logs: list[MutableMapping[str, Any]], event: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


def webhook_config(slack: SlackServer, **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "webhook_url": f"{slack.url}/services/T0/B0/SECRETPATH", **extra}


def texts(requests: list[Any]) -> list[str]:
    return [request.body.get("text", "") for request in requests]


async def start(
    tmp_path: Path, mosquitto: Mosquitto, slack_settings: dict[str, Any]
) -> tuple[RunningBridge, Subscriber]:
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    config = bridge_config(
        tmp_path,
        mosquitto.port,
        slack=slack_settings,
        homeassistant__enabled=False,
        qlik={"base_url": "https://qlik.corp.example"},
    )
    return await RunningBridge(config).start(), sub


async def test_a_failure_is_posted_once_with_its_fields(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    bridge, sub = await start(tmp_path, mosquitto, webhook_config(slack))
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))  # Qlik logs it twice
        bridge.tasks.send(FAILURE.format(task="tid-2", execution="eid-2").replace("Sales;", "HR;"))
        requests = await asyncio.to_thread(slack.wait_for, 2)
        first = requests[0]
        assert first.path == "/services/T0/B0/SECRETPATH"
        assert first.body["text"] == "Reload task failed: Reload Sales (app Sales) on QSPROD02"
        blocks = str(first.body["blocks"])
        for field in (
            "Reload Sales",
            "QSPROD02",
            "CORP\\\\svc",
            "eid-1",
            "2026-05-06T14:23:45.123",
            "Max retries reached: script error",
            "https://qlik.corp.example/sense/app/aid-1",
        ):
            assert field in blocks, field
        assert "tid-2" not in blocks
        assert texts(requests)[1].startswith("Reload task failed: Reload HR")  # not a duplicate
        stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 2)
        assert (stats["slack_failed"], stats["slack_dropped"]) == (0, 0)
    finally:
        await sub.stop()
        await bridge.close()


async def test_user_activity_when_enabled(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    settings = webhook_config(slack, user_activity={"enabled": True})
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        bridge.users.send("/proxy-session/;QSPROD02;Start session;CORP;anna;AppAccess;/hub/;x")
        requests = await asyncio.to_thread(slack.wait_for, 1)
        assert texts(requests) == ["CORP\\anna started a session on QSPROD02 (/hub/)"]
    finally:
        await sub.stop()
        await bridge.close()


async def test_429_waits_for_retry_after_and_delivers_once(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    slack.scripted.extend([(429, {"Retry-After": "1"}), (503, {})])
    bridge, sub = await start(tmp_path, mosquitto, webhook_config(slack))
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        requests = await asyncio.to_thread(slack.wait_for, 3)
        assert len(set(texts(requests))) == 1  # the same message, tried three times
        stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 1)
        assert stats["slack_failed"] == 0
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_dead_slack_costs_mqtt_nothing(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    slack.stop()  # nothing answers at that address any more
    bridge, sub = await start(tmp_path, mosquitto, webhook_config(slack))
    try:
        for number in range(20):
            bridge.tasks.send(FAILURE.format(task=f"tid-{number}", execution="e"))
        for number in range(50):
            bridge.users.send(f"QSPROD02;Start session;CORP;user{number}")
        await sub.wait_json("qlik2mqtt/qsprod02", lambda p: p["active_sessions"] == 50)
        events = await sub.wait_count("qlik2mqtt/qsprod02/event/task", 20)
        assert len(events) == 20
    finally:
        await sub.stop()
        await bridge.close()


async def test_token_mode_sends_the_bearer_token_and_the_channel(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    settings = {
        "enabled": True,
        "token": "xoxb-test-token",
        "base_url": f"{slack.url}/api/",
        "task_events": {"channel": "#qlik-alerts"},
    }
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        request = (await asyncio.to_thread(slack.wait_for, 1))[0]
        assert request.path == "/api/chat.postMessage"
        assert request.headers["Authorization"] == "Bearer xoxb-test-token"
        assert request.body["channel"] == "#qlik-alerts"
        assert request.body["text"].startswith("Reload task failed")
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_flapping_task_is_folded(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    settings = webhook_config(slack, task_events={"min_interval": 1.5})
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        for execution in ("e1", "e2", "e3", "e4"):  # four runs of one task failing
            bridge.tasks.send(FAILURE.format(task="tid-1", execution=execution))
        requests = await asyncio.to_thread(slack.wait_for, 2)
        assert texts(requests) == [
            "Reload task failed: Reload Sales (app Sales) on QSPROD02",
            "Reload task failed: Reload Sales (app Sales) on QSPROD02 — "
            "3 failures of this task since the last message",
        ]
    finally:
        await sub.stop()
        await bridge.close()


def test_test_slack_command(tmp_path: Path, slack: SlackServer) -> None:
    env = {
        "QLIK2MQTT_SLACK__ENABLED": "true",
        "QLIK2MQTT_SLACK__WEBHOOK_URL": f"{slack.url}/services/SECRET",
        "QLIK2MQTT_SLACK__USER_ACTIVITY__ENABLED": "true",
    }
    result = qlik2mqtt("test-slack", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 2
    assert "SECRET" not in result.stdout + result.stderr
    assert len(slack.wait_for(2)) == 2


def test_slack_needs_somewhere_to_post() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={"QLIK2MQTT_SLACK__ENABLED": "true", "QLIK2MQTT_SLACK__TOKEN": "xoxb-secret"},
        )
    problem = caught.value.problems[0]
    assert problem.startswith("slack: task_events is on but has nowhere to post")
    assert "xoxb-secret" not in problem


async def test_a_template_replaces_the_layout(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    template = tmp_path / "task.j2"
    template.write_text(
        '[{"type": "section", "text": {"type": "mrkdwn", "text": '
        '"*{{ event.task_name }}* broke on {{ event.server }}: {{ event.message }}"}}]'
    )
    user_template = tmp_path / "user.j2"
    user_template.write_text("{{ event.user_id }} → {{ event.event_type }}")
    settings = webhook_config(
        slack,
        task_events={"template": str(template)},
        user_activity={"enabled": True, "template": str(user_template)},
    )
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        request = (await asyncio.to_thread(slack.wait_for, 1))[0]
        assert request.body["blocks"] == [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*Reload Sales* broke on QSPROD02: Max retries reached: script error",
                },
            }
        ]
        assert request.body["text"].startswith("Reload task failed: Reload Sales")  # plain text
        bridge.users.send("QSPROD02;Start session;CORP;anna")
        user = (await asyncio.to_thread(slack.wait_for, 2))[1]
        assert user.body["blocks"][0]["text"]["text"] == "anna → session_start"
    finally:
        await sub.stop()
        await bridge.close()


def test_a_broken_template_is_a_config_error(tmp_path: Path) -> None:
    template = tmp_path / "bad.j2"
    template.write_text("{% if %}")
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={"QLIK2MQTT_SLACK__TASK_EVENTS__TEMPLATE": str(template)},
            check_template=compile_template,
        )
    assert caught.value.problems[0].startswith(f"slack.task_events.template: {template} line 1:")


def test_a_broken_template_stops_every_command_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check happens in the CLI, before any command runs (config itself knows nothing of
    Slack), with the key, the reason, the value and the variable named as for any config key."""
    template = tmp_path / "bad.j2"
    template.write_text("{% if %}")
    monkeypatch.setenv("QLIK2MQTT_SLACK__TASK_EVENTS__TEMPLATE", str(template))
    code = main(["appenders", "--bridge-host", "10.0.0.1", "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"qlik2mqtt: config error: slack.task_events.template: {template} line 1: Expected an "
        f"expression, got 'end of statement block' (got '{template}') "
        "(from QLIK2MQTT_SLACK__TASK_EVENTS__TEMPLATE)\n"
    )
    assert not (tmp_path / "out").exists()


def test_test_slack_posts_in_the_configured_layout(tmp_path: Path, slack: SlackServer) -> None:
    template = tmp_path / "task.j2"
    template.write_text("custom: {{ event.task_name }}")
    env = {
        "QLIK2MQTT_SLACK__ENABLED": "true",
        "QLIK2MQTT_SLACK__WEBHOOK_URL": f"{slack.url}/services/X",
        "QLIK2MQTT_SLACK__TASK_EVENTS__TEMPLATE": str(template),
    }
    result = qlik2mqtt("test-slack", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    block = slack.wait_for(1)[0].body["blocks"][0]
    assert block["text"]["text"] == "custom: Reload Sales (qlik2mqtt test message)"


# Faults: each of these lost messages or stopped the sink before the sink was made robust.


@pytest.mark.usefixtures("quick_retries")
async def test_a_hanging_slack_times_out_is_retried_within_bounds_and_shutdown_does_not_wait(
    tmp_path: Path, mosquitto: Mosquitto, hanging: HangingServer
) -> None:
    settings = {
        "enabled": True,
        "webhook_url": f"{hanging.url}/services/T0/B0/SECRETPATH",
        "timeout": "1s",
        "task_events": {"min_interval": 60},
    }
    with capture_logs() as logs:
        bridge, sub = await start(tmp_path, mosquitto, settings)
        try:
            started = time.monotonic()
            bridge.tasks.send(FAILURE.format(task="tid-1", execution="e1"))
            stats = await sub.wait_json(
                "qlik2mqtt/bridge/stats", lambda p: p["slack_failed"] == 1, timeout=15
            )
            gave_up_after = time.monotonic() - started
            assert stats["slack_sent"] == 0
            assert hanging.connections == 3  # MAX_ATTEMPTS, each timed out, then no more
            # Three timeouts of 1 s and two short backoffs: bounded, not minutes.
            assert 3.0 <= gave_up_after < 6.0
            # One more failure in flight and one folded behind it when the bridge stops.
            bridge.tasks.send(FAILURE.format(task="tid-2", execution="e1"))
            await asyncio.to_thread(hanging.wait_for, 4)
            bridge.tasks.send(FAILURE.format(task="tid-2", execution="e2"))
            await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 3)
            stopping = time.monotonic()
            await bridge.stop()
            stopped_in = time.monotonic() - stopping
        finally:
            await sub.stop()
            await bridge.close()
    assert stopped_in < sink.STOP_GRACE + 1.0, stopped_in  # the grace, not Slack's timeout
    failed = logged(logs, "Slack message not delivered")
    assert failed
    assert "timed out" in failed[0]["reason"]
    assert "SECRETPATH" not in str(logs)
    left = logged(logs, "Slack messages not posted before shutdown")
    assert [entry["count"] for entry in left] == [2]  # the one in flight and the folded summary


async def test_an_answer_cut_short_is_retried_and_later_messages_still_go(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    slack.scripted.append(Reply(truncate=True))  # IncompleteRead in the client
    bridge, sub = await start(tmp_path, mosquitto, webhook_config(slack))
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        bridge.tasks.send(FAILURE.format(task="tid-2", execution="eid-2").replace("Sales;", "HR;"))
        requests = await asyncio.to_thread(slack.wait_for, 3, 10.0)
        sent = texts(requests)
        assert sent[0] == sent[1]  # the first, cut short, then again
        assert sent[2].startswith("Reload task failed: Reload HR")
        stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 2)
        assert (stats["slack_failed"], stats["slack_dropped"]) == (0, 0)
    finally:
        await sub.stop()
        await bridge.close()


async def test_a_request_slack_sdk_refuses_fails_that_message_only_and_names_no_secret(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    """slack_sdk raises SlackRequestError, quoting the URL, for a webhook URL that is not http."""
    settings = webhook_config(
        slack,
        task_events={"webhook_url": "ftp://hooks.slack.example/services/T0/B0/SECRETPATH"},
        user_activity={"enabled": True},
    )
    with capture_logs() as logs:
        bridge, sub = await start(tmp_path, mosquitto, settings)
        try:
            bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
            await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_failed"] == 1)
            bridge.users.send("QSPROD02;Start session;CORP;anna")
            requests = await asyncio.to_thread(slack.wait_for, 1, 10.0)
            assert texts(requests) == ["CORP\\anna started a session on QSPROD02"]
            stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 1)
            assert stats["extension_errors"] == {"slack_sink.post": 1}
        finally:
            await sub.stop()
            await bridge.close()
    failed = logged(logs, "Slack message not delivered")
    assert len(failed) == 1
    assert "SlackRequestError" in failed[0]["reason"]
    assert "SECRETPATH" not in str(logs)


async def test_a_slack_worker_that_ends_is_restarted(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer, mocker: MockerFixture
) -> None:
    """The worker runs under the bridge's supervisor: made to fail once (a fault injected in
    our own code), it is restarted, counted, and the next message is posted."""
    work = SlackSink._work
    runs: list[None] = []

    async def failing_once(worker_of: SlackSink) -> None:
        runs.append(None)
        if len(runs) == 1:
            raise RuntimeError("the worker broke")
        await work(worker_of)

    mocker.patch.object(SlackSink, "_work", failing_once)
    with capture_logs() as logs:
        bridge, sub = await start(tmp_path, mosquitto, webhook_config(slack))
        try:
            bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
            requests = await asyncio.to_thread(slack.wait_for, 1, 10.0)
            assert texts(requests)[0].startswith("Reload task failed: Reload Sales")
            stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 1)
            assert stats["task_restarts"] == {"slack": 1}
            assert stats["slack_failed"] == 0  # it held no message when it ended
        finally:
            await sub.stop()
            await bridge.close()
    restarted = logged(logs, "background task failed; restarting")
    assert [entry["task"] for entry in restarted] == ["slack"]


async def test_folded_failures_pending_at_shutdown_are_posted(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    settings = webhook_config(slack, task_events={"min_interval": 600})
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        for execution in ("e1", "e2", "e3"):
            bridge.tasks.send(FAILURE.format(task="tid-1", execution=execution))
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 3)
        await asyncio.to_thread(slack.wait_for, 1)
        await bridge.stop()  # ten minutes before the summary was due
        assert texts(slack.requests) == [
            "Reload task failed: Reload Sales (app Sales) on QSPROD02",
            "Reload task failed: Reload Sales (app Sales) on QSPROD02 — "
            "2 failures of this task since the last message",
        ]
    finally:
        await sub.stop()
        await bridge.close()


# Slack's Web API answers HTTP 200 with {"ok": false, "error": …}.


async def test_a_web_api_error_is_a_failure_not_a_post(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    slack.scripted.append(Reply(error="channel_not_found"))
    with capture_logs() as logs:
        bridge, sub = await start(tmp_path, mosquitto, token_config(slack))
        try:
            bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
            stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_failed"] == 1)
            assert stats["slack_sent"] == 0
            assert len(slack.requests) == 1  # retrying cannot find the channel
        finally:
            await sub.stop()
            await bridge.close()
    failed = logged(logs, "Slack message not delivered")
    assert [(entry["target"], entry["reason"]) for entry in failed] == [
        ("#qlik-alerts", "Slack error: channel_not_found")
    ]


async def test_a_web_api_ratelimited_answer_waits_for_retry_after(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    slack.scripted.extend(
        [Reply(error="ratelimited", headers={"Retry-After": "1"}), Reply(status=502)]
    )
    bridge, sub = await start(tmp_path, mosquitto, token_config(slack))
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        stats = await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["slack_sent"] == 1)
        assert stats["slack_failed"] == 0
        assert len(slack.requests) == 3
        assert len(set(texts(slack.requests))) == 1
    finally:
        await sub.stop()
        await bridge.close()


def test_test_slack_reports_a_web_api_error(slack: SlackServer) -> None:
    slack.scripted.append(Reply(error="channel_not_found"))
    env = {
        "QLIK2MQTT_SLACK__ENABLED": "true",
        "QLIK2MQTT_SLACK__TOKEN": "xoxb-test-token",
        "QLIK2MQTT_SLACK__BASE_URL": f"{slack.url}/api/",
        "QLIK2MQTT_SLACK__TASK_EVENTS__CHANNEL": "#qlik-alerts",
    }
    result = qlik2mqtt("test-slack", env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "FAIL  task_events    #qlik-alerts: Slack error: channel_not_found"
    ]
    assert "xoxb-test-token" not in result.stdout + result.stderr
    assert len(slack.requests) == 1


async def test_with_a_webhook_and_a_token_a_kind_with_a_channel_posts_to_it(
    tmp_path: Path, mosquitto: Mosquitto, slack: SlackServer
) -> None:
    """Both set: task events name a channel and go there through the Web API (they went to the
    webhook, the channel silently ignored); user activity names none and takes the webhook."""
    settings = {
        **webhook_config(slack),
        "token": "xoxb-test-token",
        "base_url": f"{slack.url}/api/",
        "task_events": {"channel": "#qlik-alerts"},
        "user_activity": {"enabled": True},
    }
    bridge, sub = await start(tmp_path, mosquitto, settings)
    try:
        bridge.tasks.send(FAILURE.format(task="tid-1", execution="eid-1"))
        bridge.users.send("/proxy-session/;QSPROD02;Start session;CORP;anna;AppAccess;/hub/;x")
        requests = await asyncio.to_thread(slack.wait_for, 2)
        where = {request.body["text"].split()[0]: request for request in requests}
        task, user = where["Reload"], where["CORP\\anna"]
        assert (task.path, task.body["channel"]) == ("/api/chat.postMessage", "#qlik-alerts")
        assert user.path == "/services/T0/B0/SECRETPATH"
    finally:
        await sub.stop()
        await bridge.close()


def test_a_channel_a_webhook_cannot_use_is_said(tmp_path: Path, slack: SlackServer) -> None:
    env = {
        "QLIK2MQTT_SLACK__ENABLED": "true",
        "QLIK2MQTT_SLACK__WEBHOOK_URL": f"{slack.url}/services/T0/B0/X",
        "QLIK2MQTT_SLACK__TASK_EVENTS__CHANNEL": "#qlik-alerts",
        "QLIK2MQTT_STATE_FILE": str(tmp_path / "state.json"),
    }
    result = qlik2mqtt("test-slack", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "WARN  slack.task_events.channel (#qlik-alerts) is not used: task_events posts through "
        "slack.webhook_url" in result.stdout
    )
