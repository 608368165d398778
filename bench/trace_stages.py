"""Each order's stages in the trader and in its floor, from traced rounds (bench/loop_trace.py):
``python -m bench.trace_stages [--pairs N] [--bundle DIR]`` on a broker of its own.

For an order decided on the feature at offset o: ``in`` feature produced -> the poll that returned o,
``decide`` that poll -> begin_transaction (decode, decision, snapshot, logging; the floor looks its orders
up), ``produce`` begin + produce calls, ``offsets`` send_offsets_to_transaction, ``commit``
commit_transaction, ``handoff`` the caller's wait on the transactional-call thread beyond the calls
themselves (the trader's, kafka_io._bounded; 0 in the floor), ``visible`` commit returned -> order read
read_committed. ``queued``: the feature was produced while the loop's previous transaction was open.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench import feature_to_order, loop_trace
from bench.feature_to_order import Run

STAGES = ("in", "decide", "produce", "offsets", "commit", "handoff", "visible", "total")


def order_stages(run: Run, fvs: list[Any], in_topic_suffix: str) -> list[dict[str, float]]:
    """One dict of stage -> ms per order of ``run`` (traced), plus ``queued`` (1.0 or 0.0) and ``gc`` (ms of
    collections between the feature's poll and its commit)."""
    if run.trace is None:
        raise ValueError(f"round {run.position + 1} ({run.name}) was not traced")
    events = loop_trace.load(run.trace)
    polled: dict[int, int] = {}  # input offset -> end of the poll/consume that returned it
    for what, _, _, t1, detail in events:
        if what in ("poll", "consume") and detail:
            for topic, _, offset in detail:
                if topic.endswith(in_topic_suffix):
                    polled[offset] = t1
    txns = _transactions(events)
    gcs = [(t0, t1) for what, _, t0, t1, _ in events if what == "gc"]
    out = []
    for offset, fv in enumerate(fvs):
        if fv.ts not in run.got or offset not in polled:
            continue
        p = polled[offset]
        txn = next((t for t in txns if t["begin0"] >= p), None)
        if txn is None:
            continue
        sent_ns, got_ns = run.sent[fv.ts] * 1e9, run.got[fv.ts] * 1e9
        calls = txn["offsets1"] - txn["offsets0"] + txn["commit1"] - txn["commit0"]
        row = {"in": p - sent_ns, "decide": txn["begin0"] - p, "produce": txn["produced"] - txn["begin0"],
               "offsets": txn["offsets1"] - txn["offsets0"], "commit": txn["commit1"] - txn["commit0"],
               "handoff": max(0.0, txn["bounded"] - calls) if txn["bounded"] else 0.0,
               "visible": got_ns - txn["end"], "total": got_ns - sent_ns,
               "gc": sum(min(b, txn["end"]) - max(a, p) for a, b in gcs if b > p and a < txn["end"])}
        row = {"round": run.position + 1.0, "offset": float(offset), **{k: v / 1e6 for k, v in row.items()}}
        row["queued"] = float(any(t["begin0"] <= sent_ns <= t["end"] for t in txns if t is not txn))
        out.append(row)
    return out


def _transactions(events: list[tuple[Any, ...]]) -> list[dict[str, float]]:
    """Each transaction's marks (ns) from begin to the end of its commit (the caller's side when handed off)."""
    txns: list[dict[str, float]] = []
    cur: dict[str, float] | None = None
    for what, _, t0, t1, detail in sorted(events, key=lambda e: e[3]):
        if what == "begin":
            cur = {"begin0": t0, "produced": t1, "offsets0": t1, "offsets1": t1, "bounded": 0.0}
            txns.append(cur)
        elif cur is None:
            continue
        elif what == "produce":
            cur["produced"] = t1
        elif what == "offsets":
            cur["offsets0"], cur["offsets1"] = t0, t1
        elif what == "commit":
            cur["commit0"], cur["commit1"], cur["end"] = t0, t1, t1
        elif what == "bounded":
            cur["bounded"] += t1 - t0
            if detail == "the commit":
                cur["end"] = t1
    return [t for t in txns if "end" in t]


def summary(rows: Iterable[dict[str, float]]) -> str:
    rows = list(rows)
    lines = [f"{'stage':>8} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}  mean in slowest 2%"]
    slow = sorted(rows, key=lambda r: r["total"])[-max(1, len(rows) // 50):]
    for stage in (*STAGES, "gc"):
        xs = np.asarray([r[stage] for r in rows])
        lines.append(f"{stage:>8} {np.percentile(xs, 50):7.2f} {np.percentile(xs, 90):7.2f} "
                     f"{np.percentile(xs, 99):7.2f} {xs.max():7.2f}  {np.mean([r[stage] for r in slow]):7.2f}")
    lines.append(f"queued: {np.mean([r['queued'] for r in rows]):.0%} of orders, "
                 f"{np.mean([r['queued'] for r in slow]):.0%} of the slowest 2%; {len(rows)} orders")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.trace_stages")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--bundle", type=Path, help="a policy bundle; one that does not exist yet is trained there "
                        "(PPO as bench/trader.py trains it; default: in a temporary directory)")
    parser.add_argument("--workdir", type=Path, help="keep the loops' logs and traces here (default: temporary)")
    parser.add_argument("--variants", help="comma-separated loops run in turn, the order rotated each cycle, e.g. "
                        "floor,floor+snapshot,trader (bench/txn_floor.py's TXN_FLOOR_ADD); default: trader,floor")
    parser.add_argument("--slowest", type=int, default=0, help="print each stage of this many slowest orders")
    args = parser.parse_args(argv)
    from bench.context import BenchContext
    from bench.trader import DATA, _eth_day_features
    from contracts.logs import setup_logging
    from infra.kafka.broker import LocalBroker, free_port
    from trader.policy import bundle as bundle_mod

    setup_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="tickflow-trace-") as tmp:
        ctx_dir = args.workdir or Path(tmp)
        ctx_dir.mkdir(parents=True, exist_ok=True)
        broker = LocalBroker(ctx_dir / "broker", port=free_port())
        try:
            ctx = BenchContext(broker.start(die_with_parent=True), ctx_dir)
            if args.bundle is None or not args.bundle.exists():
                import torch

                from trader.policy.dataset import load
                from trader.policy.train import TrainConfig, train

                torch.set_num_threads(1)
                btc = load(next(DATA.glob("binance_spot_BTCUSDT_1m_*.csv.gz")))
                bundle = train(btc, TrainConfig(algo="ppo", timesteps=20_000, seed=7, every=1, progress=False),
                               args.bundle or ctx_dir / "ppo").bundle
            else:
                bundle = bundle_mod.load(args.bundle)
            fvs = _eth_day_features(ctx)
            names = args.variants.split(",") if args.variants else list(feature_to_order.LOOPS)
            rounds = [names[(c + k) % len(names)] for c in range(args.pairs) for k in range(len(names))]
            runs = feature_to_order.measure(ctx, bundle, fvs, args.pairs, trace=True,
                                            rounds=None if args.variants is None else rounds)
        finally:
            broker.stop()
        for name in dict.fromkeys(run.name for run in runs):
            suffix = "signals.features" if name == "trader" else "bench.txn.in"
            rows = [r for run in runs if run.name == name for r in order_stages(run, fvs, suffix)]
            lat = [x for run in runs if run.name == name for x in run.latencies_ms]
            print(f"{name}: pooled p99 {np.percentile(lat, 99):.1f} ms, p50 {np.percentile(lat, 50):.1f}; "
                  f"stages (ms):\n{summary(rows)}", flush=True)
            for r in sorted(rows, key=lambda r: r["total"])[len(rows) - args.slowest:]:
                print("  " + " ".join(f"{k} {v:.1f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
