"""The shipped appender files: well-formed templates that render for a bridge, and whose filters
pass exactly the Qlik Sense events qlik2mqtt wants, as datagrams the bridge parses intact: the
sessions and tasks of the proxy and the scheduler, and every service's warnings and errors."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bridge.core.events import Rejected, RejectReason
from bridge.inputs.appenders import (
    TEMPLATES,
    Target,
    local_only,
    render,
    template_text,
    validate_host,
)
from bridge.inputs.parse import parse_datagram
from tests.bridge_runner import RunningBridge, bridge_config
from tests.helpers import ROOT, Mosquitto, Subscriber, complaints, qlik2mqtt
from tests.log4net_model import (
    LogEvent,
    UdpAppender,
    appenders_of,
    load,
    render_log4j_xml,
    render_xml_layout,
)
from tests.qlik_events import (
    INTENDED,
    LOG_INTENDED,
    PROXY,
    TASK_SESSION,
    assert_datagram_is,
    assert_log_datagram_is,
)
from tests.qlik_log_config import violations

TARGET = Target(bridge_host="10.20.0.5", user_port=19997, task_port=19998, log_port=19996)
PORTS = {"proxy/LocalLogConfig.xml": 19997, "scheduler/LocalLogConfig.xml": 19998}
LOG_EVENT_LAYOUT = "log4net.Layout.XmlLayout"


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_are_well_formed_and_have_placeholders(name: str) -> None:
    text = template_text(name)
    ET.fromstring(text.encode())
    assert "{{bridge_host}}" in text
    assert "<IP of" not in text


@pytest.mark.parametrize("name", TEMPLATES)
def test_rendered_files_target_the_bridge_in_utf8_xml_layout(name: str) -> None:
    text = render(template_text(name), TARGET)
    assert "{{" not in text
    assert "}}" not in text
    loggers = load(text)
    appenders = [a for feeds in loggers.values() for a in feeds]
    log_appenders = [a for a in appenders if a.layout == LOG_EVENT_LAYOUT]
    assert log_appenders, "every service sends its warnings and errors"
    for appender in appenders:
        assert appender.remote_address == "10.20.0.5"
        assert appender.encoding == "utf-8"
        if appender in log_appenders:
            service = name.partition("/")[0]
            assert appender.remote_port == TARGET.log_port
            assert (appender.threshold, appender.prefix) == ("WARN", f"qseow-{service}")
            assert appender.base64
        else:
            assert appender.remote_port == PORTS[name]
            assert appender.layout == "log4net.Layout.XmlLayoutSchemaLog4j"
            assert appender.filters[-1].kind == "log4net.Filter.DenyAllFilter"


@pytest.mark.parametrize("name", TEMPLATES)
def test_rendered_files_keep_to_qlik_schema_rules(name: str) -> None:
    """QRS, QPS and QSS drop a LocalLogConfig.xml that breaks Qlik's schema, and every appender
    in it with the file: settings only as <param name value>, in Butler's order."""
    data = render(template_text(name), TARGET).encode("utf-8")
    assert violations(data) == []


def test_the_schema_rules_refuse_log4net_element_form() -> None:
    """The checker is not a rubber stamp: what the files looked like before, and the other
    breaks Qlik documents, are each found."""
    old = """<configuration>
      <appender name="a" type="log4net.Appender.UdpAppender">
        <threshold value="WARN" />
        <layout type="log4net.Layout.XmlLayout"><prefix value="x" /></layout>
      </appender>
      <logger name="System"><appender-ref ref="a" /></logger>
    </configuration>"""
    assert violations(old.encode()) == [
        "appender 'a': <threshold> is not allowed in an appender",
        "appender 'a' <layout>: <prefix> is not allowed here (only <param>)",
    ]
    misordered = """<configuration>
      <appender name="$a" type="t">
        <param name="remotePort" value="1" />
        <filter type="f"><param name="key" value="k" extra="x" /></filter>
        <layout type="l"><param name="p" value="v" /><converter /></layout>
      </appender>
      <logger name="System"><appender-ref ref="a" /><additivity value="x" /></logger>
      <appender name="b" type="t" />
      <log4net />
    </configuration>"""
    assert violations(misordered.encode()) == [
        "appender '$a': a name is required and may not start with '$'",
        "appender '$a': <filter> comes after <param>",
        "appender '$a' <filter>: <param> needs exactly name and value, has "
        "['extra', 'name', 'value']",
        "appender '$a' <layout>: a <converter> comes after a <param>",
        "logger 'System': <additivity> is not allowed in a logger",
        "appender 'b' comes after a <logger>",
        "<log4net> is not allowed in <configuration>",
    ]
    assert violations(b"<log4net />") == ["the root is <log4net>, not <configuration>"]
    big = b"<configuration>" + b" " * (1024 * 1024) + b"</configuration>"
    assert violations(big) == [f"{len(big)} bytes: the file must stay under 1 MB"]


