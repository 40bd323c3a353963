"""Point a real Home Assistant at a real bridge and report what it made of the discovery configs.

Usage: scripts/check-home-assistant [VENV]   (VENV: a virtualenv with `homeassistant` installed)
SESSIONS=5000 scripts/check-home-assistant  adds that many sessions on one server (QSWIN01), to
see that no entity's attributes pass the recorder's 16 KiB ("exceed maximum size").

Starts mosquitto and Home Assistant on loopback (free ports, temporary folders), then the bridge
once Home Assistant has started (mqtt_statestream publishes only what changes after the start:
an entity made before it, and never changed, would show no state), sends the test events and
log events (on their own server, QSLOG01: warnings, errors, a fatal
with a 15,000-character message; and on QSMAX01 the largest log event an appender can send,
every text Home Assistant shows at its longest in four-byte characters), then checks: every
expected entity exists with its entity id, the states and the log entities' attributes follow
the events (read through HA's own mqtt_statestream), and HA logged no warning or error that
mentions MQTT, qlik2mqtt, an automation, any attribute size or a template variable. The
recorder is on, as in a usual installation. Stops everything it started. Exit 0 when all holds.

Starting tasks (issue 17): a local QRS (tests/qrs_server.py, with test certificates: needs
`scripts/setup --test`) behind `qrs:`, one watched task (`tasks.watch`, `{name, id}`: its Start
button starts it by id), and the automation of docs/qrs.md that presses the retry button once
the failure flag turns on. Then the check sees the retry button unavailable while that start is
pending, presses the watched task's Start button, fails the task again and presses the retry
button in Home Assistant (through an automation on the MQTT topic `check/press`: no token
needed), and waits for each start at QRS.

Every automation and card of docs/home-assistant.md, docs/qrs.md and docs/alert-lights.md is
loaded (issue 28): a card's entities and attribute rows must exist, and Home Assistant renders
each Markdown card's content (published on MQTT by an automation of the check's).

A restart (issue 22): the documented automations other than the retry are loaded too (their actions
replaced by a publish on `check/fired`: the check has no lamp); with the failure flag ON the
bridge is stopped (SIGTERM) and started again at once. Then every entity is available again,
the flag is still ON, and none of those automations ran again (Home Assistant's log says when
one runs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported at run time once ROOT is on the path (start_qrs)
    from tests.qrs_server import QrsServer

ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "binary_sensor.qlik_sense_reload_failure": "on",
    "button.qlik_sense_acknowledge_failure": None,
    "sensor.qlik_sense_site_active_sessions": "2",
    "sensor.qlik_sense_site_active_users": "2",
    "sensor.qlik_sense_site_active_connections": "2",
    "binary_sensor.qlik2mqtt_problem": "off",
    "sensor.qlik2mqtt_events_received": None,
    "sensor.qlik2mqtt_datagrams_rejected": None,
    "sensor.qlik2mqtt_outbox_depth": None,
    "sensor.qlik2mqtt_last_event": None,
    "sensor.qlik_sense_qswin01_active_sessions": "2",
    "sensor.qlik_sense_qswin01_active_users": "2",
    "sensor.qlik_sense_qswin01_active_connections": "2",
    "sensor.qlik_sense_qswin01_last_failed_task": "Reload Sales; daily",
    "sensor.qlik_sense_qswin01_failed_tasks": "1",
    "sensor.qlik_sense_qswin01_last_failed_task_log": None,  # its QRS context (issue 26)
    "event.qlik_sense_qswin01_user_activity": None,
    "event.qlik_sense_qswin01_reload_task": None,
}
# Issue 17: the retry button, and the watched task "Reload Sales; daily" (send-test-events
# fails it), with QRS on.
WATCHED = "Reload Sales; daily"
SALES_ID = "7c3e5a10-0000-4000-8000-000000000001"  # send-test-events' failing task
TASK_ENTITIES: dict[str, str | None] = {
    "button.qlik_sense_retry_failed_reload": None,
    "sensor.qlik_sense_task_reload_sales_daily_last_outcome": "failed",
    "sensor.qlik_sense_task_reload_sales_daily_last_outcome_at": None,
    "button.qlik_sense_task_reload_sales_daily_start": None,
}
PRESS_TOPIC = "check/press"
PRESS_ALIAS = "check: press a button"
FIRED_TOPIC = "check/fired"


def failed_again() -> bytes:
    """The watched task fails once more (a new execution, as log4net sends it): a retry
    candidate again."""
    from bridge.inputs.testevents import TASK_LOGGER, Sample, render

    properties = {
        "TaskName": WATCHED,
        "AppName": "Sales",
        "TaskId": SALES_ID,
        "ExecutionId": "e4a6c830-0009-4000-8000-000000000009",
        "log4jmachinename": "QSWIN01",
    }
    message = "Task finished with state FinishedFail. Max retries reached"
    return render(Sample("task", TASK_LOGGER, "ERROR", message, properties), "xml")


# Log events (issue 16): their own server, so the counts are only these.
LOG_SERVER_ENTITIES = {
    "sensor.qlik_sense_qslog01_active_sessions": "0",
    "sensor.qlik_sense_qslog01_active_users": "0",
    "sensor.qlik_sense_qslog01_active_connections": "0",
    "sensor.qlik_sense_qslog01_last_failed_task": None,
    "sensor.qlik_sense_qslog01_failed_tasks": "0",
    "sensor.qlik_sense_qslog01_last_failed_task_log": None,
    "event.qlik_sense_qslog01_user_activity": None,
    "event.qlik_sense_qslog01_reload_task": None,
    "sensor.qlik_sense_qslog01_log_warnings": "2",
    "sensor.qlik_sense_qslog01_log_errors": "3",
    "sensor.qlik_sense_qslog01_last_log_error": "The license for this site has expired",
    "event.qlik_sense_qslog01_log_event": None,
    "event.qlik_sense_qswin01_log_event": None,
    # send-test-events' own log events on QSWIN01: 3 warnings and 3 errors.
    "sensor.qlik_sense_qswin01_log_warnings": "3",
    "sensor.qlik_sense_qswin01_log_errors": "3",
    "sensor.qlik_sense_qswin01_last_log_error": None,
    "sensor.qlik_sense_site_log_errors": "6",
    "binary_sensor.qlik_sense_log_error": "on",
}
EXPECTED.update(LOG_SERVER_ENTITIES)
LOG_ATTRIBUTES = {
    ("sensor.qlik_sense_qslog01_last_log_error", "category"): "licence",
    ("sensor.qlik_sense_qslog01_last_log_error", "source"): "repository",
    ("sensor.qlik_sense_qslog01_log_errors", "fatals"): 1,
    ("event.qlik_sense_qslog01_log_event", "event_type"): "log_error",
    ("event.qlik_sense_qslog01_log_event", "category"): "licence",
    ("binary_sensor.qlik_sense_log_error", "categories"): [
        "connectivity",  # send-test-events' scheduler error
        "licence",
        "out_of_memory",
        "reload",
    ],
}
_HEAD = "{row};2026-11-04T09:15:09.001+0100;2026-11-04 09:15:09,001;{level};QSLOG01"
LOG_EVENTS = [
    f"/qseow-engine/;{_HEAD};System.Engine.Engine;CORP\\qlikservice;Engine memory is high;0;"
    "(null);(null);20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;14.129.5.0;"
    "20261101T060000.000Z;Warning;(null);(null)",
    f"/qseow-proxy/;{_HEAD};Audit.Proxy.Proxy;CORP\\qlikservice;Authentication is slow;;CORP;"
    "mia;Login;200;AppAccess;/hub/",
    f"/qseow-engine/;{_HEAD};System.Engine.Engine;CORP\\qlikservice;Out of memory: "
    + "é" * 15_000
    + ";0;(null);(null);20261104T081509.001Z;9d2c4f10-5e6a-4b7c-8d9e-0f1a2b3c4d5e;14.129.5.0;"
    "20261101T060000.000Z;Error;(null);(null)",
    f"/qseow-scheduler/;{_HEAD};System.Scheduler.Scheduler.Slave.Tasks.ReloadTask;"
    "CORP\\qlikservice;Message from ReloadProvider: Reload failed in Engine;(null);(null);"
    "(null);CORP\\mia;Reload Sales;Sales;dec2a02a-1680-44ef-8dc2-e2bfb180af87;"
    "e7af59a0-c243-480d-9571-08727551a66f;4831c6a5-34f6-45bb-9d40-73a6e6992670",
    f"/qseow-repository/;{_HEAD};System.Repository.Repository.Licensing;CORP\\qlikservice;"
    "The license for this site has expired;(null);INTERNAL;sa_repository;License check;0;"
    "(null);(null)",
]
LOG_LEVELS = ("WARN", "WARN", "FATAL", "ERROR", "ERROR")
# The largest log event an appender can send (qlik2mqtt's XML layout): a message of 8,192
# four-byte characters and the texts Home Assistant shows at 1,024, on a server of its own (a
# warning: the error counts above stay). The recorder must store its attributes, no warning.
MAX_SERVER = "QSMAX01"
WIDE = "\U0001f600"
EXPECTED.update(
    {
        entity.replace("qslog01", "qsmax01"): None
        for entity in LOG_SERVER_ENTITIES
        if "qslog01" in entity
    }
)
LOG_ATTRIBUTES.update(
    {
        ("event.qlik_sense_qsmax01_log_event", "event_type"): "log_warning",
        ("event.qlik_sense_qsmax01_log_event", "app_id"): WIDE * 64,
        ("event.qlik_sense_qsmax01_log_event", "message"): WIDE * 1000,
    }
)
DEADLINE = 240.0
SESSION_COUNTS = (
    "sensor.qlik_sense_site_active_sessions",
    "sensor.qlik_sense_site_active_users",
    "sensor.qlik_sense_qswin01_active_sessions",
    "sensor.qlik_sense_qswin01_active_users",
)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def main() -> int:
    venv = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("HA_VENV", ".ha-venv"))
    hass = venv / "bin" / "hass"
    if not hass.exists():
        raise SystemExit(
            f"no Home Assistant in {venv}: python -m venv {venv} && "
            f"{venv}/bin/pip install homeassistant"
        )
    work = Path(tempfile.mkdtemp(prefix="qlik2mqtt-ha-"))
    mqtt_port = free_port()
    user_port, task_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    log_port = free_port(socket.SOCK_DGRAM)
    (work / "mosquitto.conf").write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
    config = work / "ha"
    (config / ".storage").mkdir(parents=True)
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: qlik2mqtt check\n  latitude: 0\n  longitude: 0\n"
        "  elevation: 0\n  unit_system: metric\n  time_zone: UTC\n"
        "logger:\n  default: info\n"
        "recorder:\n  commit_interval: 1\n"
        "mqtt_statestream:\n  base_topic: hastate\n  publish_attributes: true\n"
        "automation: !include automations.yaml\n"
    )
    (config / "automations.yaml").write_text(automations())
    sys.path.insert(0, str(ROOT))
    from bench.ha_entry import write_mqtt_entry

    write_mqtt_entry(config, mqtt_port, "qlik2mqttcheck")
    qrs = start_qrs(work)
    (work / "bridge.yaml").write_text(
        f"udp: {{host: 127.0.0.1, user_activity_port: {user_port}, task_port: {task_port}, "
        f"log_port: {log_port}, allowed_sources: [127.0.0.1]}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_port}}}\n"
        f"state_file: {work}/state.json\nstats_interval: 1s\nlogging: {{format: console}}\n"
        + qrs_config(qrs)
    )
    qlik2mqtt = [str(ROOT / ".venv/bin/qlik2mqtt")]
    processes: list[subprocess.Popen[bytes]] = []
    log = config / "home-assistant.log"
    try:
        for command, out in (
            (["mosquitto", "-c", str(work / "mosquitto.conf")], "mosquitto.log"),
            ([str(hass), "-c", str(config)], "hass.out"),
        ):
            with (work / out).open("wb") as output:
                processes.append(subprocess.Popen(command, stdout=output, stderr=output))
        # mqtt_statestream publishes state *changes* from Home Assistant's start on: an entity
        # made before (from discovery configs already on the broker) shows no state there until
        # it changes. So the bridge starts once HA has started (its automations' triggers are
        # attached at start, after statestream's listener): every entity is then new.
        wait_until(
            lambda: log.exists() and f"Initialized trigger {PRESS_ALIAS}" in log.read_text(),
            "Home Assistant to start",
            DEADLINE,
        )
        with (work / "bridge.log").open("wb") as output:
            bridge_command = [*qlik2mqtt, "run", "--config", str(work / "bridge.yaml")]
            processes.insert(1, subprocess.Popen(bridge_command, stdout=output, stderr=output))
        registry = config / ".storage" / "core.entity_registry"
        wait_until(
            lambda: registry.exists() and "qlik_sense_reload_failure" in registry.read_text(),
            "the bridge's entities",
            60,
        )
        before = retry_unavailable_before_a_failure(mqtt_port)
        subprocess.run(
            [
                *qlik2mqtt,
                "send-test-events",
                "--config",  # its ports, and no other bridge's (another may run here)
                str(work / "bridge.yaml"),
                "--user-port",
                str(user_port),
                "--task-port",
                str(task_port),
            ],
            check=True,
        )
        sessions = int(os.environ.get("SESSIONS", "0"))
        send_sessions(user_port, sessions)
        wait_until(
            lambda: "qlik_sense_qswin01_reload_task" in registry.read_text(),
            "the server's entities (HA saves its registry after about 10 s)",
            60,
        )
        send_log_events(log_port)
        wait_until(
            lambda: "qlik_sense_qslog01_log_event" in registry.read_text(),
            "the log server's entities",
            60,
        )
        send_maximal_log_event(log_port)
        wait_until(
            lambda: "qlik_sense_qsmax01_log_event" in registry.read_text(),
            "the maximal log event's server",
            60,
        )
        states, attributes = read_states(mqtt_port, settle=2.0 + sessions / 1000)
        expected = dict(EXPECTED) | TASK_ENTITIES
        for entity_id in SESSION_COUNTS:
            expected[entity_id] = str(2 + sessions)
        # First: a warning about the attributes comes when the recorder writes them.
        stored = check_recorded(config / "home-assistant_v2.db", 2 + sessions) if sessions else 0
        found = report(registry, states, log, expected) | stored | check_attributes(attributes)
        shown = check_cards(registry, mqtt_port, WATCHED)
        buttons = check_task_buttons(qrs, mqtt_port, task_port)
        bridge = [*qlik2mqtt, "run", "--config", str(work / "bridge.yaml")]
        restart = check_restart(processes, bridge, work, mqtt_port, log)
        return found | before | shown | buttons | restart
    finally:
        qrs.stop()
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        print(f"logs and config kept in {work}")


def send_sessions(port: int, count: int) -> None:
    """`count` session starts on QSWIN01, long names, paced below what a receive buffer holds."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for number in range(count):
            name = f"user{number:05}-" + "x" * 40
            sock.sendto(f"QSWIN01;Start session;CORP;{name}".encode(), ("127.0.0.1", port))
            if number % 200 == 199:
                time.sleep(0.05)


