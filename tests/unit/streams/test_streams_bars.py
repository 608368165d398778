"""Event-time bars: grace, late trades, out-of-order trades, state that survives a restart."""

from __future__ import annotations

import math
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.bars import ClosedBar, KeyBars

T0 = 1_723_161_240_000  # a minute boundary


def feed(kb: KeyBars, trades: list[tuple[int, float, float, bool]]) -> list[ClosedBar]:
    out: list[ClosedBar] = []
    for i, (ts, p, s, buy) in enumerate(trades):
        kb.add(ts, p, s, buy, 0, i, out)
    return out


def test_a_bar_closes_when_the_watermark_passes_its_end_plus_grace() -> None:
    kb = KeyBars((60,), grace_ms=2000)
    assert feed(kb, [(T0 + 1000, 100.0, 1.0, True), (T0 + 59_999, 101.0, 2.0, False)]) == []
    assert feed(kb, [(T0 + 61_999, 102.0, 1.0, True)]) == []  # end + grace not reached yet
    closed = feed(kb, [(T0 + 62_000, 103.0, 1.0, True)])
    assert [(b.window_start, b.open, b.close, b.volume, b.trades) for b in closed] == [(T0, 100.0, 101.0, 3.0, 2)]
    assert closed[0].vwap == (100.0 + 202.0) / 3 and closed[0].buy_volume == 1.0 and closed[0].sell_volume == 2.0


def test_out_of_order_trades_within_grace_count_and_later_ones_are_dropped_and_counted() -> None:
    kb = KeyBars((60,), grace_ms=2000)
    feed(kb, [(T0 + 10_000, 100.0, 1.0, True), (T0 + 61_000, 105.0, 1.0, True)])
    # 1.5 s behind the newest trade, in the previous window: within grace, it counts (and is the close)
    feed(kb, [(T0 + 59_500, 99.0, 1.0, False)])
    assert kb.late == [0]
    closed = feed(kb, [(T0 + 62_500, 106.0, 1.0, True)])
    assert [(b.open, b.close, b.low, b.trades, b.sell_volume) for b in closed] == [(100.0, 99.0, 99.0, 2, 1.0)]
    # the window [T0, T0+60s) is closed now: a trade for it is late, dropped and counted
    _, dropped = kb.add(T0 + 59_900, 1.0, 1.0, True, 0, 99)
    assert dropped == 1 and kb.late == [1]
    assert kb.open[0][T0 + 60_000].n == 2
    later = feed(kb, [(T0 + 200_000, 107.0, 1.0, True)])
    assert [b.trades for b in later] == [2]  # the dropped trade never reached a bar


def test_an_interval_without_trades_produces_no_bar() -> None:
    kb = KeyBars((60,), grace_ms=2000)
    closed = feed(kb, [(T0, 1.0, 1.0, True), (T0 + 300_000, 2.0, 1.0, True), (T0 + 400_000, 3.0, 1.0, True)])
    assert [b.window_start for b in closed] == [T0, T0 + 300_000]


def test_the_wall_clock_closes_a_quiet_symbols_bar() -> None:
    kb = KeyBars((1, 60), grace_ms=2000)
    feed(kb, [(T0 + 500, 1.0, 1.0, True)])
    assert kb.next_close_at() == T0 + 1000
    assert [b.interval_s for b in kb.advance(T0 + 1000)] == [1]
    assert kb.add(T0 + 900, 1.0, 1.0, True)[1] == 1  # its 1 s window closed on the wall clock: late there


def reference(trades: list[tuple[int, float, float, bool]], interval_ms: int) -> dict[int, tuple]:
    windows: dict[int, list] = defaultdict(list)
    for i, t in enumerate(trades):
        windows[t[0] - t[0] % interval_ms].append((t[0], i, *t[1:]))
    out = {}
    for start, ts in windows.items():
        ts.sort()
        v = sum(x[3] for x in ts)
        out[start] = (ts[0][2], max(x[2] for x in ts), min(x[2] for x in ts), ts[-1][2], v,
                      sum(x[2] * x[3] for x in ts) / v, len(ts), sum(x[3] for x in ts if x[4]))
    return out


trade_lists = st.lists(st.tuples(st.integers(0, 600_000), st.floats(1, 1e5), st.floats(1e-6, 10), st.booleans()),
                       min_size=1, max_size=200).map(lambda xs: sorted(xs, key=lambda x: x[0]))


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.integers(0, 200))
def test_in_order_trades_give_groupby_bars_and_a_restored_state_changes_nothing(trades: list, cut: int) -> None:
    trades = [(T0 + t, p, s, b) for t, p, s, b in trades] + [(T0 + 10**7, 1.0, 1.0, True)]
    straight = feed(KeyBars((1, 60, 300), 2000), trades)
    kb = KeyBars((1, 60, 300), 2000)
    first = feed(kb, trades[:cut])
    restored = KeyBars.from_builtins(kb.to_builtins())
    rest: list[ClosedBar] = []
    for i, (ts, p, s, buy) in enumerate(trades[cut:], start=min(cut, len(trades))):
        restored.add(ts, p, s, buy, 0, i, rest)
    assert first + rest == straight
    for interval in (1, 60, 300):
        want = reference(trades[:-1], interval * 1000)
        got = {b.window_start: b for b in straight if b.interval_s == interval}
        assert set(got) == set(want)
        for start, w in want.items():
            b = got[start]
            g = (b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trades, b.buy_volume)
            assert all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(g, w, strict=True))


@settings(max_examples=60, deadline=None)
@given(trade_lists, st.randoms(use_true_random=False))
def test_shuffling_within_grace_changes_no_bar(trades: list, rnd: object) -> None:
    """Trades reordered by less than the grace period give the same bars (up to summation order)."""
    trades = [(T0 + t, p, s, b) for t, p, s, b in trades]
    jittered = sorted(trades, key=lambda t: t[0] + rnd.uniform(0, 1999))  # type: ignore[attr-defined]
    end = [(T0 + 10**7, 1.0, 1.0, True)]
    a = feed(KeyBars((60,), 2000), trades + end)
    b = feed(KeyBars((60,), 2000), jittered + end)
    assert [(x.window_start, x.high, x.low, x.trades) for x in a] == [(x.window_start, x.high, x.low, x.trades)
                                                                      for x in b]
    for x, y in zip(a, b, strict=True):
        assert math.isclose(x.volume, y.volume, rel_tol=1e-9) and math.isclose(x.vwap, y.vwap, rel_tol=1e-9)
