"""The topic registry: every topic tickflow uses, declared once.

Producers and consumers take names, key formats and value types from here; `tickflow kafka start`
creates the topics from it.

A topic's name on the broker is the prefix in ``TICKFLOW_TOPIC_PREFIX`` (empty by default, e.g. ``dev.``)
followed by its base name (``market.trades``, ``market.trades.dlq``), so that several environments share
one cluster. The prefix is read from the environment each time a name is asked for (``Topic.name``,
``REGISTRY``, ``prefixed``): a service reads it at start, and a test that sets it sees the same names in
its own process as in the services it starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from contracts.books import BookUpdate
from contracts.errors import SettingsError
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
from contracts.policy_record import MAX_RECORD_BYTES, PolicyRecord

KeyFormat = Literal["exchange:symbol", "policy_id", "none"]

PREFIX_ENV = "TICKFLOW_TOPIC_PREFIX"
_LEGAL = re.compile(r"[A-Za-z0-9._-]*")  # the characters Kafka accepts in a topic name
_MAX_PREFIX = 200  # Kafka refuses names over 249 characters; the longest base name is under 50


@lru_cache(maxsize=16)
def _checked(prefix: str) -> str:
    if not _LEGAL.fullmatch(prefix):
        bad = "".join(sorted({c for c in prefix if not _LEGAL.fullmatch(c)}))
        raise SettingsError(f"{PREFIX_ENV}={prefix!r} holds characters Kafka refuses in topic names ({bad!r}); "
                            "use letters, digits, '.', '_' and '-' only")
    if len(prefix) > _MAX_PREFIX:
        raise SettingsError(f"{PREFIX_ENV} is {len(prefix)} characters long; at most {_MAX_PREFIX} leave room "
                            "for the topic names after it (Kafka's limit is 249)")
    return prefix


def topic_prefix() -> str:
    """The prefix of every topic name now: ``TICKFLOW_TOPIC_PREFIX``, checked; empty when unset."""
    return _checked(os.environ.get(PREFIX_ENV, ""))


def prefixed(name: str) -> str:
    """``name`` as this environment calls it on the broker: the topic prefix, then ``name``.

    For every name an environment owns on a shared cluster: registry topics (through ``Topic.name``),
    the sink topics of ksqlDB, Faust's app id (and with it its changelog topics), consumer groups and
    transactional ids.
    """
    return topic_prefix() + name


@dataclass(frozen=True)
class Topic:
    """One Kafka topic: its base name, key format, value type, partition count and cleanup policy."""

    base: str  # the name without the environment's prefix
    key: KeyFormat
    value_type: type[Message]
    partitions: int
    cleanup: Literal["delete", "compact"] = "delete"
    description: str = ""
    configs: tuple[tuple[str, str], ...] = ()  # further topic settings at creation (max.message.bytes, ...)

    @property
    def name(self) -> str:
        """The topic's name on the broker: the current prefix, then the base name."""
        return prefixed(self.base)

    @property
    def dlq(self) -> Topic:
        """The dead-letter topic for records on this topic that fail their contract."""
        return DLQ_BY_SOURCE[self.base]


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
# The policy registry: one record per policy (compaction keeps the newest), bundles carried in the record.
POLICIES = Topic("policies", "policy_id", PolicyRecord, 1, "compact",
                 description="policy registry: serving and previous version, decisions",
                 configs=(("max.message.bytes", str(MAX_RECORD_BYTES)),))

# The shadow lane: a challenger trading beside the champion on the same features (`tickflow trade --shadow`)
# writes its orders and book here and a second paper broker (`tickflow paper --shadow`) fills them here, so
# its live paper record accumulates apart from the champion's. Keyed and partitioned as their live twins.
ORDERS_SHADOW = Topic("orders.shadow", "exchange:symbol", Order, ORDERS.partitions,
                      description="orders of challengers in shadow")
FILLS_SHADOW = Topic("fills.shadow", "exchange:symbol", Fill, FILLS.partitions,
                     description="fills of the shadow orders, from the shadow paper book")
