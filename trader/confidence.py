"""How much a return series can be trusted: block bootstrap intervals, probabilistic and deflated Sharpe.

Pure functions of numpy arrays, used by the promotion gate (trader.policy.gate) and the evaluation.

- Stationary bootstrap (Politis and Romano, 1994): resamples blocks of geometric length with mean
  ``block``, wrapping around the end, so serial dependence within about a block survives the
  resampling. The default mean block length is ``max(min_block, ceil(n ** (1/3)))``: n^(1/3) is the
  rate of the optimal block length for the variance of a mean (Politis and White, 2004), and a policy
  that holds a position for k bars makes its returns dependent over at least k bars, so the callers
  pass the decision interval as ``min_block``. Percentile intervals; a fixed seed makes them
  reproducible.
- Probabilistic Sharpe ratio (Bailey and Lopez de Prado, "The Sharpe Ratio Efficient Frontier",
  2012): the probability that the true Sharpe ratio exceeds a benchmark SR*, given the observed
  per-period SR over n returns with skewness g3 and kurtosis g4 (not excess):
  ``PSR = Phi((SR - SR*) * sqrt(n - 1) / sqrt(1 - g3 * SR + (g4 - 1) / 4 * SR^2))``.
- Deflated Sharpe ratio (Bailey and Lopez de Prado, "The Deflated Sharpe Ratio", 2014): the PSR
  against the Sharpe ratio the best of N independent trials would show by luck,
  ``SR0 = sqrt(V) * ((1 - gamma) * Phi^-1(1 - 1/N) + gamma * Phi^-1(1 - 1/(N e)))`` with gamma the
  Euler-Mascheroni constant and V the variance of the trials' Sharpe ratios. One trial: SR0 = 0 and
  the DSR is the PSR.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

EULER_GAMMA = 0.5772156649015329
_NORMAL = NormalDist()
_CHUNK_CELLS = 4_000_000  # blocks drawn at once (lengths and starts: 64 MB of int64)


def log_returns(equity: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-bar log returns of an equity curve (equity at or below zero counts as a total loss)."""
    return np.diff(np.log(np.maximum(np.asarray(equity, np.float64), 1e-12)))


def max_drawdown(equity: NDArray[np.float64]) -> float:
    eq = np.asarray(equity, np.float64)
    return float(np.max(1.0 - eq / np.maximum.accumulate(eq))) if len(eq) else 0.0


def sharpe(returns: NDArray[np.float64]) -> float:
    """Per-period Sharpe ratio: mean over (population) standard deviation; 0 for a constant series."""
    r = np.asarray(returns, np.float64)
    std = float(r.std()) if len(r) else 0.0
    return float(r.mean()) / std if std > 0 else 0.0


def moments(returns: NDArray[np.float64]) -> tuple[float, float]:
    """Skewness and kurtosis (not excess: 3 for a normal law) of ``returns``; (0, 3) for a constant series."""
    r = np.asarray(returns, np.float64)
    dev = r - r.mean()
    var = float(np.mean(dev**2)) if len(r) else 0.0
    if var <= 0:
        return 0.0, 3.0
    return float(np.mean(dev**3)) / var**1.5, float(np.mean(dev**4)) / var**2


def psr(sr: float, n: int, skew: float = 0.0, kurt: float = 3.0, benchmark: float = 0.0) -> float:
    """Probabilistic Sharpe ratio of a per-period ``sr`` over ``n`` returns against ``benchmark``."""
    if n < 2:
        raise ValueError(f"the probabilistic Sharpe ratio needs at least 2 returns, got {n}")
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if var <= 0:
        return 1.0 if sr > benchmark else 0.0
    return _NORMAL.cdf((sr - benchmark) * math.sqrt(n - 1) / math.sqrt(var))


def expected_max_sharpe(trials: int, variance: float) -> float:
    """SR0: the Sharpe ratio the best of ``trials`` independent trials reaches by luck (0 for one trial)."""
    if trials < 1:
        raise ValueError(f"trials must be at least 1, got {trials}")
    if trials == 1 or variance <= 0:
        return 0.0
    return math.sqrt(variance) * ((1 - EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / trials)
                                  + EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (trials * math.e)))


