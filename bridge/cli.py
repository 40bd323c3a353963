"""The `qlik2mqtt` command line: run, send-test-events, capture and the operator commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

from bridge import __version__
from bridge.config import CONFIG_ENV, ENV_PREFIX, Config, ConfigError, load_config

EXIT_CONFIG = 2


T = TypeVar("T")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qlik2mqtt",
        description="Qlik Sense log events (log4net UDP) to MQTT, with live state.",
    )
    parser.add_argument("--version", action="version", version=f"qlik2mqtt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str, ports: bool = False) -> argparse.ArgumentParser:
        """A subcommand; every one reads the config (for the broker, ports, paths)."""
        sub = commands.add_parser(name, help=summary)
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            help=f"YAML config file (default: ${CONFIG_ENV}, else ./config.yaml, else the "
            "running bridge's, else built-in defaults)",
        )
        if ports:
            sub.add_argument("--user-port", type=int, help="user activity port (config: 9997)")
            sub.add_argument("--task-port", type=int, help="task port (config: 9998)")
            sub.add_argument("--log-port", type=int, help="log-event port (config: 9996)")
        return sub

    command("run", "run the bridge")
    send = command(
        "send-test-events", "send a realistic burst of Qlik Sense datagrams to a bridge", True
    )
    send.add_argument("--host", default="127.0.0.1", help="the bridge's address (127.0.0.1)")
    send.add_argument(
        "--format",
        choices=("legacy", "tagged", "xml"),
        default="xml",
        help="appender layout to imitate (xml)",
    )
    send.add_argument("--server", default="QSWIN01", help="Qlik Sense host name to claim")
    appenders = command(
        "appenders", "write the log4net appender files for Qlik Sense, for this bridge", True
    )
    appenders.add_argument(
        "--bridge-host", required=True, help="this bridge's address as Qlik Sense reaches it"
    )
    appenders.add_argument("--out", type=Path, required=True, help="folder to write into")
    appenders.add_argument(
        "--allow-local",
        action="store_true",
        help="accept a loopback or any-address --bridge-host (log4net on this machine: tests)",
    )
    command("check", "check the config, the broker, the UDP ports, the state folder and QRS")
    status = command("status", "show what the bridge publishes: servers, users, failures")
    status.add_argument("--watch", action="store_true", help="keep the view live (Ctrl-C ends)")
    command("test-slack", "post one sample message per configured Slack kind")
    command("health", "exit 0 when the running bridge is connected and listening (Docker)")
    command(
        "acknowledge",
        "turn the reload_failure flag and the log flags off (through the broker)",
    )
    forget = command(
        "forget", "remove a Qlik Sense server: its state, topics and Home Assistant device"
    )
    forget.add_argument("server", help="the server's host name or its topic name (qsprod02)")
    capture = command(
        "capture", "record the datagrams that arrive and how the bridge reads them (for a report)"
    )
    capture.add_argument(
        "--port",
        type=int,
        action="append",
        help="a UDP port to listen on; repeat for more (default: the config's ports)",
    )
    capture.add_argument(
        "--seconds", type=float, default=300.0, help="stop after this long (300; at most a day)"
    )
    capture.add_argument(
        "--max-datagrams", type=int, default=10_000, help="stop after this many (10000)"
    )
    capture.add_argument("--out", type=Path, required=True, help="JSON lines file to write")
    capture.add_argument(
        "--keep-names", action="store_true", help="do not redact user names (they are, by default)"
    )
    start = command("start-task", "start a reload task through the bridge and QRS (qrs.enabled)")
    start.add_argument("id", nargs="?", help="the task's id (a GUID)")
    start.add_argument("--name", help="the task's name, instead of its id")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "start-task" and (args.id is None) == (args.name is None):
        parser.error("start-task: give a task id or --name NAME, not both")
    environ: dict[str, str] = dict(os.environ)
    from bridge.ops.lookup import AmbiguousConfigError, choose_config
    from bridge.runtime.logs import route_gmqtt

    route_gmqtt("info")  # a command says what went wrong in its own words (run: its log level)

    try:
        choice = choose_config(
            args.config, environ.get(CONFIG_ENV), Path.cwd(), with_running=args.command != "run"
        )
    except AmbiguousConfigError as exc:
        print(f"qlik2mqtt: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.config is None:  # found, not named: say which (a named one the user knows)
        print(f"qlik2mqtt: {choice.said}", file=sys.stderr)
    args.config = choice.path
    if choice.state_file is not None:
        environ.setdefault(f"{ENV_PREFIX}STATE_FILE", str(choice.state_file))
    from bridge.slack.templates import compile_template  # jinja2 only when templates are used

    try:
        config = load_config(args.config, environ, check_template=compile_template)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"qlik2mqtt: config error: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run":
        return _run(config, args.config)
    if args.command == "send-test-events":
        return _send_test_events(args, config)
    if args.command == "appenders":
        return _appenders(args, config)
    if args.command == "check":
        return _check(args, config)
    if args.command == "status":
        return _status(args, config)
    if args.command == "health":
        return _health(config)
    if args.command == "test-slack":
        return _test_slack(config)
    if args.command == "start-task":
        return _start_task(args, config)
    if args.command == "capture":
        return _capture(args, config)
    return _command(args, config)


def _run(config: Config, config_path: Path | None) -> int:
    from bridge.ops.running import leave_note, remove_note
    from bridge.runtime.logs import setup_logging
    from bridge.service import StartupError, run

    setup_logging(config.logging.level, config.logging.format)
    note = leave_note(config_path, config.state_file)
    try:
        event_loop_runner()(run(config))
    except StartupError as exc:
        print(f"qlik2mqtt: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        pass
    finally:
        remove_note(note)
    return 0


def _send_test_events(args: argparse.Namespace, config: Config) -> int:
    from bridge.inputs.testevents import send_test_events

    user_port = args.user_port or config.udp.user_activity_port
    task_port = args.task_port or config.udp.task_port
    log_port = args.log_port or config.udp.log_port
    try:
        refusal = _refusal(config, args.host, user_port)
        count = send_test_events(
            args.host, user_port, task_port, args.format, args.server, log_port
        )
    except OSError as exc:
        print(f"qlik2mqtt: cannot send to {args.host}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(
        f"sent {count} {args.format} datagrams as server {args.server!r} to "
        f"{args.host} (users: UDP {user_port}, tasks: UDP {task_port}, "
        f"log events: {_log_events_sent(args.format, log_port)})"
    )
    if refusal is not None:
        # Sent all the same: the bridge counts them (source_not_allowed) and logs the sender,
        # which confirms what this says. Exit 1: the events the command is for will not appear.
        print(f"qlik2mqtt: {refusal}", file=sys.stderr)
        return 1
    print(f"watch them: {_watch_hint(config)}")
    return 0


def _log_events_sent(layout: str, log_port: int) -> str:
    """Where the log events went, or why none were sent."""
    if not log_port:
        return "off"
    if layout == "legacy":
        return "none (Butler's legacy layouts had no log events)"
    return f"UDP {log_port}"


def _refusal(config: Config, host: str, port: int) -> str | None:
    """Why the bridge this config describes will refuse datagrams sent from here, if it will:
    `udp.allowed_sources` checked, by the bridge's own rule, against the address the kernel
    sends from to host:port."""
    from bridge.inputs.listener import SourceFilter
    from bridge.inputs.testevents import source_address

    sources = SourceFilter(config.udp.allowed_sources)
    if sources.allows_all:
        return None
    source = source_address(host, port)
    if sources.allows(source):
        return None
    listed = ", ".join(str(network) for network in config.udp.allowed_sources)
    return (
        f"the bridge will refuse these datagrams: they leave this host from {source}, which "
        f"udp.allowed_sources ({listed}) does not list; add {source} to udp.allowed_sources "
        "to test from here (docs/appenders.md)"
    )


def _watch_hint(config: Config) -> str:
    """A mosquitto_sub command line for the configured broker (the password left to fill in)."""
    from bridge.mqtt.connection import EMBEDDED_HOST

    mqtt = config.mqtt
    parts = ["mosquitto_sub", "-h", mqtt.host or EMBEDDED_HOST, "-p", str(mqtt.port)]
    if mqtt.username is not None:
        parts += ["-u", shlex.quote(mqtt.username), "-P", "PASSWORD"]
    if mqtt.tls.enabled:
        if mqtt.tls.ca_file is not None:
            parts += ["--cafile", shlex.quote(str(mqtt.tls.ca_file))]
        else:
            parts.append("--tls-use-os-certs")
        if mqtt.tls.certfile is not None:
            parts += ["--cert", shlex.quote(str(mqtt.tls.certfile))]
        if mqtt.tls.keyfile is not None:
            parts += ["--key", shlex.quote(str(mqtt.tls.keyfile))]
        if mqtt.tls.insecure:
            parts.append("--insecure")
    parts += ["-t", shlex.quote(f"{mqtt.base_topic}/#"), "-v"]
    return " ".join(parts)


def _command(args: argparse.Namespace, config: Config) -> int:
    """`acknowledge` and `forget`: a request, and the bridge's answer (exit 1 without one)."""
    from bridge.commands.builtin import ACKNOWLEDGE, FORGET
    from bridge.commands.client import CommandError, request
    from bridge.runtime.logs import setup_logging

    setup_logging("error", "console")  # what fails is said once, in the command's own line
    acknowledge = args.command == "acknowledge"
    try:
        if acknowledge:
            answer = asyncio.run(request(config, ACKNOWLEDGE, {}))
        else:
            answer = asyncio.run(request(config, FORGET, {"server": args.server}))
    except CommandError as exc:
        print(f"qlik2mqtt: {args.command}: {exc}", file=sys.stderr)
        return 1
    if answer.get("status") == "ok":
        if acknowledge:
            print("acknowledged: reload_failure and the log flags are OFF")
        else:
            print(f"forgot {args.server!r} (server {answer['data']['server']})")
        return 0
    what = "acknowledge" if acknowledge else f"forget {args.server!r}"
    print(f"qlik2mqtt: {what}: {answer.get('error', 'refused')}", file=sys.stderr)
    return 1


