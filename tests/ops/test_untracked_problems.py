"""Events past a cap of `limits:` are a problem shown for ten minutes, never a failure."""

from __future__ import annotations

from pathlib import Path

from bridge.core.stats import Stats
from bridge.ops.health import PROBLEM_WINDOW, Facts, HealthWriter, RecentUntracked, check_health


def test_untracked_events_are_a_problem_for_ten_minutes_by_cap() -> None:
    stats = Stats()
    recent = RecentUntracked(since=0.0)
    assert recent.count(stats, 1.0) == {}
    stats.untracked["sessions"] += 3
    stats.untracked["tasks"] += 1
    assert recent.count(stats, 2.0) == {"sessions": 3, "tasks": 1}  # a report a second
    assert recent.count(stats, 300.0) == {"sessions": 3, "tasks": 1}
    stats.untracked["sessions"] += 1
    assert recent.count(stats, 400.0) == {"sessions": 4, "tasks": 1}
    assert recent.count(stats, 650.0) == {"sessions": 1}  # the first ones aged out
    assert recent.count(stats, 400.0 + PROBLEM_WINDOW + 1) == {}


def test_an_untracked_cap_is_named_in_the_problems_and_the_bridge_stays_healthy(
    tmp_path: Path,
) -> None:
    facts = Facts(
        mqtt_connected=True,
        udp_ports=[9997],
        udp_expected=1,
        untracked_lately={"sessions": 12, "servers": 1},
    )
    assert facts.failures() == []
    assert facts.problems() == [
        "limits.max_servers reached: 1 events of new servers published but not tracked in "
        "the last 10 minutes (see untracked_servers)",
        "limits.max_sessions_per_server reached: 12 events of new users published but not "
        "tracked in the last 10 minutes (see untracked_sessions)",
    ]
    writer = HealthWriter(tmp_path / "health.json")
    writer.write(facts, now=1000.0)
    healthy, reason = check_health(writer.path, now=1001.0)
    assert healthy
    assert "limits.max_sessions_per_server reached" in reason
