"""Book features (schema v2): an independent reference on the bundled Binance frames, properties of the
formulas, the worker's processor fed books and trades in any interleaving, and a v1 bundle on v2 vectors."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import FeatureVector, decode, encode
from contracts.books import BookUpdate
from contracts.feature_schema import BOOK_FEATURE_NAMES, V1, V2
from contracts.messages import V1 as MESSAGE_V1
from contracts.messages import MarketEvent, Trade
from streams.features.book_features import level_values, ofi
from streams.offline import closed_bars, features_frame
from streams.processor import Output, Processor
from tests.helpers import DATA
from tests.unit.trader.trader_support import feature, linear_bundle
from tickflow.recording import read_recording
from trader.handler import PolicyTrader

FRAMES = sorted((DATA / "ticks").glob("binance_spot_btcusdt_*_timed.jsonl.gz"))[0]
KEY = ("binance", "BTC-USDT")


@pytest.fixture(scope="module")
def recording() -> tuple[list[Trade], list[BookUpdate]]:
    return read_recording(FRAMES, "binance")


def reference(books: list[BookUpdate], bars: list[tuple[int, int]]) -> list[list[float]]:
    """The book features of each bar (start, end), written apart from the module, from NOTES' formulas: a
    plain dict per side, sorted lists of prices, records applied in order while their event time is before
    the bar's end."""
    bid: dict[float, float] = {}
    ask: dict[float, float] = {}
    i = 0
    prev = None  # best bid, size, best ask, size after the previous record
    flow: list[tuple[int, float]] = []
    out = []
    for start, end in bars:
        while i < len(books) and books[i].ts_event < end:
            u = books[i]
            i += 1
            if u.kind == "snapshot":
                if (dict(u.bids), dict(u.asks)) == (bid, ask):
                    continue  # a periodic snapshot of the book held: no update
                bid, ask = dict(u.bids), dict(u.asks)
            else:
                for side, levels in ((bid, u.bids), (ask, u.asks)):
                    for p, q in levels:
                        if q == 0:
                            side.pop(p, None)
                        else:
                            side[p] = q
            b, a = max(bid), min(ask)
            now = (b, bid[b], a, ask[a])
            e = 0.0
            if prev is not None:
                pb, pqb, pa, pqa = prev
                e = ((now[1] if b >= pb else 0.0) - (pqb if b <= pb else 0.0)
                     - (now[3] if a <= pa else 0.0) + (pqa if a >= pa else 0.0))
            flow.append((u.ts_event, e))
            prev = now
        bids = sorted(bid.items(), reverse=True)
        asks = sorted(ask.items())
        b1, qb1 = bids[0]
        a1, qa1 = asks[0]
        mid = (a1 + b1) / 2
        w = qb1 / (qb1 + qa1)
        row = [(a1 - b1) / mid * 1e4, mid, (w * a1 + (1 - w) * b1 - mid) / mid * 1e4]
        for k in (1, 5, 10):
            sb, sa = sum(q for _, q in bids[:k]), sum(q for _, q in asks[:k])
            row.append((sb - sa) / (sb + sa))
        for bps in (10, 50):
            row.append(sum(q for p, q in bids if p >= mid * (1 - bps / 1e4)))
            row.append(sum(q for p, q in asks if p <= mid * (1 + bps / 1e4)))
        in_bar = [e for ts, e in flow if start <= ts < end]
        row += [sum(in_bar), float(len(in_bar))]
        out.append(row)
    return out


@pytest.mark.parametrize("interval_s", [1, 60])
def test_the_module_agrees_with_an_independent_reference_on_the_bundled_frames(
        recording: tuple[list[Trade], list[BookUpdate]], interval_s: int) -> None:
    trades, books = recording
    assert books[0].kind == "snapshot" and sum(u.kind == "snapshot" for u in books) >= 2  # periodic ones too
    bars = closed_bars(trades, (interval_s,))[KEY]
    frame = features_frame(bars, books)
    first = books[0].ts_event
    synced = frame[frame["window_start"] > first]  # every bar starting after the book's first snapshot
    assert len(synced) >= (8 if interval_s == 60 else 600)
    synced = synced.head(200)  # the reference re-sorts the whole book at each bar: 200 one-second bars suffice
    want = reference(books, list(zip(synced["window_start"], synced["ts"], strict=True)))
    for name, column in zip(BOOK_FEATURE_NAMES, zip(*want, strict=True), strict=True):
        got = synced[name].to_numpy()
        assert all(math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9) for g, w in zip(got, column, strict=True)), name
    assert frame.loc[frame["ts"] <= first, list(BOOK_FEATURE_NAMES[:10])].isna().all().all()  # no book yet
    assert synced["book_updates"].sum() > 1500


