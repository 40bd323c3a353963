"""Alert filters by a failure's QRS context (bridge/core/context_filter.py): what passes, and
what the fallback decides without a context."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.core.context_filter import Filter, passes, verdict
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType

EVENT = TaskEvent(
    event_type=TaskEventType.TASK_FAILED,
    server="QS1",
    source_format=SourceFormat.TAGGED,
    task_name="Reload Finance",
    app_name="Finance",
    task_id="t-1",
)


def context(**parts: Any) -> dict[str, Any]:
    return {
        "status": "complete",
        "task": {"name": "Reload Finance", "tags": ["Nightly"], "custom_properties": {}},
        "app": {
            "name": "Finance",
            "id": "a-1",
            "stream": "Finance",
            "tags": ["Core"],
            "custom_properties": {"AlertTeam": ["Finance", "Controlling"]},
        },
        **parts,
    }


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Filter.of(tags=["nightly"]), True),  # the task's tag, case ignored
        (Filter.of(tags=["Core"]), True),  # the app's tag
        (Filter.of(tags=["Production"]), False),
        (Filter.of(custom_properties={"alertteam": ["FINANCE"]}), True),
        (Filter.of(custom_properties={"AlertTeam": ["Sales"]}), False),
        (Filter.of(custom_properties={"Region": ["EU"]}), False),  # not set at all
        (Filter.of(streams=["Finance"]), True),
        (Filter.of(streams=["Sales"]), False),
        (Filter.of(apps=["a-1"]), True),
        (Filter.of(tags=["Nightly"], streams=["Sales"]), False),  # every criterion must hold
        (Filter.of(tags=["Production", "Nightly"]), True),  # any value of one will do
        (Filter.of(), True),
    ],
)
def test_a_context_passes_or_not(rule: Filter, expected: bool) -> None:
    assert verdict(rule, EVENT, context()) is expected


@pytest.mark.parametrize(
    "missing",
    [None, {"status": "unavailable", "reason": "timeout"}, {"status": "waiting"}],
)
def test_without_context_the_fallback_decides(missing: dict[str, Any] | None) -> None:
    alert = Filter.of(tags=["Production"])
    skip = Filter.of(tags=["Production"], without_context="skip")
    assert verdict(alert, EVENT, missing) is None
    assert passes(alert, EVENT, missing) is True
    assert passes(skip, EVENT, missing) is False


def test_apps_alone_needs_no_context() -> None:
    assert passes(Filter.of(apps=["finance"], without_context="skip"), EVENT, None) is True
    assert passes(Filter.of(apps=["Sales"]), EVENT, None) is False


def test_a_stream_filter_without_the_app_falls_back() -> None:
    partial = context(app=None, status="partial")
    assert verdict(Filter.of(streams=["Finance"]), EVENT, partial) is None
    assert verdict(Filter.of(tags=["Nightly"]), EVENT, partial) is True
