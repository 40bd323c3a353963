"""`qlik2mqtt status` as a user meets it: a dead broker in words, 80 columns, a pipe."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from bridge.ops.status import counted, log_counts
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import (
    ROOT,
    Mosquitto,
    Subscriber,
    bridge_env,
    complaints,
    free_port,
    qlik2mqtt,
)


def test_status_against_a_dead_broker_says_so_in_words(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    result = qlik2mqtt("status", env=bridge_env(port, tmp_path))
    assert result.returncode == 1
    assert complaints(result.stderr) == (
        f"qlik2mqtt: status from 127.0.0.1:{port}: "
        "connection refused (is the broker running on that host and port?)\n"
    )


async def send_test_events(bridge: RunningBridge, env: dict[str, str], *extra: str) -> None:
    sent = await bridge.send_test_events(env, *extra)
    assert sent.returncode == 0, sent.stderr


async def test_status_fits_80_columns_without_cutting_a_word(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    bridge = await RunningBridge(bridge_config(tmp_path, mosquitto.port)).start()
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    env = bridge_env(mosquitto.port, tmp_path, COLUMNS="80")
    try:
        await send_test_events(bridge, env, "--server", "QSPROD-CENTRAL-01")
        await sub.wait_json("qlik2mqtt/qsprod-central-01", lambda p: p["aborted_tasks"] == 1)
        await sub.wait_json(
            "qlik2mqtt/qsprod-central-01", lambda p: p["log_events"]["errors_total"] == 3
        )
        await sub.wait_json("qlik2mqtt/bridge/stats", lambda p: p["events"] == 16)
        result = await asyncio.to_thread(qlik2mqtt, "status", env=env)
    finally:
        await sub.stop()
        await bridge.close()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    assert "…" not in result.stdout, result.stdout
    header = next(line for line in lines if " sessions " in line)
    for column in ("server", "conns", "failed", "aborted", "task", "(UTC)"):
        assert f" {column} " in f"{header} ", header
    row, below = lines[lines.index(header) + 2 : lines.index(header) + 4]  # under the rule
    assert row.split()[:5] == ["QSPROD-CENTRAL-01", "2", "2", "1", "1"]
    assert "last log error: ERROR from the scheduler on QSPROD-CENTRAL-01" in result.stdout
    logs = next(line for line in lines if " engine " in line)
    assert logs.split() == ["server", "engine", "proxy", "repository", "scheduler"]
    assert lines[lines.index(logs) + 2].split() == ["QSPROD-CENTRAL-01", "1/1", "1/0", "1/1", "0/1"]
    words = " ".join(result.stdout.replace("│", " ").split())
    assert "log events in the window 3 warnings, 3 errors, 0 fatals" in words
    # The task name and the time wrap at spaces, whole words: the date on the row, the time
    # below it.
    assert "Reload" in row
    assert re.search(r" \d{4}-\d\d-\d\d *$", row), row
    assert re.search(r" \d\d:\d\d:\d\d *$", below), below


async def read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    async with asyncio.timeout(20):
        while not any(marker in line for line in seen):
            line = await stream.readline()
            assert line, "".join(seen)
            seen.append(line.decode())


async def test_status_watch_prints_snapshots_into_a_pipe(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """rich's live view draws nothing without a terminal; a pipe gets whole snapshots."""
    bridge = await RunningBridge(bridge_config(tmp_path, mosquitto.port)).start()
    env = bridge_env(mosquitto.port, tmp_path)
    watcher = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "status",
        "--watch",
        env={**os.environ, **env},
        cwd=ROOT / "tests",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert watcher.stdout is not None
    seen: list[str] = []
    try:
        await read_until(watcher.stdout, "qlik2mqtt online", seen)
        assert not any("reload failure: ON" in line for line in seen)
        await send_test_events(bridge, env)
        await read_until(watcher.stdout, "reload failure: ON", seen)
        assert any("QSWIN01" in line for line in seen)
    finally:
        if watcher.returncode is None:
            watcher.kill()
        await watcher.wait()
        await bridge.close()


def test_log_counts_are_singular_for_one() -> None:
    site = {"warnings": 1, "errors": 1, "fatals": 0, "errors_total": 2}
    assert log_counts(site, "") == "1 warning, 1 error, 0 fatals"
    assert log_counts(site, "_total") == "? warnings, 2 errors, ? fatals"
    assert log_counts(None, "") == "?"
    assert (counted(1, "duplicates"), counted(0, "duplicates")) == ("1 duplicate", "0 duplicates")
