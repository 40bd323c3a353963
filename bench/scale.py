"""Scale: a login storm, then many sessions on many servers, then a restart with that state.

    .venv/bin/python -m bench.scale [--sessions 50000] [--servers 20] [--storm 10000]

Against a real mosquitto and the bridge as a separate process (Home Assistant discovery on):
1. `--storm` logins to one server within one second: how many retained-state publishes that
   server's topic and the site topic got (coalescing keeps it to a handful);
2. `--sessions` distinct users (the storm's among them) logged in over `--servers` servers
   (the storm's one of them): the bridge's RSS once they are all in its state, and how long
   saving that state takes;
3. the bridge stopped and started again on that state file: seconds from starting the process
   to `online` on the broker.
Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Broker, free_port, rss_mb, send_paced, start_target, wait_online
from bridge.core.persistence import load_state, save_state

SEND_DEADLINE = 60.0


class Watch:
    """mosquitto_sub on the bridge's topics, `<receive time> <topic> <payload>` per line."""

    def __init__(self, work: Path, port: int) -> None:
        self.path = work / "watch.txt"
        self._out = self.path.open("ab")
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), "-t", "qlik2mqtt/#", "-F", "%U %t %p"],
            stdout=self._out,
            stderr=subprocess.DEVNULL,
        )

    def lines(self, topic: str) -> list[tuple[float, str]]:
        found = []
        for line in self.path.read_text(errors="replace").splitlines():
            stamp, _, rest = line.partition(" ")
            name, _, payload = rest.partition(" ")
            if name == topic:
                found.append((float(stamp), payload))
        return found

    def wait(self, topic: str, check: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for _, payload in reversed(self.lines(topic)):
                try:
                    value = json.loads(payload)
                except ValueError:
                    continue
                if check(value):
                    return dict(value)
            time.sleep(0.1)
        raise RuntimeError(f"{topic}: not reached within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._out.close()


def login(server: str, user: str) -> bytes:
    return f"/proxy-session/;{server};Start session;SCALE;{user};o;ctx;login".encode()


def storm(watch: Watch, udp_port: int, count: int) -> dict[str, Any]:
    before = {t: len(watch.lines(t)) for t in ("qlik2mqtt/storm", "qlik2mqtt/site")}
    took = send_paced(
        udp_port, [login("STORM", f"s{n}") for n in range(count)], count, SEND_DEADLINE
    )
    watch.wait("qlik2mqtt/storm", lambda p: p.get("active_sessions") == count, 60)
    time.sleep(1.0)  # the coalescer's trailing publish, at most one interval later
    return {
        "storm_logins": count,
        "storm_seconds": round(took, 2),
        "storm_server_state_publishes": len(watch.lines("qlik2mqtt/storm"))
        - before["qlik2mqtt/storm"],
        "storm_site_publishes": len(watch.lines("qlik2mqtt/site")) - before["qlik2mqtt/site"],
    }


def sessions(watch: Watch, udp_port: int, count: int, servers: int, already: int) -> None:
    lines = [login(f"QS{n % servers:02d}", f"u{n}") for n in range(count)]
    send_paced(udp_port, lines, 10_000, SEND_DEADLINE)
    total = count + already
    watch.wait("qlik2mqtt/site", lambda p: p.get("active_sessions") == total, 120)


def restart_seconds(work: Path, ports: tuple[int, int], watch: Watch) -> float:
    """From starting the process to `online` arriving at the watching subscriber."""
    began = time.time()
    process = start_target("bridge", work, *ports)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for stamp, payload in watch.lines("qlik2mqtt/bridge/state"):
                if payload == "online" and stamp >= began:
                    return stamp - began
            time.sleep(0.02)
        raise RuntimeError("the restarted bridge did not come online within 30 s")
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=50_000)
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--storm", type=int, default=10_000)
    args = parser.parse_args()
    if not 1 <= args.sessions <= 500_000 or not 1 <= args.servers <= 1000:
        raise SystemExit("sessions 1-500000, servers 1-1000")
    if not 1 <= args.storm <= 100_000:
        raise SystemExit("storm 1-100000")
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    broker = Broker(work)
    broker.start()
    udp_port = free_port(socket.SOCK_DGRAM)
    watch = Watch(work, broker.port)
    process = start_target("bridge", work, broker.port, udp_port)
    result: dict[str, Any] = {}
    try:
        wait_online(broker.port, log=work / "bridge.log")
        result["rss_mb_at_start"] = round(rss_mb(process.pid, "VmRSS"), 1)
        result |= storm(watch, udp_port, args.storm)
        # The storm's server counts as one of the servers, its logins as sessions.
        rest = max(0, args.sessions - args.storm)
        sessions(watch, udp_port, rest, max(1, args.servers - 1), already=args.storm)
        result["sessions"] = rest + args.storm
        result["servers"] = max(1, args.servers - 1) + 1
        result["rss_mb_with_sessions"] = round(rss_mb(process.pid, "VmRSS"), 1)
        result["peak_rss_mb"] = round(rss_mb(process.pid), 1)
    finally:
        process.terminate()
        process.wait(30)
    try:
        state = load_state(work / "state.json")
        assert state is not None
        saved = sum(len(server.sessions) for server in state.servers.values())
        began = time.perf_counter()
        save_state(work / "state-copy.json", state)
        result["state_save_ms"] = round((time.perf_counter() - began) * 1000, 1)
        result["state_file_mb"] = round((work / "state.json").stat().st_size / 1e6, 1)
        result["sessions_saved"] = saved
        restart = restart_seconds(work, (broker.port, udp_port), watch)
        result["restart_to_online_s"] = round(restart, 2)
    finally:
        watch.stop()
        broker.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
