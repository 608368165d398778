"""Strict decoding of the contract messages: what is accepted and what is refused, and why."""

from __future__ import annotations

import json
import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import (
    V1,
    Bar,
    ContractError,
    DeadLetter,
    FeatureVector,
    Fill,
    MarketEvent,
    Order,
    PortfolioSnapshot,
    Trade,
    decode,
    encode,
)
from contracts.messages import ALL_TYPES

TRADE = {
    "schema_version": 1, "exchange": "binance", "symbol": "BTC-USDT", "venue_symbol": "BTCUSDT",
    "trade_id": "3752341285", "price": 61012.5, "size": 0.0123, "side": "buy",
    "ts_event": 1723161253123, "ts_ingest": 1723161253130,
}


def with_(**changes: object) -> bytes:
    doc = dict(TRADE)
    for key, value in changes.items():
        if value is ...:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc).encode()


BAD_TRADES = [
    # (what is wrong, raw record, the words the error must contain)
    ("unknown field", with_(venue="x"), "unknown field `venue`"),
    ("missing price", with_(price=...), "missing required field `price`"),
    ("missing schema_version", with_(schema_version=...), "`schema_version`"),
    ("future schema_version", with_(schema_version=2), "$.schema_version"),
    ("price as a string", with_(price="61012.5"), "$.price"),
    ("negative price", with_(price=-1.0), "$.price"),
    ("zero size", with_(size=0.0), "$.size"),
    ("side not buy or sell", with_(side="BID"), "$.side"),
    ("trade_id as a number", with_(trade_id=3752341285), "$.trade_id"),
    ("empty symbol", with_(symbol=""), "$.symbol"),
    ("negative event time", with_(ts_event=-5), "$.ts_event"),
    ("event time as float", with_(ts_event=1.5), "$.ts_event"),
    ("NaN price", with_(price=0).replace(b'"price": 0', b'"price": NaN'), "not valid JSON"),
    ("Infinity size", with_(size=0).replace(b'"size": 0', b'"size": Infinity'), "not valid JSON"),
    ("overflowing price", with_(price=0).replace(b'"price": 0', b'"price": 1e999'), "$.price"),
    ("truncated JSON", with_()[:-7], "not valid JSON"),
    ("array, not object", b"[1, 2, 3]", "Expected `object`"),
    ("empty record", b"", "not valid JSON"),
]


@pytest.mark.parametrize(("case", "raw", "words"), BAD_TRADES, ids=[c[0] for c in BAD_TRADES])
def test_bad_trade_is_refused_naming_the_problem(case: str, raw: bytes, words: str) -> None:
    with pytest.raises(ContractError) as err:
        decode(raw, Trade)
    assert words in str(err.value), f"{case}: {err.value}"
    assert str(err.value).startswith("Trade:")


def test_good_trade_round_trips_byte_for_byte() -> None:
    trade = decode(with_(), Trade)
    assert trade.price == 61012.5 and trade.side == "buy"
    again = encode(trade)
    assert decode(again, Trade) == trade
    assert encode(decode(again, Trade)) == again


def test_messages_are_immutable() -> None:
    trade = decode(with_(), Trade)
    with pytest.raises(AttributeError):
        trade.price = 1.0  # type: ignore[misc]


def test_every_type_requires_a_schema_version() -> None:
    for kind in ALL_TYPES:
        fields = {f.name: f for f in msgspec.structs.fields(kind)}
        assert fields["schema_version"].required, kind.__name__


def test_feature_vector_carries_nulls_while_warming_up() -> None:
    fv = FeatureVector(schema_version=V1, exchange="binance", symbol="BTC-USDT", interval_s=60,
                       ts=60_000, feature_schema="v1", ready=False,
                       features={"ret_1": None, "rsi_14": 55.0}, close=100.0)
    back = decode(encode(fv), FeatureVector)
    assert back.features == {"ret_1": None, "rsi_14": 55.0}
    assert list(json.loads(encode(fv))["features"]) == ["ret_1", "rsi_14"]


def test_nan_constructed_in_code_is_refused_by_the_consumer() -> None:
    bar = Bar(schema_version=V1, exchange="b", symbol="X-Y", interval_s=60, window_start=0,
              window_end=60_000, open=1.0, high=1.0, low=1.0, close=math.nan, volume=1.0, vwap=1.0,
              trades=1, buy_volume=1.0, sell_volume=0.0)
    with pytest.raises(ContractError, match=r"\$\.close"):
        decode(encode(bar), Bar)


def test_every_type_round_trips() -> None:
    samples = [
        MarketEvent(schema_version=V1, exchange="binance", symbol="BTC-USDT", kind="gap", ts=1,
                    first_missing="10", last_missing="12", count=3),
        DeadLetter(schema_version=V1, source="binance", raw="{oops", reason="not JSON", ts=1),
        Order(schema_version=V1, order_id="p-1-BTC-USDT-60000", policy_id="p", policy_version="1",
              exchange="binance", symbol="BTC-USDT", side="buy", qty=0.5, target_position=0.5, ts=2,
              feature_ts=1),
        Fill(schema_version=V1, fill_id="f1", order_id="o1", policy_id="p", exchange="binance",
             symbol="BTC-USDT", side="sell", price=10.0, qty=0.1, fee=0.001, slippage=0.002, ts=3),
        PortfolioSnapshot(schema_version=V1, policy_id="p", ts=4, positions={"BTC-USDT": 0.1}, cash=9.0,
                          equity=10.0, realised_pnl=0.0, unrealised_pnl=0.0, fees=0.0, drawdown=0.0),
    ]
    for msg in samples:
        assert decode(encode(msg), type(msg)) == msg


prices = st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False)


@given(price=prices, size=prices, side=st.sampled_from(["buy", "sell"]),
       ts=st.integers(min_value=0, max_value=2**53), tid=st.text(min_size=1, max_size=64))
def test_any_valid_trade_round_trips_exactly(price: float, size: float, side: str, ts: int, tid: str) -> None:
    trade = Trade(schema_version=V1, exchange="kraken", symbol="ETH-USD", venue_symbol="ETH/USD",
                  trade_id=tid, price=price, size=size, side=side, ts_event=ts, ts_ingest=ts)  # type: ignore[arg-type]
    assert decode(encode(trade), Trade) == trade


def test_an_order_names_its_feature_record_under_the_longest_prefix_the_registry_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An order's feature record (and a dead letter's source) is a topic's name with its prefix: up to Kafka's 249
    characters, not a name field's 64 (a prefix of 49 characters or more made the trader's orders undecodable)."""
    from contracts.messages import SourceOffset
    from contracts.topics import PREFIX_ENV, SIGNALS_FEATURES

    monkeypatch.setenv(PREFIX_ENV, "p" * 199 + ".")
    topic = SIGNALS_FEATURES.name
    order = Order(schema_version=2, order_id="o-1", policy_id="p", policy_version="v", exchange="binance",
                  symbol="BTC-USDT", side="buy", qty=1.0, target_position=1.0, ts=1, feature_ts=1,
                  feature=SourceOffset(topic, 0, 7))
    assert decode(encode(order), Order) == order
    dead = DeadLetter(schema_version=V1, source=topic, raw="{}", reason="r", ts=1)
    assert decode(encode(dead), DeadLetter) == dead
    with pytest.raises(ContractError, match=r"\$\.feature\.topic"):
        decode(encode(msgspec.structs.replace(order, feature=SourceOffset("t" * 250, 0, 7))), Order)
