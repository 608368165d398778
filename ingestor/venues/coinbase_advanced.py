"""Coinbase Advanced Trade: ``market_trades`` and ``level2`` (messages say ``l2_data``) with ``heartbeats``.

``side`` is the MAKER's side (SELL means the taker bought). ``sequence_num`` is one counter per
connection shared by all channels: the pipeline checks it on every frame, before filtering. Trades in
an update come newest first; trade ids are contiguous per product. Subscribing to ``heartbeats``
keeps quiet channels open (they close after 60-90 s of silence). ``level2`` sends its snapshot on the
websocket, then updates with the absolute ``new_quantity`` ("0" removes the level).
"""

from __future__ import annotations

import msgspec

from ingestor.venues.base import (
    BookFrame,
    BookMessage,
    Frame,
    ParseError,
    VenueSpec,
    control,
    decode_as,
    flip,
    iso_ms,
    level,
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


class WireLevel(msgspec.Struct, frozen=True):
    side: str
    price_level: str
    new_quantity: str
    event_time: str = ""


class L2Event(msgspec.Struct, frozen=True):
    type: str
    product_id: str
    updates: list[WireLevel]


_message = msgspec.json.Decoder(Message)
_l2 = msgspec.json.Decoder(list[L2Event])
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


def parse_book(raw: str | bytes, recv_ms: int, kind: str = "ws") -> BookMessage | None:
    """Every frame's ``sequence_num`` (the book must see the connection's every message), and the
    levels of ``l2_data`` frames; None for a frame without a sequence number."""
    head = raw[:40]
    if isinstance(head, bytes):
        head = head.decode("utf-8", "replace")
    if '"l2_data"' not in head:
        try:
            msg = decode_as(raw, Message, _message)
        except ParseError:
            return None  # an error or a frame that does not parse: the trade parser dead-letters it
        return None if msg.sequence_num is None else BookMessage(conn_seq=msg.sequence_num)
    msg = decode_as(raw, Message, _message)
    if msg.sequence_num is None:
        raise ParseError("l2_data frame without sequence_num")
    if not msg.events:
        raise ParseError("l2_data frame without events")
    ts = iso_ms(msg.timestamp, "timestamp") if msg.timestamp else recv_ms
    out = BookMessage(conn_seq=msg.sequence_num)
    for ev in decode_as(msg.events, list[L2Event], _l2):
        if ev.type not in ("snapshot", "update"):
            raise ParseError(f"l2_data event type {ev.type!r} (want snapshot or update)")
        bids, asks = [], []
        for w in ev.updates:
            if w.side == "bid":
                bids.append(level(w.price_level, w.new_quantity, "bid"))
            elif w.side in ("offer", "ask"):
                asks.append(level(w.price_level, w.new_quantity, "offer"))
            else:
                raise ParseError(f"l2_data side {w.side!r} is neither bid nor offer")
        out.books.append(BookFrame(ev.product_id, "snapshot" if ev.type == "snapshot" else "delta", bids, asks, ts,
                                   seq=msg.sequence_num))
    return out


def _subscribe(symbols: list[str]) -> list[str]:
    sub = [{"type": "subscribe", "product_ids": symbols, "channel": "market_trades"},
           {"type": "subscribe", "product_ids": symbols, "channel": "level2"},
           {"type": "subscribe", "channel": "heartbeats"}]
    return [msgspec.json.encode(s).decode() for s in sub]


def _resubscribe_book(product_id: str) -> list[str]:
    return [msgspec.json.encode({"type": t, "product_ids": [product_id], "channel": "level2"}).decode()
            for t in ("unsubscribe", "subscribe")]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda _n: None,  # the heartbeats channel keeps the connection alive
    keepalive_after_s=30.0,
    venue_symbol=lambda s: s.upper(),
    parse_book=parse_book,
    book_resubscribe=_resubscribe_book,
)
