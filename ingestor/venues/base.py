"""What every venue module provides: frame outcomes, parse errors and the shared field converters.

A venue parser turns one raw websocket frame into a ``Frame``: the trades it carries, or a note that
the frame belongs to a channel we do not ingest (skipped and counted), or a control message
(subscription acks, heartbeats, pongs). A frame that does not parse raises ``ParseError`` with the
reason; the pipeline dead-letters it. Parsers never let any other exception out for bad input.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import msgspec

from contracts.messages import V1, Side, Trade
from contracts.symbols import normalise_symbol

FrameKind = Literal["trades", "skip", "control"]
BookFrameKind = Literal["snapshot", "delta"]
T = TypeVar("T")


class ParseError(ValueError):
    """A frame that does not parse; the message is the reason put on the dead letter."""


@dataclass(slots=True)
class Frame:
    """The outcome of parsing one frame."""

    kind: FrameKind
    trades: list[Trade] = field(default_factory=list)
    what: str = ""  # channel or control type, for the skipped/control counters
    seq: int | None = None  # a per-connection sequence number (Coinbase Advanced Trade)
    #: trade id of the last trade the venue says it sent before this point (Coinbase Exchange
    #: last_match / heartbeat): lets the sequencer see gaps before the next trade arrives.
    last_trade_id: tuple[str, int] | None = None
    counts: list[int] | None = None  # trades aggregated in each trade ending at its id (OKX)


@dataclass(slots=True)
class BookFrame:
    """One symbol's book data in a frame, in the venue's own sequence terms.

    ``venue_symbol`` is None for a Binance REST snapshot recorded without its symbol. ``bids_text`` and
    ``asks_text`` keep the venue's own text of each level where its checksum is computed over it.
    """

    venue_symbol: str | None
    kind: BookFrameKind
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_event: int
    seq: int | None = None  # Binance u (lastUpdateId for a snapshot), OKX seqId
    first_seq: int | None = None  # Binance U
    prev_seq: int | None = None  # OKX prevSeqId
    checksum: int | None = None
    bids_text: list[tuple[str, str]] | None = None
    asks_text: list[tuple[str, str]] | None = None


@dataclass(slots=True)
class BookMessage:
    """What a frame says about books: per-symbol book data, the connection's sequence, a depth."""

    books: list[BookFrame] = field(default_factory=list)
    conn_seq: int | None = None  # Coinbase Advanced sequence_num (per connection, every channel)
    depth: tuple[str, int] | None = None  # Kraken: a subscription ack's (symbol, depth)


def level(price: str | float, size: str | float, what: str) -> tuple[float, float]:
    """A book level: a finite positive price and a finite size >= 0 (0 removes the level)."""
    p = positive(price, f"{what} price")
    try:
        s = float(size)
    except (TypeError, ValueError):
        raise ParseError(f"{what} size {size!r} at {price} is not a number") from None
    if not (s >= 0.0) or math.isinf(s):
        raise ParseError(f"{what} size {size!r} at {price} is not a finite number >= 0")
    return p, s


_INF = float("inf")


def levels(rows: Sequence[Sequence[str]], what: str) -> list[tuple[float, float]]:
    """Book levels from ``[price, size]`` rows, each checked as ``level`` does (fast when all are good)."""
    try:
        out = [(float(r[0]), float(r[1])) for r in rows]
    except (TypeError, ValueError, IndexError):
        out = []
    if len(out) == len(rows) and all(0.0 < p < _INF and 0.0 <= q < _INF for p, q in out):
        return out
    for r in rows:
        if len(r) < 2:
            raise ParseError(f"{what} level {r!r} has no price and size")
    return [level(r[0], r[1], what) for r in rows]


def skip(what: str, seq: int | None = None) -> Frame:
    return Frame("skip", what=what, seq=seq)


def control(what: str, seq: int | None = None) -> Frame:
    return Frame("control", what=what, seq=seq)


def decode_as(raw: str | bytes, kind: type[T], decoder: msgspec.json.Decoder[T] | None = None) -> T:
    """Decode ``raw`` into ``kind``; a bad frame becomes a ParseError naming the field."""
    try:
        if decoder is not None:
            return decoder.decode(raw)
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as err:
        raise ParseError(f"{kind.__name__}: {err}") from None
    except msgspec.DecodeError as err:
        raise ParseError(f"not valid JSON: {err}") from None


