"""The Home Assistant scale mode's load and verdict (bench/ha_scale.py; the run itself needs a
real Home Assistant: scripts/check-home-assistant --scale)."""

from __future__ import annotations

from random import Random
from typing import Any

from bench.ha_scale import Node, changes, table, verdict


def test_churn_keeps_the_level_and_logs_out_the_longest_held() -> None:
    node = Node()
    logins = node.logins(3)
    assert logins == [
        b"/proxy-session/;QSBIG;Start session;BIG;user000000;o;ctx;x",
        b"/proxy-session/;QSBIG;Start session;BIG;user000001;o;ctx;x",
        b"/proxy-session/;QSBIG;Start session;BIG;user000002;o;ctx;x",
    ]
    churn = node.churn(4)
    assert len(churn) == 8
    # A new user in, the longest held out, in turn; the fourth logout is the first churned in.
    assert churn[0].endswith(b";Start session;BIG;user000003;o;ctx;x")
    assert churn[1].endswith(b";Stop session;BIG;user000000;o;ctx;x")
    assert churn[7].endswith(b";Stop session;BIG;user000003;o;ctx;x")
    assert list(node.held) == [4, 5, 6]
    assert node.logins(2)[0].endswith(b"user000007;o;ctx;x")


def level(users: int, ha: float) -> dict[str, Any]:
    return {
        "users": users,
        "ha_caught_up_s": 2.5,
        "ha_idle_after_s": 30.0,
        "churn_cpu": {"ha": ha, "bridge": 2.0},
        "tail_cpu": {"ha": 0.5, "bridge": 0.1},
        "idle_cpu": {"ha": 0.3, "bridge": 0.1},
        "published": {"server state": {"messages_per_s": 4.0, "largest_bytes": 9000}},
        "recorded": {"rows_per_s": 120.0, "attribute_rows": 10, "largest_attributes": 8500},
    }


def test_verdict_compares_the_largest_level_with_the_smallest() -> None:
    holds, said = verdict([level(200, 20.0), level(5000, 90.0), level(30000, 30.0)], 1.5)
    assert holds
    assert said == "HA's CPU at 30,000 users 30.0 % against 20.0 % at 200: 1.50x, within 1.5x"
    holds, said = verdict([level(200, 17.0), level(30000, 108.0)], 1.5)
    assert not holds
    assert said.endswith("6.35x, NOT within 1.5x")


def test_table_has_a_row_per_level() -> None:
    rows = table([level(200, 17.0), level(30000, 25.5)]).splitlines()
    assert len(rows) == 4
    assert rows[3].startswith("| 30,000 | 25.5 % | 0.5 % | 0.3 % | 2.0 % | 4.0, 9,000 B | 0 |")
    assert rows[3].endswith("| 10 (8,500 B) | 32 s |")


def test_random_logouts_are_of_held_users_and_keep_the_level() -> None:
    node = Node(Random(25))
    node.logins(100)
    churn = node.churn(300)
    out = [int(entry.split(b";")[4][4:]) for entry in churn[1::2]]
    assert len(set(out)) == 300  # each held user logs out once
    assert out != sorted(out)  # not the longest held first
    assert len(node.held) == 100
    assert set(node.held).isdisjoint(out)
    assert set(out) | set(node.held) == set(range(400))


def test_user_ids_are_padded_to_the_length_asked() -> None:
    node = Node(name_length=20)
    assert node.logins(1) == [
        b"/proxy-session/;QSBIG;Start session;BIG;user000000xxxxxxxxxx;o;ctx;x"
    ]


def test_changes_lists_each_levels_entities() -> None:
    first = level(200, 20.0)
    first["recorded"]["entities"] = {
        "event.qlik_sense_qsbig_user_activity": {
            "state_rows": 6000,
            "attribute_rows": 6000,
            "attribute_bytes": 1635000,
        }
    }
    assert changes([first]).splitlines() == [
        "",
        "200 users: state rows, new attribute rows (bytes)",
        "  event.qlik_sense_qsbig_user_activity: 6000, 6000 (1,635,000 B)",
    ]
