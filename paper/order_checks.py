"""What the paper broker refuses before matching: orders no sane trader sends.

An order is refused (to ``orders.dlq`` with the reason) when its quantity is not finite or exceeds
``PAPER__MAX_QTY``, when its notional at the symbol's latest trade price exceeds ``PAPER__MAX_NOTIONAL``
(before the symbol's first trade only the quantity limit applies), or when its policy is not one of
``PAPER__POLICIES`` (``*``: every policy). The guard holds whoever writes to ``orders``.
"""

from __future__ import annotations

import math
from typing import Protocol

from contracts import Order


class OrderLimits(Protocol):
    @property
    def max_qty(self) -> float: ...
    @property
    def max_notional(self) -> float: ...
    @property
    def policies(self) -> str: ...


def served_policies(text: str) -> frozenset[str] | None:
    """The policy ids of ``PAPER__POLICIES``; None for ``*`` (every policy)."""
    names = frozenset(p.strip() for p in text.split(","))
    return None if "*" in names else names


def order_problem(order: Order, limits: OrderLimits, served: frozenset[str] | None,
                  last_price: float | None) -> str | None:
    """Why ``order`` is refused, or None."""
    if served is not None and order.policy_id not in served:
        return (f"policy {order.policy_id!r} is not served by this paper broker "
                f"(PAPER__POLICIES={limits.policies})")
    if not math.isfinite(order.qty) or order.qty > limits.max_qty:
        return f"qty {order.qty:g} is not a finite quantity within PAPER__MAX_QTY={limits.max_qty:g}"
    if last_price is not None and order.qty * last_price > limits.max_notional:
        return (f"notional {order.qty * last_price:,.2f} (qty {order.qty:g} at the last price {last_price:g}) exceeds "
                f"PAPER__MAX_NOTIONAL={limits.max_notional:,.0f}")
    return None