def send_log_events(port: int) -> None:
    """The log events on QSLOG01; its first one makes the device, whose event entity HA
    subscribes to a moment later (the bridge holds a new server's first events for that)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for row, (line, level) in enumerate(zip(LOG_EVENTS, LOG_LEVELS, strict=True), start=1):
            data = line.format(row=row, level=level).encode()
            sock.sendto(data, ("127.0.0.1", port))


def maximal_log_event() -> bytes:
    """A scheduler warning in qlik2mqtt's XML layout with every text Home Assistant shows at
    its longest (under the 64 KiB of a datagram: the message and properties are base64)."""
    sys.path.insert(0, str(ROOT))
    from bridge.inputs.testevents import Sample, render

    sample = Sample(
        "log",
        WIDE * 1024,
        "WARN",
        WIDE * 8192,
        {"TaskName": WIDE * 1024, "AppId": WIDE * 1024, "log4jmachinename": MAX_SERVER},
        "scheduler",
        exception=WIDE * 1024,
    )
    return render(sample, "xml")


def send_maximal_log_event(port: int) -> None:
    data = maximal_log_event()
    print(f"maximal log event: {len(data)} bytes")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(data, ("127.0.0.1", port))


def check_attributes(attributes: dict[tuple[str, str], object]) -> int:
    problems = 0
    for key, expected in LOG_ATTRIBUTES.items():
        value = attributes.get(key)
        mark = "ok" if value == expected else f"expected {expected!r}"
        problems += mark != "ok"
        print(f"{key[0]} [{key[1]}] = {value!r} {mark}")
    return 1 if problems else 0


def check_recorded(database: Path, users: int) -> int:
    """That the recorder stored the sessions sensor's attributes (it drops what is too big).
    The recorder writes thousands of event states first: it is waited for (bounded)."""
    rows: list[tuple[str]] = []

    def recorded() -> bool:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            rows[:] = db.execute(
                "SELECT shared_attrs FROM state_attributes WHERE shared_attrs LIKE ?",
                (f'%"user_count":{users}%',),
            ).fetchall()
        return bool(rows)

    wait_until(recorded, "the recorder to store the sessions sensor's attributes", 120)
    sizes = [len(row[0].encode()) for row in rows]
    print(f"recorded attributes with user_count {users}: {len(rows)} rows, bytes {sizes}")
    return 0 if rows and max(sizes) < 16384 else 1


def read_states(
    port: int, settle: float, wanted: set[str] | None = None
) -> tuple[dict[str, str], dict[tuple[str, str], object]]:
    """Every entity's state, and the attributes of the log entities or of `wanted` (JSON)."""
    time.sleep(settle)  # a one-off check script, not a test: let HA's state stream settle
    result = subprocess.run(
        ["mosquitto_sub", "-p", str(port), "-t", "hastate/+/+/+", "-v", "-W", "3"],
        capture_output=True,
        text=True,
    )
    states = {}
    attributes: dict[tuple[str, str], object] = {}
    if wanted is None:
        wanted = {entity for entity, _ in LOG_ATTRIBUTES}
    for line in result.stdout.splitlines():
        topic, _, value = line.partition(" ")
        _, domain, object_id, name = topic.split("/")
        entity_id = f"{domain}.{object_id}"
        if name == "state":
            states[entity_id] = value
        elif entity_id in wanted:
            try:
                attributes[entity_id, name] = json.loads(value)
            except ValueError:
                attributes[entity_id, name] = value
    return states, attributes


