"""The cost of one retained-state step on the event loop at a big site (issue 25).

    .venv/bin/python -m bench.state_cost [--users 50000] [--rounds 20] [--source DIR] [--freeze]

One node holding `--users` sessions (names like `CORP\\user0123457`, logged in out of order).
Before each round one user logs in and one logs out (the set of users changed, as in a churn:
nothing rendered before is still current), then each step the state extension runs on the loop
is timed alone, as a pure function of the state: the server's state payload built and encoded
(every `mqtt.state_interval` while the node changes), the site's, and — where the checkout has
it — `<server>/users` (at most every `state.users_interval`): at once, and in the steps the
extension takes (`user_list_steps`; the longest of them). Plain and hashed user ids.
Then the other steps issue 25 names: the state file's snapshot (at once where the checkout
takes it at once; else the step that takes it, the longest step that encodes it, and all its
steps), Home Assistant discovery (one server's configs built and encoded; a reconnect's, the
bridge's and 20 servers', as the extension gets them: kept encoded where the checkout keeps
them), and Butler compat's active users (at once, or its longest step and all its steps,
hashed names kept from one round to the next as the extension keeps them).
Reports the median and the largest of the rounds in milliseconds of wall time (one thread).
`--source DIR` measures another checkout's functions
(`mkdir -p DIR && git archive <commit> | tar -x -C DIR`).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT


def timed(step: Callable[[], object]) -> float:
    began = time.perf_counter()
    step()
    return (time.perf_counter() - began) * 1000


def stepped_render() -> Callable[[Any, Any], tuple[float, float]] | None:
    """Times each step of `user_list_steps`, where the checkout has it: (longest, total) ms.
    Hashed names are not kept from one round to the next: every name is hashed again."""
    try:
        from bridge.core.user_list import user_list_steps
    except ImportError:
        return None

    def run(server: Any, privacy: Any) -> tuple[float, float]:
        steps = user_list_steps(server, privacy, 2 * 1024 * 1024, {})
        times = []
        while True:
            began = time.perf_counter()
            try:
                next(steps)
            except StopIteration:
                times.append((time.perf_counter() - began) * 1000)
                return max(times), sum(times)
            times.append((time.perf_counter() - began) * 1000)

    return run


def stepped(steps: Any) -> tuple[float, float, Any]:
    """Runs a generator of steps to its end: (longest step, all steps) in ms, and its value."""
    times = []
    while True:
        began = time.perf_counter()
        try:
            next(steps)
        except StopIteration as done:
            times.append((time.perf_counter() - began) * 1000)
            return max(times), sum(times), done.value
        times.append((time.perf_counter() - began) * 1000)


def state_file_steps(state: Any) -> dict[str, float]:
    """The state file's snapshot as this checkout takes it on the loop."""
    from bridge.core import persistence

    if not hasattr(persistence, "encode_steps"):
        return {"state file snapshot, at once": timed(lambda: persistence.snapshot(state))}
    began = time.perf_counter()
    taken = persistence.take(state)
    took = (time.perf_counter() - began) * 1000
    longest, total, _ = stepped(persistence.encode_steps(taken))
    return {
        "state file: the moment taken (one step)": took,
        "state file: longest encoding step": longest,
        "state file: all steps": took + total,
    }


def discovery_steps() -> dict[str, float]:
    """One server's configs as first published; a reconnect's (the bridge and 20 servers)."""
    import discovery

    settings = discovery.DiscoverySettings(
        prefix="homeassistant", base_topic="qlik2mqtt", version="bench", support_url="x"
    )

    def encode(messages: Any) -> list[bytes]:  # as the extension encodes them
        return [json.dumps(p, ensure_ascii=False).encode() if p else b"" for _, p in messages]

    if hasattr(discovery, "encoded_server_configs"):
        discovery.encoded_server_configs.cache_clear()
        first = timed(lambda: discovery.encoded_server_configs(settings, "qsnew", "QSNEW"))

        def reconnect() -> None:
            discovery.encoded_bridge_configs(settings)
            for number in range(20):
                discovery.encoded_server_configs(settings, f"qs{number}", f"QS{number}")

        reconnect()  # the servers were announced before the reconnect
    else:
        first = timed(lambda: encode(discovery.server_configs(settings, "qsnew", "QSNEW")))

        def reconnect() -> None:
            encode(discovery.bridge_configs(settings))
            for number in range(20):
                encode(discovery.server_configs(settings, f"qs{number}", f"QS{number}"))

    return {
        "discovery: a new server": first,
        "discovery: reconnect, bridge and 20 servers": timed(reconnect),
    }


