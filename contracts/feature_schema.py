"""The feature schemas a FeatureVector may name: each version's feature names, in their order.

The definitions live with the code that computes them (``streams/features/schema.py``); the names are
here because every service checks against them: the trader refuses a bundle or a vector whose names
are not its schema's. Changing a definition or the order is a new schema version.
"""

from __future__ import annotations

V1: tuple[str, ...] = (
    "ret_1", "ret_5", "ret_15", "ret_60",
    "rv_20", "rv_60",
    "rsi_14",
    "macd", "macd_signal",
    "bb_z_20",
    "close_vwap",
    "volume_z_20",
    "flow_imb", "flow_imb_ema_10",
    "trades_z_20",
)

SCHEMAS: dict[str, tuple[str, ...]] = {"v1": V1}


def names_problem(schema: str, names: list[str] | tuple[str, ...]) -> str | None:
    """Why ``names`` are not a selection of ``schema``'s features in its order (None when they are)."""
    known = SCHEMAS.get(schema)
    if known is None:
        return f"feature schema {schema!r} is not one this tickflow knows ({', '.join(SCHEMAS)})"
    unknown = [n for n in names if n not in known]
    if unknown:
        return f"feature names {', '.join(map(repr, unknown[:5]))} are not in feature schema {schema!r}"
    if len(set(names)) != len(names):
        return "feature names repeat a name"
    order = [known.index(n) for n in names]
    if order != sorted(order):
        return (f"feature order {', '.join(names)} differs from feature schema {schema!r}'s order "
                f"({', '.join(n for n in known if n in names)})")
    return None