@pytest.mark.parametrize(
    ("name", "loggers"),
    [
        ("engine", {"System.Engine", "Session.Engine", "Performance.Engine"}),
        ("proxy", {"Audit.Proxy", "AuditSecurity", "Security.Proxy", "System.Proxy"}),
        ("repository", {"Service", "System.Repository", "UserManagement.Repository"}),
        ("scheduler", {"Service", "System"}),
    ],
)
def test_log_events_come_from_the_loggers_butler_sos_covers(name: str, loggers: set[str]) -> None:
    configured = load(render(template_text(f"{name}/LocalLogConfig.xml"), TARGET))
    covered = {
        logger
        for logger, feeds in configured.items()
        if any(a.layout == LOG_EVENT_LAYOUT for a in feeds)
    }
    assert covered == loggers


def test_render_refuses_bad_hosts() -> None:
    for bad in ("", "bad host", "exa_mple.com", "-x.com", "a..b", "1.2.3.999", "x" * 64 + ".com"):
        with pytest.raises(ValueError, match="neither an IP address nor a valid DNS name"):
            validate_host(bad)
    assert validate_host("qlik2mqtt.corp.example") == "qlik2mqtt.corp.example"
    assert validate_host("fd00::5") == "fd00::5"
    with pytest.raises(ValueError, match="outside"):
        render(template_text(TEMPLATES[0]), Target("10.0.0.1", 9997, 9998, 70000))


def rendered(appender: UdpAppender, event: LogEvent) -> bytes:
    if appender.layout == LOG_EVENT_LAYOUT:
        assert appender.prefix is not None
        return render_xml_layout(event, appender.prefix, "QSPROD02")
    return render_log4j_xml(event, "QSPROD02", 1)


def sent(event: LogEvent, names: tuple[str, ...] = TEMPLATES) -> list[tuple[int, bytes]]:
    """Every datagram the rendered files make log4net send for one event."""
    datagrams = []
    for name in names:
        for appender in appenders_of(load(render(template_text(name), TARGET)), event.logger):
            if appender.accepts(event):
                datagrams.append((appender.remote_port, rendered(appender, event)))
    return datagrams


@pytest.mark.parametrize(("event", "expected"), INTENDED, ids=lambda v: getattr(v, "message", v))
def test_each_qlik_event_is_sent_once_or_not_at_all(event: LogEvent, expected: str | None) -> None:
    """The session and task appenders as before the log-event appenders came beside them."""
    datagrams = [(port, data) for port, data in sent(event) if port != TARGET.log_port]
    if expected is None:
        assert datagrams == []
        return
    assert len(datagrams) == 1
    port, data = datagrams[0]
    assert port == (TARGET.user_port if expected == "user" else TARGET.task_port)
    assert_datagram_is(data, event, expected, server="QSPROD02")


@pytest.mark.parametrize(
    ("service", "event", "expected"),
    LOG_INTENDED,
    ids=lambda v: getattr(v, "message", v)[:30] if not isinstance(v, bool) else str(v),
)
def test_each_warning_and_error_is_one_log_event_from_its_service(
    service: str, event: LogEvent, expected: bool
) -> None:
    datagrams = [
        data
        for port, data in sent(event, (f"{service}/LocalLogConfig.xml",))
        if port == TARGET.log_port
    ]
    assert len(datagrams) == (1 if expected else 0)
    for data in datagrams:
        assert_log_datagram_is(data, service, event, "QSPROD02")


