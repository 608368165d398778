"""`tickflow policy list|show|history|promote|rollback` and `tickflow retrain`: the policy registry's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from contracts.policy_record import Decision, PolicyRecord


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pol = sub.add_parser("policy", help="the policy registry on Kafka: what serves, what served, every decision",
                         description="Reads and writes the compacted topic `policies` (key policy_id): the serving "
                         "version with its bundle carried in the record, the previous version, and every decision "
                         "(promoted, rejected, rolled back) with the gate's figures and the reason.")
    ps = pol.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    ps.add_parser("list", help="one line per policy: serving and previous version, last decision")
    show = ps.add_parser("show", help="a policy's serving and previous version and its last decision")
    show.add_argument("policy_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the record as JSON, bundle bytes left out")
    hist = ps.add_parser("history", help="every decision on a policy, oldest first, with the gate's figures")
    hist.add_argument("policy_id", metavar="ID")
    hist.add_argument("--json", action="store_true", help="the decisions as JSON lines")
    pro = ps.add_parser("promote", help="serve a bundle by hand (it must pass `tickflow trade --check`)")
    pro.add_argument("policy_id", metavar="ID")
    pro.add_argument("--bundle", type=Path, required=True, help="the bundle directory to serve")
    pro.add_argument("--reason", default="promoted by hand", help="recorded with the decision")
    rb = ps.add_parser("rollback", help="serve the previous version again")
    rb.add_argument("policy_id", metavar="ID")
    rb.add_argument("--reason", default="rolled back by hand", help="recorded with the decision")
    pol.set_defaults(func=_policy)

    rt = sub.add_parser("retrain", help="train a challenger from market.trades with the champion's recipe, gate it",
                        description="Reads the window of market.trades (by Kafka timestamp, offsets_for_times) "
                        "ending now (or at --until), builds features with the offline builder, trains a challenger "
                        "with the registry's serving version's recipe on the first --train-fraction of the bars and "
                        "runs the promotion gate on the rest against the serving version; the decision and its "
                        "figures go to the registry. Once, or every --every.")
    rt.add_argument("--policy-id", required=True)
    rt.add_argument("--window", default="14d", help="length of the window read: a number and s, m, h or d")
    rt.add_argument("--every", default=None, help="repeat at this interval (for example 6h); default: run once")
    rt.add_argument("--until", type=int, default=None, metavar="MS",
                    help="end of the window, UTC ms of Kafka time (default: now); pins the window for a rerun")
    rt.add_argument("--symbol", default=None, help="default: the champion's training symbol")
    rt.add_argument("--exchange", default=None, help="only this venue's trades (when several carry the symbol)")
    rt.add_argument("--train-fraction", type=float, default=0.8,
                    help="the challenger trains on this first part of the window's bars; the gate scores the rest")
    rt.add_argument("--timesteps", type=int, default=None, help="override the recipe's training steps")
    rt.add_argument("--level", type=float, default=0.95, help="one-sided confidence of the gate's lower bound")
    rt.add_argument("--drawdown-tolerance", type=float, default=0.02,
                    help="the challenger's max drawdown may exceed the champion's by this fraction of equity")
    rt.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    rt.add_argument("--block", type=int, default=None,
                    help="mean bootstrap block length in bars (default: max(decision interval, n^(1/3)))")
    rt.add_argument("--gate-seed", type=int, default=0, help="seed of the bootstrap")
    rt.add_argument("--min-shadow-decisions", type=int, default=50,
                    help="when the challenger has traded in shadow (`tickflow trade --shadow`), the gate needs at "
                    "least this many shadow decisions that agree with the offline evaluation")
    rt.set_defaults(func=_retrain)


def _record(policy_id: str) -> PolicyRecord:
    from contracts.policy_registry import records
    from contracts.settings import kafka_bootstrap

    found = records(kafka_bootstrap())
    if policy_id not in found:
        known = ", ".join(sorted(found)) or "none yet"
        raise LookupError(f"policy {policy_id!r} is not on the registry (policies there: {known})")
    return found[policy_id]


def _when(ts: int) -> str:
    from trader.report import when

    return when(ts)


def _figures_line(d: Decision) -> str:
    f = d.figures
    if "mean_diff" not in f:
        return ""
    ch, cp = f["challenger"], f["champion"]
    return (f"    gate: {f['test_bars']} bars, mean diff {f['mean_diff']:+.3g}/bar, {f['level']:.0%} lower bound "
            f"{f['diff_lower']:+.3g} (block {f['block']}, {f['n_boot']} resamples, seed {f['seed']}), "
            f"{f['trials']} trial(s)\n"
            f"    challenger {ch['version']}: return {ch['total_return']:+.4f} sharpe {ch['sharpe']:+.2f} "
            f"psr {ch['psr']:.3f} dsr {ch['dsr']:.3f} max_dd {ch['max_drawdown']:.4f}\n"
            f"    champion   {cp['version']}: return {cp['total_return']:+.4f} sharpe {cp['sharpe']:+.2f} "
            f"psr {cp['psr']:.3f} dsr {cp['dsr']:.3f} max_dd {cp['max_drawdown']:.4f}"
            + _shadow_line(f.get("shadow")))


def _shadow_line(s: dict[str, Any] | None) -> str:
    if not s:
        return "\n    shadow: no record (the challenger has not traded in shadow)"
    return (f"\n    shadow (book {s['policy_id']}): {s['decisions']} decisions over {s['bars']} bars "
            f"{_when(s['start_ts'])}..{_when(s['end_ts'])}, net log return {s['challenger_log_return']:+.5f} vs the "
            f"champion's {s['champion_log_return']:+.5f} (difference {s['difference']:+.5f}; at least "
            f"{s['min_decisions']} decisions needed)")


def _decision_line(d: Decision) -> str:
    window = f" trained {_when(d.training_window.start_ts)}..{_when(d.training_window.end_ts)}" \
        if d.training_window else ""
    return (f"{_when(d.ts)} {d.kind:<11} {d.version} by {d.by}; serving {d.serving or '-'}{window}\n"
            f"    {d.reason}")


def _without_bytes(rec: PolicyRecord) -> dict[str, Any]:
    import msgspec

    out: dict[str, Any] = msgspec.to_builtins(rec)
    for side in ("serving", "previous"):
        if out.get(side):
            out[side].pop("data", None)
    return out


def _policy(args: argparse.Namespace) -> int:
    try:
        return _POLICY_ACTIONS[args.policy_command](args)
    except LookupError as err:
        print(f"tickflow policy {args.policy_command}: {err.args[0]}", file=sys.stderr)
        return 1


def _list(_args: argparse.Namespace) -> int:
    from contracts.policy_registry import records
    from contracts.settings import kafka_bootstrap

    found = records(kafka_bootstrap())
    if not found:
        print("no policies on the registry")
    for pid, rec in sorted(found.items()):
        print(f"{pid}: serving {rec.serving.version if rec.serving else '-'}, previous "
              f"{rec.previous.version if rec.previous else '-'}, revision {rec.revision}, last: {rec.decision.kind} "
              f"{rec.decision.version} {_when(rec.decision.ts)}")
    return 0


def _show(args: argparse.Namespace) -> int:
    rec = _record(args.policy_id)
    if args.json:
        print(json.dumps(_without_bytes(rec), indent=1))
        return 0
    print(f"policy {rec.policy_id} (revision {rec.revision})")
    for side, b in (("serving", rec.serving), ("previous", rec.previous)):
        if b is None:
            print(f"  {side}: -")
            continue
        window = f", trained {_when(b.training_window.start_ts)}..{_when(b.training_window.end_ts)}" \
            if b.training_window else ""
        print(f"  {side}: {b.version} ({b.algo}, {b.size:,} bytes, sha256 {b.sha256[:16]}...{window})")
    print("  last decision: " + _decision_line(rec.decision))
    if line := _figures_line(rec.decision):
        print(line)
    return 0


def _history(args: argparse.Namespace) -> int:
    import msgspec

    rec = _record(args.policy_id)
    for d in rec.history:
        if args.json:
            print(json.dumps(msgspec.to_builtins(d)))
            continue
        print(_decision_line(d))
        if line := _figures_line(d):
            print(line)
    return 0


def _promote(args: argparse.Namespace) -> int:
    from contracts.broker_check import require_broker
    from contracts.policy_record import pack
    from contracts.policy_registry import latest, promoted, write
    from contracts.timeutil import now_ms
    from trader.policy.bundle import BundleError, load
    from trader.policy.retrain import training_window

    try:
        b = load(args.bundle)
    except BundleError as err:
        print(f"tickflow policy promote: {args.bundle} is refused: {err}", file=sys.stderr)
        return 1
    bootstrap = require_broker()
    current = latest(bootstrap, args.policy_id)
    window = training_window(b.manifest)
    decision = Decision(kind="promoted", version=b.version, serving=b.version, ts=now_ms(), by="hand",
                        reason=f"{args.reason} ({args.bundle})", training_window=window)
    record = promoted(current, args.policy_id, pack(args.bundle, b.version, b.algo, window), decision)
    partition, offset = write(bootstrap, record)
    print(f"policy {args.policy_id}: {b.version} serves (revision {record.revision}, policies[{partition}]@{offset}); "
          f"previous {record.previous.version if record.previous else '-'}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from contracts.policy_registry import latest, rolled_back, write
    from contracts.settings import kafka_bootstrap
    from contracts.timeutil import now_ms

    bootstrap = kafka_bootstrap()
    current = latest(bootstrap, args.policy_id)
    back = current.previous.version if current and current.previous else "-"
    gone = current.serving.version if current and current.serving else "-"
    decision = Decision(kind="rolled_back", version=gone, serving=back, ts=now_ms(), by="hand", reason=args.reason)
    record = rolled_back(current, args.policy_id, decision)
    partition, offset = write(bootstrap, record)
    print(f"policy {args.policy_id}: rolled back from {gone}; {back} serves (revision {record.revision}, "
          f"policies[{partition}]@{offset})")
    return 0


_POLICY_ACTIONS = {"list": _list, "show": _show, "history": _history, "promote": _promote, "rollback": _rollback}


def _retrain(args: argparse.Namespace) -> int:
    from contracts.kafka_io import Stopper
    from contracts.settings import kafka_bootstrap, load, tickflow_home
    from trader.policy.gate import GateSettings
    from trader.policy.retrain import parse_duration, retrain_once, run
    from trader.service import TraderSettings

    window_s = parse_duration(args.window, "--window")
    settings = GateSettings(level=args.level, drawdown_tolerance=args.drawdown_tolerance, n_boot=args.resamples,
                            seed=args.gate_seed, block=args.block, min_shadow_decisions=args.min_shadow_decisions)
    once = {"until_ms": args.until, "symbol": args.symbol, "exchange": args.exchange,
            "train_fraction": args.train_fraction, "timesteps": args.timesteps,
            "capital": load(TraderSettings, "TRADER").capital}  # the shadow books start as the traders' do
    bootstrap, home = kafka_bootstrap(), tickflow_home()
    if args.every is not None:
        every_s = parse_duration(args.every, "--every")
        stopper = Stopper()
        stopper.install()
        runs = run(bootstrap, args.policy_id, window_s, home, settings, every_s, stopper.event, **once)
        print(f"retrain of {args.policy_id} stopped after {runs} run(s)")
        return 0
    record = retrain_once(bootstrap, args.policy_id, window_s, home, settings, **once)
    d = record.decision
    print(_decision_line(d))
    if line := _figures_line(d):
        print(line)
    return 0
