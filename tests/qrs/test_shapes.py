"""What the bridge reads of QRS's answers (bridge/qrs/shapes.py): the documented shapes, and
anything else without an exception."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.qrs.shapes import (
    NO_ID,
    app_facts,
    execution_facts,
    log_tail,
    reference,
    task_facts,
)
from tests.qrs_server import execution_result, qrs_app, reload_task


def test_the_documented_shapes() -> None:
    task = task_facts(reload_task("t", "Reload", "a", "App", ("A", "B"), {"P": ("1", "2")}))
    assert (task["tags"], task["custom_properties"], task["app_id"]) == (
        ["A", "B"],
        {"P": ["1", "2"]},
        "a",
    )
    app = app_facts(qrs_app("a", "App", ("D", "u", "User"), None))
    assert (app["stream"], app["published"], app["publish_time"]) == (None, False, None)
    execution = execution_facts([execution_result("r", "t", "e")])
    assert execution is not None
    assert (execution["status"], execution["file_reference_id"]) == ("FinishedFail", "file-r")


@pytest.mark.parametrize("junk", [None, 3, "text", [], [1, 2], {"tags": "x", "app": 5}])
def test_any_other_answer_gives_empty_facts(junk: Any) -> None:
    assert task_facts(junk)["tags"] == []
    assert app_facts(junk)["owner"] is None
    facts = execution_facts(junk)
    assert facts is None or facts["status"] is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'"3f2a"', "3f2a"),
        (b'{"value": "3f2a"}', "3f2a"),
        (b"3f2a\r\n", "3f2a"),
        (f'"{NO_ID}"'.encode(), None),
        (b'""', None),
    ],
)
def test_a_script_log_reference_in_any_form(body: bytes, expected: str | None) -> None:
    assert reference(body) == expected


def test_the_log_tail_keeps_the_last_lines_within_bytes() -> None:
    body = "\ufeff" + "".join(f"line {i}\r\n" for i in range(100))
    lines, truncated = log_tail(body.encode(), 5, 4096)
    assert lines == [f"line {i}" for i in range(95, 100)]
    assert truncated
    lines, _ = log_tail(body.encode(), 50, 30)  # bytes bound first: "line 99\n" is 8 bytes
    assert lines == ["line 97", "line 98", "line 99"]


def test_a_utf16_log_and_a_long_last_line() -> None:
    text = "Load ok\r\nError: é not found\r\n"
    assert log_tail(text.encode("utf-16-le"), 5, 4096)[0] == ["Load ok", "Error: é not found"]
    assert log_tail(b"\xff\xfe" + text.encode("utf-16-le"), 1, 4096)[0] == ["Error: é not found"]
    lines, truncated = log_tail(("x" * 5000).encode(), 3, 100)
    assert len(lines) == 1
    assert lines[0].startswith("…")
    assert truncated
