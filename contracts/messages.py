"""The message types every tickflow service exchanges over Kafka.

Each type is a frozen msgspec Struct: immutable, typed, and decoded strictly (unknown, missing or
mistyped fields are refused; prices and sizes must be finite and positive). Every type carries a
required ``schema_version``; a consumer refuses a version it does not know. Field names are lower
snake_case because ksqlDB upper-cases unquoted identifiers. Times are UTC integer milliseconds.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

# Constraints. JSON cannot carry NaN or infinity (msgspec refuses the literals and numbers that
# overflow), so a decoded float is finite; these add the sign.
Positive = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Finite = float
EpochMs = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
# a topic's name on the broker, its prefix included (contracts.topics allows a 200-character prefix; Kafka 249)
TopicName = Annotated[str, msgspec.Meta(min_length=1, max_length=249)]
Side = Literal["buy", "sell"]

V1: Final = 1
ORDER_V2: Final = 2  # Order: version 2 adds ``feature``, the feature record the order was decided on


class Message(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Base of all contract messages."""

    schema_version: Literal[1]


class Trade(Message, frozen=True, kw_only=True):
    """One executed trade. ``side`` is the taker's (aggressor's) side."""

    exchange: Name
    symbol: Name  # normalised form, e.g. BTC-USDT
    venue_symbol: Name  # the venue's own spelling, e.g. BTCUSDT
    trade_id: Name
    price: Positive
    size: Positive
    side: Side
    ts_event: EpochMs
    ts_ingest: EpochMs


EventKind = Literal["gap", "reconnect", "stale", "snapshot", "late", "disconnect",
                    # order books: a break in the venue's sequence (first/last_missing name the range), a
                    # book rebuilt from a fresh snapshot, a venue checksum that disagrees, a crossed book
                    "book_gap", "resync", "checksum_mismatch", "crossed_book",
                    # the streams worker: a key's books ran too far ahead of its trades (streams.processor)
                    "book_backlog"]


class MarketEvent(Message, frozen=True, kw_only=True):
    """A data-quality event: a gap in trade ids or book sequence, a reconnect, a stale feed, late trades,
    a book resync, checksum mismatch or crossed book."""

    exchange: Name
    symbol: Name
    kind: EventKind
    ts: EpochMs
    first_missing: str | None = None  # gap: first missing trade id / sequence number
    last_missing: str | None = None  # gap: last missing trade id / sequence number
    count: int = 0  # gap: how many are missing; late: how many were dropped
    detail: str = ""


class DeadLetter(Message, frozen=True, kw_only=True):
    """A record that could not be processed, kept verbatim with the reason."""

    source: TopicName  # venue name or the topic it was read from
    raw: str
    reason: str
    ts: EpochMs
    partition: int | None = None
    offset: int | None = None


class Bar(Message, frozen=True, kw_only=True):
    """An event-time bar: trades with window_start <= ts_event < window_end."""

    exchange: Name
    symbol: Name
    interval_s: Annotated[int, msgspec.Meta(gt=0)]
    window_start: EpochMs
    window_end: EpochMs
    open: Positive
    high: Positive
    low: Positive
    close: Positive
    volume: NonNegative
    vwap: Positive
    trades: Annotated[int, msgspec.Meta(ge=0)]
    buy_volume: NonNegative
    sell_volume: NonNegative


class SourceOffset(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where an input record sat: topic, partition, offset."""

    topic: TopicName
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]


class FeatureVector(Message, frozen=True, kw_only=True):
    """Features computed from closed bars. ``ts`` is the end of the bar they were computed at.

    ``features`` maps name to value in the feature schema's order; a value is null while the
    feature is still warming up (or, for a book feature, while no recent whole book is held).
    ``ready`` is true once every trade feature (schema ``v1``'s names) has a value: in a ``v2`` vector
    the ``book_*`` features do not enter it and may still be null when it is true, so a consumer checks
    the values it uses (``contracts.feature_schema``).
    """

    exchange: Name
    symbol: Name
    interval_s: Annotated[int, msgspec.Meta(gt=0)]
    ts: EpochMs
    feature_schema: Name  # e.g. "v1"
    ready: bool
    features: dict[str, Finite | None]
    close: Positive  # the bar's close, the price a decision at ts is marked at
    source: list[SourceOffset] = []


class Order(Message, frozen=True, kw_only=True):
    """A market order to move a policy's position in one symbol to ``target_position``.

    Lineage: ``policy_version`` is the bundle's version (the digest of its signed manifest) and, from
    schema version 2 on, ``feature`` is the ``signals.features`` record it was decided on (None when the
    decision did not come from a topic, e.g. a backtest). Version 1 orders, without ``feature``, still decode.
    """

    schema_version: Literal[1, 2]  # type: ignore[assignment]  # the one type at a second version
    order_id: Name
    policy_id: Name
    policy_version: Name
    exchange: Name
    symbol: Name
    side: Side
    qty: Positive
    target_position: Finite
    ts: EpochMs
    feature_ts: EpochMs
    reason: str = ""
    feature: SourceOffset | None = None


class Fill(Message, frozen=True, kw_only=True):
    """A (possibly partial) execution of an order."""

    fill_id: Name
    order_id: Name
    policy_id: Name
    exchange: Name
    symbol: Name
    side: Side
    price: Positive
    qty: Positive
    fee: NonNegative
    slippage: Finite  # in quote currency, signed: positive costs the trader
    ts: EpochMs
    trade_id: str = ""  # the market trade it was filled against ("" for a fill against the book)
    last: bool = False  # true on the fill that completes (or ends) the order
    book_size: NonNegative = 0.0  # a fill against the book: the displayed size of the level it took from
    cancelled: NonNegative = 0.0  # on the last fill: the quantity of the order cancelled unfilled
    reason: str = ""  # why it was cancelled


class PortfolioSnapshot(Message, frozen=True, kw_only=True):
    """A policy's book after a fill or a decision."""

    policy_id: Name
    ts: EpochMs
    positions: dict[str, Finite]  # symbol -> quantity
    cash: Finite
    equity: Finite
    realised_pnl: Finite
    unrealised_pnl: Finite
    fees: NonNegative
    drawdown: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    halted: bool = False
    # the trader instance whose book this is (`tickflow trade --instance`: each instance of a policy keeps its
    # own book, cash from TRADER__CAPITAL, for the symbols of its partitions); None: the policy's one trader
    instance: Name | None = None
    policy_version: str | None = None  # the version deciding when the snapshot was written
    # the automatic rollback's reference: the book's peak equity since that version began serving (None: the
    # rollback is off, or no step since the swap); a restarted trader carries it on (trader.swap)
    rollback_peak: Finite | None = None


ALL_TYPES: tuple[type[Message], ...] = (
    Trade,
    MarketEvent,
    DeadLetter,
    Bar,
    FeatureVector,
    Order,
    Fill,
    PortfolioSnapshot,
)