def butler_steps(state: Any, privacy: Any, known: dict[str, Any]) -> dict[str, float]:
    """Butler compat's active users as this checkout renders them on the loop."""
    from bridge.extensions import butler_payloads as butler

    mode = privacy.mode
    if not hasattr(butler, "active_user_steps"):
        return {
            f"butler users, at once ({mode})": timed(
                lambda: butler.active_user_messages(state, "qliksense", privacy)
            )
        }
    steps = butler.active_user_steps(state, "qliksense", privacy, known.get(mode, {}))
    longest, total, (_, known[mode]) = stepped(steps)
    return {f"butler users, longest step ({mode})": longest, f"butler users, all ({mode})": total}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--source", type=Path, default=ROOT)
    parser.add_argument(
        "--freeze", action="store_true", help="gc.freeze() the held sessions, as at a start"
    )
    args = parser.parse_args()
    if not 1 <= args.users <= 500_000 or not 1 <= args.rounds <= 1000:
        raise SystemExit("users 1-500000, rounds 1-1000")
    sys.path.insert(0, str(args.source.resolve()))  # before the first import of `bridge`
    from bridge.core import payloads
    from bridge.core.events import SourceFormat, UserEvent, UserEventType
    from bridge.core.privacy import PLAIN, Privacy
    from bridge.core.state import BridgeState, StateSettings, apply_event

    stepped = stepped_render()
    settings = StateSettings(None, 60.0, None, max_sessions_per_server=1_000_000)
    state = BridgeState()

    def session(kind: UserEventType, number: int) -> None:
        event = UserEvent(
            event_type=kind,
            server="QSBIG",
            source_format=SourceFormat.XML,
            user_directory="CORP",
            user_id=f"user{number * 7919 % 1_000_003:07d}",  # not in sorted order
        )
        apply_event(state, event, 1.0, settings)

    for number in range(args.users):
        session(UserEventType.SESSION_START, number)
    server = state.servers["qsbig"]
    if args.freeze:  # as the bridge does once it loaded its state (`gc.freeze`)
        gc.collect()
        gc.freeze()
    steps: dict[str, list[float]] = {}
    butler_known: dict[str, Any] = {}
    for privacy in (PLAIN, Privacy("hashed", "salt")):
        mode = privacy.mode
        for round_number in range(args.rounds):
            session(UserEventType.SESSION_START, args.users + round_number)
            session(UserEventType.SESSION_STOP, round_number)

            def server_state(p: Any = privacy) -> bytes:
                return bytes(payloads.encode(payloads.server_payload(server, p)))

            def site(p: Any = privacy) -> bytes:
                return bytes(payloads.encode(payloads.site_payload(state, p)))

            steps.setdefault(f"server state ({mode})", []).append(timed(server_state))
            steps.setdefault(f"site ({mode})", []).append(timed(site))
            if hasattr(payloads, "users_payload"):

                def user_list(p: Any = privacy) -> bytes:
                    names = payloads.user_names(server, p)
                    return bytes(payloads.encode(payloads.users_payload(server, names)))

                steps.setdefault(f"user list ({mode})", []).append(timed(user_list))
            if stepped is not None:  # the list as the extension renders it: its longest step
                longest, total = stepped(server, privacy)
                steps.setdefault(f"user list, longest step ({mode})", []).append(longest)
                steps.setdefault(f"user list, all steps ({mode})", []).append(total)
            for name, ms in butler_steps(state, privacy, butler_known).items():
                steps.setdefault(name, []).append(ms)
            if mode == "plain":
                for name, ms in (state_file_steps(state) | discovery_steps()).items():
                    steps.setdefault(name, []).append(ms)
    sizes = {
        "server state bytes": len(payloads.encode(payloads.server_payload(server))),
        "site bytes": len(payloads.encode(payloads.site_payload(state))),
    }
    result = {
        "source": str(args.source),
        "users": len(server.sessions),
        "ms": {
            name: {
                "median": round(statistics.median(times), 2),
                "max": round(max(times), 2),
            }
            for name, times in steps.items()
        },
        **sizes,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
