"""`qlik2mqtt check` with `qrs.enabled`: an authenticated `GET /qrs/about` at a local QRS
(tests/qrs_server.py), reported as ok or with the short reason; no key material printed."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.certs import Certificates, make_certificates
from tests.helpers import Mosquitto, bridge_env, free_port, qlik2mqtt
from tests.qrs_server import QrsServer, qrs_settings


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("qrs-certs"))


PASSWORD = "bridge-Pa55"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that takes only users with a password: with QRS on, check fails on one that
    takes anyone (test_an_anonymous_broker_fails_the_check_with_qrs_on)."""
    broker = Mosquitto(tmp_path, users={"qlik2mqtt": PASSWORD})
    broker.start()
    yield broker
    broker.stop()


async def run_check(
    mosquitto: Mosquitto, tmp_path: Path, qrs: dict[str, Any], item: str = "qrs", **extra: str
) -> tuple[int, str]:
    """Run `check` (in a thread: the QRS server answers from this process) and return its exit
    code and its line for `item`."""
    env = bridge_env(
        mosquitto.port,
        tmp_path,
        QLIK2MQTT_MQTT__USERNAME="qlik2mqtt",
        QLIK2MQTT_MQTT__PASSWORD=PASSWORD,
        QLIK2MQTT_UDP__ALLOWED_SOURCES="[127.0.0.1]",
        **{f"QLIK2MQTT_QRS__{k.upper()}": str(v) for k, v in qrs.items() if k != "allowed_tasks"},
        **extra,
    )
    result = await asyncio.to_thread(qlik2mqtt, "check", env=env)
    (line,) = [line for line in result.stdout.splitlines() if line.split()[1:2] == [item]]
    key = await asyncio.to_thread(Path(qrs["client_key"]).read_text)
    secret = "".join(key.splitlines()[1:-1])[:40]  # a piece of the key's base64
    assert secret not in result.stdout + result.stderr
    return result.returncode, line


async def test_check_asks_qrs_with_the_certificates(
    tmp_path: Path, mosquitto: Mosquitto, certs: Certificates
) -> None:
    server = QrsServer(certs).start()
    try:
        code, line = await run_check(mosquitto, tmp_path, qrs_settings(server))
    finally:
        server.stop()
    assert code == 0, line
    assert line.split()[0] == "PASS"
    assert f"127.0.0.1:{server.port} answers, as INTERNAL\\sa_repository" in line
    (about,) = server.requests
    assert (about.method, about.path) == ("GET", "/qrs/about")
    assert about.query["xrfkey"] == [about.headers["x-qlik-xrfkey"]]


@pytest.mark.parametrize("fault", ["certificate refused", "QRS unreachable", "timeout"])
async def test_check_reports_why_qrs_cannot_be_used(
    tmp_path: Path, mosquitto: Mosquitto, certs: Certificates, fault: str
) -> None:
    other = make_certificates(tmp_path)
    client_ca = other.ca_file if fault == "certificate refused" else None
    server = QrsServer(certs, client_ca=client_ca).start()
    qrs = qrs_settings(server, timeout="1s")
    if fault == "QRS unreachable":
        qrs["port"] = free_port(socket.SOCK_STREAM)
    if fault == "timeout":
        server.hanging.add("about")
    try:
        code, line = await run_check(mosquitto, tmp_path, qrs)
    finally:
        server.stop()
    assert code == 1
    assert line.split()[0] == "FAIL"
    assert f": {fault}" in line


async def test_an_anonymous_broker_fails_the_check_with_qrs_on(
    tmp_path: Path, certs: Certificates
) -> None:
    """Whoever may publish to the broker may start reload tasks: one that lets anyone in is a
    FAIL with the reason, though the bridge's own credentials work there too."""
    anonymous = Mosquitto(tmp_path)  # allow_anonymous true, as Debian's default was
    anonymous.start()
    server = QrsServer(certs).start()
    try:
        code, line = await run_check(anonymous, tmp_path, qrs_settings(server), item="mqtt")
    finally:
        server.stop()
        anonymous.stop()
    assert code == 1
    assert line.split()[0] == "FAIL"
    assert "lets anyone in (an anonymous client connected)" in line
