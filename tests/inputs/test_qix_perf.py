"""Butler SOS's QIX performance lines (`/qseow-qix-perf/`, finding 4 of issue 23): parsed into
typed events field by field, as Butler SOS's handler reads them, never `unknown_format`."""

from __future__ import annotations

import orjson
import pytest

from bridge.config import Config, QixPerformanceConfig
from bridge.core.events import LogLevel, QixPerfEvent, Rejected, RejectReason
from bridge.core.log_payloads import qix_performance_payload
from bridge.core.path import Bridge
from bridge.core.privacy import Privacy
from bridge.core.state import BridgeState
from bridge.core.stats import MAX_QIX_SERVERS, OTHER_SERVERS, QIX_HOST_BYTES, Stats
from bridge.extensions.qix_performance import wanted
from bridge.inputs.parse import parse_datagram

APP = "e7af59a0-c243-480d-9571-08727551a66f"
SESSION = "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b"
HEAD = "14;20211109T193744.331+0100;2021-11-09 19:37:44,331;INFO;QSNODE24"


def qix_line(
    proxy_session: str = SESSION,
    app: str = APP,
    process: str = "123.5",
    object_id: str = "rwPjBk",
    object_type: str = "linechart",
) -> str:
    return (
        f"/qseow-qix-perf/;{HEAD};QixPerformance.Engine.Engine;CORP\\qlikservice;"
        f"{proxy_session};LAB;goran;2021-11-09T19:37:44.331+01:00;{SESSION};{app};42;"
        f"GenericObject::GetLayout;{process};90;5;3;2;7;{object_id};1024000;2048000;{object_type}"
    )


def qix(text: str) -> QixPerfEvent:
    parsed = parse_datagram(text.encode())
    assert isinstance(parsed, QixPerfEvent), parsed
    return parsed


def test_a_qix_line_is_read_field_by_field_as_butler_sos_reads_it() -> None:
    event = qix(qix_line())
    assert (event.server, event.level, event.log_row) == ("QSNODE24", LogLevel.INFO, 14)
    assert event.log_timestamp == "2021-11-09T19:37:44.331+01:00"
    assert (event.subsystem, event.windows_user) == (
        "QixPerformance.Engine.Engine",
        "CORP\\qlikservice",
    )
    assert (event.proxy_session_id, event.user_directory, event.user_id, event.user) == (
        SESSION,
        "LAB",
        "goran",
        "LAB\\goran",
    )
    assert (event.engine_timestamp, event.session_id, event.app_id, event.request_id) == (
        "2021-11-09T19:37:44.331+01:00",
        SESSION,
        APP,
        42,
    )
    assert event.method == "GenericObject::GetLayout"
    assert (
        event.process_time,
        event.work_time,
        event.lock_time,
        event.validate_time,
        event.traverse_time,
    ) == (123.5, 90.0, 5.0, 3.0, 2.0)
    assert (event.handle, event.object_id, event.net_ram, event.peak_ram) == (
        7,
        "rwPjBk",
        1024000,
        2048000,
    )
    assert (event.object_type, event.activity) == ("linechart", "user")


def test_the_engines_own_work_is_non_user_activity() -> None:
    """Butler SOS: proxy session `0` is a scheduled reload or the like (`non-user`)."""
    assert qix(qix_line(proxy_session="0")).activity == "non-user"


def test_a_semicolon_in_the_object_id_stays_in_the_object_id() -> None:
    event = qix(qix_line(object_id="my;object;id"))
    assert (event.object_id, event.net_ram, event.object_type) == (
        "my;object;id",
        1024000,
        "linechart",
    )


@pytest.mark.parametrize("process", ["", "(null)", "n/a", "nan", "inf", "1" * 40])
def test_a_number_that_is_none_is_null(process: str) -> None:
    assert qix(qix_line(process=process)).process_time is None


