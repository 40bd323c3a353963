"""`task/start` end to end: a request on the broker (a real mosquitto), the bridge, a local
HTTPS server that answers as QRS does (tests/qrs_server.py), the answer on the response topic
and the counters in bridge/stats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.bridge_runner import RunningBridge, bridge_config
from tests.certs import Certificates, make_certificates
from tests.helpers import Mosquitto, Subscriber, free_port, qlik2mqtt
from tests.qrs_server import HR_ID, SALES_ID, QrsServer, qrs_settings

TASK_ID, OTHER_ID = SALES_ID, HR_ID  # both known to the `qrs_server` fixture
TASK_NAME = "Reload Sales"
REQUEST = "qlik2mqtt/bridge/request/task/start"
RESPONSE = "qlik2mqtt/bridge/response/task/start"


@contextlib.asynccontextmanager
async def bridge_and_client(
    tmp_path: Path,
    mosquitto: Mosquitto,
    qrs: dict[str, Any],
    topics: tuple[str, ...] = (),
    **config: Any,
) -> AsyncIterator[tuple[RunningBridge, Subscriber]]:
    """The bridge, and a client subscribed to the answers, the stats, `topics`, and the
    bridge's state."""
    bridge = RunningBridge(bridge_config(tmp_path, mosquitto.port, qrs=qrs, **config))
    await bridge.start()
    client = await Subscriber(mosquitto.port).start(
        RESPONSE, "qlik2mqtt/bridge/stats", *topics, "qlik2mqtt/bridge/state"
    )
    try:
        # `online` comes after the bridge's subscriptions on the same connection: from here
        # on a request reaches it (start() returns once the UDP ports are bound, not later).
        await client.wait_for("qlik2mqtt/bridge/state", lambda m: m.payload == b"online")
        yield bridge, client
    finally:
        await client.stop()
        await bridge.close()


async def ask(client: Subscriber, request: dict[str, Any]) -> Any:
    """Publish a request with a transaction and return its answer."""
    transaction = request["transaction"]
    client.publish(REQUEST, json.dumps(request).encode())
    return await client.wait_json(RESPONSE, lambda p: p.get("transaction") == transaction)


