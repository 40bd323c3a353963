"""The benchmark: fixed offered rates against the bridge and the two yardsticks.

    .venv/bin/python -m bench.run [--rates 5000,10000,20000,40000] [--seconds 2]
        [--targets bridge,naive,tuned] [--repeat 3] [--json bench/results/run.json]
        [--load sessions|log_events] [--held N [--held-rate 10000] [--settle 12]]
        [--max-sessions N]
    .venv/bin/python -m bench.run --load bigsite [bench.bigsite's options]

For each target and rate: a fresh mosquitto, the target, a mosquitto_sub subscriber and the
load generator (separate processes, loopback only, bounded). Reports offered, delivered, lost,
delivered rate, latency from datagram sent to event received (p50/p99), the target's CPU and
peak RSS, and for the bridge its retained-state publishes per second. With --repeat the table
shows medians (and the worst loss) over the runs; the JSON keeps every run.

`--load log_events` offers warnings and errors of the four services instead of sessions (the
XML and `;` log-event formats in turn; `bench/loadgen.py`), counted on `<server>/event/log`;
the bridge only: the yardsticks do not read log events.

`--load bigsite` runs `bench.bigsite` (its own options: 50,000 users held on one node, then
1,000 logins and 1,000 logouts a second; bytes a second per topic class and the events' p99).

`--held N` logs N users in to the loaded node before the load starts (at `--held-rate` a
second, then until the bridge's state holds them, then `--settle` seconds of quiet, 12 by
default; not counted in the results, the subscriber starts after them): a big site's state
while the load runs. `--settle 0` measures right after the login storm instead (the first
save and the first full user list of the held sessions then fall in the load). The
forwarders hold nothing, so they get no held sessions. `--max-sessions N` sets the bridge's
`limits.max_sessions_per_server` (default 100,000; at least N plus the load's users). The
bridge's peak RSS is then the held sessions' memory too.
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bigsite
from bench.common import (
    LOG_EVENTS,
    Broker,
    Subscription,
    cpu_seconds,
    free_port,
    hold,
    load,
    rss_mb,
    start_target,
    wait_online,
    wait_settled,
)

LOADS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "sessions": ("sessions", (), "origin"),
    "log_events": ("log", (LOG_EVENTS,), "subsystem"),
}
"""--load → the load generator's kind, the extra event topics, the field naming each event."""


HOLD_TIMEOUT = 180.0
"""Seconds at most to log the held sessions in and see the bridge hold them."""


def measure(
    target: str,
    rate: int,
    seconds: float,
    load_name: str = "sessions",
    held: int = 0,
    held_rate: int = 10_000,
    max_sessions: int | None = None,
    settle: float = 0.0,
) -> dict[str, Any]:
    kind, topics, identity = LOADS[load_name]
    work = Path(tempfile.mkdtemp(prefix=f"bench-{target}-{rate}-"))
    broker = Broker(work)
    broker.start()
    udp_port = free_port(socket.SOCK_DGRAM)
    process = start_target(target, work, broker.port, udp_port, max_sessions)
    subscription = Subscription(work, broker.port, f"bench-{target}-{rate}", *topics)
    held_in = None
    try:
        if held and target == "bridge":  # before the subscriber: not among the results
            wait_online(broker.port, log=work / f"{target}.log")
            held_in = hold(udp_port, broker.port, held, held_rate, HOLD_TIMEOUT)
            time.sleep(settle)  # the quiet after the storm (bounded: at most 120 s)
        subscription.start()
        subscription.ready(broker.port)
        wait_online(broker.port, log=work / f"{target}.log")
        subscription.warm_up(udp_port)
        cpu_before = cpu_seconds(process.pid)
        offered = load(udp_port, rate, seconds, kind=kind)
        wait_settled(subscription, offered["valid"], timeout=seconds + 30)
        cpu = cpu_seconds(process.pid) - cpu_before
        peak = rss_mb(process.pid)
        received = subscription.received()
        states = subscription.state_publishes()
    finally:
        subscription.stop()
        process.terminate()
        process.wait(30)
        broker.stop()
    latencies = sorted(
        (stamp - int(message["message"]) / 1e9) * 1000
        for stamp, message in received
        if str(message.get("message", "")).isdigit()
    )
    delivered = len({message.get(identity) for _, message in received})
    result = {
        "target": target,
        "load": load_name,
        "offered_rate": rate,
        "offered": offered["valid"],
        "delivered": delivered,
        "lost": offered["valid"] - delivered,
        "duplicates": len(received) - delivered,
        "delivered_rate": delivered_rate(received, offered, delivered),
        "latency_ms_p50": round(statistics.median(latencies), 2) if latencies else None,
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1], 2)
        if latencies
        else None,
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(peak, 1),
    }
    if held_in is not None:
        result["held"] = held
        result["held_in_s"] = round(held_in, 1)
        result["settle_s"] = settle
    if target == "bridge":  # retained state is coalesced: a handful a second, whatever the load
        span = (max(states) - min(states)) if len(states) > 1 else 0.0
        result["state_publishes_per_s"] = round(len(states) / span, 1) if span else len(states)
    return result


