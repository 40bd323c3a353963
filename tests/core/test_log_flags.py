"""The alert outputs' log flags (pure): `log_error` and `log_category:<name>`, on any server
or one, raised by new events, cleared by acknowledge, kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config
from bridge.core.events import LogEvent, LogLevel, LogSource, SourceFormat, TaskEvent, TaskEventType
from bridge.core.flags import flag_is_on, raises, validate_flag
from bridge.core.log_payloads import server_log_events, site_log_events
from bridge.core.persistence import load_state, save_state
from bridge.core.state import BridgeState, StateSettings, acknowledge, apply_event, forget_server

SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)


def log(
    level: LogLevel, server: str = "QS1", category: str | None = None, message: str = "x"
) -> LogEvent:
    return LogEvent(
        source=LogSource.REPOSITORY,
        level=level,
        server=server,
        source_format=SourceFormat.TAGGED,
        message=message,
        category=category,
    )


def apply(state: BridgeState, event: LogEvent | TaskEvent, now: float = 100.0) -> None:
    apply_event(state, event, now, SETTINGS)


@pytest.mark.parametrize(
    ("written", "flag"),
    [
        ("log_error", "log_error"),
        ("log_error:QSPROD02.corp", "log_error:qsprod02.corp"),
        ("log_category:licence", "log_category:licence"),
        ("log_category:out_of_memory:QS1", "log_category:out_of_memory:qs1"),
        ("server:QS1", "server:qs1"),
    ],
)
def test_flags_are_normalised(written: str, flag: str) -> None:
    assert validate_flag(written) == flag


@pytest.mark.parametrize(
    "written", ["log_error:", "log_category:", "log_category:Licence", "log_category:x:", "logs"]
)
def test_malformed_log_flags_are_refused(written: str) -> None:
    with pytest.raises(ValueError, match="log_category:<category>"):
        validate_flag(written)


def test_log_error_is_raised_by_an_error_or_a_fatal_not_a_warning() -> None:
    state = BridgeState()
    apply(state, log(LogLevel.WARN))
    assert not flag_is_on(state, "log_error")
    assert not raises(state, "log_error", log(LogLevel.WARN))
    apply(state, fatal := log(LogLevel.FATAL))
    assert flag_is_on(state, "log_error")
    assert raises(state, "log_error", fatal)
    assert not flag_is_on(state, "reload_failure")  # the reload flag is a separate thing
    assert not raises(state, "reload_failure", fatal)


def test_per_server_and_per_category_flags() -> None:
    state = BridgeState()
    apply(state, licence := log(LogLevel.WARN, "QS2", category="licence"))
    apply(state, log(LogLevel.ERROR, "QS1"))
    assert flag_is_on(state, "log_category:licence")
    assert flag_is_on(state, "log_category:licence:qs2")
    assert not flag_is_on(state, "log_category:licence:qs1")
    assert not flag_is_on(state, "log_category:reload")
    assert flag_is_on(state, "log_error:qs1")
    assert not flag_is_on(state, "log_error:qs2")  # QS2 logged a warning only
    assert not flag_is_on(state, "log_error:qs9")  # never seen
    assert raises(state, "log_category:licence", licence)
    assert raises(state, "log_category:licence:qs2", licence)
    assert not raises(state, "log_category:licence:qs1", licence)
    assert not raises(state, "log_category:reload", licence)
    failure = TaskEvent(
        event_type=TaskEventType.TASK_FAILED, server="QS1", source_format=SourceFormat.XML
    )
    assert not raises(state, "log_error", failure)


def test_acknowledge_clears_the_log_flags_and_says_which_servers_changed() -> None:
    state = BridgeState()
    apply(state, log(LogLevel.ERROR, "QS1", category="licence"))
    apply(state, log(LogLevel.WARN, "QS2"))
    assert server_log_events(state.servers["qs1"])["unacknowledged"] == {
        "error": True,
        "categories": ["licence"],
    }
    change = acknowledge(state)
    assert change.servers == {"qs1"}
    assert change.site
    assert not flag_is_on(state, "log_error")
    assert not flag_is_on(state, "log_category:licence")
    assert site_log_events(state)["unacknowledged"] == {"error": False, "categories": []}
    assert site_log_events(state)["errors"] == 1  # the counts stay: only the flags clear
    assert not acknowledge(state).any  # nothing left to clear


def test_the_log_flags_survive_a_restart_and_leave_with_a_forgotten_server(tmp_path: Path) -> None:
    state = BridgeState()
    apply(state, log(LogLevel.ERROR, "QS1", category="out_of_memory"), now=123.0)
    save_state(tmp_path / "state.json", state)
    restored = load_state(tmp_path / "state.json")
    assert restored is not None
    assert restored.servers["qs1"].log_error_at == 123.0
    assert restored.servers["qs1"].log_categories_at == {"out_of_memory": 123.0}
    assert flag_is_on(restored, "log_category:out_of_memory:QS1")
    forget_server(restored, "qs1")
    assert not flag_is_on(restored, "log_error")


def test_an_unknown_category_in_when_is_a_config_error_naming_the_output(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "log_events:\n  categories: [{name: licence, pattern: licen}]\n"
        "alerts:\n  outputs:\n"
        "    - {topic: a, on: 'ON', off: 'OFF', when: 'log_category:licence:QS1'}\n"
        "    - {topic: b, on: 'ON', off: 'OFF', when: 'log_category:reload'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.problems == [
        "alerts.outputs[1].when: unknown category 'reload': log_events.categories names "
        "licence (got 'log_category:reload')"
    ]


def test_debug_and_info_never_raise_the_log_error_flag() -> None:
    state = BridgeState()
    for level in (LogLevel.DEBUG, LogLevel.INFO):
        event = log(level=level)
        apply(state, event)
        assert not raises(state, "log_error", event)
        assert not flag_is_on(state, "log_error")
    error = log(level=LogLevel.ERROR)
    apply(state, error)
    assert raises(state, "log_error", error)
