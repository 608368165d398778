"""Binance's book sync on the bundled real BTCUSDT frames (trade, depth@100ms, bookTicker, one REST snapshot),
checked against Binance's own bookTicker; a lost diff; two symbols, one broken."""

from __future__ import annotations

import bisect
import json

import pytest

from contracts.book import Book
from contracts.books import BookUpdate
from tests.unit.ingestor.books_frames import BINANCE, Frame, Sink, run, timed_frames

FRAMES = timed_frames(BINANCE)


def _depth(f: Frame) -> dict | None:
    if f.kind != "ws" or "@depth" not in f.raw[:40]:
        return None
    data: dict = json.loads(f.raw)["data"]
    return data


def _tickers(frames: list[Frame], symbol: str = "BTCUSDT") -> dict[int, tuple[float, float, float, float]]:
    out = {}
    for f in frames:
        if "@bookTicker" in f.raw[:40]:
            d = json.loads(f.raw)["data"]
            if d["s"] == symbol:
                out[d["u"]] = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
    return out


def _rebuilt(books: list[BookUpdate], symbol: str) -> list[tuple[int, Book]]:
    """(seq, top of book) after each record of one symbol, rebuilt as a consumer does."""
    book, out = Book(), []
    for u in books:
        if u.symbol != symbol:
            continue
        if u.kind == "snapshot" and u.part == 0:
            book.clear()
        book.apply(u.bids, u.asks)
        top = Book()
        top.apply(book.bids.top(1), book.asks.top(1))
        out.append((u.seq, top))
    return out


def test_book_equals_binance_book_ticker_after_every_update() -> None:
    feed, sink = run("binance", FRAMES)
    snap_id = json.loads(next(f.raw for f in FRAMES if f.kind == "rest_depth_snapshot"))["lastUpdateId"]
    want = [d["u"] for f in FRAMES if (d := _depth(f)) and d["u"] > snap_id]
    deltas = [u for u in sink.books if u.kind == "delta"]
    assert [u.seq for u in deltas] == want  # every diff after the snapshot, in order, none twice
    assert sink.events == [] and sink.dead == []
    ticks = _tickers(FRAMES)
    ids = sorted(ticks)
    match = n = sizes_ok = sizes_at = 0
    for seq, top in _rebuilt(sink.books, "BTC-USDT"):
        bid, ask = top.bids.top(1)[0], top.asks.top(1)[0]
        assert bid[0] < ask[0], f"crossed at {seq}"
        i = bisect.bisect_right(ids, seq) - 1
        t = ticks[ids[i]]
        n += 1
        match += (bid[0], ask[0]) == (t[0], t[2])
        if ids[i] == seq:
            sizes_at += 1
            sizes_ok += (bid[1], ask[1]) == (t[1], t[3])
    assert match / n >= 0.999, f"{match} of {n}"
    assert sizes_at > 1000 and sizes_ok == sizes_at
    assert feed.counts.gaps == 0 and feed.counts.crossed == 0


