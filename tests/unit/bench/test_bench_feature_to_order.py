"""The trader and its floor are measured alike: alternating rounds that give neither loop the first place or the
later minutes more often, and one stage breakdown read from either loop's trace."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.feature_to_order import LOOPS, Run, order_of_rounds, results
from bench.trace_stages import order_stages


@pytest.mark.parametrize("pairs", [2, 4, 8])
def test_each_loop_opens_as_many_pairs_and_sits_at_the_same_mean_position(pairs: int) -> None:
    order = order_of_rounds(pairs)
    assert len(order) == 2 * pairs and {order.count(name) for name in LOOPS} == {pairs}
    firsts = [order[2 * k] for k in range(pairs)]
    assert firsts.count("trader") == firsts.count("floor")
    positions = {name: [i for i, x in enumerate(order) if x == name] for name in LOOPS}
    assert sum(positions["trader"]) == sum(positions["floor"])


def test_an_orders_stages_add_up_from_the_trace_of_a_handed_off_commit(tmp_path: Path) -> None:
    ms = 1_000_000
    events = [  # (what, thread, start_ns, end_ns, detail), as bench/loop_trace.py writes them
        ("poll", 1, 0, 2 * ms, [["bench.r0.signals.features", 0, 0]]),
        ("consume", 1, 2 * ms, 2 * ms, [["bench.r0.fills", 0, 7]]),
        ("begin", 1, 3 * ms, 3 * ms, None),
        ("produce", 1, 3 * ms, 4 * ms, "bench.r0.orders"),
        ("offsets", 2, 5 * ms, 9 * ms, [["bench.r0.signals.features", 0, 1]]),
        ("bounded", 1, 4 * ms, 10 * ms, "registering the consumed offsets"),
        ("commit", 2, 11 * ms, 20 * ms, None),
        ("bounded", 1, 10 * ms, 21 * ms, "the commit"),
        ("gc", 1, 2 * ms, 3 * ms, 0),
    ]
    trace = tmp_path / "t.jsonl"
    trace.write_text("".join(json.dumps(e) + "\n" for e in events))
    sent, got = -1e-3, 25e-3  # seconds, on the loops' clock
    run = Run("trader", 0, [], 0.0, 0, sent={100: sent}, got={100: got}, trace=trace)
    (row,) = order_stages(run, [SimpleNamespace(ts=100)], "signals.features")
    assert row == pytest.approx({"round": 1.0, "offset": 0.0, "in": 3.0, "decide": 1.0, "produce": 1.0,
                                 "offsets": 4.0, "commit": 9.0, "handoff": 4.0, "visible": 4.0, "total": 26.0,
                                 "gc": 1.0, "queued": 0.0})
    stages = ("in", "decide", "produce", "offsets", "commit", "handoff", "visible")
    assert sum(row[s] for s in stages) == pytest.approx(row["total"])  # each moment of the order in one stage


def test_the_warm_up_round_is_not_counted_and_each_pair_has_its_ratio() -> None:
    def run(name: str, position: int, ms: float) -> Run:
        return Run(name, position, [ms] * 10, 1.0, 0)

    runs = [run("warm-up", 0, 1_000.0), run("trader", 1, 30.0), run("floor", 2, 20.0), run("floor", 3, 10.0),
            run("trader", 4, 15.0)]
    floor, trader, _rss = results(runs, 100, 10, 2)
    assert floor.value == pytest.approx(20.0) and trader.value == pytest.approx(30.0)
    assert trader.extra["pair1_ratio"] == pytest.approx(1.5) and trader.extra["pair2_ratio"] == pytest.approx(1.5)
    assert "round1_p99_ms" not in floor.extra and floor.extra["round4_p99_ms"] == pytest.approx(10.0)