def test_butler_sos_test_line_is_read_and_never_unknown() -> None:
    """From Butler SOS's own handler test: ids and numbers that are words are taken or null."""
    line = (
        "/qseow-qix-perf/;1;20211109T153726.028+0200;2021-11-09 15:37:26,028;WARN;host1;sub1;"
        "user1;0;dir1;uid1;ts1;3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;uuid4;"
        "3b3b3b3b-3b3b-3b3b-3b3b-3b3b3b3b3b3b;method1;100;100;100;100;100;1;obj1;100;100;type1"
    )
    event = qix(line)
    assert (event.app_id, event.request_id, event.method, event.object_type) == (
        "uuid4",
        None,
        "method1",
        "type1",
    )
    assert (event.activity, event.process_time, event.peak_ram) == ("non-user", 100.0, 100)


def test_too_few_fields_are_refused_never_unknown_format() -> None:
    parsed = parse_datagram(f"/qseow-qix-perf/;{HEAD};QixPerformance.Engine.Engine".encode())
    assert isinstance(parsed, Rejected)
    assert parsed.reason is RejectReason.TOO_FEW_FIELDS


def test_the_filters_by_app_and_process_time() -> None:
    event = qix(qix_line())
    assert wanted(event, QixPerformanceConfig())
    assert wanted(event, QixPerformanceConfig(app_ids=[APP.upper()]))
    assert not wanted(event, QixPerformanceConfig(app_ids=["00000000-0000-0000-0000-000000000000"]))
    assert not wanted(event, QixPerformanceConfig(exclude_app_ids=[APP]))
    assert wanted(event, QixPerformanceConfig(min_process_time=123.5))
    assert not wanted(event, QixPerformanceConfig(min_process_time=124))
    assert not wanted(qix(qix_line(process="")), QixPerformanceConfig(min_process_time=1))


def test_the_payload_treats_users_as_privacy_says() -> None:
    event = qix(qix_line())
    payload = qix_performance_payload(event, 0.0, Privacy(mode="omitted"))
    assert payload["event_type"] == "qix_performance"
    assert (payload["user_id"], payload["user"], payload["app_id"]) == (None, None, APP)
    assert payload["process_time"] == 123.5
    assert payload["timestamp"] == "1970-01-01T00:00:00.000Z"


def test_the_core_counts_each_line_by_host_and_changes_no_state() -> None:
    bridge = Bridge(Config(), BridgeState(), Stats(), lambda: 1000.0, lambda: 0.0)
    for _ in range(2):
        bridge.handle_datagram(qix_line().encode(), "127.0.0.1")
    hosts = [f"QS{n}" for n in range(MAX_QIX_SERVERS + 5)]
    for host in hosts:
        bridge.handle_datagram(qix_line().replace("QSNODE24", host).encode(), "127.0.0.1")
    stats = bridge.stats
    assert (stats.qix_performance, stats.events, sum(stats.rejected.values())) == (
        2 + len(hosts),
        0,
        0,
    )
    assert stats.qix_performance_servers["QSNODE24"] == 2
    assert len(stats.qix_performance_servers) == MAX_QIX_SERVERS + 1  # and `(other)`
    assert stats.qix_performance_servers[OTHER_SERVERS] == 6
    assert bridge.state.servers == {}


def test_the_counts_by_host_stay_small_whatever_the_hosts_are_named() -> None:
    """`bridge/stats` is retained: 100 hosts of 1,024 characters kept whole made it 400 KB."""
    stats = Stats()
    for number in range(MAX_QIX_SERVERS + 5):
        stats.qix_received(f"QS{number:03d}" + "😀" * 1_021)
    payload = orjson.dumps(stats.as_payload(outbox_depth=0))
    assert len(payload) < 16_384
    assert len(stats.qix_performance_servers) == MAX_QIX_SERVERS + 1  # and `(other)`
    assert all(len(host.encode()) <= QIX_HOST_BYTES for host in stats.qix_performance_servers)
    assert "QS000" + "😀" * 14 + "…" in stats.qix_performance_servers
