"""Watched tasks (`tasks.watch`): outcomes kept in state and saved, their payload, the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, load_config
from bridge.core.events import SourceFormat, TaskEvent, TaskEventType
from bridge.core.persistence import restore, snapshot
from bridge.core.state import BridgeState, StateSettings, Watch, apply_event, remember_watched
from bridge.core.topics import server_slug, task_slug
from bridge.core.watch import watched_payload

SALES_ID = "6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e5f"
WATCH = (Watch(name="Reload Sales"), Watch(task_id=SALES_ID.upper()), Watch(name="Reload HR"))
SETTINGS = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None, watch=WATCH)


def event(kind: TaskEventType, name: str, task_id: str | None, execution: str) -> TaskEvent:
    return TaskEvent(
        event_type=kind,
        server="QS1",
        source_format=SourceFormat.TAGGED,
        task_name=name,
        task_id=task_id,
        execution_id=execution,
    )


def test_the_last_outcome_of_each_watched_task_is_kept_by_name_or_id() -> None:
    state = BridgeState()
    apply_event(
        state, event(TaskEventType.TASK_FAILED, "Reload Sales", SALES_ID, "e1"), 1.0, SETTINGS
    )
    apply_event(state, event(TaskEventType.TASK_ABORTED, "Reload HR", None, "e2"), 2.0, SETTINGS)
    apply_event(state, event(TaskEventType.TASK_FAILED, "Reload Other", None, "e3"), 3.0, SETTINGS)
    apply_event(
        state, event(TaskEventType.DISTRIBUTE_FINISHED, "Reload HR", None, "e4"), 4.0, SETTINGS
    )
    assert set(state.watched) == {watch.key for watch in WATCH}  # the id entry matched in any case
    assert state.watched["Reload HR"].event.event_type is TaskEventType.TASK_ABORTED
    apply_event(
        state, event(TaskEventType.TASK_SUCCEEDED, "Reload Sales", SALES_ID, "e5"), 5.0, SETTINGS
    )
    assert watched_payload("Reload Sales", state.watched["Reload Sales"]) == {
        "task": "Reload Sales",
        "outcome": "succeeded",
        "last_outcome_at": "1970-01-01T00:00:05.000Z",
        "task_name": "Reload Sales",
        "task_id": SALES_ID,
        "server": "QS1",
    }
    assert watched_payload("Reload X", None)["outcome"] is None


def test_nothing_is_kept_when_nothing_is_watched() -> None:
    state = BridgeState()
    quiet = StateSettings(stale_after=None, dedup_window=60.0, auto_clear_after=None)
    apply_event(state, event(TaskEventType.TASK_FAILED, "Reload Sales", SALES_ID, "e1"), 1.0, quiet)
    assert state.watched == {}


def test_the_outcomes_survive_a_restart() -> None:
    state = BridgeState()
    apply_event(state, event(TaskEventType.TASK_FAILED, "Reload Sales", None, "e1"), 1.0, SETTINGS)
    restored = restore(snapshot(state))
    assert restored.watched["Reload Sales"].received_at == 1.0
    assert restored.watched["Reload Sales"].event.event_type is TaskEventType.TASK_FAILED
    old = snapshot(BridgeState())
    del old["watched"]  # a state file from before watched tasks
    assert restore(old).watched == {}
    older = snapshot(state)
    del older["watched_slugs"]  # from before the announced slugs: those with an outcome
    assert restore(older).watched_slugs == {"reload_sales"}
    remember_watched(state, (Watch(name="Reload Finance"),))  # announced, no outcome yet
    assert restore(snapshot(state)).watched_slugs == {"reload_finance"}


def test_a_task_slug_names_topics_and_entity_ids() -> None:
    assert task_slug(" Reload Sales; daily ") == "reload_sales_daily"
    assert task_slug("Försäljning-EMEA") == "forsaljning_emea"
    assert task_slug("売上") == ""  # no Latin letter or digit: the config asks for its id
    assert [task_slug(name) for name in ("Straße", "Øl", "Æble", "Œuvre", "Łódź", "Þór")] == [
        "strasse",
        "ol",
        "aeble",
        "oeuvre",
        "lodz",
        "thor",
    ]  # as Home Assistant spells them
    assert task_slug("+#/") == ""
    assert server_slug("tasks") == "server_tasks"  # `<base>/tasks/…` belongs to watched tasks


@pytest.mark.parametrize(
    ("watch", "problem"),
    [
        ('["Reload Sales", "reload-sales"]', "would both be named 'reload_sales'"),
        ('["+#"]', "has no letter or digit"),
        ('["売上"]', "give the task's id too"),
        ("[2024.10]", "2024.1 is a number: quote the task name"),
        ('[""]', "at least 1 character"),
        ("[{}]", "give the task's name, its id, or both"),
        ('[{name: Sales, id: "12"}]', "'12' is not a task id"),
        ('[{name: Sales, ids: "x"}]', "ids: unknown key"),
    ],
)
def test_watch_entries_that_cannot_name_their_entities_are_config_errors(
    tmp_path: Path, watch: str, problem: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"tasks:\n  watch: {watch}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    (line,) = raised.value.problems
    assert line.startswith("tasks.watch")
    assert problem in line


def test_an_id_in_any_accepted_form_is_the_same_task(tmp_path: Path) -> None:
    forms = [f"'{{{SALES_ID.upper()}}}'", SALES_ID.replace("-", ""), f"urn:uuid:{SALES_ID}"]
    path = tmp_path / "config.yaml"
    path.write_text(f"tasks:\n  watch: [{forms[0]}]\n")
    assert load_config(path).tasks.watched() == (Watch(task_id=SALES_ID),)
    for form in forms:
        watch = Watch(name="Reload Sales", task_id=form.strip("'"))
        state = BridgeState()
        settings = StateSettings(None, 60.0, None, watch=(watch,))
        failed = event(TaskEventType.TASK_FAILED, "Reload Sales v2", SALES_ID, "e1")
        apply_event(state, failed, 1.0, settings)
        assert set(state.watched) == {"Reload Sales"}, form
        assert watch.slug == "reload_sales"


def test_a_name_with_no_latin_letter_is_named_by_its_id(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"tasks:\n  watch: [{{name: 売上, id: {SALES_ID}}}]\n")
    (watch,) = load_config(path).tasks.watched()
    assert (watch.key, watch.slug) == ("売上", SALES_ID.replace("-", "_"))


def test_with_an_id_on_both_sides_the_id_alone_decides() -> None:
    """After a rename, another task that took the old name is not this one."""
    watch = Watch(name="Reload Sales", task_id=SALES_ID)
    other = "0b7e1f3c-9a2d-4c5e-8f6a-1d2c3b4a5e6f"
    state = BridgeState()
    settings = StateSettings(None, 60.0, None, watch=(watch,))
    apply_event(state, event(TaskEventType.TASK_FAILED, "Reload Sales", other, "e1"), 1.0, settings)
    assert state.watched == {}
    # A line naming the task alone (Butler's legacy line) is the task that holds that name on
    # its server, as the scheduler's lines taught (bridge.core.reloads): the other one.
    apply_event(state, event(TaskEventType.TASK_FAILED, "Reload Sales", None, "e2"), 2.0, settings)
    assert state.watched == {}
    # Where no line with an id named it yet, the name decides.
    fresh = BridgeState()
    apply_event(fresh, event(TaskEventType.TASK_FAILED, "Reload Sales", None, "e3"), 3.0, settings)
    assert set(fresh.watched) == {"Reload Sales"}


def test_an_entry_with_name_and_id_matches_either_and_is_named_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"tasks:\n  watch: [{{name: Reload Sales, id: {SALES_ID}}}, {SALES_ID}, HR]\n")
    both, by_id, by_name = load_config(path).tasks.watched()
    assert both == Watch(name="Reload Sales", task_id=SALES_ID)
    assert (by_id, by_name) == (Watch(task_id=SALES_ID), Watch(name="HR"))
    state = BridgeState()
    settings = StateSettings(None, 60.0, None, watch=(both,))
    renamed = event(TaskEventType.TASK_FAILED, "Reload Sales v2", SALES_ID.upper(), "e1")
    apply_event(state, renamed, 1.0, settings)  # renamed in the QMC: the id still finds it
    assert state.watched["Reload Sales"].event.task_name == "Reload Sales v2"
    succeeded = event(TaskEventType.TASK_SUCCEEDED, "Reload Sales", None, "e2")
    apply_event(state, succeeded, 2.0, settings)
    assert state.watched["Reload Sales"].event.event_type is TaskEventType.TASK_SUCCEEDED