PORTFOLIO_SHADOW = Topic("portfolio.shadow", "policy_id", PortfolioSnapshot, 1, "compact",
                         description="latest shadow book per policy")

# Order books: same key and partition count as market.trades, so a symbol's trades and book sit in
# partitions of the same number (co-partitioned) and a consumer of both joins them without a shuffle.
MARKET_BOOKS = Topic("market.books", "exchange:symbol", BookUpdate, MARKET_TRADES.partitions,
                     description="L2 book snapshots and deltas")

MAIN_TOPICS: tuple[Topic, ...] = (
    MARKET_TRADES, MARKET_EVENTS, SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS, PORTFOLIO, MARKET_BOOKS, POLICIES,
    ORDERS_SHADOW, FILLS_SHADOW, PORTFOLIO_SHADOW,
)

# Dead-letter topics: the ingestor's (raw venue frames) and one per consumed topic, by source base name.
MARKET_TRADES_DLQ = Topic("market.trades.dlq", "none", DeadLetter, 1,
                          description="frames and records that failed to parse")
DLQ_BY_SOURCE: dict[str, Topic] = {"market.trades": MARKET_TRADES_DLQ}
DLQ_BY_SOURCE["market.books"] = Topic("market.books.dlq", "none", DeadLetter, 1,
                                      description="book frames that failed to parse, and bad book records")
for _t in (SIGNALS_BARS, SIGNALS_FEATURES, ORDERS, FILLS, MARKET_EVENTS, ORDERS_SHADOW, FILLS_SHADOW):
    DLQ_BY_SOURCE[_t.base] = Topic(f"{_t.base}.dlq", "none", DeadLetter, 1,
                                   description=f"records of {_t.base} that failed their contract")



@dataclass(frozen=True)
class Lane:
    """Where a trader's orders and book go and where its paper broker fills them: live or shadow.

    A service in the shadow lane takes the same loop as in the live lane with these topics and its own
    consumer group and transactional id (``group``), so nothing it writes touches the champion's record.
    """

    name: Literal["live", "shadow"]
    orders: Topic
    fills: Topic
    portfolio: Topic

    def group(self, base: str) -> str:
        """The consumer group and transactional id of a service in this lane, under the topic prefix."""
        return prefixed(base if self.name == "live" else f"{base}-shadow")


LIVE = Lane("live", ORDERS, FILLS, PORTFOLIO)
SHADOW = Lane("shadow", ORDERS_SHADOW, FILLS_SHADOW, PORTFOLIO_SHADOW)

_BY_BASE: dict[str, Topic] = {t.base: t for t in (*MAIN_TOPICS, *DLQ_BY_SOURCE.values())}


class _Registry(Mapping[str, Topic]):
    """Every topic by its name on the broker (prefix + base name), under the prefix of the moment."""

    def __getitem__(self, name: str) -> Topic:
        prefix = topic_prefix()
        found = _BY_BASE.get(name[len(prefix):]) if name.startswith(prefix) else None
        if found is None:
            raise KeyError(name)
        return found

    def __iter__(self) -> Iterator[str]:
        return (t.name for t in _BY_BASE.values())

    def __len__(self) -> int:
        return len(_BY_BASE)


REGISTRY: Mapping[str, Topic] = _Registry()


def find(name: str) -> Topic | None:
    """The registry's topic of a base name (``orders``) or of a name on the broker (``dev.orders``)."""
    return _BY_BASE.get(name) or REGISTRY.get(name)


def topic(name: str) -> Topic:
    """Look a topic up by base name (or by its name on the broker); an unknown name lists the known ones."""
    found = find(name)
    if found is None:
        known = ", ".join(sorted(_BY_BASE))
        prefix = topic_prefix()
        under = f" (each under the prefix {prefix!r})" if prefix else ""
        raise KeyError(f"unknown topic {name!r}; the registry holds: {known}{under}")
    return found


def market_key(exchange: str, symbol: str) -> bytes:
    """The `exchange:symbol` key that keeps one symbol's records in one partition, in order."""
    return f"{exchange}:{symbol}".encode()
