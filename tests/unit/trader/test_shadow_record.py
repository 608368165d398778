"""The shadow record from fills and bars, without Kafka: the books replayed as the trader keeps them."""

from __future__ import annotations

import math

import pytest

from contracts import V1, Fill
from trader.shadow import equities, shadow_record

SYM = "EDGE-USDT"


def _fill(ts: int, side: str, qty: float, price: float, fee: float = 0.0, policy: str = "p") -> Fill:
    return Fill(schema_version=V1, fill_id=f"f{ts}{side}", order_id=f"o{ts}", policy_id=policy, exchange="binance",
                symbol=SYM, side=side, price=price, qty=qty, fee=fee, slippage=0.0, ts=ts)  # type: ignore[arg-type]


BARS = [(60_000 * k, 100.0 + k) for k in range(1, 11)]  # the close rises by 1 a bar


def test_a_fill_counts_from_the_first_bar_that_ends_at_or_after_it_and_fees_cost_equity() -> None:
    eq = equities(BARS, [_fill(60_000 * 3 + 1, "buy", 10.0, 103.5, fee=1.0)], SYM, 1_000.0)
    assert eq[:3] == [1_000.0] * 3  # bars 1..3 end before the fill
    assert eq[3] == pytest.approx(1_000.0 - 1.0 + 10 * (104.0 - 103.5))  # bar 4: marked at its close
    assert eq[-1] == pytest.approx(eq[3] + 10 * 6)
    assert equities(BARS, [_fill(1, "buy", 1.0, 100.0)], "OTHER-USDT", 1_000.0) == [1_000.0] * 10  # another symbol


def test_the_record_covers_its_period_counts_decision_bars_and_compares_the_two_books() -> None:
    long = [_fill(60_000 * 2 + 1, "buy", 10.0, 102.0)]  # the challenger holds 10 from bar 3 on
    rec = shadow_record(BARS + BARS[:3], long, [], SYM, start_ts=60_000 * 4, end_ts=60_000 * 9, interval_s=60,
                        every=2, capital=1_000.0, policy_id="sh")  # the repeated bars are the same bars
    assert (rec.bars, rec.start_ts, rec.end_ts, rec.policy_id) == (6, 60_000 * 4, 60_000 * 9, "sh")
    assert rec.decisions == 3  # bars 4, 6, 8 of 4..9 are decision bars at every 2nd bar
    # the period's net log return: from the equity at bar 4 (close 104) to bar 9 (close 109)
    assert rec.challenger_log_return == pytest.approx(math.log((1_000 + 10 * 7) / (1_000 + 10 * 2)))
    assert rec.champion_log_return == 0.0 and rec.difference > 0
    empty = shadow_record(BARS, long, [], SYM, 60_000 * 50, 60_000 * 60, 60, 1, 1_000.0, "sh")
    assert (empty.decisions, empty.bars) == (0, 0)
