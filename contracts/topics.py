"""The topic registry: every topic tickflow uses, declared once.

Producers and consumers take names, key formats and value types from here; `tickflow kafka start`
creates the topics from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts.books import BookUpdate
from contracts.messages import (
    Bar,
    DeadLetter,
    FeatureVector,
    Fill,
    MarketEvent,
    Message,
    Order,
    PortfolioSnapshot,
    Trade,
)

KeyFormat = Literal["exchange:symbol", "policy_id", "none"]


@dataclass(frozen=True)
class Topic:
    """One Kafka topic: its name, key format, value type, partition count and cleanup policy."""

    name: str
    key: KeyFormat
    value_type: type[Message]
    partitions: int
    cleanup: Literal["delete", "compact"] = "delete"
    description: str = ""

    @property
    def dlq(self) -> Topic:
        """The dead-letter topic for records on this topic that fail their contract."""
        return DLQ_BY_SOURCE[self.name]


MARKET_TRADES = Topic("market.trades", "exchange:symbol", Trade, 4, description="normalised trades")
MARKET_EVENTS = Topic("market.events", "exchange:symbol", MarketEvent, 4,
                      description="gaps, reconnects, stale feeds, late trades")
SIGNALS_BARS = Topic("signals.bars", "exchange:symbol", Bar, 4, description="event-time bars")
SIGNALS_FEATURES = Topic("signals.features", "exchange:symbol", FeatureVector, 4,
                         description="feature vectors at each closed bar")
ORDERS = Topic("orders", "exchange:symbol", Order, 4, description="orders from the trader")
FILLS = Topic("fills", "exchange:symbol", Fill, 4, description="fills from the paper broker")
PORTFOLIO = Topic("portfolio", "policy_id", PortfolioSnapshot, 1, "compact",
                  description="latest book per policy")

# Order books: same key and partition count as market.trades, so a symbol's trades and book sit in
# partitions of the same number (co-partitioned) and a consumer of both joins them without a shuffle.
MARKET_BOOKS = Topic("market.books", "exchange:symbol", BookUpdate, MARKET_TRADES.partitions,
                     description="L2 book snapshots and deltas")

MAIN_TOPICS: tuple[Topic, ...] = (
    MARKET_TRADES, MARKET_EVENTS, SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS, PORTFOLIO, MARKET_BOOKS,
)

# Dead-letter topics: the ingestor's (raw venue frames) and one per consumed topic.
MARKET_TRADES_DLQ = Topic("market.trades.dlq", "none", DeadLetter, 1,
                          description="frames and records that failed to parse")
DLQ_BY_SOURCE: dict[str, Topic] = {"market.trades": MARKET_TRADES_DLQ}
DLQ_BY_SOURCE["market.books"] = Topic("market.books.dlq", "none", DeadLetter, 1,
                                      description="book frames that failed to parse, and bad book records")
for _t in (SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS, MARKET_EVENTS):
    DLQ_BY_SOURCE[_t.name] = Topic(f"{_t.name}.dlq", "none", DeadLetter, 1,
                                   description=f"records of {_t.name} that failed their contract")

REGISTRY: dict[str, Topic] = {t.name: t for t in MAIN_TOPICS}
REGISTRY.update({t.name: t for t in DLQ_BY_SOURCE.values()})


def topic(name: str) -> Topic:
    """Look a topic up by name; a name not in the registry is an error that lists the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown topic {name!r}; the registry holds: {known}") from None


def market_key(exchange: str, symbol: str) -> bytes:
    """The `exchange:symbol` key that keeps one symbol's records in one partition, in order."""
    return f"{exchange}:{symbol}".encode()
