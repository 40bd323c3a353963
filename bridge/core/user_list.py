"""`<server>/users` rendered in steps, so the event loop runs between them (issue 25).

At 50,000 users the list costs 10-20 ms at once (120 ms with hashed ids): naming, sorting and
encoding each take longer than one step on the loop may (~1 ms). `user_list_steps` does the
same work in pieces of `STEP` names, yielding between pieces: sorted runs merged, JSON encoded
piece by piece. Its result is byte for byte `encode(users_payload(server, user_names(...)))`.
"""

from __future__ import annotations

import heapq
from collections.abc import Generator
from itertools import islice

import orjson

from bridge.core.payloads import encode, user_name, users_preview
from bridge.core.privacy import Privacy
from bridge.core.state import ServerState, UserKey

STEP = 4096
"""Names per step: naming, sorting a run or encoding 4,096 names takes well under 1 ms."""
MERGE_STEP = 1024
"""Names per step of the merge (a Python-level heap: about 0.4 µs a name)."""
HASH_STEP = 256
"""Names per step when they are hashed (`privacy.user_ids: hashed`: about 2.5 µs a name) and
not known from the last render."""

Names = dict[UserKey, str | None]
"""Treated names by user (hashed ids), kept from one render to the next."""


def user_list_steps(
    server: ServerState, privacy: Privacy, budget: int, known: Names
) -> Generator[None, None, tuple[bytes, Names]]:
    """Yields between steps; returns the payload of `<server>/users` as the server was at the
    first step, and the treated names to pass as `known` next time (empty with plain ids)."""
    keys = list(server.sessions)
    yield
    names: list[str] = []
    fresh: Names = {}
    if privacy.plain:
        for start in range(0, len(keys), STEP):
            names += [f"{d}\\{u}" if d else u for d, u in keys[start : start + STEP]]
            yield
    else:
        hashed = 0
        for key in keys:
            if key in known:
                name = known[key]
            else:
                name = user_name(*key, privacy)
                hashed += 1
            fresh[key] = name
            if name is not None:
                names.append(name)
            if len(fresh) % STEP == 0 or hashed == HASH_STEP:
                hashed = 0
                yield
    runs = []
    for start in range(0, len(names), STEP):
        runs.append(sorted(names[start : start + STEP]))
        yield
    merged = heapq.merge(*runs)
    ordered: list[str] = []
    while part := list(islice(merged, MERGE_STEP)):
        ordered += part
        yield
    del names, runs, merged  # `ordered` holds the names now: each piece frees its own below
    total = len(ordered)
    pieces: list[bytes] = []
    used = 2  # the list's []
    shown = 0
    while ordered:
        chunk = ordered[:STEP]
        del ordered[:STEP]  # freeing 50,000 names at once would be a step of its own (~2 ms)
        body = orjson.dumps(chunk)[1:-1]
        comma = 1 if pieces else 0
        if used + comma + len(body) > budget:
            fits = users_preview(chunk, budget - used - comma + 2)  # its own [] counted
            if fits:
                pieces.append(orjson.dumps(fits)[1:-1])
                shown += len(fits)
            break
        pieces.append(body)
        used += comma + len(body)
        shown += len(chunk)
        del chunk
        yield
    ordered.clear()  # what the budget left out, if anything
    yield
    head = encode({"server": server.host, "active_users": len(keys)})[:-1]
    parts = [head, b',"users":[']
    for number, piece in enumerate(pieces):
        parts += (b",", piece) if number else (piece,)
    parts += (b'],"users_left_out":', orjson.dumps(total - shown), b"}")
    return b"".join(parts), fresh  # one copy of the whole: each copy of 1 MB costs ~0.7 ms
