"""Coinbase Exchange: the ``matches`` channel (starts with ``last_match``) and ``heartbeat``.

``side`` is the MAKER's side. Gaps are found with the per-product ``trade_id`` (contiguous), not
``sequence`` (shared with other message types); a heartbeat's ``last_trade_id`` reveals a gap before
the next match arrives.
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
)

NAME = "coinbase_exchange"
URL = "wss://ws-feed.exchange.coinbase.com"
OTHER_TYPES = {"ticker", "snapshot", "l2update", "received", "open", "done", "change", "activate", "status",
               "auction", "rfq_match", "ticker_batch"}


class Match(msgspec.Struct, frozen=True):
    """``match`` and ``last_match``, field for field."""

    type: str
    trade_id: int
    sequence: int
    maker_order_id: str
    taker_order_id: str
    time: str
    product_id: str
    size: str
    price: str
    side: str


class Heartbeat(msgspec.Struct, frozen=True):
    type: str
    sequence: int
    last_trade_id: int
    product_id: str
    time: str


class Typed(msgspec.Struct, frozen=True):
    type: str


_typed = msgspec.json.Decoder(Typed)
_match = msgspec.json.Decoder(Match)
_heartbeat = msgspec.json.Decoder(Heartbeat)


def parse(raw: str | bytes, recv_ms: int) -> Frame:
    kind = decode_as(raw, Typed, _typed).type
    if kind in ("match", "last_match"):
        m = decode_as(raw, Match, _match)
        if m.trade_id < 0:
            raise ParseError(f"trade_id {m.trade_id} is negative")
        trade = make_trade(NAME, m.product_id, str(m.trade_id), positive(m.price, "price"),
                           positive(m.size, "size"), flip(m.side), iso_ms(m.time), recv_ms)
        return Frame("trades", [trade], kind)
    if kind == "heartbeat":
        hb = decode_as(raw, Heartbeat, _heartbeat)
        frame = control("heartbeat")
        frame.last_trade_id = (hb.product_id, hb.last_trade_id)
        return frame
    if kind in ("subscriptions", "error"):
        return control(kind)
    if kind in OTHER_TYPES:
        return skip(kind)
    raise ParseError(f"unknown message type {kind!r}")


def _subscribe(symbols: list[str]) -> list[str]:
    return [msgspec.json.encode({"type": "subscribe", "product_ids": symbols,
                                 "channels": ["matches", "heartbeat"]}).decode()]


SPEC = VenueSpec(
    name=NAME,
    url=lambda _symbols: URL,
    subscribe=_subscribe,
    parse=parse,
    keepalive=lambda _n: None,  # the heartbeat channel sends one message per second per product
    keepalive_after_s=30.0,
    venue_symbol=lambda s: s.upper(),
)
