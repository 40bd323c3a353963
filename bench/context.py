"""Failures' QRS contexts under load (issue 26): what a failure storm costs QRS, and what a
slow QRS costs the failure event and the Slack message.

    .venv/bin/python -m bench.context [--failures 1000] [--tasks 20] [--slow 10]

In-process bridge (bridge.service.run), a real mosquitto, the tests' local QRS with Qlik's
certificates and the Repository API's shapes (tests/qrs_server.py) and a local Slack
(tests/slack_server.py), all on loopback. Storm: `--failures` failure datagrams of `--tasks`
tasks, each its own execution, sent within about two seconds; reports the QRS requests and
the contexts by status. Slow: QRS holds every answer `--slow` seconds (qrs.timeout 10 s);
reports datagram → `event/task` and datagram → Slack post, against a fast QRS and a QRS that
is down (nothing on its port). Bounded: every
wait has a deadline; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bridge_runner import RunningBridge, bridge_config
from tests.certs import make_certificates
from tests.helpers import Mosquitto, Subscriber, free_port
from tests.qrs_server import QrsServer, execution_result, qrs_settings
from tests.qrs_site import SALES_EXECUTION, SALES_TASK, furnish, script_log
from tests.slack_server import SlackServer
from tests.task_datagrams import task_datagram

STATS = "qlik2mqtt/bridge/stats"
EVENT = "qlik2mqtt/qs1/event/task"


def task_id(index: int) -> str:
    return f"{index:08x}-0000-4000-8000-0000000000aa"


def furnish_storm(server: QrsServer, tasks: int) -> None:
    furnish(server)
    for index in range(tasks):
        server.reloadtasks[task_id(index)] = dict(
            server.reloadtasks[SALES_TASK], id=task_id(index), name=f"Reload {index}"
        )
        result = f"r-{index}"
        first = f"e-{index}-{index}"  # the first failure of each task in the storm
        server.executions[first] = execution_result(result, task_id(index), first)
        server.script_logs[result] = script_log(f"task {index}")


async def storm(workdir: Path, failures: int, tasks: int) -> dict[str, Any]:
    (workdir / "certs-storm").mkdir()
    certs = make_certificates(workdir / "certs-storm")
    server = QrsServer(certs).start()
    furnish_storm(server, tasks)
    broker = Mosquitto(workdir)
    broker.start()
    (workdir / "storm").mkdir()
    config = bridge_config(workdir / "storm", broker.port, qrs=qrs_settings(server))
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(broker.port).start(STATS)
    try:
        started = time.monotonic()
        for number in range(failures):
            index = number % tasks
            bridge.tasks.send(
                task_datagram("failed", f"Reload {index}", task_id(index), f"e-{index}-{number}")
            )
            if number % 50 == 49:
                await asyncio.sleep(0.1)  # 1,000 in about two seconds
        sent = time.monotonic() - started
        stats = await sub.wait_json(
            STATS, lambda p: sum(p.get("task_contexts", {}).values()) >= failures, timeout=60
        )
        settled = time.monotonic() - started
    finally:
        await sub.stop()
        await bridge.close()
        broker.stop()
        server.stop()
    return {
        "failures": failures,
        "tasks": tasks,
        "sent_in_s": round(sent, 2),
        "all_contexts_in_s": round(settled, 2),
        "qrs_requests": len(server.context_requests),
        "qrs_requests_counted": stats["qrs_requests"],
        "contexts": stats["task_contexts"],
        "unavailable": stats["task_context_unavailable"],
    }


async def one_failure(workdir: Path, name: str, delay: float, down: bool = False) -> dict[str, Any]:
    """Datagram → event/task and → Slack post, with QRS answering after `delay` s (or, `down`,
    nothing listening on its port)."""
    (workdir / f"certs-{name}").mkdir()
    certs = make_certificates(workdir / f"certs-{name}")
    server = furnish(QrsServer(certs, delay=delay)).start()
    slack = SlackServer().start()
    broker = Mosquitto(workdir)
    broker.start()
    (workdir / name).mkdir()
    config = bridge_config(
        workdir / name,
        broker.port,
        qrs=qrs_settings(server, **({"port": free_port()} if down else {})),
        slack={"enabled": True, "webhook_url": f"{slack.url}/services/T/B/X", "context_wait": 3},
        homeassistant__enabled=False,
    )
    bridge = await RunningBridge(config).start()
    sub = await Subscriber(broker.port).start(EVENT)
    try:
        sent = time.monotonic()
        bridge.tasks.send(task_datagram("failed", "Reload Sales", SALES_TASK, SALES_EXECUTION))
        await sub.wait_json(EVENT, lambda p: True, timeout=15)
        event_s = time.monotonic() - sent
        (request,) = await asyncio.to_thread(slack.wait_for, 1, 15)
        slack_s = time.monotonic() - sent
    finally:
        await sub.stop()
        await bridge.close()
        broker.stop()
        slack.stop()
        server.stop()
    notes = [b for b in request.body["blocks"] if b["type"] == "context"]
    return {
        "qrs_delay_s": delay,
        "event_ms": round(event_s * 1000, 1),
        "slack_s": round(slack_s, 2),
        "slack_card_has_owner": "Owner" in json.dumps(request.body["blocks"]),
        "slack_note": notes[0]["elements"][0]["text"] if notes else None,
    }


async def main(failures: int, tasks: int, slow: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-context-") as folder:
        workdir = Path(folder)
        return {
            "storm": await storm(workdir, failures, tasks),
            "fast_qrs": await one_failure(workdir, "fast", 0.0),
            "slow_qrs": await one_failure(workdir, "slow", slow),
            "qrs_down": await one_failure(workdir, "down", 0.0, down=True),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--slow", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the report here")
    arguments = parser.parse_args()
    report = asyncio.run(main(arguments.failures, arguments.tasks, arguments.slow))
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