def report(
    registry: Path, states: dict[str, str], log: Path, expected_states: dict[str, str | None]
) -> int:
    entities = json.loads(registry.read_text())["data"]["entities"]
    created = {e["entity_id"] for e in entities if e["platform"] == "mqtt"}
    problems = []
    for entity_id, expected in expected_states.items():
        state = states.get(entity_id)
        mark = "ok"
        if entity_id not in created:
            mark = "MISSING"
        elif expected is not None and state != expected:
            mark = f"state {state!r}, expected {expected!r}"
        if mark != "ok":
            problems.append(f"{entity_id}: {mark}")
        print(f"{entity_id:50} {state!s:28} {mark}")
    for extra in sorted(created - expected_states.keys()):
        problems.append(f"unexpected entity {extra}")
    for line in log.read_text().splitlines():
        if (" WARNING " in line or " ERROR " in line) and (
            "mqtt" in line.lower()
            or "qlik" in line.lower()
            or "maximum size" in line
            or "Template variable" in line
            or "automation" in line.lower()
        ):
            problems.append(line)
    print("\n".join(["", *problems]) if problems else "\nall entities created, no warnings")
    return 1 if problems else 0


# --- issue 17: a local QRS, the watched task, the retry automation and the buttons ---------


def start_qrs(work: Path) -> QrsServer:
    """tests/qrs_server.py with certificates made for this run (test tools needed)."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.certs import make_certificates
        from tests.qrs_server import QrsServer, reload_task
    except ImportError as exc:
        raise SystemExit(
            f"the QRS part needs the test tools ({exc}): scripts/setup --test"
        ) from None
    (work / "certs").mkdir()
    certificates = make_certificates(work / "certs")
    # The retry button starts the failed task only once QRS confirms its id and name.
    sales = reload_task(SALES_ID, WATCHED, "9f1d2b20-0000-4000-8000-000000000001", "Sales")
    return QrsServer(certificates, task_ids={SALES_ID}, reloadtasks={SALES_ID: sales}).start()


def qrs_config(qrs: QrsServer) -> str:
    """The tests' `qrs:` section for this server (JSON is YAML), and the watched task."""
    from tests.qrs_server import qrs_settings  # on the path since start_qrs

    return (
        f"qrs: {json.dumps(qrs_settings(qrs))}\n"
        f"tasks: {{watch: [{{name: {json.dumps(WATCHED)}, id: {SALES_ID}}}]}}\n"
    )


