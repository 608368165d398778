"""The venues tickflow ingests, by name."""

from __future__ import annotations

from contracts.errors import SettingsError
from ingestor.venues import binance, coinbase_advanced, coinbase_exchange, kraken, okx
from ingestor.venues.base import Frame, ParseError, VenueSpec

VENUES: dict[str, VenueSpec] = {m.SPEC.name: m.SPEC
                                for m in (binance, coinbase_advanced, coinbase_exchange, okx, kraken)}


def venue(name: str) -> VenueSpec:
    """The venue called ``name``; an unknown name is a settings error listing the known ones."""
    try:
        return VENUES[name]
    except KeyError:
        raise SettingsError(f"unknown venue {name!r}; choose one of: {', '.join(VENUES)}") from None


__all__ = ["VENUES", "Frame", "ParseError", "VenueSpec", "venue"]
