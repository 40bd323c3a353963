"""The shipped appender files in real log4net (Debian's log4net 1.2.10 on Mono, installed by
scripts/setup): every Qlik Sense event the files are for arrives as exactly one datagram on the
right port, parsing to the event with every property intact, and nothing else is sent.

With QLIK2MQTT_CAPTURE=1 the log-event test also writes what it received to
tests/fixtures/log4net-log-events.jsonl (tests/fixtures/README.md)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bridge.core.events import LogEvent as ParsedLogEvent
from bridge.core.events import Rejected
from bridge.inputs.appenders import TEMPLATES, Target, render, template_text
from bridge.inputs.parse import parse_datagram
from tests.helpers import FIXTURES, ROOT
from tests.log4net_model import LEVELS, LogEvent
from tests.qlik_events import (
    INTENDED,
    LOG_INTENDED,
    assert_datagram_is,
    assert_log_datagram_is,
    expected_log_event,
)

LOG4NET = ROOT / ".venv/log4net/log4net.dll"


@pytest.fixture(scope="module")
def emitter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/log4net_emit.cs compiled against log4net, with log4net beside it."""
    if shutil.which("mcs") is None or not LOG4NET.exists():
        pytest.fail("Mono or log4net is missing: scripts/setup installs them")
    folder = tmp_path_factory.mktemp("log4net")
    shutil.copy(LOG4NET, folder / "log4net.dll")
    program = folder / "emit.exe"
    subprocess.run(
        ["mcs", f"-r:{LOG4NET}", f"-out:{program}", str(ROOT / "tests/log4net_emit.cs")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return program


def cases_file(path: Path, events: list[LogEvent]) -> Path:
    def field(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    lines = []
    for event in events:
        fields = [event.logger, event.level, event.message]
        for key, value in event.properties.items():
            fields += [key, value]
        if event.exception is not None:
            fields += ["log4net_emit:exception", event.exception]
        lines.append("\t".join(map(field, fields)))
    path.write_text("\n".join(lines) + "\n")
    return path


def receiver() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def everything_in(sock: socket.socket) -> list[bytes]:
    """What the socket holds now: log4net sends synchronously, so once the program has exited
    every datagram it sent is here."""
    datagrams = []
    while True:
        try:
            datagrams.append(sock.recv(65535))
        except BlockingIOError:
            return datagrams


def run_service(emitter: Path, tmp_path: Path, name: str, target: Target, cases: Path) -> None:
    """Log every case through one service's rendered file, as that service would."""
    config = tmp_path / name.replace("/", "-")
    config.write_text(render(template_text(name), target), encoding="utf-8")
    result = subprocess.run(
        ["mono", str(emitter), str(config), str(cases)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    count = len(cases.read_text().splitlines())
    assert result.stdout.strip() == f"{count} events logged"


def test_real_log4net_sends_exactly_the_intended_events(emitter: Path, tmp_path: Path) -> None:
    users, tasks, logs = receiver(), receiver(), receiver()
    target = Target(
        "127.0.0.1", users.getsockname()[1], tasks.getsockname()[1], logs.getsockname()[1]
    )
    cases = cases_file(tmp_path / "cases.tsv", [event for event, _ in INTENDED])
    try:
        for name in TEMPLATES:  # each Qlik service logs everything through its own file
            run_service(emitter, tmp_path, name, target, cases)
        received = {"user": everything_in(users), "task": everything_in(tasks)}
        log_events = everything_in(logs)
    finally:
        users.close()
        tasks.close()
        logs.close()
    # The scheduler's log-event appender sees its warnings and errors (logger System); the
    # proxy's covers none of AuditActivity.Proxy, AuditSecurity.Proxy is INFO here.
    warnings = [
        e
        for e, _ in INTENDED
        if LEVELS.index(e.level) >= LEVELS.index("WARN") and e.logger.startswith("System.")
    ]
    parsed = [parse_datagram(data) for data in log_events]
    assert all(isinstance(p, ParsedLogEvent) and p.source == "scheduler" for p in parsed), parsed
    assert [p.message for p in parsed if isinstance(p, ParsedLogEvent)] == [
        e.message for e in warnings
    ]
    expected_user = [(e, x) for e, x in INTENDED if x == "user"]
    expected_task = [(e, x) for e, x in INTENDED if x is not None and x != "user"]
    assert len(received["user"]) == len(expected_user)
    assert len(received["task"]) == len(expected_task)
    # log4net names the machine itself (log4jmachinename): this host, perhaps without its domain.
    first = parse_datagram(received["user"][0])
    assert not isinstance(first, Rejected), first
    server = first.server
    assert socket.gethostname().lower().startswith(server.lower())
    for data, (event, expected) in zip(received["user"], expected_user, strict=True):
        assert_datagram_is(data, event, expected, server)
    for data, (event, expected) in zip(received["task"], expected_task, strict=True):
        assert_datagram_is(data, event, expected, server)


def test_real_log4net_sends_each_service_warning_and_error_as_one_log_event(
    emitter: Path, tmp_path: Path
) -> None:
    """Each service's file, loaded by real log4net, sends exactly its WARN, ERROR and FATAL
    events on the covered loggers to the log port, and they parse back with every field."""
    users, tasks, logs = receiver(), receiver(), receiver()
    target = Target(
        "127.0.0.1", users.getsockname()[1], tasks.getsockname()[1], logs.getsockname()[1]
    )
    received: dict[str, list[bytes]] = {}
    try:
        for service in ("engine", "proxy", "repository", "scheduler"):
            events = [event for name, event, _ in LOG_INTENDED if name == service]
            cases = cases_file(tmp_path / f"{service}.tsv", events)
            run_service(emitter, tmp_path, f"{service}/LocalLogConfig.xml", target, cases)
            received[service] = everything_in(logs)
        assert everything_in(users) == []
        task_datagrams = everything_in(tasks)  # the scheduler's failure, as before
    finally:
        users.close()
        tasks.close()
        logs.close()
    assert len(task_datagrams) == 1
    server = socket.gethostname()
    captured = []
    for service, datagrams in received.items():
        expected = [event for name, event, sent in LOG_INTENDED if name == service and sent]
        assert len(datagrams) == len(expected), service
        for data, event in zip(datagrams, expected, strict=True):
            parsed = parse_datagram(data)
            assert not isinstance(parsed, Rejected), parsed
            server = parsed.server
            assert_log_datagram_is(data, service, event, server)
            captured.append((service, event, data))
    if os.environ.get("QLIK2MQTT_CAPTURE") == "1":
        write_fixtures(captured)
    # The files in Qlik's param form send what the element form sent when the fixtures were
    # captured, byte for byte but for the time, the thread, the account and the host.
    fixtures = [json.loads(line) for line in (FIXTURES / "log4net-log-events.jsonl").open()]
    assert [same_but_machine(data) for _, _, data in captured] == [
        same_but_machine(bytes.fromhex(record["hex"])) for record in fixtures
    ]


def same_but_machine(data: bytes) -> bytes:
    """A datagram without what differs per run and machine."""
    data = re.sub(rb' (timestamp|thread|username)="[^"]*"', rb' \1="-"', data)
    return re.sub(rb'(name="log4net:HostName" value=")[^"]*"', rb'\1-"', data)


def write_fixtures(captured: list[tuple[str, LogEvent, bytes]]) -> None:
    lines = []
    for service, event, data in captured:
        parsed = parse_datagram(data)
        assert isinstance(parsed, ParsedLogEvent), parsed
        expected = expected_log_event(service, event, parsed.server)
        expected["log_timestamp"] = parsed.log_timestamp
        expected["windows_user"] = parsed.windows_user
        record = {
            "source": service,
            "logged": {
                "logger": event.logger,
                "level": event.level,
                "message": event.message,
                "properties": event.properties,
                "exception": event.exception,
            },
            "hex": data.hex(),
            "text": data.decode("utf-8"),
            "expected": expected,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    (FIXTURES / "log4net-log-events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
