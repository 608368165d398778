"""Binance spot: ``<symbol>@trade`` on combined streams (many symbols on one connection).

``m`` true means the buyer was the maker, so the taker sold. ``T`` is the trade time (ts_event);
``t`` trade ids are contiguous per symbol. The server pings every 20 s (websocket-client answers)
and cuts a connection after 24 h, so the client rotates it before that.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ingestor.venues.base import Frame, ParseError, VenueSpec, control, decode_as, epoch_ms, make_trade, positive, skip

NAME = "binance"
URL = "wss://stream.binance.com:9443/stream?streams="
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


_envelope = msgspec.json.Decoder(Envelope)
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


def venue_symbol(symbol: str) -> str:
    """BTC-USDT -> BTCUSDT."""
    return symbol.replace("-", "").replace("/", "").upper()


SPEC = VenueSpec(
    name=NAME,
    url=lambda symbols: URL + "/".join(f"{venue_symbol(s).lower()}@trade" for s in symbols),
    subscribe=lambda _symbols: [],  # the combined-stream URL carries the subscriptions
    parse=parse,
    keepalive=lambda _n: None,  # the server pings; websocket-client answers with pongs
    keepalive_after_s=20.0,
    max_connection_s=23.5 * 3600,  # the server cuts at 24 h: rotate first
    venue_symbol=venue_symbol,
)
