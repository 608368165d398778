"""`tickflow explain ORDER_ID`: the chain behind one order, each link read back from the topics.

trades -> bar -> features -> bundle version -> order -> fills. The order names its feature record
(``Order.feature``, schema version 2; a version 1 order is matched by symbol and ``feature_ts``), the
feature vector names the first and last trade of its bar (``FeatureVector.source``), the bar is the
``signals.bars`` record of the same key, interval and window end, and the fills are those of the order id
written after it. The bundle's training window comes from its manifest when ``--bundle`` gives it.

The order itself is found near its time: an order id names its bar end (``trader.handler.order_time``), the
order's record is written after that bar closed, so the ``orders`` topic is read from the first record
stamped ``ORDER_LOOKBACK_MS`` before it (``offsets_for_times``) and, only when the order is not there (a
producer's clock far behind, or a replay of data newer than the wall clock), from the start up to that
point. Records stamped long after their bar (a replay of old data) give no shortcut: the whole topic is read,
as it is for an id that names no time.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Message

from contracts import Bar, ContractError, FeatureVector, Fill, Order, SourceOffset, Trade, decode
from contracts.messages import Message as ContractMessage
from contracts.settings import kafka_bootstrap
from contracts.topic_reader import offsets_at, read_at, read_to_end
from contracts.topics import FILLS, ORDERS, SIGNALS_BARS, SIGNALS_FEATURES
from trader.handler import order_time

M = TypeVar("M", bound=ContractMessage)
BAR_LOOKBACK_MS = 60_000  # the bar is written with its feature vector; look this far before the vector's record
ORDER_LOOKBACK_MS = 60_000  # an order's record is written after its bar end; this much clock skew is allowed
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Link:
    """One link of the chain: its name, where it was read (topic[partition]@offset) and what it says."""

    name: str
    where: str
    text: str
    resolved: bool = True

    def line(self) -> str:
        return f"{self.name:<9}{self.where}  {self.text}" if self.resolved else f"{self.name:<9}UNRESOLVED  {self.text}"


def where(m: Message) -> str:
    return f"{m.topic()}[{m.partition()}]@{m.offset()}"


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def explain(bootstrap: str, order_id: str, bundle_dirs: list[Path]) -> list[Link]:
    """The chain of ``order_id``; raises ValueError when no such order is on the orders topic."""
    found = find_order(bootstrap, order_id)
    if found is None:
        raise ValueError(f"no order {order_id!r} on {ORDERS.name}")
    om, order, _ = found
    fm, fv, how = _feature(bootstrap, order)
    links: list[Link] = []
    if fm is None or fv is None:
        links.append(Link("features", "", how, resolved=False))
    else:
        links = [*_trades(bootstrap, fv), _bar(bootstrap, fm, fv), Link(
            "features", where(fm), f"{fv.exchange} {fv.symbol} {fv.interval_s} s bar ending {iso(fv.ts)}, "
            f"{'ready' if fv.ready else 'warming up'}, {len(fv.features)} features ({fv.feature_schema}), "
            f"close {fv.close:g}{how}")]
    links.append(_bundle(order, bundle_dirs))
    links.extend(_decisions(bootstrap, order))
    links.append(Link("order", where(om), f"{order.order_id}: {order.side} {order.qty:.8g} {order.symbol} to target "
                      f"{order.target_position:+g} at {iso(order.ts)} by policy {order.policy_id} version "
                      f"{order.policy_version} (schema v{order.schema_version}); {order.reason}"))
    links.extend(_fills(bootstrap, om, order))
    return links


def find_order(bootstrap: str, order_id: str) -> tuple[Message, Order, int] | None:
    """The record of ``order_id`` on the orders topic, the order, and how many records were read to find it."""
    match: Callable[[Order], bool] = lambda o: o.order_id == order_id  # noqa: E731
    ts = order_time(order_id)
    count = [0]
    if ts is None:
        found = _first(read_to_end(bootstrap, ORDERS), Order, match, count)
    else:
        near = offsets_at(bootstrap, ORDERS, max(0, ts - ORDER_LOOKBACK_MS))
        found = _first(read_to_end(bootstrap, ORDERS, start=near), Order, match, count)
        if found is None:  # stamped before its time: what lies before the seek point
            found = _first(read_to_end(bootstrap, ORDERS, stop=near), Order, match, count)
    if found is None:
        return None
    log.info("Order %s is at %s, found after reading %d records of %s.", order_id, where(found[0]), count[0],
             ORDERS.name)
    return *found, count[0]


def _first(records: Iterable[Message], kind: type[M], match: Callable[[M], bool],
           count: list[int] | None = None) -> tuple[Message, M] | None:
    """The first record that decodes as ``kind`` and matches; stops reading there (``count`` adds up the
    records read)."""
    for m in records:
        if count is not None:
            count[0] += 1
        try:
            value = decode(m.value() or b"", kind)
        except ContractError:
            continue  # not this kind (the topic's own consumers dead-letter it)
        if match(value):
            return m, value
    return None


def _feature(bootstrap: str, order: Order) -> tuple[Message | None, FeatureVector | None, str]:
    """The feature record of ``order`` and how it was found (or why it was not)."""
    same = lambda fv: (fv.exchange, fv.symbol, fv.ts) == (order.exchange, order.symbol, order.feature_ts)  # noqa: E731
    if order.feature is None:
        found = _first(read_to_end(bootstrap, SIGNALS_FEATURES), FeatureVector, same)
        if found is None:
            return None, None, (f"the order (schema v{order.schema_version}) names no feature record and "
                                f"{SIGNALS_FEATURES.name} holds no {order.symbol} vector at {iso(order.feature_ts)}")
        return *found, " (found by symbol and feature_ts: the order names no record)"
    ref = order.feature
    m = read_at(bootstrap, ref.topic, ref.partition, ref.offset)
    if m is None:
        return None, None, f"{ref.topic}[{ref.partition}]@{ref.offset}, named by the order, holds no record (deleted?)"
    try:
        fv = decode(m.value() or b"", FeatureVector)
    except ContractError as err:
        return None, None, f"{where(m)}, named by the order, is not a feature vector: {err}"
    if not same(fv):
        return None, None, (f"{where(m)} is {fv.exchange} {fv.symbol} at {iso(fv.ts)}, not the order's "
                            f"{order.exchange} {order.symbol} at {iso(order.feature_ts)}")
    return m, fv, ""


def _bar(bootstrap: str, fm: Message, fv: FeatureVector) -> Link:
    """The bar the vector was computed at: same key, interval and window end, written with the vector."""
    start = offsets_at(bootstrap, SIGNALS_BARS, max(0, fm.timestamp()[1] - BAR_LOOKBACK_MS))
    found = _first(read_to_end(bootstrap, SIGNALS_BARS, start=start), Bar,
                   lambda b: (b.exchange, b.symbol, b.interval_s, b.window_end) == (
                       fv.exchange, fv.symbol, fv.interval_s, fv.ts))
    if found is None:
        return Link("bar", "", f"no {fv.exchange} {fv.symbol} {fv.interval_s} s bar ending {iso(fv.ts)} on "
                    f"{SIGNALS_BARS.name}", resolved=False)
    m, bar = found
    return Link("bar", where(m), f"[{iso(bar.window_start)}, {iso(bar.window_end)}) open {bar.open:g} high "
                f"{bar.high:g} low {bar.low:g} close {bar.close:g} volume {bar.volume:.8g}, {bar.trades} trades")


def _trades(bootstrap: str, fv: FeatureVector) -> list[Link]:
    """The bar's first and last trade, from the offsets the vector names."""
    if len(fv.source) != 2:
        return [Link("trades", "", f"the feature vector names {len(fv.source)} source records, not its bar's "
                     "first and last trade (written by an offline builder?)", resolved=False)]
    return [_trade(bootstrap, label, ref, fv) for label, ref in zip(("first", "last"), fv.source, strict=True)]


