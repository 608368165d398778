"""The trader chain on a real broker: features -> trader -> orders -> paper broker -> fills -> portfolio.

Two traders run the same bundle: "a" without interruption, "b" killed with SIGKILL mid-stream and
restarted; the paper broker is killed and restarted too. The orders of b equal a's (none duplicated,
none missing), every fill equals an offline replay of the matching over the same orders and trades,
the orders equal an offline replay of the decisions, and each book reconciles to the cent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contracts import (
    DeadLetter,
    FeatureVector,
    Fill,
    Order,
    PortfolioSnapshot,
    Topic,
    Trade,
    decode,
    encode,
    market_key,
)
from contracts.client_config import producer_config
from contracts.history import candle_trades
from contracts.topic_reader import read_to_end
from contracts.topics import FILLS, MARKET_TRADES, ORDERS, PORTFOLIO, SIGNALS_BARS, SIGNALS_FEATURES
from infra.kafka.broker import BrokerInfo
from paper.matching import Matcher, PaperSettings
from tests.helpers import DATA, REPO, cli_env, tickflow_cmd
from trader.policy.dataset import feature_vectors, load
from trader.policy.train import TrainConfig, train

pytestmark = pytest.mark.integration
NOTIONAL, CAPITAL, EVERY = 1_000.0, 10_000.0, 5


def _head(src: Path, out: Path, lines: int) -> Path:
    import gzip

    with gzip.open(src, "rt") as f:
        out.write_text("".join(next(f) for _ in range(lines)))
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("chain")
    ohlcv = DATA / "ohlcv"
    btc = _head(next(ohlcv.glob("binance_spot_BTCUSDT_1m_*.csv.gz")), root / "binance_spot_BTCUSDT_1m_head.csv", 2_000)
    eth = _head(next(ohlcv.glob("binance_spot_ETHUSDT_1m_*.csv.gz")), root / "binance_spot_ETHUSDT_1m_day.csv", 601)
    bundle = train(load(btc), TrainConfig(algo="ppo", timesteps=3_000, seed=1, mode="long_short", every=EVERY,
                                          episode_len=64, progress=False), root / "bundle").bundle
    from streams.offline import build_from_file

    fvs = feature_vectors(build_from_file(eth, "ETHUSDT"), "ETH-USDT")
    trades = list(candle_trades(eth, "ETHUSDT"))
    return {"root": root, "bundle": bundle, "fvs": fvs, "trades": trades}


def _expected_orders(bundle: object, fvs: list[FeatureVector]) -> list[tuple[int, str, float, float]]:
    """An independent replay of the decisions: (feature ts, side, qty, target position)."""
    runtime, names = bundle.runtime, bundle.feature_names  # type: ignore[attr-defined]
    pos, units, out = 0.0, 0.0, []
    for fv in fvs:
        if (fv.ts // 60_000) % EVERY or not fv.ready:
            continue
        target = runtime.target([fv.features[n] for n in names], pos)
        if target != pos:
            new_units = target * NOTIONAL / fv.close
            out.append((fv.ts, "buy" if new_units > units else "sell", round(abs(new_units - units), 9), target))
            pos, units = target, new_units
    return out


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.p = subprocess.Popen(tickflow_cmd(*self.args), env=self.env, cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT)

    def kill(self, sig: int) -> None:
        if self.p is not None and self.p.poll() is None:
            os.kill(self.p.pid, sig)
            self.p.wait(30)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for p in started:
        p.kill(signal.SIGKILL)


def _wait_log(path: Path, text: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.read_text(errors="replace").count(text) >= count:
            return
        time.sleep(0.2)
    raise AssertionError(f"{path.name} did not log {text!r} {count} times within {timeout:.0f} s")


def _read(bootstrap: str, topic: Topic, kind: type) -> list:
    return [decode(m.value() or b"", kind) for m in read_to_end(bootstrap, topic)]


def test_features_to_orders_to_fills_exactly_once_across_sigkill(shared_broker: BrokerInfo, setup: dict[str, object],
                                                                  procs: list[Proc]) -> None:
    """The services are killed, not the broker: the session broker serves, under a prefix of the test's own."""
    info = shared_broker
    root: Path = setup["root"]  # type: ignore[assignment]
    fvs: list[FeatureVector] = setup["fvs"]  # type: ignore[assignment]
    trades: list[Trade] = setup["trades"]  # type: ignore[assignment]
    bundle = setup["bundle"]
    env = cli_env(info.bootstrap, root)
    env.update({"TRADER__NOTIONAL": str(NOTIONAL), "TRADER__CAPITAL": str(CAPITAL), "TRADER__HTTP_PORT": "-1"})
    producer = Producer(producer_config(info.bootstrap, {"linger.ms": 5}))
    for t in trades:
        producer.produce(MARKET_TRADES.name, encode(t), market_key(t.exchange, t.symbol))
    producer.produce(SIGNALS_FEATURES.name, b'{"not": "a feature vector"}', b"binance:ETH-USDT")
    producer.flush(30)
    bundle_dir = str(bundle.path)  # type: ignore[attr-defined]
    a = Proc(["trade", "--bundle", bundle_dir, "--policy-id", "a"], env, root / "a.log")
    b = Proc(["trade", "--bundle", bundle_dir, "--policy-id", "b"], env, root / "b.log")
    paper = Proc(["paper"], env, root / "paper.log")
    procs.extend([a, b, paper])
    for p in procs:
        p.start()
    for p in procs:  # rebuilt and assigned: a fixed sleep is not enough on a loaded machine
        _wait_log(p.log, " consumes ", 1, timeout=120)

    produced = threading.Event()
    half = threading.Event()

    def feed() -> None:
        for i, fv in enumerate(fvs):
            producer.produce(SIGNALS_FEATURES.name, encode(fv), market_key(fv.exchange, fv.symbol))
            producer.poll(0)
            if i % 10 == 0:
                producer.flush(10)
                time.sleep(0.1)
            if i == len(fvs) // 2:
                producer.flush(10)
                half.set()
        producer.flush(10)
        produced.set()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    assert half.wait(60)
    b.kill(signal.SIGKILL)
    paper.kill(signal.SIGKILL)
    orders_before_kill = [o for o in _read(info.bootstrap, ORDERS, Order) if o.policy_id == "b"]
    fills_before_kill = [m for m in read_to_end(info.bootstrap, FILLS) if m.value() != b"not json"]
    b.start()
    paper.start()
    assert produced.wait(120)

    expected = _expected_orders(bundle, fvs)
    assert len(expected) >= 4, "the policy should trade a few times on this day for the test to mean anything"
    assert 0 < len(orders_before_kill) < len(expected), "the trader's kill should land mid-stream"
    assert 0 < len(fills_before_kill) < 2 * len(expected), "the paper broker's kill should land mid-stream"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        orders = _read(info.bootstrap, ORDERS, Order)
        fills = [decode(m.value() or b"", Fill) for m in read_to_end(info.bootstrap, FILLS)
                 if m.value() != b"not json"]
        done = {f.order_id for f in fills if f.last}
        if len(orders) >= 2 * len(expected) and all(o.order_id in done for o in orders):
            break
        time.sleep(1)
    by_policy = {pid: [o for o in orders if o.policy_id == pid] for pid in ("a", "b")}
    for pid, got in by_policy.items():
        assert len({o.order_id for o in got}) == len(got), f"duplicate order ids from {pid}"
        assert [(o.feature_ts, o.side, round(o.qty, 9), o.target_position) for o in got] == expected, pid

    # every fill is what an offline replay of the matching gives for the same orders and trades
    assert len({f.fill_id for f in fills}) == len(fills), "duplicate fills"
    matcher = Matcher(PaperSettings())
    for t in trades:
        matcher.remember_trade(t)
    replay = [f for o in orders for f in matcher.on_order(o)]
    assert {f.fill_id: f for f in fills} == {f.fill_id: f for f in replay}

    # the records that failed their contract went to the dead-letter topics, with the reason
    dead = _read(info.bootstrap, SIGNALS_FEATURES.dlq, DeadLetter)
    assert {d.source for d in dead} == {SIGNALS_FEATURES.name} and len(dead) == 2  # once per policy
    assert all("FeatureVector" in d.reason for d in dead)
    _wait_log(root / "b.log", f"consumes {SIGNALS_FEATURES.name}", 2)
    producer.produce(FILLS.name, b"not json", b"binance:ETH-USDT")  # a bad fill while both traders run
    producer.flush(10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(dead_fills := _read(info.bootstrap, FILLS.dlq, DeadLetter)) < 2:
        time.sleep(0.5)
    assert len(dead_fills) == 2 and all(d.raw == "not json" for d in dead_fills)

    # a last mark after every fill: each book reconciles to the cent with the fills
    last = fvs[-1]
    mark = FeatureVector(**{**{k: getattr(last, k) for k in last.__struct_fields__}, "ts": last.ts + 60_000,
                            "ready": False, "close": last.close * 1.01})
    producer.produce(SIGNALS_FEATURES.name, encode(mark), market_key(mark.exchange, mark.symbol))
    producer.flush(10)
    deadline = time.monotonic() + 30
    snaps: dict[str, PortfolioSnapshot] = {}
    while time.monotonic() < deadline and len(snaps) < 2:
        snaps = {s.policy_id: s for s in _read(info.bootstrap, PORTFOLIO, PortfolioSnapshot) if s.ts == mark.ts}
        time.sleep(0.5)
    for pid in ("a", "b"):
        mine = [f for f in fills if f.policy_id == pid]
        qty = sum(f.qty if f.side == "buy" else -f.qty for f in mine)
        cash = CAPITAL - sum((f.qty if f.side == "buy" else -f.qty) * f.price + f.fee for f in mine)
        snap = snaps[pid]
        assert snap.positions["ETH-USDT"] == pytest.approx(qty, abs=1e-9)
        assert abs(snap.cash - cash) < 0.005 and abs(snap.equity - (cash + qty * mark.close)) < 0.005
        assert abs((snap.equity - CAPITAL) - (snap.realised_pnl + snap.unrealised_pnl - snap.fees)) < 0.005


def test_a_bad_fill_that_arrives_while_the_trader_is_down_goes_to_the_dlq_once(
        bootstrap: str, setup: dict[str, object], procs: list[Proc], tmp_path: Path) -> None:
    """The trader's rebuild reads the fills to their end and its live read starts after them: a fill that
    fails its contract while the trader is down is refused by the rebuild, logged and dead-lettered once."""
    env = cli_env(bootstrap, tmp_path)
    env["TRADER__HTTP_PORT"] = "-1"
    bundle_dir = str(setup["bundle"].path)  # type: ignore[attr-defined]
    trader = Proc(["trade", "--bundle", bundle_dir, "--policy-id", f"down-{time.time_ns()}"], env,
                  tmp_path / "trader.log")
    procs.append(trader)
    trader.start()
    _wait_log(trader.log, "consumes signals.features", 1)
    trader.kill(signal.SIGTERM)
    raw = f'{{"not": "a fill", "n": {time.time_ns()}}}'
    producer = Producer(producer_config(bootstrap))
    producer.produce(FILLS.name, raw.encode(), b"binance:ETH-USDT")
    producer.flush(10)
    bad = next(m for m in read_to_end(bootstrap, FILLS) if m.value() == raw.encode())

    def dead() -> list[DeadLetter]:
        return [d for d in _read(bootstrap, FILLS.dlq, DeadLetter) if d.raw == raw]

    for starts in (2, 3):  # the restart dead-letters it; the next one finds it there and sends nothing
        trader.start()
        _wait_log(trader.log, "consumes signals.features", starts)
        trader.kill(signal.SIGTERM)
        [d] = dead()
        assert (d.source, d.partition, d.offset) == ("fills", bad.partition(), bad.offset())
        assert "Fill" in d.reason
    assert f"Refused fills[{bad.partition()}]@{bad.offset()}" in trader.log.read_text()


def test_explain_resolves_every_link_of_an_order_from_trades_to_fills(shared_broker: BrokerInfo,
                                                                     setup: dict[str, object],
                                                                     procs: list[Proc]) -> None:
    """The whole chain on the session broker: trades -> the streams worker (bars, features naming their
    trades) -> the trader (orders naming their feature record) -> the paper broker (fills). `tickflow
    explain` on an order prints each link with its topic[partition]@offset, and each one is there."""
    from contracts.topic_reader import read_at
    from tests.integration.streams_support import Worker, produce_trades

    info, root = shared_broker, setup["root"]
    assert isinstance(root, Path)
    env = cli_env(info.bootstrap, root / "explain")
    env.update({"TRADER__HTTP_PORT": "-1"})
    produce_trades(info.bootstrap, setup["trades"])  # type: ignore[arg-type]
    bundle_dir = str(setup["bundle"].path)  # type: ignore[attr-defined]
    trader = Proc(["trade", "--bundle", bundle_dir, "--policy-id", "x"], env, root / "explain-trader.log")
    paper = Proc(["paper"], env, root / "explain-paper.log")
    procs.extend([trader, paper])
    trader.start()
    paper.start()
    worker = Worker(info.bootstrap, root / "explain-worker")
    try:
        deadline, filled = time.monotonic() + 150, list[Order]()
        while time.monotonic() < deadline and not filled:
            done = {f.order_id for f in _read(info.bootstrap, FILLS, Fill) if f.last}
            filled = [o for o in _read(info.bootstrap, ORDERS, Order) if o.order_id in done]
            time.sleep(1)
    finally:
        worker.stop()
    assert filled, "no order was filled: " + worker.tail()
    order = filled[0]
    assert order.schema_version == 2 and order.feature is not None and order.feature.topic == SIGNALS_FEATURES.name

    started = time.monotonic()
    done_run = subprocess.run(tickflow_cmd("explain", order.order_id, "--bundle", bundle_dir), env=env, cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    assert done_run.returncode == 0, done_run.stdout + done_run.stderr
    lines = done_run.stdout.splitlines()
    assert [line.split()[0] for line in lines[:6]] == ["trades", "trades", "bar", "features", "bundle", "order"]
    assert lines[6:] and all(line.startswith("fill ") for line in lines[6:])
    ref = order.feature
    assert lines[3].split()[1] == f"{ref.topic}[{ref.partition}]@{ref.offset}"
    assert order.policy_version in lines[4] and "trained on binance_spot_BTCUSDT_1m_head.csv from " in lines[4]
    assert lines[5].split()[1].startswith(f"{ORDERS.name}[") and order.order_id in lines[5]
    assert "(last)" in lines[-1]
    for line in (lines[:4] + lines[5:]):  # every link read back where it says it is
        topic_name, rest = line.split()[1].split("[", 1)
        partition, offset = rest.rstrip("]").replace("]@", " ").split()
        assert read_at(info.bootstrap, topic_name, int(partition), int(offset)) is not None, line
    assert {line.split()[1].split("[")[0] for line in lines if line.split()[0] in ("trades", "bar")} == {
        MARKET_TRADES.name, SIGNALS_BARS.name}
    print(f"explain: {len(lines)} links in {seconds:.1f} s\n{done_run.stdout}")

    # The version promoted on the registry by hand: explain adds the registry's decision on it.
    promote = subprocess.run(tickflow_cmd("policy", "promote", "x", "--bundle", bundle_dir), env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
    assert promote.returncode == 0, promote.stdout + promote.stderr
    again = subprocess.run(tickflow_cmd("explain", order.order_id, "--bundle", bundle_dir), env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    decision = again.stdout.splitlines()[5]
    assert decision.startswith("decision ") and "promoted by hand" in decision, again.stdout

    unknown = subprocess.run(tickflow_cmd("explain", "o-nope"), env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=60)
    assert unknown.returncode == 2 and unknown.stderr.strip() == f"tickflow explain: no order 'o-nope' on {ORDERS.name}"
