"""One symbol form across venues: BASE-QUOTE in upper case (BTC-USDT), the venue's spelling kept apart."""

from __future__ import annotations

import re

# Quote assets, longest first so that e.g. FDUSD wins over USD.
QUOTES = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "DAI", "USD", "EUR", "GBP", "JPY", "TRY", "BRL",
          "BTC", "ETH", "BNB")
_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_SEPARATED = re.compile(r"^([A-Za-z0-9]+)[-/_]([A-Za-z0-9]+)$")


def normalise_symbol(venue_symbol: str) -> str:
    """BTCUSDT, btcusdt, BTC-USDT, BTC/USD, XBT/USD -> BTC-USDT, BTC-USD ...

    Raises ValueError naming the symbol when no known quote asset ends it.
    """
    text = venue_symbol.strip()
    match = _SEPARATED.match(text)
    if match:
        base, quote = match.group(1).upper(), match.group(2).upper()
    else:
        upper = text.upper()
        quote = next((q for q in QUOTES if upper.endswith(q) and len(upper) > len(q)), "")
        if not quote:
            raise ValueError(f"cannot split symbol {venue_symbol!r} into base and quote; "
                             f"known quote assets: {', '.join(QUOTES)}")
        base = upper[: -len(quote)]
    return f"{_ALIASES.get(base, base)}-{_ALIASES.get(quote, quote)}"
