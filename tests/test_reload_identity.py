"""One identity per reload, end to end: the lines Butler's and qlik2mqtt's appenders send for
one failed reload, as UDP datagrams in every pairing and order, make one failing task on a real
mosquitto, and the task's success turns `reload_failure` off (bridge.core.reloads)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.bridge_runner import RunningBridge
from tests.helpers import Mosquitto, Subscriber, fixture_datagrams
from tests.reload_lines import SUCCESSES, Reload, engine, pairs, tagged, xml

SITE = "qlik2mqtt/site"
EVENTS = "qlik2mqtt/qsprod02/event/task"


def failed_tasks(count: int) -> Callable[[Any], bool]:
    return lambda payload: bool(payload["failed_tasks"] == count)


async def test_every_pair_of_formats_of_one_failed_reload_is_one_failure_until_it_succeeds(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    successes = list(SUCCESSES.items())
    failed_so_far = 0
    try:
        for number, (name, failures, published) in enumerate(pairs()):
            success_name, success = successes[number % len(successes)]
            case = f"{name}, then {success_name} success"
            reload = Reload(  # another task each time (a new server's events wait 1 s)
                host="QSPROD02",
                task_id=f"6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4e{number:02x}",
                app_id=f"9f1d2b20-7c1e-4a8b-b0d2-3e4f5a6b7c{number:02x}",
                name=f"Reload Sales {number}",
            )
            mark = sub.mark()
            for line in failures:
                bridge.tasks.send(line(reload, "failed"))
            failed_so_far += published
            # Every failure line handled: the site's counter counts each one published.
            site = await sub.wait_json(SITE, failed_tasks(failed_so_far), since=mark)
            assert (site["reload_failure"], site["failing_tasks"]) == ("ON", 1), case
            succeeded = sub.mark()
            bridge.tasks.send(success(reload, "succeeded"))
            await sub.wait_json(
                EVENTS, lambda p: p["event_type"] == "task_succeeded", since=mark
            )  # read in order from one port: every line before it was handled
            site = await sub.wait_json(SITE, lambda p: p["failing_tasks"] == 0, since=succeeded)
            assert site["reload_failure"] == "OFF", case
            kinds = [m.json()["event_type"] for m in sub.on(EVENTS, mark)]
            assert len(kinds) == published + 1, (case, kinds)  # each line once, none twice
    finally:
        await sub.stop()


async def test_one_reload_logged_on_two_nodes_is_one_failure_until_it_succeeds(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    """A site of several nodes: the scheduler's line from one, the engine's from the node
    that ran the reload (either first); the success, logged by the scheduler, clears both."""
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        for number, engine_first in enumerate((True, False)):
            central = Reload(
                host="QSCENTRAL",
                task_id=f"6e4c8b3a-21f0-4f5e-9d7a-0c1b2a3d4f{number:02x}",
                app_id=f"9f1d2b20-7c1e-4a8b-b0d2-3e4f5a6b7d{number:02x}",
                name=f"Reload Budget {number}",
            )
            rim = replace(central, host="QSRIM01")
            lines = [engine(rim, "failed"), tagged(central, "failed")]
            mark = sub.mark()
            for line in lines if engine_first else lines[::-1]:
                bridge.tasks.send(line)
            site = await sub.wait_json(SITE, failed_tasks(2 * (number + 1)), since=mark)
            assert (site["reload_failure"], site["failing_tasks"]) == ("ON", 1), engine_first
            succeeded = sub.mark()
            bridge.tasks.send(xml(central, "succeeded"))
            site = await sub.wait_json(SITE, lambda p: p["failing_tasks"] == 0, since=succeeded)
            assert site["reload_failure"] == "OFF"
    finally:
        await sub.stop()


async def test_the_captured_datagrams_of_one_failure_and_its_success_leave_the_flag_off(
    bridge: RunningBridge, mosquitto: Mosquitto
) -> None:
    """The bytes real log4net sent (tests/fixtures): one failure of `Reload Budget` in Butler's
    tagged layout and in qlik2mqtt's XML layout (one line, two layouts: one event), and the
    legacy line of `Reload Lön` naming the task alone (windows-1252). The successes, each in
    the other layout, clear both."""
    captured = [bytes.fromhex(d["hex"]) for d in fixture_datagrams() if d["port"] == 9998]
    budget_tagged, budget_xml, _aborted, lon_legacy, _cdata = captured
    budget = Reload(
        host="QSPROD02",
        task_id="11111111-0000-4000-8000-000000000001",
        app_id="22222222-0000-4000-8000-000000000002",
        name="Reload Budget <2025> & more",
        app_name='Budget "final"',
        execution="33333333-0000-4000-8000-000000000009",
    )
    lon = Reload(host="QSPROD02", task_id="44444444-0000-4000-8000-000000000004", name="Reload Lön")
    sub = await Subscriber(mosquitto.port).start("qlik2mqtt/#")
    try:
        for data in (budget_tagged, budget_xml, lon_legacy):
            bridge.tasks.send(data)
        site = await sub.wait_json(SITE, failed_tasks(2))
        assert (site["reload_failure"], site["failing_tasks"]) == ("ON", 2)
        mark = sub.mark()
        bridge.tasks.send(xml(budget, "succeeded"))
        bridge.tasks.send(tagged(lon, "succeeded"))
        events = await sub.wait_count(EVENTS, 4)  # budget once, Lön, the two successes
        site = await sub.wait_json(SITE, lambda p: p["failing_tasks"] == 0, since=mark)
    finally:
        await sub.stop()
    assert site["reload_failure"] == "OFF"
    assert [m.json()["event_type"] for m in events] == [
        "task_failed",
        "task_failed",
        "task_succeeded",
        "task_succeeded",
    ]