def _trade(bootstrap: str, label: str, ref: SourceOffset, fv: FeatureVector) -> Link:
    name = "trades"
    m = read_at(bootstrap, ref.topic, ref.partition, ref.offset)
    if m is None:
        return Link(name, "", f"{label}: {ref.topic}[{ref.partition}]@{ref.offset} holds no record (deleted?)", False)
    try:
        t = decode(m.value() or b"", Trade)
    except ContractError as err:
        return Link(name, "", f"{label}: {where(m)} is not a trade: {err}", False)
    in_bar = (t.exchange, t.symbol) == (fv.exchange, fv.symbol) and fv.ts - fv.interval_s * 1000 <= t.ts_event < fv.ts
    text = (f"{label} trade {t.trade_id}: {t.side} {t.size:.8g} {t.symbol} at {t.price:g}, {iso(t.ts_event)}"
            + ("" if in_bar else f" -- outside the bar ending {iso(fv.ts)}"))
    return Link(name, where(m), text, resolved=in_bar)


def _bundle(order: Order, bundle_dirs: list[Path]) -> Link:
    """The bundle of the order's version, with its training window, when one of ``bundle_dirs`` is it."""
    from trader.policy import bundle as bundle_mod

    versions = []
    for path in bundle_dirs:
        b = bundle_mod.load(path)
        if b.version == order.policy_version:
            window = b.manifest.get("training", {}).get("window") or {}
            data = b.manifest.get("training", {}).get("data", "?")
            trained = (f"trained on {data} from {iso(window['start_ts'])} to {iso(window['end_ts'])} "
                       f"({window.get('bars', '?')} bars)") if "start_ts" in window else "no training window"
            return Link("bundle", str(b.path), f"{b.algo} version {b.version}, {trained}")
        versions.append(f"{path} is version {b.version}")
    hint = "; ".join(versions) if versions else "give --bundle DIR to show its manifest"
    return Link("bundle", "", f"version {order.policy_version} ({hint})", resolved=False)


