"""Book fills on a real broker: the bundled Binance depth frames replayed into market.books, orders written to
`orders`, `tickflow paper` (PAPER__BOOKS=BTC-USDT) killed with SIGKILL between two orders that take the same
level and restarted; its fills equal a book walk computed here, independently, from the book states
`tickflow book dump` shows (the book after every record up to each order's time), with no fill repeated."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contracts import V1, Fill, Order, decode, encode, market_key
from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.client_config import producer_config
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, MARKET_BOOKS, ORDERS
from infra.kafka.broker import BrokerInfo
from tests.helpers import REPO, cli_env, tickflow_cmd
from tests.integration.ingest_kafka_support import FRAMES

pytestmark = pytest.mark.integration
KEY = ("binance", "BTC-USDT")


def _order(i: int, ts: int, side: str, qty: float) -> Order:
    return Order(schema_version=V1, order_id=f"o{i}", policy_id="p", policy_version="v", exchange=KEY[0],
                 symbol=KEY[1], side=side, qty=qty, target_position=0.0, ts=ts, feature_ts=ts)  # type: ignore[arg-type]


def _expected(records: list[BookUpdate], orders: list[Order]) -> list[tuple]:
    """Each order (in time order) walks the book after every record up to its time, best level first, taking
    what earlier orders left of a level that shows the same size; what the side lacks is cancelled."""
    reader, clock, i, out = BookReader(), -1, 0, []
    taken: dict[tuple[bool, float], tuple[float, float]] = {}
    for o in orders:
        while i < len(records) and max(clock, records[i].ts_event) <= o.ts:
            clock = max(clock, records[i].ts_event)
            reader.apply(records[i])
            i += 1
        book = reader.books[KEY].book
        bid = o.side == "sell"
        left, takes = o.qty, []
        for price, size in (book.bids if bid else book.asks).top():
            had = taken.get((bid, price))
            used = had[1] if had is not None and had[0] == size else 0.0
            if size - used <= 0:
                continue
            q = min(left, size - used)
            takes.append((price, q, size))
            taken[(bid, price)] = (size, used + q)
            left -= q
            if left <= o.qty * 1e-12:
                break
        rest = o.qty - sum(q for _, q, _ in takes)
        rest = 0.0 if rest <= o.qty * 1e-12 else rest
        out += [(f"{o.order_id}-{k}", o.ts, price, q, size, k == len(takes), rest if k == len(takes) else 0.0)
                for k, (price, q, size) in enumerate(takes, 1)]
    return out


def _fills(bootstrap: str) -> list[Fill]:
    return [decode(m.value() or b"", Fill) for m in read_to_end(bootstrap, FILLS)]


def _wait_fills(bootstrap: str, order_ids: set[str], timeout: float = 60) -> list[Fill]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fills = _fills(bootstrap)
        if order_ids <= {f.order_id for f in fills if f.last}:
            return fills
        time.sleep(0.3)
    raise AssertionError(f"no last fill for {order_ids - {f.order_id for f in fills if f.last}} in {timeout:.0f} s")


def test_book_fills_equal_an_independent_walk_across_a_sigkill(shared_broker: BrokerInfo, tmp_path: Path) -> None:
    info = shared_broker
    env = cli_env(info.bootstrap, tmp_path)
    frames = tmp_path / "binance_spot_btcusdt_depth_timed.jsonl.gz"  # the depth frames and the REST snapshot only
    with gzip.open(FRAMES, "rt") as f, gzip.open(frames, "wt") as out:
        out.writelines(line for line in f if '"kind":"rest_depth_snapshot"' in line or "@depth@" in line[:120])
    replay = subprocess.run(tickflow_cmd("ingest", "replay", str(frames), "--venue", "binance", "--speed", "max",
                                         "--no-progress"), env=env, capture_output=True, text=True, timeout=180)
    assert replay.returncode == 0, replay.stderr[-3000:]
    records = [decode(m.value() or b"", BookUpdate) for m in read_to_end(info.bootstrap, MARKET_BOOKS)]
    assert len(records) > 5_000
    ts = [r.ts_event for r in records]

    def at(fraction: float) -> int:
        return ts[int(len(ts) * fraction)]

    reader = BookReader()
    for r in records:
        if r.ts_event > at(0.85):
            break
        reader.apply(r)  # the book as it stands at o4's time
    best_bid = reader.books[KEY].book.bids.top(1)[0]
    first = [_order(i, at(f), side, qty) for i, (f, side, qty) in enumerate(
        [(0.05, "buy", 0.5), (0.05, "buy", 0.5), (0.3, "sell", 2.0), (0.6, "buy", 3.0),
         (0.85, "sell", best_bid[1])])]  # o4 takes the whole best bid
    # after the kill: an order at the same time as the last one (it must find that order's liquidity taken),
    # a buy, and one larger than the whole ask side (partial fill, the rest cancelled)
    second = [_order(5 + i, at(f), side, qty) for i, (f, side, qty) in enumerate(
        [(0.85, "sell", 1.5), (0.9, "buy", 1.0), (0.95, "buy", 1e6)])]
    env.update({"PAPER__BOOKS": "BTC-USDT", "PAPER__MAX_NOTIONAL": "off", "PAPER__BOOK_BUFFER": "3000"})
    producer = Producer(producer_config(info.bootstrap))
    key = market_key(*KEY)
    for o in first:
        producer.produce(ORDERS.name, encode(o), key)
    producer.flush(30)
    log = (tmp_path / "paper.log").open("ab")
    paper = subprocess.Popen(tickflow_cmd("paper"), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_fills(info.bootstrap, {o.order_id for o in first})
        os.kill(paper.pid, signal.SIGKILL)
        paper.wait(30)
        for o in second:
            producer.produce(ORDERS.name, encode(o), key)
        producer.flush(30)
        paper = subprocess.Popen(tickflow_cmd("paper"), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        fills = _wait_fills(info.bootstrap, {o.order_id for o in first + second})
    finally:
        paper.kill()
        paper.wait(30)
    assert len({f.fill_id for f in fills}) == len(fills), "a fill was repeated"
    got = [(f.fill_id, f.ts, f.price, f.qty, f.book_size, f.last, f.cancelled) for f in fills]
    want = _expected(records, first + second)
    assert [g[:3] + g[4:6] for g in got] == [w[:3] + w[4:6] for w in want]
    assert [g[3] for g in got] == pytest.approx([w[3] for w in want], rel=1e-12)
    assert [g[6] for g in got] == pytest.approx([w[6] for w in want], rel=1e-12)
    o4, o5 = ([f for f in fills if f.order_id == oid] for oid in ("o4", "o5"))
    assert [(f.price, f.qty) for f in o4] == [best_bid] and o5[0].price < best_bid[0], "o5 took o4's liquidity"
    text = (tmp_path / "paper.log").read_text()
    rebuilt = [line for line in text.splitlines() if "Paper broker rebuilt" in line]
    assert len(rebuilt) == 2 and " 0 book records" in rebuilt[0] and " 0 book records" not in rebuilt[1]
    huge = [f for f in fills if f.order_id == "o7"]
    assert len(huge) > 100 and huge[-1].cancelled > 0 and "cancelled" in huge[-1].reason
