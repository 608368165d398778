"""Serving from the registry on a real broker: `tickflow trade --policy-id ID` without --bundle swaps to a
promoted version between feature batches, refuses a bad bundle (the old one keeps trading), follows a
rollback by hand, rolls back by itself past TRADER__ROLLBACK__MAX_DRAWDOWN, and a SIGKILL during a swap
leaves the orders of an uninterrupted run (each bar one version, exactly once)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contracts import V1, FeatureVector, Fill, Order, PortfolioSnapshot, decode, encode, market_key
from contracts.client_config import producer_config
from contracts.feature_schema import V1 as V1_NAMES
from contracts.policy_record import Decision, pack
from contracts.policy_registry import latest, promoted, write
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, ORDERS, PORTFOLIO, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from tests.helpers import cli_env
from tests.integration.test_trader_chain import Proc, _wait_log
from tests.unit.trader.test_gate import _bundle
from tickflow.cli import main
from trader.handler import PolicyTrader, order_id
from trader.policy import bundle as bundle_mod
from trader.service import TraderService, TraderSettings
from trader.swap import RegistryServing, RollbackSettings

pytestmark = pytest.mark.integration
NOTIONAL, CLOSE = 1_000.0, 100.0


def _signal(k: int) -> float:
    return 1.0 if k % 2 else -1.0  # the sign of flow_imb at bar k: bundle "a" follows it, bundle "b" fades it


def _vector(k: int) -> FeatureVector:
    features: dict[str, float | None] = {n: 0.0 for n in V1_NAMES}
    features["flow_imb"] = _signal(k)
    return FeatureVector(schema_version=V1, exchange="binance", symbol="ETH-USDT", interval_s=60, ts=k * 60_000,
                         feature_schema="v1", ready=True, features=features, close=CLOSE)


def _feed(bootstrap: str, bars: range) -> None:
    producer = Producer(producer_config(bootstrap))
    for k in bars:
        producer.produce(SIGNALS_FEATURES.name, encode(_vector(k)), market_key("binance", "ETH-USDT"))
    assert producer.flush(30) == 0


def _expected(plan: list[tuple[range, str, float]]) -> list[tuple[int, str, str]]:
    """(feature ts, version, side) of each order: each phase's bars decided by one version (sign +1 follows
    the signal, -1 fades it); the position carries over from one version to the next."""
    pos, out = 0.0, []
    for bars, version, sign in plan:
        for k in bars:
            target = 1.0 if _signal(k) * sign > 0 else 0.0
            if target != pos:
                out.append((k * 60_000, version, "buy" if target > pos else "sell"))
                pos = target
    return out


def _orders(bootstrap: str, policy_id: str, count: int, timeout: float = 60) -> list[Order]:
    deadline = time.monotonic() + timeout
    while True:
        got = [o for o in (decode(m.value() or b"", Order) for m in read_to_end(bootstrap, ORDERS))
               if o.policy_id == policy_id]
        if len(got) >= count or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def _seen(orders: list[Order]) -> list[tuple[int, str, str]]:
    return [(o.feature_ts, o.policy_version, o.side) for o in orders]


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill(signal.SIGKILL)


def _trader(policy_id: str, env: dict[str, str], log: Path, procs: list[Proc]) -> Proc:
    p = Proc(["trade", "--policy-id", policy_id], env, log)
    procs.append(p)
    p.start()
    return p


def test_a_promotion_swaps_between_batches_a_bad_bundle_is_refused_and_a_rollback_by_hand_is_followed(
        shared_broker: BrokerInfo, tmp_path: Path, procs: list[Proc]) -> None:
    boot = shared_broker.bootstrap
    a, b = _bundle(tmp_path / "a", 1.0), _bundle(tmp_path / "b", -1.0)
    env = {**cli_env(boot, tmp_path), "TRADER__HTTP_PORT": "-1", "TRADER__NOTIONAL": str(NOTIONAL)}
    log = tmp_path / "trader.log"
    assert main(["trade", "--policy-id", "p"]) == 1  # nothing on the registry yet: one line, no traceback
    assert main(["policy", "promote", "p", "--bundle", str(a.path)]) == 0
    _trader("p", env, log, procs)
    _wait_log(log, f"consumes {SIGNALS_FEATURES.name}", 1, timeout=120)
    assert f"serves version {a.version} from registry revision 1" in log.read_text()
    plan = [(range(1, 7), a.version, 1.0)]
    _feed(boot, plan[-1][0])
    assert _seen(_orders(boot, "p", len(_expected(plan)))) == _expected(plan)

    assert main(["policy", "promote", "p", "--bundle", str(b.path)]) == 0
    _wait_log(log, f"swapped from version {a.version} to {b.version} (registry revision 2", 1)
    plan.append((range(7, 13), b.version, -1.0))
    _feed(boot, plan[-1][0])
    assert _seen(_orders(boot, "p", len(_expected(plan)))) == _expected(plan)

    assert main(["policy", "rollback", "p"]) == 0
    _wait_log(log, f"swapped from version {b.version} to {a.version} (registry revision 3, rolled_back by hand", 1)
    plan.append((range(13, 19), a.version, 1.0))
    _feed(boot, plan[-1][0])
    assert _seen(_orders(boot, "p", len(_expected(plan)))) == _expected(plan)

    tampered = tmp_path / "tampered"  # b's files with another normalisation: its checksum fails on the trader
    tampered.mkdir()
    for f in b.path.iterdir():
        (tampered / f.name).write_bytes(f.read_bytes())
    (tampered / bundle_mod.NORMALISATION).write_text('{"mean": [5.0], "std": [1.0]}\n')
    decision = Decision(kind="promoted", version="tampered-b", serving="tampered-b", ts=1, by="hand",
                        reason="a bundle edited after it was written")
    write(boot, promoted(latest(boot, "p"), "p", pack(tampered, "tampered-b", "ppo"), decision))
    _wait_log(log, "Refused version tampered-b of policy p (registry revision 4, promoted by hand): checksum "
                   f"mismatch for {bundle_mod.NORMALISATION}", 1)
    assert f"version {a.version} keeps trading" in log.read_text()
    plan.append((range(19, 25), a.version, 1.0))
    _feed(boot, plan[-1][0])
    orders = _orders(boot, "p", len(_expected(plan)))
    assert _seen(orders) == _expected(plan)
    assert len({o.order_id for o in orders}) == len(orders)
    assert all(o.feature is not None and o.feature.topic == SIGNALS_FEATURES.name for o in orders)


def test_the_drawdown_since_a_swap_rolls_the_promoted_version_back(shared_broker: BrokerInfo,
                                                                   tmp_path: Path) -> None:
    boot = shared_broker.bootstrap
    a, b = _bundle(tmp_path / "a", 1.0), _bundle(tmp_path / "b", -1.0)
    assert main(["policy", "promote", "q", "--bundle", str(a.path)]) == 0
    assert main(["policy", "promote", "q", "--bundle", str(b.path)]) == 0
    serving = RegistryServing(boot, "q", tmp_path, RollbackSettings(max_drawdown=0.05))
    trader = PolicyTrader(serving.initial(), "q", NOTIONAL, 10_000.0)
    assert trader.version == b.version
    serving.start()
    try:
        assert serving.at_boundary(trader).version == b.version  # the peak since the swap: 10,000
        trader.book.apply(Fill(schema_version=V1, fill_id="f1", order_id="o1", policy_id="q", exchange="binance",
                               symbol="ETH-USDT", side="buy", price=100.0, qty=10.0, fee=0.0, slippage=0.0, ts=60_000,
                               last=True))
        trader.book.mark("ETH-USDT", 60.0)  # equity 9,600: 4 % down, under the limit
        assert serving.at_boundary(trader).version == b.version
        time.sleep(0.5)
        assert latest(boot, "q").revision == 2  # type: ignore[union-attr]  # nothing written
        trader.book.mark("ETH-USDT", 40.0)  # equity 9,400: 6 % down
        deadline = time.monotonic() + 30
        while serving.at_boundary(trader).version != a.version and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        serving.stop()
    assert trader.version == a.version and trader.book.positions["ETH-USDT"] == 10.0  # the book carried over
    rec = latest(boot, "q")
    assert rec is not None and rec.revision == 3 and rec.serving is not None and rec.serving.version == a.version
    d = rec.decision
    assert (d.kind, d.by, d.version, d.serving) == ("rolled_back", "trader", b.version, a.version)
    assert d.figures["drawdown"] == pytest.approx(0.06) and d.figures["limit"] == 0.05
    assert "TRADER__ROLLBACK__MAX_DRAWDOWN" in d.reason


def test_a_restarted_trader_counts_the_drawdown_from_the_peak_since_the_swap_not_from_its_start(
        shared_broker: BrokerInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Version b was promoted over a; b's book went from 10,000 to 9,600 (4 %) and the trader stopped, its last
    snapshot naming b and the peak since b's swap. Restarted, the rebuild takes the peak back: a further fall
    to 9,400 is 6 % since the swap and rolls b back (counted from the restart it would be 2.1 %, no rollback)."""
    boot = shared_broker.bootstrap
    monkeypatch.setenv("TICKFLOW_HOME", str(tmp_path / "home"))
    a, b = _bundle(tmp_path / "a", 1.0), _bundle(tmp_path / "b", -1.0)
    assert main(["policy", "promote", "r", "--bundle", str(a.path)]) == 0
    assert main(["policy", "promote", "r", "--bundle", str(b.path)]) == 0
    fill = Fill(schema_version=V1, fill_id="f1", order_id="o1", policy_id="r", exchange="binance", symbol="ETH-USDT",
                side="buy", price=100.0, qty=10.0, fee=0.0, slippage=0.0, ts=60_000, last=True)
    before = PortfolioSnapshot(schema_version=V1, policy_id="r", ts=120_000, positions={"ETH-USDT": 10.0},
                               cash=9_000.0, equity=9_600.0, realised_pnl=0.0, unrealised_pnl=-400.0, fees=0.0,
                               drawdown=0.04, policy_version=b.version, rollback_peak=10_000.0)
    order = Order(schema_version=V1, order_id="o1", policy_id="r", policy_version=b.version, exchange="binance",
                  symbol="ETH-USDT", side="buy", qty=10.0, target_position=1.0, ts=60_000, feature_ts=60_000)
    p = Producer(producer_config(boot))
    p.produce(ORDERS.name, encode(order), market_key("binance", "ETH-USDT"))
    p.produce(FILLS.name, encode(fill), market_key("binance", "ETH-USDT"))
    p.produce(PORTFOLIO.name, encode(before), b"r")
    assert p.flush(30) == 0
    settings = TraderSettings(notional=NOTIONAL, capital=10_000.0, rollback=RollbackSettings(max_drawdown=0.05))
    svc = TraderService(None, "r", settings, boot)
    assert svc.serving is not None and svc.trader.version == b.version
    svc._rebuild(p)
    assert svc.serving.peak == 10_000.0 and svc.trader.book.positions["ETH-USDT"] == 10.0
    svc.serving.start()
    try:
        svc.trader.book.mark("ETH-USDT", 60.0)  # 9,600
        assert svc.serving.at_boundary(svc.trader).version == b.version
        svc.trader.book.mark("ETH-USDT", 40.0)  # 9,400: 6 % since the swap
        deadline = time.monotonic() + 30
        while svc.serving.at_boundary(svc.trader).version != a.version and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        svc.serving.stop()
    rec = latest(boot, "r")
    assert rec is not None and rec.decision.kind == "rolled_back" and rec.serving is not None
    assert rec.serving.version == a.version and svc.trader.version == a.version
    assert rec.decision.figures["peak_equity"] == 10_000.0 and rec.decision.figures["drawdown"] == pytest.approx(0.06)
    # a snapshot another version wrote gives no peak: a new version's drawdown starts at its swap
    fresh = RegistryServing(boot, "r", tmp_path / "fresh", RollbackSettings(max_drawdown=0.05))
    fresh.initial()
    fresh.restore_peak(before)
    assert fresh.version == a.version and fresh.peak is None