DOCUMENTED = ("docs/home-assistant.md", "docs/qrs.md", "docs/alert-lights.md")
# The one documented automation that keeps its action: it presses the retry button.
RETRY_ALIAS = "Qlik Sense: retry a failed reload once"
RENDER_TOPIC, RENDERED_TOPIC = "check/render", "check/rendered"


def documented_blocks() -> list[dict[str, object]]:
    """Every YAML block of the documents that is a mapping (automations, cards, configs)."""
    import yaml

    blocks = []
    for name in DOCUMENTED:
        text = (ROOT / name).read_text(encoding="utf-8")
        for part in text.split("```yaml\n")[1:]:
            data = yaml.safe_load(part.split("\n```", 1)[0])
            if isinstance(data, dict):
                blocks.append(data)
    return blocks


def cards() -> list[dict[str, object]]:
    """The dashboard cards of the documents (a block with a `type`)."""
    return [block for block in documented_blocks() if "type" in block]


def automations() -> str:
    """Every automation of the documents as the docs give them (triggers and conditions): the
    retry automation of docs/qrs.md with its action, the others' actions replaced by a publish
    of their alias on FIRED_TOPIC (the check has no lamp, and starts no task twice). Plus one
    that presses the button named by a message on `check/press` (HA's own press, without an
    API token) and one per Markdown card that publishes the card's content as HA renders it."""
    import yaml

    documented = documented_automations(keep_actions=True)
    press = {
        "alias": PRESS_ALIAS,
        "mode": "queued",
        "trigger": [{"platform": "mqtt", "topic": PRESS_TOPIC}],
        "action": [{"service": "button.press", "target": {"entity_id": "{{ trigger.payload }}"}}],
    }
    render = [
        {
            "alias": f"check: render card {number}",
            "trigger": [{"platform": "mqtt", "topic": f"{RENDER_TOPIC}/{number}"}],
            "action": [
                {
                    "service": "mqtt.publish",
                    "data": {"topic": f"{RENDERED_TOPIC}/{number}", "payload": card["content"]},
                }
            ],
        }
        for number, card in enumerate(cards())
        if card["type"] == "markdown"
    ]
    return yaml.safe_dump([*documented, press, *render], allow_unicode=True)


