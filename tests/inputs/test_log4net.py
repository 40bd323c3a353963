"""The shipped appender files in real log4net (Debian's log4net 1.2.10 on Mono, installed by
scripts/setup): every Qlik Sense event the files are for arrives as exactly one datagram on the
right port, parsing to the event with every property intact, and nothing else is sent."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from bridge.core.events import Rejected
from bridge.inputs.appenders import TEMPLATES, Target, render, template_text
from bridge.inputs.parse import parse_datagram
from tests.helpers import ROOT
from tests.log4net_model import LogEvent
from tests.qlik_events import INTENDED, assert_datagram_is

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


def test_real_log4net_sends_exactly_the_intended_events(emitter: Path, tmp_path: Path) -> None:
    users, tasks = receiver(), receiver()
    target = Target("127.0.0.1", users.getsockname()[1], tasks.getsockname()[1])
    cases = cases_file(tmp_path / "cases.tsv", [event for event, _ in INTENDED])
    try:
        for name in TEMPLATES:  # each Qlik service logs everything through its own file
            config = tmp_path / name.replace("/", "-")
            config.write_text(render(template_text(name), target), encoding="utf-8")
            result = subprocess.run(
                ["mono", str(emitter), str(config), str(cases)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == f"{len(INTENDED)} events logged"
        received = {"user": everything_in(users), "task": everything_in(tasks)}
    finally:
        users.close()
        tasks.close()
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
