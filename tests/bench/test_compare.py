"""The comparison's arithmetic and checks, on figures made here: ratios, statements, percentiles, replies."""
from __future__ import annotations

from collections import Counter

import pytest

from bench.compare_options import parse_args
from bench.compare_report import problems, ratios
from bench.compare_results import Point, TargetResult
from bench.reply_check import ReplyCheck
from bench.run_meters import Statements
from bench.server_probes import percentile


def point(connections: int, rate: float, p99: float) -> Point:
    return Point(connections, 10.0, int(rate * 10), int(rate * 10), rate,
                 {"p50": p99 / 2, "p90": p99 / 1.5, "p99": p99, "max": p99 * 2}, 0, {}, None, {}, None, None, {},
                 "8/8", [])


def target(name: str, *points: Point) -> TargetResult:
    return TargetResult(name, name, {}, list(points))


def test_ratios_compare_the_server_with_each_peer_at_each_concurrency():
    results = {
        "server": target("server", point(16, 800, 30), point(100, 900, 130)),
        "lean": target("lean", point(16, 1000, 20), point(100, 1000, 100)),
        "aiogram": target("aiogram", point(16, 400, 80), point(100, 500, 400)),
        "naive": target("naive", point(16, 200, 90), point(100, 150, 600)),
    }
    found = {ratio.label: ratio for ratio in ratios(results, (16, 100))}
    assert found["server/lean updates/s"].by_connections == {16: 0.8, 100: 0.9}
    assert found["server/lean updates/s"].met is True
    assert found["server/aiogram updates/s"].by_connections == {16: 2.0, 100: 1.8}
    assert found["server/aiogram updates/s"].met is False  # judged at the highest concurrency
    assert found["server/naive updates/s"].by_connections[100] == 6.0
    assert found["server/lean p99"].by_connections == {16: 1.5, 100: 1.3}
    assert found["server/lean p99"].met is True


def test_a_peer_that_did_not_run_leaves_its_ratio_unmeasured():
    results = {"server": target("server", point(100, 900, 130)), "lean": target("lean")}
    found = {ratio.label: ratio for ratio in ratios(results, (100,))}
    assert found["server/lean updates/s"].by_connections == {100: None}
    assert found["server/lean updates/s"].met is None
    assert found["server/naive updates/s"].met is None


def test_transaction_control_is_counted_apart_from_sql():
    before = Counter({"BEGIN": 10, "COMMIT": 10, "WITH claimed AS (INSERT ...) SELECT $1": 10})
    after = Counter({"BEGIN": 110, "COMMIT": 109, "ROLLBACK": 1, "WITH claimed AS (INSERT ...) SELECT $1": 110,
                     "SELECT $1": 3})
    spent = Statements.between(before, after)
    assert (spent.sql, spent.transaction_control) == (103, 200)
    assert spent.by_text["WITH claimed AS (INSERT ...) SELECT $1"] == 100


def test_percentile_is_nearest_rank():
    values = [float(n) for n in range(100, 0, -1)]  # 100..1, unsorted on purpose
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_replies_must_cover_every_acknowledged_update_once():
    assert ReplyCheck(acknowledged=100, replies=103, distinct=103).ok  # 3 in flight when wrk stopped
    assert not ReplyCheck(acknowledged=100, replies=99, distinct=99).ok  # an acknowledged update got no reply
    twice = ReplyCheck(acknowledged=100, replies=102, distinct=101)
    assert twice.duplicates == 1 and not twice.ok


def test_a_failed_check_or_target_fails_the_run_but_a_missed_target_does_not():
    slow = target("server", point(100, 10, 9000))
    assert problems([slow]) == []
    broken = target("lean", point(100, 1000, 100))
    broken.check_ok = False
    missing = TargetResult("aiogram", "aiogram", {}, error="did not start")
    assert problems([broken, missing]) == ["aiogram: did not run: did not start", "lean: correctness check failed"]


def test_options_sort_connections_and_keep_the_target_order():
    options = parse_args(["--connections", "100,16,40,16", "--targets", "server,bare"])
    assert options.connections == (16, 40, 100)
    assert options.targets == ("bare", "server")
    assert options.point(40).connections == 40 and options.point(40).threads == 8


@pytest.mark.parametrize("argv", [["--targets", "bare,flask"], ["--connections", "0"], ["--connections", "1",
                                                                                          "--wrk-threads", "2"]])
def test_options_refuse_what_cannot_run(argv):
    with pytest.raises(SystemExit):
        parse_args(argv)
