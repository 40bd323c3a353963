"""Home Assistant at a big site: its CPU while one node holds 200, 5,000 or 30,000 users, churning.

    scripts/check-home-assistant --scale [VENV]
    .venv/bin/python -m bench.ha_scale VENV [--levels 200,5000,30000] [--rate 50]
                                            [--seconds 60] [--login-rate 1000] [--quiet 15]
                                            [--ratio 1.5] [--logouts oldest|random]
                                            [--name-length 10] [--statestream]
                                            [--source DIR]

A real Home Assistant from VENV (recorder on, committing every second, as the check runs it; no
automations; no statestream unless `--statestream`: every state and attribute published back, as
the check has it), mosquitto and this checkout's bridge (Home Assistant discovery on), all on
loopback. For each level in turn, one node (QSBIG) is brought to that many users
(new users log in at `--login-rate` a second), Home Assistant's sessions sensor is awaited at
that count in its recorder and Home Assistant idle (under 5 % of a core over 2 s, at most
600 s), `--quiet` seconds pass, then for `--seconds` `--rate` new users log
in and `--rate` held users log out a second (the longest held first, or with `--logouts random`
any; the node keeps the level).
Over the churn: Home Assistant's CPU and the bridge's (utime + stime of their processes, from
/proc, as % of one core), the bytes Home Assistant's subscriptions carried, and from its
recorder the state rows per entity and the attribute rows it added. Then the 10 s after the
churn (work Home Assistant still had queued) and how long its sensor took to be at the level.

Prints a table, the entities that changed most, Home Assistant's warnings, and the verdict:
Home Assistant's CPU at the largest level within `--ratio` (1.5) times the smallest's. Exit 0
when it holds. Loopback only; every loop is bounded in count and time; it stops only the
processes it started. `--source DIR` runs the bridge of another checkout (`mkdir -p DIR &&
git archive <commit> | tar -x -C DIR`) with this one's virtual environment, as `bench.bigsite` does.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

from bench.bigsite import SERVER, Sizes, per_class, start_bridge, wait_users
from bench.common import ROOT, Broker, cpu_seconds, free_port, send_paced, wait_online
from bench.ha_entry import write_mqtt_entry

SENSOR = "sensor.qlik_sense_qsbig_active_sessions"
START_DEADLINE = 300.0
TAIL = 10.0
SETTLE_DEADLINE = 600.0
IDLE_PERCENT = 5.0
# Topic classes a Home Assistant entity reads (bench.bigsite's names); the list topic is not one.
READ_BY_HA = ("server state", "site", "events", "bridge")


def write_config(config: Path, mqtt_port: int, statestream: bool = False) -> None:
    """Home Assistant's configuration: the recorder on (commit every second, as the check),
    MQTT with discovery on the broker, warnings only in the log (and the start line); with
    `statestream`, every state and attribute published back to the broker, as the check does."""
    (config / ".storage").mkdir(parents=True)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: qlik2mqtt scale\n  latitude: 0\n  longitude: 0\n"
        "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n"
        "logger:\n  default: warning\n  logs:\n    homeassistant.bootstrap: info\n"
        "recorder:\n  commit_interval: 1\n"
        + (
            "mqtt_statestream:\n  base_topic: hastate\n  publish_attributes: true\n"
            if statestream
            else ""
        )
    )
    write_mqtt_entry(config, mqtt_port, "qlik2mqttscale")


class Recorder:
    """Home Assistant's recorder database, read only (it writes alongside: SQLite WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        if not self.path.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5) as db:
                return db.execute(sql, args).fetchall()
        except sqlite3.OperationalError:  # not created yet, or busy: asked again
            return []

    def state(self, entity_id: str) -> str | None:
        rows = self._query(
            "SELECT s.state FROM states s JOIN states_meta m ON s.metadata_id = m.metadata_id "
            "WHERE m.entity_id = ? ORDER BY s.state_id DESC LIMIT 1",
            entity_id,
        )
        return str(rows[0][0]) if rows else None

    def marks(self) -> tuple[int, int]:
        """The last state row and attribute row so far."""
        rows = self._query(
            "SELECT (SELECT COALESCE(MAX(state_id), 0) FROM states), "
            "(SELECT COALESCE(MAX(attributes_id), 0) FROM state_attributes)"
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def since(self, marks: tuple[int, int], until: tuple[int, int]) -> dict[str, Any]:
        """Between marks: per entity, its state rows, the attribute rows it added (each a new
        set of attributes, which the recorder stores whole) and their bytes; and in all."""
        per_entity = self._query(
            "SELECT m.entity_id, COUNT(*), COUNT(DISTINCT CASE WHEN s.attributes_id > ? "
            "THEN s.attributes_id END) FROM states s "
            "JOIN states_meta m ON s.metadata_id = m.metadata_id "
            "WHERE s.state_id > ? AND s.state_id <= ? GROUP BY m.entity_id ORDER BY 2 DESC",
            marks[1],
            marks[0],
            until[0],
        )
        sizes = dict(
            self._query(
                "SELECT m.entity_id, SUM(LENGTH(CAST(a.shared_attrs AS BLOB))) "
                "FROM state_attributes a JOIN (SELECT DISTINCT attributes_id, metadata_id "
                "FROM states WHERE state_id > ? AND state_id <= ? AND attributes_id > ?) s "
                "ON a.attributes_id = s.attributes_id "
                "JOIN states_meta m ON s.metadata_id = m.metadata_id GROUP BY m.entity_id",
                marks[0],
                until[0],
                marks[1],
            )
        )
        attributes = self._query(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(shared_attrs AS BLOB))), 0), "
            "COALESCE(MAX(LENGTH(CAST(shared_attrs AS BLOB))), 0) FROM state_attributes "
            "WHERE attributes_id > ? AND attributes_id <= ?",
            marks[1],
            until[1],
        )
        count, size, largest = attributes[0] if attributes else (0, 0, 0)
        return {
            "entities": {
                str(entity): {
                    "state_rows": int(rows),
                    "attribute_rows": int(new),
                    "attribute_bytes": int(sizes.get(entity) or 0),
                }
                for entity, rows, new in per_entity
            },
            "attribute_rows": int(count),
            "attribute_bytes": int(size),
            "largest_attributes": int(largest),
        }


