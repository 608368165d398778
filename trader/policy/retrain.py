"""Retraining from the stream: a challenger from the recent window of market.trades, judged by the gate.

One run (``retrain_once``):

1. the champion: the serving version of the policy on the registry (contracts.policy_registry),
   unpacked and verified (``bundle.load``);
2. the window: every record of ``market.trades`` whose Kafka timestamp lies in ``[until - window,
   until]``, found with ``offsets_for_times`` and read with ``topic_reader.read_to_end``, in partition
   order (the order the streams worker sees), of the champion's symbol;
3. features: the one offline builder (``streams.offline.closed_bars`` and ``features_frame``, the live
   worker's code) on those trades;
4. the challenger: the champion's recipe (``TrainConfig.from_manifest``: algorithm, hyperparameters,
   seed, steps, costs) trained on the first ``train_fraction`` of the window's ready bars;
5. its shadow record, when that version has traded in shadow beside the champion (trader.shadow:
   ``orders.shadow``/``fills.shadow`` against the policy's ``fills``, read from the topics);
6. the gate (trader.policy.gate) on the bars after the challenger's training window (and on the shadow
   record), and its decision written to the registry: the challenger serves when promoted, the champion
   stays when rejected. Nothing is written when the challenger is the version serving (a rerun on the
   window that promoted it) or when the registry already holds its decision (the same challenger, kind,
   serving version and figures: a rerun on the same window and evidence), so a retrain killed at any
   point, even between its write and its exit, and run again leaves one decision.

The same records in the window and the same recipe give the same challenger (training is seeded and
single-threaded) and the same gate figures (the bootstrap is seeded). ``run`` repeats it every
``every_s`` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import KafkaException, TopicPartition

from contracts import kafka_io
from contracts.errors import ContractError
from contracts.messages import Trade
from contracts.policy_record import Decision, PolicyRecord, RegistryError, Window, pack, unpack
from contracts.policy_registry import latest, promoted, rejected, write
from contracts.serde import decode
from contracts.timeutil import now_ms
from contracts.topic_reader import partition_watermarks, read_to_end
from contracts.topics import MARKET_TRADES
from streams.offline import closed_bars, features_frame
from trader.policy import bundle as bundle_mod
from trader.policy.dataset import Dataset, from_frame
from trader.policy.gate import GateResult, GateSettings, ShadowRecord, run_gate
from trader.policy.train import TrainConfig, train
from trader.shadow import read_shadow_record

log = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_duration(text: str, what: str) -> float:
    """Seconds in ``90s``, ``30m``, ``6h`` or ``14d``; a ValueError names ``what`` otherwise."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        seconds = float(value) * _UNITS[unit]
    except (KeyError, ValueError):
        raise ValueError(f"{what} {text!r} is not a duration: a number and s, m, h or d (for example 6h)") from None
    if seconds <= 0:
        raise ValueError(f"{what} {text!r} must be positive")
    return seconds


@dataclass(frozen=True)
class TradeWindow:
    start_ms: int
    end_ms: int
    offsets: dict[int, tuple[int, int]]  # partition -> [first, end) offsets read
    trades: list[Trade]
    digest: str  # sha256 of the records read, in order

    def as_dict(self) -> dict[str, object]:
        return {"topic": MARKET_TRADES.name, "start_ms": self.start_ms, "end_ms": self.end_ms,
                "trades": len(self.trades), "sha256": self.digest,
                "offsets": {str(p): list(v) for p, v in sorted(self.offsets.items())}}


def window_offsets(bootstrap: str, start_ms: int, end_ms: int) -> tuple[dict[int, int], dict[int, int]]:
    """Per partition of market.trades, the first offset at or after ``start_ms`` and the first after
    ``end_ms`` (the end of the partition when no record is that late), by Kafka timestamp."""
    c = kafka_io.consumer(bootstrap, "tickflow-retrain-times")
    try:
        tps = kafka_io.partitions(c, MARKET_TRADES)
        ends = {tp.partition: partition_watermarks(c, tp)[1] for tp in tps}

        def at(ms: int) -> dict[int, int]:
            found = c.offsets_for_times([TopicPartition(tp.topic, tp.partition, ms) for tp in tps], timeout=10)
            return {tp.partition: tp.offset if tp.offset >= 0 else ends[tp.partition] for tp in found}

        return at(start_ms), at(end_ms + 1)
    finally:
        c.close()