def positive(text: str | float | int, name: str) -> float:
    """A finite positive number from a venue's decimal string (or number)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ParseError(f"{name} {text!r} is not a number") from None
    if not (value > 0.0) or math.isinf(value):
        raise ParseError(f"{name} {text!r} is not a finite positive number")
    return value


def iso_ms(text: str, name: str = "time") -> int:
    """Epoch milliseconds of an ISO-8601 UTC time with up to nanoseconds (``...T20:42:27.265123Z``)."""
    try:
        head, _, frac = text.rstrip("Z").partition(".")
        base = datetime.fromisoformat(head + "+00:00")
        digits = (frac + "000")[:3] if frac else "000"
        if frac and not frac.isdigit():
            raise ValueError(frac)
        ms = int(base.timestamp()) * 1000 + int(digits)
    except (ValueError, OverflowError):
        raise ParseError(f"{name} {text!r} is not an ISO-8601 UTC time") from None
    if ms < 0:
        raise ParseError(f"{name} {text!r} is before 1970")
    return ms


def epoch_ms(value: str | int, name: str) -> int:
    try:
        ms = int(value)
    except (TypeError, ValueError):
        raise ParseError(f"{name} {value!r} is not an integer millisecond time") from None
    if ms < 0:
        raise ParseError(f"{name} {value!r} is negative")
    return ms


def trade_id(value: str | int, name: str = "trade_id") -> str:
    text = str(value)
    if not text or len(text) > 64:
        raise ParseError(f"{name} {value!r} is empty or longer than 64 characters")
    return text


_SYMBOLS: dict[str, str] = {}


def symbol_of(venue_symbol: str) -> str:
    """The normalised symbol (BTC-USDT); derivatives keep their suffix (BTC-USD-SWAP). Cached."""
    cached = _SYMBOLS.get(venue_symbol)
    if cached is not None:
        return cached
    parts = venue_symbol.split("-")
    try:
        if len(parts) > 2 and 0 < len(venue_symbol) <= 64:
            result = normalise_symbol("-".join(parts[:2])) + "-" + "-".join(parts[2:]).upper()
        else:
            result = normalise_symbol(venue_symbol)
    except ValueError as err:
        raise ParseError(str(err)) from None
    if not 0 < len(result) <= 64 or not 0 < len(venue_symbol) <= 64:
        raise ParseError(f"symbol {venue_symbol!r} is empty or too long")
    if len(_SYMBOLS) < 10_000:
        _SYMBOLS[venue_symbol] = result
    return result


def make_trade(exchange: str, venue_symbol: str, tid: str, price: float, size: float, side: Side,
               ts_event: int, ts_ingest: int) -> Trade:
    return Trade(schema_version=V1, exchange=exchange, symbol=symbol_of(venue_symbol), venue_symbol=venue_symbol,
                 trade_id=tid, price=price, size=size, side=side, ts_event=ts_event, ts_ingest=ts_ingest)


def flip(maker_side: str, name: str = "side") -> Side:
    """The taker's side from a maker's side (Coinbase): the maker sold means the taker bought."""
    side = maker_side.lower()
    if side == "sell":
        return "buy"
    if side == "buy":
        return "sell"
    raise ParseError(f"{name} {maker_side!r} is neither buy nor sell")


def taker(side_text: str, name: str = "side") -> Side:
    side = side_text.lower()
    if side in ("buy", "sell"):
        return side  # type: ignore[return-value]
    raise ParseError(f"{name} {side_text!r} is neither buy nor sell")


@dataclass(frozen=True)
class VenueSpec:
    """How to talk to one venue: where, what to send after connecting, how to keep the line alive."""

    name: str
    url: Callable[[list[str]], str]
    subscribe: Callable[[list[str]], list[str]]  # frames sent after connecting
    parse: Callable[[str | bytes, int], Frame]  # (raw frame, receive time ms) -> Frame
    keepalive: Callable[[int], str | None] = lambda _n: None  # text to send when the line is quiet
    keepalive_after_s: float = 20.0
    max_connection_s: float | None = None  # rotate before the server cuts (Binance: 24 h)
    venue_symbol: Callable[[str], str] = lambda s: s  # BTC-USDT -> the venue's spelling
    #: (raw frame, receive time ms, recorded kind: ws or rest_depth_snapshot) -> book data, or None for
    #: a frame that carries none; raises ParseError for a book frame that does not parse
    parse_book: Callable[[str | bytes, int, str], BookMessage | None] | None = None
    #: a fresh book snapshot of one venue symbol: fetched from this REST address (Binance) ...
    book_snapshot_url: Callable[[str], str] | None = None
    #: ... or by sending these frames on the websocket (unsubscribe and subscribe the symbol's book)
    book_resubscribe: Callable[[str], list[str]] | None = None
