"""A sink that keeps what the pipeline would publish, for unit tests of parsing and sequencing."""

from __future__ import annotations

import gzip
from pathlib import Path

from contracts.messages import DeadLetter, MarketEvent, Trade
from ingestor.pipeline import Pipeline
from ingestor.venues import venue

REPO = Path(__file__).resolve().parents[3]
SAMPLES = REPO / "data" / "ws_samples"
RECORDED = SAMPLES / "recorded"


class Collect:
    def __init__(self) -> None:
        self.trades: list[Trade] = []
        self.events: list[MarketEvent] = []
        self.dead: list[DeadLetter] = []

    def trade(self, t: Trade) -> None:
        self.trades.append(t)

    def event(self, e: MarketEvent) -> None:
        self.events.append(e)

    def dead_letter(self, d: DeadLetter) -> None:
        self.dead.append(d)


def pipeline(name: str) -> tuple[Pipeline, Collect]:
    sink = Collect()
    return Pipeline(venue(name), sink), sink


def lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]
