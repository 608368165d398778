"""The venues' book checksums: plain CRC32 (``zlib.crc32``) over the levels' text as the venue sent it."""

from __future__ import annotations

import zlib

OKX_LEVELS = 25
KRAKEN_LEVELS = 10


def okx(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """OKX: the top 25 levels, bid and ask interleaved (bid1, ask1, bid2, ...), ``price:size`` joined by
    ``:``, as a signed 32-bit integer."""
    parts: list[str] = []
    for i in range(OKX_LEVELS):
        if i < len(bids):
            parts += bids[i]
        if i < len(asks):
            parts += asks[i]
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _kraken_digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken(bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> int:
    """Kraken v2: the top 10 asks (low to high) then the top 10 bids (high to low), each price and qty with
    the "." removed and leading zeros stripped, concatenated; unsigned CRC32."""
    text = "".join(_kraken_digits(p) + _kraken_digits(q) for p, q in asks[:KRAKEN_LEVELS])
    text += "".join(_kraken_digits(p) + _kraken_digits(q) for p, q in bids[:KRAKEN_LEVELS])
    return zlib.crc32(text.encode())