def test_command_line_writes_ready_files(tmp_path: Path) -> None:
    result = qlik2mqtt(
        "appenders",
        "--bridge-host",
        "qlik2mqtt.corp.example",
        "--task-port",
        "9999",
        "--log-port",
        "9995",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "C:\\ProgramData\\Qlik\\Sense\\Engine\\" in result.stdout
    proxy = load((tmp_path / "proxy/LocalLogConfig.xml").read_text(encoding="utf-8"))
    scheduler = load((tmp_path / "scheduler/LocalLogConfig.xml").read_text(encoding="utf-8"))
    assert proxy[PROXY][0].remote_address == "qlik2mqtt.corp.example"
    assert proxy[PROXY][0].remote_port == 9997
    assert scheduler[TASK_SESSION][0].remote_port == 9999
    for service in ("engine", "proxy", "repository", "scheduler"):
        text = (tmp_path / service / "LocalLogConfig.xml").read_text(encoding="utf-8")
        ports = {a.remote_port for feeds in load(text).values() for a in feeds}
        assert 9995 in ports, service


def test_command_line_asks_for_a_log_port_when_log_events_are_off(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {"QLIK2MQTT_UDP__LOG_PORT": "0"}
    args = ("appenders", "--bridge-host", "10.0.0.5", "--out", str(out))
    result = qlik2mqtt(*args, env=env)
    assert result.returncode == 2
    assert "udp.log_port is 0" in result.stderr
    assert "--log-port" in result.stderr
    assert not out.exists()
    assert qlik2mqtt(*args, "--log-port", "9996", env=env).returncode == 0


def test_command_line_refuses_a_bad_host(tmp_path: Path) -> None:
    result = qlik2mqtt(
        "appenders",
        "--bridge-host",
        "<IP of server>",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "neither an IP address nor a valid DNS name" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "host",
    [
        "0.0.0.0",
        "::",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "::ffff:127.0.0.1",
        "localhost",
        "LocalHost.",
    ],
)
def test_command_line_refuses_a_host_no_qlik_node_can_reach(tmp_path: Path, host: str) -> None:
    out = tmp_path / "out"
    result = qlik2mqtt("appenders", "--bridge-host", host, "--out", str(out))
    assert result.returncode == 2
    lines = complaints(result.stderr).splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"qlik2mqtt: --bridge-host {host} ")
    assert "--allow-local" in lines[0]
    assert not out.exists()


def test_allow_local_writes_files_for_log4net_on_this_machine(tmp_path: Path) -> None:
    result = qlik2mqtt(
        "appenders", "--bridge-host", "127.0.0.1", "--allow-local", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    proxy = load((tmp_path / "proxy/LocalLogConfig.xml").read_text(encoding="utf-8"))
    assert proxy[PROXY][0].remote_address == "127.0.0.1"


def test_only_hosts_of_this_machine_count_as_local() -> None:
    for host in ("10.20.0.5", "qlik2mqtt.corp.example", "localhost.corp.example", "fd00::5"):
        assert local_only(host) is None, host


async def test_what_the_appenders_send_comes_out_of_the_bridge_intact(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = bridge_config(tmp_path, mosquitto.port, homeassistant__enabled=False)
    bridge = RunningBridge(config)
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/+/event/#")
    target = Target(
        "127.0.0.1", config.udp.user_activity_port, config.udp.task_port, config.udp.log_port
    )
    try:
        await bridge.start()
        expected = []
        for event, kind in INTENDED:
            for name in TEMPLATES:
                loggers = load(render(template_text(name), target))
                for appender in appenders_of(loggers, event.logger):
                    if appender.accepts(event) and appender.layout != LOG_EVENT_LAYOUT:
                        sender = (
                            bridge.users
                            if appender.remote_port == target.user_port
                            else (bridge.tasks)
                        )
                        sender.send(render_log4j_xml(event, "QSPROD02", 1795565191804))
                        expected.append((event, kind))
        assert len(expected) == 12
        # 7 task datagrams, two of them the same task run failing twice: one event.
        tasks = await sub.wait_count("qlik2mqtt/qsprod02/event/task", 6)
        users = await sub.wait_count("qlik2mqtt/qsprod02/event/user", 5)
        assert sorted((m.json()["event_type"], m.json()["task_name"]) for m in tasks) == sorted(
            [
                ("task_failed", "Reload Budget <2025> & more"),
                ("task_aborted", "Reload HR"),
                ("task_failed", "Reload <X>"),
                ("task_succeeded", "Reload Sales; € <daily>"),
                ("task_failed", "Reload Sales; € <daily>"),
                ("distribute_finished", "Reload Sales; € <daily>"),
            ]
        )
        assert {m.json()["app_name"] for m in tasks} == {
            'Budget "final"',
            "HR",
            "A&B",
            'Sales "FY" & more',
        }
        assert {m.json()["user_id"] for m in users} == {"mia", "Åsa Öberg", "svc"}
    finally:
        await sub.stop()
        await bridge.close()


def test_the_documented_firewall_probe_is_counted_not_taken_for_an_event() -> None:
    """docs/appenders.md's hand-sent datagram must show up as a reject, never as state."""
    doc = (ROOT / "docs/appenders.md").read_text(encoding="utf-8")
    probe = re.search(r'GetBytes\("([^"]+)"\)', doc)
    assert probe is not None
    result = parse_datagram(probe.group(1).encode("utf-8"))
    assert isinstance(result, Rejected)
    assert result.reason is RejectReason.UNKNOWN_FORMAT
    assert "`rejected.unknown_format`" in doc
