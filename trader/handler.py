"""The trader's decisions, without Kafka: a feature vector in, the orders it causes out.

One ``PolicyTrader`` per policy. It keeps the intended position of each symbol (the sum of its
orders, so a decision never depends on when fills arrive), a book of the actual fills, and the risk
gate. An order the broker finishes short of its quantity (a book fill whose ``last`` fill carries a
``cancelled`` rest) is released: what it did not fill leaves the intended position, the target it was
sent for stays, and the next decision bar orders the difference again if the policy still wants that
target. Order ids are derived from (policy, version, exchange, symbol, bar end): a replayed feature gives
the same id, so downstream consumers can drop duplicates. An id reads ``o-<bar end ms>-<digest>``, so the
order's time is known from its id alone (``order_time``; `tickflow explain` seeks the orders topic by it).
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import cast

from contracts import ORDER_V2, FeatureVector, Fill, MarketEvent, Order, PortfolioSnapshot, SourceOffset
from contracts.feature_schema import SCHEMAS, serves
from trader.policy.bundle import Bundle
from trader.portfolio import Book
from trader.risk import RiskGate, RiskSettings, VerdictKind

log = logging.getLogger(__name__)

# a v1 vector is about 600 bytes; a record far beyond that is refused before it is decoded
MAX_FEATURE_RECORD_BYTES = 16_384
REMEMBER_ORDERS = 100_000  # sent order ids whose fills are accepted (one order per decision bar at most)


def record_problem(raw: bytes) -> str | None:
    """Why a raw feature record is refused before decoding (a DLQ reason), or None."""
    if len(raw) > MAX_FEATURE_RECORD_BYTES:
        return f"the record has {len(raw):,} bytes, more than a feature vector may ({MAX_FEATURE_RECORD_BYTES:,})"
    return None


def order_id(policy_id: str, version: str, exchange: str, symbol: str, bar_end: int) -> str:
    digest = hashlib.sha256(f"{policy_id}|{version}|{exchange}|{symbol}|{bar_end}".encode()).hexdigest()
    return f"o-{bar_end}-{digest[:32]}"


def order_time(oid: str) -> int | None:
    """The bar end (event time, ms) that an ``order_id`` names; None for an id without one (written before
    ids carried it, or not by ``order_id``)."""
    parts = oid.split("-")
    if len(parts) != 3 or parts[0] != "o" or not parts[1].isdigit() or len(parts[2]) != 32:
        return None
    return int(parts[1])


@dataclass
class SymbolState:
    units: float = 0.0  # intended position: the sum of this policy's orders less their cancelled rests
    target_units: float = 0.0  # the units the policy's current target was last ordered at
    position: float = 0.0  # the action value the policy holds (its observation's last element)
    price: float = 0.0
    bars: int = 0  # feature vectors of the policy's interval seen since start (one per closed bar)
    ready: bool = False  # the latest one had every trade feature (the warm-up is over; see FeatureVector)


@dataclass
class Decision:
    orders: list[Order]
    reason: str
    action: int | None = None  # None when no policy ran (not a decision bar, warm-up, halt on a breach)


@dataclass
class PolicyTrader:
    bundle: Bundle
    policy_id: str
    notional: float
    capital: float
    risk_settings: RiskSettings = field(default_factory=RiskSettings)

    def __post_init__(self) -> None:
        if self.notional <= 0:
            raise ValueError(f"notional per unit of position must be positive, got {self.notional}")
        self.swap(self.bundle)
        self.book = Book(self.capital)
        self.risk = RiskGate(self.risk_settings)
        self.symbols: dict[tuple[str, str], SymbolState] = {}
        self.other_intervals = 0
        self.recent: deque[Order] = deque(maxlen=50)
        self.unfilled: OrderedDict[str, float] = OrderedDict()  # sent order id -> qty not yet filled (capped)
        self.decisions = 0
        self.held = 0
        self.last_feature_ts = 0

    def swap(self, bundle: Bundle) -> None:
        """Decide with ``bundle`` from the next feature vector on (trader.swap calls it between feature
        records); the intended positions, the book, the risk gate and its halt carry over."""
        self.bundle, self.version, self.runtime = bundle, bundle.version, bundle.runtime
        self.names = names = bundle.feature_names
        self._values = operator.itemgetter(*names) if len(names) > 1 else (lambda d: (d[names[0]],))
        self.every = int(bundle.manifest.get("decision_every", 1))
        self.interval_s = int(bundle.manifest.get("interval_s", 60))

    # -- inputs ---------------------------------------------------------------------------------
    def refuse_reason(self, fv: FeatureVector) -> str | None:
        """Why a well-formed feature vector cannot be traded on at all (a DLQ reason), or None."""
        if not serves(fv.feature_schema, self.bundle.feature_schema):
            return (f"feature schema {fv.feature_schema!r} does not match the bundle's "
                    f"{self.bundle.feature_schema!r}")
        names = tuple(fv.features)
        schema = SCHEMAS[fv.feature_schema]  # known (serves); the bundle's names are picked from it
        if names != schema:
            missing = [n for n in schema if n not in fv.features]
            extra = [n for n in names if n not in schema]
            if extra:
                return (f"features {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''} ({len(extra):,} "
                        f"names) are not feature schema {fv.feature_schema!r}'s")
            if missing:
                return f"features lack {', '.join(missing)} of feature schema {fv.feature_schema!r}"
            return f"features are not in feature schema {fv.feature_schema!r}'s order"
        return None

    def mine(self, fv: FeatureVector) -> bool:
        """True for the bar interval the policy was trained on (the worker also emits other intervals)."""
        if fv.interval_s == self.interval_s:
            return True
        self.other_intervals += 1
        return False

    def on_feature(self, fv: FeatureVector, now_wall_ms: int, record: SourceOffset | None = None) -> Decision:
        """Decide on one feature vector of the policy's interval (see ``mine``); ``record`` is where it was
        read, named on the orders it causes."""
        self.risk.observe_time(fv.symbol, fv.ts)
        self.last_feature_ts = max(self.last_feature_ts, fv.ts)
        key = (fv.exchange, fv.symbol)
        st = self.symbols.setdefault(key, SymbolState())
        st.price = fv.close
        st.bars += 1
        st.ready = fv.ready
        drawdown = self.book.mark(fv.symbol, fv.close)
        decision_bar = (fv.ts // (fv.interval_s * 1000)) % self.every == 0
        breach = not self.risk.halted and drawdown >= self.risk.s.max_drawdown
        if not decision_bar and not breach:
            return Decision([], "no decision at this bar")
        got = self._values(fv.features)  # every name is there (refuse_reason)
        values = cast(tuple[float, ...], got)  # when None is not in it
        # a sum is finite only when every term is (inf - inf is nan)
        if not breach and (not fv.ready or None in got or not math.isfinite(sum(values))):
            self.held += 1
            return Decision([], "hold: features not ready")
        action = None
        desired_pos, desired_units = st.position, st.units
        if not breach:
            action = self.runtime.act(values, st.position)
            desired_pos = self.runtime.actions[action]
            # as in the environment, a position is only traded when the policy changes its target: holding
            # the same target does not resize it to the notional at every price
            # (a cancelled rest left the units short of that target: the same target orders the difference)
            desired_units = st.target_units if desired_pos == st.position else desired_pos * self.notional / fv.close
        verdict = self.risk.check(fv.symbol, fv.ts, now_wall_ms, desired_units, st.units, fv.close, drawdown)
        self.decisions += 1
        if verdict.kind is VerdictKind.HALT:
            orders = []
            for (ex, sym), other in sorted(self.symbols.items()):
                order = self._move(ex, sym, other, 0.0, 0.0, fv.ts, verdict.reason, record)
                if order is not None:
                    orders.append(order)
            log.warning("Policy %s halted at %s ts %d: %s.", self.policy_id, fv.symbol, fv.ts, verdict.reason)
            return Decision(orders, verdict.reason, action)
        if verdict.target_units == st.units:
            if verdict.kind is not VerdictKind.POLICY:
                self.held += 1
            return Decision([], verdict.reason, action)
        pos = desired_pos if verdict.target_units == desired_units else verdict.target_units * fv.close / self.notional
        order = self._move(fv.exchange, fv.symbol, st, verdict.target_units, pos, fv.ts,
                           f"{verdict.reason}: action {action} target {desired_pos:+g}", record)
        return Decision([order] if order else [], verdict.reason, action)

    def _move(self, exchange: str, symbol: str, st: SymbolState, target_units: float, position: float, ts: int,
              reason: str, record: SourceOffset | None) -> Order | None:
        qty = target_units - st.units
        st.position = position
        if abs(qty) * max(st.price, 1e-12) < 1e-6:
            return None
        order = Order(schema_version=ORDER_V2, order_id=order_id(self.policy_id, self.version, exchange, symbol, ts),
                      policy_id=self.policy_id, policy_version=self.version, exchange=exchange, symbol=symbol,
                      side="buy" if qty > 0 else "sell", qty=abs(qty), target_position=position, ts=ts,
                      feature_ts=ts, reason=reason[:200], feature=record)
        # the intended position is the sum of the orders' quantities, added as the rebuild adds them
        # (restore_order), so a trader rebuilt from its orders holds the very same floats
        st.units = st.target_units = st.units + (order.qty if qty > 0 else -order.qty)
        self._sent(order)
        self.risk.order_sent(ts)
        self.recent.append(order)
        return order

    def _sent(self, order: Order) -> None:
        self.unfilled[order.order_id] = order.qty
        while len(self.unfilled) > REMEMBER_ORDERS:
            self.unfilled.popitem(last=False)

    def fill_problem(self, fill: Fill) -> str | None:
        """Why a fill of this policy is refused (a DLQ reason): not an order it sent, or more than it asked."""
        if fill.policy_id != self.policy_id:
            return None
        remaining = self.unfilled.get(fill.order_id)
        if remaining is None:
            return f"fill {fill.fill_id} is for order {fill.order_id}, which policy {self.policy_id} never sent"
        if fill.qty > remaining * (1 + 1e-9) + 1e-12:
            return (f"fill {fill.fill_id} of {fill.qty:g} is more than the {remaining:g} left of order "
                    f"{fill.order_id}")
        return None

    def on_fill(self, fill: Fill) -> bool:
        """Book a fill of this policy; False when it belongs to another policy or is refused (fill_problem)."""
        if fill.policy_id != self.policy_id:
            return False
        problem = self.fill_problem(fill)
        if problem is not None:
            log.warning("Not booked: %s.", problem)
            return False
        rest = self.unfilled[fill.order_id] - fill.qty
        self.unfilled[fill.order_id] = rest
        self.book.apply(fill)
        if fill.last and fill.cancelled > 0 and rest > 0:  # the broker ended it short (float residue is not a rest)
            self._release(fill, rest)
        return True

    def _release(self, fill: Fill, rest: float) -> None:
        """The order of ``fill`` is finished with ``rest`` unfilled: it is no longer coming."""
        st = self.symbols.setdefault((fill.exchange, fill.symbol), SymbolState())
        st.units -= rest if fill.side == "buy" else -rest
        self.unfilled[fill.order_id] = 0.0
        log.info("Order %s of policy %s finished with %.8g %s unfilled (%s): intended %s %s %.8g units, target %.8g.",
                 fill.order_id, self.policy_id, rest, fill.side, fill.reason or "no reason given", fill.exchange,
                 fill.symbol, st.units, st.target_units)

    def on_event(self, event: MarketEvent) -> None:
        if event.kind == "gap":
            self.risk.gap(event.symbol, event.ts)
            log.warning("A market-data gap on %s %s at %d: holding %s for %.0f s of event time.", event.exchange,
                        event.symbol, event.ts, event.symbol, self.risk.s.gap_hold_s)

    def restore_order(self, order: Order) -> None:
        """Rebuild the intended positions from this policy's past orders (on start)."""
        if order.policy_id != self.policy_id:
            return
        st = self.symbols.setdefault((order.exchange, order.symbol), SymbolState())
        st.units += order.qty if order.side == "buy" else -order.qty
        st.target_units = st.units  # the rebuild's fills release cancelled rests (on_fill) after the orders
        st.position = order.target_position
        self._sent(order)
        self.risk.order_sent(order.ts)
        self.risk.observe_time(order.symbol, order.ts)
        self.recent.append(order)

    def restore_halt(self, snapshot: PortfolioSnapshot) -> None:
        """Halt again on start when this policy's last portfolio snapshot says it was halted."""
        if snapshot.policy_id == self.policy_id and snapshot.halted and not self.risk.halted:
            self.risk.halt(f"halted before the restart (portfolio snapshot at ts {snapshot.ts})")

    @property
    def halted(self) -> bool:
        return self.risk.halted
