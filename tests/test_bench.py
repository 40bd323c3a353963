"""The benchmarks still run and still count right: tiny loads, no timing asserted (timing
targets live in the benchmark's own output, docs/performance.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT


def run_bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def bench(*args: str, timeout: float = 180) -> str:
    result = run_bench(*args, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def refused(*args: str) -> str:
    """What a benchmark says on stderr when it refuses its arguments (it must)."""
    result = run_bench(*args, timeout=60)
    assert result.returncode != 0
    return result.stderr


def test_the_full_benchmark_loses_nothing_at_a_low_rate(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    bench(
        "bench.run",
        "--rates",
        "500",
        "--seconds",
        "0.5",
        "--targets",
        "bridge,tuned",
        "--json",
        str(out),
    )
    report = json.loads(out.read_text())
    rows = {row["target"]: row for row in report["results"]}
    assert set(rows) == {"bridge", "tuned"}
    for row in rows.values():
        assert row["offered"] == 250
        assert row["delivered"] == 250
        assert row["lost"] == 0
        assert row["latency_ms_p50"] is not None
        assert row["peak_rss_mb"] > 0
    assert rows["bridge"]["state_publishes_per_s"] > 0


def test_held_sessions_are_logged_in_first_and_not_counted(tmp_path: Path) -> None:
    out = tmp_path / "held.json"
    bench("bench.run", "--rates", "400", "--seconds", "0.5", "--targets", "bridge,tuned",
          "--held", "3000", "--held-rate", "3000", "--settle", "0.5", "--max-sessions", "8000",
          "--json", str(out))  # fmt: skip
    report = json.loads(out.read_text())
    assert (report["held"], report["max_sessions"]) == (3000, 8000)
    rows = {row["target"]: row for row in report["results"]}
    for row in rows.values():
        assert (row["offered"], row["delivered"], row["lost"]) == (200, 200, 0)
    assert (rows["bridge"]["held"], rows["bridge"]["settle_s"]) == (3000, 0.5)
    assert "held" not in rows["tuned"]  # a forwarder holds nothing


def test_held_sessions_need_room_under_the_limit() -> None:
    assert "--max-sessions" in refused("bench.run", "--held", "99000", "--targets", "bridge")


def test_the_log_event_load_loses_nothing_at_a_low_rate(tmp_path: Path) -> None:
    out = tmp_path / "logs.json"
    bench("bench.run", "--load", "log_events", "--rates", "400", "--seconds", "0.5",
          "--json", str(out))  # fmt: skip
    report = json.loads(out.read_text())
    assert report["load"] == "log_events"
    (row,) = report["results"]
    assert (row["target"], row["offered"], row["delivered"], row["lost"]) == ("bridge", 200, 200, 0)
    assert row["latency_ms_p50"] is not None
    assert row["state_publishes_per_s"] > 0


def test_the_log_event_load_refuses_the_yardsticks() -> None:
    assert "the bridge only" in refused("bench.run", "--load", "log_events", "--targets", "tuned")


def test_the_hot_path_benchmark_accounts_for_every_event() -> None:
    lines = bench("bench.hotpath", "--events", "2000", "--rounds", "1").splitlines()
    rounds = [json.loads(line) for line in lines if line.startswith("{")]
    assert rounds[0]["events"] == 2000
    assert rounds[0]["cpu_us_per_event"] > 0
    assert "best_cpu_us_per_event" in rounds[-1]


def test_the_hot_path_benchmark_hands_over_the_log_event_mix() -> None:
    """`--load log_events`: every one of bench.run's log events published (the round asserts
    the count), none refused."""
    lines = bench(
        "bench.hotpath", "--load", "log_events", "--events", "2000", "--rounds", "1"
    ).splitlines()
    rounds = [json.loads(line) for line in lines if line.startswith("{")]
    assert rounds[0]["events"] == 2000
    assert rounds[0]["cpu_us_per_event"] > 0


def test_the_scale_benchmark_counts_the_storm_and_the_restart() -> None:
    report = json.loads(
        bench("bench.scale", "--sessions", "600", "--servers", "3", "--storm", "300")
    )
    assert report["sessions"] == 600
    assert report["sessions_saved"] == 600
    assert report["servers"] == 3
    assert 1 <= report["storm_server_state_publishes"] <= 50
    assert report["restart_to_online_s"] > 0


def test_the_context_benchmark_counts_qrs_requests_and_latencies(tmp_path: Path) -> None:
    """bench/context.py at a tiny load: one fetch per task however many failures, the event
    never waits for QRS, Slack waits for the context (five answers of 0.3 s each: within
    context_wait) and shows it."""
    out = tmp_path / "context.json"
    bench("bench.context", "--failures", "40", "--tasks", "4", "--slow", "0.3", "--json", str(out))
    report = json.loads(out.read_text())
    storm = report["storm"]
    assert storm["contexts"] == {"complete": 4, "folded": 36}
    assert storm["qrs_requests"] == 4 * 4 + 1  # each task, the app once, execution and log (2)
    assert report["slow_qrs"]["slack_card_has_owner"] is True
    assert report["fast_qrs"]["slack_note"] == "Script log: the last lines"


def test_the_big_site_benchmark_counts_bytes_per_topic_class() -> None:
    report = json.loads(
        bench(  # as bench.run's big-site load (bench.bigsite's own options after it)
            "bench.run",
            *("--load", "bigsite", "--users", "300", "--rate", "50", "--seconds", "1"),
            *("--quiet", "0"),
        )
    )
    classes = report["per_class"]
    assert 90 <= classes["events"]["messages_per_s"] <= 110  # 50 logins + 50 logouts a second
    assert 0 < classes["server state"]["largest_bytes"] <= 16 * 1024
    assert report["retained_bytes_per_s"] >= report["retained_bytes_per_s_without_list"] > 0
    assert report["churn_events_delivered"] == report["churn_events"] == 100
    assert 0 < report["latency_ms_p50"] <= report["latency_ms_p99"]


def test_the_state_cost_benchmark_times_every_step() -> None:
    report = json.loads(bench("bench.state_cost", "--users", "2000", "--rounds", "2"))
    assert report["users"] == 2000
    assert {
        "server state (plain)",
        "user list, longest step (hashed)",
        "state file: longest encoding step",
        "discovery: reconnect, bridge and 20 servers",
        "butler users, longest step (hashed)",
    } <= set(report["ms"])
    assert report["server state bytes"] <= 16 * 1024
