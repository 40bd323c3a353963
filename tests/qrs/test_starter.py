"""The allow-list and the rate limit, before any request leaves: a recording client stands in
for QRS here (the real client against a real HTTPS server: test_client; all of it through
mosquitto: tests/test_task_start.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from bridge.config import QrsConfig
from bridge.core.stats import Stats
from bridge.qrs.allow import TaskKey
from bridge.qrs.client import QrsError
from bridge.qrs.reasons import Reason
from bridge.qrs.starter import TaskStarter

ROOT = Path(__file__).parent.parent.parent
TASK_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"


class RecordingClient:
    def __init__(self, failure: QrsError | None = None) -> None:
        self.started: list[tuple[TaskKey, str]] = []
        self.failure = failure
        self.tasks: dict[str, str] = {TASK_ID: "Reload Sales"}
        """Task id → name: the reload tasks `GET /qrs/reloadtask/{id}` knows."""
        self.asked: list[str] = []

    async def start(self, key: TaskKey, value: str) -> None:
        self.started.append((key, value))
        if self.failure is not None:
            raise self.failure

    async def get_json(self, path: str, params: dict[str, str], max_bytes: int) -> object:
        self.asked.append(path)
        task_id = path.rsplit("/", 1)[-1]
        if task_id not in self.tasks:
            raise QrsError(Reason.NOT_FOUND, "HTTP 404")
        return {"id": task_id, "name": self.tasks[task_id]}

    async def aclose(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def starter(
    client: RecordingClient, clock: Clock | None = None, **qrs: Any
) -> tuple[TaskStarter, Stats]:
    stats = Stats()
    return TaskStarter(QrsConfig.model_validate(qrs), client, stats, clock or Clock()), stats


async def test_an_empty_allow_list_refuses_every_task_without_asking_qrs() -> None:
    client = RecordingClient()
    tasks, stats = starter(client)
    assert await tasks.start("id", TASK_ID) is Reason.NOT_ALLOWED
    assert await tasks.start("name", "Reload Sales") is Reason.NOT_ALLOWED
    assert client.started == []
    assert stats.task_start_errors == {"not_allowed": 2}
    assert stats.task_starts == 0


async def test_an_entry_allows_the_task_as_it_is_named() -> None:
    client = RecordingClient()
    tasks, stats = starter(client, allowed_tasks=[TASK_ID.upper(), "Reload Sales"])
    assert await tasks.start("id", TASK_ID) is None  # a GUID in any case
    assert await tasks.start("name", "Reload Sales") is None
    assert await tasks.start("name", "reload sales") is Reason.NOT_ALLOWED
    assert await tasks.start("name", TASK_ID) is Reason.NOT_ALLOWED  # an id is not a name
    assert await tasks.start("id", "Reload Sales") is Reason.NOT_ALLOWED
    assert client.started == [("id", TASK_ID), ("name", "Reload Sales")]
    assert (stats.task_starts, stats.task_start_errors["not_allowed"]) == (2, 3)


async def test_a_star_allows_any_task() -> None:
    client = RecordingClient()
    tasks, _ = starter(client, allowed_tasks=["*"])
    assert await tasks.start("name", "Anything at all") is None


async def test_starts_past_the_limit_within_a_minute_are_refused() -> None:
    client, clock = RecordingClient(), Clock()
    tasks, stats = starter(client, clock, allowed_tasks=["*"], max_starts_per_minute=2)
    assert await tasks.start("id", TASK_ID) is None
    clock.now += 30
    assert await tasks.start("id", TASK_ID) is None
    assert await tasks.start("id", TASK_ID) is Reason.RATE_LIMITED
    clock.now += 29.9
    assert await tasks.start("name", "Other") is Reason.RATE_LIMITED
    clock.now += 0.1  # the first start is a minute old
    assert await tasks.start("id", TASK_ID) is None
    assert await tasks.start("id", TASK_ID) is Reason.RATE_LIMITED
    assert len(client.started) == 3
    assert stats.task_start_errors == {"rate_limited": 3}


async def test_a_refused_task_does_not_use_up_the_limit() -> None:
    client = RecordingClient()
    tasks, _ = starter(client, allowed_tasks=["Reload Sales"], max_starts_per_minute=1)
    for _ in range(3):
        assert await tasks.start("name", "Not allowed") is Reason.NOT_ALLOWED
    assert await tasks.start("name", "Reload Sales") is None


async def test_a_failure_from_qrs_is_the_answer_and_counted() -> None:
    client = RecordingClient(QrsError(Reason.NOT_FOUND, "HTTP 404"))
    tasks, stats = starter(client, allowed_tasks=["*"])
    assert await tasks.start("name", "Gone") is Reason.NOT_FOUND
    assert (stats.task_starts, stats.task_start_errors) == (0, {"not_found": 1})


async def test_a_failure_the_client_does_not_know_is_a_qrs_error_counted_and_logged() -> None:
    """The backstop: an exception other than QrsError out of the client still makes an
    answer (`QRS error`), a counter and a log line, never an unanswered request."""

    class Broken(RecordingClient):
        async def start(self, key: TaskKey, value: str) -> None:
            raise RuntimeError("unexpected")

    tasks, stats = starter(Broken(), allowed_tasks=["*"])
    with capture_logs() as logs:
        assert await tasks.start("id", TASK_ID) is Reason.QRS_ERROR
    assert stats.task_start_errors == {"qrs_error": 1}
    assert stats.task_starts == 0
    assert any(entry["event"] == "QRS request failed unexpectedly" for entry in logs)


async def test_a_request_qrs_refused_counts_against_the_limit_as_documented() -> None:
    """The limit protects the repository from a looping automation: what it counts is every
    request sent to QRS, a start or a refusal (a press for a deleted task every second would
    otherwise reach QRS every second). docs/configuration.md and docs/qrs.md say so."""
    client, clock = RecordingClient(QrsError(Reason.NOT_FOUND)), Clock()
    tasks, stats = starter(client, clock, allowed_tasks=["*"], max_starts_per_minute=2)
    assert await tasks.start("id", TASK_ID) is Reason.NOT_FOUND
    assert await tasks.start("id", TASK_ID) is Reason.NOT_FOUND
    client.failure = None
    assert await tasks.start("id", TASK_ID) is Reason.RATE_LIMITED
    assert len(client.started) == 2  # the third never left
    clock.now += 60
    assert await tasks.start("id", TASK_ID) is None
    assert stats.task_start_errors == {"not_found": 2, "rate_limited": 1}
    for doc in ("docs/configuration.md", "docs/qrs.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert "requests sent to QRS in any 60 seconds" in text, doc


async def test_a_retry_candidate_is_confirmed_by_id_and_name_once() -> None:
    """What Retry starts comes from a datagram: QRS must know a reload task with that id and,
    when the failure named it, that name. One GET per task, cached."""
    client, clock = RecordingClient(), Clock()
    tasks, stats = starter(client, clock, allowed_tasks=["*"])
    assert await tasks.confirm(TASK_ID, "Reload Sales") is None
    assert await tasks.confirm(TASK_ID, None) is None  # a failure without a name: the id
    assert client.asked == [f"/qrs/reloadtask/{TASK_ID}"]  # cached
    assert await tasks.confirm(TASK_ID, "Reload Payroll") is Reason.NOT_THE_FAILED_TASK
    assert len(client.asked) == 2  # another name than the cached one: QRS asked again first
    client.tasks[TASK_ID] = "Reload Payroll"  # renamed in the QMC since the cache
    assert await tasks.confirm(TASK_ID, "Reload Payroll") is None
    forged = "0d0d0d0d-0000-4000-8000-000000000000"
    assert await tasks.confirm(forged, "Reload Sales") is Reason.NOT_FOUND
    clock.now += 301  # the cache expires: asked again
    assert await tasks.confirm(TASK_ID, "Reload Payroll") is None
    assert len(client.asked) == 5
    assert client.started == []  # confirming never starts anything
    assert stats.task_start_errors == {"not_the_failed_task": 1, "not_found": 1}
