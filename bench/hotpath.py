"""The bridge's own cost per event, in one process and without UDP: repeatable where the
full benchmark (`bench.run`) is at the mercy of four processes sharing two cores.

    .venv/bin/python -m bench.hotpath [--events 100000] [--burst 500] [--rounds 3]
        [--load sessions|log_events]
    .venv/bin/python -m bench.hotpath --worst

A real mosquitto, the bridge's real extensions (Home Assistant discovery and state on) and
its real MQTT link; datagrams are handed to the listener's callback in bursts, as the event
loop reads them from a busy socket. Reports CPU microseconds per event of this process, from
the first datagram until the broker acknowledged the last event. `--load log_events` hands
over the mix `bench.run --load log_events` sends (`bench.loadgen.log_event`: warnings and
errors of the four services, half in qlik2mqtt's XML layout, half in Butler SOS's `;` format).

`--worst` times the parser on the worst cases (`worst_cases`: 64 KB of `;` fields in every
format, deep and wide XML, a long base64 message) at 8 KB and 64 KB, and how long a valid
event sent right after 20 of them at 64 KB takes to reach the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import Broker
from bench.loadgen import COMMANDS, log_event
from bridge.cli import event_loop_runner
from bridge.config import load_config
from bridge.core.state import BridgeState
from bridge.inputs.parse import parse_datagram
from bridge.service import Wired, wire


def datagrams(count: int, users: int = 5000, load: str = "sessions") -> list[bytes]:
    """What `bench/loadgen.py` sends (`--kind sessions` or `log`), built before the clock
    starts."""
    if load == "log_events":
        return [log_event(n, time.time_ns()) for n in range(count)]
    return [
        (
            f"/proxy-session/;BENCH;{COMMANDS[n % 4]};LOAD;u{n % users};s{n};ctx;{time.time_ns()}"
        ).encode()
        for n in range(count)
    ]


_DATE = "2026-05-06 14:23:45,123"
_LOG_HEAD = f"20261202T010000.000+0100;{_DATE};ERROR;QS1;System.Engine;CORP\\svc"
_LOG_TAILS = {"engine": 10, "proxy": 7, "repository": 7, "scheduler": 9}


def worst_cases(size: int) -> dict[str, bytes]:
    """Datagrams of about `size` bytes that cost a parser the most per byte: as many `;`
    fields as fit, in every text format (names, messages and whole lines of them, with the
    anchors that make a parser look for names: a date and a level, a default task name), and
    XML nested deep, with many properties, or a long base64 message."""
    room = size - 256  # the fixed parts of the longest line
    fields = "a;" * (room // 2)
    half = "a;" * (room // 4)
    dates = f"{_DATE};" * (room // (len(_DATE) + 1))
    cases = {
        "legacy_fields": f"QS1;{fields}CORP\\mia",
        "legacy_dates": f"QS1;{dates}ERROR",
        "legacy_user": f"QS1;Start session;CORP;{fields}mia",
        "legacy_default_name": f"QS1;Reload task of {half}a;{half}a;CORP\\mia",
        "tagged_scheduler_names": (
            f"/scheduler-task-failed/;QS1;{fields}CORP\\mia;tid;aid;{_DATE};ERROR;eid;boom"
        ),
        "tagged_scheduler_message": (
            f"/scheduler-task-failed/;QS1;T;A;CORP\\mia;tid;aid;{_DATE};ERROR;eid;{fields}"
        ),
        "tagged_user": f"/proxy-session/;QS1;Start session;CORP;mia;o;c;{fields}",
        "engine_reload": f"/engine-reload-failed/;QS1;aid;sid;CORP;mia;{_DATE};ERROR;{fields}",
    }
    for source, tail in _LOG_TAILS.items():
        rest = ";".join(["(null)"] * tail)
        cases[f"log_{source}_message"] = f"/qseow-{source}/;1;{_LOG_HEAD};{fields}{rest}"
        cases[f"log_{source}_fields"] = f"/qseow-{source}/;{fields}"
    depth = room // 7
    cases["log4j_xml_deep"] = (
        '<log4j:event logger="System.Scheduler" level="ERROR"><log4j:message>'
        + "<a>" * depth
        + "</a>" * depth
        + "</log4j:message></log4j:event>"
    )
    data = '<log4j:data name="p" value="v" />'
    cases["log4j_xml_wide"] = (
        '<log4j:event logger="System.Scheduler" level="ERROR"><log4j:properties>'
        + data * (room // len(data))
        + "</log4j:properties></log4j:event>"
    )
    message = base64.b64encode(b"x" * ((room - 256) * 3 // 4)).decode()
    cases["log_event_xml_base64"] = (
        '<qseow-engine:event logger="System.Engine" timestamp="2026-12-02T01:00:00.0000000+01:00"'
        ' level="ERROR" username="CORP\\svc">'
        f"<qseow-engine:message>{message}</qseow-engine:message><qseow-engine:properties>"
        '<qseow-engine:data name="log4net:HostName" value="UVMx" /></qseow-engine:properties>'
        "</qseow-engine:event>"
    )
    cases["log_event_xml_deep"] = (
        '<qseow-engine:event level="ERROR"><qseow-engine:exception>'
        + "<a>" * (depth // 2)
        + "</a>" * (depth // 2)
        + "</qseow-engine:exception></qseow-engine:event>"
    )
    cdata = "<![CDATA[\r" * (room // 10)
    cases["log_event_xml_cdata"] = (
        '<qseow-engine:event logger="S" level="ERROR"><qseow-engine:exception>'
        + cdata
        + "</qseow-engine:exception></qseow-engine:event>"
    )
    return {name: text.encode() for name, text in cases.items()}


def parse_seconds(data: bytes, rounds: int = 3) -> float:
    """The parser's best time over `rounds` for one datagram (the others paid for neighbours)."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        parse_datagram(data, 65535)
        best = min(best, time.perf_counter() - start)
    return best