def _decisions(bootstrap: str, order: Order) -> list[Link]:
    """The registry's decisions on the order's version (``policies``, key the policy id): none when the
    policy was never on the registry (a trader started with --bundle)."""
    from contracts.policy_registry import latest
    from contracts.topics import POLICIES

    record = latest(bootstrap, order.policy_id)
    if record is None:
        return []
    links = []
    for d in record.history:
        if d.version != order.policy_version:
            continue
        window = (f"; trained {iso(d.training_window.start_ts)} to {iso(d.training_window.end_ts)}"
                  if d.training_window is not None else "")
        figures = ", ".join(f"{k} {v:.4g}" for k, v in d.figures.items() if isinstance(v, int | float))
        text = f"{d.kind} by {d.by} at {iso(d.ts)}: {d.reason}{window}" + (f" ({figures})" if figures else "")
        links.append(Link("decision", f"{POLICIES.name} key {order.policy_id}", text))
    if not links:
        links.append(Link("decision", f"{POLICIES.name} key {order.policy_id}",
                          f"no decision on version {order.policy_version} in the registry", resolved=False))
    return links


def _fills(bootstrap: str, om: Message, order: Order) -> list[Link]:
    start = offsets_at(bootstrap, FILLS, om.timestamp()[1])
    links = []
    for m in read_to_end(bootstrap, FILLS, start=start):
        try:
            f = decode(m.value() or b"", Fill)
        except ContractError:
            continue
        if f.order_id == order.order_id:
            links.append(Link("fill", where(m), f"{f.fill_id}: {f.side} {f.qty:.8g} at {f.price:g}, fee {f.fee:.6g}, "
                              f"slippage {f.slippage:.6g}, {iso(f.ts)} against trade {f.trade_id or '-'}"
                              + (" (last)" if f.last else "")))
    if not links:
        links.append(Link("fill", "", f"no fill of the order on {FILLS.name} yet", resolved=False))
    return links


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "explain", help="print the chain behind an order: trades -> bar -> features -> bundle -> order -> fills",
        description="Read the topics at KAFKA_BOOTSTRAP back from an order: the feature record it names, the "
        "bar and the first and last trade of that bar, the bundle version (its training window from --bundle's "
        "manifest), and the order's fills; each link is printed with its topic[partition]@offset. Exits 1 "
        "when a link does not resolve.",
    )
    p.add_argument("order_id", help="the order's id, e.g. from `tickflow topic dump orders`")
    p.add_argument("--bundle", type=Path, action="append", default=[], metavar="DIR",
                   help="a policy bundle to look the order's version up in (repeatable)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    links = explain(kafka_bootstrap(), args.order_id, args.bundle)
    for link in links:
        print(link.line())
    return 0 if all(link.resolved for link in links) else 1


__all__ = ["Link", "explain", "register"]
