"""Coinbase Advanced Trade: ``market_trades`` with ``heartbeats``.

``side`` is the MAKER's side (SELL means the taker bought). ``sequence_num`` is one counter per
connection shared by all channels: the pipeline checks it on every frame, before filtering. Trades in
an update come newest first; trade ids are contiguous per product. Subscribing to ``heartbeats``
keeps quiet channels open (they close after 60-90 s of silence).
"""

from __future__ import annotations

import msgspec

from ingestor.venues.base import (
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    flip,
    iso_ms,
    make_trade,
    positive,
    skip,
    trade_id,
)

NAME = "coinbase_advanced"
URL = "wss://advanced-trade-ws.coinbase.com"
OTHER_CHANNELS = {"l2_data", "level2", "ticker", "ticker_batch", "candles", "status", "user", "futures_balance_summary"}


class WireTrade(msgspec.Struct, frozen=True):
    trade_id: str
    product_id: str
    price: str
    size: str
    side: str
    time: str


class TradesEvent(msgspec.Struct, frozen=True):
    type: str
    trades: list[WireTrade]


class Message(msgspec.Struct, frozen=True):
    channel: str
    sequence_num: int | None = None
    timestamp: str = ""
    client_id: str = ""
    events: msgspec.Raw = msgspec.Raw()


class ErrorMessage(msgspec.Struct, frozen=True):
    type: str | None = None
    message: str = ""
    channel: str | None = None


_message = msgspec.json.Decoder(Message)
_events = msgspec.json.Decoder(list[TradesEvent])
_error = msgspec.json.Decoder(ErrorMessage)


def parse(raw: str | bytes, recv_ms: int) -> Frame:
    probe = decode_as(raw, ErrorMessage, _error)
    if probe.channel is None:
        if probe.type == "error":
            return control("error")
        raise ParseError(f"unknown message type {probe.type!r}" if probe.type else "frame without a channel")
    msg = decode_as(raw, Message, _message)
    seq = msg.sequence_num
    if msg.channel == "market_trades":
        if not msg.events:
            raise ParseError("market_trades frame without events")
        events = decode_as(msg.events, list[TradesEvent], _events)
        trades = []
        for ev in events:
            for w in ev.trades:
                trades.append(make_trade(NAME, w.product_id, trade_id(w.trade_id), positive(w.price, "price"),
                                         positive(w.size, "size"), flip(w.side), iso_ms(w.time), recv_ms))
        return Frame("trades", trades, "market_trades", seq=seq)
    if msg.channel in ("heartbeats", "subscriptions"):
        return control(msg.channel, seq)
    if msg.channel in OTHER_CHANNELS:
        return skip(msg.channel, seq)
    raise ParseError(f"unknown channel {msg.channel!r}")


def _subscribe(symbols: list[str]) -> list[str]:
    sub = [{"type": "subscribe", "product_ids": symbols, "channel": "market_trades"},
           {"type": "subscribe", "channel": "heartbeats"}]
    return [msgspec.json.encode(s).decode() for s in sub]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda _n: None,  # the heartbeats channel keeps the connection alive
    keepalive_after_s=30.0,
    venue_symbol=lambda s: s.upper(),
)