levels = st.lists(st.tuples(st.integers(1, 400), st.floats(0.001, 50, allow_nan=False)), min_size=1, max_size=30,
                  unique_by=lambda lv: lv[0])


@settings(max_examples=100, deadline=None)
@given(levels, levels, st.integers(0, 50))
def test_imbalances_lie_in_minus_one_one_and_depth_grows_with_its_reach(bid_levels: list[tuple[int, float]],
                                                                        ask_levels: list[tuple[int, float]],
                                                                        gap: int) -> None:
    top = 60_000.0
    bids = sorted(((top - p * 0.5, q) for p, q in bid_levels), reverse=True)
    asks = sorted((top + gap * 0.5 + p * 0.5, q) for p, q in ask_levels)
    values = level_values(bids, asks)
    assert None not in values
    v = {n: float(x) for n, x in zip(BOOK_FEATURE_NAMES, values, strict=False) if x is not None}
    for k in (1, 5, 10):
        assert -1.0 <= v[f"book_imb_{k}"] <= 1.0
    assert v["book_spread_bps"] > 0
    assert 0 <= v["book_depth_bid_10bps"] <= v["book_depth_bid_50bps"] <= sum(q for _, q in bids)
    assert 0 <= v["book_depth_ask_10bps"] <= v["book_depth_ask_50bps"] <= sum(q for _, q in asks)
    micro = v["book_micro_bps"]
    assert abs(micro) <= v["book_spread_bps"] / 2 + 1e-9  # between bid and ask
    assert (micro > 0) == (bids[0][1] > asks[0][1]) or math.isclose(bids[0][1], asks[0][1]) or micro == 0


@settings(max_examples=100, deadline=None)
@given(st.floats(100, 200), st.floats(0.01, 10), st.floats(0.01, 10), st.floats(0.01, 10), st.floats(0.01, 10))
def test_ofi_signs_follow_cont_kukanov_stoikov(b: float, qb: float, qa: float, dq: float, q2: float) -> None:
    a = b + 1.0
    before = (b, qb, a, qa)
    assert ofi(before, before) == pytest.approx(0.0)
    assert ofi(before, (b, qb + dq, a, qa)) == pytest.approx(dq)  # more bid size at the best bid: buying pressure
    assert ofi(before, (b, qb, a, qa + dq)) == pytest.approx(-dq)  # more ask size: selling pressure
    assert ofi(before, (b + 0.5, q2, a, qa)) == pytest.approx(q2)  # a better bid: its whole size
    assert ofi(before, (b - 0.5, q2, a, qa)) == pytest.approx(-qb)  # the best bid went: its old size, negative
    assert ofi(before, (b, qb, a - 0.5, q2)) == pytest.approx(-q2)  # a better ask: selling pressure
    assert ofi(before, (b, qb, a + 0.5, q2)) == pytest.approx(qa)  # the best ask went


def _book_records(books: list[BookUpdate]) -> list[tuple[int, int, bytes]]:
    return [(0, i, encode(u)) for i, u in enumerate(books)]


def _trade_records(trades: list[Trade]) -> list[tuple[int, int, bytes]]:
    return [(0, i, encode(t)) for i, t in enumerate(trades)]


def _features(out: list[Output]) -> dict[tuple[int, int], FeatureVector]:
    fvs = [decode(o.value, FeatureVector) for o in out if o.topic == "signals.features"]
    return {(fv.interval_s, fv.ts): fv for fv in fvs}


