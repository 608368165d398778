"""Gaps and repeats by each venue's rules; the reconnect backoff stays within its bound."""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from ingestor.connection import Backoff
from ingestor.replay import Recorded, _recv_ms, detect, venue_from_name
from tests.unit.ingestor.ingest_parse_support import pipeline


def binance(tid: int) -> str:
    return json.dumps({"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "t": tid,
                                                           "p": "100.5", "q": "1", "T": 1000 + tid, "m": False}})


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=200))
def test_every_id_is_published_once_and_every_hole_is_reported(ids: list[int]) -> None:
    p, sink = pipeline("binance")
    for tid in ids:
        p.on_frame(binance(tid), 5)
    published = [int(t.trade_id) for t in sink.trades]
    assert len(published) == len(set(published))
    # published ids strictly increase; the ones the feed sent late (below the last) are counted repeats
    assert published == sorted(published) and published[0] == ids[0]
    assert p.counts.duplicates == len(ids) - len(published)
    missing = set(range(published[0], published[-1] + 1)) - set(published)
    reported = set()
    for e in sink.events:
        assert e.first_missing is not None and e.last_missing is not None
        assert e.kind == "gap" and e.symbol == "BTC-USDT" and e.count == int(e.last_missing) - int(e.first_missing) + 1
        reported |= set(range(int(e.first_missing), int(e.last_missing) + 1))
    assert reported == missing
    assert p.counts.missing == len(missing)


def test_okx_aggregated_trades_cover_their_count() -> None:
    p, sink = pipeline("okx")

    def frame(tid: int, count: int) -> str:
        return json.dumps({"arg": {"channel": "trades", "instId": "BTC-USDT"}, "data": [
            {"instId": "BTC-USDT", "tradeId": str(tid), "px": "1", "sz": "1", "side": "buy", "ts": "1",
             "count": str(count)}]})

    p.on_frame(frame(10, 1), 1)
    p.on_frame(frame(13, 3), 1)  # 11, 12, 13 aggregated: no gap
    assert sink.events == []
    p.on_frame(frame(20, 2), 1)  # 19, 20: 14..18 missing
    assert [(e.first_missing, e.last_missing, e.count) for e in sink.events] == [("14", "18", 5)]


def test_coinbase_advanced_sequence_gap_is_a_connection_event_and_resets_on_reconnect() -> None:
    p, sink = pipeline("coinbase_advanced")

    def hb(seq: int) -> str:
        return json.dumps({"channel": "heartbeats", "client_id": "", "timestamp": "2023-06-23T20:31:26Z",
                           "sequence_num": seq, "events": [{"current_time": "x", "heartbeat_counter": seq}]})

    for seq in (0, 1, 2, 5):
        p.on_frame(hb(seq), 1)
    [gap] = sink.events
    assert (gap.symbol, gap.first_missing, gap.last_missing, gap.count) == ("*", "3", "4", 2)
    p.connection_event("reconnect", "test")
    p.on_frame(hb(0), 2)  # a new connection counts from 0 again: no gap
    assert [e.kind for e in sink.events] == ["gap", "reconnect"]


@settings(max_examples=200, deadline=None)
@given(attempt=st.integers(min_value=0, max_value=10_000), seed=st.integers())
def test_backoff_grows_with_jitter_and_never_exceeds_its_cap(attempt: int, seed: int) -> None:
    b = Backoff(base_s=0.5, factor=2.0, cap_s=30.0)
    d = b.delay(attempt, random.Random(seed))
    bound = min(30.0, 0.5 * 2.0 ** min(attempt, 60))
    assert bound / 2 <= d <= bound <= 30.0


def test_replay_recognises_files_and_receive_times(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    assert detect(Path("BTCUSDT-trades-2024-08.csv"), False) == "dump"
    assert detect(Path("okx_v5_public.jsonl.gz"), False) == "frames"
    candles = root / "c.csv"
    candles.write_text("open_time_ms,open,high,low,close,volume\n0,1,1,1,1,1\n")
    assert detect(candles, False) == "candles"
    assert venue_from_name(Path("coinbase_advanced_2026.jsonl.gz")) == "coinbase_advanced"
    assert venue_from_name(Path("binance_spot_btcusdt_timed.jsonl.gz")) == "binance"
    assert venue_from_name(Path("mystery.jsonl")) is None
    ms = 1723161253937
    for ts in (ms / 1000, ms, ms * 1000 + 999, ms * 1_000_000 + 999_999):
        assert _recv_ms(Recorded(raw="x", ts=ts)) == ms
    assert _recv_ms(Recorded(raw="x", recv_ts_ns=ms * 1_000_000 + 999_999)) == ms