def documented_automations(keep_actions: bool = False) -> list[dict[str, object]]:
    """The documents' automations; each action replaced by a publish of its alias on
    FIRED_TOPIC, but the retry automation's with keep_actions."""
    found: list[dict[str, object]] = []
    for block in documented_blocks():
        for automation in block.get("automation") or []:
            if not (keep_actions and automation["alias"] == RETRY_ALIAS):
                publish = {"topic": FIRED_TOPIC, "payload": automation["alias"]}
                automation["action"] = [{"service": "mqtt.publish", "data": publish}]
            found.append(automation)
    return found


def home_assistant_automations() -> list[dict[str, object]]:
    """The documented automations whose runs the restart check counts (all but the retry)."""
    return [a for a in documented_automations() if a["alias"] != RETRY_ALIAS]


def check_cards(registry: Path, mqtt_port: int, task_name: str) -> int:
    """Every entity a documented card names exists, an attribute row's attribute is there,
    and each Markdown card's content renders in Home Assistant with the task's name and no
    None (a missing attribute)."""
    entities = json.loads(registry.read_text())["data"]["entities"]
    created = {e["entity_id"] for e in entities}
    problems = []
    wanted = {
        row["entity"]
        for card in cards()
        for row in card.get("entities") or []  # type: ignore[attr-defined]
        if isinstance(row, dict) and "attribute" in row
    }
    attributes = read_states(mqtt_port, settle=0.0, wanted=wanted)[1]
    for number, card in enumerate(cards()):
        for row in card.get("entities") or []:  # type: ignore[attr-defined]
            entity = row if isinstance(row, str) else row["entity"]
            if entity not in created:
                problems.append(f"card {number}: no {entity}")
            attribute = row.get("attribute") if isinstance(row, dict) else None
            if attribute and (entity, attribute) not in attributes:
                problems.append(f"card {number}: {entity} has no {attribute}")
        if card["type"] == "markdown":
            out = f"{RENDERED_TOPIC}/{number}"
            listener = subprocess.Popen(
                [*("mosquitto_sub", "-p", str(mqtt_port), "-C", "1", "-W", "20"), "-t", out],
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.5)  # mosquitto_sub has no "subscribed" signal on its output
            subprocess.run(
                [
                    "mosquitto_pub",
                    "-p",
                    str(mqtt_port),
                    "-t",
                    f"{RENDER_TOPIC}/{number}",
                    "-m",
                    "1",
                ],
                check=True,
            )
            rendered = listener.communicate(timeout=30)[0]
            print(f"card {number} ({card.get('title')}) rendered:\n{rendered}")
            if task_name not in rendered or "None" in rendered:
                problems.append(f"card {number}: rendered without {task_name!r} or with None")
    print("\n".join(problems) if problems else f"{len(cards())} documented cards: all there")
    return 1 if problems else 0