def matches(t: Trade, symbol: str, exchange: str | None) -> bool:
    return (t.symbol == symbol or t.venue_symbol == symbol) and (exchange is None or t.exchange == exchange)


def read_window(bootstrap: str, start_ms: int, end_ms: int, symbol: str, exchange: str | None = None) -> TradeWindow:
    """The trades of ``symbol`` on market.trades with Kafka timestamps in ``[start_ms, end_ms]``."""
    start, stop = window_offsets(bootstrap, start_ms, end_ms)
    digest = hashlib.sha256()
    trades: list[Trade] = []
    for m in read_to_end(bootstrap, MARKET_TRADES, start=start, stop=stop):
        raw = m.value() or b""
        try:
            t = decode(raw, Trade)
        except ContractError as err:  # the streams worker sends it to the DLQ; training leaves it out
            log.warning("Left out %s[%d]@%d, not a trade: %s.", m.topic(), m.partition(), m.offset(), err)
            continue
        if matches(t, symbol, exchange):
            digest.update(raw)
            trades.append(t)
    offsets = {p: (start[p], stop[p]) for p in start if stop[p] > start[p]}
    log.info("Read %d trades of %s from %s (offsets %s) for %d..%d.", len(trades), symbol, MARKET_TRADES.name,
             offsets, start_ms, end_ms)
    return TradeWindow(start_ms, end_ms, offsets, trades, digest.hexdigest())


def window_dataset(window: TradeWindow, champion: bundle_mod.Bundle, symbol: str) -> Dataset:
    """Bars and features of the window's trades by the offline builder, in the champion's feature order."""
    interval_s = int(champion.manifest.get("interval_s", 60))
    per_key = closed_bars(window.trades, (interval_s,))
    if not per_key:
        raise ValueError(f"no trades of {symbol} on {MARKET_TRADES.name} between {window.start_ms} and "
                         f"{window.end_ms} (Kafka time): nothing to retrain on")
    if len(per_key) > 1:
        raise ValueError(f"trades of {symbol} from several venues ({sorted(per_key)}): choose one with --exchange")
    frame = features_frame(next(iter(per_key.values())))
    return from_frame(frame, tuple(champion.feature_names), champion.feature_schema,
                      source=f"{MARKET_TRADES.name}@{window.start_ms}-{window.end_ms}", sha256=window.digest,
                      symbol=symbol, interval_s=interval_s, candles=False)


def challenge(champion: bundle_mod.Bundle, data: Dataset, out: Path, settings: GateSettings,
              train_fraction: float = 0.8, timesteps: int | None = None,
              shadow_of: Callable[[bundle_mod.Bundle], ShadowRecord | None] | None = None) -> tuple[Path, GateResult]:
    """Train a challenger with the champion's recipe on ``data``'s first ``train_fraction`` into ``out``
    (emptied first), and run the gate on the rest, with ``shadow_of(challenger)``'s record when given."""
    changes: dict[str, object] = {"train_fraction": train_fraction}
    if timesteps is not None:
        changes["timesteps"] = timesteps
    cfg = TrainConfig.from_manifest(champion.manifest, **changes)
    if out.exists():
        shutil.rmtree(out)
    trained = train(data, cfg, out).bundle
    return out, run_gate(champion, out, data, settings, shadow_of(trained) if shadow_of else None)


def training_window(manifest: dict[str, Any]) -> Window | None:
    w = manifest.get("training", {}).get("window")
    return Window(start_ts=int(w["start_ts"]), end_ts=int(w["end_ts"]), bars=int(w.get("bars", 0))) if w else None


def champion_of(current: PolicyRecord | None, policy_id: str, directory: Path) -> bundle_mod.Bundle:
    if current is None or current.serving is None:
        raise RegistryError(f"policy {policy_id} has no serving version on the registry: promote one first "
                            f"(tickflow policy promote {policy_id} --bundle DIR)")
    try:
        return bundle_mod.load(unpack(current.serving, directory))
    except bundle_mod.BundleError as err:
        raise RegistryError(f"policy {policy_id}: the registry's serving version {current.serving.version} "
                            f"fails its check: {err}") from err


