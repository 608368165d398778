"""The gate's statistics against known values, and the gate's decisions on hand-made policies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.policy_record import PackedBundle, RegistryError, pack, unpack
from trader import confidence as ci
from trader.policy import bundle as bundle_mod
from trader.policy.dataset import Dataset
from trader.policy.gate import GateSettings, ShadowRecord, run_gate
from trader.policy.runtime import Layer


def test_psr_is_the_papers_formula_on_a_hand_case() -> None:
    # SR 0.1 per period over 101 returns, normal (skew 0, kurtosis 3): z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01)
    assert ci.psr(0.1, 101) == pytest.approx(0.5 * (1 + math.erf(0.1 * 10 / math.sqrt(1.005) / math.sqrt(2))))
    assert ci.psr(0.1, 101) == pytest.approx(0.84074, abs=1e-5)
    assert ci.psr(0.0, 50) == pytest.approx(0.5)
    # negative skew and fat tails widen the estimator's spread, so the same SR is less convincing
    assert ci.psr(0.1, 101, skew=-1.0, kurt=6.0) < ci.psr(0.1, 101)


def test_dsr_matches_the_numerical_example_of_the_deflated_sharpe_ratio_paper() -> None:
    # Bailey and Lopez de Prado (2014): 100 trials, variance of their annualised SRs 0.5, an annualised SR of
    # 2.5 over 1,250 daily returns with skewness -3 and kurtosis 10: SR0 = 0.1132 a day, DSR = 0.9004.
    daily = math.sqrt(250)
    assert ci.expected_max_sharpe(100, 0.5 / 250) == pytest.approx(0.1132, abs=1e-4)
    assert ci.dsr(2.5 / daily, 1250, -3.0, 10.0, trials=100, trial_variance=0.5 / 250) == pytest.approx(0.9004,
                                                                                                        abs=5e-4)
    assert ci.dsr(0.05, 500, 0.0, 3.0, trials=1) == ci.psr(0.05, 500)  # one trial deflates nothing


def test_moments_of_a_known_series() -> None:
    skew, kurt = ci.moments(np.array([1.0, -1.0] * 50))
    assert skew == pytest.approx(0.0) and kurt == pytest.approx(1.0)
    assert ci.moments(np.zeros(10)) == (0.0, 3.0)


@settings(max_examples=3, deadline=None)
@given(mean=st.floats(-0.5, 0.5), block=st.sampled_from([1, 5]))
def test_bootstrap_interval_covers_the_true_mean_of_iid_data_at_its_level(mean: float, block: int) -> None:
    rng = np.random.default_rng(1)
    hits = 0
    reps = 150
    for k in range(reps):
        x = rng.normal(mean, 1.0, 100)
        lo, hi = ci.mean_interval(x, 0.9, block, n_boot=300, seed=k)
        hits += lo <= mean <= hi
    assert 0.82 <= hits / reps <= 0.96, f"90% interval covered the mean in {hits} of {reps} samples"


def test_bootstrap_is_reproducible_and_its_block_length_follows_the_rule() -> None:
    x = np.random.default_rng(0).normal(size=300)
    assert ci.mean_lower_bound(x, 0.95, 7, 500, seed=3) == ci.mean_lower_bound(x, 0.95, 7, 500, seed=3)
    assert ci.block_length(1000) == 10 and ci.block_length(1000, min_block=60) == 60 and ci.block_length(5, 60) == 5
    with pytest.raises(ValueError, match="confidence level"):
        ci.mean_interval(x, 1.2, 5)


# A one-feature "policy" whose action follows the sign of its feature (long when positive), and its opposite.
def _bundle(out: Path, sign: float) -> bundle_mod.Bundle:
    w1 = np.array([[sign * 10.0, 0.0]], np.float32)  # input: the normalised feature, then the position
    layers = [Layer(w1, np.zeros(1, np.float32), "identity"),
              Layer(np.array([[-1.0], [1.0]], np.float32), np.zeros(2, np.float32), "identity")]
    rng = np.random.default_rng(0)
    manifest = {"algo": "ppo", "mode": "long_only", "action_map": [0.0, 1.0], "feature_schema": "v1",
                "feature_names": ["flow_imb"], "interval_s": 60, "decision_every": 1,
                "costs": {"fee_bps": 5.0, "slippage_bps": 1.0, "impact_bps_per_10k": 0.0},
                "training": {"window": {"start_ts": 0, "end_ts": 60_000 * 99, "bars": 100}, "seed": 0}}
    golden = [([float(rng.normal())], float(k % 2)) for k in range(bundle_mod.GOLDEN_CASES)]
    return bundle_mod.write(out, layers, np.zeros(1), np.ones(1), manifest, golden)


def _edge_data(n: int = 600, edge: float = 0.003) -> Dataset:
    """The feature's sign is the next bar's move (less the noise): following it pays, against it loses."""
    rng = np.random.default_rng(4)
    s = rng.choice([-1.0, 1.0], n)
    closes = 100 * np.exp(np.cumsum(np.r_[0.0, s[:-1]] * edge + rng.normal(0, 0.001, n)))
    opens = np.r_[100.0, closes[:-1]]
    ts = np.arange(n, dtype=np.int64) * 60_000
    return Dataset("X", 60, "v1", ("flow_imb",), ts, opens, closes, s[:, None].astype(np.float64), "t", "", False)


def test_the_gate_promotes_the_policy_that_follows_the_edge_and_rejects_its_opposite(tmp_path: Path) -> None:
    good, bad = _bundle(tmp_path / "good", 1.0), _bundle(tmp_path / "bad", -1.0)
    data = _edge_data()
    s = GateSettings(n_boot=500)
    up = run_gate(bad, good.path, data, s)
    assert up.promote, up.reason
    assert up.test_bars == 500 and up.test_start_ts > 60_000 * 99  # only bars after the training window
    f = up.figures
    assert f["diff_lower"] > 0 and f["challenger"]["psr"] > 0.99 and f["champion"]["psr"] < 0.01
    assert f["block"] == ci.block_length(500, 1) and f["trials"] == 1
    down = run_gate(good, bad.path, data, s)
    assert not down.promote and "lower bound" in down.reason
    assert run_gate(bad, good.path, data, s).figures == f  # seeded: the same figures again


def test_the_gate_refuses_a_tampered_bundle_a_short_test_and_a_disagreeing_shadow(tmp_path: Path) -> None:
    good, bad = _bundle(tmp_path / "good", 1.0), _bundle(tmp_path / "bad", -1.0)
    data = _edge_data()
    s = GateSettings(n_boot=500)
    assert not run_gate(bad, good.path, data, s, ShadowRecord(10, 0.1, 0.0)).promote  # too few shadow decisions
    disagree = run_gate(bad, good.path, data, s, ShadowRecord(80, -0.1, 0.0))
    assert not disagree.promote and "in shadow" in disagree.reason
    agree = run_gate(bad, good.path, data, s, ShadowRecord(80, 0.1, 0.0, policy_id="sh"))
    assert agree.promote and "in shadow +0.1000 (log) ahead over 80 decisions" in agree.reason
    assert agree.figures["shadow"]["difference"] == 0.1 and agree.figures["shadow"]["min_decisions"] == 50
    short = run_gate(bad, good.path, data.slice(0, 130), s)
    assert not short.promote and "only 30 bars" in short.reason
    weights = good.path / bundle_mod.WEIGHTS
    raw = weights.read_bytes()
    weights.write_bytes(bytes([raw[0] ^ 1]) + raw[1:])
    tampered = run_gate(bad, good.path, data, s)
    assert not tampered.promote and "checksum mismatch" in tampered.reason


def test_a_bundle_travels_in_a_record_byte_for_byte(tmp_path: Path) -> None:
    b = _bundle(tmp_path / "b", 1.0)
    packed = pack(b.path, b.version, b.algo)
    assert packed == pack(b.path, b.version, b.algo)  # deterministic: no times or owners in the archive
    again = bundle_mod.load(unpack(packed, tmp_path / "copy"))
    assert again.version == b.version
    with pytest.raises(RegistryError, match="hash"):
        unpack(PackedBundle(version=b.version, algo="ppo", sha256=packed.sha256, size=packed.size,
                            data=packed.data[:-1] + b"x"), tmp_path / "bad")


def test_a_shadow_record_that_only_ties_the_champion_does_not_agree(tmp_path: Path) -> None:
    """Agreement is the offline difference's sign, strictly: a shadow period where both books made the same
    (both flat, say) is no live evidence for the challenger, and the gate rejects it."""
    good, bad = _bundle(tmp_path / "good", 1.0), _bundle(tmp_path / "bad", -1.0)
    s = GateSettings(n_boot=500, min_shadow_decisions=5)
    tie = run_gate(bad, good.path, _edge_data(), s, ShadowRecord(5, 0.02, 0.02))
    assert not tie.promote and "does not have the sign of the offline" in tie.reason
    assert run_gate(bad, good.path, _edge_data(), s, ShadowRecord(5, 0.03, 0.02)).promote  # N met, ahead
    assert not run_gate(bad, good.path, _edge_data(), s, ShadowRecord(4, 0.03, 0.02)).promote  # one short of N
    with pytest.raises(ValueError, match="minimum shadow decisions"):
        GateSettings(min_shadow_decisions=0)
