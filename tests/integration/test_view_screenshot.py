"""The live view in a real browser: known records on the session broker under a prefix of the test's own,
`tickflow view`, headless Chromium.

The page's DOM (after its scripts ran) must show what the topics hold, read back from the topics
themselves; the screenshot must be a real PNG of the window's size that is not blank.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from PIL import Image

from contracts import (
    V1,
    Bar,
    FeatureVector,
    Fill,
    Message,
    Order,
    PortfolioSnapshot,
    Trade,
    decode,
    encode,
    market_key,
    topic,
)
from contracts.books import BookUpdate
from contracts.client_config import producer_config
from contracts.history import binance_dump_trades, candle_trades
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, MARKET_BOOKS, MARKET_TRADES, ORDERS, PORTFOLIO, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo, free_port
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from tests.unit.ingestor.books_frames import BINANCE, run, timed_frames
from tickflow.view.state import VIEW_TOPICS

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TICKS = DATA / "ticks" / "BTCUSDT-trades-20240808T2354Z-20240809T0005Z.csv"
CANDLES = DATA / "ohlcv" / "binance_spot_ETHUSDT_1m_20250520T0000_20250818T1827.csv.gz"
WIDTH, HEIGHT = 1280, 1500  # tall enough for the whole page, the equity chart included
WARMING_BARS = 11


def _book_records(lines: int = 600) -> list[BookUpdate]:
    """The book records the ingestor's own book feed publishes from the bundled Binance frames' first lines
    (the REST snapshot, then deltas)."""
    _feed, sink = run("binance", timed_frames(BINANCE)[:lines])
    assert not sink.events and not sink.dead and len(sink.books) > 20
    return sink.books


def _known_records() -> list[Message]:
    """Real trades (BTC ticks, ETH candle-derived), bars of those trades, and a small trading story."""
    btc = list(islice(binance_dump_trades(TICKS, "BTCUSDT"), 300))
    eth = list(islice(candle_trades(CANDLES, "ETHUSDT"), 40))  # 10 candles, 4 trades each
    bars = []
    for i in range(0, len(eth), 4):
        group = eth[i:i + 4]
        start = group[0].ts_event
        volume = sum(t.size for t in group)
        bars.append(Bar(schema_version=V1, exchange="binance", symbol="ETH-USDT", interval_s=60, window_start=start,
                        window_end=start + 60_000, open=group[0].price, high=max(t.price for t in group),
                        low=min(t.price for t in group), close=group[-1].price, volume=volume,
                        vwap=sum(t.price * t.size for t in group) / volume, trades=4,
                        buy_volume=sum(t.size for t in group if t.side == "buy"),
                        sell_volume=sum(t.size for t in group if t.side == "sell")))
    last = bars[-1]
    features = FeatureVector(schema_version=V1, exchange="binance", symbol="ETH-USDT", interval_s=60,
                             ts=last.window_end, feature_schema="v1", ready=True, close=last.close,
                             features={"ret_1": 0.00123456, "rsi_14": 61.25, "bb_z_20": -0.5})
    order = Order(schema_version=V1, order_id="champion-1-ETH-USDT-1", policy_id="champion", policy_version="1",
                  exchange="binance", symbol="ETH-USDT", side="buy", qty=0.25, target_position=0.25,
                  ts=last.window_end + 3, feature_ts=last.window_end, reason="policy action 1")
    fill = Fill(schema_version=V1, fill_id="champion-1-ETH-USDT-1-0", order_id=order.order_id, policy_id="champion",
                exchange="binance", symbol="ETH-USDT", side="buy", price=last.close * 1.0002, qty=0.25,
                fee=0.25 * last.close * 0.001, slippage=0.25 * last.close * 0.0002, ts=last.window_end + 50,
                last=True)
    cost = fill.price * fill.qty + fill.fee
    early = PortfolioSnapshot(schema_version=V1, policy_id="champion", ts=last.window_end - 60_000,
                              positions={}, cash=10_000.0, equity=10_000.0, realised_pnl=0.0, unrealised_pnl=0.0,
                              fees=0.0, drawdown=0.0)
    book = PortfolioSnapshot(schema_version=V1, policy_id="champion", ts=fill.ts, positions={"ETH-USDT": 0.25},
                             cash=10_000.0 - cost, equity=10_000.0 - fill.fee - fill.slippage,
                             realised_pnl=0.0, unrealised_pnl=-fill.slippage, fees=fill.fee, drawdown=0.0001)
    # BTC is warming up: 11 bars of 60 s from the bundled 11 minutes of ticks, its features not ready yet
    minute = btc[0].ts_event - btc[0].ts_event % 60_000
    warming = [FeatureVector(schema_version=V1, exchange="binance", symbol="BTC-USDT", interval_s=60,
                             ts=minute + (k + 1) * 60_000, feature_schema="v1", ready=False, close=btc[0].price,
                             features={"ret_1": None if k == 0 else 0.0001, "rsi_14": None})
               for k in range(WARMING_BARS)]
    # and the same policy's book a year earlier, on the ticks' dates: two data sets share the equity chart's axis
    ticks_era = PortfolioSnapshot(schema_version=V1, policy_id="champion", ts=btc[0].ts_event, positions={},
                                  cash=10_000.0, equity=9_990.0, realised_pnl=-10.0, unrealised_pnl=0.0, fees=0.0,
                                  drawdown=0.001)
    return [*btc, *_book_records(), *eth, *bars, *warming, features, order, fill, ticks_era, early, book]


def _produce(bootstrap: str, records: list[Message]) -> None:
    names = {Trade: "market.trades", BookUpdate: "market.books", Bar: "signals.bars",
             FeatureVector: "signals.features", Order: "orders",
             Fill: "fills", PortfolioSnapshot: "portfolio"}
    producer = Producer(producer_config(bootstrap, {"linger.ms": 5}))
    for rec in records:
        key = rec.policy_id.encode() if isinstance(rec, PortfolioSnapshot) else market_key(
            rec.exchange, rec.symbol)  # type: ignore[attr-defined]
        producer.produce(topic(names[type(rec)]).name, key=key, value=encode(rec))
    assert producer.flush(30) == 0
    # and one record that breaks its contract: the page must count it as refused, not show it
    producer.produce(SIGNALS_FEATURES.name, key=b"binance:ETH-USDT", value=b'{"schema_version": 1, "bogus": true}')
    assert producer.flush(30) == 0


def _read_back(bootstrap: str) -> dict[str, list[Any]]:
    """Everything on the view's topics, decoded (refused records as None)."""
    out: dict[str, list[Any]] = {}
    for view_topic in VIEW_TOPICS:
        name = view_topic.name
        records: list[Any] = []
        for msg in read_to_end(bootstrap, name):
            try:
                records.append(decode(msg.value() or b"", view_topic.value_type))
            except ValueError:
                records.append(None)
        out[name] = records
    return out