def decided_before(current: PolicyRecord | None, decision: Decision) -> bool:
    """True when the registry's history already holds this gate decision on the same evidence (the figures
    compared as the registry stores them, JSON)."""
    if current is None:
        return False
    figures = msgspec.json.decode(msgspec.json.encode(decision.figures))
    return any(d.by == "gate" and (d.kind, d.version, d.serving) == (decision.kind, decision.version, decision.serving)
               and msgspec.json.decode(msgspec.json.encode(d.figures)) == figures for d in current.history)


def retrain_once(bootstrap: str, policy_id: str, window_s: float, home: Path, settings: GateSettings,
                 until_ms: int | None = None, symbol: str | None = None, exchange: str | None = None,
                 train_fraction: float = 0.8, timesteps: int | None = None,
                 capital: float = 10_000.0) -> PolicyRecord:
    """One retrain: challenger from the window ending at ``until_ms`` (default now), its shadow record
    (books replayed from ``capital``, the trader's starting cash) when it has one, gate, registry write."""
    current = latest(bootstrap, policy_id)
    with tempfile.TemporaryDirectory(prefix="tickflow-champion-") as tmp:
        champion = champion_of(current, policy_id, Path(tmp) / "bundle")
    symbol = symbol or str(champion.manifest["training"].get("symbol") or "")
    if not symbol:
        raise ValueError(f"the champion {champion.version} does not record its symbol: pass --symbol")
    end = now_ms() if until_ms is None else until_ms
    window = read_window(bootstrap, end - int(window_s * 1000), end, symbol, exchange)
    data = window_dataset(window, champion, symbol)
    out = home / "retrain" / policy_id / f"challenger-{end}"

    def shadow_of(challenger: bundle_mod.Bundle) -> ShadowRecord | None:
        window_end = int(challenger.manifest["training"]["window"]["end_ts"])
        return read_shadow_record(bootstrap, policy_id, challenger.version, symbol, data.interval_s,
                                  int(challenger.manifest.get("decision_every", 1)), window_end, capital)

    challenger_dir, result = challenge(champion, data, out, settings, train_fraction, timesteps, shadow_of)
    challenger = bundle_mod.load(challenger_dir) if result.figures.get("bundle_check") is None else None
    version = challenger.version if challenger else "unverified"
    train_window = training_window(challenger.manifest) if challenger else None
    decision = Decision(kind="promoted" if result.promote else "rejected", version=version,
                        serving=version if result.promote else champion.version, ts=now_ms(), by="gate",
                        reason=result.reason, figures={**result.figures, "data": window.as_dict()},
                        training_window=train_window,
                        test_window=Window(start_ts=result.test_start_ts, end_ts=result.test_end_ts,
                                           bars=result.test_bars) if result.test_bars else None)
    if version == champion.version or decided_before(current, decision):
        assert current is not None  # a champion, or a decision before, is on a record
        log.info("Policy %s: challenger %s %s; the registry keeps its decision (revision %d: %s %s).", policy_id,
                 version, "is the version serving, nothing to decide" if version == champion.version else
                 f"was {decision.kind} against {champion.version} on this evidence before", current.revision,
                 current.decision.kind, current.decision.version)
        return current
    if result.promote and challenger is not None:
        record = promoted(current, policy_id, pack(challenger_dir, challenger.version, challenger.algo, train_window),
                          decision)
    else:
        record = rejected(current, policy_id, decision)
    write(bootstrap, record)
    log.info("Policy %s: challenger %s %s against %s (%s).", policy_id, version, decision.kind, champion.version,
             result.reason)
    return record


def run(bootstrap: str, policy_id: str, window_s: float, home: Path, settings: GateSettings, every_s: float,
        stop: threading.Event, **once: object) -> int:
    """``retrain_once`` now and then every ``every_s`` seconds until ``stop`` is set; returns the runs done.

    A run that finds too little data, a registry without a serving version or a retriable Kafka error
    (a leader moving) is logged and the next run is waited for; any other error stops the job.
    """
    runs = 0
    while not stop.is_set():
        try:
            retrain_once(bootstrap, policy_id, window_s, home, settings, **once)  # type: ignore[arg-type]
            runs += 1
        except (RegistryError, ValueError) as err:
            log.error("Retrain of policy %s found nothing to decide: %s; next run in %.0f s.", policy_id, err, every_s)
        except KafkaException as err:
            if not err.args[0].retriable():
                raise
            log.error("Retrain of policy %s met a passing Kafka error: %s; next run in %.0f s.", policy_id,
                      err.args[0].str(), every_s)
        stop.wait(every_s)
    return runs