def documented_runs(log: Path) -> list[str]:
    """The documented automations that ran so far, in order, from Home Assistant's log."""
    aliases = {automation["alias"] for automation in home_assistant_automations()}
    marker = ": Running automation actions"
    return [
        alias
        for line in log.read_text(encoding="utf-8").splitlines()
        if line.endswith(marker)
        and (alias := line.rsplit("] ", 1)[-1].removesuffix(marker)) in aliases
    ]


def check_restart(
    processes: list[subprocess.Popen[bytes]],
    bridge: list[str],
    work: Path,
    mqtt_port: int,
    ha_log: Path,
) -> int:
    """The bridge stopped and started again at once with the flag ON: every entity is
    available again, the flag still ON, and no documented automation fired again."""
    problems = []
    flag = "binary_sensor.qlik_sense_reload_failure"
    if (state := read_states(mqtt_port, settle=1.0)[0].get(flag)) != "on":
        problems.append(f"before the restart {flag} is {state!r}, not 'on'")
    before = documented_runs(ha_log)
    old = processes[1]
    old.send_signal(signal.SIGTERM)
    log = work / "bridge-restarted.log"
    with log.open("wb") as output:
        processes[1] = subprocess.Popen(bridge, stdout=output, stderr=output)
    old.wait(60)
    wait_until(lambda: "MQTT connected" in log.read_text(), "the restarted bridge", 60)
    states = read_states(mqtt_port, settle=5.0)[0]
    pending = "button.qlik_sense_retry_failed_reload"  # its start is pending: unavailable
    unavailable = sorted(
        entity
        for entity, state in states.items()
        if "qlik_sense" in entity and state == "unavailable" and entity != pending
    )
    if unavailable:
        problems.append(f"unavailable after the restart: {', '.join(unavailable)}")
    if states.get(flag) != "on":
        problems.append(f"after the restart {flag} is {states.get(flag)!r}, not 'on'")
    again = documented_runs(ha_log)[len(before) :]
    if again:
        problems.append(f"documented automations fired again across the restart: {again}")
    print(f"documented automations that ran before the restart: {before}")
    print("\n".join(problems) if problems else "restart: entities available, flag ON, no re-fire")
    return 1 if problems else 0


