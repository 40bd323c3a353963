"""Big site: what the bridge publishes downstream while 50,000 users are held and churn.

    .venv/bin/python -m bench.bigsite [--users 50000] [--rate 1000] [--seconds 120]
                                      [--source DIR] [--quiet 12]

Against a real mosquitto and the bridge as a separate process (Home Assistant discovery on):
1. `--users` users log in to one node (QSBIG) at 10,000 a second, and the bridge's state says so;
2. then for `--seconds`, `--rate` logins of new users and `--rate` logouts of held users a
   second (the node keeps `--users`): the bytes a subscriber to `qlik2mqtt/#` and
   `homeassistant/#` receives, per topic class, per second, and the largest payload of each
   class; the churn's events delivered and their latency from datagram sent to event received
   (p50, p99; each datagram carries its send time); and the bridge's CPU over the churn.
   With `mqtt.state_bytes_per_second` the 900 KB user list goes about once a minute: the churn's
   120 s default gives its rate (a 10 s one catches one list, or none).
`--source DIR` runs the bridge of another checkout
(`mkdir -p DIR && git archive <commit> | tar -x -C DIR`)
with this one's virtual environment: the same load before and after a change.
Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    ROOT,
    Broker,
    Subscription,
    cpu_seconds,
    free_port,
    retained_json,
    rss_mb,
    send_paced,
    wait_online,
)

SEND_DEADLINE = 240.0
SERVER = "qlik2mqtt/qsbig"
CLASSES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("server state", lambda t: t == SERVER),
    ("user list", lambda t: t == f"{SERVER}/users"),
    ("site", lambda t: t.startswith("qlik2mqtt/site")),
    ("events", lambda t: t.startswith("qlik2mqtt/") and "/event/" in t),
    ("bridge", lambda t: t.startswith("qlik2mqtt/bridge/")),
    ("home assistant", lambda t: t.startswith("homeassistant/")),
)
RETAINED = ("server state", "user list", "site", "bridge", "home assistant")


def start_bridge(
    source: Path, work: Path, mqtt_port: int, udp_port: int
) -> subprocess.Popen[bytes]:
    config = work / "bridge.yaml"
    config.write_text(
        f"udp: {{host: 127.0.0.1, user_activity_port: {udp_port}, "
        f"task_port: {free_port(socket.SOCK_DGRAM)}, log_port: 0}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}\n"
        f"homeassistant: {{enabled: true}}\nstate_file: {work}/state.json\n"
        f"stats_interval: 10s\nlogging: {{format: json, level: warning}}\n"
        "limits: {max_sessions_per_server: 500000}\n"
    )
    command = [PYTHON, "-m", "bridge", "run", "--config", str(config)]
    with (work / "bridge.log").open("ab") as log:  # cwd: the checkout whose bridge runs
        return subprocess.Popen(command, stdout=log, stderr=log, cwd=source)


class Sizes:
    """mosquitto_sub writing `<receive time> <topic> <payload bytes>` per message."""

    def __init__(self, work: Path, port: int) -> None:
        self.path = work / "sizes.txt"
        self._out = self.path.open("ab")
        topics = ("-t", "qlik2mqtt/#", "-t", "homeassistant/#")
        self.process = subprocess.Popen(
            ["mosquitto_sub", "-p", str(port), *topics, "-F", "%U %t %l"],
            stdout=self._out,
            stderr=subprocess.DEVNULL,
        )

    def rows(self) -> list[tuple[float, str, int]]:
        rows = []
        for line in self.path.read_text(errors="replace").splitlines():
            parts = line.split(" ")
            if len(parts) == 3 and parts[2].isdigit():
                rows.append((float(parts[0]), parts[1], int(parts[2])))
        return rows

    def wait_events(self, count: int, timeout: float) -> None:
        """Until `count` user events have arrived: the load's, all in before the churn."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(topic.endswith("/event/user") for _, topic, _ in self.rows()) >= count:
                return
            time.sleep(0.5)
        raise RuntimeError(f"not {count} user events within {timeout} s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self._out.close()


def wait_users(port: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = retained_json(port, SERVER)
        if state is not None and state.get("active_sessions") == count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{SERVER}: not {count} sessions within {timeout} s")


def line(command: str, user: int, message: str = "") -> bytes:
    """A session line; sent with `stamped`, its message is the send time."""
    return f"/proxy-session/;QSBIG;{command};BIG;user{user:06d};o{user};ctx;{message}".encode()


def latencies_ms(subscription: Subscription, since: float) -> list[float]:
    """Datagram sent to event received, for the stamped events received after `since`."""
    return sorted(
        (stamp - int(message["message"]) / 1e9) * 1000
        for stamp, message in subscription.received()
        if stamp >= since and str(message.get("message", "")).isdigit()
    )


def per_class(rows: list[tuple[float, str, int]], since: float, until: float) -> dict[str, Any]:
    seconds = until - since
    total: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    largest: dict[str, int] = defaultdict(int)
    for stamp, topic, size in rows:
        if not since <= stamp <= until:
            continue
        name = next((name for name, match in CLASSES if match(topic)), "other")
        total[name] += size
        count[name] += 1
        largest[name] = max(largest[name], size)
    return {
        name: {
            "bytes_per_s": round(total[name] / seconds),
            "messages_per_s": round(count[name] / seconds, 1),
            "largest_bytes": largest[name],
        }
        for name in sorted(total)
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument("--quiet", type=float, default=12.0, help="seconds before the churn")
    args = parser.parse_args(argv)
    if not 1 <= args.users <= 200_000 or not 1 <= args.rate <= 10_000:
        raise SystemExit("users 1-200000, rate 1-10000")
    if not 1 <= args.seconds <= 180 or not 0 <= args.quiet <= 60:
        raise SystemExit("seconds 1-180, quiet 0-60")
    if not (args.source / "bridge" / "__main__.py").exists():
        raise SystemExit(f"{args.source}: no bridge there")
    work = Path(tempfile.mkdtemp(prefix="bench-bigsite-"))
    broker = Broker(work)
    broker.start()
    udp_port = free_port(socket.SOCK_DGRAM)
    sizes = Sizes(work, broker.port)
    subscription = Subscription(work, broker.port, "bench-bigsite")
    process = start_bridge(args.source.resolve(), work, broker.port, udp_port)
    result: dict[str, Any] = {"source": str(args.source), "users": args.users}
    try:
        subscription.start()
        subscription.ready(broker.port)
        wait_online(broker.port, log=work / "bridge.log")
        held = [line("Start session", n, "held") for n in range(args.users)]
        send_paced(udp_port, held, 10_000, SEND_DEADLINE)
        wait_users(broker.port, args.users, 120)
        sizes.wait_events(args.users, 60)
        time.sleep(args.quiet)  # past the list's interval (10 s): the churn starts from quiet
        churn = int(args.rate * args.seconds)
        lines = []
        for n in range(churn):  # a login of a new user, a logout of a held one, in turn
            lines.append(line("Start session", args.users + n))
            lines.append(line("Stop session", n))
        cpu_before = cpu_seconds(process.pid)
        began = time.time()
        took = send_paced(udp_port, lines, 2 * args.rate, SEND_DEADLINE, stamped=True)
        ended = time.time()
        cpu = cpu_seconds(process.pid) - cpu_before
        wait_users(broker.port, args.users, 60)
        latencies = latencies_ms(subscription, began)
        settle = time.monotonic() + 60
        while len(latencies) < len(lines) and time.monotonic() < settle:
            time.sleep(0.5)  # the last events on their way (a bounded wait)
            latencies = latencies_ms(subscription, began)
        result |= {
            "churn_events": len(lines),
            "churn_events_delivered": len(latencies),
            "latency_ms_p50": round(latencies[len(latencies) // 2], 2) if latencies else None,
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2)
            if latencies
            else None,
            "churn_per_s": f"{args.rate} logins + {args.rate} logouts",
            "churn_seconds": round(took, 2),
            "bridge_cpu_percent": round(100 * cpu / took, 1),
            "rss_mb": round(rss_mb(process.pid, "VmRSS"), 1),
        }
        time.sleep(1.0)  # what was on its way lands before the count
        classes = per_class(sizes.rows(), began, ended)
        result["per_class"] = classes
        result["retained_bytes_per_s"] = sum(
            classes[name]["bytes_per_s"] for name in RETAINED if name in classes
        )
        result["retained_bytes_per_s_without_list"] = sum(
            classes[name]["bytes_per_s"]
            for name in RETAINED
            if name in classes
            if name != "user list"
        )
    finally:
        process.terminate()
        process.wait(30)
        sizes.stop()
        subscription.stop()
        broker.stop()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
