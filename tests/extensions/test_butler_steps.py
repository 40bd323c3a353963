"""Butler's active users are rendered in steps (issue 25) and stay Butler's bytes: the
usernames sorted, `json.dumps`' `", "` separators, non-ASCII as is, the count of distinct ids."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Generator
from typing import Any

import pytest

from bridge.config import Config
from bridge.core.events import SourceFormat, UserEvent, UserEventType
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import BridgeState, StateSettings, apply_event
from bridge.extensions.butler_compat import ButlerCompat
from bridge.extensions.butler_payloads import (
    STEP,
    Known,
    Message,
    active_user_messages,
    active_user_steps,
)
from tests.fakes import FakeLink, fake_context

BASE = "qliksense"


def butler_reference(state: BridgeState, privacy: Privacy) -> list[tuple[str, bytes]]:
    """What Butler compat published before the steps (one sort of every name, at once)."""
    ids = {user for server in state.servers.values() for _, user in server.sessions}
    treated = (privacy.user_id(user) for user in ids)
    names = sorted(name for name in treated if name is not None)
    return [
        (f"{BASE}/users/active/count", str(len(ids)).encode()),
        (f"{BASE}/users/active/usernames", json.dumps(names, ensure_ascii=False).encode()),
    ]


def login(
    state: BridgeState,
    server: str,
    user: str,
    directory: str = "CORP",
    kind: UserEventType = UserEventType.SESSION_START,
) -> None:
    event = UserEvent(
        event_type=kind,
        server=server,
        source_format=SourceFormat.XML,
        user_directory=directory,
        user_id=user,
    )
    apply_event(state, event, 1.0, StateSettings(None, 60.0, None, max_sessions_per_server=10**6))


def site(users: int) -> BridgeState:
    state = BridgeState()
    for number in range(users):
        login(state, "QS1", f"user{number * 7919 % 100_003:06d}")
        if number % 3 == 0:  # on two nodes, in another directory: one id, counted once
            login(state, "QS2", f"user{number * 7919 % 100_003:06d}", "OTHER")
    for name in ("Jöran", "émile", "Zoë", 'quote"d', "back\\slash", ""):
        login(state, "QS2", name)
    return state


@pytest.mark.parametrize("privacy", [PLAIN, Privacy("hashed", "salt"), Privacy("omitted")])
@pytest.mark.parametrize("users", [0, 10, 3 * STEP + 5])
def test_the_steps_give_butlers_bytes(privacy: Privacy, users: int) -> None:
    state = site(users)
    assert active_user_messages(state, BASE, privacy) == butler_reference(state, privacy)


def run(steps: Generator[None, None, tuple[list[Message], Known]]) -> tuple[int, Any]:
    """The number of steps, and what the steps returned."""
    count = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return count, done.value
        count += 1


HASHED: list[str] = []


class CountedHashing(Privacy):
    def user_id(self, user_id: str | None) -> str | None:
        HASHED.append(user_id or "")
        return super().user_id(user_id)


def test_no_step_takes_more_than_its_share_and_hashed_names_are_kept() -> None:
    state = site(3 * STEP)
    hashed = CountedHashing("hashed", "salt")
    count, (messages, known) = run(active_user_steps(state, BASE, hashed, {}))
    assert count > 3 * STEP / 256  # at most 256 names hashed per step
    assert messages == butler_reference(state, hashed)
    assert len(known) == 3 * STEP + 6
    login(state, "QS1", "newcomer")
    login(state, "QS2", "Jöran", kind=UserEventType.SESSION_STOP)
    HASHED.clear()
    _, (messages, known) = run(active_user_steps(state, BASE, hashed, known))
    assert HASHED == ["newcomer"]  # the known names are not hashed again
    assert messages == butler_reference(state, hashed)
    assert set(known) == {user for _, user in state.servers["qs1"].sessions} | {
        user for _, user in state.servers["qs2"].sessions
    }


async def test_the_loop_runs_while_the_users_render_and_the_last_change_is_published() -> None:
    state = site(3 * STEP)
    link = FakeLink()
    config = Config.model_validate({"butler_compat": {"enabled": True}})
    butler = ButlerCompat(fake_context(config=config, link=link, state=state))
    butler.on_connect()  # the render starts, as a task
    await asyncio.sleep(0)
    assert link.payloads(f"{BASE}/users/active/count") == []
    login(state, "QS1", "late")
    butler.on_connect()  # during the render: looked at again when it ends
    await butler.stop()
    counts = link.payloads(f"{BASE}/users/active/count")
    assert counts == [str(3 * STEP + 6).encode(), str(3 * STEP + 7).encode()]
    names = json.loads(link.payloads(f"{BASE}/users/active/usernames")[-1])
    assert "late" in names
    assert names == sorted(names)
