"""Two instances of one policy (`tickflow trade --instance`), one SIGKILLed mid-stream: one instance's orders.

The reference: one trader (no ``--instance``) over a replayed feature stream of five symbols that cover the
four partitions of ``signals.features``, under a topic prefix of its own (so the same policy id gives the
same order ids and the records the same offsets). Then, on the test's prefix, instance ``a`` starts alone
(every partition), takes the first third, instance ``b`` joins (the group splits the partitions: each
gets some), the rest is replayed at a steady pace, and ``a`` is SIGKILLed once it has committed decisions
on its share: its partitions move to ``b`` after the session timeout, which rebuilds their symbols from the
committed orders and goes on from the committed offsets. The orders under read_committed, ids, sides,
quantities and feature offsets, equal the reference's; no order id twice.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer

from contracts import FeatureVector, Order, PortfolioSnapshot, decode, encode, market_key
from contracts.client_config import producer_config
from contracts.partitioning import partition_of
from contracts.topic_reader import end_offsets, read_to_end
from contracts.topics import LIVE, ORDERS, PORTFOLIO, PREFIX_ENV, SIGNALS_FEATURES
from infra.kafka.admin import ensure_topics
from streams.offline import closed_bars, features_frame
from tests.helpers import REPO, cli_env, tickflow_cmd
from tests.integration.edge_support import START_MS, champion_without_edge, edge_trades
from tests.integration.streams_support import wait_committed
from tests.integration.test_cluster import _say
from trader.policy.dataset import feature_vectors

pytestmark = pytest.mark.integration
POLICY = "duo"
BASES = ("EDGE", "ALFA", "GOLF", "BRAV", "ECHO")  # murmur2 puts them on partitions 0, 1, 2, 3 and 1 of 4
BARS = 400
OWNS = re.compile(r"Trader duo instance \w+ (?:owns partitions \[([\d, ]*)\]|gives up|lost)")


def _stream() -> list[FeatureVector]:
    """The five symbols' feature vectors, interleaved in event time as the worker would publish them."""
    out: list[FeatureVector] = []
    for seed, base in enumerate(BASES):
        trades = edge_trades(BARS, 30.0, seed=20 + seed, start_ms=START_MS, symbol=f"{base}USDT")
        out += feature_vectors(features_frame(next(iter(closed_bars(trades).values()))), f"{base}-USDT")
    assert {partition_of(market_key(fv.exchange, fv.symbol), 4) for fv in out} == {0, 1, 2, 3}
    return sorted(out, key=lambda fv: (fv.ts, fv.symbol))


def _produce(bootstrap: str, fvs: list[FeatureVector], per_s: float | None = None) -> None:
    p = Producer(producer_config(bootstrap, {"linger.ms": 5}))
    for i, fv in enumerate(fvs):
        p.produce(SIGNALS_FEATURES.name, encode(fv), market_key(fv.exchange, fv.symbol))
        if per_s is not None and i % 10 == 9:
            p.flush(10)
            time.sleep(10 / per_s)
    assert p.flush(30) == 0


