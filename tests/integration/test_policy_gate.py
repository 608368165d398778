"""Retrain from market.trades on a real broker: a better challenger is promoted, a worse one rejected.

The data is constructed to hold a learnable edge that survives the costs: 1-minute bars of 6 trades
each; in bar t the takers buy 5 of the 6 trades or sell 5 of 6 (a coin flip s_t, so the bar's
``flow_imb`` is +-2/3), and the next bar's price moves by ``s_t * 30 bp`` (plus 10 bp of noise) from
its first trade to its last. A long-only policy that holds bar t+1 when ``flow_imb`` of bar t was
positive earns about 15 bp a bar on average and pays 6 bp (5 bp fee, 1 bp slippage) per position
change. The champion is first trained on an earlier stretch without the edge (the flow says
nothing about the next bar), so it cannot know it; the window on the topic has the edge.

1. retrain with the champion's recipe: the challenger learns the edge and is promoted;
2. retrain again on the same window: the challenger is bit-for-bit the version now serving (same
   records, same recipe, same seed), so there is nothing to decide and the registry is left as it is;
3. retrain with far fewer steps (``--timesteps 512``): a worse challenger, rejected; run twice, the
   same challenger version and the same figures, so the second run writes nothing (one decision).
Every decision and its figures are on the registry (`tickflow policy history`).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contracts.policy_registry import latest
from tests.integration.edge_support import START_MS, champion_without_edge, edge_trades, produce
from tickflow.cli import main


def retrain(policy_id: str, until: int, *extra: str) -> None:
    assert main(["retrain", "--policy-id", policy_id, "--window", "1d", "--until", str(until), "--resamples", "1000",
                 *extra]) == 0


@pytest.mark.usefixtures("shared_broker")
def test_retrain_promotes_the_better_challenger_and_rejects_the_worse(bootstrap: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    monkeypatch.setenv("TICKFLOW_HOME", str(tmp_path / "home"))
    window = edge_trades(1200, 30.0, seed=5, start_ms=START_MS)
    produce(bootstrap, window + edge_trades(50, 30.0, seed=6, start_ms=START_MS, symbol="OTHERUSDT"))
    until = window[-1].ts_event + 60_000
    first = champion_without_edge(tmp_path / "champion")
    assert main(["policy", "promote", "edge", "--bundle", str(tmp_path / "champion")]) == 0

    retrain("edge", until)
    rec = latest(bootstrap, "edge")
    assert rec is not None and rec.decision.kind == "promoted", rec and rec.decision.reason
    better = rec.decision.version
    f = rec.decision.figures
    assert rec.serving is not None and rec.serving.version == better != first
    assert rec.previous is not None and rec.previous.version == first
    assert f["diff_lower"] > 0 and f["challenger"]["total_return"] > f["champion"]["total_return"]
    assert f["data"]["trades"] == len(window)  # the other symbol is left out
    assert rec.decision.training_window and rec.decision.test_window
    assert rec.decision.test_window.start_ts > rec.decision.training_window.end_ts  # scored out of sample

    served = latest(bootstrap, "edge")
    retrain("edge", until)  # same window, same recipe: the same bundle as the one serving, nothing to decide
    assert latest(bootstrap, "edge") == served

    worse = []
    for _ in range(2):  # the second run decides the same on the same evidence: the registry keeps one decision
        retrain("edge", until, "--timesteps", "512")
        rec = latest(bootstrap, "edge")
        assert rec is not None and rec.decision.kind == "rejected", rec and rec.decision.reason
        assert rec.serving is not None and rec.serving.version == better
        worse.append(rec)
    assert worse[0].decision.version != better and worse[0].decision.figures["diff_lower"] < 0
    assert worse[1] == worse[0]  # the same record: no second write

    capsys.readouterr()
    assert main(["policy", "history", "edge"]) == 0
    shown = capsys.readouterr().out
    assert [line.split()[2] for line in shown.splitlines() if line[:2] == "20"] == \
        ["promoted", "promoted", "rejected"]
    assert f"challenger {better}" in shown and "lower bound" in shown and "dsr" in shown
    print(f"retrain gate test: {time.monotonic() - started:.1f} s")
