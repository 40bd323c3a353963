"""Log-event categories: `log_events.categories` compiled at config load, first match wins,
level and source filters, the category on the event topic's payload and the last error."""

from __future__ import annotations

import re
import timeit
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bridge.config import DEFAULT_CATEGORIES, Config, ConfigError, load_config
from bridge.core.categories import SEARCHED_CHARS
from bridge.core.events import LogEvent, LogLevel, LogSource, SourceFormat
from bridge.core.log_payloads import log_event_payload, server_log_events, site_log_events
from bridge.core.path import Bridge, categories_of
from bridge.core.state import BridgeState
from bridge.core.stats import Stats
from tests.helpers import qlik2mqtt

RULES: list[dict[str, Any]] = [
    {"name": "licence", "pattern": r"licen[cs]e"},
    {"name": "engine_fatal", "level": "fatal", "source": "Engine", "pattern": "."},
    {"name": "reload", "level": ["ERROR", "FATAL"], "source": ["scheduler"], "pattern": "reload"},
    {"name": "anything", "pattern": "failed"},
]


def event(
    message: str | None,
    level: LogLevel = LogLevel.ERROR,
    source: LogSource = LogSource.ENGINE,
    server: str = "QS1",
) -> LogEvent:
    return LogEvent(
        source=source,
        level=level,
        server=server,
        source_format=SourceFormat.TAGGED,
        subsystem="System.Engine",
        message=message,
    )


def categories(rules: list[dict[str, Any]] = RULES) -> Any:
    return categories_of(Config.model_validate({"log_events": {"categories": rules}}))


@pytest.mark.parametrize(
    ("message", "level", "source", "expected"),
    [
        ("The LICENSE has expired", LogLevel.WARN, LogSource.PROXY, "licence"),  # any case
        ("no licence; reload failed", LogLevel.FATAL, LogSource.ENGINE, "licence"),  # first wins
        ("engine stopped", LogLevel.FATAL, LogSource.ENGINE, "engine_fatal"),
        ("engine stopped", LogLevel.ERROR, LogSource.ENGINE, None),  # level filter
        ("Reload of app X failed", LogLevel.ERROR, LogSource.SCHEDULER, "reload"),
        ("Reload of app X failed", LogLevel.WARN, LogSource.SCHEDULER, "anything"),
        ("Reload of app X failed", LogLevel.ERROR, LogSource.REPOSITORY, "anything"),
        ("all is well", LogLevel.ERROR, LogSource.PROXY, None),
        (None, LogLevel.ERROR, LogSource.PROXY, None),
    ],
)
def test_first_matching_rule_names_the_category(
    message: str | None, level: LogLevel, source: LogSource, expected: str | None
) -> None:
    assert categories().of(event(message, level, source)) == expected


def test_an_escape_with_a_capital_letter_is_allowed_in_a_lower_case_pattern() -> None:
    rules = categories([{"name": "code", "pattern": r"error\s+\d{3}\b\S*"}])
    assert rules.of(event("ERROR   404 not found")) == "code"


@pytest.mark.parametrize(
    ("pattern", "ignorecase"),
    [
        ("licence", False),
        (r"licen[cs]e\b", False),
        (r"\S*licence", True),  # a capital escape: the same meaning with IGNORECASE
        ("LICENCE", True),
        ("Licence", True),
        (r"(?P<Lic>licence)", True),  # a capital only in a group name: harmless
        (r"\x4cicence", True),  # a capital by its code: would never match the lowered message
        (r"\u004cicence", True),
        (r"\N{LATIN SMALL LETTER L}icence", True),
        (r"\114icence", True),  # octal
    ],
)
def test_a_pattern_in_any_case_matches_and_only_one_naming_a_capital_pays_for_ignorecase(
    pattern: str, ignorecase: bool
) -> None:
    rules = categories([{"name": "licence", "pattern": pattern}])
    assert rules.of(event("The LICENCE has expired")) == "licence"
    assert rules.of(event("the licence has expired")) == "licence"
    assert rules.of(event("the lacence has expired")) is None
    compiled = (
        Config.model_validate({"log_events": {"categories": [{"name": "x", "pattern": pattern}]}})
        .log_events.categories[0]
        .pattern
    )
    assert bool(compiled.flags & re.IGNORECASE) is ignorecase