def test_a_sigkill_during_a_swap_leaves_the_orders_of_an_uninterrupted_run(
        shared_broker: BrokerInfo, tmp_path: Path, procs: list[Proc]) -> None:
    """Trader u runs throughout; trader k is killed right after a promotion is written, while the new version
    decides its first bars, and right after it verified a rollback's version. Both serve their own policy
    id, promoted and rolled back alike; each promotion waits for u's swap, so u's orders are the reference."""
    boot = shared_broker.bootstrap
    a, b = _bundle(tmp_path / "a", 1.0), _bundle(tmp_path / "b", -1.0)
    env = {**cli_env(boot, tmp_path), "TRADER__HTTP_PORT": "-1", "TRADER__NOTIONAL": str(NOTIONAL)}
    for pid in ("u", "k"):
        assert main(["policy", "promote", pid, "--bundle", str(a.path)]) == 0
    u = _trader("u", env, tmp_path / "u.log", procs)
    k = _trader("k", env, tmp_path / "k.log", procs)
    for p in (u, k):
        _wait_log(p.log, f"consumes {SIGNALS_FEATURES.name}", 1, timeout=120)
    plan = [(range(1, 9), a.version, 1.0)]
    _feed(boot, plan[0][0])
    for pid in ("u", "k"):
        assert len(_orders(boot, pid, len(_expected(plan)))) == len(_expected(plan))

    assert main(["policy", "promote", "u", "--bundle", str(b.path)]) == 0
    _wait_log(u.log, f"to {b.version} (registry revision 2", 1)
    assert main(["policy", "promote", "k", "--bundle", str(b.path)]) == 0
    k.kill(signal.SIGKILL)  # 1: the record is on the registry, the trader has not swapped to it
    k.start()
    _wait_log(k.log, f"serves version {b.version} from registry revision 2", 1, timeout=120)
    _wait_log(k.log, f"consumes {SIGNALS_FEATURES.name}", 2, timeout=120)
    plan.append((range(9, 41), b.version, -1.0))

    def slowly() -> None:  # a bar every 50 ms: the kill below lands while they arrive
        for i in plan[1][0]:
            _feed(boot, range(i, i + 1))
            time.sleep(0.05)

    feeder = threading.Thread(target=slowly)
    feeder.start()
    _wait_log(k.log, "Order o-", len(_expected(plan[:1])) + 1, timeout=60)  # the new version's first order
    k.kill(signal.SIGKILL)  # 2: while the new version decides its first bars
    committed = len(_orders(boot, "k", 0))
    k.start()
    feeder.join(60)
    assert len(_orders(boot, "u", len(_expected(plan)))) == len(_expected(plan))

    assert main(["policy", "rollback", "u"]) == 0
    _wait_log(u.log, f"to {a.version} (registry revision 3", 1)
    _wait_log(k.log, f"consumes {SIGNALS_FEATURES.name}", 3, timeout=120)
    assert main(["policy", "rollback", "k"]) == 0
    _wait_log(k.log, f"Version {a.version} of policy k verified (registry revision 3", 1)
    k.kill(signal.SIGKILL)  # 3: the rolled-back-to version verified, the swap at hand
    k.start()
    plan.append((range(41, 49), a.version, 1.0))
    _feed(boot, plan[2][0])
    want = _expected(plan)
    got_u, got_k = _orders(boot, "u", len(want)), _orders(boot, "k", len(want))
    assert _seen(got_u) == want
    assert _seen(got_k) == want  # each bar decided by one version, none twice, none missing
    assert [o.order_id for o in got_k] == [order_id("k", v, "binance", "ETH-USDT", ts) for ts, v, _ in want]
    assert committed < len(_expected(plan[:2])), "kill 2 should land before the new version's bars were committed"
