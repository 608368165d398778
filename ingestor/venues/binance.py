"""Binance spot: ``<symbol>@trade`` and ``<symbol>@depth@100ms`` on combined streams (many symbols on one
connection), plus the REST depth snapshot (``GET /api/v3/depth``) the book needs to start from.

``m`` true means the buyer was the maker, so the taker sold. ``T`` is the trade time (ts_event);
``t`` trade ids are contiguous per symbol. The server pings every 20 s (websocket-client answers)
and cuts a connection after 24 h, so the client rotates it before that.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from ingestor.venues.base import (
    BookFrame,
    BookMessage,
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    epoch_ms,
    levels,
    make_trade,
    positive,
    skip,
)

NAME = "binance"
URL = "wss://stream.binance.com:9443/stream?streams="
REST_DEPTH = "https://api.binance.com/api/v3/depth?symbol={symbol}&limit=5000"
# Events of streams we do not ingest, when they come without the combined-stream envelope.
OTHER_EVENTS = {"depthUpdate", "aggTrade", "kline", "24hrTicker", "24hrMiniTicker", "1hTicker", "4hTicker",
                "1dTicker", "avgPrice", "bookTicker"}


class TradeEvent(msgspec.Struct, frozen=True):
    """The ``trade`` event, field for field (prices and quantities are decimal strings)."""

    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    M: bool = True


class Envelope(msgspec.Struct, frozen=True):
    """Any Binance frame: a combined-stream wrapper, a raw event, or a response to a request."""

    stream: str | None = None
    data: msgspec.Raw = msgspec.Raw()
    e: str | None = None
    id: Any = None
    result: Any = msgspec.UNSET
    error: Any = None
    lastUpdateId: int | None = None
    u: int | None = None


class DepthEvent(msgspec.Struct, frozen=True):
    """The ``depthUpdate`` event: updates ``U`` to ``u``; absolute sizes, "0" removes a level."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: list[tuple[str, str]]
    a: list[tuple[str, str]]


class DepthEnvelope(msgspec.Struct, frozen=True):
    data: DepthEvent
    stream: str = ""


class RawDepthEvent(msgspec.Struct, frozen=True):
    """``DepthEvent`` with its levels left undecoded, for the fast path of ``parse_book``."""

    e: str
    E: int
    s: str
    U: int
    u: int
    b: msgspec.Raw
    a: msgspec.Raw


class RawDepthEnvelope(msgspec.Struct, frozen=True):
    data: RawDepthEvent
    stream: str = ""


_MAX = 1.7976931348623157e308  # the largest float: the constraint rejects inf, and nan fails every one
_Price = Annotated[float, msgspec.Meta(gt=0.0, le=_MAX)]
_Size = Annotated[float, msgspec.Meta(ge=0.0, le=_MAX)]


class RestDepth(msgspec.Struct, frozen=True):
    """The REST ``/api/v3/depth`` response (its symbol is the request's, not in the body)."""

    lastUpdateId: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


_envelope = msgspec.json.Decoder(Envelope)
_depth_envelope = msgspec.json.Decoder(DepthEnvelope)
_raw_depth_envelope = msgspec.json.Decoder(RawDepthEnvelope)
# Decimal strings straight to checked floats in C (non-strict decoding converts numeric strings; it
# rounds as float() does). Used only where every value was a string (4 quotes a level).
_float_levels = msgspec.json.Decoder(list[tuple[_Price, _Size]], strict=False)
_depth = msgspec.json.Decoder(DepthEvent)
_rest_depth = msgspec.json.Decoder(RestDepth)
_trade = msgspec.json.Decoder(TradeEvent)


def parse(raw: str | bytes, recv_ms: int) -> Frame:
    env = decode_as(raw, Envelope, _envelope)
    if env.stream is not None:
        channel = env.stream.partition("@")[2]
        if channel != "trade":
            if not env.data:
                raise ParseError(f"stream {env.stream!r} frame without data")
            inner = decode_as(env.data, Envelope, _envelope)
            if inner.e == "serverShutdown":
                return control("serverShutdown")
            return skip(channel or env.stream)
        if not env.data:
            raise ParseError("trade stream frame without data")
        return _trades(decode_as(env.data, TradeEvent, _trade), recv_ms)
    if env.e == "trade":
        return _trades(decode_as(raw, TradeEvent, _trade), recv_ms)
    if env.e in OTHER_EVENTS:
        return skip(str(env.e))
    if env.e == "serverShutdown":
        return control("serverShutdown")
    if env.error is not None:
        return control("error")
    if env.result is not msgspec.UNSET and env.id is not None:
        return control("response")
    if env.lastUpdateId is not None:
        return skip("depth snapshot")
    if env.u is not None and env.e is None:
        return skip("bookTicker")
    raise ParseError(f"unknown message type (event {env.e!r})" if env.e else "unknown message type")