def test_a_remembered_answer_is_the_answer_for_that_source_and_level_only() -> None:
    rules = categories()
    for _ in range(3):  # answered from memory after the first time, the same each time
        assert rules.of(event("Engine stopped", LogLevel.FATAL)) == "engine_fatal"
        assert rules.of(event("Engine stopped", LogLevel.ERROR)) is None
        assert rules.of(event("Engine stopped", LogLevel.FATAL, LogSource.PROXY)) is None
    long = "reload failed " + "x" * 1_000  # too long to remember: searched each time
    assert rules.of(event(long, source=LogSource.SCHEDULER)) == "reload"
    assert rules.of(event(long, source=LogSource.SCHEDULER)) == "reload"


def test_a_pattern_searches_the_start_of_a_long_message_only() -> None:
    rules = categories([{"name": "late", "pattern": "needle"}])
    assert rules.of(event("x" * (SEARCHED_CHARS - 6) + "needle")) == "late"
    assert rules.of(event("x" * SEARCHED_CHARS + "needle")) is None


def test_the_shipped_rules_name_typical_qlik_messages() -> None:
    rules = categories_of(Config())
    assert rules.of(event("Could not find a valid license for user CORP\\mia")) == "licence"
    assert rules.of(event("Out of memory while loading app")) == "out_of_memory"
    assert (
        rules.of(event("Task finished with state FinishedFail", source=LogSource.SCHEDULER))
        == "reload"
    )
    assert rules.of(event("Connection refused by node qs2.corp")) == "connectivity"
    assert rules.of(event("A perfectly ordinary warning", LogLevel.WARN)) is None
    assert not categories([])


UNBOUNDED = re.compile(r"(?<!\\)(\*|\+|\{\d*,\})")
"""`*`, `+` or `{n,}` (not escaped): a repeat with no end, which backtracks across a message."""


def test_the_shipped_rules_have_no_unbounded_repeat_and_stay_fast_on_adversarial_messages() -> None:
    """A category is searched for every log event whose message is not remembered (longer than
    512 characters): a shipped rule must stay linear. `task .*fail` took 3.6 ms on 'task ' x 819."""
    for rule in DEFAULT_CATEGORIES:
        text = rule.pattern.pattern
        assert UNBOUNDED.search(re.sub(r"\[[^\]]*\]", "", text)) is None, (rule.name, text)
        words = re.findall(r"[a-z]+", text)
        adversarial = [(word + " ") * (SEARCHED_CHARS // len(word)) for word in words]
        adversarial.append(" ".join(words) * SEARCHED_CHARS)
        for message in adversarial:
            search = partial(rule.pattern.search, message[:SEARCHED_CHARS])
            best = min(timeit.repeat(search, number=1, repeat=5))
            assert best < 1e-3, (rule.name, message[:40], best)


def test_the_core_path_sets_the_category_on_the_event_and_the_last_error() -> None:
    config = Config.model_validate({"log_events": {"categories": RULES}})
    bridge = Bridge(config, BridgeState(), Stats(), clock=lambda: 100.0, monotonic=lambda: 0.0)
    bridge.handle_event(error := event("The licence has expired", server="QS1"))
    bridge.handle_event(warning := event("nothing known", LogLevel.WARN, server="QS2"))
    assert error.category == "licence"
    assert warning.category is None
    assert log_event_payload(error, 100.0)["category"] == "licence"
    assert log_event_payload(warning, 100.0)["category"] is None
    server = bridge.state.servers["qs1"]
    assert server_log_events(server)["last_error"]["category"] == "licence"
    assert site_log_events(bridge.state)["last_error"]["category"] == "licence"


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (
            {"name": "bad", "pattern": "(unclosed"},
            "log_events.categories[1].pattern: not a regular expression: missing ), unterminated "
            "subpattern at position 0 (got '(unclosed')",
        ),
        ({"name": "Bad Name", "pattern": "x"}, "log_events.categories[1].name: String should"),
        ({"name": "x", "pattern": "x", "level": "VERBOSE"}, "log_events.categories[1].level[0]:"),
        ({"name": "x", "pattern": "x", "source": "hub"}, "log_events.categories[1].source[0]:"),
        ({"name": "x"}, "log_events.categories[1].pattern: Field required"),
    ],
)
def test_a_bad_rule_is_a_config_error_naming_its_key(rule: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(
            None,
            environ={
                "QLIK2MQTT_LOG_EVENTS__CATEGORIES": str([{"name": "ok", "pattern": "ok"}, rule])
            },
        )
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(problem)


def test_a_bad_pattern_stops_run_with_exit_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("log_events:\n  categories:\n    - {name: oom, pattern: 'memory[' }\n")
    result = qlik2mqtt("run", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.startswith(
        "qlik2mqtt: config error: log_events.categories[0].pattern: not a regular expression:"
    )
    assert "Traceback" not in result.stderr
