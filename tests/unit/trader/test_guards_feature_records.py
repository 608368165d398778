"""What a feature record may carry: its schema's names, in order, and a bounded size. A vector with 45,000
extra keys (754 KB) was accepted and traded on."""

from __future__ import annotations

from pathlib import Path

from contracts import encode
from contracts.feature_schema import V1
from tests.unit.trader.trader_support import feature, linear_bundle
from trader.handler import MAX_FEATURE_RECORD_BYTES, PolicyTrader, record_problem


def _trader(tmp_path: Path) -> PolicyTrader:
    return PolicyTrader(linear_bundle(tmp_path / "b"), "p1", notional=1000.0, capital=10_000.0)


def test_a_vector_with_45000_extra_keys_is_refused(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    fv = feature(60_000, 1.0)
    assert t.refuse_reason(fv) is None
    bloated = type(fv)(**{**{f: getattr(fv, f) for f in fv.__struct_fields__},
                          "features": {**fv.features, **{f"junk_{i}": 0.0 for i in range(45_000)}}})
    reason = t.refuse_reason(bloated)
    assert reason is not None and "junk_0" in reason and "not feature schema 'v1'" in reason
    raw = encode(bloated)
    assert len(raw) > 700_000
    problem = record_problem(raw)
    assert problem is not None and str(MAX_FEATURE_RECORD_BYTES) in problem.replace(",", "")
    assert record_problem(encode(fv)) is None


def test_a_vector_missing_or_reordering_schema_names_is_refused(tmp_path: Path) -> None:
    t = _trader(tmp_path)
    fv = feature(60_000, 1.0)
    fields = {f: getattr(fv, f) for f in fv.__struct_fields__}
    missing = type(fv)(**{**fields, "features": {n: 0.0 for n in V1[:-1]}})
    assert "lack" in (t.refuse_reason(missing) or "")
    reordered = type(fv)(**{**fields, "features": {n: 0.0 for n in reversed(V1)}})
    assert "order" in (t.refuse_reason(reordered) or "")