def sharpe_estimator_variance(sr: float, n: int, skew: float = 0.0, kurt: float = 3.0) -> float:
    """The variance of a per-period Sharpe ratio estimated from ``n`` returns (the PSR's denominator):
    the trials' variance when the search did not record their Sharpe ratios."""
    return max(1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr, 0.0) / max(n - 1, 1)


def dsr(sr: float, n: int, skew: float, kurt: float, trials: int, trial_variance: float | None = None) -> float:
    """Deflated Sharpe ratio: the PSR against the expected maximum of ``trials`` trials' Sharpe ratios."""
    variance = sharpe_estimator_variance(sr, n, skew, kurt) if trial_variance is None else trial_variance
    return psr(sr, n, skew, kurt, benchmark=expected_max_sharpe(trials, variance))


def block_length(n: int, min_block: int = 1) -> int:
    """The default mean block length: ``max(min_block, ceil(n ** (1/3)))``, at most ``n``."""
    return max(1, min(n, max(min_block, math.ceil(n ** (1 / 3)))))


def stationary_bootstrap_means(x: NDArray[np.float64], block: float, n_boot: int, seed: int) -> NDArray[np.float64]:
    """The means of ``n_boot`` stationary-bootstrap resamples of ``x`` (mean block length ``block``)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    if n < 2:
        raise ValueError(f"a bootstrap needs at least 2 values, got {n}")
    if block < 1:
        raise ValueError(f"the mean block length must be at least 1 bar, got {block}")
    rng = np.random.default_rng(seed)
    # A resample is blocks of geometric length (mean ``block``) from uniform starts, wrapping, cut at n
    # values: its sum is the blocks' sums, read off the prefix sums of x written twice, so a resample
    # costs its number of blocks (about n / block), not n.
    prefix = np.concatenate(([0.0], np.cumsum(np.concatenate((x, x)))))
    p = 1.0 / block
    blocks = math.ceil(n * p + 6.0 * math.sqrt(n * p) + 8.0)  # enough to reach n in all but ~1e-9 of rows
    out = np.empty(n_boot, np.float64)
    step = max(1, _CHUNK_CELLS // blocks)
    for lo in range(0, n_boot, step):
        rows = min(step, n_boot - lo)
        lengths = np.minimum(rng.geometric(p, size=(rows, blocks)), n)
        starts = rng.integers(0, n, size=(rows, blocks))
        ends = np.cumsum(lengths, axis=1)
        while (ends[:, -1] < n).any():  # a row whose blocks fell short of n: more blocks for every row
            more = np.minimum(rng.geometric(p, size=(rows, blocks)), n)
            lengths = np.concatenate((lengths, more), axis=1)
            starts = np.concatenate((starts, rng.integers(0, n, size=(rows, blocks))), axis=1)
            ends = np.cumsum(lengths, axis=1)
        taken = np.clip(n - (ends - lengths), 0, lengths)  # each block cut where the resample reaches n
        sums = prefix[starts + taken] - prefix[starts]
        out[lo:lo + rows] = sums.sum(axis=1) / n
    return out


def mean_interval(x: NDArray[np.float64], level: float, block: float, n_boot: int = 2000,
                  seed: int = 0) -> tuple[float, float]:
    """A two-sided ``level`` percentile interval of the mean of ``x`` by the stationary bootstrap."""
    if not 0.5 <= level < 1.0:
        raise ValueError(f"confidence level must be in [0.5, 1), got {level}")
    means = stationary_bootstrap_means(x, block, n_boot, seed)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def mean_lower_bound(x: NDArray[np.float64], level: float, block: float, n_boot: int = 2000, seed: int = 0) -> float:
    """The one-sided ``level`` lower confidence bound of the mean of ``x`` (the ``1 - level`` quantile)."""
    if not 0.5 <= level < 1.0:
        raise ValueError(f"confidence level must be in [0.5, 1), got {level}")
    return float(np.quantile(stationary_bootstrap_means(x, block, n_boot, seed), 1.0 - level))