class _Dom(HTMLParser):
    """Elements with a data-field, their text, and the data-* context of their ancestors."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str]] = []
        self.fields: list[dict[str, str]] = []
        self._open: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        ctx = {**(self.stack[-1] if self.stack else {}), **{k: v for k, v in a.items() if k.startswith("data-")}}
        if tag in ("br", "img", "meta", "link", "input"):
            return
        self.stack.append(ctx)
        if "data-field" in a:
            ctx = {**ctx, "text": ""}
            self.fields.append(ctx)
            self._open.append(ctx)
        else:
            self._open.append({})

    def handle_endtag(self, tag: str) -> None:
        if self.stack:
            self.stack.pop()
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ctx in self._open:
            if "text" in ctx:
                ctx["text"] += data

    def find(self, **want: str) -> list[dict[str, str]]:
        keys = {k.replace("_", "-") if k != "field" else "data-field": v for k, v in want.items()}
        return [f for f in self.fields if all(f.get(k) == v for k, v in keys.items())]


@pytest.fixture
def view_url(shared_broker: BrokerInfo, tmp_path: Path) -> Iterator[tuple[str, str]]:
    info = shared_broker
    _produce(info.bootstrap, _known_records())
    port = free_port()
    env = cli_env(info.bootstrap, tmp_path / "home")
    proc = subprocess.Popen(tickflow_cmd("view", "--port", str(port), "--poll-ms", "0"), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        expected = len(_known_records()) + 1
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                with urllib.request.urlopen(f"{url}/api/state", timeout=2) as resp:
                    state = json.load(resp)
                if sum(state["counts"].values()) + sum(state["refused"].values()) >= expected:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the view did not read the topics within 60 s"
            time.sleep(0.3)
        yield url, info.bootstrap
    finally:
        proc.terminate()
        assert proc.wait(20) == 0, "tickflow view did not stop cleanly on SIGTERM"


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=3000", *args],
        capture_output=True, text=True, timeout=120)


def test_page_in_headless_chromium_shows_what_the_topics_hold(view_url: tuple[str, str], tmp_path: Path) -> None:
    url, bootstrap = view_url
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    dom_run = _chromium(tmp_path, "--dump-dom", url + "/")
    assert dom_run.returncode == 0, dom_run.stderr[-2000:]
    dom = _Dom()
    dom.feed(dom_run.stdout)
    held = _read_back(bootstrap)

    # Records per topic, counted on the topics themselves (the refused one excluded).
    for name, records in held.items():
        shown = dom.find(field="count", data_topic=name)
        assert shown and int(shown[0]["data-value"]) == len([r for r in records if r is not None]), name
        assert int(shown[0]["text"]) == int(shown[0]["data-value"])
    assert dom.find(field="refused", data_topic=SIGNALS_FEATURES.name), "the refused record is not reported"

    # Last price per market: the trade with the latest event time (or the last bar's close).
    trades = [t for t in held[MARKET_TRADES.name] if t is not None]
    for key in {f"{t.exchange}:{t.symbol}" for t in trades}:
        last = max((t for t in trades if f"{t.exchange}:{t.symbol}" == key), key=lambda t: t.ts_event)
        price = dom.find(field="last_price", data_market=key)
        assert price and float(price[0]["data-value"]) == last.price, key
        assert price[0]["text"] == f"{last.price:.2f}"

    # Order books: each market's book rebuilt here from the records alone (a dict a side), its top and
    # spread as shown.
    books: dict[str, tuple[dict[float, float], dict[float, float]]] = {}
    for u in (u for u in held[MARKET_BOOKS.name] if u is not None):
        bids, asks = books.setdefault(f"{u.exchange}:{u.symbol}", ({}, {}))
        if u.kind == "snapshot":
            bids.clear()
            asks.clear()
        for side, levels in ((bids, u.bids), (asks, u.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
    assert books, "no book records on market.books"
    for key, (bids, asks) in books.items():
        bid, ask = max(bids), min(asks)
        top = {f: float(dom.find(field=f, data_market=key, data_book=key)[0]["data-value"])
               for f in ("best_bid", "best_bid_size", "best_ask", "best_ask_size", "spread", "spread_bps")}
        assert top == {"best_bid": bid, "best_bid_size": bids[bid], "best_ask": ask, "best_ask_size": asks[ask],
                       "spread": ask - bid, "spread_bps": (ask - bid) / ((bid + ask) / 2) * 1e4}, key
        assert dom.find(field="best_bid", data_market=key)[0]["text"] == f"{bid:.2f}"
        ladder = [float(c["data-value"]) for c in dom.find(field="bid_price", data_market=key)]
        assert ladder == sorted(bids, reverse=True)[:5], key
        assert [float(c["data-value"]) for c in dom.find(field="ask_price", data_market=key)] == sorted(asks)[:5]

    # Signals: the latest feature vector's values, as shown.
    fv = max((f for f in held[SIGNALS_FEATURES.name] if f is not None), key=lambda f: f.ts)
    key = f"{fv.exchange}:{fv.symbol}"
    for name, value in fv.features.items():
        cell = dom.find(field="feature", data_market=key, data_feature=name)
        assert cell and float(cell[0]["data-value"]) == value, name
        assert abs(float(cell[0]["text"]) - value) <= 0.00005 + 1e-12
    assert dom.find(field="feature_ts", data_market=key)[0]["data-value"] == str(fv.ts)

    # What each market waits for before the first decision, counted from the features of the policy's interval.
    assert [f["text"] for f in dom.find(field="warmup", data_market="binance:BTC-USDT")] == [
        f"60 s bars: {WARMING_BARS} of 61 needed before the first decision"]
    assert [f["text"] for f in dom.find(field="warmup", data_market=key)] == [
        "60 s bars: features ready (61 bars needed)"]
    # The equity chart spans the ticks' year and the candles' year: two segments, neither squashed.
    assert 'data-segments="2"' in dom_run.stdout

    # Positions and PnL: the latest snapshot per policy.
    book = max((p for p in held[PORTFOLIO.name] if p is not None), key=lambda p: p.ts)
    for field in ("cash", "equity", "realised_pnl", "unrealised_pnl", "fees"):
        cell = dom.find(field=field, data_policy=book.policy_id)
        assert cell and float(cell[0]["data-value"]) == getattr(book, field), field
        assert abs(float(cell[0]["text"]) - getattr(book, field)) <= 0.005 + 1e-9, field
    for symbol, qty in book.positions.items():
        cell = dom.find(field="position", data_policy=book.policy_id, data_symbol=symbol)
        assert cell and float(cell[0]["data-value"]) == qty

    # Orders and fills tables.
    for order in (o for o in held[ORDERS.name] if o is not None):
        assert float(dom.find(field="qty", data_order=order.order_id)[0]["data-value"]) == order.qty
    for fill in (f for f in held[FILLS.name] if f is not None):
        assert float(dom.find(field="price", data_fill=fill.fill_id)[0]["data-value"]) == fill.price

    # The screenshot: a PNG of the window's size with a real picture on it.
    shot = tmp_path / "view.png"  # kept under the test's tmp_path: look at it
    shot_run = _chromium(tmp_path, f"--screenshot={shot}", url + "/")
    assert shot_run.returncode == 0 and shot.exists(), shot_run.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(shot) as img:
        assert img.size == (WIDTH, HEIGHT)
        rgb = img.convert("RGB")
        colours = [(n, c) for n, c in rgb.getcolors(maxcolors=1 << 20) or [] if isinstance(c, tuple)]  # RGB: all
        background = max(colours)[1] if colours else None
        painted = sum(n for n, c in colours if c != background)
    assert len(colours) > 50, f"the screenshot has only {len(colours)} colours: blank page?"
    assert painted > 0.02 * WIDTH * HEIGHT, "almost nothing is drawn on the screenshot"
    # The price chart's line (#58a6ff) and the buy marker (#3fb950) are drawn.
    assert any(abs(c[0] - 0x58) < 30 and abs(c[1] - 0xA6) < 30 and abs(c[2] - 0xFF) < 30 for _, c in colours)
