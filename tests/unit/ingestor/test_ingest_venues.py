"""Each venue's documented messages and real recordings parse to the expected trades."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests.unit.ingestor.ingest_parse_support import RECORDED, SAMPLES, lines, pipeline

# Lines of the documentation samples that are requests a client sends, not frames a venue sends.
CLIENT_REQUESTS = ('"method":"SUBSCRIBE"', '"method":"UNSUBSCRIBE"', '"method":"LIST_SUBSCRIPTIONS"',
                   '"type":"subscribe"', '"type":"unsubscribe"', '"op":"subscribe"',
                   '"method":"subscribe","params"', '"method":"unsubscribe","params"')


def venue_frames(prefix: str) -> list[str]:
    out = []
    for path in sorted(SAMPLES.glob(f"{prefix}_*")):
        out += [line for line in lines(path) if not any(r in line for r in CLIENT_REQUESTS) and line != "ping"]
    return out


def iso_ms(text: str) -> int:
    """Independent ISO time conversion: integer microseconds, then whole milliseconds."""
    head, _, frac = text.rstrip("Z").partition(".")
    dt = datetime.fromisoformat(head + "+00:00")
    return int(dt.timestamp()) * 1000 + int((frac + "000000")[:6]) // 1000


def test_binance_documented_trade_is_a_sell_by_the_taker_and_other_channels_are_skipped() -> None:
    p, sink = pipeline("binance")
    for frame in venue_frames("binance"):
        p.on_frame(frame, 1_700_000_000_000)
    assert sink.dead == []
    [t] = sink.trades
    assert (t.exchange, t.symbol, t.venue_symbol, t.trade_id) == ("binance", "BNB-BTC", "BNBBTC", "12345")
    assert (t.price, t.size, t.side, t.ts_event) == (0.001, 100.0, "sell", 1672515782136)
    assert t.ts_ingest == 1_700_000_000_000
    assert p.counts.skipped_by == {"aggTrade": 1, "bookTicker": 1, "depthUpdate": 1, "depth snapshot": 1}


def test_coinbase_advanced_documented_trade_flips_the_maker_side() -> None:
    p, sink = pipeline("coinbase_advanced")
    for frame in venue_frames("coinbase_advanced"):
        p.on_frame(frame, 5)
    assert sink.dead == []
    [t] = sink.trades
    assert (t.symbol, t.trade_id, t.price, t.size) == ("ETH-USD", "000000000", 1260.01, 0.3)
    assert t.side == "sell"  # the maker BOUGHT, so the taker sold
    assert t.ts_event == iso_ms("2019-08-14T20:42:27.265Z")
    assert p.counts.skipped_by == {"l2_data": 1, "ticker": 1}


def test_coinbase_exchange_documented_match_and_heartbeat() -> None:
    p, sink = pipeline("coinbase_exchange")
    frames = venue_frames("coinbase_exchange")
    heartbeat = next(f for f in frames if '"type":"heartbeat"' in f)
    for frame in frames:
        if frame is not heartbeat:
            p.on_frame(frame, 5)
    assert sink.events == []
    p.on_frame(heartbeat, 6)
    assert sink.dead == []
    [t] = sink.trades
    assert (t.symbol, t.trade_id, t.price, t.size, t.side) == ("BTC-USD", "10", 400.23, 5.23512, "buy")
    assert t.ts_event == iso_ms("2014-11-07T08:19:27.028459Z")
    assert p.counts.skipped_by == {"snapshot": 1, "l2update": 2, "ticker": 1}
    # the heartbeat says trade 20 was the last one: 11..20 never arrived
    [gap] = sink.events
    assert (gap.kind, gap.first_missing, gap.last_missing, gap.count) == ("gap", "11", "20", 10)


def test_okx_documented_trade_keeps_the_taker_side() -> None:
    p, sink = pipeline("okx")
    for frame in venue_frames("okx"):
        p.on_frame(frame, 5)
    assert sink.dead == []
    [t] = sink.trades
    assert (t.symbol, t.venue_symbol, t.trade_id, t.price, t.size, t.side, t.ts_event) == (
        "BTC-USDT", "BTC-USDT", "130639474", 42219.9, 0.12060306, "buy", 1630048897897)
    assert p.counts.skipped_by == {"books": 2, "bbo-tbt": 1, "books5": 1}


def test_kraken_documented_snapshot_and_update() -> None:
    p, sink = pipeline("kraken")
    for frame in venue_frames("kraken"):
        p.on_frame(frame, 5)
    assert sink.dead == []
    assert [(t.symbol, t.venue_symbol, t.trade_id, t.price, t.size, t.side) for t in sink.trades] == [
        ("MATIC-USD", "MATIC/USD", "4665846", 0.5147, 6423.46326, "buy"),
        ("MATIC-USD", "MATIC/USD", "4665847", 0.5147, 1136.19677815, "buy"),
        ("MATIC-USD", "MATIC/USD", "4665906", 0.5117, 40.0, "sell")]
    assert sink.trades[2].ts_event == iso_ms("2023-09-25T07:49:37.708706Z")
    # 4665848..4665905 were not in the snapshot: a gap, reported
    assert [(e.first_missing, e.last_missing) for e in sink.events] == [("4665848", "4665905")]


def test_coinbase_advanced_recording_every_trade_exact_and_nothing_lost() -> None:
    frames = lines(next(RECORDED.glob("coinbase_advanced_*")))
    expected = {}
    for frame in frames:
        doc = json.loads(frame)
        if doc["channel"] == "market_trades":
            for ev in doc["events"]:
                for w in ev["trades"]:
                    side = "buy" if w["side"] == "SELL" else "sell"
                    expected[(w["product_id"], w["trade_id"])] = (float(w["price"]), float(w["size"]), side,
                                                                  iso_ms(w["time"]))
    p, sink = pipeline("coinbase_advanced")
    for frame in frames:
        p.on_frame(frame, 7)
    got = {(t.venue_symbol, t.trade_id): (t.price, t.size, t.side, t.ts_event) for t in sink.trades}
    assert len(sink.trades) == len(got) == len(expected) > 200
    assert got == expected
    assert sink.dead == [] and sink.events == []  # sequence_num 0..1029 contiguous, trade ids contiguous
    assert p.counts.skipped_by == {"l2_data": 775, "ticker": 160, "candles": 6}
    assert p.counts.control == 25 + 5  # heartbeats and subscriptions


def test_coinbase_exchange_recording_matches_and_last_matches() -> None:
    frames = lines(next(RECORDED.glob("coinbase_exchange_*")))
    expected = [(d["product_id"], str(d["trade_id"]), float(d["price"]), float(d["size"]),
                 "buy" if d["side"] == "sell" else "sell", iso_ms(d["time"]))
                for d in map(json.loads, frames) if d["type"] in ("match", "last_match")]
    p, sink = pipeline("coinbase_exchange")
    for frame in frames:
        p.on_frame(frame, 7)
    assert [(t.venue_symbol, t.trade_id, t.price, t.size, t.side, t.ts_event) for t in sink.trades] == expected
    assert sink.dead == [] and sink.events == []


def test_okx_recording_trades_exact_and_other_channels_skipped() -> None:
    frames = lines(next(RECORDED.glob("okx_*")))
    expected = []
    for d in map(json.loads, frames):
        if d.get("arg", {}).get("channel") == "trades" and "data" in d:
            expected += [(w["instId"], w["tradeId"], float(w["px"]), float(w["sz"]), w["side"], int(w["ts"]))
                         for w in d["data"]]
    p, sink = pipeline("okx")
    for frame in frames:
        p.on_frame(frame, 7)
    got = sorted((t.venue_symbol, t.trade_id, t.price, t.size, t.side, t.ts_event) for t in sink.trades)
    assert got == sorted(expected) and len(got) >= 74
    assert sink.dead == []
    assert p.counts.skipped > 0 and p.counts.trades == len(expected)
    assert {t.symbol for t in sink.trades} >= {"BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"}


@pytest.mark.parametrize("frame", ["pong", '{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}'])
def test_okx_control_frames_are_neither_trades_nor_dead_letters(frame: str) -> None:
    p, sink = pipeline("okx")
    p.on_frame(frame, 1)
    assert (sink.trades, sink.dead, p.counts.control) == ([], [], 1)