def delivered_rate(
    received: list[tuple[float, dict[str, Any]]], offered: dict[str, Any], delivered: int
) -> int:
    """Events delivered per second, from the first datagram sent to the last event received:
    a target that falls behind and catches up later scores lower than the offered rate."""
    if not received:
        return 0
    span = max(stamp for stamp, _ in received) - float(offered["started"])
    return round(delivered / max(span, 1e-3))


def main() -> None:
    load = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    load.add_argument("--load")
    chosen, rest = load.parse_known_args()
    if chosen.load == "bigsite":
        bigsite.main(rest)  # a load of its own, with its own options (--seconds, --rate, ...)
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="5000,10000,20000,40000")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--targets", default=None, help="default bridge,naive,tuned (sessions)")
    parser.add_argument("--load", choices=[*sorted(LOADS), "bigsite"], default="sessions")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per rate and target; the table's medians"
    )
    parser.add_argument("--held", type=int, default=0, help="sessions held before the load")
    parser.add_argument("--held-rate", type=int, default=10_000, help="their logins a second")
    parser.add_argument("--max-sessions", type=int, help="limits.max_sessions_per_server")
    parser.add_argument(
        "--settle", type=float, default=12.0, help="seconds of quiet after the held logins"
    )
    args = parser.parse_args()
    if not 1 <= args.repeat <= 10:
        raise SystemExit("repeat 1-10")
    if not 0 <= args.held <= 500_000 or not 100 <= args.held_rate <= 50_000:
        raise SystemExit("held 0-500000, held-rate 100-50000/s")
    if not 0 <= args.settle <= 120:
        raise SystemExit("settle 0-120 s")
    if args.held and args.held + 5000 > (args.max_sessions or 100_000):
        raise SystemExit("--max-sessions must leave room for --held and the load's 5,000 users")
    targets = (
        args.targets or ("bridge" if args.load == "log_events" else "bridge,naive,tuned")
    ).split(",")
    if args.load == "log_events" and targets != ["bridge"]:
        raise SystemExit("the log-event load runs against the bridge only")
    runs = []
    for _ in range(args.repeat):  # round-robin, so a noisy minute hits every target alike
        for rate in [int(r) for r in args.rates.split(",")]:
            for target in targets:
                result = measure(
                    target,
                    rate,
                    args.seconds,
                    args.load,
                    args.held,
                    args.held_rate,
                    args.max_sessions,
                    args.settle,
                )
                runs.append(result)
                print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    results = medians(runs)
    report = {
        "machine": {
            "cpus": __import__("os").cpu_count(),
            "python": platform.python_version(),
            "system": platform.platform(),
        },
        "seconds": args.seconds,
        "repeat": args.repeat,
        "load": args.load,
        "held": args.held,
        "max_sessions": args.max_sessions,
        "results": results,
        "runs": runs,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    print_table(results)


def medians(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target and rate: the median of each number over its runs, the worst loss."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["offered_rate"]), []).append(run)
    rows = []
    for (target, rate), group in groups.items():
        row: dict[str, Any] = {"target": target, "offered_rate": rate, "runs": len(group)}
        for key, value in group[0].items():
            if key in row or not isinstance(value, int | float):
                continue
            values = [run[key] for run in group if run.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        row["lost"] = max(run["lost"] for run in group)
        rows.append(row)
    return rows


def print_table(results: list[dict[str, Any]]) -> None:
    columns = [
        "target",
        "runs",
        "offered_rate",
        "offered",
        "delivered",
        "lost",
        "delivered_rate",
        "latency_ms_p50",
        "latency_ms_p99",
        "cpu_seconds",
        "peak_rss_mb",
        "state_publishes_per_s",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for result in results:
        print("| " + " | ".join(str(result.get(c)) for c in columns) + " |")


if __name__ == "__main__":
    main()