def wait_for(check: Any, what: str, timeout: float) -> float:
    """Poll `check` every 0.5 s until true; the seconds it took (SystemExit past `timeout`)."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)
    return time.monotonic() - began


def wait_idle(pid: int, timeout: float) -> float:
    """Until the process used under IDLE_PERCENT of a core over 2 s (or `timeout`: then the
    run goes on, and its idle CPU says so); the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if cpu_percent({"p": pid}, 2.0)["p"] < IDLE_PERCENT:
            break
    return time.monotonic() - began


def cpu_percent(pids: dict[str, int], seconds: float) -> dict[str, float]:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: 100 * (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


@dataclass
class Node:
    """The users held on the node, the longest held first, and the next new user's number.
    `random`: a churn logs out held users in a random order (seeded), not the longest held."""

    random: Random | None = None
    name_length: int = 10
    held: deque[int] = field(default_factory=deque)
    next_user: int = 0

    def line(self, command: str, user: int) -> bytes:
        """A session line of bench.bigsite's node; the user id padded to `name_length`."""
        name = f"user{user:06d}".ljust(self.name_length, "x")
        return f"/proxy-session/;QSBIG;{command};BIG;{name};o;ctx;x".encode()

    def logins(self, count: int) -> list[bytes]:
        numbers = range(self.next_user, self.next_user + count)
        self.next_user += count
        self.held.extend(numbers)
        return [self.line("Start session", number) for number in numbers]

    def churn(self, pairs: int) -> list[bytes]:
        """A login of a new user and a logout of a held one (the longest held), in turn."""
        lines = []
        for _ in range(pairs):
            lines.extend(self.logins(1))
            if self.random is not None:
                place = self.random.randrange(len(self.held))
                leaving = self.held[place]
                del self.held[place]
            else:
                leaving = self.held.popleft()
            lines.append(self.line("Stop session", leaving))
        return lines


def run_level(
    args: argparse.Namespace,
    level: int,
    node: Node,
    udp_port: int,
    mqtt_port: int,
    pids: dict[str, int],
    recorder: Recorder,
    sizes: Sizes,
) -> dict[str, Any]:
    result: dict[str, Any] = {"users": level}
    send_paced(udp_port, node.logins(level - len(node.held)), args.login_rate, 300)
    wait_users(mqtt_port, level, 120)
    result["ha_caught_up_s"] = round(
        wait_for(lambda: recorder.state(SENSOR) == str(level), f"HA's {SENSOR} at {level}", 600),
        1,
    )
    # Its sensor shows the count before work queued behind it is done (statestream's publishes
    # of every login's event): Home Assistant idle, or the bound, before the quiet.
    result["ha_idle_after_s"] = round(wait_idle(pids["ha"], SETTLE_DEADLINE), 1)
    time.sleep(max(0.0, args.quiet - 5))
    result["idle_cpu"] = {k: round(v, 1) for k, v in cpu_percent(pids, 5.0).items()}
    lines = node.churn(int(args.rate * args.seconds))
    marks = recorder.marks()
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    began = time.time()
    took = send_paced(udp_port, lines, 2 * args.rate, args.seconds + 30)
    ended = time.time()
    result["churn_cpu"] = {
        name: round(100 * (cpu_seconds(pid) - before[name]) / took, 1) for name, pid in pids.items()
    }
    result["churn_s"] = round(took, 1)
    result["tail_cpu"] = {k: round(v, 1) for k, v in cpu_percent(pids, TAIL).items()}
    result["ha_settled_s"] = round(
        TAIL
        + wait_for(
            lambda: recorder.state(SENSOR) == str(level), f"HA's {SENSOR} back at {level}", 600
        ),
        1,
    )
    # Rows the recorder wrote for the churn: those committed by now (a second after each).
    result["recorded"] = recorder.since(marks, recorder.marks())
    rows = sum(entity["state_rows"] for entity in result["recorded"]["entities"].values())
    result["recorded"]["rows_per_s"] = round(rows / took, 1)
    result["published"] = per_class(sizes.rows(), began, ended)
    return result


def ha_problems(log: Path) -> list[str]:
    if not log.exists():
        return []
    return [
        text
        for text in log.read_text(errors="replace").splitlines()
        if " WARNING " in text or " ERROR " in text
    ]


def table(levels: list[dict[str, Any]]) -> str:
    head = (
        "| users | HA CPU, churn | HA CPU, 10 s after | HA idle | bridge CPU, churn "
        "| server state: publishes/s, largest | HA read, bytes/s | recorder rows/s "
        "| attribute rows (largest) | HA busy after the logins |"
    )
    rows = [head, "|" + "---|" * 10]
    for level in levels:
        cpu, published, recorded = level["churn_cpu"], level["published"], level["recorded"]
        state = published.get("server state", {})
        read = sum(published.get(name, {}).get("bytes_per_s", 0) for name in READ_BY_HA)
        rows.append(
            f"| {level['users']:,} | {cpu['ha']} % | {level['tail_cpu']['ha']} % "
            f"| {level['idle_cpu']['ha']} % | {cpu['bridge']} % "
            f"| {state.get('messages_per_s', 0)}, {state.get('largest_bytes', 0):,} B "
            f"| {read:,} | {recorded['rows_per_s']} "
            f"| {recorded['attribute_rows']} ({recorded['largest_attributes']:,} B) "
            f"| {level['ha_caught_up_s'] + level.get('ha_idle_after_s', 0.0):.0f} s |"
        )
    return "\n".join(rows)


def verdict(levels: list[dict[str, Any]], ratio: float) -> tuple[bool, str]:
    """Home Assistant's CPU over the largest level's churn within `ratio` times the smallest's."""
    smallest, largest = levels[0], levels[-1]
    low, high = smallest["churn_cpu"]["ha"], largest["churn_cpu"]["ha"]
    holds = high <= ratio * low
    return holds, (
        f"HA's CPU at {largest['users']:,} users {high} % against {low} % at "
        f"{smallest['users']:,}: {high / max(low, 0.1):.2f}x, "
        f"{'within' if holds else 'NOT within'} {ratio}x"
    )


def changes(levels: list[dict[str, Any]], top: int = 8) -> str:
    """Per level, the entities the recorder wrote most rows for over the churn: state rows,
    new attribute rows (bytes)."""
    out = []
    for level in levels:
        out.append(f"\n{level['users']:,} users: state rows, new attribute rows (bytes)")
        for entity, rows in list(level["recorded"]["entities"].items())[:top]:
            out.append(
                f"  {entity}: {rows['state_rows']}, {rows['attribute_rows']} "
                f"({rows['attribute_bytes']:,} B)"
            )
    return "\n".join(out)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path, nargs="?", default=ROOT / ".ha-venv")
    parser.add_argument("--levels", default="200,5000,30000", help="users held, increasing")
    parser.add_argument("--rate", type=int, default=50, help="logins (and logouts) a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="each churn's length")
    parser.add_argument("--login-rate", type=int, default=1_000, help="to reach a level")
    parser.add_argument("--quiet", type=float, default=15.0, help="seconds before a churn")
    parser.add_argument("--ratio", type=float, default=1.5, help="the verdict's bound")
    parser.add_argument(
        "--logouts", choices=("oldest", "random"), default="oldest", help="who logs out"
    )
    parser.add_argument("--name-length", type=int, default=10, help="user ids' characters")
    parser.add_argument(
        "--statestream", action="store_true", help="HA publishes its states back (as the check)"
    )
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="another checkout's bridge (bench.bigsite)"
    )
    args = parser.parse_args()
    args.levels = [int(n) for n in args.levels.split(",")]
    if args.levels != sorted(set(args.levels)) or not 1 <= args.levels[0] <= args.levels[-1]:
        raise SystemExit("--levels: increasing user counts")
    if args.levels[-1] > 200_000 or not 1 <= args.rate <= 1_000:
        raise SystemExit("levels up to 200000, rate 1-1000")
    if not 5 <= args.seconds <= 300 or not 5 <= args.quiet <= 120:
        raise SystemExit("seconds 5-300, quiet 5-120")
    if not 10 <= args.login_rate <= 10_000 or args.ratio <= 0:
        raise SystemExit("login rate 10-10000, ratio > 0")
    if not 10 <= args.name_length <= 200:
        raise SystemExit("name length 10-200")
    if not (args.source / "bridge" / "__main__.py").exists():
        raise SystemExit(f"{args.source}: no bridge there")
    if not (args.venv / "bin" / "hass").exists():
        raise SystemExit(f"no Home Assistant in {args.venv} (scripts/check-home-assistant)")
    return args