def retry_unavailable_before_a_failure(mqtt_port: int) -> int:
    """Nothing has failed yet: the retry button is unavailable (its availability template)."""
    entity_id = "button.qlik_sense_retry_failed_reload"
    state = read_states(mqtt_port, settle=2.0)[0].get(entity_id)
    print(f"before any failure: {entity_id} is {state!r}")
    return 0 if state == "unavailable" else 1


def check_task_buttons(qrs: QrsServer, mqtt_port: int, task_port: int) -> int:
    """The retry automation started the failed task, and the retry button is unavailable
    until the task's next outcome; the watched task's Start button (a `{name, id}` entry)
    starts it by id; after a new failure the retry button is back and starts it again."""
    problems = []
    by_id = f"/qrs/task/{SALES_ID}/start"

    def started(count: int) -> bool:
        return len([r for r in list(qrs.requests) if r.path == by_id]) >= count

    retry = "button.qlik_sense_retry_failed_reload"
    start = "button.qlik_sense_task_reload_sales_daily_start"
    try:
        wait_until(lambda: started(1), "the documented automation's retry at QRS", 60)
        states = read_states(mqtt_port, settle=2.0)[0]
        if states.get(start) in (None, "unavailable"):
            problems.append(f"{start} is {states.get(start)!r}, not available")
        if states.get(retry) != "unavailable":
            problems.append(f"{retry} is {states.get(retry)!r} while its start is pending")
        press(mqtt_port, start)
        wait_until(lambda: started(2), "the Start button's start (by id)", 30)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(failed_again(), ("127.0.0.1", task_port))
        wait_until(
            lambda: read_states(mqtt_port, settle=1.0)[0].get(retry) not in (None, "unavailable"),
            "the retry button after a new failure",
            30,
        )
        press(mqtt_port, retry)
        wait_until(lambda: started(3), "the retry button's start", 30)
    except SystemExit as exc:
        problems.append(str(exc))
    for request in qrs.requests:
        print(f"QRS got {request.method} {request.path} {request.query.get('name') or ''}")
    print(
        "\n".join(problems) if problems else "retry automation, retry and Start buttons reached QRS"
    )
    return 1 if problems else 0


def press(mqtt_port: int, entity_id: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-p", str(mqtt_port), "-t", PRESS_TOPIC, "-m", entity_id], check=True
    )


if __name__ == "__main__":
    raise SystemExit(main())
