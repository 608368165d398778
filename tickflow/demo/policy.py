"""A policy bundle for the demo and for docker compose: keep a valid one, or train one.

Training goes through the same functions as the notebook: ``trader.policy.dataset.load`` (features
from the streams' offline builder over the bundled candles) and ``trader.policy.train.train``.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CANDLES = REPO / "data" / "ohlcv" / "binance_spot_BTCUSDT_1m_20250520T0000_20250818T1827.csv.gz"


def valid_bundle(path: Path) -> str | None:
    """None when ``path`` holds a bundle that passes the trader's checks, else the reason it does not."""
    from trader.policy.bundle import BundleError, load

    try:
        load(path)
    except BundleError as err:
        return str(err)
    return None


def ensure_bundle(out: Path, algo: str = "ppo", timesteps: int = 20_000, seed: int = 7, force: bool = False,
                  data: Path = DEFAULT_CANDLES) -> tuple[Path, bool]:
    """Return (bundle path, whether it was trained now). Training shows a progress bar."""
    out = Path(out)
    if not force and (out / "manifest.json").exists():
        problem = valid_bundle(out)
        if problem is None:
            log.info("Keeping the valid policy bundle at %s.", out)
            return out, False
        log.warning("The bundle at %s is refused (%s); training a new one.", out, problem)
    from trader.policy.dataset import load
    from trader.policy.train import TrainConfig, train

    print(f"training a {algo.upper()} policy for {timesteps:,} steps on {data.name} (features from the offline "
          f"builder); the bundle goes to {out}", flush=True)
    dataset = load(data)
    train(dataset, TrainConfig(algo=algo, timesteps=timesteps, seed=seed, progress=True), out)
    problem = valid_bundle(out)
    if problem is not None:
        raise RuntimeError(f"the bundle just trained at {out} fails its own check: {problem}")
    return out, True


def bundle_cadence(path: Path) -> tuple[int, int]:
    """The bar interval (s) the bundle at ``path`` was trained on (the views follow it) and its decision cadence
    in bars (the report's exposure-matched buy-and-hold starts at the first decision bar)."""
    from trader.policy.bundle import load

    manifest = load(path).manifest
    return int(manifest.get("interval_s", 60)), int(manifest.get("decision_every", 1))