def main() -> int:
    args = parse()
    work = Path(tempfile.mkdtemp(prefix="qlik2mqtt-ha-scale-"))
    config = work / "ha"
    broker = Broker(work)
    broker.start()
    write_config(config, broker.port, args.statestream)
    udp_port = free_port(socket.SOCK_DGRAM)
    processes: list[subprocess.Popen[bytes]] = []
    sizes: Sizes | None = None
    log = config / "home-assistant.log"
    load = os.getloadavg()
    levels: list[dict[str, Any]] = []
    try:
        with (work / "hass.out").open("wb") as output:
            hass = [str(args.venv / "bin" / "hass"), "-c", str(config)]
            processes.append(subprocess.Popen(hass, stdout=output, stderr=output))
        wait_for(
            lambda: log.exists() and "Home Assistant initialized" in log.read_text(),
            "Home Assistant to start",
            START_DEADLINE,
        )
        processes.append(start_bridge(args.source.resolve(), work, broker.port, udp_port))
        wait_online(broker.port, log=work / "bridge.log")
        sizes = Sizes(work, broker.port)
        pids = {"ha": processes[0].pid, "bridge": processes[1].pid}
        recorder = Recorder(config / "home-assistant_v2.db")
        node = Node(Random(25) if args.logouts == "random" else None, args.name_length)
        for level in args.levels:
            print(f"{level:,} users: logging in, then {args.seconds:.0f} s of churn", flush=True)
            result = run_level(args, level, node, udp_port, broker.port, pids, recorder, sizes)
            levels.append(result)
            print(json.dumps(result), flush=True)
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if sizes is not None:
            sizes.stop()
        broker.stop()
    print(f"\nHome Assistant from {args.venv}, the bridge of {args.source}")
    who = "the longest held" if args.logouts == "oldest" else "held users at random"
    print(f"{args.rate} logins + {args.rate} logouts ({who}) a second, user ids of ", end="")
    print(f"{args.name_length} characters")
    print(
        f"for {args.seconds:.0f} s on {SERVER}; load average before "
        f"{' '.join(f'{n:.2f}' for n in load)}, after "
        f"{' '.join(f'{n:.2f}' for n in os.getloadavg())}; {os.cpu_count()} cores\n"
    )
    print(table(levels))
    print(changes(levels))
    problems = ha_problems(log)
    print(f"\nHome Assistant logged {len(problems)} warnings or errors")
    for text in problems[:10]:
        print(f"  {text[:300]}")
    holds, said = verdict(levels, args.ratio)
    print(f"\nverdict: {said}")
    print(f"logs and Home Assistant's config kept in {work}")
    return 0 if holds else 1


if __name__ == "__main__":
    raise SystemExit(main())
