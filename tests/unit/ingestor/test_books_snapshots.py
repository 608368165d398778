"""Fresh snapshots for live books: Binance's REST snapshot fetched from a real local HTTP server (retried
when it fails), and the websocket venues' book resubscribed."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator

import pytest

from ingestor.books.feed import BookFeed
from ingestor.books.snapshots import REST_KIND, SnapshotRequests
from ingestor.venues import venue
from tests.rest_loopback import serve_body
from tests.unit.ingestor.books_frames import BINANCE, Sink, timed_frames

FRAMES = timed_frames(BINANCE)[:3000]
REST = next(f.raw for f in FRAMES if f.kind == REST_KIND)


@pytest.fixture
def rest_server() -> Iterator[tuple[str, list[str]]]:
    """Serves the recorded REST snapshot; the first request fails with a 503."""
    with serve_body(REST, fail_first=1) as served:
        yield served


def test_binance_books_start_from_a_fetched_rest_snapshot(rest_server: tuple[str, list[str]]) -> None:
    base, asked = rest_server
    spec = dataclasses.replace(venue("binance"), book_snapshot_url=lambda s: f"{base}/api/v3/depth?symbol={s}")
    stop = threading.Event()
    got = threading.Event()
    delivered: list[tuple[str, int, str]] = []

    def deliver(raw: str, recv_ms: int, symbol: str) -> None:
        delivered.append((raw, recv_ms, symbol))
        got.set()

    requests = SnapshotRequests(spec, deliver, lambda _t: False, stop, retry_s=0.05)
    sink = Sink()
    sink.resync = requests.resync  # type: ignore[method-assign]
    feed = BookFeed(spec, sink)
    ws = [f for f in FRAMES if f.kind == "ws"]
    half = len(ws) // 3
    for f in ws[:half]:  # diffs buffer while the snapshot is fetched
        feed.on_frame(f.raw, f.recv_ms)
    assert got.wait(10), "no snapshot fetched"
    stop.set()
    assert asked == ["/api/v3/depth?symbol=BTCUSDT"] * 2  # the 503 was retried
    raw, recv_ms, symbol = delivered[0]
    assert raw == REST and symbol == "BTCUSDT"
    feed.on_frame(raw, recv_ms, REST_KIND, symbol)
    for f in ws[half:]:
        feed.on_frame(f.raw, f.recv_ms)
    snap_id = json.loads(REST)["lastUpdateId"]
    assert sink.books[0].kind == "snapshot" and sink.books[0].seq == snap_id
    assert sink.events == [] and len(sink.books) > 100


RESUBSCRIBE = {
    "okx": ('{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
            '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}'),
    "kraken": ('{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10}}',
               '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":10,"snapshot":true}}'),
    "coinbase_advanced": ('{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}',
                          '{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}'),
}


@pytest.mark.parametrize("name", sorted(RESUBSCRIBE))
def test_websocket_venues_resubscribe_the_one_book(name: str) -> None:
    sent: list[str] = []

    def send(text: str) -> bool:
        sent.append(text)
        return True

    requests = SnapshotRequests(venue(name), lambda *_a: None, send, threading.Event())
    requests.resync(name, {"okx": "BTC-USDT", "kraken": "BTC/USD"}.get(name, "BTC-USD"))
    assert sent == list(RESUBSCRIBE[name])
