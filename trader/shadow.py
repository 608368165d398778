"""The shadow record: a challenger's live paper record beside the champion's, read back from the topics.

A challenger trades in shadow with `tickflow trade --shadow --bundle DIR` (orders to ``orders.shadow``,
filled by `tickflow paper --shadow` into ``fills.shadow``, its book on ``portfolio.shadow``) while the
champion trades policy ``ID`` on ``orders``/``fills``. When `tickflow retrain --policy-id ID` gates a
challenger version, ``read_shadow_record`` finds that version's shadow record, defined as:

- its shadow book: the policy id on the ``orders.shadow`` records of that ``policy_version`` and symbol
  (one book; the same version shadowed under two ids is refused, naming both);
- the period: the bars of the symbol at the policy's interval on ``signals.features`` from the later of
  its first shadow order's bar and the first bar after the challenger's training window, to the shadow
  book's last snapshot on ``portfolio.shadow`` (the last bar its trader committed a decision on);
- both books replayed from their fills (``fills.shadow`` for the shadow book, ``fills`` for policy ``ID``)
  with the trader's own accounting (``trader.portfolio.Book``, the trader's starting capital), a fill
  counted from the first bar that ends at or after it, each book marked at every bar's close;
- ``decisions``: the decision bars in the period (every ``decision_every``-th bar, as the trader decides);
  the net log return of each book over the period (its per-bar net log returns summed).

There is no record (None) when no shadow order of the version exists. The gate's rule on it is in
trader.policy.gate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TypeVar

from contracts.errors import ContractError
from contracts.messages import FeatureVector, Fill, Message, Order, PortfolioSnapshot
from contracts.serde import decode
from contracts.symbols import normalise_symbol
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, LIVE, SHADOW, SIGNALS_FEATURES, Topic
from trader.policy.gate import ShadowRecord
from trader.portfolio import Book

log = logging.getLogger(__name__)
M = TypeVar("M", bound=Message)


def equities(bars: list[tuple[int, float]], fills: Iterable[Fill], symbol: str, capital: float) -> list[float]:
    """The book's equity at each bar (``(bar end ts, close)``, ts ascending), from its fills of ``symbol``."""
    pending = sorted((f for f in fills if f.symbol == symbol), key=lambda f: f.ts)
    book, out, i = Book(capital), [], 0
    for ts, close in bars:
        while i < len(pending) and pending[i].ts <= ts:
            book.apply(pending[i])
            i += 1
        book.mark(symbol, close)
        out.append(book.equity)
    return out


def log_return(equity: list[float]) -> float:
    """The net log return from the first to the last value (the sum of the per-step log returns)."""
    return math.log(equity[-1] / equity[0]) if len(equity) > 1 and equity[0] > 0 and equity[-1] > 0 else 0.0


def shadow_record(bars: list[tuple[int, float]], shadow_fills: Iterable[Fill], champion_fills: Iterable[Fill],
                  symbol: str, start_ts: int, end_ts: int, interval_s: int, every: int, capital: float,
                  policy_id: str) -> ShadowRecord:
    """The record over the bars with ``start_ts <= ts <= end_ts`` (see the module for the definition)."""
    bars = sorted({ts: close for ts, close in bars}.items())
    ch, cp = equities(bars, shadow_fills, symbol, capital), equities(bars, champion_fills, symbol, capital)
    inside = [k for k, (ts, _) in enumerate(bars) if start_ts <= ts <= end_ts]
    if not inside:
        return ShadowRecord(0, 0.0, 0.0, policy_id=policy_id, start_ts=start_ts, end_ts=end_ts)
    lo, hi = inside[0], inside[-1] + 1
    decisions = sum(1 for ts, _ in bars[lo:hi] if (ts // (interval_s * 1000)) % every == 0)
    return ShadowRecord(decisions, log_return(ch[lo:hi]), log_return(cp[lo:hi]), bars=hi - lo,
                        start_ts=bars[lo][0], end_ts=bars[hi - 1][0], policy_id=policy_id)


def _decoded(bootstrap: str, topic: Topic, kind: type[M], symbol: str) -> list[M]:
    """The records of ``topic`` that decode as ``kind`` and are of ``symbol`` (when they name one); the rest
    are left out, logged (their consumers dead-letter them)."""
    out: list[M] = []
    for m in read_to_end(bootstrap, topic):
        try:
            rec = decode(m.value() or b"", kind)
        except ContractError as err:
            log.warning("Left %s[%d]@%d out of the shadow record: %s.", m.topic(), m.partition(), m.offset(), err)
            continue
        if getattr(rec, "symbol", symbol) == symbol:
            out.append(rec)
    return out


def read_shadow_record(bootstrap: str, champion_id: str, version: str, symbol: str, interval_s: int, every: int,
                       after_ts: int, capital: float) -> ShadowRecord | None:
    """The shadow record of challenger ``version`` beside policy ``champion_id`` on ``symbol`` over the bars
    after ``after_ts`` (its training window's end), from the topics; None when it never traded in shadow."""
    symbol = normalise_symbol(symbol)
    orders: list[Order] = [o for o in _decoded(bootstrap, SHADOW.orders, Order, symbol)
                           if o.policy_version == version]
    if not orders:
        return None
    books = sorted({o.policy_id for o in orders})
    if len(books) > 1:
        raise ValueError(f"challenger {version} traded in shadow as several policies ({', '.join(books)}); "
                         "its shadow record must come from one shadow book")
    shadow_id = books[0]
    snaps = [s for s in _decoded(bootstrap, SHADOW.portfolio, PortfolioSnapshot, symbol) if s.policy_id == shadow_id]
    end_ts = max([s.ts for s in snaps] or [max(o.feature_ts for o in orders)])
    start_ts = max(min(o.feature_ts for o in orders), after_ts + 1)
    bars = [(fv.ts, fv.close) for fv in _decoded(bootstrap, SIGNALS_FEATURES, FeatureVector, symbol)
            if fv.interval_s == interval_s]
    shadow_fills = [f for f in _decoded(bootstrap, SHADOW.fills, Fill, symbol) if f.policy_id == shadow_id]
    champion_fills = [f for f in _decoded(bootstrap, LIVE.fills, Fill, symbol) if f.policy_id == champion_id]
    record = shadow_record(bars, shadow_fills, champion_fills, symbol, start_ts, end_ts, interval_s, every, capital,
                           shadow_id)
    log.info("Shadow record of %s (shadow book %s, %d orders, %d fills on %s) beside policy %s (%d fills on %s): "
             "%d decisions over %d bars %d..%d, net log return %+.5f vs %+.5f.", version, shadow_id, len(orders),
             len(shadow_fills), SHADOW.fills.name, champion_id, len(champion_fills), FILLS.name, record.decisions,
             record.bars, record.start_ts, record.end_ts, record.challenger_log_return, record.champion_log_return)
    return record
