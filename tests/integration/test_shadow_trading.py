"""Shadow trading on a real broker: a challenger beside the champion, its own paper book, and the gate reading it.

The market holds a learnable, costed edge (tests/integration/edge_support.py); the champion "edge" was
trained where there is none. The challenger is trained as `tickflow retrain` trains it (the champion's
recipe on the window read back from market.trades). Then four services run as subprocesses: the champion
(`tickflow trade --policy-id edge`) and its paper broker (`tickflow paper`), the challenger in shadow
(`tickflow trade --shadow`) and the shadow paper book (`tickflow paper --shadow`), all on the same
feature records. Afterwards:

- the lanes are apart: orders and fills of the champion only on orders/fills, of the challenger only on
  orders.shadow/fills.shadow; no order id twice; every order filled in its own lane; each book's last
  snapshot holds the position its own fills make;
- `tickflow retrain --policy-id edge` retrains the same challenger version (deterministic), reads its
  shadow record from the topics, and the gate uses it: with more shadow decisions required than the
  record holds it rejects, naming the count; with the default it promotes, the shadow difference
  beside the offline figures.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import TypeVar

import pytest
from confluent_kafka import Producer

from contracts import Fill, Order, PortfolioSnapshot, Topic, decode, encode, market_key
from contracts.client_config import producer_config
from contracts.messages import Message
from contracts.policy_registry import latest
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, FILLS_SHADOW, ORDERS, ORDERS_SHADOW, PORTFOLIO, PORTFOLIO_SHADOW, SIGNALS_FEATURES
from streams.offline import closed_bars, features_frame
from tests.helpers import REPO, cli_env, tickflow_cmd
from tests.integration.edge_support import START_MS, champion_without_edge, edge_trades, produce
from tickflow.cli import main
from trader.policy import bundle as bundle_mod
from trader.policy.dataset import feature_vectors
from trader.policy.retrain import read_window, window_dataset
from trader.policy.train import TrainConfig, train

pytestmark = pytest.mark.integration
M = TypeVar("M", bound=Message)
SYMBOL = "EDGE-USDT"
# small orders: one market trade (size 1) fills each, at the first trade after the decision
NOTIONAL, CAPITAL = 50.0, 10_000.0


def _read(bootstrap: str, topic: Topic, kind: type[M]) -> list[M]:
    return [decode(m.value() or b"", kind) for m in read_to_end(bootstrap, topic)]


def _units(fills: list[Fill]) -> float:
    return sum(f.qty if f.side == "buy" else -f.qty for f in fills)


@pytest.mark.usefixtures("shared_broker")
def test_a_challenger_trades_in_shadow_in_its_own_book_and_the_gate_reads_its_record(
        bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.monotonic()
    home = tmp_path / "home"
    monkeypatch.setenv("TICKFLOW_HOME", str(home))
    monkeypatch.setenv("TRADER__CAPITAL", str(CAPITAL))
    trades = edge_trades(1200, 30.0, seed=5, start_ms=START_MS)
    produce(bootstrap, trades)
    until = trades[-1].ts_event + 60_000
    fvs = feature_vectors(features_frame(next(iter(closed_bars(trades).values()))), SYMBOL)
    p = Producer(producer_config(bootstrap, {"linger.ms": 5}))
    for fv in fvs:
        p.produce(SIGNALS_FEATURES.name, encode(fv), market_key(fv.exchange, fv.symbol))
    assert p.flush(30) == 0
    champion_without_edge(tmp_path / "champion")
    assert main(["policy", "promote", "edge", "--bundle", str(tmp_path / "champion")]) == 0

    # the challenger as `tickflow retrain` trains it: the champion's recipe on the window read back
    champion = bundle_mod.load(tmp_path / "champion")
    data = window_dataset(read_window(bootstrap, until - 86_400_000, until, "EDGEUSDT"), champion, "EDGEUSDT")
    challenger = train(data, TrainConfig.from_manifest(champion.manifest, train_fraction=0.8),
                       tmp_path / "challenger").bundle

    env = cli_env(bootstrap, home)
    env.update({"TRADER__NOTIONAL": str(NOTIONAL), "TRADER__CAPITAL": str(CAPITAL), "TRADER__HTTP_PORT": "-1"})
    runs = {"champion": ["trade", "--bundle", str(champion.path), "--policy-id", "edge"], "paper": ["paper"],
            "shadow": ["trade", "--shadow", "--bundle", str(challenger.path)], "paper-shadow": ["paper", "--shadow"]}
    procs = {}
    try:
        for name, args in runs.items():
            with (tmp_path / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(tickflow_cmd(*args), env=env, cwd=REPO, stdout=out,
                                               stderr=subprocess.STDOUT)
        last_ts = fvs[-1].ts
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # both books marked to the last bar, every order filled in its lane
            # each lane's own book: a fill after the last bar snapshots the shadow book at that bar a second time
            marked = all(any(s.ts == last_ts for s in _read(bootstrap, t, PortfolioSnapshot))
                         for t in (PORTFOLIO, PORTFOLIO_SHADOW))
            orders = {t: _read(bootstrap, t, Order) for t in (ORDERS, ORDERS_SHADOW)}
            fills = {t: _read(bootstrap, t, Fill) for t in (FILLS, FILLS_SHADOW)}
            done = all({o.order_id for o in orders[o_t]} <= {f.order_id for f in fills[f_t] if f.last}
                       for o_t, f_t in ((ORDERS, FILLS), (ORDERS_SHADOW, FILLS_SHADOW)))
            if done and marked and orders[ORDERS] and orders[ORDERS_SHADOW]:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the two lanes did not finish: {len(orders[ORDERS])} / "
                                 f"{len(orders[ORDERS_SHADOW])} orders; see {tmp_path}/*.log")
    finally:
        for proc in procs.values():  # a clean stop: each trader commits its last snapshot
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.wait(60)
    assert all(proc.returncode == 0 for proc in procs.values()), {n: pr.returncode for n, pr in procs.items()}

    live, shadow = orders[ORDERS], orders[ORDERS_SHADOW]
    shadow_id = f"{challenger.algo}-{challenger.version[:8]}"
    assert {(o.policy_id, o.policy_version) for o in live} == {("edge", champion.version)}
    assert {(o.policy_id, o.policy_version) for o in shadow} == {(shadow_id, challenger.version)}
    for got in (live, shadow):
        assert len({o.order_id for o in got}) == len(got), "an order id twice"
    assert {f.policy_id for f in fills[FILLS]} == {"edge"} and {f.policy_id for f in fills[FILLS_SHADOW]} == {shadow_id}
    books = {s.policy_id: s for s in _read(bootstrap, PORTFOLIO, PortfolioSnapshot)}
    shadow_books = {s.policy_id: s for s in _read(bootstrap, PORTFOLIO_SHADOW, PortfolioSnapshot)}
    assert set(books) == {"edge"} and set(shadow_books) == {shadow_id}
    assert books["edge"].positions.get(SYMBOL, 0.0) == pytest.approx(_units(fills[FILLS]), abs=1e-9)
    assert shadow_books[shadow_id].positions.get(SYMBOL, 0.0) == pytest.approx(_units(fills[FILLS_SHADOW]),
                                                                               abs=1e-9)

    # the shadow period: bars after the challenger's training window, from its first order to its last snapshot
    window_end = int(challenger.manifest["training"]["window"]["end_ts"])
    first = max(min(o.feature_ts for o in shadow), window_end + 1)
    expected = sum(1 for fv in fvs if first <= fv.ts <= shadow_books[shadow_id].ts)
    assert expected >= 100

    retrain = ["retrain", "--policy-id", "edge", "--window", "1d", "--until", str(until), "--resamples", "1000"]
    assert main([*retrain, "--min-shadow-decisions", str(expected + 1)]) == 0
    rec = latest(bootstrap, "edge")
    assert rec is not None and rec.decision.kind == "rejected" and rec.decision.version == challenger.version
    assert f"its shadow record has {expected} decisions, fewer than {expected + 1}" in rec.decision.reason
    assert rec.serving is not None and rec.serving.version == champion.version

    assert main(retrain) == 0
    rec = latest(bootstrap, "edge")
    assert rec is not None and rec.decision.kind == "promoted", rec and rec.decision.reason
    s = rec.decision.figures["shadow"]
    assert rec.serving is not None and rec.serving.version == challenger.version
    assert s["policy_id"] == shadow_id and s["decisions"] == expected and s["end_ts"] == shadow_books[shadow_id].ts
    assert s["difference"] > 0 and rec.decision.figures["mean_diff"] > 0 and "in shadow" in rec.decision.reason
    print(f"shadow trading test: {time.monotonic() - started:.1f} s")
