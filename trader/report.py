"""The files an evaluation writes beside metrics.json: trade table, charts and a report in words.

Charts are drawn on ``matplotlib.figure.Figure`` objects, never through pyplot's global state, so a
Jupyter kernel that calls ``evaluate`` keeps its own backend and its inline plots.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from trader.round_trips import RoundTrip


def when(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _dates(ts: NDArray[np.int64]) -> NDArray[Any]:
    return np.asarray(ts, dtype="datetime64[ms]")


def write_trades_csv(path: Path, trips: Sequence[RoundTrip]) -> None:
    fields = ["side", "entry_time", "entry_price", "exit_time", "exit_price", "max_position", "pnl", "ret",
              "duration_s", "open"]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for t in trips:
            w.writerow([t.side, when(t.entry_ts), f"{t.entry_price:.2f}", when(t.exit_ts), f"{t.exit_price:.2f}",
                        f"{t.max_position:.3f}", f"{t.pnl:+.6f}", f"{t.ret:+.6f}", f"{t.duration_s:.0f}",
                        int(t.open)])


def plot_equity(path: Path, ts: NDArray[np.int64], curves: dict[str, NDArray[np.float64]], title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5))
    ax = fig.subplots()
    for name, eq in curves.items():
        ax.plot(_dates(ts), eq, label=name, linewidth=1.6 if name == "policy" else 0.9)
    ax.set_ylabel("equity (start = 1)")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_trades(path: Path, ts: NDArray[np.int64], closes: NDArray[np.float64], trips: Sequence[RoundTrip],
                title: str) -> None:
    """Price with each round trip's entry (triangle up for long, down for short) and exit (cross) marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5))
    ax = fig.subplots()
    ax.plot(_dates(ts), closes, color="black", linewidth=0.7, label="close")
    for side, marker, colour in (("long", "^", "tab:green"), ("short", "v", "tab:red")):
        mine = [t for t in trips if t.side == side]
        if mine:
            ax.scatter(_dates(np.array([t.entry_ts for t in mine])), [t.entry_price for t in mine], marker=marker,
                       color=colour, s=36, zorder=3, label=f"{side} entry")
    exits = [t for t in trips if not t.open]
    if exits:
        ax.scatter(_dates(np.array([t.exit_ts for t in exits])), [t.exit_price for t in exits], marker="x",
                   color="tab:blue", s=30, zorder=3, label="exit")
    ax.set_ylabel("price")
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def write_folds_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    names = list(rows[0]["baselines"])
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "train_bars", "test_start", "test_end", "test_bars", "policy_return", "policy_sharpe",
                    "policy_max_drawdown", "policy_exposure", *[f"{n}_return" for n in names]])
        for r in rows:
            p = r["policy"]
            w.writerow([r["fold"], r["train_bars"], when(r["test_start_ts"]), when(r["test_end_ts"]), r["test_bars"],
                        f"{p['total_return']:+.6f}", f"{p['sharpe']:+.3f}", f"{p['max_drawdown']:.6f}",
                        f"{p['exposure']:.3f}", *[f"{r['baselines'][n]['total_return']:+.6f}" for n in names]])


