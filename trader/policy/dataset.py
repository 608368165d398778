"""Training and evaluation data: the offline builder's feature frame, cleaned, split and normalised.

Training tools read features through ``streams.offline`` (the one feature definition), so a policy
sees offline exactly what the trader sees live. Candle files only honestly support ``CANDLE_SAFE``
features (VWAP, taker flow and trade counts of a candle are artefacts of its expansion into trades).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

_CANDLE_NAME = re.compile(r"^(?:[a-z]+_)?(?:spot_)?([A-Z0-9]+)_(\d+)m_")


@dataclass
class Dataset:
    """Rows of closed, ready bars of one symbol with the chosen features."""

    symbol: str
    interval_s: int
    feature_schema: str
    feature_names: tuple[str, ...]
    ts: NDArray[np.int64]
    opens: NDArray[np.float64]
    closes: NDArray[np.float64]
    features: NDArray[np.float64]  # raw, one column per feature name
    source: str
    sha256: str
    candles: bool

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> Dataset:
        return Dataset(self.symbol, self.interval_s, self.feature_schema, self.feature_names, self.ts[start:stop],
                       self.opens[start:stop], self.closes[start:stop], self.features[start:stop], self.source,
                       self.sha256, self.candles)


@dataclass(frozen=True)
class Normaliser:
    """z-score statistics fitted on a training window."""

    mean: NDArray[np.float64]
    std: NDArray[np.float64]

    @classmethod
    def fit(cls, features: NDArray[np.float64]) -> Normaliser:
        mean = features.mean(axis=0)
        std = features.std(axis=0)
        return cls(mean, np.where(std > 1e-12, std, 1.0))

    def apply(self, features: NDArray[np.float64]) -> NDArray[np.float32]:
        return ((features - self.mean) / self.std).astype(np.float32)


def symbol_of(path: Path) -> str | None:
    match = _CANDLE_NAME.match(path.name)
    return match.group(1) if match else None


def schema_of(names: tuple[str, ...]) -> str:
    """The first feature schema holding every one of ``names`` (``v1`` for trade features, ``v2`` with book ones)."""
    from contracts.feature_schema import SCHEMAS

    for version, known in SCHEMAS.items():
        if all(n in known for n in names):
            return version
    unknown = sorted(set(names) - {n for known in SCHEMAS.values() for n in known})
    raise ValueError(f"feature names {', '.join(unknown)} are in no feature schema ({', '.join(SCHEMAS)})")


def _bar_seconds(frame: pd.DataFrame, source: str, interval_s: int | None = None) -> int | None:
    """The bar length of a built frame, ``ts - window_start`` in seconds (None without those columns);
    raise when its bars differ in length or are not ``interval_s`` long."""
    if len(frame) == 0 or "window_start" not in frame.columns:
        return interval_s
    widths = sorted({int(w) for w in (frame["ts"] - frame["window_start"]).unique()})
    if len(widths) > 1 or widths[0] % 1000:
        raise ValueError(f"{source}: bars of several lengths ({', '.join(f'{w} ms' for w in widths[:5])}); "
                         f"build one interval per frame")
    found = widths[0] // 1000
    if interval_s is not None and found != interval_s:
        raise ValueError(f"{source}: its bars are {found} s long, not the {interval_s} s asked for")
    return found


def load(path: Path, feature_names: tuple[str, ...] | None = None, interval_s: int | None = None,
         venue: str = "binance", symbol: str | None = None) -> Dataset:
    """Build (or read) the feature frame of ``path`` and keep the ready rows with finite features.

    ``path`` is a candle or trade file (built with ``streams.offline.build_from_file``) or a feature
    frame already built (``.parquet``, e.g. a recording's from ``tickflow.recording.build_from_recording``).
    ``feature_names`` defaults to CANDLE_SAFE for candle files and to every v1 feature otherwise; the
    dataset's schema is the first that holds the names (``v2`` when any is a book feature).
    ``interval_s`` is the bar length to build (default 60 s); a built frame has its own (a recording's
    1 s bars), which a given ``interval_s`` must match.
    """
    from contracts import feature_schema as schema
    from contracts.history import is_candle_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    candles = path.suffix != ".parquet" and is_candle_file(path)
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        interval_s = _bar_seconds(frame, str(path), interval_s)
    else:
        from streams.offline import build_from_file

        frame = build_from_file(path, symbol=symbol or symbol_of(path), interval_s=interval_s or 60, venue=venue)
    names = tuple(feature_names) if feature_names else (
        tuple(schema.CANDLE_SAFE) if candles else tuple(schema.FEATURE_NAMES))
    unknown = [n for n in names if n not in frame.columns]
    if unknown:
        raise ValueError(f"{path}: the feature frame has no column(s) {', '.join(unknown)}; "
                         f"schema {schema.FEATURE_SCHEMA} has {', '.join(schema.FEATURE_NAMES)} (book features, "
                         f"schema v2, come from a recording's frame: tickflow.recording.build_from_recording)")
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return from_frame(frame, names, schema_of(names), source=str(path), sha256=digest,
                      symbol=symbol or symbol_of(path) or "", interval_s=interval_s or 60,
                      candles=candles)


def from_frame(frame: pd.DataFrame, names: tuple[str, ...], feature_schema: str, source: str = "frame",
               sha256: str = "", symbol: str = "", interval_s: int = 60, candles: bool = True) -> Dataset:
    """Keep rows that are ready with finite values for ``names``; raise when too few remain."""
    values = frame.loc[:, list(names)].to_numpy(dtype=np.float64)
    keep = np.isfinite(values).all(axis=1)
    if "ready" in frame.columns:
        keep &= frame["ready"].to_numpy(dtype=bool)
    if keep.sum() < 3:
        raise ValueError(f"{source}: only {int(keep.sum())} bars have every feature ready; need at least 3")
    return Dataset(symbol, interval_s, feature_schema, names, frame["ts"].to_numpy(dtype=np.int64)[keep],
                   frame["open"].to_numpy(dtype=np.float64)[keep], frame["close"].to_numpy(dtype=np.float64)[keep],
                   values[keep], source, sha256, candles)


def feature_vectors(frame: pd.DataFrame, symbol: str, exchange: str = "binance", interval_s: int = 60,
                    feature_schema: str = "v1", names: tuple[str, ...] | None = None) -> list[Any]:
    """The FeatureVectors the live worker would publish for the rows of an offline frame (tests, benchmarks)."""
    from contracts import V1, FeatureVector

    if names is None:
        from contracts.feature_schema import FEATURE_NAMES

        names = tuple(FEATURE_NAMES)
    cols = {n: frame[n].to_numpy(dtype=np.float64) for n in names}
    out = []
    for i, (ts, close, ready) in enumerate(zip(frame["ts"].to_numpy(), frame["close"].to_numpy(),
                                              frame["ready"].to_numpy(), strict=True)):
        values = {n: (None if not np.isfinite(cols[n][i]) else float(cols[n][i])) for n in names}
        out.append(FeatureVector(schema_version=V1, exchange=exchange, symbol=symbol, interval_s=interval_s,
                                 ts=int(ts), feature_schema=feature_schema, ready=bool(ready), features=values,
                                 close=float(close)))
    return out
