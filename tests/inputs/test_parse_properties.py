"""Properties of the session and task parser (issue 23): it never raises, whatever the bytes,
and it never puts a value into the wrong field: a field is what was logged there, or empty
where the line cannot say (names holding `;`), or the line is refused."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bridge.core.events import LogEvent, Rejected, TaskEvent, TaskEventType, UserEvent
from bridge.inputs.fields import NAME_CONTROLS, field, message_text
from bridge.inputs.parse import COMMANDS, DEFAULT_TASK_PREFIX, parse_datagram

LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "TRACE", "NOTICE", "CRITICAL")
TAGS = ["/proxy-session/", "/scheduler-task-failed/", "/engine-reload-failed/", "/qseow-engine/"]
NAME = st.text(alphabet="aB1 ;é€_.()", max_size=12)
"""Task and app names: anything Qlik allows, `;` included (no `-` or `:`: no date in a name)."""
PLAIN = st.text(alphabet="aB1_.é", min_size=1, max_size=10)
"""Hosts, directories, user ids, ids: no `;` (Windows and Qlik allow none there)."""
MESSAGE = st.text(alphabet="aB1 ;é€:'\"<>&\\", max_size=30)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.lists(st.sampled_from([*TAGS, "QS1", "Start session", "(null)", "ERROR", "", "<"])
                 | st.text(max_size=12), max_size=40).map(lambda f: ";".join(f).encode(
                     "utf-8", "surrogatepass")),
    )
)  # fmt: skip
def test_never_raises_any_bytes(data: bytes) -> None:
    result = parse_datagram(data)
    assert isinstance(result, UserEvent | TaskEvent | LogEvent | Rejected)
    if not isinstance(result, Rejected):
        assert not NAME_CONTROLS.search(result.server)


@dataclass
class Task:
    host: str
    task: str
    app: str
    user: str
    task_id: str
    app_id: str
    level: str
    execution_id: str
    message: str


TASKS = st.builds(
    Task,
    host=PLAIN,
    task=NAME,
    app=NAME,
    user=st.builds(lambda d, u: f"{d}\\{u}", PLAIN, PLAIN),
    task_id=PLAIN,
    app_id=PLAIN,
    level=st.sampled_from(["ERROR", "WARN", "INFO"]),
    execution_id=PLAIN,
    message=MESSAGE,
)
DATE = "2026-05-06 14:23:45,123"


def _layouts(t: Task) -> dict[str, str]:
    long = [t.host, t.task, t.app, t.user, t.task_id, t.app_id, DATE, t.level, t.execution_id]
    return {
        "legacy4": f"{t.host};{t.task};{t.app};{t.user}",
        "legacy5": f"{t.host};{t.task};{t.app};{t.message};{t.level}",
        "legacy10": ";".join([*long, t.message]),
        "tagged": ";".join(["/scheduler-task-failed/", *long, t.message]),
    }


def _agrees(value: str | None, logged: str) -> bool:
    return value is None or value == field(logged)


@settings(max_examples=600, deadline=None)
@given(TASKS, st.booleans())
def test_task_lines_are_never_mis_assigned(t: Task, default_name: bool) -> None:
    if default_name:
        t.task = DEFAULT_TASK_PREFIX + t.app
    assume(t.task.strip().lower() not in COMMANDS)  # `host;Start session;…` is a session line
    for layout, line in _layouts(t).items():
        result = parse_datagram(line.encode())
        if isinstance(result, Rejected):
            # refused only where a `;` makes the layout's fields uncountable
            assert ";" in f"{t.task}{t.app}{t.message if layout == 'legacy5' else ''}", (
                layout, line, result,
            )  # fmt: skip
            continue
        assert isinstance(result, TaskEvent), (layout, line, result)
        assert result.event_type is TaskEventType.TASK_FAILED
        assert result.server == field(t.host), (layout, line)
        # Names: both right, or both left empty where a `;` hides which is which.
        names = (result.task_name, result.app_name)
        if layout == "legacy5" and ";" in t.task + t.app + t.message:
            # No anchor tells the names from the message: the text whole, the names empty.
            whole = message_text([t.task, t.app, t.message])
            assert (names, result.message, result.log_level) == ((None, None), whole, t.level)
            continue
        assert names in ((field(t.task), field(t.app)), (None, None)), (layout, line, names)
        if ";" not in t.task + t.app or default_name:
            assert names == (field(t.task), field(t.app)), (layout, line, names)
        if layout == "legacy5":
            assert (result.message, result.log_level) == (field(t.message), t.level)
            continue
        assert _agrees(result.user, t.user), (layout, line)
        if layout != "legacy4":
            assert (result.task_id, result.app_id) == (t.task_id, t.app_id)
            assert (result.log_level, result.execution_id) == (t.level, t.execution_id)
            assert result.message == field(t.message), (layout, line)


@settings(max_examples=400, deadline=None)
@given(PLAIN, st.sampled_from(sorted(COMMANDS)), PLAIN, PLAIN, PLAIN, MESSAGE)
def test_session_lines_are_never_mis_assigned(
    host: str, command: str, directory: str, user_id: str, origin: str, message: str
) -> None:
    for line, tagged in (
        (f"{host};{command};{directory};{user_id}", False),
        (f"/proxy-session/;{host};{command};{directory};{user_id};{origin};/hub/;{message}", True),
        (f"{host};{command};{directory};{user_id};{origin};/hub/;{message}", False),
    ):
        result = parse_datagram(line.encode())
        if line.count(";") > 3 and not tagged:
            assert isinstance(result, Rejected), (line, result)  # no untagged 7-field layout
            continue
        assert isinstance(result, UserEvent), (line, result)
        assert (result.server, result.user_directory, result.user_id) == (
            field(host), field(directory), field(user_id),
        )  # fmt: skip
        if tagged:
            assert (result.origin, result.message) == (field(origin), field(message))