def _capture(args: argparse.Namespace, config: Config) -> int:
    from bridge.inputs.builtin import INPUTS
    from bridge.inputs.declare import listening
    from bridge.ops.capture import MAX_SECONDS, PortTakenError, Redactor, bind, capture

    if not 0 < args.seconds <= MAX_SECONDS or args.max_datagrams < 1:
        print(f"qlik2mqtt: capture: --seconds 0-{MAX_SECONDS}, --max-datagrams 1 or more")
        return EXIT_CONFIG
    inputs = dict(listening(INPUTS, config.udp))
    ports = list(dict.fromkeys(args.port or inputs))
    host = config.udp.host
    try:
        bound = bind(host, ports)
    except PortTakenError as exc:
        print(f"qlik2mqtt: capture: {exc.strerror}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"qlik2mqtt: capture: cannot listen on {host}: {exc.strerror}", file=sys.stderr)
        return 1
    names = "kept" if args.keep_names else "redacted"
    print(
        f"capturing UDP {', '.join(map(str, ports))} on {host} into {args.out} for up to "
        f"{args.seconds:g} s or {args.max_datagrams} datagrams (Ctrl-C ends); user names {names}",
        flush=True,
    )
    with args.out.open("w", encoding="utf-8") as out:
        summary = capture(
            bound,
            {port: (inputs.get(port) or INPUTS[0]).parse for port in ports},
            config.udp.max_datagram_bytes,
            out,
            seconds=args.seconds,
            max_datagrams=args.max_datagrams,
            redactor=Redactor(keep=args.keep_names),
        )
    read = ", ".join(f"{n} {kind}" for kind, n in sorted(summary.events.items())) or "none"
    refused = ", ".join(f"{n} {why}" for why, n in sorted(summary.refused.items())) or "none"
    print(
        f"captured {summary.datagrams} datagrams into {args.out}: events {read}; "
        f"refused {refused}. Attach the file to your report (docs/appenders.md)."
    )
    return 0


def _start_task(args: argparse.Namespace, config: Config) -> int:
    """Prints the bridge's answer as it came (JSON); exit 1 unless it is ok."""
    import json

    from bridge.commands.builtin import TASK_START
    from bridge.commands.client import CommandError, request, task_start_timeout
    from bridge.runtime.logs import setup_logging

    if not config.qrs.enabled:
        print(
            "qlik2mqtt: start-task: qrs.enabled is off in this config: the bridge starts no "
            "tasks (docs/qrs.md)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    setup_logging("error", "console")  # what fails is said once, in the command's own line
    task = {"name": args.name} if args.name is not None else {"id": args.id}
    try:
        answer = asyncio.run(
            request(config, TASK_START, task, answer_timeout=task_start_timeout(config))
        )
    except CommandError as exc:
        print(f"qlik2mqtt: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, ensure_ascii=False))
    if answer.get("status") == "ok":
        return 0
    print(f"qlik2mqtt: start-task: {answer.get('error', 'refused')}", file=sys.stderr)
    return 1


def _appenders(args: argparse.Namespace, config: Config) -> int:
    from bridge.inputs.appenders import DESTINATIONS, Target, local_only, write_appenders

    reason = None if args.allow_local else local_only(args.bridge_host)
    if reason is not None:
        print(
            f"qlik2mqtt: --bridge-host {reason}; give the bridge's address as the Qlik Sense "
            "nodes reach it (--allow-local for log4net on this machine)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    target = Target(
        bridge_host=args.bridge_host,
        user_port=args.user_port or config.udp.user_activity_port,
        task_port=args.task_port or config.udp.task_port,
        log_port=args.log_port or config.udp.log_port,
    )
    if not target.log_port:
        print(
            "qlik2mqtt: udp.log_port is 0 (log events off): every file has a log-event "
            "appender, so give the port it should send to with --log-port",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        written = write_appenders(target, args.out)
    except ValueError as exc:
        print(f"qlik2mqtt: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"qlik2mqtt: cannot write to {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    for name, folder in DESTINATIONS.items():
        print(f"copy {name} to {folder}")
    print("on each node that runs the service, then restart it (docs/appenders.md)")
    return 0


def _check(args: argparse.Namespace, config: Config) -> int:
    from bridge.ops.check import run_checks
    from bridge.runtime.logs import setup_logging

    setup_logging("error", "console")
    results = asyncio.run(run_checks(config, args.config))
    for result in results:
        verdict = "FAIL" if not result.ok else "WARN" if result.warning else "PASS"
        print(f"{verdict}  {result.item:10} {result.detail}")
    return 0 if all(result.ok for result in results) else 1


def _status(args: argparse.Namespace, config: Config) -> int:
    from rich.console import Console

    from bridge.mqtt.client import describe
    from bridge.ops.status import TIMEOUT as STATUS_TIMEOUT
    from bridge.ops.status import print_status

    try:
        print_status(config, args.watch, Console())
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # every failure in words, never a traceback (gmqtt's refusals too)
        host = config.mqtt.host or "127.0.0.1"
        reason = str(exc) if isinstance(exc, LookupError) else describe(exc, STATUS_TIMEOUT)
        print(f"qlik2mqtt: status from {host}:{config.mqtt.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def _health(config: Config) -> int:
    from bridge.ops.health import check_health, health_path

    healthy, reason = check_health(health_path(config.state_file))
    print(("healthy: " if healthy else "unhealthy: ") + reason)
    return 0 if healthy else 1


def _test_slack(config: Config) -> int:
    import time

    from bridge.core.events import (
        Event,
        LogEvent,
        LogLevel,
        LogSource,
        SourceFormat,
        TaskEvent,
        TaskEventType,
        UserEvent,
        UserEventType,
    )
    from bridge.service import configured_privacy
    from bridge.slack.client import SlackPoster, ignored_channels
    from bridge.slack.layout import SlackLayout
    from bridge.slack.messages import kind_of

    slack = config.slack
    if not slack.enabled:
        print("qlik2mqtt: slack.enabled is false: nothing to test", file=sys.stderr)
        return 1
    samples: list[Event] = []
    if slack.task_events.enabled:
        samples.append(
            TaskEvent(
                event_type=TaskEventType.TASK_FAILED,
                server="QSTEST",
                source_format=SourceFormat.XML,
                task_name="Reload Sales (qlik2mqtt test message)",
                app_name="Sales",
                user="CORP\\svc_reload",
                task_id="00000000-0000-4000-8000-000000000001",
                app_id="00000000-0000-4000-8000-000000000002",
                execution_id="test",
                message="This is a test message from qlik2mqtt test-slack.",
                log_level="ERROR",
            )
        )
    if slack.log_events.enabled:
        samples.append(
            LogEvent(
                source=LogSource.REPOSITORY,
                level=LogLevel.ERROR,
                server="QSTEST",
                source_format=SourceFormat.TAGGED,
                subsystem="System.Repository.Repository.Core",
                message="This is a test message from qlik2mqtt test-slack.",
                category="connectivity",
            )
        )
    if slack.user_activity.enabled:
        samples.append(
            UserEvent(
                event_type=UserEventType.SESSION_START,
                server="QSTEST",
                source_format=SourceFormat.XML,
                user_directory="CORP",
                user_id="test-user",
                context="/hub/",
            )
        )
    # The sink's own layout: templates, links and privacy as in real messages.
    layout = SlackLayout(slack, config.qlik.base_url, configured_privacy(config))
    poster = SlackPoster(slack)
    for line in ignored_channels(slack):
        print(f"WARN  {line}")
    failed = 0
    for event in samples:
        kind = kind_of(event)
        outcome = poster.post(kind, layout.message(event, time.time()))
        failed += not outcome.ok
        verdict = "PASS" if outcome.ok else "FAIL"
        print(f"{verdict}  {kind:14} {poster.target(kind)}: {outcome.detail}")
    return 1 if failed or not samples else 0


class Runner(Protocol):
    def __call__(self, main: Coroutine[Any, Any, T], /) -> T: ...


def event_loop_runner() -> Runner:
    """uvloop where it is installed (not on Windows), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run