def test_a_lost_diff_is_a_gap_naming_its_ids_and_the_symbol_publishes_nothing_until_resynced() -> None:
    depth_at = [i for i, f in enumerate(FRAMES) if _depth(f)]
    lost_i = depth_at[len(depth_at) // 2]
    lost = _depth(FRAMES[lost_i])
    assert lost is not None
    _, sink = run("binance", FRAMES[:lost_i] + FRAMES[lost_i + 1:])
    gaps = [e for e in sink.events if e.kind == "book_gap"]
    assert len(gaps) == 1
    assert (gaps[0].symbol, gaps[0].first_missing, gaps[0].last_missing) == ("BTC-USDT", str(lost["U"]), str(lost["u"]))
    assert gaps[0].count == lost["u"] - lost["U"] + 1
    assert max(u.seq for u in sink.books) < lost["U"]  # nothing after the gap: no second snapshot recorded
    assert sink.resyncs == [("binance", "BTCUSDT"), ("binance", "BTCUSDT")]  # at the start, and after the gap


def _renamed(f: Frame, lower: str, upper: str) -> Frame:
    raw = f.raw.replace('"btcusdt@', f'"{lower}@').replace('"s":"BTCUSDT"', f'"s":"{upper}"')
    return Frame(f.kind, raw, f.recv_ms, upper if f.kind == "rest_depth_snapshot" else None)


def test_two_symbols_a_gap_in_one_resyncs_that_one_alone() -> None:
    btc = [Frame(f.kind, f.raw, f.recv_ms, "BTCUSDT" if f.kind == "rest_depth_snapshot" else None) for f in FRAMES]
    eth = [_renamed(f, "ethusdt", "ETHUSDT") for f in FRAMES]  # the same book under another name: a reference
    _, clean = run("binance", eth)
    depth_at = [i for i, f in enumerate(btc) if _depth(f)]
    lost_i = depth_at[len(depth_at) // 3]
    lost = _depth(btc[lost_i])
    assert lost is not None
    # A fresh REST snapshot for BTC a little later: the reference book as it stood at a later update id.
    resync_u = _depth(btc[depth_at[len(depth_at) // 3 + 50]])["u"]  # type: ignore[index]
    ref = Book()
    for u in clean.books:
        if u.kind == "snapshot" and u.part == 0:
            ref.clear()
        ref.apply(u.bids, u.asks)
        if u.seq == resync_u:
            break
    rest = json.dumps({"lastUpdateId": resync_u, "bids": [[str(p), str(s)] for p, s in ref.bids.top()],
                       "asks": [[str(p), str(s)] for p, s in ref.asks.top()]})
    snap_at = depth_at[len(depth_at) // 3 + 40]
    btc_broken = btc[:lost_i] + btc[lost_i + 1:snap_at] + [Frame("rest_depth_snapshot", rest, btc[snap_at].recv_ms,
                                                                  "BTCUSDT")] + btc[snap_at:]
    mixed = sorted(btc_broken + eth, key=lambda f: f.recv_ms)  # interleaved by receive time (a stable sort)
    _, sink = run("binance", mixed)
    eth_books = [u for u in sink.books if u.symbol == "ETH-USDT"]
    assert [(u.seq, u.bids, u.asks) for u in eth_books] == [(u.seq, u.bids, u.asks) for u in clean.books]
    assert [(e.symbol, e.kind) for e in sink.events] == [("BTC-USDT", "book_gap"), ("BTC-USDT", "resync")]
    btc_books = [u for u in sink.books if u.symbol == "BTC-USDT"]
    seqs = [u.seq for u in btc_books]
    assert not any(lost["U"] <= s < resync_u for s in seqs)  # nothing published while broken
    resumed = seqs.index(resync_u)
    assert btc_books[resumed].kind == "snapshot"
    # After the resync BTC's book is the reference's again, update for update.
    got = {s: (t.bids.top(1), t.asks.top(1)) for s, t in _rebuilt(btc_books, "BTC-USDT")[resumed:]}
    want = {s: (t.bids.top(1), t.asks.top(1)) for s, t in _rebuilt(clean.books, "ETH-USDT") if s in got}
    assert got == want and len(got) > 1000


def test_a_snapshot_without_its_symbol_while_two_wait_is_dead_lettered() -> None:
    diff = next(f for f in FRAMES if _depth(f))
    rest = next(f for f in FRAMES if f.kind == "rest_depth_snapshot")
    frames = [diff, _renamed(diff, "ethusdt", "ETHUSDT"), Frame(rest.kind, rest.raw, rest.recv_ms)]
    _, sink = run("binance", frames)
    assert len(sink.dead) == 1 and "2 symbols wait" in sink.dead[0].reason and sink.books == []


@pytest.mark.parametrize(("raw", "reason"), [
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":5,"u":4,"b":[],"a":[]}}',
     "U=5 u=4"),
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[["x","1"]],'
     '"a":[]}}', "bid price 'x'"),
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],'
     '"a":[["1","-2"]]}}', "ask size '-2'"),
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"', "JSON"),
])
def test_bad_depth_frames_go_to_the_dead_letters_with_the_reason(raw: str, reason: str) -> None:
    _, sink = run("binance", [Frame("ws", raw, 1)])
    assert len(sink.dead) == 1 and reason in sink.dead[0].reason and sink.books == []


def test_trade_and_partial_depth_frames_are_not_book_frames() -> None:
    partial = '{"stream":"btcusdt@depth5@100ms","data":{"lastUpdateId":160,"bids":[["0.1","1"]],"asks":[]}}'
    _, sink = run("binance", [f for f in FRAMES[:500] if "@trade" in f.raw[:40]] + [Frame("ws", partial, 1)])
    assert sink == Sink()


def test_a_diff_that_crosses_the_book_is_a_crossed_book_event_and_a_resync() -> None:
    head = FRAMES[:200]
    feed, sink = run("binance", head)
    last = sink.books[-1].seq
    ask = feed.sync.symbols["BTCUSDT"].book.asks.best()
    assert ask is not None
    cross = json.dumps({"stream": "btcusdt@depth@100ms", "data": {
        "e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": last + 1, "u": last + 1, "b": [[str(ask + 1), "1"]], "a": []}})
    feed.on_frame(cross, 2)
    assert [e.kind for e in sink.events] == ["crossed_book"] and str(ask + 1) in sink.events[0].detail
    assert sink.books[-1].seq == last and sink.resyncs[-1] == ("binance", "BTCUSDT")
