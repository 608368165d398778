"""What the live view shows, kept from the topics' records: pure state, no Kafka.

``ViewState.apply(topic_name, message)`` folds one decoded record in; ``snapshot()`` returns the
JSON-ready picture the page renders. Memory is bounded: per market the last ``max_points`` bar closes
(or trade prices before the first bar), per policy the last ``max_points`` equity values, and the last
``max_rows`` orders and fills. Each market's order book is rebuilt from ``market.books`` with the
project's own ``BookReader`` (one book per market, as deep as the venue sends it); the page shows its
top of book, spread and best levels (``top_of_book``). The price chart and the features follow
``interval_s``, the policy's bar interval (the worker emits several), or the shortest interval seen when it
is not given; per market the view counts that interval's feature vectors, so it says what the trader waits
for ("60 s bars: 14 of 61 needed before the first decision").

Champion and challengers side by side: each book is keyed by its lane and policy id, the champions' from
``portfolio``/``orders`` and the challengers' in shadow from ``portfolio.shadow``/``orders.shadow``
(`tickflow trade --shadow`); per book the view keeps its equity, position, the version on its last order
and its decisions that moved the position (its orders), champions first.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from contracts.book_reader import BookReader
from contracts.books import BookUpdate
from contracts.feature_schema import warmup_text
from contracts.messages import Bar, FeatureVector, Fill, Message, Order, PortfolioSnapshot, Trade
from contracts.serde import to_dict
from contracts.timeutil import now_ms
from contracts.topics import (
    FILLS,
    FILLS_SHADOW,
    MARKET_BOOKS,
    MARKET_TRADES,
    ORDERS,
    ORDERS_SHADOW,
    PORTFOLIO,
    PORTFOLIO_SHADOW,
    SIGNALS_BARS,
    SIGNALS_FEATURES,
    Topic,
)
from tickflow.view.top_of_book import top_of_book

VIEW_TOPICS: tuple[Topic, ...] = (MARKET_TRADES, MARKET_BOOKS, SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS,
                                  PORTFOLIO, ORDERS_SHADOW, FILLS_SHADOW, PORTFOLIO_SHADOW)
ROLES = ("champion", "shadow")  # the live lane's books, then the challengers' in shadow


@dataclass
class _Market:
    exchange: str
    symbol: str
    trades: int = 0
    last_price: float | None = None
    last_trade_ts: int | None = None
    trade_points: deque[tuple[int, float]] = field(default_factory=deque)
    bars: int = 0
    bar_interval_s: int | None = None
    bar_points: deque[tuple[int, float]] = field(default_factory=deque)
    last_bar: Bar | None = None
    features: FeatureVector | None = None
    feature_counts: dict[int, int] = field(default_factory=dict)  # interval_s -> feature vectors seen
    markers: deque[tuple[int, str, float]] = field(default_factory=deque)  # (feature_ts, side, qty)
    book_updates: int = 0  # book records applied to a whole book
    book_seq: int | None = None
    book_ts: int | None = None
    top: dict[str, Any] | None = None  # top_of_book of the book as it stands


@dataclass
class _Book:
    """One book: a policy's, or one of its instances' (each instance books the symbols of its partitions)."""

    latest: PortfolioSnapshot | None = None
    equity: deque[tuple[int, float]] = field(default_factory=deque)


@dataclass
class _Decisions:
    orders: int = 0  # the policy's decisions that moved a position
    version: str | None = None  # the policy version on its last order


class ViewState:
    """Thread-safe: the Kafka feed thread applies records while HTTP threads take snapshots."""

    def __init__(self, max_points: int = 600, max_rows: int = 50, interval_s: int | None = None) -> None:
        self.max_points = max_points
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.counts: dict[str, int] = dict.fromkeys((t.name for t in VIEW_TOPICS), 0)
        self.refused: dict[str, int] = dict.fromkeys((t.name for t in VIEW_TOPICS), 0)
        self._markets: dict[str, _Market] = {}
        self._orders: deque[tuple[str, Order]] = deque(maxlen=max_rows)  # (role, order)
        self._fills: deque[tuple[str, Fill]] = deque(maxlen=max_rows)
        self._books: dict[tuple[str, str, str], _Book] = {}  # (role, policy id, instance or "") -> book
        self._decisions: dict[tuple[str, str], _Decisions] = {}  # (role, policy id) -> its orders
        self._order_books = BookReader()
        self._lock = threading.Lock()

    def _market(self, exchange: str, symbol: str) -> _Market:
        key = f"{exchange}:{symbol}"
        market = self._markets.get(key)
        if market is None:
            market = _Market(exchange, symbol, trade_points=deque(maxlen=self.max_points),
                             bar_points=deque(maxlen=self.max_points), markers=deque(maxlen=self.max_rows))
            self._markets[key] = market
        return market

    def refuse(self, topic_name: str) -> None:
        """Count a record that failed its contract (the view shows the count; it never guesses)."""
        with self._lock:
            self.refused[topic_name] = self.refused.get(topic_name, 0) + 1

    def apply(self, topic_name: str, message: Message) -> None:
        """Fold one record of ``topic_name`` into the picture."""
        with self._lock:
            self.counts[topic_name] = self.counts.get(topic_name, 0) + 1
            if isinstance(message, Trade):
                m = self._market(message.exchange, message.symbol)
                m.trades += 1
                if m.last_trade_ts is None or message.ts_event >= m.last_trade_ts:
                    m.last_price, m.last_trade_ts = message.price, message.ts_event
                m.trade_points.append((message.ts_event, message.price))
            elif isinstance(message, Bar):
                self._bar(message)
            elif isinstance(message, FeatureVector):
                self._feature(message)
            elif isinstance(message, Order):
                role = self._role(topic_name)
                self._orders.append((role, message))
                decisions = self._decisions.setdefault((role, message.policy_id), _Decisions())
                decisions.orders += 1
                decisions.version = message.policy_version
                market = self._market(message.exchange, message.symbol)
                if role == "champion":  # the price chart marks the orders that trade
                    market.markers.append((message.feature_ts, message.side, message.qty))
            elif isinstance(message, Fill):
                self._fills.append((self._role(topic_name), message))
            elif isinstance(message, BookUpdate):
                self._apply_book(message)
            elif isinstance(message, PortfolioSnapshot):
                book = self._book(self._role(topic_name), message.policy_id, message.instance or "")
                if book.latest is None or message.ts >= book.latest.ts:
                    book.latest = message
                book.equity.append((message.ts, message.equity))

    @staticmethod
    def _role(topic_name: str) -> str:
        return "shadow" if topic_name in (ORDERS_SHADOW.name, FILLS_SHADOW.name, PORTFOLIO_SHADOW.name) else "champion"

    def _book(self, role: str, policy_id: str, instance: str) -> _Book:
        book = self._books.get((role, policy_id, instance))
        if book is None:
            book = self._books[(role, policy_id, instance)] = _Book(equity=deque(maxlen=self.max_points))
        return book

    def _bar(self, message: Bar) -> None:
        m = self._market(message.exchange, message.symbol)
        m.bars += 1
        # The chart follows the policy's interval (or the shortest seen), one point per bar.
        if self.interval_s is not None:
            m.bar_interval_s = self.interval_s
        elif m.bar_interval_s is None or message.interval_s < m.bar_interval_s:
            m.bar_interval_s = message.interval_s
            m.bar_points.clear()
        if message.interval_s == m.bar_interval_s:
            m.bar_points.append((message.window_end, message.close))
            if m.last_bar is None or message.window_end >= m.last_bar.window_end:
                m.last_bar = message

    def _feature(self, message: FeatureVector) -> None:
        m = self._market(message.exchange, message.symbol)
        m.feature_counts[message.interval_s] = m.feature_counts.get(message.interval_s, 0) + 1
        if self.interval_s is not None and message.interval_s != self.interval_s:
            return
        if m.features is None or message.ts >= m.features.ts:
            m.features = message

    def _apply_book(self, u: BookUpdate) -> None:
        """A book record: the market's book rebuilt as a consumer of market.books does, its top kept."""
        book = self._order_books.apply(u, f"{u.exchange}:{u.symbol}")
        if book is None:
            return
        m = self._market(u.exchange, u.symbol)
        m.book_updates += 1
        m.book_seq, m.book_ts, m.top = u.seq, u.ts_event, top_of_book(book)

    def snapshot(self) -> dict[str, Any]:
        """The picture as plain JSON-ready data, markets and policies in name order."""
        with self._lock:
            markets = [{**self._market_view(key, m), "warmup": self._warmup(m)}
                       for key, m in sorted(self._markets.items())]
            # one row per book: a policy run as several instances has one per instance (each its own cash)
            portfolios = []
            for (role, pid, _), book in sorted(self._books.items(), key=lambda kv: (ROLES.index(kv[0][0]), kv[0][1:])):
                if book.latest is not None:
                    d = self._decisions.get((role, pid), _Decisions())
                    portfolios.append({**to_dict(book.latest), "role": role, "version": d.version, "orders": d.orders,
                                       "equity_series": [list(p) for p in book.equity]})
            return {
                "generated_ms": now_ms(),
                "counts": dict(self.counts),
                "refused": dict(self.refused),
                "markets": markets,
                "orders": [{**to_dict(o), "role": role} for role, o in reversed(self._orders)],
                "fills": [{**to_dict(f), "role": role} for role, f in reversed(self._fills)],
                "portfolios": portfolios,
            }

    def _warmup(self, m: _Market) -> dict[str, Any] | None:
        """What the market waits for before a decision at the chart's interval; None before any feature."""
        interval = self.interval_s if self.interval_s is not None else (
            m.features.interval_s if m.features is not None else None)
        if interval is None or not m.feature_counts.get(interval):
            return None
        ready = m.features is not None and m.features.interval_s == interval and m.features.ready
        return {"interval_s": interval, "bars": m.feature_counts[interval], "ready": ready,
                "text": warmup_text(interval, m.feature_counts[interval], ready)}

    @staticmethod
    def _market_view(key: str, m: _Market) -> dict[str, Any]:
        use_bars = bool(m.bar_points)
        series = m.bar_points if use_bars else m.trade_points
        fv = m.features
        return {
            "key": key,
            "exchange": m.exchange,
            "symbol": m.symbol,
            "trades": m.trades,
            "last_price": m.last_price if m.last_price is not None else (m.last_bar.close if m.last_bar else None),
            "last_trade_ts": m.last_trade_ts,
            "bars": m.bars,
            "series_kind": f"{m.bar_interval_s}s bar closes" if use_bars else "trade prices",
            "series": [list(p) for p in series],
            "last_bar": to_dict(m.last_bar) if m.last_bar else None,
            "features": None if fv is None else {
                "ts": fv.ts, "ready": fv.ready, "feature_schema": fv.feature_schema, "values": dict(fv.features),
            },
            "markers": [[ts, side, qty] for ts, side, qty in m.markers],
            "book": None if m.top is None else {**m.top, "seq": m.book_seq, "ts": m.book_ts,
                                                "updates": m.book_updates},
        }
