"""Retained state that does not grow with the site (issue 25): at 50,000 users the server and
site payloads stay under 16 KiB; every name is on `<server>/users`, capped, the rest counted."""

from __future__ import annotations

import orjson
import pytest

from bridge.core.events import SourceFormat, TaskEvent, TaskEventType, UserEvent, UserEventType
from bridge.core.payloads import (
    ATTRIBUTE_USERS_BYTES,
    encode,
    server_payload,
    session_preview,
    site_payload,
    user_name,
    user_names,
    users_payload,
)
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState, StateSettings, apply_event

SETTINGS = StateSettings(None, 60.0, None)
USERS = 50_000
RETAINED_MAX = 16 * 1024


def start(state: BridgeState, host: str, directory: str, who: str, now: float = 1.0) -> None:
    event = UserEvent(
        event_type=UserEventType.SESSION_START,
        server=host,
        source_format=SourceFormat.XML,
        user_directory=directory,
        user_id=who,
    )
    apply_event(state, event, now, SETTINGS)


def stop(state: BridgeState, host: str, directory: str, who: str) -> None:
    event = UserEvent(
        event_type=UserEventType.SESSION_STOP,
        server=host,
        source_format=SourceFormat.XML,
        user_directory=directory,
        user_id=who,
    )
    apply_event(state, event, 2.0, SETTINGS)


@pytest.fixture(scope="module")
def big_site() -> BridgeState:
    """50,000 users on one node (names of 20-40 characters, some beyond ASCII), 500 on a
    second, and a failed reload with a long message on the first."""
    state = BridgeState()
    for number in range(USERS):
        start(state, "QSPROD01", "CORP", f"user{number:05}-" + "é" * (number % 20))
    for number in range(500):
        start(state, "QSPROD02", "LAB", f"other{number:03}")
    failure = TaskEvent(
        event_type=TaskEventType.TASK_FAILED,
        server="QSPROD01",
        source_format=SourceFormat.XML,
        task_name="Reload Sales",
        message="Max retries reached " * 100,
    )
    apply_event(state, failure, 3.0, SETTINGS)
    return state


@pytest.mark.parametrize("privacy", [PLAIN, Privacy("hashed", "s"), Privacy("omitted")])
def test_no_state_payload_exceeds_16_kib_at_50000_users(
    big_site: BridgeState, privacy: Privacy
) -> None:
    server = big_site.servers["qsprod01"]
    assert len(server.sessions) == USERS
    payload = server_payload(server, privacy)
    assert len(encode(payload)) <= RETAINED_MAX
    assert payload["active_users"] == USERS
    assert "users" not in payload
    if privacy.mode != "omitted":
        assert payload["users_truncated"] is True
        assert 100 < len(payload["users_preview"]) < USERS
        assert len(orjson.dumps(payload["users_preview"])) <= ATTRIBUTE_USERS_BYTES
    site = site_payload(big_site, privacy)
    assert len(encode(site)) <= RETAINED_MAX
    assert site["active_users"] == USERS + 500


def test_the_list_topic_carries_every_name_up_to_its_cap(big_site: BridgeState) -> None:
    server = big_site.servers["qsprod01"]
    names = user_names(server)
    full = users_payload(server, names)
    assert full["users"] == names
    assert (full["active_users"], full["users_left_out"]) == (USERS, 0)
    size = len(encode(full))
    assert 1_000_000 < size < 2 * 1024 * 1024  # 1.9 MB: long names, `é` two bytes each
    capped = users_payload(server, names, budget=100_000)
    assert len(orjson.dumps(capped["users"])) <= 100_000
    assert capped["users"] == names[: len(capped["users"])]  # the first ones, sorted
    assert capped["users_left_out"] == USERS - len(capped["users"]) > 0


def test_the_preview_holds_the_longest_sessions_and_stays_through_a_storm() -> None:
    """The preview is made from the users holding their session the longest: logins and
    logouts of others do not change it (Home Assistant's attributes stay the same)."""
    state = BridgeState()
    for number in range(2_000):
        start(state, "QS1", "CORP", f"held{number:04}")
    server = state.servers["qs1"]
    before, truncated = session_preview(server)
    assert truncated
    assert before == sorted(f"CORP\\held{number:04}" for number in range(len(before)))
    for number in range(1_000):  # a storm of others
        start(state, "QS1", "CORP", f"new{number:04}")
        stop(state, "QS1", "CORP", f"new{number:04}")
        start(state, "QS1", "LAB", f"stays{number:04}")
    assert session_preview(server) == (before, True)
    stop(state, "QS1", "CORP", "held0000")  # one of those shown leaves: the next one is shown
    after, _ = session_preview(server)
    assert "CORP\\held0000" not in after
    assert after[:-1] == before[1:]
    assert after[-1] not in before


def test_a_small_server_shows_every_user_sorted() -> None:
    state = BridgeState()
    for who in ("zoe", "anna", "bob"):
        start(state, "QS1", "CORP", who)
    payload = server_payload(state.servers["qs1"])
    assert payload["users_preview"] == ["CORP\\anna", "CORP\\bob", "CORP\\zoe"]
    assert payload["users_truncated"] is False


def test_the_preview_uses_names_already_hashed() -> None:
    state = BridgeState()
    for who in ("anna", "bob"):
        start(state, "QS1", "CORP", who)
    server = state.servers["qs1"]
    hashed = Privacy("hashed", "s")
    bob = user_name("CORP", "bob", hashed)
    assert bob is not None
    assert bob.startswith("CORP\\user-")
    known: dict[tuple[str, str], str | None] = {("CORP", "anna"): "CORP\\user-known"}
    assert session_preview(server, hashed, known=known) == (
        sorted(["CORP\\user-known", bob]),
        False,
    )
