"""Processes for the benchmark and the soak test: mosquitto, a target, a subscriber, a load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv/bin/python") if (ROOT / ".venv/bin/python").exists() else sys.executable
EVENTS = "qlik2mqtt/+/event/user"
LOG_EVENTS = "qlik2mqtt/+/event/log"
SERVER_STATE = "qlik2mqtt/bench"
"""The load generator's server; its retained state topic, to count state publishes."""
WARM_UP_ORIGIN = "warm-up"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {port}")
        time.sleep(0.05)


class Broker:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.conf = work / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",
            "persistence true",
            f"persistence_location {work}/",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


def start_target(
    kind: str, work: Path, mqtt_port: int, udp_port: int, max_sessions: int | None = None
) -> subprocess.Popen[bytes]:
    """The bridge (`max_sessions`: its `limits.max_sessions_per_server`, else the default) or
    a forwarder."""
    if kind == "bridge":
        config = work / "bridge.yaml"
        limits = f"limits: {{max_sessions_per_server: {max_sessions}}}\n" if max_sessions else ""
        config.write_text(
            f"udp: {{host: 127.0.0.1, user_activity_port: {udp_port}, "
            f"task_port: {free_port(socket.SOCK_DGRAM)}, log_port: 0}}\n"
            f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}\n"
            f"homeassistant: {{enabled: true}}\nstate_file: {work}/state.json\n"
            f"stats_interval: 1s\nlogging: {{format: json, level: warning}}\n{limits}"
        )
        command = [PYTHON, "-m", "bridge", "run", "--config", str(config)]
    else:
        command = [
            PYTHON,
            str(ROOT / "bench/forwarder.py"),
            "--udp-port",
            str(udp_port),
            "--mqtt-port",
            str(mqtt_port),
        ] + (["--tuned"] if kind == "tuned" else [])
    with (work / f"{kind}.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)


class Subscription:
    """mosquitto_sub (C, not the bottleneck) writing `<receive time> <payload>` lines."""

    def __init__(self, work: Path, port: int, client_id: str, *events: str) -> None:
        """Subscribed to the user events (the warm-up's), the load server's state and `events`."""
        self.path = work / f"received-{client_id}.txt"
        self.command = [
            "mosquitto_sub",
            "-p",
            str(port),
            *[arg for topic in (EVENTS, *events) for arg in ("-t", topic)],
            "-t",
            SERVER_STATE,
            "-q",
            "1",
            "-i",
            client_id,
            "-c",
            "-F",
            "%U %p",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.path.open("ab")
        self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.DEVNULL)

    def ready(self, port: int, timeout: float = 10.0) -> None:
        """Subscribed: a marker published now comes back."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-p",
                    str(port),
                    "-t",
                    "qlik2mqtt/marker/event/user",
                    "-m",
                    '{"marker": true}',
                ],
                check=True,
            )
            time.sleep(0.2)
            if self.path.exists() and b'"marker"' in self.path.read_bytes():
                return
        raise RuntimeError("mosquitto_sub did not subscribe")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def received(self) -> list[tuple[float, dict[str, Any]]]:
        """The events of the load received, with their receive times."""
        return [
            row
            for row in self._rows()
            if "event_type" in row[1] and row[1].get("origin") != WARM_UP_ORIGIN
        ]

    def warm_up(self, udp_port: int, timeout: float = 10.0) -> None:
        """One event through the target before the load: its server is known (no first-event
        hold for Home Assistant) and every path has run once, as in a bridge that has run."""
        line = f"/proxy-session/;BENCH;Start session;LOAD;warm;{WARM_UP_ORIGIN};ctx;0"
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                sock.sendto(line.encode(), ("127.0.0.1", udp_port))
                time.sleep(0.2)
                if self.path.exists() and WARM_UP_ORIGIN.encode() in self.path.read_bytes():
                    return
        raise RuntimeError("the warm-up event did not come through")

    def state_publishes(self) -> list[float]:
        """When the load's server state topic was published (the bridge only)."""
        return [stamp for stamp, message in self._rows() if "active_sessions" in message]

    def _rows(self) -> list[tuple[float, dict[str, Any]]]:
        rows = []
        for line in self.path.read_text(errors="replace").splitlines():
            stamp, _, payload = line.partition(" ")
            with contextlib.suppress(ValueError):
                message = json.loads(payload)
                if isinstance(message, dict) and "marker" not in message:
                    rows.append((float(stamp), message))
        return rows


def load(
    udp_port: int,
    rate: int,
    seconds: float,
    junk: float = 0.0,
    start: int = 0,
    kind: str = "sessions",
) -> dict[str, Any]:
    result = subprocess.run(
        [
            PYTHON,
            str(ROOT / "bench/loadgen.py"),
            "--port",
            str(udp_port),
            "--rate",
            str(rate),
            "--seconds",
            str(seconds),
            "--junk",
            str(junk),
            "--start",
            str(start),
            "--kind",
            kind,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    return dict(json.loads(result.stdout))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, key: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_settled(subscription: Subscription, expected: int, timeout: float) -> int:
    """Until every expected message arrived, or nothing new came for 2 s, or the timeout."""
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        with subscription.path.open("rb") as lines:
            count = sum(
                1
                for line in lines
                if b'"event_type"' in line and WARM_UP_ORIGIN.encode() not in line
            )
        if count >= expected:
            return count
        if count != last:
            last, still_since = count, time.monotonic()
        elif time.monotonic() - still_since > 2.0:
            return count
        time.sleep(0.2)
    return last


def wait_online(port: int, timeout: float = 15.0, log: Path | None = None) -> None:
    """Until the target has published `online` (retained): it is connected and, for the
    bridge, its UDP ports are bound. `log`: the target's log, whose end the error shows."""
    result = subprocess.run(
        [
            "mosquitto_sub",
            "-p",
            str(port),
            "-t",
            "qlik2mqtt/bridge/state",
            "-C",
            "1",
            "-W",
            str(int(timeout)),
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
    )
    if result.stdout.strip() != "online":
        said = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"the target did not come online within {timeout:g} s: {said!r}")


def retained_json(port: int, topic: str) -> dict[str, Any] | None:
    """The retained JSON on `topic` now (one message, bounded wait); None if none."""
    result = subprocess.run(
        ["mosquitto_sub", "-p", str(port), "-t", topic, "-C", "1", "-W", "2"],
        capture_output=True,
        timeout=10,
        check=False,
    )
    try:
        value = json.loads(result.stdout)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def held_sessions(count: int) -> list[bytes]:
    """`count` session starts on the load's node (BENCH) of users the load never names."""
    return [
        f"/proxy-session/;BENCH;Start session;LOAD;held{n};held-{n};ctx;0".encode()
        for n in range(count)
    ]


def hold(udp_port: int, mqtt_port: int, count: int, per_second: int, timeout: float) -> float:
    """Log `count` users in to the bridge's BENCH node at `per_second` and wait until its
    state says it holds them (bounded by `timeout` seconds); returns the seconds it took."""
    began = time.monotonic()
    send_paced(udp_port, held_sessions(count), per_second, timeout)
    while time.monotonic() - began < timeout:
        state = retained_json(mqtt_port, SERVER_STATE)
        if state is not None and int(state.get("active_sessions", 0)) >= count:
            return time.monotonic() - began
        time.sleep(0.5)
    raise RuntimeError(f"the bridge did not hold {count} sessions within {timeout} s")


def send_paced(
    udp_port: int, lines: list[bytes], per_second: int, deadline: float, stamped: bool = False
) -> float:
    """Send `lines` to 127.0.0.1:`udp_port` at `per_second`, for `deadline` seconds at most;
    returns the seconds it took. `stamped`: each line gets the send time (ns) appended."""
    began = time.perf_counter()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sent = 0
        while sent < len(lines) and time.perf_counter() - began < deadline:
            due = min(len(lines), int((time.perf_counter() - began) * per_second) + 1)
            for line in lines[sent:due]:
                if stamped:
                    line += str(time.time_ns()).encode()
                sock.sendto(line, ("127.0.0.1", udp_port))
            sent = due
            time.sleep(0.0005)
    return time.perf_counter() - began
