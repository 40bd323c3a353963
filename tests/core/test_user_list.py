"""`<server>/users` rendered in steps: the same bytes as the plain rendering, in many steps."""

from __future__ import annotations

from collections.abc import Generator

import orjson
import pytest

from bridge.core.payloads import encode, user_names, users_payload
from bridge.core.privacy import PLAIN, Privacy
from bridge.core.state import ServerState
from bridge.core.user_list import STEP, Names, user_list_steps


def run(steps: Generator[None, None, tuple[bytes, Names]]) -> tuple[bytes, Names, int]:
    """Drive the steps as the extension does; how many times they yielded."""
    yielded = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            payload, names = done.value
            return payload, names, yielded
        yielded += 1
        assert yielded < 10_000  # bounded


def server(count: int) -> ServerState:
    """`count` users in no sorted order, some without a directory, some beyond ASCII."""
    node = ServerState("QS1")
    for number in range(count):
        scrambled = number * 7919 % 100_003
        directory = "" if number % 10 == 0 else ("CORP", "LÄB")[number % 2]
        node.sessions[(directory, f'u{scrambled:06d}"é')] = 1.0
    return node


@pytest.mark.parametrize("privacy", [PLAIN, Privacy("hashed", "s"), Privacy("omitted")])
@pytest.mark.parametrize("budget", [2 * 1024 * 1024, 100_000, 50_000 + 7, 30, 1])
def test_the_steps_render_what_the_plain_function_does(privacy: Privacy, budget: int) -> None:
    node = server(3 * STEP + 5)  # several runs to merge, several pieces to encode
    expected = encode(users_payload(node, user_names(node, privacy), budget))
    payload, _, _ = run(user_list_steps(node, privacy, budget, {}))
    assert payload == expected
    listed = orjson.loads(payload)
    assert len(listed["users"]) + listed["users_left_out"] == (
        0 if privacy.mode == "omitted" else len(node.sessions)
    )


def test_a_big_list_is_rendered_in_many_steps() -> None:
    node = server(50_000)
    payload, _, yielded = run(user_list_steps(node, PLAIN, 2 * 1024 * 1024, {}))
    assert yielded >= 4 * (50_000 // STEP)  # named, sorted, merged and encoded in pieces
    assert orjson.loads(payload)["users"] == user_names(node)


def test_hashed_names_are_kept_for_the_next_render_and_only_for_current_users() -> None:
    node = server(10)
    hashed = Privacy("hashed", "s")
    _, names, _ = run(user_list_steps(node, hashed, 1024 * 1024, {}))
    assert set(names) == set(node.sessions)
    gone = next(iter(node.sessions))
    del node.sessions[gone]
    kept = {key: f"known-{number}" for number, key in enumerate(node.sessions)}
    payload, again, _ = run(user_list_steps(node, hashed, 1024 * 1024, {**kept, gone: "x"}))
    assert sorted(orjson.loads(payload)["users"]) == sorted(kept.values())  # not hashed again
    assert gone not in again
