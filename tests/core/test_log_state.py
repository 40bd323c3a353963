"""Log events in state (pure, clock passed in): counts per server and source in the rolling
window and since start, the last error, the site's totals, and their payloads."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bridge.config import Config
from bridge.core.events import (
    LogEvent,
    LogLevel,
    LogSource,
    SourceFormat,
    UserEvent,
    UserEventType,
)
from bridge.core.log_payloads import log_event_payload
from bridge.core.logcounts import BUCKETS, LevelCounts
from bridge.core.path import Bridge
from bridge.core.payloads import server_payload, site_payload
from bridge.core.privacy import Privacy
from bridge.core.state import (
    BridgeState,
    Cap,
    StateSettings,
    apply_event,
    expire,
    forget_server,
)
from bridge.core.stats import Stats

WINDOW = 3600.0
SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)


def log(
    level: LogLevel = LogLevel.ERROR,
    source: LogSource = LogSource.ENGINE,
    server: str = "QS1",
    message: str = "boom",
    **fields: Any,
) -> LogEvent:
    return LogEvent(
        source=source,
        level=level,
        server=server,
        source_format=SourceFormat.TAGGED,
        subsystem="System.Engine",
        message=message,
        **fields,
    )


def counts(payload: dict[str, Any]) -> tuple[int, ...]:
    events = payload["log_events"]
    return tuple(events[key] for key in ("warnings", "errors", "fatals")) + tuple(
        events[f"{key}_total"] for key in ("warnings", "errors", "fatals")
    )


def test_every_log_event_is_published_and_counted_per_server_and_source() -> None:
    state = BridgeState()
    for level, source, server in [
        (LogLevel.WARN, LogSource.ENGINE, "QS1"),
        (LogLevel.WARN, LogSource.ENGINE, "QS1"),
        (LogLevel.ERROR, LogSource.PROXY, "QS1"),
        (LogLevel.FATAL, LogSource.SCHEDULER, "QS2"),
        (LogLevel.ERROR, LogSource.REPOSITORY, "QS2"),
    ]:
        change = apply_event(state, log(level, source, server), 1000.0, SETTINGS)
        assert change.publish_event
        assert change.site
        assert change.servers == {server.lower()}
    qs1 = server_payload(state.servers["qs1"])
    assert counts(qs1) == (2, 1, 0, 2, 1, 0)
    assert qs1["log_events"]["sources"]["engine"]["warnings"] == 2
    assert qs1["log_events"]["sources"]["proxy"]["errors"] == 1
    assert qs1["log_events"]["sources"]["scheduler"] == {
        "warnings": 0,
        "errors": 0,
        "fatals": 0,
        "warnings_total": 0,
        "errors_total": 0,
        "fatals_total": 0,
    }
    site = site_payload(state)
    assert counts(site) == (2, 2, 1, 2, 2, 1)
    assert site["log_events"]["sources"]["repository"]["errors"] == 1


def test_the_window_rolls_and_the_totals_stay() -> None:
    state = BridgeState()
    apply_event(state, log(LogLevel.ERROR), 0.0, SETTINGS)
    apply_event(state, log(LogLevel.WARN), 1800.0, SETTINGS)
    assert counts(server_payload(state.servers["qs1"])) == (1, 1, 0, 1, 1, 0)
    assert not expire(state, 3599.0, SETTINGS).any  # still inside the hour
    change = expire(state, 3600.0 + WINDOW / BUCKETS, SETTINGS)
    assert change.servers == {"qs1"}
    assert change.site
    assert counts(server_payload(state.servers["qs1"])) == (1, 0, 0, 1, 1, 0)
    assert counts(site_payload(state)) == (1, 0, 0, 1, 1, 0)
    expire(state, 1800.0 + WINDOW + WINDOW / BUCKETS, SETTINGS)
    assert counts(server_payload(state.servers["qs1"])) == (0, 0, 0, 1, 1, 0)
    assert not expire(state, 99_999.0, SETTINGS).any  # nothing left to fall out


def test_counts_leaving_the_window_are_no_expiry() -> None:
    """Pruning the window changes the counts (a publish) but expires no session and clears no
    flag: the core logs it at debug, not as an expiry every minute."""
    state = BridgeState()
    apply_event(state, log(LogLevel.ERROR), 0.0, SETTINGS)
    change = expire(state, WINDOW + WINDOW / BUCKETS, SETTINGS)
    assert change.servers == {"qs1"}
    assert (change.expired, change.auto_cleared) == (frozenset(), False)


def test_the_core_logs_an_expiry_at_info_and_the_window_at_debug() -> None:
    clock = [0.0]
    config = Config(sessions={"stale_after": "1h"}, log_events={"window": "1h"})
    bridge = Bridge(config, BridgeState(), Stats(), clock=lambda: clock[0], monotonic=lambda: 0.0)
    bridge.handle_event(log(LogLevel.ERROR))
    bridge.handle_event(
        UserEvent(
            event_type=UserEventType.SESSION_START,
            server="QS1",
            source_format=SourceFormat.TAGGED,
            user_directory="CORP",
            user_id="mia",
        )
    )
    clock[0] = WINDOW + WINDOW / BUCKETS
    with capture_logs() as logs:
        bridge.expire()
    assert [(e["log_level"], e["event"], e["servers"]) for e in logs] == [
        ("info", "stale sessions expired or flag auto-cleared", ["qs1"])
    ]
    bridge.handle_event(log(LogLevel.ERROR))
    clock[0] = 2 * (WINDOW + WINDOW / BUCKETS)
    with capture_logs() as logs:
        bridge.expire()
    assert [(e["log_level"], e["event"]) for e in logs] == [
        ("debug", "log-event counts left the window")
    ]


def test_a_flood_keeps_memory_bounded() -> None:
    counter = LevelCounts()
    for second in range(0, 3 * int(WINDOW), 7):
        for _ in range(3):
            counter.add(LogLevel.WARN, float(second), WINDOW)
    assert len(counter.buckets) <= BUCKETS
    assert counter.total[0] == 3 * len(range(0, 3 * int(WINDOW), 7))
    assert counter.window[0] == sum(bucket[1][0] for bucket in counter.buckets)


def test_the_window_setting_is_used() -> None:
    state = BridgeState()
    short = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=None, log_window=60.0
    )
    apply_event(state, log(), 0.0, short)
    assert expire(state, 61.0, short).servers == {"qs1"}
    assert counts(server_payload(state.servers["qs1"]))[:3] == (0, 0, 0)


def test_the_last_error_is_kept_per_server_and_for_the_site_but_not_a_warning() -> None:
    state = BridgeState()
    apply_event(state, log(LogLevel.ERROR, message="first", server="QS1"), 10.0, SETTINGS)
    apply_event(state, log(LogLevel.FATAL, LogSource.PROXY, "QS2", "second"), 20.0, SETTINGS)
    apply_event(state, log(LogLevel.WARN, message="only a warning"), 30.0, SETTINGS)
    last = server_payload(state.servers["qs1"])["log_events"]["last_error"]
    assert last == {
        "time": "1970-01-01T00:00:10.000Z",
        "log_timestamp": None,
        "level": "ERROR",
        "source": "engine",
        "subsystem": "System.Engine",
        "message": "first",
        "category": None,
    }
    site_last = site_payload(state)["log_events"]["last_error"]
    assert (site_last["server"], site_last["message"], site_last["level"]) == (
        "QS2",
        "second",
        "FATAL",
    )
    forget_server(state, "qs2")
    assert site_payload(state)["log_events"]["last_error"] is None
    assert counts(site_payload(state)) == (1, 1, 0, 1, 1, 0)


def test_no_log_events_yet() -> None:
    state = BridgeState()
    assert counts(site_payload(state)) == (0, 0, 0, 0, 0, 0)
    assert site_payload(state)["log_events"]["last_error"] is None


def test_a_log_event_past_the_server_cap_is_published_not_tracked() -> None:
    state = BridgeState()
    capped = StateSettings(
        stale_after=None, dedup_window=60.0, auto_clear_after=None, max_servers=1
    )
    apply_event(state, log(server="QS1"), 0.0, capped)
    change = apply_event(state, log(server="QS2"), 0.0, capped)
    assert (change.publish_event, change.untracked) == (True, Cap.SERVERS)
    assert list(state.servers) == ["qs1"]


def test_event_payload_has_every_field_null_where_the_source_lacks_it() -> None:
    event = log(
        LogLevel.WARN,
        LogSource.SCHEDULER,
        message="Task for mia; failed",
        user="CORP\\mia",
        user_directory="CORP",
        user_id="mia",
        task_name="Reload Sales",
        windows_user="CORP\\qlikservice",
        log_row=14,
        log_timestamp="2026-11-04T09:37:44.331+01:00",
    )
    payload = log_event_payload(event, 0.5)
    assert payload["event_type"] == "log_warning"
    assert (payload["source"], payload["level"], payload["server"]) == ("scheduler", "WARN", "QS1")
    assert (payload["task_name"], payload["user"], payload["log_row"]) == (
        "Reload Sales",
        "CORP\\mia",
        14,
    )
    for lacking in ("command", "result_code", "origin", "context", "proxy_session_id", "app_id"):
        assert lacking in payload
        assert payload[lacking] is None
    assert payload["category"] is None
    assert payload["timestamp"] == "1970-01-01T00:00:00.500Z"
    assert payload["log_timestamp"] == "2026-11-04T09:37:44.331+01:00"


def test_privacy_applies_to_the_log_event_and_the_last_error() -> None:
    hashed = Privacy(mode="hashed", salt="s")
    event = log(
        message="Task for mia failed",
        user="CORP\\mia",
        user_directory="CORP",
        user_id="mia",
        windows_user="CORP\\qlikservice",
    )
    payload = log_event_payload(event, 0.0, hashed)
    token = hashed.user_id("mia")
    assert payload["user_id"] == token
    assert payload["user"] == f"CORP\\{token}"
    assert payload["message"] == f"Task for {token} failed"
    assert "mia" not in str(payload)
    omitted = log_event_payload(event, 0.0, Privacy(mode="omitted"))
    assert omitted["user_id"] is None
    assert "mia" not in str(omitted)
    state = BridgeState()
    apply_event(state, event, 0.0, SETTINGS)
    assert "mia" not in str(site_payload(state, hashed)["log_events"])
    assert "mia" not in str(server_payload(state.servers["qs1"], hashed)["log_events"])


def test_debug_and_info_are_published_but_never_counted_flagged_or_kept() -> None:
    """Finding 3 of issue 23: every level that arrives is published (`log_info`, `log_debug`);
    only warnings and errors count, raise the `log_error` flag or become the last error."""
    state = BridgeState()
    apply_event(state, log(LogLevel.WARN), 1000.0, SETTINGS)
    before = (server_payload(state.servers["qs1"]), site_payload(state))
    for level in (LogLevel.INFO, LogLevel.DEBUG):
        change = apply_event(state, log(level, message="Reload started"), 1001.0, SETTINGS)
        assert (change.publish_event, change.servers, change.site) == (True, frozenset(), False)
        assert log(level).event_type == f"log_{level.value.lower()}"
    assert (server_payload(state.servers["qs1"]), site_payload(state)) == before
    server = state.servers["qs1"]
    assert (server.last_log_error, server.log_error_at, state.last_log_error) == (None,) * 3
    first = apply_event(state, log(LogLevel.INFO, server="QS9"), 1002.0, SETTINGS)
    assert first.servers == {"qs9"}  # a new server appears (with nothing counted)
    assert counts(server_payload(state.servers["qs9"])) == (0,) * 6


def test_a_category_without_a_level_leaves_debug_and_info_alone() -> None:
    config = Config.model_validate(
        {
            "log_events": {
                "categories": [
                    {"name": "reload", "pattern": "reload"},
                    {"name": "started", "pattern": "reload", "level": "INFO"},
                ]
            }
        }
    )
    bridge = Bridge(config, BridgeState(), Stats(), lambda: 1000.0, lambda: 0.0)
    error, info, debug = log(message="Reload failed"), log(LogLevel.INFO), log(LogLevel.DEBUG)
    for event in (error, info, debug):
        event.message = "Reload"
        bridge.handle_event(event)
    assert (error.category, info.category, debug.category) == ("reload", "started", None)
    assert set(bridge.state.servers["qs1"].log_categories_at) == {"reload", "started"}


def test_an_uncertain_log_event_counts_flags_and_is_categorised_as_any_other() -> None:
    """Finding 1 of issue 23: a tail that cannot be split costs the fields, never the alarm."""
    config = Config.model_validate(
        {"log_events": {"categories": [{"name": "licence", "pattern": "licen[cs]e"}]}}
    )
    bridge = Bridge(config, BridgeState(), Stats(), lambda: 1000.0, lambda: 0.0)
    line = (  # `;` in the message and in the command: uncertain
        "/qseow-repository/;1;20261104T092100.000+0100;2026-11-04 09:21:00,000;ERROR;QS1;"
        "System.Repository.Licensing;CORP\\svc;License check; failed;(null);(null);(null);"
        "Check;ing;0;(null);(null)"
    )
    bridge.handle_datagram(line.encode(), "127.0.0.1")
    server = bridge.state.servers["qs1"]
    assert bridge.stats.uncertain_fields == 1
    assert counts(server_payload(server)) == (0, 1, 0, 0, 1, 0)
    assert server.last_log_error is not None
    assert server.last_log_error.event.fields_uncertain
    assert (server.log_error_at, server.log_categories_at) == (1000.0, {"licence": 1000.0})


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(-120, 4000, allow_nan=False),  # a clock may step back
            st.sampled_from([LogLevel.WARN, LogLevel.ERROR, LogLevel.FATAL, LogLevel.INFO]),
            st.sampled_from([3600.0, 3600.0, 3600.0, 600.0]),  # the window set anew at times
        ),
        max_size=60,
    )
)
def test_adding_prunes_only_when_a_bucket_left_the_window(
    steps: list[tuple[float, LogLevel, float]],
) -> None:
    """`add` skips the prune when it would drop nothing: the same counts as pruning first."""
    fast, pruned = LevelCounts(), LevelCounts()
    now = 1_000_000.0
    for step, level, window in steps:
        now += step
        fast.add(level, now, window)
        if level.counted:  # as `add` did before: prune, then count (DEBUG, INFO: nothing)
            pruned.prune(now, window)
        pruned.add(level, now, window)
        assert (fast.window, fast.total, list(fast.buckets), fast.span) == (
            pruned.window,
            pruned.total,
            list(pruned.buckets),
            pruned.span,
        )
