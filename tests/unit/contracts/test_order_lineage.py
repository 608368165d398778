"""Order lineage: a version 2 order names the feature record it was decided on; version 1 orders still decode."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import ORDER_V2, ContractError, Order, SourceOffset, decode, encode
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import PolicyTrader

V1_ORDER = (b'{"schema_version":1,"order_id":"o-1","policy_id":"p","policy_version":"abc","exchange":"binance",'
            b'"symbol":"ETH-USDT","side":"buy","qty":0.5,"target_position":1.0,"ts":60000,"feature_ts":60000,'
            b'"reason":"policy"}')


def test_a_version_1_order_decodes_without_a_feature_record() -> None:
    order = decode(V1_ORDER, Order)
    assert order.schema_version == 1 and order.feature is None and order.policy_version == "abc"


def test_a_version_2_order_round_trips_its_feature_record_and_version_3_is_refused() -> None:
    v2 = V1_ORDER.replace(b'"schema_version":1', b'"schema_version":2').replace(
        b'"reason":"policy"', b'"reason":"policy","feature":{"topic":"signals.features","partition":2,"offset":41}')
    order = decode(v2, Order)
    assert order.feature == SourceOffset("signals.features", 2, 41)
    assert decode(encode(order), Order) == order
    with pytest.raises(ContractError, match=r"\$\.schema_version"):
        decode(v2.replace(b'"schema_version":2', b'"schema_version":3'), Order)


def test_the_trader_names_the_feature_record_and_bundle_version_on_its_orders(tmp_path: Path) -> None:
    trader = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)
    record = SourceOffset("dev.signals.features", 3, 1234)
    [order] = trader.on_feature(feature(1_750_000_020_000, 1.0, close=2000.0), 0, record).orders
    assert order.schema_version == ORDER_V2 and order.feature == record
    assert order.policy_version == trader.bundle.version and order.feature_ts == 1_750_000_020_000
