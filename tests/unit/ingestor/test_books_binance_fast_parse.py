"""Binance depth diffs: the fast parse (levels to floats in C) gives what the strict parse gives, and any
frame it does not take whole goes to the strict parse, which names what is wrong."""

from __future__ import annotations

import pytest

from ingestor.venues import binance
from ingestor.venues.base import BookFrame, ParseError, epoch_ms, levels
from tests.unit.ingestor.books_frames import BINANCE, timed_frames


def _strict(raw: str) -> BookFrame:
    ev = binance._depth_envelope.decode(raw).data
    return BookFrame(ev.s, "delta", levels(ev.b, "bid"), levels(ev.a, "ask"), epoch_ms(ev.E, "event time"),
                     seq=ev.u, first_seq=ev.U)


def test_every_bundled_diff_parses_fast_to_the_strict_parse_s_frame() -> None:
    diffs = [f.raw for f in timed_frames(BINANCE) if f.kind == "ws" and "@depth" in f.raw[:40]]
    assert len(diffs) == 6_495
    for raw in diffs:
        fast = binance._fast_depth(raw, 0)
        assert fast is not None and fast.books == [_strict(raw)]


HEAD = '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","s":"BTCUSDT",'


@pytest.mark.parametrize(("body", "reason"), [
    ('"E":1,"U":1,"u":2,"b":[[1.5,"1"]],"a":[]}}', "Expected `str`, got `float`"),  # a number, not a string
    ('"E":1,"U":"1","u":2,"b":[],"a":[]}}', "Expected `int`, got `str`"),
    ('"E":1,"U":1,"u":2,"b":[["nan","1"]],"a":[]}}', "bid price 'nan'"),
    ('"E":1,"U":1,"u":2,"b":[],"a":[["1","1e400"]]}}', "ask size '1e400'"),
    ('"E":1,"U":1,"u":2,"b":[["0","1"]],"a":[]}}', "bid price '0'"),
    ('"E":-1,"U":1,"u":2,"b":[],"a":[]}}', "event time -1 is negative"),
    ('"E":1,"U":3,"u":2,"b":[],"a":[]}}', "U=3 u=2"),
])
def test_a_frame_the_fast_parse_refuses_gets_the_strict_parse_s_reason(body: str, reason: str) -> None:
    raw = HEAD + body
    assert binance._fast_depth(raw, 0) is None
    with pytest.raises(ParseError, match=reason.replace("[", r"\[")):
        binance.parse_book(raw, 0)