async def test_a_task_starts_by_id_and_by_name(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    async with bridge_and_client(tmp_path, mosquitto, qrs_settings(qrs_server)) as (_, client):
        by_id = await ask(client, {"id": TASK_ID, "transaction": "a1"})
        by_name = await ask(client, {"name": TASK_NAME, "transaction": 2})
        stats = await client.wait_json("qlik2mqtt/bridge/stats", lambda p: p["task_starts"] == 2)
    assert by_id == {"status": "ok", "data": {"id": TASK_ID}, "transaction": "a1"}
    assert by_name == {"status": "ok", "data": {"name": TASK_NAME}, "transaction": 2}
    assert [request.path for request in qrs_server.requests] == [
        f"/qrs/task/{TASK_ID}/start",
        "/qrs/task/start",
    ]
    assert qrs_server.requests[1].query["name"] == [TASK_NAME]
    assert stats["task_start_errors"] == {}


async def test_each_refusal_is_answered_with_its_reason_and_counted(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server, allowed_tasks=[TASK_ID, OTHER_ID], max_starts_per_minute=2)
    async with bridge_and_client(tmp_path, mosquitto, qrs) as (_, client):
        not_allowed = await ask(client, {"name": TASK_NAME, "transaction": 1})
        bad = await ask(client, {"id": TASK_ID, "name": TASK_NAME, "transaction": 2})
        qrs_server.task_ids.discard(OTHER_ID)  # deleted in the QMC since it was allowed
        not_found = await ask(client, {"id": OTHER_ID, "transaction": 3})
        started = await ask(client, {"id": TASK_ID, "transaction": 4})
        limited = await ask(client, {"id": TASK_ID, "transaction": 5})
        stats = await client.wait_json(
            "qlik2mqtt/bridge/stats", lambda p: sum(p["task_start_errors"].values()) == 3
        )
    assert not_allowed == {
        "status": "error",
        "error": "not allowed",
        "data": {"name": TASK_NAME},
        "transaction": 1,
    }
    assert bad["error"].startswith("bad request")
    assert (not_found["error"], not_found["data"]) == ("not found", {"id": OTHER_ID})
    assert started["status"] == "ok"
    assert (limited["status"], limited["error"]) == ("error", "rate limited")
    assert len(qrs_server.requests) == 2  # refused requests never reach QRS
    assert stats["task_start_errors"] == {"not_allowed": 1, "not_found": 1, "rate_limited": 1}
    assert stats["task_starts"] == 1


async def test_a_hanging_qrs_never_holds_the_events(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs_server.hanging.add(TASK_NAME)
    qrs = qrs_settings(qrs_server, timeout=2.0)
    async with bridge_and_client(tmp_path, mosquitto, qrs) as (bridge, client):
        events = await Subscriber(mosquitto.port).start("qlik2mqtt/qs1")
        try:
            client.publish(REQUEST, b'{"name": "Reload Sales", "transaction": "slow"}')
            # The event only once QRS holds the request: it cannot pass by arriving first.
            assert await asyncio.to_thread(qrs_server.hung.wait, 10)
            bridge.users.send("QS1;Start session;CORP;anna")
            await events.wait_json("qlik2mqtt/qs1", lambda p: p["active_sessions"] == 1)
            assert client.on(RESPONSE) == []  # the event went through while QRS hangs
            answer = await client.wait_json(RESPONSE, lambda p: p["transaction"] == "slow")
        finally:
            await events.stop()
    assert (answer["status"], answer["error"]) == ("error", "timeout")


async def test_an_answer_httpx_cannot_decode_is_still_answered_and_counted(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    """`Content-Encoding: gzip` over a body that is not gzip: the status decides (the body is
    not read), and the request is answered rather than left to its caller's timeout."""
    qrs_server.bad_gzip = True
    async with bridge_and_client(tmp_path, mosquitto, qrs_settings(qrs_server)) as (_, client):
        started = await ask(client, {"id": TASK_ID, "transaction": 1})
        missing = await ask(client, {"name": "Reload Nothing", "transaction": 2})
        stats = await client.wait_json(
            "qlik2mqtt/bridge/stats", lambda p: p["task_start_errors"] == {"not_found": 1}
        )
    assert started["status"] == "ok"
    assert (missing["status"], missing["error"]) == ("error", "not found")
    assert stats["task_starts"] == 1


@pytest.mark.parametrize("fault", ["certificate refused", "QRS unreachable"])
async def test_a_qrs_that_cannot_be_talked_to_is_answered(
    tmp_path: Path, mosquitto: Mosquitto, qrs_certs: Certificates, fault: str
) -> None:
    other = make_certificates(tmp_path)
    refusing = QrsServer(qrs_certs, client_ca=other.ca_file, task_ids={TASK_ID}).start()
    qrs = qrs_settings(refusing)
    if fault == "QRS unreachable":
        qrs["port"] = free_port(socket.SOCK_STREAM)
    try:
        async with bridge_and_client(tmp_path, mosquitto, qrs) as (_, client):
            answer = await ask(client, {"id": TASK_ID, "transaction": "t"})
    finally:
        refusing.stop()
    assert (answer["status"], answer["error"]) == ("error", fault)


async def test_verify_off_warns_at_start_and_skips_the_server_check(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    other = make_certificates(tmp_path)  # a root that did not sign the server's certificate
    qrs = qrs_settings(qrs_server, root_cert=str(other.ca_file), verify=False)
    with capture_logs() as logs:
        async with bridge_and_client(tmp_path, mosquitto, qrs) as (_, client):
            answer = await ask(client, {"id": TASK_ID, "transaction": 1})
    assert answer["status"] == "ok"
    warnings = [entry["event"] for entry in logs if entry["log_level"] == "warning"]
    assert any(warning.startswith("qrs.verify is false") for warning in warnings)


def test_a_certificate_that_does_not_load_stops_the_bridge_naming_its_key(
    tmp_path: Path, qrs_server: QrsServer
) -> None:
    key = tmp_path / "client_key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    result = qlik2mqtt(
        "run",
        env={
            "QLIK2MQTT_MQTT__HOST": "127.0.0.1",
            "QLIK2MQTT_MQTT__PORT": str(free_port()),
            "QLIK2MQTT_UDP__ALLOWED_SOURCES": "[127.0.0.1]",
            "QLIK2MQTT_STATE_FILE": str(tmp_path / "state.json"),
            **{
                f"QLIK2MQTT_QRS__{name.upper()}": str(value)
                for name, value in qrs_settings(qrs_server, client_key=str(key)).items()
                if name != "allowed_tasks"
            },
        },
    )
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if "config error" in line]
    assert line.startswith("qlik2mqtt: config error: qrs.client_key: ")
    assert "c2VjcmV0" not in result.stderr + result.stdout


async def test_the_start_task_command_prints_the_answer(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    qrs = qrs_settings(qrs_server)
    env = {
        "QLIK2MQTT_MQTT__HOST": "127.0.0.1",
        "QLIK2MQTT_MQTT__PORT": str(mosquitto.port),
        # the command reads the config the bridge runs with: QRS on
        **{f"QLIK2MQTT_QRS__{key.upper()}": str(qrs[key]) for key in ("host", "client_cert")},
        "QLIK2MQTT_QRS__CLIENT_KEY": str(qrs["client_key"]),
        "QLIK2MQTT_QRS__ENABLED": "true",
        "QLIK2MQTT_UDP__ALLOWED_SOURCES": "[127.0.0.1]",
    }
    async with bridge_and_client(tmp_path, mosquitto, qrs):
        started = await asyncio.to_thread(qlik2mqtt, "start-task", TASK_ID, env=env)
        missing = await asyncio.to_thread(
            qlik2mqtt, "start-task", "--name", "Reload Nothing", env=env
        )
    assert started.returncode == 0, started.stderr
    answer = json.loads(started.stdout)
    assert (answer["status"], answer["data"]) == ("ok", {"id": TASK_ID})
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"] == "not found"
    assert "qlik2mqtt: start-task: not found" in missing.stderr
    assert [request.query.get("name") for request in qrs_server.requests] == [
        None,
        ["Reload Nothing"],
    ]


async def test_butlers_start_task_topic_starts_each_id_and_answers_on_ours(
    tmp_path: Path, mosquitto: Mosquitto, qrs_server: QrsServer
) -> None:
    unknown = "9d2c4b1a-3e5f-4a6b-8c7d-0e1f2a3b4c5d"
    qrs = qrs_settings(qrs_server, allowed_tasks=[TASK_ID, unknown])
    butler = {"enabled": True, "base_topic": "butler"}
    with capture_logs() as logs:
        async with bridge_and_client(tmp_path, mosquitto, qrs, butler_compat=butler) as (
            _,
            client,
        ):
            client.publish(
                "butler/start_task", f"{TASK_ID}, {OTHER_ID},nonsense,{unknown}".encode()
            )
            await client.wait_for(RESPONSE, lambda m: unknown.encode() in m.payload)
            client.publish("butler/start_task", b" ")
            await client.wait_for(RESPONSE, lambda m: b"send task ids" in m.payload)
    answers = [message.json() for message in client.on(RESPONSE)]
    assert answers == [
        {"status": "ok", "data": {"id": TASK_ID}},
        {"status": "error", "error": "not allowed", "data": {"id": OTHER_ID}},
        {"status": "error", "error": "bad request: not a task id", "data": {"id": "nonsense"}},
        {"status": "error", "error": "not found", "data": {"id": unknown}},
        {"status": "error", "error": 'bad request: send task ids ("id1,id2")'},
    ]
    assert [request.path for request in qrs_server.requests] == [
        f"/qrs/task/{TASK_ID}/start",
        f"/qrs/task/{unknown}/start",
    ]
    refusals = [entry for entry in logs if entry["log_level"] == "warning"]
    assert {entry.get("reason") for entry in refusals} >= {"not allowed", "not found"}
    assert any(entry["event"] == "butler start_task: not a task id" for entry in refusals)


def test_the_start_task_command_takes_an_id_or_a_name() -> None:
    for args in ((), ("some-id", "--name", "Reload Sales")):
        result = qlik2mqtt("start-task", *args)
        assert result.returncode == 2
        assert "give a task id or --name NAME" in result.stderr