def plot_walk_forward(path: Path, rows: Sequence[dict[str, Any]], title: str) -> None:
    """Per fold, the policy's return beside each baseline's, and the spread of each across folds."""
    from matplotlib.figure import Figure

    names = ["policy", *rows[0]["baselines"]]
    values = {n: np.array([(r["policy"] if n == "policy" else r["baselines"][n])["total_return"] for r in rows])
              for n in names}
    fig = Figure(figsize=(11, 4.8))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    x = np.arange(len(rows))
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        left.bar(x + (i - (len(names) - 1) / 2) * width, values[n], width, label=n,
                 color="black" if n == "policy" else None)
    left.set_xticks(x, [f"fold {r['fold']}\n{when(r['test_start_ts'])[:10]}\n..{when(r['test_end_ts'])[:10]}"
                        for r in rows], fontsize=8)
    left.axhline(0, color="grey", linewidth=0.8)
    left.set_ylabel("test-fold return, net of costs")
    left.legend(fontsize=8)
    left.grid(alpha=0.3, axis="y")
    right.boxplot([values[n] for n in names], tick_labels=names, showmeans=True)
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_title("spread across folds", fontsize=10)
    right.tick_params(axis="x", labelrotation=45, labelsize=8)
    right.grid(alpha=0.3, axis="y")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def report_text(result: dict[str, Any]) -> str:
    """The evaluation in words (report.md): what was tested, against what, and how the trades went."""
    d, p, s = result["data"], result["policy"], result["trades"]["summary"]
    bh, matched = result["baselines"]["buy_and_hold"], result["baselines"]["buy_and_hold_matched"]
    b = result["bundle"]
    lines = [
        f"# {b['algo'].upper()} {b['version']} on {d['symbol']}",
        "",
        f"Evaluated on {d['out_of_sample']}, {when(d['start_ts'])} to {when(d['end_ts'])} UTC.",
        ("This is an **out-of-time** test: every bar comes after the policy's training window."
         if d["out_of_time"] else
         "This is **not** an out-of-time test: these dates overlap the policy's training window "
         f"({when(d['training_window']['start_ts'])} to {when(d['training_window']['end_ts'])} UTC), so it only "
         "shows how the policy does on another asset over the same period."),
        "",
        f"Policy: return {p['total_return']:+.2%}, Sharpe {p['sharpe']:+.2f}, max drawdown {p['max_drawdown']:.2%}, "
        f"mean exposure {p['exposure']:.1%} of equity, fees {p['fees']:.4f}.",
        f"Buy-and-hold fully invested: {bh['total_return']:+.2%}; buy-and-hold at the policy's mean exposure "
        f"({matched['position']:.1%} held from the first decision): {matched['total_return']:+.2%}.",
        "",
        f"{s['count']:.0f} round trips, win rate {s['win_rate']:.0%}, average win {s['avg_win']:+.4f} and average "
        f"loss {s['avg_loss']:+.4f} (fractions of the starting equity, net of costs), average duration "
        f"{s['avg_duration_s'] / 3600:.1f} h. Each trade is in trades.csv; trades.png marks them on the price.",
        "",
        *confidence_lines(result["confidence"]),
        *seed_lines(result.get("seeds")),
    ]
    return "\n".join(lines)


def confidence_lines(c: dict[str, Any]) -> list[str]:
    m, t = c["mean_log_return"], c["total_log_return"]
    return [f"Confidence: mean net log return {m['value'] * 1e4:+.2f} bp a bar, {c['level']:.0%} interval "
            f"[{m['lower'] * 1e4:+.2f}, {m['upper'] * 1e4:+.2f}] bp (total {t['value']:+.4f}, interval "
            f"[{t['lower']:+.4f}, {t['upper']:+.4f}]; stationary bootstrap, mean block {c['block']} bars, "
            f"{c['n_boot']} resamples). Probabilistic Sharpe ratio {c['psr']:.3f} (the chance that the true Sharpe "
            f"ratio is above 0), deflated Sharpe ratio {c['dsr']:.3f} ({c['trials']} search trial(s)).", ""]


def seed_lines(seeds: dict[str, Any] | None) -> list[str]:
    """The spread over seeds: so that no single lucky seed is read as the result."""
    if not seeds:
        return []
    runs, mean, std = seeds["runs"], seeds["mean"], seeds["std"]
    lines = [f"## {len(runs)} seeds of the same recipe", "",
             f"Return {mean['total_return']:+.2%} on average, spread (standard deviation) {std['total_return']:.2%}, "
             f"from {seeds['min']['total_return']:+.2%} to {seeds['max']['total_return']:+.2%}; Sharpe "
             f"{mean['sharpe']:+.2f} +- {std['sharpe']:.2f}; max drawdown {mean['max_drawdown']:.2%} +- "
             f"{std['max_drawdown']:.2%}.", "",
             "| seed | version | return | sharpe | max drawdown | mean log return bp/bar (interval) | PSR |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        m = r["confidence"]["mean_log_return"]
        lines.append(f"| {r['seed']} | {r['version']} | {r['total_return']:+.2%} | {r['sharpe']:+.2f} | "
                     f"{r['max_drawdown']:.2%} | {m['value'] * 1e4:+.2f} ({m['lower'] * 1e4:+.2f}, "
                     f"{m['upper'] * 1e4:+.2f}) | {r['confidence']['psr']:.3f} |")
    return [*lines, ""]
