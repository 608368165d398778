"""A trader rebuilt from its own orders holds the very floats the uninterrupted trader held: after a restart
(or an in-process recovery) it orders exactly the same quantities, to the last bit.

The three-node chain test found it: the uninterrupted trader set the intended position to the target
itself while the rebuild summed the orders' quantities, so a closing order after a recovery differed in
its last digit (0.009458667232168852 against ...854)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import Order
from tests.unit.trader.trader_support import NAMES, feature
from trader.handler import PolicyTrader
from trader.policy.bundle import GOLDEN_CASES, Bundle, write
from trader.policy.runtime import Layer

MIN = 60_000
T0 = 1_750_000_000_000 - 1_750_000_000_000 % MIN


def _long_short(out: Path) -> Bundle:
    """Short below -0.5, flat between, long above 0.5 of the first feature."""
    n = len(NAMES)
    weight = np.zeros((3, n + 1), np.float32)
    weight[0, 0], weight[2, 0] = -1.0, 1.0
    layers = [Layer(weight, np.array([0.0, 0.5, 0.0], np.float32), "identity")]
    manifest = {"algo": "linear", "mode": "long_short", "action_map": [-1.0, 0.0, 1.0], "feature_schema": "v1",
                "feature_names": list(NAMES), "decision_every": 1, "interval_s": 60,
                "costs": {"fee_bps": 5.0, "slippage_bps": 1.0, "impact_bps_per_10k": 0.0}}
    golden = [([(-1.0) ** k * (k + 1)] + [0.0] * (n - 1), float(k % 3 - 1)) for k in range(GOLDEN_CASES)]
    return write(out, layers, np.zeros(n), np.ones(n), manifest, golden)


BUNDLE: list[Bundle] = []


def _trader(tmp: Path) -> PolicyTrader:
    if not BUNDLE:
        BUNDLE.append(_long_short(tmp / "ls"))
    return PolicyTrader(BUNDLE[0], "p1", notional=1_000.0, capital=10_000.0)


@settings(max_examples=60, deadline=None)
@given(bars=st.lists(st.tuples(st.sampled_from([-1.0, 0.0, 1.0]), st.floats(50.0, 150.0)), min_size=4,
                     max_size=40),
       cut=st.integers(1, 39))
def test_a_trader_rebuilt_from_its_orders_orders_the_same_quantities_to_the_last_bit(
        tmp_path_factory: object, bars: list[tuple[float, float]], cut: int) -> None:
    tmp = Path(str(tmp_path_factory.mktemp("rebuild")))  # type: ignore[attr-defined]
    whole = _trader(tmp)
    orders: list[tuple[int, Order]] = []
    for k, (signal, close) in enumerate(bars):
        for o in whole.on_feature(feature(T0 + k * MIN, signal, close=close), 0).orders:
            orders.append((k, o))
    cut = min(cut, len(bars) - 1)
    rebuilt = _trader(tmp)
    for k, o in orders:
        if k < cut:
            rebuilt.restore_order(o)
    again = [(k, o) for k in range(cut, len(bars))
             for o in rebuilt.on_feature(feature(T0 + k * MIN, bars[k][0], close=bars[k][1]), 0).orders]
    want = [(k, o) for k, o in orders if k >= cut]
    assert [(k, o.order_id, o.side, o.qty) for k, o in again] == [(k, o.order_id, o.side, o.qty) for k, o in want]