def _trades(ev: TradeEvent, recv_ms: int) -> Frame:
    if ev.e != "trade":
        raise ParseError(f"trade stream carried event {ev.e!r}")
    if ev.t < 0:
        raise ParseError(f"trade id {ev.t} is negative")
    trade = make_trade(NAME, ev.s, str(ev.t), positive(ev.p, "price"), positive(ev.q, "quantity"),
                       "sell" if ev.m else "buy", epoch_ms(ev.T, "trade time"), recv_ms)
    return Frame("trades", [trade], "trade")


def parse_book(raw: str | bytes, recv_ms: int, kind: str = "ws") -> BookMessage | None:
    """A depth diff or a REST depth snapshot (whose symbol the caller knows); None for any other frame
    (told by its first bytes)."""
    if kind == "rest_depth_snapshot":
        snap = decode_as(raw, RestDepth, _rest_depth)
        return BookMessage([BookFrame(None, "snapshot", levels(snap.bids, "bid"), levels(snap.asks, "ask"),
                                      recv_ms, seq=snap.lastUpdateId)])
    head = raw[:64]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    at = head.find("@depth")
    if at >= 0 and head[at + 6:at + 7] in ('"', "@"):  # @depth or @depth@100ms, not the partial @depth5
        fast = _fast_depth(raw, recv_ms)
        if fast is not None:
            return fast
        ev = decode_as(raw, DepthEnvelope, _depth_envelope).data
    elif '"depthUpdate"' in head:
        ev = decode_as(raw, DepthEvent, _depth)
    else:
        return None
    if ev.e != "depthUpdate":
        raise ParseError(f"depth stream carried event {ev.e!r}")
    if not 0 < ev.U <= ev.u:
        raise ParseError(f"depth update ids U={ev.U} u={ev.u} are not 0 < U <= u")
    return BookMessage([BookFrame(ev.s, "delta", levels(ev.b, "bid"), levels(ev.a, "ask"),
                                  epoch_ms(ev.E, "event time"), seq=ev.u, first_seq=ev.U)])


def _fast_depth(raw: str | bytes, recv_ms: int) -> BookMessage | None:
    """The hot path for a well-formed diff: its levels decoded to floats and checked in C. None for any
    frame it does not take whole (the strict path then parses it, naming what is wrong)."""
    try:
        ev = _raw_depth_envelope.decode(raw).data
        b_raw, a_raw = bytes(ev.b), bytes(ev.a)
        bids, asks = _float_levels.decode(b_raw), _float_levels.decode(a_raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    if (b_raw.count(b'"') != 4 * len(bids) or a_raw.count(b'"') != 4 * len(asks) or ev.e != "depthUpdate"
            or not 0 < ev.U <= ev.u or ev.E < 0):
        return None
    return BookMessage([BookFrame(ev.s, "delta", bids, asks, ev.E, seq=ev.u, first_seq=ev.U)])


def venue_symbol(symbol: str) -> str:
    """BTC-USDT -> BTCUSDT."""
    return symbol.replace("-", "").replace("/", "").upper()


SPEC = VenueSpec(
    name=NAME,
    url=lambda symbols: URL + "/".join(f"{venue_symbol(s).lower()}@{stream}" for s in symbols
                                       for stream in ("trade", "depth@100ms")),
    subscribe=lambda _symbols: [],  # the combined-stream URL carries the subscriptions
    parse=parse,
    keepalive=lambda _n: None,  # the server pings; websocket-client answers with pongs
    keepalive_after_s=20.0,
    max_connection_s=23.5 * 3600,  # the server cuts at 24 h: rotate first
    venue_symbol=venue_symbol,
    parse_book=parse_book,
    book_snapshot_url=lambda venue_symbol: REST_DEPTH.format(symbol=venue_symbol),
)
