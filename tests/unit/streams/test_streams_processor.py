"""The worker's batch logic without Kafka: dead letters, re-delivery after a crash, late events, live closes,
and the engine's state surviving a restart bit for bit."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import V1, DeadLetter, FeatureVector, MarketEvent, Trade, decode, encode
from contracts.feature_schema import BOOK_FEATURE_NAMES, FEATURE_NAMES, STREAMS_SCHEMA, V2
from contracts.history import candle_trades
from streams.features.engine import FeatureEngine
from streams.offline import closed_bars, features_frame
from streams.processor import Output, Processor
from tests.helpers import DATA

CANDLES = sorted((DATA / "ohlcv").glob("binance_spot_BTCUSDT_1m_*.csv.gz"))[0]


def trades(n: int) -> list[Trade]:
    out = []
    for t in candle_trades(CANDLES, "BTCUSDT"):
        out.append(t)
        if len(out) == n:
            return out
    return out


def records(ts: list[Trade], partition: int = 1, start: int = 0) -> list[tuple[int, int, bytes]]:
    return [(partition, start + i, encode(t)) for i, t in enumerate(ts)]


def test_features_equal_the_offline_builder_and_redelivered_trades_are_not_applied_twice() -> None:
    ts = trades(800)
    p = Processor((60,), 2000)
    out = p.apply(records(ts[:500]), now_ms=0)
    saved = {k: v for k, _, v in p.take_dirty()}
    out += p.apply(records(ts[500:], start=500), now_ms=0)
    # a crash: the worker restarts from the saved state and Kafka re-delivers from offset 300
    q = Processor((60,), 2000, loader=saved.get)
    again = q.apply(records(ts[300:], start=300), now_ms=0)
    assert q.skipped == 200
    assert [o for o in again if o.topic == "signals.features"] == [o for o in out if o.topic == "signals.features"][
        -len([o for o in again if o.topic == "signals.features"]):]
    fvs = [decode(o.value, FeatureVector) for o in out if o.topic == "signals.features"]
    offline = features_frame(next(iter(closed_bars(ts, (60,)).values())))
    assert len(fvs) == len(offline) == 199
    for fv, (_, row) in zip(fvs, offline.iterrows(), strict=True):
        assert fv.ts == row["ts"] and fv.feature_schema == STREAMS_SCHEMA and fv.ready == row["ready"]
        assert list(fv.features) == list(V2)
        for name, v in fv.features.items():
            if name in BOOK_FEATURE_NAMES:
                assert v is None  # no books for this symbol: null, and the vector still flows
            else:
                assert (v is None and math.isnan(row[name])) or v == row[name]
    assert fvs[-1].ready and fvs[0].source[0].topic == "market.trades" and fvs[0].source[1].offset == 3


def test_a_record_that_fails_its_contract_goes_to_the_dead_letter_topic_and_the_batch_goes_on() -> None:
    ts = trades(12)
    bad = json.dumps({**json.loads(encode(ts[5])), "price": -1}).encode()
    recs = records(ts)
    recs[5] = (1, 5, bad)
    out = Processor((60,), 2000).apply(recs, now_ms=123)
    dead = [decode(o.value, DeadLetter) for o in out if o.topic == "market.trades.dlq"]
    assert len(dead) == 1 and dead[0].offset == 5 and dead[0].partition == 1 and "price" in dead[0].reason
    assert dead[0].raw == bad.decode()
    assert len([o for o in out if o.topic == "signals.bars"]) == 2


def test_late_trades_are_reported_on_market_events() -> None:
    ts = trades(40)
    late = Trade(schema_version=V1, exchange="binance", symbol="BTC-USDT", venue_symbol="BTCUSDT", trade_id="x",
                 price=1.0, size=1.0, side="buy", ts_event=ts[0].ts_event, ts_ingest=ts[0].ts_event)
    out = Processor((60,), 2000).apply(records([*ts, late]), now_ms=0)
    events = [decode(o.value, MarketEvent) for o in out if o.topic == "market.events"]
    assert [(e.kind, e.count, e.symbol) for e in events] == [("late", 1, "BTC-USDT")]


def test_live_keys_close_on_the_wall_clock_and_replayed_keys_do_not() -> None:
    now = 1_800_000_030_000  # mid-minute: only the 1 s bar is due
    live = Trade(schema_version=V1, exchange="kraken", symbol="BTC-USD", venue_symbol="BTC/USD", trade_id="1",
                 price=1.0, size=1.0, side="buy", ts_event=now - 30, ts_ingest=now - 20)
    p = Processor((1, 60), 2000)
    p.apply(records([*trades(3), live]), now_ms=now)
    deadline = p.next_live_deadline(10_000)
    assert deadline == (now - 30) - (now - 30) % 1000 + 1000 + 2000
    out = p.advance_live(deadline, 10_000)
    assert [(o.topic, json.loads(o.value)["symbol"]) for o in out] == [("signals.bars", "BTC-USD"),
                                                                        ("signals.features", "BTC-USD")]


def test_a_backlog_after_a_rebalance_is_not_dropped_as_late_by_the_wall_clock() -> None:
    """A worker gets a live partition back after a rebalance's pause: the trades of the pause wait unread
    after its committed offset. Until the partition is read to its end, the wall clock closes none of its
    keys' bars; before, the first batch's wall-clock close shut the bar the backlog's trades belong to and
    they were dropped as late (a cluster bench saw 31,140 so)."""
    now = 1_800_000_000_000  # a minute's start
    def live(i: int, ts: int) -> Trade:
        return Trade(schema_version=V1, exchange="kraken", symbol="BTC-USD", venue_symbol="BTC/USD", trade_id=str(i),
                     price=100.0 + i, size=1.0, side="buy", ts_event=ts, ts_ingest=ts)
    before = [live(i, now + 50_000 + i * 100) for i in range(10)]  # live up to the rebalance, mid-bar
    backlog = [live(10 + i, now + 51_000 + i * 1_000) for i in range(8)]  # during the 8 s pause, same bar
    p = Processor((1, 60), 2000)
    p.apply(records(before), now_ms=now + 51_000)
    saved = {k: v for k, _, v in p.take_dirty()}
    q = Processor((1, 60), 2000, loader=saved.get)  # the partition back: state from the table
    q.catching_up({1})
    q.apply(records(before[-1:], start=9), now_ms=now + 59_500)  # re-delivered from the committed offset
    back = now + 62_500  # past the minute's end plus grace on the wall clock
    q.advance_live(back, 10_000)
    q.apply(records(backlog, start=10), now_ms=back)
    assert q.late == 0 and all(late == 0 for ks in q.keys.values() for late in ks.bars.late), \
        "the backlog's trades were dropped as late"
    q.caught_up(1)
    out = q.advance_live(back + 100, 10_000)
    minute = [json.loads(o.value) for o in out if o.topic == "signals.bars" and json.loads(o.value)["interval_s"] == 60]
    assert [b["trades"] for b in minute] == [18], "the minute's bar holds the trades before and during the pause"


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300))
def test_engine_state_round_trips_exactly(cut: int) -> None:
    bars = next(iter(closed_bars(trades(1300), (60,)).values()))
    a = FeatureEngine()
    want = [a.update(b) for b in bars]
    b = FeatureEngine()
    got = [b.update(x) for x in bars[:cut]]
    b = FeatureEngine.from_builtins(json.loads(json.dumps(b.to_builtins())))
    got += [b.update(x) for x in bars[cut:]]
    assert [[v if not math.isnan(v) else None for v in r] for r in got] == [
        [v if not math.isnan(v) else None for v in r] for r in want]


def test_features_build_cli_writes_ts_and_one_column_per_feature(tmp_path: Path) -> None:
    import gzip
    import subprocess
    import sys

    import pandas as pd

    src = tmp_path / "c.csv"
    with gzip.open(CANDLES, "rt") as f:
        lines = f.read().splitlines()[:301]
    src.write_text("\n".join(lines) + "\n")
    for out in (tmp_path / "f.csv", tmp_path / "f.parquet"):
        done = subprocess.run([sys.executable, "-m", "tickflow", "features", "build", str(src), "--symbol", "BTCUSDT",
                               "--out", str(out)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "299 bars of 60 s (239 ready)" in done.stdout
        frame = pd.read_csv(out) if out.suffix == ".csv" else pd.read_parquet(out)
        assert list(frame.columns[-len(FEATURE_NAMES):]) == list(FEATURE_NAMES) and "ts" in frame
        assert len(frame) == 299 and frame["ts"].is_monotonic_increasing
    bad = subprocess.run([sys.executable, "-m", "tickflow", "features", "build", str(src), "--out",
                          str(tmp_path / "x.csv")], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--symbol" in bad.stderr


def test_a_bad_setting_stops_the_worker_with_a_sentence_naming_it() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, STREAMS__INTERVALS_S="60,abc", KAFKA_BOOTSTRAP="127.0.0.1:9")
    done = subprocess.run([sys.executable, "-m", "tickflow", "streams", "worker"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "STREAMS__INTERVALS_S='60,abc' must list distinct positive seconds" in done.stderr


LIVE_T0 = 1_800_000_000_000


def _by_key(out: list[Output]) -> dict[tuple[str, bytes | None, int | None], list[bytes]]:
    """The records per topic, key and bar interval, in order."""
    seq: dict[tuple[str, bytes | None, int | None], list[bytes]] = {}
    for o in out:
        seq.setdefault((o.topic, o.key, json.loads(o.value).get("interval_s")), []).append(o.value)
    return seq


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_closing_ahead_of_time_publishes_what_closing_on_time_does(data: st.DataObject) -> None:
    """Live trades arriving late, in order, from the future; bars closed ahead by up to 900 ms (undone when a
    trade still counts in them), a revoke now and then: per topic and key, the same records as closing on time,
    the same final state, the same late counts, and a held key's state is never handed out early."""
    ahead = data.draw(st.integers(1, 900), label="ahead_ms")
    on_time, early = Processor((1, 5), 2000), Processor((1, 5), 2000)
    out_a: list[Output] = []
    out_b: list[Output] = []
    now, offset = LIVE_T0, 0
    for _ in range(data.draw(st.integers(5, 60), label="steps")):
        now += data.draw(st.integers(0, 400))
        batch = []
        for _ in range(data.draw(st.integers(0, 4))):
            lag = data.draw(st.one_of(st.integers(0, 60), st.integers(1500, 2600), st.integers(-1500, 0)))
            k = data.draw(st.integers(0, 2))
            batch.append((k % 2, offset, encode(Trade(
                schema_version=V1, exchange="live", symbol=f"K{k}-USD", venue_symbol=f"K{k}USD", trade_id=str(offset),
                price=100.0 + data.draw(st.integers(0, 50)) / 10, size=1.0, side="buy", ts_event=now - lag,
                ts_ingest=now))))
            offset += 1
        out_a += on_time.apply(batch, now) + on_time.advance_live(now, 10_000)
        out_b += early.apply(batch, now)
        due = early.next_live_deadline(10_000)
        if not early.ahead.holding and due is not None and due - ahead <= now < due:
            early.close_ahead(due, 10_000)
        out_b += early.advance_live(now, 10_000)
        if data.draw(st.integers(0, 9)) == 0:  # a revoke or a stop undoes what is held
            out_b += early.release_held()
        assert not {k for k, _, _ in early.take_dirty()} & early.ahead.held.keys()
        on_time.take_dirty()
    out_b += early.release_held()
    assert _by_key(out_b) == _by_key(out_a)
    assert {k: v.to_bytes() for k, v in early.keys.items()} == {k: v.to_bytes() for k, v in on_time.keys.items()}
    assert early.late == on_time.late and early.skipped == on_time.skipped == 0


