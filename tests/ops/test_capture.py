"""`qlik2mqtt capture` (issue 23): what really arrives, recorded with how the bridge reads it,
from real UDP datagrams on loopback."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bridge.inputs.builtin import INPUTS
from bridge.inputs.listener import bind_udp
from bridge.ops.capture import PortTakenError, Redactor, bind, capture, record
from tests.helpers import ROOT, qlik2mqtt

DATAGRAMS = [
    b"QS1;Start session;CORP;anna",
    "QS1;Start session;CORP;jöran".encode("cp1252"),  # Butler's old appenders: windows-1252
    b"QS1;Reload;Sales;Sales;CORP\\anna",
    b"\x81\x8d\x8f",
    b"/scheduler-task-failed/;QS1;Reload Sales;Sales;CORP\\anna;tid;aid;"
    b"2026-05-06 14:23:45,123;ERROR;eid;Task of anna failed",
]


def captured(keep_names: bool) -> list[dict[str, Any]]:
    """The datagrams sent for real to a bound loopback port, captured in a thread."""
    sock = bind_udp("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    out = io.StringIO()
    worker = threading.Thread(
        target=capture,
        args=([(port, sock)], {port: INPUTS[0].parse}, 65535, out),
        kwargs={
            "seconds": 30,
            "max_datagrams": len(DATAGRAMS),
            "redactor": Redactor(keep=keep_names),
        },
    )
    worker.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for data in DATAGRAMS:
            sender.sendto(data, ("127.0.0.1", port))
    worker.join(30)
    assert not worker.is_alive()
    assert sock.fileno() == -1  # closed: the port is free again
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["port"] for line in lines] == [port] * len(DATAGRAMS)
    assert {line["source"] for line in lines} == {"127.0.0.1"}
    return lines


def test_each_datagram_with_how_the_bridge_reads_it() -> None:
    session, old, unknown, junk, task = captured(keep_names=True)
    assert session["text"] == "QS1;Start session;CORP;anna"
    assert session["event"]["type"] == "session_start"
    assert session["event"]["fields"]["user_id"] == "anna"
    assert (old["encoding"], old["event"]["fields"]["user_id"]) == ("windows-1252", "jöran")
    assert unknown["refused"]["reason"] == "unknown_layout"
    assert "untagged line of 5 fields" in unknown["refused"]["why"]
    assert junk["base64"] == "gY2P"
    assert "text" not in junk
    assert junk["refused"]["reason"] == "not_text"
    assert task["event"]["fields"]["task_name"] == "Reload Sales"
    assert task["event"]["fields"]["message"] == "Task of anna failed"


def test_user_names_are_redacted_unless_kept() -> None:
    session, old, unknown, _, task = captured(keep_names=False)
    token = session["event"]["fields"]["user_id"]
    assert token.startswith("user-")
    assert token != "anna"
    assert session["text"] == f"QS1;Start session;CORP;{token}"
    assert "jöran" not in json.dumps(old, ensure_ascii=False)
    # a refused line's names are unknown to the parser: the DIRECTORY\user in it still goes
    assert unknown["text"] == f"QS1;Reload;Sales;Sales;CORP\\{token}"
    fields = task["event"]["fields"]
    assert (fields["user"], fields["message"]) == (f"CORP\\{token}", f"Task of {token} failed")
    assert "anna" not in json.dumps([session, unknown, task])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_names_in_base64_values_are_redacted_too() -> None:
    """qlik2mqtt's log-event XML sends the message and the properties in base64."""
    props = {"log4net:HostName": "QS1", "UserDirectory": "CORP", "UserId": "anna"}
    data = "".join(f'<qseow-proxy:data name="{k}" value="{b64(v)}" />' for k, v in props.items())
    message = b64("Login of CORP\\anna failed")
    xml = (
        '<qseow-proxy:event logger="System.Proxy.Proxy" timestamp="2026-11-04T09:15:02.4170000'
        '+01:00" level="ERROR" thread="1" domain="Proxy.exe" username="CORP\\qlikservice">'
        f"<qseow-proxy:message>{message}</qseow-proxy:message>"
        f"<qseow-proxy:properties>{data}</qseow-proxy:properties></qseow-proxy:event>"
    ).encode()
    line = record(xml, "127.0.0.1", 9996, INPUTS[0].parse, 65535, Redactor(), 0.0)
    assert line["event"]["type"] == "log_error"
    token = line["event"]["fields"]["user_id"]
    assert token.startswith("user-")
    assert line["event"]["fields"]["message"] == f"Login of CORP\\{token} failed"
    assert b64("anna") not in line["text"]
    assert b64(f"Login of CORP\\{token} failed") in line["text"]
    assert "qlikservice" not in json.dumps(line)  # the Windows account: CORP\\user-…


def test_a_taken_port_is_refused_with_what_to_do() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bridge:
        bridge.bind(("127.0.0.1", 0))
        port = bridge.getsockname()[1]
        with pytest.raises(PortTakenError) as caught:
            bind("127.0.0.1", [port])
    said = caught.value.strerror or ""
    assert f"UDP port {port} on 127.0.0.1 is taken" in said
    assert "stop the bridge" in said


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"udp:\n  host: 127.0.0.1\nstate_file: {tmp_path}/state.json\n")
    return path


def test_the_command_says_when_a_running_bridge_holds_the_port(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bridge:
        bridge.bind(("127.0.0.1", 0))
        port = str(bridge.getsockname()[1])
        result = qlik2mqtt(
            "capture", "--config", str(_config(tmp_path)), "--port", port,
            "--seconds", "5", "--out", str(tmp_path / "c.jsonl"),
        )  # fmt: skip
    assert result.returncode == 1
    assert f"UDP port {port} on 127.0.0.1 is taken" in result.stderr
    assert "stop the bridge" in result.stderr


def test_the_command_records_into_the_file(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "capture.jsonl"
    command = [sys.executable, "-m", "bridge", "capture", "--config", str(_config(tmp_path))]
    command += ["--port", str(port), "--seconds", "30", "--max-datagrams", "2", "--out", str(out)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ),
    ) as process:  # fmt: skip
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"capturing UDP {port} on 127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(DATAGRAMS[0], ("127.0.0.1", port))
            sender.sendto(DATAGRAMS[2], ("127.0.0.1", port))
        rest, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert "captured 2 datagrams" in rest
    assert "1 unknown_layout" in rest
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line.get("event", {}).get("type") for line in lines] == ["session_start", None]
    assert lines[0]["event"]["fields"]["user_id"] != "anna"