async def _started(mqtt_port: int, work: Path) -> Wired:
    """The bridge wired to the broker, its server known and its extensions' first-event hold
    released: the steady state."""
    config = load_config(
        None,
        {
            "QLIK2MQTT_MQTT__HOST": "127.0.0.1",
            "QLIK2MQTT_MQTT__PORT": str(mqtt_port),
            "QLIK2MQTT_STATE_FILE": str(work / "state.json"),
            "QLIK2MQTT_HOMEASSISTANT__ENABLED": "true",
        },
    )
    wired = wire(config, BridgeState(), time.time(), embedded_broker=False)
    wired.link.start()
    await wired.link.wait_connected()
    warm = datagrams(1)[0].replace(b";s0;", b";warm;")
    wired.bridge.handle_datagram(warm, "127.0.0.1")  # the server is known: no first-event hold
    for extension in wired.extensions:  # releases the first-event hold
        await extension.stop()
    await wired.link.wait_idle()
    return wired


async def measure(
    mqtt_port: int, work: Path, count: int, burst: int, load: str = "sessions"
) -> dict[str, float]:
    wired = await _started(mqtt_port, work)
    bridge, link, stats = wired.bridge, wired.link, wired.bridge.stats
    loads = datagrams(count, load=load)
    cpu, wall = time.process_time(), time.perf_counter()
    for start in range(0, count, burst):
        for data in loads[start : start + burst]:
            bridge.handle_datagram(data, "127.0.0.1")
        await asyncio.sleep(0)
    await link.wait_idle()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert stats.events_published == count + 1, stats.events_published
    await link.close(5.0)
    return {
        "events": count,
        "cpu_us_per_event": round(cpu / count * 1e6, 2),
        "events_per_cpu_second": round(count / cpu),
        "wall_seconds": round(wall, 3),
    }


STALL_DATAGRAMS = 20


async def stall(mqtt_port: int, work: Path, blockers: list[bytes]) -> float:
    """Seconds from the first of `blockers` until the broker acknowledged a valid event handed
    over right after them, as the event loop reads datagrams queued in a busy socket."""
    wired = await _started(mqtt_port, work)
    published = wired.bridge.stats.events_published
    valid = datagrams(1)[0].replace(b";s0;", b";after-the-worst;")
    start = time.perf_counter()
    for data in blockers:
        wired.bridge.handle_datagram(data, "127.0.0.1")
    wired.bridge.handle_datagram(valid, "127.0.0.1")
    await wired.link.wait_idle()
    seconds = time.perf_counter() - start
    assert wired.bridge.stats.events_published > published, "the valid event was not published"
    await wired.link.close(5.0)
    return seconds


def worst(only: list[str]) -> None:
    """Every worst case's parse time at 8 and 64 KB, then the stall after 20 of each at 64 KB
    (and after the 20 slowest of all of them), one line of JSON each."""
    small, large = worst_cases(8192), worst_cases(65535)
    names = [name for name in large if not only or name in only]
    for name in names:
        small_ms, large_ms = parse_seconds(small[name]) * 1e3, parse_seconds(large[name]) * 1e3
        print(
            json.dumps(
                {
                    "case": name,
                    "bytes": len(large[name]),
                    "parse_ms_8k": round(small_ms, 2),
                    "parse_ms_64k": round(large_ms, 2),
                    "ratio": round(large_ms / max(small_ms, 1e-3), 1),
                }
            ),
            flush=True,
        )
    runs = {name: [large[name]] * STALL_DATAGRAMS for name in names}
    slowest = sorted(names, key=lambda name: -parse_seconds(large[name], 1))
    runs["mixed_slowest"] = [large[slowest[n % len(slowest)]] for n in range(STALL_DATAGRAMS)]
    for name, blockers in runs.items():
        work = Path(tempfile.mkdtemp(prefix="bench-worst-"))
        broker = Broker(work)
        broker.start()
        try:
            seconds = event_loop_runner()(stall(broker.port, work, blockers))
        finally:
            broker.stop()
        print(json.dumps({"stall": name, "datagrams": len(blockers), "seconds": round(seconds, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", choices=("sessions", "log_events"), default="sessions")
    parser.add_argument("--worst", action="store_true", help="the worst cases (see the docstring)")
    parser.add_argument("--case", action="append", default=[], help="only this worst case")
    args = parser.parse_args()
    if args.worst:
        worst(args.case)
        return
    if not 1 <= args.events <= 1_000_000 or not 1 <= args.rounds <= 20:
        raise SystemExit("events 1-1000000, rounds 1-20")
    rates = []
    for _ in range(args.rounds):
        work = Path(tempfile.mkdtemp(prefix="bench-hotpath-"))
        broker = Broker(work)
        broker.start()
        try:
            result = event_loop_runner()(
                measure(broker.port, work, args.events, args.burst, args.load)
            )
        finally:
            broker.stop()
        print(json.dumps(result), flush=True)
        rates.append(result["cpu_us_per_event"])
    # The best round is the cost itself; the others paid for neighbours on a shared machine.
    print(json.dumps({"best_cpu_us_per_event": min(rates), "median": statistics.median(rates)}))


if __name__ == "__main__":
    main()