def test_trades_produced_again_count_once_and_their_ids_survive_a_restart() -> None:
    """A replay run twice puts every trade on the topic twice, at new offsets: bars and features still count each
    trade once, in windows still open as in closed ones, also when the worker restarted in between. Trades
    with non-numeric ids are not checked."""
    ts = trades(400)
    once = Processor((60, 300), 2000)
    want = once.apply(records(ts), now_ms=0)
    p = Processor((60, 300), 2000)
    got = p.apply(records(ts[:250]), now_ms=0)
    saved = {k: v for k, _, v in p.take_dirty()}
    q = Processor((60, 300), 2000, loader=saved.get)  # a restart between the runs
    got += q.apply(records(ts[250:], start=250), now_ms=0)
    got += q.apply(records(ts, start=400), now_ms=0)  # the second run
    assert _by_key(got) == _by_key(want)
    assert q.duplicates == 400 and q.late == 0 and q.skipped == 0
    assert q.keys[b"binance:BTC-USDT"].to_bytes() == once.keys[b"binance:BTC-USDT"].to_bytes()
    named = [msgspec.structs.replace(t, trade_id=f"x{i}") for i, t in enumerate(ts[-3:])]
    open_60s = q.keys[b"binance:BTC-USDT"].bars.open[0]
    before = sum(acc.n for acc in open_60s.values())
    q.apply(records(named, start=800), now_ms=0)
    assert q.duplicates == 400 and sum(acc.n for acc in open_60s.values()) == before + 3


def test_another_sources_lower_ids_with_later_times_still_count() -> None:
    """Candle-derived trades replayed after a venue's ticks have lower ids but later times (the demo does
    this): they are new trades, applied; the same trades produced again are dropped."""
    ts = trades(200)
    later = [msgspec.structs.replace(t, trade_id=str(i), ts_event=t.ts_event + 3_600_000, ts_ingest=t.ts_ingest +
                                     3_600_000) for i, t in enumerate(ts[:50])]
    p = Processor((60,), 2000)
    p.apply(records(ts), now_ms=0)
    p.apply(records(later, start=200), now_ms=0)
    assert p.duplicates == 0 and p.late == 0
    p.apply(records(later, start=250), now_ms=0)
    assert p.duplicates == 50