def _trader(env: dict[str, str], log: Path, bundle: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(tickflow_cmd("trade", "--bundle", str(bundle), "--policy-id", POLICY, *extra), env=env,
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _owns(log: Path) -> tuple[int, ...] | None:
    """The partitions the instance's log says it owns now (None before its first assignment and while it is
    between a revocation and its next assignment)."""
    found = OWNS.findall(log.read_text(errors="replace"))
    return tuple(int(p) for p in found[-1].split(",") if p.strip()) or None if found else None


def _until(what: str, cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def _orders(bootstrap: str) -> list[tuple[str, str, str, float, int, int, int]]:
    orders = [decode(m.value() or b"", Order) for m in read_to_end(bootstrap, ORDERS)]
    rows = [(o.order_id, o.symbol, o.side, o.qty, o.feature_ts, o.feature.partition, o.feature.offset)
            for o in orders if o.feature is not None and o.policy_id == POLICY]
    assert len(rows) == len(orders)
    return sorted(rows, key=lambda r: (r[5], r[6]))


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)


@pytest.mark.usefixtures("shared_broker")
def test_two_instances_one_killed_mid_stream_give_one_instance_s_orders(
        bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config) -> None:
    started = time.monotonic()
    say = lambda line: _say(pytestconfig, f"two traders: {line}")  # noqa: E731
    home = tmp_path / "home"
    fvs = _stream()
    champion_without_edge(tmp_path / "champion")
    bundle = tmp_path / "champion"
    # the order rate limit spans symbols, so it is per instance (and, fed in arrival order across partitions, it
    # held most of the reference's symbols when one partition was read ahead of the others): off here, as is
    # the drawdown halt without fills
    env = {**cli_env(bootstrap, home), "TRADER__HTTP_PORT": "-1", "TRADER__SESSION_TIMEOUT_S": "6",
           "TRADER__TRANSACTION_TIMEOUT_S": "10", "TRADER__RISK__MAX_ORDERS_PER_MINUTE": "1000000"}
    prefix = env[PREFIX_ENV]

    # the reference: one instance, on a prefix of its own
    monkeypatch.setenv(PREFIX_ENV, f"{prefix}ref.")
    ensure_topics(bootstrap)
    _produce(bootstrap, fvs)
    one = _trader({**env, PREFIX_ENV: f"{prefix}ref."}, tmp_path / "one.log", bundle)
    try:
        assert wait_committed(bootstrap, LIVE.group(f"tickflow-trader-{POLICY}"), SIGNALS_FEATURES.name, 90,
                              faust=False), (tmp_path / "one.log").read_text()[-3000:]
    finally:
        _stop(one)
    reference = _orders(bootstrap)
    monkeypatch.setenv(PREFIX_ENV, prefix)
    say(f"one instance decided {len(fvs):,} features into {len(reference):,} orders "
        f"({time.monotonic() - started:.1f}s)")

    logs = {name: tmp_path / f"instance-{name}.log" for name in ("a", "b")}
    a = _trader(env, logs["a"], bundle, "--instance", "a")
    b: subprocess.Popen[bytes] | None = None
    third = len(fvs) // 3
    try:
        _until("instance a owns every partition", lambda: _owns(logs["a"]) == (0, 1, 2, 3), 60)
        _produce(bootstrap, fvs[:third])
        b = _trader(env, logs["b"], bundle, "--instance", "b")
        _until("the group split the partitions between the two", lambda: sorted(
            (*(_owns(logs["a"]) or ()), *(_owns(logs["b"]) or ()))) == [0, 1, 2, 3] and bool(_owns(logs["a"]))
            and bool(_owns(logs["b"])), 60)
        share_a, share_b = _owns(logs["a"]), _owns(logs["b"])
        say(f"instance a owns partitions {share_a}, instance b {share_b}")
        at_split = end_offsets(bootstrap, SIGNALS_FEATURES)
        pacer = threading.Thread(target=_produce, args=(bootstrap, fvs[third:], 100.0))
        pacer.start()
        group = LIVE.group(f"tickflow-trader-{POLICY}")
        _until("instance a committed orders on its share after the split", lambda: any(
            o[5] in (share_a or ()) and o[6] >= at_split[o[5]] for o in _orders(bootstrap)), 60)
        a.send_signal(signal.SIGKILL)
        a.wait(30)
        killed_at = time.monotonic()
        say(f"SIGKILLed instance a (pid {a.pid}) at {killed_at - started:.1f}s, {len(_orders(bootstrap)):,} orders "
            f"committed; its partitions {share_a} move to b (session timeout 6 s)")
        _until("instance b owns every partition", lambda: _owns(logs["b"]) == (0, 1, 2, 3), 60)
        say(f"instance b owns every partition {time.monotonic() - killed_at:.1f}s after the kill")
        pacer.join(120)
        assert wait_committed(bootstrap, group, SIGNALS_FEATURES.name, 90, faust=False), \
            logs["b"].read_text()[-3000:]
    finally:
        _stop(a, *([b] if b is not None else []))
    got = _orders(bootstrap)
    ids = [o[0] for o in got]
    say(f"compared {len(got):,} orders ({len(set(ids)):,} distinct ids) with the one instance's {len(reference):,}; "
        f"{time.monotonic() - started:.1f}s in all")
    assert len(ids) == len(set(ids)), "an order twice under read_committed"
    assert {o[5] for o in got if o[5] in (share_a or ())} and {o[5] for o in got if o[5] in (share_b or ())}
    assert got == reference
    # each instance's book is its own (its cash, its symbols): its snapshots say which instance they are
    snaps = [(m.key(), decode(m.value() or b"", PortfolioSnapshot)) for m in read_to_end(bootstrap, PORTFOLIO)]
    assert {s.instance for _, s in snaps} == {"a", "b"}
    assert all(key == f"{POLICY}@{s.instance}".encode() and s.policy_id == POLICY for key, s in snaps)