def test_the_processor_gives_the_offline_numbers_whatever_the_interleaving_of_books_and_trades(
        recording: tuple[list[Trade], list[BookUpdate]]) -> None:
    trades, books = recording
    trades, books = trades[:6000], [u for u in books if u.ts_event < trades[6000].ts_event]
    tr, bk = _trade_records(trades), _book_records(books)
    runs = []
    # all trades first (they wait for the books), all books first, and small batches alternating
    for order in ("trades_first", "books_first", "interleaved"):
        p = Processor((1, 60), 2000, books=True)
        out: list[Output] = []
        if order == "trades_first":
            out += p.apply(tr, 0)
            assert p.first_waiting(0) == 0  # nothing applied before the books came
            out += p.apply_books(bk, 0) + p.books_at_end([0], 0)
        elif order == "books_first":
            out += p.apply_books(bk, 0) + p.apply(tr, 0) + p.books_at_end([0], 0)
        else:
            for j in range(max(-(-len(tr) // 300), -(-len(bk) // 100))):
                out += p.apply(tr[j * 300:(j + 1) * 300], 0) + p.apply_books(bk[j * 100:(j + 1) * 100], 0)
            out += p.books_at_end([0], 0)
        assert p.first_waiting(0) is None
        runs.append(_features(out))
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) > 200
    offline = features_frame(closed_bars(trades, (1,))[KEY], books)
    online = [fv for (i, _), fv in sorted(runs[0].items()) if i == 1]
    assert len(online) == len(offline)
    for fv, (_, row) in zip(online, offline.iterrows(), strict=True):
        assert fv.ts == row["ts"] and list(fv.features) == list(V2)
        for name in BOOK_FEATURE_NAMES:
            v = fv.features[name]
            assert (v is None and math.isnan(row[name])) or v == row[name], name


def test_a_v1_bundle_trades_on_v2_vectors_by_picking_its_names(tmp_path: Path) -> None:
    t = PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)
    v1 = feature(60_000, 1.0)
    v2 = FeatureVector(**{**{f: getattr(v1, f) for f in v1.__struct_fields__}, "feature_schema": "v2",
                          "features": {**v1.features, **dict.fromkeys(BOOK_FEATURE_NAMES)}})
    assert list(v2.features) == list(V2) and list(v1.features) == list(V1)
    assert t.refuse_reason(v2) is None
    decided = t.on_feature(v2, 60_000)
    assert decided.orders and decided.orders[0].target_position == 1.0  # long: the first feature is positive
    wrong = FeatureVector(**{**{f: getattr(v2, f) for f in v2.__struct_fields__}, "feature_schema": "v3"})
    assert "does not match" in (t.refuse_reason(wrong) or "")


def test_a_book_older_than_its_limit_gives_no_level_features_and_a_quiet_book_the_same_ones(
        recording: tuple[list[Trade], list[BookUpdate]]) -> None:
    """Trades replayed long after their books (the demo's candles after the recorded frames) get null level
    features, not a stale book's; bars over a book that did not change get the values computed afresh."""
    from contracts.feature_schema import BOOK_MAX_AGE_MS
    from streams.features.book_features import BookTrack

    _, books = recording
    last = max(u.ts_event for u in books)
    track, fresh = BookTrack(300_000), BookTrack(300_000)
    for u in books:
        track.receive(u)
        fresh.receive(u)
    at_last = track.values(last, last + 1_000)
    assert at_last[0] is not None and at_last[0] > 0  # a whole book: a spread
    quiet = track.values(last + 1_000, last + 2_000)  # no update since: from the kept values
    assert quiet[:10] == fresh.values(last + 1_000, last + 2_000)[:10]
    assert quiet[-2:] == [0.0, 0.0]  # no update in the bar: no flow
    stale = track.values(last + BOOK_MAX_AGE_MS + 1_000, last + BOOK_MAX_AGE_MS + 2_000)
    assert stale[:10] == [None] * 10, f"a book {BOOK_MAX_AGE_MS} ms old still gave level features: {stale}"


def _deltas(n: int, back_every: int) -> list[BookUpdate]:
    """A snapshot, then ``n`` deltas 10 ms apart whose event time steps back 25 ms every ``back_every`` (as a
    resync's buffered diffs come after the snapshot's receive time); the best levels' sizes change each time."""
    common: dict[str, Any] = {"schema_version": MESSAGE_V1, "exchange": "x", "symbol": "A-B", "venue_symbol": "AB",
                              "ts_ingest": 1}
    out = [BookUpdate(**common, kind="snapshot", seq=1, bids=[(99.0, 1.0), (98.0, 2.0)],
                      asks=[(101.0, 1.0), (102.0, 2.0)], ts_event=1_000)]
    ts = 1_000
    for i in range(n):
        ts += -25 if back_every and i % back_every == back_every - 1 else 10
        out.append(BookUpdate(**common, kind="delta", seq=i + 2, bids=[(99.0, 1.0 + i % 7)],
                              asks=[(101.0, 1.0 + i % 5), (100.5 + (i % 2), 0.0)], ts_event=ts))
    return out


@pytest.mark.parametrize("back_every", [0, 7])
def test_a_bars_order_flow_counts_the_updates_in_its_window_in_order_or_not(back_every: int) -> None:
    """The bisection over the updates' event times gives what a scan of them all gives, when they ascend and
    when they step back; cutting the old ones (and compacting the lists) changes nothing either."""
    from streams.features.book_features import BookTrack

    records = _deltas(3_000, back_every)
    keep_all, cut = BookTrack(10**9), BookTrack(200)
    for u in records:
        keep_all.receive(u)
        cut.receive(u)
    for start in range(1_000, records[-1].ts_event + 200, 100):
        got = keep_all.values(start, start + 100)
        flow = [e for t, e in zip(keep_all.flow_ts, keep_all.flow_ofi, strict=True) if start <= t < start + 100]
        total = 0.0
        for e in flow:
            total += e
        assert got[-2:] == [total, float(len(flow))], start
        assert cut.values(start, start + 100) == got, start
    assert len(cut.flow_ts) < 1_000 < len(keep_all.flow_ts)  # the cut one was compacted
    assert sum(keep_all.values(s, s + 100)[-1] or 0.0 for s in range(1_000, records[-1].ts_event + 200, 100)) > 2_000


def test_a_restarted_worker_applies_the_books_behind_its_trades_as_it_reads_them_and_gives_the_same_numbers(
        recording: tuple[list[Trade], list[BookUpdate]]) -> None:
    """The worker reads market.books from its start after a restart, its trades from the committed offsets:
    the books before the key's trade watermark (from the table) are applied as they are read, not queued
    until the first bar closes (days of books, all in memory), and the bars after the restart equal those
    of the uninterrupted run."""
    trades, books = recording
    trades, books = trades[:6000], [u for u in books if u.ts_event < trades[6000].ts_event]
    tr, bk = _trade_records(trades), _book_records(books)
    whole = Processor((1, 60), 2000, books=True)
    want = _features(whole.apply_books(bk, 0) + whole.apply(tr, 0) + whole.books_at_end([0], 0))
    first = Processor((1, 60), 2000, books=True)
    before = _features(first.apply_books(bk, 0) + first.apply(tr[:3000], 0))
    saved = {k: v for k, _, v in first.take_dirty()}
    again = Processor((1, 60), 2000, loader=saved.get, books=True)  # restarted: state from the table
    out = again.apply_books(bk, 0)
    # the state is read, not installed: installed, its stored lag could close bars on the wall clock while
    # the key's trades wait for the books
    assert not again.keys
    track = again.books[next(iter(saved))]
    watermark = trades[2999].ts_event - 2000
    assert track.applied > 0 and all(u.ts_event > watermark for u in track.pending), "books behind it queued"
    assert len(track.pending) == sum(u.ts_event > watermark for u in books)
    after = _features(out + again.apply(tr[3000:], 0) + again.books_at_end([0], 0))
    assert before and after and not before.keys() & after.keys()
    assert {**before, **after} == want


def test_books_far_ahead_of_their_trades_are_bounded_named_in_an_event_and_give_null_not_wrong_numbers(
        recording: tuple[list[Trade], list[BookUpdate]]) -> None:
    trades, books = recording
    trades, books = trades[:6000], [u for u in books if u.ts_event < trades[6000].ts_event]
    p = Processor((1, 60), 2000, books=True, book_backlog_max=1000)  # books of a key with no trades (yet)
    out = p.apply_books(_book_records(books), 0)
    track = p.books[next(iter(p.books))]
    assert len(track.pending) <= 1000 and track.applied_early == len(books) - len(track.pending)
    events = [decode(o.value, MarketEvent) for o in out if o.topic == "market.events"]
    assert events and all(e.kind == "book_backlog" for e in events)
    last = events[-1]
    assert (last.count, last.ts, last.symbol) == (track.applied_early, track.early_until, "BTC-USDT")
    assert "STREAMS__BOOK_BACKLOG_MAX" in last.detail and f"bars ending by ts {track.early_until}" in last.detail
    got = _features(out + p.apply(_trade_records(trades), 0) + p.books_at_end([0], 0))
    whole = Processor((1, 60), 2000, books=True)
    want = _features(whole.apply_books(_book_records(books), 0) + whole.apply(_trade_records(trades), 0))
    assert got.keys() == want.keys()
    nulls = [k for k in got if k[1] <= track.early_until]
    assert nulls and track.unknown == len(nulls)
    for k, fv in got.items():
        if k[1] <= track.early_until:  # the book had moved past the bar's end: no numbers rather than wrong ones
            assert all(fv.features[n] is None for n in BOOK_FEATURE_NAMES), k
        else:
            assert fv == want[k], k
