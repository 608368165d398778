"""Property-based fuzzing of every venue parser: nothing escapes, every bad frame is dead-lettered."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestor.venues import VENUES
from tests.unit.ingestor.ingest_parse_support import pipeline

# One valid trade frame per venue, and the path to its price, size and id fields.
VALID: dict[str, tuple[dict[str, Any], list[Any], list[Any], list[Any]]] = {
    "binance": ({"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "61000.5",
                                                     "q": "0.01", "T": 1723161255342, "m": True, "M": True}},
                ["data", "p"], ["data", "q"], ["data", "t"]),
    "coinbase_advanced": ({"channel": "market_trades", "client_id": "", "timestamp": "2026-08-09T21:05:48.2Z",
                           "sequence_num": 9, "events": [{"type": "update", "trades": [
                               {"product_id": "BTC-USD", "trade_id": "1068572091", "price": "65083.67",
                                "size": "0.01", "time": "2026-08-09T21:05:48.167634Z", "side": "SELL"}]}]},
                          ["events", 0, "trades", 0, "price"], ["events", 0, "trades", 0, "size"],
                          ["events", 0, "trades", 0, "trade_id"]),
    "coinbase_exchange": ({"type": "match", "trade_id": 10, "sequence": 50, "maker_order_id": "a",
                           "taker_order_id": "b", "time": "2014-11-07T08:19:27.028459Z", "product_id": "BTC-USD",
                           "size": "5.23512", "price": "400.23", "side": "sell"},
                          ["price"], ["size"], ["trade_id"]),
    "okx": ({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
        {"instId": "BTC-USDT", "tradeId": "130639474", "px": "42219.9", "sz": "0.12", "side": "buy",
         "ts": "1630048897897", "count": "3"}]}, ["data", 0, "px"], ["data", 0, "sz"], ["data", 0, "tradeId"]),
    "kraken": ({"channel": "trade", "type": "update", "data": [
        {"symbol": "MATIC/USD", "side": "sell", "price": 0.5117, "qty": 40.0, "ord_type": "market",
         "trade_id": 4665906, "timestamp": "2023-09-25T07:49:37.708706Z"}]},
        ["data", 0, "price"], ["data", 0, "qty"], ["data", 0, "trade_id"]),
}
# Values no price or size may take, in the venue's string or number form.
BAD_NUMBERS: list[Any] = ["-1", "0", "NaN", "nan", "inf", "-0.0", "abc", "", "1e999", "0x10", None, [], {}, True, -5, 0,
               "1,5", " ", "∞"]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4), max_leaves=12)


def set_path(doc: Any, path: list[Any], value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return doc


def del_path(doc: Any, path: list[Any]) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return doc


def run_one(venue: str, frame: str | bytes) -> tuple[int, int, int]:
    """(trades, dead letters, skipped or control) for one frame; raises if anything escapes."""
    p, sink = pipeline(venue)
    p.on_frame(frame, 1)
    text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
    assert all(d.reason and d.source == venue and d.raw == text for d in sink.dead)
    outcomes = (len(sink.trades) > 0) + (len(sink.dead) > 0) + (p.counts.skipped + p.counts.control > 0)
    # at most one outcome: trades, a dead letter, or skipped/control (none: a trade frame holding no trade)
    assert outcomes <= 1
    return len(sink.trades), len(sink.dead), p.counts.skipped + p.counts.control


@pytest.mark.parametrize("venue", list(VENUES))
def test_the_valid_frame_gives_one_trade(venue: str) -> None:
    assert run_one(venue, json.dumps(VALID[venue][0])) == (1, 0, 0)


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(bytes))
def test_arbitrary_text_never_escapes(venue: str, text: str | bytes) -> None:
    run_one(venue, text)


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_field_replaced_by_any_json_never_escapes(venue: str, data: st.DataObject) -> None:
    doc, price, size, tid = VALID[venue]
    path = data.draw(st.sampled_from([price, size, tid, price[:-1], price[:1], [price[0]]]))
    if len(path) == 0:
        return
    value = data.draw(JSON)
    run_one(venue, json.dumps(set_path(doc, path, value)))


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=100, deadline=None)
@given(bad=st.sampled_from(BAD_NUMBERS), which=st.sampled_from(["price", "size"]))
def test_a_bad_price_or_size_is_dead_lettered_with_a_reason(venue: str, bad: Any, which: str) -> None:
    doc, price, size, _tid = VALID[venue]
    assert run_one(venue, json.dumps(set_path(doc, price if which == "price" else size, bad))) == (0, 1, 0)


@pytest.mark.parametrize("venue", list(VENUES))
@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=10_000))
def test_broken_json_is_dead_lettered(venue: str, cut: int) -> None:
    text = json.dumps(VALID[venue][0])
    assert run_one(venue, text[: cut % (len(text) - 1) + 1]) == (0, 1, 0)


@pytest.mark.parametrize("venue", list(VENUES))
def test_missing_fields_and_unknown_types_are_dead_lettered(venue: str) -> None:
    doc, price, size, tid = VALID[venue]
    for path in (price, size, tid):
        assert run_one(venue, json.dumps(del_path(doc, path))) == (0, 1, 0)
    assert run_one(venue, json.dumps({"type": "surprise", "channel": "x" * 3, "what": 1}))[1] in (0, 1)
    assert run_one(venue, '{"nothing": "we know"}') == (0, 1, 0)
    assert run_one(venue, "[1, 2, 3]") == (0, 1, 0)
